//! History snapshots: the state of a read model kept at positions of the log every
//! `history_every` events, so that a report as of a past moment starts from the nearest earlier
//! snapshot and replays only the gap, instead of the whole log.
//!
//! - As of a *position* `p`, the snapshot at the largest position `P ≤ p` holds exactly the
//!   events up to `P`; the gap is every event in `(P, p]`.
//! - As of a *moment* `t`, the history is every event that occurred by `t`, and `occurred_at` is
//!   not in log order (a visit is logged days after it happened). A snapshot at `P` is a valid
//!   start only if every event up to `P` occurred by `t`; the gap is then the events after `P`
//!   that occurred by `t`, applied in log order, and the answer is exactly the fold of all of them.
//!   To know both without reading the log, the runner keeps a *time index* beside the snapshots:
//!   contiguous spans of positions with the earliest and latest `occurred_at` in each. A snapshot
//!   qualifies when the latest time of every span before it is at most `t`; a span of the gap
//!   whose earliest time is after `t` is skipped without being read.
//!
//! Both tables live in the checkpoint file and are written by the runner in the transactions that
//! save its checkpoints. A snapshot records the id of the event at its position and is used only
//! if the log still holds that event there (a checkpoint file copied from another log is
//! ignored), only by the model version that wrote it, and only if it decodes; otherwise the
//! replay starts from position zero as before.

use crate::AsOf;
use chrono::{DateTime, Datelike, Utc};
use funnel_store::RecordedEvent;
use funnel_types::Position;
use rusqlite::{Connection, OptionalExtension, params};

/// Tables of the checkpoint file (created with the others).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    state BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS history_at ON history (name, version, position);
CREATE TABLE IF NOT EXISTS log_times (
    start INTEGER PRIMARY KEY,
    end INTEGER NOT NULL,
    earliest INTEGER NOT NULL,
    latest INTEGER NOT NULL,
    events INTEGER NOT NULL
);
";

/// The disk a model's history may take per event of the log: a snapshot is taken after at least
/// `history_every` events and at least its predecessor's size divided by this, so that the
/// history grows with the log, not with the log times the model (which itself grows with the
/// log). A large model is snapshotted less often, and an as-of replay reads a longer gap.
pub const HISTORY_BYTES_PER_EVENT: u64 = 256;

/// Events a span of the time index covers at most before the next one starts.
pub(crate) const SPAN_EVENTS: u64 = 4096;

/// A span of the log, `(start, end]`, with the earliest and latest `occurred_at` of its events
/// (nanoseconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Position,
    pub end: Position,
    pub earliest: i64,
    pub latest: i64,
    pub events: u64,
}

/// One history snapshot to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    pub name: String,
    pub version: u32,
    pub position: Position,
    pub event_id: String,
    pub state: Vec<u8>,
}

/// A moment as nanoseconds since the epoch, saturating outside 1677–2262 (so a time before every
/// event admits none and one after every event admits all).
pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or(if t.year() < 1970 { i64::MIN } else { i64::MAX })
}

/// The runner's time index as it grows: the spans not yet saved and the one still open.
#[derive(Debug, Default)]
pub(crate) struct TimeIndex {
    /// Every position up to here is in a span (saved, pending or open).
    pub end: Position,
    /// Spans closed and not yet saved.
    pub pending: Vec<Span>,
    /// The span events are being added to (saved again, by its start, on every save).
    pub open: Option<Span>,
}

impl TimeIndex {
    /// The index as saved: it goes on after the last saved span.
    pub fn load(conn: &Connection) -> rusqlite::Result<TimeIndex> {
        let end: Option<i64> = conn
            .query_row("SELECT max(end) FROM log_times", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(TimeIndex {
            end: Position(end.unwrap_or(0) as u64),
            ..TimeIndex::default()
        })
    }

    /// Adds the events of `chunk` beyond [`TimeIndex::end`] (a page read again for a state that is
    /// behind adds nothing).
    pub fn note(&mut self, chunk: &[RecordedEvent]) {
        for rec in chunk {
            let p = rec.meta.position;
            if p <= self.end {
                continue;
            }
            let at = nanos(rec.meta.occurred_at);
            let span = self.open.get_or_insert(Span {
                start: self.end,
                end: self.end,
                earliest: at,
                latest: at,
                events: 0,
            });
            span.end = p;
            span.earliest = span.earliest.min(at);
            span.latest = span.latest.max(at);
            span.events += 1;
            self.end = p;
            if span.events >= SPAN_EVENTS {
                self.close();
            }
        }
    }

    /// Ends the open span here, so that the next event starts a new one (a history snapshot is
    /// taken at a span's end, so that the spans before it say exactly when its events occurred).
    pub fn close(&mut self) {
        if let Some(span) = self.open.take() {
            self.pending.push(span);
        }
    }

    /// The spans to save: the closed ones and the open one (saved again as it grows).
    pub fn unsaved(&self) -> Vec<Span> {
        self.pending.iter().chain(&self.open).copied().collect()
    }

    /// How many closed spans [`TimeIndex::unsaved`] holds now.
    pub fn closed(&self) -> usize {
        self.pending.len()
    }

    /// Says that the first `n` closed spans were saved: they are not kept any more.
    pub fn saved_first(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
    }
}

/// Writes spans (replacing a span saved before by its start) inside the runner's transaction.
pub(crate) fn write_spans(tx: &Connection, spans: &[Span]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO log_times (start, end, earliest, latest, events)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for s in spans {
        stmt.execute(params![
            s.start.0 as i64,
            s.end.0 as i64,
            s.earliest,
            s.latest,
            s.events as i64
        ])?;
    }
    Ok(())
}

/// Writes a history snapshot inside the runner's transaction.
pub(crate) fn write_history(tx: &Connection, row: &HistoryRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO history (name, version, position, event_id, state)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            row.name,
            row.version,
            row.position.0 as i64,
            row.event_id,
            row.state
        ],
    )?;
    Ok(())
}

/// Removes the history of `name` written by any version but `keep` (a rebuild of a new version
/// has switched in; the old snapshots no longer read).
pub(crate) fn forget_other_versions(
    tx: &Connection,
    name: &str,
    keep: u32,
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM history WHERE name = ?1 AND version != ?2",
        params![name, keep],
    )?;
    Ok(())
}

/// The last position of `name`'s history written by `version`.
pub(crate) fn last_position(
    conn: &Connection,
    name: &str,
    version: u32,
) -> rusqlite::Result<Position> {
    let p: Option<i64> = conn.query_row(
        "SELECT max(position) FROM history WHERE name = ?1 AND version = ?2",
        params![name, version],
        |r| r.get(0),
    )?;
    Ok(Position(p.unwrap_or(0) as u64))
}

/// A history snapshot as it is stored: the model's MessagePack state compressed with LZ4 (its
/// size first). The states repeat much of themselves (ids, stage names, dates), and a history
/// holds many of them.
pub(crate) fn pack(state: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(state)
}

/// The state a stored history snapshot holds; `None` when it is not one (refusing a declared size
/// no LZ4 block of this length could have, before allocating it).
pub fn unpack(stored: &[u8]) -> Option<Vec<u8>> {
    let declared = u32::from_le_bytes(stored.get(..4)?.try_into().ok()?) as usize;
    if declared > stored.len().saturating_mul(255) {
        return None;
    }
    lz4_flex::decompress_size_prepended(stored).ok()
}

/// Where an as-of replay can start: a snapshot, and the spans that say which events of the gap
/// it can skip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Start {
    /// The snapshot: its position, the id of the event there, and the state.
    pub base: Option<(Position, String, Vec<u8>)>,
    /// The time index from position zero, contiguous (empty when it is not).
    pub spans: Vec<Span>,
}

impl Start {
    /// The span holding position `after + 1`, if the index reaches it.
    pub fn span_after(&self, after: Position) -> Option<&Span> {
        let i = self.spans.partition_point(|s| s.end <= after);
        self.spans.get(i).filter(|s| s.start <= after)
    }
}

/// Chooses the start of an as-of replay of `name` (written by `version`) reading the log no
/// further than `head`: the latest snapshot whose every event is admitted by `as_of`.
pub fn start(
    conn: &Connection,
    name: &str,
    version: u32,
    as_of: AsOf,
    head: Position,
) -> rusqlite::Result<Start> {
    let mut spans: Vec<Span> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT start, end, earliest, latest, events FROM log_times ORDER BY start",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Span {
                start: Position(r.get::<_, i64>(0)? as u64),
                end: Position(r.get::<_, i64>(1)? as u64),
                earliest: r.get(2)?,
                latest: r.get(3)?,
                events: r.get::<_, i64>(4)? as u64,
            })
        })?;
        for s in rows {
            let s = s?;
            // Only the part contiguous from position zero says anything.
            if s.start != spans.last().map_or(Position::START, |l| l.end) {
                break;
            }
            spans.push(s);
        }
    }
    let covered = spans.last().map_or(Position::START, |s| s.end);
    let limit = match as_of {
        AsOf::Position(p) => p.min(head),
        AsOf::Time(_) => head,
    }
    .min(covered);
    // The latest time of every span before each span's end, to test the snapshots against.
    let mut latest_before = Vec::with_capacity(spans.len());
    let mut latest = i64::MIN;
    for s in &spans {
        latest = latest.max(s.latest);
        latest_before.push(latest);
    }
    let admits_all_to = |p: Position| match as_of {
        AsOf::Position(_) => true,
        AsOf::Time(t) => {
            // The spans that hold any event at or below `p`: those starting before it.
            let n = spans.partition_point(|s| s.start < p);
            n == 0 || latest_before[n - 1] <= nanos(t)
        }
    };
    let positions: Vec<Position> = {
        let mut stmt = conn.prepare_cached(
            "SELECT position FROM history WHERE name = ?1 AND version = ?2 AND position <= ?3
             ORDER BY position DESC",
        )?;
        stmt.query_map(params![name, version, limit.0 as i64], |r| {
            r.get::<_, i64>(0).map(|p| Position(p as u64))
        })?
        .collect::<Result<_, _>>()?
    };
    let Some(chosen) = positions.into_iter().find(|p| admits_all_to(*p)) else {
        return Ok(Start { base: None, spans });
    };
    let (event_id, state): (String, Vec<u8>) = conn.query_row(
        "SELECT event_id, state FROM history WHERE name = ?1 AND version = ?2 AND position = ?3",
        params![name, version, chosen.0 as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Start {
        base: Some((chosen, event_id, state)),
        spans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_state_unpacks_and_a_lying_size_is_refused_before_allocating() {
        let state: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let packed = pack(&state);
        assert!(packed.len() < state.len() / 2, "{} bytes", packed.len());
        assert_eq!(unpack(&packed), Some(state));
        // Four gigabytes declared in eight bytes.
        assert_eq!(unpack(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]), None);
        assert_eq!(unpack(&[0xc1, 0xc1, 0xc1]), None);
        assert_eq!(unpack(&[]), None);
    }
}
