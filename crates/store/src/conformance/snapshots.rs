//! Conformance cases for snapshots kept beside the log: the latest per stream, never replaced by an
//! older one, kept across a restart, refused when too large.

use super::*;
use crate::{MAX_SNAPSHOT_BYTES, Snapshot};
use funnel_types::Version;

fn snapshot(stream: &StreamId, version: u64, data: &str) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version: Version(version),
        data: Bytes::from(data.to_string()),
    }
}

async fn load(store: &dyn EventStore, stream: &StreamId) -> Option<(u64, String)> {
    store
        .load_snapshot(stream)
        .await
        .unwrap_or_else(|e| panic!("load_snapshot of {stream} failed: {e}"))
        .map(|s| {
            assert_eq!(&s.stream, stream, "a snapshot names its stream");
            (s.version.0, String::from_utf8_lossy(&s.data).into_owned())
        })
}

async fn save(store: &dyn EventStore, snap: Snapshot) {
    let stream = snap.stream.clone();
    if let Err(e) = store.save_snapshot(snap).await {
        panic!("save_snapshot of {stream} failed: {e}");
    }
}

/// The store keeps the newest snapshot of each stream: an older one does not replace it, one of the
/// same or a higher version does, streams do not share snapshots, and they survive a restart.
pub async fn snapshots_keep_the_newest_per_stream(h: &dyn Harness) {
    let store = h.open().await;
    let a = unique_stream("lead");
    let b = unique_stream("lead");
    assert_eq!(load(&*store, &a).await, None, "no snapshot yet");
    save(&*store, snapshot(&a, 20, "a at 20")).await;
    assert_eq!(load(&*store, &a).await, Some((20, "a at 20".into())));
    save(&*store, snapshot(&a, 10, "a at 10")).await;
    assert_eq!(
        load(&*store, &a).await,
        Some((20, "a at 20".into())),
        "an older snapshot must not replace a newer one"
    );
    save(&*store, snapshot(&a, 30, "a at 30")).await;
    save(&*store, snapshot(&b, 5, "b at 5")).await;
    assert_eq!(load(&*store, &a).await, Some((30, "a at 30".into())));
    assert_eq!(load(&*store, &b).await, Some((5, "b at 5".into())));
    drop(store);
    let store = h.restart().await;
    assert_eq!(load(&*store, &a).await, Some((30, "a at 30".into())));
    assert_eq!(load(&*store, &b).await, Some((5, "b at 5".into())));
}

/// Snapshots too large to keep, or of no event, are refused before any I/O; binary data round trips.
pub async fn snapshot_limits_and_bytes(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("staff");
    let big = Snapshot {
        stream: s.clone(),
        version: Version(1),
        data: Bytes::from(vec![7u8; MAX_SNAPSHOT_BYTES + 1]),
    };
    assert!(
        matches!(
            store.save_snapshot(big).await,
            Err(StoreError::TooLarge { .. })
        ),
        "an oversize snapshot must be refused"
    );
    assert!(
        matches!(
            store.save_snapshot(snapshot(&s, 0, "none")).await,
            Err(StoreError::InvalidRequest(_))
        ),
        "a snapshot of version 0 must be refused"
    );
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    save(
        &*store,
        Snapshot {
            stream: s.clone(),
            version: Version(3),
            data: Bytes::from(bytes.clone()),
        },
    )
    .await;
    let got = store
        .load_snapshot(&s)
        .await
        .expect("load_snapshot")
        .expect("a snapshot");
    assert_eq!(got.version, Version(3));
    assert_eq!(
        &got.data[..],
        &bytes[..],
        "snapshot bytes must round trip exactly"
    );
}
