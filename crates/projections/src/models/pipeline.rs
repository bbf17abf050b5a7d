//! Office pipeline and funnel: leads and expected amounts by stage, tier, engineer and channel;
//! conversion valid → prospect → contract against the manual's rule of thumb (about 15 : 1 and
//! 3 : 1); time in stage; leads ageing without a visit.
//!
//! The report is kept as it goes ([`OfficeTotals`]): each event that changes a lead takes the
//! lead's old contribution out of its office's totals and puts the new one in, stays in a stage
//! are kept sorted, and open leads are ordered by the moment they last saw a visit. A report then
//! reads the totals, the stays' ranks and the ageing leads, rather than every lead of the history.

use crate::ReadModel;
use chrono::{DateTime, Duration, Utc};
use funnel_domain::Event;
use funnel_domain::events::{
    ContractSigned, LeadDetailsUpdated, LeadOwnerAssigned, LeadRegistered, OfficeOpened,
    ProspectDeclared, StaffJoined, StageChanged, VisitLogged,
};
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_types::{Envelope, LeadId, OfficeId, StaffId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Moments in the model's snapshots as (seconds, nanoseconds) since 1970 rather than RFC 3339
/// text: exact, about a third of the bytes, and read without parsing. An as-of report reads a
/// history snapshot per request, and parsing its dates was the largest part of reading it.
mod moment {
    use chrono::{DateTime, Utc};
    use funnel_types::LeadId;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeSet;

    type Parts = (i64, u32);

    fn parts(t: &DateTime<Utc>) -> Parts {
        (t.timestamp(), t.timestamp_subsec_nanos())
    }

    fn moment<E: serde::de::Error>((secs, nanos): Parts) -> Result<DateTime<Utc>, E> {
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| E::custom(format!("no moment at {secs}.{nanos:09} s")))
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        parts(t).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        moment(Parts::deserialize(d)?)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            t.as_ref().map(parts).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<Parts>::deserialize(d)?.map(moment).transpose()
        }
    }

    pub mod set {
        use super::*;

        pub fn serialize<S: Serializer>(
            set: &BTreeSet<(DateTime<Utc>, LeadId)>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(set.iter().map(|(t, lead)| (parts(t), lead)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<BTreeSet<(DateTime<Utc>, LeadId)>, D::Error> {
            Vec::<(Parts, LeadId)>::deserialize(d)?
                .into_iter()
                .map(|(t, lead)| Ok((moment(t)?, lead)))
                .collect()
        }
    }
}

/// One lead as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadRow {
    pub office: OfficeId,
    pub customer: String,
    pub owner: Option<StaffId>,
    pub channel: Channel,
    pub purchase_mode: PurchaseMode,
    pub stage: Stage,
    #[serde(with = "moment")]
    pub stage_since: DateTime<Utc>,
    #[serde(with = "moment")]
    pub registered_at: DateTime<Utc>,
    pub amount_cny: Option<u64>,
    pub tier: Option<Tier>,
    /// Amount and tier of a prospect declaration not yet approved (they count once the lead
    /// reaches the prospect stage).
    pub declared: Option<(u64, Tier)>,
    #[serde(with = "moment::option")]
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

/// What one lead adds to its office's totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Contribution {
    stage: Stage,
    tier: Option<Tier>,
    owner: Option<StaffId>,
    channel: Channel,
    amount_cny: u64,
    /// Reached valid info, prospect, contract.
    reached: [bool; 3],
    /// For an open lead: its last visit, or its registration before any.
    open_since: Option<DateTime<Utc>>,
}

impl Contribution {
    fn of(row: &LeadRow) -> Self {
        Contribution {
            stage: row.stage,
            tier: row.tier,
            owner: row.owner,
            channel: row.channel,
            amount_cny: row.amount_cny.unwrap_or(0),
            reached: [Stage::Valid, Stage::Prospect, Stage::Contract]
                .map(|s| row.reached.contains(&s)),
            open_since: row
                .stage
                .is_open()
                .then(|| row.last_visit_at.unwrap_or(row.registered_at)),
        }
    }
}

/// One office's report as it stands, kept up to date event by event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OfficeTotals {
    pub by_stage: BTreeMap<Stage, Bucket>,
    pub by_tier: BTreeMap<Tier, Bucket>,
    /// By owner (`None`: unassigned), then stage.
    pub by_owner: BTreeMap<Option<StaffId>, BTreeMap<Stage, Bucket>>,
    pub by_channel: BTreeMap<Channel, BTreeMap<Stage, Bucket>>,
    /// Leads that ever reached valid info, prospect, contract.
    pub reached: [u64; 3],
    /// Open leads by the moment their idle time counts from (last visit, else registration).
    #[serde(with = "moment::set")]
    pub open_since: BTreeSet<(DateTime<Utc>, LeadId)>,
    /// How many of `open_since` fall on each day (days since 1970, UTC): the open leads idle
    /// since before a moment are counted in as many steps as there are days, not leads.
    pub open_days: BTreeMap<i64, u64>,
}

/// The day (since 1970, UTC) of a moment.
fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl OfficeTotals {
    /// Adds (`add`) or takes out a lead's contribution; a bucket left empty is removed, so the
    /// totals are exactly those of the leads counted.
    fn count(&mut self, lead: LeadId, c: &Contribution, add: bool) {
        fn bump<K: Ord>(map: &mut BTreeMap<K, Bucket>, key: K, amount: u64, add: bool) {
            let b = map.entry(key).or_default();
            if add {
                b.leads += 1;
                b.amount_cny += amount;
            } else {
                b.leads -= 1;
                b.amount_cny -= amount;
            }
        }
        fn prune<K: Ord + Copy>(map: &mut BTreeMap<K, Bucket>, key: K) {
            if map.get(&key).is_some_and(|b| b.leads == 0) {
                map.remove(&key);
            }
        }
        fn nested<K: Ord + Copy>(
            map: &mut BTreeMap<K, BTreeMap<Stage, Bucket>>,
            key: K,
            stage: Stage,
            amount: u64,
            add: bool,
        ) {
            let inner = map.entry(key).or_default();
            bump(inner, stage, amount, add);
            prune(inner, stage);
            if inner.is_empty() {
                map.remove(&key);
            }
        }
        bump(&mut self.by_stage, c.stage, c.amount_cny, add);
        prune(&mut self.by_stage, c.stage);
        if let Some(t) = c.tier {
            bump(&mut self.by_tier, t, c.amount_cny, add);
            prune(&mut self.by_tier, t);
        }
        nested(&mut self.by_owner, c.owner, c.stage, c.amount_cny, add);
        nested(&mut self.by_channel, c.channel, c.stage, c.amount_cny, add);
        for (n, reached) in self.reached.iter_mut().zip(c.reached) {
            if reached {
                if add {
                    *n += 1;
                } else {
                    *n -= 1;
                }
            }
        }
        if let Some(t) = c.open_since {
            let day = day_of(t);
            if add {
                if self.open_since.insert((t, lead)) {
                    *self.open_days.entry(day).or_default() += 1;
                }
            } else if self.open_since.remove(&(t, lead))
                && let Some(n) = self.open_days.get_mut(&day)
            {
                *n -= 1;
                if *n == 0 {
                    self.open_days.remove(&day);
                }
            }
        }
    }
}

/// The pipeline read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub offices: BTreeMap<OfficeId, OfficeInfo>,
    pub staff_names: BTreeMap<StaffId, String>,
    pub leads: BTreeMap<LeadId, LeadRow>,
    /// Completed stays in each stage, in seconds, per office, each list in ascending order.
    pub stage_durations: BTreeMap<OfficeId, BTreeMap<Stage, Vec<i64>>>,
    /// Each office's report as it stands (see [`OfficeTotals`]).
    pub totals: BTreeMap<OfficeId, OfficeTotals>,
    /// "Now" for ageing, so reports are reproducible: the latest `occurred_at` applied, or the
    /// moment of an as-of replay by time ([`ReadModel::complete_until`]).
    #[serde(with = "moment::option")]
    pub as_of: Option<DateTime<Utc>>,
}

impl ReadModel for Pipeline {
    const NAME: &'static str = "pipeline";
    /// 3: the office totals kept as events arrive, and stays kept sorted. 4: open leads counted
    /// by day too (`OfficeTotals::open_days`), so a report does not walk every open lead. 5:
    /// moments kept as numbers in snapshots ([`moment`]).
    const VERSION: u32 = 5;
    /// Reports of it are asked for as of past dates.
    const KEEPS_HISTORY: bool = true;
    /// Every other type only moves "now" on (a lead's other events: once the lead is known).
    const READS: Option<&'static [&'static str]> = Some(&[
        OfficeOpened::TYPE,
        StaffJoined::TYPE,
        LeadRegistered::TYPE,
        LeadOwnerAssigned::TYPE,
        VisitLogged::TYPE,
        ProspectDeclared::TYPE,
        ContractSigned::TYPE,
        LeadDetailsUpdated::TYPE,
        StageChanged::TYPE,
    ]);

    fn pass(&mut self, occurred_at: DateTime<Utc>) {
        self.bump(occurred_at);
    }

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
                self.totals.entry(row.office).or_default().count(
                    e.lead_id,
                    &Contribution::of(&row),
                    true,
                );
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
                let before = Contribution::of(row);
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
                        let stays = self
                            .stage_durations
                            .entry(row.office)
                            .or_default()
                            .entry(e.from)
                            .or_default();
                        stays.insert(stays.partition_point(|s| *s <= stay), stay);
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
                let after = Contribution::of(row);
                if after != before {
                    let totals = self.totals.entry(row.office).or_default();
                    totals.count(lead_id, &before, false);
                    totals.count(lead_id, &after, true);
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Bucket {
    pub leads: u64,
    pub amount_cny: u64,
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.leads += other.leads;
        self.amount_cny += other.amount_cny;
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
    /// The [`AGEING_SHOWN`] open leads longest without a visit among those idle for more than
    /// [`AGEING_DAYS`] days, longest first (ties by lead id). Every one of them is listed, in
    /// pages, by the lead search with `ageing=true` and this office.
    pub ageing: Vec<AgeingLead>,
    /// How many open leads of the office are ageing, shown or not.
    pub ageing_total: u64,
}

/// Days without a visit after which an open lead counts as ageing.
pub const AGEING_DAYS: i64 = 30;

/// How many ageing leads an office's report lists: an answer that grew with every neglected lead
/// of the history would cost more each year; the full list is the lead search's to page.
pub const AGEING_SHOWN: usize = 20;

impl Pipeline {
    /// The report of every office (or one), with "now" being the latest event applied. It reads
    /// the totals kept as events arrived: its cost does not grow with the leads of the history,
    /// only with what it shows (groups, and the leads ageing now).
    pub fn report(&self, office: Option<OfficeId>) -> Vec<OfficeReport> {
        let now = self.as_of.unwrap_or_default();
        let name_of = |s: &StaffId| {
            self.staff_names
                .get(s)
                .cloned()
                .unwrap_or_else(|| s.to_string())
        };
        let empty = OfficeTotals::default();
        let mut reports = Vec::new();
        for (id, info) in &self.offices {
            if office.is_some_and(|o| o != *id) {
                continue;
            }
            let t = self.totals.get(id).unwrap_or(&empty);
            let mut r = OfficeReport {
                office: *id,
                name: info.name.clone(),
                code: info.code.clone(),
                by_stage: t.by_stage.clone(),
                by_tier: t
                    .by_tier
                    .iter()
                    .map(|(tier, b)| (tier.as_str().to_string(), b.clone()))
                    .collect(),
                by_channel: t.by_channel.clone(),
                ..Default::default()
            };
            // By name: two people of one name are one line, as the report has always shown.
            for (owner, stages) in &t.by_owner {
                let name = owner
                    .as_ref()
                    .map(name_of)
                    .unwrap_or_else(|| "(unassigned)".into());
                let line = r.by_engineer.entry(name).or_default();
                for (stage, b) in stages {
                    line.entry(*stage).or_default().merge(b);
                }
            }
            let c = &mut r.conversion;
            [c.reached_valid, c.reached_prospect, c.reached_contract] = t.reached;
            c.rule_of_thumb_valid_per_prospect = 15.0;
            c.rule_of_thumb_prospects_per_contract = 3.0;
            c.valid_per_prospect = (c.reached_prospect > 0)
                .then(|| c.reached_valid as f64 / c.reached_prospect as f64);
            c.prospects_per_contract = (c.reached_contract > 0)
                .then(|| c.reached_prospect as f64 / c.reached_contract as f64);
            let durations = self.stage_durations.get(id);
            for stage in [Stage::Ordinary, Stage::Valid, Stage::Prospect] {
                let samples = durations
                    .and_then(|d| d.get(&stage))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let (median_days, p90_days) = super::percentiles_days_sorted(samples);
                r.time_in_stage.push(StageTime {
                    stage,
                    stays: samples.len() as u64,
                    median_days,
                    p90_days,
                });
            }
            // Open leads idle for more than AGEING_DAYS days: those whose idle time counts from
            // before now − AGEING_DAYS, longest idle first. Only the first AGEING_SHOWN are
            // looked up, plus any tied with the last of them in days, so the tie order by lead id
            // is the same as if all were sorted.
            let limit = now - Duration::days(AGEING_DAYS);
            let day = day_of(limit);
            let day_start = DateTime::from_timestamp(day * 86_400, 0).unwrap_or(limit);
            let nil = LeadId(uuid::Uuid::nil());
            r.ageing_total = t.open_days.range(..day).map(|(_, n)| n).sum::<u64>()
                + t.open_since.range((day_start, nil)..(limit, nil)).count() as u64;
            let mut last_days = None;
            let idle = t.open_since.iter().take_while(|(since, _)| *since < limit);
            for (since, lead_id) in idle {
                let days = (now - *since).num_days();
                if r.ageing.len() >= AGEING_SHOWN && last_days != Some(days) {
                    // Longest idle first: every lead after this one has idled fewer days than
                    // the last shown.
                    break;
                }
                let Some(row) = self.leads.get(lead_id) else {
                    continue;
                };
                last_days = Some(days);
                r.ageing.push(AgeingLead {
                    lead_id: *lead_id,
                    customer: row.customer.clone(),
                    owner: row.owner.as_ref().map(name_of),
                    stage: row.stage,
                    days_without_visit: days,
                });
            }
            r.ageing.sort_by(|a, b| {
                b.days_without_visit
                    .cmp(&a.days_without_visit)
                    .then(a.lead_id.cmp(&b.lead_id))
            });
            r.ageing.truncate(AGEING_SHOWN);
            reports.push(r);
        }
        reports
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_every_moment_exactly_and_as_numbers() {
        let at = |secs: i64, nanos: u32| DateTime::from_timestamp(secs, nanos).unwrap();
        // Nanoseconds, and years a count of nanoseconds since 1970 could not hold.
        let (early, late) = (at(-12_000_000_000, 7), at(9_000_000_000, 999_999_999));
        let lead = LeadId::derived("moments");
        let mut p = Pipeline {
            as_of: Some(late),
            ..Pipeline::default()
        };
        p.leads.insert(
            lead,
            LeadRow {
                office: OfficeId::derived("SH"),
                customer: "万科 城市花园".into(),
                owner: None,
                channel: Channel::BuildingSweep,
                purchase_mode: PurchaseMode::Independent,
                stage: Stage::Ordinary,
                stage_since: early,
                registered_at: at(1_700_000_000, 123_456_789),
                amount_cny: None,
                tier: None,
                declared: None,
                last_visit_at: None,
                reached: BTreeSet::from([Stage::Ordinary]),
            },
        );
        let totals = p.totals.entry(OfficeId::derived("SH")).or_default();
        totals.open_since.insert((late, lead));
        totals.open_since.insert((early, lead));
        let bytes = rmp_serde::to_vec(&p).unwrap();
        assert_eq!(rmp_serde::from_slice::<Pipeline>(&bytes).unwrap(), p);
        assert!(
            !bytes.windows(4).any(|w| w == b"2023"),
            "a moment was written as text"
        );
    }
}
