//! Calendar workflows: every engineer's visit plans (a reminder the day before each weekly and
//! monthly deadline, an overdue fact at the deadline, late submissions recorded as late by the plan
//! decider) and every office's summaries (after each week: compile and verify, review, file).

use super::{Builder, OutCommand, person, role_in};
use crate::events::*;
use crate::model::Period;
use crate::plan::{PlanCommand, due_at};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use funnel_types::Role;

/// The first weekly deadline strictly after `t` and the week it is for.
pub fn next_weekly_deadline(
    t: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Option<(Period, DateTime<Utc>)> {
    let local = t.with_timezone(&tz).date_naive();
    // The Monday of the week after the one containing `t`, then onwards until its deadline is ahead.
    let mut monday = local.checked_sub_signed(Duration::days(i64::from(
        local.weekday().num_days_from_monday(),
    )))?;
    for _ in 0..3 {
        monday = monday.checked_add_signed(Duration::weeks(1))?;
        let period = Period::Week { monday };
        let due = due_at(&period, tz)?;
        if due > t {
            return Some((period, due));
        }
    }
    None
}

/// The first monthly deadline strictly after `t` and the month it is for.
pub fn next_monthly_deadline(
    t: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Option<(Period, DateTime<Utc>)> {
    let local = t.with_timezone(&tz).date_naive();
    let (mut y, mut m) = (local.year(), local.month());
    for _ in 0..3 {
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let period = Period::Month { year: y, month: m };
        let due = due_at(&period, tz)?;
        if due > t {
            return Some((period, due));
        }
    }
    None
}

fn schedule_plan(r: &mut Builder<'_>, after: DateTime<Utc>, weekly: bool) {
    let next = if weekly {
        next_weekly_deadline(after, r.ctx.tz)
    } else {
        next_monthly_deadline(after, r.ctx.tz)
    };
    if let Some((period, due)) = next {
        let remind = due - Duration::days(1);
        if remind > after {
            r.schedule(
                TimerPurpose::PlanReminder {
                    period,
                    due_at: due,
                },
                remind,
            );
        }
        // A second after the deadline: at the deadline itself a plan is still on time, and marking
        // it overdue would be refused.
        r.schedule(
            TimerPurpose::PlanDeadline { period },
            due + Duration::seconds(1),
        );
    }
}

pub(super) fn plans(r: &mut Builder<'_>) -> Result<(), super::Unreadable> {
    match r.trigger.event {
        Event::StaffJoined(e) if e.role == Role::SalesEngineer => {
            if r.started() {
                return Ok(());
            }
            r.start(
                WorkflowKind::VisitPlans,
                None,
                e.office,
                format!("visit plans of {}", e.name),
            );
            r.note("engineer", &e.staff_id.to_string());
            schedule_plan(r, r.trigger.occurred_at, true);
            schedule_plan(r, r.trigger.occurred_at, false);
        }
        Event::StaffRoleChanged(e) if e.to == Role::SalesEngineer && !r.state.active => {
            // Became an engineer: plans are due from now on.
            r.start(
                WorkflowKind::VisitPlans,
                None,
                r.trigger.office,
                "visit plans".into(),
            );
            r.note("engineer", &e.staff_id.to_string());
            schedule_plan(r, r.trigger.occurred_at, true);
            schedule_plan(r, r.trigger.occurred_at, false);
        }
        Event::StaffRoleChanged(e) if r.state.active && e.to != Role::SalesEngineer => {
            r.complete("no longer an engineer")
        }
        Event::StaffLeft(_) if r.state.active => r.complete("left"),
        Event::StaffMovedOffice(e) if r.state.active => {
            r.note("office", &e.to.map(|o| o.to_string()).unwrap_or_default())
        }
        Event::VisitPlanSubmitted(e) if r.state.active => {
            r.note(
                &format!("plan:{}", e.period.key()),
                if e.on_time { "on_time" } else { "late" },
            );
        }
        Event::VisitPlanOverdue(e) if r.state.active => {
            r.note(&format!("plan:{}", e.period.key()), "overdue")
        }
        Event::TimerFired(t) if r.state.active => match &t.purpose {
            TimerPurpose::PlanReminder { period, due_at } => {
                let done = r.state.note(&format!("plan:{}", period.key())).is_some();
                if !done
                    && r.ctx.now < *due_at
                    && let Some(engineer) = r.id("engineer", r.state.engineer)?
                {
                    let local = due_at.with_timezone(&r.ctx.tz).format("%Y-%m-%d %H:%M");
                    r.remind(
                        person(Role::SalesEngineer, r.state.office, engineer),
                        None,
                        format!("Your visit plan for {} is due {local}", period.key()),
                        format!("您的拜访计划（{}）将于 {local} 截止", period.key()),
                    );
                }
            }
            TimerPurpose::PlanDeadline { period } => {
                let key = format!("plan:{}", period.key());
                if r.state.note(&key).is_none()
                    && let Some(engineer) = r.id("engineer", r.state.engineer)?
                    && let Some(office) =
                        r.id("office", r.state.engineer_office)?.or(r.state.office)
                {
                    r.send(
                        &key,
                        OutCommand::Plan {
                            cmd: PlanCommand::MarkOverdue {
                                engineer,
                                office,
                                period: *period,
                            },
                        },
                    );
                }
                schedule_plan(r, t.due_at, matches!(period, Period::Week { .. }));
            }
            _ => {}
        },
        _ => {}
    }
    Ok(())
}

/// When a period's summary is due: 09:00 office time on the first day after it.
fn summary_due(period: &Period, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let day_after: NaiveDate = match *period {
        Period::Week { monday } => monday.checked_add_signed(Duration::weeks(1))?,
        Period::Month { year, month } => {
            if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)?
            }
        }
    };
    tz.from_local_datetime(&day_after.and_hms_opt(9, 0, 0)?)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

/// The week and the month containing `t`.
fn periods_of(t: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<(Period, Period)> {
    let d = t.with_timezone(&tz).date_naive();
    let monday = d.checked_sub_signed(Duration::days(i64::from(
        d.weekday().num_days_from_monday(),
    )))?;
    Some((
        Period::Week { monday },
        Period::Month {
            year: d.year(),
            month: d.month(),
        },
    ))
}

fn next_period(p: &Period) -> Option<Period> {
    Some(match *p {
        Period::Week { monday } => Period::Week {
            monday: monday.checked_add_signed(Duration::weeks(1))?,
        },
        Period::Month { year, month } => {
            if month == 12 {
                Period::Month {
                    year: year + 1,
                    month: 1,
                }
            } else {
                Period::Month {
                    year,
                    month: month + 1,
                }
            }
        }
    })
}

fn schedule_summary(r: &mut Builder<'_>, period: Period) {
    if let Some(due) = summary_due(&period, r.ctx.tz) {
        r.schedule(TimerPurpose::SummaryDue { period }, due);
    }
}

fn summary_task(r: &mut Builder<'_>, name: &str, period: &str, role: Role, en: String, zh: String) {
    let office = r.state.office.or(r.trigger.office);
    r.open_task(
        &format!("{name}:{period}"),
        role_in(role, office),
        None,
        en,
        zh,
        None,
    );
}

/// The period of a summary this instance saw compiled.
fn summary_period(r: &Builder<'_>, id: funnel_types::SummaryId) -> Option<String> {
    r.state.note(&format!("summary:{id}")).map(String::from)
}

pub(super) fn summaries(r: &mut Builder<'_>) {
    let tz = r.ctx.tz;
    match r.trigger.event {
        Event::OfficeOpened(e) => {
            if r.started() {
                return;
            }
            r.start(
                WorkflowKind::OfficeSummaries,
                None,
                Some(e.office_id),
                format!("summaries of {}", e.name),
            );
            if let Some((week, month)) = periods_of(r.trigger.occurred_at, tz) {
                schedule_summary(r, week);
                schedule_summary(r, month);
            }
        }
        Event::SummaryCompiled(e) if r.state.active => {
            let key = e.period.key();
            r.note(&format!("summary:{}", e.summary_id), &key);
            r.note(&format!("stage:{key}"), "compiled");
        }
        Event::SummaryVerified(e) if r.state.active => {
            let Some(key) = summary_period(r, e.summary_id) else {
                return;
            };
            r.close_task(&format!("compile_summary:{key}"), "verified");
            r.note(&format!("stage:{key}"), "verified");
            summary_task(
                r,
                "review_summary",
                &key,
                Role::OfficeManager,
                format!("Review the office summary {key}"),
                format!("审核办事处汇总表 {key}"),
            );
        }
        Event::SummaryReviewed(e) if r.state.active => {
            let Some(key) = summary_period(r, e.summary_id) else {
                return;
            };
            r.close_task(
                &format!("review_summary:{key}"),
                if e.approved { "approved" } else { "returned" },
            );
            if e.approved {
                summary_task(
                    r,
                    "file_summary",
                    &key,
                    Role::OfficeAssistant,
                    format!("Archive and file the summary {key}"),
                    format!("归档并向销售部备案汇总表 {key}"),
                );
            } else {
                summary_task(
                    r,
                    "compile_summary",
                    &key,
                    Role::OfficeAssistant,
                    format!("Compile the returned summary {key} again"),
                    format!("重新编制被退回的汇总表 {key}"),
                );
            }
        }
        Event::SummaryFiled(e) if r.state.active => {
            let Some(key) = summary_period(r, e.summary_id) else {
                return;
            };
            r.close_task(&format!("file_summary:{key}"), "filed");
            r.note(&format!("stage:{key}"), "filed");
        }
        Event::TimerFired(t) if r.state.active => {
            if let TimerPurpose::SummaryDue { period } = &t.purpose {
                let key = period.key();
                if r.state.note(&format!("stage:{key}")).is_none() {
                    summary_task(
                        r,
                        "compile_summary",
                        &key,
                        Role::OfficeAssistant,
                        format!("Compile and verify the office summary {key} (Table 3)"),
                        format!("编制并核实办事处汇总表 {key}（表三）"),
                    );
                }
                if let Some(next) = next_period(period) {
                    schedule_summary(r, next);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_the_next_ones_ahead() {
        let tz = chrono_tz::Asia::Shanghai;
        // Wednesday 2026-03-04 10:00 Shanghai: the next weekly deadline is Friday 6 March 17:30 for
        // the week of Monday 9 March; the next monthly one is 28 March for April.
        let t = tz
            .with_ymd_and_hms(2026, 3, 4, 10, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        let (p, due) = next_weekly_deadline(t, tz).unwrap();
        assert_eq!(
            p,
            Period::Week {
                monday: NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
            }
        );
        assert_eq!(
            due,
            tz.with_ymd_and_hms(2026, 3, 6, 17, 30, 0)
                .single()
                .unwrap()
                .with_timezone(&Utc)
        );
        // Saturday: Friday's deadline has passed, so the next is a week later.
        let sat = tz
            .with_ymd_and_hms(2026, 3, 7, 10, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_weekly_deadline(sat, tz).unwrap().0,
            Period::Week {
                monday: NaiveDate::from_ymd_opt(2026, 3, 16).unwrap()
            }
        );
        assert_eq!(
            next_monthly_deadline(t, tz).unwrap().0,
            Period::Month {
                year: 2026,
                month: 4
            }
        );
        let late_march = tz
            .with_ymd_and_hms(2026, 3, 29, 0, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_monthly_deadline(late_march, tz).unwrap().0,
            Period::Month {
                year: 2026,
                month: 5
            }
        );
    }

    #[test]
    fn summaries_are_due_the_morning_after_their_period() {
        let tz = chrono_tz::Asia::Shanghai;
        let week = Period::Week {
            monday: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        };
        assert_eq!(
            summary_due(&week, tz),
            tz.with_ymd_and_hms(2026, 3, 9, 9, 0, 0)
                .single()
                .map(|d| d.with_timezone(&Utc))
        );
        assert_eq!(
            next_period(&Period::Month {
                year: 2026,
                month: 12
            }),
            Some(Period::Month {
                year: 2027,
                month: 1
            })
        );
    }
}
