//! The test world: a SQLite store in a temporary directory with two offices (SH and BJ), one member
//! of staff per role (two engineers in SH), a token for each, the runner following the log, and
//! the router driven with `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_server::{AppState, ServeOptions};
use funnel_types::{OfficeId, Role, StaffId, SystemClock};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;
use tower::ServiceExt;

pub fn sh() -> OfficeId {
    OfficeId::derived("SH")
}

pub fn bj() -> OfficeId {
    OfficeId::derived("BJ")
}

/// Everyone in the test world, by a short name.
pub const PEOPLE: &[(&str, Role, Option<&str>)] = &[
    ("eng_a", Role::SalesEngineer, Some("SH")),
    ("eng_b", Role::SalesEngineer, Some("SH")),
    ("eng_bj", Role::SalesEngineer, Some("BJ")),
    ("assistant", Role::OfficeAssistant, Some("SH")),
    ("manager", Role::OfficeManager, Some("SH")),
    ("manager_bj", Role::OfficeManager, Some("BJ")),
    ("sales_dept", Role::SalesDepartment, None),
    ("key_account", Role::KeyAccountDepartment, None),
    ("executive", Role::Executive, None),
    ("auditor", Role::Auditor, None),
];

pub struct World {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub engine: Engine,
    pub tokens: BTreeMap<&'static str, String>,
    pub ids: BTreeMap<&'static str, StaffId>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    follower: Option<tokio::task::JoinHandle<()>>,
    /// Stops following the erasures recorded in the log (when dropped, with the world).
    _erasures: tokio::sync::watch::Sender<bool>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn system(engine: &Engine, cmd: Command) {
    engine
        .execute(CommandMeta::new(Who::System("bootstrap".into())), cmd)
        .await
        .expect("bootstrap command");
}

pub async fn world() -> World {
    let mut options = ServeOptions::default();
    // Tests deliver webhooks to receivers on this machine: allowed explicitly, as a deployment
    // with internal receivers would.
    options.notify.webhook_allowed_hosts = vec!["127.0.0.1".into()];
    world_with(options).await
}

pub async fn world_with(options: ServeOptions) -> World {
    world_at(options, Arc::new(SystemClock)).await
}

/// The test world with the engine on `clock` (e.g. a `ManualClock` the test moves).
pub async fn world_at(mut options: ServeOptions, clock: Arc<dyn funnel_types::Clock>) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    // Sealing personal fields when the options give a master key, as `funnel serve` does.
    let store: Arc<dyn funnel_store::EventStore> = match &options.privacy.master_key_file {
        Some(_) => funnel_app::open_store_with(
            &funnel_app::StoreUrl::Sqlite(dir.path().join("funnel.db")),
            None,
            &options.privacy.settings(),
        )
        .await
        .expect("sealed store"),
        None => Arc::new(
            funnel_store_sqlite::SqliteStore::open(dir.path().join("funnel.db")).expect("store"),
        ),
    };
    let engine = Engine::new(store.clone(), Policy::default(), clock);
    for (code, id) in [("SH", sh()), ("BJ", bj())] {
        let cmd = OfficeCommand::Open {
            office_id: id,
            name: format!("{code} office"),
            code: code.into(),
            timezone: "Asia/Shanghai".into(),
            region: String::new(),
        };
        system(&engine, Command::Office { office_id: id, cmd }).await;
    }
    let mut ids = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (name, role, office) in PEOPLE {
        let id = StaffId::derived(name);
        let office = office.map(OfficeId::derived);
        let cmd = StaffCommand::Join {
            staff_id: id,
            name: name.to_string(),
            role: *role,
            office,
        };
        system(&engine, Command::Staff { staff_id: id, cmd }).await;
        let t = funnel_server::tokens::issue(&engine, Who::System("test".into()), id)
            .await
            .expect("token");
        ids.insert(*name, id);
        tokens.insert(*name, t.token);
    }
    options.store.projections = Some(dir.path().join("funnel.projections.db"));
    let runner =
        funnel_server::open_runner(&dir.path().join("funnel.projections.db")).expect("runner");
    let runner = Arc::new(RwLock::new(runner));
    let (stop, follower) = spawn_follower(runner.clone(), store.clone(), Duration::ZERO);
    // As `funnel serve` does: an erasure recorded by anyone drops the lead from the engine's memory.
    let (erasures, erasures_rx) = tokio::sync::watch::channel(false);
    let head = store.head().await.expect("head");
    tokio::spawn(funnel_server::forget_erased_forever(
        engine.clone(),
        store.clone(),
        head,
        erasures_rx,
    ));
    let hooks = funnel_notify::webhooks::Webhooks::in_memory().expect("webhooks");
    hooks.set_targets(options.notify.targets().expect("webhook targets"));
    let credentials =
        funnel_app::credentials::Credentials::open(&dir.path().join("credentials.db"))
            .expect("credentials");
    let oidc = funnel_server::oidc::Oidc::from_options(&options.oidc).expect("oidc settings");
    let state = AppState::new(engine.clone(), runner, hooks, credentials, options);
    if let Some(oidc) = oidc {
        state.set_oidc(oidc);
    }
    World {
        dir,
        state,
        engine,
        tokens,
        ids,
        stop: Some(stop),
        follower: Some(follower),
        _erasures: erasures,
    }
}

/// The runner following the log (after `delay`), until the sender is used or dropped.
fn spawn_follower(
    runner: Arc<RwLock<funnel_projections::Runner>>,
    store: Arc<dyn funnel_store::EventStore>,
    delay: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let shutdown = async {
            let _ = rx.await;
        };
        let _ = funnel_projections::follow(&runner, store.as_ref(), shutdown, &mut |_| {}).await;
    });
    (stop, task)
}

impl World {
    /// Stops the read models following the log, as a process lagging behind another one writing
    /// to the same log: until [`World::follow_after`], they know nothing written after this.
    pub async fn pause_following(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(f) = self.follower.take() {
            f.await.expect("the follower ended");
        }
    }

    /// Starts the read models following the log again once `delay` has passed.
    pub fn follow_after(&mut self, delay: Duration) {
        let (stop, follower) = spawn_follower(
            self.state.runner().clone(),
            self.state.store().clone(),
            delay,
        );
        self.stop = Some(stop);
        self.follower = Some(follower);
    }
}

/// A response: status, content type and JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
    /// The body as sent.
    pub bytes: Vec<u8>,
}

impl World {
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        who: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, uri, who.map(|w| self.tokens[w].clone()), bytes, &[])
            .await
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<String>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).expect("request");
        let res = funnel_server::router(self.state.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            headers,
            body,
            text,
            bytes: bytes.to_vec(),
        }
    }

    pub async fn get(&self, uri: &str, who: &str) -> Reply {
        self.call(Method::GET, uri, Some(who), None).await
    }

    pub async fn post(&self, uri: &str, who: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(who), Some(body)).await
    }

    /// A saga runtime over the world's store (no checkpoint), run until idle: the workflows have
    /// reacted to everything written so far.
    pub async fn sagas(&self) -> funnel_workflows::WorkflowRuntime {
        let mut rt = funnel_workflows::WorkflowRuntime::new(
            self.engine.clone(),
            Arc::new(SystemClock),
            None,
        )
        .expect("runtime");
        rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");
        rt
    }

    /// Registers a lead for `customer` in `office` as `who`; returns its id and the write's position.
    pub async fn register(&self, who: &str, office: OfficeId, customer: &str) -> (String, u64) {
        let r = self
            .post("/leads", who, registration(office, customer))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        (
            r.body["id"].as_str().expect("id").to_string(),
            r.body["position"].as_u64().expect("position"),
        )
    }
}

pub fn registration(office: OfficeId, customer: &str) -> Value {
    json!({
        "customer_name": customer,
        "project_name": "城市花园（二期）",
        "industry": "real_estate",
        "purchase_mode": "independent",
        "channel": "building_sweep",
        "office": office,
        "location": "上海市浦东新区",
        "contact": { "name": "李经理", "phone": "13800000000" },
        "need": "需要楼宇对讲系统",
    })
}

pub fn visit() -> Value {
    json!({
        "kind": "visit",
        "visited_at": "2026-03-02T09:30:00Z",
        "purposes": ["collect_needs"],
        "summary": "第一次拜访",
    })
}

/// The `Set-Cookie` header of a reply that sets `name`, whole, if there is one.
pub fn sets_cookie<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The `Set-Cookie` header of a reply that sets `name`, whole (the test fails without one).
pub fn set_cookie<'a>(r: &'a Reply, name: &str) -> &'a str {
    sets_cookie(r, name).unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", r.headers))
}

/// The value a `Set-Cookie` header gives its cookie.
pub fn cookie_value(header: &str) -> String {
    let first = header.split(';').next().unwrap_or("");
    first
        .split_once('=')
        .map(|(_, v)| v)
        .unwrap_or("")
        .to_string()
}

// Helpers of the tests that walk a lead through its stages and tasks.

const OK: StatusCode = StatusCode::OK;

pub fn entries<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is a list: {v}"))
}

pub async fn task(w: &World, who: &str, name: &str) -> Value {
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/tasks?at_least={head}"), who).await;
    assert_eq!(r.status, OK, "{}", r.text);
    entries(&r.body, "tasks")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{who} has a `{name}` task: {}", r.text))
        .clone()
}

/// Runs a task's command with its fixed body and `inputs`.
pub async fn complete(w: &World, who: &str, command: &Value, inputs: Value) -> Value {
    assert_eq!(command["method"], "POST");
    let mut body = command["body"].clone();
    for (k, v) in inputs.as_object().expect("inputs") {
        assert!(
            entries(command, "inputs").iter().any(|i| i["name"] == *k),
            "`{k}` is an input of {command}"
        );
        body[k] = v.clone();
    }
    let r = w
        .post(command["path"].as_str().expect("path"), who, body)
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    r.body
}

pub async fn command(w: &World, who: &str, lead: &str, name: &str, body: Value) -> Value {
    let r = w
        .post(&format!("/leads/{lead}/commands/{name}"), who, body)
        .await;
    assert_eq!(r.status, OK, "{name}: {}", r.text);
    r.body
}

/// Meets every criterion of `stage`'s checklist (independent purchase) that is met by a record,
/// and records an insider.
pub async fn meet(w: &World, lead: &str, criteria: &[&str]) {
    for c in criteria {
        command(
            w,
            "eng_a",
            lead,
            "record_criterion",
            json!({ "criterion": c, "evidence": format!("{c} 已确认") }),
        )
        .await;
    }
}

/// The valid-info criteria of an independent purchase that a record meets (the insider is marked).
pub const VALID_CRITERIA: &[&str] = &[
    "developer_contact",
    "project_details",
    "product_demo",
    "digital_intercom_need",
    "decision_chain_known",
    "competitors_known",
];

/// The prospect criteria of an independent purchase that a record meets (levels are assessed).
pub const PROSPECT_CRITERIA: &[&str] = &[
    "design_proposal_or_tender",
    "preliminary_quote",
    "hq_or_reference_visit",
    "decision_chain_exchanges",
    "insider_key_persons",
];

/// Brings `eng_a`'s lead (independent purchase) to a filed prospect of 120 万元: a decision maker
/// who is an insider at levels B, every criterion met, both declarations approved and filed.
pub async fn to_prospect(w: &World, lead: &str) {
    let kp = command(
        w,
        "eng_a",
        lead,
        "record_key_person",
        json!({ "name": "王总", "title": "总经理", "role": "decision_maker" }),
    )
    .await;
    let key_person = kp["events"][0]["data"]["key_person_id"].clone();
    command(
        w,
        "eng_a",
        lead,
        "mark_insider",
        json!({ "key_person_id": key_person }),
    )
    .await;
    meet(w, lead, VALID_CRITERIA).await;
    command(
        w,
        "eng_a",
        lead,
        "declare_valid_info",
        json!({ "note": "条件齐备" }),
    )
    .await;
    approve_and_file(w).await;
    command(
        w,
        "eng_a",
        lead,
        "assess_relationship",
        json!({ "company": "b", "personal": "b", "key_person_id": key_person }),
    )
    .await;
    meet(w, lead, PROSPECT_CRITERIA).await;
    command(
        w,
        "eng_a",
        lead,
        "declare_prospect",
        json!({ "amount_cny": 1_200_000, "quoting_strategy": "标准报价" }),
    )
    .await;
    approve_and_file(w).await;
}

/// The manager approves the open declaration and the sales department files it.
async fn approve_and_file(w: &World) {
    w.sagas().await;
    let t = task(w, "manager", "review_declaration").await;
    complete(w, "manager", &t["commands"][0], json!({ "approve": true })).await;
    w.sagas().await;
    let t = task(w, "sales_dept", "file_declaration").await;
    complete(w, "sales_dept", &t["commands"][0], json!({})).await;
    w.sagas().await;
}
