//! Reads: the queries behind `read_stream`, `read_all`, `stream_version` and `head`, and decoding a row
//! into a [`RecordedEvent`]. A row that cannot be decoded is reported as `Corrupt` with its position.

use crate::sql_error;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use funnel_store::{Filter, RecordedEvent, StoreError};
use funnel_types::{Actor, Metadata, OfficeId, Position, StreamId, Version};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row};
use std::fmt::Write as _;
use uuid::Uuid;

/// The columns every read selects, in the order [`Decoder::decode`] expects.
macro_rules! columns {
    () => {
        "position, stream, version, event_id, event_type, schema_version, occurred_at, recorded_at, actor, \
         office, command_id, correlation_id, causation_id, payload"
    };
}

/// Converts a count from the API to an SQL `LIMIT`.
fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// Events of one stream with version ≥ `from`, at most `max`.
pub fn read_stream(
    conn: &Connection,
    stream: &StreamId,
    from: Version,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    let from = i64::try_from(from.0).unwrap_or(i64::MAX);
    let rows = stmt
        .query(rusqlite::params![stream.as_str(), from, limit(max)])
        .map_err(sql_error)?;
    collect(rows, max.min(SMALL_CAPACITY))
}

/// Events after `after` that pass `filter`, at most `max`, in position order. `head` is the last
/// position the caller knows of: positions are consecutive, so at most `head - after` rows can
/// match, and the result is allocated for that many (up to `max`) at once. It is only a hint: an
/// append by another process since makes the result grow as usual.
pub fn read_all(
    conn: &Connection,
    after: Position,
    filter: &Filter,
    max: usize,
    head: Position,
) -> Result<Vec<RecordedEvent>, StoreError> {
    filter.validate()?;
    if max == 0 {
        return Ok(Vec::new());
    }
    let expected = usize::try_from(head.0.saturating_sub(after.0)).unwrap_or(usize::MAX);
    let capacity = max.min(expected).min(MAX_CAPACITY);
    let after = i64::try_from(after.0).unwrap_or(i64::MAX);
    match filter {
        Filter::All => {
            let sql = concat!(
                "SELECT ",
                columns!(),
                " FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
            let rows = stmt
                .query(rusqlite::params![after, limit(max)])
                .map_err(sql_error)?;
            collect(rows, capacity)
        }
        Filter::Categories(cats) => {
            // A stream is in category `c` exactly when its name starts with `c-`, that is when it sorts
            // in [`c-`, `c.`) (`.` follows `-`). The unary `+` keeps SQLite scanning in position order
            // instead of sorting a whole category taken from the (stream, version) index.
            let mut sql = String::from(concat!(
                "SELECT ",
                columns!(),
                " FROM events WHERE position > ?1 AND ("
            ));
            let mut bounds: Vec<String> = Vec::with_capacity(cats.len() * 2);
            for (i, c) in cats.iter().enumerate() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                let _ = write!(
                    sql,
                    "(+stream >= ?{} AND +stream < ?{})",
                    3 + 2 * i,
                    4 + 2 * i
                );
                bounds.push(format!("{c}-"));
                bounds.push(format!("{c}."));
            }
            sql.push_str(") ORDER BY position LIMIT ?2");
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
            stmt.raw_bind_parameter(1, after).map_err(sql_error)?;
            stmt.raw_bind_parameter(2, limit(max)).map_err(sql_error)?;
            for (i, b) in bounds.iter().enumerate() {
                stmt.raw_bind_parameter(3 + i, b.as_str())
                    .map_err(sql_error)?;
            }
            collect(stmt.raw_query(), capacity)
        }
    }
}

/// The stream's version from the `streams` table.
pub fn stream_version(conn: &Connection, stream: &StreamId) -> Result<Option<Version>, StoreError> {
    conn.prepare_cached("SELECT version FROM streams WHERE stream = ?1")
        .and_then(|mut s| {
            s.query_row([stream.as_str()], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|v| v.map(|v| Version(v as u64)))
        .map_err(sql_error)
}

/// Keeps `snapshot` unless a snapshot of a higher version of its stream is kept already.
pub fn save_snapshot(
    conn: &Connection,
    snapshot: &funnel_store::Snapshot,
) -> Result<(), StoreError> {
    let version = i64::try_from(snapshot.version.0).map_err(|_| {
        StoreError::InvalidRequest(format!(
            "snapshot version {} is too large",
            snapshot.version.0
        ))
    })?;
    conn.prepare_cached(
        "INSERT INTO snapshots (stream, version, data) VALUES (?1, ?2, ?3) \
         ON CONFLICT (stream) DO UPDATE SET version = excluded.version, data = excluded.data \
         WHERE excluded.version >= snapshots.version",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            snapshot.stream.as_str(),
            version,
            &snapshot.data[..]
        ])
    })
    .map(|_| ())
    .map_err(sql_error)
}

/// The stream's kept snapshot, if any.
pub fn load_snapshot(
    conn: &Connection,
    stream: &StreamId,
) -> Result<Option<funnel_store::Snapshot>, StoreError> {
    conn.prepare_cached("SELECT version, data FROM snapshots WHERE stream = ?1")
        .and_then(|mut s| {
            s.query_row([stream.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()
        })
        .map(|found| {
            found.map(|(version, data)| funnel_store::Snapshot {
                stream: stream.clone(),
                version: Version(version.max(0) as u64),
                data: Bytes::from(data),
            })
        })
        .map_err(sql_error)
}

/// The last position in the log, 0 when it is empty.
pub fn head(conn: &Connection) -> Result<Position, StoreError> {
    conn.prepare_cached("SELECT coalesce(max(position), 0) FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map(|p| Position(p as u64))
        .map_err(sql_error)
}

/// Rows allocated for at once when the number of matching rows is not known better.
const SMALL_CAPACITY: usize = 1024;

/// Most rows allocated for at once, whatever the hint.
const MAX_CAPACITY: usize = 65_536;

fn collect(
    mut rows: rusqlite::Rows<'_>,
    capacity: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::with_capacity(capacity);
    let mut decoder = Decoder::default();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let event = decoder.decode(row, out.last())?;
        out.push(event);
    }
    Ok(out)
}

/// Payloads are copied into shared chunks of this size rather than one allocation each (fewer
/// allocations and frees, payloads side by side); a payload kept keeps at most its chunk alive.
const PAYLOAD_CHUNK: usize = 64 * 1024;

/// Payloads larger than this get an allocation of their own.
const PAYLOAD_CHUNKED_MAX: usize = PAYLOAD_CHUNK / 8;

/// Decodes rows, reusing what repeats from one row to the next: the stream and event type of the
/// previous row and the last actor (comparing the stored bytes, so a repeat is neither validated
/// nor parsed again), and the date of the last timestamp.
#[derive(Default)]
struct Decoder {
    actor: Option<(Vec<u8>, Actor)>,
    /// The day (since the Unix epoch) and its date, of the last timestamp decoded.
    day: Option<(i64, NaiveDate)>,
    /// The rest of the current payload chunk.
    payloads: BytesMut,
}

impl Decoder {
    /// Decodes `row`; `previous` is the event decoded from the row before it, if any.
    fn decode(
        &mut self,
        row: &Row<'_>,
        previous: Option<&RecordedEvent>,
    ) -> Result<RecordedEvent, StoreError> {
        let position = row.get::<_, i64>(0).map_err(sql_error)?;
        let corrupt = |reason: String| StoreError::Corrupt {
            position: Position(position as u64),
            reason,
        };
        let field =
            |i: usize| -> Result<ValueRef<'_>, StoreError> { row.get_ref(i).map_err(sql_error) };

        let stream_name = text_bytes(field(1)?, "stream").map_err(corrupt)?;
        let stream = match previous {
            Some(p) if p.meta.stream.as_str().as_bytes() == stream_name => p.meta.stream.clone(),
            _ => {
                let name = utf8(stream_name, "stream").map_err(corrupt)?;
                StreamId::parse(name).map_err(|e| corrupt(format!("stream: {e}")))?
            }
        };
        let event_type = text_bytes(field(4)?, "event_type").map_err(corrupt)?;
        let event_type = match previous {
            Some(p) if p.meta.event_type.as_bytes() == event_type => p.meta.event_type.clone(),
            _ => utf8(event_type, "event_type").map_err(corrupt)?.to_string(),
        };
        let actor_text = text_bytes(field(8)?, "actor").map_err(corrupt)?;
        let actor = match &self.actor {
            Some((t, a)) if t.as_slice() == actor_text => a.clone(),
            _ => {
                let a: Actor = serde_json::from_slice(actor_text)
                    .map_err(|e| corrupt(format!("actor is not a valid actor: {e}")))?;
                self.actor = Some((actor_text.to_vec(), a.clone()));
                a
            }
        };
        let office = match field(9)? {
            ValueRef::Null => None,
            v => Some(OfficeId(uuid(v, "office").map_err(corrupt)?)),
        };
        let payload = match field(13)? {
            ValueRef::Blob(b) | ValueRef::Text(b) => self.payload(b),
            other => {
                return Err(corrupt(format!(
                    "payload is {:?}, not bytes",
                    other.data_type()
                )));
            }
        };
        let meta = Metadata {
            event_id: uuid(field(3)?, "event_id").map_err(corrupt)?.into(),
            event_type,
            schema_version: u16::try_from(integer(field(5)?, "schema_version").map_err(corrupt)?)
                .map_err(|_| corrupt("schema_version is out of range".into()))?,
            stream,
            version: Version(
                u64::try_from(integer(field(2)?, "version").map_err(corrupt)?)
                    .map_err(|_| corrupt("version is negative".into()))?,
            ),
            position: Position(position as u64),
            occurred_at: self.time(integer(field(6)?, "occurred_at").map_err(corrupt)?),
            recorded_at: self.time(integer(field(7)?, "recorded_at").map_err(corrupt)?),
            actor,
            office,
            command_id: uuid(field(10)?, "command_id").map_err(corrupt)?.into(),
            correlation_id: uuid(field(11)?, "correlation_id").map_err(corrupt)?.into(),
            causation_id: uuid(field(12)?, "causation_id").map_err(corrupt)?,
        };
        Ok(RecordedEvent { meta, payload })
    }

    /// A copy of a payload: a slice of the current chunk, or its own allocation when large.
    fn payload(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.len() > PAYLOAD_CHUNKED_MAX {
            return Bytes::copy_from_slice(bytes);
        }
        if self.payloads.capacity() < bytes.len() {
            self.payloads = BytesMut::with_capacity(PAYLOAD_CHUNK);
        }
        self.payloads.extend_from_slice(bytes);
        self.payloads.split().freeze()
    }

    /// A time stored as nanoseconds since the Unix epoch; the same as
    /// `DateTime::from_timestamp_nanos`, reusing the date of the previous time on the same day.
    fn time(&mut self, nanos: i64) -> DateTime<Utc> {
        const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
        let day = nanos.div_euclid(NANOS_PER_DAY);
        let in_day = nanos.rem_euclid(NANOS_PER_DAY);
        let date = match self.day {
            Some((d, date)) if d == day => Some(date),
            _ => {
                let date = DateTime::from_timestamp(day * 86_400, 0).map(|t| t.date_naive());
                self.day = date.map(|date| (day, date));
                date
            }
        };
        // `in_day` is below a day's nanoseconds, so both parts are in range.
        let time = NaiveTime::from_num_seconds_from_midnight_opt(
            (in_day / 1_000_000_000) as u32,
            (in_day % 1_000_000_000) as u32,
        );
        match (date, time) {
            (Some(date), Some(time)) => date.and_time(time).and_utc(),
            _ => DateTime::from_timestamp_nanos(nanos),
        }
    }
}

/// The bytes of a text column, not yet checked to be UTF-8.
fn text_bytes<'a>(v: ValueRef<'a>, what: &str) -> Result<&'a [u8], String> {
    match v {
        ValueRef::Text(t) => Ok(t),
        other => Err(format!("{what} is {:?}, not text", other.data_type())),
    }
}

fn utf8<'a>(t: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(t).map_err(|e| format!("{what} is not UTF-8: {e}"))
}

fn integer(v: ValueRef<'_>, what: &str) -> Result<i64, String> {
    match v {
        ValueRef::Integer(i) => Ok(i),
        other => Err(format!("{what} is {:?}, not an integer", other.data_type())),
    }
}

fn uuid(v: ValueRef<'_>, what: &str) -> Result<Uuid, String> {
    match v {
        ValueRef::Blob(b) => match <[u8; 16]>::try_from(b) {
            Ok(bytes) => Ok(Uuid::from_bytes(bytes)),
            Err(_) => Err(format!("{what} is not a 16-byte UUID: {} bytes", b.len())),
        },
        other => Err(format!(
            "{what} is {:?}, not a UUID blob",
            other.data_type()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_decode_as_from_timestamp_nanos_does() {
        const DAY: i64 = 86_400 * 1_000_000_000;
        let mut decoder = Decoder::default();
        let samples = [
            0,
            1,
            -1,
            DAY - 1,
            DAY,
            -DAY,
            -DAY - 1,
            1_700_000_000_123_456_789,
            1_700_000_000_123_456_790,
            1_700_000_000_000_000_000 + DAY,
            -1_000_000_000_000_000_001,
            i64::MIN,
            i64::MAX,
        ];
        // In order and shuffled, so that both the cached and the fresh date are used.
        for nanos in samples.iter().chain(samples.iter().rev()) {
            assert_eq!(
                decoder.time(*nanos),
                DateTime::from_timestamp_nanos(*nanos),
                "{nanos}"
            );
        }
    }

    #[test]
    fn payloads_are_copied_whatever_their_size() {
        let mut decoder = Decoder::default();
        let mut kept = Vec::new();
        for len in [
            0,
            1,
            300,
            PAYLOAD_CHUNKED_MAX,
            PAYLOAD_CHUNKED_MAX + 1,
            100_000,
        ] {
            for fill in 0..20u8 {
                let bytes = vec![fill; len];
                kept.push((decoder.payload(&bytes), bytes));
            }
        }
        for (got, want) in &kept {
            assert_eq!(&got[..], &want[..]);
        }
    }
}
