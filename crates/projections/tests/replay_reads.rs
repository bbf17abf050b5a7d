//! A model that lists the event types it reads ([`ReadModel::READS`]) is replayed without decoding
//! the others: for each of them, `pass` must leave the model exactly as `apply` does. Checked over
//! an example of every event type, so that a type `apply` learns to use and `READS` does not name
//! fails here rather than making as-of reports differ from the live ones.

mod support;

use chrono::Duration;
use funnel_domain::Event;
use funnel_projections::ReadModel;
use funnel_projections::models::{Conflicts, Pipeline, PlanCompliance};
use funnel_store::{EventStore, Filter};
use support::{append, open_store, proposed, t0};

/// Folds an example of every event type (registrations first, so that a lead's events find their
/// lead) with `apply` into one model and, for the types outside `READS`, with `pass` into the
/// other: they must be equal after every event.
async fn passing_equals_applying<M: ReadModel>() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut examples = funnel_codec::examples();
    examples.sort_by_key(|e| !matches!(e, Event::OfficeOpened(_) | Event::LeadRegistered(_)));
    for (n, e) in examples.iter().enumerate() {
        append(
            &store,
            "test-reads",
            vec![proposed(e, t0() + Duration::hours(n as i64))],
        )
        .await;
    }
    let recorded = store
        .read_all(funnel_types::Position::START, &Filter::All, 10_000)
        .await
        .unwrap();
    assert_eq!(recorded.len(), examples.len());
    let (mut applied, mut replayed) = (M::default(), M::default());
    let mut passed = 0;
    for rec in &recorded {
        let env = funnel_codec::decode_recorded(rec).unwrap();
        let accepted = applied.apply(&env).is_ok();
        if M::reads(&rec.meta.event_type) {
            let _ = replayed.apply(&env);
        } else {
            assert!(accepted, "{} is refused on its lead", rec.meta.event_type);
            replayed.pass(rec.meta.occurred_at);
            passed += 1;
        }
        assert_eq!(
            replayed, applied,
            "passing {} differs from applying it",
            rec.meta.event_type
        );
    }
    assert!(passed > 0, "every type is read");
}

#[tokio::test]
async fn the_pipeline_passes_over_only_the_types_it_does_nothing_with() {
    passing_equals_applying::<Pipeline>().await;
}

#[tokio::test]
async fn the_conflicts_pass_over_only_the_types_they_do_nothing_with() {
    passing_equals_applying::<Conflicts>().await;
}

#[tokio::test]
async fn plan_compliance_passes_over_only_the_types_it_does_nothing_with() {
    passing_equals_applying::<PlanCompliance>().await;
}
