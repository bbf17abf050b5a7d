//! Conformance cases with concurrent writers: optimistic concurrency under a race, atomicity of
//! multi-event appends in the global order, and positions that are final once seen.

use super::*;
use funnel_types::Version;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const RACERS: usize = 8;
const RACE_WINS: usize = 120;

/// Eight tasks race on one stream, each reading the version and appending with `Exact`. At the end
/// the versions are dense, each written exactly once by the task that was told it won, and every
/// loser was told the actual version, which was beyond the one it expected.
pub async fn racing_writers_one_winner_per_version(h: &dyn Harness) {
    let store = h.open().await;
    let s = unique_stream("race");
    let wins = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for writer in 0..RACERS {
        let (store, s, wins) = (store.clone(), s.clone(), wins.clone());
        tasks.push(tokio::spawn(async move {
            let mut won: Vec<(u64, usize, usize)> = Vec::new();
            let mut conflicts = 0usize;
            let mut attempt = 0usize;
            while wins.load(Ordering::SeqCst) < RACE_WINS {
                attempt += 1;
                let current = store.stream_version(&s).await.expect("stream_version");
                let expected = current.map(ExpectedVersion::Exact).unwrap_or(ExpectedVersion::NoStream);
                let payload = serde_json::json!({ "writer": writer, "attempt": attempt });
                match store.append(request(&s, expected, vec![event("race.step", payload)])).await {
                    Ok(o) => {
                        assert!(!o.duplicate);
                        assert_eq!(o.first_version, o.last_version);
                        assert_eq!(o.first_version.0, current.map_or(0, |v| v.0) + 1, "the winner gets the next version");
                        won.push((o.first_version.0, writer, attempt));
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(StoreError::WrongExpectedVersion { actual, expected: e, stream }) => {
                        assert_eq!((e, &stream), (expected, &s));
                        let actual = actual.expect("a conflict on a stream that exists must name its version");
                        assert!(
                            actual.0 > current.map_or(0, |v| v.0),
                            "conflict named version {actual} but the loser expected {expected}: versions never go back"
                        );
                        conflicts += 1;
                    }
                    Err(other) => panic!("writer {writer}: unexpected error {other}"),
                }
            }
            (won, conflicts)
        }));
    }
    let mut all_wins: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for t in tasks {
        let (won, _conflicts) = t.await.expect("racer panicked");
        for (v, writer, attempt) in won {
            assert!(
                all_wins.insert(v, (writer, attempt)).is_none(),
                "version {v} was acknowledged twice"
            );
        }
    }
    let events = crate::read_whole_stream(&*store, &s).await.expect("read");
    assert_eq!(
        events.len(),
        all_wins.len(),
        "every acknowledged append and nothing else is in the stream"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.meta.version.0, i as u64 + 1, "versions are dense");
        let p = payload_json(e);
        let (writer, attempt) = all_wins[&e.meta.version.0];
        assert_eq!(
            (p["writer"].as_u64(), p["attempt"].as_u64()),
            (Some(writer as u64), Some(attempt as u64))
        );
    }
    assert_eq!(
        store.stream_version(&s).await.expect("version"),
        Some(Version(events.len() as u64))
    );
}

/// Six tasks append multi-event commands to their own streams at the same time. In read-all order the
/// events of each append are contiguous and in order, and so are their versions in the stream.
pub async fn concurrent_multi_event_appends_are_never_interleaved(h: &dyn Harness) {
    let store = h.open().await;
    let mut tasks = Vec::new();
    for writer in 0..6usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = unique_stream("batch");
            let mut acks = Vec::new();
            for round in 0..15usize {
                let n = 2 + (writer + round) % 4;
                let events = (0..n)
                    .map(|i| {
                        event(
                            "batch.part",
                            serde_json::json!({ "writer": writer, "round": round, "i": i, "n": n }),
                        )
                    })
                    .collect();
                let req = request(&s, ExpectedVersion::Any, events);
                let cmd = req.command_id;
                acks.push((cmd, n, append_ok(&*store, req).await));
            }
            acks
        }));
    }
    let mut acked: HashMap<CommandId, (usize, AppendOutcome)> = HashMap::new();
    for t in tasks {
        for (cmd, n, o) in t.await.expect("writer panicked") {
            acked.insert(cmd, (n, o));
        }
    }
    let all = read_everything(&*store).await;
    assert_eq!(all.len(), acked.values().map(|(n, _)| n).sum::<usize>());
    let mut i = 0;
    while i < all.len() {
        let cmd = all[i].meta.command_id;
        let (n, o) = acked
            .get(&cmd)
            .unwrap_or_else(|| panic!("unknown command {cmd} in the log"));
        assert!(
            i + n <= all.len(),
            "append {cmd} is cut short at the end of the log"
        );
        for (k, e) in all[i..i + n].iter().enumerate() {
            assert_eq!(
                e.meta.command_id, cmd,
                "another append's event is inside append {cmd} in read-all order"
            );
            assert_eq!(e.meta.stream, o.stream);
            assert_eq!(
                e.meta.version.0,
                o.first_version.0 + k as u64,
                "versions of one append are consecutive"
            );
            assert_eq!(payload_json(e)["i"].as_u64(), Some(k as u64));
        }
        assert_eq!(all[i].meta.position, o.first_position);
        assert_eq!(all[i + n - 1].meta.position, o.last_position);
        i += n;
    }
}

/// Writers append while a tailing reader follows the log with `read_all` from its last position and
/// a scanning reader re-reads from the start. Positions are strictly increasing, nothing ever
/// appears at or below a position a reader has seen, the log is the union of acknowledged appends,
/// each once, and a later re-read returns the same sequence.
pub async fn read_all_positions_are_final_under_concurrent_writers(h: &dyn Harness) {
    let store = h.open().await;
    let writers_done = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<(CommandId, usize, AppendOutcome)>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4usize {
        let (store, done, acked) = (store.clone(), writers_done.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let streams: Vec<StreamId> = (0..3).map(|_| unique_stream("tail")).collect();
            for round in 0..40usize {
                let n = 1 + (writer + round) % 3;
                let req = request(
                    &streams[round % 3],
                    ExpectedVersion::Any,
                    numbered_events(n),
                );
                let cmd = req.command_id;
                let o = append_ok(&*store, req).await;
                acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((cmd, n, o));
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let tail = {
        let (store, done) = (store.clone(), writers_done.clone());
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst) == 4;
                let cursor = seen.last().map_or(Position::START, |e| e.meta.position);
                let batch = store
                    .read_all(cursor, &Filter::All, 7)
                    .await
                    .expect("read_all");
                for e in &batch {
                    assert!(
                        e.meta.position > cursor,
                        "read_all(after = {cursor}) returned position {}",
                        e.meta.position
                    );
                }
                let got_some = !batch.is_empty();
                seen.extend(batch);
                if !got_some && finished {
                    return seen;
                }
                if !got_some {
                    store
                        .wait_for_append(cursor, Duration::from_millis(100))
                        .await
                        .expect("wait_for_append");
                }
            }
        })
    };
    let scan = {
        let (store, done) = (store.clone(), writers_done.clone());
        tokio::spawn(async move {
            let mut previous: Vec<RecordedEvent> = Vec::new();
            while done.load(Ordering::SeqCst) < 4 {
                let now = read_all_from(&*store, Position::START, &Filter::All, 64)
                    .await
                    .expect("read_all");
                assert!(
                    now.windows(2)
                        .all(|w| w[0].meta.position < w[1].meta.position),
                    "positions strictly increase"
                );
                assert!(
                    now.len() >= previous.len(),
                    "the log shrank between two reads"
                );
                assert!(
                    now[..previous.len()] == previous[..],
                    "an earlier read is not a prefix of a later one: an event appeared below a seen position"
                );
                previous = now;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for w in writers {
        w.await.expect("writer panicked");
    }
    let tailed = tokio::time::timeout(WAIT * 3, tail)
        .await
        .expect("tail reader hung")
        .expect("tail panicked");
    scan.await.expect("scanning reader panicked");

    let all = read_everything(&*store).await;
    assert_eq!(
        ids_of(&tailed),
        ids_of(&all),
        "the tailing reader missed or repeated events: positions were filled in later"
    );
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        all.len(),
        acked.iter().map(|(_, n, _)| n).sum::<usize>(),
        "the log is exactly the acknowledged appends"
    );
    let mut per_command: HashMap<CommandId, Vec<Position>> = HashMap::new();
    for e in &all {
        per_command
            .entry(e.meta.command_id)
            .or_default()
            .push(e.meta.position);
    }
    let mut unique = HashSet::new();
    for (cmd, n, o) in &acked {
        assert!(unique.insert(*cmd));
        let positions = per_command
            .get(cmd)
            .unwrap_or_else(|| panic!("acknowledged append {cmd} is missing"));
        assert_eq!(
            positions.len(),
            *n,
            "append {cmd} is in the log {} times over",
            positions.len()
        );
        assert_eq!(
            (positions[0], positions[n - 1]),
            (o.first_position, o.last_position)
        );
    }
    assert_eq!(
        read_everything(&*store).await,
        all,
        "a later re-read returns the same sequence"
    );
}
