//! Golden renderings: one chat robot message per event kind (from the codec's example of every
//! event type), and the request body of a digest for each vendor.

use chrono::{TimeZone, Utc};
use funnel_domain::Event;
use funnel_domain::events::{Assignee, StaffJoined, StaffPhoneChanged, TaskOpened};
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

/// A task opened for the example engineer, whose record holds a phone number in the examples.
fn task_for(staff: StaffId, i: u64) -> Envelope<Event> {
    let e = funnel_codec::examples()
        .into_iter()
        .find_map(|e| match e {
            Event::TaskOpened(t) => Some(t),
            _ => None,
        })
        .unwrap();
    envelope(
        i,
        Event::TaskOpened(TaskOpened {
            assignee: Assignee {
                staff: Some(staff),
                ..e.assignee
            },
            ..e
        }),
    )
}

#[test]
fn a_task_for_a_person_with_a_phone_mentions_them_where_the_vendor_can() {
    let mut names = names();
    let eng = StaffId::derived("example-engineer");
    let other = StaffId::derived("example-engineer-2");
    let r = Rendered::of(&task_for(eng, 1), &names);
    assert_eq!(r.mention.as_deref(), Some("13800138000"));
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let single = Message::single(&r, Some(LINK));
    let ding = single.body(TargetKind::Dingtalk, Some("SECexample"), now);
    assert_eq!(ding["at"]["atMobiles"], serde_json::json!(["13800138000"]));
    assert_eq!(ding["at"]["isAtAll"], false);
    assert!(
        ding["markdown"]["text"]
            .as_str()
            .unwrap()
            .ends_with("@13800138000")
    );
    let wecom = single.body(TargetKind::Wecom, None, now);
    assert_eq!(wecom["msgtype"], "text");
    assert_eq!(
        wecom["text"]["mentioned_mobile_list"],
        serde_json::json!(["13800138000"])
    );
    assert!(
        wecom["text"]["content"]
            .as_str()
            .unwrap()
            .contains("裁定客户归属")
    );
    assert!(single.fits(TargetKind::Wecom));
    let feishu = single.body(TargetKind::Feishu, None, now).to_string();
    assert!(!feishu.contains("13800138000"), "{feishu}");
    insta::assert_snapshot!(
        "mention__dingtalk",
        serde_json::to_string_pretty(&ding).unwrap()
    );
    insta::assert_snapshot!(
        "mention__wecom",
        serde_json::to_string_pretty(&wecom).unwrap()
    );

    // A digest mentions each person once; someone without a number is not mentioned.
    names.note(&Event::StaffPhoneChanged(StaffPhoneChanged {
        staff_id: other,
        phone: Some("13900139000".into()),
    }));
    let nobody = StaffId::derived("example-manager");
    let rs: Vec<Rendered> = [eng, other, eng, nobody]
        .into_iter()
        .enumerate()
        .map(|(i, s)| Rendered::of(&task_for(s, i as u64), &names))
        .collect();
    let digest = Message::digest(&rs, Some(LINK));
    assert_eq!(digest.mentions, ["13800138000", "13900139000"]);
    let ding = digest.body(TargetKind::Dingtalk, None, now);
    assert_eq!(
        ding["at"]["atMobiles"],
        serde_json::json!(["13800138000", "13900139000"])
    );

    // A number removed (or a person who left) is mentioned no more; nor is a plain event.
    names.note(&Event::StaffPhoneChanged(StaffPhoneChanged {
        staff_id: eng,
        phone: None,
    }));
    let r = Rendered::of(&task_for(eng, 9), &names);
    assert_eq!(r.mention, None);
    let plain = Message::single(&r, Some(LINK));
    assert!(
        plain
            .body(TargetKind::Dingtalk, None, now)
            .get("at")
            .is_none()
    );
    assert_eq!(
        plain.body(TargetKind::Wecom, None, now)["msgtype"],
        "markdown"
    );
}

/// WeCom's text message holds 2048 bytes: a digest with mentions is split to fit it.
#[test]
fn a_wecom_digest_with_mentions_respects_the_text_limit() {
    let names = names();
    let eng = StaffId::derived("example-engineer");
    let rs: Vec<Rendered> = (0..60)
        .map(|i| Rendered::of(&task_for(eng, i), &names))
        .collect();
    let big = Message::digest(&rs, Some(LINK));
    assert!(!big.fits(TargetKind::Wecom));
    let small = Message::digest(&rs[..3], Some(LINK));
    assert!(small.fits(TargetKind::Wecom));
}
