//! History snapshots: an as-of replay that starts from the nearest snapshot and skips the spans of
//! the gap equals the replay of the whole log, at random positions and moments, with events that
//! occurred out of log order, with the runner dropped at random points, and when a snapshot does
//! not read or comes from another log.

mod support;

use chrono::{DateTime, Duration, Utc};
use funnel_domain::Event;
use funnel_projections::history::start;
use funnel_projections::{
    AsOf, ReadModel, Replayed, Runner, RunnerOptions, follow_step, replay_as_of_until, replay_from,
};
use funnel_store::EventStore;
use funnel_types::{Envelope, Position};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use support::{Tally, append, open_store, proposed, t0};

/// [`Tally`] with history snapshots, and the moment an as-of replay by time completed it at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Kept {
    tally: Tally<1>,
    until: Option<DateTime<Utc>>,
}

impl ReadModel for Kept {
    const NAME: &'static str = "kept";
    const VERSION: u32 = 1;
    const KEEPS_HISTORY: bool = true;

    fn apply(&mut self, e: &Envelope<Event>) -> Result<(), String> {
        self.tally.apply(e)
    }

    fn complete_until(&mut self, moment: DateTime<Utc>) {
        self.until = Some(moment);
    }
}

fn options(page_size: usize, save_every: u64, history_every: u64) -> RunnerOptions {
    RunnerOptions {
        page_size,
        save_every,
        history_every,
        ..RunnerOptions::default()
    }
}

fn open_runner(dir: &Path, options: RunnerOptions) -> Runner {
    let mut r = Runner::open(dir.join("checkpoints.sqlite"), options).expect("open the runner");
    r.register::<Kept>().expect("register");
    r
}

fn checkpoint_file(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("checkpoints.sqlite")).expect("open the checkpoint file")
}

/// The as-of replay from the history, checked against the replay of the whole log.
async fn same_as_full_replay(
    store: &dyn EventStore,
    dir: &Path,
    as_of: AsOf,
    head: Position,
) -> Replayed {
    let from = start(
        &checkpoint_file(dir),
        Kept::NAME,
        Kept::VERSION,
        as_of,
        head,
    )
    .expect("read the history");
    let (kept, kept_parked, replayed) = replay_from::<Kept>(store, as_of, head, from)
        .await
        .expect("replay from the history");
    let (full, full_parked) = replay_as_of_until::<Kept>(store, as_of, head)
        .await
        .expect("replay the whole log");
    assert_eq!(kept, full, "as of {as_of:?} at head {head}");
    // Events parked before the snapshot are not replayed again; those after it are the same.
    let after: Vec<_> = full_parked
        .into_iter()
        .filter(|p| p.position > replayed.from)
        .collect();
    assert_eq!(kept_parked, after, "parked as of {as_of:?}");
    replayed
}

/// Appends events in batches whose occurrence hours are given (out of log order), and projects
/// them with a runner dropped (saved first or not) at the given points.
async fn check(
    batches: Vec<(Vec<i64>, u8, bool, bool)>,
    page: usize,
    save_every: u64,
    history_every: u64,
    probes: Vec<(u64, i64)>,
    followed: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let opts = options(page, save_every, history_every);
    let mut runner = open_runner(dir.path(), opts);
    let example = &funnel_codec::examples()[0];
    for (k, (hours, pages, drop_it, save_first)) in batches.iter().enumerate() {
        let events = hours
            .iter()
            .map(|h| proposed(example, t0() + Duration::hours(*h)))
            .collect();
        append(&store, &format!("test-h{}", k % 3), events).await;
        for _ in 0..*pages {
            if followed {
                // As `funnel serve` follows: applied under the write lock, the snapshots taken
                // and saved under the read lock.
                let shared = tokio::sync::RwLock::new(runner);
                follow_step(&shared, &store).await.unwrap();
                runner = shared.into_inner();
            } else {
                runner.step(&store).await.unwrap();
            }
        }
        if *drop_it {
            if *save_first {
                runner.save().unwrap();
            }
            drop(runner);
            runner = open_runner(dir.path(), opts);
        }
    }
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    let head = store.head().await.unwrap();
    let snapshots: i64 = checkpoint_file(dir.path())
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .unwrap();
    if head.0 >= 2 * (history_every + page as u64) {
        assert!(
            snapshots > 0,
            "a log of {head} events has history snapshots"
        );
        let r = same_as_full_replay(&store, dir.path(), AsOf::Position(head), head).await;
        assert!(
            r.from > Position::START,
            "the replay to the head starts from a snapshot"
        );
        assert!(r.events_read < head.0, "and reads less than the log");
    }
    for (position, hour) in probes {
        let p = Position(position % (head.0 + 2));
        same_as_full_replay(&store, dir.path(), AsOf::Position(p), head).await;
        let t = t0() + Duration::minutes(hour);
        same_as_full_replay(&store, dir.path(), AsOf::Time(t), head).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn as_of_from_history_snapshots_equals_as_of_by_full_replay(
        batches in prop::collection::vec(
            (prop::collection::vec(0i64..400, 1..12), 0u8..3, any::<bool>(), any::<bool>()),
            1..30,
        ),
        page in 1usize..9,
        save_every in 1u64..9,
        history_every in 1u64..12,
        probes in prop::collection::vec((0u64..400, -60i64..(401 * 60)), 1..12),
        followed in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check(batches, page, save_every, history_every, probes, followed));
    }
}

/// Appends `n` events, one per append, the `i`th occurring at hour `hour(i)`.
async fn events(store: &dyn EventStore, n: i64, hour: impl Fn(i64) -> i64) -> Position {
    let example = &funnel_codec::examples()[0];
    let mut head = Position::START;
    for i in 0..n {
        head = append(
            store,
            "test-h",
            vec![proposed(example, t0() + Duration::hours(hour(i)))],
        )
        .await
        .last_position;
    }
    head
}

#[tokio::test]
async fn a_date_replays_only_from_the_nearest_snapshot_and_skips_spans_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // In log order, but one event every tenth is logged three days after it happened.
    let head = events(&store, 600, |i| if i % 10 == 9 { i - 72 } else { i }).await;
    let mut runner = open_runner(dir.path(), options(16, 64, 50));
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    let at = |h: i64| AsOf::Time(t0() + Duration::hours(h) + Duration::minutes(30));
    let r = same_as_full_replay(&store, dir.path(), at(300), head).await;
    // Every event up to the snapshot occurred by then: at most 50 + 16 events before hour 300.
    assert!(
        r.from.0 >= 300 - 66 && r.from.0 <= 301,
        "starts from the snapshot nearest before the moment, not {}",
        r.from
    );
    // The late events logged three days after hour 300 are read; the rest of the log is not.
    assert!(
        r.events_read < 200,
        "{} events read of {head}",
        r.events_read
    );
    // Before the first snapshot and after the last event: still the same answer.
    same_as_full_replay(&store, dir.path(), at(-5), head).await;
    same_as_full_replay(&store, dir.path(), at(10), head).await;
    same_as_full_replay(&store, dir.path(), at(10_000), head).await;
}

#[tokio::test]
async fn a_snapshot_that_does_not_read_or_names_another_event_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = events(&store, 300, |i| i).await;
    let mut runner = open_runner(dir.path(), options(16, 64, 40));
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    let as_of = AsOf::Position(head);
    assert!(
        same_as_full_replay(&store, dir.path(), as_of, head)
            .await
            .from
            > Position::START
    );
    let db = checkpoint_file(dir.path());
    // A snapshot of another log: the event at its position is another one.
    db.execute(
        "UPDATE history SET event_id = '00000000-0000-7000-8000-000000000000'",
        [],
    )
    .unwrap();
    let r = same_as_full_replay(&store, dir.path(), as_of, head).await;
    assert_eq!(r.from, Position::START, "a foreign snapshot is not used");
    assert_eq!(r.events_read, head.0);
    // A snapshot that does not decode (another shape of the model).
    drop(runner);
    std::fs::remove_file(dir.path().join("checkpoints.sqlite")).unwrap();
    let mut runner = open_runner(dir.path(), options(16, 64, 40));
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    checkpoint_file(dir.path())
        .execute("UPDATE history SET state = x'c1c1c1'", [])
        .unwrap();
    let r = same_as_full_replay(&store, dir.path(), as_of, head).await;
    assert_eq!(
        r.from,
        Position::START,
        "a snapshot that does not read is not used"
    );
}

#[tokio::test]
async fn a_checkpoint_file_without_a_time_index_builds_one_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    events(&store, 200, |i| i).await;
    let mut runner = open_runner(dir.path(), options(16, 64, 40));
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    drop(runner);
    // As a file written before history snapshots existed: the states are at the head, with
    // neither a time index nor snapshots.
    let db = checkpoint_file(dir.path());
    db.execute_batch("DELETE FROM log_times; DELETE FROM history;")
        .unwrap();
    let head = events(&store, 100, |i| 200 + i).await;
    let mut runner = open_runner(dir.path(), options(16, 64, 40));
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    let from = start(
        &checkpoint_file(dir.path()),
        Kept::NAME,
        Kept::VERSION,
        AsOf::Position(head),
        head,
    )
    .unwrap();
    assert_eq!(
        from.spans.last().map(|s| s.end),
        Some(head),
        "the time index covers the log from zero"
    );
    let r = same_as_full_replay(
        &store,
        dir.path(),
        AsOf::Time(t0() + Duration::hours(250)),
        head,
    )
    .await;
    assert!(
        r.from > Position(200),
        "snapshots are taken again: {}",
        r.from
    );
}

#[tokio::test]
async fn no_history_is_kept_when_it_is_off_and_as_of_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = events(&store, 200, |i| 200 - i).await;
    let mut runner = open_runner(dir.path(), options(16, 64, 0));
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    let db = checkpoint_file(dir.path());
    let count = |table: &str| -> i64 {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!((count("history"), count("log_times")), (0, 0));
    let r = same_as_full_replay(
        &store,
        dir.path(),
        AsOf::Time(t0() + Duration::hours(100)),
        head,
    )
    .await;
    assert_eq!(r.from, Position::START);
}

/// A model whose state grows by 4 KiB of incompressible bytes per event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Heavy {
    #[serde(with = "serde_bytes_vec")]
    bytes: Vec<u8>,
}

/// `Vec<u8>` as one MessagePack binary (not an array of numbers).
mod serde_bytes_vec {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

impl ReadModel for Heavy {
    const NAME: &'static str = "heavy";
    const VERSION: u32 = 1;
    const KEEPS_HISTORY: bool = true;

    fn apply(&mut self, e: &Envelope<Event>) -> Result<(), String> {
        let mut x = e.meta.position.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.bytes.push(x as u8);
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_history_of_a_growing_model_stays_within_its_bytes_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = events(&store, 300, |i| i).await;
    let mut runner =
        Runner::open(dir.path().join("checkpoints.sqlite"), options(4, 64, 10)).unwrap();
    runner.register::<Heavy>().unwrap();
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    let db = checkpoint_file(dir.path());
    let (count, total, largest): (i64, i64, i64) = db
        .query_row(
            "SELECT count(*), sum(length(state)), max(length(state)) FROM history",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(count >= 2, "{count} snapshots");
    let budget = funnel_projections::history::HISTORY_BYTES_PER_EVENT as i64 * head.0 as i64;
    assert!(
        total <= budget + largest,
        "{count} snapshots of {total} bytes for {head} events (budget {budget} + {largest})"
    );
}

#[tokio::test]
async fn a_followed_runner_catching_up_takes_its_snapshots_as_often_as_at_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = events(&store, 400, |i| i).await;
    // Saves of everything (and table writes) far apart: only the history decides the gaps.
    let opts = RunnerOptions {
        table_batch: 1_000_000,
        ..options(16, 1_000_000, 50)
    };
    let shared = tokio::sync::RwLock::new(open_runner(dir.path(), opts));
    while follow_step(&shared, &store).await.unwrap() > 0 {}
    let positions: Vec<i64> = {
        let db = checkpoint_file(dir.path());
        let mut stmt = db
            .prepare("SELECT position FROM history ORDER BY position")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    // A snapshot at the end of the first page at or past every 50 events, not one per save.
    assert!(positions.len() >= 6, "snapshots at {positions:?}");
    let mut before = 0;
    for p in &positions {
        assert!(
            p - before <= 50 + 16,
            "a gap of {} in {positions:?}",
            p - before
        );
        before = *p;
    }
    // And an as-of replay reads no more than that gap.
    let at = AsOf::Position(Position(head.0 - 10));
    let r = same_as_full_replay(&store, dir.path(), at, head).await;
    assert!(r.events_read <= 66, "{r:?}");
}
