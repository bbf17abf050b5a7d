//! Driving a runner that others read at the same time: [`follow`] keeps a runner behind a
//! `tokio::sync::RwLock` up to date with the live tail, taking the write lock only to apply a page
//! already read (never across a store request) and to record what was saved, so readers wait at
//! most for one page to be applied: serialising the models and writing them (the table models'
//! rows after every page at the tail, the in-memory models every `follow_save_interval`) happen
//! under the read lock, beside the readers. [`wait_until_shared`] / [`query_at_least`] give
//! read-your-writes on top of it.

use crate::runner::SaveScope;
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
            let applied = tokio::select! {
                n = follow_step(shared, store) => n?,
                () = &mut shutdown => return shared.write().await.save(),
            };
            if applied == 0 {
                break;
            }
            events += applied as u64;
            progress(&shared.read().await.progress(events));
        }
        let due = {
            let r = shared.read().await;
            r.is_dirty() && last_save.elapsed() >= options.follow_save_interval
        };
        if due {
            save_shared(shared, SaveScope::Everything).await?;
            last_save = Instant::now();
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

/// Reads one page from the shared runner's lowest checkpoint and applies it as [`follow`] does:
/// under the write lock, then saves the table models' rows (and every changed state when
/// `save_every` events have passed) beside the readers, and switches rebuilds that have caught
/// up. Returns the number of events applied (zero at the head). Safe to cancel at any await: what
/// was applied and not saved is saved by the next save.
pub async fn follow_step(
    shared: &RwLock<Runner>,
    store: &dyn EventStore,
) -> Result<usize, RunnerError> {
    let head = store.head().await?;
    let (after, page_size) = {
        let mut r = shared.write().await;
        r.note_head(head, store.backend());
        r.check_switches()?;
        (r.low_water(), r.options().page_size)
    };
    let Some(after) = after.filter(|a| *a < head) else {
        return Ok(0);
    };
    let page = store.read_all(after, &Filter::All, page_size).await?;
    if page.is_empty() {
        return Ok(0);
    }
    let scope = {
        let mut r = shared.write().await;
        r.apply_page_unsaved(after, &page)?;
        if r.save_due() {
            Some(SaveScope::Everything)
        } else if r.tables_due(page.len() < page_size) {
            Some(SaveScope::Tables)
        } else if r.history_due() {
            Some(SaveScope::History)
        } else {
            None
        }
    };
    // The table models' rows when due (at the tail, every page: they serve reads); everything
    // every `save_every` events during a long catch-up; and the history snapshots when due, so
    // that they are as close together during a catch-up as at the tail.
    match scope {
        Some(scope) => save_shared(shared, scope).await?,
        None => shared.write().await.check_switches()?,
    }
    Ok(page.len())
}

/// Saves the shared runner's changed states, as far as `scope` says: the
/// models are serialised and written under the read lock, and only the bookkeeping (and a
/// rebuild's switch) takes the write lock. Nothing else applies events to a followed runner, so
/// nothing changes between the two.
async fn save_shared(shared: &RwLock<Runner>, scope: SaveScope) -> Result<(), RunnerError> {
    let written = {
        let r = shared.read().await;
        match r.prepare_save(scope)? {
            Some(save) => {
                let committed = r.write_save(&save);
                Some((save, committed))
            }
            None => None,
        }
    };
    let mut r = shared.write().await;
    if let Some((save, committed)) = written {
        r.finish_save(save, committed)?;
    }
    r.check_switches()
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
