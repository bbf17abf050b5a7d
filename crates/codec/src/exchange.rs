//! The two line forms `funnel export` writes and `funnel import` reads back: NDJSON (the envelope's
//! fields with the payload under `payload`) and CloudEvents 1.0 structured JSON. Both carry every
//! envelope fact, so a log exported in either form can be imported into another store unchanged.

use crate::CLOUDEVENTS_TYPE_PREFIX;
use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_types::{Envelope, Metadata, OfficeId, Position, Version};
use serde_json::Value;

/// The NDJSON form of an event: the envelope's fields and the payload under `payload`.
pub fn to_ndjson(env: &Envelope<Event>) -> Value {
    let mut v = serde_json::to_value(&env.meta).unwrap_or(Value::Null);
    v["payload"] = crate::payload_value(&env.payload);
    v
}

/// Reads one exported line in either form (a line with `specversion` is CloudEvents). The payload
/// is decoded, and upcast when it is of an older schema version, as a stored event would be.
pub fn from_exported(line: &str) -> Result<Envelope<Event>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("specversion").is_some() {
        from_cloudevent(value)
    } else {
        from_ndjson(value)
    }
}

fn from_ndjson(mut value: Value) -> Result<Envelope<Event>, String> {
    let Some(obj) = value.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let payload = obj
        .remove("payload")
        .ok_or("no `payload` (an NDJSON line has the envelope's fields and `payload`)")?;
    let meta: Metadata =
        serde_json::from_value(value).map_err(|e| format!("envelope fields: {e}"))?;
    envelope(meta, &payload)
}

fn from_cloudevent(value: Value) -> Result<Envelope<Event>, String> {
    let text = |name: &str| -> Result<&str, String> {
        value
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("CloudEvent has no string attribute `{name}`"))
    };
    let number = |name: &str| -> Result<u64, String> {
        value
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("CloudEvent has no integer attribute `{name}`"))
    };
    let parsed = |name: &str| -> Result<uuid::Uuid, String> {
        let t = text(name)?;
        t.parse()
            .map_err(|_| format!("CloudEvent attribute `{name}`: `{t}` is not a UUID"))
    };
    let time = |name: &str| -> Result<DateTime<Utc>, String> {
        let t = text(name)?;
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("CloudEvent attribute `{name}`: `{t}`: {e}"))
    };
    if text("specversion")? != "1.0" {
        return Err(format!(
            "CloudEvents specversion `{}`; only 1.0 is read",
            text("specversion")?
        ));
    }
    let ty = text("type")?;
    let event_type = ty.strip_prefix(CLOUDEVENTS_TYPE_PREFIX).ok_or_else(|| {
        format!("CloudEvent type `{ty}` is not a Funnel event type (`{CLOUDEVENTS_TYPE_PREFIX}…`)")
    })?;
    let source = text("source")?;
    let office = match source {
        "/funnel/hq" => None,
        s => Some(
            s.strip_prefix("/funnel/offices/")
                .and_then(|id| id.parse::<OfficeId>().ok())
                .ok_or_else(|| {
                    format!(
                        "CloudEvent source `{s}` is neither /funnel/hq nor /funnel/offices/<id>"
                    )
                })?,
        ),
    };
    let schema_version = u16::try_from(number("funnelschemaversion")?)
        .map_err(|_| "CloudEvent attribute `funnelschemaversion` is out of range".to_string())?;
    let meta = Metadata {
        event_id: funnel_types::EventId(parsed("id")?),
        event_type: event_type.to_string(),
        schema_version,
        stream: text("subject")?
            .parse()
            .map_err(|e| format!("CloudEvent subject: {e}"))?,
        version: Version(number("funnelversion")?),
        position: Position(number("funnelposition")?),
        occurred_at: time("time")?,
        recorded_at: time("funnelrecordedat")?,
        actor: text("funnelactor")?.parse()?,
        office,
        command_id: funnel_types::CommandId(parsed("funnelcommandid")?),
        correlation_id: funnel_types::CorrelationId(parsed("funnelcorrelationid")?),
        causation_id: parsed("funnelcausationid")?,
    };
    let data = value.get("data").ok_or("CloudEvent has no `data`")?;
    envelope(meta, data)
}

/// Decodes (and upcasts) the payload; the envelope then says the payload's current schema version.
fn envelope(mut meta: Metadata, payload: &Value) -> Result<Envelope<Event>, String> {
    let bytes = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let payload = crate::decode(meta.position, &meta.event_type, meta.schema_version, &bytes)
        .map_err(|e| e.to_string())?;
    meta.schema_version = payload.schema_version();
    Ok(Envelope { meta, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_cloudevent;
    use funnel_types::{Actor, CommandId, CorrelationId, EventId, Role, StaffId, StreamId};

    fn envelopes() -> Vec<Envelope<Event>> {
        let at = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        crate::examples()
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let i = i as u64;
                let meta = Metadata {
                    event_id: EventId(uuid::Uuid::now_v7()),
                    event_type: payload.event_type().to_string(),
                    schema_version: payload.schema_version(),
                    stream: StreamId::parse(format!("lead-{}", uuid::Uuid::now_v7())).unwrap(),
                    version: Version(i + 1),
                    position: Position(i + 10),
                    occurred_at: at,
                    recorded_at: at + chrono::Duration::seconds(i as i64),
                    actor: if i.is_multiple_of(2) {
                        Actor::staff(StaffId(uuid::Uuid::now_v7()), Role::OfficeManager)
                    } else {
                        Actor::system("saga:lead-rules")
                    },
                    office: (!i.is_multiple_of(3)).then(|| OfficeId(uuid::Uuid::now_v7())),
                    command_id: CommandId(uuid::Uuid::now_v7()),
                    correlation_id: CorrelationId(uuid::Uuid::now_v7()),
                    causation_id: uuid::Uuid::now_v7(),
                };
                Envelope { meta, payload }
            })
            .collect()
    }

    #[test]
    fn both_forms_read_back_every_example_unchanged() {
        for env in envelopes() {
            let nd = to_ndjson(&env).to_string();
            assert_eq!(from_exported(&nd).as_ref(), Ok(&env), "{nd}");
            let ce = to_cloudevent(&env).to_string();
            assert_eq!(from_exported(&ce).as_ref(), Ok(&env), "{ce}");
        }
    }

    #[test]
    fn damaged_lines_say_what_is_wrong() {
        let env = envelopes().remove(0);
        let err = |mut v: Value, f: &dyn Fn(&mut Value)| {
            f(&mut v);
            from_exported(&v.to_string()).unwrap_err()
        };
        let nd = to_ndjson(&env);
        let ce = to_cloudevent(&env);
        assert!(from_exported("{").unwrap_err().starts_with("not JSON"));
        assert!(
            from_exported("[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            err(nd.clone(), &|v| {
                v.as_object_mut().unwrap().remove("payload");
            })
            .contains("no `payload`")
        );
        assert!(
            err(nd.clone(), &|v| v["stream"] = "Not A Stream!".into()).contains("envelope fields")
        );
        assert!(err(nd.clone(), &|v| v["payload"] = Value::Null).contains("does not decode"));
        assert!(err(nd, &|v| v["event_type"] = "lead.teleported".into()).contains("unknown type"));
        assert!(
            err(ce.clone(), &|v| v["type"] = "com.example.x".into())
                .contains("not a Funnel event type")
        );
        assert!(err(ce.clone(), &|v| v["source"] = "/elsewhere".into()).contains("/funnel/hq"));
        assert!(err(ce.clone(), &|v| v["funnelactor"] = "pilot:1".into()).contains("unknown role"));
        assert!(err(ce.clone(), &|v| v["specversion"] = "0.3".into()).contains("only 1.0"));
        assert!(err(ce, &|v| v["funnelcommandid"] = "x".into()).contains("not a UUID"));
    }
}
