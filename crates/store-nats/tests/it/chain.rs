//! The hash chain on JetStream: an untouched log verifies clean, whoever wrote it; a forged
//! message, a deleted one and a deleted tail are each named at their position; signed checkpoints
//! of the digest show a cut-off tail.

use crate::support::{connect, options};
use chrono::Utc;
use funnel_store::EventStore;
use funnel_store::chain::{Tamper, Verification};
use funnel_store::checkpoint::{CheckpointSigner, Witness};
use funnel_store::conformance::{numbered_events, request};
use funnel_store_nats::NatsStore;
use funnel_testkit::NatsServer;
use funnel_types::{ExpectedVersion, Position, StreamId};

async fn walk(store: &NatsStore, witness: Option<Witness>) -> Verification {
    store
        .verify_chain(Position(1), witness, Box::new(|_| {}))
        .await
        .expect("walk the log")
        .expect("the JetStream log keeps a chain")
}

/// Three commits on two streams; returns their stream sequences.
async fn three_commits(store: &NatsStore) -> Vec<u64> {
    let (a, b) = (
        StreamId::parse("lead-a").expect("name"),
        StreamId::parse("lead-b").expect("name"),
    );
    let mut seqs = Vec::new();
    for (stream, expected) in [
        (&a, ExpectedVersion::NoStream),
        (&b, ExpectedVersion::Any),
        (&a, ExpectedVersion::Exists),
    ] {
        let out = store
            .append(request(stream, expected, numbered_events(2)))
            .await
            .expect("append");
        seqs.push(out.first_position.0 / 1024);
    }
    seqs
}

fn first_bad(v: &Verification) -> (Position, Tamper) {
    let f = v.first_bad.expect("a finding");
    (f.position, f.tamper)
}

#[tokio::test]
async fn a_log_written_by_two_processes_verifies_clean_and_its_digest_is_stable() {
    let server = NatsServer::start();
    let one = connect(options(server.url())).await;
    let two = connect(options(server.url())).await;
    let s = StreamId::parse("lead-shared").expect("name");
    // The two alternate on one stream, so each one's cache of its last commit is stale in turn.
    for i in 0..6 {
        let store = if i % 2 == 0 { &one } else { &two };
        store
            .append(request(&s, ExpectedVersion::Any, numbered_events(1)))
            .await
            .expect("append");
    }
    three_commits(&one).await;
    let v = walk(&two, None).await;
    assert!(v.is_clean(), "{v:?}");
    assert_eq!((v.commits, v.events), (9, 12));
    assert_eq!(v.chain_starts_at, Some(Position(1024)));
    // Both processes compute the same digest, and it covers the last event.
    let (p1, d1) = one.chain_head().await.expect("head").expect("a digest");
    let (p2, d2) = two.chain_head().await.expect("head").expect("a digest");
    assert_eq!((p1, d1), (p2, d2));
    assert_eq!(p1, one.head().await.expect("head"));
    assert_eq!(v.head_hash, Some(d1.to_hex()));
    // It moves with the log, and only with it.
    one.append(request(&s, ExpectedVersion::Any, numbered_events(1)))
        .await
        .expect("append");
    let (p3, d3) = one.chain_head().await.expect("head").expect("a digest");
    assert!(p3 > p1 && d3 != d1);
    let fresh = connect(options(server.url())).await;
    assert_eq!(fresh.chain_head().await.expect("head"), Some((p3, d3)));
}

#[tokio::test]
async fn a_forged_message_on_a_log_subject_is_named_at_its_position() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    three_commits(&store).await;
    let raw = async_nats::connect(server.url()).await.expect("raw client");
    let js = async_nats::jetstream::new(raw);
    // A copy of a real commit, with its link, onto another stream's subject.
    let stream = js.get_stream("FUNNEL").await.expect("stream");
    let original = stream.get_raw_message(1).await.expect("message 1");
    let ack = js
        .publish_with_headers(
            "funnel.log.lead.forged",
            original.headers.clone(),
            original.payload.clone(),
        )
        .await
        .expect("publish")
        .await
        .expect("acknowledged");
    let v = walk(&store, None).await;
    assert_eq!(
        first_bad(&v),
        (Position(ack.sequence * 1024), Tamper::Changed)
    );
    assert!(!v.is_clean());
}

#[tokio::test]
async fn a_message_published_without_a_link_after_the_chain_began_is_named() {
    let server = NatsServer::start();
    let store = connect(options(server.url())).await;
    three_commits(&store).await;
    let raw = async_nats::connect(server.url()).await.expect("raw client");
    let js = async_nats::jetstream::new(raw);
    let original = js
        .get_stream("FUNNEL")
        .await
        .expect("stream")
        .get_raw_message(2)
        .await
        .expect("message 2");
    let ack = js
        .publish("funnel.log.lead.b", original.payload.clone())
        .await
        .expect("publish")
        .await
        .expect("acknowledged");
    let v = walk(&store, None).await;
    assert_eq!(
        first_bad(&v),
        (Position(ack.sequence * 1024), Tamper::Unchained)
    );
}

#[tokio::test]
async fn a_deleted_message_and_a_deleted_tail_are_named_and_the_checkpoint_shows_the_cut() {
    let server = NatsServer::start();
    let store = connect(funnel_store_nats::NatsOptions {
        allow_message_deletes: true,
        ..options(server.url())
    })
    .await;
    let seqs = three_commits(&store).await;
    let signer = CheckpointSigner::generate();
    let (at, digest) = store.chain_head().await.expect("head").expect("a digest");
    let checkpoint = signer.sign(at, &digest, Utc::now());
    let witness = || Witness {
        key: signer.public(),
        lines: vec![Ok(checkpoint.clone())],
    };
    let clean = walk(&store, Some(witness())).await;
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.witness.as_ref().map(|w| w.matched), Some(1));

    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("raw"));
    let stream = js.get_stream("FUNNEL").await.expect("stream");
    // The last message: JetStream still reports its sequence, and the checkpoint its position.
    assert!(
        stream
            .delete_message(seqs[2])
            .await
            .expect("delete the tail")
    );
    let v = walk(&store, Some(witness())).await;
    assert_eq!(first_bad(&v), (Position(seqs[2] * 1024), Tamper::Missing));
    let w = v.witness.expect("checkpoints checked");
    let cut = w.finding.expect("the checkpoint's finding");
    assert_eq!(cut.tamper, Tamper::Truncated);
    assert_eq!(cut.until, Some(at));
    // A message in the middle.
    assert!(stream.delete_message(seqs[0]).await.expect("delete one"));
    let v = walk(&store, None).await;
    assert_eq!(first_bad(&v), (Position(seqs[0] * 1024), Tamper::Missing));
}
