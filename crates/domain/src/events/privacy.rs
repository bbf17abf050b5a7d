//! Erasures of a person's personal data (PIPL Art. 47, GDPR Art. 17): asked for by one member of
//! headquarters staff, approved by another, and carried out by destroying the person's key (see
//! `crate::privacy`). None of these events holds personal data: people are named by their ids.

use funnel_types::{LeadId, StaffId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Someone asked for a person's personal data to be erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequested {
    pub erasure_id: uuid::Uuid,
    /// Whom: `contact:<lead id>` (a lead's contact) or `key_person:<key person id>`.
    pub subject: String,
    /// The lead the person belongs to (every personal field about them is on its stream).
    pub lead_id: LeadId,
    /// Why: the request's reference or the retention rule, as the requester gave it.
    pub reason: String,
    /// Who asked (also the event's actor): the approver must be someone else.
    pub requested_by: StaffId,
}

/// A second member of staff approved an erasure; the person's key is destroyed with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureApproved {
    pub erasure_id: uuid::Uuid,
}

/// An erasure was rejected, with the reasons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRejected {
    pub erasure_id: uuid::Uuid,
    pub reason: String,
}

/// A person's key was destroyed: every personal field about them reads as erased from now on,
/// in every read, report, export and replay. Recorded with an approval, or by an operator at the
/// command line (`funnel privacy erase`, whose reason it carries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectErased {
    pub erasure_id: uuid::Uuid,
    pub subject: String,
    pub lead_id: LeadId,
    pub reason: String,
}
