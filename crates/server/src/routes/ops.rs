//! Operational endpoints: liveness, readiness, metrics, the OpenAPI document, and the fallbacks
//! that keep every error a problem document.

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use funnel_domain::RefusalCode;
use serde_json::json;
use std::time::Duration;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The leases this process takes part in and whether it holds them (`leases` of `/readyz`): on
/// JetStream `{"sagas": {"held": true, "term": 7, "holder": "…"}}`; on the
/// embedded store `null` (this process runs everything).
pub fn leases_json(state: &AppState) -> serde_json::Value {
    if state.leases().is_empty() {
        return serde_json::Value::Null;
    }
    let mut out = serde_json::Map::new();
    for l in state.leases() {
        let (held, other) = match &*l.state.borrow() {
            funnel_store::lease::Holding::Yes { term, until }
                if tokio::time::Instant::now() < *until =>
            {
                (Some(*term), None)
            }
            funnel_store::lease::Holding::Yes { .. } => (None, None),
            funnel_store::lease::Holding::No { holder } => (None, holder.clone()),
        };
        out.insert(
            l.name.clone(),
            json!({
                "held": held.is_some(),
                "term": held,
                "holder": if held.is_some() { Some(l.holder.clone()) } else { other },
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// `GET /readyz`: the store answers and the read models are within `ready.max_lag` of its head.
/// The answer also says which leases this process holds (see [`leases_json`]).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = Duration::from_millis(state.options().ready.store_timeout_ms);
    let head = match tokio::time::timeout(timeout, state.store().head()).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            return Problem::unavailable(
                format!("the event store does not answer: {e}"),
                "事件存储无法访问",
            )
            .into_response();
        }
        Err(_) => {
            return Problem::unavailable(
                "the event store did not answer in time",
                "事件存储响应超时",
            )
            .into_response();
        }
    };
    let checkpoint = state.runner().read().await.live_checkpoint();
    let lag = head.0.saturating_sub(checkpoint.0);
    let max = state.options().ready.max_lag;
    if lag > max {
        return Problem::unavailable(
            format!("the read models are {lag} positions behind the log (at most {max} allowed)"),
            format!("读模型落后日志 {lag} 个位置（最多允许 {max}）"),
        )
        .into_response();
    }
    Json(json!({
        "status": "ready",
        "head": head,
        "checkpoint": checkpoint,
        "lag": lag,
        "leases": leases_json(&state),
    }))
    .into_response()
}

/// `GET /metrics` on the API's address: Prometheus text format, for the roles that read every
/// office (the sales and key-account departments, executives, auditors), since the metrics count
/// across offices. Without a token it is `401`; a scraper without one uses `http.metrics_listen`.
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    if !caller.reads_all() {
        return Err(Problem::forbidden(
            RefusalCode::RoleNotPermitted,
            format!(
                "the metrics count across offices; a {} may not read them",
                caller.role
            ),
            format!("指标涵盖所有办事处，{}无权查看", caller.role.label_zh()),
        ));
    }
    Ok(render_metrics(state).await)
}

/// The router of `http.metrics_listen`: `/metrics` without a token, nothing else.
pub fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| render_metrics(state)),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn render_metrics(state: AppState) -> Response {
    if let Ok(head) = state.store().head().await {
        let status = state.runner().read().await.status();
        for s in status {
            state
                .metrics()
                .projection_lag(s.name, head.0.saturating_sub(s.checkpoint.0));
        }
        let subs = state.webhooks().list().await.unwrap_or_default();
        let sagas_here = state.options().workflows.enabled
            && state
                .lease(crate::run::SAGAS_LEASE)
                .is_none_or(|l| l.held().is_some());
        state.metrics().scrape(head.0, sagas_here, &subs);
    }
    for l in state.leases() {
        state.metrics().lease(&l.name, l.held());
    }
    let mut res = state.metrics().render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

pub async fn not_found() -> Problem {
    Problem::not_found(
        "request.no_such_endpoint",
        "there is no such endpoint; /openapi.json lists them",
        "没有该接口，请查看 /openapi.json",
    )
}

pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "request.method_not_allowed",
        "this endpoint does not take that method; /openapi.json lists them",
        "该接口不支持此方法，请查看 /openapi.json",
    )
}

/// Counts every response by status class.
pub async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    state.metrics().response(res.status().as_u16());
    res
}

/// A handler that panicked answers 500 as a problem (and the panic is logged).
pub fn panic_problem(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    Problem::internal(format!("handler panicked: {what}")).into_response()
}
