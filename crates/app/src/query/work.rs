//! The work the sagas hand out: open tasks per person, and the workflow instances themselves.

use super::task_detail::Sources;
pub use super::task_detail::TaskView;
use crate::auth::{Access, Caller};
use crate::error::AppError;
use crate::reads::{Paging, Reads, check_person, page};
use chrono::{DateTime, Utc};
use funnel_domain::RefusalCode;
use funnel_domain::events::WorkflowKind;
use funnel_types::{Actor, OfficeId, Position, StaffId, StreamId, Version, WorkflowId};
use funnel_workflows::{InstanceSummary, Instances, OpenTaskRow, Tasks};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whose tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TasksQuery {
    /// Id or exact name; the caller's own when absent.
    pub staff: Option<String>,
    pub at_least: Option<u64>,
    /// After an opaque cursor (the previous page's `next`).
    pub paging: Paging<String>,
}

/// Open tasks a member of staff must act on, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskList {
    /// The log position the list reflects.
    pub position: Position,
    pub staff_id: StaffId,
    pub name: String,
    /// Each task with what it is about, its due time and the command that completes it.
    pub tasks: Vec<TaskView>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<String>,
    /// The names of the people and offices the tasks are assigned or escalated to.
    pub assignees: AssigneeNames,
}

/// The names of the people and offices tasks are assigned or escalated to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AssigneeNames {
    pub staff: BTreeMap<StaffId, String>,
    pub offices: BTreeMap<OfficeId, String>,
}

impl AssigneeNames {
    fn of<'a>(access: &Access, tasks: impl IntoIterator<Item = &'a OpenTaskRow>) -> Self {
        let mut names = Self::default();
        for t in tasks {
            for a in std::iter::once(&t.assignee).chain(t.escalated_to.as_ref()) {
                if let Some(s) = a.staff.and_then(|s| access.staff.get(&s).map(|e| (s, e))) {
                    names.staff.insert(s.0, s.1.name.clone());
                }
                if let Some(o) = a
                    .office
                    .and_then(|o| access.offices.get(&o).map(|e| (o, e)))
                {
                    names.offices.insert(o.0, o.1.name.clone());
                }
            }
        }
        names
    }
}

/// Every open task, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct OpenTasks {
    /// The log position the list reflects.
    pub position: Position,
    /// Each task with what it is about, its due time and the command that completes it.
    pub tasks: Vec<TaskView>,
    pub assignees: AssigneeNames,
}

/// Every open task, for those who read every office (headquarters, auditors, the local
/// operator); office roles ask for a person's with [`tasks`].
pub async fn all_tasks(
    reads: &Reads,
    caller: &Caller,
    at_least: Option<u64>,
) -> Result<OpenTasks, AppError> {
    if !caller.reads_all() {
        return Err(AppError::forbidden(
            RefusalCode::OtherOffice,
            format!(
                "a {} reads the tasks of a person, not every task",
                caller.role
            ),
            format!(
                "{}只能查看个人的待办，不能查看全部待办",
                caller.role.label_zh()
            ),
        ));
    }
    reads.wait_for(at_least).await?;
    let (rows, position) = {
        let r = reads.runner().read().await;
        let tasks = r.get::<Tasks>().ok_or_else(rebuilding)?;
        let rows: Vec<OpenTaskRow> = tasks.all().into_iter().cloned().collect();
        (rows, r.live_checkpoint())
    };
    let (assignees, tasks) = detailed(reads, rows).await?;
    Ok(OpenTasks {
        position,
        assignees,
        tasks,
    })
}

fn rebuilding() -> AppError {
    AppError::unavailable(
        "the tasks or access read model is being rebuilt",
        "读模型正在重建",
    )
}

/// How many lead streams a page of tasks reads at once.
const LEAD_READS_AT_ONCE: usize = 8;

/// Each task with its details, joined from the lead streams of the page (each read once) and the
/// instance and access read models; and the names of the assignees.
async fn detailed(
    reads: &Reads,
    rows: Vec<OpenTaskRow>,
) -> Result<(AssigneeNames, Vec<TaskView>), AppError> {
    use futures::stream::{StreamExt, TryStreamExt};
    // Each lead's stream once, a few at a time (a remote store answers each read in a round trip).
    let wanted: std::collections::BTreeSet<_> = rows.iter().filter_map(|t| t.lead_id).collect();
    let leads: BTreeMap<_, _> = futures::stream::iter(wanted)
        .map(|lead| async move {
            super::record::lead_events(reads, lead)
                .await
                .map(|events| (lead, events))
        })
        .buffered(LEAD_READS_AT_ONCE)
        .try_collect()
        .await?;
    let r = reads.runner().read().await;
    let (Some(access), Some(instances)) = (r.get::<Access>(), r.get::<Instances>()) else {
        return Err(rebuilding());
    };
    let names = AssigneeNames::of(access, rows.iter());
    let sources = Sources {
        access,
        instances,
        leads: &leads,
    };
    Ok((names, sources.details(rows)))
}

/// The open tasks of a member of staff, oldest first, with their details (a staff record's).
pub(crate) async fn tasks_of(
    reads: &Reads,
    whom: StaffId,
    entry: &crate::auth::StaffEntry,
) -> Result<Vec<TaskView>, AppError> {
    let info = funnel_domain::StaffInfo {
        id: whom,
        role: entry.role,
        office: entry.office,
        active: entry.active,
    };
    let rows: Vec<OpenTaskRow> = {
        let r = reads.runner().read().await;
        let tasks = r.get::<Tasks>().ok_or_else(rebuilding)?;
        tasks.for_staff(&info).into_iter().cloned().collect()
    };
    Ok(detailed(reads, rows).await?.1)
}

/// Open tasks a member of staff must act on (assigned to them, or to their role in their office),
/// oldest first, from the sagas.
pub async fn tasks(reads: &Reads, caller: &Caller, q: TasksQuery) -> Result<TaskList, AppError> {
    reads.wait_for(q.at_least).await?;
    let (whom, entry) = match &q.staff {
        Some(text) => reads.staff_named(text).await?,
        None => reads.staff_named(&caller.staff_id.to_string()).await?,
    };
    check_person(caller, whom, &entry)?;
    let info = funnel_domain::StaffInfo {
        id: whom,
        role: entry.role,
        office: entry.office,
        active: entry.active,
    };
    // Oldest first: the cursor is the opening time (microseconds, fixed width) and the task id,
    // which sort as the list does.
    let key = |t: &&OpenTaskRow| {
        format!(
            "{:020}~{}",
            t.opened_at.timestamp_micros().max(0),
            t.task_id
        )
    };
    let (rows, next, position) = {
        let r = reads.runner().read().await;
        let tasks = r.get::<Tasks>().ok_or_else(rebuilding)?;
        let (rows, next) = page(
            tasks.for_staff(&info),
            key,
            q.paging.after.as_ref(),
            q.paging.limit,
        );
        let rows: Vec<OpenTaskRow> = rows.into_iter().cloned().collect();
        (rows, next, r.live_checkpoint())
    };
    let (assignees, tasks) = detailed(reads, rows).await?;
    Ok(TaskList {
        position,
        staff_id: whom,
        name: entry.name.clone(),
        assignees,
        tasks,
        next,
    })
}

/// How an instance stands, as a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Running, nothing parked.
    Active,
    /// A reaction waits for a retry.
    Parked,
    /// Finished, nothing parked.
    Completed,
}

/// Which instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowsQuery {
    /// One office, by id, code (any case) or exact name; the caller's scope when absent.
    pub office: Option<String>,
    pub kind: Option<WorkflowKind>,
    pub status: Option<InstanceStatus>,
    pub at_least: Option<u64>,
    pub paging: Paging<WorkflowId>,
}

/// What a retry of an instance's parked reactions answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RetryAnswer {
    /// How many parked reactions were run again.
    pub retried: usize,
    /// The instance afterwards (still parked when a reaction failed again).
    pub instance: InstanceView,
}

/// A saga instance: kind, subject, open tasks, pending timers, parked reactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InstanceView {
    #[serde(flatten)]
    pub summary: InstanceSummary,
    /// `active`, `parked`, or the outcome of a completed instance.
    pub status: String,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl InstanceView {
    pub fn new(summary: InstanceSummary, updated_at: Option<DateTime<Utc>>) -> Self {
        Self {
            status: summary.status(),
            summary,
            updated_at,
        }
    }
}

/// A page of instances, in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkflowPage {
    pub instances: Vec<InstanceView>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<WorkflowId>,
}

fn visible(caller: &Caller, s: &InstanceSummary) -> bool {
    caller.may_read_of(s.office)
}

/// The instances the caller may see (office roles: their office's), in id order, a page at a time.
pub async fn workflows(
    reads: &Reads,
    caller: &Caller,
    q: WorkflowsQuery,
) -> Result<WorkflowPage, AppError> {
    let asked = reads.optional_office(q.office.as_deref()).await?;
    let scope = caller.scope(asked)?;
    reads.wait_for(q.at_least).await?;
    reads
        .with_model(|model: &Instances, _| {
            let mut out: Vec<InstanceView> = Vec::new();
            let mut next = None;
            for (id, r) in model.rows() {
                if q.paging.after.is_some_and(|a| id <= a) {
                    continue;
                }
                let s = InstanceSummary::of(id, &r.state, Version(r.version));
                let keep = visible(caller, &s)
                    && scope.is_none_or(|o| s.office == Some(o))
                    && q.kind.is_none_or(|k| s.kind == Some(k))
                    && q.status.is_none_or(|st| match st {
                        InstanceStatus::Active => s.active && s.parked.is_empty(),
                        InstanceStatus::Parked => !s.parked.is_empty(),
                        InstanceStatus::Completed => !s.active && s.parked.is_empty(),
                    });
                if !keep {
                    continue;
                }
                if out.len() == q.paging.limit {
                    next = out.last().map(|v| v.summary.id);
                    break;
                }
                out.push(InstanceView::new(s, r.updated_at));
            }
            WorkflowPage {
                instances: out,
                next,
            }
        })
        .await
}

fn not_found(id: WorkflowId) -> AppError {
    AppError::not_found(
        "workflow.not_found",
        format!("no workflow instance {id}"),
        format!("没有流程实例 {id}"),
    )
}

/// The instance, if the caller may see it (another office's is refused, saying whose it is).
pub async fn visible_instance(
    reads: &Reads,
    caller: &Caller,
    id: WorkflowId,
) -> Result<InstanceView, AppError> {
    let view = reads
        .with_model(|model: &Instances, _| {
            model.by_id.get(&id).map(|r| {
                InstanceView::new(
                    InstanceSummary::of(id, &r.state, Version(r.version)),
                    r.updated_at,
                )
            })
        })
        .await?
        .ok_or_else(|| not_found(id))?;
    if !visible(caller, &view.summary) {
        return Err(match view.summary.office {
            Some(o) => caller.check_read(o).err().unwrap_or_else(|| not_found(id)),
            None => AppError::forbidden(
                RefusalCode::OtherOffice,
                "this workflow belongs to headquarters; office roles read their own office's",
                "该流程属于总部，办事处人员只能查看本办事处的流程",
            ),
        });
    }
    Ok(view)
}

/// One event of an instance's own stream.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct WorkflowEvent {
    pub version: Version,
    pub position: Position,
    /// The event type, e.g. `workflow.started`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    /// The event's payload, as the event contract (`schemas/`) describes its type.
    pub data: serde_json::Value,
}

/// One instance and its own events.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct WorkflowDetail {
    pub instance: InstanceView,
    pub events: Vec<WorkflowEvent>,
}

/// One instance the caller may see, and its own events.
pub async fn workflow(
    reads: &Reads,
    caller: &Caller,
    id: WorkflowId,
    at_least: Option<u64>,
) -> Result<WorkflowDetail, AppError> {
    reads.wait_for(at_least).await?;
    let instance = visible_instance(reads, caller, id).await?;
    let stream = StreamId::new("workflow", id).map_err(AppError::internal)?;
    let records = funnel_store::read_whole_stream(reads.store().as_ref(), &stream).await?;
    let mut events = Vec::with_capacity(records.len());
    for rec in &records {
        let env = funnel_codec::decode_recorded(rec)?;
        events.push(WorkflowEvent {
            version: env.meta.version,
            position: env.meta.position,
            event_type: env.meta.event_type.clone(),
            occurred_at: env.meta.occurred_at,
            actor: env.meta.actor.clone(),
            data: funnel_codec::payload_value(&env.payload),
        });
    }
    Ok(WorkflowDetail { instance, events })
}
