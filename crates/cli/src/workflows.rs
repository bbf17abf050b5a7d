//! `funnel workflows` (run the sagas until idle, list, show, retry) and `funnel tasks` (open tasks
//! per person).

use anyhow::{Context, bail};
use funnel_domain::Policy;
use funnel_engine::{Engine, StoreUrl};
use funnel_projections::ReadModel;
use funnel_store::{Filter, read_whole_stream};
use funnel_types::{Position, StaffId, StreamId, SystemClock, WorkflowId};
use funnel_workflows::{Tasks, WorkflowRuntime};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct WorkflowsArgs {
    #[command(subcommand)]
    pub what: Option<WorkflowsWhat>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkflowsWhat {
    /// Run the sagas until idle: react to new events and fire the timers that are due.
    Run,
    /// One instance's own events.
    Show { id: WorkflowId },
    /// Run an instance's parked reactions again.
    Retry { id: WorkflowId },
}

async fn runtime(url: &StoreUrl) -> anyhow::Result<WorkflowRuntime> {
    let store = crate::cli::open(url).await?;
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
    let mut rt = WorkflowRuntime::new(engine, Arc::new(SystemClock));
    let bar = indicatif::ProgressBar::new(0);
    rt.run_until_idle(&mut |p, head| {
        bar.set_length(head.0);
        bar.set_position(p.0.min(head.0));
    })
    .await?;
    bar.finish_and_clear();
    Ok(rt)
}

pub async fn run(url: &StoreUrl, args: WorkflowsArgs) -> anyhow::Result<()> {
    match args.what {
        None | Some(WorkflowsWhat::Run) => {
            let rt = runtime(url).await?;
            let list = rt.instances();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let active = list.iter().filter(|i| i.active).count();
            println!("{} workflow instances ({active} active)", list.len());
            println!(
                "{:<36}  {:<22} {:<9} {:>5}  {:<17} subject",
                "id", "kind", "status", "tasks", "next timer (UTC)"
            );
            for i in &list {
                let status = if !i.parked.is_empty() {
                    "PARKED".to_string()
                } else if i.active {
                    "active".into()
                } else {
                    i.outcome.clone().unwrap_or_default()
                };
                let kind = i.kind.map(|k| k.as_str()).unwrap_or("?");
                let next = i
                    .next_timer
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                println!(
                    "{}  {kind:<22} {status:<9} {:>5}  {next:<17} {}",
                    i.id, i.open_tasks, i.subject
                );
            }
        }
        Some(WorkflowsWhat::Show { id }) => {
            let store = crate::cli::open(url).await?;
            let stream = StreamId::new("workflow", id)?;
            let events = read_whole_stream(store.as_ref(), &stream).await?;
            if events.is_empty() {
                bail!("no workflow instance {id}");
            }
            for r in &events {
                let env = funnel_codec::decode_recorded(r)?;
                if args.json {
                    let mut v = serde_json::to_value(&env.meta)?;
                    v["payload"] = funnel_codec::payload_value(&env.payload);
                    println!("{v}");
                } else {
                    println!(
                        "{:>4}  {}  {:<26} {}",
                        env.meta.version,
                        env.meta.occurred_at.format("%Y-%m-%d %H:%M"),
                        env.meta.event_type,
                        funnel_codec::payload_value(&env.payload)
                    );
                }
            }
        }
        Some(WorkflowsWhat::Retry { id }) => {
            let mut rt = runtime(url).await?;
            let n = rt.retry(id).await?;
            println!("retried {n} parked reaction(s) of {id}");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TasksArgs {
    /// Only the tasks of this member of staff (id or exact name): theirs and their role's.
    #[arg(long)]
    pub staff: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn tasks(url: &StoreUrl, args: TasksArgs) -> anyhow::Result<()> {
    // The sagas open the tasks: bring them up to date first.
    let _ = runtime(url).await?;
    let store = crate::cli::open(url).await?;
    let mut tasks = Tasks::default();
    let mut names = std::collections::BTreeMap::new();
    let mut infos = std::collections::BTreeMap::new();
    for filter in [Filter::category("workflow"), Filter::category("staff")] {
        let mut after = Position::START;
        loop {
            let batch = store.read_all(after, &filter, 4096).await?;
            let Some(last) = batch.last() else { break };
            after = last.meta.position;
            for r in &batch {
                let env = funnel_codec::decode_recorded(r)?;
                match &env.payload {
                    funnel_domain::Event::StaffJoined(s) => {
                        names.insert(s.staff_id, s.name.clone());
                        infos.insert(
                            s.staff_id,
                            funnel_domain::org::evolve_staff(Default::default(), &env.payload),
                        );
                    }
                    funnel_domain::Event::StaffRoleChanged(s) => {
                        if let Some(i) = infos.remove(&s.staff_id) {
                            infos.insert(
                                s.staff_id,
                                funnel_domain::org::evolve_staff(i, &env.payload),
                            );
                        }
                    }
                    funnel_domain::Event::StaffMovedOffice(s) => {
                        if let Some(i) = infos.remove(&s.staff_id) {
                            infos.insert(
                                s.staff_id,
                                funnel_domain::org::evolve_staff(i, &env.payload),
                            );
                        }
                    }
                    _ => tasks.apply(&env).map_err(anyhow::Error::msg)?,
                }
            }
        }
    }
    let rows: Vec<&funnel_workflows::OpenTaskRow> = match &args.staff {
        Some(text) => {
            let id: StaffId = names
                .iter()
                .find(|(id, name)| id.to_string() == *text || *name == text)
                .map(|(id, _)| *id)
                .with_context(|| format!("no member of staff `{text}`"))?;
            let info = infos
                .get(&id)
                .and_then(|s| s.info())
                .with_context(|| format!("no member of staff `{text}`"))?;
            tasks.for_staff(id, info.role, info.office)
        }
        None => {
            let mut all: Vec<_> = tasks.open.values().collect();
            all.sort_by_key(|t| t.opened_at);
            all
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{} open task(s)", rows.len());
    for t in rows {
        let who = match t.assignee.staff {
            Some(s) => names.get(&s).cloned().unwrap_or_else(|| s.to_string()),
            None => t.assignee.role.label_zh().to_string(),
        };
        println!(
            "{}  {:<14} {:<28} {}",
            t.opened_at.format("%Y-%m-%d"),
            who,
            t.name,
            t.title_zh
        );
    }
    Ok(())
}
