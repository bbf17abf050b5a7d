//! Redelivery property: for random lead histories (random command sequences decided by the lead
//! decider and appended to a store), delivering every event twice — and then the whole log again
//! after a restart — sends the same commands and writes the same instance streams as delivering
//! each event once.

mod common;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use funnel_domain::lead::{LeadCommand, LogVisit, RecordKeyPerson, Register, StagnationDecision};
use funnel_domain::model::*;
use funnel_domain::{Acting, Ctx, Event, Policy, testing};
use funnel_store::{AppendRequest, EventStore, ProposedEvent};
use funnel_types::*;
use funnel_workflows::WorkflowRuntime;
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// The events a random history produces, with the time each happened and who acted.
fn decide_all(steps: &[(Acting, LeadCommand, i64)]) -> Vec<(DateTime<Utc>, Actor, Event)> {
    let policy = Policy::default();
    let dir = testing::directory();
    let mut at = testing::start();
    let mut state = funnel_domain::lead::LeadState::default();
    let mut out = Vec::new();
    for (acting, cmd, hours) in steps {
        at += Duration::hours(*hours);
        let ctx = Ctx {
            acting,
            at,
            policy: &policy,
            staff: &dir,
        };
        let events = match funnel_domain::lead::decide(&state, cmd, &ctx) {
            Ok(events) => events,
            Err(rejected) => rejected.record,
        };
        for e in events {
            state = funnel_domain::lead::evolve(state, &e);
            out.push((at, acting.actor(), e));
        }
    }
    out
}

/// A store holding the history, one append per event, with ids derived from the index.
async fn store_with(dir: &Path, history: &[(DateTime<Utc>, Actor, Event)]) -> common::World {
    let w = common::World::open(dir, testing::start());
    for (i, (at, actor, e)) in history.iter().enumerate() {
        let Some(lead) = e.lead_id() else { continue };
        let req = AppendRequest {
            stream: StreamId::new("lead", lead).expect("stream"),
            expected: ExpectedVersion::Any,
            command_id: CommandId::derived(&format!("history:{i}")),
            events: vec![ProposedEvent {
                event_id: EventId::derived(&format!("history:{i}")),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                occurred_at: *at,
                actor: actor.clone(),
                office: Some(testing::office()),
                correlation_id: CorrelationId(uuid::Uuid::nil()),
                causation_id: uuid::Uuid::nil(),
                payload: Bytes::from(funnel_codec::encode(e)),
            }],
        };
        w.store.append(req).await.expect("append");
    }
    w.clock.set(
        history
            .last()
            .map_or(testing::start(), |(at, _, _)| *at + Duration::hours(1)),
    );
    w
}

/// What the runtime wrote and sent: every workflow event (stream, version, type, payload,
/// causation) and every business event a workflow caused.
async fn outcome(store: &dyn EventStore) -> (Vec<String>, Vec<String>) {
    let workflow = common::events_of(store, "workflow")
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {} {}",
                e.meta.stream,
                e.meta.version,
                e.meta.event_type,
                funnel_codec::payload_value(&e.payload),
                e.meta.causation_id
            )
        })
        .collect();
    let mut sent: Vec<String> = common::events_of(store, "lead")
        .await
        .iter()
        .filter(|e| e.meta.actor.to_string().contains("workflow:"))
        .map(|e| {
            format!(
                "{} {}",
                e.meta.command_id,
                funnel_codec::payload_value(&e.payload)
            )
        })
        .collect();
    sent.sort();
    (workflow, sent)
}

fn runtime(w: &common::World) -> WorkflowRuntime {
    WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()), None).expect("runtime")
}

async fn once_and_twice(steps: Vec<(Acting, LeadCommand, i64)>) {
    let history = decide_all(&steps);
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let once = store_with(a.path(), &history).await;
    let twice = store_with(b.path(), &history).await;
    // Once: catch up, then three weeks later fire what is due.
    let mut rt = runtime(&once);
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    once.clock.advance(Duration::days(21));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    // Twice: every event delivered twice in a row, then the log again, then after a restart.
    let mut rt = runtime(&twice);
    for env in common::events_of(twice.store.as_ref(), "lead").await {
        rt.deliver(&env).await.expect("delivers");
        assert_eq!(rt.deliver(&env).await.expect("delivers"), 0);
    }
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    twice.clock.advance(Duration::days(21));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    if std::env::var_os("FUNNEL_DEBUG_REDELIVERY").is_some() {
        let (wf, sent) = outcome(once.store.as_ref()).await;
        eprintln!(
            "history {} workflow events {} commands {}",
            history.len(),
            wf.len(),
            sent.len()
        );
    }
    let mut restarted = runtime(&twice);
    restarted
        .run_until_idle(&mut |_, _| {})
        .await
        .expect("runs");
    assert_eq!(
        outcome(once.store.as_ref()).await,
        outcome(twice.store.as_ref()).await
    );
}

fn who(name: &str) -> Acting {
    let info = testing::staff()
        .into_iter()
        .find(|s| s.id == StaffId::derived(name))
        .expect("a member of the random world");
    Acting::Staff(info)
}

/// A registration that passes the ordinary-info checklist.
fn register() -> LeadCommand {
    LeadCommand::Register(Register {
        customer_name: "万科".into(),
        project_name: "城市花园（二期）".into(),
        industry: Industry::RealEstate,
        purchase_mode: PurchaseMode::Independent,
        channel: Channel::BuildingSweep,
        office: testing::office(),
        location: "上海".into(),
        contact: Contact {
            name: "李".into(),
            phone: "138".into(),
        },
        need: "对讲".into(),
    })
}

/// Steps that start workflows (visits for the insider and stagnation rules, a second registration
/// for a conflict, reassignments and their answers, a stagnation decision), mixed with the random
/// steps of `funnel_domain::testing`.
fn step() -> impl Strategy<Value = (Acting, LeadCommand, i64)> {
    let rid = || (0u8..2).prop_map(|n| ReassignmentId::derived(&format!("r{n}")));
    let hours = || 0i64..60;
    prop_oneof![
        4 => (0u32..1000, hours()).prop_map(|(n, h)| (who("e1"), LeadCommand::LogVisit(LogVisit {
            visit_id: VisitId::derived(&format!("v{n}")),
            kind: ContactKind::Visit,
            visited_at: testing::start(),
            purposes: vec![VisitPurpose::CollectNeeds],
            summary: "跟进".into(),
            information_gained: String::new(),
            customer_feedback: String::new(),
            next_step: String::new(),
            met: vec![],
        }), h)),
        1 => hours().prop_map(|h| (who("e2"), register(), h)),
        2 => (rid(), hours()).prop_map(|(reassignment_id, h)| (who("om"), LeadCommand::RequestReassignment {
            reassignment_id, to: StaffId::derived("e2"), evidence: "调岗".into(),
        }, h)),
        2 => (rid(), prop::sample::select(vec!["sd", "e1"]), hours()).prop_map(|(reassignment_id, by, h)| (who(by), LeadCommand::ApproveReassignment {
            reassignment_id, note: "同意".into(),
        }, h)),
        1 => (rid(), hours()).prop_map(|(reassignment_id, h)| (who("e1"), LeadCommand::DenyReassignment {
            reassignment_id, reason: "不同意".into(),
        }, h)),
        1 => hours().prop_map(|h| (who("e1"), LeadCommand::RecordKeyPerson(RecordKeyPerson {
            key_person_id: KeyPersonId::derived("k0"),
            name: "王工".into(),
            title: String::new(),
            role: KeyPersonRole::Gatekeeper,
            phone: String::new(),
            personal_notes: String::new(),
            levels: None,
        }), h)),
        1 => hours().prop_map(|h| (who("e1"), LeadCommand::MarkInsider {
            key_person_id: KeyPersonId::derived("k0"), note: "内线".into(),
        }, h)),
        1 => hours().prop_map(|h| (who("om"), LeadCommand::DecideStagnationReview {
            decision: StagnationDecision::Suspend, note: "停滞".into(),
        }, h)),
        3 => (testing::acting(), testing::command(), hours()),
    ]
}

/// A registration by e1, then random steps.
fn history() -> impl Strategy<Value = Vec<(Acting, LeadCommand, i64)>> {
    prop::collection::vec(step(), 1..30).prop_map(|mut steps| {
        steps.insert(0, (who("e1"), register(), 0));
        steps
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn delivering_every_event_twice_changes_nothing(steps in history()) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(once_and_twice(steps));
    }
}
