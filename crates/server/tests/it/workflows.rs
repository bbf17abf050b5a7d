//! Workflow instances over the API: listed and shown within the caller's scope, filtered by kind
//! and status, paginated; retried through the saga runtime of the process (only by the sales
//! department and executives, and only where the sagas run).

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

const OK: StatusCode = StatusCode::OK;
const NO: StatusCode = StatusCode::FORBIDDEN;

#[tokio::test]
async fn instances_are_listed_shown_and_retried_within_scope() {
    let w = world().await;
    // Duplicate registrations in SH and in BJ open one ownership conflict in each office.
    w.register("eng_a", sh(), "万科").await;
    let r = w.post("/leads", "eng_b", registration(sh(), "万科")).await;
    assert_eq!(r.status, OK, "{}", r.text);
    w.register("eng_bj", bj(), "保利").await;
    let r = w
        .post("/leads", "manager_bj", registration(bj(), "保利"))
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let mut rt = w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;

    // Headquarters sees both; SH's manager only SH's; filters narrow it.
    let r = w
        .get(&format!("/workflows?at_least={head}"), "auditor")
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let all = r.body["instances"].as_array().expect("instances").clone();
    let conflicts: Vec<_> = all
        .iter()
        .filter(|i| i["kind"] == "ownership_conflict")
        .collect();
    assert_eq!(conflicts.len(), 2, "{}", r.text);
    assert!(
        conflicts
            .iter()
            .all(|i| i["status"] == "active" && i["open_tasks"] == 1)
    );
    let r = w.get("/workflows?kind=ownership_conflict", "manager").await;
    assert_eq!(r.status, OK, "{}", r.text);
    let mine = r.body["instances"].as_array().expect("instances");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["office"], sh().to_string());
    let sh_id = mine[0]["id"].as_str().expect("id").to_string();
    let bj_id = conflicts
        .iter()
        .find(|i| i["office"] == bj().to_string())
        .and_then(|i| i["id"].as_str())
        .expect("BJ's")
        .to_string();
    let r = w
        .get(
            "/workflows?kind=ownership_conflict&status=completed",
            "auditor",
        )
        .await;
    assert_eq!(
        r.body["instances"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
    let r = w.get("/workflows?office=BJ", "manager").await;
    assert_eq!(r.status, NO, "{}", r.text);
    assert_eq!(r.body["code"], "auth.other_office");
    for bad in [
        "/workflows?kind=teleport",
        "/workflows?status=sleeping",
        "/workflows?limit=0",
        "/workflows?after=x",
    ] {
        let r = w.get(bad, "auditor").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
    }

    // Pages of one: every instance exactly once, in id order.
    let mut seen = Vec::new();
    let mut uri = "/workflows?limit=1".to_string();
    loop {
        let r = w.get(&uri, "executive").await;
        assert_eq!(r.status, OK, "{}", r.text);
        seen.extend(
            r.body["instances"]
                .as_array()
                .expect("instances")
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string)),
        );
        match r.body["next"].as_str() {
            Some(next) => uri = format!("/workflows?limit=1&after={next}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = all
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    // One instance with its own events; another office's is refused, an unknown one not found.
    let r = w.get(&format!("/workflows/{sh_id}"), "manager").await;
    assert_eq!(r.status, OK, "{}", r.text);
    assert_eq!(r.body["instance"]["id"], sh_id.as_str());
    let types: Vec<&str> = r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types.first(), Some(&"workflow.started"));
    assert!(types.contains(&"workflow.task_opened"), "{types:?}");
    let r = w.get(&format!("/workflows/{bj_id}"), "manager").await;
    assert_eq!(r.status, NO, "{}", r.text);
    let r = w.get(&format!("/workflows/{bj_id}"), "eng_bj").await;
    assert_eq!(r.status, OK, "{}", r.text);
    let unknown = uuid::Uuid::now_v7();
    let r = w.get(&format!("/workflows/{unknown}"), "auditor").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["code"], "workflow.not_found");

    // Retrying: where no saga runtime runs, the server says so.
    let retry = format!("/workflows/{sh_id}/retry");
    let r = w.post(&retry, "sales_dept", json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["code"], "workflows.not_running");

    // With the runtime running: only the sales department and executives retry.
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    w.state.set_workflow_control(tx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut observe = |_: &funnel_workflows::Backlog| {};
    let run = rt.run_controlled(
        async {
            let _ = stopped.await;
        },
        &mut observe,
        &mut rx,
    );
    let requests = async {
        for (who, _, _) in PEOPLE {
            let r = w.post(&retry, who, json!({})).await;
            if matches!(*who, "sales_dept" | "executive") {
                assert_eq!(r.status, OK, "{who}: {}", r.text);
                // Nothing was parked, so nothing is retried; the instance is answered as it is.
                assert_eq!(r.body["retried"], 0);
                assert_eq!(r.body["instance"]["status"], "active");
            } else {
                assert_eq!(r.status, NO, "{who}: {}", r.text);
            }
        }
        let r = w
            .post(
                &format!("/workflows/{unknown}/retry"),
                "sales_dept",
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = w.post(&retry, "sales_dept", json!({ "now": true })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let _ = stop.send(());
    };
    let (ran, ()) = tokio::join!(run, requests);
    ran.expect("the runtime stops cleanly");

    // A runtime that stopped between rounds (its lease went to another process) leaves a retry
    // unread: the request gives up with a 503 rather than wait for ever.
    tokio::time::pause();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(600),
        w.post(&retry, "sales_dept", json!({})),
    )
    .await
    .expect("the retry request gave up on its own");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    drop(rx);
}
