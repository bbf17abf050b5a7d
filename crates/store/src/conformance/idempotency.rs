//! Conformance cases for idempotent retries by command id: within the dedup window, beyond it, and
//! across a restart.

use super::*;
use funnel_types::Version;

/// Retries `original` in several shapes (same request, other expectations, other event ids) and
/// checks each is a duplicate with the original outcome and writes nothing.
async fn check_retries(store: &dyn EventStore, original: &AppendRequest, first: &AppendOutcome) {
    let before = read_everything(store).await;
    let version = store
        .stream_version(&original.stream)
        .await
        .expect("stream_version");
    let mut retries = vec![original.clone()];
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exists,
        ExpectedVersion::Exact(Version(1)),
        ExpectedVersion::Exact(Version(99)),
    ] {
        retries.push(AppendRequest {
            expected,
            ..original.clone()
        });
    }
    let mut fresh_ids = original.clone();
    for e in &mut fresh_ids.events {
        e.event_id = EventId::new();
    }
    retries.push(fresh_ids);
    for retry in retries {
        let expected = retry.expected;
        match store.append(retry).await {
            Ok(o) => {
                assert!(
                    o.duplicate,
                    "a retry with expectation {expected} must be answered as a duplicate"
                );
                assert_eq!(
                    AppendOutcome {
                        duplicate: false,
                        ..o
                    },
                    *first,
                    "a duplicate carries the original outcome"
                );
            }
            Err(e) => panic!("a retry with expectation {expected} must be a duplicate, got {e}"),
        }
    }
    assert_eq!(
        read_everything(store).await,
        before,
        "retries wrote something"
    );
    assert_eq!(
        store
            .stream_version(&original.stream)
            .await
            .expect("stream_version"),
        version
    );
}

/// Appends a first command and a second one after it, returning the first request and outcome.
async fn setup(store: &dyn EventStore) -> (AppendRequest, AppendOutcome) {
    let s = unique_stream("order");
    let first = request(&s, ExpectedVersion::NoStream, numbered_events(2));
    let o = append_ok(store, first.clone()).await;
    assert!(!o.duplicate);
    append_ok(
        store,
        request(&s, ExpectedVersion::Exact(Version(2)), numbered_events(1)),
    )
    .await;
    append_ok(
        store,
        request(
            &unique_stream("lead"),
            ExpectedVersion::NoStream,
            numbered_events(1),
        ),
    )
    .await;
    (first, o)
}

/// An immediate retry with the same command id is a duplicate whatever its expectation.
pub async fn retry_with_same_command_id_is_duplicate(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    let req = request(&s, ExpectedVersion::NoStream, numbered_events(3));
    let first = append_ok(&*store, req.clone()).await;
    let again = append_ok(&*store, req.clone()).await;
    assert!(again.duplicate);
    assert_eq!(
        AppendOutcome {
            duplicate: false,
            ..again
        },
        first
    );
    check_retries(&*store, &req, &first).await;
    let (other, other_first) = setup(&*store).await;
    check_retries(&*store, &other, &other_first).await;
    assert_eq!(
        store
            .read_stream(&s, Version::FIRST, 100)
            .await
            .expect("read")
            .len(),
        3
    );
}

/// Retries are duplicates also after any broker dedup window has passed.
pub async fn retry_is_duplicate_after_dedup_window_expires(h: &dyn Harness) {
    let store = h.open().await;
    let (req, first) = setup(&*store).await;
    h.expire_dedup_window().await;
    check_retries(&*store, &req, &first).await;
}

/// Retries are duplicates also after a restart (and after the dedup window, too).
pub async fn retry_is_duplicate_after_restart(h: &dyn Harness) {
    let store = h.open().await;
    let (req, first) = setup(&*store).await;
    let (req2, first2) = setup(&*store).await;
    drop(store);
    let store = h.restart().await;
    check_retries(&*store, &req, &first).await;
    h.expire_dedup_window().await;
    check_retries(&*store, &req2, &first2).await;
}
