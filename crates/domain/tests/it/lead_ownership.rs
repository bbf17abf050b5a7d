//! §5: who owns a lead — first to register, manager assignment, conflicts, reassignment, and the
//! recorded refusal of touching another engineer's lead.

use crate::fixtures::*;
use chrono::Duration;
use funnel_domain::events::*;
use funnel_domain::lead::{LeadCommand as C, LogVisit};
use funnel_domain::model::*;
use funnel_domain::*;
use funnel_types::*;

fn visit(summary: &str) -> C {
    C::LogVisit(LogVisit {
        visit_id: VisitId::derived(summary),
        kind: ContactKind::Visit,
        visited_at: t0(),
        purposes: vec![VisitPurpose::CollectNeeds],
        summary: summary.into(),
        information_gained: String::new(),
        customer_feedback: String::new(),
        next_step: String::new(),
        met: vec![],
    })
}

#[test]
fn self_found_lead_belongs_to_the_first_to_register() {
    let mut s = LeadSpec::new();
    let events = s.ok(
        wang(),
        register_cmd(
            "万科",
            "城市花园（二期）",
            Channel::BuildingSweep,
            PurchaseMode::Independent,
        ),
    );
    assert_eq!(types(&events), ["lead.registered", "lead.owner_assigned"]);
    assert_eq!(s.lead().owner, Some(wang().id));
    assert_eq!(s.lead().stage, Stage::Ordinary);
    assert_eq!(
        s.lead_id(),
        LeadId::derived(&customer_key("万科", "城市花园二期"))
    );
}

#[test]
fn registration_lists_missing_ordinary_criteria() {
    let s = LeadSpec::new();
    let C::Register(mut r) = register_cmd("万科", "", Channel::Internet, PurchaseMode::Independent)
    else {
        unreachable!()
    };
    r.contact.phone = String::new();
    r.need = " ".into();
    let rejected = s.when(wang(), C::Register(r)).unwrap_err();
    assert_eq!(rejected.refusal.code, RefusalCode::CriteriaUnmet);
    use funnel_domain::lead::Criterion::*;
    assert_eq!(
        rejected.refusal.missing,
        vec![ProjectNameAndLocation, ContactAndPhone, ExplicitNeed]
    );
    assert!(rejected.refusal.message_zh.contains("联系人及电话"));
}

#[test]
fn group_lead_needs_no_project_name() {
    let mut s = LeadSpec::new();
    s.ok(
        wang(),
        register_cmd("绿地集团", "", Channel::Relationship, PurchaseMode::Group),
    );
}

#[test]
fn event_and_passive_leads_wait_for_the_managers_assignment() {
    for channel in [
        Channel::TradeShow,
        Channel::IndustryAssociation,
        Channel::Inquiry,
        Channel::Referral,
        Channel::TenderInvitation,
    ] {
        let mut s = LeadSpec::new();
        let events = s.ok(
            wang(),
            register_cmd("保利", "天悦", channel, PurchaseMode::Independent),
        );
        assert_eq!(types(&events), ["lead.registered"], "{channel}");
        assert_eq!(s.lead().owner, None);
        // A second engineer's registration within the window is a candidate, not a conflict.
        let events = s.ok(
            li(),
            register_cmd("保利", "天悦", channel, PurchaseMode::Independent),
        );
        assert_eq!(types(&events), ["lead.duplicate_registration_received"]);
        s.refused(
            wang(),
            C::Assign {
                owner: wang().id,
                reason: "".into(),
            },
            RefusalCode::RoleNotPermitted,
        );
        let events = s.ok(
            manager(),
            C::Assign {
                owner: li().id,
                reason: "first contact".into(),
            },
        );
        assert!(
            matches!(&events[0], Event::LeadOwnerAssigned(e) if e.owner == li().id
            && matches!(e.basis, AssignmentBasis::ManagerAssignment { .. }))
        );
    }
}

#[test]
fn manager_assigns_only_active_engineers_of_the_office() {
    let mut s = LeadSpec::new();
    s.ok(
        assistant(),
        register_cmd(
            "保利",
            "天悦",
            Channel::TradeShow,
            PurchaseMode::Independent,
        ),
    );
    s.refused(
        manager(),
        C::Assign {
            owner: zhao_other_office().id,
            reason: "".into(),
        },
        RefusalCode::AssigneeNotEngineer,
    );
    s.refused(
        manager(),
        C::Assign {
            owner: assistant().id,
            reason: "".into(),
        },
        RefusalCode::AssigneeNotEngineer,
    );
    s.refused(
        other_manager(),
        C::Assign {
            owner: wang().id,
            reason: "".into(),
        },
        RefusalCode::OtherOffice,
    );
    s.ok(
        manager(),
        C::Assign {
            owner: wang().id,
            reason: "region".into(),
        },
    );
    let r = s.refused(
        manager(),
        C::Assign {
            owner: li().id,
            reason: "".into(),
        },
        RefusalCode::NotAwaitingAssignment,
    );
    assert!(r.refusal.message_en.contains("sales department"));
}

#[test]
fn duplicate_spelling_within_the_window_opens_a_conflict_for_the_manager() {
    let mut s = LeadSpec::owned_by_wang();
    s.later(Duration::hours(20));
    let events = s.ok(
        li(),
        register_cmd(
            "万科 ",
            "城市花园(二期)",
            Channel::Internet,
            PurchaseMode::Independent,
        ),
    );
    assert_eq!(
        types(&events),
        [
            "lead.duplicate_registration_received",
            "lead.ownership_conflict_opened"
        ]
    );
    let Event::OwnershipConflictOpened(c) = &events[1] else {
        unreachable!()
    };
    assert_eq!(c.claimants, vec![wang().id, li().id]);
    // The owner stays until the manager decides.
    assert_eq!(s.lead().owner, Some(wang().id));
    let conflict = c.conflict_id;
    s.refused(
        manager(),
        C::DecideConflict {
            conflict_id: conflict,
            winner: li().id,
            grounds: vec![],
            note: "".into(),
        },
        RefusalCode::FieldRequired,
    );
    s.refused(
        manager(),
        C::DecideConflict {
            conflict_id: conflict,
            winner: zhao_other_office().id,
            grounds: vec![ConflictGround::DeeperContact],
            note: "".into(),
        },
        RefusalCode::WinnerNotClaimant,
    );
    let events = s.ok(
        manager(),
        C::DecideConflict {
            conflict_id: conflict,
            winner: li().id,
            grounds: vec![ConflictGround::ReachedDecisionMaker],
            note: "李工已见到总经理".into(),
        },
    );
    assert_eq!(
        types(&events),
        ["lead.ownership_conflict_decided", "lead.owner_assigned"]
    );
    assert_eq!(s.lead().owner, Some(li().id));
    s.refused(
        manager(),
        C::DecideConflict {
            conflict_id: conflict,
            winner: li().id,
            grounds: vec![ConflictGround::DeeperContact],
            note: "".into(),
        },
        RefusalCode::ConflictNotFound,
    );
}

#[test]
fn engineer_cannot_decide_a_conflict_and_the_attempt_is_recorded() {
    let mut s = LeadSpec::owned_by_wang();
    let events = s.ok(
        li(),
        register_cmd(
            "万科",
            "城市花园二期",
            Channel::Internet,
            PurchaseMode::Independent,
        ),
    );
    let Event::OwnershipConflictOpened(c) = &events[1] else {
        unreachable!()
    };
    let r = s.refused(
        li(),
        C::DecideConflict {
            conflict_id: c.conflict_id,
            winner: li().id,
            grounds: vec![ConflictGround::DeeperContact],
            note: "".into(),
        },
        RefusalCode::RoleNotPermitted,
    );
    assert!(
        matches!(&r.record[..], [Event::TouchRefused(t)] if t.attempted_by == li().id && t.action == "decide_conflict")
    );
}

#[test]
fn duplicate_after_the_window_is_refused_first_registrant_owns_it() {
    let mut s = LeadSpec::owned_by_wang();
    s.later(Policy::default().duplicate_window + Duration::minutes(1));
    let r = s.refused(
        li(),
        register_cmd(
            "万科",
            "城市花园二期",
            Channel::Internet,
            PurchaseMode::Independent,
        ),
        RefusalCode::AlreadyRegistered,
    );
    assert!(r.record.is_empty(), "a late registration is not a touch");
    assert!(r.refusal.message_zh.contains("先报备者负责"));
}

#[test]
fn the_duplicate_window_is_configurable() {
    let mut s = LeadSpec::owned_by_wang();
    s.policy.duplicate_window = Duration::hours(1);
    s.later(Duration::hours(2));
    s.refused(
        li(),
        register_cmd(
            "万科",
            "城市花园二期",
            Channel::Internet,
            PurchaseMode::Independent,
        ),
        RefusalCode::AlreadyRegistered,
    );
}

#[test]
fn same_customer_in_another_office_or_by_the_same_engineer_is_refused() {
    let mut s = LeadSpec::owned_by_wang();
    let C::Register(mut r) = register_cmd(
        "万科",
        "城市花园二期",
        Channel::Internet,
        PurchaseMode::Independent,
    ) else {
        unreachable!()
    };
    r.office = other_office();
    s.refused(
        zhao_other_office(),
        C::Register(r),
        RefusalCode::RegisteredInOtherOffice,
    );
    s.refused(
        wang(),
        register_cmd(
            "万科",
            "城市花园二期",
            Channel::Internet,
            PurchaseMode::Independent,
        ),
        RefusalCode::AlreadyRegistered,
    );
}

#[test]
fn registering_for_another_office_is_refused() {
    let s = LeadSpec::new();
    let r = s.when(
        zhao_other_office(),
        register_cmd(
            "万科",
            "城市花园二期",
            Channel::Internet,
            PurchaseMode::Independent,
        ),
    );
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::OtherOffice);
}

#[test]
fn only_the_owner_logs_visits_others_are_refused_and_recorded() {
    let mut s = LeadSpec::owned_by_wang();
    let r = s.refused(li(), visit("poaching"), RefusalCode::NotOwner);
    let [Event::TouchRefused(t)] = &r.record[..] else {
        panic!("expected a recorded touch, got {:?}", r.record)
    };
    assert_eq!(
        (t.attempted_by, t.role, t.owner),
        (li().id, Role::SalesEngineer, Some(wang().id))
    );
    assert_eq!(t.code, "lead.not_owner");
    assert!(r.refusal.message_zh.contains("严禁争抢"));
    // The manager may not log the owner's visits either; the auditor changes nothing.
    s.refused(manager(), visit("manager"), RefusalCode::OwnerOnly);
    let r = s.refused(auditor(), visit("audit"), RefusalCode::ReadOnly);
    assert_eq!(r.record.len(), 1);
    s.ok(wang(), visit("own visit"));
}

#[test]
fn departed_staff_cannot_act() {
    let mut s = LeadSpec::owned_by_wang();
    let mut gone = wang();
    gone.active = false;
    s.refused(gone, visit("after leaving"), RefusalCode::StaffInactive);
}

#[test]
fn system_actors_are_not_owners() {
    let s = LeadSpec::owned_by_wang();
    let r = s.when_system(visit("robot")).unwrap_err();
    assert_eq!(r.refusal.code, RefusalCode::OwnerOnly);
    assert!(r.record.is_empty());
}

fn requested(s: &mut LeadSpec) -> ReassignmentId {
    let id = ReassignmentId::derived("r1");
    s.refused(
        li(),
        C::RequestReassignment {
            reassignment_id: id,
            to: li().id,
            evidence: "x".into(),
        },
        RefusalCode::RoleNotPermitted,
    );
    s.refused(
        manager(),
        C::RequestReassignment {
            reassignment_id: id,
            to: li().id,
            evidence: " ".into(),
        },
        RefusalCode::FieldRequired,
    );
    s.refused(
        manager(),
        C::RequestReassignment {
            reassignment_id: id,
            to: wang().id,
            evidence: "x".into(),
        },
        RefusalCode::NothingToDo,
    );
    let events = s.ok(
        manager(),
        C::RequestReassignment {
            reassignment_id: id,
            to: li().id,
            evidence: "王工调岗".into(),
        },
    );
    assert_eq!(types(&events), ["lead.reassignment_requested"]);
    s.refused(
        manager(),
        C::RequestReassignment {
            reassignment_id: ReassignmentId::derived("r2"),
            to: li().id,
            evidence: "x".into(),
        },
        RefusalCode::ReassignmentPending,
    );
    id
}

#[test]
fn reassignment_needs_the_sales_department_and_the_owner_in_either_order() {
    for owner_first in [true, false] {
        let mut s = LeadSpec::owned_by_wang();
        let id = requested(&mut s);
        s.refused(
            li(),
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
            RefusalCode::RoleNotPermitted,
        );
        s.refused(
            manager(),
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
            RefusalCode::RoleNotPermitted,
        );
        let (first, second) = if owner_first {
            (wang(), sales_dept())
        } else {
            (sales_dept(), wang())
        };
        let events = s.ok(
            first,
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
        );
        assert_eq!(types(&events), ["lead.reassignment_approved"]);
        assert_eq!(
            s.lead().owner,
            Some(wang().id),
            "one approval is not enough"
        );
        s.refused(
            first,
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
            RefusalCode::AlreadyApproved,
        );
        let events = s.ok(
            second,
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
        );
        assert_eq!(
            types(&events),
            ["lead.reassignment_approved", "lead.owner_assigned"]
        );
        assert_eq!(s.lead().owner, Some(li().id));
        assert!(s.lead().reassignment.is_none());
        s.refused(
            sales_dept(),
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
            RefusalCode::ReassignmentClosed,
        );
    }
}

#[test]
fn either_party_may_deny_a_reassignment() {
    for denier in [wang(), sales_dept()] {
        let mut s = LeadSpec::owned_by_wang();
        let id = requested(&mut s);
        s.refused(
            denier,
            C::DenyReassignment {
                reassignment_id: id,
                reason: "".into(),
            },
            RefusalCode::FieldRequired,
        );
        let events = s.ok(
            denier,
            C::DenyReassignment {
                reassignment_id: id,
                reason: "客户关系在我".into(),
            },
        );
        assert_eq!(types(&events), ["lead.reassignment_denied"]);
        assert_eq!(s.lead().owner, Some(wang().id));
        s.refused(
            wang(),
            C::ApproveReassignment {
                reassignment_id: id,
                note: "".into(),
            },
            RefusalCode::ReassignmentClosed,
        );
    }
}

#[test]
fn reassignment_expires_after_the_configured_period() {
    let mut s = LeadSpec::owned_by_wang();
    let id = requested(&mut s);
    s.refused(
        manager(),
        C::ExpireReassignment {
            reassignment_id: id,
        },
        RefusalCode::InvalidValue,
    );
    s.later(Policy::default().reassignment_expiry + Duration::seconds(1));
    s.refused(
        wang(),
        C::ApproveReassignment {
            reassignment_id: id,
            note: "".into(),
        },
        RefusalCode::ReassignmentClosed,
    );
    let events = s
        .when_system(C::ExpireReassignment {
            reassignment_id: id,
        })
        .expect("expires");
    assert_eq!(types(&events), ["lead.reassignment_expired"]);
}

#[test]
fn when_the_owner_has_left_the_sales_department_alone_can_reassign() {
    let mut s = LeadSpec::owned_by_wang();
    let id = requested(&mut s);
    s.dir.get_mut(&wang().id).expect("wang").active = false;
    let events = s.ok(
        sales_dept(),
        C::ApproveReassignment {
            reassignment_id: id,
            note: "原负责人已离职".into(),
        },
    );
    assert_eq!(
        types(&events),
        ["lead.reassignment_approved", "lead.owner_assigned"]
    );
    assert_eq!(s.lead().owner, Some(li().id));
}

#[test]
fn a_key_is_reserved_once_and_a_registration_meeting_a_reservation_is_refused() {
    let older = LeadId::derived("modernhomes/");
    let reserve = C::ReserveKey {
        lead_id: older,
        registered_key: "modernhomes/".into(),
        registered_key_version: 1,
        office: office(),
    };
    let mut s = LeadSpec::new();
    // Only Funnel itself reserves keys, and only keys that folding changes.
    s.refused(wang(), reserve.clone(), RefusalCode::RoleNotPermitted);
    let unchanged = C::ReserveKey {
        lead_id: LeadId::derived("vanke/"),
        registered_key: "vanke/".into(),
        registered_key_version: 1,
        office: office(),
    };
    assert_eq!(
        s.when_system(unchanged).unwrap_err().refusal.code,
        RefusalCode::InvalidValue
    );
    let events = s.when_system(reserve.clone()).expect("reserved");
    let [Event::LeadKeyReserved(k)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(k.customer_key, customer_key("Modern Homes", ""));
    assert_eq!((k.lead_id, k.key_version), (older, KEY_VERSION));
    s.state = lead::evolve(std::mem::take(&mut s.state), &events[0]);
    assert_eq!(s.state.reserved_for, Some(older));
    assert_eq!(
        s.when_system(reserve).unwrap_err().refusal.code,
        RefusalCode::AlreadyRegistered
    );
    // A registration decided on the reserved stream (the reservation was written meanwhile).
    let rejected = s.refused(
        li(),
        register_cmd(
            "M\u{43e}dern Homes",
            "",
            Channel::BuildingSweep,
            PurchaseMode::Independent,
        ),
        RefusalCode::AlreadyRegistered,
    );
    assert!(rejected.record.is_empty());
}
