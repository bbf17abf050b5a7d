//! The writer thread: the only place that writes. It owns the write connection, takes appends from a
//! queue and commits the ones that queued up together in one transaction (group commit), each still
//! checked and applied on its own: a refused append is rolled back to its savepoint and writes
//! nothing, the others commit. Callers are answered only after the commit is durable.

use crate::{chain, sql_error, time_to_nanos};
use funnel_store::chain::Link;
use funnel_store::{AppendOutcome, AppendRequest, StoreError};
use funnel_types::{Position, Version};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use std::sync::{Arc, mpsc};
use tokio::sync::{oneshot, watch};

/// Work for the writer thread.
pub enum Job {
    Append(
        AppendRequest,
        oneshot::Sender<Result<AppendOutcome, StoreError>>,
    ),
    /// Runs a closure on the write connection (reads of an in-memory store, which has only one).
    Run(Box<dyn FnOnce(&Connection) + Send>),
}

/// Why one append of a batch did not apply.
enum Refusal {
    /// The append is refused; the others of the batch go on.
    Refused(StoreError),
    /// SQLite failed; the whole transaction is abandoned.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
        Refusal::Sql(e)
    }
}

type Reply = oneshot::Sender<Result<AppendOutcome, StoreError>>;
type Results = Vec<Result<AppendOutcome, StoreError>>;

/// Runs until every sender of `jobs` is gone.
pub fn run(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    head: Arc<watch::Sender<Position>>,
    max_batch: usize,
) {
    let mut batch: Vec<(AppendRequest, Reply)> = Vec::with_capacity(max_batch);
    while let Ok(job) = jobs.recv() {
        let mut after = None;
        match job {
            Job::Run(f) => {
                f(&conn);
                continue;
            }
            Job::Append(req, reply) => batch.push((req, reply)),
        }
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(Job::Append(req, reply)) => batch.push((req, reply)),
                Ok(Job::Run(f)) => {
                    after = Some(f);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_batch(&conn, &mut batch, &head);
        if let Some(f) = after {
            f(&conn);
        }
    }
}

/// Commits a batch and answers every caller in it. When SQLite fails, the batch is retried one append
/// per transaction so that one bad append cannot fail its neighbours.
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<(AppendRequest, Reply)>,
    head: &watch::Sender<Position>,
) {
    let reqs: Vec<&AppendRequest> = batch.iter().map(|(r, _)| r).collect();
    match transaction(conn, &reqs) {
        Ok(results) => {
            publish_head(head, &results);
            for ((_, reply), result) in batch.drain(..).zip(results) {
                let _ = reply.send(result);
            }
        }
        // A lone append, or a lock held too long by another process: retrying one by one would only
        // wait again, so every caller gets the error (`Unavailable` for the lock).
        Err(e) if batch.len() == 1 || is_busy(&e) => {
            let error = sql_error(e);
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
        }
        Err(_) => {
            for (req, reply) in batch.drain(..) {
                let result = match transaction(conn, &[&req]) {
                    Ok(mut results) => {
                        publish_head(head, &results);
                        results
                            .pop()
                            .unwrap_or_else(|| Err(internal("a transaction of one gave no result")))
                    }
                    Err(e) => Err(sql_error(e)),
                };
                let _ = reply.send(result);
            }
        }
    }
}

fn internal(message: &str) -> StoreError {
    StoreError::Backend {
        backend: "sqlite",
        message: message.to_string(),
    }
}

/// Moves the in-process head to the last position the batch wrote, waking `wait_for_append`.
fn publish_head(head: &watch::Sender<Position>, results: &[Result<AppendOutcome, StoreError>]) {
    let last = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|o| o.last_position)
        .max();
    if let Some(last) = last {
        head.send_if_modified(|h| {
            let newer = last > *h;
            if newer {
                *h = last;
            }
            newer
        });
    }
}

/// One write transaction for the given appends. Returns one result per append (refusals included),
/// or the SQLite error that abandoned the whole transaction (then nothing was written).
fn transaction(conn: &Connection, reqs: &[&AppendRequest]) -> Result<Results, rusqlite::Error> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = apply_all(conn, reqs).and_then(|(results, wrote)| {
        // A transaction that wrote nothing (refusals and duplicates only) is rolled back, which also
        // discards what a lone refused append may have half-written.
        conn.prepare_cached(if wrote { "COMMIT" } else { "ROLLBACK" })?
            .execute([])?;
        Ok(results)
    });
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Applies each append in turn; also says whether any of them wrote.
fn apply_all(
    conn: &Connection,
    reqs: &[&AppendRequest],
) -> Result<(Results, bool), rusqlite::Error> {
    let recorded_at = time_to_nanos(chrono::Utc::now()).unwrap_or(i64::MAX);
    let mut results = Vec::with_capacity(reqs.len());
    // A lone append needs no savepoint: when it is refused, the whole transaction is rolled back.
    let savepoints = reqs.len() > 1;
    let mut wrote = false;
    for req in reqs {
        if savepoints {
            conn.prepare_cached("SAVEPOINT append")?.execute([])?;
        }
        match apply(conn, req, recorded_at) {
            Ok(outcome) => {
                wrote |= !outcome.duplicate;
                results.push(Ok(outcome));
            }
            Err(Refusal::Refused(e)) => {
                if savepoints {
                    conn.prepare_cached("ROLLBACK TO append")?.execute([])?;
                }
                results.push(Err(e));
            }
            Err(Refusal::Sql(e)) => return Err(e),
        }
        if savepoints {
            conn.prepare_cached("RELEASE append")?.execute([])?;
        }
    }
    Ok((results, wrote))
}

/// Checks and writes one append inside the open transaction.
fn apply(
    conn: &Connection,
    req: &AppendRequest,
    recorded_at: i64,
) -> Result<AppendOutcome, Refusal> {
    let stream = req.stream.as_str();
    let command = req.command_id.0.as_bytes();

    let mut find_command = conn.prepare_cached(
        "SELECT stream, first_version, last_version, first_position, last_position FROM commands WHERE command_id = ?1",
    )?;
    let previous = find_command
        .query_row([&command[..]], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    if let Some((original, fv, lv, fp, lp)) = previous {
        if original != stream {
            return Err(Refusal::Refused(StoreError::InvalidRequest(format!(
                "command {} was already appended to stream {original}; a command id belongs to one stream",
                req.command_id
            ))));
        }
        return Ok(AppendOutcome {
            stream: req.stream.clone(),
            first_version: Version(fv as u64),
            last_version: Version(lv as u64),
            first_position: Position(fp as u64),
            last_position: Position(lp as u64),
            duplicate: true,
        });
    }

    let mut find_stream = conn.prepare_cached("SELECT version FROM streams WHERE stream = ?1")?;
    let current = find_stream
        .query_row([stream], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|v| Version(v as u64));
    if !req.expected.admits(current) {
        return Err(Refusal::Refused(StoreError::WrongExpectedVersion {
            stream: req.stream.clone(),
            expected: req.expected,
            actual: current,
        }));
    }

    let base = current.map_or(0, |v| v.0 as i64);
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (stream, version, event_id, event_type, schema_version, occurred_at, recorded_at, \
         actor, office, command_id, correlation_id, causation_id, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut actor_json = String::new();
    let mut actor_of: Option<&funnel_types::Actor> = None;
    let mut first_position = 0i64;
    let mut link = Link::after(&chain::last_hash(conn)?);
    for (i, e) in req.events.iter().enumerate() {
        if actor_of != Some(&e.actor) {
            actor_json = serde_json::to_string(&e.actor).map_err(|err| {
                Refusal::Refused(StoreError::InvalidRequest(format!(
                    "actor cannot be encoded: {err}"
                )))
            })?;
            actor_of = Some(&e.actor);
        }
        let occurred_at = time_to_nanos(e.occurred_at).ok_or_else(|| {
            Refusal::Refused(StoreError::InvalidRequest(format!(
                "occurred_at {} is outside the years 1678 to 2261 the store can record",
                e.occurred_at
            )))
        })?;
        let office = e.office.map(|o| *o.0.as_bytes());
        let inserted = insert.execute(params![
            stream,
            base + i as i64 + 1,
            &e.event_id.0.as_bytes()[..],
            e.event_type,
            e.schema_version,
            occurred_at,
            recorded_at,
            actor_json,
            office.as_ref().map(|b| &b[..]),
            &command[..],
            &e.correlation_id.0.as_bytes()[..],
            &e.causation_id.as_bytes()[..],
            &e.payload[..],
        ]);
        match inserted {
            Ok(_) => {}
            Err(err) if is_event_id_conflict(&err) => {
                return Err(Refusal::Refused(StoreError::InvalidRequest(format!(
                    "event id {} is already recorded (event ids must be unique)",
                    e.event_id
                ))));
            }
            Err(err) => return Err(Refusal::Sql(err)),
        }
        let position = conn.last_insert_rowid();
        if i == 0 {
            first_position = position;
        }
        chain::Stored {
            position,
            stream,
            version: base + i as i64 + 1,
            event_id: &e.event_id.0.as_bytes()[..],
            event_type: &e.event_type,
            schema_version: i64::from(e.schema_version),
            occurred_at,
            recorded_at,
            actor: &actor_json,
            office: office.as_ref().map(|b| &b[..]),
            command_id: &command[..],
            correlation_id: &e.correlation_id.0.as_bytes()[..],
            causation_id: &e.causation_id.as_bytes()[..],
            payload: &e.payload[..],
        }
        .feed(&mut link);
    }
    let last_position = conn.last_insert_rowid();
    chain::record(conn, first_position, last_position, &link.finish())?;
    let last_version = base + req.events.len() as i64;
    conn.prepare_cached(
        "INSERT INTO streams (stream, version) VALUES (?1, ?2) ON CONFLICT (stream) DO UPDATE SET version = excluded.version",
    )?
    .execute(params![stream, last_version])?;
    conn.prepare_cached(
        "INSERT INTO commands (command_id, stream, first_version, last_version, first_position, last_position) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![&command[..], stream, base + 1, last_version, first_position, last_position])?;
    Ok(AppendOutcome {
        stream: req.stream.clone(),
        first_version: Version(base as u64 + 1),
        last_version: Version(last_version as u64),
        first_position: Position(first_position as u64),
        last_position: Position(last_position as u64),
        duplicate: false,
    })
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn is_event_id_conflict(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            f.code == ErrorCode::ConstraintViolation
                && msg.as_deref().is_some_and(|m| m.contains("event_id"))
        }
        _ => false,
    }
}
