//! `funnel demo`: writes the demo history into the chosen store, with a progress bar.

use funnel_app::StoreUrl;
use funnel_demo::DemoOptions;
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_types::SystemClock;
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
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(url: &StoreUrl, args: DemoArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
    let opts = DemoOptions {
        seed: args.seed,
        leads: args.leads as usize,
        ..DemoOptions::default()
    };
    let started = Instant::now();
    let report = load(&engine, &opts).await?;
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
        "workflows",
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
