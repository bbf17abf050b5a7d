//! Shared pieces of the runner tests: a test model that fails loudly when an event is applied twice
//! or out of order, an embedded store in a temporary directory, and helpers to append events.

#![allow(dead_code)]

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use funnel_domain::Event;
use funnel_projections::{AsOf, Parked, ReadModel, Runner, RunnerOptions, replay_as_of};
use funnel_store::{AppendOutcome, AppendRequest, EventStore, ProposedEvent};
use funnel_store_sqlite::SqliteStore;
use funnel_types::{
    Actor, CommandId, CorrelationId, Envelope, EventId, ExpectedVersion, Position, StreamId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The event type [`Tally`] refuses (so it gets parked).
pub const REFUSED: &str = "staff.left";

/// Records every event it applies, by position, and adds `V` per event to `weighted` (so that two
/// versions give different states). Refuses [`REFUSED`] events and every position divisible by 13.
/// Panics when a position comes at or below one already applied: an event applied twice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally<const V: u32> {
    pub applied: BTreeMap<u64, String>,
    pub weighted: u64,
}

impl<const V: u32> ReadModel for Tally<V> {
    const NAME: &'static str = "tally";
    const VERSION: u32 = V;

    fn apply(&mut self, e: &Envelope<Event>) -> Result<(), String> {
        let p = e.meta.position.0;
        if let Some((&last, _)) = self.applied.last_key_value() {
            assert!(
                p > last,
                "position {p} applied after {last}: applied twice or out of order"
            );
        }
        if e.meta.event_type == REFUSED || p.is_multiple_of(13) {
            return Err(format!("tally refuses {} at {p}", e.meta.event_type));
        }
        let payload = serde_json::to_string(&e.payload).map_err(|e| e.to_string())?;
        self.applied.insert(
            p,
            format!("{} {} {payload}", e.meta.stream, e.meta.event_type),
        );
        self.weighted += u64::from(V);
        Ok(())
    }
}

/// The version-1 test model.
pub type T1 = Tally<1>;

/// Opens the embedded store in `dir`.
pub fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir.join("events.sqlite")).expect("open the event store")
}

/// A runner on `dir/checkpoints.sqlite` with `T1` registered.
pub fn open_runner(dir: &Path, options: RunnerOptions) -> Runner {
    let mut r = Runner::open(dir.join("checkpoints.sqlite"), options).expect("open the runner");
    r.register::<T1>().expect("register");
    r
}

/// Small pages and frequent saves, so tests cross many save points.
pub fn small(page_size: usize, save_every: u64) -> RunnerOptions {
    RunnerOptions {
        page_size,
        save_every,
        ..RunnerOptions::default()
    }
}

/// A proposed event with raw type and payload.
pub fn raw(event_type: &str, version: u16, payload: &[u8], at: DateTime<Utc>) -> ProposedEvent {
    ProposedEvent {
        event_id: EventId::new(),
        event_type: event_type.to_string(),
        schema_version: version,
        occurred_at: at,
        actor: Actor::system("projection-tests"),
        office: None,
        correlation_id: CorrelationId::new(),
        causation_id: uuid::Uuid::now_v7(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A proposed domain event encoded by the codec.
pub fn proposed(event: &Event, at: DateTime<Utc>) -> ProposedEvent {
    raw(
        event.event_type(),
        event.schema_version(),
        &funnel_codec::encode(event),
        at,
    )
}

/// Appends `events` to `stream` in one request.
pub async fn append(
    store: &dyn EventStore,
    stream: &str,
    events: Vec<ProposedEvent>,
) -> AppendOutcome {
    store
        .append(AppendRequest {
            stream: StreamId::parse(stream).expect("stream name"),
            expected: ExpectedVersion::Any,
            command_id: CommandId::new(),
            events,
        })
        .await
        .expect("append")
}

/// A fixed start time.
pub fn t0() -> DateTime<Utc> {
    funnel_domain::testing::start()
}

/// Appends `n` events cycling through the codec's examples (one of every type), `batch` per append,
/// over a few streams. Returns the head.
pub async fn fill(store: &dyn EventStore, n: usize, batch: usize) -> Position {
    let examples = funnel_codec::examples();
    let mut head = Position::START;
    let mut i = 0;
    while i < n {
        let k = batch.min(n - i);
        let events = (i..i + k)
            .map(|j| {
                proposed(
                    &examples[j % examples.len()],
                    t0() + Duration::minutes(j as i64),
                )
            })
            .collect();
        let stream = format!("test-s{}", (i / batch) % 5);
        head = append(store, &stream, events).await.last_position;
        i += k;
    }
    head
}

/// `M` and its parked events computed afresh by a new runner with its own checkpoint file.
pub async fn clean_rebuild<M: ReadModel>(store: &dyn EventStore) -> (M, Vec<Parked>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = Runner::open(dir.path().join("clean.sqlite"), RunnerOptions::default())
        .expect("open the runner");
    r.register::<M>().expect("register");
    r.catch_up(store, &mut |_| {}).await.expect("catch up");
    let parked = r.status().remove(0).parked;
    let model = r.get::<M>().expect("registered").clone();
    let (replayed, replay_parked) = replay_as_of::<M>(store, AsOf::Position(Position(u64::MAX)))
        .await
        .expect("replay");
    assert_eq!(replayed, model, "replay to the end equals a fresh runner");
    assert_eq!(replay_parked, parked);
    (model, parked)
}

/// The live model and parked events of `T1` in `runner`.
pub fn live(runner: &Runner) -> (T1, Vec<Parked>) {
    let model = runner.get::<T1>().expect("registered").clone();
    (model, runner.status().remove(0).parked)
}

/// The demo organisation with `leads` leads, written through the engine into an embedded store in
/// `dir` (its clock on 26 November 2026 in Shanghai), and every event of it decoded, in log order.
pub async fn demo_history(
    dir: &Path,
    leads: usize,
) -> (std::sync::Arc<dyn EventStore>, Vec<Envelope<Event>>) {
    use chrono::TimeZone;
    let store: std::sync::Arc<dyn EventStore> =
        std::sync::Arc::new(SqliteStore::open(dir.join("store.db")).expect("store"));
    let now = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 26, 9, 0, 0)
        .single()
        .expect("a time")
        .with_timezone(&Utc);
    let engine = funnel_engine::Engine::new(
        store.clone(),
        funnel_domain::Policy::default(),
        std::sync::Arc::new(funnel_types::ManualClock::new(now)),
    );
    let opts = funnel_demo::DemoOptions {
        leads,
        ..funnel_demo::DemoOptions::default()
    };
    funnel_demo::load(&engine, &opts, |_, _| {})
        .await
        .expect("demo");
    let mut events = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store
            .read_all(after, &funnel_store::Filter::All, 1000)
            .await
            .expect("read");
        let Some(last) = page.last().map(|r| r.meta.position) else {
            break;
        };
        events.extend(
            page.iter()
                .map(|r| funnel_codec::decode_recorded(r).expect("decodes")),
        );
        after = last;
    }
    (store, events)
}
