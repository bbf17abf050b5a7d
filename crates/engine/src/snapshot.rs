//! The engine's snapshot format: what [`funnel_store::Snapshot::data`] holds.
//!
//! ```text
//! "FSNP"  u16 format (1)  u32 state version (STATE_VERSION)  MessagePack body (fields by position)
//! body: stream name, version, last event id, last event position, last office named, plan office,
//!       state (by category), command index
//! ```
//!
//! A snapshot is used only when every part fits: the marker, the format, the state version, the
//! stream and version it claims, the body decoding, and the last event it names being the stream's
//! event at that version (checked against the log when it is read). Anything else — a snapshot of
//! another domain version, a damaged one, one copied from another log — is ignored, the stream is
//! folded from the log and a new snapshot replaces it.

use crate::aggregate::{Folded, Persisted};
use crate::cache::Cached;
use crate::index::CommandIndex;
use bytes::Bytes;
use funnel_types::{EventId, OfficeId, Position, StreamId, Version};
use serde::{Deserialize, Serialize};

const MARKER: &[u8; 4] = b"FSNP";
const FORMAT: u16 = 1;

/// The version of what a snapshot holds: the shapes of the domain states (`LeadState`,
/// `StaffState`, `OfficeState`), what their `evolve` functions make of the events, and the command
/// index. Raise it with any change to one of them: every snapshot of an older state version is
/// then ignored and rebuilt from the log. The golden test in `tests/snapshots.rs` fails when the
/// encoding of a fixed state changes.
pub const STATE_VERSION: u32 = 3;

#[derive(Serialize, Deserialize)]
struct Body {
    stream: String,
    version: u64,
    last_event_id: EventId,
    last_position: u64,
    last_office: Option<OfficeId>,
    plan_office: Option<OfficeId>,
    state: Persisted,
    index: CommandIndex,
}

/// The snapshot of `cached`, when its category keeps snapshots and it has events.
pub(crate) fn encode(stream: &StreamId, cached: &Cached) -> Option<Bytes> {
    encode_as(stream, cached, STATE_VERSION)
}

pub(crate) fn encode_as(stream: &StreamId, cached: &Cached, state_version: u32) -> Option<Bytes> {
    let body = Body {
        stream: stream.as_str().to_string(),
        version: cached.version?.0,
        last_event_id: cached.last_event_id?,
        last_position: cached.last_position.0,
        last_office: cached.folded.last_office,
        plan_office: cached.folded.plan_office,
        state: cached.folded.persisted()?,
        index: cached.index.clone(),
    };
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(MARKER);
    out.extend_from_slice(&FORMAT.to_be_bytes());
    out.extend_from_slice(&state_version.to_be_bytes());
    rmp_serde::encode::write(&mut out, &body).ok()?;
    Some(Bytes::from(out))
}

/// The stream as a snapshot says it was at `version`, or `None` when the snapshot does not fit
/// (see the module documentation). The last event is still to be checked against the log.
pub(crate) fn decode(stream: &StreamId, version: Version, data: &[u8]) -> Option<Cached> {
    let rest = data.strip_prefix(MARKER)?;
    let (format, rest) = rest.split_at_checked(2)?;
    let (state_version, rest) = rest.split_at_checked(4)?;
    if u16::from_be_bytes(format.try_into().ok()?) != FORMAT
        || u32::from_be_bytes(state_version.try_into().ok()?) != STATE_VERSION
    {
        return None;
    }
    let body: Body = rmp_serde::from_slice(rest).ok()?;
    if body.stream != stream.as_str() || body.version != version.0 || body.version == 0 {
        return None;
    }
    let folded = Folded::from_persisted(stream, body.state, body.last_office, body.plan_office)?;
    Some(Cached {
        folded,
        index: body.index,
        version: Some(version),
        last_position: Position(body.last_position),
        last_event_id: Some(body.last_event_id),
        snapshot_version: version.0,
        snapshot_bytes: data.len(),
        checked: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use funnel_domain::Event;
    use funnel_domain::events::StaffJoined;
    use funnel_types::{Actor, CommandId, CorrelationId, Envelope, Metadata, Role, StaffId};

    fn joined() -> (StreamId, Cached) {
        let id = StaffId::derived("golden");
        let stream = StreamId::new("staff", id).expect("stream");
        let mut cached = Cached::empty(&stream);
        let command = CommandId::derived("golden join");
        cached.apply(&Envelope {
            meta: Metadata {
                event_id: EventId(uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    b"golden event",
                )),
                event_type: "staff.joined".into(),
                schema_version: 1,
                stream: stream.clone(),
                version: Version(1),
                position: Position(7),
                occurred_at: chrono::DateTime::UNIX_EPOCH,
                recorded_at: chrono::DateTime::UNIX_EPOCH,
                actor: Actor::system("bootstrap"),
                office: None,
                command_id: command,
                correlation_id: CorrelationId(command.0),
                causation_id: command.0,
            },
            payload: Event::StaffJoined(StaffJoined {
                staff_id: id,
                name: "金样".into(),
                role: Role::SalesEngineer,
                office: Some(OfficeId::derived("golden office")),
            }),
        });
        (stream, cached)
    }

    #[test]
    fn a_snapshot_reads_back_as_the_state_it_was_made_of() {
        let (stream, cached) = joined();
        let data = encode(&stream, &cached).expect("staff streams keep snapshots");
        let back = decode(&stream, Version(1), &data).expect("decodes");
        assert_eq!(back.folded, cached.folded);
        assert_eq!(back.index, cached.index);
        assert_eq!(back.last_event_id, cached.last_event_id);
        assert_eq!(back.last_position, cached.last_position);
    }

    #[test]
    fn a_snapshot_that_does_not_fit_is_not_used() {
        let (stream, cached) = joined();
        let data = encode(&stream, &cached).expect("encodes");
        let other_domain = encode_as(&stream, &cached, STATE_VERSION + 1).expect("encodes");
        assert!(
            decode(&stream, Version(1), &other_domain).is_none(),
            "another state version"
        );
        let older_domain = encode_as(&stream, &cached, STATE_VERSION - 1).expect("encodes");
        assert!(
            decode(&stream, Version(1), &older_domain).is_none(),
            "an older state version"
        );
        assert!(
            decode(&stream, Version(2), &data).is_none(),
            "another version than claimed"
        );
        let other = StreamId::new("staff", StaffId::derived("other")).expect("stream");
        assert!(
            decode(&other, Version(1), &data).is_none(),
            "another stream's snapshot"
        );
        for cut in [0, 3, 9, data.len() / 2, data.len() - 1] {
            assert!(
                decode(&stream, Version(1), &data[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        let mut flipped = data.to_vec();
        flipped[0] = b'X';
        assert!(
            decode(&stream, Version(1), &flipped).is_none(),
            "another marker"
        );
    }

    /// The bytes of a fixed snapshot. When this fails, the shape of a domain state or of the
    /// command index changed: raise `STATE_VERSION` (old snapshots must not be read as new ones)
    /// and write the new bytes here.
    #[test]
    fn golden_snapshot_bytes() {
        let (stream, cached) = joined();
        let data = encode(&stream, &cached).expect("encodes");
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, GOLDEN,
            "snapshot encoding changed: raise STATE_VERSION"
        );
    }

    const GOLDEN: &str = concat!(
        "46534e5000010000000398d92a73746166662d31313237653531622d643665662d353863662d613732342d32",
        "323362316637643861323201c4107c4405e7f6f852d1a1c0bb40f3225d7f07c410ce67fcef27d95bcfaf6113",
        "6c7386d041c081a553746166669cc4101127e51bd6ef58cfa724223b1f7d8a22a6e98791e6a0b7ae73616c65",
        "735f656e67696e656572c410ce67fcef27d95bcfaf61136c7386d041c38090c0c2c0c0c0959181a653797374",
        "656da9626f6f74737472617081c410ba40ad8b7cfe5b4bb3a2ca74bbd2d61794010100c380c410ba40ad8b7c",
        "fe5b4bb3a2ca74bbd2d617c2",
    );
}
