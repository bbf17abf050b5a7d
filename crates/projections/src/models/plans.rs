//! Plan compliance: weekly and monthly visit plans on time, late or missing per engineer, and the
//! visits planned against the visits logged in the planned periods (Table 4, §6).

use crate::ReadModel;
use chrono::Datelike;
use funnel_domain::Event;
use funnel_domain::model::Period;
use funnel_types::{Envelope, OfficeId, StaffId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a plan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    OnTime,
    Late,
    /// The deadline passed with nothing submitted.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    pub engineer: StaffId,
    pub office: OfficeId,
    pub period: Period,
    pub status: PlanStatus,
    pub planned_visits: u32,
    pub revisions: u32,
}

/// On time / late / missing counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Compliance {
    pub on_time: u64,
    pub late: u64,
    pub missing: u64,
}

/// One engineer's compliance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EngineerCompliance {
    pub engineer: StaffId,
    pub name: String,
    pub office: Option<OfficeId>,
    pub weekly: Compliance,
    pub monthly: Compliance,
    /// Visits planned in weekly plans, and visits logged in those same weeks.
    pub planned_visits: u64,
    pub logged_visits_in_planned_weeks: u64,
}

/// The plan-compliance read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanCompliance {
    /// `<engineer>/<period key>` → plan.
    pub plans: BTreeMap<String, PlanRow>,
    /// Engineer → ISO week (year × 100 + week) → visits logged.
    pub visits_by_week: BTreeMap<StaffId, BTreeMap<u32, u64>>,
    pub staff_names: BTreeMap<StaffId, String>,
    /// Each office's time zone: plan weeks are local weeks.
    pub office_tz: BTreeMap<OfficeId, String>,
}

/// An ISO week as a number: year × 100 + week.
fn week_code(date: chrono::NaiveDate) -> u32 {
    let w = date.iso_week();
    u32::try_from(w.year()).unwrap_or(0) * 100 + w.week()
}

impl ReadModel for PlanCompliance {
    const NAME: &'static str = "plans";
    const VERSION: u32 = 3;

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        match &env.payload {
            Event::StaffJoined(e) => {
                self.staff_names.insert(e.staff_id, e.name.clone());
            }
            Event::VisitPlanSubmitted(e) => {
                let key = format!("{}/{}", e.engineer, e.period.key());
                let planned = u32::try_from(e.visits.len()).unwrap_or(u32::MAX);
                match self.plans.get_mut(&key) {
                    // The first submission decides on time or late; revisions only update the plan.
                    Some(row) => {
                        if row.status == PlanStatus::Missing {
                            row.status = PlanStatus::Late;
                        }
                        row.planned_visits = planned;
                        row.revisions = e.revision;
                    }
                    None => {
                        let status = if e.on_time {
                            PlanStatus::OnTime
                        } else {
                            PlanStatus::Late
                        };
                        self.plans.insert(
                            key,
                            PlanRow {
                                engineer: e.engineer,
                                office: e.office,
                                period: e.period,
                                status,
                                planned_visits: planned,
                                revisions: e.revision,
                            },
                        );
                    }
                }
            }
            Event::VisitPlanOverdue(e) => {
                let key = format!("{}/{}", e.engineer, e.period.key());
                if self.plans.contains_key(&key) {
                    return Err(format!("plan {key} marked overdue after it was submitted"));
                }
                self.plans.insert(
                    key,
                    PlanRow {
                        engineer: e.engineer,
                        office: e.office,
                        period: e.period,
                        status: PlanStatus::Missing,
                        planned_visits: 0,
                        revisions: 0,
                    },
                );
            }
            Event::OfficeOpened(o) => {
                self.office_tz.insert(o.office_id, o.timezone.clone());
            }
            Event::VisitLogged(e) => {
                // Bucket by the office's local date: a Monday-morning visit in Shanghai is still
                // Sunday in UTC.
                let tz = funnel_domain::time::zone(
                    env.meta
                        .office
                        .and_then(|o| self.office_tz.get(&o))
                        .map(String::as_str),
                );
                let week = week_code(e.visited_at.with_timezone(&tz).date_naive());
                *self
                    .visits_by_week
                    .entry(e.engineer)
                    .or_default()
                    .entry(week)
                    .or_default() += 1;
            }
            _ => {}
        }
        Ok(())
    }
}

impl PlanCompliance {
    /// Compliance per engineer (optionally of one office), by name.
    pub fn report(&self, office: Option<OfficeId>) -> Vec<EngineerCompliance> {
        let mut out: BTreeMap<StaffId, EngineerCompliance> = BTreeMap::new();
        for row in self
            .plans
            .values()
            .filter(|r| office.is_none_or(|o| o == r.office))
        {
            let e = out
                .entry(row.engineer)
                .or_insert_with(|| EngineerCompliance {
                    engineer: row.engineer,
                    name: self
                        .staff_names
                        .get(&row.engineer)
                        .cloned()
                        .unwrap_or_else(|| row.engineer.to_string()),
                    office: Some(row.office),
                    ..Default::default()
                });
            let c = match row.period {
                Period::Week { .. } => &mut e.weekly,
                Period::Month { .. } => &mut e.monthly,
            };
            match row.status {
                PlanStatus::OnTime => c.on_time += 1,
                PlanStatus::Late => c.late += 1,
                PlanStatus::Missing => c.missing += 1,
            }
            if let Period::Week { monday } = row.period
                && row.status != PlanStatus::Missing
            {
                e.planned_visits += u64::from(row.planned_visits);
                let week = week_code(monday);
                e.logged_visits_in_planned_weeks += self
                    .visits_by_week
                    .get(&row.engineer)
                    .and_then(|w| w.get(&week))
                    .copied()
                    .unwrap_or(0);
            }
        }
        let mut list: Vec<EngineerCompliance> = out.into_values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}
