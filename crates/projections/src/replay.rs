//! As-of replay: a read model computed from scratch as of a position or a date, streaming the log
//! page by page so memory does not grow with the number of events.

use crate::{Parked, ReadModel};
use chrono::{DateTime, Utc};
use funnel_store::{EventStore, Filter, RecordedEvent, StoreError};
use funnel_types::Position;

/// Events per read during a replay.
const PAGE: usize = 8192;

/// The point in history a replay stops at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Every event at or below this position.
    Position(Position),
    /// Every event that occurred at or before this time (by `occurred_at`, which is not in log
    /// order, so the whole log up to the head at the start is scanned).
    Time(DateTime<Utc>),
}

impl AsOf {
    fn admits(&self, rec: &RecordedEvent) -> bool {
        match self {
            AsOf::Position(p) => rec.meta.position <= *p,
            AsOf::Time(t) => rec.meta.occurred_at <= *t,
        }
    }
}

/// A fresh `M` with every event admitted by `as_of` applied in log order, and the events it parked
/// (did not decode or were refused).
pub async fn replay_as_of<M: ReadModel>(
    store: &dyn EventStore,
    as_of: AsOf,
) -> Result<(M, Vec<Parked>), StoreError> {
    let mut model = M::default();
    let mut parked = Vec::new();
    let end = match as_of {
        AsOf::Position(p) => p,
        AsOf::Time(_) => store.head().await?,
    };
    let mut after = Position::START;
    while after < end {
        let page = store.read_all(after, &Filter::All, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.meta.position;
        for rec in page
            .iter()
            .filter(|r| r.meta.position <= end && as_of.admits(r))
        {
            let refused = match funnel_codec::decode_recorded(rec) {
                Ok(env) => model.apply(&env).err(),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = refused {
                parked.push(Parked {
                    position: rec.meta.position,
                    event_type: rec.meta.event_type.clone(),
                    reason,
                });
            }
        }
    }
    Ok((model, parked))
}
