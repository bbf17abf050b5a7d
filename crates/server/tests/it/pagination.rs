//! Every list the API answers comes a page at a time: walking the pages with `after` = the
//! previous `next` gives each item once, in the order of the whole list, and `next` is null on the
//! last page. Bad cursors and page sizes are 400 problems.

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

impl World {
    /// The items of `field` over every page of `uri` (which has no query yet), `size` at a time.
    async fn walk(&self, uri: &str, who: &str, field: &str, size: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let sep = if uri.contains('?') { '&' } else { '?' };
            let page = match &after {
                Some(a) => format!("{uri}{sep}limit={size}&after={a}"),
                None => format!("{uri}{sep}limit={size}"),
            };
            let r = self.get(&page, who).await;
            assert_eq!(r.status, StatusCode::OK, "{page}: {}", r.text);
            let got = r.body[field].as_array().expect("a list").clone();
            assert!(got.len() <= size, "{page}");
            items.extend(got);
            match &r.body["next"] {
                Value::Null => return items,
                Value::String(s) => after = Some(s.clone()),
                n => after = Some(n.to_string()),
            }
        }
        panic!("{uri} never ended");
    }
}

#[tokio::test]
async fn every_list_comes_a_page_at_a_time() {
    let w = world().await;
    let mut leads = Vec::new();
    for customer in ["万科", "保利", "招商", "华润", "龙湖"] {
        leads.push(w.register("eng_a", sh(), customer).await.0);
        // A second registration of the same customer: an ownership conflict for SH's manager.
        let r = w
            .post("/leads", "eng_b", registration(sh(), customer))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    for i in 0..4 {
        let hook = json!({ "url": format!("http://127.0.0.1:9/hook{i}") });
        let r = w.post("/webhooks", "sales_dept", hook).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/tasks?at_least={head}"), "manager").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let lead = &leads[0];
    for (uri, who, field) in [
        ("/tasks".to_string(), "manager", "tasks"),
        ("/audit/actor/eng_a".to_string(), "auditor", "touches"),
        (format!("/leads/{lead}/audit"), "auditor", "touches"),
        ("/staff".to_string(), "sales_dept", "staff"),
        ("/webhooks".to_string(), "sales_dept", "subscriptions"),
        ("/workflows".to_string(), "auditor", "instances"),
    ] {
        let whole = w.walk(&uri, who, field, 1000).await;
        assert!(whole.len() >= 3, "{uri} has {} items", whole.len());
        for size in [1, 2] {
            let paged = w.walk(&uri, who, field, size).await;
            assert_eq!(paged, whole, "{uri} by {size}");
        }
        for bad in ["limit=0", "limit=1001", "after=not-a-cursor"] {
            if bad.starts_with("after") && (field == "tasks") {
                // Task cursors are opaque text: an unknown one just starts after it.
                continue;
            }
            let sep = if uri.contains('?') { '&' } else { '?' };
            let r = w.get(&format!("{uri}{sep}{bad}"), who).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{uri}{sep}{bad}: {}",
                r.text
            );
            assert_eq!(r.content_type, "application/problem+json");
        }
    }
}
