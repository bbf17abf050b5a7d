//! Events of the workflows (sagas): each instance's own stream records what it started, the tasks it
//! opened and closed, its durable timers, the reminders and escalations it raised, the commands it
//! sent and their outcome, reactions it had to park, and notes of the facts it observed.

use crate::model::Period;
use chrono::{DateTime, Utc};
use funnel_types::{
    CommandId, EventId, LeadId, OfficeId, Position, Role, StaffId, TaskId, TimerId, WorkflowId,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The nine workflows of the manual, and the second person's approval of an erasure.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    OwnershipConflict,
    Reassignment,
    ValidInfoDeclaration,
    ProspectDeclaration,
    ContractReview,
    VisitPlans,
    OfficeSummaries,
    InsiderEscalation,
    StagnationReview,
    // A person's data to erase: the second person's approval (no doc comment, so that the
    // schema keeps one plain enum of names).
    Erasure,
}

impl WorkflowKind {
    pub const ALL: [WorkflowKind; 10] = [
        WorkflowKind::OwnershipConflict,
        WorkflowKind::Reassignment,
        WorkflowKind::ValidInfoDeclaration,
        WorkflowKind::ProspectDeclaration,
        WorkflowKind::ContractReview,
        WorkflowKind::VisitPlans,
        WorkflowKind::OfficeSummaries,
        WorkflowKind::InsiderEscalation,
        WorkflowKind::StagnationReview,
        WorkflowKind::Erasure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::OwnershipConflict => "ownership_conflict",
            WorkflowKind::Reassignment => "reassignment",
            WorkflowKind::ValidInfoDeclaration => "valid_info_declaration",
            WorkflowKind::ProspectDeclaration => "prospect_declaration",
            WorkflowKind::ContractReview => "contract_review",
            WorkflowKind::VisitPlans => "visit_plans",
            WorkflowKind::OfficeSummaries => "office_summaries",
            WorkflowKind::InsiderEscalation => "insider_escalation",
            WorkflowKind::StagnationReview => "stagnation_review",
            WorkflowKind::Erasure => "erasure",
        }
    }
}

/// Who must act on a task: a role (in an office, for office roles), or one member of staff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignee {
    pub role: Role,
    pub office: Option<OfficeId>,
    pub staff: Option<StaffId>,
}

/// What a durable timer is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimerPurpose {
    /// Remind the assignee of an open task.
    Reminder { task_id: TaskId },
    /// Hand an open task to the next level.
    Escalation { task_id: TaskId },
    /// A reassignment request lapses.
    ReassignmentExpiry,
    /// Remind an engineer of a plan due soon.
    PlanReminder {
        period: Period,
        due_at: DateTime<Utc>,
    },
    /// A plan's deadline.
    PlanDeadline { period: Period },
    /// A period ended: its office summary is due.
    SummaryDue { period: Period },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStarted {
    pub workflow_id: WorkflowId,
    pub kind: WorkflowKind,
    pub lead_id: Option<LeadId>,
    pub office: Option<OfficeId>,
    /// What the instance is about, for people (e.g. the conflict or contract id).
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskOpened {
    pub workflow_id: WorkflowId,
    pub task_id: TaskId,
    /// Stable task name, e.g. `decide_conflict`.
    pub name: String,
    pub assignee: Assignee,
    pub lead_id: Option<LeadId>,
    pub title_en: String,
    pub title_zh: String,
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskClosed {
    pub workflow_id: WorkflowId,
    pub task_id: TaskId,
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerScheduled {
    pub workflow_id: WorkflowId,
    pub timer_id: TimerId,
    pub purpose: TimerPurpose,
    pub due_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerCancelled {
    pub workflow_id: WorkflowId,
    pub timer_id: TimerId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerFired {
    pub workflow_id: WorkflowId,
    pub timer_id: TimerId,
    pub purpose: TimerPurpose,
    pub due_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// Fired well after it was due (the scheduler was down or behind).
    pub late: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderRaised {
    pub workflow_id: WorkflowId,
    pub to: Assignee,
    pub task_id: Option<TaskId>,
    pub message_en: String,
    pub message_zh: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskEscalated {
    pub workflow_id: WorkflowId,
    pub task_id: TaskId,
    pub to: Assignee,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowCommandSent {
    pub workflow_id: WorkflowId,
    pub command_id: CommandId,
    /// The command's name, e.g. `expire_reassignment`.
    pub command: String,
    /// `accepted`, `duplicate`, or the refusal code.
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowNoted {
    pub workflow_id: WorkflowId,
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionParked {
    pub workflow_id: WorkflowId,
    /// The event (or timer) whose reaction failed.
    pub cause: EventId,
    pub position: Option<Position>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionRetried {
    pub workflow_id: WorkflowId,
    pub cause: EventId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowCompleted {
    pub workflow_id: WorkflowId,
    pub outcome: String,
}
