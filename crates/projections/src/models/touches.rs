//! The touch index: for a lead, every actor who changed it or tried to, what they did, when and in
//! which role; for an actor, every lead they touched.

use crate::ReadModel;
use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_types::{Actor, Envelope, LeadId, Position, StaffId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One touch of a lead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Touch {
    pub lead_id: LeadId,
    pub position: Position,
    pub at: DateTime<Utc>,
    /// Who acted, in which role (for a refused touch: who tried).
    pub actor: Actor,
    /// The event type, or for a refused touch the command that was refused.
    pub action: Cow<'static, str>,
    /// True when the attempt was refused (touching another engineer's lead, §5.7).
    pub refused: bool,
}

/// The touch index read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Touches {
    pub by_lead: BTreeMap<LeadId, Vec<Touch>>,
    /// Member of staff → their touches, as (lead, index in that lead's list).
    pub by_staff: BTreeMap<StaffId, Vec<(LeadId, usize)>>,
    /// System component name → its touches.
    pub by_system: BTreeMap<String, Vec<(LeadId, usize)>>,
    pub staff_names: BTreeMap<StaffId, String>,
}

impl ReadModel for Touches {
    const NAME: &'static str = "touches";
    const VERSION: u32 = 2;

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        if let Event::StaffJoined(e) = &env.payload {
            self.staff_names.insert(e.staff_id, e.name.clone());
            return Ok(());
        }
        let Some(lead_id) = env.payload.lead_id() else {
            return Ok(());
        };
        let touch = match &env.payload {
            Event::TouchRefused(t) => Touch {
                lead_id,
                position: env.meta.position,
                at: env.meta.occurred_at,
                actor: Actor::staff(t.attempted_by, t.role),
                action: Cow::Owned(t.action.clone()),
                refused: true,
            },
            other => Touch {
                lead_id,
                position: env.meta.position,
                at: env.meta.occurred_at,
                actor: env.meta.actor.clone(),
                // Event type names are static: no allocation per touch.
                action: Cow::Borrowed(other.event_type()),
                refused: false,
            },
        };
        let list = self.by_lead.entry(lead_id).or_default();
        if list.last().is_some_and(|t| t.position >= touch.position) {
            return Err(format!(
                "position {} is not after the lead's last touch",
                touch.position
            ));
        }
        let index = (lead_id, list.len());
        match &touch.actor {
            Actor::Staff { id, .. } => self.by_staff.entry(*id).or_default().push(index),
            Actor::System { name } => match self.by_system.get_mut(name) {
                Some(refs) => refs.push(index),
                None => {
                    self.by_system.insert(name.clone(), vec![index]);
                }
            },
        }
        list.push(touch);
        Ok(())
    }
}

impl Touches {
    /// Every touch of a lead, in log order.
    pub fn lead(&self, lead: LeadId) -> &[Touch] {
        self.by_lead.get(&lead).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every touch by an actor within `[from, to)` (by when it happened), in log order.
    pub fn actor(
        &self,
        key: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<&Touch> {
        let refs = match (key.parse::<StaffId>(), key.strip_prefix("system:")) {
            (Ok(id), _) => self.by_staff.get(&id),
            (Err(_), Some(name)) => self.by_system.get(name),
            (Err(_), None) => None,
        };
        let Some(refs) = refs else {
            return Vec::new();
        };
        refs.iter()
            .filter_map(|(lead, i)| self.by_lead.get(lead).and_then(|l| l.get(*i)))
            .filter(|t| from.is_none_or(|f| t.at >= f) && to.is_none_or(|e| t.at < e))
            .collect()
    }

    /// The name of a member of staff, or their id.
    pub fn name(&self, actor: &Actor) -> String {
        match actor {
            Actor::Staff { id, .. } => self
                .staff_names
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_string()),
            Actor::System { name } => format!("system:{name}"),
        }
    }
}
