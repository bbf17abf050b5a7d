//! The hash chain of the embedded store ([`funnel_store::chain`]): the writer records one row per
//! commit in `chain (last_position, first_position, hash)`, in the commit's own transaction, and
//! [`verify`] walks the events and those rows. Both hash an event through [`Stored::feed`], from
//! the values exactly as the `events` table keeps them.

use crate::sql_error;
use funnel_store::StoreError;
use funnel_store::chain::{ChainHash, Link, RecordedCommit, Verification, Verifier};
use funnel_store::checkpoint::{self, Witness};
use funnel_types::Position;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

/// One event's columns as stored.
pub(crate) struct Stored<'a> {
    pub position: i64,
    pub stream: &'a str,
    pub version: i64,
    pub event_id: &'a [u8],
    pub event_type: &'a str,
    pub schema_version: i64,
    pub occurred_at: i64,
    pub recorded_at: i64,
    pub actor: &'a str,
    pub office: Option<&'a [u8]>,
    pub command_id: &'a [u8],
    pub correlation_id: &'a [u8],
    pub causation_id: &'a [u8],
    pub payload: &'a [u8],
}

impl Stored<'_> {
    /// Adds the event to its commit's hash.
    pub fn feed(&self, link: &mut Link) {
        link.int(self.position)
            .bytes(self.stream.as_bytes())
            .int(self.version)
            .bytes(self.event_id)
            .bytes(self.event_type.as_bytes())
            .int(self.schema_version)
            .int(self.occurred_at)
            .int(self.recorded_at)
            .bytes(self.actor.as_bytes())
            .optional(self.office)
            .bytes(self.command_id)
            .bytes(self.correlation_id)
            .bytes(self.causation_id)
            .bytes(self.payload);
    }
}

/// The hash of the last commit recorded (the genesis on a log without one), inside the writer's
/// transaction.
pub(crate) fn last_hash(conn: &Connection) -> rusqlite::Result<ChainHash> {
    Ok(head(conn)?.map_or(ChainHash::GENESIS, |(_, hash)| hash))
}

/// The last commit recorded: its last position and hash.
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<Option<(Position, ChainHash)>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT last_position, hash FROM chain ORDER BY last_position DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(p, h)| Some((Position(p as u64), ChainHash::from_slice(&h)?))))
}

/// Records a commit's hash, inside the writer's transaction.
pub(crate) fn record(
    conn: &Connection,
    first: i64,
    last: i64,
    hash: &ChainHash,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO chain (last_position, first_position, hash) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![last, first, &hash.0[..]])?;
    Ok(())
}

/// Commits read per query while walking.
const PAGE: i64 = 4096;

/// Walks the commits from the one holding `from` to the head, in one read transaction, and the
/// events around them: every event must belong to a recorded commit, every position a recorded
/// commit covers must hold an event, and the events of each commit must hash, after the previous
/// commit's recorded hash, to its own. `progress` is called with the last position checked, about
/// every [`PAGE`] commits. Then the checkpoints of `witness`, if any, are checked against the
/// chain rows the same transaction sees.
pub(crate) fn verify(
    conn: &Connection,
    from: Position,
    witness: Option<&Witness>,
    progress: &mut dyn FnMut(Position),
) -> Result<Verification, StoreError> {
    conn.execute_batch("BEGIN").map_err(sql_error)?;
    let result = walk(conn, from, progress).and_then(|mut v| {
        if let Some(w) = witness {
            v.witnessed(witnessed(conn, w)?);
        }
        Ok(v)
    });
    let _ = conn.execute_batch("COMMIT");
    result
}

/// The checkpoints of `witness` against the recorded chain and the log's last position.
fn witnessed(conn: &Connection, witness: &Witness) -> Result<checkpoint::Witnessed, StoreError> {
    let head = crate::read::head(conn)?;
    let mut at = conn
        .prepare("SELECT hash FROM chain WHERE last_position = ?1")
        .map_err(sql_error)?;
    checkpoint::check(witness, head, &mut |p: Position| {
        let hash: Option<Vec<u8>> = at
            .query_row([i64::try_from(p.0).unwrap_or(i64::MAX)], |r| r.get(0))
            .optional()
            .map_err(sql_error)?;
        Ok(hash.as_deref().and_then(ChainHash::from_slice))
    })
}

fn walk(
    conn: &Connection,
    from: Position,
    progress: &mut dyn FnMut(Position),
) -> Result<Verification, StoreError> {
    let from = i64::try_from(from.0.max(1)).unwrap_or(i64::MAX);
    // Events below `chain_from` were written before the store kept a chain.
    let chain_from: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'chain_from'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql_error)?
        .unwrap_or(1);
    // The commit holding `from` (or the first after it), and the one before, whose recorded hash
    // the walk trusts as its start.
    let start: Option<i64> = conn
        .query_row(
            "SELECT first_position FROM chain WHERE last_position >= ?1 ORDER BY last_position LIMIT 1",
            [from],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    let begin = start.unwrap_or(from).min(from);
    let before: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT last_position, hash FROM chain WHERE last_position < ?1 ORDER BY last_position DESC LIMIT 1",
            [begin],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql_error)?;
    let mut v = match &before {
        Some((last, hash)) => Verifier::new(
            Position(begin as u64),
            ChainHash::from_slice(hash).unwrap_or(ChainHash::GENESIS),
            Some(Position(*last as u64)),
        ),
        None => Verifier::new(Position(begin as u64), ChainHash::GENESIS, None),
    };
    v.chain_from(Position(chain_from as u64));
    // Where the last commit checked ended: every event after it must be in a later commit.
    let mut after = match &before {
        Some((last, _)) => *last,
        None => {
            let (count, max): (i64, Option<i64>) = conn
                .query_row(
                    "SELECT count(*), max(position) FROM events WHERE position >= ?1 AND position < ?2",
                    params![begin, chain_from],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql_error)?;
            if count > 0 {
                v.unchained_prefix(count as u64, Position(max.unwrap_or(0) as u64));
            }
            (chain_from - 1).max(begin - 1)
        }
    };
    let mut events = conn
        .prepare(
            "SELECT position, stream, version, event_id, event_type, schema_version, occurred_at, \
             recorded_at, actor, office, command_id, correlation_id, causation_id, payload \
             FROM events WHERE position >= ?1 AND position <= ?2 ORDER BY position",
        )
        .map_err(sql_error)?;
    let mut commits = conn
        .prepare(
            "SELECT first_position, last_position, hash FROM chain WHERE last_position > ?1 \
             ORDER BY last_position LIMIT ?2",
        )
        .map_err(sql_error)?;
    loop {
        let page: Vec<(i64, i64, Vec<u8>)> = commits
            .query_map(params![after, PAGE], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql_error)?
            .collect::<Result<_, _>>()
            .map_err(sql_error)?;
        let Some(&(_, page_last, _)) = page.last() else {
            break;
        };
        for (first, last, hash) in &page {
            // Events between the previous commit and this one belong to none.
            let gap_from = after + 1;
            if *first > gap_from {
                let stray: Option<i64> = conn
                    .query_row(
                        "SELECT min(position) FROM events WHERE position >= ?1 AND position < ?2",
                        params![gap_from.max(begin), first],
                        |r| r.get(0),
                    )
                    .map_err(sql_error)?;
                if let Some(p) = stray {
                    v.stray(Position(p as u64));
                }
            }
            let mut link = Link::after(v.previous());
            let mut held = Vec::new();
            let mut rows = events.query(params![first, last]).map_err(sql_error)?;
            while let Some(r) = rows.next().map_err(sql_error)? {
                let position: i64 = r.get(0).map_err(sql_error)?;
                match stored(r) {
                    Ok(e) => e.feed(&mut link),
                    // A column of another type than the writer's cannot hash as it did.
                    Err(_) => {
                        link.bytes(b"\xffunreadable");
                    }
                }
                held.push(Position(position as u64));
            }
            let recorded = RecordedCommit {
                first: Position(*first as u64),
                last: Position(*last as u64),
                hash: ChainHash::from_slice(hash).unwrap_or(ChainHash::GENESIS),
            };
            v.commit(recorded, &held, link.finish());
            after = *last;
            if v.found() {
                return Ok(v.finish());
            }
        }
        after = page_last;
        progress(Position(after as u64));
    }
    // Events after the last recorded commit belong to none.
    let stray: Option<i64> = conn
        .query_row(
            "SELECT min(position) FROM events WHERE position > ?1 AND position >= ?2",
            params![after, begin],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    if let Some(p) = stray {
        v.stray(Position(p as u64));
    }
    Ok(v.finish())
}

/// An event row's columns as stored.
fn stored<'r>(r: &'r rusqlite::Row<'_>) -> Result<Stored<'r>, StoreError> {
    Ok(Stored {
        position: r.get(0).map_err(sql_error)?,
        stream: text(r, 1)?,
        version: r.get(2).map_err(sql_error)?,
        event_id: blob(r, 3)?.unwrap_or_default(),
        event_type: text(r, 4)?,
        schema_version: r.get(5).map_err(sql_error)?,
        occurred_at: r.get(6).map_err(sql_error)?,
        recorded_at: r.get(7).map_err(sql_error)?,
        actor: text(r, 8)?,
        office: blob(r, 9)?,
        command_id: blob(r, 10)?.unwrap_or_default(),
        correlation_id: blob(r, 11)?.unwrap_or_default(),
        causation_id: blob(r, 12)?.unwrap_or_default(),
        payload: blob(r, 13)?.unwrap_or_default(),
    })
}

/// A text column; a value of another type hashes as its own bytes would not, so it is refused
/// as what it is: a row that is not what the writer wrote.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    match r.get_ref(i).map_err(sql_error)? {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|e| not_written(r, i, &e)),
        other => Err(not_written(r, i, &format!("{:?}", other.data_type()))),
    }
}

/// A blob column, or NULL.
fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r [u8]>, StoreError> {
    match r.get_ref(i).map_err(sql_error)? {
        ValueRef::Blob(b) => Ok(Some(b)),
        ValueRef::Null => Ok(None),
        other => Err(not_written(r, i, &format!("{:?}", other.data_type()))),
    }
}

fn not_written(r: &rusqlite::Row<'_>, i: usize, what: &dyn std::fmt::Display) -> StoreError {
    let position = r.get::<_, i64>(0).unwrap_or_default();
    StoreError::Corrupt {
        position: Position(position as u64),
        reason: format!("column {i} is not of the type the store writes ({what})"),
    }
}
