//! The runtime's in-memory index of instances, rebuilt from the `workflow-*` streams at start: each
//! instance's folded state, its stream version and the triggers it has handled (the causation ids of
//! its events), and the pending timers of every instance ordered by due time (scheduled − cancelled −
//! fired).
//!
//! With a checkpoint file the index is also kept as a snapshot ([`encode`], [`decode`]) naming the
//! last workflow event it holds, so a start reads only the workflow events after it:
//!
//! ```text
//! "FWIX"  u16 format (1)  u32 state version (INDEX_STATE_VERSION)  MessagePack body
//! body: position and id of the last workflow event read from the log, instances (id, state,
//!       version, causes)
//! ```
//!
//! A snapshot is used only when all of it fits (marker, format, state version, body) and the log
//! holds that event at that position; otherwise the index is built from every workflow stream, as
//! without one.

use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_domain::events::{TimerPurpose, WorkflowKind};
use funnel_domain::workflow::{self, WorkflowState};
use funnel_types::Position;
use funnel_types::{EventId, LeadId, OfficeId, TimerId, Version, WorkflowId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

const MARKER: &[u8; 4] = b"FWIX";
const FORMAT: u16 = 1;

/// The version of what an index snapshot holds: the shape of [`WorkflowState`] and what
/// `workflow::evolve` makes of the events. Raise it with any change to either: snapshots of an
/// older version are then ignored and the index is built from the log.
pub const INDEX_STATE_VERSION: u32 = 1;

/// What the runtime knows of one instance.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Inst {
    pub state: WorkflowState,
    /// The stream's version; `None` while the instance has no stream.
    pub version: Option<Version>,
    /// Triggers the instance has handled: the causation ids of its events.
    pub causes: HashSet<uuid::Uuid>,
}

/// A timer waiting to fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PendingTimer {
    pub workflow_id: WorkflowId,
    pub timer_id: TimerId,
    pub purpose: TimerPurpose,
    pub due_at: DateTime<Utc>,
}

/// A reaction parked on an instance, waiting for `funnel workflows retry`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ParkedReaction {
    /// The event (or timer) whose reaction failed.
    pub cause: EventId,
    pub reason: String,
}

/// One instance as `funnel workflows` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InstanceSummary {
    pub id: WorkflowId,
    /// `None` for an instance whose first reaction was parked before it could start.
    pub kind: Option<WorkflowKind>,
    pub subject: String,
    pub lead_id: Option<LeadId>,
    pub office: Option<OfficeId>,
    pub active: bool,
    pub outcome: Option<String>,
    pub open_tasks: usize,
    /// Pending timers, earliest first.
    pub timers: Vec<PendingTimer>,
    pub parked: Vec<ParkedReaction>,
    pub version: u64,
}

impl InstanceSummary {
    /// The summary of instance `id` in `state`, its stream at `version`.
    pub fn of(id: WorkflowId, s: &WorkflowState, version: Version) -> Self {
        let mut timers: Vec<PendingTimer> = s
            .timers
            .iter()
            .map(|(t, (purpose, due_at))| PendingTimer {
                workflow_id: id,
                timer_id: *t,
                purpose: purpose.clone(),
                due_at: *due_at,
            })
            .collect();
        timers.sort_by_key(|t| (t.due_at, t.timer_id));
        InstanceSummary {
            id,
            kind: s.kind,
            subject: s.subject.clone(),
            lead_id: s.lead_id,
            office: s.office,
            active: s.active,
            outcome: s.outcome.clone(),
            open_tasks: s.tasks.len(),
            timers,
            parked: s
                .parked
                .iter()
                .map(|(cause, reason)| ParkedReaction {
                    cause: *cause,
                    reason: reason.clone(),
                })
                .collect(),
            version: version.0,
        }
    }

    /// When the next timer is due.
    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.timers.first().map(|t| t.due_at)
    }

    /// `active`, `parked`, or the outcome of a completed instance.
    pub fn status(&self) -> String {
        if !self.parked.is_empty() {
            "parked".into()
        } else if self.active {
            "active".into()
        } else {
            self.outcome.clone().unwrap_or_else(|| "not started".into())
        }
    }
}

/// The last workflow event an index holds, as read from the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Through {
    pub position: Position,
    pub event_id: EventId,
}

#[derive(Serialize, Deserialize)]
struct Body {
    through: Through,
    instances: Vec<(WorkflowId, Inst)>,
}

/// The snapshot of `index`, holding the workflow events up to `through`.
pub(crate) fn encode(index: &Index, through: Through) -> Option<Vec<u8>> {
    let mut instances: Vec<(WorkflowId, Inst)> = index
        .instances
        .iter()
        .map(|(id, i)| (*id, i.clone()))
        .collect();
    instances.sort_by_key(|(id, _)| *id);
    let mut out = Vec::with_capacity(64 + instances.len() * 256);
    out.extend_from_slice(MARKER);
    out.extend_from_slice(&FORMAT.to_be_bytes());
    out.extend_from_slice(&INDEX_STATE_VERSION.to_be_bytes());
    rmp_serde::encode::write(&mut out, &Body { through, instances }).ok()?;
    Some(out)
}

/// The index a snapshot holds and the last workflow event in it; `None` for anything that is not a
/// snapshot of this format and state version.
pub(crate) fn decode(bytes: &[u8]) -> Option<(Index, Through)> {
    let (marker, rest) = bytes.split_at_checked(4)?;
    let (format, rest) = rest.split_at_checked(2)?;
    let (version, rest) = rest.split_at_checked(4)?;
    if marker != MARKER
        || u16::from_be_bytes(format.try_into().ok()?) != FORMAT
        || u32::from_be_bytes(version.try_into().ok()?) != INDEX_STATE_VERSION
    {
        return None;
    }
    let body: Body = rmp_serde::from_slice(rest).ok()?;
    let mut index = Index::default();
    for (id, inst) in body.instances {
        index.replace(id, inst);
    }
    Some((index, body.through))
}

/// Every instance the runtime knows, and the timer queue.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub instances: HashMap<WorkflowId, Inst>,
    /// Pending timers by due time.
    timers: BTreeMap<(DateTime<Utc>, TimerId), WorkflowId>,
}

impl Index {
    /// Applies events of an instance's stream: `version` is the stream version of the last one,
    /// `cause` their causation id. Events at or below the known version are ignored (already applied).
    pub fn apply(
        &mut self,
        id: WorkflowId,
        first_version: Version,
        cause: uuid::Uuid,
        events: &[Event],
    ) {
        let inst = self.instances.entry(id).or_default();
        let before = inst.state.timers.clone();
        let mut changed = false;
        for (i, e) in events.iter().enumerate() {
            let v = Version(first_version.0 + i as u64);
            if inst.version.is_some_and(|known| known >= v) {
                continue;
            }
            inst.state = workflow::evolve(std::mem::take(&mut inst.state), e);
            inst.version = Some(v);
            inst.causes.insert(cause);
            changed = true;
        }
        if changed {
            let after = inst.state.timers.clone();
            self.sync_timers(id, &before, &after);
        }
    }

    /// Replaces an instance with one folded from its whole stream (after a reload).
    pub fn replace(&mut self, id: WorkflowId, inst: Inst) {
        let before = self
            .instances
            .get(&id)
            .map(|i| i.state.timers.clone())
            .unwrap_or_default();
        let after = inst.state.timers.clone();
        self.instances.insert(id, inst);
        self.sync_timers(id, &before, &after);
    }

    fn sync_timers(
        &mut self,
        id: WorkflowId,
        before: &BTreeMap<TimerId, (TimerPurpose, DateTime<Utc>)>,
        after: &BTreeMap<TimerId, (TimerPurpose, DateTime<Utc>)>,
    ) {
        for (t, (_, due)) in before {
            if after.get(t).map(|(_, d)| d) != Some(due) {
                self.timers.remove(&(*due, *t));
            }
        }
        for (t, (_, due)) in after {
            self.timers.insert((*due, *t), id);
        }
    }

    /// A pending timer that may fire: its instance is active and the timer's reaction is not parked.
    fn fireable(&self, id: WorkflowId, timer: TimerId) -> Option<(WorkflowKind, PendingTimer)> {
        let inst = self.instances.get(&id)?;
        if !inst.state.active || inst.state.parked.contains_key(&EventId(timer.0)) {
            return None;
        }
        let (purpose, due_at) = inst.state.timers.get(&timer)?;
        Some((
            inst.state.kind?,
            PendingTimer {
                workflow_id: id,
                timer_id: timer,
                purpose: purpose.clone(),
                due_at: *due_at,
            },
        ))
    }

    /// What is waiting: active instances, pending and overdue timers, parked reactions.
    pub fn backlog(&self, now: DateTime<Utc>) -> (usize, usize, usize, usize) {
        let active = self.instances.values().filter(|i| i.state.active).count();
        let parked = self.instances.values().map(|i| i.state.parked.len()).sum();
        let overdue = self
            .timers
            .range(..=(now, TimerId(uuid::Uuid::max())))
            .count();
        (active, self.timers.len(), overdue, parked)
    }

    /// Timers due at `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<(WorkflowKind, PendingTimer)> {
        self.timers
            .iter()
            .take_while(|((due, _), _)| *due <= now)
            .filter_map(|((_, t), id)| self.fireable(*id, *t))
            .collect()
    }

    /// When the next timer that may fire is due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.timers
            .iter()
            .find(|((_, t), id)| self.fireable(**id, *t).is_some())
            .map(|((due, _), _)| *due)
    }

    /// Every instance that has a stream, by kind and subject.
    pub fn summaries(&self) -> Vec<InstanceSummary> {
        let mut out: Vec<InstanceSummary> = self
            .instances
            .iter()
            .filter_map(|(id, i)| Some(InstanceSummary::of(*id, &i.state, i.version?)))
            .collect();
        out.sort_by(|a, b| (a.kind, &a.subject, a.id).cmp(&(b.kind, &b.subject, b.id)));
        out
    }
}
