//! Webhook delivery against a receiver that is down, fails, times out and recovers: every selected
//! event arrives, in log order (so in order per lead), with a valid signature; the delivery log
//! shows the failures; a replay from an old position delivers again; a `410 Gone` pauses. With the
//! subscriptions in a SQLite file and in JetStream buckets alike.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_notify::webhooks::{
    DeliveryOptions, Dispatcher, NewSubscription, Targets, Webhooks, sign,
};
use funnel_notify::{Kinds, Selector};
use funnel_store::{EventStore, Filter};
use funnel_types::{OfficeId, Position, SystemClock};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver does with request number n (counted from 1).
fn behaviour(n: usize) -> (StatusCode, Duration) {
    match n {
        3..=5 => (StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO),
        8 => (StatusCode::OK, Duration::from_secs(3)), // longer than the timeout
        9 => (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO),
        _ => (StatusCode::NO_CONTENT, Duration::ZERO),
    }
}

/// (webhook-id, timestamp, signature, position, body) of one request.
type Accepted = (String, i64, String, u64, String);

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<usize>>,
    /// Requests answered 2xx in time.
    accepted: Arc<Mutex<Vec<Accepted>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let n = {
        let mut c = r.requests.lock().unwrap();
        *c += 1;
        *c
    };
    let (status, delay) = behaviour(n);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
        return status; // the sender gave up long ago: not counted as delivered
    }
    if status.is_success() {
        let h = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
        r.accepted.lock().unwrap().push((
            h("webhook-id"),
            h("webhook-timestamp").parse().unwrap(),
            h("webhook-signature"),
            h("funnel-position").parse().unwrap(),
            body,
        ));
    }
    status
}

async fn gone() -> StatusCode {
    StatusCode::GONE
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl AsyncFnMut() -> bool) {
    funnel_testkit::eventually(what, 600, Duration::from_millis(50), done).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_in_order_signed_through_failures_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Webhooks::open(&dir.path().join("webhooks.db")).unwrap();
    delivers_through_failures_and_replays(dir.path(), hooks).await;
}

/// The same with the subscriptions, cursors and delivery log in the buckets of a JetStream
/// cluster (the log itself stays in a file here: the buckets are what is under test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_in_order_with_the_subscriptions_on_jetstream() {
    let dir = tempfile::tempdir().unwrap();
    let server = funnel_testkit::NatsServer::start();
    let hooks = Webhooks::open_on_cluster(
        &server.url(),
        "FUNNEL",
        1,
        Duration::from_secs(5),
        &dir.path().join("webhooks.key"),
    )
    .await
    .unwrap();
    delivers_through_failures_and_replays(dir.path(), hooks).await;
}

async fn delivers_through_failures_and_replays(dir: &std::path::Path, hooks: Webhooks) {
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open(dir.join("log.db")).unwrap());
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
    let opts = funnel_demo::DemoOptions {
        leads: 12,
        weeks: 3,
        ..Default::default()
    };
    funnel_demo::load(&engine, &opts, |_, _| {}).await.unwrap();

    // What a subscription to Shanghai's lead events must receive, in log order.
    let offices = funnel_notify::offices(store.as_ref()).await.unwrap();
    let sh = funnel_notify::find_office(&offices, "sh").expect("the demo has SH");
    let selector = Selector {
        offices: vec![sh],
        kinds: Kinds::parse(&["lead.*".into()]).unwrap(),
    };
    let log = store
        .read_all(Position::START, &Filter::All, 100_000)
        .await
        .unwrap();
    let expected: Vec<(String, u64)> = log
        .iter()
        .filter(|r| selector.admits(&r.meta))
        .map(|r| (r.meta.event_id.as_uuid().to_string(), r.meta.position.0))
        .collect();
    assert!(expected.len() > 10, "{} events selected", expected.len());

    // The receiver's port is known before it listens: the first attempts find nobody there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    // The receiver is on this machine: the deployment must allow it.
    hooks.set_targets(Targets::new(&["127.0.0.1".into()]).unwrap());
    let (sub, secret) = hooks
        .create(NewSubscription {
            url: format!("http://{addr}/hook"),
            description: "SH leads".into(),
            selector: selector.clone(),
            after: Position::START,
            created_by: "test".into(),
            owner: None,
            owner_since: Position::START,
        })
        .await
        .unwrap();
    let options = DeliveryOptions {
        timeout: Duration::from_millis(300),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        restart_every: Duration::from_millis(100),
        ..DeliveryOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = Dispatcher::new(hooks.clone(), store.clone(), options).unwrap();
    let dispatching = tokio::spawn(dispatcher.run(async {
        let _ = stop_rx.await;
    }));

    eventually("refused connections in the delivery log", async || {
        hooks
            .deliveries(sub.id, None, 10)
            .await
            .unwrap()
            .iter()
            .any(|d| d.status.is_none() && !d.ok)
    })
    .await;
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .route("/gone", post(gone))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let accepted = || receiver.accepted.lock().unwrap().clone();
    eventually("every selected event", async || {
        hooks.get(sub.id).await.unwrap().delivered == expected.len() as u64
    })
    .await;
    let got = accepted();
    let firsts: Vec<(String, u64)> = {
        let mut seen = std::collections::HashSet::new();
        got.iter()
            .filter(|a| seen.insert(a.0.clone()))
            .map(|a| (a.0.clone(), a.3))
            .collect()
    };
    assert_eq!(firsts, expected, "delivered in log order, nothing missing");
    for (id, ts, signature, _, body) in &got {
        assert!(
            sign::verify(&secret, id, *ts, body.as_bytes(), signature),
            "signature of {id}"
        );
        let ce: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(ce["id"], id.as_str());
        assert_eq!(ce["specversion"], "1.0");
        assert!(ce["type"].as_str().unwrap().contains("lead."), "{ce}");
    }
    let now = hooks.get(sub.id).await.unwrap();
    assert!(now.failing.is_none() && now.cursor.0 >= expected.last().unwrap().1);
    let log_of = hooks.deliveries(sub.id, None, 100_000).await.unwrap();
    let failed: Vec<_> = log_of.iter().filter(|d| !d.ok).collect();
    assert!(failed.iter().any(|d| d.status == Some(500)), "{failed:?}");
    assert!(failed.iter().any(|d| d.status == Some(503)), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|d| d.error.as_deref() == Some("the receiver did not answer in time")),
        "{failed:?}"
    );
    assert!(log_of.iter().any(|d| d.ok && d.attempt > 1));
    assert_eq!(
        log_of.iter().filter(|d| d.ok).count(),
        expected.len(),
        "one acknowledged attempt per event"
    );

    // Replay from an old position: everything after it comes again, in order.
    let k = expected.len() / 2;
    let before = accepted().len();
    hooks
        .replay(sub.id, Position(expected[k - 1].1))
        .await
        .unwrap();
    eventually("the replay", async || {
        accepted().len() >= before + (expected.len() - k)
    })
    .await;
    let again: Vec<(String, u64)> = accepted()[before..]
        .iter()
        .map(|a| (a.0.clone(), a.3))
        .collect();
    assert_eq!(again, expected[k..].to_vec());

    // A receiver that answers 410 Gone pauses its subscription.
    let (gone_sub, _) = hooks
        .create(NewSubscription {
            url: format!("http://{addr}/gone"),
            description: String::new(),
            selector: Selector {
                offices: vec![OfficeId::derived("nowhere"), sh],
                kinds: Kinds::default(),
            },
            after: Position::START,
            created_by: "test".into(),
            owner: None,
            owner_since: Position::START,
        })
        .await
        .unwrap();
    eventually("the 410 pause", async || {
        hooks.get(gone_sub.id).await.unwrap().paused
    })
    .await;
    let paused = hooks.get(gone_sub.id).await.unwrap();
    assert!(paused.paused_reason.unwrap().contains("410"));
    assert_eq!(paused.cursor, Position::START);

    stop_tx.send(()).unwrap();
    dispatching.await.unwrap();
}

/// An event this build cannot read stops its subscription at that position, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_shows_as_the_subscriptions_failure() {
    use funnel_store::{AppendRequest, ProposedEvent};
    use funnel_types::{Actor, CommandId, CorrelationId, EventId, ExpectedVersion, StreamId};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open(dir.path().join("log.db")).unwrap());
    let stream = StreamId::new("lead", uuid::Uuid::now_v7()).unwrap();
    let event = ProposedEvent {
        event_id: EventId::new(),
        event_type: "lead.teleported".into(),
        schema_version: 1,
        occurred_at: chrono::Utc::now(),
        actor: Actor::System {
            name: "test".into(),
        },
        office: None,
        correlation_id: CorrelationId::new(),
        causation_id: uuid::Uuid::now_v7(),
        payload: bytes::Bytes::from_static(b"{}"),
    };
    let appended = store
        .append(AppendRequest {
            stream,
            expected: ExpectedVersion::NoStream,
            command_id: CommandId::new(),
            events: vec![event],
        })
        .await
        .unwrap();
    let hooks = Webhooks::in_memory().unwrap();
    hooks.set_targets(Targets::new(&["127.0.0.1".into()]).unwrap());
    let (sub, _) = hooks
        .create(NewSubscription {
            url: "http://127.0.0.1:9/hook".into(),
            description: String::new(),
            selector: Selector::default(),
            after: Position::START,
            created_by: "test".into(),
            owner: None,
            owner_since: Position::START,
        })
        .await
        .unwrap();
    let dispatcher = Dispatcher::new(hooks.clone(), store, DeliveryOptions::default()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async {
        let _ = stop_rx.await;
    }));
    eventually("the failure", async || {
        hooks.get(sub.id).await.unwrap().failing.is_some()
    })
    .await;
    let failing = hooks.get(sub.id).await.unwrap().failing.unwrap();
    assert_eq!(failing.position, appended.first_position);
    assert!(
        failing.last_error.contains("does not decode"),
        "{failing:?}"
    );
    assert_eq!(hooks.get(sub.id).await.unwrap().cursor, Position::START);
    assert!(
        hooks.deliveries(sub.id, None, 10).await.unwrap().is_empty(),
        "nothing was sent"
    );
    stop_tx.send(()).unwrap();
    running.await.unwrap();
}
