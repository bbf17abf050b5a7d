//! As-of replays: each reads the whole log, so at most `max_running` run at once (one more is
//! refused as unavailable, to ask again shortly), and the last `capacity` results are kept by
//! (log head, moment, read model) — the same question at the same head is answered from memory.

use crate::error::AppError;
use funnel_projections::history::Start;
use funnel_projections::{AsOf, ReadModel};
use funnel_store::EventStore;
use funnel_types::Position;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// What an as-of answer depends on: the log head it was computed at, the moment and the model.
type ReplayKey = (Position, AsOf, &'static str);

type Kept = Arc<dyn Any + Send + Sync>;

/// The limit and cache of as-of replays.
#[derive(Debug)]
pub struct Replays {
    running: Arc<tokio::sync::Semaphore>,
    cache: Mutex<VecDeque<(ReplayKey, Kept)>>,
    capacity: usize,
}

impl Replays {
    pub fn new(max_running: usize, capacity: usize) -> Self {
        Self {
            running: Arc::new(tokio::sync::Semaphore::new(max_running)),
            cache: Default::default(),
            capacity,
        }
    }

    /// A slot to replay in, if one is free (held until dropped).
    pub fn try_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.running.clone().try_acquire_owned().ok()
    }

    /// How many results are kept.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn lookup(&self, key: &ReplayKey) -> Option<Kept> {
        let cache = self.cache.lock().ok()?;
        cache.iter().find(|(k, _)| k == key).map(|(_, m)| m.clone())
    }

    fn keep(&self, key: ReplayKey, model: Kept) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.iter().any(|(k, _)| *k == key) {
                return;
            }
            while cache.len() >= self.capacity {
                cache.pop_front();
            }
            cache.push_back((key, model));
        }
    }

    /// The read model `M` as of `as_of` reading the log no further than `head`: from the cache,
    /// or replayed within the limit from the start `history` gives (the nearest history snapshot,
    /// see [`funnel_projections::history`]; the start of the log when it has none).
    pub async fn model<M, F, Fut>(
        &self,
        store: &dyn EventStore,
        as_of: AsOf,
        head: Position,
        history: F,
    ) -> Result<Arc<M>, AppError>
    where
        M: ReadModel + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Start>,
    {
        let key = (head, as_of, M::NAME);
        if let Some(m) = self.lookup(&key).and_then(|m| m.downcast::<M>().ok()) {
            return Ok(m);
        }
        let Some(_slot) = self.try_slot() else {
            return Err(AppError::unavailable(
                "too many as-of reports are being computed; try again shortly",
                "正在计算的历史报表过多，请稍后重试",
            ));
        };
        let start = history().await;
        let (m, _, replayed) =
            funnel_projections::replay_from::<M>(store, as_of, head, start).await?;
        tracing::debug!(
            model = M::NAME,
            from = %replayed.from,
            events_read = replayed.events_read,
            "as-of replay"
        );
        let m = Arc::new(m);
        self.keep(key, m.clone());
        Ok(m)
    }
}
