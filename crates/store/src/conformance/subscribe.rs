//! Conformance cases for catch-up subscriptions: history exactly once and in order, one `CaughtUp`
//! marker, then the live tail, with and without a category filter.

use super::*;
use funnel_types::Version;

/// Checks that the next live items are exactly `want`, in order.
async fn expect_live(sub: &mut Subscription, want: &[RecordedEvent]) {
    for w in want {
        let got = next_event(sub).await;
        assert_eq!(
            got.meta.event_id, w.meta.event_id,
            "live events arrive exactly once, in order"
        );
        assert_eq!(got, *w);
    }
}

/// Appends and returns the recorded events of that append, read back from the stream.
async fn append_and_read(store: &dyn EventStore, req: AppendRequest) -> Vec<RecordedEvent> {
    let stream = req.stream.clone();
    let o = append_ok(store, req).await;
    let n = (o.last_version.0 - o.first_version.0 + 1) as usize;
    store
        .read_stream(&stream, o.first_version, n)
        .await
        .expect("read_stream")
}

/// From position 0: all history once and in order, one `CaughtUp` at or beyond the last event, then
/// events appended afterwards, each once.
pub async fn subscribe_from_start_catches_up_then_tails(h: &dyn Harness) {
    let store = h.open().await;
    let a = unique_stream("order");
    let b = unique_stream("lead");
    for (s, n) in [(&a, 3), (&b, 2), (&a, 4), (&b, 1)] {
        append_ok(
            &*store,
            request(s, ExpectedVersion::Any, numbered_events(n)),
        )
        .await;
    }
    let history = read_everything(&*store).await;
    assert_eq!(history.len(), 10);

    let mut sub: Subscription = store.clone().subscribe(Position::START, Filter::All);
    let (caught, marker) = until_caught_up(&mut sub).await;
    assert_eq!(
        caught, history,
        "history is delivered exactly once, in order"
    );
    assert!(
        marker >= history[9].meta.position,
        "CaughtUp({marker}) is before the last delivered event"
    );

    let live1 = append_and_read(
        &*store,
        request(&a, ExpectedVersion::Exact(Version(7)), numbered_events(3)),
    )
    .await;
    let live2 = append_and_read(
        &*store,
        request(&b, ExpectedVersion::Exact(Version(3)), numbered_events(2)),
    )
    .await;
    expect_live(&mut sub, &live1).await;
    expect_live(&mut sub, &live2).await;
    let live3 = append_and_read(
        &*store,
        request(
            &unique_stream("visit"),
            ExpectedVersion::NoStream,
            numbered_events(1),
        ),
    )
    .await;
    expect_live(&mut sub, &live3).await;

    let second: Subscription = store.clone().subscribe(Position::START, Filter::All);
    let mut second = second;
    let (again, _) = until_caught_up(&mut second).await;
    assert_eq!(
        again,
        read_everything(&*store).await,
        "a new subscription sees the same log"
    );
}

/// From a middle position: only events after it, then `CaughtUp`, then the live tail; a subscription
/// from the head delivers no history.
pub async fn subscribe_from_middle_position(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("order");
    for n in [2, 3, 2, 3] {
        append_ok(
            &*store,
            request(&s, ExpectedVersion::Any, numbered_events(n)),
        )
        .await;
    }
    let history = read_everything(&*store).await;
    let middle = history[3].meta.position;
    let mut sub: Subscription = store.clone().subscribe(middle, Filter::All);
    let (caught, marker) = until_caught_up(&mut sub).await;
    assert_eq!(ids_of(&caught), ids_of(&history[4..]));
    assert!(marker >= history[9].meta.position);

    let head = store.head().await.expect("head");
    let mut from_head: Subscription = store.clone().subscribe(head, Filter::All);
    let (none, head_marker) = until_caught_up(&mut from_head).await;
    assert!(
        none.is_empty(),
        "a subscription from the head has no history"
    );
    assert!(head_marker >= head);

    let live = append_and_read(
        &*store,
        request(&s, ExpectedVersion::Exact(Version(10)), numbered_events(2)),
    )
    .await;
    expect_live(&mut sub, &live).await;
    expect_live(&mut from_head, &live).await;
}

/// A category subscription delivers only its categories, in history and live.
pub async fn subscribe_with_category_filter(h: &dyn Harness) {
    let store = h.open().await;
    let lead = unique_stream("lead");
    let order = unique_stream("order");
    let visit = unique_stream("visit");
    for (s, n) in [
        (&lead, 2),
        (&order, 3),
        (&visit, 1),
        (&order, 1),
        (&lead, 1),
    ] {
        append_ok(
            &*store,
            request(s, ExpectedVersion::Any, numbered_events(n)),
        )
        .await;
    }
    let filter = Filter::Categories(vec!["lead".into(), "visit".into()]);
    let want: Vec<RecordedEvent> = read_everything(&*store)
        .await
        .into_iter()
        .filter(|e| filter.matches(&e.meta.stream))
        .collect();
    assert_eq!(want.len(), 4);

    let mut sub: Subscription = store.clone().subscribe(Position::START, filter);
    let (caught, _) = until_caught_up(&mut sub).await;
    assert_eq!(caught, want);

    append_ok(
        &*store,
        request(&order, ExpectedVersion::Any, numbered_events(2)),
    )
    .await;
    let live = append_and_read(
        &*store,
        request(
            &lead,
            ExpectedVersion::Exact(Version(3)),
            numbered_events(1),
        ),
    )
    .await;
    append_ok(
        &*store,
        request(&order, ExpectedVersion::Any, numbered_events(1)),
    )
    .await;
    let live2 = append_and_read(
        &*store,
        request(
            &visit,
            ExpectedVersion::Exact(Version(1)),
            numbered_events(2),
        ),
    )
    .await;
    expect_live(&mut sub, &live).await;
    expect_live(&mut sub, &live2).await;

    let mut orders: Subscription = store
        .clone()
        .subscribe(Position::START, Filter::category("order"));
    let (caught, _) = until_caught_up(&mut orders).await;
    assert_eq!(caught.len(), 7);
    assert!(caught.iter().all(|e| e.meta.stream == order));
}
