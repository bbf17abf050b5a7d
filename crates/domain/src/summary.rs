//! Office weekly and monthly summaries of new leads (Table 3, §6): compiled and verified by the
//! office assistant, reviewed by the office manager, then archived and filed with the sales
//! department.

use crate::acting::{Ctx, require_office, require_role};
use crate::events::*;
use crate::model::Period;
use crate::refusal::{Decision, RefusalCode, check, refuse};
use funnel_types::{OfficeId, Role, SummaryId};

/// The id of an office's summary for a period: one stream per office and period.
pub fn summary_id(office: OfficeId, period: &Period) -> SummaryId {
    SummaryId::derived(&format!("{office}:{}", period.key()))
}

/// Where a summary stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SummaryStage {
    #[default]
    NotCompiled,
    Compiled,
    Verified,
    Approved,
    Returned,
    Filed,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SummaryState {
    pub id: Option<SummaryId>,
    pub office: Option<OfficeId>,
    pub stage: SummaryStage,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SummaryCommand {
    Compile {
        office: OfficeId,
        period: Period,
        lines: Vec<SummaryLine>,
    },
    Verify {
        note: String,
    },
    Review {
        approve: bool,
        note: String,
    },
    File,
}

pub fn evolve_summary(mut state: SummaryState, event: &Event) -> SummaryState {
    match event {
        Event::SummaryCompiled(e) => {
            state.id = Some(e.summary_id);
            state.office = Some(e.office);
            state.stage = SummaryStage::Compiled;
        }
        Event::SummaryVerified(_) => state.stage = SummaryStage::Verified,
        Event::SummaryReviewed(e) => {
            state.stage = if e.approved {
                SummaryStage::Approved
            } else {
                SummaryStage::Returned
            }
        }
        Event::SummaryFiled(_) => state.stage = SummaryStage::Filed,
        _ => {}
    }
    state
}

fn wrong_state(now: SummaryStage, needed: &str) -> Decision {
    refuse(
        RefusalCode::SummaryWrongState,
        format!("the summary is {now:?}; this step needs it {needed}"),
        format!("汇总表当前状态为 {now:?}，此步骤需要状态为 {needed}"),
    )
}

pub fn decide_summary(state: &SummaryState, cmd: &SummaryCommand, ctx: &Ctx<'_>) -> Decision {
    if let SummaryCommand::Compile {
        office,
        period,
        lines,
    } = cmd
    {
        require_role(
            ctx.acting,
            &[Role::OfficeAssistant],
            "compile an office summary",
        )?;
        require_office(ctx.acting, *office)?;
        if !matches!(
            state.stage,
            SummaryStage::NotCompiled | SummaryStage::Returned | SummaryStage::Compiled
        ) {
            return wrong_state(state.stage, "not yet verified, or returned by the manager");
        }
        // A week starts on a Monday and a month is 1 to 12, as for a plan: the id is derived
        // from the period's key, so a Tuesday would name the same week as its Monday.
        let week_on_a_monday = match period {
            Period::Week { monday } => chrono::Datelike::weekday(monday) == chrono::Weekday::Mon,
            Period::Month { .. } => true,
        };
        if !week_on_a_monday || crate::plan::period_days(period).is_none() {
            return refuse(
                RefusalCode::InvalidValue,
                "the period is not valid: a week starts on a Monday, a month is 1 to 12",
                "汇总周期无效：周汇总须从周一开始，月份须为 1 至 12",
            );
        }
        check::list("lines", lines, 5000)?;
        for l in lines {
            check::required("customer", &l.customer, check::SHORT)?;
        }
        let me = ctx.acting.staff_id().map(Ok).unwrap_or_else(|| {
            refuse(
                RefusalCode::RoleNotPermitted,
                "summaries are compiled by the office assistant",
                "汇总表由办事处助理编制",
            )
        })?;
        return Ok(vec![Event::SummaryCompiled(SummaryCompiled {
            summary_id: summary_id(*office, period),
            office: *office,
            period: *period,
            compiled_by: me,
            lines: lines.clone(),
        })]);
    }
    let (Some(id), Some(office)) = (state.id, state.office) else {
        return refuse(
            RefusalCode::SummaryNotFound,
            "the summary has not been compiled",
            "汇总表尚未编制",
        );
    };
    let me = ctx.acting.staff_id();
    match cmd {
        SummaryCommand::Compile { .. } => wrong_state(state.stage, "not compiled"),
        SummaryCommand::Verify { note } => {
            require_role(
                ctx.acting,
                &[Role::OfficeAssistant],
                "verify an office summary",
            )?;
            require_office(ctx.acting, office)?;
            check::optional("note", note, check::LONG)?;
            if state.stage != SummaryStage::Compiled {
                return wrong_state(state.stage, "compiled");
            }
            Ok(vec![Event::SummaryVerified(SummaryVerified {
                summary_id: id,
                verified_by: me.unwrap_or_default(),
                note: note.trim().to_string(),
            })])
        }
        SummaryCommand::Review { approve, note } => {
            require_role(
                ctx.acting,
                &[Role::OfficeManager],
                "review an office summary",
            )?;
            require_office(ctx.acting, office)?;
            check::optional("note", note, check::LONG)?;
            if state.stage != SummaryStage::Verified {
                return wrong_state(state.stage, "verified");
            }
            if !approve && note.trim().is_empty() {
                return refuse(
                    RefusalCode::FieldRequired,
                    "say why the summary is returned",
                    "请说明退回理由",
                );
            }
            Ok(vec![Event::SummaryReviewed(SummaryReviewed {
                summary_id: id,
                reviewed_by: me.unwrap_or_default(),
                approved: *approve,
                note: note.trim().to_string(),
            })])
        }
        SummaryCommand::File => {
            require_role(
                ctx.acting,
                &[Role::OfficeAssistant, Role::SalesDepartment],
                "file an office summary",
            )?;
            require_office(ctx.acting, office)?;
            if state.stage != SummaryStage::Approved {
                return wrong_state(state.stage, "approved by the office manager");
            }
            Ok(vec![Event::SummaryFiled(SummaryFiled {
                summary_id: id,
                filed_by: me.unwrap_or_default(),
            })])
        }
    }
}
