//! Leases: which of several processes on one log does a piece of work that must have exactly one
//! doer at a time (the saga runtime, the webhook dispatch), and the fencing token that keeps a
//! former holder from acting once another holds the lease.
//!
//! A backend keeps one record per lease name ([`LeaseStore`]): created only when none exists,
//! renewed only at the revision last seen (compare-and-set), gone on its own when not renewed for
//! its time to live. The revision of the create that began a holding is its **term**; terms only
//! grow, so a later holder always has a greater term than any earlier one. [`Lease::run`] keeps
//! trying to acquire and renew, and publishes what this process holds. A holder acts only through a
//! [`Fence`]: before every write it checks that its local deadline (the time the last renewal was
//! *sent* plus the time to live, less a margin) has not passed and that the record still names it
//! with its term. [`FencedStore`] does that before every append of an [`EventStore`].

use crate::{AppendOutcome, AppendRequest, EventStore, Filter, RecordedEvent, StoreError};
use async_trait::async_trait;
use funnel_types::{Position, StreamId, Version};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The stored record of a lease: who holds it and since which term.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseRecord {
    /// The holder's identity (host, process id and a random part; unique per process start).
    pub holder: String,
    /// The fencing token: the record's revision when this holding began.
    pub term: u64,
}

/// A lease record as read, with the revision it was read at (the revision to renew from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseEntry {
    pub record: LeaseRecord,
    pub revision: u64,
}

/// Where leases are kept (on JetStream: a key-value bucket whose entries expire after the time to
/// live). Every operation is one compare-and-set or one read on the backend.
#[async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug + 'static {
    /// The time to live of every lease of this store (entries not renewed within it disappear).
    fn ttl(&self) -> Duration;

    /// Creates the lease for `holder` if no record exists; the answer is the new revision (the
    /// term), `None` when someone holds it.
    async fn acquire(&self, name: &str, holder: &str) -> Result<Option<u64>, StoreError>;

    /// Rewrites `record` at `revision` (compare-and-set); the answer is the new revision, `None`
    /// when the record moved on (renewed by another, or expired and taken).
    async fn renew(
        &self,
        name: &str,
        record: &LeaseRecord,
        revision: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// The current record, `None` when nobody holds the lease.
    async fn current(&self, name: &str) -> Result<Option<LeaseEntry>, StoreError>;

    /// Deletes the record if it is still at `revision` (a holder stopping hands over at once).
    async fn release(&self, name: &str, revision: u64) -> Result<(), StoreError>;
}

/// What this process holds of one lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// Not held here. `holder` is who holds it, when known.
    No { holder: Option<String> },
    /// Held here, with its term, until the local deadline unless renewed before.
    Yes { term: u64, until: Instant },
}

impl Holding {
    /// The term, when held and the local deadline has not passed.
    pub fn term_now(&self) -> Option<u64> {
        match self {
            Holding::Yes { term, until } if Instant::now() < *until => Some(*term),
            _ => None,
        }
    }
}

/// Keeps one named lease for this process: acquires it when free, renews it a third of the time to
/// live after each renewal, gives it up when a renewal is refused or its local deadline passes, and
/// releases it on stop.
#[derive(Debug)]
pub struct Lease {
    name: String,
    holder: String,
    store: Arc<dyn LeaseStore>,
    state: watch::Sender<Holding>,
}

/// Part of the time to live a holder does not count on: it stops acting this much before the time
/// to live after its last renewal was sent (clock-rate differences, the time a check takes).
fn margin(ttl: Duration) -> Duration {
    ttl / 5
}

impl Lease {
    pub fn new(
        name: impl Into<String>,
        holder: impl Into<String>,
        store: Arc<dyn LeaseStore>,
    ) -> Self {
        let (state, _) = watch::channel(Holding::No { holder: None });
        Self {
            name: name.into(),
            holder: holder.into(),
            store,
            state,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// What this process holds, as it changes.
    pub fn watch(&self) -> watch::Receiver<Holding> {
        self.state.subscribe()
    }

    /// The fence every write of the holder passes through.
    pub fn fence(&self) -> Fence {
        Fence {
            name: self.name.clone(),
            holder: self.holder.clone(),
            store: self.store.clone(),
            state: self.state.subscribe(),
        }
    }

    fn set(&self, h: Holding) {
        self.state.send_if_modified(|old| {
            let changed = *old != h;
            *old = h;
            changed
        });
    }

    /// Acquires and renews until `stop` completes, then releases what it holds.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        let ttl = self.store.ttl();
        let every = ttl / 3;
        tokio::pin!(stop);
        // (term, revision) while held.
        let mut held: Option<(u64, u64)> = None;
        let mut until = Instant::now();
        loop {
            let sent = Instant::now();
            match held {
                None => match self.store.acquire(&self.name, &self.holder).await {
                    Ok(Some(revision)) => {
                        until = sent + ttl - margin(ttl);
                        held = Some((revision, revision));
                        tracing::info!(lease = %self.name, term = revision, "lease acquired");
                        self.set(Holding::Yes {
                            term: revision,
                            until,
                        });
                    }
                    Ok(None) => {
                        let holder = match self.store.current(&self.name).await {
                            Ok(e) => e.map(|e| e.record.holder),
                            Err(_) => None,
                        };
                        self.set(Holding::No { holder });
                    }
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "cannot reach the lease store");
                        self.set(Holding::No { holder: None });
                    }
                },
                Some((term, revision)) => {
                    let record = LeaseRecord {
                        holder: self.holder.clone(),
                        term,
                    };
                    let renewed = tokio::time::timeout_at(
                        until,
                        self.store.renew(&self.name, &record, revision),
                    )
                    .await;
                    match renewed {
                        Ok(Ok(Some(next))) => {
                            until = sent + ttl - margin(ttl);
                            held = Some((term, next));
                            self.set(Holding::Yes { term, until });
                        }
                        Ok(Ok(None)) => {
                            tracing::warn!(lease = %self.name, term, "lease lost: another holds it");
                            held = None;
                            self.set(Holding::No { holder: None });
                        }
                        Ok(Err(e)) if Instant::now() < until => {
                            tracing::warn!(lease = %self.name, error = %e, "renewing the lease failed; retrying");
                        }
                        Ok(Err(_)) | Err(_) => {
                            tracing::warn!(lease = %self.name, term, "lease lost: not renewed in time");
                            held = None;
                            self.set(Holding::No { holder: None });
                        }
                    }
                }
            }
            // Renew a third of the time to live after the last renewal; retry a failed renewal
            // sooner; contenders look again every third of the time to live.
            let next = match held {
                Some(_) if Instant::now() + every > until => {
                    Instant::now() + Duration::from_millis(200).min(every)
                }
                _ => sent + every,
            };
            let wake = match held {
                // Give the lease up locally at its deadline even if the renewal is still pending.
                Some(_) => next.min(until),
                None => next,
            };
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        if let Some((term, revision)) = held {
            self.set(Holding::No { holder: None });
            match self.store.release(&self.name, revision).await {
                Ok(()) => tracing::info!(lease = %self.name, term, "lease released"),
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "releasing the lease failed; it expires on its own")
                }
            }
        }
    }
}

/// The check a holder makes before each write: the lease is still held here with the term the
/// work began under, locally (deadline) and in the store (the record names this holder and term).
#[derive(Clone, Debug)]
pub struct Fence {
    name: String,
    holder: String,
    store: Arc<dyn LeaseStore>,
    state: watch::Receiver<Holding>,
}

impl Fence {
    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this process holds, as it changes.
    pub fn watch(&self) -> watch::Receiver<Holding> {
        self.state.clone()
    }

    /// The term held now, if any (local knowledge only).
    pub fn term(&self) -> Option<u64> {
        self.state.borrow().term_now()
    }

    /// Passes when the lease is held here under `term`: the local deadline has not passed and the
    /// stored record names this holder with `term`. Otherwise [`StoreError::Fenced`].
    pub async fn check(&self, term: u64) -> Result<(), StoreError> {
        let fenced = |why: String| StoreError::Fenced {
            lease: self.name.clone(),
            term,
            reason: why,
        };
        if self.term() != Some(term) {
            return Err(fenced("this process no longer holds the lease".into()));
        }
        // A lease store that does not answer (a leader election in the cluster) is asked again
        // until the local deadline as it stood when the check began, so a blip does not fail the
        // holder's write and a long outage does not hold it for ever.
        let deadline = match &*self.state.borrow() {
            Holding::Yes { until, .. } => *until,
            Holding::No { .. } => Instant::now(),
        };
        let current = loop {
            match self.store.current(&self.name).await {
                Ok(c) => break c,
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tracing::debug!(lease = %self.name, error = %e, "reading the lease failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) if e.is_retryable() => {
                    return Err(fenced(format!(
                        "the lease store did not answer in time: {e}"
                    )));
                }
                Err(e) => return Err(e),
            }
        };
        match current {
            Some(e) if e.record.holder == self.holder && e.record.term == term => {}
            Some(e) => {
                return Err(fenced(format!(
                    "the lease is held by {} under term {}",
                    e.record.holder, e.record.term
                )));
            }
            None => return Err(fenced("the lease has expired".into())),
        }
        // The read may have taken long (a paused process): look at the deadline again.
        if self.term() != Some(term) {
            return Err(fenced("the lease's local deadline passed".into()));
        }
        Ok(())
    }
}

/// An event store whose appends pass a [`Fence`] first, under the term the holder began with; reads
/// go straight through. The work gated by a lease (the saga runtime) writes through one, so that
/// once its holding ends — lost, expired, or taken by another process — nothing it still has in
/// flight is appended.
#[derive(Debug)]
pub struct FencedStore {
    inner: Arc<dyn EventStore>,
    fence: Fence,
    term: u64,
}

impl FencedStore {
    pub fn new(inner: Arc<dyn EventStore>, fence: Fence, term: u64) -> Self {
        Self { inner, fence, term }
    }
}

#[async_trait]
impl EventStore for FencedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.fence.check(self.term).await?;
        self.inner.append(req).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, max).await
    }

    async fn read_stream_near(
        &self,
        stream: &StreamId,
        from: Version,
        near: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream_near(stream, from, near, max).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError> {
        self.inner.stream_version(stream).await
    }

    /// A snapshot is a cache of what the log already says (every load is checked against the
    /// log), so a former holder's late snapshot cannot change a decision: it passes unfenced.
    async fn save_snapshot(&self, snapshot: crate::Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<crate::Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, filter, max).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    async fn wait_for_append(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.wait_for_append(after, timeout).await
    }

    fn subscribe(
        self: Arc<Self>,
        after: Position,
        filter: Filter,
    ) -> futures::stream::BoxStream<'static, Result<crate::SubscriptionItem, StoreError>> {
        self.inner.clone().subscribe(after, filter)
    }
}

/// Leases kept in memory, for tests of the holders (one process, many [`Lease`]s).
#[derive(Debug)]
pub struct MemoryLeases {
    ttl: Duration,
    inner: std::sync::Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    revision: u64,
    records: std::collections::HashMap<String, (LeaseEntry, Instant)>,
}

impl MemoryLeases {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: std::sync::Mutex::default(),
        }
    }

    fn live(&self, inner: &mut MemoryInner, name: &str) -> Option<LeaseEntry> {
        match inner.records.get(name) {
            Some((e, expires)) if Instant::now() < *expires => Some(e.clone()),
            Some(_) => {
                inner.records.remove(name);
                None
            }
            None => None,
        }
    }
}

#[async_trait]
impl LeaseStore for MemoryLeases {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&self, name: &str, holder: &str) -> Result<Option<u64>, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.live(&mut inner, name).is_some() {
            return Ok(None);
        }
        inner.revision += 1;
        let revision = inner.revision;
        let entry = LeaseEntry {
            record: LeaseRecord {
                holder: holder.into(),
                term: revision,
            },
            revision,
        };
        inner
            .records
            .insert(name.into(), (entry, Instant::now() + self.ttl));
        Ok(Some(revision))
    }

    async fn renew(
        &self,
        name: &str,
        record: &LeaseRecord,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match self.live(&mut inner, name) {
            Some(e) if e.revision == revision => {
                inner.revision += 1;
                let revision = inner.revision;
                let entry = LeaseEntry {
                    record: record.clone(),
                    revision,
                };
                inner
                    .records
                    .insert(name.into(), (entry, Instant::now() + self.ttl));
                Ok(Some(revision))
            }
            _ => Ok(None),
        }
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseEntry>, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.live(&mut inner, name))
    }

    async fn release(&self, name: &str, revision: u64) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.live(&mut inner, name).map(|e| e.revision) == Some(revision) {
            inner.records.remove(name);
        }
        Ok(())
    }
}
