//! Tests of the testkit itself: a server starts, serves JetStream, dies on `kill`, and keeps its
//! JetStream data across `restart`; a 3-node cluster serves a replicated stream.

use async_nats::jetstream::{self, stream};
use funnel_testkit::{NatsCluster, NatsServer};
use std::time::Duration;

async fn connect(urls: &str) -> async_nats::Client {
    let addrs: Vec<async_nats::ServerAddr> = urls
        .split(',')
        .map(|u| u.parse().expect("a valid server URL"))
        .collect();
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(addrs)
        .await
        .expect("connect to the test server")
}

#[tokio::test]
async fn restart_keeps_jetstream_data() {
    let mut server = NatsServer::start();
    assert!(server.store_dir().starts_with(server.dir()));
    let client = connect(&server.url()).await;
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create stream");
    let ack = js
        .publish("t.a", "hello".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(ack.sequence, 1);

    server.kill();
    assert!(!server.is_running());
    let refused = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_millis(500))
        .connect(server.url())
        .await;
    assert!(
        refused.is_err(),
        "a killed server must not accept connections"
    );

    server.restart();
    assert!(server.is_running());
    let js = jetstream::new(connect(&server.url()).await);
    let stream = js
        .get_stream("T")
        .await
        .expect("stream survives the restart");
    let msg = stream
        .get_raw_message(1)
        .await
        .expect("message survives the restart");
    assert_eq!(&msg.payload[..], b"hello");
}

#[tokio::test]
async fn a_cluster_serves_a_replicated_stream() {
    let cluster = NatsCluster::start(3);
    assert_eq!(cluster.urls().len(), 3);
    let client = connect(&cluster.url_list()).await;
    let js = jetstream::new(client);
    let mut info = None;
    // Stream placement may need a moment after the meta leader is elected.
    for _ in 0..50 {
        match js
            .create_stream(stream::Config {
                name: "R".into(),
                subjects: vec!["r.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
        {
            Ok(mut s) => {
                info = Some(s.info().await.expect("stream info").clone());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let info = info.expect("an R3 stream can be created");
    assert_eq!(info.config.num_replicas, 3);
    let cluster_info = info
        .cluster
        .expect("a clustered stream reports its cluster");
    assert_eq!(cluster_info.replicas.len(), 2);
}
