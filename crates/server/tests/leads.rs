//! `GET /leads`: the persisted lead index over HTTP. Names written differently (full width,
//! spacing, punctuation, look-alike letters) and phone numbers with dashes or `+86` find the lead;
//! every filter, sort and page; office roles find only their office's leads.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

/// Registers a lead with its own project, contact and phone; returns its id and position.
async fn lead(
    w: &World,
    who: &str,
    office: funnel_types::OfficeId,
    customer: &str,
    project: &str,
    contact: (&str, &str),
) -> (String, u64) {
    let mut body = registration(office, customer);
    body["project_name"] = json!(project);
    body["contact"] = json!({ "name": contact.0, "phone": contact.1 });
    let r = w.post("/leads", who, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (
        r.body["id"].as_str().expect("id").to_string(),
        r.body["position"].as_u64().expect("position"),
    )
}

fn ids(r: &Value) -> Vec<String> {
    r["leads"]
        .as_array()
        .expect("leads")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect()
}

/// Percent-encodes a query value (every byte but the unreserved ASCII ones).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn differently_written_names_and_phones_find_the_lead() {
    let w = world().await;
    let (vanke, _) = lead(
        &w,
        "eng_a",
        sh(),
        "万科·城市花园",
        "二期",
        ("王建国", "138-0013-8000"),
    )
    .await;
    let (park, at) = lead(
        &w,
        "eng_b",
        sh(),
        "Gemdale",
        "North Park",
        ("Olga", "021 5555 0101"),
    )
    .await;
    for (q, want, field) in [
        ("万科城市花园", &vanke, "customer"),
        ("万科 城市花园", &vanke, "customer"),
        ("城市花园", &vanke, "customer"),
        ("万科", &vanke, "customer"),
        ("ＧＥＭＤＡＬＥ", &park, "customer"),
        ("north　ＰＡＲＫ", &park, "project"),
        ("gem-dale", &park, "customer"),
        // Cyrillic е (U+0435) and а (U+0430).
        ("G\u{435}md\u{430}le", &park, "customer"),
        ("二期", &vanke, "project"),
        ("王建国", &vanke, "contact"),
        ("olga", &park, "contact"),
        ("13800138000", &vanke, "phone"),
        ("+86 138 0013 8000", &vanke, "phone"),
        ("0013-8000", &vanke, "phone"),
        ("5555", &park, "phone"),
    ] {
        let r = w
            .get(&format!("/leads?q={}&at_least={at}", enc(q)), "auditor")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert_eq!(ids(&r.body), vec![want.clone()], "{q}: {}", r.text);
        assert_eq!(r.body["total"], 1, "{q}");
        let matched = &r.body["leads"][0]["matched"];
        assert!(
            matched.as_array().unwrap().iter().any(|m| m == field),
            "{q}: {matched}"
        );
    }
    let r = w
        .get("/leads?q=%E4%B8%87%E7%A7%91%E9%87%91%E5%9C%B0", "auditor")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 0, "{}", r.text);
    let hit = &w
        .get(&format!("/leads?q=vanke&at_least={at}"), "auditor")
        .await;
    assert_eq!(hit.body["total"], 0, "{}", hit.text);
    let one = w
        .get(&format!("/leads?q={}", enc("万科")), "auditor")
        .await
        .body;
    let l = &one["leads"][0];
    assert_eq!(l["office"]["code"], "SH", "{one}");
    assert_eq!(l["office"]["name"], "SH office", "{one}");
    assert_eq!(l["stage"], "ordinary");
    assert_eq!(l["stage_label"], "普通信息");
    assert_eq!(l["contacts"][0]["name"], "王建国");
    assert_eq!(l["time_zone"], "Asia/Shanghai");
    assert!(
        l["registered_at"].as_str().unwrap().ends_with("+08:00"),
        "{one}"
    );
}
