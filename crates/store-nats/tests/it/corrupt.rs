//! Damaged messages on the log are reported as `Corrupt` naming their position, never a panic.

use crate::support::{connect, options};
use funnel_store::conformance::{numbered_events, request};
use funnel_store::{EventStore, Filter, StoreError};
use funnel_testkit::NatsServer;
use funnel_types::{ExpectedVersion, Position, StreamId, Version};

#[tokio::test]
async fn garbage_on_a_log_subject_reads_as_corrupt_at_its_position() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    let good = StreamId::parse("lead-good").expect("stream name");
    let ok = store
        .append(request(
            &good,
            ExpectedVersion::NoStream,
            numbered_events(2),
        ))
        .await
        .expect("append");

    // A foreign writer publishes garbage straight onto a log subject.
    let raw = async_nats::connect(server.url()).await.expect("raw client");
    let js = async_nats::jetstream::new(raw);
    let ack = js
        .publish("funnel.log.lead.bad", "not a commit".into())
        .await
        .expect("publish garbage")
        .await
        .expect("garbage acknowledged");
    let bad_position = Position(ack.sequence * 1024);

    // Reading up to the damage works; reading over it fails naming its position.
    let before = store
        .read_all(Position::START, &Filter::All, 2)
        .await
        .expect("read before the damage");
    assert_eq!(before.len(), 2);
    match store.read_all(ok.last_position, &Filter::All, 10).await {
        Err(StoreError::Corrupt { position, .. }) => assert_eq!(position, bad_position),
        other => panic!("expected Corrupt at {bad_position}, got {other:?}"),
    }
    let bad = StreamId::parse("lead-bad").expect("stream name");
    assert!(matches!(
        store.read_stream(&bad, Version::FIRST, 10).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.stream_version(&bad).await,
        Err(StoreError::Corrupt { .. })
    ));
    // Other streams and other categories are unaffected.
    assert_eq!(
        store
            .read_stream(&good, Version::FIRST, 10)
            .await
            .expect("read good")
            .len(),
        2
    );
    assert!(
        store
            .read_all(Position::START, &Filter::category("order"), 10)
            .await
            .expect("filtered")
            .is_empty()
    );
}
