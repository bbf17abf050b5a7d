//! Webhook subscriptions: make, list, pause, resume, replay, delete, and read the delivery log.
//!
//! Who may: office managers for their own office (a subscription they make covers only it),
//! headquarters departments and executives for any offices; auditors read subscriptions and
//! delivery logs but change nothing; engineers and assistants neither. A subscription's secret is
//! answered once, when it is made.
//!
//! Targets must be public addresses unless `notify.webhook_allowed_hosts` lists them (refused with
//! `400 webhook.forbidden_target`). Office managers see whether a delivery succeeded and the HTTP
//! status the target answered, never why the network failed or how long it took (that would make
//! the delivery log a network probe); headquarters and auditors see the details.
//!
//! The maker of a subscription is its owner; whoever resumes it becomes the owner. When the owner
//! leaves or changes role or office, delivery pauses (see `funnel_notify::webhooks::dispatch`).

use crate::AppState;
use crate::auth::Caller;
use crate::extract::{Q, RawBody, path_id};
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funnel_app::Paging;
use funnel_app::query::webhooks::{self as query, DeliveryPage, SubscriptionPage};
use funnel_domain::RefusalCode;
use funnel_notify::webhooks::{NewRobot, NewSubscription, Subscription, TargetKind, WebhookError};
use funnel_notify::{Kinds, Selector};
use funnel_types::{OfficeId, Position};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /webhooks`: a new subscription.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST events (http or https); for a chat robot, the URL its settings show.
    pub url: String,
    /// What receives the events: `webhook` (signed CloudEvents, the default), or a chat robot
    /// that gets each event as a short message in Chinese: `dingtalk`, `wecom` or `feishu`.
    #[serde(default)]
    pub target: TargetKind,
    /// The signing secret of a DingTalk (`SEC…`) or Feishu/Lark robot that signs; sealed at rest
    /// and never shown again. WeCom robots have none.
    pub signing_secret: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Offices whose events are sent, by id, code or name. Empty: every office the caller reads
    /// (an office manager's own office; for headquarters every office and events of none).
    #[serde(default)]
    pub offices: Vec<String>,
    /// Event kinds: exact types (`lead.stage_changed`) or prefixes ending in `*`. Empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Deliver the events after this log position (0: the whole history). Default: only events
    /// written from now on.
    pub from: Option<u64>,
}

/// `POST /webhooks/{id}/replay`: deliver again after a position.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayWebhook {
    /// Deliver the events after this log position (0: from the beginning).
    pub from: u64,
}

/// The answer to `POST /webhooks`: the subscription and its signing secret, shown only here.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedWebhook {
    pub subscription: Subscription,
    /// The Standard Webhooks secret (`whsec_…`) to verify `webhook-signature` with (none for a
    /// chat robot: the vendor checks Funnel's signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Query of `GET /webhooks/{id}/deliveries`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// Only attempts older than this `seq` (the previous page's `next_before`).
    pub before: Option<u64>,
    pub limit: Option<usize>,
}

/// What the caller may do with subscriptions: `None` for any offices, `Some(office)` for one.
fn scope(caller: &Caller, change: bool) -> Result<Option<OfficeId>, Problem> {
    Ok(query::scope(caller, change)?)
}

/// The subscription as the caller may see it.
fn shown(caller: &Caller, sub: Subscription) -> Subscription {
    query::shown(caller, sub)
}

fn problem(e: WebhookError) -> Problem {
    match e {
        WebhookError::NotFound(id) => Problem::not_found(
            "webhook.not_found",
            format!("no webhook subscription {id}"),
            format!("没有 Webhook 订阅 {id}"),
        ),
        WebhookError::InvalidRobot(bad) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.invalid_robot",
            bad.en,
            bad.zh,
        ),
        e @ WebhookError::InvalidUrl { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.invalid_url",
            e.to_string(),
            "Webhook 地址无效（须为 http 或 https 的绝对地址）",
        ),
        WebhookError::ForbiddenTarget { url, refused } => Problem::new(
            StatusCode::BAD_REQUEST,
            "webhook.forbidden_target",
            format!("webhook URL `{url}` is refused: {refused}"),
            format!(
                "Webhook 地址 `{url}` 被拒绝：`{}` 是内部地址（{}）；如部署确需使用，请在 \
                 notify.webhook_allowed_hosts 中列出",
                refused.host, refused.class
            ),
        ),
        e => Problem::internal(e),
    }
}

/// The subscription `id`, if the caller may see it (others' subscriptions are not found).
async fn find(
    state: &AppState,
    scope: Option<OfficeId>,
    id: &str,
) -> Result<Subscription, Problem> {
    let id: Uuid = path_id("webhook id", id)?;
    Ok(query::find(state.webhooks(), scope, id).await?)
}

/// `POST /webhooks`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Response, Problem> {
    let scope = scope(&caller, true)?;
    let req: CreateWebhook = body.json()?;
    let kinds = Kinds::parse(&req.kinds).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.unknown_kind",
            e.to_string(),
            format!("没有与 `{}` 匹配的事件类型", e.0),
        )
    })?;
    let mut offices = Vec::new();
    for text in &req.offices {
        let office = super::read::resolve_office(&state, text).await?;
        caller.check_read(office)?;
        if scope.is_some_and(|o| o != office) {
            return Err(Problem::forbidden(
                RefusalCode::OtherOffice,
                format!("an office manager subscribes to their own office only, not {text}"),
                format!("办事处经理只能订阅本办事处，不能订阅 {text}"),
            ));
        }
        if !offices.contains(&office) {
            offices.push(office);
        }
    }
    if let (Some(own), true) = (scope, offices.is_empty()) {
        offices.push(own);
    }
    let head = state.store().head().await?;
    let after = match req.from {
        Some(p) => {
            super::read::not_beyond_head(&state, Position(p)).await?;
            Position(p)
        }
        None => head,
    };
    if req.signing_secret.is_some() && !req.target.is_robot() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook.invalid_robot",
            "signing_secret is for DingTalk and Feishu robots; a webhook's secret is made by Funnel",
            "signing_secret 仅用于钉钉和飞书机器人；Webhook 的密钥由 Funnel 生成",
        ));
    }
    let new = NewSubscription {
        url: req.url,
        description: req.description,
        selector: Selector { offices, kinds },
        after,
        created_by: format!("{} ({})", caller.name, caller.staff_id),
        owner: Some(caller.staff_id),
        // The owner's authority as checked: a change after the access model's position (one
        // it had not applied yet) still pauses the subscription.
        owner_since: caller.resolved_at.min(head),
    };
    let hooks = state.webhooks();
    let (subscription, secret) = if req.target.is_robot() {
        let robot = NewRobot {
            kind: req.target,
            secret: req.signing_secret,
        };
        (hooks.create_robot(new, robot).await.map_err(problem)?, None)
    } else {
        let (s, secret) = hooks.create(new).await.map_err(problem)?;
        (s, Some(secret))
    };
    tracing::info!(subscription = %subscription.id, target = %subscription.target, url = %subscription.url, by = %caller.staff_id, "webhook subscription made");
    let body = CreatedWebhook {
        subscription: shown(&caller, subscription),
        secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /webhooks` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Subscriptions after this id (the previous page's `next`).
    pub after: Option<Uuid>,
    /// Subscriptions per page, 1 to 1000 (100 by default).
    pub limit: Option<usize>,
}

/// `GET /webhooks?after=&limit=`: the subscriptions the caller may see, by id.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ListParams>,
) -> Result<Json<SubscriptionPage>, Problem> {
    // The role is checked before the page size, as it always was.
    scope(&caller, false)?;
    let paging = Paging::bounded(params.after, params.limit)?;
    Ok(Json(query::list(state.webhooks(), &caller, paging).await?))
}

/// `GET /webhooks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, Problem> {
    scope(&caller, false)?;
    let id: Uuid = path_id("webhook id", &id)?;
    Ok(Json(query::get(state.webhooks(), &caller, id).await?))
}

/// `DELETE /webhooks/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let scope = scope(&caller, true)?;
    let sub = find(&state, scope, &id).await?;
    state.webhooks().delete(sub.id).await.map_err(problem)?;
    tracing::info!(subscription = %sub.id, by = %caller.staff_id, "webhook subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /webhooks/{id}/pause`, `/resume` and `/replay` (body `{"from": POSITION}`).
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: RawBody,
) -> Result<Json<Subscription>, Problem> {
    let scope = scope(&caller, true)?;
    let sub = find(&state, scope, &id).await?;
    let hooks = state.webhooks();
    let changed = match action.as_str() {
        "pause" => hooks.pause(sub.id).await,
        // The resumer's authority keeps it going from now on.
        "resume" => {
            let head = state.store().head().await?;
            hooks
                .resume(
                    sub.id,
                    Some((caller.staff_id, caller.resolved_at.min(head))),
                )
                .await
        }
        "replay" => {
            let req: ReplayWebhook = body.json()?;
            super::read::not_beyond_head(&state, Position(req.from)).await?;
            hooks.replay(sub.id, Position(req.from)).await
        }
        other => {
            return Err(Problem::not_found(
                "request.unknown_action",
                format!("no webhook action `{other}`; there are pause, resume and replay"),
                format!("没有 Webhook 操作 `{other}`；可用 pause、resume、replay"),
            ));
        }
    };
    let changed = changed.map_err(problem)?;
    tracing::info!(subscription = %sub.id, %action, by = %caller.staff_id, "webhook subscription changed");
    Ok(Json(shown(&caller, changed)))
}

/// `GET /webhooks/{id}/deliveries?before=&limit=`: attempts, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Q(params): Q<DeliveryParams>,
) -> Result<Json<DeliveryPage>, Problem> {
    scope(&caller, false)?;
    let id: Uuid = path_id("webhook id", &id)?;
    Ok(Json(
        query::deliveries(state.webhooks(), &caller, id, params.before, params.limit).await?,
    ))
}
