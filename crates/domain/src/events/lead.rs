//! Events of a lead's life (process §3–§9): registration and ownership, visits and key persons,
//! criteria, declarations, stages, contract review and the side exits.

use super::Event;
use crate::lead::Criterion;
use crate::model::*;
use chrono::{DateTime, Utc};
use funnel_types::{
    ConflictId, ContractId, DeclarationId, KeyPersonId, LeadId, OfficeId, ReassignmentId, Role,
    StaffId, VisitId,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadRegistered {
    pub lead_id: LeadId,
    /// Normalised customer key (see `customer_key`); the lead id is derived from it.
    pub customer_key: String,
    /// The rule `customer_key` was made by: 1 (NFKC, lower case, letters and digits: every lead
    /// registered before version 2 of this event) or 2 (version 1 with look-alikes folded).
    pub key_version: u8,
    pub customer_name: String,
    /// Empty for a company-level lead (group and strategic purchasing).
    pub project_name: String,
    pub industry: Industry,
    pub purchase_mode: PurchaseMode,
    pub channel: Channel,
    pub office: OfficeId,
    pub location: String,
    pub contact: Contact,
    /// The customer's explicit need for building intercom, in their words.
    pub need: String,
    pub registered_by: StaffId,
    pub registered_at: DateTime<Utc>,
}

/// A customer key of the current key version was reserved for a lead registered under an older
/// one, so that a look-alike of its customer registered later collides with it. Recorded, alone,
/// on the stream the reserved key names (`lead-<uuid5(customer_key)>`), which therefore never holds
/// a lead of its own: registrations that arrive there are decided against `lead_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadKeyReserved {
    /// The lead the key now leads to.
    pub lead_id: LeadId,
    /// The reserved key.
    pub customer_key: String,
    pub key_version: u8,
    /// The lead's own key, as its registration recorded it.
    pub registered_key: String,
    pub registered_key_version: u8,
    /// The lead's office.
    pub office: OfficeId,
}

/// Why a lead has the owner it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AssignmentBasis {
    /// Self-found lead: first to register owns it (§5.1).
    FirstToRegister,
    /// Event or passive lead assigned by the office manager (§5.3, §5.4).
    ManagerAssignment { reason: String },
    /// Decided in an ownership conflict (§5.2).
    ConflictDecision { conflict_id: ConflictId },
    /// Changed with the sales department's and the original owner's approval (§5.6).
    Reassignment { reassignment_id: ReassignmentId },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadOwnerAssigned {
    pub lead_id: LeadId,
    pub owner: StaffId,
    pub previous: Option<StaffId>,
    pub basis: AssignmentBasis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRegistrationReceived {
    pub lead_id: LeadId,
    pub registered_by: StaffId,
    pub customer_name: String,
    pub project_name: String,
    pub channel: Channel,
    pub registered_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnershipConflictOpened {
    pub lead_id: LeadId,
    pub conflict_id: ConflictId,
    /// The engineers who claim the lead, first registrant first.
    pub claimants: Vec<StaffId>,
    pub opened_at: DateTime<Utc>,
}

/// Grounds the manual accepts for deciding a conflict (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictGround {
    /// The winner's contact with the customer is deeper (role and depth of contact).
    DeeperContact,
    /// The winner reached the customer's key decision maker.
    ReachedDecisionMaker,
    /// The winner registered first.
    RegisteredFirst,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnershipConflictDecided {
    pub lead_id: LeadId,
    pub conflict_id: ConflictId,
    pub winner: StaffId,
    pub decided_by: StaffId,
    pub grounds: Vec<ConflictGround>,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TouchRefused {
    pub lead_id: LeadId,
    pub attempted_by: StaffId,
    pub role: Role,
    /// The command that was refused, e.g. `log_visit`.
    pub action: String,
    pub owner: Option<StaffId>,
    /// The refusal code given.
    pub code: String,
}

/// Whose approval a reassignment needs (§5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalParty {
    SalesDepartment,
    OriginalOwner,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignmentRequested {
    pub lead_id: LeadId,
    pub reassignment_id: ReassignmentId,
    pub from: StaffId,
    pub to: StaffId,
    pub requested_by: StaffId,
    /// The evidence for the change, on record (§5.6).
    pub evidence: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignmentApproved {
    pub lead_id: LeadId,
    pub reassignment_id: ReassignmentId,
    pub party: ApprovalParty,
    pub approved_by: StaffId,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignmentDenied {
    pub lead_id: LeadId,
    pub reassignment_id: ReassignmentId,
    pub party: ApprovalParty,
    pub denied_by: StaffId,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignmentExpired {
    pub lead_id: LeadId,
    pub reassignment_id: ReassignmentId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitLogged {
    pub lead_id: LeadId,
    pub visit_id: VisitId,
    pub engineer: StaffId,
    pub kind: ContactKind,
    pub visited_at: DateTime<Utc>,
    pub purposes: Vec<VisitPurpose>,
    /// What happened: opening, agenda, positioning, background questions.
    pub summary: String,
    pub information_gained: String,
    pub customer_feedback: String,
    /// The agreed next step (约定下次会面).
    pub next_step: String,
    /// Key persons met.
    pub met: Vec<KeyPersonId>,
    /// 1-based count of visits on this lead, this one included.
    pub visit_number: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPersonRecorded {
    pub lead_id: LeadId,
    pub key_person_id: KeyPersonId,
    pub name: String,
    pub title: String,
    pub role: KeyPersonRole,
    pub phone: String,
    /// Personal information (Table 5): background, interests, relations.
    pub personal_notes: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsiderDeveloped {
    pub lead_id: LeadId,
    pub key_person_id: KeyPersonId,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationshipAssessed {
    pub lead_id: LeadId,
    /// 公司关系.
    pub company: Level,
    /// 个人关系 with the key person.
    pub personal: Level,
    pub key_person_id: Option<KeyPersonId>,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionMet {
    pub lead_id: LeadId,
    pub criterion: Criterion,
    pub evidence: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadDetailsUpdated {
    pub lead_id: LeadId,
    pub location: Option<String>,
    pub contact: Option<Contact>,
    pub need: Option<String>,
    pub purchase_mode: Option<PurchaseMode>,
    pub industry: Option<Industry>,
    /// Table 1: purchase scale and product requirements.
    pub purchase_scale: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsiderEscalationRaised {
    pub lead_id: LeadId,
    pub owner: StaffId,
    pub visits_without_insider: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StagnationReviewOpened {
    pub lead_id: LeadId,
    pub owner: StaffId,
    pub visits: u32,
}

/// What a stagnation review decides (§8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StagnationOutcome {
    ChangeKeyPerson {
        key_person_id: Option<KeyPersonId>,
    },
    /// Opens a reassignment, which still needs both approvals (§5.6).
    ChangeEngineer {
        to: StaffId,
        reassignment_id: ReassignmentId,
    },
    Suspend,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StagnationReviewDecided {
    pub lead_id: LeadId,
    pub decided_by: StaffId,
    pub outcome: StagnationOutcome,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidInfoDeclared {
    pub lead_id: LeadId,
    pub declaration_id: DeclarationId,
    pub declared_by: StaffId,
    /// The criteria met at declaration time, as evidence.
    pub criteria: Vec<Criterion>,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProspectDeclared {
    pub lead_id: LeadId,
    pub declaration_id: DeclarationId,
    pub declared_by: StaffId,
    /// Expected purchase amount in whole yuan.
    pub amount_cny: u64,
    pub tier: Tier,
    pub flags: QualitativeFlags,
    pub company_level: Level,
    pub personal_level: Level,
    /// 报价策略.
    pub quoting_strategy: String,
    pub criteria: Vec<Criterion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclarationReviewed {
    pub lead_id: LeadId,
    pub declaration_id: DeclarationId,
    pub reviewed_by: StaffId,
    pub approved: bool,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclarationFiled {
    pub lead_id: LeadId,
    pub declaration_id: DeclarationId,
    pub filed_by: StaffId,
    /// For strategic prospects: the key-account department is brought in (§2).
    pub key_account_involved: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclarationWithdrawn {
    pub lead_id: LeadId,
    pub declaration_id: DeclarationId,
    /// Where the lead went: `lost` or `suspended`.
    pub lead_stage: Stage,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageChanged {
    pub lead_id: LeadId,
    pub office: OfficeId,
    pub from: Stage,
    pub to: Stage,
    pub owner: Option<StaffId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NegotiationNoted {
    pub lead_id: LeadId,
    pub author: StaffId,
    /// Basis, strategy, alternative plans, concessions (§9).
    pub note: String,
    /// Executives invited to join.
    pub executives_invited: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractSubmitted {
    pub lead_id: LeadId,
    pub contract_id: ContractId,
    pub amount_cny: u64,
    /// SHA-256 of the contract text, hex: approvals are bound to it.
    pub content_hash: String,
    /// Seats that must all approve.
    pub reviewers: Vec<String>,
    pub submitted_by: StaffId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractAmended {
    pub lead_id: LeadId,
    pub contract_id: ContractId,
    pub amount_cny: u64,
    pub content_hash: String,
    pub amended_by: StaffId,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractApproved {
    pub lead_id: LeadId,
    pub contract_id: ContractId,
    pub seat: String,
    pub approved_by: StaffId,
    /// The exact content approved.
    pub content_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractRejected {
    pub lead_id: LeadId,
    pub contract_id: ContractId,
    pub seat: String,
    pub rejected_by: StaffId,
    pub content_hash: String,
    pub reasons: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractSigned {
    pub lead_id: LeadId,
    pub contract_id: ContractId,
    pub amount_cny: u64,
    pub content_hash: String,
    pub signed_by: StaffId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderProcessed {
    pub lead_id: LeadId,
    pub contract_id: ContractId,
    pub order_ref: String,
    pub processed_by: StaffId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterSalesCareLogged {
    pub lead_id: LeadId,
    pub by: StaffId,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadSuspended {
    pub lead_id: LeadId,
    pub by: StaffId,
    pub from: Stage,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadLost {
    pub lead_id: LeadId,
    pub by: StaffId,
    pub from: Stage,
    pub reason: String,
    pub competitor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadReactivated {
    pub lead_id: LeadId,
    pub by: StaffId,
    /// The stage the lead returns to: the one it left.
    pub to: Stage,
    pub reason: String,
}

/// The lead an event is about.
pub(super) fn lead_of(e: &Event) -> Option<LeadId> {
    use Event::*;
    Some(match e {
        LeadRegistered(x) => x.lead_id,
        LeadOwnerAssigned(x) => x.lead_id,
        DuplicateRegistrationReceived(x) => x.lead_id,
        OwnershipConflictOpened(x) => x.lead_id,
        OwnershipConflictDecided(x) => x.lead_id,
        TouchRefused(x) => x.lead_id,
        ReassignmentRequested(x) => x.lead_id,
        ReassignmentApproved(x) => x.lead_id,
        ReassignmentDenied(x) => x.lead_id,
        ReassignmentExpired(x) => x.lead_id,
        VisitLogged(x) => x.lead_id,
        KeyPersonRecorded(x) => x.lead_id,
        InsiderDeveloped(x) => x.lead_id,
        RelationshipAssessed(x) => x.lead_id,
        CriterionMet(x) => x.lead_id,
        LeadDetailsUpdated(x) => x.lead_id,
        InsiderEscalationRaised(x) => x.lead_id,
        StagnationReviewOpened(x) => x.lead_id,
        StagnationReviewDecided(x) => x.lead_id,
        ValidInfoDeclared(x) => x.lead_id,
        ProspectDeclared(x) => x.lead_id,
        DeclarationReviewed(x) => x.lead_id,
        DeclarationFiled(x) => x.lead_id,
        DeclarationWithdrawn(x) => x.lead_id,
        StageChanged(x) => x.lead_id,
        NegotiationNoted(x) => x.lead_id,
        ContractSubmitted(x) => x.lead_id,
        ContractAmended(x) => x.lead_id,
        ContractApproved(x) => x.lead_id,
        ContractRejected(x) => x.lead_id,
        ContractSigned(x) => x.lead_id,
        OrderProcessed(x) => x.lead_id,
        AfterSalesCareLogged(x) => x.lead_id,
        LeadSuspended(x) => x.lead_id,
        LeadLost(x) => x.lead_id,
        LeadReactivated(x) => x.lead_id,
        _ => return None,
    })
}
