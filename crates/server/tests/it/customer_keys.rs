//! Look-alike customer names over HTTP: a name with a Cyrillic or Greek letter that looks like the
//! Latin one registers the same customer, so first-to-register holds (§5.1, §5.2).

use crate::common;

use axum::http::StatusCode;
use common::*;

#[tokio::test]
async fn a_look_alike_name_lands_on_the_lead_already_registered() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "Vanke").await;

    // Another engineer of the office, a Cyrillic а (U+0430): a duplicate on the same lead, which
    // opens an ownership conflict for the manager instead of a second lead.
    let r = w
        .post("/leads", "eng_b", registration(sh(), "V\u{430}nke"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], lead.as_str(), "{}", r.text);
    let types: Vec<&str> = r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "lead.duplicate_registration_received",
            "lead.ownership_conflict_opened"
        ],
        "{}",
        r.text
    );

    // Another office, Cyrillic а and е (U+0435): refused, it is SH's customer.
    let r = w
        .post("/leads", "eng_bj", registration(bj(), "V\u{430}nk\u{435}"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.text.contains("lead.registered_in_other_office"),
        "{}",
        r.text
    );
}
