//! Subscriptions in the buckets of a JetStream cluster, as several processes see them: made on one
//! and seen, changed and announced on another; changes made at once through both all count;
//! deleting one leaves no copy of its secret or delivery log in the cluster; a process given
//! another key file is refused.

use funnel_domain::Event;
use funnel_notify::Selector;
use funnel_notify::webhooks::{
    DeliveryOptions, Dispatcher, NewSubscription, Targets, WebhookError, Webhooks, kv,
};
use funnel_store::{AppendRequest, EventStore, ProposedEvent};
use funnel_testkit::NatsServer;
use funnel_types::Position;
use funnel_types::{
    Actor, CommandId, CorrelationId, EventId, ExpectedVersion, OfficeId, Role, StaffId, StreamId,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn process(server: &NatsServer, key_file: &Path) -> Result<Webhooks, WebhookError> {
    let hooks =
        Webhooks::open_on_cluster(&server.url(), "FUNNEL", 1, Duration::from_secs(5), key_file)
            .await?;
    hooks.set_targets(Targets::new(&["127.0.0.1".into()]).unwrap());
    Ok(hooks)
}

fn new(url: &str) -> NewSubscription {
    NewSubscription {
        url: url.into(),
        description: "crm".into(),
        selector: Selector::default(),
        after: Position(3),
        created_by: "test".into(),
        owner: None,
        owner_since: Position::START,
    }
}

/// Appends one lead registration, as an engineer of an office.
async fn append_example(store: &dyn EventStore) {
    let event: Event = funnel_codec::examples()
        .into_iter()
        .find(|e| e.event_type() == "lead.registered")
        .unwrap();
    let proposed = ProposedEvent {
        event_id: EventId::new(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        occurred_at: chrono::Utc::now(),
        actor: Actor::staff(StaffId::derived("engineer"), Role::SalesEngineer),
        office: Some(OfficeId::derived("office")),
        correlation_id: CorrelationId::new(),
        causation_id: uuid::Uuid::now_v7(),
        payload: funnel_codec::encode(&event).into(),
    };
    store
        .append(AppendRequest {
            stream: StreamId::new("lead", uuid::Uuid::now_v7().to_string()).unwrap(),
            expected: ExpectedVersion::Any,
            command_id: CommandId::new(),
            events: vec![proposed],
        })
        .await
        .unwrap();
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl AsyncFnMut() -> bool) {
    funnel_testkit::eventually(what, 400, Duration::from_millis(25), done).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_on_one_cluster_share_subscriptions() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("webhooks.key");
    let a = process(&server, &key).await.unwrap();
    let b = process(&server, &key).await.unwrap();

    let (sub, _) = a.create(new("http://127.0.0.1:9/hook")).await.unwrap();
    assert_eq!(b.list().await.unwrap(), vec![sub.clone()]);
    assert_eq!(b.get(sub.id).await.unwrap(), sub);

    // A pause made through A is announced on B (its dispatch would stop the worker).
    let mut changes = b.changes();
    changes.mark_unchanged();
    let paused = a.pause(sub.id).await.unwrap();
    eventually("B hears of the pause", async || {
        changes.has_changed().unwrap_or(false)
    })
    .await;
    assert_eq!(b.get(sub.id).await.unwrap(), paused);

    // Twenty changes at once through both: none is lost.
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let who = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = sub.id;
        tasks.push(tokio::spawn(async move {
            if i % 4 < 2 {
                who.replay(id, Position(i)).await.map(|_| ())
            } else {
                who.resume(id, None).await.map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        a.get(sub.id).await.unwrap().revision,
        paused.revision + 20,
        "every change counted once"
    );

    // A's dispatch tries a receiver that is not there; B reads the attempts, page by page.
    let log_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open(log_dir.path().join("log.db")).unwrap());
    append_example(store.as_ref()).await;
    a.replay(sub.id, Position::START).await.unwrap();
    let options = DeliveryOptions {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        restart_every: Duration::from_millis(100),
        ..DeliveryOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dispatch = tokio::spawn(
        Dispatcher::new(a.clone(), store, options)
            .unwrap()
            .run(async {
                let _ = stop_rx.await;
            }),
    );
    eventually("five attempts", async || {
        b.deliveries(sub.id, None, 10).await.unwrap().len() >= 5
    })
    .await;
    stop_tx.send(()).unwrap();
    dispatch.await.unwrap();
    let all = b.deliveries(sub.id, None, 1000).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|d| d.seq).collect();
    let newest = seqs[0];
    assert_eq!(seqs, (1..=newest).rev().collect::<Vec<_>>(), "newest first");
    assert!(all.iter().all(|d| !d.ok && d.status.is_none()), "{all:?}");
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = b.deliveries(sub.id, before, 2).await.unwrap();
        paged.extend(page.iter().map(|d| d.seq));
        if page.len() < 2 {
            break;
        }
        before = page.last().map(|d| d.seq);
    }
    assert_eq!(paged, seqs);
    assert!(b.get(sub.id).await.unwrap().failing.is_some());

    // Deleted through B: gone for A, and nothing of it is left in the buckets.
    b.delete(sub.id).await.unwrap();
    assert!(matches!(
        a.get(sub.id).await,
        Err(WebhookError::NotFound(_))
    ));
    assert!(a.list().await.unwrap().is_empty());
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(format!("KV_{}", kv::subscriptions_bucket("FUNNEL")))
        .await
        .unwrap();
    // At most the purge marker is left, with nothing in it.
    if let Ok(m) = stream
        .get_last_raw_message_by_subject(&format!("$KV.FUNNEL_WEBHOOKS.sub.{}", sub.id))
        .await
    {
        assert!(m.payload.is_empty(), "{:?}", m.payload);
    }
    let mut info = stream.info().await.unwrap().clone();
    assert_eq!(
        info.state.messages, 2,
        "the key id and the purge marker, no revision of the subscription: {info:?}"
    );
    info = js
        .get_stream(format!("KV_{}", kv::deliveries_bucket("FUNNEL")))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 0, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_with_another_key_file_is_refused() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let first = process(&server, &dir.path().join("a.key")).await.unwrap();
    first.create(new("http://127.0.0.1:9/hook")).await.unwrap();
    let err = process(&server, &dir.path().join("b.key"))
        .await
        .expect_err("another key");
    let text = err.to_string();
    assert!(
        text.contains("b.key") && text.contains("same key file"),
        "{text}"
    );
    // The same key in another file is the same key.
    std::fs::copy(dir.path().join("a.key"), dir.path().join("c.key")).unwrap();
    let third = process(&server, &dir.path().join("c.key")).await.unwrap();
    assert_eq!(third.list().await.unwrap().len(), 1);
}
