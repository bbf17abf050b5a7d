//! The envelope every recorded event travels in: who, when, where in the log, and why.

use crate::{Actor, CommandId, CorrelationId, EventId, OfficeId, Position, StreamId, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Facts about an event that are not its business payload. Typed, never a string map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Metadata {
    pub event_id: EventId,
    /// Stable event type name, e.g. `lead.registered`.
    pub event_type: String,
    /// Version of the payload's schema; older payloads are upcast on read.
    pub schema_version: u16,
    pub stream: StreamId,
    /// Dense version within `stream`, starting at 1.
    pub version: Version,
    /// Global position in the log, strictly increasing.
    pub position: Position,
    /// When the business fact happened (given by the command).
    pub occurred_at: DateTime<Utc>,
    /// When the store accepted it.
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    /// The office the fact belongs to, when it belongs to one (used for routing and filters).
    pub office: Option<OfficeId>,
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    /// The event or command that caused this one (a command id, or the event id that triggered a saga).
    pub causation_id: uuid::Uuid,
}

/// A recorded event: its metadata and a typed payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    #[serde(flatten)]
    pub meta: Metadata,
    pub payload: P,
}

impl<P> Envelope<P> {
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Envelope<Q> {
        Envelope {
            meta: self.meta,
            payload: f(self.payload),
        }
    }
}
