//! The conformance suite every backend runs unchanged, and the fixtures it is built from.
//!
//! A backend's test crate implements [`Harness`] (how to open, restart and age its storage) and
//! expands [`conformance_tests!`](crate::conformance_tests) once, which gives one `#[tokio::test]`
//! per case, named `conformance::<case>`:
//!
//! ```text
//! use funnel_store::conformance::Harness;
//! funnel_store::conformance_tests!(MyHarness::start().await);
//! ```
//!
//! The expression is evaluated inside each async test, so it may `.await`. The backend's test crate
//! needs `tokio` as a dev-dependency (the macro uses `#[tokio::test]`).
//!
//! Every case is a plain `pub async fn case(h: &dyn Harness)` so a backend can also call one directly.
//! Cases never assert on wall-clock durations; awaiting is bounded by [`WAIT`] so that a broken
//! backend fails instead of hanging.

mod append;
mod concurrency;
mod idempotency;
mod read;
mod snapshots;
mod subscribe;

pub use append::*;
pub use concurrency::*;
pub use idempotency::*;
pub use read::*;
pub use snapshots::*;
pub use subscribe::*;

use crate::{
    AppendOutcome, AppendRequest, EventStore, Filter, ProposedEvent, RecordedEvent, StoreError,
    SubscriptionItem,
};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_types::{
    Actor, CommandId, CorrelationId, EventId, ExpectedVersion, Position, Role, StaffId, StreamId,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;

/// How long a case waits for anything (an append, a subscription item) before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a backend's test provides so the suite can drive it.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A store on fresh, empty storage owned by the harness.
    async fn open(&self) -> Arc<dyn EventStore>;

    /// Drops the backend's process-level state and opens the same storage again, as after a process
    /// or server restart. The case has dropped its own handles to the previous store first.
    async fn restart(&self) -> Arc<dyn EventStore>;

    /// Makes the backend forget any in-memory or broker deduplication state (for example by sleeping
    /// past a short broker dedup window). A no-op for backends whose idempotency is durable anyway.
    async fn expire_dedup_window(&self);
}

/// Expands to one `#[tokio::test]` per conformance case, in a module named `conformance`.
///
/// The argument is an expression that makes a fresh [`Harness`](crate::conformance::Harness); it is
/// evaluated inside each (async) test and may use `.await` and the items of the calling module.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            append_to_new_stream_numbers_versions_from_one,
            expected_version_any,
            expected_version_no_stream,
            expected_version_exists,
            expected_version_exact,
            unknown_stream_reads_empty_and_refuses_expectations,
            oversize_and_empty_appends_are_refused,
            refused_multi_event_append_writes_nothing,
            racing_writers_one_winner_per_version,
            concurrent_multi_event_appends_are_never_interleaved,
            read_all_positions_are_final_under_concurrent_writers,
            read_all_pages_with_after_and_max,
            read_stream_from_middle_version_with_max,
            read_stream_near_is_read_stream,
            metadata_round_trips_exactly,
            payload_bytes_round_trip_exactly,
            category_filter_in_read_all,
            invalid_category_filter_is_refused,
            acknowledged_appends_survive_restart,
            wait_for_append_wakes_on_append_and_times_out,
            subscribe_from_start_catches_up_then_tails,
            subscribe_from_middle_position,
            subscribe_with_category_filter,
            retry_with_same_command_id_is_duplicate,
            retry_is_duplicate_after_dedup_window_expires,
            retry_is_duplicate_after_restart,
            snapshots_keep_the_newest_per_stream,
            snapshot_limits_and_bytes,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let harness = $make;
                    $crate::conformance::$case(&harness).await;
                }
            )*
        }
    };
}

/// A system actor used by fixtures.
pub fn system_actor() -> Actor {
    Actor::system("conformance")
}

/// A staff actor used by fixtures.
pub fn staff_actor() -> Actor {
    Actor::staff(StaffId::derived("conformance-staff"), Role::SalesEngineer)
}

/// A fixed, nanosecond-precise time, so that round trips are checked to the last digit.
pub fn fixed_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_709_618_828, 123_456_789).unwrap_or_default()
}

/// A proposed event with the given type and raw payload bytes (taken as they are).
pub fn event_bytes(event_type: &str, payload: impl Into<Bytes>) -> ProposedEvent {
    ProposedEvent {
        event_id: EventId::new(),
        event_type: event_type.to_string(),
        schema_version: 1,
        occurred_at: fixed_time(),
        actor: system_actor(),
        office: None,
        correlation_id: CorrelationId::new(),
        causation_id: uuid::Uuid::now_v7(),
        payload: payload.into(),
    }
}

/// A proposed event with the given type and a JSON payload.
pub fn event(event_type: &str, payload: serde_json::Value) -> ProposedEvent {
    event_bytes(event_type, payload.to_string())
}

/// `n` proposed events `test.numbered` with payloads `{"i": 0}` … `{"i": n-1}`.
pub fn numbered_events(n: usize) -> Vec<ProposedEvent> {
    (0..n)
        .map(|i| event("test.numbered", serde_json::json!({ "i": i })))
        .collect()
}

/// An append request with a fresh command id.
pub fn request(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<ProposedEvent>,
) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        command_id: CommandId::new(),
        events,
    }
}

/// A stream name of the given category that no other case uses.
pub fn unique_stream(category: &str) -> StreamId {
    match StreamId::new(category, uuid::Uuid::now_v7().simple()) {
        Ok(s) => s,
        Err(e) => panic!("fixture category `{category}` is not valid: {e}"),
    }
}

/// The payload of a recorded event parsed as JSON (panics with the bytes when it is not JSON).
pub fn payload_json(e: &RecordedEvent) -> serde_json::Value {
    serde_json::from_slice(&e.payload).unwrap_or_else(|err| {
        panic!(
            "payload at position {} is not JSON ({err}): {:?}",
            e.meta.position, e.payload
        )
    })
}

/// Appends and panics with the request's stream when the store refuses.
pub async fn append_ok(store: &dyn EventStore, req: AppendRequest) -> AppendOutcome {
    let stream = req.stream.clone();
    match store.append(req).await {
        Ok(o) => o,
        Err(e) => panic!("append to {stream} failed: {e}"),
    }
}

/// Reads every event after `after` that passes `filter`, in pages of `page` events.
pub async fn read_all_from(
    store: &dyn EventStore,
    after: Position,
    filter: &Filter,
    page: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut cursor = after;
    loop {
        let batch = store.read_all(cursor, filter, page).await?;
        if let Some(last) = batch.last() {
            cursor = last.meta.position;
        }
        let done = batch.len() < page;
        out.extend(batch);
        if done {
            return Ok(out);
        }
    }
}

/// Reads the whole log and panics when the store fails.
pub async fn read_everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    match read_all_from(store, Position::START, &Filter::All, 500).await {
        Ok(v) => v,
        Err(e) => panic!("read_all failed: {e}"),
    }
}

/// Asserts that `err` is a conflict naming `actual` as the stream's version.
pub fn assert_conflict(
    result: Result<AppendOutcome, StoreError>,
    actual: Option<funnel_types::Version>,
) {
    match result {
        Err(StoreError::WrongExpectedVersion { actual: got, .. }) => {
            assert_eq!(
                got, actual,
                "the conflict must name the stream's actual version"
            )
        }
        other => panic!("expected WrongExpectedVersion with actual {actual:?}, got {other:?}"),
    }
}

/// A subscription as the cases use it.
pub type Subscription = BoxStream<'static, Result<SubscriptionItem, StoreError>>;

/// The next subscription item, failing the case after [`WAIT`] or when the subscription errs or ends.
pub async fn next_item(sub: &mut Subscription) -> SubscriptionItem {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(item))) => item,
        Ok(Some(Err(e))) => panic!("subscription failed: {e}"),
        Ok(None) => panic!("subscription ended, but subscriptions never end on their own"),
        Err(_) => panic!("no subscription item within {WAIT:?}"),
    }
}

/// The next item, which must be an event.
pub async fn next_event(sub: &mut Subscription) -> RecordedEvent {
    match next_item(sub).await {
        SubscriptionItem::Event(e) => e,
        SubscriptionItem::CaughtUp(p) => {
            panic!("expected an event, got CaughtUp({p}) (a second marker?)")
        }
    }
}

/// Collects events until the `CaughtUp` marker and returns them with the marker's position.
pub async fn until_caught_up(sub: &mut Subscription) -> (Vec<RecordedEvent>, Position) {
    let mut events = Vec::new();
    loop {
        match next_item(sub).await {
            SubscriptionItem::Event(e) => events.push(e),
            SubscriptionItem::CaughtUp(p) => return (events, p),
        }
    }
}

/// The event ids of a slice of recorded events, in order.
pub fn ids_of(events: &[RecordedEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.meta.event_id).collect()
}
