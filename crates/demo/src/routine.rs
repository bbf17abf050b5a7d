//! The offices' routines: weekly and monthly visit plans (some late, some missing and marked
//! overdue), and weekly office summaries compiled, verified, reviewed (one in twenty returned) and
//! filed, monthly ones likewise, on working days; the last week's summary each office leaves at a
//! different step.

use crate::plan::{Gen, local};
use crate::script::LeadInfo;
use crate::types::{DemoOptions, Expect};
use crate::world::World;
use chrono::{Datelike, Duration, NaiveDate};
use funnel_domain::events::{PlannedVisit, SummaryLine};
use funnel_domain::model::Period;
use funnel_domain::plan::{PlanCommand, due_at, plan_id};
use funnel_domain::summary::{SummaryCommand, summary_id};
use funnel_domain::work_calendar::WorkCalendar;
use funnel_engine::{Command, Who};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;

pub fn plans(g: &mut Gen, rng: &mut ChaCha8Rng, world: &World, opts: &DemoOptions) {
    for office in &world.offices {
        let tz = office.tz();
        for engineer in &office.engineers {
            // From the week the history starts: its plan is due the Friday before, when the
            // engineers have already joined.
            for week in 0..=opts.weeks {
                let monday = opts.start() + Duration::weeks(i64::from(week));
                let friday = monday - Duration::days(3);
                let period = Period::Week { monday };
                let visits: Vec<PlannedVisit> = (0..rng.random_range(2..5))
                    .map(|i| PlannedVisit {
                        date: monday + Duration::days(i % 5),
                        lead_id: None,
                        customer: if i % 2 == 0 {
                            "重点目标客户".into()
                        } else {
                            "空白区域走访".into()
                        },
                        purpose: "拜访及需求收集".into(),
                    })
                    .collect();
                let roll = rng.random_range(0..100);
                if roll < 5 {
                    // Missing: the assistant records it overdue on Monday morning.
                    let cmd = PlanCommand::MarkOverdue {
                        engineer: *engineer,
                        office: office.id,
                        period,
                    };
                    g.push(
                        local(tz, monday, 9, 15),
                        Who::Staff(office.assistant),
                        Command::Plan { plan_id: None, cmd },
                        Expect::Accept,
                    );
                    continue;
                }
                let at = if roll < 15 {
                    local(tz, friday, 18, rng.random_range(0..59))
                        + Duration::hours(rng.random_range(0..16))
                } else {
                    local(
                        tz,
                        friday,
                        rng.random_range(10..17),
                        rng.random_range(0..29),
                    )
                };
                let submitted = g.push(
                    at,
                    Who::Staff(*engineer),
                    Command::Plan {
                        plan_id: None,
                        cmd: PlanCommand::Submit { period, visits },
                    },
                    Expect::Accept,
                );
                if submitted {
                    let file = PlanCommand::File;
                    g.push(
                        local(tz, monday, 10, 0),
                        Who::Staff(office.assistant),
                        Command::Plan {
                            plan_id: Some(plan_id(*engineer, &period)),
                            cmd: file,
                        },
                        Expect::Accept,
                    );
                }
            }
            // From the month before the history: the plan of its first month is due in it. A
            // plan due before the engineers joined is not expected of them; one they would have
            // written before joining is written the day after.
            let joined = local(tz, opts.start() - Duration::days(7), 10, 0);
            let start = opts.start();
            let mut month = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)
                .and_then(|d| d.pred_opt())
                .and_then(|d| d.with_day(1))
                .unwrap_or(start);
            let last = opts.start() + Duration::weeks(i64::from(opts.weeks));
            while month < last {
                let next = if month.month() == 12 {
                    NaiveDate::from_ymd_opt(month.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(month.year(), month.month() + 1, 1)
                };
                let Some(next) = next else { break };
                let period = Period::Month {
                    year: next.year(),
                    month: next.month(),
                };
                let late = rng.random_bool(0.15);
                let day = if late {
                    rng.random_range(29..=30)
                } else {
                    rng.random_range(24..=28)
                };
                let date = NaiveDate::from_ymd_opt(
                    month.year(),
                    month.month(),
                    day.min(28 + u32::from(late)),
                )
                .unwrap_or(month);
                let visits = vec![PlannedVisit {
                    date: next + Duration::days(3),
                    lead_id: None,
                    customer: "月度重点客户".into(),
                    purpose: "推进项目".into(),
                }];
                if due_at(&period, tz).is_none_or(|due| due <= joined) {
                    month = next;
                    continue;
                }
                let at = local(tz, date, 16, 0).max(joined + Duration::days(1));
                let submitted = g.push(
                    at,
                    Who::Staff(*engineer),
                    Command::Plan {
                        plan_id: None,
                        cmd: PlanCommand::Submit { period, visits },
                    },
                    Expect::Accept,
                );
                if submitted {
                    g.push(
                        local(tz, next, 10, 30),
                        Who::Staff(office.assistant),
                        Command::Plan {
                            plan_id: Some(plan_id(*engineer, &period)),
                            cmd: PlanCommand::File,
                        },
                        Expect::Accept,
                    );
                }
                month = next;
            }
        }
    }
}

/// The first working day on or after `d`.
fn working_day(calendar: &WorkCalendar, mut d: NaiveDate) -> NaiveDate {
    for _ in 0..30 {
        if calendar.is_working_day(d) {
            break;
        }
        d += Duration::days(1);
    }
    d
}

/// The periods an office summarises, with the first day after each: every week and every month
/// from the one the offices opened in (a week before the history) to the end.
fn summary_periods(opts: &DemoOptions) -> Vec<(Period, NaiveDate, NaiveDate)> {
    let opened = opts.start() - Duration::days(7);
    let mut out = Vec::new();
    let mut monday = opened;
    while monday <= opts.end {
        out.push((Period::Week { monday }, monday, monday + Duration::weeks(1)));
        monday += Duration::weeks(1);
    }
    let mut first = opened.with_day(1).unwrap_or(opened);
    while first <= opts.end {
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(first);
        let period = Period::Month {
            year: first.year(),
            month: first.month(),
        };
        out.push((period, first, next));
        first = next;
    }
    out
}

pub fn summaries(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    world: &World,
    calendar: &WorkCalendar,
    opts: &DemoOptions,
    leads: &[LeadInfo],
) {
    for (oi, office) in world.offices.iter().enumerate() {
        let tz = office.tz();
        for (period, from, next) in summary_periods(opts) {
            let lines: Vec<SummaryLine> = leads
                .iter()
                .filter(|l| {
                    l.office == oi
                        && l.registered_at >= local(tz, from, 0, 0)
                        && l.registered_at < local(tz, next, 0, 0)
                })
                .map(|l| SummaryLine {
                    lead_id: l.id,
                    engineer: l.engineer,
                    customer: l.customer.clone(),
                })
                .collect();
            let id = summary_id(office.id, &period);
            let asst = Who::Staff(office.assistant);
            let mgr = Who::Staff(office.manager);
            let compile = || Command::Summary {
                summary_id: None,
                cmd: SummaryCommand::Compile {
                    office: office.id,
                    period,
                    lines: lines.clone(),
                },
            };
            let step = |cmd| Command::Summary {
                summary_id: Some(id),
                cmd,
            };
            let monthly = matches!(period, Period::Month { .. });
            let day = working_day(calendar, next);
            let hour = if monthly { 13 } else { 11 };
            // The last week compiled before the end is still at work: the first office has not
            // compiled it yet, the second waits for the manager's review, the third for filing.
            let last = !monthly && local(tz, day + Duration::weeks(1), hour, 0) > g.end;
            let steps = if last { oi % 3 } else { 3 };
            if steps == 0 {
                continue;
            }
            g.push(
                local(tz, day, hour, 0),
                asst.clone(),
                compile(),
                Expect::Accept,
            );
            g.push(
                local(tz, day, hour + 3, 0),
                asst.clone(),
                step(SummaryCommand::Verify {
                    note: "已逐条核实".into(),
                }),
                Expect::Accept,
            );
            if steps == 1 {
                continue;
            }
            let mut review_day = working_day(calendar, day + Duration::days(1));
            if steps == 3 && rng.random_bool(0.05) {
                g.push(
                    local(tz, review_day, 10, 0),
                    mgr.clone(),
                    step(SummaryCommand::Review {
                        approve: false,
                        note: "漏报一条展会信息，请补充".into(),
                    }),
                    Expect::Accept,
                );
                g.push(
                    local(tz, review_day, 14, 0),
                    asst.clone(),
                    compile(),
                    Expect::Accept,
                );
                g.push(
                    local(tz, review_day, 15, 0),
                    asst.clone(),
                    step(SummaryCommand::Verify {
                        note: "补充后重新核实".into(),
                    }),
                    Expect::Accept,
                );
                review_day = working_day(calendar, review_day + Duration::days(1));
            }
            g.push(
                local(tz, review_day, 10, 0),
                mgr,
                step(SummaryCommand::Review {
                    approve: true,
                    note: String::new(),
                }),
                Expect::Accept,
            );
            if steps == 2 {
                continue;
            }
            g.push(
                local(tz, review_day, 16, 0),
                asst,
                step(SummaryCommand::File),
                Expect::Accept,
            );
        }
    }
}
