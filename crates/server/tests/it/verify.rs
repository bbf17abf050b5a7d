//! `GET /verify`: the auditor walks the log, its hash chain and the signed checkpoints of its
//! head; nobody else may; an edit of the store file under the server is named where it is.

use crate::common::*;

use axum::http::StatusCode;
use funnel_app::chain::{ChainAudit, ChainSettings, Checkpoints, sign_head};
use funnel_store::checkpoint::CheckpointSigner;
use std::sync::Arc;

async fn inbox(w: &World, who: &str) -> String {
    let r = w
        .raw(
            axum::http::Method::GET,
            "/console/inbox",
            Some(w.tokens[who].clone()),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.text
}

#[tokio::test]
async fn the_auditor_verifies_the_log_and_sees_an_edit_made_under_the_server() {
    let w = world().await;
    let signer = Arc::new(CheckpointSigner::generate());
    let checkpoints = Checkpoints::File(w.dir.path().join("funnel.db.checkpoints"));
    w.state.set_chain(Arc::new(ChainAudit::new(ChainSettings {
        checkpoints: Some(checkpoints.clone()),
        signer: Some(signer.clone()),
        public_key: None,
    })));
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let store = w.state.store().clone();
    let signed = sign_head(store.as_ref(), &signer, &checkpoints, None)
        .await
        .expect("sign")
        .expect("a chain to sign");

    // Nobody but the auditor walks the log through the server.
    for who in ["eng_a", "manager", "executive", "sales_dept"] {
        let r = w.get("/verify", who).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
        assert_eq!(r.body["code"], "auth.role_not_permitted", "{}", r.text);
        assert!(r.text.contains("审计"), "{}", r.text);
    }
    let r = w.get("/verify", "auditor").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["clean"], true, "{}", r.text);
    let head = store.head().await.expect("head").0;
    assert_eq!(r.body["head"], head);
    assert_eq!(r.body["verification"]["events"], head);
    let witness = &r.body["verification"]["witness"];
    assert_eq!(witness["matched"], 1, "{}", r.text);
    assert_eq!(witness["last"]["position"], signed.position.0);
    assert_eq!(witness["key"], signer.public().to_hex());
    let first_walk = r.body["verified_at"].clone();
    // The auditor's console shows the walk; nobody else's does.
    let page = inbox(&w, "auditor").await;
    assert!(
        page.contains(&format!("日志完整性：已校验至位置 {head}"))
            && page.contains(&format!("签名检查点覆盖至位置 {}", signed.position)),
        "{page}"
    );
    assert!(!inbox(&w, "eng_a").await.contains("日志完整性"));
    let en = w
        .raw(
            axum::http::Method::GET,
            "/console/inbox",
            Some(w.tokens["auditor"].clone()),
            Vec::new(),
            &[("cookie", "lang=en")],
        )
        .await;
    assert!(
        en.text
            .contains(&format!("Log integrity: verified up to position {head} (")),
        "{}",
        en.text
    );

    // The registration's payload edited in the file, as someone with write access could.
    let position: i64 = rusqlite::Connection::open(w.dir.path().join("funnel.db"))
        .and_then(|c| {
            let p: i64 = c.query_row(
                "SELECT position FROM events WHERE stream = ?1 ORDER BY version LIMIT 1",
                [format!("lead-{lead}")],
                |r| r.get(0),
            )?;
            c.execute(
                "UPDATE events SET payload = CAST('{}' AS BLOB) WHERE position = ?1",
                [p],
            )?;
            Ok(p)
        })
        .expect("tamper");
    // Neither the head nor the checkpoints moved: the last walk is the answer, until asked again.
    let r = w.get("/verify", "auditor").await;
    assert_eq!(r.body["verified_at"], first_walk, "{}", r.text);
    let r = w.get("/verify?again=true", "auditor").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["clean"], false, "{}", r.text);
    let bad = &r.body["verification"]["first_bad"];
    assert_eq!(bad["tamper"], "changed", "{}", r.text);
    assert!(bad["position"].as_i64().expect("position") <= position);
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("tampered with at position")),
        "{}",
        r.text
    );
    assert!(
        r.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("被篡改")),
        "{}",
        r.text
    );
    // The last walk is what the auditor's console shows.
    assert_eq!(
        w.state.chain().last().map(|l| l.clean),
        Some(false),
        "kept for the dashboard"
    );
    assert!(inbox(&w, "auditor").await.contains("日志完整性校验未通过"));
    let r = w.get("/verify?again=maybe", "auditor").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}
