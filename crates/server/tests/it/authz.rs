//! The authorization matrix: every role against every kind of endpoint — reading their own office,
//! reading another office, changing their own lead, changing another engineer's lead (403, and the
//! refused touch is in the audit), a headquarters action, the auditor changing nothing, and the
//! organisation (offices and staff).

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

const OK: StatusCode = StatusCode::OK;
const NO: StatusCode = StatusCode::FORBIDDEN;

fn is_hq(who: &str) -> bool {
    matches!(who, "sales_dept" | "key_account" | "executive" | "auditor")
}

fn in_bj(who: &str) -> bool {
    who.ends_with("_bj")
}

#[tokio::test]
async fn every_role_against_every_kind_of_endpoint() {
    let w = world().await;
    let (lead_sh, _) = w.register("eng_a", sh(), "万科").await;
    let (lead_bj, _) = w.register("eng_bj", bj(), "保利").await;
    let plan = json!({ "period": { "kind": "month", "year": 2099, "month": 2 }, "visits": [] });
    let r = w.post("/plans", "eng_bj", plan).await;
    assert_eq!(r.status, OK, "{}", r.text);
    let bj_plan = r.body["id"].as_str().expect("plan id").to_string();
    let head = w.state.store().head().await.expect("head").0;

    for (who, _, _) in PEOPLE {
        let who = *who;
        // Read: the caller's own scope always answers.
        let r = w.get(&format!("/pipeline?at_least={head}"), who).await;
        assert_eq!(
            r.status, OK,
            "{who} reads the pipeline of their scope: {}",
            r.text
        );
        // Read a lead of office SH: its people and headquarters.
        let expect = if in_bj(who) { NO } else { OK };
        let r = w.get(&format!("/leads/{lead_sh}/audit"), who).await;
        assert_eq!(
            r.status, expect,
            "{who} reads an SH lead's audit: {}",
            r.text
        );
        // Read another office's pipeline: only headquarters and auditors, or BJ's own people.
        let expect = if is_hq(who) || in_bj(who) { OK } else { NO };
        let r = w.get(&format!("/pipeline?office={}", bj()), who).await;
        assert_eq!(r.status, expect, "{who} reads BJ's pipeline: {}", r.text);
        let r = w
            .get(&format!("/audit/conflicts?office={}", bj()), who)
            .await;
        assert_eq!(r.status, expect, "{who} reads BJ's conflicts: {}", r.text);
        let r = w.get(&format!("/audit/plans?office={}", bj()), who).await;
        assert_eq!(r.status, expect, "{who} reads BJ's plans: {}", r.text);
        if expect == NO {
            assert_eq!(r.body["code"], "auth.other_office");
            assert_eq!(r.content_type, "application/problem+json");
        }
    }

    // Change their own lead: each engineer on theirs.
    for (who, lead) in [("eng_a", &lead_sh), ("eng_bj", &lead_bj)] {
        let r = w
            .post(&format!("/leads/{lead}/commands/log_visit"), who, visit())
            .await;
        assert_eq!(r.status, OK, "{who} changes their own lead: {}", r.text);
    }

    // Change another engineer's lead: everybody else is refused, and each attempt is on record.
    let mut last = 0;
    for (who, _, _) in PEOPLE.iter().filter(|(w, _, _)| *w != "eng_a") {
        let r = w
            .post(
                &format!("/leads/{lead_sh}/commands/log_visit"),
                who,
                visit(),
            )
            .await;
        assert_eq!(r.status, NO, "{who} changes eng_a's lead: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
        assert!(r.body["message_zh"].as_str().is_some_and(|m| !m.is_empty()));
        last = r.body["recorded_position"]
            .as_u64()
            .unwrap_or_else(|| panic!("{who}'s refusal is recorded: {}", r.text));
    }
    let r = w
        .get(
            &format!("/leads/{lead_sh}/audit?at_least={last}"),
            "auditor",
        )
        .await;
    let refused: Vec<String> = r.body["touches"]
        .as_array()
        .expect("touches")
        .iter()
        .filter(|t| t["refused"] == true)
        .filter_map(|t| t["actor"]["id"].as_str().map(str::to_string))
        .collect();
    for (who, _, _) in PEOPLE.iter().filter(|(w, _, _)| *w != "eng_a") {
        assert!(
            refused.contains(&w.ids[who].to_string()),
            "{who}'s refused touch is in the audit: {refused:?}"
        );
    }
    let r = w
        .get(&format!("/audit/conflicts?at_least={last}"), "manager")
        .await;
    assert!(r.body["refused_touches"].as_array().expect("list").len() >= PEOPLE.len() - 1);

    // A headquarters action (filing another office's plan): only the sales department.
    for (who, _, _) in PEOPLE.iter().filter(|(w, _, _)| *w != "sales_dept") {
        let r = w
            .post(&format!("/plans/{bj_plan}/file"), who, json!({}))
            .await;
        assert_eq!(r.status, NO, "{who} files BJ's plan: {}", r.text);
    }
    let r = w
        .post(&format!("/plans/{bj_plan}/file"), "sales_dept", json!({}))
        .await;
    assert_eq!(
        r.status, OK,
        "the sales department files BJ's plan: {}",
        r.text
    );

    // The auditor reads everything and changes nothing.
    for uri in [
        "/events?limit=1000",
        "/projections",
        "/audit/conflicts",
        "/audit/plans",
    ] {
        assert_eq!(
            w.get(uri, "auditor").await.status,
            OK,
            "auditor reads {uri}"
        );
    }
    let r = w.get(&format!("/leads/{lead_bj}/audit"), "auditor").await;
    assert_eq!(r.status, OK);
    let r = w
        .post("/leads", "auditor", registration(sh(), "新客户"))
        .await;
    assert_eq!(r.status, NO, "{}", r.text);
    assert_eq!(r.body["code"], "auth.read_only");
    let r = w
        .post(
            "/summaries",
            "auditor",
            json!({ "office": sh(),
        "period": { "kind": "month", "year": 2026, "month": 3 }, "lines": [] }),
        )
        .await;
    assert_eq!(r.status, NO, "{}", r.text);

    // The organisation: everyone lists the offices and the staff of their scope; only the sales
    // department and executives open offices and bring people in.
    for (i, (who, _, _)) in PEOPLE.iter().enumerate() {
        let who = *who;
        assert_eq!(
            w.get("/offices", who).await.status,
            OK,
            "{who} lists offices"
        );
        assert_eq!(w.get("/staff", who).await.status, OK, "{who} lists staff");
        let expect = if matches!(who, "sales_dept" | "executive") {
            StatusCode::CREATED
        } else {
            NO
        };
        let office = json!({ "code": format!("N{i}"), "name": format!("新办事处 {i}") });
        let r = w.post("/offices", who, office).await;
        assert_eq!(r.status, expect, "{who} opens an office: {}", r.text);
        let person =
            json!({ "name": format!("新人 {i}"), "role": "sales_engineer", "office": "SH" });
        let r = w.post("/staff", who, person).await;
        assert_eq!(r.status, expect, "{who} adds staff: {}", r.text);
    }
}

#[tokio::test]
async fn refusal_codes_map_to_statuses() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    // Registering the same customer again from another office: a conflict.
    let r = w.post("/leads", "eng_bj", registration(bj(), "万科")).await;
    assert!(
        r.status == StatusCode::CONFLICT || r.status == NO,
        "{}",
        r.text
    );
    // A declaration with its checklist incomplete lists what is missing.
    let r = w
        .post(
            &format!("/leads/{lead}/commands/declare_valid_info"),
            "eng_a",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["code"], "lead.stage_criteria_unmet");
    assert!(!r.body["missing"].as_array().expect("missing").is_empty());
    // Validation: an empty summary.
    let mut v = visit();
    v["summary"] = json!("");
    let r = w
        .post(&format!("/leads/{lead}/commands/log_visit"), "eng_a", v)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["code"], "validation.field_required");
    // Not found: a lead nobody registered.
    let unknown = uuid::Uuid::now_v7();
    let r = w
        .post(
            &format!("/leads/{unknown}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = w.get(&format!("/leads/{unknown}/audit"), "eng_a").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

/// Webhook subscriptions: office managers for their own office, headquarters for any, auditors
/// read only, engineers and assistants not at all; another office's subscription is not found.
#[tokio::test]
async fn webhooks_by_role_and_office() {
    use axum::http::Method;
    let w = world().await;
    let created = StatusCode::CREATED;
    let hook = |offices: serde_json::Value| json!({ "url": "http://127.0.0.1:9/hook", "offices": offices, "kinds": ["lead.*"] });
    let mut made = std::collections::BTreeMap::new();
    for (who, _, _) in PEOPLE {
        let who = *who;
        let expect = match who {
            "sales_dept" | "key_account" | "executive" | "manager_bj" => created,
            _ => NO,
        };
        let r = w.post("/webhooks", who, hook(json!(["BJ"]))).await;
        assert_eq!(r.status, expect, "{who} subscribes to BJ: {}", r.text);
        let code = match who {
            "auditor" => Some("auth.read_only"),
            "manager" => Some("auth.other_office"),
            "eng_a" | "eng_b" | "eng_bj" | "assistant" => Some("auth.role_not_permitted"),
            _ => None,
        };
        match code {
            Some(code) => assert_eq!(r.body["code"], code, "{who}: {}", r.text),
            None => {
                assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
                assert_eq!(r.body["subscription"]["offices"], json!([bj()]));
                made.insert(
                    who,
                    r.body["subscription"]["id"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    // A manager's subscription with no offices covers their own office.
    let r = w.post("/webhooks", "manager", hook(json!([]))).await;
    assert_eq!(r.status, created, "{}", r.text);
    assert_eq!(r.body["subscription"]["offices"], json!([sh()]));
    assert!(r.body["subscription"].get("secret").is_none());
    let sh_hook = r.body["subscription"]["id"].as_str().unwrap().to_string();

    for (who, _, _) in PEOPLE {
        let who = *who;
        let r = w.get("/webhooks", who).await;
        let seen = match who {
            "eng_a" | "eng_b" | "eng_bj" | "assistant" => {
                assert_eq!(r.status, NO, "{who} lists webhooks: {}", r.text);
                continue;
            }
            "manager" => 1,
            "manager_bj" => made.len(),
            _ => made.len() + 1,
        };
        assert_eq!(r.status, OK, "{who} lists webhooks: {}", r.text);
        assert_eq!(
            r.body["subscriptions"].as_array().unwrap().len(),
            seen,
            "{who}"
        );
        // Pausing the SH subscription: its manager and headquarters; BJ's manager does not see it.
        let expect = match who {
            "manager" | "sales_dept" | "key_account" | "executive" => OK,
            "manager_bj" => StatusCode::NOT_FOUND,
            _ => NO,
        };
        let r = w
            .post(&format!("/webhooks/{sh_hook}/pause"), who, json!({}))
            .await;
        assert_eq!(
            r.status, expect,
            "{who} pauses the SH subscription: {}",
            r.text
        );
        let r = w
            .call(
                Method::GET,
                &format!("/webhooks/{sh_hook}/deliveries"),
                Some(who),
                None,
            )
            .await;
        let expect = if who == "manager_bj" {
            StatusCode::NOT_FOUND
        } else {
            OK
        };
        assert_eq!(
            r.status, expect,
            "{who} reads SH's delivery log: {}",
            r.text
        );
    }
    let r = w
        .call(
            Method::DELETE,
            &format!("/webhooks/{sh_hook}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(r.status, NO, "{}", r.text);
    let r = w
        .call(
            Method::DELETE,
            &format!("/webhooks/{sh_hook}"),
            Some("manager"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = w.get(&format!("/webhooks/{sh_hook}"), "manager").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["code"], "webhook.not_found");
}

/// Tasks and an actor's audit: people read their own; office managers their office's people;
/// headquarters and auditors everyone; nobody another office's.
#[tokio::test]
async fn tasks_and_actor_audits_by_role() {
    let w = world().await;
    // A duplicate registration in SH opens an ownership conflict for SH's manager to decide.
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w.post("/leads", "eng_b", registration(sh(), "万科")).await;
    assert_eq!(r.status, OK, "{}", r.text);
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;

    let r = w.get(&format!("/tasks?at_least={head}"), "manager").await;
    assert_eq!(r.status, OK, "{}", r.text);
    let tasks = r.body["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1, "{}", r.text);
    assert_eq!(tasks[0]["name"], "decide_conflict");
    assert_eq!(tasks[0]["lead_id"], lead.as_str());
    let r = w.get("/tasks", "eng_a").await;
    assert_eq!(
        (r.status, r.body["tasks"].as_array().map(Vec::len)),
        (OK, Some(0))
    );

    for (who, _, _) in PEOPLE {
        let who = *who;
        let expect = match who {
            "manager" | "sales_dept" | "key_account" | "executive" | "auditor" => OK,
            _ => NO,
        };
        let r = w.get("/tasks?staff=manager", who).await;
        assert_eq!(
            r.status, expect,
            "{who} reads SH's manager's tasks: {}",
            r.text
        );
        let expect = match who {
            "eng_a" | "manager" | "sales_dept" | "key_account" | "executive" | "auditor" => OK,
            _ => NO,
        };
        let r = w.get("/audit/actor/eng_a", who).await;
        assert_eq!(r.status, expect, "{who} reads eng_a's audit: {}", r.text);
        if expect == OK {
            let actions: Vec<&str> = r.body["touches"]
                .as_array()
                .expect("touches")
                .iter()
                .filter_map(|t| t["action"].as_str())
                .collect();
            assert!(actions.contains(&"lead.registered"), "{who}: {actions:?}");
        }
    }
    let id = w.ids["eng_a"];
    let r = w
        .get(&format!("/audit/actor/{id}?from=2099-01-01"), "auditor")
        .await;
    assert_eq!(
        (r.status, r.body["touches"].as_array().map(Vec::len)),
        (OK, Some(0)),
        "{}",
        r.text
    );
    let r = w.get("/audit/actor/nobody", "auditor").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["code"], "staff.not_found");
    let r = w.get("/audit/actor/eng_a?from=yesterday", "auditor").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}
