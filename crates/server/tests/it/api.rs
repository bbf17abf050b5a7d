//! Every endpoint's happy path through the router, idempotent retries, the OpenAPI copy in
//! `schemas/`, and the layered settings.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn probes_metrics_and_openapi_need_no_token() {
    let w = world().await;
    let r = w.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    // Ready once the read models have caught up with the bootstrap history.
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/pipeline?at_least={head}"), "sales_dept")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .post(
            "/webhooks",
            "sales_dept",
            json!({ "url": "http://127.0.0.1:9/", "from": 0 }),
        )
        .await;
    let hook = r.body["subscription"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Metrics count across offices: not without a token, nor for an office role.
    let r = w.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = w.get("/metrics", "manager").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = w.get("/metrics", "auditor").await;
    assert_eq!(r.status, StatusCode::OK);
    for series in [
        "funnel_projection_lag_positions".to_string(),
        // No saga runtime runs in this test world, so the sagas lag by the whole log.
        format!("funnel_saga_backlog{{what=\"lag_positions\"}} {head}"),
        format!("funnel_webhook{{subscription=\"{hook}\",what=\"lag_positions\"}} {head}"),
    ] {
        assert!(r.text.contains(&series), "{series} in {}", r.text);
    }
}

#[tokio::test]
async fn a_lead_goes_through_the_api_and_shows_in_every_read() {
    let w = world().await;
    let me = w.get("/me", "eng_a").await;
    assert_eq!(me.body["role"], "sales_engineer");
    let (lead, pos) = w.register("eng_a", sh(), "万科").await;
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_a",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["events"][0]["type"], "lead.visit_logged");
    let after = r.body["position"].as_u64().expect("position");
    assert!(after > pos);
    let r = w
        .get(&format!("/leads/{lead}/audit?at_least={after}"), "eng_a")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let actions: Vec<&str> = r.body["touches"]
        .as_array()
        .expect("touches")
        .iter()
        .filter_map(|t| t["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"lead.registered") && actions.contains(&"lead.visit_logged"),
        "{actions:?}"
    );
    let r = w.get(&format!("/pipeline?at_least={after}"), "eng_a").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["offices"].as_array().expect("offices").len(), 1);
    let r = w
        .get(
            &format!("/pipeline?as_of={after}&office={}", sh()),
            "executive",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w.get("/pipeline?as_of=2026-12-31", "executive").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .get(&format!("/audit/conflicts?at_least={after}"), "manager")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w.get("/audit/plans", "manager").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w.get("/projections", "auditor").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["projections"]
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p["name"] == "access")
    );
}

#[tokio::test]
async fn events_are_paginated_with_a_cursor() {
    let w = world().await;
    w.register("eng_a", sh(), "万科").await;
    let mut after = 0;
    let mut seen = 0;
    loop {
        let r = w
            .get(&format!("/events?after={after}&limit=7"), "auditor")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        seen += r.body["events"].as_array().expect("events").len();
        match r.body["next"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let head = w.state.store().head().await.expect("head").0;
    assert_eq!(seen as u64, head, "SQLite positions are consecutive from 1");
    // An engineer sees their office's events only.
    let r = w.get("/events?limit=1000", "eng_bj").await;
    let events = r.body["events"].as_array().expect("events");
    assert!(
        events.iter().all(|e| e["office"] == json!(bj())),
        "{events:?}"
    );
}

#[tokio::test]
async fn plans_and_summaries_go_through_the_api() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let plan = json!({
        "period": { "kind": "month", "year": 2099, "month": 1 },
        "visits": [{ "date": "2099-01-05", "lead_id": lead, "customer": "万科", "purpose": "回访" }],
    });
    let r = w.post("/plans", "eng_a", plan).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let plan_id = r.body["id"].as_str().expect("id").to_string();
    let r = w
        .post(&format!("/plans/{plan_id}/file"), "assistant", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let overdue = json!({ "engineer": w.ids["eng_b"], "office": sh(),
        "period": { "kind": "month", "year": 2020, "month": 1 } });
    let r = w.post("/plans/overdue", "assistant", overdue).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let summary = json!({ "office": sh(), "period": { "kind": "month", "year": 2026, "month": 3 },
        "lines": [{ "lead_id": lead, "engineer": w.ids["eng_a"], "customer": "万科" }] });
    let r = w.post("/summaries", "assistant", summary).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = w
        .post(
            &format!("/summaries/{id}/verify"),
            "assistant",
            json!({ "note": "核对" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .post(
            &format!("/summaries/{id}/review"),
            "manager",
            json!({ "approve": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .post(&format!("/summaries/{id}/file"), "assistant", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_answers_the_original_result() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let uri = format!("/leads/{lead}/commands/log_visit");
    let token = Some(w.tokens["eng_a"].clone());
    let body = visit().to_string().into_bytes();
    let key = [("idempotency-key", "visit-1 from the phone app")];
    let first = w
        .raw(Method::POST, &uri, token.clone(), body.clone(), &key)
        .await;
    let again = w
        .raw(Method::POST, &uri, token.clone(), body.clone(), &key)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(first.body["position"], again.body["position"]);
    assert_eq!(first.body["command_id"], again.body["command_id"]);
    assert_eq!(again.body["duplicate"], true);
    let uuid_key = [("idempotency-key", "0190f5a2-7c1e-7a3b-9c4d-5e6f7a8b9c0d")];
    let a = w
        .raw(Method::POST, &uri, token.clone(), body.clone(), &uuid_key)
        .await;
    let b = w.raw(Method::POST, &uri, token, body, &uuid_key).await;
    // A UUID key is scoped to its caller like any other: it is not the command id itself.
    assert_ne!(a.body["command_id"], "0190f5a2-7c1e-7a3b-9c4d-5e6f7a8b9c0d");
    assert_eq!(a.body["command_id"], b.body["command_id"]);
    assert_eq!(a.body["position"], b.body["position"]);
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_a_new_one_works_at_once() {
    let w = world().await;
    let id = w.ids["eng_a"];
    let access = funnel_server::tokens::directory(w.state.store().as_ref())
        .await
        .expect("dir");
    let token_id = access
        .tokens
        .values()
        .find(|t| t.staff_id == id)
        .expect("token")
        .token_id;
    let system = funnel_engine::Who::System("test".into());
    funnel_server::tokens::revoke(&w.engine, system.clone(), id, token_id)
        .await
        .expect("revoke");
    let head = w.state.store().head().await.expect("head").0;
    w.get(&format!("/me?at_least={head}"), "sales_dept").await;
    funnel_projections::wait_until_shared(
        w.state.runner(),
        funnel_types::Position(head),
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("projected");
    let r = w.get("/me", "eng_a").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let fresh = funnel_server::tokens::issue(&w.engine, system, id)
        .await
        .expect("issue");
    let r = w
        .raw(Method::GET, "/me", Some(fresh.token), vec![], &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn only_the_holder_an_executive_or_the_system_issue_tokens() {
    let w = world().await;
    let eng = w.ids["eng_b"];
    let as_manager = funnel_engine::Who::Staff(w.ids["manager"]);
    let e = funnel_server::tokens::issue(&w.engine, as_manager, eng)
        .await
        .expect_err("refused");
    assert_eq!(
        e.refusal().map(|r| r.code.as_str()),
        Some("auth.role_not_permitted")
    );
    let as_hq = || funnel_engine::Who::Staff(w.ids["sales_dept"]);
    let e = funnel_server::tokens::issue(&w.engine, as_hq(), eng)
        .await
        .expect_err("refused");
    assert_eq!(
        e.refusal().map(|r| r.code.as_str()),
        Some("staff.token_holder_or_executive")
    );
    funnel_server::tokens::issue(&w.engine, as_hq(), w.ids["sales_dept"])
        .await
        .expect("the sales department for itself");
    let as_executive = funnel_engine::Who::Staff(w.ids["executive"]);
    funnel_server::tokens::issue(&w.engine, as_executive, eng)
        .await
        .expect("an executive for anyone");
    // Any holder for themselves, over HTTP too (for their integrations).
    for who in ["eng_b", "auditor"] {
        let r = w
            .post(&format!("/staff/{}/tokens", w.ids[who]), who, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{who}: {}", r.text);
    }
}

#[test]
fn the_openapi_copy_in_schemas_matches_the_served_document() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.json");
    let text =
        serde_json::to_string_pretty(&funnel_server::openapi::document()).expect("json") + "\n";
    if std::env::var_os("FUNNEL_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write");
        return;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        old == text,
        "schemas/openapi.json is out of date (FUNNEL_BLESS=1 cargo test -p funnel-server to accept)"
    );
}

#[test]
fn the_documented_settings_file_holds_the_defaults() {
    use funnel_server::ServeOptions;
    let file = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/funnel.toml"
    ));
    let o = ServeOptions::load(Some(file), Vec::new(), &[]).expect("deploy/funnel.toml loads");
    assert_eq!(
        o,
        ServeOptions::default(),
        "deploy/funnel.toml drifted from the defaults"
    );
    let text = std::fs::read_to_string(file).expect("read");
    let table: toml::Table = toml::from_str(&text).expect("toml");
    let defaults = serde_json::to_value(ServeOptions::default()).expect("json");
    for (section, keys) in defaults.as_object().expect("sections") {
        for (key, value) in keys.as_object().expect("keys") {
            if !value.is_null() {
                assert!(
                    table.get(section).and_then(|s| s.get(key)).is_some(),
                    "deploy/funnel.toml documents {section}.{key}"
                );
            }
        }
    }
}

#[test]
fn the_grpc_endpoint_is_off_by_default_and_its_settings_are_checked() {
    use funnel_server::ServeOptions;
    let load = |flags: &[(&str, Value)]| {
        ServeOptions::load(None, Vec::new(), flags).and_then(|o| o.validate().map(|()| o))
    };
    let o = load(&[]).expect("defaults");
    assert_eq!(o.grpc_addr().expect("no address"), None);
    let o = load(&[("grpc.listen", json!("127.0.0.1:2113"))]).expect("an address");
    assert_eq!(o.grpc_addr().expect("valid").map(|a| a.port()), Some(2113));
    let e = load(&[("grpc.listen", json!("2113"))]).expect_err("not an address");
    assert!(e.to_string().contains("grpc.listen"), "{e}");
    let e = load(&[
        ("grpc.listen", json!("127.0.0.1:2113")),
        ("grpc.tls_cert", json!("/etc/funnel/grpc.pem")),
    ])
    .expect_err("a certificate without its key");
    assert!(e.to_string().contains("grpc.tls_key"), "{e}");
    assert_eq!(o.grpc.max_connections, 256);
    let e = load(&[("grpc.max_connections", json!(0))]).expect_err("no connection at all");
    assert!(e.to_string().contains("grpc.max_connections"), "{e}");
}

#[test]
fn the_retention_policy_is_off_by_default_and_its_settings_are_checked() {
    use funnel_server::ServeOptions;
    let load = |flags: &[(&str, Value)]| {
        ServeOptions::load(None, Vec::new(), flags).and_then(|o| o.validate().map(|()| o))
    };
    let o = load(&[]).expect("defaults");
    assert_eq!(o.privacy.retention_years, None);
    let key = ("privacy.master_key_file", json!("/etc/funnel/privacy.key"));
    let o = load(&[key.clone(), ("privacy.retention_years", json!(3))]).expect("three years");
    assert_eq!(o.privacy.retention_years, Some(3));
    let e = load(&[("privacy.retention_years", json!(3))]).expect_err("nothing sealed");
    assert!(e.to_string().contains("privacy.master_key_file"), "{e}");
    for years in [0, 101] {
        let e = load(&[key.clone(), ("privacy.retention_years", json!(years))])
            .expect_err("out of range");
        assert!(e.to_string().contains("privacy.retention_years"), "{e}");
    }
    let e = load(&[("privacy.retention_every_hours", json!(0))]).expect_err("never");
    assert!(e.to_string().contains("retention_every_hours"), "{e}");
    // As an environment variable gives it: a number in a string.
    let o = ServeOptions::load(
        None,
        vec![
            (
                "FUNNEL__PRIVACY__MASTER_KEY_FILE".into(),
                "/etc/funnel/privacy.key".into(),
            ),
            ("FUNNEL__PRIVACY__RETENTION_YEARS".into(), "5".into()),
        ],
        &[],
    )
    .expect("from the environment");
    assert_eq!(o.privacy.retention_years, Some(5));
    let e = ServeOptions::load(
        None,
        vec![("FUNNEL__PRIVACY__RETENTION_YEARS".into(), "five".into())],
        &[],
    )
    .expect_err("not a number");
    assert!(e.to_string().contains("whole number"), "{e}");
}

#[test]
fn settings_are_layered_and_validated() {
    use funnel_server::ServeOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("funnel.toml");
    std::fs::write(
        &file,
        "[http]\nlisten = \"0.0.0.0:9000\"\nbody_limit = 4096\n[log]\nformat = \"json\"\n",
    )
    .expect("write");
    let env = vec![
        (
            "FUNNEL__HTTP__LISTEN".to_string(),
            "127.0.0.1:9001".to_string(),
        ),
        (
            "FUNNEL__WORKFLOWS__ENABLED".to_string(),
            "false".to_string(),
        ),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let o = ServeOptions::load(Some(&file), env.clone(), &[]).expect("valid");
    assert_eq!(o.http.listen, "127.0.0.1:9001");
    assert_eq!(o.http.body_limit, 4096);
    assert_eq!(o.log.format, funnel_server::LogFormat::Json);
    assert!(!o.workflows.enabled);
    let flags = [("http.listen", json!("127.0.0.1:0"))];
    let o = ServeOptions::load(Some(&file), env, &flags).expect("valid");
    assert_eq!(o.http.listen, "127.0.0.1:0");
    let bad = vec![("FUNNEL__HTTP__LISTN".to_string(), "x".to_string())];
    let e = ServeOptions::load(None, bad, &[]).expect_err("unknown key");
    assert!(
        e.to_string().contains("FUNNEL__HTTP__LISTN") && e.to_string().contains("listn"),
        "{e}"
    );
    let bad = [("http.listen", json!("not an address"))];
    let e = ServeOptions::load(None, Vec::new(), &bad).expect_err("bad address");
    assert!(e.to_string().contains("http.listen"), "{e}");
    std::fs::write(&file, "[htp]\nlisten = 1\n").expect("write");
    let e = ServeOptions::load(Some(&file), Vec::new(), &[]).expect_err("unknown section");
    assert!(e.to_string().contains("htp"), "{e}");
}

#[test]
fn history_snapshots_are_a_checked_setting() {
    use funnel_server::ServeOptions;
    let load = |flags: &[(&str, Value)]| {
        ServeOptions::load(None, Vec::new(), flags).and_then(|o| o.validate().map(|()| o))
    };
    assert_eq!(load(&[]).expect("defaults").store.history_every, 20_000);
    let none = load(&[("store.history_every", json!(0))]).expect("none at all");
    assert_eq!(none.store.history_every, 0);
    for bad in [1, 999, 10_000_001] {
        let e = load(&[("store.history_every", json!(bad))]).expect_err("out of range");
        assert!(e.to_string().contains("store.history_every"), "{bad}: {e}");
    }
}

#[test]
fn the_chain_settings_are_checked() {
    use funnel_server::ServeOptions;
    let load = |flags: &[(&str, Value)]| {
        ServeOptions::load(None, Vec::new(), flags).and_then(|o| o.validate().map(|()| o))
    };
    let o = load(&[]).expect("defaults");
    assert_eq!(
        (o.chain.checkpoint_every_s, o.chain.verify_every_minutes),
        (300, 60)
    );
    for (flags, setting) in [
        (
            vec![("chain.checkpoint_every_s", json!(1))],
            "checkpoint_every_s",
        ),
        (vec![("chain.public_key", json!("abc"))], "chain.public_key"),
        (
            vec![("chain.witness_url", json!("https://witness.example/"))],
            "chain.signing_key_file",
        ),
        (
            vec![
                ("chain.signing_key_file", json!("/etc/funnel/chain.key")),
                ("chain.witness_url", json!("ftp://witness.example/")),
            ],
            "http or https",
        ),
        (
            vec![
                ("chain.signing_key_file", json!("/etc/funnel/chain.key")),
                (
                    "chain.witness_url",
                    json!("https://user:s3cret@witness.example:99999/"),
                ),
            ],
            "not a URL",
        ),
    ] {
        let e = load(&flags).expect_err("refused");
        assert!(e.to_string().contains(setting), "{flags:?}: {e}");
        // The URL may carry a credential: it is never echoed.
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}

#[test]
fn replicas_are_settings_of_the_log_and_the_notification_stream() {
    use funnel_server::ServeOptions;
    let cluster = "nats://a:4222,nats://b:4222,nats://c:4222";
    let o = ServeOptions::load(None, Vec::new(), &[]).expect("defaults");
    assert_eq!((o.store.replicas, o.store.notify_replicas), (None, None));
    assert_eq!(o.store.log_replicas(cluster), 3);
    assert_eq!(o.store.log_replicas("nats://a:4222"), 1);
    let env = vec![("FUNNEL__STORE__REPLICAS".to_string(), "5".to_string())];
    let o = ServeOptions::load(None, env, &[]).expect("replicas from the environment");
    assert_eq!(o.store.replicas, Some(5));
    assert_eq!(o.store.notify_replicas(cluster), 5);
    let flags = [("store.notify_replicas", json!(1))];
    let o = ServeOptions::load(None, Vec::new(), &flags).expect("a flag");
    assert_eq!(
        (
            o.store.log_replicas(cluster),
            o.store.notify_replicas(cluster)
        ),
        (3, 1)
    );
    for bad in ["0", "7", "three"] {
        let env = vec![("FUNNEL__STORE__REPLICAS".to_string(), bad.to_string())];
        let e = ServeOptions::load(None, env, &[]).expect_err("bad replicas");
        assert!(e.to_string().contains("replicas"), "{e}");
    }
}

/// A read model rebuilt on request: headquarters asks, reads keep being served while the fresh
/// state is built beside the live one, and the rebuild ends by itself.
#[tokio::test]
async fn a_read_model_is_rebuilt_on_request() {
    let w = world().await;
    let (lead, position) = w.register("eng_a", sh(), "万科").await;
    for who in ["eng_a", "manager", "auditor", "key_account"] {
        let r = w
            .post("/projections/pipeline/rebuild", who, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
    }
    let r = w
        .post("/projections/nonsense/rebuild", "sales_dept", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["code"], "projection.not_found");
    assert!(
        r.body["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("pipeline"))
    );

    let r = w
        .post("/projections/pipeline/rebuild", "executive", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let pipeline = |body: &Value| {
        body["projections"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == "pipeline").cloned())
            .expect("the pipeline's status")
    };
    assert_eq!(pipeline(&r.body)["state"], "rebuilding", "{}", r.text);
    // Reads are served throughout.
    let r = w
        .get(&format!("/pipeline?at_least={position}"), "manager")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The rebuild finishes on its own (a bounded wait, not a timing assertion).
    let mut done = false;
    for _ in 0..300 {
        let r = w.get("/projections", "auditor").await;
        if pipeline(&r.body)["rebuild"].is_null() {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(done, "the rebuild never finished");
    let r = w.get(&format!("/leads/{lead}/audit"), "manager").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// The document bounds what the server parses: every integer has the range of its Rust type, the
/// Idempotency-Key the length and characters `command_id` takes, and a creating endpoint documents
/// the 200 it answers to a retry.
#[test]
fn the_openapi_document_is_as_strict_as_the_server() {
    fn walk(v: &Value, at: &str, unbounded: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                let is_integer = |t: Option<&Value>| {
                    t == Some(&json!("integer"))
                        || t.and_then(Value::as_array)
                            .is_some_and(|t| t.contains(&json!("integer")))
                };
                // Integers with a Rust format, and integers in a query.
                let schema = if is_integer(map.get("type")) && map.contains_key("format") {
                    Some(v)
                } else if map.get("in") == Some(&json!("query"))
                    && is_integer(v["schema"].get("type"))
                {
                    Some(&v["schema"])
                } else {
                    None
                };
                if let Some(s) = schema
                    && !(s["minimum"].is_number() && s["maximum"].is_number())
                {
                    unbounded.push(at.to_string());
                }
                for (k, v) in map {
                    walk(v, &format!("{at}/{k}"), unbounded);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{at}/{i}"), unbounded);
                }
            }
            _ => {}
        }
    }
    let doc = funnel_server::openapi::document();
    let mut unbounded = Vec::new();
    walk(&doc, "", &mut unbounded);
    assert!(
        unbounded.is_empty(),
        "integers without a range: {unbounded:#?}"
    );

    let mut keys = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "Idempotency-Key" {
                    keys += 1;
                    let s = &p["schema"];
                    assert_eq!((&s["minLength"], &s["maxLength"]), (&json!(1), &json!(200)));
                    assert_eq!(
                        s["pattern"], "^[!-~]([ -~]{0,198}[!-~])?$",
                        "{method} {path}"
                    );
                }
            }
        }
    }
    assert!(keys > 30, "{keys} operations take an Idempotency-Key");
    // A request body is declared with what it may contain (OpenAPI: `content` is required).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"].is_object(),
                    "{method} {path}: requestBody without content: {body}"
                );
            }
        }
    }
    for path in ["/offices", "/staff"] {
        let responses = &doc["paths"][path]["post"]["responses"];
        assert!(responses["200"].is_object(), "{path}: {responses}");
        assert_eq!(responses["200"]["content"], responses["201"]["content"]);
    }
}

#[tokio::test]
async fn pipeline_as_of_a_date_ages_leads_until_the_end_of_that_day() {
    use chrono::{Duration, TimeZone};
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let shanghai = chrono_tz::Asia::Shanghai;
    let day = chrono::Utc::now().with_timezone(&shanghai).date_naive() + Duration::days(40);
    let end = shanghai
        .from_local_datetime(
            &day.succ_opt()
                .expect("day")
                .and_hms_opt(0, 0, 0)
                .expect("midnight"),
        )
        .earliest()
        .expect("end of day")
        .with_timezone(&chrono::Utc)
        - Duration::nanoseconds(1);
    let r = w
        .get(&format!("/pipeline?as_of={day}&office=SH"), "executive")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["as_of"], end.to_rfc3339(), "the moment asked for");
    let ageing = &r.body["offices"][0]["ageing"];
    assert_eq!(ageing[0]["lead_id"], lead.as_str(), "{ageing}");
    assert_eq!(ageing[0]["days_without_visit"], 40, "{ageing}");
    // The same as asking for that moment.
    let at_moment = w
        .get(
            &format!(
                "/pipeline?as_of={}&office=SH",
                end.to_rfc3339().replace('+', "%2B")
            ),
            "executive",
        )
        .await;
    assert_eq!(at_moment.status, StatusCode::OK, "{}", at_moment.text);
    assert_eq!(at_moment.body, r.body);
}

#[tokio::test]
async fn as_of_replays_are_limited_and_cached() {
    let mut options = funnel_server::ServeOptions::default();
    options.http.max_replays = 1;
    options.http.replay_cache = 2;
    let w = world_with(options).await;
    w.register("eng_a", sh(), "万科").await;
    let replays = w.state.replays();

    // While the only slot is taken, a replay is refused, saying when to try again.
    let slot = replays.try_slot().expect("a free slot");
    let r = w.get("/pipeline?as_of=2026-12-31", "eng_a").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(
        r.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    drop(slot);

    let first = w.get("/pipeline?as_of=2026-12-31", "eng_a").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(replays.cached(), 1);
    // The same question at the same log head is answered from the cache, even with no slot.
    let slot = replays.try_slot().expect("a free slot");
    let again = w.get("/pipeline?as_of=2026-12-31", "eng_a").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, first.body);
    drop(slot);
    // A new event is a new question; the cache stays within its bound.
    w.register("eng_a", sh(), "保利").await;
    for day in ["2026-12-30", "2026-12-31", "2027-01-01"] {
        let r = w.get(&format!("/pipeline?as_of={day}"), "eng_a").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(replays.cached(), 2);
}

#[tokio::test]
async fn every_declared_write_is_routed_and_documented_and_every_documented_write_declared() {
    let w = world().await;
    let declared = funnel_server::declared_writes();
    let doc = funnel_server::openapi::document();
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, operation_id) in &declared {
        assert!(
            seen.insert((*method, path.clone())),
            "{method} {path} declared twice"
        );
        let op = &doc["paths"][path.as_str()][method.to_ascii_lowercase()];
        assert_eq!(
            op["operationId"], *operation_id,
            "{method} {path}: not in the document as {operation_id}"
        );
        // The route reaches the declared handler: a body it does not take is refused by its own
        // body type (a DELETE takes none, so its command is refused instead), never by a fallback.
        let id = if path.starts_with("/staff/") {
            w.ids["executive"].to_string()
        } else {
            uuid::Uuid::now_v7().to_string()
        };
        let uri = path
            .replace("{id}", &id)
            .replace("{token_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{year}", "2026");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let r = w
            .call(
                method.clone(),
                &uri,
                Some("executive"),
                Some(json!({ "not_a_field": true })),
            )
            .await;
        let code = r.body["code"].as_str().unwrap_or_default();
        assert!(
            ![
                "request.no_such_endpoint",
                "request.method_not_allowed",
                "request.unknown_command"
            ]
            .contains(&code),
            "{method} {uri} is not routed: {}",
            r.text
        );
        if method == Method::POST {
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {uri}: {}",
                r.text
            );
        }
    }
    // Every write in the document is a declared command or one of the named exceptions.
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                let method = method.to_ascii_uppercase();
                let known = declared.iter().any(|(m, p, _)| *m == method && p == path)
                    || funnel_server::NOT_COMMANDS.contains(&(method.as_str(), path.as_str()));
                assert!(known, "{method} {path} is documented but not declared");
                documented.insert((method, path.clone()));
            }
        }
    }
    for (method, path) in funnel_server::NOT_COMMANDS {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is named as a write that is no command but not documented"
        );
    }
}

#[tokio::test]
async fn a_name_no_command_has_is_told_the_declared_ones() {
    let w = world().await;
    let some = uuid::Uuid::now_v7();
    let staff = w.ids["executive"];
    for (uri, en) in [
        (
            format!("/leads/{some}/commands/promote"),
            format!(
                "no lead command `promote`; known: {}",
                funnel_server::dto::LEAD_COMMANDS.join(", ")
            ),
        ),
        (
            format!("/summaries/{some}/promote"),
            "no summary step `promote`; known: verify, review, file".to_string(),
        ),
        (
            format!("/staff/{staff}/promote"),
            "no staff change `promote`; known: reassign, leave, phone".to_string(),
        ),
    ] {
        let r = w.post(&uri, "executive", json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}: {}", r.text);
        assert_eq!(r.body["code"], "request.unknown_command", "{uri}");
        assert_eq!(r.body["message_en"], en, "{uri}");
    }
}

/// The pipeline of now is computed once per position for everyone asking the same offices: the
/// answer kept for one caller is never another's (an engineer sees their office only, whoever
/// asked before them), it moves with the log, and it is what replaying to that position gives.
#[tokio::test]
async fn a_polled_pipeline_is_kept_per_position_and_scope_and_equals_a_replay() {
    let w = world().await;
    w.register("eng_a", sh(), "万科").await;
    let (_, head) = w.register("eng_bj", bj(), "保利").await;
    let offices = |r: &Reply| -> Vec<String> {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.content_type, "application/json");
        r.body["offices"]
            .as_array()
            .expect("offices")
            .iter()
            .map(|o| o["office"].as_str().expect("office").to_string())
            .collect()
    };
    let everyone = w
        .get(&format!("/pipeline?at_least={head}"), "executive")
        .await;
    let all = offices(&everyone);
    assert!(all.contains(&sh().to_string()) && all.contains(&bj().to_string()));
    // At the same position, each office role still gets its own office only.
    let sh_only = w.get("/pipeline", "eng_a").await;
    assert_eq!(offices(&sh_only), [sh().to_string()]);
    assert_eq!(sh_only.body["position"], everyone.body["position"]);
    assert_eq!(
        offices(&w.get("/pipeline", "eng_bj").await),
        [bj().to_string()]
    );
    assert_eq!(
        offices(
            &w.get(&format!("/pipeline?office={}", bj()), "executive")
                .await
        ),
        [bj().to_string()]
    );
    // Asked again, the same answer; as replayed to that position, the same report.
    let again = w.get("/pipeline", "executive").await;
    assert_eq!(again.text, everyone.text);
    let position = everyone.body["position"].as_u64().expect("position");
    let replayed = w
        .get(&format!("/pipeline?as_of={position}"), "executive")
        .await;
    assert_eq!(replayed.body, everyone.body, "{}", replayed.text);
    // A write moves the answer on.
    let leads = |r: &Reply| r.body["offices"][0]["by_stage"]["ordinary"]["leads"].as_u64();
    let before = leads(&sh_only).expect("SH's ordinary leads");
    let (_, later) = w.register("eng_a", sh(), "绿地").await;
    let moved = w.get(&format!("/pipeline?at_least={later}"), "eng_a").await;
    assert_eq!(leads(&moved), Some(before + 1), "{}", moved.text);
}

#[tokio::test]
async fn a_polled_pipeline_is_sent_compressed_to_clients_that_accept_gzip() {
    use std::io::Read as _;
    let w = world().await;
    let (_, head) = w.register("eng_a", sh(), "万科").await;
    let token = Some(w.tokens["executive"].clone());
    let ask = |accept: &'static str| {
        let token = token.clone();
        let w = &w;
        async move {
            let headers: &[(&str, &str)] = if accept.is_empty() {
                &[]
            } else {
                &[("accept-encoding", accept)]
            };
            let uri = format!("/pipeline?at_least={head}");
            w.raw(Method::GET, &uri, token, Vec::new(), headers).await
        }
    };
    let plain = ask("").await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_eq!(plain.headers.get("content-encoding"), None);
    assert_eq!(plain.headers["vary"], "accept-encoding");
    let gzipped = ask("br;q=1.0, gzip;q=0.8").await;
    assert_eq!(gzipped.status, StatusCode::OK);
    assert_eq!(gzipped.headers["content-encoding"], "gzip");
    assert_eq!(gzipped.headers["vary"], "accept-encoding");
    assert_eq!(gzipped.content_type, "application/json");
    assert!(gzipped.bytes.len() < plain.bytes.len());
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&gzipped.bytes[..])
        .read_to_end(&mut inflated)
        .expect("a gzip body");
    assert_eq!(inflated, plain.bytes);
    // A client that refuses gzip gets JSON as it is.
    let refused = ask("gzip;q=0, identity").await;
    assert_eq!(refused.headers.get("content-encoding"), None);
    assert_eq!(refused.bytes, plain.bytes);
}
