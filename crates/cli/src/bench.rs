//! `funnel bench store`, `funnel bench engine`, `funnel bench export` and `funnel bench projections`:
//! Funnel's paths against raw baselines, on the backend `--store` names (`bench engine --backend`
//! may choose another); `funnel bench http`: the HTTP paths users touch, on a temporary embedded
//! store.
//! Build with `--release`.

use funnel_app::StoreUrl;
use funnel_bench::{ProjectionBenchOptions, StoreBenchOptions, Target};
use std::sync::Mutex;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
    /// Print one JSON object instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// Append and read-all rates of the store against raw async-nats or rusqlite.
    Store {
        /// Events to append.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Payload size of each event, in bytes.
        #[arg(long, default_value_t = 300)]
        payload: usize,
        /// Appends in flight at once.
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
        /// Streams the events are spread over.
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// Seal personal fields on Funnel's side (the embedded store): every event a
        /// registration whose contact is sealed on append and opened on read-all.
        #[arg(long)]
        sealed: bool,
    },
    /// Command cost through the engine: `flatness` (commands/s on a 10,000-event lead ÷ on a
    /// 10-event lead) and `engine_ratio` (engine commands/s over the store's raw append rate).
    Engine {
        /// `sqlite` (a temporary file next to the store) or `nats` (the `--store` server when it
        /// is one, else a `nats-server` started for the run); default: the `--store` backend.
        #[arg(long, value_parser = ["sqlite", "nats"])]
        backend: Option<String>,
        /// Events in the long stream.
        #[arg(long, default_value_t = 10_000)]
        long_stream: u64,
        /// Commands in the throughput phase.
        #[arg(long, default_value_t = 40_000)]
        commands: usize,
        /// Commands in flight in the throughput phase.
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
    },
    /// The whole log as Parquet (what `funnel export events --format parquet` does) from a
    /// generated log, against the store's read-all rate, with the export's peak memory.
    Export {
        /// Events in the generated log.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// The paths users touch, through `funnel serve` itself in this process on a temporary
    /// embedded store (the `--store` one is not touched) holding a generated log: `POST /leads`
    /// (`register_per_s`, `register_p99_ms`), `GET /pipeline` (`pipeline_p99_ms`),
    /// `GET /pipeline?as_of=` (`as_of_p99_ms`) and `GET /leads/{id}/audit`
    /// (`audit_lead_p99_ms`), with `--connections` requests in flight.
    Http {
        /// Events in the generated log (the demo history replicated onto 30 offices).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Connections of the client: requests in flight at once.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Leads registered (`POST /leads`), each a new customer.
        #[arg(long, default_value_t = 10_000)]
        registrations: usize,
        /// `GET /pipeline` requests.
        #[arg(long, default_value_t = 1_000)]
        pipelines: usize,
        /// `GET /pipeline?as_of=` requests, each at a moment of its own within the history.
        #[arg(long, default_value_t = 64)]
        as_ofs: usize,
        /// `GET /leads/{id}/audit` requests, over leads drawn from the whole log.
        #[arg(long, default_value_t = 2_000)]
        audits: usize,
    },
    /// Rebuild of every read model from a generated log, against the store's read-all rate.
    Projections {
        /// Events in the generated log.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Skip the second log of five times `--events` (no `rss_mb_5m` or `rss_growth`; the
        /// run takes a fifth of the time).
        #[arg(long)]
        no_growth: bool,
    },
}

fn target(url: &StoreUrl) -> Target {
    match url {
        StoreUrl::Sqlite(path) => Target::Sqlite { path: path.clone() },
        StoreUrl::Nats(url) => Target::Nats { url: url.clone() },
    }
}

/// Progress on stderr: a line per phase and per tenth of it.
fn progress_printer() -> impl Fn(&str, u64, u64) + Sync {
    let last = Mutex::new((String::new(), u64::MAX));
    move |phase: &str, done: u64, total: u64| {
        let step = (total / 10).max(1);
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if l.0 != phase || l.1 != done / step {
            eprintln!("{phase}: {done}/{total}");
            *l = (phase.to_string(), done / step);
        }
    }
}

pub async fn run(
    url: &StoreUrl,
    _projections: &std::path::Path,
    args: BenchArgs,
) -> anyhow::Result<()> {
    let progress = progress_printer();
    // A benchmark's own logs are off unless asked for: they would be timed with the paths.
    if std::env::var_os("RUST_LOG").is_some() {
        funnel_server::init_logging(&funnel_server::config::LogOptions::default());
    }
    match args.what {
        BenchWhat::Store {
            events,
            payload,
            in_flight,
            streams,
            sealed,
        } => {
            let opts = StoreBenchOptions {
                events,
                payload_bytes: payload,
                in_flight,
                streams,
                sealed,
            };
            let report = funnel_bench::bench_store(target(url), opts, &progress).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        BenchWhat::Engine {
            backend,
            long_stream,
            commands,
            in_flight,
        } => {
            let opts = funnel_bench::EngineBenchOptions {
                long_stream,
                ratio_commands: commands,
                in_flight,
                ..funnel_bench::EngineBenchOptions::default()
            };
            let mut local = None;
            let target = match (backend.as_deref(), url) {
                (Some("nats"), StoreUrl::Sqlite(_)) => {
                    let server = funnel_bench::LocalNats::start().await?;
                    let url = server.url().to_string();
                    local = Some(server);
                    Target::Nats { url }
                }
                (Some("sqlite"), StoreUrl::Nats(_)) => Target::Sqlite {
                    path: std::path::PathBuf::from("funnel.db"),
                },
                _ => target(url),
            };
            let (report, details) = funnel_bench::bench_engine(target, &opts, &progress).await?;
            drop(local);
            eprint!("{details}");
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "flatness     {:.2} (target ≥ {})\nengine_ratio {:.2} (target ≥ {})",
                    report.flatness,
                    funnel_bench::FLATNESS_TARGET,
                    report.engine_ratio,
                    funnel_bench::ENGINE_RATIO_TARGET
                );
            }
        }
        BenchWhat::Export { events } => {
            let report = funnel_bench::bench_export_on(target(url), events, &progress).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        BenchWhat::Http {
            events,
            connections,
            registrations,
            pipelines,
            as_ofs,
            audits,
        } => {
            let opts = funnel_bench::HttpBenchOptions {
                events,
                connections,
                registrations,
                pipelines,
                as_ofs,
                audits,
            };
            let (report, details) = funnel_bench::bench_http(opts, &progress).await?;
            eprint!("{details}");
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        BenchWhat::Projections { events, no_growth } => {
            let opts = ProjectionBenchOptions {
                events,
                growth: !no_growth,
                ..ProjectionBenchOptions::default()
            };
            let report = funnel_bench::bench_projections_on(target(url), opts, &progress).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
    }
    Ok(())
}
