//! The saga runtime against a real (SQLite) store and the engine: time simulated with a manual
//! clock through the deadlines, exactly-once under redelivery and under a crash between a timer's
//! command and the instance's own events, and every kind of workflow on the demo history.

use chrono::{DateTime, Duration, TimeZone, Utc};
use funnel_domain::events::WorkflowKind;
use funnel_domain::lead::{LeadCommand, Register};
use funnel_domain::model::*;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Event, Policy};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_projections::ReadModel;
use funnel_store::{EventStore, Filter};
use funnel_types::*;
use funnel_workflows::{Tasks, WorkflowRuntime};
use std::sync::Arc;

fn shanghai(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc)
}

fn office() -> OfficeId {
    OfficeId::derived("wf-office")
}
fn staff(n: &str) -> StaffId {
    StaffId::derived(n)
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    clock: ManualClock,
    engine: Engine,
}

fn world_at(path: &std::path::Path, now: DateTime<Utc>) -> World {
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open(path).expect("open store"));
    let clock = ManualClock::new(now);
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(clock.clone()));
    World {
        _dir: tempfile::tempdir().expect("tempdir"),
        store,
        clock,
        engine,
    }
}

async fn run(w: &World, who: Who, cmd: Command) -> funnel_engine::Accepted {
    w.engine
        .execute(CommandMeta::new(who).at(w.clock.now()), cmd)
        .await
        .expect("accepted")
}

/// An office (Tuesday 3 March 2026) with a manager, two engineers and the sales department, and a
/// lead registered by e1.
async fn bootstrap(w: &World) -> LeadId {
    let sys = Who::System("bootstrap".into());
    let open = OfficeCommand::Open {
        office_id: office(),
        name: "上海".into(),
        code: "SH".into(),
        timezone: "Asia/Shanghai".into(),
        region: String::new(),
    };
    run(
        w,
        sys.clone(),
        Command::Office {
            office_id: office(),
            cmd: open,
        },
    )
    .await;
    for (n, role, o) in [
        ("m", Role::OfficeManager, Some(office())),
        ("e1", Role::SalesEngineer, Some(office())),
        ("e2", Role::SalesEngineer, Some(office())),
        ("hq", Role::SalesDepartment, None),
    ] {
        let join = StaffCommand::Join {
            staff_id: staff(n),
            name: n.into(),
            role,
            office: o,
        };
        run(
            w,
            sys.clone(),
            Command::Staff {
                staff_id: staff(n),
                cmd: join,
            },
        )
        .await;
    }
    let reg = Register {
        customer_name: "万科".into(),
        project_name: "城市花园".into(),
        industry: Industry::RealEstate,
        purchase_mode: PurchaseMode::Independent,
        channel: Channel::BuildingSweep,
        office: office(),
        location: "上海".into(),
        contact: Contact {
            name: "李".into(),
            phone: "138".into(),
        },
        need: "对讲".into(),
    };
    let a = run(
        w,
        Who::Staff(staff("e1")),
        Command::Lead {
            lead_id: None,
            cmd: LeadCommand::Register(reg),
        },
    )
    .await;
    LeadId(uuid::Uuid::parse_str(a.stream.id_part()).expect("uuid"))
}

async fn events_of(store: &dyn EventStore, category: &str) -> Vec<Envelope<Event>> {
    let mut out = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(after, &Filter::category(category), 4096)
            .await
            .expect("read");
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        out.extend(
            batch
                .iter()
                .map(|r| funnel_codec::decode_recorded(r).expect("decodes")),
        );
    }
    out
}

async fn tasks(store: &dyn EventStore) -> Tasks {
    let mut t = Tasks::default();
    for e in events_of(store, "workflow").await {
        t.apply(&e).expect("applies");
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_reassignment_expires_through_its_timer_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world_at(&dir.path().join("s.db"), shanghai(2026, 3, 3, 10));
    let lead = bootstrap(&w).await;
    let id = ReassignmentId::derived("r");
    run(
        &w,
        Who::Staff(staff("m")),
        Command::Lead {
            lead_id: Some(lead),
            cmd: LeadCommand::RequestReassignment {
                reassignment_id: id,
                to: staff("e2"),
                evidence: "调岗".into(),
            },
        },
    )
    .await;
    let mut rt = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let t = tasks(w.store.as_ref()).await;
    assert_eq!(
        t.for_staff(staff("hq"), Role::SalesDepartment, None).len(),
        1
    );
    assert_eq!(
        t.for_staff(staff("e1"), Role::SalesEngineer, Some(office()))
            .len(),
        1
    );
    // Fifteen days later the fourteen-day expiry has passed: the timer fires late and expires it.
    w.clock.advance(Duration::days(15));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let lead_events = events_of(w.store.as_ref(), "lead").await;
    assert_eq!(
        lead_events
            .iter()
            .filter(|e| matches!(e.payload, Event::ReassignmentExpired(_)))
            .count(),
        1
    );
    let wf = events_of(w.store.as_ref(), "workflow").await;
    assert!(
        wf.iter()
            .any(|e| matches!(&e.payload, Event::TimerFired(f) if f.late))
    );
    assert!(
        wf.iter().any(
            |e| matches!(&e.payload, Event::WorkflowCommandSent(c) if c.outcome == "accepted")
        )
    );
    assert!(
        wf.iter()
            .any(|e| matches!(&e.payload, Event::WorkflowCompleted(c) if c.outcome == "expired"))
    );
    assert!(
        tasks(w.store.as_ref())
            .await
            .open
            .values()
            .all(|t| t.name.starts_with("review") || !t.name.starts_with("approve"))
    );
    // A second runtime (a restart that redelivers the whole log) adds nothing.
    let head = w.store.head().await.expect("head");
    let mut again = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.store.head().await.expect("head"), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ownership_conflict_is_reminded_after_two_working_days_and_escalated_after_five() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Friday 6 March 2026, 10:00 Shanghai.
    let w = world_at(&dir.path().join("s.db"), shanghai(2026, 3, 6, 10));
    let lead = bootstrap(&w).await;
    let reg = Register {
        customer_name: "万科 ".into(),
        project_name: "城市花园".into(),
        industry: Industry::RealEstate,
        purchase_mode: PurchaseMode::Independent,
        channel: Channel::Internet,
        office: office(),
        location: "上海".into(),
        contact: Contact {
            name: "李".into(),
            phone: "138".into(),
        },
        need: "对讲".into(),
    };
    run(
        &w,
        Who::Staff(staff("e2")),
        Command::Lead {
            lead_id: None,
            cmd: LeadCommand::Register(reg),
        },
    )
    .await;
    let mut rt = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let count =
        |wf: &[Envelope<Event>], f: fn(&Event) -> bool| wf.iter().filter(|e| f(&e.payload)).count();
    // Monday 9 March: one working day later, nothing yet.
    w.clock.set(shanghai(2026, 3, 9, 12));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(
        count(
            &events_of(w.store.as_ref(), "workflow").await,
            |e| matches!(e, Event::ReminderRaised(_))
        ),
        0
    );
    // Tuesday 10 March 10:00 is two working days: the manager is reminded.
    w.clock.set(shanghai(2026, 3, 10, 10));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(
        count(
            &events_of(w.store.as_ref(), "workflow").await,
            |e| matches!(e, Event::ReminderRaised(_))
        ),
        1
    );
    // Friday 13 March 10:00 is five: escalated to the sales department.
    w.clock.set(shanghai(2026, 3, 13, 10));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let wf = events_of(w.store.as_ref(), "workflow").await;
    assert_eq!(count(&wf, |e| matches!(e, Event::TaskEscalated(_))), 1);
    let t = tasks(w.store.as_ref()).await;
    assert_eq!(
        t.for_staff(staff("hq"), Role::SalesDepartment, None).len(),
        1
    );
    assert_eq!(
        t.for_staff(staff("m"), Role::OfficeManager, Some(office()))
            .len(),
        1
    );
    let _ = lead;
}

/// The child half of the crash test: runs the runtime at the given time and aborts at the fail
/// point between a timer's command and the instance's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let (Ok(path), Ok(at)) = (
        std::env::var("FUNNEL_CRASH_STORE"),
        std::env::var("FUNNEL_CRASH_AT"),
    ) else {
        return;
    };
    let at: DateTime<Utc> = at.parse().expect("time");
    let w = world_at(std::path::Path::new(&path), at);
    let mut rt = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_timer_command_and_the_instance_events_completes_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let start = shanghai(2026, 3, 3, 10);
    {
        let w = world_at(&path, start);
        let lead = bootstrap(&w).await;
        let id = ReassignmentId::derived("r");
        run(
            &w,
            Who::Staff(staff("m")),
            Command::Lead {
                lead_id: Some(lead),
                cmd: LeadCommand::RequestReassignment {
                    reassignment_id: id,
                    to: staff("e2"),
                    evidence: "调岗".into(),
                },
            },
        )
        .await;
        let mut rt = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
        rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
        // Up to an hour before the expiry, so the visit-plan deadlines due by then have fired and
        // the expiry is the one timer with a command left for the child.
        w.clock.set(start + Duration::days(14) - Duration::hours(1));
        rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    }
    let later = start + Duration::days(14) + Duration::hours(2);
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child", "--nocapture"])
        .env("FUNNEL_CRASH_STORE", &path)
        .env("FUNNEL_CRASH_AT", later.to_rfc3339())
        .env("FUNNEL_FAILPOINT", "after_commands")
        .status()
        .expect("child runs");
    assert!(!status.success(), "the child must die at the fail point");
    let w = world_at(&path, later);
    // The command landed; the instance's events did not.
    let lead_events = events_of(w.store.as_ref(), "lead").await;
    assert_eq!(
        lead_events
            .iter()
            .filter(|e| matches!(e.payload, Event::ReassignmentExpired(_)))
            .count(),
        1
    );
    let expiry_fired = |wf: &[Envelope<Event>]| {
        wf.iter().filter(|e| matches!(&e.payload, Event::TimerFired(f) if f.purpose == funnel_domain::events::TimerPurpose::ReassignmentExpiry)).count()
    };
    assert_eq!(
        expiry_fired(&events_of(w.store.as_ref(), "workflow").await),
        0
    );
    // After the restart the instance sees the expiry its command caused and completes; the timer
    // is cancelled rather than fired again, and no second expiry is sent.
    let mut rt = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let lead_events = events_of(w.store.as_ref(), "lead").await;
    assert_eq!(
        lead_events
            .iter()
            .filter(|e| matches!(e.payload, Event::ReassignmentExpired(_)))
            .count(),
        1
    );
    let wf = events_of(w.store.as_ref(), "workflow").await;
    assert!(expiry_fired(&wf) <= 1);
    let sent = wf.iter().filter(|e| matches!(&e.payload, Event::WorkflowCommandSent(c) if c.command == "expire_reassignment" && c.outcome == "accepted")).count();
    assert!(sent <= 1);
    let expired = wf
        .iter()
        .filter(|e| matches!(&e.payload, Event::WorkflowCompleted(c) if c.outcome == "expired"))
        .count();
    assert_eq!(expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_history_has_instances_of_all_nine_kinds_and_open_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world_at(&dir.path().join("demo.db"), shanghai(2026, 11, 26, 9));
    let opts = funnel_demo::DemoOptions {
        leads: 150,
        ..funnel_demo::DemoOptions::default()
    };
    funnel_demo::load(&w.engine, &opts, |_, _| {})
        .await
        .expect("demo");
    let mut rt = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let kinds: std::collections::BTreeSet<WorkflowKind> =
        rt.instances().iter().filter_map(|i| i.kind).collect();
    for k in WorkflowKind::ALL {
        assert!(kinds.contains(&k), "no {k:?} instance; have {kinds:?}");
    }
    let t = tasks(w.store.as_ref()).await;
    assert!(!t.open.is_empty());
    // Redelivering everything to a fresh runtime changes nothing.
    let head = w.store.head().await.expect("head");
    let mut again = WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()));
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.store.head().await.expect("head"), head);
}
