//! The stored form of a commit, as other JetStream clients see it: an `FNL3` body that carries the
//! command id (the durable copy the duplicate check reads, also after the dedup window), the
//! expected-sequence header, and `Nats-Msg-Id` only on `Any`/`Exists` appends. Commits written in
//! the older `FNL2` form (command id only in `Nats-Msg-Id`) keep reading and answering retries.

use crate::support::{DEDUP_WINDOW, connect, options};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use funnel_store::conformance::{numbered_events, request};
use funnel_store::{AppendRequest, EventStore, Filter, ProposedEvent};
use funnel_testkit::NatsServer;
use funnel_types::{Actor, ExpectedVersion, Position, StreamId, Version};
use futures::StreamExt;

/// The names of a message's headers, sorted.
fn names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    names
}

fn msg_id(headers: Option<&HeaderMap>) -> Option<String> {
    Some(headers?.get("Nats-Msg-Id")?.as_str().to_string())
}

/// The command id bytes of an `FNL3` body: after the magic, the last version and the count.
fn body_command_id(payload: &[u8]) -> Option<uuid::Uuid> {
    uuid::Uuid::from_slice(payload.get(14..30)?).ok()
}

/// Asserts that the command of `req` is answered as a duplicate of `original`, writing nothing.
async fn assert_duplicate(
    store: &dyn EventStore,
    req: AppendRequest,
    original: &funnel_store::AppendOutcome,
) {
    let retried = store.append(req).await.expect("retry");
    assert!(retried.duplicate);
    assert_eq!(retried.first_version, original.first_version);
    assert_eq!(retried.last_version, original.last_version);
    assert_eq!(retried.last_position, original.last_position);
}

#[tokio::test]
async fn exact_commits_keep_the_command_id_in_their_body_and_send_no_msg_id() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    let stream_id = StreamId::parse("lead-format").expect("stream name");
    let first = request(&stream_id, ExpectedVersion::NoStream, numbered_events(2));
    let first_outcome = store.append(first.clone()).await.expect("append");
    let second = request(
        &stream_id,
        ExpectedVersion::Exact(Version(2)),
        numbered_events(1),
    );
    let second_outcome = store.append(second.clone()).await.expect("append");

    // Within the broker's window, without broker dedup: answered from the stored commit.
    assert_duplicate(&store, first.clone(), &first_outcome).await;
    assert_duplicate(&store, second.clone(), &second_outcome).await;

    let js =
        async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("raw client"));
    let stream = js.get_stream("FUNNEL").await.expect("log stream");
    for (req, outcome) in [(&first, &first_outcome), (&second, &second_outcome)] {
        let got = stream
            .get_raw_message(outcome.first_position.0 / 1024)
            .await
            .expect("message get");
        assert_eq!(
            names(&got.headers),
            ["Funnel-Chain", "Nats-Expected-Last-Subject-Sequence"]
        );
        assert!(got.payload.starts_with(b"FNL3"));
        assert_eq!(body_command_id(&got.payload), Some(req.command_id.0));
    }
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let msg = batch.next().await.expect("one message").expect("delivered");
    assert_eq!(msg_id(msg.headers.as_ref()), None);
    assert_eq!(body_command_id(&msg.payload), Some(first.command_id.0));

    // Beyond the window, and with other expectations, still duplicates.
    tokio::time::sleep(DEDUP_WINDOW * 2).await;
    assert_duplicate(&store, first.clone(), &first_outcome).await;
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exists] {
        let retry = AppendRequest {
            expected,
            ..second.clone()
        };
        assert_duplicate(&store, retry, &second_outcome).await;
    }
}

#[tokio::test]
async fn any_and_exists_commits_also_send_the_command_id_as_nats_msg_id() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    let stream_id = StreamId::parse("lead-dedup").expect("stream name");
    let any = request(&stream_id, ExpectedVersion::Any, numbered_events(1));
    let any_outcome = store.append(any.clone()).await.expect("append");
    let exists = request(&stream_id, ExpectedVersion::Exists, numbered_events(2));
    let exists_outcome = store.append(exists.clone()).await.expect("append");

    let js =
        async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("raw client"));
    let stream = js.get_stream("FUNNEL").await.expect("log stream");
    for (req, outcome) in [(&any, &any_outcome), (&exists, &exists_outcome)] {
        let got = stream
            .get_raw_message(outcome.first_position.0 / 1024)
            .await
            .expect("message get");
        assert_eq!(
            names(&got.headers),
            [
                "Funnel-Chain",
                "Nats-Expected-Last-Subject-Sequence",
                "Nats-Msg-Id"
            ]
        );
        assert_eq!(msg_id(Some(&got.headers)), Some(req.command_id.to_string()));
        assert_eq!(body_command_id(&got.payload), Some(req.command_id.0));
    }
    assert_duplicate(&store, any.clone(), &any_outcome).await;
    tokio::time::sleep(DEDUP_WINDOW * 2).await;
    assert_duplicate(&store, exists, &exists_outcome).await;
    let retry = AppendRequest {
        expected: ExpectedVersion::NoStream,
        ..any
    };
    assert_duplicate(&store, retry, &any_outcome).await;
}

/// An `FNL2` body as Funnel wrote it before `FNL3` (see `src/body.rs`).
fn fnl2(last_version: u64, events: &[ProposedEvent]) -> Vec<u8> {
    let mut out = b"FNL2".to_vec();
    out.extend(last_version.to_be_bytes());
    out.extend((events.len() as u16).to_be_bytes());
    for e in events {
        out.extend(e.event_id.0.as_bytes());
        out.extend(e.correlation_id.0.as_bytes());
        out.extend(e.causation_id.as_bytes());
        out.extend(e.occurred_at.timestamp().to_be_bytes());
        out.extend(e.occurred_at.timestamp_subsec_nanos().to_be_bytes());
        out.extend(e.schema_version.to_be_bytes());
        match e.office {
            Some(office) => {
                out.push(1);
                out.extend(office.0.as_bytes());
            }
            None => out.push(0),
        }
        match &e.actor {
            Actor::Staff { id, role } => {
                out.push(0);
                out.extend(id.0.as_bytes());
                out.push(role.as_str().len() as u8);
                out.extend(role.as_str().as_bytes());
            }
            Actor::System { name } => {
                out.push(1);
                out.extend((name.len() as u16).to_be_bytes());
                out.extend(name.as_bytes());
            }
        }
        out.extend((e.event_type.len() as u16).to_be_bytes());
        out.extend(e.event_type.as_bytes());
        out.extend((e.payload.len() as u32).to_be_bytes());
        out.extend(&e.payload[..]);
    }
    out
}

#[tokio::test]
async fn fnl2_commits_still_read_and_answer_retries() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    let stream_id = StreamId::parse("lead-old").expect("stream name");
    let old = request(&stream_id, ExpectedVersion::NoStream, numbered_events(2));

    // The commit an older Funnel wrote: FNL2 body, command id in `Nats-Msg-Id`.
    let js =
        async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("raw client"));
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", old.command_id.to_string().as_str());
    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
    let ack = js
        .publish_with_headers("funnel.log.lead.old", headers, fnl2(2, &old.events).into())
        .await
        .expect("publish")
        .await
        .expect("ack");

    let events = store
        .read_stream(&stream_id, Version::FIRST, 10)
        .await
        .expect("read stream");
    assert_eq!(events.len(), 2);
    for (i, (got, want)) in events.iter().zip(&old.events).enumerate() {
        assert_eq!(got.meta.command_id, old.command_id);
        assert_eq!(got.meta.event_id, want.event_id);
        assert_eq!(got.meta.version, Version(i as u64 + 1));
        assert_eq!(got.meta.position, Position(ack.sequence * 1024 + i as u64));
        assert_eq!(got.payload, want.payload);
    }
    let all = store
        .read_all(Position::START, &Filter::All, 10)
        .await
        .expect("read all");
    assert_eq!(all, events);
    assert_eq!(
        store.stream_version(&stream_id).await.expect("version"),
        Some(Version(2))
    );

    // New commits follow old ones on the same stream.
    let next = request(
        &stream_id,
        ExpectedVersion::Exact(Version(2)),
        numbered_events(1),
    );
    let next_outcome = store.append(next).await.expect("append after FNL2");
    assert_eq!(next_outcome.last_version, Version(3));

    // A retry of the old command, beyond the window and with any expectation, is its duplicate.
    tokio::time::sleep(DEDUP_WINDOW * 2).await;
    let original = funnel_store::AppendOutcome {
        stream: stream_id.clone(),
        first_version: Version(1),
        last_version: Version(2),
        first_position: Position(ack.sequence * 1024),
        last_position: Position(ack.sequence * 1024 + 1),
        duplicate: false,
    };
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(Version(1)),
    ] {
        let retry = AppendRequest {
            expected,
            ..old.clone()
        };
        assert_duplicate(&store, retry, &original).await;
    }
}
