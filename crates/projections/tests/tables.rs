//! Table models: the lead index kept as SQL tables. A property over random lead histories: the
//! tables after applying the log in pages, with restarts (with and without a save first) and
//! rebuilds switched in at random points, by one runner or by two on the same file taking turns
//! (two processes), hold exactly what a fresh runner computes in one pass; and the index agrees
//! with the pipeline's fold on every field both keep.

mod support;

use chrono::Duration;
use funnel_domain::lead::LeadCommand;
use funnel_domain::{Acting, Policy, testing};
use funnel_projections::models::{LeadIndex, Pipeline};
use funnel_projections::{
    Parked, ProjectionState, Runner, RunnerOptions, TableModel, TableReaders, follow_step,
    live_tables,
};
use funnel_store::EventStore;
use funnel_types::Position;
use proptest::prelude::*;
use std::path::Path;
use support::*;

fn open_index(path: &Path, options: RunnerOptions) -> Runner {
    let mut r = Runner::open(path, options).expect("open the runner");
    r.register_tables::<LeadIndex>()
        .expect("register")
        .register::<Pipeline>()
        .expect("register");
    r
}

/// Everything the live lead index tables hold, as text, in a fixed order (row ids left out: they
/// number rows in the order they were first written, which pages change), and its checkpoint.
fn dump(path: &Path) -> (Position, Vec<String>) {
    try_dump(path).expect("live tables")
}

/// [`dump`]; `None` before the index was first written.
fn try_dump(path: &Path) -> Option<(Position, Vec<String>)> {
    TableReaders::new(path)
        .read(|c| {
            let Some(t) = live_tables(c, LeadIndex::NAME)? else {
                return Ok(None);
            };
            assert_eq!(t.version, LeadIndex::VERSION);
            let p = &t.prefix;
            let mut out = Vec::new();
            for (table, sql) in [
                ("leads", format!("SELECT * FROM {p}leads ORDER BY id")),
                (
                    "persons",
                    format!("SELECT * FROM {p}persons ORDER BY lead, person"),
                ),
                (
                    "search",
                    format!(
                        "SELECT l.id, s.customer, s.project, s.contacts, s.phones, s.whole FROM {p}search s \
                         JOIN {p}leads l ON l.seq = s.rowid ORDER BY l.id"
                    ),
                ),
                ("offices", format!("SELECT * FROM {p}offices ORDER BY id")),
                ("staff", format!("SELECT * FROM {p}staff ORDER BY id")),
                ("meta", format!("SELECT * FROM {p}meta ORDER BY key")),
            ] {
                let mut stmt = c.prepare(&sql)?;
                let names: Vec<String> = stmt.column_names().map(|n| n.to_string()).collect();
                let rows = stmt.query_map([], |r| {
                    let mut line = format!("{table}:");
                    for (i, n) in names.iter().enumerate() {
                        if n == "seq" {
                            continue;
                        }
                        let v: rusqlite::types::Value = r.get(i)?;
                        line.push_str(&format!(" {n}={v:?}"));
                    }
                    Ok(line)
                })?;
                for row in rows {
                    out.push(row?);
                }
            }
            // The search table has a row for every lead and no other.
            let count = |sql: String| c.query_row(&sql, [], |r| r.get::<_, i64>(0));
            assert_eq!(
                count(format!("SELECT count(*) FROM {p}search"))?,
                count(format!("SELECT count(*) FROM {p}leads"))?
            );
            Ok(Some((t.checkpoint, out)))
        })
        .expect("read the tables")
}

fn parked(runner: &Runner) -> Vec<Parked> {
    runner
        .status()
        .into_iter()
        .find(|s| s.name == LeadIndex::NAME)
        .expect("lead index")
        .parked
}

/// The position the lead index's readers see, by the runner's status.
fn index_checkpoint(runner: &Runner) -> Position {
    runner
        .status()
        .into_iter()
        .find(|s| s.name == LeadIndex::NAME)
        .expect("lead index")
        .checkpoint
}

/// A fresh runner's tables and parked events, in one pass over the log.
async fn fresh(store: &dyn EventStore) -> ((Position, Vec<String>), Vec<Parked>, Pipeline) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fresh.sqlite");
    let mut r = open_index(&path, RunnerOptions::default());
    r.catch_up(store, &mut |_| {}).await.expect("catch up");
    let pipeline = r.get::<Pipeline>().expect("pipeline").clone();
    (dump(&path), parked(&r), pipeline)
}

/// The lead index's tables of every generation in the file.
fn generations(path: &Path) -> usize {
    TableReaders::new(path)
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rm_lead_index_g%_leads'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .expect("count") as usize
}

async fn check_tables(
    a: Vec<(Acting, LeadCommand, i64)>,
    b: Vec<(Acting, LeadCommand, i64)>,
    ops: Vec<(usize, u8, u8, bool)>,
    page: usize,
    (save_every, table_batch): (u64, u64),
    two: bool,
    followed: bool,
) {
    let policy = Policy::default();
    let mut queues = [
        testing::run(&a, &policy).1.into_iter(),
        testing::run(&b, &policy).1.into_iter(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let path = dir.path().join("checkpoints.sqlite");
    let options = RunnerOptions {
        table_batch,
        ..small(page, save_every)
    };
    let mut runners = vec![open_index(&path, options)];
    if two {
        runners.push(open_index(&path, options));
    }
    let mut k = 0;
    let mut minute = 0;
    while queues.iter().any(|q| q.len() > 0) {
        let (len, pages, action, other) = ops[k % ops.len()];
        let who = usize::from(two && other);
        let q = if queues[k % 2].len() > 0 {
            k % 2
        } else {
            1 - k % 2
        };
        let events: Vec<_> = queues[q]
            .by_ref()
            .take(len)
            .map(|e| {
                minute += 1;
                proposed(&e, t0() + Duration::minutes(minute))
            })
            .collect();
        append(&store, ["lead-a", "lead-b"][q], events).await;
        k += 1;
        for _ in 0..pages {
            if followed {
                // As `funnel serve` follows: applied under the write lock, saved under the read
                // lock.
                let shared = tokio::sync::RwLock::new(runners.remove(who));
                follow_step(&shared, &store).await.unwrap();
                runners.insert(who, shared.into_inner());
            } else {
                runners[who].step(&store).await.unwrap();
            }
        }
        // What readers see is a committed state: its checkpoint is the furthest a runner says
        // its readers see (a runner writes what it applied, when due, or finds another one
        // wrote further and loads that; while catching up it holds the rows of up to
        // `table_batch` events).
        if let Some((at, _)) = try_dump(&path) {
            let furthest = runners.iter().map(index_checkpoint).max().unwrap();
            assert_eq!(at, furthest);
            // Every read (of any model) reflects at least what the runner publishes.
            for r in &runners {
                assert!(r.live_checkpoint() <= index_checkpoint(r));
            }
        }
        let runner = &mut runners[who];
        match action {
            // A crash: nothing saved beyond what the pages committed.
            0 => {
                *runner = open_index(&path, options);
            }
            // A shutdown: saved first.
            1 => {
                runner.save().unwrap();
                *runner = open_index(&path, options);
            }
            // A rebuild asked for, built beside the served tables.
            2 => runner.rebuild(LeadIndex::NAME).unwrap(),
            _ => {}
        }
    }
    for runner in &mut runners {
        runner.catch_up(&store, &mut |_| {}).await.unwrap();
        let status = runner.status();
        let index = status.iter().find(|s| s.name == LeadIndex::NAME).unwrap();
        assert_eq!(index.state, ProjectionState::Live, "{index:?}");
    }
    let (tables, fresh_parked, pipeline) = fresh(&store).await;
    assert_eq!(dump(&path), tables);
    for runner in &runners {
        assert_eq!(parked(runner), fresh_parked);
    }
    assert_eq!(generations(&path), 1, "only the served generation is left");
    agrees_with_pipeline(&path, &pipeline);
}

/// Every lead of the index has the pipeline's office, owner, stage, amount, tier and times.
fn agrees_with_pipeline(path: &Path, pipeline: &Pipeline) {
    let leads = TableReaders::new(path)
        .read(|c| {
            let t = live_tables(c, LeadIndex::NAME)?.expect("live tables");
            let mut out = Vec::new();
            for id in pipeline.leads.keys() {
                out.push(funnel_projections::models::load_lead(c, &t.prefix, *id)?);
            }
            Ok(out)
        })
        .expect("read");
    for ((id, row), l) in pipeline.leads.iter().zip(leads) {
        let l = l.unwrap_or_else(|| panic!("lead {id} is not in the index"));
        assert_eq!(
            (
                l.office,
                l.owner,
                l.stage,
                l.amount_cny,
                l.tier,
                l.stage_since,
                l.registered_at,
                l.last_visit_at,
                l.channel,
                l.purchase_mode,
            ),
            (
                row.office,
                row.owner,
                row.stage,
                row.amount_cny,
                row.tier,
                row.stage_since,
                row.registered_at,
                row.last_visit_at,
                row.channel,
                row.purchase_mode,
            ),
            "lead {id}"
        );
        assert_eq!(l.declared, row.declared, "lead {id}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_tables_after_pages_restarts_and_rebuilds_equal_a_fresh_fold(
        a in testing::steps(30),
        b in testing::steps(30),
        ops in prop::collection::vec((1usize..8, 0u8..4, 0u8..6, any::<bool>()), 1..16),
        page in 1usize..9,
        save_every in 1u64..7,
        table_batch in prop_oneof![1u64..12, Just(65_536u64)],
        two in any::<bool>(),
        followed in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check_tables(a, b, ops, page, (save_every, table_batch), two, followed));
    }
}

/// A table model counting the events it applied, in one row; `V` is its version.
#[derive(Debug, Default)]
struct Count<const V: u32> {
    pending: u64,
}

impl<const V: u32> TableModel for Count<V> {
    const NAME: &'static str = "count";
    const VERSION: u32 = V;

    fn schema(p: &str) -> String {
        format!(
            "CREATE TABLE {p}total (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, version INTEGER NOT NULL);"
        )
    }

    fn apply(
        &mut self,
        _view: &funnel_projections::TableView<'_>,
        _e: &funnel_types::Envelope<funnel_domain::Event>,
    ) -> Result<(), String> {
        self.pending += 1;
        Ok(())
    }

    fn write(&self, tx: &rusqlite::Connection, p: &str) -> rusqlite::Result<()> {
        tx.execute(
            &format!(
                "INSERT INTO {p}total (id, n, version) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET n = n + excluded.n"
            ),
            rusqlite::params![self.pending as i64, V],
        )?;
        Ok(())
    }

    fn clear(&mut self) {
        self.pending = 0;
    }
}

/// The live count's version, total and checkpoint, as a reader sees them; and how many
/// generations of its tables the file holds.
fn count(path: &Path) -> (Option<(u32, i64, Position)>, i64) {
    TableReaders::new(path)
        .read(|c| {
            let live = match live_tables(c, "count")? {
                Some(t) => {
                    let n = c.query_row(
                        &format!("SELECT n FROM {}total WHERE id = 1", t.prefix),
                        [],
                        |r| r.get::<_, i64>(0),
                    )?;
                    Some((t.version, n, t.checkpoint))
                }
                None => None,
            };
            let tables = c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm_count_g%_total'",
                [],
                |r| r.get::<_, i64>(0),
            )?;
            Ok((live, tables))
        })
        .expect("read")
}

#[tokio::test]
async fn a_version_change_builds_new_tables_beside_and_drops_the_old_ones_at_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let path = dir.path().join("checkpoints.sqlite");
    let head = fill(&store, 40, 7).await;
    let mut r = Runner::open(&path, small(8, 3)).unwrap();
    r.register_tables::<Count<1>>().unwrap();
    r.catch_up(&store, &mut |_| {}).await.unwrap();
    assert_eq!(count(&path), (Some((1, 40, head)), 1));
    drop(r);

    // Version 2: the version-1 tables stay in the file but neither follow nor serve; the new
    // ones are built beside them, a page at a time.
    let mut r = Runner::open(&path, small(8, 3)).unwrap();
    r.register_tables::<Count<2>>().unwrap();
    assert_eq!(r.status()[0].state, ProjectionState::Rebuilding);
    assert!(!r.status()[0].readable);
    r.step(&store).await.unwrap();
    let (live, tables) = count(&path);
    assert_eq!(
        live.map(|l| l.0),
        Some(1),
        "the old row is still the live one"
    );
    assert_eq!(
        tables, 2,
        "the rebuild's tables exist beside the served ones"
    );
    r.catch_up(&store, &mut |_| {}).await.unwrap();
    assert_eq!(
        count(&path),
        (Some((2, 40, head)), 1),
        "switched; old tables dropped"
    );
    assert_eq!(r.status()[0].state, ProjectionState::Live);

    // Following on: one more page lands in the new tables with its checkpoint.
    let more = fill(&store, 5, 5).await;
    r.catch_up(&store, &mut |_| {}).await.unwrap();
    assert_eq!(count(&path), (Some((2, 45, more)), 1));
}
