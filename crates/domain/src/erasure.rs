//! Erasing a person's personal data as a decision of two people (stream `erasure-<id>`): a member
//! of headquarters staff (the sales department or an executive) asks, naming the person and why;
//! another one approves or rejects. The approval records that the person's key is destroyed
//! ([`SubjectErased`]), which the store carries out as it appends it; the erasure workflow gives
//! the approvers a task in their inbox. An operator with the store's files can also erase at the
//! command line (`funnel privacy erase`), recorded by the system with its reason.

use crate::acting::{Ctx, require_role};
use crate::events::{ErasureApproved, ErasureRejected, ErasureRequested, Event, SubjectErased};
use crate::privacy::SubjectKind;
use crate::refusal::{Decision, RefusalCode, check, refuse};
use funnel_types::{LeadId, Role, StaffId};

/// The type of [`SubjectErased`], which the store carries out as it appends it.
pub const SUBJECT_ERASED: &str = "privacy.subject_erased";

/// Who may ask for an erasure and approve one: headquarters' sales department and executives,
/// who answer the people's requests and own the retention policy.
pub const ERASURE_ROLES: [Role; 2] = [Role::SalesDepartment, Role::Executive];

/// Where an erasure stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErasureStatus {
    /// Not asked for.
    #[default]
    None,
    Requested,
    Erased,
    Rejected,
}

/// One erasure, as its stream's events fold. `Default` is "never asked for".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasureState {
    pub status: ErasureStatus,
    pub subject: String,
    pub lead_id: Option<LeadId>,
    pub reason: String,
    /// Who asked.
    pub requested_by: Option<StaffId>,
}

/// Folds one event.
pub fn evolve_erasure(mut state: ErasureState, event: &Event) -> ErasureState {
    match event {
        Event::ErasureRequested(e) => {
            state.status = ErasureStatus::Requested;
            state.subject = e.subject.clone();
            state.lead_id = Some(e.lead_id);
            state.reason = e.reason.clone();
            state.requested_by = Some(e.requested_by);
        }
        Event::SubjectErased(e) => {
            state.status = ErasureStatus::Erased;
            state.subject = e.subject.clone();
            state.lead_id = Some(e.lead_id);
        }
        Event::ErasureRejected(_) => state.status = ErasureStatus::Rejected,
        _ => {}
    }
    state
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErasureCommand {
    /// Ask for `subject`'s personal data to be erased.
    Request {
        subject: String,
        lead_id: LeadId,
        reason: String,
    },
    /// Approve (by someone else than who asked): the person's key is destroyed.
    Approve,
    Reject {
        reason: String,
    },
    /// An operator's erasure at the command line, carried out already (the system only).
    Record {
        subject: String,
        lead_id: LeadId,
        reason: String,
    },
}

/// The person a subject text names, if it is one: `contact:<lead id>` or `key_person:<id>`.
pub fn parse_subject(text: &str) -> Option<(SubjectKind, uuid::Uuid)> {
    let (prefix, id) = text.split_once(':')?;
    let kind = [SubjectKind::LeadContact, SubjectKind::KeyPerson]
        .into_iter()
        .find(|k| k.prefix() == prefix)?;
    let id: uuid::Uuid = id.parse().ok()?;
    // Only the canonical form, so that one person has one subject text.
    (format!("{prefix}:{id}") == text).then_some((kind, id))
}

fn subject_checked(subject: &str, lead_id: LeadId) -> Result<(), crate::Rejected> {
    match parse_subject(subject) {
        Some((SubjectKind::LeadContact, id)) if id != lead_id.0 => refuse(
            RefusalCode::InvalidValue,
            format!("`{subject}` is the contact of another lead than {lead_id}"),
            format!("`{subject}` 是另一条线索的联系人，不属于 {lead_id}"),
        ),
        Some(_) => Ok(()),
        None => refuse(
            RefusalCode::InvalidValue,
            format!(
                "`subject` must name a person as `contact:<lead id>` or `key_person:<key person id>`, not `{subject}`"
            ),
            format!(
                "`subject` 须写作 `contact:<线索 ID>`（联系人）或 `key_person:<关键人 ID>`（关键人），而不是 `{subject}`"
            ),
        ),
    }
}

pub fn decide_erasure(
    state: &ErasureState,
    erasure_id: uuid::Uuid,
    cmd: &ErasureCommand,
    ctx: &Ctx<'_>,
) -> Decision {
    match cmd {
        ErasureCommand::Request {
            subject,
            lead_id,
            reason,
        } => {
            require_role(ctx.acting, &ERASURE_ROLES, "ask for an erasure")?;
            // A person asks, so that a second person can be told apart.
            let Some(requested_by) = ctx.acting.staff_id() else {
                return refuse(
                    RefusalCode::RoleNotPermitted,
                    "an erasure is asked for by a member of staff",
                    "删除申请须由员工本人提出",
                );
            };
            check::required("reason", reason, check::LONG)?;
            subject_checked(subject, *lead_id)?;
            if state.status != ErasureStatus::None {
                return refuse(
                    RefusalCode::NothingToDo,
                    format!("erasure {erasure_id} was asked for already"),
                    format!("删除申请 {erasure_id} 已经提出"),
                );
            }
            Ok(vec![Event::ErasureRequested(ErasureRequested {
                erasure_id,
                subject: subject.clone(),
                lead_id: *lead_id,
                reason: reason.trim().to_string(),
                requested_by,
            })])
        }
        ErasureCommand::Approve | ErasureCommand::Reject { .. } => {
            let approve = matches!(cmd, ErasureCommand::Approve);
            let action = if approve {
                "approve an erasure"
            } else {
                "reject an erasure"
            };
            require_role(ctx.acting, &ERASURE_ROLES, action)?;
            open(state, erasure_id)?;
            if let Some(me) = ctx.acting.staff_id()
                && state.requested_by == Some(me)
            {
                return refuse(
                    RefusalCode::SecondPersonRequired,
                    "an erasure is approved or rejected by someone else than who asked for it",
                    "删除申请须由申请人以外的另一人审批",
                );
            }
            let Some(lead_id) = state.lead_id else {
                return not_found(erasure_id);
            };
            match cmd {
                ErasureCommand::Reject { reason } => {
                    check::required("reason", reason, check::LONG)?;
                    Ok(vec![Event::ErasureRejected(ErasureRejected {
                        erasure_id,
                        reason: reason.trim().to_string(),
                    })])
                }
                _ => Ok(vec![
                    Event::ErasureApproved(ErasureApproved { erasure_id }),
                    Event::SubjectErased(SubjectErased {
                        erasure_id,
                        subject: state.subject.clone(),
                        lead_id,
                        reason: state.reason.clone(),
                    }),
                ]),
            }
        }
        ErasureCommand::Record {
            subject,
            lead_id,
            reason,
        } => {
            if !ctx.acting.is_system() {
                return refuse(
                    RefusalCode::RoleNotPermitted,
                    "an erasure without approval is recorded only by an operator at the command line",
                    "未经审批的删除只能由运维人员在命令行记录",
                );
            }
            check::required("reason", reason, check::LONG)?;
            subject_checked(subject, *lead_id)?;
            if state.status != ErasureStatus::None {
                return refuse(
                    RefusalCode::NothingToDo,
                    format!("erasure {erasure_id} is recorded already"),
                    format!("删除记录 {erasure_id} 已存在"),
                );
            }
            Ok(vec![Event::SubjectErased(SubjectErased {
                erasure_id,
                subject: subject.clone(),
                lead_id: *lead_id,
                reason: reason.trim().to_string(),
            })])
        }
    }
}

fn not_found(erasure_id: uuid::Uuid) -> Decision {
    refuse(
        RefusalCode::ErasureNotFound,
        format!("no erasure {erasure_id} was asked for"),
        format!("没有编号为 {erasure_id} 的删除申请"),
    )
}

/// The erasure must be waiting for a decision.
fn open(state: &ErasureState, erasure_id: uuid::Uuid) -> Result<(), crate::Rejected> {
    match state.status {
        ErasureStatus::Requested => Ok(()),
        ErasureStatus::None => not_found(erasure_id).map(|_| ()),
        ErasureStatus::Erased | ErasureStatus::Rejected => refuse(
            RefusalCode::ErasureClosed,
            format!("erasure {erasure_id} was decided already"),
            format!("删除申请 {erasure_id} 已审批完毕"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Acting, Policy, StaffInfo};
    use std::collections::BTreeMap;

    fn staff(name: &str, role: Role) -> Acting {
        Acting::Staff(StaffInfo {
            id: StaffId::derived(name),
            role,
            office: None,
            active: true,
        })
    }

    fn ctx<'a>(
        acting: &'a Acting,
        policy: &'a Policy,
        nobody: &'a BTreeMap<StaffId, StaffInfo>,
    ) -> Ctx<'a> {
        Ctx {
            acting,
            at: chrono::Utc::now(),
            policy,
            staff: nobody,
        }
    }

    #[test]
    fn an_erasure_needs_a_second_person_of_headquarters() {
        let (policy, nobody) = (Policy::default(), BTreeMap::new());
        let lead = LeadId::new();
        let asker = staff("sd", Role::SalesDepartment);
        let request = ErasureCommand::Request {
            subject: format!("contact:{lead}"),
            lead_id: lead,
            reason: "PIPL-2026-17".into(),
        };
        let id = uuid::Uuid::now_v7();
        let none = ErasureState::default();
        // Engineers, managers and auditors may not ask.
        for role in [Role::SalesEngineer, Role::OfficeManager, Role::Auditor] {
            let who = staff("other", role);
            assert!(decide_erasure(&none, id, &request, &ctx(&who, &policy, &nobody)).is_err());
        }
        let asked =
            decide_erasure(&none, id, &request, &ctx(&asker, &policy, &nobody)).expect("asked");
        let state = asked.iter().fold(ErasureState::default(), evolve_erasure);
        assert_eq!(state.status, ErasureStatus::Requested);
        // Not by the one who asked.
        let approve = ErasureCommand::Approve;
        let err = decide_erasure(&state, id, &approve, &ctx(&asker, &policy, &nobody))
            .expect_err("self-approval");
        assert_eq!(err.refusal.code, RefusalCode::SecondPersonRequired);
        let approver = staff("ex", Role::Executive);
        let done = decide_erasure(&state, id, &approve, &ctx(&approver, &policy, &nobody))
            .expect("approved");
        assert!(matches!(
            &done[1],
            Event::SubjectErased(e) if e.subject == format!("contact:{lead}") && e.reason == "PIPL-2026-17"
        ));
        let state = done.iter().fold(state, evolve_erasure);
        let err = decide_erasure(&state, id, &approve, &ctx(&approver, &policy, &nobody))
            .expect_err("twice");
        assert_eq!(err.refusal.code, RefusalCode::ErasureClosed);
        // Only the system records an erasure without approval.
        let record = ErasureCommand::Record {
            subject: format!("contact:{lead}"),
            lead_id: lead,
            reason: "retention".into(),
        };
        assert!(decide_erasure(&none, id, &record, &ctx(&approver, &policy, &nobody)).is_err());
        let system = Acting::system("funnel privacy erase");
        assert!(decide_erasure(&none, id, &record, &ctx(&system, &policy, &nobody)).is_ok());
    }

    #[test]
    fn a_subject_is_named_canonically_and_a_contact_belongs_to_its_lead() {
        let lead = uuid::Uuid::now_v7();
        assert_eq!(
            parse_subject(&format!("contact:{lead}")),
            Some((SubjectKind::LeadContact, lead))
        );
        assert!(parse_subject(&format!("key_person:{lead}")).is_some());
        assert!(parse_subject(&format!("contact:{}", lead.simple())).is_none());
        assert!(parse_subject("customer:1").is_none());
        let other = LeadId::new();
        assert!(subject_checked(&format!("contact:{lead}"), other).is_err());
        assert!(subject_checked(&format!("key_person:{lead}"), other).is_ok());
    }
}
