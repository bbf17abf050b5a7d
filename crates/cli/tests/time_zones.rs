//! Every date a person writes and every time shown is read on the clock of the office concerned:
//! an office in Urumqi (UTC+6) beside headquarters in Shanghai (UTC+8). A lead registered at 23:30
//! on 30 September in Urumqi is 01:30 on 1 October in Shanghai.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;

const LEAD: &str = "0190a3b2-1111-7000-8000-00000000a001";

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON output")
}

/// A store with offices in Shanghai and Urumqi and an engineer of Urumqi (set up on 1 September),
/// and a lead she registered at 2026-09-30 23:30 Urumqi time: written by the commands, then
/// imported with those times into the store the tests read.
fn store(d: &Path) -> String {
    let s = format!("sqlite:{}", d.join("setup.db").display());
    ok(&s, &["office", "open", "SH", "--name", "上海办事处"], d);
    ok(
        &s,
        &[
            "office",
            "open",
            "UR",
            "--name",
            "乌鲁木齐办事处",
            "--timezone",
            "Asia/Urumqi",
        ],
        d,
    );
    ok(
        &s,
        &[
            "staff",
            "add",
            "阿依古丽",
            "--role",
            "sales_engineer",
            "--office",
            "UR",
        ],
        d,
    );
    let mut log: Vec<Value> = ok(&s, &["export", "events"], d)
        .lines()
        .map(json_of)
        .collect();
    for e in &mut log {
        e["occurred_at"] = json!("2026-09-01T02:00:00Z");
    }
    let joined = log
        .iter()
        .find(|e| e["event_type"] == "staff.joined")
        .expect("staff.joined");
    let (office, staff) = (&joined["office"], &joined["payload"]["staff_id"]);
    let at = "2026-09-30T17:30:00Z";
    let id = "0190a3b2-2222-7000-8000-00000000c001";
    let registered = json!({
        "actor": { "kind": "staff", "id": staff, "role": "sales_engineer" },
        "causation_id": id, "command_id": id, "correlation_id": id,
        "event_id": "0190a3b2-2222-7000-8000-00000000e001",
        "event_type": "lead.registered", "schema_version": 2,
        "occurred_at": at, "recorded_at": at, "office": office,
        "position": log.len() + 1, "stream": format!("lead-{LEAD}"), "version": 1,
        "payload": {
            "channel": "building_sweep",
            "contact": { "name": "马经理", "phone": "13800000000" },
            "customer_key": "新疆建工/会展中心", "customer_name": "新疆建工",
            "industry": "real_estate", "key_version": 2, "lead_id": LEAD,
            "location": "乌鲁木齐市", "need": "楼宇对讲", "office": office,
            "project_name": "会展中心", "purchase_mode": "independent",
            "registered_at": at, "registered_by": staff,
        },
    });
    log.push(registered);
    let lines: Vec<String> = log.iter().map(|e| format!("{e}\n")).collect();
    let file = d.join("log.ndjson");
    std::fs::write(&file, lines.concat()).expect("write");
    let s = format!("sqlite:{}", d.join("funnel.db").display());
    ok(&s, &["import", file.to_str().expect("path")], d);
    s
}

fn leads(report: &Value) -> u64 {
    report["offices"]
        .as_array()
        .expect("offices")
        .iter()
        .filter(|o| o["code"] == "UR")
        .flat_map(|o| o["by_stage"].as_object().expect("by_stage").values())
        .map(|b| b["leads"].as_u64().expect("leads"))
        .sum()
}

#[test]
fn as_of_a_date_ends_at_midnight_of_the_office_asked_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let s = store(d);
    let pipeline = |args: &[&str]| json_of(&ok(&s, &[&["pipeline", "--json"], args].concat(), d));
    let urumqi = pipeline(&["--as-of", "2026-09-30", "--office", "UR"]);
    assert_eq!(urumqi["time_zone"], "Asia/Urumqi");
    assert_eq!(urumqi["as_of"], "2026-09-30T17:59:59.999999999+00:00");
    assert_eq!(leads(&urumqi), 1, "{urumqi}");
    assert_eq!(
        leads(&pipeline(&["--as-of", "2026-09-29", "--office", "UR"])),
        0
    );
    // Across offices the day is headquarters', and the answer says so: in Shanghai the lead came
    // on 1 October.
    let everyone = pipeline(&["--as-of", "2026-09-30"]);
    assert_eq!(everyone["time_zone"], "Asia/Shanghai");
    assert_eq!(leads(&everyone), 0, "{everyone}");
    assert_eq!(leads(&pipeline(&["--as-of", "2026-10-01"])), 1);
    let text = ok(
        &s,
        &["pipeline", "--as-of", "2026-09-30", "--office", "UR"],
        d,
    );
    assert!(
        text.contains("as of 2026-09-30 23:59 Asia/Urumqi"),
        "{text}"
    );
}

#[test]
fn an_actors_days_are_the_days_of_their_office() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let s = store(d);
    let touches = |from: &str, to: &str| {
        let v = json_of(&ok(
            &s,
            &[
                "audit",
                "actor",
                "阿依古丽",
                "--from",
                from,
                "--to",
                to,
                "--json",
            ],
            d,
        ));
        v["touches"].as_array().expect("touches").len()
    };
    assert_eq!(touches("2026-09-30", "2026-09-30"), 1);
    assert_eq!(touches("2026-10-01", "2026-10-01"), 0);
    let text = ok(&s, &["audit", "actor", "阿依古丽"], d);
    assert!(
        text.contains("(times in Asia/Urumqi)") && text.contains("2026-09-30 23:30"),
        "{text}"
    );
}

#[test]
fn audit_and_tail_show_times_on_the_offices_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let s = store(d);
    let audit = ok(&s, &["audit", "lead", LEAD], d);
    assert!(
        audit.contains("(times in Asia/Urumqi)") && audit.contains("2026-09-30 23:30"),
        "{audit}"
    );
    let tail = ok(&s, &["tail", "--from", "0", "--count", "4"], d);
    let line = tail
        .lines()
        .find(|l| l.contains("lead.registered"))
        .expect("the lead's line");
    assert!(line.contains("2026-09-30 23:30 Asia/Urumqi  UR"), "{tail}");
    let office = tail
        .lines()
        .find(|l| l.contains("office.opened"))
        .expect("an office line");
    assert!(office.contains("Asia/Shanghai  SH"), "{tail}");
}
