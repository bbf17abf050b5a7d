//! Server crashes under load: while the server is down every append fails fast with a retryable
//! `Unavailable`; after a restart the same store object resumes, and every acknowledged append is
//! in the log exactly once and complete.

use crate::support::{connect, options};
use funnel_store::conformance::{numbered_events, request};
use funnel_store::{AppendOutcome, AppendRequest, EventStore, Filter, read_whole_stream};
use funnel_testkit::NatsServer;
use funnel_types::{ExpectedVersion, Position, StreamId, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const WRITERS: usize = 16;

/// A store call that takes longer than this is taken as a hang.
const HANG: Duration = Duration::from_secs(15);

/// Shared progress counters of the writers.
#[derive(Default)]
struct Progress {
    acked: AtomicUsize,
    failed: AtomicUsize,
    writers_failed: AtomicUsize,
    stop: AtomicBool,
}

/// Waits (bounded) until `cond` holds, panicking with `what` otherwise.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Appends to its own stream with exact expectations; a failed append is retried with the same
/// command id until acknowledged, so the stream must end up holding exactly the acknowledged ones.
async fn writer(
    store: Arc<dyn EventStore>,
    stream: StreamId,
    progress: Arc<Progress>,
) -> Vec<(AppendRequest, AppendOutcome)> {
    let mut acked = Vec::new();
    let mut version = None;
    let mut seen_failure = false;
    while !progress.stop.load(Ordering::SeqCst) {
        let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let req = request(&stream, expected, numbered_events(1 + acked.len() % 3));
        loop {
            let result = match tokio::time::timeout(HANG, store.append(req.clone())).await {
                Ok(r) => r,
                Err(_) => panic!("an append hung for {HANG:?}"),
            };
            match result {
                Ok(o) => {
                    version = Some(o.last_version);
                    progress.acked.fetch_add(1, Ordering::SeqCst);
                    acked.push((req.clone(), o));
                    break;
                }
                Err(e) => {
                    assert!(
                        e.is_retryable(),
                        "a server crash must give a retryable error, got {e}"
                    );
                    progress.failed.fetch_add(1, Ordering::SeqCst);
                    if !seen_failure {
                        seen_failure = true;
                        progress.writers_failed.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_fail_fast_while_the_server_is_down_and_resume_after_restart() {
    let mut server = NatsServer::start();
    let store: Arc<dyn EventStore> = Arc::new(connect(options(server.url())).await);
    let progress = Arc::new(Progress::default());
    let streams: Vec<StreamId> = (0..WRITERS)
        .map(|i| StreamId::parse(format!("order-w{i}")).expect("stream name"))
        .collect();
    let tasks: Vec<_> = streams
        .iter()
        .map(|s| tokio::spawn(writer(store.clone(), s.clone(), progress.clone())))
        .collect();

    wait_until("writers made progress", || {
        progress.acked.load(Ordering::SeqCst) >= 100
    })
    .await;
    tokio::task::block_in_place(|| server.kill());
    // Every writer runs into the outage; none hangs (each call is bounded by HANG).
    wait_until("every writer saw the outage", || {
        progress.writers_failed.load(Ordering::SeqCst) == WRITERS
    })
    .await;
    let failures_while_down = progress.failed.load(Ordering::SeqCst);
    assert!(failures_while_down >= WRITERS);
    // While down, reads fail fast and retryably as well.
    let down = tokio::time::timeout(HANG, store.head())
        .await
        .expect("head hung while the server was down");
    assert!(down.is_err_and(|e| e.is_retryable()));

    let acked_before_restart = progress.acked.load(Ordering::SeqCst);
    tokio::task::block_in_place(|| server.restart());
    wait_until("writers resumed after the restart", || {
        progress.acked.load(Ordering::SeqCst) >= acked_before_restart + 2 * WRITERS
    })
    .await;
    progress.stop.store(true, Ordering::SeqCst);
    let mut all_acked = Vec::new();
    for t in tasks {
        all_acked.push(t.await.expect("writer task"));
    }

    // Each stream holds exactly its acknowledged appends, in order, each once and complete.
    let mut total_events = 0;
    for (stream, acked) in streams.iter().zip(&all_acked) {
        let events = read_whole_stream(&*store, stream)
            .await
            .expect("read a stream");
        let expected_ids: Vec<_> = acked
            .iter()
            .flat_map(|(r, _)| r.events.iter().map(|e| e.event_id))
            .collect();
        let got_ids: Vec<_> = events.iter().map(|e| e.meta.event_id).collect();
        assert_eq!(
            got_ids.len(),
            expected_ids.len(),
            "stream {stream} has extra or missing events"
        );
        for (i, ((req, outcome), chunk)) in acked
            .iter()
            .zip(events.chunk_by(|a, b| a.meta.command_id == b.meta.command_id))
            .enumerate()
        {
            assert_eq!(
                chunk.len(),
                req.events.len(),
                "append {i} of {stream} is incomplete"
            );
            assert!(chunk.iter().all(|e| e.meta.command_id == req.command_id));
            assert_eq!(chunk[0].meta.version, outcome.first_version);
            assert_eq!(chunk[0].meta.position, outcome.first_position);
            assert_eq!(chunk[chunk.len() - 1].meta.position, outcome.last_position);
        }
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.meta.version, Version(i as u64 + 1));
        }
        // Events may be re-published only as duplicates; none of them twice.
        let mut ids = got_ids.clone();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), got_ids.len());
        total_events += events.len();
    }
    let mut everything = Vec::new();
    let mut cursor = Position::START;
    loop {
        let batch = store
            .read_all(cursor, &Filter::All, 1000)
            .await
            .expect("read_all");
        let Some(last) = batch.last() else { break };
        cursor = last.meta.position;
        everything.extend(batch);
    }
    assert_eq!(
        everything.len(),
        total_events,
        "the global log has extra or missing events"
    );
    assert!(
        everything
            .windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
}
