//! `funnel workflows` (run the sagas until idle, then list the instances; show one, retry its parked
//! reactions, or just run) and `funnel tasks` (open tasks by assignee, and since when).

use anyhow::Context;
use funnel_app::StoreUrl;
use funnel_domain::{Event, Policy, StaffInfo};
use funnel_engine::Engine;
use funnel_projections::ReadModel;
use funnel_store::Filter;
use funnel_types::{Position, StaffId, SystemClock, WorkflowId};
use funnel_workflows::{InstanceSummary, Tasks, WorkflowRuntime};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// The runtime's checkpoint file: beside the projections' one, named for the workflows.
fn checkpoint_path(url: &StoreUrl) -> anyhow::Result<PathBuf> {
    let projections = crate::projections::default_path(url);
    let name = projections
        .file_name()
        .map(|n| n.to_string_lossy().replace("projections", "workflows"))
        .unwrap_or_else(|| "workflows.db".into());
    let path = projections.with_file_name(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        funnel_store::files::create_private_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(path)
}

/// A runtime with the system clock, run until idle with a progress bar.
async fn runtime(url: &StoreUrl) -> anyhow::Result<WorkflowRuntime> {
    let store = funnel_app::open(url).await?;
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
    let path = checkpoint_path(url)?;
    let mut rt = WorkflowRuntime::new(engine, Arc::new(SystemClock), Some(&path))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("workflows {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    rt.run_until_idle(&mut |p, head| {
        bar.set_length(head.0);
        bar.set_position(p.0.min(head.0));
    })
    .await?;
    bar.finish_and_clear();
    let s = rt.stats();
    eprintln!(
        "workflows: read {} events, {} reactions, {} commands, {} timers fired, {} parked, {} skipped as handled ({:.1?})",
        s.events_read,
        s.reactions,
        s.commands_sent,
        s.timers_fired,
        s.parked,
        s.skipped,
        started.elapsed()
    );
    Ok(rt)
}

fn print_instances(list: &[InstanceSummary]) {
    let active = list.iter().filter(|i| i.active).count();
    let parked = list.iter().filter(|i| !i.parked.is_empty()).count();
    println!(
        "{} workflow instances ({active} active, {parked} with parked reactions)",
        list.len()
    );
    println!(
        "{:<36}  {:<22} {:<20} {:>5}  {:<16} {:>6}  subject",
        "id", "kind", "status", "tasks", "next timer (UTC)", "parked"
    );
    for i in list {
        let kind = i.kind.map(|k| k.as_str()).unwrap_or("?");
        let next = i
            .next_timer()
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        println!(
            "{}  {kind:<22} {:<20} {:>5}  {next:<16} {:>6}  {}",
            i.id,
            i.status(),
            i.open_tasks,
            i.parked.len(),
            i.subject
        );
    }
}

pub async fn run(url: &StoreUrl, args: WorkflowsArgs) -> anyhow::Result<()> {
    match args.what {
        None => {
            let rt = runtime(url).await?;
            let list = rt.instances();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_instances(&list);
            }
        }
        Some(WorkflowsWhat::Run) => {
            let rt = runtime(url).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(rt.stats())?);
            } else if let Some(next) = rt.next_due() {
                println!(
                    "idle; the next timer is due {}",
                    next.format("%Y-%m-%d %H:%M UTC")
                );
            } else {
                println!("idle; no timer is pending");
            }
        }
        Some(WorkflowsWhat::Show { id }) => {
            let store = funnel_app::open(url).await?;
            let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
            let rt = WorkflowRuntime::new(engine, Arc::new(SystemClock), None)?;
            for env in rt.show(id).await? {
                if args.json {
                    let mut v = serde_json::to_value(&env.meta)?;
                    v["payload"] = funnel_codec::payload_value(&env.payload);
                    println!("{v}");
                } else {
                    println!(
                        "{:>4}  {}  {:<30} {}",
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
            rt.run_until_idle(&mut |_, _| {}).await?;
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

/// Who a task waits for, for people.
fn assignee_label(
    a: &funnel_domain::events::Assignee,
    names: &BTreeMap<StaffId, String>,
) -> String {
    match a.staff {
        Some(s) => names.get(&s).cloned().unwrap_or_else(|| s.to_string()),
        None => a.role.label_zh().to_string(),
    }
}

pub async fn tasks(url: &StoreUrl, args: TasksArgs) -> anyhow::Result<()> {
    // Only reads: the sagas that open tasks are run by `funnel serve` or `funnel workflows`, and
    // a second runtime beside a running one would compete for the workflow streams.
    let store = funnel_app::open(url).await?;
    let mut tasks = Tasks::default();
    let mut names: BTreeMap<StaffId, String> = BTreeMap::new();
    let mut staff: BTreeMap<StaffId, funnel_domain::org::StaffState> = BTreeMap::new();
    let mut offices: BTreeMap<funnel_types::OfficeId, String> = BTreeMap::new();
    let filter = Filter::Categories(vec!["workflow".into(), "staff".into(), "office".into()]);
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, &filter, 4096).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for r in &batch {
            let env = funnel_codec::decode_recorded(r)?;
            if let Event::OfficeOpened(o) = &env.payload {
                offices.insert(o.office_id, o.name.clone());
            } else if env.meta.stream.category() == "staff" {
                let id = match &env.payload {
                    Event::StaffJoined(s) => {
                        names.insert(s.staff_id, s.name.clone());
                        Some(s.staff_id)
                    }
                    Event::StaffRoleChanged(s) => Some(s.staff_id),
                    Event::StaffMovedOffice(s) => Some(s.staff_id),
                    Event::StaffLeft(s) => Some(s.staff_id),
                    _ => None,
                };
                if let Some(id) = id {
                    let s = staff.remove(&id).unwrap_or_default();
                    staff.insert(id, funnel_domain::org::evolve_staff(s, &env.payload));
                }
            } else if env.meta.stream.category() == "workflow" {
                tasks.apply(&env).map_err(anyhow::Error::msg)?;
            }
        }
    }
    let rows = match &args.staff {
        Some(text) => {
            let id: StaffId = crate::org::staff_named(&names, text)?;
            let info: StaffInfo = staff
                .get(&id)
                .and_then(|s| s.info())
                .with_context(|| format!("no member of staff `{text}`"))?;
            tasks.for_staff(&info)
        }
        None => tasks.all(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    // Grouped by assignee, oldest first within each.
    let mut by: BTreeMap<String, Vec<&funnel_workflows::OpenTaskRow>> = BTreeMap::new();
    for t in &rows {
        let office = t
            .assignee
            .office
            .map(|o| {
                let name = offices.get(&o).cloned().unwrap_or_else(|| o.short());
                format!(" @{name}")
            })
            .unwrap_or_default();
        by.entry(format!("{}{office}", assignee_label(&t.assignee, &names)))
            .or_default()
            .push(t);
    }
    println!("{} open task(s)", rows.len());
    for (who, list) in by {
        println!("{who} ({})", list.len());
        for t in list {
            let due = t
                .due_at
                .map(|d| format!(" due {}", d.format("%Y-%m-%d")))
                .unwrap_or_default();
            let escalated = if t.escalated_to.is_some() {
                " [escalated]"
            } else {
                ""
            };
            println!(
                "  since {}{due}{escalated}  {:<32} {}",
                t.opened_at.format("%Y-%m-%d %H:%M"),
                t.name,
                t.title_zh
            );
        }
    }
    Ok(())
}
