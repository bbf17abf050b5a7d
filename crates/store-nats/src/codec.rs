//! The wire form of one commit (one JetStream message per command): subject, headers, body, and
//! the position arithmetic. Everything here is pure; decoding never panics and reports damage as
//! [`StoreError::Corrupt`].
//!
//! The command id of a commit is in its `FNL3` body; an older `FNL2` commit has it only in its
//! `Nats-Msg-Id` header.

use crate::body::{self, BodyPrefix};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_store::{ProposedEvent, RecordedEvent, StoreError};
use funnel_types::{CommandId, Metadata, Position, StreamId, Version};

/// Broker deduplication id: the command id, sent with `Any`/`Exists` appends (and with every append
/// before `FNL3`, whose commits keep their command id only here: JetStream stores the header with
/// the message).
pub(crate) const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Optimistic concurrency: the stream sequence of the subject's last message (0: no message).
pub(crate) const HEADER_EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";

/// The commit's link in its subject's hash chain (see `chain.rs`), lower-case hex.
pub(crate) const HEADER_CHAIN: &str = "Funnel-Chain";

/// Positions reserved per message: position = stream sequence × 1024 + index in the commit.
pub(crate) const POSITIONS_PER_COMMIT: u64 = 1024;

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
    let (category, id) = (stream.category(), stream.id_part());
    let mut subject = String::with_capacity(prefix.len() + 6 + category.len() + id.len());
    subject.push_str(prefix);
    subject.push_str(".log.");
    subject.push_str(category);
    subject.push('.');
    subject.push_str(id);
    subject
}

/// The stream named by a commit subject, if the subject is one.
pub(crate) fn stream_of_subject(prefix: &str, subject: &str) -> Option<StreamId> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".log.")?;
    let (category, id) = rest.split_once('.')?;
    let mut name = String::with_capacity(category.len() + 1 + id.len());
    name.push_str(category);
    name.push('-');
    name.push_str(id);
    StreamId::parse(name).ok()
}

/// Encodes the events of command `command_id`, whose last event gets version `last_version`, as a
/// commit body (see [`crate::body`]).
pub(crate) fn encode_body(
    last_version: Version,
    command_id: CommandId,
    events: &[ProposedEvent],
) -> Result<Bytes, StoreError> {
    body::encode(last_version.0, command_id, events)
}

/// Where a commit sits: enough to answer a duplicate without decoding its events.
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

fn corrupt_at(seq: u64, reason: String) -> StoreError {
    StoreError::Corrupt {
        position: position(seq, 0),
        reason,
    }
}

/// Reads where the message at `seq` sits from its body's prefix (and, for an `FNL2` body, its
/// `Nats-Msg-Id` header).
pub(crate) fn decode_head(
    seq: u64,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<CommitHead, StoreError> {
    decode_prefix(seq, headers, payload).map(|(head, _)| head)
}

/// [`decode_head`], and the body's prefix.
fn decode_prefix(
    seq: u64,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<(CommitHead, BodyPrefix), StoreError> {
    let prefix = body::read_prefix(payload).map_err(|reason| corrupt_at(seq, reason))?;
    let command_id = match prefix.command_id {
        Some(id) => id,
        None => command_id_of(headers).ok_or_else(|| {
            corrupt_at(
                seq,
                format!("FNL2 commit whose header {HEADER_MSG_ID} is missing or not a UUID"),
            )
        })?,
    };
    let BodyPrefix {
        last_version,
        count,
        ..
    } = prefix;
    let count = u64::from(count);
    if count == 0 || count >= POSITIONS_PER_COMMIT || count > last_version {
        return Err(corrupt_at(
            seq,
            format!("{count} events ending at version {last_version} is impossible"),
        ));
    }
    let head = CommitHead {
        seq,
        last_version: Version(last_version),
        count,
        command_id,
    };
    Ok((head, prefix))
}

/// Only the command id of a message, if it has a readable one (duplicate scans): from an `FNL3`
/// body, or the `Nats-Msg-Id` header of an `FNL2` one.
pub(crate) fn command_id_in(headers: Option<&HeaderMap>, payload: &[u8]) -> Option<CommandId> {
    match body::read_prefix(payload) {
        Ok(prefix) => prefix.command_id.or_else(|| command_id_of(headers)),
        Err(_) => None,
    }
}

/// The `Nats-Msg-Id` header as a command id, if it is one.
fn command_id_of(headers: Option<&HeaderMap>) -> Option<CommandId> {
    headers?.get(HEADER_MSG_ID)?.as_str().parse().ok()
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

/// Decodes a whole commit (headers and body). Payloads are slices of the message's payload, not
/// copies.
pub(crate) fn decode_commit(prefix: &str, raw: &RawCommit<'_>) -> Result<Commit, StoreError> {
    let corrupt = |reason: String| corrupt_at(raw.seq, reason);
    let stream = stream_of_subject(prefix, raw.subject)
        .ok_or_else(|| corrupt(format!("subject `{}` does not name a stream", raw.subject)))?;
    let (head, layout) = decode_prefix(raw.seq, raw.headers, raw.payload)?;
    let recorded_at = i64::try_from(raw.time_nanos)
        .ok()
        .map(DateTime::<Utc>::from_timestamp_nanos)
        .ok_or_else(|| corrupt("message timestamp out of range".into()))?;
    let body = raw.payload;
    let mut reader = body::Reader::events(body, &layout);
    let first = head.first_version().0;
    let mut events = Vec::with_capacity(head.count as usize);
    // The last event takes the stream name; the others clone it.
    let mut stream = Some(stream);
    for index in 0..head.count {
        let e = reader
            .event()
            .map_err(|reason| corrupt(format!("event {index}: {reason}")))?;
        let stream = if index + 1 == head.count {
            stream.take()
        } else {
            stream.clone()
        }
        .ok_or_else(|| corrupt("stream name used up".into()))?;
        events.push(RecordedEvent {
            meta: Metadata {
                event_id: e.event_id,
                event_type: e.event_type.to_owned(),
                schema_version: e.schema_version,
                stream,
                version: Version(first + index),
                position: position(raw.seq, index),
                occurred_at: e.occurred_at,
                recorded_at,
                actor: e.actor,
                office: e.office,
                command_id: head.command_id,
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
            },
            payload: body.slice(e.payload),
        });
    }
    if reader.remaining() != 0 {
        return Err(corrupt(format!(
            "{} bytes after the last event",
            reader.remaining()
        )));
    }
    Ok(Commit { head, events })
}

#[cfg(test)]
mod tests {
    use super::*;
    use funnel_types::{Actor, CorrelationId, EventId, OfficeId, Role, StaffId};

    fn proposed(payload: &'static str) -> ProposedEvent {
        ProposedEvent {
            event_id: EventId::new(),
            event_type: "lead.registered".into(),
            schema_version: 2,
            occurred_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap_or_default(),
            actor: Actor::system("test·归属"),
            office: Some(OfficeId::new()),
            correlation_id: CorrelationId::new(),
            causation_id: uuid::Uuid::now_v7(),
            payload: Bytes::from_static(payload.as_bytes()),
        }
    }

    fn headers(command: CommandId) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_MSG_ID, command.to_string().as_str());
        h
    }

    #[test]
    fn a_commit_round_trips_with_exact_payload_bytes() {
        let mut events = vec![proposed(" {\"a\": 1.50 } "), proposed("[]"), proposed("")];
        events[1].actor = Actor::staff(StaffId::new(), Role::KeyAccountDepartment);
        events[1].office = None;
        events[1].schema_version = u16::MAX;
        // A leap second and a time before the epoch.
        events[1].occurred_at =
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap_or_default();
        events[2].occurred_at = DateTime::from_timestamp(-1, 1).unwrap_or_default();
        let command = CommandId::new();
        let h = headers(command);
        let v3 = encode_body(Version(8), command, &events).expect("encode");
        assert!(v3.starts_with(b"FNL3"));
        let v2 = body::encode_v2(8, &events).expect("encode FNL2");
        assert!(v2.starts_with(b"FNL2"));
        assert_eq!(v3.len(), v2.len() + 16);
        let subject = subject_for("funnel", &StreamId::parse("lead-abc_1-2").expect("stream"));
        assert_eq!(subject, "funnel.log.lead.abc_1-2");
        // FNL3 carries its command id (with or without a `Nats-Msg-Id` header); FNL2 in the header.
        for (body, headers) in [(&v3, None), (&v3, Some(&h)), (&v2, Some(&h))] {
            let raw = RawCommit {
                subject: &subject,
                seq: 5,
                headers,
                payload: body,
                time_nanos: 1_000,
            };
            let commit = decode_commit("funnel", &raw).expect("decode");
            assert_eq!(commit.head.first_version(), Version(6));
            assert_eq!(commit.head.last_position(), Position(5 * 1024 + 2));
            assert_eq!(commit.head.command_id, command);
            assert_eq!(commit.events.len(), 3);
            for (i, (got, want)) in commit.events.iter().zip(&events).enumerate() {
                assert_eq!(got.payload, want.payload);
                assert_eq!(got.meta.event_id, want.event_id);
                assert_eq!(got.meta.event_type, want.event_type);
                assert_eq!(got.meta.schema_version, want.schema_version);
                assert_eq!(got.meta.occurred_at, want.occurred_at);
                assert_eq!(got.meta.actor, want.actor);
                assert_eq!(got.meta.office, want.office);
                assert_eq!(got.meta.correlation_id, want.correlation_id);
                assert_eq!(got.meta.causation_id, want.causation_id);
                assert_eq!(got.meta.version, Version(6 + i as u64));
                assert_eq!(got.meta.position, Position(5 * 1024 + i as u64));
                assert_eq!(got.meta.command_id, command);
                assert_eq!(got.meta.stream.as_str(), "lead-abc_1-2");
                assert_eq!(got.meta.recorded_at.timestamp_nanos_opt(), Some(1_000));
            }
            assert_eq!(decode_head(5, headers, body).expect("head"), commit.head);
            assert_eq!(command_id_in(headers, body), Some(command));
        }
        // Correlation and causation ids equal to the command id are not stored, and read back.
        let mut own = events.clone();
        for (i, e) in own.iter_mut().enumerate() {
            if i != 1 {
                e.correlation_id = CorrelationId(command.0);
            }
            if i != 2 {
                e.causation_id = command.0;
            }
        }
        let compact = encode_body(Version(8), command, &own).expect("encode");
        assert_eq!(compact.len(), v3.len() - 4 * 16);
        let raw = RawCommit {
            subject: &subject,
            seq: 5,
            headers: None,
            payload: &compact,
            time_nanos: 1_000,
        };
        let commit = decode_commit("funnel", &raw).expect("decode compact");
        for (got, want) in commit.events.iter().zip(&own) {
            assert_eq!(got.meta.event_id, want.event_id);
            assert_eq!(got.meta.correlation_id, want.correlation_id);
            assert_eq!(got.meta.causation_id, want.causation_id);
            assert_eq!(got.meta.office, want.office);
            assert_eq!(got.meta.actor, want.actor);
            assert_eq!(got.payload, want.payload);
        }
        // A FNL3 body's command id wins over a header that says otherwise.
        let other = headers(CommandId::new());
        assert_eq!(command_id_in(Some(&other), &v3), Some(command));
        assert_eq!(command_id_in(None, &v2), None);
        assert_eq!(command_id_in(Some(&h), b"garbage"), None);
    }

    #[test]
    fn damage_is_reported_as_corrupt_at_the_commit_position() {
        let command = CommandId::new();
        let h = headers(command);
        let mut empty = HeaderMap::new();
        empty.insert("Other", "x");
        let v3 = encode_body(Version(1), command, &[proposed("{}")]).expect("encode");
        let v2 = body::encode_v2(1, &[proposed("{}")]).expect("encode FNL2");
        let mut cases: Vec<(&str, Option<&HeaderMap>, Bytes)> = vec![(
            "funnel.log.lead.x",
            Some(&h),
            Bytes::from_static(b"garbage"),
        )];
        // Where the flags of the first event are.
        let v3_flags = body::PREFIX_LEN;
        let v2_flags = body::PREFIX_LEN_V2 + 3 * 16 + 8 + 4 + 2;
        for (body, events_at, flags_at) in [
            (&v3, body::PREFIX_LEN, v3_flags),
            (&v2, body::PREFIX_LEN_V2, v2_flags),
        ] {
            let mut old = body.to_vec();
            old[..4].copy_from_slice(b"FNL1");
            let mut flags = body.to_vec();
            flags[flags_at] = 0x80;
            let mut extra = body.to_vec();
            extra.push(0);
            let mut count = body.to_vec();
            count[12..14].copy_from_slice(&2u16.to_be_bytes());
            cases.extend([
                ("funnel.log.lead.x", Some(&h), Bytes::from(old)),
                ("funnel.log.lead.x", Some(&h), Bytes::from(flags)),
                ("funnel.log.lead.x", Some(&h), Bytes::from(extra)),
                ("funnel.log.lead.x", Some(&h), Bytes::from(count)),
                ("funnel.log.lead.x", Some(&h), body.slice(..body.len() - 1)),
                ("funnel.log.lead.x", Some(&h), body.slice(..events_at - 1)),
                ("funnel.log.x", Some(&h), body.clone()),
            ]);
        }
        // FNL3 flags an FNL2 body cannot have.
        let mut v2_with_v3_flags = v2.to_vec();
        v2_with_v3_flags[v2_flags] |= 2;
        cases.push(("funnel.log.lead.x", Some(&h), Bytes::from(v2_with_v3_flags)));
        // An FNL2 commit without a readable command id header.
        cases.push(("funnel.log.lead.x", None, v2.clone()));
        cases.push(("funnel.log.lead.x", Some(&empty), v2.clone()));
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
        // Two events cannot end at version 1.
        let two = [proposed("{}"), proposed("{}")];
        let two_v3 = encode_body(Version(1), command, &two).expect("encode");
        let two_v2 = body::encode_v2(1, &two).expect("encode FNL2");
        for body in [two_v3, two_v2] {
            assert!(matches!(
                decode_head(1, Some(&h), &body),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn oversized_fields_are_refused_when_encoding() {
        let mut e = proposed("{}");
        e.event_type = "x".repeat(70_000);
        assert!(matches!(
            encode_body(Version(1), CommandId::new(), &[e]),
            Err(StoreError::TooLarge { .. })
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
