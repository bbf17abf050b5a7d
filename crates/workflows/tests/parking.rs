//! A reaction that fails for a reason outside the domain is parked on its instance, is not retried
//! on its own (the timer does not fire again), and `retry` runs it again once the cause is gone.

mod common;

use async_trait::async_trait;
use chrono::Duration;
use common::*;
use funnel_domain::events::WorkflowKind;
use funnel_domain::lead::LeadCommand;
use funnel_domain::model::PurchaseMode;
use funnel_domain::{Event, Policy};
use funnel_engine::Engine;
use funnel_store::{AppendOutcome, AppendRequest, EventStore, Filter, RecordedEvent, StoreError};
use funnel_types::*;
use funnel_workflows::WorkflowRuntime;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A store whose appends to lead streams fail while `broken` is set.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn EventStore>,
    broken: AtomicBool,
}

#[async_trait]
impl EventStore for Flaky {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        if self.broken.load(Ordering::SeqCst) && req.stream.category() == "lead" {
            return Err(StoreError::Unavailable {
                backend: "flaky",
                message: "the disk is away".into(),
            });
        }
        self.inner.append(req).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, max).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn read_all(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, filter, max).await
    }
    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }
    async fn wait_for_append(
        &self,
        after: Position,
        timeout: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.inner.wait_for_append(after, timeout).await
    }
}

/// A world whose lead streams can be broken, with one reassignment request waiting.
async fn parked_world(dir: &std::path::Path) -> (World, Arc<Flaky>, WorkflowId) {
    let mut w = World::open(dir, shanghai(2026, 3, 3, 10, 0));
    let flaky = Arc::new(Flaky {
        inner: w.store.clone(),
        broken: AtomicBool::new(false),
    });
    w.store = flaky.clone();
    w.engine = Engine::new(
        w.store.clone(),
        Policy::default(),
        Arc::new(w.clock.clone()),
    );
    w.bootstrap().await;
    let lead = w.register("e1", "万科", PurchaseMode::Independent).await;
    let reassignment_id = ReassignmentId::derived("r");
    w.lead(
        "m",
        lead,
        1,
        LeadCommand::RequestReassignment {
            reassignment_id,
            to: staff("e2"),
            evidence: "调岗".into(),
        },
    )
    .await;
    let id = WorkflowId::derived(&format!("reassignment:{reassignment_id}"));
    (w, flaky, id)
}

/// A running runtime takes a retry request between its rounds and answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_runtime_retries_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, flaky, id) = parked_world(dir.path()).await;
    let mut rt: WorkflowRuntime = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    flaky.broken.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::days(15));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    flaky.broken.store(false, Ordering::SeqCst);

    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut observe = |_: &funnel_workflows::Backlog| {};
    let run = rt.run_controlled(
        async {
            let _ = stopped.await;
        },
        &mut observe,
        &mut rx,
    );
    let ask = async {
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(funnel_workflows::Control::Retry { id, reply })
            .await
            .expect("the runtime listens");
        let retried = answer.await.expect("answered").expect("retried");
        let (reply, answer) = tokio::sync::oneshot::channel();
        let unknown = WorkflowId::derived("nobody");
        tx.send(funnel_workflows::Control::Retry { id: unknown, reply })
            .await
            .expect("the runtime listens");
        let refused = answer.await.expect("answered");
        let _ = stop.send(());
        (retried, refused)
    };
    let (ran, (retried, refused)) = tokio::join!(run, ask);
    ran.expect("stops cleanly");
    assert_eq!(retried, 1);
    assert!(matches!(
        refused,
        Err(funnel_workflows::RuntimeError::UnknownInstance(_))
    ));
    let done = rt
        .instances()
        .into_iter()
        .find(|i| i.id == id)
        .expect("instance");
    assert_eq!(done.status(), "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_parks_the_reaction_until_it_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, flaky, id) = parked_world(dir.path()).await;
    let mut rt: WorkflowRuntime = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    // The expiry is due while lead streams cannot be written: the reaction is parked.
    flaky.broken.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::days(15));
    rt.run_until_idle(&mut |_, _| {})
        .await
        .expect("runs despite the failure");
    let summary = |rt: &WorkflowRuntime| {
        rt.instances()
            .into_iter()
            .find(|i| i.id == id)
            .expect("instance")
    };
    let parked = summary(&rt);
    assert_eq!(parked.status(), "parked");
    assert_eq!(parked.parked.len(), 1);
    assert!(
        parked.parked[0].reason.contains("disk is away"),
        "{:?}",
        parked.parked
    );
    assert_eq!(rt.stats().parked, 1);
    // It stays parked: running again neither refires the timer nor writes anything to it.
    let version = parked.version;
    w.clock.advance(Duration::hours(1));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(summary(&rt).version, version);
    // Once the store is back, a retry sends the command; the expiry completes the instance.
    flaky.broken.store(false, Ordering::SeqCst);
    assert_eq!(rt.retry(id).await.expect("retries"), 1);
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let done = summary(&rt);
    assert!(done.parked.is_empty());
    assert_eq!(done.status(), "expired");
    let events: Vec<Event> = rt
        .show(id)
        .await
        .expect("shows")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(count(&events, |e| matches!(e, Event::ReactionParked(_))), 1);
    assert_eq!(
        count(&events, |e| matches!(e, Event::ReactionRetried(_))),
        1
    );
    assert_eq!(count(&events, |e| matches!(e, Event::TimerFired(_))), 1);
    assert_eq!(
        count(
            &events,
            |e| matches!(e, Event::WorkflowCommandSent(c) if c.outcome == "accepted")
        ),
        1
    );
    assert_eq!(done.kind, Some(WorkflowKind::Reassignment));
}

/// Appends `event` to an instance's stream as an outside writer (a hand edit, a damaged import)
/// would: the runtime did not decide it.
async fn write_by_hand(w: &World, id: WorkflowId, event: &Event) {
    let command_id = CommandId::derived(&format!("by-hand:{id}:{event:?}"));
    w.store
        .append(AppendRequest {
            stream: StreamId::new("workflow", id).expect("stream"),
            expected: ExpectedVersion::Exists,
            command_id,
            events: vec![funnel_store::ProposedEvent {
                event_id: EventId::derived(&format!("by-hand:{id}:{event:?}")),
                event_type: event.event_type().to_string(),
                schema_version: event.schema_version(),
                occurred_at: w.now(),
                actor: Actor::system("by-hand"),
                office: Some(office()),
                correlation_id: CorrelationId(command_id.0),
                causation_id: command_id.0,
                payload: bytes::Bytes::from(funnel_codec::encode(event)),
            }],
        })
        .await
        .expect("appended");
}

/// An engineer id the visit-plans instance recorded that does not read back parks the deadline's
/// reaction with a reason that names it, visible on the instance, instead of skipping the overdue
/// mark; once the id is recorded again, a retry marks the plan overdue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_does_not_read_parks_the_reaction_instead_of_dropping_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Tuesday 3 March 2026: the weekly plan is due Friday 6 March 17:30 (Shanghai).
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    w.bootstrap().await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let id = WorkflowId::derived(&format!("visit_plans:{}", staff("e2")));
    let noted = |value: String| {
        Event::WorkflowNoted(funnel_domain::events::WorkflowNoted {
            workflow_id: id,
            key: "engineer".into(),
            value,
        })
    };
    write_by_hand(&w, id, &noted("e2 (typed by hand)".into())).await;

    w.clock.set(shanghai(2026, 3, 6, 17, 31));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let summary = rt
        .instances()
        .into_iter()
        .find(|i| i.id == id)
        .expect("the instance");
    assert_eq!(summary.parked.len(), 1, "{:?}", summary.parked);
    assert!(
        summary.parked[0]
            .reason
            .contains("engineer `e2 (typed by hand)` is not a valid id"),
        "{}",
        summary.parked[0].reason
    );
    let overdue = |events: &[Envelope<Event>]| {
        events
            .iter()
            .filter(
                |e| matches!(&e.payload, Event::VisitPlanOverdue(o) if o.engineer == staff("e2")),
            )
            .count()
    };
    assert_eq!(overdue(&w.events("plan").await), 0);

    write_by_hand(&w, id, &noted(staff("e2").to_string())).await;
    assert_eq!(rt.retry(id).await.expect("retried"), 1);
    assert_eq!(overdue(&w.events("plan").await), 1);
    let summary = rt
        .instances()
        .into_iter()
        .find(|i| i.id == id)
        .expect("the instance");
    assert!(summary.parked.is_empty(), "{:?}", summary.parked);
}
