//! `funnel workflows` (list the instances as the log has them, without running anything; `run` runs
//! the sagas until idle; show one; retry its parked reactions) and `funnel tasks` (open tasks by
//! assignee, and since when). Times are on the clock of the office concerned (headquarters' for
//! none), its zone named.

use anyhow::Context;
use funnel_app::auth::Caller;
use funnel_app::query::work::{self, AssigneeNames, TasksQuery, WorkflowsQuery};
use funnel_app::{Paging, Reads, StoreUrl};
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_types::{SystemClock, WorkflowId};
use funnel_workflows::{InstanceSummary, WorkflowRuntime};
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
    /// Run the sagas until idle (react to new events, fire the timers that are due), then list
    /// the instances. `funnel serve` runs them itself: run this only without a server.
    Run,
    /// One instance's own events.
    Show {
        /// The instance's id (from the list).
        id: WorkflowId,
    },
    /// Run an instance's parked reactions again.
    Retry {
        /// The instance's id (from the list).
        id: WorkflowId,
    },
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

/// On JetStream, the `sagas` lease for as long as this command runs (`funnel serve` processes
/// take part in it too): refused, naming the holder, while another process holds it. The lease is
/// released when the answer is dropped (`stop`) or the process ends (it expires).
struct SagasLease {
    fence: funnel_store::lease::Fence,
    term: u64,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SagasLease {
    async fn take(url: &str) -> anyhow::Result<Self> {
        use funnel_store::lease::{Holding, Lease, LeaseStore};
        let defaults = funnel_store_nats::NatsOptions::default();
        let leases = funnel_store_nats::NatsLeases::join(
            url,
            &defaults.stream_name,
            funnel_store_nats::default_replicas(url),
            std::time::Duration::from_secs(10),
            defaults.request_timeout,
        )
        .await?;
        let leases: Arc<dyn LeaseStore> = Arc::new(leases);
        let holder = format!("funnel workflows/{}", std::process::id());
        let lease = Arc::new(Lease::new("sagas", holder, leases));
        let mut state = lease.watch();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn({
            let lease = lease.clone();
            async move {
                lease
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            }
        });
        // The first attempt's outcome: held here, or held by someone named.
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            state.wait_for(|h| !matches!(h, Holding::No { holder: None })),
        )
        .await;
        let held = match outcome {
            Ok(Ok(h)) => h.clone(),
            _ => Holding::No { holder: None },
        };
        match held {
            Holding::Yes { term, .. } => Ok(Self {
                fence: lease.fence(),
                term,
                stop,
                task,
            }),
            Holding::No { holder } => {
                let _ = stop.send(true);
                let _ = task.await;
                anyhow::bail!(
                    "the sagas of this log run in {} (it holds their lease); retry a workflow \
                     there with POST /workflows/ID/retry, or stop it first",
                    holder.unwrap_or_else(
                        || "another process (the lease bucket did not answer)".into()
                    )
                )
            }
        }
    }

    async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A runtime with the system clock, run until idle with a progress bar. On JetStream it holds the
/// `sagas` lease and writes through its fence.
async fn runtime(url: &StoreUrl) -> anyhow::Result<(WorkflowRuntime, Option<SagasLease>)> {
    let mut store = funnel_app::open(url).await?;
    let lease = match url {
        StoreUrl::Nats(u) => {
            let lease = SagasLease::take(u).await?;
            store = Arc::new(funnel_store::lease::FencedStore::new(
                store,
                lease.fence.clone(),
                lease.term,
            ));
            Some(lease)
        }
        StoreUrl::Sqlite(_) => None,
    };
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
    Ok((rt, lease))
}

/// The instances as a table; each next timer on its office's clock, the zone named.
async fn print_instances(reads: &Reads, list: &[InstanceSummary]) -> anyhow::Result<()> {
    let active = list.iter().filter(|i| i.active).count();
    let parked = list.iter().filter(|i| !i.parked.is_empty()).count();
    println!(
        "{} workflow instances ({active} active, {parked} with parked reactions)",
        list.len()
    );
    println!(
        "{:<36}  {:<22} {:<20} {:>5}  {:<30} {:>6}  subject",
        "id", "kind", "status", "tasks", "next timer", "parked"
    );
    for i in list {
        let kind = i.kind.map(|k| k.as_str()).unwrap_or("?");
        let next = match i.next_timer() {
            Some(t) => {
                let tz = reads.office_zone(i.office).await?;
                format!("{} {tz}", funnel_domain::time::local_minute(t, tz))
            }
            None => String::new(),
        };
        println!(
            "{}  {kind:<22} {:<20} {:>5}  {next:<30} {:>6}  {}",
            i.id,
            i.status(),
            i.open_tasks,
            i.parked.len(),
            i.subject
        );
    }
    Ok(())
}

/// Every instance the log records, from the persisted instances read model: nothing runs.
async fn list(url: &StoreUrl, projections: &std::path::Path) -> anyhow::Result<Reads> {
    crate::query::reads(url, projections, None).await
}

pub async fn run(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: WorkflowsArgs,
) -> anyhow::Result<()> {
    match args.what {
        None => {
            let reads = list(url, projections).await?;
            let q = WorkflowsQuery {
                office: None,
                kind: None,
                status: None,
                at_least: None,
                paging: Paging::everything(),
            };
            let page = work::workflows(&reads, &Caller::local_operator(), q).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&page.instances)?);
            } else {
                let list: Vec<InstanceSummary> =
                    page.instances.into_iter().map(|v| v.summary).collect();
                print_instances(&reads, &list).await?;
            }
        }
        Some(WorkflowsWhat::Run) => {
            let (rt, lease) = runtime(url).await?;
            if let Some(l) = lease {
                l.release().await;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(rt.stats())?);
            } else if let Some(next) = rt.next_due() {
                let tz = funnel_domain::DEFAULT_TIME_ZONE;
                println!(
                    "idle; the next timer is due {} {tz}",
                    funnel_domain::time::local_minute(next, tz)
                );
            } else {
                println!("idle; no timer is pending");
            }
        }
        Some(WorkflowsWhat::Show { id }) => {
            let store = funnel_app::open(url).await?;
            let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
            let rt = WorkflowRuntime::new(engine, Arc::new(SystemClock), None)?;
            let reads = list(url, projections).await?;
            for env in rt.show(id).await? {
                if args.json {
                    let mut v = serde_json::to_value(&env.meta)?;
                    v["payload"] = funnel_codec::payload_value(&env.payload);
                    println!("{v}");
                } else {
                    let tz = reads.office_zone(env.meta.office).await?;
                    println!(
                        "{:>4}  {} {tz}  {:<30} {}",
                        env.meta.version,
                        funnel_domain::time::local_minute(env.meta.occurred_at, tz),
                        env.meta.event_type,
                        funnel_codec::payload_value(&env.payload)
                    );
                }
            }
        }
        Some(WorkflowsWhat::Retry { id }) => {
            let (mut rt, lease) = runtime(url).await?;
            let n = rt.retry(id).await?;
            rt.run_until_idle(&mut |_, _| {}).await?;
            if let Some(l) = lease {
                l.release().await;
            }
            println!("retried {n} parked reaction(s) of {id}");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TasksArgs {
    /// Only the tasks of this member of staff (id or name): theirs and their role's.
    #[arg(long)]
    pub staff: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Who a task waits for, for people: their name, or their role and office.
fn assignee_label(a: &funnel_domain::events::Assignee, names: &AssigneeNames) -> String {
    let who = match a.staff {
        Some(s) => names
            .staff
            .get(&s)
            .cloned()
            .unwrap_or_else(|| s.to_string()),
        None => a.role.label_zh().to_string(),
    };
    let office = a
        .office
        .map(|o| {
            let name = names.offices.get(&o).cloned().unwrap_or_else(|| o.short());
            format!(" @{name}")
        })
        .unwrap_or_default();
    format!("{who}{office}")
}

/// `funnel tasks [--staff NAME]`: the open tasks of `funnel_app::query::work`, every one or one
/// person's, asked as the local operator. Only reads: the sagas that open tasks are run by
/// `funnel serve` or `funnel workflows`, and a second runtime beside a running one would compete
/// for the workflow streams.
pub async fn tasks(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: TasksArgs,
) -> anyhow::Result<()> {
    let reads = crate::query::reads(url, projections, None).await?;
    let caller = Caller::local_operator();
    let (rows, names, json) = match &args.staff {
        Some(text) => {
            let q = TasksQuery {
                staff: Some(text.clone()),
                at_least: None,
                paging: Paging::everything(),
            };
            let list = work::tasks(&reads, &caller, q).await?;
            let json = serde_json::to_string_pretty(&list)?;
            (list.tasks, list.assignees, json)
        }
        None => {
            let all = work::all_tasks(&reads, &caller, None).await?;
            let json = serde_json::to_string_pretty(&all)?;
            (all.tasks, all.assignees, json)
        }
    };
    if args.json {
        println!("{json}");
        return Ok(());
    }
    // Grouped by assignee, oldest first within each.
    let mut by: BTreeMap<String, Vec<&work::TaskView>> = BTreeMap::new();
    for t in &rows {
        by.entry(assignee_label(&t.task.assignee, &names))
            .or_default()
            .push(t);
    }
    println!("{} open task(s)", rows.len());
    for (who, list) in by {
        println!("{who} ({})", list.len());
        for t in list {
            // Times on the clock of the task's office.
            let due = t
                .due_local
                .as_ref()
                .map(|d| format!(" due {d}"))
                .unwrap_or_default();
            let escalated = if t.task.escalated_to.is_some() {
                " [escalated]"
            } else {
                ""
            };
            println!(
                "  since {}{due}{escalated}  {:<32} {}",
                t.opened_local, t.task.name, t.task.title_zh
            );
            if let Some(about) = task_about(t) {
                println!("      {about}");
            }
        }
    }
    Ok(())
}

/// What a task is about, on one line: the customer, the people involved, amounts and seats.
fn task_about(t: &work::TaskView) -> Option<String> {
    let a = &t.about;
    let mut parts = Vec::new();
    if let Some(l) = &a.lead {
        parts.push(if l.project.is_empty() {
            l.customer.clone()
        } else {
            format!("{} · {}", l.customer, l.project)
        });
    }
    if let Some(s) = &a.summary {
        parts.push(format!("汇总表 {}", s.period));
    }
    for p in &a.people {
        parts.push(format!("{}：{}", p.part_zh, p.person.name));
    }
    if let Some(d) = &a.declaration {
        let amount = d.amount_zh.clone().unwrap_or_default();
        parts.push(format!("{} {amount}", d.kind_zh).trim_end().to_string());
    }
    if let Some(c) = &a.contract {
        parts.push(format!(
            "合同第 {} 版 {}{}",
            c.version.version,
            c.version.amount_zh,
            c.seat
                .as_ref()
                .map(|s| format!("，席位：{s}"))
                .unwrap_or_default()
        ));
    }
    if let Some(n) = a.visits_without_insider {
        parts.push(format!("无内线拜访 {n} 次"));
    }
    (!parts.is_empty()).then(|| parts.join("；"))
}
