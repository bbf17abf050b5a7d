//! Random command sequences against one lead, for property tests here and in other crates (feature
//! `testing`). Ids come from small pools so that commands meet real state; text and amounts include
//! empty, overlong and extreme values.

use crate::lead::{
    Criterion, LeadCommand, LeadState, LogVisit, RecordKeyPerson, Register, StagnationDecision,
    UpdateDetails,
};
use crate::model::*;
use crate::{Acting, Ctx, Event, Policy, StaffInfo};
use chrono::{DateTime, Duration, TimeZone, Utc};
use funnel_types::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The office of the random world.
pub fn office() -> OfficeId {
    OfficeId::derived("prop-office")
}

/// Staff of the random world: three engineers, an assistant, a manager, one member of each HQ role,
/// an engineer of another office and one who left.
pub fn staff() -> Vec<StaffInfo> {
    let o = Some(office());
    let s = |n: &str, role, office, active| StaffInfo {
        id: StaffId::derived(n),
        role,
        office,
        active,
    };
    vec![
        s("e1", Role::SalesEngineer, o, true),
        s("e2", Role::SalesEngineer, o, true),
        s("e3", Role::SalesEngineer, o, true),
        s("as", Role::OfficeAssistant, o, true),
        s("om", Role::OfficeManager, o, true),
        s("sd", Role::SalesDepartment, None, true),
        s("ka", Role::KeyAccountDepartment, None, true),
        s("ex", Role::Executive, None, true),
        s("au", Role::Auditor, None, true),
        s(
            "x1",
            Role::SalesEngineer,
            Some(OfficeId::derived("elsewhere")),
            true,
        ),
        s("gone", Role::SalesEngineer, o, false),
    ]
}

pub fn directory() -> BTreeMap<StaffId, StaffInfo> {
    staff().into_iter().map(|s| (s.id, s)).collect()
}

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

const HASHES: [&str; 3] = [
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "not-a-hash",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("跟进".to_string()),
        1 => Just(String::new()),
        1 => Just("   ".to_string()),
        1 => Just("x".repeat(4001)),
        1 => "\\PC{0,12}",
    ]
}

fn one_of<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn small_id(prefix: &'static str) -> impl Strategy<Value = String> {
    (0u8..3).prop_map(move |n| format!("{prefix}{n}"))
}

fn staff_id() -> impl Strategy<Value = StaffId> {
    prop::sample::select(staff()).prop_map(|s| s.id)
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(500_000),
        Just(2_000_000),
        Just(5_000_000),
        Just(u64::MAX),
        any::<u64>()
    ]
}

fn level() -> impl Strategy<Value = Level> {
    one_of(Level::ALL)
}

/// One random command on the lead of customer "万科 / 城市花园" (or a near spelling).
pub fn command() -> impl Strategy<Value = LeadCommand> {
    use LeadCommand as C;
    let register = (
        one_of(Channel::ALL),
        one_of(PurchaseMode::ALL),
        prop::sample::select(vec!["城市花园（二期）", "城市花园(二期)", ""]),
        text(),
        any::<bool>(),
    )
        .prop_map(|(channel, mode, project, need, other_office)| {
            C::Register(Register {
                customer_name: "万科".into(),
                project_name: project.into(),
                industry: Industry::RealEstate,
                purchase_mode: mode,
                channel,
                office: if other_office {
                    OfficeId::derived("elsewhere")
                } else {
                    office()
                },
                location: "上海".into(),
                contact: Contact {
                    name: "李".into(),
                    phone: "138".into(),
                },
                need,
            })
        });
    let visit = (
        small_id("v"),
        prop::collection::vec(small_id("k"), 0..2),
        text(),
        -3i64..2,
    )
        .prop_map(|(v, met, summary, days)| {
            C::LogVisit(LogVisit {
                visit_id: VisitId::derived(&v),
                kind: ContactKind::Visit,
                visited_at: start() + Duration::days(days),
                purposes: vec![VisitPurpose::CollectNeeds],
                summary,
                information_gained: String::new(),
                customer_feedback: String::new(),
                next_step: String::new(),
                met: met.iter().map(|k| KeyPersonId::derived(k)).collect(),
            })
        });
    let key_person = (
        small_id("k"),
        text(),
        one_of(KeyPersonRole::ALL),
        prop::option::of((level(), level())),
    )
        .prop_map(|(k, name, role, levels)| {
            C::RecordKeyPerson(RecordKeyPerson {
                key_person_id: KeyPersonId::derived(&k),
                name,
                title: String::new(),
                role,
                phone: String::new(),
                personal_notes: String::new(),
                levels,
            })
        });
    let reassign_id = || small_id("r").prop_map(|r| ReassignmentId::derived(&r));
    let decl_id = || small_id("d").prop_map(|d| DeclarationId::derived(&d));
    let contract_id = || small_id("c").prop_map(|c| ContractId::derived(&c));
    let hash = || one_of(&HASHES).prop_map(String::from);
    let seat = prop::sample::select(vec![
        "sales_department",
        "office_manager",
        "finance",
        "legal",
    ])
    .prop_map(String::from);
    prop_oneof![
        3 => register,
        1 => (staff_id(), text()).prop_map(|(owner, reason)| C::Assign { owner, reason }),
        1 => (small_id("x"), staff_id(), any::<bool>()).prop_map(|(_, winner, grounds)| C::DecideConflict {
            conflict_id: ConflictId::derived("any"),
            winner,
            grounds: if grounds { vec![crate::events::ConflictGround::DeeperContact] } else { vec![] },
            note: String::new(),
        }),
        1 => (reassign_id(), staff_id(), text()).prop_map(|(reassignment_id, to, evidence)| C::RequestReassignment { reassignment_id, to, evidence }),
        1 => (reassign_id(), text()).prop_map(|(reassignment_id, note)| C::ApproveReassignment { reassignment_id, note }),
        1 => (reassign_id(), text()).prop_map(|(reassignment_id, reason)| C::DenyReassignment { reassignment_id, reason }),
        1 => reassign_id().prop_map(|reassignment_id| C::ExpireReassignment { reassignment_id }),
        6 => visit,
        2 => key_person,
        1 => (small_id("k"), text()).prop_map(|(k, note)| C::MarkInsider { key_person_id: KeyPersonId::derived(&k), note }),
        2 => (level(), level()).prop_map(|(company, personal)| C::AssessRelationship { company, personal, key_person_id: None, note: String::new() }),
        4 => (one_of(Criterion::ALL), text()).prop_map(|(criterion, evidence)| C::RecordCriterion { criterion, evidence }),
        1 => (prop::option::of(text()), prop::option::of(one_of(PurchaseMode::ALL))).prop_map(|(need, purchase_mode)| C::UpdateDetails(UpdateDetails { need, purchase_mode, ..Default::default() })),
        1 => (0u8..3, staff_id(), reassign_id()).prop_map(|(k, to, reassignment_id)| C::DecideStagnationReview {
            decision: match k {
                0 => StagnationDecision::Suspend,
                1 => StagnationDecision::ChangeKeyPerson { key_person_id: None },
                _ => StagnationDecision::ChangeEngineer { to, reassignment_id, evidence: "停滞".into() },
            },
            note: "n".into(),
        }),
        2 => (decl_id(), text()).prop_map(|(declaration_id, note)| C::DeclareValidInfo { declaration_id, note }),
        2 => (decl_id(), amount()).prop_map(|(declaration_id, amount_cny)| C::DeclareProspect { declaration_id, amount_cny, flags: QualitativeFlags::default(), quoting_strategy: String::new() }),
        2 => (decl_id(), any::<bool>(), text()).prop_map(|(declaration_id, approve, note)| C::ReviewDeclaration { declaration_id, approve, note }),
        1 => decl_id().prop_map(|declaration_id| C::FileDeclaration { declaration_id }),
        1 => text().prop_map(|note| C::NoteNegotiation { note, executives_invited: false }),
        2 => (contract_id(), amount(), hash()).prop_map(|(contract_id, amount_cny, content_hash)| C::SubmitContract { contract_id, amount_cny, content_hash }),
        1 => (contract_id(), amount(), hash(), text()).prop_map(|(contract_id, amount_cny, content_hash, reason)| C::AmendContract { contract_id, amount_cny, content_hash, reason }),
        3 => (contract_id(), seat, any::<bool>(), hash(), text()).prop_map(|(contract_id, seat, approve, content_hash, reasons)| C::ReviewContract { contract_id, seat, approve, content_hash, reasons }),
        2 => (contract_id(), hash()).prop_map(|(contract_id, content_hash)| C::SignContract { contract_id, content_hash }),
        1 => (contract_id(), text()).prop_map(|(contract_id, order_ref)| C::ProcessOrder { contract_id, order_ref }),
        1 => text().prop_map(|note| C::LogAfterSalesCare { note }),
        1 => text().prop_map(|reason| C::Suspend { reason }),
        1 => (text(), text()).prop_map(|(reason, competitor)| C::MarkLost { reason, competitor }),
        1 => text().prop_map(|reason| C::Reactivate { reason }),
    ]
}

/// Who issues a step: a member of staff of the world, or (index past the end) the system.
pub fn acting() -> impl Strategy<Value = Acting> {
    let all = staff();
    let n = all.len();
    (0..=n).prop_map(move |i| {
        if i == n {
            Acting::system("prop")
        } else {
            Acting::Staff(all[i])
        }
    })
}

/// A random sequence of (actor, command, hours later) steps.
pub fn steps(max: usize) -> impl Strategy<Value = Vec<(Acting, LeadCommand, i64)>> {
    prop::collection::vec((acting(), command(), 0i64..400), 1..max)
}

/// Runs steps against one lead: accepted events and recorded refusals are applied in order.
/// Returns the final state and every event applied.
pub fn run(steps: &[(Acting, LeadCommand, i64)], policy: &Policy) -> (LeadState, Vec<Event>) {
    let (state, commands) = record(steps, policy);
    (state, commands.into_iter().flatten().collect())
}

/// As [`run`], with the events each step recorded kept apart (one append each, as the engine
/// writes them).
pub fn record(
    steps: &[(Acting, LeadCommand, i64)],
    policy: &Policy,
) -> (LeadState, Vec<Vec<Event>>) {
    let dir = directory();
    let mut at = start();
    let mut state = LeadState::default();
    let mut recorded = Vec::new();
    for (acting, cmd, hours) in steps {
        at += Duration::hours(*hours);
        let ctx = Ctx {
            acting,
            at,
            policy,
            staff: &dir,
        };
        let events = match crate::lead::decide(&state, cmd, &ctx) {
            Ok(events) => events,
            Err(rejected) => rejected.record,
        };
        for e in &events {
            state = crate::lead::evolve(state, e);
        }
        recorded.push(events);
    }
    (state, recorded)
}
