//! `funnel projections` (status, rebuild) and the persisted read models the queries use: they live in
//! a SQLite file beside the store (`<store file>.projections.db` for the embedded store,
//! `.funnel/projections-<hash>.db` for NATS), are caught up with the log before every query, and are
//! saved with their checkpoints so the next query starts where this one stopped.

use anyhow::Context;
use funnel_app::StoreUrl;
use funnel_projections::models::{Conflicts, Pipeline, PlanCompliance, TouchIndex};
use funnel_projections::{Runner, RunnerOptions};
use funnel_store::EventStore;
use funnel_types::Position;
use std::path::PathBuf;

/// Where the read models of a store are kept, unless `--projections` says otherwise (the same
/// place `funnel serve` uses).
pub fn default_path(url: &StoreUrl) -> PathBuf {
    funnel_server::projections_path(url)
}

/// Opens the runner with every read model registered.
pub fn open_runner(path: &std::path::Path) -> anyhow::Result<Runner> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        funnel_store::files::create_private_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut runner = Runner::open(path, RunnerOptions::default())
        .with_context(|| format!("opening read models at {}", path.display()))?;
    runner
        .register::<Pipeline>()?
        .register_tables::<TouchIndex>()?
        .register::<Conflicts>()?
        .register::<PlanCompliance>()?
        .register::<funnel_app::auth::Access>()?
        .register::<funnel_workflows::Tasks>()?
        .register::<funnel_workflows::Instances>()?
        .register_tables::<funnel_projections::models::LeadIndex>()?;
    Ok(runner)
}

pub(crate) fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Catches the runner up with the log (showing progress on long catch-ups) and, with `at_least`,
/// waits until it has reached that position (read-your-writes).
pub async fn catch_up(
    runner: &mut Runner,
    store: &dyn EventStore,
    at_least: Option<Position>,
) -> anyhow::Result<()> {
    let head = store.head().await?;
    let progress = bar(head.0, "projecting");
    let start = runner.low_water().unwrap_or(Position::START);
    let big = head.0.saturating_sub(start.0) > 50_000;
    runner
        .catch_up(store, &mut |p| {
            if big {
                progress.set_length(p.head.0);
                progress.set_position(p.position.0);
            }
        })
        .await?;
    progress.finish_and_clear();
    if let Some(p) = at_least {
        runner
            .wait_until(store, p, std::time::Duration::from_secs(10))
            .await
            .with_context(|| format!("the read models did not reach position {p} within 10 s"))?;
    }
    runner.save()?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ProjectionsArgs {
    #[command(subcommand)]
    pub what: Option<ProjectionsWhat>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProjectionsWhat {
    /// Rebuild one read model from position zero (beside the current one, switching when caught up).
    Rebuild {
        /// `pipeline`, `touches`, `conflicts` or `plans`.
        name: String,
    },
}

pub async fn run(
    url: &StoreUrl,
    path: &std::path::Path,
    args: ProjectionsArgs,
) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let mut runner = open_runner(path)?;
    match args.what {
        None => {
            let head = store.head().await?;
            runner.note_head(head, store.backend());
            let status = runner.status();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            println!("read models at {} (log head {head})", path.display());
            println!(
                "{:<10} {:>7} {:>10} {:>8} {:>7}  state",
                "name", "version", "checkpoint", "lag", "parked"
            );
            for s in &status {
                println!(
                    "{:<10} {:>7} {:>10} {:>8} {:>7}  {:?}",
                    s.name,
                    s.version,
                    s.checkpoint,
                    s.lag,
                    s.parked.len(),
                    s.state
                );
                for p in s.parked.iter().take(5) {
                    println!(
                        "    parked at {}: {} — {}",
                        p.position, p.event_type, p.reason
                    );
                }
            }
        }
        Some(ProjectionsWhat::Rebuild { name }) => {
            let known: Vec<&str> = runner.status().iter().map(|s| s.name).collect();
            if !known.contains(&name.as_str()) {
                anyhow::bail!("no read model `{name}`; known: {}", known.join(", "));
            }
            runner.rebuild(&name)?;
            let head = store.head().await?;
            let progress = bar(head.0, &format!("rebuilding {name}"));
            runner
                .catch_up(store.as_ref(), &mut |p| {
                    progress.set_length(p.head.0);
                    if let Some(r) = p.rebuilds.iter().find(|r| r.name == name) {
                        progress.set_position(r.checkpoint.0);
                    }
                })
                .await?;
            runner.save()?;
            progress.finish_and_clear();
            println!("rebuilt {name} up to position {}", runner.live_checkpoint());
        }
    }
    Ok(())
}
