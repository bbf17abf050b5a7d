//! Records over the API: a lead's whole record and timeline (`GET /leads/{id}`), a member of
//! staff's (`GET /staff/{id}`), and tasks that say what they are about and which command completes
//! them, each within the caller's scope.

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

const OK: StatusCode = StatusCode::OK;

#[tokio::test]
async fn a_lead_record_has_its_fields_checklist_and_timeline_with_refusals_and_changes() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    // A colleague's touch is refused and kept on record.
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_b",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let r = w
        .post(
            &format!("/leads/{lead}/commands/record_criterion"),
            "eng_a",
            json!({ "criterion": "product_demo", "evidence": "在售楼处演示了可视对讲" }),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let r = w
        .post(
            &format!("/leads/{lead}/commands/update_details"),
            "eng_a",
            json!({ "location": "上海市闵行区", "purchase_scale": "1200 户" }),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let head = r.body["position"].as_u64().expect("position");

    let r = w
        .get(&format!("/leads/{lead}?at_least={head}"), "manager")
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let rec = &r.body;
    assert_eq!(rec["lead_id"], lead.as_str());
    assert_eq!(rec["office"]["code"], "SH");
    assert_eq!(rec["time_zone"], "Asia/Shanghai");
    assert_eq!(rec["fields"]["customer_name"], "万科");
    assert_eq!(rec["fields"]["location"], "上海市闵行区");
    assert_eq!(rec["fields"]["purchase_scale"], "1200 户");
    assert_eq!(rec["fields"]["contact"]["name"], "李经理");
    assert_eq!(rec["fields"]["registered_by"]["name"], "eng_a");
    assert_eq!(rec["owner"]["name"], "eng_a", "{}", r.text);
    assert_eq!(rec["stage"], "ordinary");
    assert_eq!(rec["stage_zh"], "普通信息");
    assert_eq!(entries(rec, "visits").len(), 1);
    assert_eq!(rec["visits"][0]["engineer"]["name"], "eng_a");
    assert_eq!(rec["owner_history"][0]["to"]["name"], "eng_a");

    // The checklist of the purchase mode: items met by registration, and one by its own record
    // with its evidence; unmet items have no event.
    let checklist = entries(rec, "checklist");
    let stages: Vec<&str> = checklist
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    assert_eq!(stages, ["ordinary", "valid", "prospect"]);
    assert_eq!(checklist[0]["missing"], 0, "{}", checklist[0]);
    assert!(
        entries(&checklist[0], "items")
            .iter()
            .all(|i| i["met_by"]["event_type"] == "lead.registered"),
        "{}",
        checklist[0]
    );
    let valid = entries(&checklist[1], "items");
    let demo = valid
        .iter()
        .find(|i| i["criterion"] == "product_demo")
        .expect("product demo on the valid checklist");
    assert_eq!(demo["met"], true);
    assert_eq!(demo["met_by"]["event_type"], "lead.criterion_met");
    assert_eq!(demo["evidence"], "在售楼处演示了可视对讲");
    let insider = valid
        .iter()
        .find(|i| i["criterion"] == "insider_developed")
        .expect("insider on the valid checklist");
    assert_eq!(insider["met"], false);
    assert!(insider["met_by"].is_null());

    // The timeline: every event and the refused attempt, named, with old → new.
    let timeline = entries(rec, "timeline");
    let refused: Vec<&Value> = timeline.iter().filter(|e| e["refused"] == true).collect();
    assert_eq!(refused.len(), 1, "{timeline:?}");
    assert_eq!(refused[0]["actor"]["name"], "eng_b");
    assert_eq!(refused[0]["actor"]["role"], "sales_engineer");
    assert_eq!(refused[0]["refused_action"], "log_visit");
    assert!(
        refused[0]["summary_zh"]
            .as_str()
            .is_some_and(|s| s.contains("eng_b") && s.contains("拒绝")),
        "{}",
        refused[0]
    );
    let update = timeline
        .iter()
        .find(|e| e["event_type"] == "lead.details_updated")
        .expect("the update");
    let location = entries(update, "changes")
        .iter()
        .find(|c| c["field"] == "location")
        .expect("location changed");
    assert_eq!(location["old"], "上海市浦东新区");
    assert_eq!(location["new"], "上海市闵行区");
    let owner = timeline
        .iter()
        .find(|e| e["event_type"] == "lead.owner_assigned")
        .expect("the owner");
    let change = &owner["changes"][0];
    assert_eq!(change["field"], "owner");
    assert!(change["old"].is_null());
    assert_eq!(change["new_zh"], "eng_a");
    for e in timeline {
        assert!(
            e["summary_zh"].as_str().is_some_and(|s| !s.is_empty())
                && e["summary_en"].as_str().is_some_and(|s| !s.is_empty())
                && e["local"].as_str().is_some_and(|s| s.len() == 16),
            "{e}"
        );
    }
    let positions: Vec<u64> = timeline
        .iter()
        .filter_map(|e| e["position"].as_u64())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");

    // Scope: the office reads it, headquarters and auditors too; another office is refused; an
    // unknown lead is not found in both languages.
    for who in ["eng_b", "auditor", "sales_dept"] {
        let r = w.get(&format!("/leads/{lead}"), who).await;
        assert_eq!(r.status, OK, "{who}: {}", r.text);
    }
    for who in ["manager_bj", "eng_bj"] {
        let r = w.get(&format!("/leads/{lead}"), who).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
        assert_eq!(r.body["code"], "auth.other_office");
    }
    let unknown = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"no such lead");
    let r = w.get(&format!("/leads/{unknown}"), "auditor").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(r.body["code"], "lead.not_found");
    assert!(r.text.contains("没有线索"), "{}", r.text);
    let r = w.get("/leads/not-a-uuid", "auditor").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn a_staff_record_shows_leads_tasks_and_touches_within_scope() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let head = r.body["position"].as_u64().expect("position");
    let eng_a = w.ids["eng_a"];

    let r = w
        .get(&format!("/staff/{eng_a}?at_least={head}"), "manager")
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let rec = &r.body;
    assert_eq!(rec["name"], "eng_a");
    assert_eq!(rec["role_zh"], "销售工程师");
    assert_eq!(rec["office"]["code"], "SH");
    assert_eq!(rec["managers"][0]["name"], "manager", "{}", r.text);
    assert_eq!(rec["active"], true);
    assert_eq!(rec["leads"][0]["lead_id"], lead.as_str());
    assert_eq!(rec["leads"][0]["customer"], "万科 城市花园（二期）");
    assert!(rec["tasks"].is_array(), "{}", r.text);
    let recent = entries(rec, "recent");
    assert_eq!(recent[0]["action"], "lead.visit_logged", "newest first");
    assert_eq!(recent[0]["customer"], "万科 城市花园（二期）");

    // By name too; oneself sees one's work; a colleague sees the person but not their work.
    let r = w.get("/staff/eng_a", "eng_a").await;
    assert_eq!(r.status, OK, "{}", r.text);
    assert!(r.body["recent"].is_array());
    let r = w.get("/staff/eng_a", "eng_b").await;
    assert_eq!(r.status, OK, "{}", r.text);
    assert!(
        r.body["tasks"].is_null() && r.body["recent"].is_null(),
        "{}",
        r.text
    );
    assert_eq!(r.body["leads"][0]["lead_id"], lead.as_str());
    // Another office's people and headquarters' are refused to office roles, as in /staff.
    let r = w.get("/staff/eng_a", "manager_bj").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["code"], "auth.other_office");
    let r = w.get("/staff/sales_dept", "manager").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = w.get("/staff/sales_dept", "executive").await;
    assert_eq!(r.status, OK, "{}", r.text);
    assert!(r.body["office"].is_null() && r.body["managers"] == json!([]));
    let r = w.get("/staff/nobody", "executive").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["code"], "staff.not_found");
}

/// The first task of `who` named `name`.
#[tokio::test]
async fn a_conflict_task_names_the_lead_and_claimants_and_its_command_decides_it() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w.post("/leads", "eng_b", registration(sh(), "万科")).await;
    assert_eq!(r.status, OK, "{}", r.text);
    w.sagas().await;

    let t = task(&w, "manager", "decide_conflict").await;
    assert_eq!(t["kind"], "ownership_conflict");
    assert_eq!(t["about"]["lead"]["lead_id"], lead.as_str());
    assert_eq!(t["about"]["lead"]["customer"], "万科");
    let claimants: Vec<&str> = entries(&t["about"], "people")
        .iter()
        .filter(|p| p["part"] == "claimant")
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(claimants, ["eng_a", "eng_b"]);
    assert!(
        t["due_local"].as_str().is_some_and(|d| d.len() == 16),
        "{t}"
    );
    assert!(t["about"]["conflict_id"].is_string());
    let cmd = &t["commands"][0];
    assert_eq!(cmd["operation_id"], "lead_decide_conflict");
    assert_eq!(
        cmd["path"],
        format!("/leads/{lead}/commands/decide_conflict")
    );
    assert_eq!(cmd["body"]["conflict_id"], t["about"]["conflict_id"]);
    let winners = &cmd["inputs"][0];
    assert_eq!(winners["name"], "winner");
    assert_eq!(winners["choices"][1]["label_zh"], "eng_b");
    let winner = winners["choices"][1]["value"].clone();
    complete(
        &w,
        "manager",
        cmd,
        json!({ "winner": winner, "grounds": ["deeper_contact"], "note": "" }),
    )
    .await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/leads/{lead}?at_least={head}"), "manager")
        .await;
    assert_eq!(r.body["owner"]["name"], "eng_b", "{}", r.text);
}

#[tokio::test]
async fn a_reassignment_task_names_from_to_and_requester_for_both_approvers() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w
        .post(
            &format!("/leads/{lead}/commands/request_reassignment"),
            "manager",
            json!({ "to": w.ids["eng_b"], "evidence": "eng_a 调岗" }),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    w.sagas().await;

    for (who, name) in [
        ("sales_dept", "approve_as_sales_department"),
        ("eng_a", "approve_as_owner"),
    ] {
        let t = task(&w, who, name).await;
        assert_eq!(t["about"]["lead"]["customer"], "万科", "{t}");
        let part = |p: &str| {
            entries(&t["about"], "people")
                .iter()
                .find(|x| x["part"] == p)
                .and_then(|x| x["name"].as_str())
                .map(String::from)
        };
        assert_eq!(part("from").as_deref(), Some("eng_a"), "{t}");
        assert_eq!(part("to").as_deref(), Some("eng_b"));
        assert_eq!(part("requested_by").as_deref(), Some("manager"));
        assert_eq!(t["about"]["reassignment"]["evidence"], "eng_a 调岗");
        assert!(t["due_local"].is_string());
        let ops: Vec<&str> = entries(&t, "commands")
            .iter()
            .filter_map(|c| c["operation_id"].as_str())
            .collect();
        assert_eq!(ops, ["lead_approve_reassignment", "lead_deny_reassignment"]);
        complete(&w, who, &t["commands"][0], json!({ "note": "同意" })).await;
    }
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/leads/{lead}?at_least={head}"), "manager")
        .await;
    assert_eq!(r.body["owner"]["name"], "eng_b", "{}", r.text);
    let history = entries(&r.body, "owner_history");
    assert_eq!(history.last().expect("a change")["from"]["name"], "eng_a");
    assert_eq!(
        history.last().expect("a change")["basis"]["kind"],
        "reassignment"
    );
}

#[tokio::test]
async fn insider_escalations_say_which_lead_customer_and_engineer() {
    let w = world().await;
    let (a, _) = w.register("eng_a", sh(), "万科").await;
    let (b, _) = w.register("eng_b", sh(), "保利").await;
    for (lead, who) in [(&a, "eng_a"), (&b, "eng_b")] {
        for _ in 0..3 {
            let r = w
                .post(&format!("/leads/{lead}/commands/log_visit"), who, visit())
                .await;
            assert_eq!(r.status, OK, "{}", r.text);
        }
    }
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/tasks?at_least={head}"), "manager").await;
    assert_eq!(r.status, OK, "{}", r.text);
    let mut seen: Vec<(String, String)> = entries(&r.body, "tasks")
        .iter()
        .filter(|t| t["name"] == "help_develop_insider")
        .map(|t| {
            assert_eq!(t["about"]["visits_without_insider"], 3, "{t}");
            assert_eq!(t["commands"][0]["operation_id"], "lead_mark_insider");
            assert_eq!(t["commands"][0]["run_by"], "lead_owner");
            (
                t["about"]["lead"]["customer"].as_str().unwrap_or("").into(),
                t["about"]["lead"]["owner"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .into(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("万科".to_string(), "eng_a".to_string()),
            ("保利".to_string(), "eng_b".to_string())
        ]
    );
    // An engineer's record lists no one else's tasks, and the manager's inbox is their office's.
    let r = w
        .get(&format!("/tasks?at_least={head}"), "manager_bj")
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    assert!(
        entries(&r.body, "tasks")
            .iter()
            .all(|t| t["name"] != "help_develop_insider"),
        "{}",
        r.text
    );
}

/// Runs a lead command as `who`, which must be accepted.
#[tokio::test]
async fn declaration_and_contract_tasks_carry_amounts_versions_and_seats() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let kp = command(
        &w,
        "eng_a",
        &lead,
        "record_key_person",
        json!({ "name": "王总", "title": "总经理", "role": "decision_maker" }),
    )
    .await;
    let key_person = kp["events"][0]["data"]["key_person_id"].clone();
    command(
        &w,
        "eng_a",
        &lead,
        "mark_insider",
        json!({ "key_person_id": key_person }),
    )
    .await;
    meet(&w, &lead, VALID_CRITERIA).await;
    command(
        &w,
        "eng_a",
        &lead,
        "declare_valid_info",
        json!({ "note": "条件齐备" }),
    )
    .await;
    w.sagas().await;

    // The manager reviews, the sales department files: each task names the declaration.
    let t = task(&w, "manager", "review_declaration").await;
    assert_eq!(t["about"]["declaration"]["kind"], "valid_info", "{t}");
    assert_eq!(t["about"]["declaration"]["declared_by"]["name"], "eng_a");
    let declared_by = entries(&t["about"], "people")
        .iter()
        .find(|p| p["part"] == "declared_by")
        .map(|p| p["name"].clone());
    assert_eq!(declared_by, Some(json!("eng_a")));
    assert_eq!(
        t["commands"][0]["body"]["declaration_id"],
        t["about"]["declaration"]["declaration_id"]
    );
    complete(&w, "manager", &t["commands"][0], json!({ "approve": true })).await;
    w.sagas().await;
    let t = task(&w, "sales_dept", "file_declaration").await;
    assert_eq!(t["about"]["declaration"]["state"], "approved", "{t}");
    complete(&w, "sales_dept", &t["commands"][0], json!({})).await;
    w.sagas().await;

    // On to a prospect of 120 万元.
    command(
        &w,
        "eng_a",
        &lead,
        "assess_relationship",
        json!({ "company": "b", "personal": "b", "key_person_id": key_person }),
    )
    .await;
    meet(&w, &lead, PROSPECT_CRITERIA).await;
    command(
        &w,
        "eng_a",
        &lead,
        "declare_prospect",
        json!({ "amount_cny": 1_200_000, "quoting_strategy": "标准报价" }),
    )
    .await;
    w.sagas().await;
    let t = task(&w, "manager", "review_declaration").await;
    assert_eq!(t["about"]["declaration"]["kind"], "prospect", "{t}");
    assert_eq!(t["about"]["declaration"]["amount_cny"], 1_200_000);
    assert_eq!(t["about"]["declaration"]["amount_zh"], "120 万元");
    assert_eq!(t["about"]["declaration"]["tier"], "important");
    complete(&w, "manager", &t["commands"][0], json!({ "approve": true })).await;
    w.sagas().await;
    let t = task(&w, "sales_dept", "file_declaration").await;
    complete(&w, "sales_dept", &t["commands"][0], json!({})).await;
    w.sagas().await;

    // A contract under review: each seat's task names the version, its amount and the seat; an
    // amendment makes version 2, and the task says what the version before said.
    let first = "a".repeat(64);
    command(
        &w,
        "eng_a",
        &lead,
        "submit_contract",
        json!({ "amount_cny": 1_150_000, "content_hash": first }),
    )
    .await;
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/tasks?staff=manager&at_least={head}"), "auditor")
        .await;
    let review = entries(&r.body, "tasks")
        .iter()
        .find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("review_contract:"))
        })
        .unwrap_or_else(|| panic!("a seat of the manager's: {}", r.text))
        .clone();
    let seat = review["name"].as_str().expect("name")["review_contract:".len()..].to_string();
    let contract = &review["about"]["contract"];
    assert_eq!(contract["version"]["version"], 1, "{review}");
    assert_eq!(contract["version"]["amount_zh"], "115 万元");
    assert_eq!(contract["seat"], seat.as_str());
    assert!(contract["previous"].is_null());
    let cmd = &review["commands"][0];
    assert_eq!(cmd["body"]["seat"], seat.as_str());
    assert_eq!(cmd["body"]["content_hash"], first.as_str());
    let contract_id = contract["contract_id"].clone();
    let second = "b".repeat(64);
    command(
        &w,
        "eng_a",
        &lead,
        "amend_contract",
        json!({ "contract_id": contract_id, "amount_cny": 1_100_000, "content_hash": second, "reason": "让利" }),
    )
    .await;
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/tasks?staff=manager&at_least={head}"), "auditor")
        .await;
    let review = entries(&r.body, "tasks")
        .iter()
        .find(|t| t["name"] == format!("review_contract:{seat}"))
        .unwrap_or_else(|| panic!("the seat again: {}", r.text))
        .clone();
    let contract = &review["about"]["contract"];
    assert_eq!(contract["version"]["version"], 2, "{review}");
    assert_eq!(contract["version"]["reason"], "让利");
    assert_eq!(contract["previous"]["amount_cny"], 1_150_000);
    assert_eq!(
        review["commands"][0]["body"]["content_hash"],
        second.as_str()
    );
    complete(
        &w,
        "manager",
        &review["commands"][0],
        json!({ "approve": true }),
    )
    .await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/leads/{lead}?at_least={head}"), "manager")
        .await;
    let seats = entries(&r.body["contracts"][0], "seats");
    let mine = seats
        .iter()
        .find(|s| s["seat"] == seat.as_str())
        .expect("the seat");
    assert_eq!(mine["state"], "approved", "{}", r.text);
    assert_eq!(mine["by"]["name"], "manager");
    assert_eq!(entries(&r.body, "declarations").len(), 2);
}

#[tokio::test]
async fn summary_tasks_name_the_period_and_summary_and_their_commands_run_the_steps() {
    use std::sync::Arc;
    let w = world().await;
    // Forty days on, every office has summaries due.
    let later = funnel_types::ManualClock::new(chrono::Utc::now() + chrono::Duration::days(40));
    let mut rt = funnel_workflows::WorkflowRuntime::new(w.engine.clone(), Arc::new(later), None)
        .expect("runtime");
    rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/tasks?at_least={head}"), "assistant").await;
    assert_eq!(r.status, OK, "{}", r.text);
    let t = entries(&r.body, "tasks")
        .iter()
        .find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("compile_summary:"))
        })
        .unwrap_or_else(|| panic!("a summary to compile: {}", r.text))
        .clone();
    let period = t["about"]["summary"]["period"]
        .as_str()
        .expect("period")
        .to_string();
    assert_eq!(t["name"], format!("compile_summary:{period}"));
    assert_eq!(t["about"]["summary"]["office"]["code"], "SH", "{t}");
    assert!(t["about"]["summary"]["summary_id"].is_null());
    let compile = &t["commands"][0];
    assert_eq!(compile["path"], "/summaries");
    assert_eq!(compile["body"]["office"], sh().to_string());
    let r = w
        .post("/summaries", "assistant", {
            let mut body = compile["body"].clone();
            body["lines"] = json!([]);
            body
        })
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");

    // Compiled: the same task now verifies that summary; then review, then filing.
    let name = format!("compile_summary:{period}");
    let t = task(&w, "assistant", &name).await;
    let summary = t["about"]["summary"]["summary_id"]
        .as_str()
        .expect("summary id")
        .to_string();
    assert_eq!(t["about"]["summary"]["stage"], "compiled");
    assert_eq!(
        t["commands"][0]["path"],
        format!("/summaries/{summary}/verify")
    );
    complete(
        &w,
        "assistant",
        &t["commands"][0],
        json!({ "note": "已核实" }),
    )
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");
    let t = task(&w, "manager", &format!("review_summary:{period}")).await;
    assert_eq!(
        t["commands"][0]["path"],
        format!("/summaries/{summary}/review")
    );
    complete(&w, "manager", &t["commands"][0], json!({ "approve": true })).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");
    let t = task(&w, "assistant", &format!("file_summary:{period}")).await;
    assert_eq!(t["about"]["summary"]["summary_id"], summary.as_str());
    complete(&w, "assistant", &t["commands"][0], json!({})).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("sagas");
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/tasks?at_least={head}"), "assistant").await;
    assert!(
        entries(&r.body, "tasks").iter().all(|t| !t["name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!(":{period}")))),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_lead_record_as_of_a_moment_shows_the_lead_as_it_stood_then() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let after_visit = r.body["position"].as_u64().expect("position");
    let r = w
        .post(
            &format!("/leads/{lead}/commands/update_details"),
            "eng_a",
            json!({ "location": "上海市闵行区" }),
        )
        .await;
    assert_eq!(r.status, OK, "{}", r.text);
    let head = r.body["position"].as_u64().expect("position");

    // As of the visit's position: the visit, not the later change.
    let then = w
        .get(
            &format!("/leads/{lead}?at_least={head}&as_of={after_visit}"),
            "manager",
        )
        .await;
    assert_eq!(then.status, OK, "{}", then.text);
    assert_eq!(then.body["as_of"]["position"], after_visit);
    assert!(then.body["as_of"]["time"].is_null());
    assert_eq!(then.body["fields"]["location"], "上海市浦东新区");
    assert_eq!(entries(&then.body, "visits").len(), 1);
    assert!(
        entries(&then.body, "timeline")
            .iter()
            .all(|e| e["position"].as_u64().is_some_and(|p| p <= after_visit)),
        "{}",
        then.text
    );
    let now = w.get(&format!("/leads/{lead}"), "manager").await;
    assert_eq!(now.body["fields"]["location"], "上海市闵行区");
    assert!(now.body["as_of"].is_null());

    // As of a date before the lead existed: not found; as of a time to come: as now, on the
    // office's clock.
    let before = w
        .get(&format!("/leads/{lead}?as_of=2000-01-01"), "manager")
        .await;
    assert_eq!(before.status, StatusCode::NOT_FOUND, "{}", before.text);
    assert_eq!(before.body["code"], "lead.not_found");
    let later = w
        .get(&format!("/leads/{lead}?as_of=2100-01-01"), "manager")
        .await;
    assert_eq!(later.status, OK, "{}", later.text);
    assert_eq!(later.body["fields"]["location"], "上海市闵行区");
    assert_eq!(
        later.body["as_of"]["time"],
        "2100-01-01T23:59:59.999999999+08:00"
    );
    // A moment that is none is refused in both languages; another office stays refused.
    let bad = w
        .get(&format!("/leads/{lead}?as_of=yesterday"), "manager")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let other = w
        .get(&format!("/leads/{lead}?as_of={after_visit}"), "manager_bj")
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text);
}
