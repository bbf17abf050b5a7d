//! Request bodies of the write endpoints: one DTO per command, with serde and JSON Schema, refusing
//! unknown fields. They live here, not in the domain, so the wire form of the API can evolve apart
//! from the deciders. Ids of things a command creates (a visit, a declaration …) may be given; when
//! absent they are derived from the command id, so a retried request creates the same thing.

use funnel_domain::events::{ConflictGround, PlannedVisit, SummaryLine};
use funnel_domain::lead::{self, Criterion, LeadCommand, StagnationDecision};
use funnel_domain::model::*;
use funnel_domain::plan::PlanCommand;
use funnel_domain::summary::SummaryCommand;
use funnel_types::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// `POST /leads`: register a lead (报备). The lead id is derived from customer and project.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterLead {
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

impl RegisterLead {
    pub fn into_command(self, _id: CommandId) -> LeadCommand {
        LeadCommand::Register(lead::Register {
            customer_name: self.customer_name,
            project_name: self.project_name,
            industry: self.industry,
            purchase_mode: self.purchase_mode,
            channel: self.channel,
            office: self.office,
            location: self.location,
            contact: self.contact,
            need: self.need,
        })
    }
}

/// A DTO whose fields are exactly those of a struct-like `LeadCommand` variant.
macro_rules! plain {
    ($($(#[$doc:meta])* $dto:ident => $variant:ident { $($(#[$m:meta])* $field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $dto { $($(#[$m])* pub $field: $ty,)* }

        impl $dto {
            pub fn into_command(self, _id: CommandId) -> LeadCommand {
                LeadCommand::$variant { $($field: self.$field),* }
            }
        }
    )*};
}

plain! {
    /// The office manager assigns an event or passive lead.
    Assign => Assign { owner: StaffId, #[serde(default)] reason: String }
    /// The office manager decides an ownership conflict.
    DecideConflict => DecideConflict {
        conflict_id: ConflictId, winner: StaffId, grounds: Vec<ConflictGround>,
        #[serde(default)] note: String,
    }
    ApproveReassignment => ApproveReassignment {
        reassignment_id: ReassignmentId, #[serde(default)] note: String,
    }
    DenyReassignment => DenyReassignment { reassignment_id: ReassignmentId, reason: String }
    ExpireReassignment => ExpireReassignment { reassignment_id: ReassignmentId }
    MarkInsider => MarkInsider { key_person_id: KeyPersonId, #[serde(default)] note: String }
    AssessRelationship => AssessRelationship {
        company: Level, personal: Level,
        #[serde(default)] key_person_id: Option<KeyPersonId>,
        #[serde(default)] note: String,
    }
    RecordCriterion => RecordCriterion { criterion: Criterion, evidence: String }
    ReviewDeclaration => ReviewDeclaration {
        declaration_id: DeclarationId, approve: bool, #[serde(default)] note: String,
    }
    FileDeclaration => FileDeclaration { declaration_id: DeclarationId }
    NoteNegotiation => NoteNegotiation { note: String, #[serde(default)] executives_invited: bool }
    AmendContract => AmendContract {
        contract_id: ContractId,
        #[schemars(range(min = 1, max = 10_000_000_000u64))] amount_cny: u64,
        content_hash: String, reason: String,
    }
    ReviewContract => ReviewContract {
        contract_id: ContractId, seat: String, approve: bool, content_hash: String,
        #[serde(default)] reasons: String,
    }
    SignContract => SignContract { contract_id: ContractId, content_hash: String }
    ProcessOrder => ProcessOrder { contract_id: ContractId, order_ref: String }
    LogAfterSalesCare => LogAfterSalesCare { note: String }
    Suspend => Suspend { reason: String }
    MarkLost => MarkLost { reason: String, #[serde(default)] competitor: String }
    Reactivate => Reactivate { reason: String }
}

/// The office manager asks to change the lead's owner.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestReassignment {
    #[serde(default)]
    pub reassignment_id: Option<ReassignmentId>,
    pub to: StaffId,
    pub evidence: String,
}

impl RequestReassignment {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        LeadCommand::RequestReassignment {
            reassignment_id: self
                .reassignment_id
                .unwrap_or_else(|| ReassignmentId::derived(&id.to_string())),
            to: self.to,
            evidence: self.evidence,
        }
    }
}

/// A visit or other follow-up (Table 2).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogVisit {
    #[serde(default)]
    pub visit_id: Option<VisitId>,
    pub kind: ContactKind,
    pub visited_at: chrono::DateTime<chrono::Utc>,
    pub purposes: Vec<VisitPurpose>,
    pub summary: String,
    #[serde(default)]
    pub information_gained: String,
    #[serde(default)]
    pub customer_feedback: String,
    #[serde(default)]
    pub next_step: String,
    #[serde(default)]
    pub met: Vec<KeyPersonId>,
}

impl LogVisit {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        LeadCommand::LogVisit(lead::LogVisit {
            visit_id: self
                .visit_id
                .unwrap_or_else(|| VisitId::derived(&id.to_string())),
            kind: self.kind,
            visited_at: self.visited_at,
            purposes: self.purposes,
            summary: self.summary,
            information_gained: self.information_gained,
            customer_feedback: self.customer_feedback,
            next_step: self.next_step,
            met: self.met,
        })
    }
}

/// Record or update a key person (Table 5); give `key_person_id` to update one.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordKeyPerson {
    #[serde(default)]
    pub key_person_id: Option<KeyPersonId>,
    pub name: String,
    pub title: String,
    pub role: KeyPersonRole,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub personal_notes: String,
    /// The relationship levels with this person (Table 5), recorded in the same command: the
    /// person and the levels are kept together or not at all.
    #[serde(default)]
    pub levels: Option<KeyPersonLevels>,
}

/// The company and personal relationship levels with a key person.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPersonLevels {
    pub company: Level,
    pub personal: Level,
}

impl RecordKeyPerson {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        LeadCommand::RecordKeyPerson(lead::RecordKeyPerson {
            key_person_id: self
                .key_person_id
                .unwrap_or_else(|| KeyPersonId::derived(&id.to_string())),
            name: self.name,
            title: self.title,
            role: self.role,
            phone: self.phone,
            personal_notes: self.personal_notes,
            levels: self.levels.map(|l| (l.company, l.personal)),
        })
    }
}

/// Correct or complete the lead's record; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateDetails {
    pub location: Option<String>,
    pub contact: Option<Contact>,
    pub need: Option<String>,
    pub purchase_mode: Option<PurchaseMode>,
    pub industry: Option<Industry>,
    pub purchase_scale: Option<String>,
}

impl UpdateDetails {
    pub fn into_command(self, _id: CommandId) -> LeadCommand {
        LeadCommand::UpdateDetails(lead::UpdateDetails {
            location: self.location,
            contact: self.contact,
            need: self.need,
            purchase_mode: self.purchase_mode,
            industry: self.industry,
            purchase_scale: self.purchase_scale,
        })
    }
}

/// The office manager's decision in a stagnation review.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StagnationChoice {
    ChangeKeyPerson {
        #[serde(default)]
        key_person_id: Option<KeyPersonId>,
    },
    ChangeEngineer {
        to: StaffId,
        #[serde(default)]
        reassignment_id: Option<ReassignmentId>,
        evidence: String,
    },
    Suspend,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideStagnationReview {
    pub decision: StagnationChoice,
    #[serde(default)]
    pub note: String,
}

impl DecideStagnationReview {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        let decision = match self.decision {
            StagnationChoice::ChangeKeyPerson { key_person_id } => {
                StagnationDecision::ChangeKeyPerson { key_person_id }
            }
            StagnationChoice::ChangeEngineer {
                to,
                reassignment_id,
                evidence,
            } => StagnationDecision::ChangeEngineer {
                to,
                reassignment_id: reassignment_id
                    .unwrap_or_else(|| ReassignmentId::derived(&id.to_string())),
                evidence,
            },
            StagnationChoice::Suspend => StagnationDecision::Suspend,
        };
        LeadCommand::DecideStagnationReview {
            decision,
            note: self.note,
        }
    }
}

/// A valid-info declaration (有效信息申报).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareValidInfo {
    #[serde(default)]
    pub declaration_id: Option<DeclarationId>,
    #[serde(default)]
    pub note: String,
}

impl DeclareValidInfo {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        LeadCommand::DeclareValidInfo {
            declaration_id: self
                .declaration_id
                .unwrap_or_else(|| DeclarationId::derived(&id.to_string())),
            note: self.note,
        }
    }
}

/// A prospect declaration (准客户申报, Table 6).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareProspect {
    #[serde(default)]
    pub declaration_id: Option<DeclarationId>,
    #[schemars(range(min = 1, max = 10_000_000_000u64))]
    pub amount_cny: u64,
    #[serde(default)]
    pub flags: QualitativeFlags,
    pub quoting_strategy: String,
}

impl DeclareProspect {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        LeadCommand::DeclareProspect {
            declaration_id: self
                .declaration_id
                .unwrap_or_else(|| DeclarationId::derived(&id.to_string())),
            amount_cny: self.amount_cny,
            flags: self.flags,
            quoting_strategy: self.quoting_strategy,
        }
    }
}

/// Submit a contract for review (合同评审).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitContract {
    #[serde(default)]
    pub contract_id: Option<ContractId>,
    #[schemars(range(min = 1, max = 10_000_000_000u64))]
    pub amount_cny: u64,
    pub content_hash: String,
}

impl SubmitContract {
    pub fn into_command(self, id: CommandId) -> LeadCommand {
        LeadCommand::SubmitContract {
            contract_id: self
                .contract_id
                .unwrap_or_else(|| ContractId::derived(&id.to_string())),
            amount_cny: self.amount_cny,
            content_hash: self.content_hash,
        }
    }
}

/// Every lead command but registration, by its name in `/leads/{id}/commands/{name}`.
macro_rules! lead_commands {
    ($($name:literal => $dto:ty,)*) => {
        /// The command names, in the order of `LeadCommand`.
        pub const LEAD_COMMANDS: &[&str] = &[$($name),*];

        /// The command `name` from its JSON body, as `POST /leads/{id}/commands/<name>` reads it;
        /// `None` for a name no command has.
        pub(crate) fn lead_command_from_json(
            name: &str,
            body: &[u8],
            id: funnel_types::CommandId,
        ) -> Option<Result<LeadCommand, serde_json::Error>> {
            match name {
                $($name => Some(
                    crate::extract::from_json::<$dto>(body).map(|b| b.into_command(id)),
                ),)*
                _ => None,
            }
        }

        /// One write declaration per command, at `/leads/{id}/commands/<name>`.
        pub(crate) fn lead_command_writes(out: &mut Vec<crate::routes::write::WriteRoute>) {
            use crate::routes::write::{LeadPath, Write};
            $(out.push(
                Write::post(
                    concat!("/leads/{id}/commands/", $name),
                    concat!("lead_", $name),
                    $name,
                    concat!("Lead command `", $name, "`"),
                )
                .to(|LeadPath(lead), b: $dto, id| funnel_engine::Command::Lead {
                    lead_id: Some(lead),
                    cmd: b.into_command(id),
                }),
            );)*
        }
    };
}

lead_commands! {
    "assign" => Assign,
    "decide_conflict" => DecideConflict,
    "request_reassignment" => RequestReassignment,
    "approve_reassignment" => ApproveReassignment,
    "deny_reassignment" => DenyReassignment,
    "expire_reassignment" => ExpireReassignment,
    "log_visit" => LogVisit,
    "record_key_person" => RecordKeyPerson,
    "mark_insider" => MarkInsider,
    "assess_relationship" => AssessRelationship,
    "record_criterion" => RecordCriterion,
    "update_details" => UpdateDetails,
    "decide_stagnation_review" => DecideStagnationReview,
    "declare_valid_info" => DeclareValidInfo,
    "declare_prospect" => DeclareProspect,
    "review_declaration" => ReviewDeclaration,
    "file_declaration" => FileDeclaration,
    "note_negotiation" => NoteNegotiation,
    "submit_contract" => SubmitContract,
    "amend_contract" => AmendContract,
    "review_contract" => ReviewContract,
    "sign_contract" => SignContract,
    "process_order" => ProcessOrder,
    "log_after_sales_care" => LogAfterSalesCare,
    "suspend" => Suspend,
    "mark_lost" => MarkLost,
    "reactivate" => Reactivate,
}

/// `POST /plans`: the calling engineer submits (or revises) a weekly or monthly visit plan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitPlan {
    pub period: Period,
    pub visits: Vec<PlannedVisit>,
}

/// `POST /plans/overdue`: a plan's deadline passed with nothing submitted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkPlanOverdue {
    pub engineer: StaffId,
    pub office: OfficeId,
    pub period: Period,
}

/// A body with nothing in it (`{}` or empty).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `POST /summaries`: the assistant compiles an office summary (Table 3).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompileSummary {
    pub office: OfficeId,
    pub period: Period,
    pub lines: Vec<SummaryLine>,
}

/// `POST /summaries/{id}/verify`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySummary {
    #[serde(default)]
    pub note: String,
}

/// `POST /summaries/{id}/review`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewSummary {
    pub approve: bool,
    #[serde(default)]
    pub note: String,
}

impl SubmitPlan {
    pub fn into_command(self) -> PlanCommand {
        PlanCommand::Submit {
            period: self.period,
            visits: self.visits,
        }
    }
}

impl MarkPlanOverdue {
    pub fn into_command(self) -> PlanCommand {
        PlanCommand::MarkOverdue {
            engineer: self.engineer,
            office: self.office,
            period: self.period,
        }
    }
}

impl CompileSummary {
    pub fn into_command(self) -> SummaryCommand {
        SummaryCommand::Compile {
            office: self.office,
            period: self.period,
            lines: self.lines,
        }
    }
}
