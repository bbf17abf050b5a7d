//! `funnel bench projections`: rebuilds every read model from a generated log of at least a million
//! events and compares the rebuild rate with the store's own read-all rate over the same log, in the
//! same run (`rebuild_ratio`; the project's target is at least 0.5), with the peak memory of the
//! rebuild. Then it grows the log to five times that and rebuilds again: the peak memory of both
//! (`rss_mb_1m`, `rss_mb_5m`, named for the default size) and their ratio (`rss_growth`; the
//! project's target is at most 1.25, memory that does not grow with the log) say whether the read
//! models hold the history in memory.
//!
//! The log is the demo history (through the real engine, once) replicated: every copy renames every
//! id (UUIDv5 of the original id and the copy number), so each copy is another team with its own
//! staff and leads, and the read models grow with the copies as they would with real data. The
//! copies share [`OFFICES`] offices (copy `k` works in the offices of copy `k mod m`), the size of
//! organisation the project plans for, so that a longer log is more history of the same offices
//! rather than more offices.

use funnel_demo::DemoOptions;
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_projections::models::{Conflicts, Pipeline, PlanCompliance, TouchIndex};
use funnel_projections::{Runner, RunnerOptions};
use funnel_store::{AppendRequest, EventStore, Filter, ProposedEvent, RecordedEvent};
use funnel_types::{CommandId, ExpectedVersion, ManualClock, Position, StreamId, Version};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// The offices of the generated organisation (at least the demo's own).
pub const OFFICES: u64 = 30;

/// The project's target for the rebuild rate as a share of the read-all rate.
pub const REBUILD_TARGET: f64 = 0.5;
/// The project's target for the peak memory of a rebuild of five times the log over one.
pub const RSS_GROWTH_TARGET: f64 = 1.25;

/// What to generate.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectionBenchOptions {
    /// At least this many events in the log.
    pub events: u64,
    /// Appends in flight while generating.
    pub in_flight: usize,
    /// Also grow the log to five times `events` and rebuild again, for the memory growth.
    pub growth: bool,
}

impl Default for ProjectionBenchOptions {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            in_flight: 128,
            growth: true,
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectionBenchReport {
    pub backend: String,
    pub events: u64,
    pub generate_seconds: f64,
    /// `EventStore::read_all` over the whole log, decoded into recorded events, nothing applied.
    pub read_all_per_s: f64,
    /// A fresh runner with every read model catching up from position zero, including saving the
    /// snapshots and checkpoints at the end.
    pub rebuild_per_s: f64,
    /// Seconds of the rebuild spent serialising the read models' snapshots (measured separately).
    pub snapshot_seconds: f64,
    pub rebuild_ratio: f64,
    pub rebuild_target: f64,
    /// Peak resident memory during the rebuild (the process's high-water mark, reset before it).
    pub rebuild_peak_rss_bytes: Option<u64>,
    /// Size of the in-memory read models' snapshots after the rebuild: what they hold.
    pub model_snapshot_bytes: u64,
    /// Size of the read models' file after the rebuild (with its write-ahead log): the tables
    /// of the table models, the snapshots and the history snapshots.
    pub checkpoint_file_bytes: u64,
    pub models: Vec<String>,
    /// Peak resident memory of the rebuild of the log (`events`, a million by default), in MiB.
    pub rss_mb_1m: Option<f64>,
    /// Peak resident memory of a rebuild of the log grown to five times that, in MiB.
    pub rss_mb_5m: Option<f64>,
    /// `rss_mb_5m` ÷ `rss_mb_1m` (target at most [`RSS_GROWTH_TARGET`]).
    pub rss_growth: Option<f64>,
    pub rss_growth_target: f64,
}

impl std::fmt::Display for ProjectionBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        writeln!(
            f,
            "projection rebuild on {} ({} events, generated in {:.1}s)",
            self.backend, self.events, self.generate_seconds
        )?;
        writeln!(
            f,
            "  read-all (store)       {:>12.0} events/s",
            self.read_all_per_s
        )?;
        writeln!(
            f,
            "  rebuild (all models)   {:>12.0} events/s (of which {:.2}s serialising snapshots)",
            self.rebuild_per_s, self.snapshot_seconds
        )?;
        let verdict = if self.rebuild_ratio >= self.rebuild_target {
            "meets"
        } else {
            "below"
        };
        writeln!(
            f,
            "  rebuild_ratio          {:>12.2} ({verdict} the target {:.1})",
            self.rebuild_ratio, self.rebuild_target
        )?;
        match self.rebuild_peak_rss_bytes {
            Some(b) => writeln!(f, "  peak RSS in rebuild    {:>12.1} MiB", mib(b))?,
            None => writeln!(f, "  peak RSS in rebuild    (not available on this system)")?,
        }
        writeln!(
            f,
            "  read-model snapshots   {:>12.1} MiB (in memory; models: {})",
            mib(self.model_snapshot_bytes),
            self.models.join(", ")
        )?;
        writeln!(
            f,
            "  read models' file      {:>12.1} MiB (tables, snapshots, history)",
            mib(self.checkpoint_file_bytes)
        )?;
        if let (Some(one), Some(five), Some(growth)) =
            (self.rss_mb_1m, self.rss_mb_5m, self.rss_growth)
        {
            let verdict = if growth <= self.rss_growth_target {
                "meets"
            } else {
                "above"
            };
            writeln!(
                f,
                "  peak RSS ×1 / ×5 log   {one:>8.1} / {five:.1} MiB: rss_growth {growth:.2} ({verdict} the target {:.2})",
                self.rss_growth_target
            )?;
        }
        Ok(())
    }
}

/// The demo history as appends, and the demo's offices.
pub(crate) struct Template {
    commits: Vec<Commit>,
    offices: HashSet<uuid::Uuid>,
}

impl Template {
    /// Copies that have offices of their own; copy `k` works in those of copy `k mod` this.
    fn office_copies(&self) -> u64 {
        (OFFICES / (self.offices.len() as u64).max(1)).max(1)
    }

    /// The twin of `id` in copy `k`: an office's twin in copy `k mod` [`Self::office_copies`].
    fn twin<T: From<uuid::Uuid>>(&self, id: uuid::Uuid, k: u64) -> T {
        let k = if self.offices.contains(&id) {
            k % self.office_copies()
        } else {
            k
        };
        T::from(uuid::Uuid::new_v5(&id, &k.to_be_bytes()))
    }

    /// Whether copy `k` writes `commit`: organisation-wide streams only in the first copy, an
    /// office's own stream only in the copies that have offices of their own.
    fn writes(&self, commit: &Commit, k: u64) -> bool {
        match uuid::Uuid::parse_str(commit.stream.id_part()) {
            Err(_) => k == 0,
            Ok(id) => !self.offices.contains(&id) || k < self.office_copies(),
        }
    }

    /// Maps every UUID in a JSON value to its copy-`k` twin.
    fn rename(&self, v: &mut serde_json::Value, k: u64) {
        match v {
            serde_json::Value::String(s) => {
                if let Ok(u) = uuid::Uuid::parse_str(s) {
                    *s = self.twin::<uuid::Uuid>(u, k).to_string();
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.rename(x, k)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.rename(x, k)),
            _ => {}
        }
    }
}

/// One append of the template: the events of one command on one stream.
struct Commit {
    stream: StreamId,
    command: CommandId,
    events: Vec<RecordedEvent>,
}

async fn template() -> anyhow::Result<Template> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn EventStore> = Arc::new(funnel_store_sqlite::SqliteStore::open(
        dir.path().join("demo.db"),
    )?);
    let engine = Engine::new(
        store.clone(),
        Policy::default(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
    );
    funnel_demo::load(&engine, &DemoOptions::default(), |_, _| {}).await?;
    let mut commits: Vec<Commit> = Vec::new();
    let mut offices = HashSet::new();
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, &Filter::All, 8192).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for r in batch {
            if let Some(o) = r.meta.office {
                offices.insert(o.0);
            }
            match commits.last_mut() {
                Some(c) if c.command == r.meta.command_id && c.stream == r.meta.stream => {
                    c.events.push(r)
                }
                _ => commits.push(Commit {
                    stream: r.meta.stream.clone(),
                    command: r.meta.command_id,
                    events: vec![r],
                }),
            }
        }
    }
    Ok(Template { commits, offices })
}

/// The expected version of the next append of `events` events to `stream`, counting it.
fn next_expected(
    versions: &mut HashMap<StreamId, u64>,
    stream: &StreamId,
    events: usize,
) -> ExpectedVersion {
    let version = versions.entry(stream.clone()).or_insert(0);
    let expected = if *version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(Version(*version))
    };
    *version += events as u64;
    expected
}

/// Copy `k` of `commit`. A stream named by a UUID has a twin in every copy (an office's, in the
/// first [`Template::office_copies`]); the others are global (a year's working calendar,
/// `calendar-2026`), written by the first copy only.
fn copy(
    template: &Template,
    commit: &Commit,
    k: u64,
    versions: &mut HashMap<StreamId, u64>,
) -> anyhow::Result<AppendRequest> {
    anyhow::ensure!(
        template.writes(commit, k),
        "copy {k} does not write {}",
        commit.stream
    );
    let Ok(id) = uuid::Uuid::parse_str(commit.stream.id_part()) else {
        let events = commit
            .events
            .iter()
            .map(|r| ProposedEvent {
                event_id: r.meta.event_id,
                event_type: r.meta.event_type.clone(),
                schema_version: r.meta.schema_version,
                occurred_at: r.meta.occurred_at,
                actor: r.meta.actor.clone(),
                office: r.meta.office,
                correlation_id: r.meta.correlation_id,
                causation_id: r.meta.causation_id,
                payload: r.payload.clone(),
            })
            .collect();
        return Ok(AppendRequest {
            stream: commit.stream.clone(),
            expected: next_expected(versions, &commit.stream, commit.events.len()),
            command_id: commit.command,
            events,
        });
    };
    let stream = StreamId::new(commit.stream.category(), template.twin::<uuid::Uuid>(id, k))?;
    let expected = next_expected(versions, &stream, commit.events.len());
    let events = commit
        .events
        .iter()
        .map(|r| {
            let mut payload: serde_json::Value = serde_json::from_slice(&r.payload)?;
            template.rename(&mut payload, k);
            Ok(ProposedEvent {
                event_id: template.twin(r.meta.event_id.0, k),
                event_type: r.meta.event_type.clone(),
                schema_version: r.meta.schema_version,
                occurred_at: r.meta.occurred_at,
                actor: match &r.meta.actor {
                    funnel_types::Actor::Staff { id, role } => {
                        funnel_types::Actor::staff(template.twin(id.0, k), *role)
                    }
                    other => other.clone(),
                },
                office: r.meta.office.map(|o| template.twin(o.0, k)),
                correlation_id: template.twin(r.meta.correlation_id.0, k),
                causation_id: template.twin(r.meta.causation_id, k),
                payload: serde_json::to_vec(&payload)?.into(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(AppendRequest {
        stream,
        expected,
        command_id: template.twin(commit.command.0, k),
        events,
    })
}

pub(crate) fn peak_rss_reset() {
    // Writing 5 to clear_refs resets the peak resident set size (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reads the whole log, decoded into recorded events, nothing applied: events per second.
pub(crate) async fn read_all_rate(
    store: &dyn EventStore,
    total: u64,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let mut after = Position::START;
    let mut read = 0u64;
    loop {
        let batch = store.read_all(after, &Filter::All, 10_000).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        read += batch.len() as u64;
        progress("read-all", read, total);
    }
    Ok((read, read as f64 / t.elapsed().as_secs_f64()))
}

/// Writes the replicated demo history into `store`, which must be empty: (events, seconds).
pub(crate) async fn generate(
    store: &Arc<dyn EventStore>,
    opts: &ProjectionBenchOptions,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<(u64, f64)> {
    anyhow::ensure!(
        store.head().await? == Position::START,
        "the benchmark needs an empty store"
    );
    let template = template().await?;
    generate_from(store, &template, opts, progress).await
}

/// [`generate`] from the template already made.
async fn generate_from(
    store: &Arc<dyn EventStore>,
    template: &Template,
    opts: &ProjectionBenchOptions,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let (copies, total) = copies_for(template, opts.events);
    write_copies(
        store,
        template,
        0..copies,
        opts.in_flight,
        (0, total),
        progress,
    )
    .await?;
    Ok((total, started.elapsed().as_secs_f64()))
}

/// How many copies of the template make at least `events` events, and how many events they are
/// (the organisation-wide streams are written once).
fn copies_for(template: &Template, events: u64) -> (u64, u64) {
    let written = |k: u64| -> u64 {
        template
            .commits
            .iter()
            .filter(|c| template.writes(c, k))
            .map(|c| c.events.len() as u64)
            .sum()
    };
    // Every copy after the ones with offices of their own writes the same.
    let later = written(template.office_copies()).max(1);
    let (mut copies, mut total) = (0, 0);
    while total < events && copies < template.office_copies() {
        total += written(copies);
        copies += 1;
    }
    if total < events {
        let more = (events - total).div_ceil(later);
        copies += more;
        total += more * later;
    }
    (copies, total)
}

/// Appends the template's copies `ks` (copy 0 with the organisation-wide streams); `done` is
/// (events written before, events in all) for the progress line.
///
/// The copies are interleaved in time, as an organisation of that many offices writes its log:
/// block by block of the template's commits, each commit of the block in every copy, so that the
/// log's `occurred_at` follows the template's (nearly) ascending order instead of starting the
/// template's months again with each copy.
async fn write_copies(
    store: &Arc<dyn EventStore>,
    template: &Template,
    ks: std::ops::Range<u64>,
    in_flight: usize,
    (mut written, total): (u64, u64),
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<()> {
    /// Template commits per block: a block's appends run in parallel, blocks one after another.
    const BLOCK: usize = 64;
    let mut versions = HashMap::new();
    for block in template.commits.chunks(BLOCK) {
        let mut requests = Vec::new();
        for c in block {
            for k in ks.clone().filter(|k| template.writes(c, *k)) {
                requests.push(copy(template, c, k, &mut versions)?);
            }
        }
        let this_block: u64 = requests.iter().map(|r| r.events.len() as u64).sum();
        // Appends to one stream must stay in order; spreading each stream's appends over the same
        // worker (by stream hash) keeps them ordered and the workers busy.
        let workers = in_flight.max(1);
        let mut queues: Vec<Vec<AppendRequest>> = (0..workers).map(|_| Vec::new()).collect();
        for r in requests {
            let w = (fxhash(r.stream.as_str()) % workers as u64) as usize;
            queues[w].push(r);
        }
        let tasks: Vec<_> = queues
            .into_iter()
            .map(|q| {
                let store = store.clone();
                tokio::spawn(async move {
                    for r in q {
                        store.append(r).await?;
                    }
                    Ok::<_, funnel_store::StoreError>(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        written += this_block;
        progress("generate", written, total);
    }
    Ok(())
}

/// Generates the log in `store` (which must be empty), then measures read-all and a full rebuild.
pub async fn bench_projections(
    store: Arc<dyn EventStore>,
    opts: ProjectionBenchOptions,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<ProjectionBenchReport> {
    anyhow::ensure!(
        store.head().await? == Position::START,
        "the benchmark needs an empty store"
    );
    let template = template().await?;
    let (total, generate_seconds) = generate_from(&store, &template, &opts, progress).await?;

    let (read, read_all_per_s) = read_all_rate(store.as_ref(), total, progress).await?;

    let (runner, _dir, rebuild_secs, rebuild_peak_rss_bytes) =
        rebuild(store.as_ref(), total, progress).await?;
    let mut model_snapshot_bytes = 0u64;
    let mut models = Vec::new();
    for s in runner.status() {
        models.push(s.name.to_string());
    }
    let t = Instant::now();
    for json in [
        rmp_serde::to_vec(&runner.get::<Pipeline>())?,
        rmp_serde::to_vec(&runner.get::<Conflicts>())?,
        rmp_serde::to_vec(&runner.get::<PlanCompliance>())?,
    ] {
        model_snapshot_bytes += json.len() as u64;
    }
    let snapshot_seconds = t.elapsed().as_secs_f64();
    let rebuild_per_s = read as f64 / rebuild_secs;
    let file = runner.checkpoints().path().to_path_buf();
    let checkpoint_file_bytes = [file.clone(), file.with_extension("db-wal")]
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    drop(runner);
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let rss_mb_1m = rebuild_peak_rss_bytes.map(mib);
    let mut rss_mb_5m = None;
    if opts.growth {
        // Four more times the copies written so far, then a rebuild of the whole log afresh.
        let (copies, _) = copies_for(&template, opts.events);
        let (more, grown) = copies_for(&template, opts.events * 5);
        write_copies(
            &store,
            &template,
            copies..more,
            opts.in_flight,
            (total, grown),
            progress,
        )
        .await?;
        let (_, _, _, peak) = rebuild(store.as_ref(), grown, progress).await?;
        rss_mb_5m = peak.map(mib);
    }
    let rss_growth = rss_mb_1m.zip(rss_mb_5m).map(|(one, five)| five / one);
    Ok(ProjectionBenchReport {
        backend: store.backend().to_string(),
        events: read,
        generate_seconds,
        read_all_per_s,
        rebuild_per_s,
        snapshot_seconds,
        rebuild_ratio: rebuild_per_s / read_all_per_s,
        rebuild_target: REBUILD_TARGET,
        rebuild_peak_rss_bytes,
        model_snapshot_bytes,
        checkpoint_file_bytes,
        models,
        rss_mb_1m,
        rss_mb_5m,
        rss_growth,
        rss_growth_target: RSS_GROWTH_TARGET,
    })
}

/// A fresh runner with every read model caught up with `store` from position zero: the runner and
/// the folder of its checkpoint file, the seconds it took, and the peak resident memory meanwhile.
async fn rebuild(
    store: &dyn EventStore,
    total: u64,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<(Runner, tempfile::TempDir, f64, Option<u64>)> {
    let dir = tempfile::tempdir()?;
    let mut runner = Runner::open(
        dir.path().join("bench-projections.db"),
        RunnerOptions {
            save_every: u64::MAX,
            ..RunnerOptions::default()
        },
    )?;
    runner
        .register::<Pipeline>()?
        .register_tables::<TouchIndex>()?
        .register::<Conflicts>()?
        .register::<PlanCompliance>()?;
    peak_rss_reset();
    let t = Instant::now();
    runner
        .catch_up(store, &mut |p| {
            progress("rebuild", p.position.0.min(total), total)
        })
        .await?;
    Ok((runner, dir, t.elapsed().as_secs_f64(), peak_rss()))
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs [`bench_projections`] on a fresh, throw-away store of the same kind as `target`: a temporary
/// SQLite file beside the target, or fresh JetStream stream and subjects on the target server,
/// deleted afterwards.
pub async fn bench_projections_on(
    target: crate::Target,
    opts: ProjectionBenchOptions,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<ProjectionBenchReport> {
    let scratch = Scratch::new(target, "BENCHP").await?;
    let result = bench_projections(scratch.store.clone(), opts, progress).await;
    scratch.remove().await;
    result
}

/// An empty store for one run: a SQLite file in a temporary folder next to the target's, or a
/// stream of its own on the target's NATS server, deleted afterwards.
pub(crate) struct Scratch {
    pub store: Arc<dyn EventStore>,
    _dir: Option<tempfile::TempDir>,
    nats: Option<(String, String)>,
}

impl Scratch {
    pub async fn new(target: crate::Target, prefix: &str) -> anyhow::Result<Self> {
        match target {
            crate::Target::Sqlite { path } => {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_else(|| ".".into());
                std::fs::create_dir_all(&parent)?;
                let dir = tempfile::tempdir_in(parent)?;
                let store = Arc::new(funnel_store_sqlite::SqliteStore::open(
                    dir.path().join("bench.db"),
                )?);
                Ok(Self {
                    store,
                    _dir: Some(dir),
                    nats: None,
                })
            }
            crate::Target::Nats { url } => {
                let id = uuid::Uuid::now_v7().simple().to_string();
                let suffix = &id[id.len() - 10..];
                let mut nats = funnel_store_nats::NatsOptions::new(url.clone());
                nats.stream_name = format!("{prefix}_{suffix}");
                nats.subject_prefix = format!("{}_{suffix}", prefix.to_lowercase());
                let store = Arc::new(funnel_store_nats::NatsStore::connect(nats.clone()).await?);
                Ok(Self {
                    store,
                    _dir: None,
                    nats: Some((url, nats.stream_name)),
                })
            }
        }
    }

    /// Deletes what the run wrote (the temporary folder goes when dropped).
    pub async fn remove(self) {
        let Self { store, _dir, nats } = self;
        drop(store);
        if let Some((url, stream)) = nats
            && let Ok(client) = async_nats::connect(url.as_str()).await
        {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&stream)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_share_the_planned_offices_and_write_each_office_stream_once() {
        let t = template().await.expect("template");
        assert_eq!(t.offices.len(), 3, "the demo has three offices");
        let copies = 3 * t.office_copies();
        let mut versions = HashMap::new();
        let mut offices = HashSet::new();
        let mut office_streams: HashMap<StreamId, HashSet<u64>> = HashMap::new();
        let mut written = 0u64;
        for k in 0..copies {
            for c in &t.commits {
                if !t.writes(c, k) {
                    continue;
                }
                let r = copy(&t, c, k, &mut versions).expect("copy");
                written += r.events.len() as u64;
                offices.extend(r.events.iter().filter_map(|e| e.office));
                if uuid::Uuid::parse_str(c.stream.id_part()).is_ok_and(|id| t.offices.contains(&id))
                {
                    office_streams.entry(r.stream).or_default().insert(k);
                }
            }
        }
        assert_eq!(offices.len() as u64, OFFICES);
        assert_eq!(office_streams.len() as u64, OFFICES);
        assert!(
            office_streams.values().all(|ks| ks.len() == 1),
            "an office's stream is written by one copy only"
        );
        assert_eq!(copies_for(&t, written), (copies, written));
        let (k, w) = copies_for(&t, written + 1);
        assert_eq!(k, copies + 1);
        assert!(w > written);
    }
}
