//! Browser sessions: signing in with a token sets a strict, HttpOnly session cookie and a CSRF
//! cookie; a session acts as its person's token does; unsafe requests it authenticates need the
//! session's CSRF token; sessions end when idle, at their absolute limit, on sign-out, on sign-out
//! everywhere and when their holder leaves; and the log keeps only the secret's hash, so another
//! process on the same log knows the session.

use crate::common;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use common::*;
use funnel_domain::RefusalCode;
use funnel_domain::org::{SessionCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, EngineError, Who};
use funnel_server::{AppState, ServeOptions};
use funnel_store::Filter;
use funnel_types::{ManualClock, Position};
use serde_json::{Value, json};
use std::sync::Arc;

/// A signed-in browser: its two cookies.
#[derive(Clone, Debug)]
struct Browser {
    secret: String,
    csrf: String,
}

impl Browser {
    fn cookie(&self) -> String {
        format!("funnel_session={}; funnel_csrf={}", self.secret, self.csrf)
    }
}

fn attributes(header: &str) -> Vec<String> {
    header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

async fn sign_in_with(w: &World, who: &str, headers: &[(&str, &str)]) -> (Reply, Browser) {
    let body = json!({ "token": w.tokens[who] }).to_string().into_bytes();
    let r = w.raw(Method::POST, "/session", None, body, headers).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let browser = Browser {
        secret: cookie_value(set_cookie(&r, "funnel_session")),
        csrf: cookie_value(set_cookie(&r, "funnel_csrf")),
    };
    (r, browser)
}

async fn sign_in(w: &World, who: &str) -> Browser {
    sign_in_with(w, who, &[]).await.1
}

/// A request carrying the browser's cookies and, when given, an `X-CSRF-Token`.
async fn by_cookie(
    w: &World,
    method: Method,
    uri: &str,
    b: &Browser,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let cookie = b.cookie();
    let mut headers = vec![("cookie", cookie.as_str())];
    if let Some(c) = csrf {
        headers.push(("x-csrf-token", c));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    w.raw(method, uri, None, body, &headers).await
}

async fn me(w: &World, b: &Browser) -> Reply {
    by_cookie(w, Method::GET, "/me", b, None, None).await
}

/// Waits until the world's read models reflect everything written so far.
async fn settle(state: &AppState) {
    let head = state.store().head().await.expect("head");
    funnel_projections::wait_until_shared(state.runner(), head, std::time::Duration::from_secs(10))
        .await
        .expect("read models catch up");
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie_and_a_csrf_cookie() {
    let w = world().await;
    let (r, b) = sign_in_with(&w, "eng_a", &[]).await;
    let session = attributes(set_cookie(&r, "funnel_session"));
    for a in ["httponly", "samesite=strict", "path=/"] {
        assert!(session.contains(&a.to_string()), "{a} in {session:?}");
    }
    assert!(
        !session.contains(&"secure".to_string()),
        "plain HTTP: {session:?}"
    );
    let csrf = attributes(set_cookie(&r, "funnel_csrf"));
    assert!(csrf.contains(&"samesite=strict".to_string()), "{csrf:?}");
    assert!(
        !csrf.contains(&"httponly".to_string()),
        "the console's scripts read the CSRF cookie: {csrf:?}"
    );
    assert_eq!(r.body["csrf_token"], b.csrf.as_str());
    assert_eq!(r.body["method"], "token");
    assert_eq!(r.body["me"]["name"], "eng_a");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(
        !r.text.contains(&b.secret),
        "the secret travels only in the cookie"
    );

    // The session acts as the token does.
    let by_token = w.get("/me", "eng_a").await;
    let by_session = me(&w, &b).await;
    assert_eq!(by_session.status, StatusCode::OK, "{}", by_session.text);
    assert_eq!(by_session.body, by_token.body);
    let s = by_cookie(&w, Method::GET, "/session", &b, None, None).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    assert_eq!(s.body["csrf_token"], b.csrf.as_str());
    assert_eq!(s.body["session_id"], r.body["session_id"]);
    // Office roles read their own office through a session too.
    let other = by_cookie(&w, Method::GET, "/pipeline?office=BJ", &b, None, None).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text);

    // Behind a proxy that says HTTPS, or when configured, the cookies are Secure.
    let (r, _) = sign_in_with(&w, "eng_a", &[("x-forwarded-proto", "https")]).await;
    assert!(attributes(set_cookie(&r, "funnel_session")).contains(&"secure".to_string()));
    assert!(attributes(set_cookie(&r, "funnel_csrf")).contains(&"secure".to_string()));
    let mut options = ServeOptions::default();
    options.sessions.secure_cookie = true;
    let w = world_with(options).await;
    let (r, _) = sign_in_with(&w, "manager", &[]).await;
    assert!(attributes(set_cookie(&r, "funnel_session")).contains(&"secure".to_string()));
}

#[tokio::test]
async fn a_bad_token_signs_nobody_in_and_get_session_needs_a_session() {
    let w = world().await;
    let body = json!({ "token": "not-a-token" }).to_string().into_bytes();
    let r = w.raw(Method::POST, "/session", None, body, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.headers.get("set-cookie").is_none());
    let r = w.get("/session", "eng_a").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let forged = Browser {
        secret: "forged".into(),
        csrf: "forged".into(),
    };
    let r = me(&w, &forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.body["code"], "auth.unauthenticated", "{}", r.text);
}

#[tokio::test]
async fn a_change_by_cookie_needs_the_sessions_own_csrf_token() {
    let w = world().await;
    let b = sign_in(&w, "eng_a").await;
    let other = sign_in(&w, "eng_a").await;
    let register = || Some(registration(sh(), "万科·城市花园"));
    for csrf in [None, Some("wrong"), Some(other.csrf.as_str())] {
        let r = by_cookie(&w, Method::POST, "/leads", &b, csrf, register()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{csrf:?}: {}", r.text);
        assert_eq!(r.body["code"], "auth.csrf");
        assert!(
            r.body["message_zh"]
                .as_str()
                .is_some_and(|m| m.contains("X-CSRF-Token")),
            "{}",
            r.text
        );
    }
    let r = by_cookie(&w, Method::POST, "/leads", &b, Some(&b.csrf), register()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Reads by cookie need no CSRF token, and bearer requests never do.
    assert_eq!(me(&w, &b).await.status, StatusCode::OK);
    let r = w
        .post("/leads", "eng_b", registration(sh(), "华润·幸福里"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_session_ends_when_idle_and_at_its_absolute_limit() {
    let clock = ManualClock::new(at("2026-09-01T01:00:00Z"));
    let mut options = ServeOptions::default();
    options.sessions.idle_minutes = 60;
    options.sessions.absolute_hours = 3;
    let w = world_at(options, Arc::new(clock.clone())).await;

    // Idle: used every 50 minutes it stays open (each use past a quarter of the idle time is
    // recorded, so its idle time counts from there) …
    let b = sign_in(&w, "eng_a").await;
    for _ in 0..3 {
        clock.advance(Duration::minutes(50));
        assert_eq!(me(&w, &b).await.status, StatusCode::OK);
        settle(&w.state).await;
    }
    // … until the absolute limit, 3 hours after sign-in, whatever the use.
    clock.advance(Duration::minutes(31));
    let r = me(&w, &b).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // Unused for more than the idle time, it ends.
    let b = sign_in(&w, "eng_a").await;
    clock.advance(Duration::minutes(59));
    settle(&w.state).await;
    assert_eq!(me(&w, &b).await.status, StatusCode::OK);
    settle(&w.state).await;
    clock.advance(Duration::minutes(61));
    let r = me(&w, &b).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(
        r.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("重新登录")),
        "{}",
        r.text
    );

    // Renewals are few: at most one per quarter of the idle time, not one per request.
    let b = sign_in(&w, "eng_b").await;
    for _ in 0..20 {
        clock.advance(Duration::minutes(1));
        assert_eq!(me(&w, &b).await.status, StatusCode::OK);
        settle(&w.state).await;
    }
    let renewals = w
        .state
        .store()
        .read_all(Position::START, &Filter::All, 100_000)
        .await
        .expect("log")
        .iter()
        .filter(|r| r.meta.event_type == "staff.session_renewed")
        .filter(|r| {
            r.meta
                .stream
                .to_string()
                .contains(&w.ids["eng_b"].to_string())
        })
        .count();
    assert_eq!(renewals, 1, "20 minutes of use, idle time 60 minutes");
}

#[tokio::test]
async fn signing_out_ends_the_session_and_clears_its_cookies() {
    let w = world().await;
    let b = sign_in(&w, "manager").await;
    let r = by_cookie(&w, Method::DELETE, "/session", &b, None, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["code"], "auth.csrf");
    assert_eq!(me(&w, &b).await.status, StatusCode::OK);

    let r = by_cookie(&w, Method::DELETE, "/session", &b, Some(&b.csrf), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ended"], 1);
    for name in ["funnel_session", "funnel_csrf"] {
        let c = set_cookie(&r, name);
        assert_eq!(cookie_value(c), "", "{c}");
        assert!(attributes(c).contains(&"max-age=0".to_string()), "{c}");
    }
    let r = me(&w, &b).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

#[tokio::test]
async fn signing_out_everywhere_ends_the_persons_sessions_in_every_tab_and_no_one_elses() {
    let w = world().await;
    let first = sign_in(&w, "eng_a").await;
    let second = sign_in(&w, "eng_a").await;
    let someone_else = sign_in(&w, "eng_b").await;
    let r = by_cookie(
        &w,
        Method::POST,
        "/session/revoke-all",
        &second,
        Some(&second.csrf),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ended"], 2);
    assert_eq!(me(&w, &first).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&w, &second).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&w, &someone_else).await.status, StatusCode::OK);
    // Signing in again works; the token was never a session and still works.
    let again = sign_in(&w, "eng_a").await;
    assert_eq!(me(&w, &again).await.status, StatusCode::OK);
    assert_eq!(w.get("/me", "eng_a").await.status, StatusCode::OK);
    // With a token and nothing else open, there is nothing to end.
    let r = w.post("/session/revoke-all", "eng_b", json!({})).await;
    assert_eq!(r.body["ended"], 1, "{}", r.text);
    let r = w.post("/session/revoke-all", "eng_b", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ended"], 0);
}

#[tokio::test]
async fn only_the_person_themselves_begins_or_ends_their_sessions() {
    let w = world().await;
    let b = sign_in(&w, "eng_a").await;
    let cmd = Command::Staff {
        staff_id: w.ids["eng_a"],
        cmd: StaffCommand::Session(SessionCommand::End { session_id: None }),
    };
    let refused = w
        .engine
        .execute(CommandMeta::new(Who::Staff(w.ids["executive"])), cmd)
        .await
        .expect_err("an executive does not end another person's sessions");
    let EngineError::Refused { refusal, .. } = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(refusal.code, RefusalCode::SessionHolderOnly);
    assert_eq!(me(&w, &b).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_never_outlives_its_holders_removal() {
    let w = world().await;
    let b = sign_in(&w, "eng_b").await;
    assert_eq!(me(&w, &b).await.status, StatusCode::OK);
    let eng_b = w.ids["eng_b"];
    let r = w
        .post(
            &format!("/staff/{eng_b}/leave"),
            "executive",
            json!({ "reason": "离职" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    settle(&w.state).await;
    let r = me(&w, &b).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("has left"), "{}", r.text);
    // Nor can they sign in again.
    let body = json!({ "token": w.tokens["eng_b"] })
        .to_string()
        .into_bytes();
    let r = w.raw(Method::POST, "/session", None, body, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

#[tokio::test]
async fn the_log_keeps_only_the_hash_of_a_session_and_another_process_knows_it() {
    let w = world().await;
    let b = sign_in(&w, "assistant").await;
    let log = w
        .state
        .store()
        .read_all(Position::START, &Filter::All, 100_000)
        .await
        .expect("log");
    let started: Vec<_> = log
        .iter()
        .filter(|r| r.meta.event_type == "staff.session_started")
        .collect();
    assert_eq!(started.len(), 1);
    let data = String::from_utf8_lossy(&started[0].payload).to_string();
    assert!(
        data.contains(&funnel_server::auth::token_hash(&b.secret)),
        "{data}"
    );
    for r in &log {
        let text = String::from_utf8_lossy(&r.payload);
        assert!(
            !text.contains(&b.secret),
            "the secret is in {}",
            r.meta.event_type
        );
        assert!(
            !text.contains(&b.csrf),
            "the CSRF token is in {}",
            r.meta.event_type
        );
    }

    // A second process on the same log, with its own read models.
    let runner =
        funnel_server::open_runner(&w.dir.path().join("second.projections.db")).expect("runner");
    let runner = Arc::new(tokio::sync::RwLock::new(runner));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (follow_runner, follow_store) = (runner.clone(), w.state.store().clone());
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        let _ = funnel_projections::follow(
            &follow_runner,
            follow_store.as_ref(),
            shutdown,
            &mut |_| {},
        )
        .await;
    });
    let second = AppState::new(
        w.engine.clone(),
        runner,
        funnel_notify::webhooks::Webhooks::in_memory().expect("webhooks"),
        w.state.credentials().clone(),
        ServeOptions::default(),
    );
    let call = |state: AppState, method: Method, uri: &'static str, csrf: Option<String>| {
        let cookie = b.cookie();
        async move {
            use tower::ServiceExt;
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header("cookie", cookie);
            if let Some(c) = csrf {
                req = req.header("x-csrf-token", c);
            }
            let req = req.body(axum::body::Body::empty()).expect("request");
            funnel_server::router(state)
                .oneshot(req)
                .await
                .expect("infallible")
                .status()
        }
    };
    assert_eq!(
        call(second.clone(), Method::GET, "/me", None).await,
        StatusCode::OK
    );
    // Signed out in the first, it is refused by the second.
    assert_eq!(
        call(
            w.state.clone(),
            Method::DELETE,
            "/session",
            Some(b.csrf.clone())
        )
        .await,
        StatusCode::OK
    );
    settle(&second).await;
    assert_eq!(
        call(second, Method::GET, "/me", None).await,
        StatusCode::UNAUTHORIZED
    );
    let _ = stop.send(());
}

/// Headquarters invites `who`; answers the invitation's token.
async fn invite(w: &World, by: &str, who: &str) -> Reply {
    w.post(&format!("/staff/{}/invitation", w.ids[who]), by, json!({}))
        .await
}

async fn accept(w: &World, token: &str, password: &str) -> Reply {
    let body = json!({ "password": password }).to_string().into_bytes();
    w.raw(
        Method::POST,
        &format!("/invitations/{token}"),
        None,
        body,
        &[],
    )
    .await
}

async fn password_sign_in(w: &World, login: &str, password: &str) -> Reply {
    let body = json!({ "login": login, "password": password })
        .to_string()
        .into_bytes();
    w.raw(Method::POST, "/session", None, body, &[]).await
}

const PASSWORD: &str = "城市花园-2026-welcome";

#[tokio::test]
async fn an_invitation_lets_the_person_set_a_password_once_and_sign_in_with_it() {
    let w = world().await;
    // Only headquarters invites; executives and auditors only by an executive.
    let r = invite(&w, "manager", "eng_a").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = invite(&w, "sales_dept", "auditor").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["code"], "staff.executive_only");
    assert_eq!(
        invite(&w, "executive", "auditor").await.status,
        StatusCode::CREATED
    );

    let r = invite(&w, "sales_dept", "eng_a").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().expect("token").to_string();
    assert_eq!(r.body["accept_path"], format!("/invitations/{token}"));
    assert!(
        r.body["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("+08:00"))
    );

    // The policy, in both languages.
    for weak in ["short1!", "onlyletterslong", "eng_a-2026-long"] {
        let r = accept(&w, &token, weak).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{weak}: {}",
            r.text
        );
        assert_eq!(r.body["code"], "auth.weak_password");
        assert!(
            r.body["message_zh"]
                .as_str()
                .is_some_and(|m| m.contains("密码"))
        );
    }
    let r = accept(&w, &token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "eng_a");
    // One time only.
    let r = accept(&w, &token, "another-password-1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    let r = password_sign_in(&w, "eng_a", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["method"], "password");
    assert_eq!(r.body["me"]["name"], "eng_a");
    let r = password_sign_in(&w, &w.ids["eng_a"].to_string(), PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for (login, password) in [("eng_a", "wrong-password-1"), ("nobody", PASSWORD)] {
        let r = password_sign_in(&w, login, password).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(r.headers.get("set-cookie").is_none());
    }

    // Neither the password nor its hash is anywhere in the log.
    let log = w
        .state
        .store()
        .read_all(Position::START, &Filter::All, 100_000)
        .await
        .expect("log");
    for r in &log {
        let text = String::from_utf8_lossy(&r.payload);
        assert!(
            !text.contains(PASSWORD) && !text.contains("$argon2id$"),
            "{text}"
        );
        assert!(
            !text.contains(&token),
            "the invitation's token is in {}",
            r.meta.event_type
        );
    }
    assert!(
        log.iter()
            .any(|r| r.meta.event_type == "staff.invitation_accepted")
    );
}

#[tokio::test]
async fn an_expired_or_replaced_invitation_is_refused() {
    let clock = ManualClock::new(at("2026-09-01T01:00:00Z"));
    let w = world_at(ServeOptions::default(), Arc::new(clock.clone())).await;
    let first = invite(&w, "sales_dept", "eng_b").await.body["token"]
        .as_str()
        .expect("token")
        .to_string();
    let second = invite(&w, "sales_dept", "eng_b").await.body["token"]
        .as_str()
        .expect("token")
        .to_string();
    settle(&w.state).await;
    let r = accept(&w, &first, PASSWORD).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "replaced: {}", r.text);
    clock.advance(Duration::hours(73));
    let r = accept(&w, &second, PASSWORD).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "expired: {}", r.text);
    assert!(
        r.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("过期"))
    );
}

#[tokio::test]
async fn repeated_failures_lock_password_sign_in_once_until_it_runs_out_or_headquarters_unlocks() {
    let clock = ManualClock::new(at("2026-09-01T01:00:00Z"));
    let w = world_at(ServeOptions::default(), Arc::new(clock.clone())).await;
    let token = invite(&w, "sales_dept", "eng_a").await.body["token"]
        .as_str()
        .expect("token")
        .to_string();
    settle(&w.state).await;
    assert_eq!(accept(&w, &token, PASSWORD).await.status, StatusCode::OK);
    for _ in 0..5 {
        clock.advance(Duration::minutes(1));
        let r = password_sign_in(&w, "eng_a", "wrong-password-1").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    settle(&w.state).await;
    // Locked: even the right password is refused, and more attempts add nothing to the log.
    let head = w.state.store().head().await.expect("head");
    for _ in 0..10 {
        let r = password_sign_in(&w, "eng_a", PASSWORD).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.body["code"], "auth.sign_in_locked");
    }
    assert_eq!(w.state.store().head().await.expect("head"), head);
    let locks = w
        .state
        .store()
        .read_all(Position::START, &Filter::All, 100_000)
        .await
        .expect("log")
        .iter()
        .filter(|r| r.meta.event_type == "staff.sign_in_locked")
        .count();
    assert_eq!(locks, 1);
    // Tokens still work: the lock is on passwords.
    assert_eq!(w.get("/me", "eng_a").await.status, StatusCode::OK);

    // An office manager may not unlock; headquarters may.
    let unlock = format!("/staff/{}/unlock", w.ids["eng_a"]);
    let r = w.post(&unlock, "manager", json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = w.post(&unlock, "sales_dept", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    settle(&w.state).await;
    let r = password_sign_in(&w, "eng_a", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Locked again, it opens by itself after the lock time.
    for _ in 0..5 {
        clock.advance(Duration::minutes(1));
        password_sign_in(&w, "eng_a", "wrong-password-1").await;
    }
    settle(&w.state).await;
    let r = password_sign_in(&w, "eng_a", PASSWORD).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    clock.advance(Duration::minutes(16));
    let r = password_sign_in(&w, "eng_a", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Every form of the console that changes something refuses a session cookie without the
/// session's own CSRF token, as the API does (a page of another site cannot post them).
#[tokio::test]
async fn the_consoles_forms_need_the_sessions_csrf_token() {
    let w = world().await;
    let b = sign_in(&w, "eng_a").await;
    let other = sign_in(&w, "eng_a").await;
    let lead = funnel_types::LeadId::derived("no such lead");
    let summary = funnel_types::SummaryId::derived("no such summary");
    for uri in [
        "/console/leads".to_string(),
        format!("/console/leads/{lead}/commands/log_visit"),
        format!("/console/leads/{lead}/key-persons"),
        "/console/plans".to_string(),
        "/console/summaries".to_string(),
        format!("/console/summaries/{summary}/verify"),
    ] {
        for csrf in [None, Some(other.csrf.as_str())] {
            let r = by_cookie(&w, Method::POST, &uri, &b, csrf, None).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{uri} {csrf:?}: {}",
                r.text
            );
            assert_eq!(r.body["code"], "auth.csrf", "{uri}");
        }
        let r = by_cookie(&w, Method::POST, &uri, &b, Some(&b.csrf), None).await;
        assert_ne!(r.body["code"], "auth.csrf", "{uri}: {}", r.text);
        assert_ne!(r.status, StatusCode::FORBIDDEN, "{uri}: {}", r.text);
    }
}
