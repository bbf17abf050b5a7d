//! Workflows raised by the lead rules: the insider rule (third visit without an insider → a task for
//! the office manager, §7) and stagnation (a review whose outcome is change key person, change
//! engineer or suspend, §8). Both close when the rule is satisfied or the lead leaves the funnel.

use super::{Builder, role_in};
use crate::events::*;
use funnel_types::Role;

pub(super) fn react(r: &mut Builder<'_>, kind: WorkflowKind) {
    match (kind, r.trigger.event) {
        (WorkflowKind::InsiderEscalation, Event::InsiderEscalationRaised(e)) => {
            if r.state.active || r.started() {
                return;
            }
            r.start(
                kind,
                Some(e.lead_id),
                r.trigger.office,
                format!("insider escalation on lead {}", e.lead_id),
            );
            r.open_task(
                "help_develop_insider",
                role_in(Role::OfficeManager, r.trigger.office),
                Some(e.lead_id),
                format!(
                    "{} visits without an insider: help the engineer develop one",
                    e.visits_without_insider
                ),
                format!(
                    "已拜访 {} 次仍无内线：请协助工程师发展内线",
                    e.visits_without_insider
                ),
                None,
            );
        }
        (WorkflowKind::InsiderEscalation, Event::InsiderDeveloped(_)) if r.state.active => {
            r.complete("insider developed")
        }
        (WorkflowKind::StagnationReview, Event::StagnationReviewOpened(e)) => {
            if r.state.active || r.started() {
                return;
            }
            r.start(
                kind,
                Some(e.lead_id),
                r.trigger.office,
                format!("stagnation review on lead {}", e.lead_id),
            );
            r.open_task(
                "stagnation_review",
                role_in(Role::OfficeManager, r.trigger.office),
                Some(e.lead_id),
                format!("{} visits with both relationships still C: analyse with the engineer and decide (change key person, change engineer, suspend)", e.visits),
                format!("拜访 {} 次关系仍为 C 级：请与工程师分析并决定（更换关键人、更换工程师或中止）", e.visits),
                None,
            );
        }
        (WorkflowKind::StagnationReview, Event::StagnationReviewDecided(_)) if r.state.active => {
            r.complete("decided")
        }
        (_, Event::StageChanged(_)) if r.state.active => r.complete("lead left the funnel"),
        _ => {}
    }
}
