//! `funnel reserve-keys` with the real binary: a log written before look-alike names were folded
//! into the customer key (`lead.registered` schema version 1) is imported, and the leads whose key
//! folding changes get their new key reserved, once.

mod common;

use chrono::{TimeZone, Utc};
use common::*;
use funnel_domain::Event;
use funnel_domain::events::LeadRegistered;
use funnel_domain::model::*;
use funnel_types::*;

/// An exported line of a registration as Funnel wrote it under key version 1.
fn legacy_registration(customer: &str, key: &str, position: u64) -> String {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("time");
    let lead_id = LeadId::derived(key);
    let by = StaffId::derived("e0");
    let office = OfficeId::derived("sh");
    let payload = Event::LeadRegistered(LeadRegistered {
        lead_id,
        customer_key: key.into(),
        key_version: 1,
        customer_name: customer.into(),
        project_name: String::new(),
        industry: Industry::RealEstate,
        purchase_mode: PurchaseMode::Independent,
        channel: Channel::BuildingSweep,
        office,
        location: "上海".into(),
        contact: Contact::default(),
        need: "楼宇对讲".into(),
        registered_by: by,
        registered_at: at,
    });
    let env = Envelope {
        meta: Metadata {
            event_id: EventId::derived(key),
            event_type: "lead.registered".into(),
            schema_version: 1,
            stream: StreamId::new("lead", lead_id).expect("stream"),
            version: Version(1),
            position: Position(position),
            occurred_at: at,
            recorded_at: at,
            actor: Actor::staff(by, Role::SalesEngineer),
            office: Some(office),
            command_id: CommandId::derived(key),
            correlation_id: CorrelationId::derived(key),
            causation_id: uuid::Uuid::nil(),
        },
        payload,
    };
    let mut line = funnel_codec::to_ndjson(&env);
    line["schema_version"] = 1.into();
    line["payload"]
        .as_object_mut()
        .expect("payload")
        .remove("key_version");
    line.to_string()
}

#[test]
fn leads_registered_under_key_version_1_get_their_new_key_reserved_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let store = format!("sqlite:{}", d.join("funnel.db").display());
    let file = d.join("v1.ndjson");
    let lines = [
        // "m" looks like "rn": the key folds to another one.
        legacy_registration("Modern Homes", "modernhomes/", 1),
        // Folding leaves this key as it is: nothing to reserve.
        legacy_registration("Vanke", "vanke/", 2),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    ok(&store, &["import", file.to_str().expect("path")], d);

    let out = ok(&store, &["reserve-keys"], d);
    assert!(
        out.contains("1 leads registered under an older key version")
            && out.contains("1 reserved now"),
        "{out}"
    );
    let out = ok(&store, &["reserve-keys"], d);
    assert!(
        out.contains("0 reserved now") && out.contains("1 reserved before"),
        "{out}"
    );
    let exported = ok(&store, &["export", "events"], d);
    let reserved: Vec<&str> = exported
        .lines()
        .filter(|l| l.contains("\"lead.key_reserved\""))
        .collect();
    assert_eq!(reserved.len(), 1, "{exported}");
    assert!(reserved[0].contains("rnodernhornes/"), "{}", reserved[0]);
}
