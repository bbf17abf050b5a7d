//! Golden renderings: one chat robot message per event kind (from the codec's example of every
//! event type), and the request body of a digest for each vendor.

use chrono::{TimeZone, Utc};
use funnel_domain::Event;
use funnel_domain::events::StaffJoined;
use funnel_notify::webhooks::TargetKind;
use funnel_notify::webhooks::robot::render::{Names, Rendered};
use funnel_notify::webhooks::robot::{Credentials, Message, send_url};
use funnel_types::{
    Actor, CommandId, CorrelationId, Envelope, EventId, Metadata, OfficeId, Position, Role,
    StaffId, StreamId, Version,
};

const LINK: &str = "https://funnel.example.com/";

/// The examples' people, named (the examples name only the first engineer).
fn names() -> Names {
    let mut names = Names::default();
    for e in funnel_codec::examples() {
        names.note(&e);
    }
    for (id, name, role) in [
        ("example-engineer-2", "李工", Role::SalesEngineer),
        ("example-manager", "赵经理", Role::OfficeManager),
        (
            "example-sales-department",
            "销售部刘主管",
            Role::SalesDepartment,
        ),
        ("example-assistant", "陈助理", Role::OfficeAssistant),
    ] {
        names.note(&Event::StaffJoined(StaffJoined {
            staff_id: StaffId::derived(id),
            name: name.into(),
            role,
            office: None,
        }));
    }
    names
}

fn envelope(i: u64, event: Event) -> Envelope<Event> {
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 1, 30, 0).unwrap();
    let stream = StreamId::new(
        event.event_type().split('.').next().unwrap(),
        uuid::Uuid::from_u128(u128::from(i)),
    )
    .unwrap();
    Envelope {
        meta: Metadata {
            event_id: EventId::derived(event.event_type()),
            event_type: event.event_type().into(),
            schema_version: event.schema_version(),
            stream,
            version: Version(1),
            position: Position(i + 1),
            occurred_at: at,
            recorded_at: at,
            actor: Actor::staff(StaffId::derived("example-engineer"), Role::SalesEngineer),
            office: Some(OfficeId::derived("example-office")),
            command_id: CommandId::derived("example-command"),
            correlation_id: CorrelationId::derived("example-correlation"),
            causation_id: uuid::Uuid::nil(),
        },
        payload: event,
    }
}

#[test]
fn every_event_kind_renders_as_a_short_chinese_message() {
    let names = names();
    let examples = funnel_codec::examples();
    assert_eq!(examples.len(), funnel_domain::EVENT_TYPES.len());
    for (i, e) in examples.into_iter().enumerate() {
        let kind = e.event_type();
        let r = Rendered::of(&envelope(i as u64, e), &names);
        let text = Message::single(&r, Some(LINK)).markdown();
        assert!(
            !["员工 #", "办事处 #", "线索 #"]
                .iter()
                .any(|f| text.contains(f)),
            "{kind} shows an id instead of a name:\n{text}"
        );
        insta::assert_snapshot!(format!("single__{}", kind.replace('.', "_")), text);
    }
}

#[test]
fn a_digest_for_each_vendor() {
    let names = names();
    let rendered: Vec<Rendered> = funnel_codec::examples()
        .into_iter()
        .enumerate()
        .filter(|(_, e)| e.event_type().starts_with("lead."))
        .take(5)
        .map(|(i, e)| Rendered::of(&envelope(i as u64, e), &names))
        .collect();
    let digest = Message::digest(&rendered, Some(LINK));
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    for (kind, secret) in [
        (TargetKind::Dingtalk, Some("SECexample")),
        (TargetKind::Wecom, None),
        (TargetKind::Feishu, Some("qNRHhxSbmPL0pz6tKbx7Ue")),
    ] {
        assert!(digest.fits(kind));
        let body = serde_json::to_string_pretty(&digest.body(kind, secret, now)).unwrap();
        insta::assert_snapshot!(format!("digest__{kind}"), body);
    }
    let creds = Credentials {
        url: "https://oapi.dingtalk.com/robot/send?access_token=abc".into(),
        secret: Some("SECexample".into()),
    };
    insta::assert_snapshot!(
        "dingtalk_send_url",
        send_url(TargetKind::Dingtalk, &creds, now)
    );
}

/// A digest too big for WeCom's 4096 bytes is not sent as one: the worker splits it.
#[test]
fn wecom_digests_respect_its_size_limit() {
    let names = names();
    let rendered: Vec<Rendered> = (0..100)
        .map(|i| {
            let e = funnel_codec::examples()
                .into_iter()
                .find(|e| e.event_type() == "lead.visit_logged")
                .unwrap();
            Rendered::of(&envelope(i, e), &names)
        })
        .collect();
    let big = Message::digest(&rendered, Some(LINK));
    assert!(!big.fits(TargetKind::Wecom));
    assert!(big.fits(TargetKind::Dingtalk) || big.markdown().len() > 20_000);
    let small = Message::digest(&rendered[..5], Some(LINK));
    assert!(small.fits(TargetKind::Wecom));
}
