//! Every JSON answer of a `GET` matches its schema in the OpenAPI document: the document's paths
//! are called as a headquarters role and as an office role over a state with a record of every
//! kind (leads, a duplicate registration and its saga, a refused touch, a calendar, a webhook),
//! and each answer is validated against the document's response schema for its status. And no
//! response schema is a bare object that says nothing of its fields.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

/// A validator of the document's response schema for `path`, `method` and `status`.
fn validator(doc: &Value, path: &str, method: &str, status: &str) -> Option<jsonschema::Validator> {
    let response = &doc["paths"][path][method]["responses"][status];
    let content = response["content"].as_object()?;
    let (media, body) = content.iter().next()?;
    if !media.contains("json") {
        return None;
    }
    // The response schema, with the document's components beside it so `$ref`s resolve.
    let mut schema = body["schema"].clone();
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
    });
    match schema.as_object_mut() {
        Some(map) => {
            for (k, v) in std::mem::take(map) {
                root[k] = v;
            }
        }
        None => root["allOf"] = json!([schema]),
    }
    Some(
        jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema of {method} {path} {status} compiles: {e}")),
    )
}

#[tokio::test]
async fn every_get_answer_matches_its_schema_for_headquarters_and_office_roles() {
    let w = world().await;
    // A record of every kind the reads show.
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w.post("/leads", "eng_b", registration(sh(), "万科")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_b",
            visit(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a refused touch: {}",
        r.text
    );
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .post(
            "/calendar/2026",
            "sales_dept",
            json!({ "holidays": ["2026-10-01"], "workdays": ["2026-10-10"], "note": "test" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .post(
            "/webhooks",
            "manager",
            json!({ "url": "http://127.0.0.1:9/hook", "from": 0 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let webhook = r.body["subscription"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let _sagas = w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/workflows?at_least={head}"), "executive")
        .await;
    let workflow = r.body["instances"][0]["id"]
        .as_str()
        .expect("a workflow instance")
        .to_string();

    let doc = funnel_server::openapi::document();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        // Forms, metrics, the Parquet export and the invitation page are not JSON: their own
        // tests read them.
        if item.get("get").is_none()
            || path.starts_with("/forms/")
            || path.starts_with("/invitations/")
            || path.starts_with("/export/")
            || path == "/metrics"
        {
            continue;
        }
        let uri = path
            .replace("/leads/{id}", &format!("/leads/{lead}"))
            .replace("/workflows/{id}", &format!("/workflows/{workflow}"))
            .replace("/webhooks/{id}", &format!("/webhooks/{webhook}"))
            .replace("{staff}", &w.ids["eng_a"].to_string())
            .replace("/staff/{id}", &format!("/staff/{}", w.ids["eng_a"]))
            .replace("{year}", "2026");
        assert!(!uri.contains('{'), "no id to fill {path} with");
        // The log's integrity is the auditor's to check.
        let first = if path == "/verify" {
            "auditor"
        } else {
            "executive"
        };
        for who in [first, "manager", "eng_a"] {
            let r = if path == "/session" {
                // The session's own read answers a session cookie, not a token.
                let body = json!({ "token": w.tokens[who] }).to_string().into_bytes();
                let signed_in = w.raw(Method::POST, "/session", None, body, &[]).await;
                assert_eq!(signed_in.status, StatusCode::CREATED, "{}", signed_in.text);
                let v = validator(&doc, "/session", "post", "201").expect("sign-in answer");
                assert!(v.is_valid(&signed_in.body), "{}", signed_in.text);
                let cookie: Vec<&str> = signed_in
                    .headers
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .filter_map(|c| c.split(';').next())
                    .collect();
                let cookie = cookie.join("; ");
                w.raw(Method::GET, &uri, None, vec![], &[("cookie", &cookie)])
                    .await
            } else {
                w.call(Method::GET, &uri, Some(who), None).await
            };
            if who == first {
                assert_eq!(r.status, StatusCode::OK, "GET {uri} as {who}: {}", r.text);
            }
            let status = r.status.as_str().to_string();
            let v = validator(&doc, path, "get", &status)
                .unwrap_or_else(|| panic!("GET {path} answers {status}, which the document lacks"));
            let errors: Vec<String> = v
                .iter_errors(&r.body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "GET {uri} as {who} ({status}) does not match its schema:\n{}\n{}",
                errors.join("\n"),
                r.text
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} answers checked");

    // What the text reports need is in the answers: names of the people and customers a report
    // mentions, the lead's customer, the moment "now" is.
    let r = w.get("/audit/conflicts", "manager").await;
    let customer = r.body["customers"][&lead].as_str().unwrap_or_default();
    assert!(customer.starts_with("万科"), "{}", r.text);
    assert_eq!(r.body["staff_names"][w.ids["eng_b"].to_string()], "eng_b");
    assert_eq!(r.body["fairness"][0]["code"], "SH", "{}", r.text);
    let r = w.get(&format!("/leads/{lead}/audit"), "eng_a").await;
    assert_eq!(r.body["customer"], customer, "{}", r.text);
    let r = w.get("/pipeline", "eng_a").await;
    assert!(
        r.body["as_of"].is_string() && r.body["position"].is_u64(),
        "{}",
        r.text
    );
}

/// A schema says nothing of its fields: an object type without properties, additional properties,
/// a reference or a combination.
fn bare(schema: &Value) -> bool {
    let Some(map) = schema.as_object() else {
        return false;
    };
    map.get("type") == Some(&json!("object"))
        && [
            "properties",
            "additionalProperties",
            "$ref",
            "allOf",
            "anyOf",
            "oneOf",
            "patternProperties",
        ]
        .iter()
        .all(|k| !map.contains_key(*k))
}

#[test]
fn no_response_schema_is_a_bare_object() {
    let doc = funnel_server::openapi::document();
    let mut bare_ones = Vec::new();
    // Every schema an answer can reach: the responses' own and every component they use.
    let mut seen: Vec<(String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operation") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                for (media, body) in response["content"].as_object().into_iter().flatten() {
                    seen.push((
                        format!("{method} {path} {status} {media}"),
                        body["schema"].clone(),
                    ));
                }
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        seen.push((format!("components/{name}"), schema.clone()));
    }
    fn walk(at: &str, v: &Value, out: &mut Vec<String>) {
        if bare(v) {
            out.push(at.to_string());
        }
        match v {
            Value::Object(map) => {
                for (k, x) in map {
                    walk(&format!("{at}/{k}"), x, out);
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(&format!("{at}/{i}"), x, out);
                }
            }
            _ => {}
        }
    }
    for (at, schema) in &seen {
        walk(at, schema, &mut bare_ones);
    }
    // The OpenAPI document describes itself loosely: its parts are OpenAPI's own schema.
    bare_ones.retain(|at| !at.starts_with("get /openapi.json 200 application/json/properties/"));
    assert!(bare_ones.is_empty(), "bare object schemas: {bare_ones:#?}");
}
