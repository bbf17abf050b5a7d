//! A catch-up subscription built only from `read_all` and `wait_for_append`, which every backend has.

use crate::{EventStore, Filter, RecordedEvent, StoreError};
use funnel_types::Position;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;

/// One item of a subscription.
#[derive(Clone, Debug, PartialEq)]
pub enum SubscriptionItem {
    Event(RecordedEvent),
    /// Everything up to this head position has been delivered; what follows is live.
    CaughtUp(Position),
}

const BATCH: usize = 2048;

/// Reads history in batches, says when it has caught up with the head, then follows the tail.
pub fn generic_subscribe<S: EventStore + ?Sized>(
    store: Arc<S>,
    after: Position,
    filter: Filter,
) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
    let s = async_stream(store, after, filter);
    Box::pin(s)
}

fn async_stream<S: EventStore + ?Sized>(
    store: Arc<S>,
    after: Position,
    filter: Filter,
) -> impl futures::Stream<Item = Result<SubscriptionItem, StoreError>> + Send + 'static {
    struct St<S: ?Sized> {
        store: Arc<S>,
        cursor: Position,
        filter: Filter,
        buffered: std::collections::VecDeque<RecordedEvent>,
        caught_up: bool,
        failed: bool,
    }
    let init = St {
        store,
        cursor: after,
        filter,
        buffered: Default::default(),
        caught_up: false,
        failed: false,
    };
    futures::stream::unfold(init, |mut st| async move {
        if st.failed {
            return None;
        }
        loop {
            if let Some(ev) = st.buffered.pop_front() {
                return Some((Ok(SubscriptionItem::Event(ev)), st));
            }
            if let Err(e) = st.filter.validate() {
                st.failed = true;
                return Some((Err(e), st));
            }
            // Head first, then read: everything up to `head` is then known to be delivered.
            let head = match st.store.head().await {
                Ok(h) => h,
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            };
            match st.store.read_all(st.cursor, &st.filter, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    st.cursor = batch.last().map(|e| e.meta.position).unwrap_or(st.cursor);
                    st.buffered.extend(batch);
                    continue;
                }
                Ok(_) => {
                    // Nothing matched up to the head: remember that, so filtered subscriptions do not
                    // re-scan the same range.
                    if head > st.cursor {
                        st.cursor = head;
                    }
                    if !st.caught_up {
                        st.caught_up = true;
                        return Some((Ok(SubscriptionItem::CaughtUp(st.cursor)), st));
                    }
                }
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
            if let Err(e) = st
                .store
                .wait_for_append(st.cursor, Duration::from_secs(1))
                .await
            {
                st.failed = true;
                return Some((Err(e), st));
            }
        }
    })
}
