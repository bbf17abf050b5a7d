//! The event contract: golden files of every event's JSON still load (and current ones match byte
//! for byte), the schemas in `schemas/` match the Rust types, and random events round-trip.
//!
//! Set `FUNNEL_BLESS=1` to rewrite the golden files and schemas after an intended change.

use funnel_codec::*;
use funnel_domain::{EVENT_TYPES, Event, Policy, testing};
use funnel_types::Position;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn bless() -> bool {
    std::env::var_os("FUNNEL_BLESS").is_some()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).expect("json") + "\n"
}

#[test]
fn examples_cover_every_event_type_in_order() {
    let got: Vec<(&str, u16)> = examples()
        .iter()
        .map(|e| (e.event_type(), e.schema_version()))
        .collect();
    assert_eq!(got, EVENT_TYPES.to_vec());
}

#[test]
fn golden_files_match_the_current_encoding() {
    let mut stale = Vec::new();
    for event in examples() {
        let path = golden_dir().join(format!(
            "{}.v{}.json",
            event.event_type(),
            event.schema_version()
        ));
        let text = pretty(&payload_value(&event));
        if bless() {
            std::fs::write(&path, &text).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if old == text => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(_) => stale.push(format!("{} is missing", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "golden files out of date (FUNNEL_BLESS=1 to accept):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_golden_file_still_loads() {
    let examples = examples();
    let mut seen = 0;
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let Some((event_type, version)) =
            name.strip_suffix(".json").and_then(|n| n.rsplit_once(".v"))
        else {
            panic!("golden file {name} is not named <type>.v<N>.json");
        };
        let version: u16 = version.parse().expect("version");
        let bytes = std::fs::read(&path).expect("read");
        let event = decode(Position(1), event_type, version, &bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if Some(version) == current_version(event_type) {
            let example = examples
                .iter()
                .find(|e| e.event_type() == event_type)
                .expect("example");
            assert_eq!(&event, example, "{name}");
        }
        seen += 1;
    }
    assert!(seen >= EVENT_TYPES.len());
}

#[test]
fn schemas_directory_matches_the_rust_types() {
    let files = schema_files();
    let mut drift = Vec::new();
    for f in &files {
        let path = schemas_dir().join(&f.path);
        let text = pretty(&f.schema);
        if bless() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &text).expect("write schema");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if old == text => {}
            Ok(_) => drift.push(format!("{} differs from its Rust type", f.path)),
            Err(_) => drift.push(format!("{} is missing", f.path)),
        }
    }
    // No schema file without a type behind it.
    let known: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    for entry in std::fs::read_dir(schemas_dir().join("events")).expect("schemas/events") {
        let name = format!(
            "events/{}",
            entry.expect("entry").file_name().to_string_lossy()
        );
        // The schema of an older version stays beside the current one (stored events of that
        // version are upcast on read) as long as a golden payload of that version is kept.
        let older = name
            .strip_prefix("events/")
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.rsplit_once(".v"))
            .is_some_and(|(event_type, v)| {
                v.parse::<u16>()
                    .is_ok_and(|v| current_version(event_type).is_some_and(|cur| v < cur))
                    && golden_dir()
                        .join(format!("{event_type}.v{v}.json"))
                        .exists()
            });
        if !known.contains(&name) && !older {
            drift.push(format!("{name} has no event type"));
        }
    }
    assert!(
        drift.is_empty(),
        "schemas drifted (FUNNEL_BLESS=1 to regenerate):\n{}",
        drift.join("\n")
    );
}

#[test]
fn cloudevents_form_carries_the_envelope() {
    use funnel_types::*;
    let event = examples().remove(5);
    let meta = Metadata {
        event_id: EventId::derived("e"),
        event_type: event.event_type().into(),
        schema_version: 1,
        stream: StreamId::new("lead", LeadId::derived("l")).expect("stream"),
        version: Version(1),
        position: Position(42),
        occurred_at: chrono::DateTime::UNIX_EPOCH,
        recorded_at: chrono::DateTime::UNIX_EPOCH,
        actor: Actor::staff(StaffId::derived("s"), Role::SalesEngineer),
        office: Some(OfficeId::derived("o")),
        command_id: CommandId::derived("c"),
        correlation_id: CorrelationId::derived("c"),
        causation_id: uuid::Uuid::nil(),
    };
    let ce = to_cloudevent(&Envelope {
        meta,
        payload: event.clone(),
    });
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["type"], "funnel.lead.registered");
    assert_eq!(ce["funnelposition"], 42);
    assert_eq!(ce["data"], payload_value(&event));
    assert!(
        ce["source"]
            .as_str()
            .expect("source")
            .starts_with("/funnel/offices/")
    );
    for key in ce.as_object().expect("object").keys() {
        assert!(
            key.len() <= 20
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "attribute {key}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn recorded_events_round_trip_through_json(steps in testing::steps(60)) {
        let (_, log) = testing::run(&steps, &Policy::default());
        for event in log {
            let bytes = encode(&event);
            let back: Event = decode(Position(1), event.event_type(), event.schema_version(), &bytes).expect("decodes");
            prop_assert_eq!(back, event);
        }
    }
}

#[test]
fn a_registration_of_schema_version_1_reads_as_key_version_1() {
    let bytes = std::fs::read(golden_dir().join("lead.registered.v1.json")).expect("golden");
    let Event::LeadRegistered(r) =
        decode(Position(1), "lead.registered", 1, &bytes).expect("decodes")
    else {
        panic!("a registration");
    };
    assert_eq!(r.key_version, 1);
    assert_eq!(r.customer_key, "万科/城市花园二期");
    // A version-1 payload that already says `key_version` is not one Funnel wrote.
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    v["key_version"] = 2.into();
    let bytes = serde_json::to_vec(&v).expect("json");
    assert!(decode(Position(2), "lead.registered", 1, &bytes).is_err());
}
