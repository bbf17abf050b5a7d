//! Properties over random command sequences: deciders never panic, a snapshot of a lead's state
//! plus the events after it gives the live state, an independent model of ownership and stages
//! agrees with the decider, and ownership stays within the office's engineers. (Replay after the
//! codec and the stores: `crates/codec/tests/replay.rs`.)

use funnel_domain::Policy;
use funnel_domain::events::Event;
use funnel_domain::lead::{self, LeadState};
use funnel_domain::testing;
use funnel_types::Role;
use proptest::prelude::*;

mod model;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The state is serialised as a snapshot would be (MessagePack, fields by position, as the
    /// read models' snapshots), read back, and the rest of the history applied to it.
    #[test]
    fn a_snapshot_at_any_point_plus_the_tail_gives_the_live_state(
        steps in testing::steps(60),
        cut in any::<prop::sample::Index>(),
    ) {
        let (live, log) = testing::run(&steps, &Policy::default());
        let cut = cut.index(log.len() + 1);
        let head = log[..cut].iter().fold(LeadState::default(), lead::evolve);
        let bytes = rmp_serde::to_vec(&head).expect("a state serialises");
        let restored: LeadState = rmp_serde::from_slice(&bytes).expect("a snapshot reads back");
        let rebuilt = log[cut..].iter().fold(restored, lead::evolve);
        prop_assert_eq!(rebuilt, live);
    }

    /// A model written from the manual's rules, not from the deciders, follows the same commands
    /// and must agree on who owns the lead, its stage, and the refusals it is sure of.
    #[test]
    fn an_independent_model_of_ownership_and_stages_agrees_with_the_decider(
        steps in testing::steps(80),
    ) {
        if let Err(disagreement) = model::check(&steps) {
            prop_assert!(false, "{}", disagreement);
        }
    }

    #[test]
    fn owners_are_always_active_engineers_of_the_lead_office(steps in testing::steps(60)) {
        let (state, log) = testing::run(&steps, &Policy::default());
        if let Some(l) = &state.lead {
            if let Some(owner) = l.owner {
                let info = testing::directory()[&owner];
                prop_assert_eq!(info.role, Role::SalesEngineer);
                prop_assert_eq!(info.office, Some(l.office));
            }
            prop_assert!(log.iter().all(|e| e.lead_id() == Some(l.id)));
        } else {
            prop_assert!(log.is_empty());
        }
    }

    #[test]
    fn a_signed_contract_had_every_seat_approve_its_final_content(steps in testing::steps(120)) {
        let (state, log) = testing::run(&steps, &Policy::default());
        if let Some(c) = state.lead.as_ref().and_then(|l| l.contract.as_ref()).filter(|c| c.signed) {
            prop_assert!(c.pending_seats().is_empty());
            let signed = log.iter().any(|e| matches!(e, Event::ContractSigned(s) if s.content_hash == c.content_hash));
            prop_assert!(signed);
        }
    }
}

mod plans_and_summaries {
    use chrono::{DateTime, NaiveDate, Utc};
    use funnel_domain::events::{PlannedVisit, SummaryLine};
    use funnel_domain::model::Period;
    use funnel_domain::plan::{PlanCommand, PlanState, decide_plan, evolve_plan};
    use funnel_domain::summary::{SummaryCommand, SummaryState, decide_summary, evolve_summary};
    use funnel_domain::{Ctx, Policy, testing};
    use funnel_types::{LeadId, StaffId};
    use proptest::prelude::*;

    fn date() -> impl Strategy<Value = NaiveDate> {
        prop_oneof![
            Just(NaiveDate::MIN),
            Just(NaiveDate::MAX),
            (-400_000i32..400_000).prop_map(
                |d| NaiveDate::from_num_days_from_ce_opt(d + 739_000).unwrap_or(NaiveDate::MIN)
            ),
        ]
    }

    fn period() -> impl Strategy<Value = Period> {
        prop_oneof![
            date().prop_map(|monday| Period::Week { monday }),
            (any::<i32>(), 0u32..15).prop_map(|(year, month)| Period::Month { year, month }),
        ]
    }

    fn at() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
            (0i64..4_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
        ]
    }

    fn plan_command() -> impl Strategy<Value = PlanCommand> {
        prop_oneof![
            (period(), prop::collection::vec((date(), "\\PC{0,8}"), 0..4)).prop_map(
                |(period, v)| PlanCommand::Submit {
                    period,
                    visits: v
                        .into_iter()
                        .map(|(date, customer)| PlannedVisit {
                            date,
                            lead_id: None,
                            customer,
                            purpose: String::new()
                        })
                        .collect(),
                }
            ),
            period().prop_map(|period| PlanCommand::MarkOverdue {
                engineer: StaffId::derived("e1"),
                office: testing::office(),
                period
            }),
            Just(PlanCommand::File),
        ]
    }

    fn summary_command() -> impl Strategy<Value = SummaryCommand> {
        prop_oneof![
            (period(), prop::collection::vec("\\PC{0,8}", 0..3)).prop_map(|(period, names)| {
                SummaryCommand::Compile {
                    office: testing::office(),
                    period,
                    lines: names
                        .into_iter()
                        .map(|customer| SummaryLine {
                            lead_id: LeadId::derived("l"),
                            engineer: StaffId::derived("e1"),
                            customer,
                        })
                        .collect(),
                }
            }),
            ("\\PC{0,8}").prop_map(|note| SummaryCommand::Verify { note }),
            (any::<bool>(), "\\PC{0,8}")
                .prop_map(|(approve, note)| SummaryCommand::Review { approve, note }),
            Just(SummaryCommand::File),
        ]
    }

    proptest! {
        #[test]
        fn plan_and_summary_deciders_never_panic_and_replay(
            plan_steps in prop::collection::vec((testing::acting(), plan_command(), at()), 1..30),
            summary_steps in prop::collection::vec((testing::acting(), summary_command(), at()), 1..30),
        ) {
            let policy = Policy::default();
            let dir = testing::directory();
            let mut plan = PlanState::default();
            let mut plan_log = Vec::new();
            for (acting, cmd, at) in &plan_steps {
                let ctx = Ctx { acting, at: *at, policy: &policy, staff: &dir };
                if let Ok(events) = decide_plan(&plan, cmd, &ctx, chrono_tz::Asia::Shanghai) {
                    for e in events {
                        plan = evolve_plan(plan, &e);
                        plan_log.push(e);
                    }
                }
            }
            prop_assert_eq!(plan_log.iter().fold(PlanState::default(), evolve_plan), plan);
            let mut summary = SummaryState::default();
            let mut summary_log = Vec::new();
            for (acting, cmd, at) in &summary_steps {
                let ctx = Ctx { acting, at: *at, policy: &policy, staff: &dir };
                if let Ok(events) = decide_summary(&summary, cmd, &ctx) {
                    for e in events {
                        summary = evolve_summary(summary, &e);
                        summary_log.push(e);
                    }
                }
            }
            prop_assert_eq!(summary_log.iter().fold(SummaryState::default(), evolve_summary), summary);
        }
    }
}
