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
