//! Plan compliance: weekly and monthly visit plans on time, late or missing per engineer, and the
//! visits planned against the visits logged in the planned periods (Table 4, §6).
//!
//! The report is kept as it goes ([`PlanTotals`] per engineer and office): a plan that changes
//! takes its old contribution out and puts the new one in, and a visit logged in a planned week
//! counts at once. A report reads one line per engineer, not every plan of the history.

use crate::ReadModel;
use chrono::Datelike;
use funnel_domain::Event;
use funnel_domain::events;
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

/// One engineer's plans in one office, counted as they change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanTotals {
    pub weekly: Compliance,
    pub monthly: Compliance,
    pub planned_visits: u64,
    pub logged_visits_in_planned_weeks: u64,
}

impl PlanTotals {
    /// Adds (`add`) or takes out what plan `row` counts, `logged` being the visits logged in its
    /// week.
    fn count(&mut self, row: &PlanRow, logged: u64, add: bool) {
        let step = |n: &mut u64, by: u64| {
            if add {
                *n += by;
            } else {
                *n -= by;
            }
        };
        let c = match row.period {
            Period::Week { .. } => &mut self.weekly,
            Period::Month { .. } => &mut self.monthly,
        };
        match row.status {
            PlanStatus::OnTime => step(&mut c.on_time, 1),
            PlanStatus::Late => step(&mut c.late, 1),
            PlanStatus::Missing => step(&mut c.missing, 1),
        }
        if matches!(row.period, Period::Week { .. }) && row.status != PlanStatus::Missing {
            step(&mut self.planned_visits, u64::from(row.planned_visits));
            step(&mut self.logged_visits_in_planned_weeks, logged);
        }
    }
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
    /// The report as it stands, per engineer and office.
    pub totals: BTreeMap<(StaffId, OfficeId), PlanTotals>,
    /// Each engineer's first plan by key and its office (the office the report shows for them).
    pub first: BTreeMap<StaffId, (String, OfficeId)>,
}

/// An ISO week as a number: year × 100 + week.
fn week_code(date: chrono::NaiveDate) -> u32 {
    let w = date.iso_week();
    u32::try_from(w.year()).unwrap_or(0) * 100 + w.week()
}

impl ReadModel for PlanCompliance {
    const NAME: &'static str = "plans";
    /// 4: the totals kept as plans change.
    const VERSION: u32 = 4;
    /// Reports of it are asked for as of past dates.
    const KEEPS_HISTORY: bool = true;
    /// It does nothing with any other type.
    const READS: Option<&'static [&'static str]> = Some(&[
        events::StaffJoined::TYPE,
        events::OfficeOpened::TYPE,
        events::VisitPlanSubmitted::TYPE,
        events::VisitPlanOverdue::TYPE,
        events::VisitLogged::TYPE,
    ]);

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        match &env.payload {
            Event::StaffJoined(e) => {
                self.staff_names.insert(e.staff_id, e.name.clone());
            }
            Event::VisitPlanSubmitted(e) => {
                let key = format!("{}/{}", e.engineer, e.period.key());
                let planned = u32::try_from(e.visits.len()).unwrap_or(u32::MAX);
                let row = match self.plans.get(&key) {
                    // The first submission decides on time or late; revisions only update the plan.
                    Some(row) => PlanRow {
                        status: if row.status == PlanStatus::Missing {
                            PlanStatus::Late
                        } else {
                            row.status
                        },
                        planned_visits: planned,
                        revisions: e.revision,
                        ..row.clone()
                    },
                    None => PlanRow {
                        engineer: e.engineer,
                        office: e.office,
                        period: e.period,
                        status: if e.on_time {
                            PlanStatus::OnTime
                        } else {
                            PlanStatus::Late
                        },
                        planned_visits: planned,
                        revisions: e.revision,
                    },
                };
                self.put(key, row);
            }
            Event::VisitPlanOverdue(e) => {
                let key = format!("{}/{}", e.engineer, e.period.key());
                if self.plans.contains_key(&key) {
                    return Err(format!("plan {key} marked overdue after it was submitted"));
                }
                self.put(
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
                let day = e.visited_at.with_timezone(&tz).date_naive();
                *self
                    .visits_by_week
                    .entry(e.engineer)
                    .or_default()
                    .entry(week_code(day))
                    .or_default() += 1;
                // A visit in a week with a plan counts at once.
                let w = day.iso_week();
                let key = format!("{}/{}-W{:02}", e.engineer, w.year(), w.week());
                if let Some(row) = self.plans.get(&key)
                    && matches!(row.period, Period::Week { .. })
                    && row.status != PlanStatus::Missing
                {
                    self.totals
                        .entry((row.engineer, row.office))
                        .or_default()
                        .logged_visits_in_planned_weeks += 1;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl PlanCompliance {
    /// Visits `engineer` logged in the week of `period` (none for a month).
    fn logged_in(&self, engineer: StaffId, period: &Period) -> u64 {
        match period {
            Period::Week { monday } => self
                .visits_by_week
                .get(&engineer)
                .and_then(|w| w.get(&week_code(*monday)))
                .copied()
                .unwrap_or(0),
            Period::Month { .. } => 0,
        }
    }

    /// Keeps `row` as the plan under `key`, moving the totals from what it counted to what it counts.
    fn put(&mut self, key: String, row: PlanRow) {
        if let Some(old) = self.plans.get(&key) {
            let logged = self.logged_in(old.engineer, &old.period);
            let old = old.clone();
            self.totals
                .entry((old.engineer, old.office))
                .or_default()
                .count(&old, logged, false);
        }
        let logged = self.logged_in(row.engineer, &row.period);
        self.totals
            .entry((row.engineer, row.office))
            .or_default()
            .count(&row, logged, true);
        let first = self
            .first
            .entry(row.engineer)
            .or_insert((key.clone(), row.office));
        if key <= first.0 {
            *first = (key.clone(), row.office);
        }
        self.plans.insert(key, row);
    }

    /// Compliance per engineer (optionally of one office), by name: one line per engineer, from
    /// the totals kept as plans changed. An engineer's line across offices names the office of
    /// their first plan.
    pub fn report(&self, office: Option<OfficeId>) -> Vec<EngineerCompliance> {
        let mut out: BTreeMap<StaffId, EngineerCompliance> = BTreeMap::new();
        for ((engineer, at), t) in self
            .totals
            .iter()
            .filter(|((_, at), _)| office.is_none_or(|o| o == *at))
        {
            let shown = match office {
                Some(o) => o,
                None => self.first.get(engineer).map_or(*at, |(_, o)| *o),
            };
            let e = out.entry(*engineer).or_insert_with(|| EngineerCompliance {
                engineer: *engineer,
                name: self
                    .staff_names
                    .get(engineer)
                    .cloned()
                    .unwrap_or_else(|| engineer.to_string()),
                office: Some(shown),
                ..Default::default()
            });
            for (sum, part) in [(&mut e.weekly, &t.weekly), (&mut e.monthly, &t.monthly)] {
                sum.on_time += part.on_time;
                sum.late += part.late;
                sum.missing += part.missing;
            }
            e.planned_visits += t.planned_visits;
            e.logged_visits_in_planned_weeks += t.logged_visits_in_planned_weeks;
        }
        let mut list: Vec<EngineerCompliance> = out.into_values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}
