//! The stored form of a commit, as other JetStream clients see it: the store relies on JetStream
//! keeping `Nats-Msg-Id` with the message (it is the only durable copy of the command id), on the
//! message-get API and on consumer deliveries, full and headers-only, also after the dedup window.

use crate::support::{DEDUP_WINDOW, connect, options};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use funnel_store::EventStore;
use funnel_store::conformance::{numbered_events, request};
use funnel_testkit::NatsServer;
use funnel_types::{ExpectedVersion, StreamId};
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

#[tokio::test]
async fn stored_commits_keep_the_command_id_in_nats_msg_id_everywhere() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    let stream_id = StreamId::parse("lead-format").expect("stream name");
    let req = request(&stream_id, ExpectedVersion::NoStream, numbered_events(2));
    let command = req.command_id.to_string();
    let outcome = store.append(req.clone()).await.expect("append");
    let seq = outcome.first_position.0 / 1024;

    // Past the broker's dedup window, the header must still be stored with the message.
    tokio::time::sleep(DEDUP_WINDOW * 2).await;

    let js =
        async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("raw client"));
    let stream = js.get_stream("FUNNEL").await.expect("log stream");

    let got = stream.get_raw_message(seq).await.expect("message get");
    assert_eq!(
        msg_id(Some(&got.headers)).as_deref(),
        Some(command.as_str())
    );
    assert_eq!(
        names(&got.headers),
        ["Nats-Expected-Last-Subject-Sequence", "Nats-Msg-Id"]
    );
    assert!(got.payload.starts_with(b"FNL2"));
    let last = stream
        .get_last_raw_message_by_subject("funnel.log.lead.format")
        .await
        .expect("last message get");
    assert_eq!(
        msg_id(Some(&last.headers)).as_deref(),
        Some(command.as_str())
    );

    for headers_only in [false, true] {
        let consumer = stream
            .create_consumer(pull::Config {
                ack_policy: AckPolicy::None,
                headers_only,
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
        assert_eq!(
            msg_id(msg.headers.as_ref()).as_deref(),
            Some(command.as_str()),
            "headers_only: {headers_only}"
        );
        assert_eq!(msg.payload.is_empty(), headers_only);
    }

    // A retry beyond the window is answered from the stored header.
    let retried = store.append(req).await.expect("retry");
    assert!(retried.duplicate);
    assert_eq!(retried.last_version, outcome.last_version);
    assert_eq!(retried.last_position, outcome.last_position);
}
