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
