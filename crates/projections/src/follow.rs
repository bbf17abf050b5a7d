//! Driving a runner that others read at the same time: [`follow`] keeps a runner behind a
//! `tokio::sync::RwLock` up to date with the live tail, taking the write lock only to apply a page
//! already read (never across a store request), so readers wait at most for one page; and
//! [`wait_until_shared`] / [`query_at_least`] give read-your-writes on top of it.

use crate::{Progress, ReadModel, Runner, RunnerError};
use funnel_store::{EventStore, Filter};
use funnel_types::Position;
use std::future::Future;
use std::time::Duration;
use tokio::sync::RwLock;
use tokio::time::Instant;

/// Catches up, then follows the live tail until `shutdown` completes, then saves and returns.
/// Changes are saved at most every `follow_save_interval` (and every `save_every` events during a
/// long catch-up). `progress` is called after every page.
pub async fn follow(
    shared: &RwLock<Runner>,
    store: &dyn EventStore,
    shutdown: impl Future<Output = ()>,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<(), RunnerError> {
    tokio::pin!(shutdown);
    let options = shared.read().await.options();
    let mut last_save = Instant::now();
    let mut events = 0u64;
    loop {
        // Apply every page up to the head.
        loop {
            let head = tokio::select! {
                h = store.head() => h?,
                () = &mut shutdown => return shared.write().await.save(),
            };
            let after = {
                let mut r = shared.write().await;
                r.note_head(head, store.backend());
                r.check_switches()?;
                r.low_water()
            };
            let Some(after) = after.filter(|a| *a < head) else {
                break;
            };
            let page = tokio::select! {
                p = store.read_all(after, &Filter::All, options.page_size) => p?,
                () = &mut shutdown => return shared.write().await.save(),
            };
            if page.is_empty() {
                break;
            }
            events += page.len() as u64;
            let mut r = shared.write().await;
            r.apply_page(after, &page)?;
            progress(&r.progress(events));
        }
        {
            let mut r = shared.write().await;
            if r.is_dirty() && last_save.elapsed() >= options.follow_save_interval {
                r.save()?;
                last_save = Instant::now();
            }
        }
        // Wait for the next append; wake after the save interval to save what changed.
        let after = {
            let r = shared.read().await;
            r.low_water().unwrap_or(r.head())
        };
        tokio::select! {
            w = store.wait_for_append(after, options.follow_save_interval) => { w?; }
            () = &mut shutdown => return shared.write().await.save(),
        }
    }
}

/// Waits until every live state of the shared runner is at or beyond `position`, as moved by a
/// [`follow`] running elsewhere; [`RunnerError::Timeout`] after `timeout`.
pub async fn wait_until_shared(
    shared: &RwLock<Runner>,
    position: Position,
    timeout: Duration,
) -> Result<(), RunnerError> {
    let mut rx = shared.read().await.watch_live_checkpoint();
    let waited = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position))
        .await
        .map(|r| r.is_ok());
    match waited {
        Ok(true) => Ok(()),
        _ => Err(RunnerError::Timeout {
            position,
            checkpoint: *rx.borrow(),
        }),
    }
}

/// Read-your-writes: waits until the live states reflect `position` (see [`wait_until_shared`]),
/// then runs `f` on the live state of `M` under the read lock.
pub async fn query_at_least<M: ReadModel, T>(
    shared: &RwLock<Runner>,
    position: Position,
    timeout: Duration,
    f: impl FnOnce(Option<&M>) -> T,
) -> Result<T, RunnerError> {
    wait_until_shared(shared, position, timeout).await?;
    let r = shared.read().await;
    Ok(f(r.get::<M>()))
}
