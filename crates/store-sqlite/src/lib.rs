//! The embedded event store: one SQLite file in WAL mode, for a single office server, the CLI and
//! tests.
//!
//! - One writer thread owns the write connection. Appends queue up to it; the ones that queued
//!   together are committed in one `BEGIN IMMEDIATE` transaction (group commit), each checked and
//!   applied on its own behind a savepoint, so every append is still atomic and refused appends write
//!   nothing. A caller is answered only after `COMMIT` returns.
//! - Reads run on a small pool of read connections in `spawn_blocking`. WAL gives each read a
//!   snapshot of committed transactions, and commits are serialised by the writer, so positions are
//!   consecutive and final: nothing ever appears below a position a reader has seen.
//! - Idempotency is durable: the `commands` table maps each command id to its outcome, so a retry is
//!   answered as a duplicate at any time, also after a restart.
//! - `wait_for_append` wakes on a `tokio::sync::watch` of the head that the writer moves after each
//!   commit, and polls the file so that appends by other processes are seen too.
//!
//! Durability depends on [`Synchronous`]; see there.

mod chain;
mod read;
mod schema;
mod writer;

pub use schema::SCHEMA_VERSION;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use funnel_store::chain::{ChainHash, Verification};
use funnel_store::checkpoint::Witness;
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, Filter, Limits, RecordedEvent, Snapshot, StoreError,
};
use funnel_types::{Position, StreamId, Version};
use rusqlite::{Connection, ErrorCode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// How hard SQLite works to make a commit durable before an append is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// `synchronous=FULL`: the write-ahead log is synced to disk at every commit. An acknowledged
    /// append survives a crash of the process and also a power loss or an OS crash.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the log is synced only at checkpoints. An acknowledged append survives a
    /// crash of the process (`kill -9`), but the last appends before a power loss or an OS crash may be
    /// lost. The file stays consistent either way: an append is never half there.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Settings of the embedded store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteOptions {
    /// Durability of each commit.
    pub synchronous: Synchronous,
    /// How long a statement waits for another process's lock before the store reports `Unavailable`.
    pub busy_timeout_ms: u64,
    /// Read connections kept open for reuse.
    pub read_connections: usize,
    /// Most appends committed together in one transaction.
    pub max_batch: usize,
    /// How often `wait_for_append` checks the file for appends by other processes.
    pub poll_interval_ms: u64,
    /// Size limits of appends.
    #[serde(skip)]
    pub limits: Limits,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5_000,
            read_connections: 4,
            max_batch: 64,
            poll_interval_ms: 200,
            limits: Limits::default(),
        }
    }
}

impl SqliteOptions {
    fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

/// Read connections and what it takes to open more.
struct ReadPool {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
}

/// The embedded event store. Dropping the last handle stops the writer thread after the appends it
/// has queued.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    jobs: mpsc::Sender<writer::Job>,
    /// `None` for an in-memory store, whose only connection is the writer's.
    readers: Option<Arc<ReadPool>>,
    head: Arc<watch::Sender<Position>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the store file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating when missing) the store file at `path`. Refuses a file written by a newer
    /// Funnel (a higher schema version) and a SQLite file that is not a Funnel store.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = schema::connect(&path, &options, false)?;
        schema::prepare(&conn, &path)?;
        let readers = Arc::new(ReadPool {
            path: path.clone(),
            options,
            idle: Mutex::new(Vec::new()),
        });
        Self::start(path, options, conn, Some(readers))
    }

    /// A store that lives in memory and disappears when dropped (tests, dry runs).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteOptions::default();
        let path = PathBuf::from(":memory:");
        let conn = schema::connect(&path, &options, true)?;
        schema::prepare(&conn, &path)?;
        Self::start(path, options, conn, None)
    }

    fn start(
        path: PathBuf,
        options: SqliteOptions,
        conn: Connection,
        readers: Option<Arc<ReadPool>>,
    ) -> Result<Self, StoreError> {
        let head = Arc::new(watch::channel(read::head(&conn)?).0);
        let (jobs, queue) = mpsc::channel();
        let writer_head = head.clone();
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("funnel-sqlite-writer".into())
            .spawn(move || writer::run(conn, queue, writer_head, max_batch))
            .map_err(|e| StoreError::Backend {
                backend: "sqlite",
                message: format!("cannot start the writer thread: {e}"),
            })?;
        tracing::debug!(path = %path.display(), ?options, "opened sqlite event store");
        Ok(Self {
            path,
            options,
            jobs,
            readers,
            head,
        })
    }

    /// The file this store lives in (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a read connection: a pooled one on a blocking thread, or the writer's own
    /// connection for an in-memory store.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(pool) => {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || {
                    let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let conn = match idle {
                        Some(c) => c,
                        None => {
                            let c = schema::connect(&pool.path, &pool.options, false)?;
                            c.pragma_update(None, "query_only", true)
                                .map_err(sql_error)?;
                            c
                        }
                    };
                    let result = f(&conn);
                    let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.len() < pool.options.read_connections.max(1) {
                        idle.push(conn);
                    }
                    result
                })
                .await
                .map_err(|e| StoreError::Backend {
                    backend: "sqlite",
                    message: format!("read task failed: {e}"),
                })?
            }
            None => {
                let (tx, rx) = oneshot::channel();
                let job = writer::Job::Run(Box::new(move |conn| {
                    let _ = tx.send(f(conn));
                }));
                self.jobs.send(job).map_err(|_| writer_gone())?;
                rx.await.map_err(|_| writer_gone())?
            }
        }
    }

    /// Reads the head from the file and moves the in-process head forward when another process
    /// appended.
    async fn head_from_file(&self) -> Result<Position, StoreError> {
        let head = self.read(read::head).await?;
        self.head.send_if_modified(|h| {
            let newer = head > *h;
            if newer {
                *h = head;
            }
            newer
        });
        Ok(head)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn chain_head(&self) -> Result<Option<(Position, ChainHash)>, StoreError> {
        self.read(|conn| chain::head(conn).map_err(sql_error)).await
    }

    /// Walks the chain from the commit holding `from` (position 1: the whole log) and the signed
    /// checkpoints, in one read transaction ([`chain::verify`]).
    async fn verify_chain(
        &self,
        from: Position,
        witness: Option<Witness>,
        progress: Box<dyn FnMut(Position) + Send>,
    ) -> Result<Option<Verification>, StoreError> {
        let mut progress = progress;
        self.read(move |conn| chain::verify(conn, from, witness.as_ref(), &mut *progress))
            .await
            .map(Some)
    }

    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.options.limits.check(&req)?;
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(writer::Job::Append(req, tx))
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.clone();
        self.read(move |c| read::read_stream(c, &stream, from, max))
            .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError> {
        let stream = stream.clone();
        self.read(move |c| read::stream_version(c, &stream)).await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        filter.validate()?;
        let filter = filter.clone();
        // The head this process knows of bounds how many rows can match (a hint for allocating).
        let head = *self.head.borrow();
        self.read(move |c| read::read_all(c, after, &filter, max, head))
            .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.head_from_file().await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        funnel_store::check_snapshot(&snapshot)?;
        let (tx, rx) = oneshot::channel();
        let job = writer::Job::Run(Box::new(move |conn| {
            let _ = tx.send(read::save_snapshot(conn, &snapshot));
        }));
        self.jobs.send(job).map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let stream = stream.clone();
        self.read(move |c| read::load_snapshot(c, &stream)).await
    }

    async fn wait_for_append(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let poll = Duration::from_millis(self.options.poll_interval_ms.max(1));
        let mut rx = self.head.subscribe();
        loop {
            if *rx.borrow_and_update() > after {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let tick = (deadline - now).min(poll);
            tokio::select! {
                // The sender lives as long as `self`, so `changed` cannot fail here.
                _ = rx.changed() => {}
                _ = tokio::time::sleep(tick) => {
                    if self.head_from_file().await? > after {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable {
        backend: "sqlite",
        message: "the writer thread has stopped".into(),
    }
}

/// Maps an SQLite error: lock timeouts are `Unavailable` (retry later), the rest `Backend`.
pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable {
            backend: "sqlite",
            message: e.to_string(),
        },
        _ => StoreError::Backend {
            backend: "sqlite",
            message: e.to_string(),
        },
    }
}

/// A time as nanoseconds since the Unix epoch, `None` outside the years 1678 to 2261.
pub(crate) fn time_to_nanos(t: DateTime<Utc>) -> Option<i64> {
    t.timestamp_nanos_opt()
}
