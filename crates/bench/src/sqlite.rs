//! The SQLite measurements: raw rusqlite inserts and a raw `SELECT` scan against `SqliteStore::append`
//! and `read_all`, on two files in one temporary directory next to the target path (same file
//! system, same settings: WAL, `synchronous=FULL`).
//!
//! The raw writer mirrors the store's shape without its bookkeeping: one thread owns the connection
//! and the `in_flight` workers queue rows to it, each waiting for its own commit. It inserts the same
//! columns and values into a plain table (rowid key, no unique indexes, no stream or command tables).
//! It runs twice: one row per transaction (the baseline the project's target is stated against), and
//! group commit of up to `SqliteOptions::max_batch` queued rows per transaction (what the store does,
//! so the storage ceiling for Funnel's path).

use crate::workload::{self, Plan, Progress, join_all, rate, with_progress};
use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use funnel_store::EventStore;
use funnel_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What the SQLite run measured.
#[derive(Debug)]
pub struct SqliteFigures {
    pub raw_append_per_s: f64,
    pub raw_group_commit_append_per_s: f64,
    pub funnel_append_per_s: f64,
    pub raw_read_all_per_s: f64,
    pub funnel_read_all_per_s: f64,
    pub max_batch: usize,
}

/// The plain table of the raw baseline: the store's event columns, nothing else.
const RAW_TABLE: &str = "(
    position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,
    event_id BLOB NOT NULL, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, actor TEXT NOT NULL, office BLOB,
    command_id BLOB NOT NULL, correlation_id BLOB NOT NULL, causation_id BLOB NOT NULL,
    payload BLOB NOT NULL)";

/// The columns both scans read, in the store's order.
const COLUMNS: &str = "position, stream, version, event_id, event_type, schema_version, occurred_at, \
     recorded_at, actor, office, command_id, correlation_id, causation_id, payload";

/// One row as a worker hands it to the raw writer: the values that differ per event.
struct RawRow {
    stream: String,
    version: i64,
    occurred_at: i64,
    ids: [[u8; 16]; 4],
}

type RawJob = (RawRow, oneshot::Sender<Result<(), String>>);

/// The values every row shares.
#[derive(Clone)]
struct Shared {
    actor_json: String,
    office: [u8; 16],
    payload: Bytes,
}

/// Runs every SQLite measurement in a temporary directory beside `target`, removed afterwards.
pub async fn run(
    target: &Path,
    plan: &Plan,
    payload_bytes: usize,
    sealed: bool,
    progress: Progress<'_>,
) -> anyhow::Result<SqliteFigures> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The store's directory may not exist yet (a fresh `--store` path), as `funnel demo` allows.
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("create the directory {}", parent.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(".funnel-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("create a temporary directory in {}", parent.display()))?;
    let raw_path = dir.path().join("raw.sqlite");
    let funnel_path = dir.path().join("funnel.sqlite");
    let options = SqliteOptions::default();
    if options.synchronous != Synchronous::Full {
        return Err(anyhow!(
            "the store's default is no longer synchronous=FULL; update the raw baseline to match"
        ));
    }
    let shared = Shared {
        actor_json: serde_json_actor()?,
        office: *uuid::Uuid::now_v7().as_bytes(),
        payload: workload::payload(payload_bytes),
    };

    let raw_append_per_s = raw_append(
        &raw_path,
        "raw_events",
        1,
        plan,
        &shared,
        "sqlite raw append (1 row/txn)",
        progress,
    )
    .await?;
    let raw_group_commit_append_per_s = raw_append(
        &raw_path,
        "raw_events_grouped",
        options.max_batch,
        plan,
        &shared,
        "sqlite raw append (group commit)",
        progress,
    )
    .await?;

    let mut store: Arc<dyn EventStore> = Arc::new(
        SqliteStore::open_with(&funnel_path, options)
            .with_context(|| format!("open {}", funnel_path.display()))?,
    );
    if sealed {
        let keys = funnel_privacy::SqliteKeyStore::open(
            &dir.path().join("funnel.sqlite.keys"),
            rand::random(),
        )
        .context("open the benchmark's key file")?;
        store = Arc::new(funnel_privacy::SealedStore::new(store, Arc::new(keys)));
    }
    let funnel_append_per_s = workload::funnel_append(
        store.clone(),
        plan,
        payload_bytes,
        sealed,
        "sqlite funnel append",
        progress,
    )
    .await?;

    // Both files are checkpointed first, so that both scans read the database file, not the log.
    for path in [&raw_path, &funnel_path] {
        raw_connection(path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let (mut raw_read_all_per_s, mut funnel_read_all_per_s) = (0.0f64, 0.0f64);
    for _ in 0..workload::READ_ROUNDS {
        let raw = raw_scan(&raw_path, plan.events, payload_bytes, progress).await?;
        raw_read_all_per_s = raw_read_all_per_s.max(raw);
        let funnel = workload::funnel_read_all(
            store.as_ref(),
            plan.events,
            payload_bytes,
            "sqlite funnel read-all",
            progress,
        )
        .await?;
        funnel_read_all_per_s = funnel_read_all_per_s.max(funnel);
    }
    drop(store);
    dir.close()
        .context("remove the benchmark's temporary directory")?;
    Ok(SqliteFigures {
        raw_append_per_s,
        raw_group_commit_append_per_s,
        funnel_append_per_s,
        raw_read_all_per_s,
        funnel_read_all_per_s,
        max_batch: options.max_batch,
    })
}

/// The actor column as the store writes it (JSON text).
fn serde_json_actor() -> anyhow::Result<String> {
    serde_json::to_string(&workload::actor()).context("encode the benchmark actor")
}

/// Opens a raw connection with the store's settings: WAL and `synchronous=FULL`.
fn raw_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("open {}", path.display()))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "WAL mode refused: {mode}");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Raw inserts through one writer thread that commits up to `max_batch` queued rows per
/// transaction. Returns rows per second.
async fn raw_append(
    path: &Path,
    table: &'static str,
    max_batch: usize,
    plan: &Plan,
    shared: &Shared,
    phase: &str,
    progress: Progress<'_>,
) -> anyhow::Result<f64> {
    let conn = raw_connection(path)?;
    conn.execute_batch(&format!("CREATE TABLE {table} {RAW_TABLE};"))?;
    let (jobs, queue) = mpsc::channel::<RawJob>();
    let writer_shared = shared.clone();
    let writer = std::thread::Builder::new()
        .name("funnel-bench-raw-writer".into())
        .spawn(move || raw_writer(conn, table, queue, max_batch.max(1), &writer_shared))
        .context("start the raw writer thread")?;

    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..plan.workers {
        let appends = plan.appends_of(w);
        let (jobs, done) = (jobs.clone(), done.clone());
        set.spawn(async move {
            for (s, version) in appends {
                let at = chrono::Utc::now();
                let ids = workload::Ids::new(at);
                let command = *ids.command_id.0.as_bytes();
                let row = RawRow {
                    stream: format!("{}-{s}", workload::CATEGORY),
                    version: version as i64,
                    occurred_at: at.timestamp_nanos_opt().unwrap_or(0),
                    // The same ids as Funnel's side: event, command, correlation, causation.
                    ids: [*ids.event_id.0.as_bytes(), command, command, command],
                };
                let (tx, rx) = oneshot::channel();
                jobs.send((row, tx))
                    .map_err(|_| anyhow!("the raw writer stopped"))?;
                rx.await
                    .map_err(|_| anyhow!("the raw writer stopped"))?
                    .map_err(|e| anyhow!("raw insert: {e}"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    drop(jobs);
    let total = plan.events as u64;
    with_progress(phase, total, &done, progress, join_all(set)).await?;
    let took = started.elapsed();
    writer
        .join()
        .map_err(|_| anyhow!("the raw writer thread panicked"))?;
    Ok(rate(plan.events, took))
}

/// The raw writer thread: takes the first queued row, up to `max_batch - 1` more that are already
/// queued, and commits them in one transaction; answers each caller after `COMMIT`.
fn raw_writer(
    conn: Connection,
    table: &str,
    queue: mpsc::Receiver<RawJob>,
    max_batch: usize,
    shared: &Shared,
) {
    let insert = format!(
        "INSERT INTO {table} (stream, version, event_id, event_type, schema_version, occurred_at, \
         recorded_at, actor, office, command_id, correlation_id, causation_id, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    );
    let mut batch: Vec<RawJob> = Vec::with_capacity(max_batch);
    while let Ok(job) = queue.recv() {
        batch.push(job);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let recorded_at = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            let mut stmt = conn.prepare_cached(&insert)?;
            for (row, _) in &batch {
                let [event_id, command_id, correlation_id, causation_id] = &row.ids;
                stmt.execute(params![
                    row.stream,
                    row.version,
                    &event_id[..],
                    workload::EVENT_TYPE,
                    1,
                    row.occurred_at,
                    recorded_at,
                    shared.actor_json,
                    &shared.office[..],
                    &command_id[..],
                    &correlation_id[..],
                    &causation_id[..],
                    &shared.payload[..],
                ])?;
            }
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        })();
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let result = result.map_err(|e| e.to_string());
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

/// The raw scan: one `SELECT` of the store's columns over the one-row-per-transaction table, every
/// column looked at (no decoding into Funnel types). Returns rows per second.
async fn raw_scan(
    path: &Path,
    events: usize,
    payload_bytes: usize,
    progress: Progress<'_>,
) -> anyhow::Result<f64> {
    let path = path.to_path_buf();
    let done = Arc::new(AtomicU64::new(0));
    let worker_done = done.clone();
    let started = Instant::now();
    let work = async move {
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let conn = raw_connection(&path)?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM raw_events ORDER BY position"
            ))?;
            let mut rows = stmt.query([])?;
            let (mut count, mut bytes, mut checksum) = (0usize, 0usize, 0u64);
            while let Some(row) = rows.next()? {
                for i in 0..14 {
                    checksum = checksum.wrapping_add(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Integer(v) => v as u64,
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            t.len() as u64
                        }
                        _ => 0,
                    });
                }
                bytes += row.get_ref(13)?.as_blob()?.len();
                count += 1;
                if count % 1024 == 0 {
                    worker_done.store(count as u64, Ordering::Relaxed);
                }
            }
            worker_done.store(count as u64, Ordering::Relaxed);
            std::hint::black_box(checksum);
            anyhow::ensure!(
                count == events && bytes == events * payload_bytes,
                "raw scan returned {count} rows with {bytes} payload bytes; expected {events} rows"
            );
            Ok(())
        })
        .await
        .context("raw scan task")?
    };
    with_progress("sqlite raw read-all", events as u64, &done, progress, work).await?;
    Ok(rate(events, started.elapsed()))
}
