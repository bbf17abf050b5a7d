//! Leases over the in-memory lease store: one holder at a time, terms that grow, a holder that
//! stops renewing loses the lease to another, and a fenced store refuses the former holder.

use funnel_store::lease::{FencedStore, Holding, Lease, LeaseStore, MemoryLeases};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const TTL: Duration = Duration::from_secs(3);

async fn held(rx: &mut watch::Receiver<Holding>) -> u64 {
    rx.wait_for(|h| h.term_now().is_some())
        .await
        .expect("lease task alive")
        .term_now()
        .expect("held")
}

#[tokio::test(start_paused = true)]
async fn one_holder_then_a_greater_term_after_it_stops() {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeases::new(TTL));
    let a = Arc::new(Lease::new("sagas", "a", store.clone()));
    let b = Arc::new(Lease::new("sagas", "b", store.clone()));
    let (stop_a, rx_a) = watch::channel(false);
    let (stop_b, rx_b) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ta = tokio::spawn({
        let a = a.clone();
        let s = stopped(rx_a);
        async move { a.run(s).await }
    });
    let term_a = held(&mut a.watch()).await;
    let tb = tokio::spawn({
        let b = b.clone();
        let s = stopped(rx_b);
        async move { b.run(s).await }
    });
    // Many renewals later, b still does not hold it.
    tokio::time::sleep(TTL * 5).await;
    assert_eq!(a.watch().borrow().term_now(), Some(term_a));
    assert_eq!(b.watch().borrow().term_now(), None);
    assert_eq!(
        *b.watch().borrow(),
        Holding::No {
            holder: Some("a".into())
        }
    );
    // a stops (and releases): b takes over under a greater term.
    stop_a.send(true).unwrap();
    ta.await.unwrap();
    let term_b = held(&mut b.watch()).await;
    assert!(term_b > term_a, "{term_b} > {term_a}");
    assert_eq!(a.watch().borrow().term_now(), None);
    stop_b.send(true).unwrap();
    tb.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_cannot_renew_stops_acting_before_another_can_take_over() {
    let store = Arc::new(MemoryLeases::new(TTL));
    let dyn_store: Arc<dyn LeaseStore> = store.clone();
    let a = Arc::new(Lease::new("webhooks", "a", dyn_store.clone()));
    let fence = a.fence();
    let (_stop, rx) = watch::channel(false);
    let task = tokio::spawn({
        let a = a.clone();
        async move {
            let mut rx = rx;
            a.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        }
    });
    let term = held(&mut a.watch()).await;
    fence
        .check(term)
        .await
        .expect("the holder passes its fence");
    // The holder process is paused: its renewal task no longer runs.
    task.abort();
    let _ = task.await;
    // Until the record expires nobody else can hold it ...
    assert_eq!(dyn_store.acquire("webhooks", "b").await.unwrap(), None);
    // ... and the former holder's own deadline passes first (a margin before the record expires).
    tokio::time::sleep(TTL - Duration::from_millis(500)).await;
    assert_eq!(fence.term(), None);
    let refused = fence.check(term).await.unwrap_err();
    assert!(
        matches!(refused, funnel_store::StoreError::Fenced { .. }),
        "{refused}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b_term = dyn_store
        .acquire("webhooks", "b")
        .await
        .unwrap()
        .expect("free after ttl");
    assert!(b_term > term);
}

#[tokio::test(start_paused = true)]
async fn a_fenced_store_refuses_appends_once_another_holds_the_lease() {
    use funnel_store::{AppendRequest, EventStore, ProposedEvent};
    use funnel_types::{Actor, CommandId, CorrelationId, EventId, ExpectedVersion, StreamId};
    let leases: Arc<dyn LeaseStore> = Arc::new(MemoryLeases::new(TTL));
    let a = Arc::new(Lease::new("sagas", "a", leases.clone()));
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn({
        let a = a.clone();
        let mut rx = rx;
        async move {
            a.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        }
    });
    let term = held(&mut a.watch()).await;
    let inner: Arc<dyn EventStore> = Arc::new(Recording::default());
    let fenced = FencedStore::new(inner.clone(), a.fence(), term);
    let req = |n: u8| AppendRequest {
        stream: StreamId::parse("workflow-0190a3b2-1111-7000-8000-000000000001").unwrap(),
        expected: ExpectedVersion::Any,
        command_id: CommandId(uuid::Uuid::from_bytes([n; 16])),
        events: vec![ProposedEvent {
            event_id: EventId(uuid::Uuid::from_bytes([n; 16])),
            event_type: "workflow.noted".into(),
            schema_version: 1,
            occurred_at: chrono::Utc::now(),
            actor: Actor::system("workflow:test"),
            office: None,
            correlation_id: CorrelationId(uuid::Uuid::from_bytes([n; 16])),
            causation_id: uuid::Uuid::from_bytes([n; 16]),
            payload: bytes::Bytes::from_static(b"{}"),
        }],
    };
    fenced.append(req(1)).await.expect("the holder appends");
    // The holding ends (the process stops holding; another takes it over).
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(leases.acquire("sagas", "b").await.unwrap().is_some());
    let refused = fenced.append(req(2)).await.unwrap_err();
    assert!(
        matches!(refused, funnel_store::StoreError::Fenced { .. }),
        "{refused}"
    );
    assert_eq!(
        inner.head().await.unwrap().0,
        1,
        "only the first append reached the store"
    );
}

/// A store that counts appends (positions 1, 2, …) and holds nothing else.
#[derive(Debug, Default)]
struct Recording(std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl funnel_store::EventStore for Recording {
    fn backend(&self) -> &'static str {
        "recording"
    }
    async fn append(
        &self,
        req: funnel_store::AppendRequest,
    ) -> Result<funnel_store::AppendOutcome, funnel_store::StoreError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Ok(funnel_store::AppendOutcome {
            stream: req.stream,
            first_version: funnel_types::Version(n),
            last_version: funnel_types::Version(n),
            first_position: funnel_types::Position(n),
            last_position: funnel_types::Position(n),
            duplicate: false,
        })
    }
    async fn read_stream(
        &self,
        _: &funnel_types::StreamId,
        _: funnel_types::Version,
        _: usize,
    ) -> Result<Vec<funnel_store::RecordedEvent>, funnel_store::StoreError> {
        Ok(Vec::new())
    }
    async fn stream_version(
        &self,
        _: &funnel_types::StreamId,
    ) -> Result<Option<funnel_types::Version>, funnel_store::StoreError> {
        Ok(None)
    }
    async fn read_all(
        &self,
        _: funnel_types::Position,
        _: &funnel_store::Filter,
        _: usize,
    ) -> Result<Vec<funnel_store::RecordedEvent>, funnel_store::StoreError> {
        Ok(Vec::new())
    }
    async fn head(&self) -> Result<funnel_types::Position, funnel_store::StoreError> {
        Ok(funnel_types::Position(
            self.0.load(std::sync::atomic::Ordering::SeqCst),
        ))
    }
    async fn wait_for_append(
        &self,
        _: funnel_types::Position,
        _: Duration,
    ) -> Result<bool, funnel_store::StoreError> {
        Ok(false)
    }
}

/// A lease store whose reads fail (unavailable) a given number of times.
#[derive(Debug)]
struct Flaky {
    inner: MemoryLeases,
    failures: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl LeaseStore for Flaky {
    fn ttl(&self) -> Duration {
        self.inner.ttl()
    }
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<Option<u64>, funnel_store::StoreError> {
        self.inner.acquire(name, holder).await
    }
    async fn renew(
        &self,
        name: &str,
        record: &funnel_store::lease::LeaseRecord,
        revision: u64,
    ) -> Result<Option<u64>, funnel_store::StoreError> {
        self.inner.renew(name, record, revision).await
    }
    async fn current(
        &self,
        name: &str,
    ) -> Result<Option<funnel_store::lease::LeaseEntry>, funnel_store::StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .failures
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(funnel_store::StoreError::Unavailable {
                backend: "flaky",
                message: "no leader".into(),
            });
        }
        self.inner.current(name).await
    }
    async fn release(&self, name: &str, revision: u64) -> Result<(), funnel_store::StoreError> {
        self.inner.release(name, revision).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_fence_rides_out_a_lease_store_that_does_not_answer_for_a_moment() {
    let flaky = Arc::new(Flaky {
        inner: MemoryLeases::new(TTL),
        failures: std::sync::atomic::AtomicUsize::new(0),
    });
    let store: Arc<dyn LeaseStore> = flaky.clone();
    let a = Arc::new(Lease::new("sagas", "a", store));
    let (_stop, rx) = watch::channel(false);
    tokio::spawn({
        let a = a.clone();
        let mut rx = rx;
        async move {
            a.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        }
    });
    let term = held(&mut a.watch()).await;
    let fence = a.fence();
    // A few failed reads: the check waits them out and passes.
    flaky.failures.store(3, std::sync::atomic::Ordering::SeqCst);
    fence
        .check(term)
        .await
        .expect("passes after the store answers again");
    // Reads failing for longer than the holder may count on its lease: fenced, not hung.
    flaky
        .failures
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    let refused = fence.check(term).await.unwrap_err();
    assert!(
        matches!(refused, funnel_store::StoreError::Fenced { .. }),
        "{refused}"
    );
}
