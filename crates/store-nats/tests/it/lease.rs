//! Leases in the JetStream key-value bucket: one holder at a time, renewals only at the revision
//! last written, an entry the holder stops renewing ages out on the broker, and terms grow.

use funnel_store::lease::{LeaseRecord, LeaseStore};
use funnel_store_nats::NatsLeases;
use funnel_testkit::NatsServer;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(2);

async fn leases(server: &NatsServer) -> NatsLeases {
    NatsLeases::connect(&server.url(), "FUNNEL", 1, TTL, Duration::from_secs(3))
        .await
        .expect("lease bucket")
}

#[tokio::test]
async fn create_renew_expire_and_take_over_on_the_broker() {
    let server = NatsServer::start();
    let a = leases(&server).await;
    // A second process has its own connection to the same bucket.
    let b = leases(&server).await;

    let term = a
        .acquire("sagas", "a")
        .await
        .unwrap()
        .expect("free at first");
    assert_eq!(b.acquire("sagas", "b").await.unwrap(), None, "held by a");
    let seen = b.current("sagas").await.unwrap().expect("a record");
    assert_eq!(
        seen.record,
        LeaseRecord {
            holder: "a".into(),
            term
        }
    );

    // Renewing keeps the term and moves the revision; renewing from an old revision is refused.
    let record = LeaseRecord {
        holder: "a".into(),
        term,
    };
    let r2 = a
        .renew("sagas", &record, term)
        .await
        .unwrap()
        .expect("renewed");
    assert!(r2 > term);
    assert_eq!(a.renew("sagas", &record, term).await.unwrap(), None);
    let seen = b.current("sagas").await.unwrap().expect("a record");
    assert_eq!((seen.record.term, seen.revision), (term, r2));

    // Another lease name is independent.
    assert!(b.acquire("webhooks", "b").await.unwrap().is_some());

    // a stops renewing: the broker drops the entry after the time to live, and b takes over
    // under a greater term; a's renewal from its last revision is refused.
    let mut taken = None;
    for _ in 0..100 {
        if let Some(t) = b.acquire("sagas", "b").await.unwrap() {
            taken = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let b_term = taken.expect("the lease expired on the broker and b took it");
    assert!(b_term > r2);
    assert_eq!(a.renew("sagas", &record, r2).await.unwrap(), None);
    assert_eq!(
        a.current("sagas").await.unwrap().unwrap().record.holder,
        "b"
    );

    // Releasing at the current revision frees it at once; at an old one it does not.
    let _ = b.release("sagas", r2).await;
    assert!(a.current("sagas").await.unwrap().is_some());
    b.release("sagas", b_term).await.unwrap();
    assert!(a.current("sagas").await.unwrap().is_none());
    assert!(a.acquire("sagas", "a").await.unwrap().unwrap() > b_term);
}
