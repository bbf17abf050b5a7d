//! The sales reports: the pipeline and funnel per office, the ownership-conflict audit, visit-plan
//! compliance, and the touch audits of a lead and of a member of staff. Each answers now (the
//! live read models, after waiting for `at_least`) or as of a moment (replayed from the log).

use super::{with_one, with_two};
use crate::answers::{AnswerKey, Shared};
use crate::auth::Caller;
use crate::error::AppError;
use crate::reads::{Paging, Reads, check_person};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_projections::AsOfInput;
use funnel_projections::models::{
    ConflictCase, Conflicts, DuplicateRegistration, EngineerCompliance, OfficeReport,
    OwnershipCounts, Pipeline, PlanCompliance, ReassignmentCase, RefusedTouch, TouchIndex,
    TouchQuery, Upto, actor_touches, lead_touches,
};
use funnel_projections::{AsOf, LiveTables};
use funnel_types::{Actor, ConflictId, LeadId, OfficeId, Position, ReassignmentId, StaffId};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which offices a report covers, and when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportQuery {
    /// One office, by id, code (any case) or exact name; the caller's scope when absent.
    pub office: Option<String>,
    /// As of a moment (replayed from the log) instead of now; a date ends at midnight in the
    /// zone of the office asked for, or the caller's office's for every office.
    pub as_of: Option<AsOfInput>,
    /// Now, once the read models reflect this position.
    pub at_least: Option<u64>,
}

/// The pipeline and funnel of the offices the caller may read.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct PipelineReport {
    /// "Now" of the report (RFC 3339): the moment asked for, or else the latest event applied;
    /// days without a visit count until then. `null` for an empty log.
    pub as_of: Option<String>,
    /// The IANA time zone the report reads dates in: the office's, or for every office the
    /// caller's office's (headquarters' when the caller has none).
    pub time_zone: String,
    /// One report per office, in office id order.
    pub offices: Vec<OfficeReport>,
    /// The log position the report reflects.
    pub position: Position,
}

/// The report's office scope: the one asked for, if the caller may read it, else theirs.
async fn scope(
    reads: &Reads,
    caller: &Caller,
    q: &ReportQuery,
) -> Result<Option<OfficeId>, AppError> {
    caller.scope(reads.optional_office(q.office.as_deref()).await?)
}

/// The zone a report over `scope` reads dates in and shows times in: the office's, or for every
/// office the caller's office's (headquarters' for a caller without one).
async fn report_zone(
    reads: &Reads,
    caller: &Caller,
    scope: Option<OfficeId>,
) -> Result<Tz, AppError> {
    reads.office_zone(scope.or(caller.office)).await
}

/// Waits for `at_least` when the report is of now.
async fn settle(reads: &Reads, q: &ReportQuery) -> Result<(), AppError> {
    match q.as_of {
        Some(_) => Ok(()),
        None => reads.wait_for(q.at_least).await,
    }
}

/// The pipeline report (shared: the report of now is computed once per position of the read
/// models for every caller asking the same offices in the same zone).
pub async fn pipeline(
    reads: &Reads,
    caller: &Caller,
    q: ReportQuery,
) -> Result<Arc<Shared<PipelineReport>>, AppError> {
    let scope = scope(reads, caller, &q).await?;
    let zone = report_zone(reads, caller, scope).await?;
    settle(reads, &q).await?;
    let report = |p: &Pipeline, position| PipelineReport {
        position,
        as_of: p.as_of.map(|t| t.to_rfc3339()),
        time_zone: zone.name().to_string(),
        offices: p.report(scope),
    };
    match q.as_of {
        // The report of now depends on the offices asked for and the zone only, so one answer
        // per position serves every manager polling it.
        None => {
            let key = AnswerKey {
                report: "pipeline",
                office: scope,
                zone,
            };
            reads.kept(key, |p, at| Shared::new(report(p, at))).await
        }
        Some(a) => {
            let answer = with_one(reads, Some(a.resolve(zone)), report).await?;
            Ok(Arc::new(Shared::new(answer)))
        }
    }
}

/// An ownership conflict and how it stands.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ConflictEntry {
    pub conflict_id: ConflictId,
    pub case: ConflictCase,
}

/// A reassignment and how it stands.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ReassignmentEntry {
    pub reassignment_id: ReassignmentId,
    pub case: ReassignmentCase,
}

/// How one engineer came to own their leads.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct EngineerOwnership {
    pub staff_id: StaffId,
    pub counts: OwnershipCounts,
}

/// How the engineers of one office came to own their leads.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct OfficeOwnership {
    pub office: OfficeId,
    pub engineers: Vec<EngineerOwnership>,
}

/// How evenly an office's manager spreads the leads they assign.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct OfficeFairness {
    pub office: OfficeId,
    pub name: String,
    pub code: String,
    /// Leads the manager assigned, per engineer.
    pub manager_assigned: BTreeMap<StaffId, u64>,
    /// Most assigned to one engineer minus fewest.
    pub spread: u64,
}

/// The ownership-conflict audit (§5) of the offices the caller may read.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ConflictsReport {
    /// The log position the report reflects.
    pub position: Position,
    /// The IANA time zone of the office asked for, or the caller's office's for every office.
    pub time_zone: String,
    /// Registrations of a customer someone had already registered.
    pub duplicates: Vec<DuplicateRegistration>,
    pub conflicts: Vec<ConflictEntry>,
    /// Attempts to touch another engineer's lead.
    pub refused_touches: Vec<RefusedTouch>,
    pub reassignments: Vec<ReassignmentEntry>,
    pub ownership: Vec<OfficeOwnership>,
    pub fairness: Vec<OfficeFairness>,
    /// The names of the people the report mentions.
    pub staff_names: BTreeMap<StaffId, String>,
    /// The customers of the leads the report mentions.
    pub customers: BTreeMap<LeadId, String>,
}

/// The ownership-conflict audit.
pub async fn conflicts(
    reads: &Reads,
    caller: &Caller,
    q: ReportQuery,
) -> Result<ConflictsReport, AppError> {
    let scope = scope(reads, caller, &q).await?;
    let zone = report_zone(reads, caller, scope).await?;
    settle(reads, &q).await?;
    let as_of = q.as_of.map(|a| a.resolve(zone));
    with_two(reads, as_of, |c: &Conflicts, p: &Pipeline, position| {
        let keep = |o: &OfficeId| scope.is_none_or(|s| s == *o);
        let mut people = BTreeSet::new();
        let mut leads = BTreeSet::new();
        let duplicates: Vec<DuplicateRegistration> = c
            .duplicates
            .iter()
            .filter(|d| keep(&d.office))
            .cloned()
            .collect();
        for d in &duplicates {
            people.insert(d.registered_by);
            leads.insert(d.lead_id);
        }
        let conflicts: Vec<ConflictEntry> = c
            .conflicts
            .iter()
            .filter(|(_, x)| keep(&x.office))
            .map(|(id, x)| ConflictEntry {
                conflict_id: *id,
                case: x.clone(),
            })
            .collect();
        for x in &conflicts {
            leads.insert(x.case.lead_id);
            people.extend(x.case.claimants.iter().copied());
            if let Some(d) = &x.case.decision {
                people.extend([d.winner, d.decided_by]);
            }
        }
        let refused_touches: Vec<RefusedTouch> = c
            .refused_touches
            .iter()
            .filter(|t| keep(&t.office))
            .cloned()
            .collect();
        for t in &refused_touches {
            leads.insert(t.lead_id);
            people.insert(t.attempted_by);
            people.extend(t.owner);
        }
        let reassignments: Vec<ReassignmentEntry> = c
            .reassignments
            .iter()
            .filter(|(_, x)| keep(&x.office))
            .map(|(id, x)| ReassignmentEntry {
                reassignment_id: *id,
                case: x.clone(),
            })
            .collect();
        for x in &reassignments {
            leads.insert(x.case.lead_id);
            people.extend([x.case.from, x.case.to, x.case.requested_by]);
            people.extend(x.case.approvals.iter().map(|a| a.by));
            if let funnel_projections::models::ReassignmentOutcome::Denied { by, .. } =
                &x.case.outcome
            {
                people.insert(*by);
            }
        }
        let ownership: Vec<OfficeOwnership> = c
            .ownership
            .iter()
            .filter(|(o, _)| keep(o))
            .map(|(o, x)| OfficeOwnership {
                office: *o,
                engineers: x
                    .iter()
                    .map(|(s, n)| EngineerOwnership {
                        staff_id: *s,
                        counts: n.clone(),
                    })
                    .collect(),
            })
            .collect();
        for o in &ownership {
            people.extend(o.engineers.iter().map(|e| e.staff_id));
        }
        let fairness: Vec<OfficeFairness> = p
            .offices
            .iter()
            .filter(|(o, _)| keep(o))
            .map(|(o, info)| {
                let (manager_assigned, spread) = c.fairness(*o);
                OfficeFairness {
                    office: *o,
                    name: info.name.clone(),
                    code: info.code.clone(),
                    manager_assigned,
                    spread,
                }
            })
            .collect();
        for f in &fairness {
            people.extend(f.manager_assigned.keys().copied());
        }
        let staff_names = people
            .into_iter()
            .filter_map(|id| c.staff_names.get(&id).map(|n| (id, n.clone())))
            .collect();
        let customers = leads
            .into_iter()
            .filter_map(|id| p.leads.get(&id).map(|r| (id, r.customer.clone())))
            .collect();
        ConflictsReport {
            position,
            time_zone: zone.name().to_string(),
            duplicates,
            conflicts,
            refused_touches,
            reassignments,
            ownership,
            fairness,
            staff_names,
            customers,
        }
    })
    .await
}

/// Visit plans on time, late or missing, per engineer the caller may read.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct PlansReport {
    /// The log position the report reflects.
    pub position: Position,
    /// The IANA time zone of the office asked for, or the caller's office's for every office.
    pub time_zone: String,
    pub engineers: Vec<EngineerCompliance>,
}

/// The visit-plan compliance report.
pub async fn plans(
    reads: &Reads,
    caller: &Caller,
    q: ReportQuery,
) -> Result<PlansReport, AppError> {
    let scope = scope(reads, caller, &q).await?;
    let zone = report_zone(reads, caller, scope).await?;
    settle(reads, &q).await?;
    let as_of = q.as_of.map(|a| a.resolve(zone));
    with_one(reads, as_of, |p: &PlanCompliance, position| PlansReport {
        position,
        time_zone: zone.name().to_string(),
        engineers: p
            .report(scope)
            .into_iter()
            .filter(|r| r.office.is_none_or(|o| caller.may_read(o)))
            .collect(),
    })
    .await
}

/// One touch of a lead.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadTouch {
    pub position: Position,
    pub at: DateTime<Utc>,
    /// Who acted, in which role (for a refused touch: who tried).
    pub actor: Actor,
    pub actor_name: String,
    /// The event type, or for a refused touch the command that was refused.
    pub action: String,
    /// True when the attempt was refused (touching another engineer's lead, §5.7).
    pub refused: bool,
}

/// Who changed or tried to change a lead, when and in which role, in log order.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadAudit {
    pub lead_id: LeadId,
    pub office: OfficeId,
    pub customer: String,
    /// The IANA time zone of the lead's office (a date of `as_of` ends at its midnight).
    pub time_zone: String,
    /// The log position the audit reflects.
    pub position: Position,
    pub touches: Vec<LeadTouch>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<Position>,
}

/// The touch audit of a lead.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadAuditQuery {
    pub lead: LeadId,
    pub as_of: Option<AsOfInput>,
    pub at_least: Option<u64>,
    pub paging: Paging<Position>,
}

/// The touch audit of a lead, a page at a time.
pub async fn lead_audit(
    reads: &Reads,
    caller: &Caller,
    q: LeadAuditQuery,
) -> Result<LeadAudit, AppError> {
    if q.as_of.is_none() {
        reads.wait_for(q.at_least).await?;
    }
    let lead = q.lead;
    let not_found = || {
        AppError::not_found(
            "lead.not_found",
            format!("no lead {lead} is on record"),
            format!("没有线索 {lead} 的记录"),
        )
    };
    // A lead never changes office or the names it was registered under, so the live model gives
    // both for any moment of it.
    let (office, customer) = reads
        .with_model(|p: &Pipeline, _| p.leads.get(&lead).map(|r| (r.office, r.customer.clone())))
        .await?
        .ok_or_else(not_found)?;
    caller.check_read(office)?;
    let zone = reads.office_zone(Some(office)).await?;
    let as_of = q.as_of.map(|a| a.resolve(zone));
    let after = q.paging.after;
    let query = move |upto| TouchQuery {
        upto,
        after,
        limit: q.paging.limit,
        from: None,
        to: None,
        latest_first: false,
    };
    let (position, (rows, next)) = touches(reads, as_of, move |c, t, upto| {
        lead_touches(c, t, lead, &query(upto))
    })
    .await?;
    // As of a moment before its registration, the lead was not on record.
    if as_of.is_some() && after.is_none() && rows.is_empty() {
        return Err(not_found());
    }
    Ok(LeadAudit {
        lead_id: lead,
        office,
        customer,
        time_zone: zone.name().to_string(),
        position,
        touches: rows
            .into_iter()
            .map(|x| LeadTouch {
                position: x.position,
                at: x.at,
                actor: x.actor,
                actor_name: x.actor_name,
                action: x.action,
                refused: x.refused,
            })
            .collect(),
        next,
    })
}

/// A query of the touch index's live tables, up to where `as_of` says (everything they hold when
/// `None`); the answer's position is the last one the query read. Unavailable while the index is
/// being built.
pub(crate) async fn touches<T: Send + 'static>(
    reads: &Reads,
    as_of: Option<AsOf>,
    f: impl FnOnce(&rusqlite::Connection, &LiveTables, Upto) -> rusqlite::Result<T> + Send + 'static,
) -> Result<(Position, T), AppError> {
    reads
        .read_live_tables::<TouchIndex, _>(move |conn, t| {
            let upto = Upto::of(as_of, t);
            f(conn, t, upto).map(|out| (upto.position, out))
        })
        .await
}

/// One touch by a member of staff.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ActorTouch {
    pub lead_id: LeadId,
    /// The lead's customer.
    pub customer: String,
    pub position: Position,
    pub at: DateTime<Utc>,
    /// The event type, or for a refused touch the command that was refused.
    pub action: String,
    pub refused: bool,
}

/// Every lead a member of staff changed or tried to change, in log order.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ActorAudit {
    /// The log position the audit reflects.
    pub position: Position,
    pub staff_id: StaffId,
    pub name: String,
    /// The IANA time zone of the person's office: `from`, `to` and a date of `as_of` are its days.
    pub time_zone: String,
    pub touches: Vec<ActorTouch>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<Position>,
}

/// The touch audit of a member of staff.
#[derive(Clone, Debug, PartialEq)]
pub struct ActorAuditQuery {
    /// Id or name.
    pub staff: String,
    /// First day (in the person's office's time zone), inclusive.
    pub from: Option<NaiveDate>,
    /// Last day (in the person's office's time zone), inclusive.
    pub to: Option<NaiveDate>,
    pub as_of: Option<AsOfInput>,
    pub at_least: Option<u64>,
    pub paging: Paging<Position>,
}

/// The touch audit of a member of staff (themselves; managers their office's people;
/// headquarters, auditors and the local operator everyone), a page at a time.
pub async fn actor_audit(
    reads: &Reads,
    caller: &Caller,
    q: ActorAuditQuery,
) -> Result<ActorAudit, AppError> {
    if q.as_of.is_none() {
        reads.wait_for(q.at_least).await?;
    }
    let (whom, entry) = reads.staff_named(&q.staff).await?;
    check_person(caller, whom, &entry)?;
    let zone = reads.office_zone(entry.office).await?;
    let (from, to) = funnel_domain::time::days_between(q.from, q.to, zone);
    let as_of = q.as_of.map(|a| a.resolve(zone));
    let query = TouchQuery {
        upto: Upto {
            position: Position::START,
            moment: None,
        },
        after: q.paging.after,
        limit: q.paging.limit,
        from,
        to,
        latest_first: false,
    };
    let key = whom.to_string();
    let (position, (rows, next)) = touches(reads, as_of, move |c, t, upto| {
        actor_touches(c, t, &key, &TouchQuery { upto, ..query })
    })
    .await?;
    // The names a lead was registered under do not change: the live model gives them.
    let customers = customers_of(reads, rows.iter().map(|x| x.lead_id)).await?;
    Ok(ActorAudit {
        position,
        staff_id: whom,
        name: entry.name.clone(),
        time_zone: zone.name().to_string(),
        touches: rows
            .into_iter()
            .map(|x| ActorTouch {
                customer: customers.get(&x.lead_id).cloned().unwrap_or_default(),
                lead_id: x.lead_id,
                position: x.position,
                at: x.at,
                action: x.action,
                refused: x.refused,
            })
            .collect(),
        next,
    })
}

/// The customer of each lead, from the live pipeline.
pub(crate) async fn customers_of(
    reads: &Reads,
    leads: impl Iterator<Item = LeadId>,
) -> Result<BTreeMap<LeadId, String>, AppError> {
    let leads: BTreeSet<LeadId> = leads.collect();
    reads
        .with_model(|p: &Pipeline, _| {
            leads
                .iter()
                .filter_map(|id| p.leads.get(id).map(|r| (*id, r.customer.clone())))
                .collect()
        })
        .await
}

/// One lead as the leads export gives it (a row of [`leads_schema`], or a JSON object).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadExport {
    pub lead_id: LeadId,
    pub office_id: OfficeId,
    pub office_code: Option<String>,
    pub office_name: Option<String>,
    pub customer: String,
    pub owner_id: Option<StaffId>,
    pub owner_name: Option<String>,
    pub channel: Channel,
    pub purchase_mode: PurchaseMode,
    pub stage: Stage,
    pub stage_since: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    pub amount_cny: Option<u64>,
    pub tier: Option<Tier>,
    /// Amount of a prospect declaration not yet approved.
    pub declared_amount_cny: Option<u64>,
    pub declared_tier: Option<Tier>,
    pub last_visit_at: Option<DateTime<Utc>>,
    /// Whole days without a visit (since registration before any), for an open lead.
    pub idle_days: Option<i64>,
    /// Open and more than 30 days without a visit.
    pub ageing: bool,
    pub reached_valid: bool,
    pub reached_prospect: bool,
    pub reached_contract: bool,
    /// The moment the pipeline was folded to (ageing counts until then).
    pub as_of: Option<DateTime<Utc>>,
}

/// Every lead of `pipeline` in `scope` (every office for `None`), in lead id order, as of the
/// moment it was folded to (`Pipeline::as_of`: idle days and ageing count until then).
fn lead_rows(
    pipeline: &Pipeline,
    scope: Option<OfficeId>,
) -> impl Iterator<Item = LeadExport> + '_ {
    let now = pipeline.as_of.unwrap_or_default();
    pipeline
        .leads
        .iter()
        .filter(move |(_, row)| scope.is_none_or(|o| row.office == o))
        .map(move |(id, row)| {
            let office = pipeline.offices.get(&row.office);
            LeadExport {
                lead_id: *id,
                office_id: row.office,
                office_code: office.map(|o| o.code.clone()),
                office_name: office.map(|o| o.name.clone()),
                customer: row.customer.clone(),
                owner_id: row.owner,
                owner_name: row
                    .owner
                    .and_then(|s| pipeline.staff_names.get(&s))
                    .cloned(),
                channel: row.channel,
                purchase_mode: row.purchase_mode,
                stage: row.stage,
                stage_since: row.stage_since,
                registered_at: row.registered_at,
                amount_cny: row.amount_cny,
                tier: row.tier,
                declared_amount_cny: row.declared.map(|(a, _)| a),
                declared_tier: row.declared.map(|(_, t)| t),
                last_visit_at: row.last_visit_at,
                idle_days: row.idle_days(now),
                ageing: row.is_ageing(now),
                reached_valid: row.reached.contains(&Stage::Valid),
                reached_prospect: row.reached.contains(&Stage::Prospect),
                reached_contract: row.reached.contains(&Stage::Contract),
                as_of: pipeline.as_of,
            }
        })
}

/// The leads of the offices the caller may read, one record each, now or as of a moment.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadList {
    /// The log position the list reflects.
    pub position: Position,
    /// "Now" of the list (RFC 3339): the moment asked for, or else the latest event applied.
    pub as_of: Option<String>,
    /// The IANA time zone a date of `as_of` was read in.
    pub time_zone: String,
    pub leads: Vec<LeadExport>,
}

/// Every lead of the offices the caller may read (the one asked for, or all they may), in lead id
/// order: the pipeline read model's record of each, now or as of a moment.
pub async fn leads(reads: &Reads, caller: &Caller, q: ReportQuery) -> Result<LeadList, AppError> {
    let scope = scope(reads, caller, &q).await?;
    let zone = report_zone(reads, caller, scope).await?;
    settle(reads, &q).await?;
    let as_of = q.as_of.map(|a| a.resolve(zone));
    with_one(reads, as_of, |p: &Pipeline, position| LeadList {
        position,
        as_of: p.as_of.map(|t| t.to_rfc3339()),
        time_zone: zone.name().to_string(),
        leads: lead_rows(p, scope)
            .filter(|l| caller.may_read(l.office_id))
            .collect(),
    })
    .await
}

/// One week of the pipeline's history (weeks start on Monday in the report's time zone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TrendWeek {
    /// The Monday the week starts on.
    pub week_start: NaiveDate,
    /// Leads registered in the week.
    pub registered: u64,
    /// Open leads (ordinary, valid, prospect) at the end of the week.
    pub open: u64,
    /// Leads at the prospect stage at the end of the week.
    pub prospects: u64,
    /// Leads that had reached a contract by the end of the week.
    pub contracts: u64,
}

/// The pipeline week by week over the whole history, for the offices the caller may read.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct WeeklyTrend {
    /// The IANA time zone the weeks are counted in.
    pub time_zone: String,
    /// The log position the trend reflects.
    pub position: Position,
    /// From the week of the first event to the week of the last, none skipped.
    pub weeks: Vec<TrendWeek>,
}

/// The weekly trend: the pipeline read model folded over the log once, read at the end of every
/// week (by the time the events say they happened). One pass over the log, so it runs within the
/// as-of replays' limit.
pub async fn weekly_trend(
    reads: &Reads,
    caller: &Caller,
    office: Option<String>,
) -> Result<WeeklyTrend, AppError> {
    use funnel_projections::ReadModel;
    use funnel_store::Filter;
    let q = ReportQuery {
        office,
        ..ReportQuery::default()
    };
    let scope = scope(reads, caller, &q).await?;
    let zone = report_zone(reads, caller, scope).await?;
    let Some(_slot) = reads.replays().try_slot() else {
        return Err(AppError::unavailable(
            "too many reports over the whole history are being computed; try again shortly",
            "正在计算的历史报表过多，请稍后重试",
        ));
    };
    let store = reads.store();
    let head = store.head().await?;
    let week_of = |t: DateTime<Utc>| {
        let d = t.with_timezone(&zone).date_naive();
        d - chrono::Duration::days(i64::from(
            chrono::Datelike::weekday(&d).num_days_from_monday(),
        ))
    };
    let counts = |p: &Pipeline, week: NaiveDate, registered: u64| {
        let mut w = TrendWeek {
            week_start: week,
            registered,
            open: 0,
            prospects: 0,
            contracts: 0,
        };
        for row in p.leads.values() {
            if !(scope.is_none_or(|o| row.office == o) && caller.may_read(row.office)) {
                continue;
            }
            w.open += u64::from(row.stage.is_open());
            w.prospects += u64::from(row.stage == Stage::Prospect);
            w.contracts += u64::from(row.reached.contains(&Stage::Contract));
        }
        w
    };
    let mut model = Pipeline::default();
    let mut weeks: Vec<TrendWeek> = Vec::new();
    let mut current: Option<NaiveDate> = None;
    let mut registered = 0u64;
    let mut after = Position::START;
    while after < head {
        let page = store.read_all(after, &Filter::All, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.meta.position;
        for rec in page.iter().filter(|r| r.meta.position <= head) {
            let week = week_of(rec.meta.occurred_at);
            match current {
                None => current = Some(week),
                Some(c) if week > c => {
                    // Close the current week and every empty week up to this one.
                    let mut w = c;
                    while w < week {
                        weeks.push(counts(&model, w, registered));
                        registered = 0;
                        w += chrono::Duration::days(7);
                    }
                    current = Some(week);
                }
                Some(_) => {}
            }
            let Ok(env) = funnel_codec::decode_recorded(rec) else {
                continue;
            };
            let before = model.leads.len();
            if model.apply(&env).is_ok()
                && model.leads.len() > before
                && let funnel_domain::Event::LeadRegistered(e) = &env.payload
                && scope.is_none_or(|o| o == e.office)
                && caller.may_read(e.office)
            {
                registered += 1;
            }
        }
    }
    if let Some(c) = current {
        weeks.push(counts(&model, c, registered));
    }
    Ok(WeeklyTrend {
        time_zone: zone.name().to_string(),
        position: head,
        weeks,
    })
}
