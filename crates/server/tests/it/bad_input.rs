//! Bad input never yields a 5xx: malformed JSON, wrong types, unknown fields, oversize bodies, bad
//! tokens, unknown ids and unknown routes each answer a 4xx problem document; a property test
//! throws random bodies at every write endpoint.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use proptest::prelude::*;
use serde_json::json;

fn assert_problem(r: &Reply, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "{}", r.text);
    assert!(
        r.body["code"].is_string()
            && r.body["message_en"].is_string()
            && r.body["message_zh"].is_string()
    );
}

#[tokio::test]
async fn bad_requests_are_4xx_problems() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let tok = Some(w.tokens["eng_a"].clone());
    let visit_uri = format!("/leads/{lead}/commands/log_visit");

    let r = w
        .raw(
            Method::POST,
            "/leads",
            tok.clone(),
            b"{not json".to_vec(),
            &[],
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "request.malformed_json");
    let mut wrong = registration(sh(), "x");
    wrong["office"] = json!(42);
    assert_problem(
        &w.post("/leads", "eng_a", wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let mut extra = visit();
    extra["colour"] = json!("blue");
    let r = w.post(&visit_uri, "eng_a", extra).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains("colour"), "{}", r.text);
    let big = vec![b' '; 300 * 1024];
    assert_problem(
        &w.raw(Method::POST, &visit_uri, tok.clone(), big, &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    assert_problem(
        &w.post(
            &format!("/leads/{lead}/commands/teleport"),
            "eng_a",
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &w.post(
            "/leads/not-a-uuid/commands/suspend",
            "eng_a",
            json!({ "reason": "x" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &w.get("/leads/not-a-uuid/audit", "eng_a").await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &w.get("/pipeline?office=nope", "eng_a").await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &w.get("/pipeline?as_of=yesterday", "eng_a").await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &w.get("/pipeline?colour=blue", "eng_a").await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &w.get("/events?limit=0", "eng_a").await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &w.get("/events?after=-1", "eng_a").await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &w.get("/audit/plans?at_least=999999999", "eng_a").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_problem(&w.get("/nowhere", "eng_a").await, StatusCode::NOT_FOUND);
    assert_problem(
        &w.call(Method::DELETE, "/leads", Some("eng_a"), None).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    let long_key = "k".repeat(300);
    let r = w
        .raw(
            Method::POST,
            &visit_uri,
            tok,
            visit().to_string().into_bytes(),
            &[("idempotency-key", &long_key)],
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST);

    // Tokens: missing, malformed, unknown.
    assert_problem(
        &w.call(Method::GET, "/me", None, None).await,
        StatusCode::UNAUTHORIZED,
    );
    let r = w
        .raw(
            Method::GET,
            "/me",
            None,
            vec![],
            &[("authorization", "Basic abc")],
        )
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED);
    let r = w
        .raw(Method::GET, "/me", Some("made-up".into()), vec![], &[])
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED);
    let r = w
        .raw(Method::POST, "/leads", Some(String::new()), vec![], &[])
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED);
}

/// Every write endpoint, with an existing lead, plan and summary where one is named.
fn write_endpoints(lead: &str, hook: &str) -> Vec<String> {
    let mut v: Vec<String> = funnel_server::dto::LEAD_COMMANDS
        .iter()
        .map(|n| format!("/leads/{lead}/commands/{n}"))
        .collect();
    let id = uuid::Uuid::now_v7();
    let staff = funnel_types::StaffId::derived("eng_b");
    v.extend([
        "/leads".to_string(),
        "/plans".into(),
        "/plans/overdue".into(),
        format!("/plans/{id}/file"),
        "/summaries".into(),
        format!("/summaries/{id}/verify"),
        format!("/summaries/{id}/review"),
        format!("/summaries/{id}/file"),
        "/offices".into(),
        "/staff".into(),
        format!("/staff/{staff}/reassign"),
        format!("/staff/{staff}/leave"),
        format!("/staff/{staff}/tokens"),
        format!("/workflows/{id}/retry"),
        "/calendar/2026".into(),
        "/projections/touches/rebuild".into(),
        "/webhooks".into(),
        format!("/webhooks/{hook}/replay"),
        format!("/webhooks/{hook}/pause"),
        format!("/webhooks/{hook}/resume"),
    ]);
    v
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z_]{0,12}".prop_map(serde_json::Value::from),
        Just(json!("2026-03-02T09:30:00Z")),
        Just(json!(uuid::Uuid::nil())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn random_bodies_never_yield_a_5xx() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let w = rt.block_on(world());
    let (lead, _) = rt.block_on(w.register("eng_a", sh(), "万科"));
    let hook = rt.block_on(w.post(
        "/webhooks",
        "sales_dept",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    ));
    let hook = hook.body["subscription"]["id"]
        .as_str()
        .expect("a subscription")
        .to_string();
    let endpoints = write_endpoints(&lead, &hook);
    let config = ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    };
    proptest!(config, |(i in 0..endpoints.len(), who in 0..PEOPLE.len(), body in body())| {
        let r = rt.block_on(w.raw(
            Method::POST,
            &endpoints[i],
            Some(w.tokens[PEOPLE[who].0].clone()),
            body,
            &[],
        ));
        prop_assert!(r.status.is_client_error() || r.status.is_success(), "{} -> {} {}", endpoints[i], r.status, r.text);
        if !r.status.is_success() {
            prop_assert_eq!(r.content_type.as_str(), "application/problem+json");
        }
    });
}

/// JSON Schema counts `2.0` and `2e3` as integers, so the OpenAPI document allows them wherever it
/// says `integer`: the server reads them as the integers they are, in every kind of body, and
/// still refuses a fraction or a number beyond the field's type.
#[tokio::test]
async fn whole_numbers_with_a_fraction_or_exponent_are_integers() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let tok = |who: &str| Some(w.tokens[who].clone());
    let plan = format!(
        r#"{{"period": {{"kind": "month", "year": 2099.0, "month": 1e0}},
            "visits": [{{"date": "2099-01-05", "lead_id": "{lead}", "customer": "万科", "purpose": "回访"}}]}}"#
    );
    let r = w
        .raw(Method::POST, "/plans", tok("eng_a"), plan.into_bytes(), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hook = br#"{"url": "http://127.0.0.1:9/", "from": 0.0}"#.to_vec();
    let r = w
        .raw(Method::POST, "/webhooks", tok("sales_dept"), hook, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A lead command's body (parsed by name) reads them the same way: the refusal, if any, is the
    // domain's, never the body's shape.
    let uri = format!("/leads/{lead}/commands/declare_prospect");
    let body = br#"{"amount_cny": 250000.0, "quoting_strategy": "standard"}"#.to_vec();
    let r = w.raw(Method::POST, &uri, tok("eng_a"), body, &[]).await;
    assert_ne!(r.body["code"], "request.invalid_body", "{}", r.text);
    for bad in [&b"2099.5"[..], b"1e30", b"-1.0"] {
        let mut plan = br#"{"period": {"kind": "month", "year": 2099, "month": "#.to_vec();
        plan.extend_from_slice(bad);
        plan.extend_from_slice(br#"}, "visits": []}"#);
        let r = w.raw(Method::POST, "/plans", tok("eng_a"), plan, &[]).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["code"], "request.invalid_body", "{}", r.text);
    }
}
