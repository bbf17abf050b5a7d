//! The live loop: `run` follows the tail of the log, reacts to a command issued while it waits, and
//! fires a timer that comes due (the manual clock is moved, and the next append wakes it).

mod common;

use chrono::Duration;
use common::*;
use funnel_domain::Event;
use funnel_domain::lead::LeadCommand;
use funnel_domain::model::PurchaseMode;
use funnel_engine::{Command, CommandMeta, Who};
use funnel_types::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_the_tail_and_fires_timers_as_they_come_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    w.bootstrap().await;
    let lead = w.register("e1", "万科", PurchaseMode::Independent).await;
    let mut rt = w.runtime();
    let (engine, clock, store) = (w.engine.clone(), w.clock.clone(), w.store.clone());
    let reassignment_id = ReassignmentId::derived("live");
    let id = WorkflowId::derived(&format!("reassignment:{reassignment_id}"));
    let stream = StreamId::new("workflow", id).expect("stream");
    let driver = tokio::spawn(async move {
        // Polls (for at most a minute, a guard against hanging) until `f` holds.
        async fn until<F: Future<Output = bool>>(mut f: impl FnMut() -> F) {
            for _ in 0..6000 {
                if f().await {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("the runtime did not get there");
        }
        let exec = |who: &str, cmd: Command| {
            let engine = engine.clone();
            let meta = CommandMeta::new(Who::Staff(staff(who))).at(clock.now());
            async move { engine.execute(meta, cmd).await.expect("accepted") }
        };
        exec(
            "m",
            Command::Lead {
                lead_id: Some(lead),
                cmd: LeadCommand::RequestReassignment {
                    reassignment_id,
                    to: staff("e2"),
                    evidence: "调岗".into(),
                },
            },
        )
        .await;
        until(|| {
            let store = store.clone();
            let stream = stream.clone();
            async move {
                store
                    .stream_version(&stream)
                    .await
                    .expect("version")
                    .is_some()
            }
        })
        .await;
        // Fifteen days pass; an unrelated registration wakes the runtime, which fires the expiry.
        clock.advance(Duration::days(15));
        exec(
            "e2",
            Command::Lead {
                lead_id: None,
                cmd: LeadCommand::Register(registration("保利", PurchaseMode::Independent)),
            },
        )
        .await;
        until(|| {
            let store = store.clone();
            async move {
                events_of(store.as_ref(), "workflow").await.iter().any(
                    |e| matches!(&e.payload, Event::WorkflowCompleted(c) if c.workflow_id == id),
                )
            }
        })
        .await;
    });
    rt.run(async move { driver.await.expect("the driver") })
        .await
        .expect("runs");
    let events: Vec<Event> = rt
        .show(id)
        .await
        .expect("instance")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(outcome(&events).as_deref(), Some("expired"));
}
