//! The runner against the embedded store: crash safety in and across processes, parking, rebuilds
//! after a version change, following the live tail, as-of replay, and a property test over random
//! lead histories.

mod support;

use chrono::Duration;
use funnel_domain::lead::LeadCommand;
use funnel_domain::{Acting, Policy, testing};
use funnel_projections::{
    AsOf, ProjectionState, Runner, RunnerOptions, follow, query_at_least, replay_as_of,
};
use funnel_types::Position;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use support::*;
use tokio::sync::RwLock;

const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test]
async fn a_runner_dropped_between_save_points_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = fill(&store, 1000, 37).await;

    let mut runner = open_runner(dir.path(), small(64, 100));
    while runner.low_water().unwrap() < Position(440) {
        runner.step(&store).await.unwrap();
    }
    // Events 401..=448 are applied but not saved; dropping the runner loses them.
    assert_eq!(runner.live_checkpoint(), Position(448));
    drop(runner);

    let mut runner = open_runner(dir.path(), small(64, 100));
    assert_eq!(runner.status()[0].checkpoint, Position(400));
    assert_eq!(
        runner
            .get::<T1>()
            .unwrap()
            .applied
            .last_key_value()
            .map(|(p, _)| *p),
        Some(400)
    );
    let reached = runner.catch_up(&store, &mut |_| {}).await.unwrap();
    assert_eq!(reached, head);
    assert_eq!(live(&runner), clean_rebuild::<T1>(&store).await);
    let status = &runner.status()[0];
    assert_eq!(status.state, ProjectionState::Live);
    assert_eq!((status.lag, status.lag_events), (0, Some(0)));
}

#[tokio::test]
async fn refused_and_undecodable_events_are_parked_and_passed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let examples = funnel_codec::examples();
    append(&store, "test-a", vec![proposed(&examples[0], t0())]).await;
    let refused = examples.iter().find(|e| e.event_type() == REFUSED).unwrap();
    append(&store, "test-a", vec![proposed(refused, t0())]).await;
    append(&store, "test-a", vec![raw(REFUSED, 1, b"{not json", t0())]).await;
    append(
        &store,
        "test-a",
        vec![raw("lead.teleported", 1, b"{}", t0())],
    )
    .await;
    append(&store, "test-a", vec![proposed(&examples[0], t0())]).await;

    let mut runner = open_runner(dir.path(), RunnerOptions::default());
    assert_eq!(
        runner.catch_up(&store, &mut |_| {}).await.unwrap(),
        Position(5)
    );
    let check = |runner: &Runner| {
        let status = &runner.status()[0];
        assert_eq!(status.checkpoint, Position(5));
        assert_eq!(status.state, ProjectionState::Live);
        let parked: Vec<_> = status
            .parked
            .iter()
            .map(|p| (p.position.0, p.event_type.as_str()))
            .collect();
        assert_eq!(parked, [(2, REFUSED), (3, REFUSED), (4, "lead.teleported")]);
        assert!(status.parked[0].reason.contains("tally refuses"));
        assert!(status.parked[1].reason.contains("does not decode"));
        assert!(status.parked[1].reason.contains("position 3"));
        assert!(status.parked[2].reason.contains("unknown type"));
        let applied: Vec<_> = runner
            .get::<T1>()
            .unwrap()
            .applied
            .keys()
            .copied()
            .collect();
        assert_eq!(applied, [1, 5]);
    };
    check(&runner);
    drop(runner);
    // The parked list is saved with the checkpoint.
    check(&open_runner(dir.path(), RunnerOptions::default()));
    let (_, parked) = replay_as_of::<T1>(&store, AsOf::Position(Position(5)))
        .await
        .unwrap();
    assert_eq!(parked.len(), 3);
    let json =
        serde_json::to_value(open_runner(dir.path(), RunnerOptions::default()).status()).unwrap();
    assert_eq!(json[0]["parked"][2]["event_type"], "lead.teleported");
}

#[tokio::test]
async fn a_version_change_rebuilds_beside_the_old_state_and_switches_when_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = fill(&store, 300, 25).await;
    let mut v1 = open_runner(dir.path(), small(50, 1000));
    v1.catch_up(&store, &mut |_| {}).await.unwrap();
    let old = v1.get::<T1>().unwrap().clone();
    drop(v1);

    let open_v2 = || {
        let mut r = Runner::open(dir.path().join("checkpoints.sqlite"), small(50, 1000)).unwrap();
        r.register::<Tally<2>>().unwrap();
        r
    };
    let mut v2 = open_v2();
    let s = &v2.status()[0];
    assert_eq!(
        (s.version, s.stored_version, s.state),
        (2, 1, ProjectionState::Rebuilding)
    );
    // The old state serves reads under the new type until the switch.
    assert_eq!(v2.get::<Tally<2>>().unwrap().weighted, old.weighted);

    // Two pages, a save, and a restart: the rebuild resumes from its own checkpoint.
    v2.step(&store).await.unwrap();
    v2.step(&store).await.unwrap();
    v2.save().unwrap();
    drop(v2);
    let mut v2 = open_v2();
    let r = v2.status()[0].rebuild.clone().unwrap();
    assert_eq!((r.checkpoint, r.target), (Position(100), Some(head)));

    // Events appended during the rebuild do not move its target.
    let more = fill(&store, 40, 20).await;
    let mut switched_at = None;
    let mut progress_seen = 0;
    while switched_at.is_none() {
        v2.step(&store).await.unwrap();
        let s = v2.status().remove(0);
        match s.rebuild {
            Some(r) => {
                assert!(
                    r.checkpoint < head,
                    "switches as soon as it reaches the target"
                );
                assert_eq!(r.target, Some(head));
                assert_eq!(s.stored_version, 1);
                assert_eq!(v2.get::<Tally<2>>().unwrap().weighted, old.weighted);
                progress_seen += 1;
            }
            None => switched_at = Some(s.checkpoint),
        }
    }
    assert!(progress_seen >= 2);
    assert_eq!(switched_at, Some(head));
    let s = &v2.status()[0];
    assert_eq!((s.stored_version, s.version), (2, 2));
    let fresh = v2.get::<Tally<2>>().unwrap();
    assert_eq!(fresh.applied, old.applied);
    assert_eq!(fresh.weighted, 2 * old.weighted);

    v2.catch_up(&store, &mut |_| {}).await.unwrap();
    drop(v2);
    let mut v2 = open_v2();
    assert!(v2.status()[0].rebuild.is_none());
    assert_eq!(v2.status()[0].checkpoint, more);
    let before = v2.get::<Tally<2>>().unwrap().clone();
    assert_eq!(before, clean_rebuild::<Tally<2>>(&store).await.0);

    // A requested rebuild of the same version ends with the same state.
    v2.rebuild("tally").unwrap();
    let mut reports = Vec::new();
    v2.catch_up(&store, &mut |p| reports.push(p.clone()))
        .await
        .unwrap();
    assert!(v2.status()[0].rebuild.is_none());
    assert_eq!(v2.get::<Tally<2>>().unwrap(), &before);
    assert!(
        reports
            .iter()
            .any(|p| p.rebuilds.iter().any(|r| r.events_done > 0))
    );
    assert!(v2.rebuild("nope").is_err());
}

#[tokio::test]
async fn following_gives_read_your_writes_and_saves_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, 50, 10).await;
    let shared = RwLock::new(open_runner(dir.path(), RunnerOptions::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = async {
        let shutdown = async {
            let _ = stopped.await;
        };
        follow(&shared, &store, shutdown, &mut |_| {}).await
    };
    let writer = async {
        for i in 0..5 {
            let e = proposed(&funnel_codec::examples()[0], t0());
            let at = append(&store, &format!("test-f{i}"), vec![e])
                .await
                .last_position;
            let seen = query_at_least(&shared, at, WAIT, |m: Option<&T1>| {
                m.unwrap().applied.contains_key(&at.0) || at.0.is_multiple_of(13)
            })
            .await
            .unwrap();
            assert!(seen);
        }
        let _ = stop.send(());
    };
    let (followed, ()) = tokio::join!(follower, writer);
    followed.unwrap();
    drop(shared);
    let runner = open_runner(dir.path(), RunnerOptions::default());
    assert_eq!(runner.status()[0].checkpoint, Position(55));

    // The exclusive form catches up by itself and times out when the position never comes.
    let mut runner = runner;
    fill(&store, 3, 3).await;
    runner.wait_until(&store, Position(58), WAIT).await.unwrap();
    assert_eq!(runner.live_checkpoint(), Position(58));
    let err = runner
        .wait_until(&store, Position(1000), std::time::Duration::from_millis(50))
        .await;
    assert!(matches!(
        err,
        Err(funnel_projections::RunnerError::Timeout { .. })
    ));
}

#[tokio::test]
async fn replay_as_of_a_time_takes_events_by_occurrence_not_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let e = &funnel_codec::examples()[0];
    // Occurrence hours out of log order.
    let hours = [5, 1, 9, 3, 7, 2, 8];
    for h in hours {
        append(
            &store,
            "test-t",
            vec![proposed(e, t0() + Duration::hours(h))],
        )
        .await;
    }
    let (m, parked) = replay_as_of::<T1>(&store, AsOf::Time(t0() + Duration::hours(5)))
        .await
        .unwrap();
    assert!(parked.is_empty());
    let got: Vec<_> = m.applied.keys().copied().collect();
    assert_eq!(got, [1, 2, 4, 6]);
    let (m, _) = replay_as_of::<T1>(&store, AsOf::Position(Position(3)))
        .await
        .unwrap();
    assert_eq!(m.applied.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
}

const CHILD: &str = "FUNNEL_PROJECTIONS_CRASH_CHILD";
const CHILD_BLOCK_AT: &str = "FUNNEL_PROJECTIONS_CRASH_BLOCK_AT";

/// The child half of the process crash test: projects the store in `$FUNNEL_PROJECTIONS_CRASH_CHILD`
/// with small pages and saves, printing its progress. With a block position set, it stops (blocked on
/// its stdin) once past it. Without the variable this test does nothing.
#[tokio::test]
async fn process_crash_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let block_at: Option<u64> = std::env::var(CHILD_BLOCK_AT)
        .ok()
        .and_then(|s| s.parse().ok());
    let dir = std::path::PathBuf::from(dir);
    let store = open_store(&dir);
    let mut runner = open_runner(&dir, small(100, 250));
    runner
        .catch_up(&store, &mut |p| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "PROGRESS {}", p.position.0);
            let _ = out.flush();
            if block_at.is_some_and(|b| p.position.0 >= b) {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            }
        })
        .await
        .unwrap();
    println!("DONE");
}

/// Starts the child and kills it (SIGKILL) once it reports a position at or past `kill_at`.
fn run_child_and_kill(dir: &std::path::Path, kill_at: u64, block: bool) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "process_crash_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if block {
        cmd.env(CHILD_BLOCK_AT, kill_at.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let _stdin = child.stdin.take();
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        let reached = line
            .strip_prefix("PROGRESS ")
            .and_then(|p| p.parse::<u64>().ok())
            .is_some_and(|p| p >= kill_at);
        if reached || line == "DONE" {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success() || !block,
        "the blocked child must die by the signal"
    );
}

#[tokio::test]
async fn a_killed_process_leaves_a_checkpoint_that_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let head = fill(&store, 20_000, 200).await;
    append(
        &store,
        "test-z",
        vec![raw("lead.teleported", 1, b"{}", t0())],
    )
    .await;
    let head = Position(head.0 + 1);
    let blocking_dir = dir.path().to_path_buf();
    // Killed while blocked after the page ending at 5100: saved at 5000, 5001..=5100 applied only
    // in memory.
    tokio::task::spawn_blocking(move || run_child_and_kill(&blocking_dir, 5050, true))
        .await
        .unwrap();
    let runner = open_runner(dir.path(), small(100, 250));
    assert_eq!(runner.status()[0].checkpoint, Position(5000));
    drop(runner);
    // Killed at whatever point it has reached when the parent reads a later report.
    let blocking_dir = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || run_child_and_kill(&blocking_dir, 12_000, false))
        .await
        .unwrap();

    let mut runner = open_runner(dir.path(), RunnerOptions::default());
    let resumed_at = runner.status()[0].checkpoint;
    assert!(resumed_at >= Position(5000));
    assert_eq!(runner.catch_up(&store, &mut |_| {}).await.unwrap(), head);
    assert_eq!(live(&runner), clean_rebuild::<T1>(&store).await);
}

/// Appends two random lead histories in random batches, with a runner that takes a random number
/// of pages after each batch and is dropped (with or without a save first) at random points. Checks
/// that the live model ends equal to a fresh rebuild, that a reopened runner's state equals the
/// live state seen at the same checkpoint, and that a replay as of every checkpoint seen equals the
/// live model as it stood there.
async fn check_history(
    a: Vec<(Acting, LeadCommand, i64)>,
    b: Vec<(Acting, LeadCommand, i64)>,
    ops: Vec<(usize, u8, bool, bool)>,
    page: usize,
    save_every: u64,
) {
    let policy = Policy::default();
    let mut queues = [
        testing::run(&a, &policy).1.into_iter(),
        testing::run(&b, &policy).1.into_iter(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let options = small(page, save_every);
    let mut runner = open_runner(dir.path(), options);
    let mut seen: BTreeMap<u64, T1> = BTreeMap::new();
    let mut record = |runner: &Runner| {
        let p = runner.live_checkpoint().0;
        let m = runner.get::<T1>().unwrap().clone();
        let prev = seen.entry(p).or_insert_with(|| m.clone());
        assert_eq!(prev, &m, "two states at checkpoint {p}");
    };
    let mut k = 0;
    while queues.iter().any(|q| q.len() > 0) {
        let (len, pages, drop_it, save_first) = ops[k % ops.len()];
        let q = if queues[k % 2].len() > 0 {
            k % 2
        } else {
            1 - k % 2
        };
        let events: Vec<_> = queues[q]
            .by_ref()
            .take(len)
            .map(|e| proposed(&e, t0()))
            .collect();
        append(&store, ["lead-a", "lead-b"][q], events).await;
        k += 1;
        if pages == 3 {
            runner.catch_up(&store, &mut |_| {}).await.unwrap();
        } else {
            for _ in 0..pages {
                runner.step(&store).await.unwrap();
            }
        }
        record(&runner);
        if drop_it {
            if save_first {
                runner.save().unwrap();
            }
            drop(runner);
            runner = open_runner(dir.path(), options);
            record(&runner);
        }
    }
    runner.catch_up(&store, &mut |_| {}).await.unwrap();
    record(&runner);
    assert_eq!(live(&runner), clean_rebuild::<T1>(&store).await);
    for (p, m) in &seen {
        let (replayed, _) = replay_as_of::<T1>(&store, AsOf::Position(Position(*p)))
            .await
            .unwrap();
        assert_eq!(&replayed, m, "replay as of {p}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_live_model_with_random_restarts_equals_a_rebuild_and_replays_match_its_history(
        a in testing::steps(30),
        b in testing::steps(30),
        ops in prop::collection::vec((1usize..8, 0u8..4, any::<bool>(), any::<bool>()), 1..16),
        page in 1usize..9,
        save_every in 1u64..7,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check_history(a, b, ops, page, save_every));
    }
}

/// A model whose snapshot says it started (`gate`'s first flag), then waits until the gate opens
/// (its second flag), or gives up after `WAIT`.
#[derive(Debug)]
struct Gated {
    gate: Gate,
    applied: u64,
}

type Gate = std::sync::Arc<(std::sync::Mutex<(bool, bool)>, std::sync::Condvar)>;

impl funnel_projections::Projection for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&mut self, _: &funnel_types::Envelope<funnel_domain::Event>) -> Result<(), String> {
        self.applied += 1;
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        let (flags, changed) = &*self.gate;
        let mut flags = flags.lock().unwrap();
        flags.0 = true;
        changed.notify_all();
        while !flags.1 {
            let (now, waited) = changed.wait_timeout(flags, WAIT).unwrap();
            flags = now;
            if waited.timed_out() {
                return Err("nobody read the runner while it was being saved".into());
            }
        }
        Ok(self.applied.to_le_bytes().to_vec())
    }

    fn restore(&self, snapshot: &[u8]) -> Result<Box<dyn funnel_projections::Projection>, String> {
        let bytes: [u8; 8] = snapshot.try_into().map_err(|_| "not 8 bytes".to_string())?;
        Ok(Box::new(Gated {
            gate: self.gate.clone(),
            applied: u64::from_le_bytes(bytes),
        }))
    }

    fn fresh(&self) -> Box<dyn funnel_projections::Projection> {
        Box::new(Gated {
            gate: self.gate.clone(),
            applied: 0,
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The follower serialises and writes the models under the read lock: a reader gets in while a
/// save is under way (here, while the model's snapshot waits for that reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_served_while_the_follower_saves() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, 50, 10).await;
    let gate: Gate = std::sync::Arc::new((
        std::sync::Mutex::new((false, false)),
        std::sync::Condvar::new(),
    ));
    let mut runner = Runner::open(
        dir.path().join("checkpoints.sqlite"),
        RunnerOptions {
            follow_save_interval: std::time::Duration::ZERO,
            ..small(16, 1000)
        },
    )
    .unwrap();
    runner
        .add(Box::new(Gated {
            gate: gate.clone(),
            applied: 0,
        }))
        .unwrap();
    let shared = std::sync::Arc::new(RwLock::new(runner));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let following = {
        let shared = shared.clone();
        tokio::spawn(async move {
            follow(
                &shared,
                &store,
                async {
                    let _ = stop_rx.await;
                },
                &mut |_| {},
            )
            .await
        })
    };
    // Wait (on a thread of its own) for the save to start: the snapshot is waiting. Then read.
    let started = gate.clone();
    tokio::task::spawn_blocking(move || {
        let (flags, changed) = &*started;
        let flags = flags.lock().unwrap();
        let _started = changed.wait_while(flags, |f| !f.0).unwrap();
    })
    .await
    .unwrap();
    let read = tokio::time::timeout(WAIT, shared.read()).await;
    assert!(read.is_ok(), "the reader waited for the save");
    drop(read);
    gate.0.lock().unwrap().1 = true;
    gate.1.notify_all();
    stop_tx.send(()).unwrap();
    following.await.unwrap().unwrap();
    let runner = shared.read().await;
    assert_eq!(runner.status()[0].checkpoint, Position(50));
}
