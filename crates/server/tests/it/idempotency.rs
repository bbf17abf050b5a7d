//! An `Idempotency-Key` is its caller's alone: a key answers only the caller who used it and only
//! for the same request; no caller can make a key into someone else's command id (a workflow's
//! included); and refused touches are recorded within a budget per member of staff.

use crate::common;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use common::*;
use funnel_domain::Event;
use funnel_domain::events::TimerPurpose;
use funnel_server::ServeOptions;
use funnel_store::Filter;
use funnel_types::{CommandId, Envelope, ManualClock, Position};
use serde_json::{Value, json};
use std::sync::Arc;

const KEY: &str = "0190f5a2-7c1e-7a3b-9c4d-5e6f7a8b9c0d";

impl World {
    async fn keyed(&self, uri: &str, who: &str, key: &str, body: &Value) -> Reply {
        self.keyed_bytes(uri, who, key, body.to_string().into_bytes())
            .await
    }

    async fn keyed_bytes(&self, uri: &str, who: &str, key: &str, body: Vec<u8>) -> Reply {
        self.raw(
            Method::POST,
            uri,
            Some(self.tokens[who].clone()),
            body,
            &[("idempotency-key", key)],
        )
        .await
    }

    /// Every event in the log, decoded.
    async fn log(&self) -> Vec<Envelope<Event>> {
        self.engine
            .store()
            .read_all(Position::START, &Filter::All, 100_000)
            .await
            .expect("read")
            .iter()
            .map(|r| funnel_codec::decode_recorded(r).expect("decode"))
            .collect()
    }

    async fn count(&self, event_type: &str) -> usize {
        self.log()
            .await
            .iter()
            .filter(|e| e.meta.event_type == event_type)
            .count()
    }
}

#[track_caller]
fn expect_problem(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["code"], code, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
    assert!(r.body.get("events").is_none(), "{}", r.text);
}

#[tokio::test]
async fn another_callers_key_answers_nothing_of_theirs_and_takes_nothing_from_them() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let uri = format!("/leads/{lead}/commands/log_visit");
    let first = w.keyed(&uri, "eng_a", KEY, &visit()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["duplicate"], false);
    // The same key and body from anyone else is their own command, not a replay of eng_a's.
    for who in ["auditor", "eng_bj", "manager_bj", "eng_b"] {
        let r = w.keyed(&uri, who, KEY, &visit()).await;
        expect_problem(
            &r,
            StatusCode::FORBIDDEN,
            r.body["code"].as_str().unwrap_or("-"),
        );
        assert_ne!(
            r.body["code"], "request.idempotency_key_reused",
            "{}",
            r.text
        );
    }
    // A key first used by others (refused, some of it recorded) is still free for eng_a.
    let later = "0190f5a2-7c1e-7a3b-9c4d-5e6f7a8b9c0e";
    for who in ["auditor", "eng_bj"] {
        let r = w.keyed(&uri, who, later, &visit()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    let mine = w.keyed(&uri, "eng_a", later, &visit()).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.body["duplicate"], false);
    assert_eq!(
        mine.body["events"][0]["type"], "lead.visit_logged",
        "{}",
        mine.text
    );
    assert_ne!(
        mine.body["command_id"], later,
        "a key is never the raw command id"
    );
}

#[tokio::test]
async fn the_same_key_and_request_answer_the_original_result() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let uri = format!("/leads/{lead}/commands/log_visit");
    let first = w.keyed(&uri, "eng_a", KEY, &visit()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    // The same JSON with other key order and spacing is the same request.
    let reordered = r#"{ "summary": "第一次拜访", "purposes": ["collect_needs"],
        "visited_at": "2026-03-02T09:30:00Z", "kind": "visit" }"#;
    let again = w.keyed_bytes(&uri, "eng_a", KEY, reordered.into()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["command_id"], first.body["command_id"]);
    assert_eq!(again.body["events"], first.body["events"]);
    assert_eq!(w.count("lead.visit_logged").await, 1);
    // A registration retried under its key is the same lead, once.
    let body = registration(sh(), "保利");
    let a = w.keyed("/leads", "eng_b", KEY, &body).await;
    let b = w.keyed("/leads", "eng_b", KEY, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(b.body["duplicate"], true, "{}", b.text);
    assert_eq!(a.body["events"], b.body["events"]);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let uri = format!("/leads/{lead}/commands/log_visit");
    let first = w.keyed(&uri, "eng_a", KEY, &visit()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let mut other = visit();
    other["summary"] = json!("第二次拜访");
    let r = w.keyed(&uri, "eng_a", KEY, &other).await;
    expect_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "request.idempotency_key_reused",
    );
    assert!(
        r.body["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("Idempotency-Key"))
    );
    assert!(
        r.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("Idempotency-Key"))
    );
    // The same command and body for another lead (another stream) under the same key.
    let (second, _) = w.register("eng_a", sh(), "华润").await;
    let r = w
        .keyed(
            &format!("/leads/{second}/commands/log_visit"),
            "eng_a",
            KEY,
            &visit(),
        )
        .await;
    expect_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "request.idempotency_key_reused",
    );
    // Another target: a registration of another customer under a key that registered one.
    let a = w
        .keyed("/leads", "eng_b", "reg-1", &registration(sh(), "保利"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let b = w
        .keyed("/leads", "eng_b", "reg-1", &registration(sh(), "绿地"))
        .await;
    expect_problem(
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "request.idempotency_key_reused",
    );
    assert_eq!(w.count("lead.visit_logged").await, 1);
    assert_eq!(
        w.count("lead.registered").await,
        3,
        "万科, 华润 and 保利 only"
    );
}

#[tokio::test]
async fn a_refusal_recorded_under_one_callers_key_does_not_answer_another() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let uri = format!("/leads/{lead}/commands/log_visit");
    let poach = w.keyed(&uri, "eng_b", KEY, &visit()).await;
    expect_problem(&poach, StatusCode::FORBIDDEN, "lead.not_owner");
    let recorded = poach.body["recorded_position"].clone();
    assert!(recorded.is_u64(), "{}", poach.text);
    // eng_b's retry is answered from the record, once.
    let retry = w.keyed(&uri, "eng_b", KEY, &visit()).await;
    expect_problem(&retry, StatusCode::FORBIDDEN, "lead.not_owner");
    assert_eq!(retry.body["recorded_position"], recorded);
    assert_eq!(w.count("lead.touch_refused").await, 1);
    // The owner's command under the same key runs.
    let mine = w.keyed(&uri, "eng_a", KEY, &visit()).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.body["duplicate"], false);
    assert_eq!(w.count("lead.visit_logged").await, 1);
}

#[tokio::test]
async fn a_workflows_command_id_cannot_be_taken_over_http() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let request = json!({ "to": w.ids["eng_b"], "evidence": "客户要求更换对接人" });
    let r = w
        .post(
            &format!("/leads/{lead}/commands/request_reassignment"),
            "manager",
            request,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    w.sagas().await;
    // Everything the saga's expiry command id is made of is in the log anyone in the office reads.
    let (workflow, timer) = w
        .log()
        .await
        .iter()
        .find_map(|e| match &e.payload {
            Event::TimerScheduled(t) if t.purpose == TimerPurpose::ReassignmentExpiry => {
                Some((t.workflow_id, t.timer_id))
            }
            _ => None,
        })
        .expect("expiry timer scheduled");
    let saga_id = CommandId::derived(&format!("{workflow}:{}:expire", timer.0)).to_string();
    // Sent as a key by the owner (accepted) and by an engineer of another office (refused and
    // recorded), it becomes neither's command id.
    let uri = format!("/leads/{lead}/commands/log_visit");
    let owner = w.keyed(&uri, "eng_a", &saga_id, &visit()).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text);
    assert_ne!(owner.body["command_id"], saga_id.as_str());
    let stranger = w.keyed(&uri, "eng_bj", &saga_id, &visit()).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{}", stranger.text);
    // When the deadline passes, the saga's own command still runs.
    let later = ManualClock::new(Utc::now() + chrono::Duration::days(90));
    let mut rt = funnel_workflows::WorkflowRuntime::new(w.engine.clone(), Arc::new(later), None)
        .expect("runtime");
    rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");
    let expired = w
        .log()
        .await
        .into_iter()
        .find(|e| matches!(e.payload, Event::ReassignmentExpired(_)))
        .expect("the reassignment expired");
    assert_eq!(expired.meta.command_id.to_string(), saga_id);
}

#[tokio::test]
async fn refused_touches_are_recorded_within_a_budget_per_person() {
    let clock = ManualClock::new(Utc::now());
    let w = world_at(ServeOptions::default(), Arc::new(clock.clone())).await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let uri = format!("/leads/{lead}/commands/log_visit");
    let budget = funnel_engine::RecordBudget::default();
    let burst = budget.burst as usize;
    // One engineer tries again and again (no key: every attempt is a new command).
    for i in 0..burst + 5 {
        let r = w.post(&uri, "eng_b", visit()).await;
        expect_problem(&r, StatusCode::FORBIDDEN, "lead.not_owner");
        assert_eq!(
            r.body["recorded_position"].is_u64(),
            i < burst,
            "attempt {i}: {}",
            r.text
        );
    }
    assert_eq!(w.count("lead.touch_refused").await, burst);
    let metrics = w.get("/metrics", "auditor").await.text;
    assert!(
        metrics.contains("funnel_refusal_records_suppressed_total{code=\"lead.not_owner\"} 5"),
        "{metrics}"
    );
    // Someone else is unaffected.
    let r = w.post(&uri, "eng_bj", visit()).await;
    assert!(r.body["recorded_position"].is_u64(), "{}", r.text);
    assert_eq!(w.count("lead.touch_refused").await, burst + 1);
    // The budget refills with time: one more record per interval.
    clock.advance(budget.refill_every);
    let r = w.post(&uri, "eng_b", visit()).await;
    assert!(r.body["recorded_position"].is_u64(), "{}", r.text);
    let r = w.post(&uri, "eng_b", visit()).await;
    assert!(r.body["recorded_position"].is_null(), "{}", r.text);
    assert_eq!(w.count("lead.touch_refused").await, burst + 2);
}
