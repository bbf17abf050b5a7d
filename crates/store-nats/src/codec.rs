//! The wire form of one commit (one JetStream message per command): subject, headers, body, and
//! the position arithmetic. Everything here is pure; decoding never panics and reports damage as
//! [`StoreError::Corrupt`].

use async_nats::HeaderMap;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use funnel_store::{ProposedEvent, RecordedEvent, StoreError};
use funnel_types::{
    Actor, CommandId, CorrelationId, EventId, Metadata, OfficeId, Position, StreamId, Version,
};
use serde::{Deserialize, Serialize};

/// Broker deduplication id: the command id.
pub(crate) const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Optimistic concurrency: the stream sequence of the subject's last message (0: no message).
pub(crate) const HEADER_EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
/// Dense stream version of the commit's last event.
pub(crate) const HEADER_VERSION: &str = "Funnel-Version";
/// Number of events in the commit.
pub(crate) const HEADER_COUNT: &str = "Funnel-Count";
/// The command id, kept durably (the broker forgets `Nats-Msg-Id` after its dedup window).
pub(crate) const HEADER_COMMAND_ID: &str = "Funnel-Command-Id";

/// Positions reserved per message: position = stream sequence × 1024 + index in the commit.
pub(crate) const POSITIONS_PER_COMMIT: u64 = 1024;

/// Magic prefix of a commit body, format version 1.
const MAGIC: &[u8; 4] = b"FNL1";

/// The position of event `index` of the commit stored at stream sequence `seq`.
pub(crate) fn position(seq: u64, index: u64) -> Position {
    Position(seq * POSITIONS_PER_COMMIT + index)
}

/// The stream sequence holding position `p` (the commit it falls in, or would fall in).
pub(crate) fn sequence_of(p: Position) -> u64 {
    p.0 / POSITIONS_PER_COMMIT
}

/// The subject of a stream's commits: `<prefix>.log.<category>.<id part>`.
pub(crate) fn subject_for(prefix: &str, stream: &StreamId) -> String {
    format!("{prefix}.log.{}.{}", stream.category(), stream.id_part())
}

/// The stream named by a commit subject, if the subject is one.
pub(crate) fn stream_of_subject(prefix: &str, subject: &str) -> Option<StreamId> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".log.")?;
    let (category, id) = rest.split_once('.')?;
    StreamId::new(category, id).ok()
}

/// Per-event metadata as stored in the body. Stream, version, position, recorded time and command
/// id are not repeated per event: they follow from the subject, headers and message.
#[derive(Serialize, Deserialize)]
struct WireMeta {
    event_id: EventId,
    event_type: String,
    schema_version: u16,
    occurred_at: DateTime<Utc>,
    actor: Actor,
    office: Option<OfficeId>,
    correlation_id: CorrelationId,
    causation_id: uuid::Uuid,
}

/// Encodes the events of one command: `FNL1`, then per event a big-endian `u32` length and the
/// metadata JSON, a `u32` length and the payload bytes exactly as given.
pub(crate) fn encode_body(events: &[ProposedEvent]) -> Result<Bytes, StoreError> {
    let mut out =
        BytesMut::with_capacity(4 + events.iter().map(|e| e.payload.len() + 320).sum::<usize>());
    out.put_slice(MAGIC);
    for e in events {
        let meta = WireMeta {
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            occurred_at: e.occurred_at,
            actor: e.actor.clone(),
            office: e.office,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
        };
        let json = serde_json::to_vec(&meta).map_err(|err| {
            StoreError::InvalidRequest(format!("event metadata cannot be encoded: {err}"))
        })?;
        put_len(&mut out, json.len())?;
        out.put_slice(&json);
        put_len(&mut out, e.payload.len())?;
        out.put_slice(&e.payload);
    }
    Ok(out.freeze())
}

fn put_len(out: &mut BytesMut, len: usize) -> Result<(), StoreError> {
    let len = u32::try_from(len).map_err(|_| StoreError::TooLarge {
        what: "bytes in one encoded field",
        size: len,
        limit: u32::MAX as usize,
    })?;
    out.put_u32(len);
    Ok(())
}

/// The headers of a commit that say where it sits: enough to answer a duplicate without reading
/// the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommitHead {
    pub seq: u64,
    pub last_version: Version,
    pub count: u64,
    pub command_id: CommandId,
}

impl CommitHead {
    pub fn first_version(&self) -> Version {
        Version(self.last_version.0 + 1 - self.count)
    }

    pub fn first_position(&self) -> Position {
        position(self.seq, 0)
    }

    pub fn last_position(&self) -> Position {
        position(self.seq, self.count - 1)
    }
}

/// Reads the Funnel headers of the message at `seq`.
pub(crate) fn decode_head(seq: u64, headers: Option<&HeaderMap>) -> Result<CommitHead, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        position: position(seq, 0),
        reason,
    };
    let headers = headers.ok_or_else(|| corrupt("message has no headers".into()))?;
    let get = |name: &str| {
        headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .ok_or_else(|| corrupt(format!("header {name} is missing")))
    };
    let version: u64 = get(HEADER_VERSION)?
        .parse()
        .map_err(|_| corrupt(format!("header {HEADER_VERSION} is not a number")))?;
    let count: u64 = get(HEADER_COUNT)?
        .parse()
        .map_err(|_| corrupt(format!("header {HEADER_COUNT} is not a number")))?;
    if count == 0 || count >= POSITIONS_PER_COMMIT || count > version {
        return Err(corrupt(format!(
            "{count} events ending at version {version} is impossible"
        )));
    }
    let command_id: CommandId = get(HEADER_COMMAND_ID)?
        .parse()
        .map_err(|_| corrupt(format!("header {HEADER_COMMAND_ID} is not a UUID")))?;
    Ok(CommitHead {
        seq,
        last_version: Version(version),
        count,
        command_id,
    })
}

/// Only the command id of a message, if it has a readable one (used by duplicate scans).
pub(crate) fn command_id_of(headers: Option<&HeaderMap>) -> Option<CommandId> {
    headers?.get(HEADER_COMMAND_ID)?.as_str().parse().ok()
}

/// A stored message as both read paths (direct message get, consumer) deliver it.
pub(crate) struct RawCommit<'a> {
    pub subject: &'a str,
    pub seq: u64,
    pub headers: Option<&'a HeaderMap>,
    pub payload: &'a Bytes,
    /// The broker's timestamp of the message, in nanoseconds since the Unix epoch.
    pub time_nanos: i128,
}

/// A decoded commit: where it sits and its events.
pub(crate) struct Commit {
    pub head: CommitHead,
    pub events: Vec<RecordedEvent>,
}

/// Decodes a whole commit (headers and body).
pub(crate) fn decode_commit(prefix: &str, raw: &RawCommit<'_>) -> Result<Commit, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        position: position(raw.seq, 0),
        reason,
    };
    let stream = stream_of_subject(prefix, raw.subject)
        .ok_or_else(|| corrupt(format!("subject `{}` does not name a stream", raw.subject)))?;
    let head = decode_head(raw.seq, raw.headers)?;
    let recorded_at = i64::try_from(raw.time_nanos)
        .ok()
        .map(DateTime::<Utc>::from_timestamp_nanos)
        .ok_or_else(|| corrupt("message timestamp out of range".into()))?;
    let body = raw.payload;
    if body.len() < MAGIC.len() || &body[..MAGIC.len()] != MAGIC {
        return Err(corrupt(
            "body does not start with the FNL1 commit marker".into(),
        ));
    }
    let mut at = MAGIC.len();
    let mut take = |what: &str| -> Result<Bytes, StoreError> {
        let len_end = at + 4;
        if body.len() < len_end {
            return Err(corrupt(format!("body ends inside the length of {what}")));
        }
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&body[at..len_end]);
        let end = len_end + u32::from_be_bytes(len_bytes) as usize;
        if body.len() < end {
            return Err(corrupt(format!("body ends inside {what}")));
        }
        at = end;
        Ok(body.slice(len_end..end))
    };
    let first = head.first_version().0;
    let mut events = Vec::with_capacity(head.count as usize);
    for index in 0..head.count {
        let meta_json = take("event metadata")?;
        let payload = take("an event payload")?;
        let wire: WireMeta = serde_json::from_slice(&meta_json)
            .map_err(|err| corrupt(format!("event {index} metadata is not valid: {err}")))?;
        events.push(RecordedEvent {
            meta: Metadata {
                event_id: wire.event_id,
                event_type: wire.event_type,
                schema_version: wire.schema_version,
                stream: stream.clone(),
                version: Version(first + index),
                position: position(raw.seq, index),
                occurred_at: wire.occurred_at,
                recorded_at,
                actor: wire.actor,
                office: wire.office,
                command_id: head.command_id,
                correlation_id: wire.correlation_id,
                causation_id: wire.causation_id,
            },
            payload,
        });
    }
    if at != body.len() {
        return Err(corrupt(format!(
            "{} bytes after the last event",
            body.len() - at
        )));
    }
    Ok(Commit { head, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed(payload: &'static str) -> ProposedEvent {
        ProposedEvent {
            event_id: EventId::new(),
            event_type: "lead.registered".into(),
            schema_version: 2,
            occurred_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap_or_default(),
            actor: Actor::system("test"),
            office: Some(OfficeId::new()),
            correlation_id: CorrelationId::new(),
            causation_id: uuid::Uuid::now_v7(),
            payload: Bytes::from_static(payload.as_bytes()),
        }
    }

    fn headers(version: u64, count: u64, command: CommandId) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_VERSION, version.to_string().as_str());
        h.insert(HEADER_COUNT, count.to_string().as_str());
        h.insert(HEADER_COMMAND_ID, command.to_string().as_str());
        h
    }

    #[test]
    fn a_commit_round_trips_with_exact_payload_bytes() {
        let events = vec![proposed(" {\"a\": 1.50 } "), proposed("[]")];
        let body = encode_body(&events).expect("encode");
        let command = CommandId::new();
        let h = headers(7, 2, command);
        let subject = subject_for("funnel", &StreamId::parse("lead-abc_1-2").expect("stream"));
        assert_eq!(subject, "funnel.log.lead.abc_1-2");
        let raw = RawCommit {
            subject: &subject,
            seq: 5,
            headers: Some(&h),
            payload: &body,
            time_nanos: 1_000,
        };
        let commit = decode_commit("funnel", &raw).expect("decode");
        assert_eq!(commit.head.first_version(), Version(6));
        assert_eq!(commit.head.last_position(), Position(5 * 1024 + 1));
        for (i, (got, want)) in commit.events.iter().zip(&events).enumerate() {
            assert_eq!(got.payload, want.payload);
            assert_eq!(got.meta.event_id, want.event_id);
            assert_eq!(got.meta.occurred_at, want.occurred_at);
            assert_eq!(got.meta.version, Version(6 + i as u64));
            assert_eq!(got.meta.position, Position(5 * 1024 + i as u64));
            assert_eq!(got.meta.command_id, command);
            assert_eq!(got.meta.stream.as_str(), "lead-abc_1-2");
        }
    }

    #[test]
    fn damage_is_reported_as_corrupt_at_the_commit_position() {
        let body = encode_body(&[proposed("{}")]).expect("encode");
        let h = headers(1, 1, CommandId::new());
        let cases: Vec<(&str, Option<&HeaderMap>, Bytes)> = vec![
            (
                "funnel.log.lead.x",
                Some(&h),
                Bytes::from_static(b"garbage"),
            ),
            ("funnel.log.lead.x", Some(&h), body.slice(..body.len() - 1)),
            ("funnel.log.lead.x", None, body.clone()),
            ("funnel.log.x", Some(&h), body.clone()),
        ];
        for (subject, headers, payload) in cases {
            let raw = RawCommit {
                subject,
                seq: 3,
                headers,
                payload: &payload,
                time_nanos: 0,
            };
            match decode_commit("funnel", &raw) {
                Err(StoreError::Corrupt { position, .. }) => {
                    assert_eq!(position, Position(3 * 1024))
                }
                Err(e) => panic!("expected Corrupt, got {e}"),
                Ok(_) => panic!("damaged commit decoded"),
            }
        }
        let bad = headers(1, 2, CommandId::new());
        assert!(matches!(
            decode_head(1, Some(&bad)),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn subjects_name_streams_and_nothing_else() {
        let s = StreamId::parse("order-A_b-c").expect("stream");
        assert_eq!(stream_of_subject("p.q", &subject_for("p.q", &s)), Some(s));
        assert_eq!(stream_of_subject("funnel", "funnel.log.lead"), None);
        assert_eq!(stream_of_subject("funnel", "other.log.lead.x"), None);
        assert_eq!(sequence_of(position(9, 1023)), 9);
    }
}
