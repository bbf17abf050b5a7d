//! Webhook subscription endpoints: bad input is a 4xx problem naming what is wrong; pause, resume
//! and replay move the subscription as asked; offices are named by id, code or name.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

#[tokio::test]
async fn bad_requests_are_clear_problems() {
    let w = world().await;
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
