//! Refusals: why a command was not accepted, with a stable code and messages in English and
//! Simplified Chinese. Some refusals also carry events the domain wants recorded anyway (an attempted
//! touch of another engineer's lead is itself a fact operations audit).

use crate::Event;
use crate::lead::Criterion;
use std::fmt;

macro_rules! refusal_codes {
    ($($variant:ident = $code:literal,)*) => {
        /// Stable refusal codes. Clients branch on these; the wire form is the dotted string.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RefusalCode { $($variant,)* }

        impl RefusalCode {
            pub const ALL: &'static [RefusalCode] = &[$(RefusalCode::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(RefusalCode::$variant => $code,)* }
            }

            /// The code with this wire name.
            pub fn parse(s: &str) -> Option<RefusalCode> {
                match s { $($code => Some(RefusalCode::$variant),)* _ => None }
            }
        }
    };
}

refusal_codes! {
    FieldRequired = "validation.field_required",
    FieldTooLong = "validation.field_too_long",
    InvalidValue = "validation.invalid_value",
    ReadOnly = "auth.read_only",
    UnknownStaff = "auth.unknown_staff",
    StaffInactive = "auth.staff_inactive",
    RoleNotPermitted = "auth.role_not_permitted",
    OtherOffice = "auth.other_office",
    StaffExists = "staff.already_exists",
    StaffNotFound = "staff.not_found",
    OfficeExists = "office.already_exists",
    OfficeNotFound = "office.not_found",
    LeadNotFound = "lead.not_found",
    AlreadyRegistered = "lead.already_registered",
    RegisteredInOtherOffice = "lead.registered_in_other_office",
    NotOwner = "lead.not_owner",
    OwnerOnly = "lead.owner_only",
    NotAwaitingAssignment = "lead.not_awaiting_assignment",
    AssigneeNotEngineer = "lead.assignee_not_engineer",
    LeadClosed = "lead.closed",
    WrongStage = "lead.wrong_stage",
    CriteriaUnmet = "lead.stage_criteria_unmet",
    RelationshipBelowB = "lead.relationship_below_b",
    UnknownKeyPerson = "lead.unknown_key_person",
    ConflictNotFound = "conflict.not_found",
    ConflictDecided = "conflict.already_decided",
    WinnerNotClaimant = "conflict.winner_not_claimant",
    ReassignmentPending = "reassignment.already_pending",
    ReassignmentNotFound = "reassignment.not_found",
    ReassignmentClosed = "reassignment.closed",
    AlreadyApproved = "reassignment.already_approved",
    DeclarationPending = "declaration.pending",
    DeclarationNotFound = "declaration.not_found",
    DeclarationWrongState = "declaration.wrong_state",
    ReviewNotOpen = "review.not_open",
    ContractNotFound = "contract.not_found",
    ContractExists = "contract.already_submitted",
    ContractNotApproved = "contract.not_approved",
    ContractHashMismatch = "contract.hash_mismatch",
    NotAReviewer = "contract.not_a_reviewer",
    ContractClosed = "contract.closed",
    PlanClosed = "plan.closed",
    PlanNotDue = "plan.not_due",
    PlanNotFound = "plan.not_found",
    SummaryWrongState = "summary.wrong_state",
    SummaryNotFound = "summary.not_found",
    NothingToDo = "command.nothing_to_do",
    OwnRole = "staff.own_role",
    ExecutiveOnly = "staff.executive_only",
    TokenHolderOrExecutive = "staff.token_holder_or_executive",
    SessionHolderOnly = "staff.session_holder_only",
    LastExecutive = "staff.last_executive",
    CalendarNeedsExecutive = "calendar.needs_executive",
    ControlCharacter = "validation.control_character",
    BidiControl = "validation.bidi_control",
    InvisibleName = "validation.invisible_name",
    ErasureNotFound = "erasure.not_found",
    ErasureClosed = "erasure.closed",
    SecondPersonRequired = "erasure.second_person_required",
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message_en: String,
    pub message_zh: String,
    /// For [`RefusalCode::CriteriaUnmet`]: the checklist items still missing.
    pub missing: Vec<Criterion>,
}

impl Refusal {
    pub fn new(code: RefusalCode, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self {
            code,
            message_en: en.into(),
            message_zh: zh.into(),
            missing: Vec::new(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message_en)
    }
}

/// A refused command: the refusal and any events to record regardless.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    pub refusal: Refusal,
    pub record: Vec<Event>,
}

impl From<Refusal> for Rejected {
    fn from(refusal: Refusal) -> Self {
        Self {
            refusal,
            record: Vec::new(),
        }
    }
}

/// What every decider returns.
pub type Decision = Result<Vec<Event>, Rejected>;

/// Shorthand for a refusal without recorded events.
pub(crate) fn refuse<T>(
    code: RefusalCode,
    en: impl Into<String>,
    zh: impl Into<String>,
) -> Result<T, Rejected> {
    Err(Refusal::new(code, en, zh).into())
}

/// Field checks shared by every command. Limits keep events well below the store's size limits.
pub(crate) mod check {
    use super::*;

    pub const SHORT: usize = 200;
    pub const LONG: usize = 4000;

    pub fn required(field: &str, value: &str, max: usize) -> Result<(), Rejected> {
        if value.trim().is_empty() {
            return refuse(
                RefusalCode::FieldRequired,
                format!("`{field}` is required"),
                format!("`{field}` 为必填项"),
            );
        }
        optional(field, value, max)
    }

    pub fn optional(field: &str, value: &str, max: usize) -> Result<(), Rejected> {
        let n = value.chars().count();
        if n > max {
            return refuse(
                RefusalCode::FieldTooLong,
                format!("`{field}` is {n} characters long; at most {max} are allowed"),
                format!("`{field}` 长度为 {n} 个字符，最多允许 {max} 个"),
            );
        }
        Ok(())
    }

    pub fn list<T>(field: &str, items: &[T], max: usize) -> Result<(), Rejected> {
        if items.len() > max {
            return refuse(
                RefusalCode::InvalidValue,
                format!(
                    "`{field}` has {} entries; at most {max} are allowed",
                    items.len()
                ),
                format!("`{field}` 有 {} 项，最多允许 {max} 项", items.len()),
            );
        }
        Ok(())
    }
}
