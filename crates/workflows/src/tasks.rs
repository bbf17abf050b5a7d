//! Open tasks per person, as a read model: what each manager, assistant or department must act on,
//! and since when.

use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_domain::StaffInfo;
use funnel_domain::events::Assignee;
use funnel_projections::ReadModel;
use funnel_types::{Envelope, LeadId, TaskId, WorkflowId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One open task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenTaskRow {
    pub task_id: TaskId,
    pub workflow_id: WorkflowId,
    pub name: String,
    pub assignee: Assignee,
    pub lead_id: Option<LeadId>,
    pub title_en: String,
    pub title_zh: String,
    pub opened_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    /// Set when the task was escalated to another level.
    pub escalated_to: Option<Assignee>,
}

/// The tasks read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tasks {
    pub open: BTreeMap<TaskId, OpenTaskRow>,
    pub closed: u64,
}

impl ReadModel for Tasks {
    const NAME: &'static str = "tasks";
    const VERSION: u32 = 1;

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        match &env.payload {
            Event::TaskOpened(e) => {
                self.open.insert(
                    e.task_id,
                    OpenTaskRow {
                        task_id: e.task_id,
                        workflow_id: e.workflow_id,
                        name: e.name.clone(),
                        assignee: e.assignee.clone(),
                        lead_id: e.lead_id,
                        title_en: e.title_en.clone(),
                        title_zh: e.title_zh.clone(),
                        opened_at: env.meta.occurred_at,
                        due_at: e.due_at,
                        escalated_to: None,
                    },
                );
            }
            Event::TaskClosed(e) if self.open.remove(&e.task_id).is_some() => self.closed += 1,
            Event::TaskEscalated(e) => {
                if let Some(t) = self.open.get_mut(&e.task_id) {
                    t.escalated_to = Some(e.to.clone());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Tasks {
    /// Every open task, oldest first.
    pub fn all(&self) -> Vec<&OpenTaskRow> {
        let mut rows: Vec<&OpenTaskRow> = self.open.values().collect();
        rows.sort_by_key(|t| (t.opened_at, t.task_id));
        rows
    }

    /// Tasks a member of staff must act on: assigned to them, or to their role in their office (a
    /// headquarters role: in any office), oldest first.
    pub fn for_staff(&self, staff: &StaffInfo) -> Vec<&OpenTaskRow> {
        let (id, role, office) = (staff.id, staff.role, staff.office);
        let mut rows: Vec<&OpenTaskRow> = self
            .open
            .values()
            .filter(|t| match t.assignee.staff {
                Some(s) => s == id,
                None => {
                    t.assignee.role == role
                        && (role.is_headquarters() || t.assignee.office == office)
                }
            })
            .collect();
        rows.sort_by_key(|t| (t.opened_at, t.task_id));
        rows
    }
}
