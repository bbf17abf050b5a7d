//! No secret of a sign-in (invitation link, password, session cookie, CSRF token, API token)
//! reaches the logs, even at trace level. The check runs in a process of its own (the test binary
//! started again for that one test): a scoped log subscriber sees every call site only when no
//! other test thread meets them first, and the server's tests share one binary.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use std::sync::Arc;

const PASSWORD: &str = "城市花园-2026-welcome";

async fn post_anonymous(w: &World, uri: &str, body: serde_json::Value) -> Reply {
    w.raw(Method::POST, uri, None, body.to_string().into_bytes(), &[])
        .await
}

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Set in the process that runs [`secrets_stay_out_of_the_logs_alone`].
const ALONE: &str = "FUNNEL_TEST_SIGN_IN_LOGS_ALONE";

#[test]
fn no_secret_of_a_sign_in_reaches_the_logs_even_at_trace_level() {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "sign_in_logs::secrets_stay_out_of_the_logs_alone",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ALONE, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The check itself, run by the test above in a process of its own (and skipped elsewhere, where
/// other threads may meet the call sites first).
#[tokio::test]
#[ignore = "run by no_secret_of_a_sign_in_reaches_the_logs_even_at_trace_level in a process of its own"]
async fn secrets_stay_out_of_the_logs_alone() {
    if std::env::var_os(ALONE).is_none() {
        return;
    }
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let w = world().await;
    let manager = w.ids["manager"];
    let r = w
        .post(
            &format!("/staff/{manager}/invitation"),
            "sales_dept",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let invitation = r.body["token"].as_str().expect("token").to_string();
    let r = post_anonymous(
        &w,
        &format!("/invitations/{invitation}"),
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let signed_in = json!({ "login": "manager", "password": PASSWORD });
    let r = post_anonymous(&w, "/session", signed_in).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let wrong = json!({ "login": "manager", "password": "wrong-password-1" });
    let r = post_anonymous(&w, "/session", wrong).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = post_anonymous(&w, "/session", json!({ "token": w.tokens["manager"] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (secret, csrf) = (
        cookie_value(set_cookie(&r, "funnel_session")),
        cookie_value(set_cookie(&r, "funnel_csrf")),
    );
    let cookie = format!("funnel_session={secret}");
    let r = w
        .raw(Method::GET, "/me", None, vec![], &[("cookie", &cookie)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("log")).to_string();
    assert!(
        logs.contains("/invitations/…"),
        "requests are logged: {logs}"
    );
    for secret in [
        invitation.as_str(),
        PASSWORD,
        "wrong-password-1",
        secret.as_str(),
        csrf.as_str(),
        w.tokens["manager"].as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
}
