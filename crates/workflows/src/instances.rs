//! Workflow instances as a read model, for the HTTP API: each instance's state folded from its own
//! stream (`workflow-<id>`), so `funnel serve` can list and show instances without asking the
//! runtime, which may be busy or run by another process.

use crate::index::InstanceSummary;
use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_domain::workflow::{self, WorkflowState};
use funnel_projections::ReadModel;
use funnel_types::{Envelope, Version, WorkflowId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One instance: its state, its stream's version and when it last changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRow {
    pub state: WorkflowState,
    pub version: u64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The instances read model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instances {
    pub by_id: BTreeMap<WorkflowId, InstanceRow>,
}

impl ReadModel for Instances {
    const NAME: &'static str = "workflow_instances";
    // 2: the instance state keeps typed ids (and the ones that did not read).
    const VERSION: u32 = 2;

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        let stream = &env.meta.stream;
        if stream.category() != "workflow" {
            return Ok(());
        }
        let id: WorkflowId = stream
            .id_part()
            .parse()
            .map_err(|_| format!("workflow stream {stream} is not named by a workflow id"))?;
        let row = self.by_id.entry(id).or_default();
        row.state = workflow::evolve(std::mem::take(&mut row.state), &env.payload);
        row.version = env.meta.version.0;
        row.updated_at = Some(env.meta.occurred_at);
        Ok(())
    }
}

impl Instances {
    /// The summary of one instance.
    pub fn summary(&self, id: WorkflowId) -> Option<InstanceSummary> {
        self.by_id
            .get(&id)
            .map(|r| InstanceSummary::of(id, &r.state, Version(r.version)))
    }

    /// Every instance, in id order, with when it last changed.
    pub fn rows(&self) -> impl Iterator<Item = (WorkflowId, &InstanceRow)> {
        self.by_id.iter().map(|(id, r)| (*id, r))
    }
}
