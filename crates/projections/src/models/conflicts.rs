//! The ownership-conflict audit: duplicate registrations and how each was decided, attempts to touch
//! another engineer's lead, reassignments with their approvals, and how fairly the office managers
//! spread the leads they assign (§5).

use crate::ReadModel;
use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_domain::events::{self, ApprovalParty, AssignmentBasis, ConflictGround};
use funnel_types::{
    ConflictId, Envelope, LeadId, OfficeId, Position, ReassignmentId, Role, StaffId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DuplicateRegistration {
    pub lead_id: LeadId,
    pub office: OfficeId,
    pub registered_by: StaffId,
    pub at: DateTime<Utc>,
    pub position: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConflictDecision {
    pub winner: StaffId,
    pub decided_by: StaffId,
    pub grounds: Vec<ConflictGround>,
    pub note: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConflictCase {
    pub lead_id: LeadId,
    pub office: OfficeId,
    pub claimants: Vec<StaffId>,
    pub opened_at: DateTime<Utc>,
    pub decision: Option<ConflictDecision>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RefusedTouch {
    pub lead_id: LeadId,
    pub office: OfficeId,
    pub attempted_by: StaffId,
    pub role: Role,
    pub owner: Option<StaffId>,
    pub action: String,
    pub code: String,
    pub at: DateTime<Utc>,
    pub position: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Approval {
    pub party: ApprovalParty,
    pub by: StaffId,
    pub at: DateTime<Utc>,
}

/// How a reassignment ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReassignmentOutcome {
    Pending,
    Approved {
        at: DateTime<Utc>,
    },
    Denied {
        party: ApprovalParty,
        by: StaffId,
        reason: String,
        at: DateTime<Utc>,
    },
    Expired {
        at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReassignmentCase {
    pub lead_id: LeadId,
    pub office: OfficeId,
    pub from: StaffId,
    pub to: StaffId,
    pub requested_by: StaffId,
    pub evidence: String,
    pub requested_at: DateTime<Utc>,
    pub approvals: Vec<Approval>,
    pub outcome: ReassignmentOutcome,
}

/// How an engineer came to own leads, per office.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OwnershipCounts {
    pub first_to_register: u64,
    pub manager_assigned: u64,
    pub conflict_won: u64,
    pub reassigned_to: u64,
}

/// The ownership-conflict audit read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conflicts {
    pub lead_offices: BTreeMap<LeadId, OfficeId>,
    pub staff_names: BTreeMap<StaffId, String>,
    pub duplicates: Vec<DuplicateRegistration>,
    pub conflicts: BTreeMap<ConflictId, ConflictCase>,
    pub refused_touches: Vec<RefusedTouch>,
    pub reassignments: BTreeMap<ReassignmentId, ReassignmentCase>,
    pub ownership: BTreeMap<OfficeId, BTreeMap<StaffId, OwnershipCounts>>,
}

impl ReadModel for Conflicts {
    const NAME: &'static str = "conflicts";
    const VERSION: u32 = 1;
    /// Reports of it are asked for as of past dates.
    const KEEPS_HISTORY: bool = true;
    /// It does nothing with any other type.
    const READS: Option<&'static [&'static str]> = Some(&[
        events::StaffJoined::TYPE,
        events::LeadRegistered::TYPE,
        events::DuplicateRegistrationReceived::TYPE,
        events::OwnershipConflictOpened::TYPE,
        events::OwnershipConflictDecided::TYPE,
        events::TouchRefused::TYPE,
        events::ReassignmentRequested::TYPE,
        events::ReassignmentApproved::TYPE,
        events::ReassignmentDenied::TYPE,
        events::ReassignmentExpired::TYPE,
        events::LeadOwnerAssigned::TYPE,
    ]);

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        let at = env.meta.occurred_at;
        let position = env.meta.position;
        match &env.payload {
            Event::StaffJoined(e) => {
                self.staff_names.insert(e.staff_id, e.name.clone());
                return Ok(());
            }
            Event::LeadRegistered(e) => {
                self.lead_offices.insert(e.lead_id, e.office);
                return Ok(());
            }
            _ => {}
        }
        let Some(lead_id) = env.payload.lead_id() else {
            return Ok(());
        };
        let Some(office) = self.lead_offices.get(&lead_id).copied() else {
            return Err(format!(
                "{} for lead {lead_id}, which was never registered",
                env.payload.event_type()
            ));
        };
        match &env.payload {
            Event::DuplicateRegistrationReceived(e) => {
                self.duplicates.push(DuplicateRegistration {
                    lead_id,
                    office,
                    registered_by: e.registered_by,
                    at,
                    position,
                })
            }
            Event::OwnershipConflictOpened(e) => {
                let case = self
                    .conflicts
                    .entry(e.conflict_id)
                    .or_insert_with(|| ConflictCase {
                        lead_id,
                        office,
                        claimants: Vec::new(),
                        opened_at: e.opened_at,
                        decision: None,
                    });
                case.claimants = e.claimants.clone();
            }
            Event::OwnershipConflictDecided(e) => {
                let Some(case) = self.conflicts.get_mut(&e.conflict_id) else {
                    return Err(format!("decision of unknown conflict {}", e.conflict_id));
                };
                case.decision = Some(ConflictDecision {
                    winner: e.winner,
                    decided_by: e.decided_by,
                    grounds: e.grounds.clone(),
                    note: e.note.clone(),
                    at,
                });
            }
            Event::TouchRefused(e) => self.refused_touches.push(RefusedTouch {
                lead_id,
                office,
                attempted_by: e.attempted_by,
                role: e.role,
                owner: e.owner,
                action: e.action.clone(),
                code: e.code.clone(),
                at,
                position,
            }),
            Event::ReassignmentRequested(e) => {
                self.reassignments.insert(
                    e.reassignment_id,
                    ReassignmentCase {
                        lead_id,
                        office,
                        from: e.from,
                        to: e.to,
                        requested_by: e.requested_by,
                        evidence: e.evidence.clone(),
                        requested_at: e.requested_at,
                        approvals: Vec::new(),
                        outcome: ReassignmentOutcome::Pending,
                    },
                );
            }
            Event::ReassignmentApproved(e) => {
                let case = self.reassignment(e.reassignment_id)?;
                case.approvals.push(Approval {
                    party: e.party,
                    by: e.approved_by,
                    at,
                });
            }
            Event::ReassignmentDenied(e) => {
                let case = self.reassignment(e.reassignment_id)?;
                case.outcome = ReassignmentOutcome::Denied {
                    party: e.party,
                    by: e.denied_by,
                    reason: e.reason.clone(),
                    at,
                };
            }
            Event::ReassignmentExpired(e) => {
                let case = self.reassignment(e.reassignment_id)?;
                case.outcome = ReassignmentOutcome::Expired { at };
            }
            Event::LeadOwnerAssigned(e) => {
                if let AssignmentBasis::Reassignment { reassignment_id } = &e.basis {
                    let case = self.reassignment(*reassignment_id)?;
                    case.outcome = ReassignmentOutcome::Approved { at };
                }
                let counts = self
                    .ownership
                    .entry(office)
                    .or_default()
                    .entry(e.owner)
                    .or_default();
                match e.basis {
                    AssignmentBasis::FirstToRegister => counts.first_to_register += 1,
                    AssignmentBasis::ManagerAssignment { .. } => counts.manager_assigned += 1,
                    AssignmentBasis::ConflictDecision { .. } => counts.conflict_won += 1,
                    AssignmentBasis::Reassignment { .. } => counts.reassigned_to += 1,
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Conflicts {
    fn reassignment(&mut self, id: ReassignmentId) -> Result<&mut ReassignmentCase, String> {
        self.reassignments
            .get_mut(&id)
            .ok_or_else(|| format!("unknown reassignment {id}"))
    }

    /// Manager-assigned leads per engineer in an office, and the spread between the most and the
    /// fewest (0 is perfectly even).
    pub fn fairness(&self, office: OfficeId) -> (BTreeMap<StaffId, u64>, u64) {
        let counts: BTreeMap<StaffId, u64> = self
            .ownership
            .get(&office)
            .map(|m| m.iter().map(|(s, c)| (*s, c.manager_assigned)).collect())
            .unwrap_or_default();
        let spread = counts.values().max().copied().unwrap_or(0)
            - counts.values().min().copied().unwrap_or(0);
        (counts, spread)
    }
}
