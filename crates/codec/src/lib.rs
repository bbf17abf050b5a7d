//! The wire form of events: JSON encoding and decoding of domain events, upcasting of older payload
//! versions, the CloudEvents form, and the JSON Schemas of every event type.
//!
//! The domain crate defines the event types; this crate is the only place that turns them into bytes
//! and back, so the domain stays free of `serde_json`.

mod cloudevents;
mod examples;
mod exchange;
mod schemas;
mod upcast;

pub use cloudevents::{CLOUDEVENTS_TYPE_PREFIX, to_cloudevent};
pub use examples::examples;
pub use exchange::{from_exported, to_ndjson};
pub use schemas::{SchemaFile, schema_files};
pub use upcast::{Upcaster, Upcasters};

use funnel_domain::{EVENT_TYPES, Event};
use funnel_store::RecordedEvent;
use funnel_types::{Envelope, Position};

/// Why a stored event cannot be turned into a domain event. Always names the event's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "event at position {position} has unknown type `{event_type}` (written by a newer Funnel?)"
    )]
    UnknownType {
        position: Position,
        event_type: String,
    },
    #[error(
        "event at position {position} (`{event_type}`) has schema version {version}; this Funnel reads up to {supported}"
    )]
    NewerVersion {
        position: Position,
        event_type: String,
        version: u16,
        supported: u16,
    },
    #[error("event at position {position} (`{event_type}` v{version}) does not decode: {reason}")]
    Malformed {
        position: Position,
        event_type: String,
        version: u16,
        reason: String,
    },
}

impl DecodeError {
    pub fn position(&self) -> Position {
        match self {
            DecodeError::UnknownType { position, .. }
            | DecodeError::NewerVersion { position, .. }
            | DecodeError::Malformed { position, .. } => *position,
        }
    }
}

/// The current schema version of `event_type`, if Funnel knows the type.
pub fn current_version(event_type: &str) -> Option<u16> {
    EVENT_TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, v)| *v)
}

/// The payload of `event` as JSON bytes (the `data` of the event, without the type tag).
pub fn encode(event: &Event) -> Vec<u8> {
    let value = payload_value(event);
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The payload of `event` as a JSON value.
pub fn payload_value(event: &Event) -> serde_json::Value {
    // Serialising the adjacently tagged enum gives {"type": …, "data": …}; keep the data.
    match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(mut m)) => m.remove("data").unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}

/// Decodes a payload of `event_type` at `version`, upcasting older versions with `upcasters`.
pub fn decode_with(
    upcasters: &Upcasters,
    position: Position,
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> Result<Event, DecodeError> {
    let Some(current) = current_version(event_type) else {
        return Err(DecodeError::UnknownType {
            position,
            event_type: event_type.to_string(),
        });
    };
    if version > current {
        return Err(DecodeError::NewerVersion {
            position,
            event_type: event_type.to_string(),
            version,
            supported: current,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        position,
        event_type: event_type.to_string(),
        version,
        reason,
    };
    if version == current {
        // The common case: straight from the bytes into the payload type.
        let mut de = serde_json::Deserializer::from_slice(payload);
        return funnel_domain::deserialize_payload(event_type, &mut de)
            .unwrap_or_else(|| Err(serde::de::Error::custom("unknown event type")))
            .and_then(|event| de.end().map(|()| event))
            .map_err(|e| malformed(e.to_string()));
    }
    let data: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
    let data = upcasters
        .upcast(event_type, version, current, data)
        .map_err(malformed)?;
    funnel_domain::deserialize_payload(event_type, data)
        .unwrap_or_else(|| Err(serde::de::Error::custom("unknown event type")))
        .map_err(|e| malformed(e.to_string()))
}

/// Decodes with the upcasters of this Funnel version.
pub fn decode(
    position: Position,
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> Result<Event, DecodeError> {
    decode_with(Upcasters::builtin(), position, event_type, version, payload)
}

/// Decodes a stored event into a typed envelope. The payload is upcast to the current schema version
/// of its type, and the envelope's `schema_version` says so: the envelope describes the payload it
/// carries (the stored version is still in the log).
pub fn decode_recorded(rec: &RecordedEvent) -> Result<Envelope<Event>, DecodeError> {
    let event = decode(
        rec.meta.position,
        &rec.meta.event_type,
        rec.meta.schema_version,
        &rec.payload,
    )?;
    let mut meta = rec.meta.clone();
    meta.schema_version = event.schema_version();
    Ok(Envelope {
        meta,
        payload: event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_newer_types_are_typed_errors_naming_the_position() {
        let e = decode(Position(7), "lead.teleported", 1, b"{}").unwrap_err();
        assert_eq!(
            e,
            DecodeError::UnknownType {
                position: Position(7),
                event_type: "lead.teleported".into()
            }
        );
        let e = decode(Position(8), "staff.left", 99, b"{}").unwrap_err();
        assert!(matches!(
            e,
            DecodeError::NewerVersion {
                version: 99,
                supported: 1,
                ..
            }
        ));
        assert_eq!(e.position(), Position(8));
        let e = decode(Position(9), "staff.left", 1, b"{not json").unwrap_err();
        assert!(matches!(e, DecodeError::Malformed { .. }));
        assert!(e.to_string().contains("position 9"));
        let e = decode(
            Position(10),
            "staff.left",
            1,
            br#"{"staff_id":"x","reason":""}"#,
        )
        .unwrap_err();
        assert!(matches!(e, DecodeError::Malformed { .. }));
    }
}
