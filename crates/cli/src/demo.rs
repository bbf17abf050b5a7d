//! `funnel demo`: writes the demo history into the chosen store, with a progress bar.
//!
//! The history ends yesterday (headquarters' calendar) unless `--end` names its last day. The
//! options a store was loaded with are kept beside it (`<store stem>.demo.json`), so loading again
//! (or `serve --demo` on a later day) recognises every command and writes nothing.

use anyhow::Context;
use chrono::NaiveDate;
use funnel_app::StoreUrl;
use funnel_demo::DemoOptions;
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_store::EventStore;
use funnel_types::SystemClock;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seed of the generator: the same seed gives the same history.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of leads.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub leads: u64,
    /// Last day of the history (YYYY-MM-DD, headquarters' calendar; default: yesterday, or the
    /// day the demo already in this store ended).
    #[arg(long, value_name = "DATE")]
    pub end: Option<NaiveDate>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What a store's demo history was generated with, kept beside the store.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Loaded {
    seed: u64,
    leads: usize,
    end: NaiveDate,
}

/// Where the options of a store's demo are kept: `<stem>.demo.json` beside a SQLite file, or
/// `.funnel/demo-<hash of the URL>.json` for NATS.
fn loaded_path(url: &StoreUrl) -> PathBuf {
    funnel_server::beside_store(url, "demo", "json")
}

/// The options to load: the last day given, else the one this store's demo was loaded with (same
/// seed and size), else yesterday. A store that already holds events but no record of a demo
/// must be given the last day: a history generated for another day would not match it.
pub async fn options(
    url: &StoreUrl,
    store: &dyn EventStore,
    seed: u64,
    leads: usize,
    end: Option<NaiveDate>,
) -> anyhow::Result<DemoOptions> {
    let saved = std::fs::read_to_string(loaded_path(url))
        .ok()
        .and_then(|t| serde_json::from_str::<Loaded>(&t).ok())
        .filter(|l| l.seed == seed && l.leads == leads);
    let end = match (end, saved) {
        (Some(end), _) => end,
        (None, Some(saved)) => saved.end,
        (None, None) if store.head().await?.0 > 0 => anyhow::bail!(
            "this store already holds events but no record of a demo history for seed {seed} with {leads} leads ({} is missing); pass the last day of the history with --end (or --demo-end), or use another store / 该存储已有事件，但没有种子 {seed}、{leads} 条线索的演示数据记录；请用 --end（或 --demo-end）指定演示数据的最后一天，或换用其他存储",
            loaded_path(url).display()
        ),
        (None, None) => {
            let hq = funnel_domain::DEFAULT_TIME_ZONE;
            let today = chrono::Utc::now().with_timezone(&hq).date_naive();
            return Ok(DemoOptions {
                seed,
                leads,
                ..DemoOptions::ending_before(today)
            });
        }
    };
    Ok(DemoOptions {
        seed,
        leads,
        end,
        ..DemoOptions::default()
    })
}

/// Records what the store's demo was loaded with (after a load that succeeded).
pub fn remember(url: &StoreUrl, opts: &DemoOptions) -> anyhow::Result<()> {
    let path = loaded_path(url);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        funnel_store::files::create_private_dir_all(dir)?;
    }
    let loaded = Loaded {
        seed: opts.seed,
        leads: opts.leads,
        end: opts.end,
    };
    std::fs::write(&path, serde_json::to_string_pretty(&loaded)? + "\n")
        .with_context(|| format!("recording the demo's options in {}", path.display()))
}

pub async fn run(url: &StoreUrl, args: DemoArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
    let opts = options(
        url,
        store.as_ref(),
        args.seed,
        args.leads as usize,
        args.end,
    )
    .await?;
    let started = Instant::now();
    let report = load(&engine, &opts).await?;
    remember(url, &opts)?;
    let head = store.head().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "demo history (seed {}) in {} after {:.1}s: {} commands, {} accepted, {} refused on purpose, {} already there; {} events written; log head at position {}",
        report.seed,
        describe(url),
        started.elapsed().as_secs_f64(),
        report.commands,
        report.accepted,
        report.refused_as_expected,
        report.already_applied,
        report.events_written,
        head,
    );
    println!(
        "{} offices, {} staff, {} leads, {} to {}",
        report.offices, report.staff, report.leads, report.first_day, report.last_day
    );
    let store_arg = match url {
        StoreUrl::Sqlite(p) if p.as_path() == std::path::Path::new(".funnel/funnel.db") => {
            String::new()
        }
        other => format!(" --store {}", describe(other)),
    };
    println!("look at it (with `cargo run --release -p funnel-cli --` for `funnel`):");
    for cmd in [
        "pipeline --office SH",
        "audit conflicts --office BJ",
        "audit plans",
        "workflows run",
        "tasks --staff 陈经理（SH）",
        "tail --from 0 --kind lead.stage_changed --count 5",
        "export events --format cloudevents --category office",
    ] {
        println!("  funnel{store_arg} {cmd}");
    }
    Ok(())
}

/// Runs the demo loader through `engine` with a progress bar on standard error (drawn only on a
/// terminal). Loading is idempotent: commands already in the store are recognised and skipped.
pub async fn load(engine: &Engine, opts: &DemoOptions) -> anyhow::Result<funnel_demo::DemoReport> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} demo [{bar:40}] {pos}/{len} commands {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = funnel_demo::load(engine, opts, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    Ok(report)
}

pub fn describe(url: &StoreUrl) -> String {
    match url {
        StoreUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
        StoreUrl::Nats(u) => u.clone(),
    }
}
