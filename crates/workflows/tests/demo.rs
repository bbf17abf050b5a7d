//! The demo history (120 leads, the default weeks) followed by the runtime until idle with the clock
//! at 26 November 2026: instances of all nine kinds exist, open tasks are listed per person, and a
//! restart (from the checkpoint, or from the start without one) writes nothing more.

mod common;

use common::*;
use funnel_domain::events::WorkflowKind;
use funnel_workflows::WorkflowRuntime;
use std::collections::BTreeSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_history_has_instances_of_all_nine_kinds_and_open_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 11, 26, 9, 0));
    let opts = funnel_demo::DemoOptions {
        leads: 120,
        ..funnel_demo::DemoOptions::default()
    };
    funnel_demo::load(&w.engine, &opts, |_, _| {})
        .await
        .expect("demo");
    let head = w.store.head().await.expect("head");
    let started = std::time::Instant::now();
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    eprintln!(
        "run_until_idle over {} events: {:?}, {:?}",
        head.0,
        started.elapsed(),
        rt.stats()
    );
    let instances = rt.instances();
    let kinds: BTreeSet<WorkflowKind> = instances.iter().filter_map(|i| i.kind).collect();
    for k in WorkflowKind::ALL {
        assert!(kinds.contains(&k), "no {k:?} instance; have {kinds:?}");
    }
    assert!(instances.iter().all(|i| i.parked.is_empty()));
    assert!(instances.iter().any(|i| !i.active));
    let mut outcomes: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for e in w.events("workflow").await {
        if let funnel_domain::Event::WorkflowCommandSent(c) = e.payload {
            *outcomes.entry((c.command, c.outcome)).or_default() += 1;
        }
    }
    eprintln!("commands sent by outcome: {outcomes:?}");
    // The instances read model, folded from the log alone, says what the runtime's index says.
    let mut model = funnel_workflows::Instances::default();
    for e in w.events("workflow").await {
        funnel_projections::ReadModel::apply(&mut model, &e).expect("applies");
    }
    assert_eq!(model.by_id.len(), instances.len());
    for i in &instances {
        assert_eq!(model.summary(i.id).as_ref(), Some(i), "instance {}", i.id);
    }
    let tasks = w.tasks().await;
    assert!(!tasks.open.is_empty());
    // Every open task is somebody's: its assignee, or the role in its office.
    assert!(tasks.all().iter().all(|t| t.assignee.staff.is_some()
        || t.assignee.office.is_some()
        || t.assignee.role.is_headquarters()));
    // Restarting from the checkpoint, and redelivering the whole log without one, write nothing.
    let head = w.store.head().await.expect("head");
    let mut again = w.runtime();
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(again.stats().events_read, 0);
    let mut fresh =
        WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()), None).expect("runtime");
    fresh.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.store.head().await.expect("head"), head);
    assert_eq!(fresh.instances(), instances);
}
