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
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use funnel_app::auth::{Access, SessionEntry};
use funnel_app::query::org::{InvitationAnswer, SessionAnswer, SignInChanged, SignedOut, me};
use funnel_domain::RefusalCode;
use funnel_domain::events::SignInMethod;
use funnel_domain::org::{SessionCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, EngineError, Who};
use funnel_types::Position;
use schemars::JsonSchema;
use serde::Deserialize;

/// `POST /session`: the credential to sign in with, an API token or a login and password.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SignIn {
    Token(TokenSignIn),
    Password(PasswordSignIn),
}

/// Signing in with an API token.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSignIn {
    /// One of the person's API tokens (as `funnel staff token` issues it).
    pub token: String,
}

/// Signing in with a password set through an invitation.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignIn {
    /// The member of staff: their id or exact name.
    #[schemars(length(min = 1, max = 200))]
    pub login: String,
    #[schemars(length(min = 1, max = 128))]
    pub password: String,
}

impl std::fmt::Debug for PasswordSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSignIn")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// `POST /invitations/{token}`: the password to set.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// 10 to 128 characters, at least two of letters, digits and other characters, not
    /// containing the person's name.
    pub password: String,
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
    match body.json::<SignIn>() {
        Ok(SignIn::Token(TokenSignIn { token })) => {
            let caller = funnel_app::auth::authenticate(state.reads(), &token).await?;
            start(&state, &headers, caller, SignInMethod::Token).await
        }
        Ok(SignIn::Password(p)) => {
            let caller = by_password(&state, p).await?;
            start(&state, &headers, caller, SignInMethod::Password).await
        }
        // The untagged error would echo nothing useful (and never the password).
        Err(_) => Err(Problem::bad_body(
            "give `token`, or `login` and `password`, and nothing else",
        )),
    }
}

fn wrong_password() -> Problem {
    Problem::unauthorized("the login or the password is wrong", "登录名或密码错误")
}

/// The person a login and password name: refused alike for an unknown login and a wrong password;
/// a locked sign-in is refused before the password is checked; the failure that reaches
/// `sessions.lockout_failures` within the window records `staff.sign_in_locked` (once per lock, so
/// attempts by anyone grow the log by at most one event per person per lock period).
async fn by_password(state: &AppState, p: PasswordSignIn) -> Result<Caller, Problem> {
    let options = &state.options().sessions;
    let now = state.engine().clock().now();
    let login = p.login.trim().to_string();
    let found = state
        .reads()
        .with_model(|access: &Access, at| {
            let id = login
                .parse::<funnel_types::StaffId>()
                .ok()
                .filter(|id| access.staff.contains_key(id));
            let id = id.or_else(|| {
                let mut named = access.staff.iter().filter(|(_, s)| s.name == login);
                match (named.next(), named.next()) {
                    (Some((id, _)), None) => Some(*id),
                    _ => None,
                }
            })?;
            // Someone who left is refused as an unknown login.
            let s = access.staff.get(&id).filter(|s| s.active)?;
            Some((
                access.locked.get(&id).copied().filter(|until| *until > now),
                funnel_app::auth::caller_of(id, s, at),
            ))
        })
        .await?;
    let credentials = state.credentials();
    let Some((locked, caller)) = found else {
        // Spend the same work as for a real person before refusing.
        credentials.verify(None, p.password).await?;
        return Err(wrong_password());
    };
    if let Some(until) = locked {
        let zone = zone_of(state, caller.office).await?;
        let until = until.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "auth.sign_in_locked",
            format!(
                "password sign-in is locked after repeated failures until {until}; headquarters can unlock it"
            ),
            format!("多次登录失败，密码登录已锁定至 {until}，总部可提前解锁"),
        ));
    }
    if credentials
        .verify(Some(caller.staff_id), p.password)
        .await?
    {
        credentials
            .clear_failures(caller.staff_id)
            .await
            .map_err(funnel_app::AppError::from)?;
        return Ok(caller);
    }
    let window = chrono::Duration::minutes(i64::from(options.lockout_window_minutes));
    let failures = credentials
        .record_failure(caller.staff_id, now, window)
        .await
        .map_err(funnel_app::AppError::from)?;
    if failures >= options.lockout_failures {
        let until = now + chrono::Duration::minutes(i64::from(options.lockout_minutes));
        let cmd = Command::Staff {
            staff_id: caller.staff_id,
            cmd: StaffCommand::Session(SessionCommand::Lock { failures, until }),
        };
        match state
            .engine()
            .execute(CommandMeta::new(Who::System("sign-in".into())).at(now), cmd)
            .await
        {
            Ok(_) | Err(EngineError::Refused { .. }) => {
                credentials
                    .clear_failures(caller.staff_id)
                    .await
                    .map_err(funnel_app::AppError::from)?;
            }
            Err(e) => {
                tracing::warn!(staff = %caller.staff_id, error = %e, "sign-in lock not recorded")
            }
        }
    }
    Err(wrong_password())
}

/// `POST /staff/{id}/invitation`: headquarters (the sales department, executives; executives and
/// auditors only by an executive) issues a one-time link for the person to set a password. The
/// link's secret is answered once; a new invitation replaces the earlier one.
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(staff): Path<String>,
) -> Result<Response, Problem> {
    let (staff_id, entry) = crate::routes::read::staff_named(&state, &staff).await?;
    let now = state.engine().clock().now();
    let expires_at =
        now + chrono::Duration::hours(i64::from(state.options().sessions.invitation_hours));
    let issued = crate::tokens::invite(
        state.engine(),
        Who::Staff(caller.staff_id),
        staff_id,
        now,
        expires_at,
    )
    .await?;
    let zone = zone_of(&state, entry.office).await?;
    let body = InvitationAnswer {
        staff_id,
        invitation_id: issued.invitation_id,
        accept_path: format!("/invitations/{}", issued.token),
        token: issued.token,
        expires_at: expires_at.with_timezone(&zone).fixed_offset(),
        position: issued.position,
    };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("header"));
    Ok(res)
}

/// The time zone of an office (headquarters' for none).
async fn zone_of(
    state: &AppState,
    office: Option<funnel_types::OfficeId>,
) -> Result<chrono_tz::Tz, Problem> {
    Ok(state
        .reads()
        .with_model(|access: &Access, _| {
            funnel_domain::time::zone(
                office
                    .and_then(|o| access.offices.get(&o))
                    .map(|o| o.timezone.as_str()),
            )
        })
        .await?)
}

/// The member of staff an invitation's secret `token` invites (id and name), while it may still be
/// accepted; else `404 auth.invitation_unknown`. Waits briefly for an invitation issued a moment
/// ago (perhaps by another process) to be projected.
pub(crate) async fn invited(
    state: &AppState,
    token: &str,
) -> Result<(funnel_types::StaffId, String), Problem> {
    let now = state.engine().clock().now();
    let secret_hash = funnel_app::auth::token_hash(token);
    let found = funnel_app::auth::look_up(state.reads(), |access, _| {
        let i = access
            .invitations
            .get(&secret_hash)
            .filter(|i| i.expires_at > now)?;
        access
            .staff
            .get(&i.staff_id)
            .filter(|s| s.active)
            .map(|s| (i.staff_id, s.name.clone()))
    })
    .await?;
    found.ok_or_else(|| {
        Problem::not_found(
            "auth.invitation_unknown",
            "this invitation is unknown, used, replaced by a newer one or expired: ask headquarters for a new one",
            "该邀请无效、已使用、已被新邀请取代或已过期，请联系总部重新邀请",
        )
    })
}

/// `POST /invitations/{token}` with `{"password": …}`: the invited person sets their password
/// (checked against the policy, hashed with Argon2id into the credential store). The invitation is
/// used up; the answer names the person, who then signs in with `POST /session`.
pub async fn accept_invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: RawBody,
) -> Result<Json<SignInChanged>, Problem> {
    let AcceptInvitation { password } = body
        .json()
        .map_err(|_| Problem::bad_body("give `password` and nothing else"))?;
    let now = state.engine().clock().now();
    let secret_hash = funnel_app::auth::token_hash(&token);
    let (staff_id, name) = invited(&state, &token).await?;
    funnel_app::credentials::check_password(&password, &name)?;
    let cmd = Command::Staff {
        staff_id,
        cmd: StaffCommand::Session(SessionCommand::AcceptInvitation { secret_hash }),
    };
    let accepted = state
        .engine()
        .execute(CommandMeta::new(Who::Staff(staff_id)).at(now), cmd)
        .await?;
    state
        .credentials()
        .set_password(staff_id, password, now)
        .await?;
    Ok(Json(SignInChanged {
        staff_id,
        name,
        position: accepted.last_position,
    }))
}

/// `POST /staff/{id}/unlock`: headquarters opens a locked password sign-in before the lock runs
/// out.
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(staff): Path<String>,
) -> Result<Json<SignInChanged>, Problem> {
    let (staff_id, entry) = crate::routes::read::staff_named(&state, &staff).await?;
    let position =
        crate::tokens::unlock(state.engine(), Who::Staff(caller.staff_id), staff_id).await?;
    state
        .credentials()
        .clear_failures(staff_id)
        .await
        .map_err(funnel_app::AppError::from)?;
    Ok(Json(SignInChanged {
        staff_id,
        name: entry.name,
        position,
    }))
}

/// Begins a session for `caller`, who proved who they are by `method`: recorded in the log; the
/// answer about it and its two cookies.
pub(crate) async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    caller: Caller,
    method: SignInMethod,
) -> Result<(SessionAnswer, [header::HeaderValue; 2]), Problem> {
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
    Ok((body, session_cookies(&secret, secure, max_age)))
}

/// Begins a session for `caller` and answers `201` with it and its cookies.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    caller: Caller,
    method: SignInMethod,
) -> Result<Response, Problem> {
    let (body, cookies) = begin(state, headers, caller, method).await?;
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    for c in cookies {
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
                provider_sign_out: None,
            })
        }
        Err(EngineError::Refused { refusal, .. }) if refusal.code == RefusalCode::NothingToDo => {
            Ok(SignedOut {
                ended: 0,
                position: None,
                provider_sign_out: None,
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
    let mut body = end(&state, &session.caller, Some(session.session.session_id)).await?;
    if session.session.method == SignInMethod::Oidc
        && let Some(oidc) = state.oidc()
    {
        body.provider_sign_out = oidc.sign_out_url().await.map(String::from);
    }
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
