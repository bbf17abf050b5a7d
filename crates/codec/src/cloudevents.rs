//! The CloudEvents 1.0 JSON form of a recorded event, so foreign consumers can read Funnel's log
//! with their own CloudEvents libraries. Funnel's envelope facts travel as extension attributes
//! (lower-case alphanumeric names, string or integer values, as the specification requires).

use funnel_domain::Event;
use funnel_types::{Actor, Envelope};
use serde_json::{Value, json};

/// Prefix of the CloudEvents `type`: `funnel.lead.registered`.
pub const CLOUDEVENTS_TYPE_PREFIX: &str = "funnel.";

/// The structured-mode CloudEvents JSON of an event.
pub fn to_cloudevent(env: &Envelope<Event>) -> Value {
    let m = &env.meta;
    let actor = match &m.actor {
        Actor::Staff { id, role } => format!("{role}:{id}"),
        Actor::System { name } => format!("system:{name}"),
    };
    let source = match m.office {
        Some(o) => format!("/funnel/offices/{o}"),
        None => "/funnel/hq".to_string(),
    };
    json!({
        "specversion": "1.0",
        "id": m.event_id.to_string(),
        "source": source,
        "type": format!("{CLOUDEVENTS_TYPE_PREFIX}{}", m.event_type),
        "subject": m.stream.to_string(),
        "time": m.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "datacontenttype": "application/json",
        "dataschema": format!("urn:funnel:schema:{}:v{}", m.event_type, m.schema_version),
        "data": crate::payload_value(&env.payload),
        "funnelposition": m.position.0,
        "funnelversion": m.version.0,
        "funnelschemaversion": m.schema_version,
        "funnelrecordedat": m.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "funnelactor": actor,
        "funnelcommandid": m.command_id.to_string(),
        "funnelcorrelationid": m.correlation_id.to_string(),
        "funnelcausationid": m.causation_id.to_string(),
    })
}
