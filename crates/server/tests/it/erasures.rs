//! Erasing a person through the API: asked by one member of headquarters staff, approved by
//! another, recorded with who and why; the running server then shows the person nowhere (the
//! lead's record, the lead search, the engine's cached lead), and nothing of them is left in the
//! files of the store's folder.

use crate::common::*;
use axum::http::StatusCode;
use funnel_server::ServeOptions;
use serde_json::{Value, json};
use std::path::Path;

fn enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Every file under `dir` whose bytes contain `text`.
fn files_holding(dir: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file()
            && std::fs::read(&path)
                .expect("read")
                .windows(text.len())
                .any(|w| w == text.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

async fn sealed_world() -> (tempfile::TempDir, World) {
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("master.key");
    funnel_app::privacy::keygen(&key).expect("master key");
    let mut options = ServeOptions::default();
    options.privacy.master_key_file = Some(key);
    (keys, world_with(options).await)
}

/// An engineer of Shanghai registers a lead whose contact is 王晓明: its id, and the position.
async fn register_wang(w: &World) -> (String, u64) {
    let mut reg = registration(sh(), "万科");
    reg["contact"] = json!({ "name": "王晓明", "phone": "13912345678" });
    let r = w.post("/leads", "eng_a", reg).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let lead = r.body["id"].as_str().expect("id").to_string();
    (lead, r.body["position"].as_u64().expect("position"))
}

#[tokio::test]
async fn an_erasure_takes_a_second_person_and_leaves_nothing_of_the_person_behind() {
    let (_keys, w) = sealed_world().await;
    let (lead, at) = register_wang(&w).await;
    let search = |at: u64| format!("/leads?q={}&at_least={at}", enc("王晓明"));
    let found = w.get(&search(at), "auditor").await;
    assert_eq!(found.body["total"], 1, "{}", found.text);
    // The engine caches the lead as it decides on it.
    let logged = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(logged.status, StatusCode::OK, "{}", logged.text);

    let subject = format!("contact:{lead}");
    let ask = json!({ "subject": subject, "reason": "PIPL request 2026-17" });
    // Engineers, managers and auditors may not ask.
    for who in ["eng_a", "manager", "auditor"] {
        let r = w.post("/privacy/erasures", who, ask.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
    }
    let bad = w
        .post(
            "/privacy/erasures",
            "sales_dept",
            json!({ "subject": "customer:1", "reason": "x" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(
        bad.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("关键人"))
    );
    let asked = w.post("/privacy/erasures", "sales_dept", ask).await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.text);
    let erasure = asked.body["id"].as_str().expect("erasure id").to_string();
    assert_eq!(asked.body["events"][0]["type"], "privacy.erasure_requested");

    // The approvers (the sales department) find it in their inbox.
    w.sagas().await;
    let head = w.state.store().head().await.expect("head");
    let tasks = w
        .get(&format!("/tasks?at_least={}", head.0), "sales_dept")
        .await;
    assert!(tasks.text.contains("approve_erasure"), "{}", tasks.text);

    // Not by engineers, managers or auditors; an erasure that does not exist, or an id that is not
    // one, is said so.
    let approve = format!("/privacy/erasures/{erasure}/approve");
    for who in ["eng_a", "manager", "auditor"] {
        let r = w.post(&approve, who, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
    }
    let unknown = w
        .post(
            &format!("/privacy/erasures/{}/approve", uuid::Uuid::now_v7()),
            "executive",
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert_eq!(unknown.body["code"], "erasure.not_found");
    let bad_id = w
        .post(
            "/privacy/erasures/not-an-id/approve",
            "executive",
            json!({}),
        )
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST, "{}", bad_id.text);
    let long = w
        .post(
            "/privacy/erasures",
            "sales_dept",
            json!({ "subject": format!("contact:{lead}"), "reason": "长".repeat(4001) }),
        )
        .await;
    assert_eq!(
        long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        long.text
    );
    // Not by whoever asked.
    let own = w.post(&approve, "sales_dept", json!({})).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.text);
    assert_eq!(own.body["code"], "erasure.second_person_required");
    let done = w.post(&approve, "executive", json!({})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let types: Vec<&Value> = done.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["type"])
        .collect();
    assert_eq!(
        types,
        ["privacy.erasure_approved", "privacy.subject_erased"]
    );
    let after = done.body["position"].as_u64().expect("position");
    let again = w.post(&approve, "executive", json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    // The approval closes the approvers' task.
    w.sagas().await;
    let head = w.state.store().head().await.expect("head");
    let tasks = w
        .get(&format!("/tasks?at_least={}", head.0), "sales_dept")
        .await;
    assert!(!tasks.text.contains("approve_erasure"), "{}", tasks.text);

    // The running server: the search, the lead's record and a command on the lead (the engine's
    // cached state) show the marker, never the person; the business facts stay.
    let gone = w.get(&search(after), "auditor").await;
    assert_eq!(gone.body["total"], 0, "{}", gone.text);
    let record = w
        .get(&format!("/leads/{lead}?at_least={after}"), "auditor")
        .await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    assert!(!record.text.contains("王晓明") && !record.text.contains("13912345678"));
    assert!(record.text.contains("已删除"), "{}", record.text);
    assert!(record.text.contains("万科"), "{}", record.text);
    let logged = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(logged.status, StatusCode::OK, "{}", logged.text);
    assert!(!logged.text.contains("王晓明"), "{}", logged.text);
    // Who and why are on record.
    let audit = w.get(&format!("/leads/{lead}/audit"), "auditor").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);

    for secret in ["王晓明", "13912345678"] {
        let held = files_holding(w.dir.path(), secret);
        for h in &held {
            let _ = std::fs::copy(h, "/tmp/inspect.db");
        }
        assert!(held.is_empty(), "{secret} is still in {held:?}");
    }
}

#[tokio::test]
async fn without_sealing_an_erasure_is_refused_saying_why() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w
        .post(
            "/privacy/erasures",
            "sales_dept",
            json!({ "subject": format!("contact:{lead}"), "reason": "PIPL" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["code"], "privacy.not_sealed");
    assert!(
        r.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("加密"))
    );
}

#[tokio::test]
async fn an_erasure_is_decided_from_the_inbox() {
    let (_keys, w) = sealed_world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let asked = w
        .post(
            "/privacy/erasures",
            "sales_dept",
            json!({ "subject": format!("contact:{lead}"), "reason": "PIPL request 2026-18" }),
        )
        .await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.text);
    let erasure = asked.body["id"].as_str().expect("erasure id").to_string();
    w.sagas().await;
    let head = w.state.store().head().await.expect("head");
    w.get(&format!("/tasks?at_least={}", head.0), "sales_dept")
        .await;
    let inbox = w
        .raw(
            axum::http::Method::GET,
            "/console/inbox",
            Some(w.tokens["sales_dept"].clone()),
            Vec::new(),
            &[],
        )
        .await;
    assert!(inbox.text.contains("审批删除"), "{}", inbox.text);
    for step in ["approve", "reject"] {
        let action = format!("hx-post=\"/console/privacy/erasures/{erasure}/{step}\"");
        assert!(inbox.text.contains(&action), "{action}: {}", inbox.text);
    }
    let reject = |who: &'static str| {
        let uri = format!("/console/privacy/erasures/{erasure}/reject");
        let w = &w;
        async move {
            w.raw(
                axum::http::Method::POST,
                &uri,
                Some(w.tokens[who].clone()),
                "reason=%E4%BB%8D%E5%9C%A8%E5%90%88%E5%90%8C%E6%9C%9F"
                    .as_bytes()
                    .to_vec(),
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("hx-request", "true"),
                ],
            )
            .await
        }
    };
    // Whoever asked is told, in place, that someone else must decide.
    let own = reject("sales_dept").await;
    assert!(own.text.contains("role=\"alert\""), "{}", own.text);
    assert!(own.text.contains("另一人"), "{}", own.text);
    let done = reject("executive").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("已驳回"), "{}", done.text);
    // Rejected: the person's fields still read.
    let record = w.get(&format!("/leads/{lead}"), "auditor").await;
    assert!(record.text.contains("李经理"), "{}", record.text);
}

/// The lead's state as the engine folds it holds the contact, and the engine writes snapshots of
/// it: a server that kept it after an erasure recorded by someone else could write the person's
/// fields again, sealed with a new key.
#[tokio::test]
async fn an_erasure_recorded_elsewhere_drops_the_lead_this_server_holds_in_memory() {
    let (_keys, w) = sealed_world().await;
    let (lead, _) = register_wang(&w).await;
    let logged = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(logged.status, StatusCode::OK, "{}", logged.text);
    let held = w.engine.cached_streams();
    assert!(held > 0);

    // Another process on the log (or `funnel privacy erase`) records the erasure.
    let elsewhere = funnel_engine::Engine::new(
        w.state.store().clone(),
        funnel_domain::Policy::default(),
        std::sync::Arc::new(funnel_types::SystemClock),
    );
    elsewhere
        .execute(
            funnel_engine::CommandMeta::new(funnel_engine::Who::System("another process".into())),
            funnel_engine::Command::Erasure {
                erasure_id: uuid::Uuid::now_v7(),
                cmd: funnel_domain::erasure::ErasureCommand::Record {
                    subject: format!("contact:{lead}"),
                    lead_id: funnel_types::LeadId(lead.parse().expect("uuid")),
                    reason: "PIPL request 2026-18".into(),
                },
            },
        )
        .await
        .expect("recorded");

    // This server reads the record and lets go of the lead's state, to fold it again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while w.engine.cached_streams() == held && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(w.engine.cached_streams(), held - 1);
    let record = w.get(&format!("/leads/{lead}"), "auditor").await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    let again = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}
