//! Authentication at the HTTP edge: an `Authorization: Bearer` token, or the `funnel_session`
//! cookie of a browser session, is read here and handed to [`funnel_app::auth::authenticate`] or
//! [`funnel_app::auth::authenticate_session`], the one place that turns a credential into the
//! acting person and their read scope. The access read model, token hashing and the caller's scope
//! live in `funnel_app::auth` and are re-exported here.
//!
//! A request the session cookie authenticates with an unsafe method (anything but `GET`, `HEAD`,
//! `OPTIONS`) must carry `X-CSRF-Token` equal to the session's CSRF token (double submit, bound to
//! the session: the token is derived from its secret); otherwise it is refused `403`
//! (`auth.csrf`). Bearer requests are not affected: a browser never adds that header by itself.

use crate::AppState;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use funnel_domain::org::{SessionCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, EngineError, Who};

pub use funnel_app::auth::{
    Access, Caller, OfficeEntry, ReadScope, SessionEntry, StaffEntry, TokenEntry, new_token,
    token_hash,
};

/// The cookie that carries a session's secret (`HttpOnly`: scripts never see it).
pub const SESSION_COOKIE: &str = "funnel_session";
/// The cookie that carries the session's CSRF token, for the console's scripts to send back.
pub const CSRF_COOKIE: &str = "funnel_csrf";
/// The header an unsafe request authenticated by the session cookie carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn bearer(parts: &Parts) -> Option<Result<&str, Problem>> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    });
    Some(text.filter(|t| !t.is_empty()).ok_or_else(|| {
        Problem::unauthorized(
            "the Authorization header must be `Bearer <token>`",
            "Authorization 头必须为 `Bearer <令牌>`",
        )
    }))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn no_credential() -> Problem {
    Problem::unauthorized(
        "this endpoint needs `Authorization: Bearer <token>` (`funnel staff token` issues one) or a session (`POST /session` signs in)",
        "此接口需要 `Authorization: Bearer <令牌>`（可用 `funnel staff token` 签发）或登录会话（`POST /session` 登录）",
    )
}

/// A request whose method changes something.
fn unsafe_method(parts: &Parts) -> bool {
    !parts.method.is_safe()
}

/// A browser session that authenticated the request: the person, the session and its secret (to
/// derive the CSRF token from).
#[derive(Clone, Debug)]
pub struct SessionCaller {
    pub caller: Caller,
    pub session: SessionEntry,
    pub secret: String,
}

/// Authenticates the session whose secret is `secret`, checks the CSRF token of an unsafe request,
/// and records the use when it is due (so an active session does not idle out, in any process).
async fn session_caller(
    parts: &Parts,
    state: &AppState,
    secret: String,
) -> Result<SessionCaller, Problem> {
    let now = state.engine().clock().now();
    let (caller, seen) =
        funnel_app::auth::authenticate_session(state.reads(), &secret, now).await?;
    if unsafe_method(parts) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !funnel_app::auth::csrf_matches(&secret, sent) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "auth.csrf",
                "a request signed in by the session cookie that changes something must carry the session's `X-CSRF-Token` (see `GET /session`)",
                "通过会话 Cookie 登录的修改请求必须携带本会话的 `X-CSRF-Token`（见 `GET /session`）",
            ));
        }
    }
    if seen.renew {
        renew(state, &caller, seen.entry.session_id).await;
    }
    Ok(SessionCaller {
        caller,
        session: seen.entry,
        secret,
    })
}

/// Records that a session was used. A failure does not fail the request (the session is valid
/// now); the next request tries again.
async fn renew(state: &AppState, caller: &Caller, session_id: uuid::Uuid) {
    let cmd = Command::Staff {
        staff_id: caller.staff_id,
        cmd: StaffCommand::Session(SessionCommand::Renew { session_id }),
    };
    match state
        .engine()
        .execute(CommandMeta::new(Who::Staff(caller.staff_id)), cmd)
        .await
    {
        Ok(_) => {}
        // Signed out meanwhile: the next request is refused.
        Err(EngineError::Refused { .. }) => {}
        Err(e) => tracing::warn!(session = %session_id, error = %e, "session use not recorded"),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = match bearer(parts) {
            Some(token) => funnel_app::auth::authenticate(state.reads(), token?).await?,
            None => match cookie(&parts.headers, SESSION_COOKIE) {
                Some(secret) => session_caller(parts, state, secret).await?.caller,
                None => return Err(no_credential()),
            },
        };
        tracing::Span::current().record("staff", tracing::field::display(caller.staff_id));
        Ok(caller)
    }
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Problem::unauthorized(
                "no session: `POST /session` signs in",
                "未登录：请用 `POST /session` 登录",
            ));
        };
        let session = session_caller(parts, state, secret).await?;
        tracing::Span::current().record("staff", tracing::field::display(session.caller.staff_id));
        Ok(session)
    }
}

/// Whether the session cookies go out `Secure`: always when configured, else when the request came
/// over HTTPS as the proxy in front says.
pub fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    if state.options().sessions.secure_cookie {
        return true;
    }
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_https || forwarded
}

/// The two `Set-Cookie` values of a session: its secret (`HttpOnly`) and its CSRF token (readable
/// by the console's scripts), both `SameSite=Strict`, `Path=/`, for `max_age` seconds.
pub fn session_cookies(secret: &str, secure: bool, max_age_secs: i64) -> [HeaderValue; 2] {
    cookie_pair(
        secret.to_string(),
        funnel_app::auth::csrf_token(secret),
        secure,
        max_age_secs,
    )
}

fn cookie_pair(session: String, csrf: String, secure: bool, max_age_secs: i64) -> [HeaderValue; 2] {
    let build = |name: &'static str, value: String, http_only: bool| {
        let c = cookie::Cookie::build((name, value))
            .http_only(http_only)
            .same_site(cookie::SameSite::Strict)
            .path("/")
            .secure(secure)
            .max_age(cookie::time::Duration::seconds(max_age_secs.max(0)))
            .build();
        HeaderValue::from_str(&c.to_string()).expect("cookie text is a header value")
    };
    [
        build(SESSION_COOKIE, session, true),
        build(CSRF_COOKIE, csrf, false),
    ]
}

/// The `Set-Cookie` values that remove both session cookies from the browser.
pub fn cleared_cookies(secure: bool) -> [HeaderValue; 2] {
    cookie_pair(String::new(), String::new(), secure, 0)
}
