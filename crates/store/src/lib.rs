//! The event store contract: the one interface every backend (embedded SQLite, NATS JetStream)
//! implements, its error type, and the conformance suite every backend runs unchanged.
//!
//! The model mirrors EventStoreDB/KurrentDB: a stream per aggregate instance with a dense version,
//! an expected-revision check on append, one global order of all events (`$all`) with positions, and
//! catch-up subscriptions that read history and then follow the live tail.
//!
//! Contract, in short:
//! - [`EventStore::append`] writes all events of one command atomically or not at all. The first
//!   event of a new stream has version 1; versions are dense. Positions are strictly increasing in
//!   read-all order and final: once a reader has seen position `p`, no event ever appears at or below
//!   `p` later. The events of one append have consecutive positions. (The embedded backend's
//!   positions are consecutive across appends too; JetStream's are derived from the message sequence
//!   and skip numbers between commits, see `funnel-store-nats`.)
//! - A retried append with the same [`CommandId`] on the same stream never appends twice: the store
//!   answers with the original outcome marked `duplicate`, within and beyond any broker dedup window,
//!   and across restarts.
//! - A refused expectation is [`StoreError::WrongExpectedVersion`] naming the actual version.
//! - Reading a stream that does not exist gives no events and version `None`; it is not an error.

pub mod chain;
pub mod checkpoint;
pub mod conformance;
mod error;
pub mod files;
pub mod keyfile;
pub mod lease;
mod subscription;

pub use error::StoreError;
pub use subscription::{SubscriptionItem, generic_subscribe};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_types::{
    Actor, CommandId, CorrelationId, EventId, ExpectedVersion, Metadata, OfficeId, Position,
    StreamId, Version,
};
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;

/// Size limits every backend enforces the same way (checked by [`Limits::check`] before any I/O).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one event, in bytes.
    pub max_event_bytes: usize,
    /// Most events one append may carry.
    pub max_events_per_append: usize,
    /// Largest total payload of one append, in bytes (must fit one JetStream message).
    pub max_append_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            max_events_per_append: 256,
            max_append_bytes: 768 * 1024,
        }
    }
}

impl Limits {
    /// Refuses requests that break the limits or are malformed, with a clear error.
    pub fn check(&self, req: &AppendRequest) -> Result<(), StoreError> {
        if req.events.is_empty() {
            return Err(StoreError::InvalidRequest(
                "an append must carry at least one event".into(),
            ));
        }
        if req.events.len() > self.max_events_per_append {
            return Err(StoreError::TooLarge {
                what: "events in one append",
                size: req.events.len(),
                limit: self.max_events_per_append,
            });
        }
        let mut total = 0;
        for e in &req.events {
            if e.payload.len() > self.max_event_bytes {
                return Err(StoreError::TooLarge {
                    what: "event payload bytes",
                    size: e.payload.len(),
                    limit: self.max_event_bytes,
                });
            }
            if e.event_type.is_empty() || e.event_type.len() > 128 {
                return Err(StoreError::InvalidRequest(format!(
                    "event type `{}` must be 1 to 128 characters",
                    e.event_type
                )));
            }
            total += e.payload.len();
        }
        if total > self.max_append_bytes {
            return Err(StoreError::TooLarge {
                what: "append payload bytes",
                size: total,
                limit: self.max_append_bytes,
            });
        }
        Ok(())
    }
}

/// An event proposed for appending: everything but the facts the store assigns (stream, version,
/// position, recorded time, command id).
#[derive(Clone, Debug, PartialEq)]
pub struct ProposedEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u16,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub office: Option<OfficeId>,
    pub correlation_id: CorrelationId,
    pub causation_id: uuid::Uuid,
    /// The payload as JSON bytes.
    pub payload: Bytes,
}

/// All events of one command, for one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub command_id: CommandId,
    pub events: Vec<ProposedEvent>,
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stream: StreamId,
    pub first_version: Version,
    pub last_version: Version,
    pub first_position: Position,
    pub last_position: Position,
    /// True when this command id had already been appended: nothing was written this time and the
    /// versions and positions are those of the original append.
    pub duplicate: bool,
}

/// A stored event: its envelope metadata and its JSON payload, not yet decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub meta: Metadata,
    pub payload: Bytes,
}

/// A snapshot of one stream's aggregate state, kept beside the log in the log's own store (SQLite:
/// the `snapshots` table of the store file; JetStream: a key-value bucket beside the log stream).
///
/// The store keeps the latest snapshot per stream and never interprets `data`: a snapshot is a
/// cache of a fold of the stream's first `version` events, so whoever reads it validates it
/// against the stream (and its own format) and ignores it when it does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub stream: StreamId,
    /// The stream version the state reflects (the fold of events 1..=`version`).
    pub version: Version,
    pub data: Bytes,
}

/// The largest snapshot a store keeps (one JetStream message with room for headers). A larger one
/// is refused with [`StoreError::TooLarge`] before any I/O.
pub const MAX_SNAPSHOT_BYTES: usize = 768 * 1024;

/// Refuses a snapshot the stores cannot keep.
pub fn check_snapshot(snapshot: &Snapshot) -> Result<(), StoreError> {
    if snapshot.data.len() > MAX_SNAPSHOT_BYTES {
        return Err(StoreError::TooLarge {
            what: "snapshot bytes",
            size: snapshot.data.len(),
            limit: MAX_SNAPSHOT_BYTES,
        });
    }
    if snapshot.version == Version(0) {
        return Err(StoreError::InvalidRequest(
            "a snapshot reflects at least one event (version 1 or later)".into(),
        ));
    }
    Ok(())
}

/// Which events a read-all or subscription returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    #[default]
    All,
    /// Only streams of these categories (the part of the stream name before the first `-`).
    Categories(Vec<String>),
}

impl Filter {
    pub fn category(cat: impl Into<String>) -> Self {
        Filter::Categories(vec![cat.into()])
    }

    pub fn matches(&self, stream: &StreamId) -> bool {
        match self {
            Filter::All => true,
            Filter::Categories(cats) => cats.iter().any(|c| c == stream.category()),
        }
    }

    /// Refuses category names that are not valid stream categories.
    pub fn validate(&self) -> Result<(), StoreError> {
        if let Filter::Categories(cats) = self {
            if cats.is_empty() {
                return Err(StoreError::InvalidRequest(
                    "a category filter needs at least one category".into(),
                ));
            }
            for c in cats {
                if !funnel_types::valid_category(c) {
                    return Err(StoreError::InvalidRequest(format!(
                        "`{c}` is not a valid category (expected [a-z][a-z0-9_]*)"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The event store. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
    /// Short name of the backend (`sqlite`, `nats`), for logs and benchmarks.
    fn backend(&self) -> &'static str;

    /// Appends all events of one command atomically, checking `expected` first.
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Events of one stream with version ≥ `from`, in version order, at most `max`.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The same events as [`EventStore::read_stream`], given `near`: the position of one of the
    /// stream's events at or before version `from` (e.g. the last one a caller has folded).
    /// Backends whose reads start from the stream's beginning may start there instead; a hint
    /// that is not such a position must still give the right events (backends check it and read
    /// the whole stream then). The default ignores the hint.
    async fn read_stream_near(
        &self,
        stream: &StreamId,
        from: Version,
        near: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let _ = near;
        self.read_stream(stream, from, max).await
    }

    /// The stream's current version, `None` when it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError>;

    /// Events with position > `after` that pass `filter`, in position order, at most `max`.
    async fn read_all(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Position of the last event in the log, [`Position::START`] when empty.
    async fn head(&self) -> Result<Position, StoreError>;

    /// Returns once the head is beyond `after`, or when `timeout` passes (then `Ok(false)`).
    async fn wait_for_append(&self, after: Position, timeout: Duration)
    -> Result<bool, StoreError>;

    /// Keeps `snapshot` as the stream's latest snapshot, unless the store already holds one of a
    /// higher version for that stream (then nothing changes). Snapshots are a cache: a backend
    /// that keeps none may accept and drop them (the default), and readers rebuild from the log.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(&snapshot)?;
        Ok(())
    }

    /// The stream's latest snapshot, if the store keeps one.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let _ = stream;
        Ok(None)
    }

    /// The chain's head ([`chain`]): the last position of the last commit recorded and its hash.
    /// `None` when the log has no commit chained yet, or the backend keeps no chain (the default).
    async fn chain_head(&self) -> Result<Option<(Position, chain::ChainHash)>, StoreError> {
        Ok(None)
    }

    /// Walks the log and its hash chain from the commit holding `from` and, given a `witness`,
    /// checks its signed checkpoints against the recorded chain ([`chain`], [`checkpoint`]).
    /// `progress` is called with the last position checked. `None`: the backend keeps no chain
    /// (the default).
    async fn verify_chain(
        &self,
        from: Position,
        witness: Option<checkpoint::Witness>,
        progress: Box<dyn FnMut(Position) + Send>,
    ) -> Result<Option<chain::Verification>, StoreError> {
        let _ = (from, witness, progress);
        Ok(None)
    }

    /// A catch-up subscription: every event after `after` that passes `filter`, then a
    /// [`SubscriptionItem::CaughtUp`] marker once the head is reached, then the live tail. Never ends
    /// on its own; an error ends it.
    fn subscribe(
        self: Arc<Self>,
        after: Position,
        filter: Filter,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        generic_subscribe(self, after, filter)
    }
}

/// Reads a whole stream from its first version.
pub async fn read_whole_stream(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::new();
    let mut from = Version::FIRST;
    loop {
        let batch = store.read_stream(stream, from, 1024).await?;
        let n = batch.len();
        if let Some(last) = batch.last() {
            from = last.meta.version.next();
        }
        out.extend(batch);
        if n < 1024 {
            return Ok(out);
        }
    }
}
