//! What people (and sagas) ask of a lead. Ids of things a command creates are given by the caller,
//! so a retried command creates the same thing.

use crate::events::ConflictGround;
use crate::lead::Criterion;
use crate::model::*;
use chrono::{DateTime, Utc};
use funnel_types::{
    ConflictId, ContractId, DeclarationId, KeyPersonId, LeadId, OfficeId, ReassignmentId, StaffId,
    VisitId,
};

/// Register a lead (报备). The lead id is derived from the customer key.
#[derive(Clone, Debug, PartialEq)]
pub struct Register {
    pub customer_name: String,
    pub project_name: String,
    pub industry: Industry,
    pub purchase_mode: PurchaseMode,
    pub channel: Channel,
    pub office: OfficeId,
    pub location: String,
    pub contact: Contact,
    pub need: String,
}

/// Log a visit or other follow-up (Table 2).
#[derive(Clone, Debug, PartialEq)]
pub struct LogVisit {
    pub visit_id: VisitId,
    pub kind: ContactKind,
    pub visited_at: DateTime<Utc>,
    pub purposes: Vec<VisitPurpose>,
    pub summary: String,
    pub information_gained: String,
    pub customer_feedback: String,
    pub next_step: String,
    pub met: Vec<KeyPersonId>,
}

/// Record or update a key person (Table 5).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordKeyPerson {
    pub key_person_id: KeyPersonId,
    pub name: String,
    pub title: String,
    pub role: KeyPersonRole,
    pub phone: String,
    pub personal_notes: String,
    /// The relationship levels (company, personal) with this person, assessed in the same
    /// command: the person and the levels are recorded together or not at all.
    pub levels: Option<(Level, Level)>,
}

/// Correct or complete the lead's record (Table 1). `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateDetails {
    pub location: Option<String>,
    pub contact: Option<Contact>,
    pub need: Option<String>,
    pub purchase_mode: Option<PurchaseMode>,
    pub industry: Option<Industry>,
    pub purchase_scale: Option<String>,
}

/// The office manager's decision in a stagnation review (§8).
#[derive(Clone, Debug, PartialEq)]
pub enum StagnationDecision {
    ChangeKeyPerson {
        key_person_id: Option<KeyPersonId>,
    },
    ChangeEngineer {
        to: StaffId,
        reassignment_id: ReassignmentId,
        evidence: String,
    },
    Suspend,
}

/// Every command on a lead.
#[derive(Clone, Debug, PartialEq)]
pub enum LeadCommand {
    Register(Register),
    /// Office manager assigns an event or passive lead (§5.3, §5.4).
    Assign {
        owner: StaffId,
        reason: String,
    },
    DecideConflict {
        conflict_id: ConflictId,
        winner: StaffId,
        grounds: Vec<ConflictGround>,
        note: String,
    },
    RequestReassignment {
        reassignment_id: ReassignmentId,
        to: StaffId,
        evidence: String,
    },
    ApproveReassignment {
        reassignment_id: ReassignmentId,
        note: String,
    },
    DenyReassignment {
        reassignment_id: ReassignmentId,
        reason: String,
    },
    ExpireReassignment {
        reassignment_id: ReassignmentId,
    },
    LogVisit(LogVisit),
    RecordKeyPerson(RecordKeyPerson),
    MarkInsider {
        key_person_id: KeyPersonId,
        note: String,
    },
    AssessRelationship {
        company: Level,
        personal: Level,
        key_person_id: Option<KeyPersonId>,
        note: String,
    },
    RecordCriterion {
        criterion: Criterion,
        evidence: String,
    },
    UpdateDetails(UpdateDetails),
    DecideStagnationReview {
        decision: StagnationDecision,
        note: String,
    },
    DeclareValidInfo {
        declaration_id: DeclarationId,
        note: String,
    },
    DeclareProspect {
        declaration_id: DeclarationId,
        amount_cny: u64,
        flags: QualitativeFlags,
        quoting_strategy: String,
    },
    ReviewDeclaration {
        declaration_id: DeclarationId,
        approve: bool,
        note: String,
    },
    FileDeclaration {
        declaration_id: DeclarationId,
    },
    NoteNegotiation {
        note: String,
        executives_invited: bool,
    },
    SubmitContract {
        contract_id: ContractId,
        amount_cny: u64,
        content_hash: String,
    },
    AmendContract {
        contract_id: ContractId,
        amount_cny: u64,
        content_hash: String,
        reason: String,
    },
    ReviewContract {
        contract_id: ContractId,
        seat: String,
        approve: bool,
        content_hash: String,
        reasons: String,
    },
    SignContract {
        contract_id: ContractId,
        content_hash: String,
    },
    ProcessOrder {
        contract_id: ContractId,
        order_ref: String,
    },
    LogAfterSalesCare {
        note: String,
    },
    Suspend {
        reason: String,
    },
    MarkLost {
        reason: String,
        competitor: String,
    },
    Reactivate {
        reason: String,
    },
    /// Reserve the current-version customer key of a lead registered under an older key version
    /// for that lead, on the stream the key names (system only: run once per such lead).
    ReserveKey {
        lead_id: LeadId,
        registered_key: String,
        registered_key_version: u8,
        office: OfficeId,
    },
}

impl LeadCommand {
    /// A stable snake_case name, used in refusal records and logs.
    pub fn name(&self) -> &'static str {
        use LeadCommand::*;
        match self {
            Register(_) => "register",
            Assign { .. } => "assign",
            DecideConflict { .. } => "decide_conflict",
            RequestReassignment { .. } => "request_reassignment",
            ApproveReassignment { .. } => "approve_reassignment",
            DenyReassignment { .. } => "deny_reassignment",
            ExpireReassignment { .. } => "expire_reassignment",
            LogVisit(_) => "log_visit",
            RecordKeyPerson(_) => "record_key_person",
            MarkInsider { .. } => "mark_insider",
            AssessRelationship { .. } => "assess_relationship",
            RecordCriterion { .. } => "record_criterion",
            UpdateDetails(_) => "update_details",
            DecideStagnationReview { .. } => "decide_stagnation_review",
            DeclareValidInfo { .. } => "declare_valid_info",
            DeclareProspect { .. } => "declare_prospect",
            ReviewDeclaration { .. } => "review_declaration",
            FileDeclaration { .. } => "file_declaration",
            NoteNegotiation { .. } => "note_negotiation",
            SubmitContract { .. } => "submit_contract",
            AmendContract { .. } => "amend_contract",
            ReviewContract { .. } => "review_contract",
            SignContract { .. } => "sign_contract",
            ProcessOrder { .. } => "process_order",
            LogAfterSalesCare { .. } => "log_after_sales_care",
            Suspend { .. } => "suspend",
            MarkLost { .. } => "mark_lost",
            Reactivate { .. } => "reactivate",
            ReserveKey { .. } => "reserve_key",
        }
    }

    /// Whether the command acts on a registered lead. Registering and reserving a key name a
    /// customer instead, so their refusals record no refused touch of the lead found there.
    pub fn acts_on_lead(&self) -> bool {
        use LeadCommand::*;
        match self {
            Register(_) | ReserveKey { .. } => false,
            Assign { .. }
            | DecideConflict { .. }
            | RequestReassignment { .. }
            | ApproveReassignment { .. }
            | DenyReassignment { .. }
            | ExpireReassignment { .. }
            | LogVisit(_)
            | RecordKeyPerson(_)
            | MarkInsider { .. }
            | AssessRelationship { .. }
            | RecordCriterion { .. }
            | UpdateDetails(_)
            | DecideStagnationReview { .. }
            | DeclareValidInfo { .. }
            | DeclareProspect { .. }
            | ReviewDeclaration { .. }
            | FileDeclaration { .. }
            | NoteNegotiation { .. }
            | SubmitContract { .. }
            | AmendContract { .. }
            | ReviewContract { .. }
            | SignContract { .. }
            | ProcessOrder { .. }
            | LogAfterSalesCare { .. }
            | Suspend { .. }
            | MarkLost { .. }
            | Reactivate { .. } => true,
        }
    }

    /// Members of staff the command names, whom the engine must look up for the decider.
    pub fn referenced_staff(&self) -> Vec<StaffId> {
        use LeadCommand::*;
        match self {
            Assign { owner, .. } => vec![*owner],
            DecideConflict { winner, .. } => vec![*winner],
            RequestReassignment { to, .. } => vec![*to],
            DecideStagnationReview { decision, .. } => match decision {
                StagnationDecision::ChangeEngineer { to, .. } => vec![*to],
                StagnationDecision::ChangeKeyPerson { .. } | StagnationDecision::Suspend => {
                    Vec::new()
                }
            },
            Register(_)
            | ReserveKey { .. }
            | ApproveReassignment { .. }
            | DenyReassignment { .. }
            | ExpireReassignment { .. }
            | LogVisit(_)
            | RecordKeyPerson(_)
            | MarkInsider { .. }
            | AssessRelationship { .. }
            | RecordCriterion { .. }
            | UpdateDetails(_)
            | DeclareValidInfo { .. }
            | DeclareProspect { .. }
            | ReviewDeclaration { .. }
            | FileDeclaration { .. }
            | NoteNegotiation { .. }
            | SubmitContract { .. }
            | AmendContract { .. }
            | ReviewContract { .. }
            | SignContract { .. }
            | ProcessOrder { .. }
            | LogAfterSalesCare { .. }
            | Suspend { .. }
            | MarkLost { .. }
            | Reactivate { .. } => Vec::new(),
        }
    }
}
