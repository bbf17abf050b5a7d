//! The NATS JetStream backend of the Funnel event store ([`NatsStore`], configured by
//! [`NatsOptions`]). Only this crate knows NATS; its public API has no `async-nats` types.
//!
//! # Layout on the broker
//!
//! One JetStream stream (default name `FUNNEL`), file storage, configurable replicas, no limits (so
//! nothing is ever discarded), `deny_delete` and `deny_purge`, a broker dedup window, and
//! `max_msg_size` equal to the server's `max_payload`. It captures the subjects
//! `<prefix>.log.>`; each event stream `<category>-<id>` has its own subject
//!
//! ```text
//! <prefix>.log.<category>.<id part>        e.g. funnel.log.lead.0190a3b2-1111-7000-8000-000000000000
//! ```
//!
//! Stream names are validated as `[a-z][a-z0-9_]*-[A-Za-z0-9_-]+`, so both tokens are subject-safe,
//! and a category filter is the subject filter `<prefix>.log.<category>.>`.
//!
//! # One message per command
//!
//! All events of one append are one JetStream message (a commit), so an append is atomic. Headers:
//!
//! | header | value |
//! |---|---|
//! | `Nats-Expected-Last-Subject-Sequence` | stream sequence of the stream's last commit, `0` when it must not exist |
//! | `Nats-Msg-Id` | the command id, for broker dedup: only on `Any`/`Exists` appends (see below) |
//! | `Funnel-Chain` | the commit's link in its stream's hash chain, hex (see `src/chain.rs`) |
//!
//! The body is binary, format `FNL3` (big-endian integers, UUIDs as their 16 bytes, UTF-8 strings):
//!
//! ```text
//! "FNL3"  u64 dense stream version of the commit's last event  u16 number of events  16 B command id
//! per event:
//!   u8 flags: bit 0 a 16 B office id follows the schema version; bit 1 the correlation id is the
//!             command id (not stored); bit 2 the causation id is the command id (not stored)
//!   16 B event id  [16 B correlation id]  [16 B causation id]
//!   i64 occurred_at seconds  u32 occurred_at nanoseconds  u16 schema version  [16 B office id]
//!   u8 actor: 0 staff (16 B staff id, u8 length + role wire name), 1 system (u16 length + name)
//!   u16 length + event type  u32 length + payload bytes exactly as given
//! ```
//!
//! Stream, position and recorded time (the broker's timestamp) come from the subject and the
//! message, versions from the body's last version and count. Commits written before `FNL3` have an
//! `FNL2` body (no command id; ids always stored, flags after the schema version) and always a
//! `Nats-Msg-Id` header, which holds their command id; they keep reading and answering retries
//! (`src/body.rs` has both layouts). A message whose body starts with neither marker (or is
//! damaged anywhere) reads as [`StoreError::Corrupt`] at its position.

//! # Positions
//!
//! The global position of event `i` of the commit at stream sequence `s` is `s × 1024 + i` (at most
//! 256 events per append). Positions are strictly increasing and final, but **not consecutive**: they
//! jump at every commit boundary. `head()` is the position of the last event of the last commit.
//!
//! # Concurrency and idempotency
//!
//! An expected version becomes an expected last subject sequence. The (version, sequence) of each
//! stream's last commit is cached after every append, so the common append is a single publish; a
//! stale cache can never admit a wrong append (the broker compares sequences), it only costs a
//! refusal (error 10071), a re-read and a retry or a [`StoreError::WrongExpectedVersion`].
//!
//! A retried command is answered with its original outcome (`duplicate: true`). An `Exact` or
//! `NoStream` append needs no broker dedup (none is asked for, which saves the broker its dedup
//! bookkeeping on the hot path): once the original is stored, the stream's last sequence has moved
//! past the one a retry of the same request expects, so the retry is refused by the broker, and
//! every refused expectation scans the stream's commits for the command id before reporting a
//! conflict, answering from the commit it finds. `ExpectedVersion::Any` and
//! `ExpectedVersion::Exists` are not refused when a command is retried on an existing stream, so
//! those appends send `Nats-Msg-Id` (the broker answers retries within its dedup window) and scan
//! before publishing: **an `Any`/`Exists` append to an existing stream costs a consumer read of
//! every commit of that stream**; use exact expectations on hot paths. A *different* request that
//! reuses a command id with an `Exact` expectation that holds again is not recognised as a retry
//! (as beyond the dedup window before `FNL3`); the engine looks for the command id in the
//! aggregate's stream before deciding, so it never sends one.
//!
//! # Reads and failures
//!
//! `read_stream` and version look-ups use the stream leader's message-get API, one request per commit
//! (a consumer when more than 32 versions are asked for); `read_stream_near` starts at the commit
//! of a position the caller knows (the engine's snapshot or cached state), so reading the events
//! after it costs what they are, not what the stream is. `read_all` uses a short-lived ephemeral pull consumer from sequence
//! `after / 1024` with a subject filter per category. Subscriptions are the generic catch-up
//! subscription over `read_all`, woken by a core NATS subscription on `<prefix>.log.>`.
//!
//! On a cluster the server places a reading consumer on any replica of the stream, and a replica
//! that is catching up (after a restart, say) knows only a prefix of the log. Every consumer read is
//! therefore bounded below by the stream sequence the leader reported first: a consumer that runs
//! dry before it, and the leader holds a matching message it did not deliver, is replaced by a new
//! one resuming after the last delivered message (a few times, then `Unavailable`).
//!
//! A publish that no server answers (the stream's leader is being elected, or its interest in the
//! subject has not reached our server yet) stored nothing and is sent again a few times.
//!
//! While the client is disconnected every call fails at once with [`StoreError::Unavailable`]; every
//! call is bounded by a few request timeouts; the client reconnects on its own.

mod append;
mod body;
mod buckets;
mod chain;
mod checkpoints;
mod codec;
mod connect;
mod credentials;
mod keys;
mod lease;
mod read;
mod replicas;
mod snapshots;

pub use buckets::{
    CAS_ATTEMPTS, PLACEMENT_PATIENCE, bucket_context, cas_backoff, create_bucket_patiently,
    write_if_unchanged,
};
pub use checkpoints::{NatsCheckpoints, checkpoints_stream};
pub use connect::{MIN_SERVER_VERSION, check_server_version, parse_server_version, server_addrs};
pub use credentials::{NatsCredentials, credentials_bucket};
pub use keys::{KeyRecord, NatsKeyBucket, keys_bucket};
pub use lease::{NatsLeases, lease_bucket};
pub use replicas::{
    ReplicaMismatch, ReplicaProgress, default_replicas, set_replicas, stream_replicas,
};

use async_trait::async_trait;
use funnel_store::chain::{ChainHash, Verification};
use funnel_store::checkpoint::Witness;
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, Filter, Limits, RecordedEvent, Snapshot, StoreError,
};
use funnel_types::{Position, StreamId, Version};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

/// Settings of the JetStream backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// Server URL, or several separated by commas (cluster members).
    pub url: String,
    /// Name of the JetStream stream holding the log.
    pub stream_name: String,
    /// First subject tokens; the log lives under `<subject_prefix>.log.>`.
    pub subject_prefix: String,
    /// JetStream replicas of the stream (1, or 3/5 on a cluster), used when the stream is created;
    /// an existing stream keeps its own and a difference is reported ([`NatsStore::replica_mismatch`],
    /// and a warning), see [`set_replicas`]. [`default_replicas`] picks it from the URL.
    pub replicas: usize,
    /// The broker's dedup window (idempotency beyond it is Funnel's own).
    pub duplicate_window: Duration,
    /// How long connecting (and waiting for JetStream to be ready) may take.
    pub connect_timeout: Duration,
    /// How long one request may wait for its answer.
    pub request_timeout: Duration,
    /// Create the stream without `deny_delete` and `deny_purge`, so that single messages can be
    /// deleted: only for tests of the hash chain, which must show that a deleted message is found.
    /// Funnel's own configuration never sets it, and an existing stream that denies deletes
    /// cannot be changed to allow them.
    pub allow_message_deletes: bool,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream_name: "FUNNEL".into(),
            subject_prefix: "funnel".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(3),
            allow_message_deletes: false,
        }
    }
}

impl NatsOptions {
    /// Options for the server at `url`, defaults otherwise.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Refuses settings the broker would refuse or that would make subjects ambiguous.
    pub fn validate(&self) -> Result<(), StoreError> {
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token_ok(&self.stream_name) {
            return Err(StoreError::InvalidRequest(format!(
                "stream name `{}` must match [A-Za-z0-9_-]+",
                self.stream_name
            )));
        }
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(StoreError::InvalidRequest(format!(
                "subject prefix `{}` must be dot-separated [A-Za-z0-9_-]+ tokens",
                self.subject_prefix
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(StoreError::InvalidRequest(format!(
                "replicas must be 1 to 5, not {}",
                self.replicas
            )));
        }
        if self.duplicate_window.is_zero()
            || self.request_timeout.is_zero()
            || self.connect_timeout.is_zero()
        {
            return Err(StoreError::InvalidRequest(
                "duplicate window and timeouts must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Most streams whose last commit is remembered; the cache is cleared when it grows past this.
const CACHE_CAPACITY: usize = 100_000;

/// Request timeouts one store operation may take in all.
const OPERATION_TIMEOUTS: u32 = 4;

/// The JetStream event store. Cheap to share behind an `Arc`; one connection, reconnecting on its own.
pub struct NatsStore {
    opts: NatsOptions,
    limits: Limits,
    client: async_nats::Client,
    context: async_nats::jetstream::Context,
    stream: async_nats::jetstream::stream::Stream<()>,
    max_payload: usize,
    /// The stream's replicas on the broker, when they differ from the setting.
    replica_mismatch: Option<ReplicaMismatch>,
    /// Stream → version, stream sequence and chain link of its last commit, as last seen. A hint, never trusted
    /// to admit an append on its own.
    last_commits: Mutex<LastCommits>,
    /// Keys the cache of last commits (see [`LastCommits`]).
    cache_keys: RandomState,
    /// The stream of snapshots beside the log, once opened (see `snapshots.rs`).
    snapshots: tokio::sync::OnceCell<async_nats::jetstream::stream::Stream<()>>,
    /// The digest of the log as far as this process computed it (see `chain.rs`); held while
    /// extending it.
    digest_tip: tokio::sync::Mutex<chain::DigestTip>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("url", &self.opts.url)
            .field("stream_name", &self.opts.stream_name)
            .field("subject_prefix", &self.opts.subject_prefix)
            .finish_non_exhaustive()
    }
}

impl NatsStore {
    /// Connects and prepares the stream. Fails with [`StoreError::Unavailable`] when the server cannot
    /// be reached, [`StoreError::UnsupportedServer`] below 2.10.0, and a clear
    /// [`StoreError::Backend`] when JetStream is not enabled.
    pub async fn connect(opts: NatsOptions) -> Result<Self, StoreError> {
        let c = connect::connect(&opts).await?;
        Ok(Self {
            opts,
            limits: Limits::default(),
            client: c.client,
            context: c.context,
            stream: c.stream,
            max_payload: c.max_payload,
            replica_mismatch: c.replicas,
            last_commits: Mutex::new(LastCommits::default()),
            cache_keys: RandomState::new(),
            snapshots: tokio::sync::OnceCell::new(),
            digest_tip: tokio::sync::Mutex::new(chain::DigestTip::default()),
        })
    }

    /// Whether the log stream existed with other replicas than [`NatsOptions::replicas`] (it keeps
    /// its own; [`set_replicas`] changes them).
    pub fn replica_mismatch(&self) -> Option<&ReplicaMismatch> {
        self.replica_mismatch.as_ref()
    }

    pub fn options(&self) -> &NatsOptions {
        &self.opts
    }

    /// The version of the server the client is connected to.
    pub fn server_version(&self) -> String {
        self.client.server_info().version
    }

    /// Fails at once when the client is not connected, instead of queueing behind a reconnect.
    fn ensure_connected(&self) -> Result<(), StoreError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(connect::unavailable(format!(
                "not connected to {} ({state:?})",
                self.opts.url
            ))),
        }
    }

    /// A failed request: unavailable when the server did not answer or the connection is down.
    fn request_failed(
        &self,
        what: &str,
        err: impl std::fmt::Display,
        transient: bool,
    ) -> StoreError {
        let text = format!("{what}: {err}");
        let connected = matches!(
            self.client.connection_state(),
            async_nats::connection::State::Connected
        );
        if transient || !connected || connect::looks_transient(&text) {
            connect::unavailable(text)
        } else {
            connect::backend(text)
        }
    }

    /// The time one store operation may take from now: a few request timeouts.
    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.opts.request_timeout * OPERATION_TIMEOUTS
    }

    /// Runs one store operation, refusing at once while disconnected and bounding its total time.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.bounded_until(self.deadline(), op).await
    }

    /// [`NatsStore::bounded`] for an operation that must end by `deadline`.
    async fn bounded_until<T>(
        &self,
        deadline: tokio::time::Instant,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.ensure_connected()?;
        match tokio::time::timeout_at(deadline, op).await {
            Ok(result) => result,
            Err(_) => Err(connect::unavailable(format!(
                "no answer from {} within {:?}",
                self.opts.url,
                self.opts.request_timeout * OPERATION_TIMEOUTS
            ))),
        }
    }

    /// The cache key of `stream`.
    fn cache_key(&self, stream: &StreamId) -> u64 {
        self.cache_keys.hash_one(stream.as_str())
    }

    fn cached(&self, stream: &StreamId) -> Option<Tip> {
        let key = self.cache_key(stream);
        let cache = self.last_commits.lock().unwrap_or_else(|e| e.into_inner());
        cache.entries.get(&key).copied()
    }

    fn remember(&self, stream: &StreamId, last: Option<Tip>) {
        let key = self.cache_key(stream);
        let mut cache = self.last_commits.lock().unwrap_or_else(|e| e.into_inner());
        match last {
            Some(entry) => {
                if cache.entries.len() >= CACHE_CAPACITY {
                    cache.entries.clear();
                }
                // Never move an entry backwards: a slower concurrent reader may report an older commit.
                let known = cache.entries.entry(key).or_insert(entry);
                if entry.seq >= known.seq {
                    *known = entry;
                }
            }
            None => {
                cache.entries.remove(&key);
            }
        }
    }

    fn forget(&self, stream: &StreamId) {
        let key = self.cache_key(stream);
        let mut cache = self.last_commits.lock().unwrap_or_else(|e| e.into_inner());
        cache.entries.remove(&key);
    }
}

/// A stream's last commit: its version, stream sequence and chain link (`chain.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tip {
    pub version: Version,
    pub seq: u64,
    pub link: ChainHash,
}

/// The cache of last commits, keyed by a keyed 64-bit hash of the stream name rather than the name
/// (no name to clone in, none to compare against on a look-up). Two streams whose names hash alike
/// would share an entry, which is harmless: an entry only chooses the expected sequence of a
/// publish, and the broker refuses a sequence that is not the stream's own (sequences are unique
/// across the log), after which the stream is read from the leader.
#[derive(Default)]
struct LastCommits {
    entries: HashMap<u64, Tip, BuildHasherDefault<KeyHasher>>,
}

/// Hashes the cache's keys, which are hashes already, to themselves.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[async_trait]
impl EventStore for NatsStore {
    fn backend(&self) -> &'static str {
        connect::BACKEND
    }

    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.limits.check(&req)?;
        self.append_checked(req).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.bounded(self.read_stream_inner(stream, from, max))
            .await
    }

    async fn read_stream_near(
        &self,
        stream: &StreamId,
        from: Version,
        near: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.bounded(self.read_stream_near_inner(stream, from, near, max))
            .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError> {
        self.bounded(async { Ok(self.last_commit(stream).await?.map(|t| t.version)) })
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        filter.validate()?;
        self.bounded(self.read_all_inner(after, filter, max)).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.bounded(self.head_inner()).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        funnel_store::check_snapshot(&snapshot)?;
        self.bounded(self.save_snapshot_inner(snapshot)).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.bounded(self.load_snapshot_inner(stream)).await
    }

    async fn wait_for_append(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.ensure_connected()?;
        self.wait_for_append_inner(after, timeout).await
    }

    /// The running digest of the whole log and the last position it covers (see `chain.rs`).
    async fn chain_head(&self) -> Result<Option<(Position, ChainHash)>, StoreError> {
        self.ensure_connected()?;
        self.chain_head_inner().await
    }

    /// Walks the whole log, whatever `from` (see `chain.rs`).
    async fn verify_chain(
        &self,
        from: Position,
        witness: Option<Witness>,
        mut progress: Box<dyn FnMut(Position) + Send>,
    ) -> Result<Option<Verification>, StoreError> {
        let _ = from;
        self.ensure_connected()?;
        self.verify_inner(witness, &mut *progress).await.map(Some)
    }
}
