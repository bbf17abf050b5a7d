//! A lead's history read back after the trip every recorded event makes (encoded by the codec,
//! stored, read back, decoded with the upcasters) folds to the state the decider built live, step
//! by step. A field the codec or a store loses, or a payload decoded into something else, shows
//! as a different state.

use bytes::Bytes;
use funnel_codec::{decode, decode_recorded, encode};
use funnel_domain::lead::{self, LeadState};
use funnel_domain::{Event, Policy, testing};
use funnel_store::{AppendRequest, EventStore, Filter, ProposedEvent};
use funnel_store_sqlite::SqliteStore;
use funnel_types::*;
use proptest::prelude::*;

/// Every command's events appended as the engine appends them, then read back in log order.
async fn through_sqlite(commands: &[Vec<Event>]) -> Vec<Event> {
    let store = SqliteStore::open_in_memory().expect("an in-memory store opens");
    let stream = StreamId::new("lead", LeadId::derived("prop")).expect("a stream id");
    for (n, events) in commands.iter().enumerate().filter(|(_, e)| !e.is_empty()) {
        let command_id = CommandId::derived(&format!("prop:{n}"));
        let proposed = events
            .iter()
            .enumerate()
            .map(|(i, e)| ProposedEvent {
                event_id: EventId::derived(&format!("prop:{n}:{i}")),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                occurred_at: testing::start(),
                actor: Actor::system("prop"),
                office: Some(testing::office()),
                correlation_id: CorrelationId(command_id.0),
                causation_id: command_id.0,
                payload: Bytes::from(encode(e)),
            })
            .collect();
        store
            .append(AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Any,
                command_id,
                events: proposed,
            })
            .await
            .expect("an append within the limits");
    }
    let mut out = Vec::new();
    let mut after = Position(0);
    loop {
        let page = store
            .read_all(after, &Filter::All, 100)
            .await
            .expect("the log reads");
        let Some(last) = page.last() else { break };
        after = last.meta.position;
        for rec in &page {
            out.push(
                decode_recorded(rec)
                    .expect("a stored event decodes")
                    .payload,
            );
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_history_replayed_from_json_gives_the_live_state(steps in testing::steps(60)) {
        let (live, commands) = testing::record(&steps, &Policy::default());
        let replayed = commands
            .iter()
            .flatten()
            .map(|e| {
                decode(Position(1), e.event_type(), e.schema_version(), &encode(e))
                    .expect("a recorded event decodes")
            })
            .fold(LeadState::default(), |s, e| lead::evolve(s, &e));
        prop_assert_eq!(replayed, live);
    }

    #[test]
    fn a_history_replayed_from_the_sqlite_store_gives_the_live_state(steps in testing::steps(60)) {
        let (live, commands) = testing::record(&steps, &Policy::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let stored = runtime.block_on(through_sqlite(&commands));
        prop_assert_eq!(stored.len(), commands.iter().map(Vec::len).sum::<usize>());
        let replayed = stored.iter().fold(LeadState::default(), lead::evolve);
        prop_assert_eq!(replayed, live);
    }
}
