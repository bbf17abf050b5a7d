//! Workflow instances (the sagas): list and show them from the instances read model, and retry an
//! instance's parked reactions through the runtime of this process. Office roles see the instances
//! of their office; headquarters roles and auditors every instance. Retrying is for the sales
//! department and executives.

use crate::AppState;
use crate::auth::Caller;
use crate::extract::{Q, RawBody, path_id};
use crate::problem::Problem;
use crate::routes::read::{page_limit, resolve_optional_office, wait_for, with_model};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use funnel_domain::RefusalCode;
use funnel_domain::events::WorkflowKind;
use funnel_store::read_whole_stream;
use funnel_types::{Role, StreamId, WorkflowId};
use funnel_workflows::{Control, InstanceSummary, Instances};
use serde::Deserialize;
use serde_json::{Value, json};

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
    pub status: Option<Status>,
    /// Instances after this id (the previous page's `next`).
    pub after: Option<WorkflowId>,
    pub limit: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Parked,
    Completed,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowParams {
    pub at_least: Option<u64>,
}

fn row(s: &InstanceSummary, updated_at: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["status"] = json!(s.status());
    v["updated_at"] = json!(updated_at);
    v
}

fn visible(caller: &Caller, s: &InstanceSummary) -> bool {
    caller.reads_all() || (s.office.is_some() && s.office == caller.office)
}

/// `GET /workflows?office=&kind=&status=&after=&limit=`: instances in id order, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ListParams>,
) -> Result<Json<Value>, Problem> {
    let limit = page_limit(params.limit)?;
    let asked = resolve_optional_office(&state, params.office.as_deref()).await?;
    let scope = caller.scope(asked)?;
    wait_for(&state, params.at_least).await?;
    let (out, next) = with_model(&state, |model: &Instances, _| {
        let mut out = Vec::new();
        let mut next = None;
        for (id, r) in model.rows() {
            if params.after.is_some_and(|a| id <= a) {
                continue;
            }
            let s = InstanceSummary::of(id, &r.state, funnel_types::Version(r.version));
            let keep = visible(&caller, &s)
                && scope.is_none_or(|o| s.office == Some(o))
                && params.kind.is_none_or(|k| s.kind == Some(k))
                && params.status.is_none_or(|st| match st {
                    Status::Active => s.active && s.parked.is_empty(),
                    Status::Parked => !s.parked.is_empty(),
                    Status::Completed => !s.active && s.parked.is_empty(),
                });
            if !keep {
                continue;
            }
            if out.len() == limit {
                next = out
                    .last()
                    .and_then(|v: &Value| v["id"].as_str().map(str::to_string));
                break;
            }
            out.push(row(&s, r.updated_at));
        }
        (out, next)
    })
    .await?;
    Ok(Json(json!({ "instances": out, "next": next })))
}

fn not_found(id: WorkflowId) -> Problem {
    Problem::not_found(
        "workflow.not_found",
        format!("no workflow instance {id}"),
        format!("没有流程实例 {id}"),
    )
}

/// The instance, if the caller may see it (another office's is "not found" for office roles only
/// after saying whose it is, as other reads do).
async fn visible_instance(
    state: &AppState,
    caller: &Caller,
    id: WorkflowId,
) -> Result<(InstanceSummary, Option<chrono::DateTime<chrono::Utc>>), Problem> {
    let (s, updated_at) = with_model(state, |model: &Instances, _| {
        model.by_id.get(&id).map(|r| {
            (
                InstanceSummary::of(id, &r.state, funnel_types::Version(r.version)),
                r.updated_at,
            )
        })
    })
    .await?
    .ok_or_else(|| not_found(id))?;
    if !visible(caller, &s) {
        return Err(match s.office {
            Some(o) => caller.check_read(o).err().unwrap_or_else(|| not_found(id)),
            None => Problem::forbidden(
                RefusalCode::OtherOffice,
                "this workflow belongs to headquarters; office roles read their own office's",
                "该流程属于总部，办事处人员只能查看本办事处的流程",
            ),
        });
    }
    Ok((s, updated_at))
}

/// `GET /workflows/{id}`: one instance and its own events.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Q(params): Q<ShowParams>,
) -> Result<Json<Value>, Problem> {
    let id: WorkflowId = path_id("workflow id", &id)?;
    wait_for(&state, params.at_least).await?;
    let (s, updated_at) = visible_instance(&state, &caller, id).await?;
    let stream = StreamId::new("workflow", id).map_err(Problem::internal)?;
    let records = read_whole_stream(state.store().as_ref(), &stream).await?;
    let mut events = Vec::with_capacity(records.len());
    for rec in &records {
        let env = funnel_codec::decode_recorded(rec).map_err(Problem::internal)?;
        events.push(json!({
            "version": env.meta.version,
            "position": env.meta.position,
            "type": env.meta.event_type,
            "occurred_at": env.meta.occurred_at,
            "actor": env.meta.actor,
            "data": funnel_codec::payload_value(&env.payload),
        }));
    }
    Ok(Json(
        json!({ "instance": row(&s, updated_at), "events": events }),
    ))
}

/// `POST /workflows/{id}/retry`: run the instance's parked reactions again, in this process's saga
/// runtime. Answers how many were retried and the instance as it is then.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, Problem> {
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
    let (reply, answer) = tokio::sync::oneshot::channel();
    let busy = || {
        Problem::unavailable(
            "the saga runtime is restarting; try again in a few seconds",
            "流程运行时正在重启，请稍后重试",
        )
    };
    control
        .send(Control::Retry { id, reply })
        .await
        .map_err(|_| busy())?;
    let retried = answer.await.map_err(|_| busy())?.map_err(|e| match e {
        funnel_workflows::RuntimeError::UnknownInstance(id) => not_found(id),
        other => Problem::unavailable(
            format!("the retry did not complete: {other}"),
            "重试未完成，请稍后再试",
        ),
    })?;
    let head = state.store().head().await?;
    let wait = std::time::Duration::from_millis(state.options().http.read_wait_ms);
    let _ = funnel_projections::wait_until_shared(state.runner(), head, wait).await;
    let (s, updated_at) = visible_instance(&state, &caller, id).await?;
    Ok(Json(
        json!({ "retried": retried, "instance": row(&s, updated_at) }),
    ))
}
