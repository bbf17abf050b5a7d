//! Office pipeline and funnel: leads and expected amounts by stage, tier, engineer and channel;
//! conversion valid → prospect → contract against the manual's rule of thumb (about 15 : 1 and
//! 3 : 1); time in stage; leads ageing without a visit.

use crate::ReadModel;
use chrono::{DateTime, Duration, Utc};
use funnel_domain::Event;
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_types::{Envelope, LeadId, OfficeId, StaffId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One lead as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadRow {
    pub office: OfficeId,
    pub customer: String,
    pub owner: Option<StaffId>,
    pub channel: Channel,
    pub purchase_mode: PurchaseMode,
    pub stage: Stage,
    pub stage_since: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    pub amount_cny: Option<u64>,
    pub tier: Option<Tier>,
    /// Amount and tier of a prospect declaration not yet approved (they count once the lead
    /// reaches the prospect stage).
    pub declared: Option<(u64, Tier)>,
    pub last_visit_at: Option<DateTime<Utc>>,
    /// Funnel stages this lead has ever reached.
    pub reached: BTreeSet<Stage>,
}

impl LeadRow {
    /// Whole days at `now` since the last visit (or the registration, before any visit) of an open
    /// lead; `None` for a lead that is closed (contract, lost or withdrawn).
    pub fn idle_days(&self, now: DateTime<Utc>) -> Option<i64> {
        self.stage
            .is_open()
            .then(|| (now - self.last_visit_at.unwrap_or(self.registered_at)).num_days())
    }

    /// Whether the lead is ageing at `now`: open and more than [`AGEING_DAYS`] days without a visit.
    pub fn is_ageing(&self, now: DateTime<Utc>) -> bool {
        self.stage.is_open()
            && now - self.last_visit_at.unwrap_or(self.registered_at) > Duration::days(AGEING_DAYS)
    }
}

/// An office's name and short code.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OfficeInfo {
    pub name: String,
    pub code: String,
}

/// The pipeline read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub offices: BTreeMap<OfficeId, OfficeInfo>,
    pub staff_names: BTreeMap<StaffId, String>,
    pub leads: BTreeMap<LeadId, LeadRow>,
    /// Completed stays in each stage, in seconds, per office.
    pub stage_durations: BTreeMap<OfficeId, BTreeMap<Stage, Vec<i64>>>,
    /// "Now" for ageing, so reports are reproducible: the latest `occurred_at` applied, or the
    /// moment of an as-of replay by time ([`ReadModel::complete_until`]).
    pub as_of: Option<DateTime<Utc>>,
}

impl ReadModel for Pipeline {
    const NAME: &'static str = "pipeline";
    const VERSION: u32 = 2;

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        let at = env.meta.occurred_at;
        match &env.payload {
            Event::OfficeOpened(e) => {
                self.offices.insert(
                    e.office_id,
                    OfficeInfo {
                        name: e.name.clone(),
                        code: e.code.clone(),
                    },
                );
            }
            Event::StaffJoined(e) => {
                self.staff_names.insert(e.staff_id, e.name.clone());
            }
            Event::LeadRegistered(e) => {
                let row = LeadRow {
                    office: e.office,
                    customer: format!("{} {}", e.customer_name, e.project_name)
                        .trim()
                        .to_string(),
                    owner: None,
                    channel: e.channel,
                    purchase_mode: e.purchase_mode,
                    stage: Stage::Ordinary,
                    stage_since: at,
                    registered_at: at,
                    amount_cny: None,
                    tier: None,
                    declared: None,
                    last_visit_at: None,
                    reached: BTreeSet::from([Stage::Ordinary]),
                };
                if self.leads.contains_key(&e.lead_id) {
                    return Err(format!("lead {} registered twice", e.lead_id));
                }
                self.leads.insert(e.lead_id, row);
            }
            other => {
                let Some(lead_id) = other.lead_id() else {
                    self.bump(at);
                    return Ok(());
                };
                let Some(row) = self.leads.get_mut(&lead_id) else {
                    return Err(format!(
                        "{} for lead {lead_id}, which was never registered",
                        other.event_type()
                    ));
                };
                match other {
                    Event::LeadOwnerAssigned(e) => row.owner = Some(e.owner),
                    Event::VisitLogged(e) => {
                        row.last_visit_at = Some(
                            row.last_visit_at
                                .map_or(e.visited_at, |t| t.max(e.visited_at)),
                        )
                    }
                    Event::ProspectDeclared(e) => row.declared = Some((e.amount_cny, e.tier)),
                    Event::ContractSigned(e) => row.amount_cny = Some(e.amount_cny),
                    Event::LeadDetailsUpdated(e) => {
                        if let Some(m) = e.purchase_mode {
                            row.purchase_mode = m;
                        }
                    }
                    Event::StageChanged(e) => {
                        let stay = (at - row.stage_since).num_seconds().max(0);
                        self.stage_durations
                            .entry(row.office)
                            .or_default()
                            .entry(e.from)
                            .or_default()
                            .push(stay);
                        row.stage = e.to;
                        row.stage_since = at;
                        if e.to == Stage::Prospect
                            && let Some((amount, tier)) = row.declared.take()
                        {
                            row.amount_cny = Some(amount);
                            row.tier = Some(tier);
                        }
                        row.reached.insert(e.to);
                    }
                    _ => {}
                }
            }
        }
        self.bump(at);
        Ok(())
    }

    /// "Now" for ageing is the moment asked for, not the last event before it.
    fn complete_until(&mut self, moment: DateTime<Utc>) {
        self.as_of = Some(moment);
    }
}

impl Pipeline {
    fn bump(&mut self, at: DateTime<Utc>) {
        self.as_of = Some(self.as_of.map_or(at, |t| t.max(at)));
    }
}

/// Leads and amounts in one bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Bucket {
    pub leads: u64,
    pub amount_cny: u64,
}

impl Bucket {
    fn add(&mut self, row: &LeadRow) {
        self.leads += 1;
        self.amount_cny += row.amount_cny.unwrap_or(0);
    }
}

/// Conversion through the funnel, against the manual's rule of thumb.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Conversion {
    pub reached_valid: u64,
    pub reached_prospect: u64,
    pub reached_contract: u64,
    /// Valid infos per prospect (rule of thumb: about 15).
    pub valid_per_prospect: Option<f64>,
    /// Prospects per signed contract (rule of thumb: about 3).
    pub prospects_per_contract: Option<f64>,
    pub rule_of_thumb_valid_per_prospect: f64,
    pub rule_of_thumb_prospects_per_contract: f64,
}

/// Time spent in a stage before leaving it.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StageTime {
    pub stage: Stage,
    pub stays: u64,
    pub median_days: Option<f64>,
    pub p90_days: Option<f64>,
}

/// An open lead nobody visited for a while.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AgeingLead {
    pub lead_id: LeadId,
    pub customer: String,
    pub owner: Option<String>,
    pub stage: Stage,
    pub days_without_visit: i64,
}

/// One office's pipeline report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct OfficeReport {
    pub office: OfficeId,
    pub name: String,
    pub code: String,
    pub by_stage: BTreeMap<Stage, Bucket>,
    pub by_tier: BTreeMap<String, Bucket>,
    pub by_engineer: BTreeMap<String, BTreeMap<Stage, Bucket>>,
    pub by_channel: BTreeMap<Channel, BTreeMap<Stage, Bucket>>,
    pub conversion: Conversion,
    pub time_in_stage: Vec<StageTime>,
    /// Open leads without a visit for more than [`AGEING_DAYS`] days, longest first.
    pub ageing: Vec<AgeingLead>,
}

/// Days without a visit after which an open lead counts as ageing.
pub const AGEING_DAYS: i64 = 30;

impl Pipeline {
    /// The report of every office (or one), with "now" being the latest event applied.
    pub fn report(&self, office: Option<OfficeId>) -> Vec<OfficeReport> {
        let now = self.as_of.unwrap_or_default();
        let mut reports: BTreeMap<OfficeId, OfficeReport> = BTreeMap::new();
        for (id, info) in &self.offices {
            if office.is_none_or(|o| o == *id) {
                reports.insert(
                    *id,
                    OfficeReport {
                        office: *id,
                        name: info.name.clone(),
                        code: info.code.clone(),
                        ..Default::default()
                    },
                );
            }
        }
        let name_of = |s: &StaffId| {
            self.staff_names
                .get(s)
                .cloned()
                .unwrap_or_else(|| s.to_string())
        };
        for (lead_id, row) in &self.leads {
            let Some(r) = reports.get_mut(&row.office) else {
                continue;
            };
            r.by_stage.entry(row.stage).or_default().add(row);
            if let Some(t) = row.tier {
                r.by_tier
                    .entry(t.as_str().to_string())
                    .or_default()
                    .add(row);
            }
            let engineer = row
                .owner
                .as_ref()
                .map(name_of)
                .unwrap_or_else(|| "(unassigned)".into());
            r.by_engineer
                .entry(engineer)
                .or_default()
                .entry(row.stage)
                .or_default()
                .add(row);
            r.by_channel
                .entry(row.channel)
                .or_default()
                .entry(row.stage)
                .or_default()
                .add(row);
            r.conversion.reached_valid += u64::from(row.reached.contains(&Stage::Valid));
            r.conversion.reached_prospect += u64::from(row.reached.contains(&Stage::Prospect));
            r.conversion.reached_contract += u64::from(row.reached.contains(&Stage::Contract));
            if let Some(idle) = row.idle_days(now)
                && row.is_ageing(now)
            {
                r.ageing.push(AgeingLead {
                    lead_id: *lead_id,
                    customer: row.customer.clone(),
                    owner: row.owner.as_ref().map(name_of),
                    stage: row.stage,
                    days_without_visit: idle,
                });
            }
        }
        for r in reports.values_mut() {
            let c = &mut r.conversion;
            c.rule_of_thumb_valid_per_prospect = 15.0;
            c.rule_of_thumb_prospects_per_contract = 3.0;
            c.valid_per_prospect = (c.reached_prospect > 0)
                .then(|| c.reached_valid as f64 / c.reached_prospect as f64);
            c.prospects_per_contract = (c.reached_contract > 0)
                .then(|| c.reached_prospect as f64 / c.reached_contract as f64);
            let durations = self.stage_durations.get(&r.office);
            for stage in [Stage::Ordinary, Stage::Valid, Stage::Prospect] {
                let samples = durations
                    .and_then(|d| d.get(&stage))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let (median_days, p90_days) = super::percentiles_days(samples);
                r.time_in_stage.push(StageTime {
                    stage,
                    stays: samples.len() as u64,
                    median_days,
                    p90_days,
                });
            }
            r.ageing.sort_by(|a, b| {
                b.days_without_visit
                    .cmp(&a.days_without_visit)
                    .then(a.lead_id.cmp(&b.lead_id))
            });
        }
        reports.into_values().collect()
    }
}

impl Pipeline {
    /// The office with this id, code (`SH`) or name.
    pub fn find_office(&self, text: &str) -> Option<OfficeId> {
        self.offices
            .iter()
            .find(|(id, o)| funnel_domain::org::names_office(text, **id, &o.code, &o.name))
            .map(|(id, _)| *id)
    }
}
