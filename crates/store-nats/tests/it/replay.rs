//! A lead's history stored as `FNL3` commit bodies in JetStream, read back and decoded (with the
//! upcasters), folds to the state the decider built live. A field lost on the way through the
//! binary body shows as a different state.

use crate::support::{connect, options};
use bytes::Bytes;
use funnel_codec::{decode_recorded, encode};
use funnel_domain::lead::{self, LeadState};
use funnel_domain::{Policy, testing};
use funnel_store::{AppendRequest, EventStore, ProposedEvent, read_whole_stream};
use funnel_testkit::NatsServer;
use funnel_types::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_replayed_from_jetstream_gives_the_live_state() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    let mut runner = TestRunner::deterministic();
    let strategy = testing::steps(60);
    for case in 0..24 {
        let steps = strategy
            .new_tree(&mut runner)
            .expect("a random history")
            .current();
        let (live, commands) = testing::record(&steps, &Policy::default());
        let stream = StreamId::new("lead", LeadId::derived(&format!("replay-{case}"))).expect("id");
        for (n, events) in commands.iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            let command_id = CommandId::derived(&format!("replay:{case}:{n}"));
            let proposed = events
                .iter()
                .enumerate()
                .map(|(i, e)| ProposedEvent {
                    event_id: EventId::derived(&format!("replay:{case}:{n}:{i}")),
                    event_type: e.event_type().to_string(),
                    schema_version: e.schema_version(),
                    occurred_at: testing::start(),
                    actor: Actor::system("replay"),
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
        let stored = read_whole_stream(&store, &stream)
            .await
            .expect("the stream reads");
        assert_eq!(stored.len(), commands.iter().map(Vec::len).sum::<usize>());
        let replayed = stored
            .iter()
            .map(|rec| {
                decode_recorded(rec)
                    .expect("a stored event decodes")
                    .payload
            })
            .fold(LeadState::default(), |s, e| lead::evolve(s, &e));
        assert_eq!(replayed, live, "case {case}: {steps:?}");
    }
}
