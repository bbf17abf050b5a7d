//! Visit plans (Table 4) and office summaries (Table 3).

use crate::model::Period;
use chrono::{DateTime, NaiveDate, Utc};
use funnel_types::{LeadId, OfficeId, PlanId, StaffId, SummaryId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One planned visit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedVisit {
    pub date: NaiveDate,
    /// The lead, when the customer is already registered; `null` for blank areas (§6).
    pub lead_id: Option<LeadId>,
    pub customer: String,
    pub purpose: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitPlanSubmitted {
    pub plan_id: PlanId,
    pub engineer: StaffId,
    pub office: OfficeId,
    pub period: Period,
    pub visits: Vec<PlannedVisit>,
    pub submitted_at: DateTime<Utc>,
    /// The deadline in UTC (Friday 17:30 or the 28th, office local time).
    pub due_at: DateTime<Utc>,
    pub on_time: bool,
    /// 1 for the first submission, then 2, 3 … for revisions.
    pub revision: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitPlanOverdue {
    pub plan_id: PlanId,
    pub engineer: StaffId,
    pub office: OfficeId,
    pub period: Period,
    pub due_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitPlanFiled {
    pub plan_id: PlanId,
    pub filed_by: StaffId,
}

/// One line of the office summary: a new lead of the period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryLine {
    pub lead_id: LeadId,
    pub engineer: StaffId,
    pub customer: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryCompiled {
    pub summary_id: SummaryId,
    pub office: OfficeId,
    pub period: Period,
    pub compiled_by: StaffId,
    pub lines: Vec<SummaryLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryVerified {
    pub summary_id: SummaryId,
    pub verified_by: StaffId,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryReviewed {
    pub summary_id: SummaryId,
    pub reviewed_by: StaffId,
    /// False sends it back to the assistant to compile again.
    pub approved: bool,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryFiled {
    pub summary_id: SummaryId,
    pub filed_by: StaffId,
}
