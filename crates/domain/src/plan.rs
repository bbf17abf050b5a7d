//! Visit plans (Table 4, §6): the weekly plan for next week is due Friday 17:30 and the monthly plan
//! for next month by the 28th, in the office's time zone. Whether a submission is on time is
//! decided from the submission time the command gives.

use crate::acting::{Ctx, require_office, require_role};
use crate::events::*;
use crate::model::Period;
use crate::refusal::{Decision, RefusalCode, Rejected, check, refuse};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use funnel_types::{OfficeId, PlanId, Role, StaffId};

/// The id of an engineer's plan for a period: one stream per engineer and period.
pub fn plan_id(engineer: StaffId, period: &Period) -> PlanId {
    PlanId::derived(&format!("{engineer}:{}", period.key()))
}

/// First and last day a period covers.
pub fn period_days(period: &Period) -> Option<(NaiveDate, NaiveDate)> {
    match *period {
        Period::Week { monday } => Some((monday, monday.checked_add_signed(Duration::days(6))?)),
        Period::Month { year, month } => {
            let first = NaiveDate::from_ymd_opt(year, month, 1)?;
            let next = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)?
            };
            Some((first, next.pred_opt()?))
        }
    }
}

/// When the plan for `period` is due, in UTC: the Friday 17:30 before the week, or the 28th of the
/// month before (end of that day), local time in `tz`.
pub fn due_at(period: &Period, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let local = match *period {
        Period::Week { monday } => monday
            .checked_sub_signed(Duration::days(3))?
            .and_time(NaiveTime::from_hms_opt(17, 30, 0)?),
        Period::Month { year, month } => {
            if !(1..=12).contains(&month) {
                return None;
            }
            let (y, m) = if month == 1 {
                (year - 1, 12)
            } else {
                (year, month - 1)
            };
            NaiveDate::from_ymd_opt(y, m, 28)?.and_time(NaiveTime::from_hms_opt(23, 59, 59)?)
        }
    };
    let resolved = tz.from_local_datetime(&local).earliest().or_else(|| {
        tz.from_local_datetime(&(local + Duration::hours(1)))
            .earliest()
    })?;
    Some(resolved.with_timezone(&Utc))
}

/// A plan's state. `Default` is "nothing submitted".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanState {
    pub plan_id: Option<PlanId>,
    pub revisions: u32,
    pub overdue: bool,
    pub filed: bool,
    pub engineer: Option<StaffId>,
    pub office: Option<OfficeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanCommand {
    /// The acting engineer submits (or revises) their plan.
    Submit {
        period: Period,
        visits: Vec<PlannedVisit>,
    },
    /// The deadline passed with nothing submitted (raised by the scheduler or the assistant).
    MarkOverdue {
        engineer: StaffId,
        office: OfficeId,
        period: Period,
    },
    /// The assistant files the plan with the sales department.
    File,
}

pub fn evolve_plan(mut state: PlanState, event: &Event) -> PlanState {
    match event {
        Event::VisitPlanSubmitted(e) => {
            state.plan_id = Some(e.plan_id);
            state.revisions = e.revision;
            state.engineer = Some(e.engineer);
            state.office = Some(e.office);
        }
        Event::VisitPlanOverdue(e) => {
            state.plan_id = Some(e.plan_id);
            state.overdue = true;
            state.engineer = Some(e.engineer);
            state.office = Some(e.office);
        }
        Event::VisitPlanFiled(_) => state.filed = true,
        _ => {}
    }
    state
}

fn bad_period() -> Rejected {
    crate::refusal::Refusal::new(
        RefusalCode::InvalidValue,
        "the period is not valid: a week starts on a Monday, a month is 1 to 12",
        "计划周期无效：周计划须从周一开始，月份须为 1 至 12",
    )
    .into()
}

/// `tz` is the office's time zone.
pub fn decide_plan(
    state: &PlanState,
    cmd: &PlanCommand,
    ctx: &Ctx<'_>,
    tz: chrono_tz::Tz,
) -> Decision {
    match cmd {
        PlanCommand::Submit { period, visits } => {
            require_role(ctx.acting, &[Role::SalesEngineer], "submit a visit plan")?;
            let (Some(me), Some(office)) = (ctx.acting.staff_id(), ctx.acting.office()) else {
                return refuse(
                    RefusalCode::RoleNotPermitted,
                    "plans are submitted by engineers of an office",
                    "拜访计划须由办事处工程师提交",
                );
            };
            if state.engineer.is_some_and(|e| e != me) {
                return refuse(
                    RefusalCode::NotOwner,
                    "this is another engineer's plan",
                    "这是其他工程师的计划",
                );
            }
            if state.filed {
                return refuse(
                    RefusalCode::PlanClosed,
                    "the plan is already filed",
                    "该计划已备案",
                );
            }
            if matches!(period, Period::Week { monday } if monday.weekday() != Weekday::Mon) {
                return Err(bad_period());
            }
            let (first, last) = period_days(period).ok_or_else(bad_period)?;
            let due = due_at(period, tz).ok_or_else(bad_period)?;
            check::list("visits", visits, 300)?;
            for v in visits {
                check::required("customer", &v.customer, check::SHORT)?;
                check::optional("purpose", &v.purpose, check::LONG)?;
                if v.date < first || v.date > last {
                    return refuse(
                        RefusalCode::InvalidValue,
                        format!(
                            "visit on {} is outside the plan's period {first} – {last}",
                            v.date
                        ),
                        format!("{} 的拜访不在计划周期 {first} 至 {last} 内", v.date),
                    );
                }
            }
            Ok(vec![Event::VisitPlanSubmitted(VisitPlanSubmitted {
                plan_id: plan_id(me, period),
                engineer: me,
                office,
                period: *period,
                visits: visits.clone(),
                submitted_at: ctx.at,
                due_at: due,
                on_time: ctx.at <= due,
                revision: state.revisions + 1,
            })])
        }
        PlanCommand::MarkOverdue {
            engineer,
            office,
            period,
        } => {
            require_role(
                ctx.acting,
                &[Role::OfficeAssistant, Role::OfficeManager],
                "mark a plan overdue",
            )?;
            require_office(ctx.acting, *office)?;
            let due = due_at(period, tz).ok_or_else(bad_period)?;
            if state.revisions > 0 || state.overdue {
                return refuse(
                    RefusalCode::PlanClosed,
                    "the plan was already submitted or marked overdue",
                    "该计划已提交或已标记逾期",
                );
            }
            if ctx.at <= due {
                return refuse(
                    RefusalCode::PlanNotDue,
                    format!("the plan is not due until {due}"),
                    format!("该计划的截止时间为 {due}，尚未逾期"),
                );
            }
            Ok(vec![Event::VisitPlanOverdue(VisitPlanOverdue {
                plan_id: plan_id(*engineer, period),
                engineer: *engineer,
                office: *office,
                period: *period,
                due_at: due,
            })])
        }
        PlanCommand::File => {
            require_role(
                ctx.acting,
                &[Role::OfficeAssistant, Role::SalesDepartment],
                "file a visit plan",
            )?;
            let (Some(engineer), Some(office)) = (state.engineer, state.office) else {
                return refuse(
                    RefusalCode::PlanNotFound,
                    "no plan has been submitted",
                    "尚未提交计划",
                );
            };
            require_office(ctx.acting, office)?;
            if state.revisions == 0 {
                return refuse(
                    RefusalCode::PlanNotFound,
                    "no plan has been submitted",
                    "尚未提交计划",
                );
            }
            if state.filed {
                return refuse(
                    RefusalCode::PlanClosed,
                    "the plan is already filed",
                    "该计划已备案",
                );
            }
            let me = ctx.acting.staff_id().unwrap_or(engineer);
            let plan = state.plan_id.unwrap_or_else(|| PlanId::derived("unknown"));
            Ok(vec![Event::VisitPlanFiled(VisitPlanFiled {
                plan_id: plan,
                filed_by: me,
            })])
        }
    }
}
