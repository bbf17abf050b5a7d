//! Credentials in the JetStream bucket: a password set through one process is read by another, and
//! failed sign-ins counted by several processes at once all count.

use funnel_store_nats::NatsCredentials;
use funnel_testkit::NatsServer;
use std::time::Duration;

async fn bucket(server: &NatsServer) -> NatsCredentials {
    NatsCredentials::connect(&server.url(), "FUNNEL", 1, Duration::from_secs(3))
        .await
        .expect("credential bucket")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_passwords_and_count_failures_together() {
    let server = NatsServer::start();
    let a = bucket(&server).await;
    let b = bucket(&server).await;
    assert_eq!(b.password("staff-1").await.unwrap(), None);
    a.set_password("staff-1", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        .await
        .unwrap();
    assert_eq!(
        b.password("staff-1").await.unwrap().as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
    );
    b.set_password("staff-1", "replaced").await.unwrap();
    assert_eq!(
        a.password("staff-1").await.unwrap().as_deref(),
        Some("replaced")
    );

    // Twenty failures from each process at once, within the window: forty, each counted once
    // (a writer that keeps losing the compare-and-set backs off and tries again).
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let who = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            who.record_failure("staff-1", 1_000_000 + i, 60_000).await
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=40).collect::<Vec<u32>>(),
        "each failure counted once"
    );
    // Past the window the old ones are forgotten; clearing forgets all.
    assert_eq!(
        a.record_failure("staff-1", 2_000_000, 60_000)
            .await
            .unwrap(),
        1
    );
    b.clear_failures("staff-1").await.unwrap();
    assert_eq!(
        a.record_failure("staff-1", 2_000_001, 60_000)
            .await
            .unwrap(),
        1
    );
    // Another person's count is their own.
    assert_eq!(
        b.record_failure("staff-2", 2_000_001, 60_000)
            .await
            .unwrap(),
        1
    );
}
