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
//! | `Nats-Msg-Id` | the command id: broker dedup within the window, and the durable command id (JetStream stores the header with the message, on every read path) |
//! | `Nats-Expected-Last-Subject-Sequence` | stream sequence of the stream's last commit, `0` when it must not exist |
//!
//! The body is binary, format `FNL2` (big-endian integers, UUIDs as their 16 bytes, UTF-8 strings):
//!
//! ```text
//! "FNL2"  u64 dense stream version of the commit's last event  u16 number of events
//! per event:
//!   16 B event id  16 B correlation id  16 B causation id
//!   i64 occurred_at seconds  u32 occurred_at nanoseconds  u16 schema version
//!   u8 flags (bit 0: a 16 B office id follows; other bits must be 0)  [16 B office id]
//!   u8 actor: 0 staff (16 B staff id, u8 length + role wire name), 1 system (u16 length + name)
//!   u16 length + event type  u32 length + payload bytes exactly as given
//! ```
//!
//! Stream, position and recorded time (the broker's timestamp) come from the subject and the
//! message, versions from the body's last version and count, the command id from `Nats-Msg-Id`. A
//! message whose body does not start with `FNL2` (or is damaged anywhere) reads as
//! [`StoreError::Corrupt`] at its position.

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
//! A retried command is answered with its original outcome (`duplicate: true`): within the dedup
//! window the broker says so; beyond it, or after a restart, every refused expectation scans the
//! headers of the stream's commits for a `Nats-Msg-Id` equal to the command id before reporting a
//! conflict, and reads the body of the commit it finds to answer with its versions.
//! `ExpectedVersion::Any` and `ExpectedVersion::Exists` are not refused when a command is retried on
//! an existing stream, so those appends scan before publishing: **an `Any`/`Exists` append to an
//! existing stream costs a header-only consumer read of every commit of that stream**; use exact
//! expectations on hot paths.
//!
//! # Reads and failures
//!
//! `read_stream` and version look-ups use the stream leader's message-get API, one request per commit
//! (aggregate streams are short). `read_all` uses a short-lived ephemeral pull consumer from sequence
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
mod codec;
mod connect;
mod read;

pub use connect::{MIN_SERVER_VERSION, check_server_version, parse_server_version};

use async_trait::async_trait;
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, Filter, Limits, RecordedEvent, StoreError,
};
use funnel_types::{Position, StreamId, Version};
use std::collections::HashMap;
use std::future::Future;
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
    /// JetStream replicas of the stream (1, or 3/5 on a cluster).
    pub replicas: usize,
    /// The broker's dedup window (idempotency beyond it is Funnel's own).
    pub duplicate_window: Duration,
    /// How long connecting (and waiting for JetStream to be ready) may take.
    pub connect_timeout: Duration,
    /// How long one request may wait for its answer.
    pub request_timeout: Duration,
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

/// The JetStream event store. Cheap to share behind an `Arc`; one connection, reconnecting on its own.
pub struct NatsStore {
    opts: NatsOptions,
    limits: Limits,
    client: async_nats::Client,
    context: async_nats::jetstream::Context,
    stream: async_nats::jetstream::stream::Stream<()>,
    max_payload: usize,
    /// Stream → (version, stream sequence) of its last commit, as last seen. A hint, never trusted
    /// to admit an append on its own.
    last_commits: Mutex<HashMap<StreamId, (Version, u64)>>,
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
            last_commits: Mutex::new(HashMap::new()),
        })
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

    /// Runs one store operation, refusing at once while disconnected and bounding its total time.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.ensure_connected()?;
        let limit = self.opts.request_timeout * 4;
        match tokio::time::timeout(limit, op).await {
            Ok(result) => result,
            Err(_) => Err(connect::unavailable(format!(
                "no answer from {} within {limit:?}",
                self.opts.url
            ))),
        }
    }

    fn cached(&self, stream: &StreamId) -> Option<(Version, u64)> {
        self.last_commits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .copied()
    }

    fn remember(&self, stream: &StreamId, last: Option<(Version, u64)>) {
        let mut cache = self.last_commits.lock().unwrap_or_else(|e| e.into_inner());
        match last {
            Some(entry) => {
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                // Never move an entry backwards: a slower concurrent reader may report an older commit.
                // An existing entry is updated in place, without cloning the stream name.
                match cache.get_mut(stream) {
                    Some(known) => {
                        if entry.1 >= known.1 {
                            *known = entry;
                        }
                    }
                    None => {
                        cache.insert(stream.clone(), entry);
                    }
                }
            }
            None => {
                cache.remove(stream);
            }
        }
    }

    fn forget(&self, stream: &StreamId) {
        self.last_commits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
    }
}

#[async_trait]
impl EventStore for NatsStore {
    fn backend(&self) -> &'static str {
        connect::BACKEND
    }

    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.limits.check(&req)?;
        self.bounded(self.append_inner(req)).await
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

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError> {
        self.bounded(async { Ok(self.last_commit(stream).await?.map(|(v, _)| v)) })
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

    async fn wait_for_append(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.ensure_connected()?;
        self.wait_for_append_inner(after, timeout).await
    }
}
