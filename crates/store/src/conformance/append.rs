//! Conformance cases for single appends: version numbering, the four expectations, limits, and
//! streams that do not exist.

use super::*;
use crate::Limits;
use funnel_types::Version;

/// A new stream appended with `NoStream` gets versions 1..n; positions increase; the outcome and a
/// read of the stream agree.
pub async fn append_to_new_stream_numbers_versions_from_one(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    let first = append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    assert!(!first.duplicate);
    assert_eq!(first.stream, s);
    assert_eq!(
        (first.first_version, first.last_version),
        (Version(1), Version(3))
    );
    assert!(first.first_position > Position::START);
    assert!(
        first.first_position < first.last_position,
        "three events need three increasing positions"
    );

    let second = append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(3)), numbered_events(2)),
    )
    .await;
    assert_eq!(
        (second.first_version, second.last_version),
        (Version(4), Version(5))
    );
    assert!(second.first_position > first.last_position);
    assert!(second.first_position < second.last_position);

    let events = crate::read_whole_stream(&*store, &s)
        .await
        .expect("read_stream");
    let versions: Vec<u64> = events.iter().map(|e| e.meta.version.0).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    assert!(
        events
            .windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
    assert_eq!(events[0].meta.position, first.first_position);
    assert_eq!(events[2].meta.position, first.last_position);
    assert_eq!(events[3].meta.position, second.first_position);
    assert_eq!(events[4].meta.position, second.last_position);
    let is: Vec<serde_json::Value> = events
        .iter()
        .map(|e| payload_json(e)["i"].clone())
        .collect();
    assert_eq!(
        is,
        serde_json::json!([0, 1, 2, 0, 1])
            .as_array()
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        Some(Version(5))
    );
    assert_eq!(store.head().await.expect("head"), second.last_position);
}

/// `Any` appends to a missing stream and to an existing one.
pub async fn expected_version_any(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    let a = append_ok(
        &*store,
        request(&s, ExpectedVersion::Any, numbered_events(1)),
    )
    .await;
    assert_eq!(a.first_version, Version(1));
    let b = append_ok(
        &*store,
        request(&s, ExpectedVersion::Any, numbered_events(2)),
    )
    .await;
    assert_eq!((b.first_version, b.last_version), (Version(2), Version(3)));
}

/// `NoStream` creates a stream once; afterwards it is refused naming the actual version.
pub async fn expected_version_no_stream(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(2)),
    )
    .await;
    assert_conflict(
        store
            .append(request(&s, ExpectedVersion::NoStream, numbered_events(1)))
            .await,
        Some(Version(2)),
    );
    match store
        .append(request(&s, ExpectedVersion::NoStream, numbered_events(1)))
        .await
    {
        Err(StoreError::WrongExpectedVersion {
            stream, expected, ..
        }) => {
            assert_eq!(stream, s);
            assert_eq!(expected, ExpectedVersion::NoStream);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        Some(Version(2))
    );
}

/// `Exists` is refused on a missing stream (actual `None`) and admitted on an existing one.
pub async fn expected_version_exists(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    assert_conflict(
        store
            .append(request(&s, ExpectedVersion::Exists, numbered_events(1)))
            .await,
        None,
    );
    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        None
    );
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(1)),
    )
    .await;
    let o = append_ok(
        &*store,
        request(&s, ExpectedVersion::Exists, numbered_events(1)),
    )
    .await;
    assert_eq!(o.first_version, Version(2));
}

/// `Exact` is admitted only at the stream's current version; stale and future versions are refused
/// naming the actual version.
pub async fn expected_version_exact(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(1)),
                numbered_events(1),
            ))
            .await,
        None,
    );
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(2)),
                numbered_events(1),
            ))
            .await,
        Some(Version(3)),
    );
    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(4)),
                numbered_events(1),
            ))
            .await,
        Some(Version(3)),
    );
    let o = append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(3)), numbered_events(1)),
    )
    .await;
    assert_eq!(o.first_version, Version(4));
    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(3)),
                numbered_events(1),
            ))
            .await,
        Some(Version(4)),
    );
    assert_eq!(
        crate::read_whole_stream(&*store, &s)
            .await
            .expect("read")
            .len(),
        4
    );
}

/// A stream nobody wrote reads as empty with version `None`; `Exists` and `Exact` on it are refused
/// without creating it.
pub async fn unknown_stream_reads_empty_and_refuses_expectations(h: &dyn Harness) {
    let store = h.open().await;
    let known = unique_stream("order");
    append_ok(
        &*store,
        request(&known, ExpectedVersion::NoStream, numbered_events(2)),
    )
    .await;
    let s = unique_stream("order");
    assert!(
        store
            .read_stream(&s, Version::FIRST, 100)
            .await
            .expect("read_stream")
            .is_empty()
    );
    assert!(
        store
            .read_stream(&s, Version(7), 100)
            .await
            .expect("read_stream")
            .is_empty()
    );
    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        None
    );
    assert_conflict(
        store
            .append(request(&s, ExpectedVersion::Exists, numbered_events(1)))
            .await,
        None,
    );
    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(1)),
                numbered_events(1),
            ))
            .await,
        None,
    );
    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(2)),
                numbered_events(1),
            ))
            .await,
        None,
    );
    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        None
    );
    assert!(
        store
            .read_stream(&s, Version::FIRST, 100)
            .await
            .expect("read_stream")
            .is_empty()
    );
    assert_eq!(
        read_everything(&*store).await.len(),
        2,
        "refused appends must write nothing"
    );
}

/// Limits are enforced the same way everywhere: an oversize payload, too many events and too many
/// bytes are `TooLarge`; an empty append is `InvalidRequest`; none writes anything; a payload of
/// exactly the limit is accepted and read back whole.
pub async fn oversize_and_empty_appends_are_refused(h: &dyn Harness) {
    let store = h.open().await;
    let limits = Limits::default();
    let s = unique_stream("order");

    let over = json_string_of_len(limits.max_event_bytes + 1);
    match store
        .append(request(
            &s,
            ExpectedVersion::Any,
            vec![event_bytes("test.big", over)],
        ))
        .await
    {
        Err(StoreError::TooLarge { size, limit, .. }) => {
            assert_eq!(
                (size, limit),
                (limits.max_event_bytes + 1, limits.max_event_bytes)
            )
        }
        other => panic!("expected TooLarge for an oversize payload, got {other:?}"),
    }
    match store
        .append(request(
            &s,
            ExpectedVersion::Any,
            numbered_events(limits.max_events_per_append + 1),
        ))
        .await
    {
        Err(StoreError::TooLarge { .. }) => {}
        other => panic!("expected TooLarge for too many events, got {other:?}"),
    }
    let per_event = limits.max_event_bytes;
    let n = limits.max_append_bytes / per_event + 1;
    let events = (0..n)
        .map(|_| event_bytes("test.big", json_string_of_len(per_event)))
        .collect();
    match store
        .append(request(&s, ExpectedVersion::Any, events))
        .await
    {
        Err(StoreError::TooLarge { .. }) => {}
        other => panic!("expected TooLarge for an append over max_append_bytes, got {other:?}"),
    }
    match store
        .append(request(&s, ExpectedVersion::Any, Vec::new()))
        .await
    {
        Err(StoreError::InvalidRequest(_)) => {}
        other => panic!("expected InvalidRequest for an empty append, got {other:?}"),
    }
    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        None
    );
    assert!(
        read_everything(&*store).await.is_empty(),
        "refused appends must write nothing"
    );

    let exact = json_string_of_len(limits.max_event_bytes);
    append_ok(
        &*store,
        request(
            &s,
            ExpectedVersion::NoStream,
            vec![event_bytes("test.big", exact.clone())],
        ),
    )
    .await;
    let back = store
        .read_stream(&s, Version::FIRST, 10)
        .await
        .expect("read_stream");
    assert_eq!(back.len(), 1);
    assert!(
        back[0].payload == exact.as_bytes(),
        "a payload of exactly the limit must be read back whole"
    );
}

/// A JSON string literal exactly `len` bytes long (`len` ≥ 2).
pub fn json_string_of_len(len: usize) -> String {
    let mut s = String::with_capacity(len);
    s.push('"');
    s.extend(std::iter::repeat_n('x', len.saturating_sub(2)));
    s.push('"');
    s
}

/// A refused multi-event append writes none of its events, whatever the reason for the refusal.
pub async fn refused_multi_event_append_writes_nothing(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(2)),
    )
    .await;
    let head = store.head().await.expect("head");

    assert_conflict(
        store
            .append(request(
                &s,
                ExpectedVersion::Exact(Version(1)),
                numbered_events(5),
            ))
            .await,
        Some(Version(2)),
    );
    let mut too_big = numbered_events(4);
    too_big.push(event_bytes(
        "test.big",
        json_string_of_len(Limits::default().max_event_bytes + 1),
    ));
    assert!(matches!(
        store
            .append(request(&s, ExpectedVersion::Exact(Version(2)), too_big))
            .await,
        Err(StoreError::TooLarge { .. })
    ));

    assert_eq!(
        store.stream_version(&s).await.expect("stream_version"),
        Some(Version(2))
    );
    assert_eq!(
        store
            .read_stream(&s, Version::FIRST, 100)
            .await
            .expect("read")
            .len(),
        2
    );
    assert_eq!(store.head().await.expect("head"), head);
    assert_eq!(read_everything(&*store).await.len(), 2);

    let o = append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(2)), numbered_events(3)),
    )
    .await;
    assert_eq!((o.first_version, o.last_version), (Version(3), Version(5)));
}
