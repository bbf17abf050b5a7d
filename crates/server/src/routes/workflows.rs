//! Workflow instances (the sagas): list and show them from the instances read model, and retry an
//! instance's parked reactions through the runtime of this process. Office roles see the instances
//! of their office; headquarters roles and auditors every instance. Retrying is for the sales
//! department and executives.

use crate::AppState;
use crate::auth::Caller;
use crate::extract::{Q, RawBody, path_id};
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use funnel_app::Paging;
use funnel_app::query::work::{
    self, InstanceStatus, InstanceView, RetryAnswer, WorkflowDetail, WorkflowPage, WorkflowsQuery,
};
use funnel_domain::RefusalCode;
use funnel_domain::events::WorkflowKind;
use funnel_types::{Role, WorkflowId};
use funnel_workflows::Control;
use serde::Deserialize;

/// `GET /workflows` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub at_least: Option<u64>,
    /// An office by id, code (any case) or exact name.
    pub office: Option<String>,
    /// One kind, e.g. `reassignment`.
    pub kind: Option<WorkflowKind>,
    /// `active`, `parked` (reactions waiting for a retry) or `completed`.
    pub status: Option<InstanceStatus>,
    /// Instances after this id (the previous page's `next`).
    pub after: Option<WorkflowId>,
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowParams {
    pub at_least: Option<u64>,
}

/// `GET /workflows?office=&kind=&status=&after=&limit=`: instances in id order, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ListParams>,
) -> Result<Json<WorkflowPage>, Problem> {
    let q = WorkflowsQuery {
        paging: Paging::bounded(params.after, params.limit)?,
        office: params.office,
        kind: params.kind,
        status: params.status,
        at_least: params.at_least,
    };
    Ok(Json(work::workflows(state.reads(), &caller, q).await?))
}

fn not_found(id: WorkflowId) -> Problem {
    Problem::not_found(
        "workflow.not_found",
        format!("no workflow instance {id}"),
        format!("没有流程实例 {id}"),
    )
}

/// The instance, if the caller may see it.
async fn visible_instance(
    state: &AppState,
    caller: &Caller,
    id: WorkflowId,
) -> Result<InstanceView, Problem> {
    Ok(work::visible_instance(state.reads(), caller, id).await?)
}

/// `GET /workflows/{id}`: one instance and its own events.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Q(params): Q<ShowParams>,
) -> Result<Json<WorkflowDetail>, Problem> {
    let id: WorkflowId = path_id("workflow id", &id)?;
    Ok(Json(
        work::workflow(state.reads(), &caller, id, params.at_least).await?,
    ))
}

/// How long a retry waits for the saga runtime to take and answer it.
const RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /workflows/{id}/retry`: run the instance's parked reactions again, in this process's saga
/// runtime. Answers how many were retried and the instance as it is then.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<RetryAnswer>, Problem> {
    let id: WorkflowId = path_id("workflow id", &id)?;
    body.json::<crate::dto::Empty>()?;
    if !matches!(caller.role, Role::SalesDepartment | Role::Executive) {
        return Err(Problem::forbidden(
            RefusalCode::RoleNotPermitted,
            format!(
                "a {} may not retry workflows; this needs: sales_department or executive",
                caller.role
            ),
            format!(
                "{}不能重试流程，需要销售部或公司领导",
                caller.role.label_zh()
            ),
        ));
    }
    visible_instance(&state, &caller, id).await?;
    let Some(control) = state.workflow_control() else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "workflows.not_running",
            "this server does not run the sagas (`[workflows] enabled = false`); retry where they run, or with `funnel workflows retry`",
            "本服务未运行流程（[workflows] enabled = false），请在运行流程的服务上重试，或使用 `funnel workflows retry`",
        ));
    };
    if let Some(lease) = state.lease(crate::run::SAGAS_LEASE)
        && lease.held().is_none()
    {
        let holder = match &*lease.state.borrow() {
            funnel_store::lease::Holding::No { holder: Some(h) } => h.clone(),
            _ => "another process".to_string(),
        };
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "workflows.elsewhere",
            format!("the sagas of this log run in {holder}, which holds their lease; retry there"),
            format!("本日志的流程由持有租约的 {holder} 运行，请在该服务上重试"),
        ));
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let busy = || {
        Problem::unavailable(
            "the saga runtime is restarting; try again in a few seconds",
            "流程运行时正在重启，请稍后重试",
        )
    };
    // Bounded: the runtime may stop between rounds (its lease lost to another process) and leave
    // the request unread until this process holds the lease again.
    let asked = tokio::time::timeout(RETRY_WAIT, async {
        control
            .send(Control::Retry { id, reply })
            .await
            .map_err(|_| ())?;
        answer.await.map_err(|_| ())
    })
    .await;
    let retried = match asked {
        Ok(Ok(r)) => r,
        _ => return Err(busy()),
    };
    let retried = retried.map_err(|e| match e {
        funnel_workflows::RuntimeError::UnknownInstance(id) => not_found(id),
        other => Problem::unavailable(
            format!("the retry did not complete: {other}"),
            "重试未完成，请稍后再试",
        ),
    })?;
    let head = state.store().head().await?;
    let wait = std::time::Duration::from_millis(state.options().http.read_wait_ms);
    let _ = funnel_projections::wait_until_shared(state.runner(), head, wait).await;
    let instance = visible_instance(&state, &caller, id).await?;
    Ok(Json(RetryAnswer { retried, instance }))
}
