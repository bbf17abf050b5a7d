//! Every fact Funnel records, as one enum of typed payloads. Each event type has a stable dotted
//! name (`lead.registered`) and a schema version; together they are a wire contract with a JSON
//! Schema in `schemas/events/`, kept in step by a test in `funnel-codec`.

mod lead;
mod org;
mod privacy;
mod work;
mod workflow;

pub use lead::*;
pub use org::*;
pub use privacy::*;
pub use work::*;
pub use workflow::*;

use serde::{Deserialize, Serialize};

macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident = $name:literal v $ver:literal,)*) => {
        /// Every event, tagged by its type name on the wire: `{"type": "lead.registered", "data": {…}}`.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $($(#[$doc])* #[serde(rename = $name)] $variant($variant),)*
        }

        impl Event {
            /// The stable type name.
            pub fn event_type(&self) -> &'static str {
                match self { $(Event::$variant(_) => $name,)* }
            }

            /// The current schema version of this event type.
            pub fn schema_version(&self) -> u16 {
                match self { $(Event::$variant(_) => $ver,)* }
            }
        }

        /// Deserialises the payload of an event of type `event_type` (its current schema version) from
        /// any serde format, without going through the tagged form. `None` for an unknown type.
        pub fn deserialize_payload<'de, D: serde::Deserializer<'de>>(event_type: &str, d: D) -> Option<Result<Event, D::Error>> {
            match event_type {
                $($name => Some(<$variant as serde::Deserialize>::deserialize(d).map(Event::$variant)),)*
                _ => None,
            }
        }

        /// Every event type name with its current schema version.
        pub const EVENT_TYPES: &[(&str, u16)] = &[$(($name, $ver),)*];

        /// The JSON Schema of each event type's payload, by type name and version.
        pub fn event_schemas(generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, u16, schemars::Schema)> {
            vec![$(($name, $ver, generator.root_schema_for::<$variant>()),)*]
        }

        $(impl $variant {
            /// The stable type name of this event.
            pub const TYPE: &'static str = $name;
        })*

        $(impl From<$variant> for Event {
            fn from(e: $variant) -> Event { Event::$variant(e) }
        })*
    };
}

events! {
    /// A regional office opened.
    OfficeOpened = "office.opened" v 1,
    /// A member of staff joined.
    StaffJoined = "staff.joined" v 1,
    /// A member of staff's role changed.
    StaffRoleChanged = "staff.role_changed" v 1,
    /// A member of staff moved to another office.
    StaffMovedOffice = "staff.moved_office" v 1,
    /// A member of staff left.
    StaffLeft = "staff.left" v 1,
    /// A lead was registered (报备).
    LeadRegistered = "lead.registered" v 2,
    /// A lead's owner was set or changed.
    LeadOwnerAssigned = "lead.owner_assigned" v 1,
    /// Another registration of the same customer arrived within the duplicate window.
    DuplicateRegistrationReceived = "lead.duplicate_registration_received" v 1,
    /// Two engineers claim the same customer; the office manager must decide (§5.2).
    OwnershipConflictOpened = "lead.ownership_conflict_opened" v 1,
    /// The office manager decided an ownership conflict, with the reasons.
    OwnershipConflictDecided = "lead.ownership_conflict_decided" v 1,
    /// Somebody who does not own the lead tried to change it (恶意争抢客户 is forbidden, §5.7).
    TouchRefused = "lead.touch_refused" v 1,
    /// The office manager asked to change the lead's owner (§5.6).
    ReassignmentRequested = "lead.reassignment_requested" v 1,
    /// The sales department or the original owner approved a reassignment.
    ReassignmentApproved = "lead.reassignment_approved" v 1,
    /// The sales department or the original owner denied a reassignment.
    ReassignmentDenied = "lead.reassignment_denied" v 1,
    /// A reassignment request waited too long and lapsed.
    ReassignmentExpired = "lead.reassignment_expired" v 1,
    /// A visit or other follow-up (Table 2).
    VisitLogged = "lead.visit_logged" v 1,
    /// A key person was recorded or updated (Table 5).
    KeyPersonRecorded = "lead.key_person_recorded" v 1,
    /// A key person became an insider (内线).
    InsiderDeveloped = "lead.insider_developed" v 1,
    /// Company and personal relationship levels were assessed.
    RelationshipAssessed = "lead.relationship_assessed" v 1,
    /// A stage criterion was met, with its evidence.
    CriterionMet = "lead.criterion_met" v 1,
    /// The lead's record (Table 1) was corrected or completed.
    LeadDetailsUpdated = "lead.details_updated" v 1,
    /// Three visits without an insider: the office manager is asked for help (§7).
    InsiderEscalationRaised = "lead.insider_escalation_raised" v 1,
    /// Several visits with both relationships still C: a stagnation review is due (§8).
    StagnationReviewOpened = "lead.stagnation_review_opened" v 1,
    /// The office manager decided a stagnation review.
    StagnationReviewDecided = "lead.stagnation_review_decided" v 1,
    /// A valid-info declaration (有效信息申报).
    ValidInfoDeclared = "lead.valid_info_declared" v 1,
    /// A prospect declaration (准客户申报, Table 6).
    ProspectDeclared = "lead.prospect_declared" v 1,
    /// The office manager reviewed a declaration.
    DeclarationReviewed = "lead.declaration_reviewed" v 1,
    /// A declaration was filed with the sales department (备案).
    DeclarationFiled = "lead.declaration_filed" v 1,
    /// A declaration still under way (awaiting review, or approved and not yet filed) lapsed
    /// because the lead left the funnel (lost or suspended).
    DeclarationWithdrawn = "lead.declaration_withdrawn" v 1,
    /// The lead moved to another stage.
    StageChanged = "lead.stage_changed" v 1,
    /// A negotiation note (§9).
    NegotiationNoted = "lead.negotiation_noted" v 1,
    /// A contract was submitted for review (合同评审).
    ContractSubmitted = "lead.contract_submitted" v 1,
    /// A contract under review was amended; earlier approvals are void.
    ContractAmended = "lead.contract_amended" v 1,
    /// One reviewer seat approved the contract's exact content.
    ContractApproved = "lead.contract_approved" v 1,
    /// One reviewer seat rejected the contract: back to negotiation.
    ContractRejected = "lead.contract_rejected" v 1,
    /// The contract was signed (合同签订).
    ContractSigned = "lead.contract_signed" v 1,
    /// The order was processed (订单处理).
    OrderProcessed = "lead.order_processed" v 1,
    /// After-sales relationship care (售后客情维护).
    AfterSalesCareLogged = "lead.after_sales_care_logged" v 1,
    /// The lead was suspended (中止): routine contact only.
    LeadSuspended = "lead.suspended" v 1,
    /// The lead was lost.
    LeadLost = "lead.lost" v 1,
    /// A suspended or lost lead was taken up again.
    LeadReactivated = "lead.reactivated" v 1,
    /// A weekly or monthly visit plan was submitted (Table 4).
    VisitPlanSubmitted = "plan.submitted" v 1,
    /// A visit plan was not submitted by its deadline.
    VisitPlanOverdue = "plan.overdue" v 1,
    /// A visit plan was filed with the sales department.
    VisitPlanFiled = "plan.filed" v 1,
    /// The assistant compiled an office summary (Table 3).
    SummaryCompiled = "summary.compiled" v 1,
    /// The assistant verified the summary's entries.
    SummaryVerified = "summary.verified" v 1,
    /// The office manager reviewed the summary.
    SummaryReviewed = "summary.reviewed" v 1,
    /// The summary was archived and filed with the sales department.
    SummaryFiled = "summary.filed" v 1,
    /// A workflow instance started (or started a new round).
    WorkflowStarted = "workflow.started" v 1,
    /// A workflow asked someone to act.
    TaskOpened = "workflow.task_opened" v 1,
    /// A task was done, or is no longer needed.
    TaskClosed = "workflow.task_closed" v 1,
    /// A durable timer was set.
    TimerScheduled = "workflow.timer_scheduled" v 1,
    /// A durable timer is no longer needed.
    TimerCancelled = "workflow.timer_cancelled" v 1,
    /// A durable timer fired (possibly late, after downtime).
    TimerFired = "workflow.timer_fired" v 1,
    /// A reminder to someone who must act.
    ReminderRaised = "workflow.reminder_raised" v 1,
    /// A task was handed to the next level.
    TaskEscalated = "workflow.task_escalated" v 1,
    /// A workflow sent a command, and how it was answered.
    WorkflowCommandSent = "workflow.command_sent" v 1,
    /// A fact the workflow observed and keeps.
    WorkflowNoted = "workflow.noted" v 1,
    /// A reaction failed and waits for a retry.
    ReactionParked = "workflow.reaction_parked" v 1,
    /// A parked reaction was retried.
    ReactionRetried = "workflow.reaction_retried" v 1,
    /// The instance finished.
    WorkflowCompleted = "workflow.completed" v 1,
    /// An API token was issued to a member of staff (only its hash is recorded).
    StaffTokenIssued = "staff.token_issued" v 1,
    /// An API token was revoked.
    StaffTokenRevoked = "staff.token_revoked" v 1,
    /// A member of staff signed in: a browser session began (only its secret's hash is recorded).
    StaffSessionStarted = "staff.session_started" v 1,
    /// A browser session was used; its idle expiry counts from here.
    StaffSessionRenewed = "staff.session_renewed" v 1,
    /// A member of staff signed out of one session or of all of them.
    StaffSessionsEnded = "staff.sessions_ended" v 1,
    /// Headquarters invited a member of staff to set a password (only the link's hash is recorded).
    StaffInvited = "staff.invitation_issued" v 1,
    /// A member of staff accepted an invitation and set their password.
    StaffInvitationAccepted = "staff.invitation_accepted" v 1,
    /// Password sign-in was locked after repeated failures.
    StaffSignInLocked = "staff.sign_in_locked" v 1,
    /// Headquarters unlocked password sign-in.
    StaffSignInUnlocked = "staff.sign_in_unlocked" v 1,
    /// A member of staff's mobile number (for chat robots' @-mentions) was set or removed.
    StaffPhoneChanged = "staff.phone_changed" v 1,
    /// A member of staff accepted an invitation through the company's OpenID Connect provider.
    StaffOidcLinked = "staff.oidc_linked" v 1,
    /// The working calendar of a year: public holidays and make-up working days.
    CalendarPublished = "calendar.published" v 1,
    /// A current-version customer key was reserved for a lead registered under an older one.
    LeadKeyReserved = "lead.key_reserved" v 1,
    /// Someone asked for a person's personal data to be erased.
    ErasureRequested = "privacy.erasure_requested" v 1,
    /// A second member of staff approved an erasure.
    ErasureApproved = "privacy.erasure_approved" v 1,
    /// An erasure was rejected.
    ErasureRejected = "privacy.erasure_rejected" v 1,
    /// A person's key was destroyed: their personal fields read as erased from now on.
    SubjectErased = "privacy.subject_erased" v 1,
}

impl Event {
    /// The workflow instance a workflow event belongs to.
    pub fn workflow_id(&self) -> Option<funnel_types::WorkflowId> {
        use Event::*;
        Some(match self {
            WorkflowStarted(e) => e.workflow_id,
            TaskOpened(e) => e.workflow_id,
            TaskClosed(e) => e.workflow_id,
            TimerScheduled(e) => e.workflow_id,
            TimerCancelled(e) => e.workflow_id,
            TimerFired(e) => e.workflow_id,
            ReminderRaised(e) => e.workflow_id,
            TaskEscalated(e) => e.workflow_id,
            WorkflowCommandSent(e) => e.workflow_id,
            WorkflowNoted(e) => e.workflow_id,
            ReactionParked(e) => e.workflow_id,
            ReactionRetried(e) => e.workflow_id,
            WorkflowCompleted(e) => e.workflow_id,
            _ => return None,
        })
    }

    /// The lead an event is about, if any.
    pub fn lead_id(&self) -> Option<funnel_types::LeadId> {
        lead_of(self)
    }
}
