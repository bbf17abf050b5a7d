//! §4 and §8–§9: stage criteria, declarations with review and filing, the prospect gate and tiers,
//! contract review bound to content, signing, orders, after-sales, suspension, loss, reactivation.

use crate::fixtures::*;
use crate::lead_work::key_person;
use funnel_domain::events::*;
use funnel_domain::lead::{Criterion, LeadCommand as C};
use funnel_domain::model::*;
use funnel_domain::*;
use funnel_types::*;

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn meet(s: &mut LeadSpec, criteria: &[Criterion]) {
    for c in criteria {
        s.ok(
            wang(),
            C::RecordCriterion {
                criterion: *c,
                evidence: format!("evidence for {c}"),
            },
        );
    }
}

fn with_insider(s: &mut LeadSpec) {
    let (kp, record) = key_person("张工", KeyPersonRole::Gatekeeper);
    s.ok(wang(), record);
    s.ok(
        wang(),
        C::MarkInsider {
            key_person_id: kp,
            note: "".into(),
        },
    );
}

fn valid_ready() -> LeadSpec {
    use Criterion::*;
    let mut s = LeadSpec::owned_by_wang();
    meet(
        &mut s,
        &[
            DeveloperContact,
            ProjectDetails,
            ProductDemo,
            DigitalIntercomNeed,
            DecisionChainKnown,
            CompetitorsKnown,
        ],
    );
    with_insider(&mut s);
    s
}

fn declaration(events: &[Event]) -> DeclarationId {
    match &events[0] {
        Event::ValidInfoDeclared(d) => d.declaration_id,
        Event::ProspectDeclared(d) => d.declaration_id,
        other => panic!("not a declaration: {other:?}"),
    }
}

/// A lead at stage valid, declared, reviewed and filed.
fn valid_lead() -> LeadSpec {
    let mut s = valid_ready();
    let events = s.ok(
        wang(),
        C::DeclareValidInfo {
            declaration_id: DeclarationId::derived("d1"),
            note: "".into(),
        },
    );
    let d = declaration(&events);
    s.ok(
        manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: true,
            note: "".into(),
        },
    );
    s.ok(sales_dept(), C::FileDeclaration { declaration_id: d });
    s
}

fn prospect_ready() -> LeadSpec {
    use Criterion::*;
    let mut s = valid_lead();
    meet(
        &mut s,
        &[
            DesignProposalOrTender,
            PreliminaryQuote,
            HqOrReferenceVisit,
            DecisionChainExchanges,
            InsiderKeyPersons,
        ],
    );
    s.ok(
        wang(),
        C::AssessRelationship {
            company: Level::B,
            personal: Level::B,
            key_person_id: None,
            note: "".into(),
        },
    );
    s
}

fn declare_prospect(s: &mut LeadSpec, amount: u64) -> Vec<Event> {
    s.ok(
        wang(),
        C::DeclareProspect {
            declaration_id: DeclarationId::derived(&format!("p{amount}")),
            amount_cny: amount,
            flags: QualitativeFlags::default(),
            quoting_strategy: "".into(),
        },
    )
}

fn prospect_lead() -> LeadSpec {
    let mut s = prospect_ready();
    let d = declaration(&declare_prospect(&mut s, 2_000_000));
    s.ok(
        manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: true,
            note: "".into(),
        },
    );
    s
}

#[test]
fn valid_declaration_lists_the_missing_criteria() {
    let mut s = LeadSpec::owned_by_wang();
    use Criterion::*;
    meet(&mut s, &[ProductDemo]);
    let r = s.refused(
        wang(),
        C::DeclareValidInfo {
            declaration_id: DeclarationId::derived("d"),
            note: "".into(),
        },
        RefusalCode::CriteriaUnmet,
    );
    assert_eq!(
        r.refusal.missing,
        vec![
            DeveloperContact,
            ProjectDetails,
            DigitalIntercomNeed,
            InsiderDeveloped,
            DecisionChainKnown,
            CompetitorsKnown
        ]
    );
    assert!(r.refusal.message_en.contains("developer_contact"));
}

#[test]
fn valid_info_is_declared_reviewed_then_filed() {
    let mut s = valid_ready();
    let events = s.ok(
        wang(),
        C::DeclareValidInfo {
            declaration_id: DeclarationId::derived("d1"),
            note: "".into(),
        },
    );
    let d = declaration(&events);
    s.refused(
        wang(),
        C::DeclareValidInfo {
            declaration_id: DeclarationId::derived("d2"),
            note: "".into(),
        },
        RefusalCode::DeclarationPending,
    );
    s.refused(
        sales_dept(),
        C::FileDeclaration { declaration_id: d },
        RefusalCode::DeclarationWrongState,
    );
    s.refused(
        other_manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: true,
            note: "".into(),
        },
        RefusalCode::OtherOffice,
    );
    assert_eq!(s.lead().stage, Stage::Ordinary);
    let events = s.ok(
        manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: true,
            note: "".into(),
        },
    );
    assert_eq!(
        types(&events),
        ["lead.declaration_reviewed", "lead.stage_changed"]
    );
    assert_eq!(s.lead().stage, Stage::Valid);
    let events = s.ok(sales_dept(), C::FileDeclaration { declaration_id: d });
    assert!(matches!(&events[0], Event::DeclarationFiled(f) if !f.key_account_involved));
    s.refused(
        sales_dept(),
        C::FileDeclaration { declaration_id: d },
        RefusalCode::DeclarationWrongState,
    );
}

#[test]
fn a_returned_declaration_needs_a_reason_and_can_be_declared_again() {
    let mut s = valid_ready();
    let d = declaration(&s.ok(
        wang(),
        C::DeclareValidInfo {
            declaration_id: DeclarationId::derived("d1"),
            note: "".into(),
        },
    ));
    s.refused(
        manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: false,
            note: "".into(),
        },
        RefusalCode::FieldRequired,
    );
    s.ok(
        manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: false,
            note: "证据不足".into(),
        },
    );
    assert_eq!(s.lead().stage, Stage::Ordinary);
    s.ok(
        wang(),
        C::DeclareValidInfo {
            declaration_id: DeclarationId::derived("d2"),
            note: "补充".into(),
        },
    );
}

#[test]
fn prospect_needs_its_checklist_and_both_relationships_at_b() {
    let mut s = valid_lead();
    let r = s.refused(
        wang(),
        C::DeclareProspect {
            declaration_id: DeclarationId::derived("p"),
            amount_cny: 10,
            flags: Default::default(),
            quoting_strategy: "".into(),
        },
        RefusalCode::CriteriaUnmet,
    );
    assert_eq!(r.refusal.missing.len(), 5);
    use Criterion::*;
    meet(
        &mut s,
        &[
            DesignProposalOrTender,
            PreliminaryQuote,
            HqOrReferenceVisit,
            DecisionChainExchanges,
            InsiderKeyPersons,
        ],
    );
    s.ok(
        wang(),
        C::AssessRelationship {
            company: Level::A,
            personal: Level::C,
            key_person_id: None,
            note: "".into(),
        },
    );
    let r = s.refused(
        wang(),
        C::DeclareProspect {
            declaration_id: DeclarationId::derived("p"),
            amount_cny: 10,
            flags: Default::default(),
            quoting_strategy: "".into(),
        },
        RefusalCode::RelationshipBelowB,
    );
    assert!(r.refusal.message_en.contains("A and C"));
    s.ok(
        wang(),
        C::AssessRelationship {
            company: Level::B,
            personal: Level::B,
            key_person_id: None,
            note: "".into(),
        },
    );
    s.refused(
        wang(),
        C::DeclareProspect {
            declaration_id: DeclarationId::derived("p"),
            amount_cny: 0,
            flags: Default::default(),
            quoting_strategy: "".into(),
        },
        RefusalCode::InvalidValue,
    );
    declare_prospect(&mut s, 500_000);
}

#[test]
fn prospect_declaration_needs_stage_valid() {
    let mut s = LeadSpec::owned_by_wang();
    s.refused(
        wang(),
        C::DeclareProspect {
            declaration_id: DeclarationId::derived("p"),
            amount_cny: 10,
            flags: Default::default(),
            quoting_strategy: "".into(),
        },
        RefusalCode::WrongStage,
    );
}

#[test]
fn tiers_follow_the_amount() {
    assert_eq!(Tier::for_amount(3_000_001), Tier::Strategic);
    assert_eq!(Tier::for_amount(3_000_000), Tier::Important);
    assert_eq!(Tier::for_amount(1_000_000), Tier::Important);
    assert_eq!(Tier::for_amount(999_999), Tier::Ordinary);
    for (amount, tier) in [
        (5_000_000, Tier::Strategic),
        (2_000_000, Tier::Important),
        (300_000, Tier::Ordinary),
    ] {
        let mut s = prospect_ready();
        let events = declare_prospect(&mut s, amount);
        assert!(
            matches!(&events[0], Event::ProspectDeclared(p) if p.tier == tier),
            "{amount}"
        );
    }
}

#[test]
fn strategic_prospects_bring_in_the_key_account_department_when_filed() {
    let mut s = prospect_ready();
    let d = declaration(&declare_prospect(&mut s, 5_000_000));
    let events = s.ok(
        manager(),
        C::ReviewDeclaration {
            declaration_id: d,
            approve: true,
            note: "".into(),
        },
    );
    assert!(
        matches!(&events[1], Event::StageChanged(c) if c.from == Stage::Valid && c.to == Stage::Prospect)
    );
    let events = s.ok(sales_dept(), C::FileDeclaration { declaration_id: d });
    assert!(matches!(&events[0], Event::DeclarationFiled(f) if f.key_account_involved));
}

fn submitted() -> (LeadSpec, ContractId) {
    let mut s = prospect_lead();
    let id = ContractId::derived("c1");
    s.refused(
        wang(),
        C::SubmitContract {
            contract_id: id,
            amount_cny: 100,
            content_hash: "nothex".into(),
        },
        RefusalCode::InvalidValue,
    );
    let events = s.ok(
        wang(),
        C::SubmitContract {
            contract_id: id,
            amount_cny: 1_900_000,
            content_hash: HASH_A.into(),
        },
    );
    assert!(
        matches!(&events[0], Event::ContractSubmitted(c) if c.reviewers == ["sales_department", "office_manager", "finance"])
    );
    (s, id)
}

fn approve_all(s: &mut LeadSpec, id: ContractId, hash: &str) {
    for (who, seat) in [
        (sales_dept(), "sales_department"),
        (manager(), "office_manager"),
        (executive(), "finance"),
    ] {
        s.ok(
            who,
            C::ReviewContract {
                contract_id: id,
                seat: seat.into(),
                approve: true,
                content_hash: hash.into(),
                reasons: "".into(),
            },
        );
    }
}

#[test]
fn a_contract_is_signed_only_after_every_seat_approves_that_exact_version() {
    let (mut s, id) = submitted();
    s.refused(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_A.into(),
        },
        RefusalCode::ContractNotApproved,
    );
    s.refused(
        manager(),
        C::ReviewContract {
            contract_id: id,
            seat: "finance".into(),
            approve: true,
            content_hash: HASH_A.into(),
            reasons: "".into(),
        },
        RefusalCode::RoleNotPermitted,
    );
    s.refused(
        executive(),
        C::ReviewContract {
            contract_id: id,
            seat: "legal".into(),
            approve: true,
            content_hash: HASH_A.into(),
            reasons: "".into(),
        },
        RefusalCode::NotAReviewer,
    );
    approve_all(&mut s, id, HASH_A);
    let events = s.ok(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_A.into(),
        },
    );
    assert_eq!(
        types(&events),
        ["lead.contract_signed", "lead.stage_changed"]
    );
    assert_eq!(s.lead().stage, Stage::Contract);
    s.ok(
        sales_dept(),
        C::ProcessOrder {
            contract_id: id,
            order_ref: "SO-1".into(),
        },
    );
    s.ok(
        wang(),
        C::LogAfterSalesCare {
            note: "回访".into(),
        },
    );
    s.refused(
        wang(),
        C::AmendContract {
            contract_id: id,
            amount_cny: 1,
            content_hash: HASH_B.into(),
            reason: "x".into(),
        },
        RefusalCode::ContractClosed,
    );
}

#[test]
fn amending_a_contract_voids_earlier_approvals() {
    let (mut s, id) = submitted();
    approve_all(&mut s, id, HASH_A);
    s.ok(
        wang(),
        C::AmendContract {
            contract_id: id,
            amount_cny: 1_800_000,
            content_hash: HASH_B.into(),
            reason: "降价".into(),
        },
    );
    s.refused(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_B.into(),
        },
        RefusalCode::ContractNotApproved,
    );
    s.refused(
        sales_dept(),
        C::ReviewContract {
            contract_id: id,
            seat: "sales_department".into(),
            approve: true,
            content_hash: HASH_A.into(),
            reasons: "".into(),
        },
        RefusalCode::ContractHashMismatch,
    );
    approve_all(&mut s, id, HASH_B);
    s.refused(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_A.into(),
        },
        RefusalCode::ContractHashMismatch,
    );
    let events = s.ok(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_B.into(),
        },
    );
    assert!(matches!(&events[0], Event::ContractSigned(c) if c.amount_cny == 1_800_000));
}

#[test]
fn a_rejection_sends_the_contract_back_to_negotiation() {
    let (mut s, id) = submitted();
    s.refused(
        sales_dept(),
        C::ReviewContract {
            contract_id: id,
            seat: "sales_department".into(),
            approve: false,
            content_hash: HASH_A.into(),
            reasons: "".into(),
        },
        RefusalCode::FieldRequired,
    );
    s.ok(
        sales_dept(),
        C::ReviewContract {
            contract_id: id,
            seat: "sales_department".into(),
            approve: false,
            content_hash: HASH_A.into(),
            reasons: "折扣过高".into(),
        },
    );
    s.refused(
        executive(),
        C::ReviewContract {
            contract_id: id,
            seat: "finance".into(),
            approve: true,
            content_hash: HASH_A.into(),
            reasons: "".into(),
        },
        RefusalCode::ContractNotApproved,
    );
    s.ok(
        executive(),
        C::NoteNegotiation {
            note: "高层会谈".into(),
            executives_invited: true,
        },
    );
    s.refused(
        li(),
        C::NoteNegotiation {
            note: "x".into(),
            executives_invited: false,
        },
        RefusalCode::NotOwner,
    );
    s.ok(
        wang(),
        C::AmendContract {
            contract_id: id,
            amount_cny: 1_700_000,
            content_hash: HASH_B.into(),
            reason: "新折扣".into(),
        },
    );
    approve_all(&mut s, id, HASH_B);
    s.ok(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_B.into(),
        },
    );
}

#[test]
fn the_contract_reviewers_are_a_policy() {
    let mut s = prospect_lead();
    s.policy.contract_reviewers = vec![ReviewerSeat {
        seat: "technical".into(),
        role: Role::KeyAccountDepartment,
    }];
    let id = ContractId::derived("c");
    s.ok(
        wang(),
        C::SubmitContract {
            contract_id: id,
            amount_cny: 10,
            content_hash: HASH_A.into(),
        },
    );
    s.ok(
        key_account(),
        C::ReviewContract {
            contract_id: id,
            seat: "technical".into(),
            approve: true,
            content_hash: HASH_A.into(),
            reasons: "".into(),
        },
    );
    s.ok(
        wang(),
        C::SignContract {
            contract_id: id,
            content_hash: HASH_A.into(),
        },
    );
}

#[test]
fn orders_and_after_sales_come_after_signing() {
    let (mut s, id) = submitted();
    s.refused(
        wang(),
        C::ProcessOrder {
            contract_id: id,
            order_ref: "SO".into(),
        },
        RefusalCode::WrongStage,
    );
    s.refused(
        wang(),
        C::LogAfterSalesCare { note: "x".into() },
        RefusalCode::WrongStage,
    );
}

#[test]
fn suspended_and_lost_leads_return_to_their_stage_on_reactivation() {
    for lost in [false, true] {
        let mut s = valid_lead();
        let cmd = if lost {
            C::MarkLost {
                reason: "价格".into(),
                competitor: "X".into(),
            }
        } else {
            C::Suspend {
                reason: "暂停".into(),
            }
        };
        s.refused(li(), cmd.clone(), RefusalCode::NotOwner);
        let events = s.ok(if lost { wang() } else { manager() }, cmd);
        assert_eq!(events.len(), 2);
        assert!(!s.lead().stage.is_open());
        s.refused(wang(), crate::lead_work::visit(1), RefusalCode::LeadClosed);
        s.refused(
            wang(),
            C::Suspend {
                reason: "again".into(),
            },
            RefusalCode::LeadClosed,
        );
        let events = s.ok(
            wang(),
            C::Reactivate {
                reason: "重启".into(),
            },
        );
        assert!(matches!(&events[1], Event::StageChanged(c) if c.to == Stage::Valid));
        assert_eq!(s.lead().stage, Stage::Valid);
        s.refused(
            wang(),
            C::Reactivate { reason: "x".into() },
            RefusalCode::WrongStage,
        );
    }
}
