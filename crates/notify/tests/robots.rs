//! Chat robot delivery against local receivers that behave as the vendors do: they check the
//! signature, count messages per minute (DingTalk answers 130101 past 20), and answer HTTP 200
//! with an error code in the body. Time is a clock the test moves, never the wall clock.

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use funnel_domain::Event;
use funnel_notify::webhooks::robot::pace::{ManualClock, RobotClock};
use funnel_notify::webhooks::{
    DeliveryOptions, Dispatcher, NewRobot, NewSubscription, RobotOrigins, Subscription, TargetKind,
    Targets, Webhooks,
};
use funnel_notify::{Kinds, Selector};
use funnel_store::{AppendRequest, EventStore, ProposedEvent};
use funnel_types::{
    Actor, CommandId, CorrelationId, EventId, ExpectedVersion, OfficeId, Position, Role, StaffId,
    StreamId,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DT_TOKEN: &str = "0123456789abcdef";
const DT_SECRET: &str = "SECf1e2d3c4b5a6978879";
const FS_SECRET: &str = "qNRHhxSbmPL0pz6tKbx7Ue";

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    STANDARD.encode(m.finalize().into_bytes())
}

/// One request a receiver accepted: the sender's timestamp (ms), the message text and the mobile
/// numbers it @-mentions.
#[derive(Clone, Debug)]
struct Got {
    ts_ms: i64,
    text: String,
    mentions: Vec<String>,
}

/// The strings of a JSON array (none when absent).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Answers (errcode or code, message) a receiver gives before accepting, per vendor.
type Script = HashMap<&'static str, VecDeque<(i64, &'static str)>>;

#[derive(Clone, Default)]
struct Vendor {
    /// Answers to give before accepting (errcode/code, message), per vendor path.
    script: Arc<Mutex<Script>>,
    got: Arc<Mutex<HashMap<&'static str, Vec<Got>>>>,
    /// Requests refused: bad signatures, and messages past the rate limit.
    refused: Arc<Mutex<Vec<String>>>,
}

impl Vendor {
    fn scripted(&self, vendor: &'static str) -> Option<(i64, &'static str)> {
        self.script
            .lock()
            .unwrap()
            .get_mut(vendor)
            .and_then(VecDeque::pop_front)
    }

    fn got(&self, vendor: &'static str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .get(vendor)
            .cloned()
            .unwrap_or_default()
    }
}

/// DingTalk: `?access_token=&timestamp=&sign=`, 20 messages a minute or 130101.
async fn dingtalk(
    State(v): State<Vendor>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let ts: i64 = q.get("timestamp").and_then(|t| t.parse().ok()).unwrap_or(0);
    let expected = hmac_b64(
        DT_SECRET.as_bytes(),
        format!("{ts}\n{DT_SECRET}").as_bytes(),
    );
    if q.get("access_token").map(String::as_str) != Some(DT_TOKEN)
        || q.get("sign") != Some(&expected)
    {
        v.refused
            .lock()
            .unwrap()
            .push(format!("dingtalk sign {q:?}"));
        return Json(json!({"errcode": 310000, "errmsg": "sign not match"}));
    }
    if let Some((code, msg)) = v.scripted("dingtalk") {
        return Json(json!({"errcode": code, "errmsg": msg}));
    }
    let recent = v
        .got("dingtalk")
        .iter()
        .filter(|g| g.ts_ms > ts - 60_000)
        .count();
    if recent >= 20 {
        v.refused
            .lock()
            .unwrap()
            .push(format!("dingtalk rate at {ts}"));
        return Json(
            json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}),
        );
    }
    assert_eq!(body["msgtype"], "markdown");
    let text = body["markdown"]["text"].as_str().unwrap().to_string();
    let mentions = strings(&body["at"]["atMobiles"]);
    // DingTalk shows a mention only where the text names the number after `@`.
    for m in &mentions {
        assert!(text.contains(&format!("@{m}")), "{text}");
    }
    v.got
        .lock()
        .unwrap()
        .entry("dingtalk")
        .or_default()
        .push(Got {
            ts_ms: ts,
            text,
            mentions,
        });
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// WeCom: `?key=`, markdown content of at most 4096 bytes.
async fn wecom(
    State(v): State<Vendor>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if q.get("key").map(String::as_str) != Some("wecom-key-1") {
        return Json(json!({"errcode": 93000, "errmsg": "invalid webhook url"}));
    }
    if let Some((code, msg)) = v.scripted("wecom") {
        return Json(json!({"errcode": code, "errmsg": msg}));
    }
    // Markdown up to 4096 bytes; a text message (the only kind that can @-mention) up to 2048.
    let (text, mentions, limit) = match body["msgtype"].as_str() {
        Some("markdown") => (&body["markdown"]["content"], vec![], 4096),
        Some("text") => (
            &body["text"]["content"],
            strings(&body["text"]["mentioned_mobile_list"]),
            2048,
        ),
        other => panic!("WeCom msgtype {other:?}"),
    };
    let text = text.as_str().unwrap().to_string();
    if text.len() > limit {
        return Json(
            json!({"errcode": 40058, "errmsg": format!("content exceed max length {limit}")}),
        );
    }
    v.got.lock().unwrap().entry("wecom").or_default().push(Got {
        ts_ms: 0,
        text,
        mentions,
    });
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Feishu: `timestamp` and `sign` in the body, signed with key `timestamp\nsecret`.
async fn feishu(State(v): State<Vendor>, Json(body): Json<Value>) -> Json<Value> {
    let ts: i64 = body["timestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let expected = hmac_b64(format!("{ts}\n{FS_SECRET}").as_bytes(), b"");
    if body["sign"].as_str() != Some(expected.as_str()) {
        v.refused.lock().unwrap().push("feishu sign".into());
        return Json(
            json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}),
        );
    }
    if let Some((code, msg)) = v.scripted("feishu") {
        return Json(json!({"code": code, "msg": msg}));
    }
    assert_eq!(body["msg_type"], "interactive");
    let text = body["card"]["elements"][0]["text"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    v.got
        .lock()
        .unwrap()
        .entry("feishu")
        .or_default()
        .push(Got {
            ts_ms: ts * 1000,
            text,
            mentions: vec![],
        });
    Json(json!({"code": 0, "msg": "success", "data": {}}))
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    hooks: Webhooks,
    vendor: Vendor,
    base: String,
    clock: ManualClock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
}

fn example(kind: &str) -> Event {
    funnel_codec::examples()
        .into_iter()
        .find(|e| e.event_type() == kind)
        .unwrap()
}

async fn append(store: &dyn EventStore, category: &str, event: &Event) -> Position {
    let proposed = ProposedEvent {
        event_id: EventId::new(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        occurred_at: DateTime::from_timestamp(1_772_415_000, 0).unwrap(),
        actor: Actor::staff(StaffId::derived("example-engineer"), Role::SalesEngineer),
        office: Some(OfficeId::derived("example-office")),
        correlation_id: CorrelationId::new(),
        causation_id: uuid::Uuid::now_v7(),
        payload: funnel_codec::encode(event).into(),
    };
    let id = match event.lead_id() {
        Some(l) => l.to_string(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    store
        .append(AppendRequest {
            stream: StreamId::new(category, id).unwrap(),
            expected: ExpectedVersion::Any,
            command_id: CommandId::new(),
            events: vec![proposed],
        })
        .await
        .unwrap()
        .first_position
}

/// The n-th visit to the examples' lead.
fn visit(n: u32) -> Event {
    let Event::VisitLogged(mut v) = example("lead.visit_logged") else {
        unreachable!()
    };
    v.visit_number = n;
    Event::VisitLogged(v)
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open(dir.path().join("log.db")).unwrap());
    // Names come from the log before the subscriptions start.
    for kind in [
        "office.opened",
        "staff.joined",
        "staff.phone_changed",
        "lead.registered",
    ] {
        let cat = kind.split('.').next().unwrap();
        append(store.as_ref(), cat, &example(kind)).await;
    }
    let vendor = Vendor::default();
    let app = axum::Router::new()
        .route("/robot/send", post(dingtalk))
        .route("/cgi-bin/webhook/send", post(wecom))
        .route("/open-apis/bot/v2/hook/{token}", post(feishu))
        .with_state(vendor.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hooks = Webhooks::open(&dir.path().join("webhooks.db")).unwrap();
    // The receivers are on this machine: the deployment allows it, and accepts them as robots.
    hooks.set_targets(Targets::new(&["127.0.0.1".into()]).unwrap());
    let mut origins = RobotOrigins::default();
    for k in [TargetKind::Dingtalk, TargetKind::Wecom, TargetKind::Feishu] {
        origins = origins.with(k, &base).unwrap();
    }
    hooks.set_robot_origins(origins);
    let clock = ManualClock::new(DateTime::from_timestamp(1_772_420_000, 0).unwrap());
    let options = DeliveryOptions {
        timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        restart_every: Duration::from_millis(100),
        dashboard_url: Some("https://funnel.example.com/".into()),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = Dispatcher::new(hooks.clone(), store.clone(), options)
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let running = tokio::spawn(dispatcher.run(async {
        let _ = stop_rx.await;
    }));
    Setup {
        _dir: dir,
        store,
        hooks,
        vendor,
        base,
        clock,
        stop: Some(stop_tx),
        running: Some(running),
    }
}

impl Setup {
    async fn robot(&self, kind: TargetKind, url: String, secret: Option<&str>) -> Subscription {
        self.robot_for(kind, url, secret, "lead.visit_logged").await
    }

    async fn robot_for(
        &self,
        kind: TargetKind,
        url: String,
        secret: Option<&str>,
        kinds: &str,
    ) -> Subscription {
        let head = self.store.head().await.unwrap();
        self.hooks
            .create_robot(
                NewSubscription {
                    url,
                    description: String::new(),
                    selector: Selector {
                        offices: vec![],
                        kinds: Kinds::parse(&[kinds.into()]).unwrap(),
                    },
                    after: head,
                    created_by: "test".into(),
                    owner: None,
                    owner_since: head,
                },
                NewRobot {
                    kind,
                    secret: secret.map(str::to_string),
                },
            )
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.running.take().unwrap().await.unwrap();
    }
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl AsyncFnMut() -> bool) {
    funnel_testkit::eventually(what, 1000, Duration::from_millis(10), done).await
}

/// Whether each of `ids` has delivered `n` events.
async fn all_delivered(hooks: &Webhooks, ids: &[uuid::Uuid], n: u64) -> bool {
    for id in ids {
        if hooks.get(*id).await.unwrap().delivered != n {
            return false;
        }
    }
    true
}

/// The visit numbers a message mentions (`第 n 次`), in order.
fn visits_in(text: &str) -> Vec<u32> {
    text.split("第 ")
        .skip(1)
        .filter_map(|s| s.split(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_events_in_a_minute_reach_a_dingtalk_robot_in_at_most_twenty_messages() {
    let s = setup().await;
    let sub = s
        .robot(
            TargetKind::Dingtalk,
            format!("{}/robot/send?access_token={DT_TOKEN}", s.base),
            Some(DT_SECRET),
        )
        .await;
    assert_eq!(sub.target, TargetKind::Dingtalk);
    assert!(
        !sub.url.contains(DT_TOKEN) && sub.url.ends_with("access_token=…cdef"),
        "{}",
        sub.url
    );
    // One event a second for a minute, each taken by the worker before the clock moves on.
    let mut last = Position::START;
    for n in 1..=60 {
        last = append(s.store.as_ref(), "lead", &visit(n)).await;
        eventually("the worker to read the event", async || {
            s.hooks.queue(sub.id).is_some_and(|q| q.read_to >= last)
        })
        .await;
        s.clock.advance(Duration::from_secs(1));
    }
    for _ in 0..600 {
        if s.hooks.get(sub.id).await.unwrap().delivered == 60 {
            break;
        }
        s.clock.advance(Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now = s.hooks.get(sub.id).await.unwrap();
    assert_eq!(now.delivered, 60);
    assert_eq!(now.cursor, last);
    let got = s.vendor.got("dingtalk");
    assert!(got.len() <= 20, "{} messages", got.len());
    assert!(
        got.len() > 1,
        "messages went as the budget allowed, not all at the end"
    );
    assert!(
        s.vendor.refused.lock().unwrap().is_empty(),
        "{:?}",
        s.vendor.refused
    );
    let visits: Vec<u32> = got.iter().flat_map(|g| visits_in(&g.text)).collect();
    assert_eq!(
        visits,
        (1..=60).collect::<Vec<_>>(),
        "all 60, once each, in order"
    );
    for g in &got {
        assert!(g.text.contains("万科 · 城市花园（二期）"), "{}", g.text);
        assert!(g.text.contains("王工"), "{}", g.text);
        // A digest links to the console; a single event of a lead to that lead's record.
        assert!(
            g.text.contains("(https://funnel.example.com/)")
                || g.text
                    .contains("(https://funnel.example.com/console/leads/"),
            "{}",
            g.text
        );
    }
    assert!(
        got.iter().any(|g| g.text.contains("条动态")),
        "some went as digests"
    );
    let log = s.hooks.deliveries(sub.id, None, 1000).await.unwrap();
    assert_eq!(
        log.iter().filter(|d| d.ok).map(|d| d.events).sum::<u32>(),
        60
    );
    assert_eq!(s.hooks.queue(sub.id).unwrap().waiting, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_are_failures_and_throttles_wait_as_each_vendor_asks() {
    let s = setup().await;
    {
        let mut script = s.vendor.script.lock().unwrap();
        script.insert(
            "dingtalk",
            [(130101, "send too fast, exceed 20 times per minute")].into(),
        );
        script.insert(
            "wecom",
            [
                (93000, "invalid webhook url"),
                (45009, "api freq out of limit"),
            ]
            .into(),
        );
        script.insert("feishu", [(11232, "frequency limited")].into());
    }
    let dt = s
        .robot(
            TargetKind::Dingtalk,
            format!("{}/robot/send?access_token={DT_TOKEN}", s.base),
            Some(DT_SECRET),
        )
        .await;
    let wc = s
        .robot(
            TargetKind::Wecom,
            format!("{}/cgi-bin/webhook/send?key=wecom-key-1", s.base),
            None,
        )
        .await;
    let fs = s
        .robot(
            TargetKind::Feishu,
            format!("{}/open-apis/bot/v2/hook/feishu-token-1", s.base),
            Some(FS_SECRET),
        )
        .await;
    let position = append(s.store.as_ref(), "lead", &visit(7)).await;

    // The clock stands still: DingTalk's throttle holds its event back, the cursor stays.
    eventually("DingTalk's throttle", async || {
        s.hooks
            .get(dt.id)
            .await
            .unwrap()
            .failing
            .is_some_and(|f| f.last_error.contains("130101"))
    })
    .await;
    let held = s.hooks.get(dt.id).await.unwrap();
    assert!(held.cursor < position && held.delivered == 0);
    let failing = held.failing.unwrap();
    assert_eq!(failing.position, position);
    assert_eq!(
        failing.next_attempt_at - failing.since,
        chrono::Duration::minutes(10)
    );
    let first = &s.hooks.deliveries(dt.id, None, 10).await.unwrap()[0];
    assert_eq!(first.status, Some(200));
    assert!(!first.ok);
    assert_eq!(
        first.error.as_deref(),
        Some("DingTalk errcode 130101: send too fast, exceed 20 times per minute")
    );
    // Office roles see the vendor's answer too: it says nothing about the network.
    assert_eq!(first.clone().without_network_detail().error, first.error);

    for _ in 0..2000 {
        if all_delivered(&s.hooks, &[dt.id, wc.id, fs.id], 1).await {
            break;
        }
        s.clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (id, vendor, waits) in [
        (dt.id, "dingtalk", vec![600]),
        (wc.id, "wecom", vec![0, 65]),
        (fs.id, "feishu", vec![60]),
    ] {
        let sub = s.hooks.get(id).await.unwrap();
        assert_eq!((sub.delivered, sub.cursor), (1, position), "{vendor}");
        assert!(sub.failing.is_none(), "{vendor}");
        let mut log = s.hooks.deliveries(id, None, 10).await.unwrap();
        log.reverse();
        assert_eq!(log.len(), waits.len() + 1, "{vendor}: {log:?}");
        assert!(log.last().unwrap().ok && log[..waits.len()].iter().all(|d| !d.ok));
        // Each retry came no sooner than the vendor asked, by the robots' clock.
        for (i, secs) in waits.iter().enumerate() {
            let gap = log[i + 1].at - log[i].at;
            assert!(
                gap >= chrono::Duration::seconds(*secs),
                "{vendor} {i}: {gap}"
            );
        }
        let got = s.vendor.got(vendor);
        assert_eq!(got.len(), 1, "{vendor}");
        assert_eq!(visits_in(&got[0].text), vec![7], "{vendor}");
        assert!(got[0].text.contains("拜访记录") || got[0].text.contains("王工"));
    }
    assert!(
        s.hooks
            .deliveries(wc.id, None, 10)
            .await
            .unwrap()
            .iter()
            .any(|d| d.error.as_deref() == Some("WeCom errcode 93000: invalid webhook url"))
    );
    assert!(
        s.vendor.refused.lock().unwrap().is_empty(),
        "{:?}",
        s.vendor.refused
    );
    assert!(s.clock.now() >= DateTime::from_timestamp(1_772_420_600, 0).unwrap());
    s.stop().await;
}

/// A task opened for one person, with the number on that person's staff record set or removed.
fn task_for(staff: StaffId, n: u32) -> Event {
    let Event::TaskOpened(mut t) = example("workflow.task_opened") else {
        unreachable!()
    };
    t.assignee.staff = Some(staff);
    t.task_id = funnel_types::TaskId::derived(&format!("task {n}"));
    t.title_zh = format!("审批第 {n} 件");
    Event::TaskOpened(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_opened_for_a_person_mentions_the_number_on_their_record_until_it_is_removed() {
    let s = setup().await;
    let eng = StaffId::derived("example-engineer");
    let dt = s
        .robot_for(
            TargetKind::Dingtalk,
            format!("{}/robot/send?access_token={DT_TOKEN}", s.base),
            Some(DT_SECRET),
            "workflow.task_opened",
        )
        .await;
    let wc = s
        .robot_for(
            TargetKind::Wecom,
            format!("{}/cgi-bin/webhook/send?key=wecom-key-1", s.base),
            None,
            "workflow.task_opened",
        )
        .await;
    // The number was set before the subscriptions began: it is learnt from the history.
    append(s.store.as_ref(), "workflow", &task_for(eng, 1)).await;
    eventually("the first task", async || {
        all_delivered(&s.hooks, &[dt.id, wc.id], 1).await
    })
    .await;
    for vendor in ["dingtalk", "wecom"] {
        let got = s.vendor.got(vendor);
        assert_eq!(got.len(), 1, "{vendor}");
        assert_eq!(got[0].mentions, vec!["13800138000"], "{vendor}");
        assert!(
            got[0].text.contains("审批第 1 件"),
            "{vendor}: {}",
            got[0].text
        );
    }
    // The number is removed (an event these robots do not show): the next task mentions no one.
    let Event::StaffPhoneChanged(mut removed) = example("staff.phone_changed") else {
        unreachable!()
    };
    removed.phone = None;
    append(
        s.store.as_ref(),
        "staff",
        &Event::StaffPhoneChanged(removed),
    )
    .await;
    append(s.store.as_ref(), "workflow", &task_for(eng, 2)).await;
    // The robots pace their messages: the clock moves on until both have sent the second.
    for _ in 0..2000 {
        if all_delivered(&s.hooks, &[dt.id, wc.id], 2).await {
            break;
        }
        s.clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for vendor in ["dingtalk", "wecom"] {
        let got = s.vendor.got(vendor);
        assert_eq!(got.len(), 2, "{vendor}");
        assert!(got[1].text.contains("审批第 2 件"), "{vendor}");
        assert!(got[1].mentions.is_empty(), "{vendor}: {:?}", got[1]);
        assert!(!got[1].text.contains("13800138000"), "{vendor}");
    }
    assert!(
        s.vendor.refused.lock().unwrap().is_empty(),
        "{:?}",
        s.vendor.refused
    );
    s.stop().await;
}
