//! Workflows of approvals: ownership conflicts (reminder after 2 working days, escalation to the
//! sales department after 5), reassignments (both approvals in either order, or expiry), valid-info
//! and prospect declarations (review, then filing; strategic prospects bring in the key-account
//! department), and contract review bound to the exact content.

use super::{Builder, OutCommand, Unreadable, person, role_in};
use crate::events::*;
use crate::lead::LeadCommand;
use funnel_types::Role;

pub(super) fn conflict(r: &mut Builder<'_>) {
    match r.trigger.event {
        Event::OwnershipConflictOpened(e) => {
            if r.started() {
                return;
            }
            let office = r.trigger.office;
            r.start(
                WorkflowKind::OwnershipConflict,
                Some(e.lead_id),
                office,
                format!("conflict {}", e.conflict_id),
            );
            let remind_at = r.working_days(r.trigger.occurred_at, 2);
            let escalate_at = r.working_days(r.trigger.occurred_at, 5);
            let task = r.open_task(
                "decide_conflict",
                role_in(Role::OfficeManager, office),
                Some(e.lead_id),
                "Decide who owns the lead: two engineers registered the same customer".into(),
                "裁定客户归属：两名工程师报备了同一客户".into(),
                Some(remind_at),
            );
            r.schedule(TimerPurpose::Reminder { task_id: task }, remind_at);
            r.schedule(TimerPurpose::Escalation { task_id: task }, escalate_at);
        }
        Event::OwnershipConflictDecided(_) if r.state.active => r.complete("decided"),
        Event::TimerFired(t) if r.state.active => match &t.purpose {
            TimerPurpose::Reminder { task_id } if r.state.tasks.contains_key(task_id) => {
                let to = r.state.tasks[task_id].assignee.clone();
                r.remind(
                    to,
                    Some(*task_id),
                    "An ownership conflict has waited 2 working days for a decision".into(),
                    "归属争议已等待 2 个工作日，请尽快裁定".into(),
                );
            }
            TimerPurpose::Escalation { task_id } if r.state.tasks.contains_key(task_id) => {
                let to = role_in(Role::SalesDepartment, None);
                r.out.events.push(Event::TaskEscalated(TaskEscalated {
                    workflow_id: r.id,
                    task_id: *task_id,
                    to: to.clone(),
                }));
                r.open_task(
                    "decide_conflict_escalated",
                    to,
                    r.state.lead_id,
                    "Escalated: an ownership conflict undecided for 5 working days".into(),
                    "升级：归属争议 5 个工作日未裁定".into(),
                    None,
                );
            }
            _ => {}
        },
        _ => {}
    }
}

/// An erasure waits for a second person of headquarters: a task for the sales department (an
/// executive may act on it too), a reminder after 2 working days.
pub(super) fn erasure(r: &mut Builder<'_>) {
    match r.trigger.event {
        Event::ErasureRequested(e) => {
            if r.started() {
                return;
            }
            r.start(
                WorkflowKind::Erasure,
                Some(e.lead_id),
                None,
                format!("erasure {}", e.erasure_id),
            );
            let remind_at = r.working_days(r.trigger.occurred_at, 2);
            let (who_en, who_zh) = match crate::erasure::parse_subject(&e.subject) {
                Some((crate::privacy::SubjectKind::KeyPerson, _)) => {
                    ("a key person of this lead", "该线索的一位关键人")
                }
                _ => ("this lead's contact", "该线索的联系人"),
            };
            let task = r.open_task(
                "approve_erasure",
                role_in(Role::SalesDepartment, None),
                Some(e.lead_id),
                format!(
                    "Approve or reject erasing the personal data of {who_en} (reason: {}); someone else than who asked decides",
                    e.reason
                ),
                format!(
                    "审批删除{who_zh}的个人信息（理由：{}）；须由申请人以外的人审批",
                    e.reason
                ),
                Some(remind_at),
            );
            r.schedule(TimerPurpose::Reminder { task_id: task }, remind_at);
        }
        Event::ErasureApproved(_) if r.state.active => r.complete("erased"),
        Event::ErasureRejected(_) if r.state.active => r.complete("rejected"),
        Event::TimerFired(t) if r.state.active => {
            if let TimerPurpose::Reminder { task_id } = &t.purpose
                && let Some(open) = r.state.tasks.get(task_id)
            {
                let to = open.assignee.clone();
                r.remind(
                    to,
                    Some(*task_id),
                    "An erasure has waited 2 working days for a second person's decision".into(),
                    "个人信息删除申请已等待 2 个工作日，请另一位同事审批".into(),
                );
            }
        }
        _ => {}
    }
}

pub(super) fn reassignment(r: &mut Builder<'_>) -> Result<(), Unreadable> {
    match r.trigger.event {
        Event::ReassignmentRequested(e) => {
            if r.started() {
                return Ok(());
            }
            let office = r.trigger.office;
            r.start(
                WorkflowKind::Reassignment,
                Some(e.lead_id),
                office,
                format!("reassignment {}", e.reassignment_id),
            );
            r.open_task(
                "approve_as_sales_department",
                role_in(Role::SalesDepartment, None),
                Some(e.lead_id),
                "Approve or deny a change of the lead's owner".into(),
                "审批客户负责人变更".into(),
                Some(e.expires_at),
            );
            r.open_task(
                "approve_as_owner",
                person(Role::SalesEngineer, office, e.from),
                Some(e.lead_id),
                "Your lead is to be reassigned: approve or deny".into(),
                "您负责的客户拟变更负责人：请同意或拒绝".into(),
                Some(e.expires_at),
            );
            r.schedule(TimerPurpose::ReassignmentExpiry, e.expires_at);
        }
        Event::ReassignmentApproved(e) if r.state.active => {
            let name = match e.party {
                ApprovalParty::SalesDepartment => "approve_as_sales_department",
                ApprovalParty::OriginalOwner => "approve_as_owner",
            };
            r.close_task(name, "approved");
        }
        Event::LeadOwnerAssigned(_) if r.state.active => r.complete("approved"),
        Event::ReassignmentDenied(_) if r.state.active => r.complete("denied"),
        Event::ReassignmentExpired(_) if r.state.active => r.complete("expired"),
        Event::TimerFired(t) if r.state.active && t.purpose == TimerPurpose::ReassignmentExpiry => {
            if let (Some(lead_id), Some(id)) =
                (r.state.lead_id, r.id("subject", r.state.reassignment_id)?)
            {
                r.send(
                    "expire",
                    OutCommand::Lead {
                        lead_id,
                        cmd: LeadCommand::ExpireReassignment {
                            reassignment_id: id,
                        },
                    },
                );
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn declaration(r: &mut Builder<'_>, kind: WorkflowKind) {
    let office = r.state.office.or(r.trigger.office);
    match (kind, r.trigger.event) {
        (WorkflowKind::ValidInfoDeclaration, Event::ValidInfoDeclared(e)) => {
            start_review(
                r,
                kind,
                e.lead_id,
                format!("valid-info declaration {}", e.declaration_id),
                "有效信息申报",
            );
        }
        (WorkflowKind::ProspectDeclaration, Event::ProspectDeclared(e)) => {
            start_review(
                r,
                kind,
                e.lead_id,
                format!("prospect declaration {} ({})", e.declaration_id, e.tier),
                "准客户申报",
            );
            r.note("tier", e.tier.as_str());
        }
        (_, Event::DeclarationReviewed(e)) if r.state.active => {
            if e.approved {
                r.close_task("review_declaration", "approved");
                r.open_task(
                    "file_declaration",
                    role_in(Role::SalesDepartment, None),
                    r.state.lead_id,
                    "File the approved declaration (备案)".into(),
                    "对审核通过的申报进行备案".into(),
                    None,
                );
            } else {
                r.complete("returned");
            }
        }
        (_, Event::DeclarationFiled(e)) if r.state.active => {
            if e.key_account_involved {
                r.remind(
                    role_in(Role::KeyAccountDepartment, None),
                    None,
                    "A group or strategic prospect was filed: the key-account department joins the office on it".into(),
                    "集团/战略准客户已备案：大客户部协同办事处跟进".into(),
                );
                r.note("key_account", "involved");
            }
            r.complete("filed");
        }
        (_, Event::DeclarationWithdrawn(_)) if r.state.active => {
            r.complete("withdrawn: the lead left the funnel");
        }
        (_, Event::TimerFired(t)) if r.state.active => {
            if let TimerPurpose::Reminder { task_id } = &t.purpose
                && let Some(task) = r.state.tasks.get(task_id)
            {
                let to = task.assignee.clone();
                r.remind(
                    to,
                    Some(*task_id),
                    "A declaration has waited 2 working days for review".into(),
                    "申报已等待审核 2 个工作日".into(),
                );
            }
        }
        _ => {}
    }
    let _ = office;
}

fn start_review(
    r: &mut Builder<'_>,
    kind: WorkflowKind,
    lead_id: funnel_types::LeadId,
    subject: String,
    zh: &str,
) {
    if r.started() {
        return;
    }
    let office = r.trigger.office;
    r.start(kind, Some(lead_id), office, subject);
    let remind_at = r.working_days(r.trigger.occurred_at, 2);
    let task = r.open_task(
        "review_declaration",
        role_in(Role::OfficeManager, office),
        Some(lead_id),
        "Review a declaration".into(),
        format!("审核{zh}"),
        Some(remind_at),
    );
    r.schedule(TimerPurpose::Reminder { task_id: task }, remind_at);
}

fn seat_role(seat: &str, r: &Builder<'_>) -> Role {
    r.ctx
        .policy
        .contract_reviewers
        .iter()
        .find(|s| s.seat == seat)
        .map(|s| s.role)
        .unwrap_or(Role::SalesDepartment)
}

fn open_seat_tasks(r: &mut Builder<'_>, seats: &[String]) {
    for seat in seats {
        let role = seat_role(seat, r);
        let office = r.state.office.or(r.trigger.office);
        r.open_task(
            &format!("review_contract:{seat}"),
            role_in(role, office),
            r.state.lead_id.or_else(|| r.trigger.event.lead_id()),
            format!(
                "Review the contract as {}",
                crate::policy::seat_label_en(seat)
            ),
            format!("以“{}”身份评审合同", crate::policy::seat_label_zh(seat)),
            None,
        );
    }
}

pub(super) fn contract(r: &mut Builder<'_>) -> Result<(), Unreadable> {
    match r.trigger.event {
        Event::ContractSubmitted(e) => {
            if r.started() {
                return Ok(());
            }
            r.start(
                WorkflowKind::ContractReview,
                Some(e.lead_id),
                r.trigger.office,
                format!("contract {}", e.contract_id),
            );
            r.note("reviewers", &e.reviewers.join(","));
            r.note("owner", &e.submitted_by.to_string());
            open_seat_tasks(r, &e.reviewers);
        }
        Event::ContractApproved(e) if r.state.active => {
            r.close_task(&format!("review_contract:{}", e.seat), "approved");
            let still_open = r.state.tasks.values().any(|t| {
                t.name.starts_with("review_contract:")
                    && t.name != format!("review_contract:{}", e.seat)
            });
            if !still_open && let Some(owner) = r.id("owner", r.state.owner)? {
                r.open_task(
                    "sign_contract",
                    person(Role::SalesEngineer, r.state.office, owner),
                    r.state.lead_id,
                    "Every reviewer approved: sign the contract".into(),
                    "评审全部通过：请签订合同".into(),
                    None,
                );
            }
        }
        Event::ContractRejected(e) if r.state.active => {
            let seats: Vec<String> = r
                .state
                .tasks
                .values()
                .filter(|t| t.name.starts_with("review_contract:"))
                .map(|t| t.name.clone())
                .collect();
            for s in seats {
                r.close_task(&s, "rejected by another seat");
            }
            r.close_task("sign_contract", "rejected");
            if let Some(owner) = r.id("owner", r.state.owner)? {
                r.open_task(
                    "renegotiate_contract",
                    person(Role::SalesEngineer, r.state.office, owner),
                    r.state.lead_id,
                    format!(
                        "The contract was rejected by {}: renegotiate and amend it ({})",
                        crate::policy::seat_label_en(&e.seat),
                        e.reasons
                    ),
                    format!(
                        "合同被“{}”驳回：请重新谈判并修改（{}）",
                        crate::policy::seat_label_zh(&e.seat),
                        e.reasons
                    ),
                    None,
                );
            }
        }
        Event::ContractAmended(_) if r.state.active => {
            // Earlier approvals are void: every seat reviews the new content.
            r.close_task("renegotiate_contract", "amended");
            r.close_task("sign_contract", "amended");
            let seats: Vec<String> = r
                .state
                .note("reviewers")
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            open_seat_tasks(r, &seats);
        }
        Event::ContractSigned(_) if r.state.active => r.complete("signed"),
        Event::StageChanged(e)
            if r.state.active
                && matches!(
                    e.to,
                    crate::model::Stage::Lost | crate::model::Stage::Suspended
                ) =>
        {
            r.complete("lead left the funnel")
        }
        _ => {}
    }
    Ok(())
}
