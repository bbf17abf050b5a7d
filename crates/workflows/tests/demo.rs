//! The demo history (120 leads, the default weeks) followed by the runtime until idle with the clock
//! at 26 November 2026: instances of all nine kinds exist, open tasks are listed per person, and a
//! restart (from the checkpoint, or from the start without one) writes nothing more.

mod common;

use common::*;
use funnel_domain::events::WorkflowKind;
use funnel_workflows::WorkflowRuntime;
use std::collections::BTreeSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_history_has_instances_of_all_nine_kinds_and_open_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 11, 26, 9, 0));
    let opts = funnel_demo::DemoOptions {
        leads: 120,
        ..funnel_demo::DemoOptions::default()
    };
    funnel_demo::load(&w.engine, &opts, |_, _| {})
        .await
        .expect("demo");
    let head = w.store.head().await.expect("head");
    let started = std::time::Instant::now();
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    eprintln!(
        "run_until_idle over {} events: {:?}, {:?}",
        head.0,
        started.elapsed(),
        rt.stats()
    );
    let instances = rt.instances();
    let kinds: BTreeSet<WorkflowKind> = instances.iter().filter_map(|i| i.kind).collect();
    // The manual's nine; the demo asks for no erasure (its history is not sealed).
    for k in WorkflowKind::ALL
        .into_iter()
        .filter(|k| *k != WorkflowKind::Erasure)
    {
        assert!(kinds.contains(&k), "no {k:?} instance; have {kinds:?}");
    }
    assert!(instances.iter().all(|i| i.parked.is_empty()));
    assert!(instances.iter().any(|i| !i.active));
    let mut outcomes: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for e in w.events("workflow").await {
        if let funnel_domain::Event::WorkflowCommandSent(c) = e.payload {
            *outcomes.entry((c.command, c.outcome)).or_default() += 1;
        }
    }
    eprintln!("commands sent by outcome: {outcomes:?}");
    // The instances read model, folded from the log alone, says what the runtime's index says.
    let mut model = funnel_workflows::Instances::default();
    for e in w.events("workflow").await {
        funnel_projections::ReadModel::apply(&mut model, &e).expect("applies");
    }
    assert_eq!(model.by_id.len(), instances.len());
    for i in &instances {
        assert_eq!(model.summary(i.id).as_ref(), Some(i), "instance {}", i.id);
    }
    let tasks = w.tasks().await;
    assert!(!tasks.open.is_empty());
    // Every open task is somebody's: its assignee, or the role in its office.
    assert!(tasks.all().iter().all(|t| t.assignee.staff.is_some()
        || t.assignee.office.is_some()
        || t.assignee.role.is_headquarters()));
    // Restarting from the checkpoint, and redelivering the whole log without one, write nothing.
    let head = w.store.head().await.expect("head");
    let mut again = w.runtime();
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(again.stats().events_read, 0);
    assert_eq!(again.instances(), instances);
    let mut fresh =
        WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()), None).expect("runtime");
    fresh.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.store.head().await.expect("head"), head);
    assert_eq!(fresh.instances(), instances);
}

/// The demo ends the day before the clock, and every role finds work in its inbox the next morning
/// (opened by the sagas as they catch up with the history), while catching up writes no overdue
/// plans: the engineers' plans are in for every deadline the history covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_ending_yesterday_leaves_every_role_an_inbox_and_no_overdue_burst() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Thursday 26 November 2026, 09:00 in Shanghai: the history ends on Wednesday.
    let w = World::open(dir.path(), shanghai(2026, 11, 26, 9, 0));
    let opts = funnel_demo::DemoOptions {
        leads: 120,
        ..funnel_demo::DemoOptions::ending_before(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 26).expect("date"),
        )
    };
    let report = funnel_demo::load(&w.engine, &opts, |_, _| {})
        .await
        .expect("demo");
    assert_eq!(report.last_day, "2026-11-25");
    let demo_head = w.store.head().await.expect("head");
    // A calendar for the year, published by an executive before the history starts.
    let calendars: Vec<_> = w
        .events("calendar")
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            funnel_domain::Event::CalendarPublished(c) => Some(c.year),
            _ => None,
        })
        .collect();
    assert_eq!(calendars, vec![2026]);

    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let overdue_now: Vec<String> = w
        .events("plan")
        .await
        .iter()
        .filter(|e| e.meta.position > demo_head)
        .filter_map(|e| match &e.payload {
            funnel_domain::Event::VisitPlanOverdue(p) => Some(p.period.key().to_string()),
            _ => None,
        })
        .collect();
    assert!(
        overdue_now.is_empty(),
        "plans marked overdue when the sagas caught up: {overdue_now:?}"
    );

    let (world, _) = funnel_demo::generate(&opts);
    let tasks = w.tasks().await;
    let names_for = |staff: funnel_types::StaffId, role, office| -> BTreeSet<String> {
        let info = funnel_domain::StaffInfo {
            id: staff,
            role,
            office,
            active: true,
        };
        tasks
            .for_staff(&info)
            .iter()
            .map(|t| t.name.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    use funnel_types::Role;
    for office in &world.offices {
        let manager = names_for(office.manager, Role::OfficeManager, Some(office.id));
        for want in ["decide_conflict", "review_declaration", "review_contract"] {
            assert!(
                manager.contains(want),
                "{}: manager has {manager:?}",
                office.code
            );
        }
        let engineer_tasks: BTreeSet<String> = office
            .engineers
            .iter()
            .flat_map(|e| names_for(*e, Role::SalesEngineer, Some(office.id)))
            .collect();
        assert!(
            engineer_tasks.contains("approve_as_owner"),
            "{}: engineers have {engineer_tasks:?}",
            office.code
        );
    }
    // The summary of the last week (of Monday 16 November) waits at a different step in each
    // office: not compiled, verified for the manager's review, approved for filing; no other
    // summary is left open.
    let full_names = |staff, role, office| -> BTreeSet<String> {
        let info = funnel_domain::StaffInfo {
            id: staff,
            role,
            office,
            active: true,
        };
        tasks
            .for_staff(&info)
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| n.contains("_summary:"))
            .collect()
    };
    let summaries: Vec<BTreeSet<String>> = world
        .offices
        .iter()
        .map(|o| {
            let mut n = full_names(o.assistant, Role::OfficeAssistant, Some(o.id));
            n.extend(full_names(o.manager, Role::OfficeManager, Some(o.id)));
            n
        })
        .collect();
    let one = |name: &str| BTreeSet::from([name.to_string()]);
    assert_eq!(
        summaries,
        vec![
            one("compile_summary:2026-W47"),
            one("review_summary:2026-W47"),
            one("file_summary:2026-W47")
        ]
    );
    let hq = |id, role| names_for(id, role, None);
    let sales = hq(world.sales_department[0], Role::SalesDepartment);
    for want in ["approve_as_sales_department", "file_declaration"] {
        assert!(sales.contains(want), "sales department has {sales:?}");
    }
    let executive = hq(world.executive, Role::Executive);
    assert!(
        executive.contains("review_contract"),
        "executive has {executive:?}"
    );
}

/// A restart builds the saga index from its snapshot and the workflow events after it, not from
/// every workflow event; it is the index a build from the whole log gives. A snapshot that is not
/// this log's (copied from another) or does not decode is ignored, and the index built from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_starts_the_index_from_its_snapshot_and_ignores_one_that_does_not_fit() {
    use funnel_projections::checkpoint::{CheckpointStore, Slot, Write};
    // Demo histories are deterministic: another log is one of another size.
    let history = |dir: std::path::PathBuf, leads: usize| {
        let opts = funnel_demo::DemoOptions {
            leads,
            ..funnel_demo::DemoOptions::default()
        };
        async move {
            let w = World::open(&dir, shanghai(2026, 11, 26, 9, 0));
            funnel_demo::load(&w.engine, &opts, |_, _| {})
                .await
                .expect("demo");
            let mut rt = w.runtime();
            rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
            (w, rt.instances())
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, instances) = history(dir.path().to_path_buf(), 40).await;
    let workflow_events = w.events("workflow").await.len() as u64;
    let from_log = |w: &World| {
        WorkflowRuntime::new(w.engine.clone(), Arc::new(w.clock.clone()), None).expect("runtime")
    };

    let mut again = w.runtime();
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert!(again.stats().index_from_snapshot, "{:?}", again.stats());
    assert!(
        again.stats().index_events_read < workflow_events,
        "read {} of {workflow_events} workflow events",
        again.stats().index_events_read
    );
    assert_eq!(again.instances(), instances);
    let mut full = from_log(&w);
    full.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert!(!full.stats().index_from_snapshot);
    assert_eq!(full.stats().index_events_read, workflow_events);

    // The snapshot of another log (other events at its positions) is not used there.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (other, other_instances) = history(other_dir.path().to_path_buf(), 41).await;
    let theirs = CheckpointStore::open(dir.path().join("workflows.db")).expect("open");
    let ours = CheckpointStore::open(other.dir.join("workflows.db")).expect("open");
    let (row, _) = theirs
        .load("workflows.index", Slot::Live)
        .expect("load")
        .expect("a snapshot was written");
    let put = |state: Vec<u8>| {
        let mut row = row.clone();
        row.state = state;
        let _ = ours
            .commit(&[Write::Put {
                row,
                parked: Vec::new(),
            }])
            .expect("write");
    };
    put(row.state.clone());
    let mut rt = other.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert!(!rt.stats().index_from_snapshot, "{:?}", rt.stats());
    assert_eq!(rt.instances(), other_instances);
    // Nor is one that does not decode, or one of another state version.
    let mut other_version = row.state.clone();
    other_version[9] ^= 0xFF;
    for state in [b"FWIX\0\x01garbage".to_vec(), other_version] {
        put(state);
        let mut rt = other.runtime();
        rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
        assert!(!rt.stats().index_from_snapshot, "{:?}", rt.stats());
        assert_eq!(rt.instances(), other_instances);
    }
}
