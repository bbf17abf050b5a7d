//! The reports kept as events arrive equal the reports recomputed from every row (as they were
//! computed before the totals were kept), at many points of a demo history, for every office and
//! each one: the pipeline (also with "now" moved on, so that leads age) and plan compliance.

mod support;

use chrono::Duration;
use funnel_domain::model::Period;
use funnel_domain::model::Stage;
use funnel_projections::ReadModel;
use funnel_projections::models::{
    AGEING_DAYS, AGEING_SHOWN, AgeingLead, Bucket, EngineerCompliance, OfficeReport, Pipeline,
    PlanCompliance, PlanStatus, StageTime,
};
use funnel_types::{OfficeId, Position, StaffId};
use std::collections::BTreeMap;

/// The report from every lead of the model, by the definition: each lead counted in its office's
/// buckets, conversions from the stages it reached, stays' percentiles by nearest rank, open leads
/// more than [`AGEING_DAYS`] days without a visit.
fn recomputed(p: &Pipeline, office: Option<OfficeId>) -> Vec<OfficeReport> {
    let now = p.as_of.unwrap_or_default();
    let name_of = |s: &StaffId| {
        p.staff_names
            .get(s)
            .cloned()
            .unwrap_or_else(|| s.to_string())
    };
    let add = |b: &mut Bucket, amount: Option<u64>| {
        b.leads += 1;
        b.amount_cny += amount.unwrap_or(0);
    };
    let mut reports: BTreeMap<OfficeId, OfficeReport> = p
        .offices
        .iter()
        .filter(|(id, _)| office.is_none_or(|o| o == **id))
        .map(|(id, info)| {
            (
                *id,
                OfficeReport {
                    office: *id,
                    name: info.name.clone(),
                    code: info.code.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for (lead_id, row) in &p.leads {
        let Some(r) = reports.get_mut(&row.office) else {
            continue;
        };
        add(r.by_stage.entry(row.stage).or_default(), row.amount_cny);
        if let Some(t) = row.tier {
            add(
                r.by_tier.entry(t.as_str().to_string()).or_default(),
                row.amount_cny,
            );
        }
        let engineer = row
            .owner
            .as_ref()
            .map(name_of)
            .unwrap_or_else(|| "(unassigned)".into());
        add(
            r.by_engineer
                .entry(engineer)
                .or_default()
                .entry(row.stage)
                .or_default(),
            row.amount_cny,
        );
        add(
            r.by_channel
                .entry(row.channel)
                .or_default()
                .entry(row.stage)
                .or_default(),
            row.amount_cny,
        );
        r.conversion.reached_valid += u64::from(row.reached.contains(&Stage::Valid));
        r.conversion.reached_prospect += u64::from(row.reached.contains(&Stage::Prospect));
        r.conversion.reached_contract += u64::from(row.reached.contains(&Stage::Contract));
        if row.stage.is_open() {
            let since = row.last_visit_at.unwrap_or(row.registered_at);
            if now - since > Duration::days(AGEING_DAYS) {
                r.ageing.push(AgeingLead {
                    lead_id: *lead_id,
                    customer: row.customer.clone(),
                    owner: row.owner.as_ref().map(name_of),
                    stage: row.stage,
                    days_without_visit: (now - since).num_days(),
                });
            }
        }
    }
    for r in reports.values_mut() {
        let c = &mut r.conversion;
        c.rule_of_thumb_valid_per_prospect = 15.0;
        c.rule_of_thumb_prospects_per_contract = 3.0;
        c.valid_per_prospect =
            (c.reached_prospect > 0).then(|| c.reached_valid as f64 / c.reached_prospect as f64);
        c.prospects_per_contract =
            (c.reached_contract > 0).then(|| c.reached_prospect as f64 / c.reached_contract as f64);
        for stage in [Stage::Ordinary, Stage::Valid, Stage::Prospect] {
            let mut samples = p
                .stage_durations
                .get(&r.office)
                .and_then(|d| d.get(&stage))
                .cloned()
                .unwrap_or_default();
            samples.sort_unstable();
            let pick = |q: f64| {
                let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
                samples[rank - 1] as f64 / 86_400.0
            };
            let some = !samples.is_empty();
            r.time_in_stage.push(StageTime {
                stage,
                stays: samples.len() as u64,
                median_days: some.then(|| pick(0.5)),
                p90_days: some.then(|| pick(0.9)),
            });
        }
        r.ageing.sort_by(|a, b| {
            b.days_without_visit
                .cmp(&a.days_without_visit)
                .then(a.lead_id.cmp(&b.lead_id))
        });
        r.ageing_total = r.ageing.len() as u64;
        r.ageing.truncate(AGEING_SHOWN);
    }
    reports.into_values().collect()
}

/// Plan compliance from every plan of the model, by the definition.
fn plans_recomputed(p: &PlanCompliance, office: Option<OfficeId>) -> Vec<EngineerCompliance> {
    use chrono::Datelike;
    let mut out: BTreeMap<StaffId, EngineerCompliance> = BTreeMap::new();
    for row in p
        .plans
        .values()
        .filter(|r| office.is_none_or(|o| o == r.office))
    {
        let e = out
            .entry(row.engineer)
            .or_insert_with(|| EngineerCompliance {
                engineer: row.engineer,
                name: p
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
            let w = monday.iso_week();
            let week = u32::try_from(w.year()).unwrap_or(0) * 100 + w.week();
            e.logged_visits_in_planned_weeks += p
                .visits_by_week
                .get(&row.engineer)
                .and_then(|v| v.get(&week))
                .copied()
                .unwrap_or(0);
        }
    }
    let mut list: Vec<EngineerCompliance> = out.into_values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

fn plans_agree(p: &PlanCompliance, offices: &[OfficeId], at: usize) {
    assert_eq!(
        p.report(None),
        plans_recomputed(p, None),
        "plans, event {at}"
    );
    for office in offices {
        assert_eq!(
            p.report(Some(*office)),
            plans_recomputed(p, Some(*office)),
            "plans of office {office}, event {at}"
        );
    }
}

fn agrees(p: &Pipeline, at: usize) {
    assert_eq!(
        p.report(None),
        recomputed(p, None),
        "every office, event {at}"
    );
    for office in p.offices.keys() {
        assert_eq!(
            p.report(Some(*office)),
            recomputed(p, Some(*office)),
            "office {office}, event {at}"
        );
    }
    // Later, with no event since: more leads age.
    let mut later = p.clone();
    later.complete_until(p.as_of.unwrap_or_default() + Duration::days(45));
    assert_eq!(
        later.report(None),
        recomputed(&later, None),
        "later, event {at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_reports_equal_ones_recomputed_from_every_row_at_every_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, events) = support::demo_history(dir.path(), 150).await;
    assert!(events.len() > 1_000, "a history of {} events", events.len());
    let mut p = Pipeline::default();
    let mut plans = PlanCompliance::default();
    for (i, env) in events.iter().enumerate() {
        p.apply(env).expect("applies");
        plans.apply(env).expect("applies");
        if i % 97 == 0 {
            agrees(&p, i);
            let offices: Vec<OfficeId> = p.offices.keys().copied().collect();
            plans_agree(&plans, &offices, i);
        }
    }
    agrees(&p, events.len());
    let offices: Vec<OfficeId> = p.offices.keys().copied().collect();
    plans_agree(&plans, &offices, events.len());
    // Plans missed, then submitted late and revised, and missed for good, after the history.
    let template = events
        .iter()
        .find(|e| matches!(e.payload, funnel_domain::Event::VisitPlanSubmitted(_)))
        .expect("a plan in the demo")
        .clone();
    let funnel_domain::Event::VisitPlanSubmitted(submitted) = &template.payload else {
        unreachable!("found as a plan")
    };
    let week = |day| Period::Week {
        monday: chrono::NaiveDate::from_ymd_opt(2027, 1, day).expect("a Monday"),
    };
    let overdue = |period| {
        funnel_domain::Event::VisitPlanOverdue(funnel_domain::events::VisitPlanOverdue {
            plan_id: submitted.plan_id,
            engineer: submitted.engineer,
            office: submitted.office,
            period,
            due_at: submitted.due_at,
        })
    };
    let late = |period, revision| {
        funnel_domain::Event::VisitPlanSubmitted(funnel_domain::events::VisitPlanSubmitted {
            period,
            on_time: false,
            revision,
            ..submitted.clone()
        })
    };
    for (k, payload) in [
        overdue(week(4)),
        late(week(4), 1),
        overdue(week(11)),
        late(week(4), 2),
    ]
    .into_iter()
    .enumerate()
    {
        let mut env = template.clone();
        env.meta.position = Position(events.len() as u64 + 10 + k as u64);
        env.payload = payload;
        plans.apply(&env).expect("applies");
        plans_agree(&plans, &offices, events.len() + k);
    }
    let lines = plans.report(None);
    assert!(
        lines.iter().any(|l| l.weekly.missing > 0),
        "a missed plan is compared too"
    );
    assert!(
        lines.iter().any(|l| l.weekly.late + l.monthly.late > 0)
            && lines.iter().any(|l| l.logged_visits_in_planned_weeks > 0),
        "late plans and visits in planned weeks are compared too: {lines:?}"
    );
    assert!(
        p.report(None).iter().any(|r| !r.ageing.is_empty()),
        "some lead is ageing, so that part is compared too"
    );
    assert!(
        p.report(None)
            .iter()
            .any(|r| r.ageing_total > r.ageing.len() as u64),
        "some office has more ageing leads than it lists, so the bound is compared too"
    );
}
