//! The manual's forms over the API: built from what was recorded, as a page or a spreadsheet,
//! within the caller's office.

use crate::common;

use axum::http::StatusCode;
use common::*;

#[tokio::test]
async fn a_lead_s_forms_within_scope() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = w.get(&format!("/forms/1/{lead}"), "eng_a").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, "text/html; charset=utf-8");
    assert!(
        r.text.contains("客户信息记录表") && r.text.contains("万科"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("SH office"),
        "the office by name: {}",
        r.text
    );

    let r = w
        .get(&format!("/forms/2/{lead}?format=csv"), "manager")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, "text/csv; charset=utf-8");
    assert!(r.text.starts_with('\u{feff}'));
    let rows: Vec<&str> = r.text.lines().collect();
    assert!(
        rows.iter().any(|l| l.starts_with("1,")),
        "one follow-up row: {}",
        r.text
    );

    for (uri, who, status, code) in [
        (
            format!("/forms/1/{lead}"),
            "eng_bj",
            StatusCode::FORBIDDEN,
            "auth.other_office",
        ),
        (
            format!("/forms/6/{lead}"),
            "eng_a",
            StatusCode::CONFLICT,
            "form.not_yet",
        ),
        (
            format!("/forms/3/{lead}"),
            "auditor",
            StatusCode::NOT_FOUND,
            "form.no_record",
        ),
        (
            format!("/forms/7/{lead}"),
            "auditor",
            StatusCode::NOT_FOUND,
            "form.unknown",
        ),
        (
            "/forms/1/not-a-uuid".to_string(),
            "auditor",
            StatusCode::BAD_REQUEST,
            "request.bad_request",
        ),
        (
            format!("/forms/1/{lead}?format=pdf"),
            "auditor",
            StatusCode::BAD_REQUEST,
            "request.bad_request",
        ),
    ] {
        let r = w.get(&uri, who).await;
        assert_eq!(r.status, status, "{uri} as {who}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json", "{uri}");
        if code != "request.bad_request" {
            assert_eq!(r.body["code"], code, "{uri}: {}", r.text);
        }
    }
    // Headquarters and auditors read any office's forms.
    let r = w.get(&format!("/forms/5/{lead}"), "auditor").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_customer_name_cannot_run_as_a_formula_in_the_spreadsheet() {
    let w = world().await;
    let name = "=HYPERLINK(\"http://x\",\"y\")";
    let (lead, _) = w.register("eng_a", sh(), name).await;
    let r = w
        .get(&format!("/forms/1/{lead}?format=csv"), "manager")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cells: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(r.text.trim_start_matches('\u{feff}').as_bytes())
        .records()
        .flat_map(|rec| {
            rec.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        cells.iter().any(|c| c.starts_with(&format!("'{name}"))),
        "the name is kept, behind a quote: {cells:?}"
    );
    assert!(
        cells.iter().all(|c| !c.starts_with(['=', '+', '-', '@'])),
        "no cell starts a formula: {cells:?}"
    );
}
