//! Signing in from a browser: `POST /session` turns a credential into a session (two cookies),
//! `GET /session` says who the session is and its CSRF token, `DELETE /session` signs out and
//! `POST /session/revoke-all` signs out of every session of the person.
//!
//! A session is recorded in the log like a token: `staff.session_started` with only the SHA-256 of
//! its secret, `staff.session_renewed` when it is used (at most four times per idle period), and
//! `staff.sessions_ended` when the person signs out; so every process on the log knows it from the
//! access read model, and a session never outlives its holder's removal (`staff.left`).

use crate::AppState;
use crate::auth::{Caller, SessionCaller, cleared_cookies, secure_cookies, session_cookies};
use crate::extract::RawBody;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use funnel_app::auth::{Access, SessionEntry};
use funnel_app::query::org::{SessionAnswer, SignedOut, me};
use funnel_domain::RefusalCode;
use funnel_domain::events::SignInMethod;
use funnel_domain::org::{SessionCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, EngineError, Who};
use funnel_types::Position;
use schemars::JsonSchema;
use serde::Deserialize;

/// `POST /session`: the credential to sign in with.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// One of the person's API tokens (as `funnel staff token` issues it).
    pub token: String,
}

/// The answer about `session` of `caller`, with its CSRF token, times on the person's office's
/// clock.
async fn answer(
    state: &AppState,
    caller: &Caller,
    session: &SessionEntry,
    secret: &str,
    position: Position,
) -> Result<SessionAnswer, Problem> {
    let office = caller.office;
    let zone = state
        .reads()
        .with_model(|access: &Access, _| {
            funnel_domain::time::zone(
                office
                    .and_then(|o| access.offices.get(&o))
                    .map(|o| o.timezone.as_str()),
            )
        })
        .await?;
    let local = |t: DateTime<Utc>| t.with_timezone(&zone).fixed_offset();
    Ok(SessionAnswer {
        me: me(caller),
        session_id: session.session_id,
        method: session.method,
        csrf_token: funnel_app::auth::csrf_token(secret),
        started_at: local(session.started_at),
        expires_at: local(session.expires_at),
        idle_minutes: session.idle_minutes,
        position,
    })
}

/// `POST /session` with `{"token": …}`: signs the token's holder in. Answers `201` with the
/// session and sets `funnel_session` (the secret: `HttpOnly`, `SameSite=Strict`, `Path=/`,
/// `Secure` over HTTPS) and `funnel_csrf` (the CSRF token, readable by the console's scripts).
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let SignIn { token } = body.json()?;
    let caller = funnel_app::auth::authenticate(state.reads(), &token).await?;
    start(&state, &headers, caller, SignInMethod::Token).await
}

/// Begins a session for `caller`, who proved who they are by `method`.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    caller: Caller,
    method: SignInMethod,
) -> Result<Response, Problem> {
    let options = &state.options().sessions;
    let now = state.engine().clock().now();
    let (secret, secret_hash) = funnel_app::auth::new_session_secret();
    let session_id = uuid::Uuid::now_v7();
    let expires_at = now + chrono::Duration::hours(i64::from(options.absolute_hours));
    let cmd = Command::Staff {
        staff_id: caller.staff_id,
        cmd: StaffCommand::Session(SessionCommand::Start {
            session_id,
            secret_hash,
            method,
            expires_at,
            idle_minutes: options.idle_minutes,
        }),
    };
    let accepted = state
        .engine()
        .execute(CommandMeta::new(Who::Staff(caller.staff_id)).at(now), cmd)
        .await?;
    let session = SessionEntry {
        staff_id: caller.staff_id,
        session_id,
        method,
        started_at: now,
        last_used: now,
        expires_at,
        idle_minutes: options.idle_minutes,
    };
    let body = answer(state, &caller, &session, &secret, accepted.last_position).await?;
    let secure = secure_cookies(state, headers);
    let max_age = (expires_at - now).num_seconds();
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    for c in session_cookies(&secret, secure, max_age) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("header"));
    Ok(res)
}

/// `GET /session`: who the session cookie signs in, and its CSRF token.
pub async fn current(
    State(state): State<AppState>,
    session: SessionCaller,
) -> Result<Response, Problem> {
    let position = session.caller.resolved_at;
    let body = answer(
        &state,
        &session.caller,
        &session.session,
        &session.secret,
        position,
    )
    .await?;
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("header"));
    Ok(res)
}

/// Ends `which` of `caller`'s sessions (one, or all when `None`), and answers when this process's
/// read models reflect it; none open is not an error.
async fn end(
    state: &AppState,
    caller: &Caller,
    which: Option<uuid::Uuid>,
) -> Result<SignedOut, Problem> {
    let cmd = Command::Staff {
        staff_id: caller.staff_id,
        cmd: StaffCommand::Session(SessionCommand::End { session_id: which }),
    };
    match state
        .engine()
        .execute(CommandMeta::new(Who::Staff(caller.staff_id)), cmd)
        .await
    {
        Ok(accepted) => {
            let ended = accepted
                .events
                .iter()
                .map(|e| match &e.payload {
                    funnel_domain::Event::StaffSessionsEnded(x) => x.sessions.len() as u64,
                    _ => 0,
                })
                .sum();
            // Answer once this process refuses the ended sessions (other processes follow the
            // log within their projection lag).
            let wait = std::time::Duration::from_millis(state.options().http.read_wait_ms);
            funnel_projections::wait_until_shared(state.runner(), accepted.last_position, wait)
                .await
                .map_err(|e| {
                    Problem::unavailable(
                        format!(
                            "signed out at {}, but the read models are late: {e}",
                            accepted.last_position
                        ),
                        "已退出登录，但读模型尚未更新，请稍后重试",
                    )
                })?;
            Ok(SignedOut {
                ended,
                position: Some(accepted.last_position),
            })
        }
        Err(EngineError::Refused { refusal, .. }) if refusal.code == RefusalCode::NothingToDo => {
            Ok(SignedOut {
                ended: 0,
                position: None,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// A sign-out answer that also removes the cookies from the browser.
fn signed_out(state: &AppState, headers: &HeaderMap, body: SignedOut) -> Response {
    let mut res = Json(body).into_response();
    for c in cleared_cookies(secure_cookies(state, headers)) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// `DELETE /session`: signs out of this session (its CSRF token required) and clears the cookies.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: SessionCaller,
) -> Result<Response, Problem> {
    let body = end(&state, &session.caller, Some(session.session.session_id)).await?;
    Ok(signed_out(&state, &headers, body))
}

/// `POST /session/revoke-all`: signs the caller out of every session they have open, in every
/// browser (with a token, or with a session and its CSRF token; then this browser's cookies are
/// cleared too).
pub async fn revoke_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, Problem> {
    let body = end(&state, &caller, None).await?;
    Ok(signed_out(&state, &headers, body))
}
