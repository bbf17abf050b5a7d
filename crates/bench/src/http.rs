//! `funnel bench http`: the paths users touch, through `funnel serve` itself (in this process, on
//! the embedded store, over loopback HTTP with a client of `connections` connections), on a log of
//! at least `events` events: the replicated demo organisation of `bench projections`, plus an office
//! of the benchmark's own whose engineer registers leads and whose executive reads.
//!
//! | key | what is timed |
//! |---|---|
//! | `register_per_s`, `register_p99_ms` | `POST /leads` by an engineer, every lead a new customer |
//! | `pipeline_p99_ms` | `GET /pipeline` as an executive (every office) |
//! | `as_of_p99_ms` | `GET /pipeline?as_of=` at moments spread over the log's history, each asked once |
//! | `audit_lead_p99_ms` | `GET /leads/{id}/audit` of leads drawn from the whole index |
//!
//! The reads start once the read models reflect the last registration, so that they time their
//! own path rather than the runner's catching up with the writes; each phase's line gives the
//! size of its answers beside their latencies. The client does not ask for compressed answers:
//! it shares the two cores with the server, and inflating a kept pipeline (222 KB) there cost
//! more than the copy it saved (2,738 polls/s against about 8,800 without).
//!
//! Every answer must be a success: a benchmark that counted refusals would measure the wrong
//! thing, so the first failure ends the run with the server's answer. The saga runtime is off
//! (`workflows.enabled = false`): the replicated history's timers would otherwise fire while the
//! paths are timed. Build with `--release`.

use crate::projections::{ProjectionBenchOptions, generate};
use anyhow::Context as _;
use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_store::{EventStore, Filter};
use funnel_types::{OfficeId, Position, Role, StaffId, SystemClock};
use futures::StreamExt as _;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to generate and how much of each path to time.
#[derive(Clone, Debug, Serialize)]
pub struct HttpBenchOptions {
    /// At least this many events in the log before the timed phases.
    pub events: u64,
    /// Connections of the client (requests in flight at once).
    pub connections: usize,
    /// `POST /leads` requests.
    pub registrations: usize,
    /// `GET /pipeline` requests.
    pub pipelines: usize,
    /// `GET /pipeline?as_of=` requests, each at a moment of its own.
    pub as_ofs: usize,
    /// `GET /leads/{id}/audit` requests.
    pub audits: usize,
}

impl Default for HttpBenchOptions {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            connections: 32,
            registrations: 10_000,
            pipelines: 1_000,
            as_ofs: 64,
            audits: 2_000,
        }
    }
}

/// The figures, with exactly the keys the project's benchmark names.
#[derive(Clone, Debug, Serialize)]
pub struct HttpBenchReport {
    pub register_per_s: f64,
    pub register_p99_ms: f64,
    pub pipeline_p99_ms: f64,
    pub as_of_p99_ms: f64,
    pub audit_lead_p99_ms: f64,
}

/// The project's targets.
pub const REGISTER_PER_S_TARGET: f64 = 3_000.0;
pub const REGISTER_P99_MS_TARGET: f64 = 50.0;
pub const PIPELINE_P99_MS_TARGET: f64 = 5.0;
pub const AS_OF_P99_MS_TARGET: f64 = 250.0;
pub const AUDIT_LEAD_P99_MS_TARGET: f64 = 5.0;

impl std::fmt::Display for HttpBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows: [(&str, f64, &str, f64, bool); 5] = [
            (
                "register_per_s",
                self.register_per_s,
                "≥",
                REGISTER_PER_S_TARGET,
                self.register_per_s >= REGISTER_PER_S_TARGET,
            ),
            (
                "register_p99_ms",
                self.register_p99_ms,
                "≤",
                REGISTER_P99_MS_TARGET,
                self.register_p99_ms <= REGISTER_P99_MS_TARGET,
            ),
            (
                "pipeline_p99_ms",
                self.pipeline_p99_ms,
                "≤",
                PIPELINE_P99_MS_TARGET,
                self.pipeline_p99_ms <= PIPELINE_P99_MS_TARGET,
            ),
            (
                "as_of_p99_ms",
                self.as_of_p99_ms,
                "≤",
                AS_OF_P99_MS_TARGET,
                self.as_of_p99_ms <= AS_OF_P99_MS_TARGET,
            ),
            (
                "audit_lead_p99_ms",
                self.audit_lead_p99_ms,
                "≤",
                AUDIT_LEAD_P99_MS_TARGET,
                self.audit_lead_p99_ms <= AUDIT_LEAD_P99_MS_TARGET,
            ),
        ];
        for (name, value, op, target, met) in rows {
            let verdict = if met { "meets" } else { "misses" };
            writeln!(
                f,
                "{name:<18} {value:>10.1}  ({verdict} the target {op} {target})"
            )?;
        }
        Ok(())
    }
}

/// Latencies of one phase, in milliseconds, and its wall time.
struct Phase {
    latencies_ms: Vec<f64>,
    took: Duration,
    /// The latest position an answer of the phase named (a write's).
    last_position: Option<u64>,
    /// Bytes of the answers' bodies, together.
    bytes: u64,
}

impl Phase {
    fn quantile(&self, q: f64) -> f64 {
        let mut l = self.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        if l.is_empty() {
            return 0.0;
        }
        let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
        l[rank - 1]
    }

    fn per_s(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.took.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn line(&self, name: &str) -> String {
        format!(
            "  {name:<10} {:>6} requests in {:>6.1}s: {:>8.0}/s, p50 {:>7.1} ms, p99 {:>7.1} ms, max {:>7.1} ms, {:>7.1} KB per answer\n",
            self.latencies_ms.len(),
            self.took.as_secs_f64(),
            self.per_s(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.quantile(1.0),
            self.bytes as f64 / 1000.0 / self.latencies_ms.len().max(1) as f64,
        )
    }
}

/// A request of a phase: method, path and query, bearer token, body.
struct Call {
    method: reqwest::Method,
    path: String,
    token: String,
    body: Option<serde_json::Value>,
}

/// Sends `calls` with `connections` in flight, timing each; fails on the first answer that is not
/// a success.
async fn phase(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    calls: Vec<Call>,
    connections: usize,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<Phase> {
    let total = calls.len() as u64;
    let started = Instant::now();
    let mut answers = futures::stream::iter(calls)
        .map(|call| async move {
            let mut request = client
                .request(call.method, format!("{base}{}", call.path))
                .bearer_auth(&call.token);
            if let Some(body) = &call.body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(body)?);
            }
            let t = Instant::now();
            let answer = request.send().await?;
            let status = answer.status();
            let bytes = answer.bytes().await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(
                status.is_success(),
                "{} {} answered {status}: {}",
                name,
                call.path,
                String::from_utf8_lossy(&bytes)
            );
            // The position of a write's answer (small; a report is not parsed).
            let position = (bytes.len() < 1024)
                .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .flatten()
                .and_then(|v| v["position"].as_u64());
            Ok::<_, anyhow::Error>((ms, position, bytes.len() as u64))
        })
        .buffer_unordered(connections.max(1));
    let mut latencies_ms = Vec::with_capacity(total as usize);
    let mut last_position = None;
    let mut bytes = 0u64;
    while let Some(answer) = answers.next().await {
        let (ms, position, size) = answer?;
        latencies_ms.push(ms);
        bytes += size;
        last_position = last_position.max(position);
        progress(name, latencies_ms.len() as u64, total);
    }
    Ok(Phase {
        latencies_ms,
        took: started.elapsed(),
        last_position,
        bytes,
    })
}

async fn system(engine: &Engine, cmd: Command) -> anyhow::Result<()> {
    engine
        .execute(CommandMeta::new(Who::System("bench".into())), cmd)
        .await?;
    Ok(())
}

/// The benchmark's own office, with an engineer and an executive and a token for each:
/// (office, engineer's token, executive's token, the log's head after them).
async fn bootstrap(
    store: Arc<dyn EventStore>,
) -> anyhow::Result<(OfficeId, String, String, Position)> {
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
    let office = OfficeId::derived("BENCH-HTTP");
    system(
        &engine,
        Command::Office {
            office_id: office,
            cmd: OfficeCommand::Open {
                office_id: office,
                name: "基准测试办事处".into(),
                code: "BENCH".into(),
                timezone: "Asia/Shanghai".into(),
                region: String::new(),
            },
        },
    )
    .await?;
    let mut tokens = Vec::new();
    let mut head = Position::START;
    for (name, role, office) in [
        ("基准工程师", Role::SalesEngineer, Some(office)),
        ("基准总经理", Role::Executive, None),
    ] {
        let id = StaffId::derived(name);
        system(
            &engine,
            Command::Staff {
                staff_id: id,
                cmd: StaffCommand::Join {
                    staff_id: id,
                    name: name.into(),
                    role,
                    office,
                },
            },
        )
        .await?;
        let issued = funnel_server::tokens::issue(&engine, Who::System("bench".into()), id).await?;
        head = issued.position;
        tokens.push(issued.token);
    }
    let executive = tokens.pop().context("executive token")?;
    let engineer = tokens.pop().context("engineer token")?;
    Ok((office, engineer, executive, head))
}

/// When the log's events occurred: (first, last).
async fn history(
    store: &dyn EventStore,
) -> anyhow::Result<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let first = store
        .read_all(Position::START, &Filter::All, 1)
        .await?
        .first()
        .map(|r| r.meta.occurred_at)
        .context("an empty log")?;
    let head = store.head().await?;
    let last = store
        .read_all(Position(head.0.saturating_sub(1)), &Filter::All, 1)
        .await?
        .first()
        .map(|r| r.meta.occurred_at)
        .context("an empty log")?;
    Ok((first, last))
}

/// Generates the log in a temporary folder, starts `funnel serve` on it in this process, and times
/// the paths.
pub async fn bench_http(
    opts: HttpBenchOptions,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<(HttpBenchReport, String)> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("funnel.db");
    let (events, generate_seconds, office, engineer, executive, head, span) = {
        let store: Arc<dyn EventStore> = Arc::new(funnel_store_sqlite::SqliteStore::open(&db)?);
        let generate_opts = ProjectionBenchOptions {
            events: opts.events,
            ..ProjectionBenchOptions::default()
        };
        let (events, seconds) = generate(&store, &generate_opts, progress).await?;
        let span = history(store.as_ref()).await?;
        let (office, engineer, executive, head) = bootstrap(store).await?;
        (events, seconds, office, engineer, executive, head, span)
    };

    let mut options = funnel_server::ServeOptions::default();
    options.store.url = format!("sqlite:{}", db.display());
    options.store.projections = Some(dir.path().join("funnel.projections.db"));
    options.http.listen = "127.0.0.1:0".into();
    options.workflows.enabled = false;
    // As-of reports are computed at most `max_replays` at a time (one more is answered 503), so
    // that phase keeps no more requests in flight: it times a report, not the refusal.
    let replays = options.http.max_replays;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (listening, address) = tokio::sync::oneshot::channel();
    let finished = std::sync::atomic::AtomicBool::new(false);
    // `serve` runs on this task beside the client (its future is not `Send`); its connections and
    // models run on the runtime's threads as they would in `funnel serve`.
    let server = async {
        let served = funnel_server::serve(
            options,
            async {
                let _ = stopped.await;
            },
            move |at| {
                let _ = listening.send(at);
            },
        )
        .await;
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        served
    };
    let client_side = async {
        let result = async {
            let at = address
                .await
                .context("funnel serve stopped before it listened")?;
            let base = format!("http://{at}");
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(opts.connections)
                .timeout(Duration::from_secs(600))
                .build()?;
            let caught_up = Instant::now();
            let serving = || !finished.load(std::sync::atomic::Ordering::SeqCst);
            wait_for(&client, &base, &executive, head, events, &serving, progress).await?;
            let catch_up_seconds = caught_up.elapsed().as_secs_f64();
            let (leads, total) = lead_ids(&client, &base, &executive, opts.audits).await?;
            anyhow::ensure!(!leads.is_empty(), "the generated log has no lead");
            let (report, phases) = timed(
                &client, &base, &opts, replays, office, &engineer, &executive, &leads, span,
                progress,
            )
            .await?;
            let details = format!(
                "http on sqlite: {events} events (generated in {generate_seconds:.1}s), {total} \
                 leads, read models caught up in {catch_up_seconds:.1}s, {} connections ({} for \
                 as-of, the server's http.max_replays)\n{phases}",
                opts.connections,
                opts.connections.min(replays)
            );
            Ok::<_, anyhow::Error>((report, details))
        }
        .await;
        let _ = stop.send(());
        result
    };
    let (served, result) = tokio::join!(server, client_side);
    let answer = result?;
    served?;
    Ok(answer)
}

/// Waits until the read models reflect `head` (the bootstrap's last write).
async fn wait_for(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    head: Position,
    events: u64,
    serving: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<()> {
    loop {
        anyhow::ensure!(
            serving(),
            "funnel serve stopped while its read models caught up"
        );
        let answer = client
            .get(format!("{base}/leads?limit=1"))
            .bearer_auth(token)
            .send()
            .await?;
        if answer.status().is_success() {
            let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await?)?;
            let at = body["position"].as_u64().unwrap_or(0);
            progress("catch up", at.min(events), events);
            if at >= head.0 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Up to `want` lead ids spread over the whole index, and how many leads it holds.
async fn lead_ids(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    want: usize,
) -> anyhow::Result<(Vec<String>, u64)> {
    let first: serde_json::Value = serde_json::from_slice(
        &client
            .get(format!("{base}/leads?limit=1"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?,
    )?;
    let total = first["total"].as_u64().unwrap_or(0);
    let step = (total / want.max(1) as u64).max(1);
    // Every `step`-th lead of the index, walked in pages by keyset (`after=`): an offset would
    // cost the server its whole prefix on every page.
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut seen = 0u64;
    while ids.len() < want {
        let mut url = format!("{base}/leads?limit=500");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: serde_json::Value = serde_json::from_slice(
            &client
                .get(url)
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?,
        )?;
        for lead in page["leads"].as_array().into_iter().flatten() {
            if seen.is_multiple_of(step)
                && ids.len() < want
                && let Some(id) = lead["id"].as_str()
            {
                ids.push(id.to_string());
            }
            seen += 1;
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    Ok((ids, total))
}

#[allow(clippy::too_many_arguments)]
async fn timed(
    client: &reqwest::Client,
    base: &str,
    opts: &HttpBenchOptions,
    replays: usize,
    office: OfficeId,
    engineer: &str,
    executive: &str,
    leads: &[String],
    (first, last): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<(HttpBenchReport, String)> {
    let get = |path: String, token: &str| Call {
        method: reqwest::Method::GET,
        path,
        token: token.to_string(),
        body: None,
    };
    let registrations = (0..opts.registrations)
        .map(|n| Call {
            method: reqwest::Method::POST,
            path: "/leads".into(),
            token: engineer.to_string(),
            body: Some(serde_json::json!({
                "customer_name": format!("基准客户{n}号置业有限公司"),
                "project_name": format!("基准花园{n}期"),
                "industry": "real_estate",
                "purchase_mode": "independent",
                "channel": "building_sweep",
                "office": office,
                "location": "上海市浦东新区",
                "contact": { "name": format!("联系人{n}"), "phone": format!("139{n:08}") },
                "need": "需要楼宇对讲系统",
            })),
        })
        .collect();
    let c = opts.connections;
    let register = phase(client, base, "register", registrations, c, progress).await?;
    // Each phase times its own path: the reads start once the read models reflect every
    // registration, not while the runner is still applying the last of them.
    if let Some(last) = register.last_position {
        let settled = client
            .get(format!("{base}/leads?limit=1&at_least={last}"))
            .bearer_auth(executive)
            .send()
            .await?;
        anyhow::ensure!(
            settled.status().is_success(),
            "the read models did not reach the registrations: {}",
            settled.text().await?
        );
    }
    let pipelines = (0..opts.pipelines)
        .map(|_| get("/pipeline".into(), executive))
        .collect();
    let pipeline = phase(client, base, "pipeline", pipelines, c, progress).await?;
    let span = (last - first).num_seconds().max(1);
    let as_ofs = (0..opts.as_ofs)
        .map(|i| {
            // Evenly inside the history, each moment asked once (a repeated one would be cached).
            let at =
                first + chrono::Duration::seconds(span * (i as i64 + 1) / (opts.as_ofs as i64 + 1));
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            get(format!("/pipeline?as_of={at}"), executive)
        })
        .collect();
    let as_of = phase(client, base, "as-of", as_ofs, c.min(replays), progress).await?;
    let audits = (0..opts.audits)
        .map(|i| {
            get(
                format!("/leads/{}/audit", leads[i % leads.len()]),
                executive,
            )
        })
        .collect();
    let audit = phase(client, base, "audit", audits, c, progress).await?;
    let report = HttpBenchReport {
        register_per_s: register.per_s(),
        register_p99_ms: register.quantile(0.99),
        pipeline_p99_ms: pipeline.quantile(0.99),
        as_of_p99_ms: as_of.quantile(0.99),
        audit_lead_p99_ms: audit.quantile(0.99),
    };
    let lines = [
        register.line("register"),
        pipeline.line("pipeline"),
        as_of.line("as-of"),
        audit.line("audit"),
    ]
    .concat();
    Ok((report, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_rank_that_covers_the_share() {
        let p = Phase {
            latencies_ms: (1..=100).rev().map(f64::from).collect(),
            took: Duration::from_secs(2),
            last_position: None,
            bytes: 0,
        };
        assert_eq!(p.quantile(0.99), 99.0);
        assert_eq!(p.quantile(0.5), 50.0);
        assert_eq!(p.quantile(1.0), 100.0);
        assert_eq!(p.per_s(), 50.0);
        let one = Phase {
            latencies_ms: vec![7.0],
            took: Duration::from_secs(1),
            last_position: None,
            bytes: 0,
        };
        assert_eq!(one.quantile(0.99), 7.0);
    }
}
