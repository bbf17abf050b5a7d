//! A 3-node JetStream cluster with three replicas accepts appends and keeps serving them after one
//! node is killed.

use crate::support::{connect, options, retry_unavailable};
use funnel_store::conformance::{numbered_events, request};
use funnel_store::{EventStore, Filter, read_whole_stream};
use funnel_testkit::NatsCluster;
use funnel_types::{ExpectedVersion, Position, StreamId, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_losing_one_node() {
    let mut cluster = NatsCluster::start(3);
    let mut opts = options(cluster.url_list());
    opts.replicas = 3;
    let store = connect(opts).await;
    let stream = StreamId::parse("lead-cluster").expect("stream name");
    let mut version = None;
    for _ in 0..5 {
        let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let o = store
            .append(request(&stream, expected, numbered_events(2)))
            .await
            .expect("append to R3");
        version = Some(o.last_version);
    }

    tokio::task::block_in_place(|| cluster.kill(0));
    // Leader elections may make a few calls unavailable; the cluster keeps a quorum of two.
    for _ in 0..5 {
        let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let req = request(&stream, expected, numbered_events(2));
        let o = retry_unavailable(100, || store.append(req.clone()))
            .await
            .expect("append with one node down");
        version = Some(o.last_version);
    }
    let events = retry_unavailable(100, || read_whole_stream(&store, &stream))
        .await
        .expect("read with one node down");
    assert_eq!(events.len(), 20);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.meta.version == Version(i as u64 + 1))
    );

    tokio::task::block_in_place(|| cluster.restart(0));
    let all = retry_unavailable(100, || store.read_all(Position::START, &Filter::All, 100))
        .await
        .expect("read_all");
    assert_eq!(all.len(), 20);
}

/// Without a setting, a URL naming several members asks for three replicas; an existing stream
/// with other replicas is reported and kept until `set_replicas` changes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_default_to_three_and_change_only_when_asked() {
    let cluster = NatsCluster::start(3);
    let url = cluster.url_list();
    assert_eq!(funnel_store_nats::default_replicas(&url), 3);

    let mut one = options(url.clone());
    one.replicas = 1;
    let store = connect(one).await;
    assert_eq!(store.replica_mismatch(), None);
    drop(store);

    let mut three = options(url.clone());
    three.replicas = funnel_store_nats::default_replicas(&url);
    let store = connect(three.clone()).await;
    let mismatch = store
        .replica_mismatch()
        .expect("the difference is reported");
    assert_eq!((mismatch.actual, mismatch.wanted), (1, 3));
    assert!(
        mismatch.to_string().contains("set-replicas 3"),
        "{mismatch}"
    );
    let now = funnel_store_nats::stream_replicas(&url, "FUNNEL")
        .await
        .expect("status");
    assert_eq!(now.wanted, 1, "connecting changed the replicas: {now}");

    let mut seen = Vec::new();
    let done = funnel_store_nats::set_replicas(
        &url,
        "FUNNEL",
        3,
        std::time::Duration::from_secs(30),
        &mut |p| seen.push(p.to_string()),
    )
    .await
    .expect("set replicas");
    assert!(done.done(), "{done}");
    assert!(!seen.is_empty());
    assert_eq!(done.peers.len(), 2);
    // The store keeps working on the moved stream.
    let stream = StreamId::parse("lead-moved").expect("stream name");
    retry_unavailable(100, || {
        store.append(request(&stream, ExpectedVersion::Any, numbered_events(1)))
    })
    .await
    .expect("append after the move");
    drop(store);
    assert_eq!(connect(three).await.replica_mismatch(), None);
}

/// Asking for more replicas than the cluster has servers is refused at once, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_servers_for_the_replicas_is_said_clearly() {
    let server = funnel_testkit::NatsServer::start();
    let mut opts = options(server.url());
    opts.replicas = 3;
    let err = funnel_store_nats::NatsStore::connect(opts)
        .await
        .expect_err("three replicas on one server");
    let text = err.to_string();
    assert!(
        text.contains("fewer than 3 JetStream servers") && text.contains("replicas"),
        "{text}"
    );
}

/// A cluster member that is down when `funnel serve` starts and comes back a moment later: the
/// lease bucket (three replicas) waits for it instead of failing the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_bucket_waits_for_a_member_that_comes_back() {
    let mut cluster = NatsCluster::start(3);
    tokio::task::block_in_place(|| cluster.kill(2));
    let url = cluster.urls()[..2].join(",");
    let connecting = tokio::spawn(async move {
        funnel_store_nats::NatsLeases::connect(
            &url,
            "FUNNEL",
            3,
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(2),
        )
        .await
    });
    // The bucket cannot have three replicas until the third member is back.
    tokio::task::block_in_place(|| cluster.restart(2));
    connecting
        .await
        .expect("joined")
        .expect("the lease bucket, once the member is back");
}
