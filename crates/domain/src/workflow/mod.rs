//! The manual's workflows as pure process managers (sagas). A workflow instance has its own stream;
//! [`route`] says which instances an event concerns, [`react`] turns one trigger (a business event,
//! or one of the instance's own timers firing) into the instance's next events and the commands it
//! sends. The runtime (crate `funnel-workflows`) does the I/O: it derives command ids from the
//! trigger, so redelivery sends nothing twice, and fires durable timers.

mod approvals;
mod calendar;
mod lead_rules;

use crate::events::*;
use crate::lead::LeadCommand;
use crate::plan::PlanCommand;
use chrono::{DateTime, Utc};
use funnel_types::{
    EventId, LeadId, OfficeId, ReassignmentId, Role, StaffId, TaskId, TimerId, WorkflowId,
};
use std::collections::BTreeMap;

pub use calendar::{next_monthly_deadline, next_weekly_deadline};

/// An open task as the instance knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenTask {
    pub name: String,
    pub assignee: Assignee,
}

/// A workflow instance's state: a fold over its own events. `Default` is "not started". It
/// serializes so that read models which keep it (the instance list of `funnel serve`) can be
/// checkpointed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkflowState {
    pub id: Option<WorkflowId>,
    pub kind: Option<WorkflowKind>,
    pub lead_id: Option<LeadId>,
    pub office: Option<OfficeId>,
    pub subject: String,
    pub active: bool,
    pub rounds: u32,
    pub tasks: BTreeMap<TaskId, OpenTask>,
    pub timers: BTreeMap<TimerId, (TimerPurpose, DateTime<Utc>)>,
    pub notes: BTreeMap<String, String>,
    pub parked: BTreeMap<EventId, String>,
    pub outcome: Option<String>,
    /// A contract review's engineer, who signs once every seat approved (its `owner` note).
    pub owner: Option<StaffId>,
    /// The engineer whose visit plans the instance follows (its `engineer` note).
    pub engineer: Option<StaffId>,
    /// That engineer's office since a move (its `office` note; empty when moved to none).
    pub engineer_office: Option<OfficeId>,
    /// The reassignment the instance follows (from its subject).
    pub reassignment_id: Option<ReassignmentId>,
    /// Ids recorded as text by the instance's own events that do not read back: which (`owner`,
    /// `engineer`, `office`, `subject`) → the text. A reaction that needs one fails with
    /// [`Unreadable`] and is parked rather than going on without it.
    pub unreadable: BTreeMap<String, String>,
}

impl WorkflowState {
    pub fn note(&self, key: &str) -> Option<&str> {
        self.notes.get(key).map(String::as_str)
    }

    /// The open task with this name, if any.
    pub fn task(&self, name: &str) -> Option<TaskId> {
        self.tasks
            .iter()
            .find(|(_, t)| t.name == name)
            .map(|(id, _)| *id)
    }
}

/// An id an instance recorded as text that does not read back, needed by a reaction. The runtime
/// parks the reaction with this as its reason: nothing the instance should do is silently skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Which value: `owner`, `engineer`, `office` or `subject`.
    pub what: String,
    pub text: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the instance's {} `{}` is not a valid id; record the right one and retry",
            self.what, self.text
        )
    }
}

impl std::error::Error for Unreadable {}

/// Reads `text` as an id into `slot`, or records it as unreadable under `what`.
fn read_id<T: std::str::FromStr>(
    s: &mut WorkflowState,
    what: &str,
    text: &str,
    slot: fn(&mut WorkflowState) -> &mut Option<T>,
) {
    match text.parse() {
        Ok(id) => {
            *slot(&mut *s) = Some(id);
            s.unreadable.remove(what);
        }
        Err(_) => {
            *slot(&mut *s) = None;
            s.unreadable.insert(what.to_string(), text.to_string());
        }
    }
}

/// Applies one of the instance's own events.
pub fn evolve(mut s: WorkflowState, event: &Event) -> WorkflowState {
    match event {
        Event::WorkflowStarted(e) => {
            s.id = Some(e.workflow_id);
            s.kind = Some(e.kind);
            s.lead_id = e.lead_id;
            s.office = e.office;
            s.subject = e.subject.clone();
            s.active = true;
            s.rounds += 1;
            s.outcome = None;
            if e.kind == WorkflowKind::Reassignment {
                let id = e
                    .subject
                    .strip_prefix("reassignment ")
                    .unwrap_or(&e.subject);
                read_id(&mut s, "subject", id, |s| &mut s.reassignment_id);
            }
        }
        Event::TaskOpened(e) => {
            s.tasks.insert(
                e.task_id,
                OpenTask {
                    name: e.name.clone(),
                    assignee: e.assignee.clone(),
                },
            );
        }
        Event::TaskClosed(e) => {
            s.tasks.remove(&e.task_id);
        }
        Event::TimerScheduled(e) => {
            s.timers.insert(e.timer_id, (e.purpose.clone(), e.due_at));
        }
        Event::TimerCancelled(TimerCancelled { timer_id, .. })
        | Event::TimerFired(TimerFired { timer_id, .. }) => {
            s.timers.remove(timer_id);
        }
        Event::WorkflowNoted(e) => {
            match e.key.as_str() {
                "owner" => read_id(&mut s, "owner", &e.value, |s| &mut s.owner),
                "engineer" => read_id(&mut s, "engineer", &e.value, |s| &mut s.engineer),
                // Moved to no office: the instance's own office stays the one to act in.
                "office" if e.value.is_empty() => {
                    s.engineer_office = None;
                    s.unreadable.remove("office");
                }
                "office" => read_id(&mut s, "office", &e.value, |s| &mut s.engineer_office),
                _ => {}
            }
            s.notes.insert(e.key.clone(), e.value.clone());
        }
        Event::ReactionParked(e) => {
            s.parked.insert(e.cause, e.reason.clone());
        }
        Event::ReactionRetried(e) => {
            s.parked.remove(&e.cause);
        }
        Event::WorkflowCompleted(e) => {
            s.active = false;
            s.outcome = Some(e.outcome.clone());
        }
        _ => {}
    }
    s
}

/// A command a workflow sends. `key` is unique among the commands of one trigger; the runtime
/// derives the command id from the instance, the trigger and the key.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub key: String,
    pub command: OutCommand,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutCommand {
    Lead { lead_id: LeadId, cmd: LeadCommand },
    Plan { cmd: PlanCommand },
}

impl OutCommand {
    pub fn name(&self) -> &'static str {
        match self {
            OutCommand::Lead { cmd, .. } => cmd.name(),
            OutCommand::Plan {
                cmd: PlanCommand::MarkOverdue { .. },
            } => "mark_plan_overdue",
            OutCommand::Plan { .. } => "plan",
        }
    }
}

/// What one trigger makes an instance do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reaction {
    /// Events for the instance's own stream.
    pub events: Vec<Event>,
    pub commands: Vec<Outgoing>,
}

/// What happened, for [`react`]: a business event with its envelope facts, or a timer of the
/// instance that fired.
#[derive(Clone, Debug)]
pub struct Trigger<'a> {
    /// The event's id (for a timer: the timer id's UUID), used to derive ids.
    pub id: uuid::Uuid,
    pub occurred_at: DateTime<Utc>,
    pub office: Option<OfficeId>,
    pub event: &'a Event,
}

/// The world around a reaction.
#[derive(Clone, Debug)]
pub struct ReactCtx<'a> {
    pub now: DateTime<Utc>,
    pub policy: &'a crate::Policy,
    /// The time zone of the instance's office (deadlines and working days are local).
    pub tz: chrono_tz::Tz,
    /// Public holidays and make-up working days, as published when the reaction runs.
    pub calendar: &'a crate::WorkCalendar,
}

/// The instances an event concerns. Workflow events concern none (timers are fired by the runtime).
pub fn route(event: &Event, office: Option<OfficeId>) -> Vec<(WorkflowKind, WorkflowId)> {
    use WorkflowKind as K;
    let id = |k: K, key: String| (k, WorkflowId::derived(&format!("{}:{key}", k.as_str())));
    match event {
        Event::OwnershipConflictOpened(e) => {
            vec![id(K::OwnershipConflict, e.conflict_id.to_string())]
        }
        Event::OwnershipConflictDecided(e) => {
            vec![id(K::OwnershipConflict, e.conflict_id.to_string())]
        }
        Event::ReassignmentRequested(e) => vec![id(K::Reassignment, e.reassignment_id.to_string())],
        Event::ReassignmentApproved(e) => vec![id(K::Reassignment, e.reassignment_id.to_string())],
        Event::ReassignmentDenied(e) => vec![id(K::Reassignment, e.reassignment_id.to_string())],
        Event::ReassignmentExpired(e) => vec![id(K::Reassignment, e.reassignment_id.to_string())],
        Event::LeadOwnerAssigned(LeadOwnerAssigned {
            basis: AssignmentBasis::Reassignment { reassignment_id },
            ..
        }) => {
            vec![id(K::Reassignment, reassignment_id.to_string())]
        }
        Event::ValidInfoDeclared(e) => {
            vec![id(K::ValidInfoDeclaration, e.declaration_id.to_string())]
        }
        Event::ProspectDeclared(e) => {
            vec![id(K::ProspectDeclaration, e.declaration_id.to_string())]
        }
        // Which of the two a review or filing belongs to is known only to the instance; an event
        // for an instance that never started is ignored by it.
        Event::DeclarationReviewed(e) => vec![
            id(K::ValidInfoDeclaration, e.declaration_id.to_string()),
            id(K::ProspectDeclaration, e.declaration_id.to_string()),
        ],
        Event::DeclarationFiled(e) => vec![
            id(K::ValidInfoDeclaration, e.declaration_id.to_string()),
            id(K::ProspectDeclaration, e.declaration_id.to_string()),
        ],
        Event::DeclarationWithdrawn(e) => vec![
            id(K::ValidInfoDeclaration, e.declaration_id.to_string()),
            id(K::ProspectDeclaration, e.declaration_id.to_string()),
        ],
        Event::ContractSubmitted(e) => vec![id(K::ContractReview, e.lead_id.to_string())],
        Event::ContractAmended(e) => vec![id(K::ContractReview, e.lead_id.to_string())],
        Event::ContractApproved(e) => vec![id(K::ContractReview, e.lead_id.to_string())],
        Event::ContractRejected(e) => vec![id(K::ContractReview, e.lead_id.to_string())],
        Event::ContractSigned(e) => vec![id(K::ContractReview, e.lead_id.to_string())],
        Event::StaffJoined(e) => vec![id(K::VisitPlans, e.staff_id.to_string())],
        Event::StaffRoleChanged(e) => vec![id(K::VisitPlans, e.staff_id.to_string())],
        Event::StaffMovedOffice(e) => vec![id(K::VisitPlans, e.staff_id.to_string())],
        Event::StaffLeft(e) => vec![id(K::VisitPlans, e.staff_id.to_string())],
        Event::VisitPlanSubmitted(e) => vec![id(K::VisitPlans, e.engineer.to_string())],
        Event::VisitPlanOverdue(e) => vec![id(K::VisitPlans, e.engineer.to_string())],
        Event::OfficeOpened(e) => vec![id(K::OfficeSummaries, e.office_id.to_string())],
        Event::SummaryCompiled(e) => vec![id(K::OfficeSummaries, e.office.to_string())],
        Event::SummaryVerified(_) | Event::SummaryReviewed(_) | Event::SummaryFiled(_) => office
            .map(|o| vec![id(K::OfficeSummaries, o.to_string())])
            .unwrap_or_default(),
        Event::InsiderEscalationRaised(e) => vec![id(K::InsiderEscalation, e.lead_id.to_string())],
        Event::InsiderDeveloped(e) => vec![id(K::InsiderEscalation, e.lead_id.to_string())],
        Event::StagnationReviewOpened(e) => vec![id(K::StagnationReview, e.lead_id.to_string())],
        Event::StagnationReviewDecided(e) => vec![id(K::StagnationReview, e.lead_id.to_string())],
        // A lead leaving the funnel (signed, suspended, lost) ends the reviews still open on it. A
        // lead has at most one contract under review, so its review is keyed by the lead.
        Event::StageChanged(e) if !e.to.is_open() => vec![
            id(K::InsiderEscalation, e.lead_id.to_string()),
            id(K::StagnationReview, e.lead_id.to_string()),
            id(K::ContractReview, e.lead_id.to_string()),
        ],
        Event::ErasureRequested(e) => vec![id(K::Erasure, e.erasure_id.to_string())],
        Event::ErasureApproved(e) => vec![id(K::Erasure, e.erasure_id.to_string())],
        Event::ErasureRejected(e) => vec![id(K::Erasure, e.erasure_id.to_string())],
        _ => Vec::new(),
    }
}

/// The instance's next events and commands for one trigger. Pure: the same state and trigger always
/// give the same reaction, so a redelivered trigger can be recognised and skipped by the runtime.
pub fn react(
    kind: WorkflowKind,
    id: WorkflowId,
    state: &WorkflowState,
    trigger: &Trigger<'_>,
    ctx: &ReactCtx<'_>,
) -> Result<Reaction, Unreadable> {
    let mut r = Builder {
        id,
        state,
        trigger,
        ctx,
        out: Reaction::default(),
    };
    match kind {
        WorkflowKind::OwnershipConflict => approvals::conflict(&mut r),
        WorkflowKind::Reassignment => approvals::reassignment(&mut r)?,
        WorkflowKind::ValidInfoDeclaration | WorkflowKind::ProspectDeclaration => {
            approvals::declaration(&mut r, kind)
        }
        WorkflowKind::ContractReview => approvals::contract(&mut r)?,
        WorkflowKind::VisitPlans => calendar::plans(&mut r)?,
        WorkflowKind::OfficeSummaries => calendar::summaries(&mut r),
        WorkflowKind::InsiderEscalation | WorkflowKind::StagnationReview => {
            lead_rules::react(&mut r, kind)
        }
        WorkflowKind::Erasure => approvals::erasure(&mut r),
    }
    Ok(r.out)
}

/// Helpers shared by the workflows, writing into one reaction.
pub(crate) struct Builder<'a> {
    pub id: WorkflowId,
    pub state: &'a WorkflowState,
    pub trigger: &'a Trigger<'a>,
    pub ctx: &'a ReactCtx<'a>,
    pub out: Reaction,
}

impl Builder<'_> {
    pub fn started(&self) -> bool {
        self.state.active
            || self
                .out
                .events
                .iter()
                .any(|e| matches!(e, Event::WorkflowStarted(_)))
    }

    pub fn start(
        &mut self,
        kind: WorkflowKind,
        lead_id: Option<LeadId>,
        office: Option<OfficeId>,
        subject: String,
    ) {
        self.out
            .events
            .push(Event::WorkflowStarted(WorkflowStarted {
                workflow_id: self.id,
                kind,
                lead_id,
                office,
                subject,
            }));
    }

    /// A typed id of the state, or why the reaction cannot go on: the text recorded for it does
    /// not read as an id.
    pub fn id<T: Copy>(&self, what: &str, value: Option<T>) -> Result<Option<T>, Unreadable> {
        match self.state.unreadable.get(what) {
            Some(text) => Err(Unreadable {
                what: what.to_string(),
                text: text.clone(),
            }),
            None => Ok(value),
        }
    }

    fn round(&self) -> u32 {
        self.state.rounds.max(1)
    }

    /// A task id stable for this instance, round and name.
    pub fn task_id(&self, name: &str) -> TaskId {
        TaskId::derived(&format!("{}:{}:{name}", self.id, self.round()))
    }

    /// Opens a task unless one of that name is open.
    #[allow(clippy::too_many_arguments)]
    pub fn open_task(
        &mut self,
        name: &str,
        assignee: Assignee,
        lead_id: Option<LeadId>,
        en: String,
        zh: String,
        due_at: Option<DateTime<Utc>>,
    ) -> TaskId {
        if let Some(open) = self.open_task_named(name) {
            return open;
        }
        // A task name reopened after closing in the same round gets a fresh id from the trigger.
        let mut task_id = self.task_id(name);
        if self.state.notes.contains_key(&format!("closed:{task_id}")) {
            task_id = TaskId::derived(&format!("{}:{}:{name}", self.id, self.trigger.id));
        }
        self.out.events.push(Event::TaskOpened(TaskOpened {
            workflow_id: self.id,
            task_id,
            name: name.to_string(),
            assignee,
            lead_id,
            title_en: en,
            title_zh: zh,
            due_at,
        }));
        task_id
    }

    fn open_task_named(&self, name: &str) -> Option<TaskId> {
        let pending_open = self.out.events.iter().rev().find_map(|e| match e {
            Event::TaskOpened(t) if t.name == name => Some(t.task_id),
            _ => None,
        });
        let closed_now = |id: TaskId| {
            self.out
                .events
                .iter()
                .any(|e| matches!(e, Event::TaskClosed(c) if c.task_id == id))
        };
        pending_open
            .or_else(|| self.state.task(name))
            .filter(|id| !closed_now(*id))
    }

    /// Closes the open task of that name, if any.
    pub fn close_task(&mut self, name: &str, outcome: &str) {
        if let Some(task_id) = self.open_task_named(name) {
            self.out.events.push(Event::TaskClosed(TaskClosed {
                workflow_id: self.id,
                task_id,
                outcome: outcome.to_string(),
            }));
            self.note(&format!("closed:{task_id}"), outcome);
        }
    }

    /// Closes every open task and cancels every pending timer.
    pub fn close_all(&mut self, outcome: &str) {
        let names: Vec<String> = self.state.tasks.values().map(|t| t.name.clone()).collect();
        for n in names {
            self.close_task(&n, outcome);
        }
        let opened: Vec<String> = self
            .out
            .events
            .iter()
            .filter_map(|e| match e {
                Event::TaskOpened(t) => Some(t.name.clone()),
                _ => None,
            })
            .collect();
        for n in opened {
            self.close_task(&n, outcome);
        }
        let timers: Vec<TimerId> = self.state.timers.keys().copied().collect();
        for timer_id in timers {
            if Some(timer_id) != self.firing_timer() {
                self.out.events.push(Event::TimerCancelled(TimerCancelled {
                    workflow_id: self.id,
                    timer_id,
                }));
            }
        }
    }

    pub fn complete(&mut self, outcome: &str) {
        self.close_all(outcome);
        self.out
            .events
            .push(Event::WorkflowCompleted(WorkflowCompleted {
                workflow_id: self.id,
                outcome: outcome.to_string(),
            }));
    }

    /// Sets a durable timer; its id is derived from the instance, the purpose and the due time.
    pub fn schedule(&mut self, purpose: TimerPurpose, due_at: DateTime<Utc>) {
        let timer_id = TimerId::derived(&format!("{}:{purpose:?}:{}", self.id, due_at.timestamp()));
        if self.state.timers.contains_key(&timer_id) {
            return;
        }
        self.out.events.push(Event::TimerScheduled(TimerScheduled {
            workflow_id: self.id,
            timer_id,
            purpose,
            due_at,
        }));
    }

    pub fn note(&mut self, key: &str, value: &str) {
        if self.state.note(key) == Some(value) {
            return;
        }
        self.out.events.push(Event::WorkflowNoted(WorkflowNoted {
            workflow_id: self.id,
            key: key.to_string(),
            value: value.to_string(),
        }));
    }

    pub fn remind(&mut self, to: Assignee, task_id: Option<TaskId>, en: String, zh: String) {
        self.out.events.push(Event::ReminderRaised(ReminderRaised {
            workflow_id: self.id,
            to,
            task_id,
            message_en: en,
            message_zh: zh,
        }));
    }

    /// Sends a command once per instance and key: a redelivered trigger sends nothing again.
    pub fn send(&mut self, key: &str, command: OutCommand) {
        let sent = format!("sent:{key}");
        if self.state.note(&sent).is_some() {
            return;
        }
        self.note(&sent, command.name());
        self.out.commands.push(Outgoing {
            key: key.to_string(),
            command,
        });
    }

    /// The timer being fired, when the trigger is a timer.
    pub fn firing_timer(&self) -> Option<TimerId> {
        match self.trigger.event {
            Event::TimerFired(t) => Some(t.timer_id),
            _ => None,
        }
    }

    /// `n` working days (Monday to Friday but the published holidays, plus make-up working days;
    /// office time) after `t`, at the same time of day.
    pub fn working_days(&self, t: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        self.ctx.calendar.add_working_days(t, n, self.ctx.tz)
    }
}

/// Who holds a role in an office (or at headquarters).
pub fn role_in(role: Role, office: Option<OfficeId>) -> Assignee {
    Assignee {
        role,
        office: if role.is_headquarters() { None } else { office },
        staff: None,
    }
}

/// One member of staff.
pub fn person(role: Role, office: Option<OfficeId>, staff: StaffId) -> Assignee {
    Assignee {
        role,
        office,
        staff: Some(staff),
    }
}

/// `n` working days (Monday to Friday in `tz`, no published holidays) after `t`, at the same local
/// time of day.
pub fn add_working_days(t: DateTime<Utc>, n: u32, tz: chrono_tz::Tz) -> DateTime<Utc> {
    crate::WorkCalendar::default().add_working_days(t, n, tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn working_days_skip_weekends_in_office_time() {
        let tz = chrono_tz::Asia::Shanghai;
        // Friday 2026-03-06 10:00 Shanghai.
        let fri = tz
            .with_ymd_and_hms(2026, 3, 6, 10, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        let tue = tz
            .with_ymd_and_hms(2026, 3, 10, 10, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(add_working_days(fri, 2, tz), tue);
        let fri_next = tz
            .with_ymd_and_hms(2026, 3, 13, 10, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(add_working_days(fri, 5, tz), fri_next);
        assert_eq!(add_working_days(fri, 0, tz), fri);
    }
}
