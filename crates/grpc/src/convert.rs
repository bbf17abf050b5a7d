//! Funnel's recorded events as the protocol's `ReadEvent`s, and Funnel's errors as gRPC statuses.

use crate::proto::event_store::client::streams::read_resp::{self, read_event};
use crate::proto::event_store::client::{StreamIdentifier, Uuid, uuid};
use chrono::{DateTime, Utc};
use funnel_app::{AppError, ErrorKind};
use funnel_store::{RecordedEvent, StoreError};

/// The content type of every event's data: Funnel's payloads are JSON.
pub const CONTENT_TYPE: &str = "application/json";

/// 100-nanosecond ticks since the Unix epoch, as the protocol's `created` metadata carries time.
pub fn ticks(t: DateTime<Utc>) -> i64 {
    t.timestamp() * 10_000_000 + i64::from(t.timestamp_subsec_nanos() / 100)
}

/// A UUID as the clients ask for it (`UUIDOption.string`).
pub fn uuid_string(id: ::uuid::Uuid) -> Uuid {
    Uuid {
        value: Some(uuid::Value::String(id.to_string())),
    }
}

pub fn stream_identifier(name: &str) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: name.as_bytes().to_vec(),
    }
}

/// One event of the log as the protocol carries it:
/// - `data`: the payload as `funnel export events` gives it (decoded, upcast to the current schema
///   version, serialised as JSON), so every reader sees one form of each event;
/// - `metadata`: `type`, `content-type` (`application/json`) and `created` (the recorded time in
///   ticks);
/// - `custom_metadata`: Funnel's envelope as JSON (`event_id`, `event_type`, `schema_version`,
///   `stream`, `version`, `position`, `occurred_at`, `recorded_at`, `actor`, `office`,
///   `command_id`, `correlation_id`, `causation_id`);
/// - revision = version − 1; commit and prepare positions are both Funnel's position.
pub fn read_event(rec: &RecordedEvent) -> Result<read_resp::ReadEvent, tonic::Status> {
    let env =
        funnel_codec::decode_recorded(rec).map_err(|e| tonic::Status::internal(format!("{e}")))?;
    let data = serde_json::to_vec(&funnel_codec::payload_value(&env.payload))
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let custom =
        serde_json::to_vec(&env.meta).map_err(|e| tonic::Status::internal(e.to_string()))?;
    let meta = &env.meta;
    let position = meta.position.0;
    let metadata = [
        ("type".to_string(), meta.event_type.clone()),
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
        ("created".to_string(), ticks(meta.recorded_at).to_string()),
    ]
    .into_iter()
    .collect();
    Ok(read_resp::ReadEvent {
        event: Some(read_event::RecordedEvent {
            id: Some(uuid_string(meta.event_id.0)),
            stream_identifier: Some(stream_identifier(meta.stream.as_str())),
            stream_revision: meta.version.0.saturating_sub(1),
            prepare_position: position,
            commit_position: position,
            metadata,
            custom_metadata: custom,
            data,
        }),
        link: None,
        position: Some(read_event::Position::CommitPosition(position)),
    })
}

/// A refusal in the protocol's form: `PERMISSION_DENIED` with the `exception: access-denied`
/// trailer the clients read, and a message that says why.
pub fn access_denied(message: &str) -> tonic::Status {
    let mut status = tonic::Status::permission_denied(message);
    status.metadata_mut().insert(
        "exception",
        tonic::metadata::MetadataValue::from_static("access-denied"),
    );
    status
}

pub fn app_status(e: AppError) -> tonic::Status {
    let message = format!("{} / {}", e.message_en, e.message_zh);
    match e.kind {
        ErrorKind::Unauthenticated => tonic::Status::unauthenticated(message),
        ErrorKind::Forbidden => access_denied(&message),
        ErrorKind::BadRequest => tonic::Status::invalid_argument(message),
        ErrorKind::NotFound => tonic::Status::not_found(message),
        ErrorKind::Unavailable => tonic::Status::unavailable(message),
        _ => tonic::Status::internal(message),
    }
}

pub fn store_status(e: StoreError) -> tonic::Status {
    tracing::warn!(error = %e, "gRPC read failed in the store");
    tonic::Status::unavailable(format!("the event store failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_count_hundreds_of_nanoseconds_since_the_epoch() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T08:30:00.1234567Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ticks(t), 17_723_538_001_234_567);
        assert_eq!(ticks(DateTime::UNIX_EPOCH), 0);
    }
}
