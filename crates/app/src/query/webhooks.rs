//! Webhook subscriptions and their delivery logs, as the caller may see them: office managers
//! their own office's, headquarters departments, executives and auditors every one; engineers and
//! assistants none. Office managers see whether a delivery succeeded and the status the target
//! answered, never why the network failed or how long it took (that would make the delivery log a
//! network probe).

use crate::auth::Caller;
use crate::error::AppError;
use crate::reads::{Paging, page};
use funnel_domain::RefusalCode;
use funnel_notify::webhooks::{Delivery, Subscription, WebhookError, Webhooks};
use funnel_types::{OfficeId, Role};
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

/// Which subscriptions the caller may read (`change`: or change): `None` for any offices,
/// `Some(office)` for one.
pub fn scope(caller: &Caller, change: bool) -> Result<Option<OfficeId>, AppError> {
    match caller.role {
        Role::SalesDepartment | Role::KeyAccountDepartment | Role::Executive => Ok(None),
        Role::Auditor if !change => Ok(None),
        Role::OfficeManager => caller.office.map(Some).ok_or_else(|| {
            AppError::forbidden(
                RefusalCode::RoleNotPermitted,
                "an office manager with no office cannot manage webhooks",
                "未分配办事处的经理不能管理 Webhook",
            )
        }),
        Role::Auditor => Err(AppError::forbidden(
            RefusalCode::ReadOnly,
            "auditors read webhook subscriptions but change nothing",
            "审计员只能查看 Webhook 订阅，不能修改",
        )),
        Role::SalesEngineer | Role::OfficeAssistant => Err(AppError::forbidden(
            RefusalCode::RoleNotPermitted,
            format!(
                "a {} cannot manage webhooks; office managers and headquarters can",
                caller.role
            ),
            format!(
                "{}不能管理 Webhook，办事处经理和总部可以",
                caller.role.label_zh()
            ),
        )),
    }
}

/// Whether the caller sees network details of deliveries (headquarters and auditors do).
pub fn sees_network_detail(caller: &Caller) -> bool {
    !matches!(
        caller.role,
        Role::OfficeManager | Role::OfficeAssistant | Role::SalesEngineer
    )
}

/// The subscription as the caller may see it.
pub fn shown(caller: &Caller, sub: Subscription) -> Subscription {
    if sees_network_detail(caller) {
        sub
    } else {
        sub.without_network_detail()
    }
}

/// Whether a subscription is within a scope.
pub fn visible(scope: Option<OfficeId>, sub: &Subscription) -> bool {
    scope.is_none_or(|o| sub.offices == [o])
}

/// A failure of the subscription store on reading.
pub fn read_error(e: WebhookError) -> AppError {
    match e {
        WebhookError::NotFound(id) => AppError::not_found(
            "webhook.not_found",
            format!("no webhook subscription {id}"),
            format!("没有 Webhook 订阅 {id}"),
        ),
        e => AppError::internal(e),
    }
}

/// The subscription `id`, if it is within `scope` (others' subscriptions are not found).
pub async fn find(
    hooks: &Webhooks,
    scope: Option<OfficeId>,
    id: Uuid,
) -> Result<Subscription, AppError> {
    let sub = hooks.get(id).await.map_err(read_error)?;
    if !visible(scope, &sub) {
        return Err(read_error(WebhookError::NotFound(id)));
    }
    Ok(sub)
}

/// A page of subscriptions, by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SubscriptionPage {
    pub subscriptions: Vec<Subscription>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<Uuid>,
}

/// The subscriptions the caller may see, by id.
pub async fn list(
    hooks: &Webhooks,
    caller: &Caller,
    paging: Paging<Uuid>,
) -> Result<SubscriptionPage, AppError> {
    let scope = scope(caller, false)?;
    let mut subs: Vec<Subscription> = hooks
        .list()
        .await
        .map_err(read_error)?
        .into_iter()
        .filter(|s| visible(scope, s))
        .map(|s| shown(caller, s))
        .collect();
    subs.sort_by_key(|s| s.id);
    let (subscriptions, next) = page(subs, |s| s.id, paging.after.as_ref(), paging.limit);
    Ok(SubscriptionPage {
        subscriptions,
        next,
    })
}

/// One subscription the caller may see.
pub async fn get(hooks: &Webhooks, caller: &Caller, id: Uuid) -> Result<Subscription, AppError> {
    let scope = scope(caller, false)?;
    find(hooks, scope, id).await.map(|s| shown(caller, s))
}

/// A page of delivery attempts, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// `before` of the next (older) page; `null` on the last.
    pub next_before: Option<u64>,
}

/// The delivery log of a subscription the caller may see: attempts older than `before`, at most
/// `limit` (brought within 1 to 1000; 100 when absent), newest first.
pub async fn deliveries(
    hooks: &Webhooks,
    caller: &Caller,
    id: Uuid,
    before: Option<u64>,
    limit: Option<usize>,
) -> Result<DeliveryPage, AppError> {
    let scope = scope(caller, false)?;
    let sub = find(hooks, scope, id).await?;
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let page = hooks
        .deliveries(sub.id, before, limit)
        .await
        .map_err(read_error)?;
    let next_before = (page.len() == limit)
        .then(|| page.last().map(|d| d.seq))
        .flatten();
    let deliveries = if sees_network_detail(caller) {
        page
    } else {
        page.into_iter()
            .map(|d| d.without_network_detail())
            .collect()
    };
    Ok(DeliveryPage {
        deliveries,
        next_before,
    })
}
