//! The lead aggregate (one customer project): its state, how events change it, and its commands.
//! `decide` lives in the submodules by theme: registration and ownership, field work, progress.

mod command;
mod criteria;
mod decide;
mod field;
mod progress;

pub use command::*;
pub use criteria::{Criterion, applies, checklist, missing};
pub use decide::decide;

use crate::events::*;
use crate::model::*;
use chrono::{DateTime, Utc};
use funnel_types::{
    ConflictId, ContractId, DeclarationId, KeyPersonId, LeadId, OfficeId, ReassignmentId, StaffId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A lead's state as far as the deciders need it. `Default` is "no such lead".
/// It serializes, so that a snapshot of it can stand for the events it folds (see the snapshot
/// property in the tests).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadState {
    pub lead: Option<Lead>,
    /// On a stream that holds a key reservation instead of a lead: the lead the key belongs to.
    pub reserved_for: Option<LeadId>,
}

/// A registered lead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub customer_key: String,
    pub customer_name: String,
    pub project_name: String,
    pub industry: Industry,
    pub purchase_mode: PurchaseMode,
    pub channel: Channel,
    pub office: OfficeId,
    pub location: String,
    pub contact: Contact,
    pub need: String,
    pub registered_by: StaffId,
    pub registered_at: DateTime<Utc>,
    pub owner: Option<StaffId>,
    /// Everyone who registered this customer, first registrant first.
    pub registrants: Vec<StaffId>,
    pub stage: Stage,
    /// The stage left when suspended or lost, to return to on reactivation.
    pub stage_before_exit: Option<Stage>,
    pub conflict: Option<OpenConflict>,
    pub reassignment: Option<PendingReassignment>,
    pub visits: u32,
    /// Visits in person (not phone calls) since the lead last had no insider, counted only while it
    /// has none.
    pub visits_without_insider: u32,
    pub insider_escalated: bool,
    pub key_persons: BTreeMap<KeyPersonId, KeyPerson>,
    pub company_level: Level,
    pub personal_level: Level,
    /// Visits while both relationship levels were C, since the last stagnation review.
    pub stagnant_visits: u32,
    pub stagnation_review_open: bool,
    pub criteria: BTreeSet<Criterion>,
    pub declaration: Option<Declaration>,
    pub tier: Option<Tier>,
    pub amount_cny: Option<u64>,
    pub contract: Option<Contract>,
    /// Reassignment ids already used (decided, denied, expired), so ids are never reused.
    pub closed_reassignments: BTreeSet<ReassignmentId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConflict {
    pub id: ConflictId,
    pub claimants: Vec<StaffId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReassignment {
    pub id: ReassignmentId,
    pub from: StaffId,
    pub to: StaffId,
    pub approvals: BTreeSet<PartyKey>,
    pub expires_at: DateTime<Utc>,
}

/// [`ApprovalParty`] as an ordered key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PartyKey {
    SalesDepartment,
    OriginalOwner,
}

impl From<ApprovalParty> for PartyKey {
    fn from(p: ApprovalParty) -> Self {
        match p {
            ApprovalParty::SalesDepartment => PartyKey::SalesDepartment,
            ApprovalParty::OriginalOwner => PartyKey::OriginalOwner,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPerson {
    pub name: String,
    pub role: KeyPersonRole,
    pub insider: bool,
}

/// Which declaration (有效信息申报 or 准客户申报).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeclarationKind {
    ValidInfo,
    Prospect,
}

/// Where a declaration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeclarationState {
    AwaitingReview,
    Approved,
    Returned,
    Filed,
    /// The lead left the funnel while it was under way.
    Withdrawn,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    pub id: DeclarationId,
    pub kind: DeclarationKind,
    pub state: DeclarationState,
    pub tier: Option<Tier>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub id: ContractId,
    pub amount_cny: u64,
    pub content_hash: String,
    pub reviewers: Vec<String>,
    /// Seat → the content hash it approved. Amending clears it.
    pub approvals: BTreeMap<String, String>,
    pub rejected: bool,
    pub signed: bool,
    pub orders: u32,
}

impl Contract {
    /// Seats that have not approved the current content.
    pub fn pending_seats(&self) -> Vec<String> {
        self.reviewers
            .iter()
            .filter(|s| self.approvals.get(*s) != Some(&self.content_hash))
            .cloned()
            .collect()
    }
}

impl Lead {
    /// Criteria met: recorded ones plus those derived from the record.
    pub fn met_criteria(&self) -> BTreeSet<Criterion> {
        let mut met = self.criteria.clone();
        if !self.project_name.trim().is_empty() && !self.location.trim().is_empty() {
            met.insert(Criterion::ProjectNameAndLocation);
        }
        if !self.customer_name.trim().is_empty() && !self.location.trim().is_empty() {
            met.insert(Criterion::CompanyNameAndLocation);
        }
        if !self.contact.name.trim().is_empty() && !self.contact.phone.trim().is_empty() {
            met.insert(Criterion::ContactAndPhone);
        }
        if !self.need.trim().is_empty() {
            met.insert(Criterion::ExplicitNeed);
        }
        if self.key_persons.values().any(|k| k.insider) {
            met.insert(Criterion::InsiderDeveloped);
        }
        met
    }

    /// Members of staff the lead's own rules may need to know about: its owner and the owner a
    /// pending reassignment would replace.
    pub fn people(&self) -> Vec<StaffId> {
        self.owner
            .into_iter()
            .chain(self.reassignment.as_ref().map(|r| r.from))
            .collect()
    }

    pub fn has_insider(&self) -> bool {
        self.key_persons.values().any(|k| k.insider)
    }
}

/// Applies one event to a lead's state. Events of other aggregates leave it unchanged.
pub fn evolve(mut state: LeadState, event: &Event) -> LeadState {
    if let Event::LeadKeyReserved(e) = event {
        if state.lead.is_none() {
            state.reserved_for = Some(e.lead_id);
        }
        return state;
    }
    if let Event::LeadRegistered(e) = event {
        state.lead = Some(Lead {
            id: e.lead_id,
            customer_key: e.customer_key.clone(),
            customer_name: e.customer_name.clone(),
            project_name: e.project_name.clone(),
            industry: e.industry,
            purchase_mode: e.purchase_mode,
            channel: e.channel,
            office: e.office,
            location: e.location.clone(),
            contact: e.contact.clone(),
            need: e.need.clone(),
            registered_by: e.registered_by,
            registered_at: e.registered_at,
            owner: None,
            registrants: vec![e.registered_by],
            stage: Stage::Ordinary,
            stage_before_exit: None,
            conflict: None,
            reassignment: None,
            visits: 0,
            visits_without_insider: 0,
            insider_escalated: false,
            key_persons: BTreeMap::new(),
            company_level: Level::C,
            personal_level: Level::C,
            stagnant_visits: 0,
            stagnation_review_open: false,
            criteria: BTreeSet::new(),
            declaration: None,
            tier: None,
            amount_cny: None,
            contract: None,
            closed_reassignments: BTreeSet::new(),
        });
        return state;
    }
    if let Some(lead) = state.lead.as_mut() {
        apply(lead, event);
    }
    state
}

fn apply(lead: &mut Lead, event: &Event) {
    match event {
        Event::LeadOwnerAssigned(e) => {
            lead.owner = Some(e.owner);
            if matches!(e.basis, AssignmentBasis::Reassignment { .. })
                && let Some(r) = lead.reassignment.take()
            {
                lead.closed_reassignments.insert(r.id);
            }
        }
        Event::DuplicateRegistrationReceived(e) if !lead.registrants.contains(&e.registered_by) => {
            lead.registrants.push(e.registered_by);
        }
        Event::OwnershipConflictOpened(e) => {
            lead.conflict = Some(OpenConflict {
                id: e.conflict_id,
                claimants: e.claimants.clone(),
            })
        }
        Event::OwnershipConflictDecided(_) => lead.conflict = None,
        Event::ReassignmentRequested(e) => {
            lead.reassignment = Some(PendingReassignment {
                id: e.reassignment_id,
                from: e.from,
                to: e.to,
                approvals: BTreeSet::new(),
                expires_at: e.expires_at,
            })
        }
        Event::ReassignmentApproved(e) => {
            if let Some(r) = lead
                .reassignment
                .as_mut()
                .filter(|r| r.id == e.reassignment_id)
            {
                r.approvals.insert(e.party.into());
            }
        }
        Event::ReassignmentDenied(ReassignmentDenied {
            reassignment_id: id,
            ..
        })
        | Event::ReassignmentExpired(ReassignmentExpired {
            reassignment_id: id,
            ..
        }) => {
            if lead.reassignment.as_ref().is_some_and(|r| r.id == *id) {
                lead.reassignment = None;
            }
            lead.closed_reassignments.insert(*id);
        }
        Event::VisitLogged(e) => {
            lead.visits += 1;
            if !lead.has_insider() && e.kind.in_person() {
                lead.visits_without_insider += 1;
            }
            if lead.company_level == Level::C && lead.personal_level == Level::C {
                lead.stagnant_visits += 1;
            }
        }
        Event::KeyPersonRecorded(e) => {
            let insider = lead
                .key_persons
                .get(&e.key_person_id)
                .is_some_and(|k| k.insider);
            lead.key_persons.insert(
                e.key_person_id,
                KeyPerson {
                    name: e.name.clone(),
                    role: e.role,
                    insider,
                },
            );
        }
        Event::InsiderDeveloped(e) => {
            if let Some(k) = lead.key_persons.get_mut(&e.key_person_id) {
                k.insider = true;
            }
            lead.visits_without_insider = 0;
            lead.insider_escalated = false;
        }
        Event::RelationshipAssessed(e) => {
            lead.company_level = e.company;
            lead.personal_level = e.personal;
            if e.company != Level::C || e.personal != Level::C {
                lead.stagnant_visits = 0;
            }
        }
        Event::CriterionMet(e) => {
            lead.criteria.insert(e.criterion);
        }
        Event::LeadDetailsUpdated(e) => {
            if let Some(v) = &e.location {
                lead.location = v.clone();
            }
            if let Some(v) = &e.contact {
                lead.contact = v.clone();
            }
            if let Some(v) = &e.need {
                lead.need = v.clone();
            }
            if let Some(v) = e.purchase_mode {
                lead.purchase_mode = v;
            }
            if let Some(v) = e.industry {
                lead.industry = v;
            }
        }
        Event::InsiderEscalationRaised(_) => lead.insider_escalated = true,
        Event::StagnationReviewOpened(_) => lead.stagnation_review_open = true,
        Event::StagnationReviewDecided(_) => {
            lead.stagnation_review_open = false;
            lead.stagnant_visits = 0;
        }
        Event::ValidInfoDeclared(e) => {
            lead.declaration = Some(Declaration {
                id: e.declaration_id,
                kind: DeclarationKind::ValidInfo,
                state: DeclarationState::AwaitingReview,
                tier: None,
            })
        }
        Event::ProspectDeclared(e) => {
            lead.declaration = Some(Declaration {
                id: e.declaration_id,
                kind: DeclarationKind::Prospect,
                state: DeclarationState::AwaitingReview,
                tier: Some(e.tier),
            });
            lead.tier = Some(e.tier);
            lead.amount_cny = Some(e.amount_cny);
        }
        Event::DeclarationReviewed(e) => {
            if let Some(d) = lead
                .declaration
                .as_mut()
                .filter(|d| d.id == e.declaration_id)
            {
                d.state = if e.approved {
                    DeclarationState::Approved
                } else {
                    DeclarationState::Returned
                };
            }
        }
        Event::DeclarationFiled(e) => {
            if let Some(d) = lead
                .declaration
                .as_mut()
                .filter(|d| d.id == e.declaration_id)
            {
                d.state = DeclarationState::Filed;
            }
        }
        Event::DeclarationWithdrawn(e) => {
            if let Some(d) = lead
                .declaration
                .as_mut()
                .filter(|d| d.id == e.declaration_id)
            {
                d.state = DeclarationState::Withdrawn;
            }
        }
        Event::StageChanged(e) => {
            if matches!(e.to, Stage::Suspended | Stage::Lost) {
                lead.stage_before_exit = Some(e.from);
            } else if matches!(e.from, Stage::Suspended | Stage::Lost) {
                lead.stage_before_exit = None;
            }
            lead.stage = e.to;
        }
        Event::ContractSubmitted(e) => {
            lead.contract = Some(Contract {
                id: e.contract_id,
                amount_cny: e.amount_cny,
                content_hash: e.content_hash.clone(),
                reviewers: e.reviewers.clone(),
                approvals: BTreeMap::new(),
                rejected: false,
                signed: false,
                orders: 0,
            })
        }
        Event::ContractAmended(e) => {
            if let Some(c) = lead.contract.as_mut() {
                c.amount_cny = e.amount_cny;
                c.content_hash = e.content_hash.clone();
                c.approvals.clear();
                c.rejected = false;
            }
        }
        Event::ContractApproved(e) => {
            if let Some(c) = lead.contract.as_mut() {
                c.approvals.insert(e.seat.clone(), e.content_hash.clone());
            }
        }
        Event::ContractRejected(_) => {
            if let Some(c) = lead.contract.as_mut() {
                c.rejected = true;
            }
        }
        Event::ContractSigned(e) => {
            if let Some(c) = lead.contract.as_mut() {
                c.signed = true;
            }
            lead.amount_cny = Some(e.amount_cny);
        }
        Event::OrderProcessed(_) => {
            if let Some(c) = lead.contract.as_mut() {
                c.orders += 1;
            }
        }
        _ => {}
    }
}
