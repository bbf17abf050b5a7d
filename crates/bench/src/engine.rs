//! `funnel bench engine`: what a command costs through the engine, on either backend.
//!
//! - `flatness`: commands per second on a lead whose stream holds `long_stream` events (10,000)
//!   over commands per second on a lead of `short_stream` events (10), each measured by a fresh
//!   engine (nothing in memory: the first command reads the stream's snapshot and the events after
//!   it), one command at a time, rounds alternating between the two leads; medians of the rounds.
//!   The project's target is at least 0.9.
//! - `engine_ratio`: engine commands per second (a visit logged by the lead's owner, one event per
//!   command, over `aggregates` leads, `in_flight` commands outstanding) over the store's raw
//!   append rate in the same run (`EventStore::append`, the same event bytes, one event per append,
//!   the same number of streams and appends outstanding, expected versions exact). Target ≥ 0.5.
//!
//! The histories are written through the engine. Everything is written to a temporary SQLite file
//! next to the store path, or to fresh JetStream streams (deleted afterwards) on the server named,
//! or on a `nats-server` this benchmark starts and stops. Build with `--release`.

use anyhow::Context as _;
use chrono::{DateTime, TimeZone, Utc};
use funnel_domain::Policy;
use funnel_domain::lead::{LeadCommand, LogVisit, Register};
use funnel_domain::model::*;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_store::{AppendRequest, EventStore, ProposedEvent};
use funnel_types::*;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The project's targets.
pub const FLATNESS_TARGET: f64 = 0.9;
pub const ENGINE_RATIO_TARGET: f64 = 0.5;

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct EngineBenchOptions {
    pub long_stream: u64,
    pub short_stream: u64,
    /// Commands per round on each of the two leads.
    pub flat_commands: usize,
    pub flat_rounds: usize,
    /// Commands (and raw appends) in the throughput phase.
    pub ratio_commands: usize,
    pub aggregates: usize,
    pub in_flight: usize,
}

impl Default for EngineBenchOptions {
    fn default() -> Self {
        Self {
            long_stream: 10_000,
            short_stream: 10,
            flat_commands: 400,
            flat_rounds: 3,
            ratio_commands: 40_000,
            aggregates: 2_048,
            in_flight: 256,
        }
    }
}

/// What `--json` prints: exactly these keys.
#[derive(Clone, Debug, Serialize)]
pub struct EngineBenchReport {
    pub flatness: f64,
    pub engine_ratio: f64,
}

/// The figures behind the report, for the table and the notes on stderr.
#[derive(Clone, Debug, Default)]
pub struct EngineBenchDetails {
    pub backend: String,
    pub long_per_s: Vec<f64>,
    pub short_per_s: Vec<f64>,
    pub engine_per_s: f64,
    pub raw_per_s: f64,
    pub snapshot_bytes: Option<usize>,
}

impl std::fmt::Display for EngineBenchDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "engine on {}", self.backend)?;
        writeln!(
            f,
            "  long stream  commands/s per round: {}",
            show(&self.long_per_s)
        )?;
        writeln!(
            f,
            "  short stream commands/s per round: {}",
            show(&self.short_per_s)
        )?;
        writeln!(
            f,
            "  engine commands/s {:.0}, raw appends/s {:.0}",
            self.engine_per_s, self.raw_per_s
        )?;
        if let Some(b) = self.snapshot_bytes {
            writeln!(f, "  snapshot of the long stream: {b} bytes")?;
        }
        Ok(())
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

fn office() -> OfficeId {
    OfficeId::derived("bench-engine-office")
}

fn engine(store: &Arc<dyn EventStore>) -> Engine {
    Engine::new(
        store.clone(),
        Policy::default(),
        Arc::new(ManualClock::new(t0())),
    )
}

fn register(n: usize) -> Command {
    Command::Lead {
        lead_id: None,
        cmd: LeadCommand::Register(Register {
            customer_name: format!("客户{n}"),
            project_name: "园区对讲".into(),
            industry: Industry::RealEstate,
            purchase_mode: PurchaseMode::Independent,
            channel: Channel::BuildingSweep,
            office: office(),
            location: "上海".into(),
            contact: Contact {
                name: "李".into(),
                phone: "13800000000".into(),
            },
            need: "楼宇对讲".into(),
        }),
    }
}

fn visit(lead: LeadId, n: u64) -> Command {
    Command::Lead {
        lead_id: Some(lead),
        cmd: LeadCommand::LogVisit(LogVisit {
            visit_id: VisitId::derived(&format!("{lead}/{n}")),
            kind: ContactKind::Visit,
            visited_at: t0(),
            purposes: vec![],
            summary: format!("第{n}次拜访"),
            information_gained: String::new(),
            customer_feedback: String::new(),
            next_step: String::new(),
            met: vec![],
        }),
    }
}

async fn run(e: &Engine, who: Who, cmd: Command) -> anyhow::Result<funnel_engine::Accepted> {
    e.execute(CommandMeta::new(who).at(t0()), cmd)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))
}

/// An office and `n` engineers.
async fn world(e: &Engine, n: usize) -> anyhow::Result<Vec<StaffId>> {
    let sys = Who::System("bench".into());
    run(
        e,
        sys.clone(),
        Command::Office {
            office_id: office(),
            cmd: OfficeCommand::Open {
                office_id: office(),
                name: "上海".into(),
                code: "SH".into(),
                timezone: "Asia/Shanghai".into(),
                region: String::new(),
            },
        },
    )
    .await?;
    let mut staff = Vec::new();
    for i in 0..n {
        let id = StaffId::derived(&format!("bench-engineer-{i}"));
        run(
            e,
            sys.clone(),
            Command::Staff {
                staff_id: id,
                cmd: StaffCommand::Join {
                    staff_id: id,
                    name: format!("工程师{i}"),
                    role: Role::SalesEngineer,
                    office: Some(office()),
                },
            },
        )
        .await?;
        staff.push(id);
    }
    Ok(staff)
}

/// Registers lead `n` for `owner` and returns its id.
async fn lead(e: &Engine, owner: StaffId, n: usize) -> anyhow::Result<LeadId> {
    let a = run(e, Who::Staff(owner), register(n)).await?;
    match a.events.first().map(|e| &e.payload) {
        Some(funnel_domain::Event::LeadRegistered(r)) => Ok(r.lead_id),
        other => anyhow::bail!("registration answered {other:?}"),
    }
}

/// Adds visits until the lead's stream holds `events` events.
async fn grow(
    e: &Engine,
    store: &Arc<dyn EventStore>,
    owner: StaffId,
    lead: LeadId,
    events: u64,
    progress: &dyn Fn(&str, u64, u64),
) -> anyhow::Result<()> {
    let stream = StreamId::new("lead", lead)?;
    let mut version = store.stream_version(&stream).await?.map_or(0, |v| v.0);
    let mut n = 0;
    while version < events {
        n += 1;
        let a = run(e, Who::Staff(owner), visit(lead, 1_000_000 + n)).await?;
        version = a.last_version.0;
        if n % 500 == 0 {
            progress("bench engine: history", version, events);
        }
    }
    Ok(())
}

/// Commands per second of `count` visits, one at a time, by a fresh engine.
async fn rate_one_at_a_time(
    store: &Arc<dyn EventStore>,
    owner: StaffId,
    lead: LeadId,
    count: usize,
    first: u64,
) -> anyhow::Result<f64> {
    let e = engine(store);
    let start = Instant::now();
    for n in 0..count as u64 {
        run(&e, Who::Staff(owner), visit(lead, first + n)).await?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Runs both phases on `store` (fresh, empty).
pub async fn bench_engine_on(
    store: Arc<dyn EventStore>,
    opts: &EngineBenchOptions,
    progress: &dyn Fn(&str, u64, u64),
) -> anyhow::Result<(EngineBenchReport, EngineBenchDetails)> {
    anyhow::ensure!(
        opts.in_flight > 0 && opts.aggregates > 0,
        "sizes must be positive"
    );
    let mut details = EngineBenchDetails {
        backend: store.backend().to_string(),
        ..EngineBenchDetails::default()
    };
    let setup = engine(&store);
    let staff = world(&setup, 8).await?;

    // Flatness.
    let long = lead(&setup, staff[0], 0).await?;
    let short = lead(&setup, staff[1], 1).await?;
    grow(&setup, &store, staff[0], long, opts.long_stream, progress).await?;
    grow(&setup, &store, staff[1], short, opts.short_stream, progress).await?;
    let mut next = 0u64;
    for round in 0..opts.flat_rounds {
        progress(
            "bench engine: flatness rounds",
            round as u64,
            opts.flat_rounds as u64,
        );
        details
            .short_per_s
            .push(rate_one_at_a_time(&store, staff[1], short, opts.flat_commands, next).await?);
        details
            .long_per_s
            .push(rate_one_at_a_time(&store, staff[0], long, opts.flat_commands, next).await?);
        next += opts.flat_commands as u64;
    }
    details.snapshot_bytes = store
        .load_snapshot(&StreamId::new("lead", long)?)
        .await?
        .map(|s| s.data.len());
    let flatness = median(&details.long_per_s) / median(&details.short_per_s);

    // Engine against raw appends, `aggregates` streams each.
    let mut leads = Vec::with_capacity(opts.aggregates);
    for i in 0..opts.aggregates {
        let owner = staff[i % staff.len()];
        leads.push((owner, lead(&setup, owner, 10 + i).await?));
        if i % 256 == 0 {
            progress("bench engine: leads", i as u64, opts.aggregates as u64);
        }
    }
    // The bytes of a real visit event, for the raw side.
    let sample = run(&setup, Who::Staff(leads[0].0), visit(leads[0].1, 0)).await?;
    let sample = sample.events.first().context("a visit has an event")?;
    let payload = bytes::Bytes::from(funnel_codec::encode(&sample.payload));
    let event_type = sample.meta.event_type.clone();

    let per_stream = (opts.ratio_commands / opts.aggregates).max(1);
    let total = (per_stream * opts.aggregates) as u64;
    // Raw: each worker owns the streams w, w + in_flight, … and appends to them in turn.
    let raw_streams: Vec<StreamId> = (0..opts.aggregates)
        .map(|_| StreamId::new("lead", uuid::Uuid::now_v7()))
        .collect::<Result<_, _>>()?;
    let raw_streams = Arc::new(raw_streams);
    let workers = opts.in_flight.min(opts.aggregates);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        let streams = raw_streams.clone();
        let payload = payload.clone();
        let event_type = event_type.clone();
        let done = done.clone();
        let actor = sample.meta.actor.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (w..streams.len()).step_by(workers).collect();
            let mut versions = vec![0u64; mine.len()];
            for round in 0..per_stream {
                for (k, &s) in mine.iter().enumerate() {
                    let command = CommandId::new();
                    let req = AppendRequest {
                        stream: streams[s].clone(),
                        expected: if versions[k] == 0 {
                            ExpectedVersion::NoStream
                        } else {
                            ExpectedVersion::Exact(Version(versions[k]))
                        },
                        command_id: command,
                        events: vec![ProposedEvent {
                            event_id: EventId::v7_from_parts(
                                t0().timestamp_millis() as u64 + round as u64,
                                command.0.as_bytes()[6..16].try_into().unwrap_or([0; 10]),
                            ),
                            event_type: event_type.clone(),
                            schema_version: 1,
                            occurred_at: t0(),
                            actor: actor.clone(),
                            office: Some(office()),
                            correlation_id: CorrelationId(command.0),
                            causation_id: command.0,
                            payload: payload.clone(),
                        }],
                    };
                    let o = store.append(req).await?;
                    versions[k] = o.last_version.0;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    details.raw_per_s = total as f64 / start.elapsed().as_secs_f64();

    // Engine: the same shape, a visit by the owner per command.
    let e = setup.clone();
    let leads = Arc::new(leads);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let e = e.clone();
        let leads = leads.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (w..leads.len()).step_by(workers).collect();
            for round in 0..per_stream {
                for &s in &mine {
                    let (owner, lead) = leads[s];
                    run(&e, Who::Staff(owner), visit(lead, 1 + round as u64)).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    details.engine_per_s = total as f64 / start.elapsed().as_secs_f64();
    let report = EngineBenchReport {
        flatness,
        engine_ratio: details.engine_per_s / details.raw_per_s,
    };
    Ok((report, details))
}

/// Runs the benchmark on `target`: a temporary SQLite file next to its path, or fresh streams on
/// the JetStream server (deleted afterwards).
pub async fn bench_engine(
    target: crate::Target,
    opts: &EngineBenchOptions,
    progress: &dyn Fn(&str, u64, u64),
) -> anyhow::Result<(EngineBenchReport, EngineBenchDetails)> {
    match target {
        crate::Target::Sqlite { path } => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            funnel_store::files::create_private_dir_all(parent)
                .with_context(|| format!("create the directory {}", parent.display()))?;
            let dir = tempfile::Builder::new()
                .prefix(".funnel-bench-engine-")
                .tempdir_in(parent)
                .with_context(|| format!("make a temporary directory in {}", parent.display()))?;
            let store: Arc<dyn EventStore> = Arc::new(funnel_store_sqlite::SqliteStore::open(
                dir.path().join("engine.db"),
            )?);
            bench_engine_on(store, opts, progress).await
        }
        crate::Target::Nats { url } => {
            let unique = uuid::Uuid::now_v7().simple().to_string();
            let opts_nats = funnel_store_nats::NatsOptions {
                stream_name: format!("BENCH_ENGINE_{unique}"),
                subject_prefix: format!("bench_engine_{unique}"),
                ..funnel_store_nats::NatsOptions::new(url.clone())
            };
            let store = Arc::new(funnel_store_nats::NatsStore::connect(opts_nats.clone()).await?);
            let snapshots = store.snapshot_stream_name();
            let result = bench_engine_on(store.clone(), opts, progress).await;
            drop(store);
            let client = async_nats::connect(url.split(',').next().unwrap_or(&url)).await?;
            let js = async_nats::jetstream::new(client);
            for name in [&opts_nats.stream_name, &snapshots] {
                if let Err(e) = js.delete_stream(name).await {
                    eprintln!("could not delete benchmark stream {name}: {e}");
                }
            }
            result
        }
    }
}

/// A `nats-server` with JetStream on a free loopback port and a temporary store directory, for a
/// benchmark run on a machine without one; stopped (and its directory removed) when dropped. The
/// binary is `FUNNEL_NATS_SERVER`, else `.tools/bin/nats-server` under the working directory, else
/// `nats-server` on `PATH`.
#[derive(Debug)]
pub struct LocalNats {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl LocalNats {
    pub async fn start() -> anyhow::Result<Self> {
        let binary = std::env::var_os("FUNNEL_NATS_SERVER")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                let local = std::path::PathBuf::from(".tools/bin/nats-server");
                local.exists().then_some(local)
            })
            .unwrap_or_else(|| "nats-server".into());
        let dir = tempfile::Builder::new()
            .prefix("funnel-bench-nats-")
            .tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let url = format!("nats://127.0.0.1:{port}");
        let server = Self {
            child,
            url,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "{} did not start listening on port {port}",
            binary.display()
        )
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
