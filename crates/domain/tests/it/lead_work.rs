//! Table 2, Table 5, §7 and §8: visits, key persons, insiders, relationship levels, criteria
//! evidence, the insider rule and the stagnation rule.

use crate::fixtures::*;
use chrono::Duration;
use funnel_domain::events::*;
use funnel_domain::lead::{
    Criterion, LeadCommand as C, LogVisit, RecordKeyPerson, StagnationDecision, UpdateDetails,
};
use funnel_domain::model::*;
use funnel_domain::*;
use funnel_types::*;

pub fn visit(n: u32) -> C {
    C::LogVisit(LogVisit {
        visit_id: VisitId::derived(&format!("v{n}")),
        kind: ContactKind::Visit,
        visited_at: t0(),
        purposes: vec![VisitPurpose::BuildRelationship],
        summary: format!("visit {n}"),
        information_gained: String::new(),
        customer_feedback: String::new(),
        next_step: "下周再访".into(),
        met: vec![],
    })
}

pub fn key_person(name: &str, role: KeyPersonRole) -> (KeyPersonId, C) {
    let id = KeyPersonId::derived(name);
    (
        id,
        C::RecordKeyPerson(RecordKeyPerson {
            key_person_id: id,
            name: name.into(),
            title: "弱电工程师".into(),
            role,
            phone: "139".into(),
            personal_notes: String::new(),
            levels: None,
        }),
    )
}

#[test]
fn visits_are_numbered_and_name_known_key_persons_only() {
    let mut s = LeadSpec::owned_by_wang();
    let events = s.ok(wang(), visit(1));
    assert!(
        matches!(&events[0], Event::VisitLogged(v) if v.visit_number == 1 && v.engineer == wang().id)
    );
    let C::LogVisit(mut v) = visit(2) else {
        unreachable!()
    };
    v.met = vec![KeyPersonId::derived("nobody")];
    s.refused(
        wang(),
        C::LogVisit(v.clone()),
        RefusalCode::UnknownKeyPerson,
    );
    v.met.clear();
    v.visited_at = s.at + Duration::days(2);
    s.refused(wang(), C::LogVisit(v.clone()), RefusalCode::InvalidValue);
    v.summary = String::new();
    v.visited_at = s.at;
    s.refused(wang(), C::LogVisit(v), RefusalCode::FieldRequired);
}

#[test]
fn third_visit_without_an_insider_escalates_to_the_manager_once() {
    let mut s = LeadSpec::owned_by_wang();
    assert_eq!(types(&s.ok(wang(), visit(1))), ["lead.visit_logged"]);
    assert_eq!(types(&s.ok(wang(), visit(2))), ["lead.visit_logged"]);
    let events = s.ok(wang(), visit(3));
    assert_eq!(
        types(&events),
        ["lead.visit_logged", "lead.insider_escalation_raised"]
    );
    assert!(
        matches!(&events[1], Event::InsiderEscalationRaised(e) if e.visits_without_insider == 3)
    );
    assert_eq!(
        types(&s.ok(wang(), visit(4))),
        ["lead.visit_logged"],
        "raised once per streak"
    );
}

#[test]
fn an_insider_resets_the_insider_rule() {
    let mut s = LeadSpec::owned_by_wang();
    let (kp, record) = key_person("张工", KeyPersonRole::Gatekeeper);
    s.ok(wang(), record);
    s.ok(wang(), visit(1));
    s.ok(wang(), visit(2));
    s.refused(
        wang(),
        C::MarkInsider {
            key_person_id: KeyPersonId::derived("x"),
            note: "".into(),
        },
        RefusalCode::UnknownKeyPerson,
    );
    s.ok(
        wang(),
        C::MarkInsider {
            key_person_id: kp,
            note: "内线".into(),
        },
    );
    s.refused(
        wang(),
        C::MarkInsider {
            key_person_id: kp,
            note: "".into(),
        },
        RefusalCode::NothingToDo,
    );
    assert!(
        s.lead()
            .met_criteria()
            .contains(&Criterion::InsiderDeveloped)
    );
    for n in 3..8 {
        assert!(!types(&s.ok(wang(), visit(n))).contains(&"lead.insider_escalation_raised"));
    }
}

#[test]
fn the_insider_limit_is_a_policy() {
    let mut s = LeadSpec::owned_by_wang();
    s.policy.insider_visit_limit = 1;
    assert_eq!(
        types(&s.ok(wang(), visit(1))),
        ["lead.visit_logged", "lead.insider_escalation_raised"]
    );
}

fn stagnant(s: &mut LeadSpec) {
    s.policy.insider_visit_limit = 100;
    for n in 1..5 {
        assert_eq!(types(&s.ok(wang(), visit(n))), ["lead.visit_logged"]);
    }
    let events = s.ok(wang(), visit(5));
    assert_eq!(
        types(&events),
        ["lead.visit_logged", "lead.stagnation_review_opened"]
    );
    assert!(s.lead().stagnation_review_open);
    assert_eq!(
        types(&s.ok(wang(), visit(6))),
        ["lead.visit_logged"],
        "one open review at a time"
    );
}

#[test]
fn five_visits_with_both_levels_c_open_a_stagnation_review() {
    let mut s = LeadSpec::owned_by_wang();
    stagnant(&mut s);
}

#[test]
fn a_level_above_c_stops_the_stagnation_count() {
    let mut s = LeadSpec::owned_by_wang();
    s.policy.insider_visit_limit = 100;
    for n in 1..5 {
        s.ok(wang(), visit(n));
    }
    s.ok(
        wang(),
        C::AssessRelationship {
            company: Level::B,
            personal: Level::C,
            key_person_id: None,
            note: "".into(),
        },
    );
    for n in 5..12 {
        assert_eq!(types(&s.ok(wang(), visit(n))), ["lead.visit_logged"]);
    }
}

#[test]
fn stagnation_review_outcomes() {
    // Change key person: the count starts again.
    let mut s = LeadSpec::owned_by_wang();
    stagnant(&mut s);
    s.refused(
        wang(),
        C::DecideStagnationReview {
            decision: StagnationDecision::Suspend,
            note: "".into(),
        },
        RefusalCode::RoleNotPermitted,
    );
    let events = s.ok(
        manager(),
        C::DecideStagnationReview {
            decision: StagnationDecision::ChangeKeyPerson {
                key_person_id: None,
            },
            note: "换人".into(),
        },
    );
    assert_eq!(types(&events), ["lead.stagnation_review_decided"]);
    assert_eq!(s.lead().stagnant_visits, 0);
    s.refused(
        manager(),
        C::DecideStagnationReview {
            decision: StagnationDecision::Suspend,
            note: "".into(),
        },
        RefusalCode::ReviewNotOpen,
    );

    // Suspend: the lead leaves the funnel.
    let mut s = LeadSpec::owned_by_wang();
    stagnant(&mut s);
    let events = s.ok(
        manager(),
        C::DecideStagnationReview {
            decision: StagnationDecision::Suspend,
            note: "暂缓".into(),
        },
    );
    assert_eq!(
        types(&events),
        [
            "lead.stagnation_review_decided",
            "lead.suspended",
            "lead.stage_changed"
        ]
    );
    assert_eq!(s.lead().stage, Stage::Suspended);

    // Change engineer: a reassignment that still needs both approvals (§5.6).
    let mut s = LeadSpec::owned_by_wang();
    stagnant(&mut s);
    let decision = StagnationDecision::ChangeEngineer {
        to: li().id,
        reassignment_id: ReassignmentId::derived("s1"),
        evidence: "停滞".into(),
    };
    let events = s.ok(
        manager(),
        C::DecideStagnationReview {
            decision,
            note: "".into(),
        },
    );
    assert_eq!(
        types(&events),
        [
            "lead.stagnation_review_decided",
            "lead.reassignment_requested"
        ]
    );
    assert_eq!(s.lead().owner, Some(wang().id));
}

#[test]
fn criteria_are_recorded_with_evidence_for_the_lead_purchase_mode() {
    let mut s = LeadSpec::owned_by_wang();
    s.refused(
        wang(),
        C::RecordCriterion {
            criterion: Criterion::ProductDemo,
            evidence: " ".into(),
        },
        RefusalCode::FieldRequired,
    );
    s.refused(
        wang(),
        C::RecordCriterion {
            criterion: Criterion::InsiderDeveloped,
            evidence: "x".into(),
        },
        RefusalCode::InvalidValue,
    );
    s.refused(
        wang(),
        C::RecordCriterion {
            criterion: Criterion::SecondTenderShortlist,
            evidence: "x".into(),
        },
        RefusalCode::InvalidValue,
    );
    s.ok(
        wang(),
        C::RecordCriterion {
            criterion: Criterion::ProductDemo,
            evidence: "3月5日演示".into(),
        },
    );
    s.refused(
        wang(),
        C::RecordCriterion {
            criterion: Criterion::ProductDemo,
            evidence: "again".into(),
        },
        RefusalCode::NothingToDo,
    );
    s.refused(
        li(),
        C::RecordCriterion {
            criterion: Criterion::CompetitorsKnown,
            evidence: "x".into(),
        },
        RefusalCode::NotOwner,
    );
}

#[test]
fn record_changes_are_owner_only_and_keep_ordinary_criteria() {
    let mut s = LeadSpec::owned_by_wang();
    s.refused(
        wang(),
        C::UpdateDetails(UpdateDetails::default()),
        RefusalCode::NothingToDo,
    );
    s.refused(
        wang(),
        C::UpdateDetails(UpdateDetails {
            need: Some("".into()),
            ..Default::default()
        }),
        RefusalCode::FieldRequired,
    );
    s.refused(
        li(),
        C::UpdateDetails(UpdateDetails {
            need: Some("x".into()),
            ..Default::default()
        }),
        RefusalCode::NotOwner,
    );
    s.ok(
        wang(),
        C::UpdateDetails(UpdateDetails {
            purchase_mode: Some(PurchaseMode::Group),
            ..Default::default()
        }),
    );
    assert_eq!(s.lead().purchase_mode, PurchaseMode::Group);
}

#[test]
fn overlong_fields_are_refused_not_truncated() {
    let mut s = LeadSpec::owned_by_wang();
    let (_, C::RecordKeyPerson(mut k)) = key_person("x", KeyPersonRole::User) else {
        unreachable!()
    };
    k.name = "名".repeat(201);
    let r = s.refused(wang(), C::RecordKeyPerson(k), RefusalCode::FieldTooLong);
    assert!(r.refusal.message_en.contains("201"));
}

pub fn phone_call(n: u32) -> C {
    let C::LogVisit(mut v) = visit(100 + n) else {
        unreachable!()
    };
    v.kind = ContactKind::Phone;
    v.summary = format!("phone call {n}");
    C::LogVisit(v)
}

#[test]
fn the_insider_rule_counts_visits_in_person_not_phone_calls() {
    let mut s = LeadSpec::owned_by_wang();
    s.policy.stagnation_visits = 100;
    // Two visits and any number of phone calls: not yet three visits (拜访, §7).
    s.ok(wang(), visit(1));
    for n in 1..=4 {
        assert_eq!(types(&s.ok(wang(), phone_call(n))), ["lead.visit_logged"]);
    }
    assert_eq!(types(&s.ok(wang(), visit(2))), ["lead.visit_logged"]);
    assert_eq!(
        s.state.lead.as_ref().map(|l| l.visits_without_insider),
        Some(2)
    );
    // A meeting with the customer is in person: the third visit escalates.
    let C::LogVisit(mut meeting) = visit(3) else {
        unreachable!()
    };
    meeting.kind = ContactKind::Meeting;
    let events = s.ok(wang(), C::LogVisit(meeting));
    assert_eq!(
        types(&events),
        ["lead.visit_logged", "lead.insider_escalation_raised"]
    );
    assert!(
        matches!(&events[1], Event::InsiderEscalationRaised(e) if e.visits_without_insider == 3)
    );
}

#[test]
fn person_names_refuse_control_bidi_and_invisible_characters() {
    let mut s = LeadSpec::owned_by_wang();
    for (name, code) in [
        ("张\u{0007}工", RefusalCode::ControlCharacter),
        ("张工\u{202E}gnp.exe", RefusalCode::BidiControl),
        ("\u{200B}\u{3000}", RefusalCode::InvisibleName),
    ] {
        let (_, C::RecordKeyPerson(mut k)) = key_person("张工", KeyPersonRole::Gatekeeper) else {
            unreachable!()
        };
        k.name = name.into();
        s.refused(wang(), C::RecordKeyPerson(k), code);
        let update = UpdateDetails {
            contact: Some(Contact {
                name: name.into(),
                phone: "139".into(),
            }),
            ..Default::default()
        };
        s.refused(wang(), C::UpdateDetails(update), code);
    }
}

#[test]
fn customer_and_contact_names_refuse_control_bidi_and_invisible_characters() {
    for (name, code) in [
        ("万科\u{0000}", RefusalCode::ControlCharacter),
        ("\u{2067}万科\u{2069}", RefusalCode::BidiControl),
        ("万\u{200F}科", RefusalCode::BidiControl),
        ("\u{FEFF}\u{00A0}\u{2060}", RefusalCode::InvisibleName),
    ] {
        let mut s = LeadSpec::new();
        let reg = |customer: &str, contact: &str| {
            let C::Register(mut r) = register_cmd(
                customer,
                "城市花园",
                Channel::BuildingSweep,
                PurchaseMode::Independent,
            ) else {
                unreachable!()
            };
            r.contact.name = contact.into();
            C::Register(r)
        };
        s.refused(wang(), reg(name, "李经理"), code);
        s.refused(wang(), reg("万科", name), code);
    }
    // A name that is fine is registered as before.
    LeadSpec::owned_by_wang();
}

#[test]
fn a_key_person_and_the_levels_with_them_are_recorded_together_or_not_at_all() {
    let mut s = LeadSpec::owned_by_wang();
    let (id, cmd) = key_person("赵总", KeyPersonRole::DecisionMaker);
    let C::RecordKeyPerson(mut k) = cmd else {
        unreachable!()
    };
    k.levels = Some((Level::B, Level::A));
    let events = s.ok(wang(), C::RecordKeyPerson(k.clone()));
    assert_eq!(
        types(&events),
        ["lead.key_person_recorded", "lead.relationship_assessed"]
    );
    assert!(matches!(
        &events[1],
        Event::RelationshipAssessed(r)
            if r.key_person_id == Some(id) && r.company == Level::B && r.personal == Level::A
    ));
    // Refused as a whole: another engineer records neither the person nor the levels.
    s.refused(li(), C::RecordKeyPerson(k.clone()), RefusalCode::NotOwner);
    // A person the command cannot record (no name) takes no levels with them.
    k.name = String::new();
    s.refused(wang(), C::RecordKeyPerson(k), RefusalCode::FieldRequired);
}
