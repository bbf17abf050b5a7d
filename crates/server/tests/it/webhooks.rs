//! Webhook subscription endpoints: bad input is a 4xx problem naming what is wrong; pause, resume
//! and replay move the subscription as asked; offices are named by id, code or name.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use funnel_domain::org::StaffCommand;
use funnel_engine::{Command, CommandMeta, Who};
use funnel_notify::webhooks::target::Resolve;
use funnel_notify::webhooks::{DeliveryOptions, Dispatcher, Targets};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A resolver whose table the test changes (DNS rebinding), never asking real DNS.
#[derive(Debug, Default, Clone)]
struct TestResolver(Arc<Mutex<HashMap<String, Vec<IpAddr>>>>);

impl TestResolver {
    fn set(&self, name: &str, ip: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(name.into(), vec![ip.parse().unwrap()]);
    }
}

impl Resolve for TestResolver {
    fn resolve(
        &self,
        host: &str,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let found = self.0.lock().unwrap().get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

/// The world's webhooks resolve through a test table (`crm.example`, `x`: public addresses) and
/// allow `allowed` as internal targets.
fn targets(w: &World, allowed: &[&str]) -> TestResolver {
    let resolver = TestResolver::default();
    resolver.set("crm.example", "93.184.215.14");
    resolver.set("x", "93.184.215.15");
    let allowed: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
    w.state.webhooks().set_targets(
        Targets::new(&allowed)
            .unwrap()
            .with_resolver(Arc::new(resolver.clone())),
    );
    resolver
}

/// A receiver on 127.0.0.1 that counts the events it is sent (by `funnel-position`).
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<u64>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let p = headers["funnel-position"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                seen.lock().unwrap().push(p);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

/// Runs a dispatcher over the world's webhooks until the returned sender is dropped.
fn dispatch(w: &World) -> tokio::sync::oneshot::Sender<()> {
    let options = DeliveryOptions {
        timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        restart_every: Duration::from_millis(50),
        ..DeliveryOptions::default()
    };
    let d = Dispatcher::new(w.state.webhooks().clone(), w.state.store().clone(), options).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(d.run(async {
        let _ = rx.await;
    }));
    tx
}

/// Waits (bounded by a number of polls, not a time) until `done` holds.
async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    for _ in 0..400 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never: {what}");
}

async fn staff(w: &World, who: &str, cmd: StaffCommand) -> u64 {
    let id = w.ids[who];
    w.engine
        .execute(
            CommandMeta::new(Who::System("test".into())),
            Command::Staff { staff_id: id, cmd },
        )
        .await
        .unwrap()
        .last_position
        .0
}

#[tokio::test]
async fn internal_targets_are_refused_when_subscribing() {
    let w = world().await;
    let resolver = targets(&w, &[]);
    resolver.set("loop.example", "127.0.0.2");
    resolver.set("meta.example", "169.254.169.254");
    resolver.set("office.example", "10.1.2.3");
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://127.1/",
        "http://2130706433/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://192.0.2.1/",
        "http://240.0.0.1/",
        "http://localhost:8080/",
        "http://api.localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://loop.example/",
        "http://meta.example/",
        "http://office.example/",
    ] {
        let r = w.post("/webhooks", "manager", json!({ "url": url })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        assert_eq!(r.body["code"], "webhook.forbidden_target", "{url}");
        assert_eq!(r.content_type, "application/problem+json");
        let zh = r.text.contains("内部地址");
        assert!(zh, "{url}: a Chinese message: {}", r.text);
        // A refusal does not tell what an internal name resolves to.
        if url.contains(".example") {
            for ip in ["127.0.0.2", "169.254.169.254", "10.1.2.3"] {
                assert!(!r.text.contains(ip), "{url}: {}", r.text);
            }
        }
    }
    // A name that does not resolve yet is accepted: every delivery checks again.
    let r = w
        .post(
            "/webhooks",
            "manager",
            json!({ "url": "http://later.example/" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // What the deployment allows.
    targets(&w, &["127.0.0.1", "hooks.corp"]);
    for url in ["http://127.0.0.1:8080/hook", "http://hooks.corp/"] {
        let r = w.post("/webhooks", "manager", json!({ "url": url })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{url}: {}", r.text);
    }
    let r = w
        .post(
            "/webhooks",
            "manager",
            json!({ "url": "http://127.0.0.2/" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_inside_at_delivery_is_refused_and_office_roles_see_no_detail() {
    let w = world().await;
    let resolver = targets(&w, &[]);
    let (addr, got) = receiver().await;
    let url = format!("http://rebind.example:{}/hook", addr.port());
    let r = w.post("/webhooks", "manager", json!({ "url": url })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["subscription"]["id"].as_str().unwrap().to_string();
    // After the check at creation, the name comes to point at this machine.
    resolver.set("rebind.example", "127.0.0.1");
    let _stop = dispatch(&w);
    w.register("manager", sh(), "重庆某地产").await;
    let deliveries = format!("/webhooks/{id}/deliveries");
    eventually("a refused attempt", || async {
        let r = w.get(&deliveries, "sales_dept").await;
        r.body["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    })
    .await;
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing reached the internal address"
    );

    let hq = w.get(&deliveries, "sales_dept").await.body["deliveries"][0].clone();
    let detail = hq["error"].as_str().unwrap();
    assert!(
        detail.contains("refused") && detail.contains("loopback"),
        "{hq}"
    );
    assert!(hq["duration_ms"].is_u64(), "{hq}");

    let office = w.get(&deliveries, "manager").await.body["deliveries"][0].clone();
    assert_eq!(
        (&office["ok"], &office["status"], &office["error"]),
        (&json!(false), &Value::Null, &json!("delivery failed")),
        "{office}"
    );
    assert!(office.get("duration_ms").is_none(), "{office}");
    let sub = w.get(&format!("/webhooks/{id}"), "manager").await.body;
    if !sub["failing"].is_null() {
        assert_eq!(sub["failing"]["last_error"], "delivery failed", "{sub}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_pauses_when_its_owner_leaves_or_is_reassigned() {
    let w = world().await;
    targets(&w, &["127.0.0.1"]);
    let (addr, got) = receiver().await;
    let url = format!("http://127.0.0.1:{}/hook", addr.port());
    let make = |who: &'static str| {
        let url = url.clone();
        let w = &w;
        async move {
            let r = w
                .post(
                    "/webhooks",
                    who,
                    json!({ "url": url, "kinds": ["lead.registered"] }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            assert_eq!(r.body["subscription"]["owner"], json!(w.ids[who]));
            r.body["subscription"]["id"].as_str().unwrap().to_string()
        }
    };
    let sh_hook = make("manager").await;
    let bj_hook = make("manager_bj").await;
    let mut stop = dispatch(&w);
    w.register("eng_a", sh(), "上海某地产").await;
    eventually("the first lead delivered", || async {
        !got.lock().unwrap().is_empty()
    })
    .await;

    // The SH manager leaves; the BJ manager becomes an SH manager. Leads registered afterwards
    // must not be sent to their hooks.
    let left = staff(
        &w,
        "manager",
        StaffCommand::Leave {
            reason: "resigned".into(),
        },
    )
    .await;
    let moved = staff(
        &w,
        "manager_bj",
        StaffCommand::Reassign {
            role: funnel_types::Role::OfficeManager,
            office: Some(sh()),
        },
    )
    .await;
    w.register("eng_a", sh(), "上海另一地产").await;
    w.register("eng_bj", bj(), "北京某地产").await;
    for (hook, at, word) in [(&sh_hook, left, "left"), (&bj_hook, moved, "moved")] {
        let uri = format!("/webhooks/{hook}");
        eventually("the pause", || async {
            w.get(&uri, "sales_dept").await.body["paused"] == true
        })
        .await;
        let sub = w.get(&uri, "sales_dept").await.body;
        assert_eq!(sub["paused_at_position"], at, "{sub}");
        assert!(sub["paused_at"].is_string(), "{sub}");
        let reason = sub["paused_reason"].as_str().unwrap();
        assert!(reason.contains(word), "{reason}");
    }
    // A restart neither resumes them nor delivers what came after.
    drop(stop);
    stop = dispatch(&w);
    for hook in [&sh_hook, &bj_hook] {
        let sub = w.get(&format!("/webhooks/{hook}"), "executive").await.body;
        assert_eq!(sub["paused"], true, "{sub}");
    }
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "no delivery after the owner's authority ended"
    );

    // Only someone entitled resumes, and becomes the owner.
    let resume = format!("/webhooks/{bj_hook}/resume");
    for (who, status) in [
        ("auditor", StatusCode::FORBIDDEN),
        ("eng_bj", StatusCode::FORBIDDEN),
        ("manager", StatusCode::UNAUTHORIZED),
    ] {
        let r = w.post(&resume, who, json!({})).await;
        assert_eq!(r.status, status, "{who}: {}", r.text);
    }
    let r = w
        .post(
            &format!("/webhooks/{sh_hook}/resume"),
            "manager_bj",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["owner"], json!(w.ids["manager_bj"]));
    let r = w.post(&resume, "sales_dept", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["paused"], &r.body["owner"]),
        (&json!(false), &json!(w.ids["sales_dept"]))
    );
    eventually("delivery goes on after the resume", || async {
        got.lock().unwrap().len() == 3
    })
    .await;
    drop(stop);
}

#[tokio::test]
async fn bad_requests_are_clear_problems() {
    let w = world().await;
    targets(&w, &[]);
    let ok = json!({ "url": "https://crm.example/hook", "kinds": ["lead.stage_changed"] });
    let cases = [
        (
            json!({ "url": "ftp://x/y" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.invalid_url",
        ),
        (
            json!({ "url": "not a url" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.invalid_url",
        ),
        (
            json!({ "url": "https://x/", "kinds": ["lead.teleported"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.unknown_kind",
        ),
        (
            json!({ "url": "https://x/", "offices": ["Atlantis"] }),
            StatusCode::NOT_FOUND,
            "office.not_found",
        ),
        (
            json!({ "url": "https://x/", "from": 1_000_000_000u64 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.beyond_head",
        ),
        (
            json!({ "url": "https://x/", "colour": "red" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_body",
        ),
        (
            json!({ "url": 7 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let r = w.post("/webhooks", "sales_dept", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.body["code"], code, "{body}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
    }
    let r = w
        .raw(
            Method::POST,
            "/webhooks",
            Some(w.tokens["sales_dept"].clone()),
            b"{".to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let r = w.post("/webhooks", "sales_dept", ok).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["subscription"]["id"].as_str().unwrap().to_string();
    let head = w.state.store().head().await.unwrap().0;
    assert_eq!(
        r.body["subscription"]["cursor"], head,
        "new subscriptions start at the head"
    );
    assert_eq!(r.body["subscription"]["offices"], json!([]));

    for (uri, status) in [
        (format!("/webhooks/{id}/explode"), StatusCode::NOT_FOUND),
        (
            "/webhooks/not-a-uuid/pause".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/webhooks/{}/pause", uuid::Uuid::now_v7()),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = w.post(&uri, "sales_dept", json!({})).await;
        assert_eq!(r.status, status, "{uri}: {}", r.text);
    }
    let r = w
        .post(&format!("/webhooks/{id}/replay"), "sales_dept", json!({}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "replay needs `from`: {}",
        r.text
    );
    let r = w
        .get(&format!("/webhooks/{id}/deliveries?limit=x"), "sales_dept")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let r = w
        .post(&format!("/webhooks/{id}/pause"), "sales_dept", json!({}))
        .await;
    assert_eq!(
        (r.status, &r.body["paused"]),
        (StatusCode::OK, &json!(true)),
        "{}",
        r.text
    );
    let r = w
        .post(&format!("/webhooks/{id}/resume"), "sales_dept", json!({}))
        .await;
    assert_eq!(r.body["paused"], false, "{}", r.text);
    let r = w
        .post(
            &format!("/webhooks/{id}/replay"),
            "sales_dept",
            json!({ "from": 0 }),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["cursor"]),
        (StatusCode::OK, &json!(0)),
        "{}",
        r.text
    );
    let r = w
        .get(&format!("/webhooks/{id}/deliveries"), "auditor")
        .await;
    assert_eq!(r.body["deliveries"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn offices_are_named_by_id_code_or_name() {
    let w = world().await;
    targets(&w, &[]);
    let head = w.state.store().head().await.unwrap().0;
    for office in [
        sh().to_string(),
        "SH".into(),
        "sh".into(),
        "SH%20office".into(),
    ] {
        let r = w
            .get(
                &format!("/pipeline?office={office}&at_least={head}"),
                "sales_dept",
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{office}: {}", r.text);
        let offices = r.body["offices"].as_array().unwrap();
        assert!(offices.len() <= 1, "{office}: {}", r.text);
        let r = w.get(&format!("/pipeline?office={office}"), "eng_bj").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{office}: {}", r.text);
    }
    let r = w.get("/audit/conflicts?office=XX", "sales_dept").await;
    assert_eq!(
        (r.status, &r.body["code"]),
        (StatusCode::NOT_FOUND, &json!("office.not_found"))
    );
    let r = w
        .post(
            "/webhooks",
            "manager",
            json!({ "url": "http://x/", "offices": ["sh"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["subscription"]["offices"], json!([sh()]));
}

/// A chat robot subscription: the vendor's URL shape is checked (in English and Chinese), the
/// credential in the URL and the signing secret are never answered, and a webhook takes no
/// signing secret.
#[tokio::test]
async fn chat_robot_subscriptions_keep_their_credentials() {
    let w = world().await;
    let resolver = targets(&w, &[]);
    resolver.set("oapi.dingtalk.com", "203.119.169.1");
    let token = "f00dfeedf00dfeedf00dfeed";
    let r = w
        .post(
            "/webhooks",
            "manager",
            json!({
                "url": format!("https://oapi.dingtalk.com/robot/send?access_token={token}"),
                "target": "dingtalk",
                "signing_secret": "SEC0123456789abcdef",
                "kinds": ["lead.*"],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["subscription"]["target"], "dingtalk");
    assert_eq!(
        r.body["subscription"]["url"],
        "https://oapi.dingtalk.com/robot/send?access_token=…feed"
    );
    assert!(r.body.get("secret").is_none(), "{}", r.text);
    let id = r.body["subscription"]["id"].as_str().unwrap().to_string();
    let listed = w.get(&format!("/webhooks/{id}"), "manager").await;
    for hidden in [token, "SEC0123456789abcdef"] {
        assert!(!r.text.contains(hidden) && !listed.text.contains(hidden));
    }
    for (body, says) in [
        (
            json!({ "url": "https://evil.example/robot/send?access_token=a", "target": "dingtalk" }),
            "不是钉钉机器人的地址",
        ),
        (
            json!({ "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "target": "wecom", "signing_secret": "SEC1" }),
            "企业微信机器人没有加签密钥",
        ),
        (
            json!({ "url": "https://crm.example/hook", "signing_secret": "x" }),
            "signing_secret 仅用于",
        ),
    ] {
        let r = w.post("/webhooks", "manager", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["code"], "webhook.invalid_robot");
        assert!(r.text.contains(says), "{}", r.text);
    }
}
