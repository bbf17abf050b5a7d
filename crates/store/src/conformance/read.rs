//! Conformance cases for reading: paging through `$all` and a stream, category filters, exact round
//! trips of metadata and payload bytes, durability across a restart, and `wait_for_append`.

use super::*;
use funnel_types::{OfficeId, Version};

/// `read_all` honours `after` and `max`, and reading beyond the head gives nothing.
pub async fn read_all_pages_with_after_and_max(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("page");
    let t = unique_stream("page");
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(4)),
    )
    .await;
    append_ok(
        &*store,
        request(&t, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(4)), numbered_events(3)),
    )
    .await;
    let all = read_everything(&*store).await;
    assert_eq!(all.len(), 10);
    assert!(
        all.windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
    assert_eq!(store.head().await.expect("head"), all[9].meta.position);

    let first = store
        .read_all(Position::START, &Filter::All, 3)
        .await
        .expect("read_all");
    assert_eq!(ids_of(&first), ids_of(&all[..3]));
    let middle = store
        .read_all(all[4].meta.position, &Filter::All, 4)
        .await
        .expect("read_all");
    assert_eq!(ids_of(&middle), ids_of(&all[5..9]));
    let rest = store
        .read_all(all[4].meta.position, &Filter::All, 100)
        .await
        .expect("read_all");
    assert_eq!(ids_of(&rest), ids_of(&all[5..]));
    assert!(
        store
            .read_all(all[9].meta.position, &Filter::All, 100)
            .await
            .expect("read_all")
            .is_empty()
    );
    assert!(
        store
            .read_all(Position(all[9].meta.position.0 + 1000), &Filter::All, 100)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .read_all(Position::START, &Filter::All, 0)
            .await
            .expect("read_all")
            .is_empty()
    );
    for paged in [1usize, 2, 3, 7] {
        let got = read_all_from(&*store, Position::START, &Filter::All, paged)
            .await
            .expect("read_all");
        assert_eq!(
            ids_of(&got),
            ids_of(&all),
            "paging by {paged} gives the same sequence"
        );
    }
}

/// `read_stream` starts at the given version and returns at most `max` events.
pub async fn read_stream_from_middle_version_with_max(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    let other = unique_stream("order");
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    append_ok(
        &*store,
        request(&other, ExpectedVersion::NoStream, numbered_events(2)),
    )
    .await;
    append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(3)), numbered_events(4)),
    )
    .await;
    append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(7)), numbered_events(3)),
    )
    .await;

    let versions = |evs: &[RecordedEvent]| evs.iter().map(|e| e.meta.version.0).collect::<Vec<_>>();
    let got = store
        .read_stream(&s, Version(4), 3)
        .await
        .expect("read_stream");
    assert_eq!(versions(&got), vec![4, 5, 6]);
    assert!(got.iter().all(|e| e.meta.stream == s));
    assert_eq!(
        versions(&store.read_stream(&s, Version(6), 100).await.expect("read")),
        vec![6, 7, 8, 9, 10]
    );
    assert_eq!(
        versions(&store.read_stream(&s, Version(10), 100).await.expect("read")),
        vec![10]
    );
    assert!(
        store
            .read_stream(&s, Version(11), 100)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .read_stream(&s, Version(2), 0)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        versions(
            &store
                .read_stream(&s, Version::FIRST, 1)
                .await
                .expect("read")
        ),
        vec![1]
    );
    assert_eq!(
        versions(
            &store
                .read_stream(&other, Version::FIRST, 100)
                .await
                .expect("read")
        ),
        vec![1, 2]
    );
    let whole = crate::read_whole_stream(&*store, &s).await.expect("read");
    assert!(
        whole
            .windows(2)
            .all(|w| w[0].meta.position < w[1].meta.position)
    );
}

/// Every metadata field given on append comes back exactly, store-assigned fields agree with the
/// outcome, and `recorded_at` is set.
pub async fn metadata_round_trips_exactly(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("lead");
    let office = OfficeId::derived("conformance-office");
    let mut a = event("lead.registered", serde_json::json!({ "n": 1 }));
    a.schema_version = 3;
    a.actor = staff_actor();
    a.office = Some(office);
    a.occurred_at = fixed_time();
    let mut b = event("lead.note_added", serde_json::json!({ "n": 2 }));
    b.schema_version = u16::MAX;
    b.actor = Actor::system("saga·归属");
    b.office = None;
    b.occurred_at = DateTime::from_timestamp(-1, 1).unwrap_or_default();
    b.causation_id = a.event_id.0;
    b.correlation_id = a.correlation_id;
    let mut c = event("lead.assigned", serde_json::json!({ "n": 3 }));
    c.occurred_at = DateTime::from_timestamp(4_102_444_799, 999_999_999).unwrap_or_default();
    let proposed = vec![a, b, c];
    let req = request(&s, ExpectedVersion::NoStream, proposed.clone());
    let command_id = req.command_id;
    let o = append_ok(&*store, req).await;

    let by_stream = store
        .read_stream(&s, Version::FIRST, 10)
        .await
        .expect("read_stream");
    let by_all = read_everything(&*store).await;
    assert_eq!(
        by_stream, by_all,
        "read_stream and read_all return the same records"
    );
    assert_eq!(by_stream.len(), 3);
    for (i, (got, want)) in by_stream.iter().zip(&proposed).enumerate() {
        let m = &got.meta;
        assert_eq!(m.event_id, want.event_id);
        assert_eq!(m.event_type, want.event_type);
        assert_eq!(m.schema_version, want.schema_version);
        assert_eq!(
            m.occurred_at, want.occurred_at,
            "occurred_at must round-trip to the nanosecond"
        );
        assert_eq!(m.actor, want.actor);
        assert_eq!(m.office, want.office);
        assert_eq!(m.correlation_id, want.correlation_id);
        assert_eq!(m.causation_id, want.causation_id);
        assert_eq!(m.command_id, command_id);
        assert_eq!(m.stream, s);
        assert_eq!(m.version, Version(i as u64 + 1));
        assert!(
            m.recorded_at > DateTime::from_timestamp(1_577_836_800, 0).unwrap_or_default(),
            "recorded_at is set"
        );
        assert!(got.payload == want.payload);
    }
    assert_eq!(by_stream[0].meta.position, o.first_position);
    assert_eq!(by_stream[2].meta.position, o.last_position);
    assert_eq!(
        store
            .read_stream(&s, Version::FIRST, 10)
            .await
            .expect("re-read"),
        by_stream,
        "re-reads are identical"
    );
}

/// Payload bytes come back exactly: non-ASCII text, odd whitespace, key order and number spelling are
/// the writer's, never re-serialized.
pub async fn payload_bytes_round_trip_exactly(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("lead");
    let payloads: Vec<&'static str> = vec![
        r#"{"customer":"万科·城市花园（二期）","contact":"张三","note":"电话：138-0000-0000；邮箱 a@b.cn"}"#,
        "{ \"z\": 1.50,\n\t\"a\" : [ 1e3, -0.0, 12345678901234567890 ], \"emoji\": \"🏗️\" }  ",
        r#"{"escaped":"\u4e07\u79d1 \" \\ \/ \n","nested":{"b":2,"a":1}}"#,
        "{}",
        "[]",
        "\"只是一个字符串\"",
    ];
    let events = payloads
        .iter()
        .map(|p| event_bytes("lead.payload", *p))
        .collect();
    append_ok(&*store, request(&s, ExpectedVersion::NoStream, events)).await;
    let got = store
        .read_stream(&s, Version::FIRST, 100)
        .await
        .expect("read_stream");
    assert_eq!(got.len(), payloads.len());
    for (e, p) in got.iter().zip(&payloads) {
        assert_eq!(
            std::str::from_utf8(&e.payload).expect("payload is UTF-8"),
            *p,
            "payload bytes changed on the way through the store"
        );
    }
    let all = read_everything(&*store).await;
    assert!(
        all.iter()
            .zip(&payloads)
            .all(|(e, p)| e.payload == p.as_bytes())
    );
    assert_eq!(payload_json(&got[0])["customer"], "万科·城市花园（二期）");
}

/// A category filter returns only that category's events (and several categories their union), in
/// position order, honouring `after` and `max`.
pub async fn category_filter_in_read_all(h: &dyn Harness) {
    let store = h.open().await;
    let lead = unique_stream("lead");
    let lead2 = unique_stream("lead");
    let visit = unique_stream("visit");
    let leader = unique_stream("leader");
    let lead_x = unique_stream("lead_x");
    for (i, s) in [&lead, &visit, &leader, &lead2, &lead_x, &lead, &visit]
        .iter()
        .enumerate()
    {
        append_ok(
            &*store,
            request(s, ExpectedVersion::Any, numbered_events(1 + i % 2)),
        )
        .await;
    }
    let all = read_everything(&*store).await;
    for filter in [
        Filter::category("lead"),
        Filter::category("visit"),
        Filter::category("leader"),
        Filter::category("lead_x"),
        Filter::Categories(vec!["lead".into(), "visit".into()]),
        Filter::category("nothing_here"),
    ] {
        let want: Vec<EventId> = all
            .iter()
            .filter(|e| filter.matches(&e.meta.stream))
            .map(|e| e.meta.event_id)
            .collect();
        let got = read_all_from(&*store, Position::START, &filter, 100)
            .await
            .expect("filtered read_all");
        assert_eq!(ids_of(&got), want, "filter {filter:?}");
        let paged = read_all_from(&*store, Position::START, &filter, 1)
            .await
            .expect("filtered read_all");
        assert_eq!(ids_of(&paged), want, "filter {filter:?} paged by one");
    }
    let leads: Vec<&RecordedEvent> = all
        .iter()
        .filter(|e| e.meta.stream.category() == "lead")
        .collect();
    assert_eq!(leads.len(), 5);
    let after_first = store
        .read_all(leads[0].meta.position, &Filter::category("lead"), 2)
        .await
        .expect("read_all");
    assert_eq!(
        ids_of(&after_first),
        vec![leads[1].meta.event_id, leads[2].meta.event_id]
    );
}

/// Invalid category names and empty category lists are refused with `InvalidRequest`, by `read_all`
/// and by `subscribe`.
pub async fn invalid_category_filter_is_refused(h: &dyn Harness) {
    let store = h.open().await;
    append_ok(
        &*store,
        request(
            &unique_stream("lead"),
            ExpectedVersion::NoStream,
            numbered_events(1),
        ),
    )
    .await;
    for filter in [
        Filter::category("Lead"),
        Filter::category("lead-x"),
        Filter::category("lead.*"),
        Filter::category(""),
        Filter::category("lead>"),
        Filter::Categories(vec![]),
        Filter::Categories(vec!["lead".into(), "bad cat".into()]),
    ] {
        match store.read_all(Position::START, &filter, 10).await {
            Err(StoreError::InvalidRequest(_)) => {}
            other => panic!("read_all with {filter:?}: expected InvalidRequest, got {other:?}"),
        }
        let mut sub: Subscription = store.clone().subscribe(Position::START, filter.clone());
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(Err(StoreError::InvalidRequest(_)))) => {}
            other => {
                panic!("subscribe with {filter:?}: expected InvalidRequest first, got {other:?}")
            }
        }
    }
}

/// Acknowledged appends are still there, unchanged, after a restart, and appending continues from
/// where it was.
pub async fn acknowledged_appends_survive_restart(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    append_ok(
        &*store,
        request(
            &unique_stream("lead"),
            ExpectedVersion::NoStream,
            numbered_events(2),
        ),
    )
    .await;
    let before = read_everything(&*store).await;
    let head = store.head().await.expect("head");
    drop(store);
    let store = h.restart().await;
    assert_eq!(read_everything(&*store).await, before);
    assert_eq!(store.head().await.expect("head"), head);
    assert_eq!(
        store.stream_version(&s).await.expect("version"),
        Some(Version(3))
    );
    assert_conflict(
        store
            .append(request(&s, ExpectedVersion::NoStream, numbered_events(1)))
            .await,
        Some(Version(3)),
    );
    let o = append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(3)), numbered_events(1)),
    )
    .await;
    assert_eq!(o.first_version, Version(4));
    assert!(o.first_position > head);
}

/// `wait_for_append` returns `true` at once when the head is already beyond `after`, `false` when
/// nothing is appended before the timeout, and `true` when an append arrives while it waits.
pub async fn wait_for_append_wakes_on_append_and_times_out(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    assert_eq!(store.head().await.expect("head"), Position::START);
    let o = append_ok(
        &*store,
        request(&s, ExpectedVersion::NoStream, numbered_events(1)),
    )
    .await;
    assert!(
        store
            .wait_for_append(Position::START, WAIT)
            .await
            .expect("wait")
    );
    assert!(
        !store
            .wait_for_append(o.last_position, Duration::from_millis(300))
            .await
            .expect("wait")
    );
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_append(o.last_position, WAIT).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let o2 = append_ok(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(1)), numbered_events(1)),
    )
    .await;
    assert!(
        waiter.await.expect("waiter panicked").expect("wait"),
        "the waiter must see the append"
    );
    assert_eq!(store.head().await.expect("head"), o2.last_position);
}

/// `read_stream_near` gives exactly what `read_stream` gives, whatever the hint: the position of
/// the event before `from`, of an earlier one, of none, of another stream's event, or (against
/// its contract) of a later one.
pub async fn read_stream_near_is_read_stream(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    let other = unique_stream("order");
    let mut version = 0u64;
    // 44 versions: reads of many versions take a backend's other path (JetStream: a consumer).
    for n in [1usize, 3, 1, 2, 1, 4, 1, 1, 30] {
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(Version(version))
        };
        let o = append_ok(&*store, request(&s, expected, numbered_events(n))).await;
        version = o.last_version.0;
        append_ok(
            &*store,
            request(&other, ExpectedVersion::Any, numbered_events(1)),
        )
        .await;
    }
    let all = store
        .read_stream(&s, Version(1), 1000)
        .await
        .expect("read_stream");
    let theirs = store
        .read_stream(&other, Version(1), 1000)
        .await
        .expect("read_stream");
    let mut hints: Vec<Position> = all.iter().map(|e| e.meta.position).collect();
    hints.extend(theirs.iter().map(|e| e.meta.position));
    hints.push(Position::START);
    hints.push(Position(u64::MAX / 2));
    for from in [1, 2, 5, 7, 8, 12, 13, 14, 30, version, version + 1] {
        for max in [1usize, 3, 1000] {
            let want = store
                .read_stream(&s, Version(from), max)
                .await
                .expect("read_stream");
            for near in &hints {
                let got = store
                    .read_stream_near(&s, Version(from), *near, max)
                    .await
                    .expect("read_stream_near");
                assert_eq!(
                    ids_of(&got),
                    ids_of(&want),
                    "from {from}, max {max}, near {near}"
                );
            }
        }
    }
}
