//! Signing in through the company's OpenID Connect provider (`GET /sign-in/oidc` and its
//! callback), and the page an invitation link opens (`GET /invitations/{token}`): set a password,
//! or link the company account. The protocol is in [`crate::oidc`].

use super::{Lang, Shell, Tr, html, problem_page, safe_next, sign_in_page};
use crate::AppState;
use crate::auth::{Caller, secure_cookies};
use crate::oidc::{FLOW_COOKIE, FLOW_MINUTES, Flow, Identity};
use crate::problem::Problem;
use crate::routes::session;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use funnel_app::auth::Access;
use funnel_domain::events::SignInMethod;
use funnel_domain::org::{SessionCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Who};
use funnel_types::StaffId;
use serde::Deserialize;

/// The path the flow cookie is sent to: the callback only.
const FLOW_PATH: &str = "/sign-in/oidc";

#[derive(Debug, Default, Deserialize)]
struct StartQuery {
    invitation: Option<String>,
    next: Option<String>,
    #[allow(dead_code)]
    lang: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    #[allow(dead_code)]
    error_description: Option<String>,
    #[allow(dead_code)]
    iss: Option<String>,
    #[allow(dead_code)]
    session_state: Option<String>,
}

fn tr_of(parts: &Parts) -> Tr {
    Tr {
        lang: Lang::of(parts),
    }
}

fn sign_in_shell(tr: Tr) -> Shell {
    Shell::new(tr, tr.t("登录", "Sign in"), "/sign-in", None)
}

fn not_configured() -> Problem {
    Problem::not_found(
        "auth.oidc_off",
        "signing in with a company account is not configured on this server; sign in with your password",
        "本服务器未配置公司账号登录，请使用密码登录",
    )
}

fn stale() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "auth.oidc_stale",
        format!(
            "this sign-in was not begun in this browser, or took longer than {FLOW_MINUTES} minutes: start again from the sign-in page"
        ),
        format!("本次登录不是在此浏览器发起的，或已超过 {FLOW_MINUTES} 分钟，请从登录页重新开始"),
    )
}

/// The `Set-Cookie` of the flow: `HttpOnly`, `SameSite=Lax` (the provider sends the browser back
/// by a top-level navigation from its own site), sent to the callback only.
fn flow_cookie(value: &str, secure: bool, max_age_secs: i64) -> HeaderValue {
    let c = cookie::Cookie::build((FLOW_COOKIE, value.to_string()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path(FLOW_PATH)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&c.to_string()).expect("cookie text is a header value")
}

fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `GET /sign-in/oidc[?invitation=…][&next=…]`: sends the browser to the provider. With an
/// invitation's secret, the sign-in links the account to the invited person (the invitation is
/// checked first, so a used link says so before the provider is visited).
pub async fn start(State(state): State<AppState>, parts: Parts) -> Response {
    let tr = tr_of(&parts);
    let q: StartQuery =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let next = safe_next(q.next.as_deref());
    let Some(oidc) = state.oidc() else {
        return sign_in_page(&state, tr, next, Some(&not_configured()));
    };
    if let Some(token) = &q.invitation
        && let Err(p) = session::invited(&state, token).await
    {
        return problem_page(sign_in_shell(tr), &p);
    }
    match oidc.begin(q.invitation, next.clone()).await {
        Ok((url, flow)) => {
            let secure = secure_cookies(&state, &parts.headers);
            let mut res = StatusCode::SEE_OTHER.into_response();
            let h = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(url.as_str()) {
                h.insert(header::LOCATION, v);
            }
            h.append(
                header::SET_COOKIE,
                flow_cookie(&flow.encode(), secure, FLOW_MINUTES * 60),
            );
            no_store(&mut res);
            res
        }
        Err(p) => sign_in_page(&state, tr, next, Some(&p)),
    }
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedInPage {
    shell: Shell,
    name: String,
    next: String,
}

/// `GET /sign-in/oidc/callback`: where the provider sends the browser back. Checks the `state`
/// against the flow cookie, exchanges the code, checks the ID token, links the account when an
/// invitation is being accepted, and begins a session (`staff.session_started`, method `oidc`).
/// The flow cookie is removed whatever the outcome.
pub async fn callback(State(state): State<AppState>, parts: Parts) -> Response {
    let tr = tr_of(&parts);
    let secure = secure_cookies(&state, &parts.headers);
    // A failure is shown on the sign-in page, so the person can try again or use a password.
    let next = flow_of(&parts)
        .map(|f| safe_next(Some(&f.next)))
        .unwrap_or_else(|| "/".into());
    let mut res = match finish(&state, &parts, tr).await {
        Ok(res) => res,
        Err(p) => sign_in_page(&state, tr, next, Some(&p)),
    };
    res.headers_mut()
        .append(header::SET_COOKIE, flow_cookie("", secure, 0));
    no_store(&mut res);
    res
}

/// The flow the cookie of this request carries.
fn flow_of(parts: &Parts) -> Option<Flow> {
    crate::auth::cookie(&parts.headers, FLOW_COOKIE).and_then(|v| Flow::decode(&v))
}

async fn finish(state: &AppState, parts: &Parts, tr: Tr) -> Result<Response, Problem> {
    let oidc = state.oidc().ok_or_else(not_configured)?;
    let q: CallbackQuery =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let flow = flow_of(parts).ok_or_else(stale)?;
    let same_state = q
        .state
        .as_deref()
        .is_some_and(|s| funnel_app::auth::constant_time_eq(s.as_bytes(), flow.state.as_bytes()));
    if !same_state {
        return Err(stale());
    }
    if let Some(error) = &q.error {
        // The provider's error code only (it is shown): letters, digits and underscores.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "auth.oidc_refused",
            format!("the company's sign-in service did not sign you in ({code})"),
            format!("公司统一登录服务未完成登录（{code}）"),
        ));
    }
    let code = q.code.filter(|c| !c.is_empty()).ok_or_else(stale)?;
    let identity = oidc.finish(&flow, code).await?;
    let caller = match &flow.invitation {
        Some(token) => link(state, token, &identity).await?,
        None => linked(state, &identity).await?,
    };
    let name = caller.name.clone();
    let (_, cookies) = session::begin(state, &parts.headers, caller, SignInMethod::Oidc).await?;
    let next = safe_next(Some(&flow.next));
    let shell = Shell::new(tr, tr.t("已登录", "Signed in"), "/sign-in", None);
    let mut res = html(
        SignedInPage {
            shell,
            name,
            next: next.clone(),
        }
        .render(),
    );
    // The session cookie is SameSite=Strict: a navigation this page starts (not a redirect of the
    // provider's) carries it.
    if let Ok(v) = HeaderValue::from_str(&format!("0; url={next}")) {
        res.headers_mut().insert("refresh", v);
    }
    for c in cookies {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// The caller for member of staff `id`, when they are on record and active.
async fn caller_of(state: &AppState, id: StaffId) -> Result<Option<Caller>, Problem> {
    Ok(state
        .reads()
        .with_model(|access: &Access, at| {
            let s = access.staff.get(&id).filter(|s| s.active)?;
            Some(funnel_app::auth::caller_of(id, s, at))
        })
        .await?)
}

fn unknown_account() -> Problem {
    Problem::unauthorized(
        "no member of staff signs in with this company account: open the invitation link headquarters sent you, or ask for one",
        "没有员工使用该公司账号登录：请打开总部发给您的邀请链接，或联系总部邀请",
    )
}

/// The member of staff `identity` is linked to. When this process's read models do not know one,
/// they are first brought up to the log's head (bounded): the link may have been written a moment
/// ago, by this process or another on the same log.
async fn oidc_holder(state: &AppState, identity: &Identity) -> Result<Option<StaffId>, Problem> {
    Ok(funnel_app::auth::look_up(state.reads(), |access, _| {
        access.staff_by_oidc(&identity.issuer, &identity.subject)
    })
    .await?)
}

/// The person an invitation names, once `identity` is linked to them (`staff.oidc_linked`). An
/// identity already linked to someone else is refused.
async fn link(state: &AppState, token: &str, identity: &Identity) -> Result<Caller, Problem> {
    let (staff_id, _) = session::invited(state, token).await?;
    let holder = oidc_holder(state, identity).await?;
    if holder.is_some_and(|h| h != staff_id) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "auth.oidc_taken",
            "this company account already signs in another member of staff: sign in at the provider as yourself",
            "该公司账号已关联其他员工，请在统一登录服务中以本人身份登录",
        ));
    }
    let cmd = Command::Staff {
        staff_id,
        cmd: StaffCommand::Session(SessionCommand::LinkOidc {
            secret_hash: funnel_app::auth::token_hash(token),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
        }),
    };
    let now = state.engine().clock().now();
    state
        .engine()
        .execute(CommandMeta::new(Who::Staff(staff_id)).at(now), cmd)
        .await?;
    caller_of(state, staff_id)
        .await?
        .ok_or_else(unknown_account)
}

/// The person `identity` is linked to.
async fn linked(state: &AppState, identity: &Identity) -> Result<Caller, Problem> {
    let id = oidc_holder(state, identity)
        .await?
        .ok_or_else(unknown_account)?;
    caller_of(state, id).await?.ok_or_else(unknown_account)
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    shell: Shell,
    name: String,
    token: String,
    /// What the company-account button says, when one is configured.
    oidc: Option<String>,
}

/// The label of the company-account button.
pub(super) fn oidc_label(state: &AppState, tr: Tr) -> Option<String> {
    let oidc = state.oidc()?;
    Some(match &oidc.display_name {
        Some(name) => match tr.lang {
            Lang::Zh => format!("使用{name}登录"),
            Lang::En => format!("Sign in with {name}"),
        },
        None => tr
            .t("使用公司账号登录", "Sign in with the company account")
            .into(),
    })
}

/// `GET /invitations/{token}`: the page an invitation link opens: whom it invites, a form to set a
/// password (sent to `POST /invitations/{token}` by the console's script) and, when the company's
/// provider is configured, the button that links the company account instead.
pub async fn invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
    parts: Parts,
) -> Response {
    let tr = tr_of(&parts);
    let shell = Shell::new(
        tr,
        tr.t("接受邀请", "Accept the invitation"),
        "/sign-in",
        None,
    );
    match session::invited(&state, &token).await {
        Ok((_, name)) => {
            let oidc = oidc_label(&state, tr);
            let mut res = html(
                InvitationPage {
                    shell,
                    name,
                    token,
                    oidc,
                }
                .render(),
            );
            no_store(&mut res);
            // The link's secret stays out of other sites' Referer headers.
            res.headers_mut().insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            res
        }
        Err(p) => problem_page(shell, &p),
    }
}
