//! The console: server-rendered HTML pages over the application layer's queries and commands, for
//! the people who work in Funnel (the API stays for integrations).
//!
//! - Pages are `askama` templates (compile-time checked, HTML auto-escaped) in `templates/`; each
//!   handler takes the [`Caller`] like the API does, so a page shows exactly what the same person
//!   may read through the API, and a form runs the same command as the same person.
//! - Progressive enhancement: every page and form works as plain HTML; htmx (vendored) swaps a
//!   form's result in place, and the console script draws charts with ECharts (vendored).
//! - Assets are embedded in the binary and served under a URL with their content hash, cached for
//!   a year; pages are `no-cache`. Every answer carries [`CONSOLE_CSP`]: scripts and styles from
//!   this server only, nothing inline, no framing.
//! - Chinese first; `?lang=en` (or `?lang=zh`) switches and is remembered in a cookie.

mod analysis;
mod assets;
mod entry;
mod inbox;
mod labels;
mod leads;
mod oidc;
mod staff;

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;
use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use funnel_types::Role;

pub use assets::asset_url;
pub use oidc::invitation as invitation_page;

/// What the console's answers may do: load scripts, styles, images and fonts from this server,
/// send forms and requests to it, nothing inline, no framing, no base URL.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The console's routes (merged into the API's router); form bodies are read up to
/// `body_limit` bytes.
pub fn routes(body_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in))
        .route("/sign-in/oidc", get(oidc::start))
        .route(crate::oidc::CALLBACK_PATH, get(oidc::callback))
        .route("/console/analysis", get(analysis::page))
        .route("/console/inbox", get(inbox::page))
        .route("/console/leads", get(leads::list).post(inbox::register))
        .route("/console/leads/new", get(leads::new_lead))
        .route("/console/leads/similar", get(leads::similar))
        .route("/console/leads/{id}", get(leads::record))
        .route("/console/staff/{id}", get(staff::page))
        .route(
            "/console/leads/{id}/commands/{name}",
            post(inbox::lead_command),
        )
        .route("/console/leads/{id}/key-persons", post(entry::key_person))
        .route(
            "/console/leads/{id}/contracts",
            post(entry::contract).layer(axum::extract::DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route(
            "/console/plans",
            get(entry::plan_page).post(entry::submit_plan),
        )
        .route("/console/summaries", post(inbox::compile_summary))
        .route("/console/summaries/{id}/{step}", post(inbox::summary_step))
        .route(
            "/console/privacy/erasures/{id}/{step}",
            post(inbox::erasure_step),
        )
        .route("/assets/{hash}/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(remember_lang))
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            csrf_from_form,
        ))
}

/// The largest form with a file the console takes: a contract's file and the form's fields.
const UPLOAD_LIMIT: usize = entry::CONTRACT_FILE_LIMIT + 64 * 1024;

/// A form sent without JavaScript carries the session's CSRF token in its [`CSRF_FIELD`] field
/// rather than the `X-CSRF-Token` header htmx sends: the field is copied into the header before the
/// handler's extractor checks it, so the check stays in one place (`auth.rs`). Only `POST`s without
/// the header are read: `application/x-www-form-urlencoded` up to `limit` bytes, and
/// `multipart/form-data` (a contract's file) to the one path that takes it, up to its own limit.
async fn csrf_from_form(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bare = req.method() == axum::http::Method::POST
        && !req.headers().contains_key(crate::auth::CSRF_HEADER);
    if bare
        && content_type.starts_with("multipart/form-data")
        && req.uri().path().ends_with("/contracts")
    {
        return csrf_from_upload(req, &content_type, next).await;
    }
    let form = bare && content_type.starts_with("application/x-www-form-urlencoded");
    if !form {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "request.bad_body",
                format!("the form could not be read: larger than {limit} bytes, or it did not arrive in time"),
                format!("无法读取表单：超过 {limit} 字节，或未能按时送达"),
            )
            .into_response();
        }
    };
    if let Some(token) = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
        && let Ok(v) = HeaderValue::from_str(&token)
    {
        parts.headers.insert(crate::auth::CSRF_HEADER, v);
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// [`csrf_from_form`] for a `multipart/form-data` form sent without JavaScript: the body is held
/// (up to [`UPLOAD_LIMIT`]) while its [`CSRF_FIELD`] is looked for, then passed on whole.
async fn csrf_from_upload(req: Request, content_type: &str, next: Next) -> Response {
    use axum::extract::FromRequest;
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, UPLOAD_LIMIT).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            format!("the form with its file is larger than {UPLOAD_LIMIT} bytes, or did not arrive in time"),
            format!("带文件的表单超过 {UPLOAD_LIMIT} 字节，或未能按时送达"),
        )
        .into_response();
    };
    let scan = Request::builder()
        .method(axum::http::Method::POST)
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(bytes.clone()))
        .expect("a request of known parts");
    if let Ok(mut form) = axum::extract::Multipart::from_request(scan, &()).await {
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some(CSRF_FIELD) {
                if let Ok(token) = field.text().await
                    && let Ok(v) = HeaderValue::from_str(&token)
                {
                    parts.headers.insert(crate::auth::CSRF_HEADER, v);
                }
                break;
            }
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The language of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// `?lang=` of the request, else the `lang` cookie, else Chinese.
    fn of(parts: &Parts) -> Self {
        query_lang(parts.uri.query())
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse))
            .unwrap_or(Lang::Zh)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

const LANG_COOKIE: &str = "lang";

fn query_lang(query: Option<&str>) -> Option<Lang> {
    form_urlencoded_pairs(query.unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::parse(&v))
}

fn form_urlencoded_pairs(text: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text).unwrap_or_default()
}

/// A cookie's value from the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A request that names `?lang=` keeps it in a cookie for the next pages.
async fn remember_lang(req: Request, next: Next) -> Response {
    let lang = query_lang(req.uri().query());
    let mut res = next.run(req).await;
    if let Some(lang) = lang {
        let value = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            match lang {
                Lang::Zh => "zh",
                Lang::En => "en",
            }
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// Text in the page's language; templates call `tr.t("中文", "English")`.
#[derive(Clone, Copy, Debug)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        match self.lang {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn en(&self) -> bool {
        self.lang == Lang::En
    }

    /// A role's name.
    pub fn role(&self, role: Role) -> String {
        match self.lang {
            Lang::Zh => role.label_zh().to_string(),
            Lang::En => role.as_str().replace('_', " "),
        }
    }

    /// A code of the domain model (stage, channel, tier …) in the page's language.
    pub fn code(&self, zh: &str, code: &str) -> String {
        match self.lang {
            Lang::Zh => zh.to_string(),
            Lang::En => code.replace('_', " "),
        }
    }
}

/// Amounts in 万元 (ten thousand yuan), as the manual's forms count them.
pub fn wan(amount_cny: u64) -> String {
    let wan = amount_cny as f64 / 10_000.0;
    if amount_cny.is_multiple_of(10_000) {
        format!("{}", amount_cny / 10_000)
    } else {
        format!("{wan:.1}")
    }
}

/// A moment on the clock of `zone`, to the minute.
pub fn local_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
}

/// The person a page is for: who they are, in which language and time zone, and the shell around
/// every page (navigation, language switch).
#[derive(Clone, Debug)]
pub struct Viewer {
    pub caller: Caller,
    pub tr: Tr,
    pub zone: Tz,
    pub office_name: Option<String>,
    /// The session's CSRF token, when the page is seen through a session (its forms carry it in
    /// [`CSRF_FIELD`], so they work without JavaScript too).
    pub csrf: Option<String>,
}

/// The form field that carries the session's CSRF token in a form sent without JavaScript.
pub const CSRF_FIELD: &str = "_csrf";

/// A page for someone who is not signed in: to the sign-in page, and back afterwards.
#[derive(Debug)]
pub enum NotSignedIn {
    SignIn(String),
    Other(Problem),
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::SignIn(next) => {
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Redirect::to(&format!("/sign-in?{query}")).into_response()
            }
            NotSignedIn::Other(p) => p.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NotSignedIn> {
        let caller = match Caller::from_request_parts(parts, state).await {
            Ok(c) => c,
            Err(p) if p.status == 401 => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                return Err(NotSignedIn::SignIn(next));
            }
            Err(p) => return Err(NotSignedIn::Other(p)),
        };
        let zone = state
            .reads()
            .office_zone(caller.office)
            .await
            .map_err(|e| NotSignedIn::Other(e.into()))?;
        let office_name = match caller.office {
            Some(o) => state
                .reads()
                .with_model(|a: &funnel_app::auth::Access, _| {
                    a.offices.get(&o).map(|e| e.name.clone())
                })
                .await
                .map_err(|e| NotSignedIn::Other(e.into()))?,
            None => None,
        };
        let csrf = match parts.headers.contains_key(header::AUTHORIZATION) {
            true => None,
            false => crate::auth::cookie(&parts.headers, crate::auth::SESSION_COOKIE)
                .map(|secret| funnel_app::auth::csrf_token(&secret)),
        };
        Ok(Viewer {
            tr: Tr {
                lang: Lang::of(parts),
            },
            caller,
            zone,
            office_name,
            csrf,
        })
    }
}

/// One entry of the navigation.
#[derive(Clone, Debug)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the frame of every page shows.
#[derive(Clone, Debug)]
pub struct Shell {
    pub tr: Tr,
    pub title: String,
    pub nav: Vec<NavItem>,
    /// The signed-in person: name, role and office; none on the sign-in page.
    pub who: Option<String>,
    /// Their own staff page.
    pub who_href: String,
    /// This page in the other language.
    pub other_lang_href: String,
    pub other_lang_label: &'static str,
    pub css: [String; 2],
    pub scripts: Vec<String>,
    /// The session's CSRF token for the page's forms (empty without a session).
    pub csrf: String,
}

impl Shell {
    pub fn new(tr: Tr, title: &str, path: &str, viewer: Option<&Viewer>) -> Self {
        let mut nav = Vec::new();
        if viewer.is_some() {
            for (href, zh, en) in [
                ("/console/inbox", "待办", "Inbox"),
                ("/console/leads", "线索", "Leads"),
                ("/console/analysis", "分析", "Analysis"),
            ] {
                nav.push(NavItem {
                    href,
                    label: tr.t(zh, en),
                    current: path == href,
                });
            }
        }
        let (other, label) = match tr.lang {
            Lang::Zh => ("en", "English"),
            Lang::En => ("zh", "中文"),
        };
        Shell {
            tr,
            title: title.to_string(),
            nav,
            who: viewer.map(|v| {
                let mut who = format!("{} · {}", v.caller.name, tr.role(v.caller.role));
                if let Some(o) = &v.office_name {
                    who.push_str(" · ");
                    who.push_str(o);
                }
                who
            }),
            who_href: viewer
                .map(|v| format!("/console/staff/{}", v.caller.staff_id))
                .unwrap_or_default(),
            other_lang_href: format!("{path}?lang={other}"),
            other_lang_label: label,
            css: [
                asset_url("pico.classless.min.css"),
                asset_url("console.css"),
            ],
            scripts: vec![asset_url("htmx.min.js"), asset_url("console.js")],
            csrf: viewer.and_then(|v| v.csrf.clone()).unwrap_or_default(),
        }
    }

    /// The same page in the other language keeps the page's own query.
    pub fn with_query(mut self, query: &[(&str, String)]) -> Self {
        let rest: Vec<(&str, String)> = query
            .iter()
            .filter(|(k, v)| *k != "lang" && !v.is_empty())
            .cloned()
            .collect();
        if !rest.is_empty() {
            let q = serde_urlencoded::to_string(&rest).unwrap_or_default();
            self.other_lang_href.push('&');
            self.other_lang_href.push_str(&q);
        }
        self
    }

    pub fn with_script(mut self, name: &str) -> Self {
        self.scripts.insert(0, asset_url(name));
        self
    }
}

/// A rendered page (or fragment) with the console's headers.
pub fn html(rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => with_headers(body.into_response(), "text/html; charset=utf-8", "no-cache"),
        Err(e) => Problem::internal(format!("a console template failed: {e}")).into_response(),
    }
}

fn with_headers(mut res: Response, content_type: &str, cache: &'static str) -> Response {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// `GET /`: the inbox of whoever signs in.
async fn home(viewer: Result<Viewer, NotSignedIn>) -> Response {
    match viewer {
        Ok(_) => Redirect::to("/console/inbox").into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    shell: Shell,
    next: String,
    /// The company-account button (label, link), when a provider is configured.
    oidc: Option<(String, String)>,
    /// Why the last attempt did not sign in (message, code).
    error: Option<(String, String)>,
}

/// Where a sign-in may send the person back to: a path on this server only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct SignInQuery {
    next: Option<String>,
    #[allow(dead_code)]
    lang: Option<String>,
}

/// `GET /sign-in`: the sign-in form.
async fn sign_in(
    axum::extract::State(state): axum::extract::State<AppState>,
    parts: Parts,
) -> Response {
    let tr = Tr {
        lang: Lang::of(&parts),
    };
    let q: SignInQuery =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or(SignInQuery {
            next: None,
            lang: None,
        });
    sign_in_page(&state, tr, safe_next(q.next.as_deref()), None)
}

/// The sign-in page, returning to `next`; with `problem`, why the last attempt (through the
/// company account) did not sign in, answered with the problem's status.
pub(crate) fn sign_in_page(
    state: &AppState,
    tr: Tr,
    next: String,
    problem: Option<&Problem>,
) -> Response {
    let shell = Shell::new(tr, tr.t("登录", "Sign in"), "/sign-in", None)
        .with_query(&[("next", next.clone())]);
    let oidc = oidc::oidc_label(state, tr).map(|label| {
        let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
        (label, format!("/sign-in/oidc?{query}"))
    });
    let error = problem.map(|p| {
        let text = match tr.lang {
            Lang::Zh => &p.message_zh,
            Lang::En => &p.message_en,
        };
        (text.clone(), p.code.clone())
    });
    let mut res = html(
        SignInPage {
            shell,
            next,
            oidc,
            error,
        }
        .render(),
    );
    if let Some(p) = problem {
        *res.status_mut() = status_of(p);
    }
    res
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    shell: Shell,
    message_en: &'a str,
    message_zh: &'a str,
    code: &'a str,
}

/// A page that says why it cannot show what was asked (in the page's language).
pub(crate) fn problem_page(shell: Shell, p: &Problem) -> Response {
    let mut res = html(
        ProblemPage {
            shell,
            message_en: &p.message_en,
            message_zh: &p.message_zh,
            code: &p.code,
        }
        .render(),
    );
    *res.status_mut() = status_of(p);
    res
}

/// The status a console answer takes from a problem.
pub(crate) fn status_of(p: &Problem) -> StatusCode {
    StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_in_wan() {
        assert_eq!(wan(3_000_000), "300");
        assert_eq!(wan(1_234_567), "123.5");
        assert_eq!(wan(0), "0");
    }

    #[test]
    fn sign_in_returns_only_to_this_server() {
        assert_eq!(safe_next(Some("/leads?q=x")), "/leads?q=x");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
