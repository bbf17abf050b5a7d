//! JSON Schemas (draft 2020-12) of every event payload and of the envelope, generated from the Rust
//! types. `schemas/` in the repository holds the same files; a test fails when they drift apart.
//! An event type with personal fields lists them in `x-funnel-personal`: a JSON pointer into the
//! payload, the kind of person it is about, and the payload field that identifies them.

use funnel_domain::event_schemas;
use serde_json::{Value, json};

/// One schema document and the path it lives at under `schemas/`.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    pub path: String,
    pub schema: Value,
}

/// Every schema Funnel publishes: `events/<type>.v<N>.json` for each event type and
/// `envelope.v1.json` for the envelope metadata.
pub fn schema_files() -> Vec<SchemaFile> {
    let mut generator = schemars::SchemaGenerator::default();
    let mut out = Vec::new();
    for (name, version, schema) in event_schemas(&mut generator) {
        let mut v = schema.to_value();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "$id".into(),
                json!(format!("urn:funnel:schema:{name}:v{version}")),
            );
            obj.insert("title".into(), json!(name));
            obj.insert("x-funnel-event-type".into(), json!(name));
            obj.insert("x-funnel-schema-version".into(), json!(version));
            // Which fields hold personal information of people outside the company, and whom
            // each is about (`funnel_domain::privacy`): exports and consumers treat them so.
            let personal = funnel_domain::privacy::personal_fields(name);
            if !personal.is_empty() {
                obj.insert(
                    "x-funnel-personal".into(),
                    json!(
                        personal
                            .iter()
                            .map(|f| json!({
                                "field": f.field,
                                "subject": f.subject,
                                "subject_id_field": f.subject.id_field(),
                            }))
                            .collect::<Vec<_>>()
                    ),
                );
            }
        }
        out.push(SchemaFile {
            path: format!("events/{name}.v{version}.json"),
            schema: v,
        });
    }
    let mut envelope = generator
        .root_schema_for::<funnel_types::Metadata>()
        .to_value();
    if let Some(obj) = envelope.as_object_mut() {
        obj.insert("$id".into(), json!("urn:funnel:schema:envelope:v1"));
    }
    out.push(SchemaFile {
        path: "envelope.v1.json".into(),
        schema: envelope,
    });
    out
}
