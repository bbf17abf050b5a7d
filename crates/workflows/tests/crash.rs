//! Crash tests: the test binary re-executes itself as a child that runs the runtime and aborts at a
//! fail point (after a reaction's commands, before the instance's events). The parent restarts it
//! until a child gets through, then checks that every command took effect exactly once and that
//! the result equals a run that never crashed.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use funnel_domain::Event;
use funnel_domain::events::WorkflowKind;
use funnel_domain::lead::LeadCommand;
use funnel_domain::model::PurchaseMode;
use funnel_types::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The child: runs the runtime until idle at the given time (aborting at the fail point the
/// environment names). Without the environment it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let (Ok(dir), Ok(at)) = (
        std::env::var("FUNNEL_CRASH_DIR"),
        std::env::var("FUNNEL_CRASH_AT"),
    ) else {
        return;
    };
    let at: DateTime<Utc> = at.parse().expect("time");
    let w = World::open(Path::new(&dir), at);
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
}

/// Two reassignment requests nobody answers, and two engineers who never submit a plan: every
/// timer that comes due sends a command.
async fn history(dir: &Path, start: DateTime<Utc>) {
    let w = World::open(dir, start);
    w.bootstrap().await;
    for (customer, owner, to) in [("万科", "e1", "e2"), ("保利", "e2", "e1")] {
        let lead = w.register(owner, customer, PurchaseMode::Independent).await;
        w.lead(
            "m",
            lead,
            1,
            LeadCommand::RequestReassignment {
                reassignment_id: ReassignmentId::derived(customer),
                to: staff(to),
                evidence: "调岗".into(),
            },
        )
        .await;
    }
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
}

/// Runs children at `at` with the fail point until one exits normally; returns how many crashed.
fn crash_until_through(dir: &Path, at: DateTime<Utc>, failpoint: &str) -> usize {
    for crashes in 0..50 {
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("FUNNEL_CRASH_DIR", dir)
            .env("FUNNEL_CRASH_AT", at.to_rfc3339())
            .env("FUNNEL_FAILPOINT", failpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("child runs");
        if status.success() {
            return crashes;
        }
    }
    panic!("the children never got through");
}

/// The workflow-caused business events (payloads as JSON), sorted.
async fn effects(w: &World) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cat in ["lead", "plan"] {
        for e in w.events(cat).await {
            if e.meta.actor.to_string().contains("workflow:") {
                out.push(funnel_codec::payload_value(&e.payload).to_string());
            }
        }
    }
    out.sort();
    out
}

async fn a_crash_at(failpoint: &str) {
    let start = shanghai(2026, 3, 3, 10, 0);
    let later = start + Duration::days(15);
    let crashed = tempfile::tempdir().expect("tempdir");
    let reference = tempfile::tempdir().expect("tempdir");
    history(crashed.path(), start).await;
    history(reference.path(), start).await;
    // The reference never crashes.
    let r = World::open(reference.path(), later);
    r.runtime()
        .run_until_idle(&mut |_, _| {})
        .await
        .expect("runs");
    let crashes = crash_until_through(crashed.path(), later, failpoint);
    // Two expiries and the weekly and monthly plan deadlines of two engineers: each crashed once.
    eprintln!("{failpoint}: {crashes} crashes before a child got through");
    assert!(crashes >= 4, "only {crashes} crashes");
    let w = World::open(crashed.path(), later);
    w.runtime()
        .run_until_idle(&mut |_, _| {})
        .await
        .expect("runs");
    // Every command took effect once, as in the run without crashes.
    let fx = effects(&w).await;
    assert_eq!(fx, effects(&r).await);
    let lead: Vec<Event> = w
        .events("lead")
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(
        count(&lead, |e| matches!(e, Event::ReassignmentExpired(_))),
        2
    );
    // Each instance: at most one completion, each timer fired at most once, each command recorded
    // as accepted at most once.
    let mut completed: BTreeMap<WorkflowId, usize> = BTreeMap::new();
    let mut fired: BTreeMap<TimerId, usize> = BTreeMap::new();
    let mut accepted: BTreeMap<CommandId, usize> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for e in w.events("workflow").await {
        assert!(ids.insert(e.meta.event_id), "duplicate event id");
        match &e.payload {
            Event::WorkflowCompleted(c) => *completed.entry(c.workflow_id).or_default() += 1,
            Event::TimerFired(t) => *fired.entry(t.timer_id).or_default() += 1,
            Event::WorkflowCommandSent(c) if c.outcome == "accepted" => {
                *accepted.entry(c.command_id).or_default() += 1
            }
            _ => {}
        }
    }
    assert!(completed.values().all(|n| *n == 1));
    assert!(fired.values().all(|n| *n == 1));
    assert!(accepted.values().all(|n| *n == 1));
    for customer in ["万科", "保利"] {
        let id = WorkflowId::derived(&format!(
            "{}:{}",
            WorkflowKind::Reassignment.as_str(),
            ReassignmentId::derived(customer)
        ));
        assert_eq!(completed.get(&id), Some(&1));
    }
    // Nothing is pending that was due, and a restart writes nothing.
    let mut again = w.runtime();
    let head = w.store.head().await.expect("head");
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.store.head().await.expect("head"), head);
    let due: Vec<_> = again
        .instances()
        .into_iter()
        .flat_map(|i| i.timers)
        .filter(|t| t.due_at <= later)
        .collect();
    assert!(due.is_empty(), "{due:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_between_a_timer_command_and_the_instance_events_lose_and_repeat_nothing() {
    a_crash_at("after_timer_commands").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_between_any_command_and_the_saga_append_lose_and_repeat_nothing() {
    a_crash_at("after_commands").await;
}
