//! Reads: the queries behind `read_stream`, `read_all`, `stream_version` and `head`, and decoding a row
//! into a [`RecordedEvent`]. A row that cannot be decoded is reported as `Corrupt` with its position.

use crate::sql_error;
use bytes::Bytes;
use chrono::DateTime;
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
    collect(rows, max)
}

/// Events after `after` that pass `filter`, at most `max`, in position order.
pub fn read_all(
    conn: &Connection,
    after: Position,
    filter: &Filter,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    filter.validate()?;
    if max == 0 {
        return Ok(Vec::new());
    }
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
            collect(rows, max)
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
            collect(stmt.raw_query(), max)
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

/// The last position in the log, 0 when it is empty.
pub fn head(conn: &Connection) -> Result<Position, StoreError> {
    conn.prepare_cached("SELECT coalesce(max(position), 0) FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map(|p| Position(p as u64))
        .map_err(sql_error)
}

fn collect(mut rows: rusqlite::Rows<'_>, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::with_capacity(max.min(1024));
    let mut decoder = Decoder::default();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(decoder.decode(row)?);
    }
    Ok(out)
}

/// Decodes rows, reusing the last actor and stream when the next row has the same ones (they repeat a
/// lot, and parsing them is most of the decoding cost).
#[derive(Default)]
struct Decoder {
    actor: Option<(String, Actor)>,
    stream: Option<StreamId>,
}

impl Decoder {
    fn decode(&mut self, row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
        let position = row.get::<_, i64>(0).map_err(sql_error)?;
        let corrupt = |reason: String| StoreError::Corrupt {
            position: Position(position as u64),
            reason,
        };
        let field =
            |i: usize| -> Result<ValueRef<'_>, StoreError> { row.get_ref(i).map_err(sql_error) };

        let stream_name = text(field(1)?, "stream").map_err(corrupt)?;
        let stream = match &self.stream {
            Some(s) if s.as_str() == stream_name => s.clone(),
            _ => {
                let s =
                    StreamId::parse(stream_name).map_err(|e| corrupt(format!("stream: {e}")))?;
                self.stream = Some(s.clone());
                s
            }
        };
        let actor_text = text(field(8)?, "actor").map_err(corrupt)?;
        let actor = match &self.actor {
            Some((t, a)) if t == actor_text => a.clone(),
            _ => {
                let a: Actor = serde_json::from_str(actor_text)
                    .map_err(|e| corrupt(format!("actor is not a valid actor: {e}")))?;
                self.actor = Some((actor_text.to_string(), a.clone()));
                a
            }
        };
        let office = match field(9)? {
            ValueRef::Null => None,
            v => Some(OfficeId(uuid(v, "office").map_err(corrupt)?)),
        };
        let payload = match field(13)? {
            ValueRef::Blob(b) | ValueRef::Text(b) => Bytes::copy_from_slice(b),
            other => {
                return Err(corrupt(format!(
                    "payload is {:?}, not bytes",
                    other.data_type()
                )));
            }
        };
        let meta = Metadata {
            event_id: uuid(field(3)?, "event_id").map_err(corrupt)?.into(),
            event_type: text(field(4)?, "event_type").map_err(corrupt)?.to_string(),
            schema_version: u16::try_from(integer(field(5)?, "schema_version").map_err(corrupt)?)
                .map_err(|_| corrupt("schema_version is out of range".into()))?,
            stream,
            version: Version(
                u64::try_from(integer(field(2)?, "version").map_err(corrupt)?)
                    .map_err(|_| corrupt("version is negative".into()))?,
            ),
            position: Position(position as u64),
            occurred_at: DateTime::from_timestamp_nanos(
                integer(field(6)?, "occurred_at").map_err(corrupt)?,
            ),
            recorded_at: DateTime::from_timestamp_nanos(
                integer(field(7)?, "recorded_at").map_err(corrupt)?,
            ),
            actor,
            office,
            command_id: uuid(field(10)?, "command_id").map_err(corrupt)?.into(),
            correlation_id: uuid(field(11)?, "correlation_id").map_err(corrupt)?.into(),
            causation_id: uuid(field(12)?, "causation_id").map_err(corrupt)?,
        };
        Ok(RecordedEvent { meta, payload })
    }
}

fn text<'a>(v: ValueRef<'a>, what: &str) -> Result<&'a str, String> {
    match v {
        ValueRef::Text(t) => {
            std::str::from_utf8(t).map_err(|e| format!("{what} is not UTF-8: {e}"))
        }
        other => Err(format!("{what} is {:?}, not text", other.data_type())),
    }
}

fn integer(v: ValueRef<'_>, what: &str) -> Result<i64, String> {
    match v {
        ValueRef::Integer(i) => Ok(i),
        other => Err(format!("{what} is {:?}, not an integer", other.data_type())),
    }
}

fn uuid(v: ValueRef<'_>, what: &str) -> Result<Uuid, String> {
    match v {
        ValueRef::Blob(b) => {
            Uuid::from_slice(b).map_err(|e| format!("{what} is not a 16-byte UUID: {e}"))
        }
        other => Err(format!(
            "{what} is {:?}, not a UUID blob",
            other.data_type()
        )),
    }
}
