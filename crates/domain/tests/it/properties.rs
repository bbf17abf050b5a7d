//! Properties over random command sequences: deciders never panic, replaying the recorded events
//! gives the live state, and ownership stays within the office's engineers.

use funnel_domain::Policy;
use funnel_domain::events::Event;
use funnel_domain::lead::{self, LeadState};
use funnel_domain::testing;
use funnel_types::Role;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_history_gives_the_live_state(steps in testing::steps(60)) {
        let (live, log) = testing::run(&steps, &Policy::default());
        let replayed = log.iter().fold(LeadState::default(), lead::evolve);
        prop_assert_eq!(replayed, live);
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
