//! The calendar workflows and the lead-rule workflows end to end: visit plans (a reminder the day
//! before the deadline, an overdue mark at the deadline only when nothing was submitted), the office
//! summaries task chain, and the insider-escalation and stagnation tasks closed by their events.

mod common;

use chrono::{Duration, NaiveDate};
use common::*;
use funnel_domain::Event;
use funnel_domain::events::{PlannedVisit, WorkflowKind};
use funnel_domain::lead::{LeadCommand, StagnationDecision};
use funnel_domain::model::*;
use funnel_domain::plan::PlanCommand;
use funnel_domain::summary::{SummaryCommand, summary_id};
use funnel_engine::{Command, Who};
use funnel_types::*;

fn plans_of(n: &str) -> WorkflowId {
    WorkflowId::derived(&format!("visit_plans:{}", staff(n)))
}

async fn payloads(rt: &funnel_workflows::WorkflowRuntime, id: WorkflowId) -> Vec<Event> {
    rt.show(id)
        .await
        .expect("instance")
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visit_plans_are_reminded_the_day_before_and_marked_overdue_only_when_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Tuesday 3 March 2026: the next weekly deadline is Friday 6 March 17:30 (week of 9 March).
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    w.bootstrap().await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let week = Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 9).expect("date"),
    };
    // e1 submits on Wednesday; e2 does not.
    w.clock.set(shanghai(2026, 3, 4, 15, 0));
    let visits = vec![PlannedVisit {
        date: NaiveDate::from_ymd_opt(2026, 3, 10).expect("date"),
        lead_id: None,
        customer: "万科".into(),
        purpose: "扫楼".into(),
    }];
    w.exec(
        Who::Staff(staff("e1")),
        Command::Plan {
            plan_id: None,
            cmd: PlanCommand::Submit {
                period: week,
                visits,
            },
        },
    )
    .await;
    // Thursday 17:30, a day before: only e2 is reminded.
    w.clock.set(shanghai(2026, 3, 5, 17, 30));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let reminded = |e: &[Event]| count(e, |e| matches!(e, Event::ReminderRaised(_)));
    assert_eq!(reminded(&payloads(&rt, plans_of("e1")).await), 0);
    assert_eq!(reminded(&payloads(&rt, plans_of("e2")).await), 1);
    // Just after Friday 17:30, the deadline: e2's plan is marked overdue by the saga, e1's is not.
    // (A plan is on time at the deadline itself, so the plan decider refuses `MarkOverdue` at
    // exactly 17:30; the timer fires at its due time, so the test's clock is a minute later.)
    w.clock.set(shanghai(2026, 3, 6, 17, 31));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let sent = |e: &[Event]| {
        e.iter()
            .filter_map(|e| match e {
                Event::WorkflowCommandSent(c) => Some((c.command.clone(), c.outcome.clone())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(sent(&payloads(&rt, plans_of("e1")).await).is_empty());
    assert_eq!(
        sent(&payloads(&rt, plans_of("e2")).await),
        [("mark_plan_overdue".to_string(), "accepted".to_string())]
    );
    let overdue: Vec<StaffId> = w
        .events("plan")
        .await
        .iter()
        .filter_map(|e| match &e.payload {
            Event::VisitPlanOverdue(o) => Some(o.engineer),
            _ => None,
        })
        .collect();
    assert_eq!(overdue, [staff("e2")]);
    // The next week's deadline (Friday 13 March) is already scheduled for both.
    let next = shanghai(2026, 3, 13, 17, 30) + Duration::seconds(1);
    for n in ["e1", "e2"] {
        let inst = rt
            .instances()
            .into_iter()
            .find(|i| i.id == plans_of(n))
            .expect("instance");
        assert!(
            inst.timers.iter().any(|t| t.due_at == next),
            "{n}: {:?}",
            inst.timers
        );
        assert!(inst.active);
    }
    // Submitted and overdue facts are noted by the instances when they arrive.
    let e2 = payloads(&rt, plans_of("e2")).await;
    assert!(
        e2.iter()
            .any(|e| matches!(e, Event::WorkflowNoted(n) if n.value == "overdue"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_summary_goes_through_compile_review_return_and_file_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    w.bootstrap().await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let period = Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
    };
    let key = period.key();
    let names = |t: &funnel_workflows::Tasks, n: &str| {
        t.for_staff(&info(n))
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    // Monday 9 March 09:00: the week's summary is due; the assistant must compile it.
    w.clock.set(shanghai(2026, 3, 9, 9, 5));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(
        names(&w.tasks().await, "as"),
        [format!("compile_summary:{key}")]
    );
    let id = summary_id(office(), &period);
    let asst = Who::Staff(staff("as"));
    let compile = Command::Summary {
        summary_id: None,
        cmd: SummaryCommand::Compile {
            office: office(),
            period,
            lines: vec![],
        },
    };
    let step = |cmd| Command::Summary {
        summary_id: Some(id),
        cmd,
    };
    let verify = || {
        step(SummaryCommand::Verify {
            note: "已核实".into(),
        })
    };
    w.clock.advance(Duration::hours(2));
    w.exec(asst.clone(), compile.clone()).await;
    w.exec(asst.clone(), verify()).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert!(names(&w.tasks().await, "as").is_empty());
    assert_eq!(
        names(&w.tasks().await, "m"),
        [format!("review_summary:{key}")]
    );
    // Returned: compile again.
    w.clock.advance(Duration::hours(20));
    let review = |approve| {
        step(SummaryCommand::Review {
            approve,
            note: if approve {
                String::new()
            } else {
                "漏报一条展会信息".into()
            },
        })
    };
    w.exec(Who::Staff(staff("m")), review(false)).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert!(names(&w.tasks().await, "m").is_empty());
    assert_eq!(
        names(&w.tasks().await, "as"),
        [format!("compile_summary:{key}")]
    );
    w.clock.advance(Duration::hours(2));
    w.exec(asst.clone(), compile).await;
    w.exec(asst.clone(), verify()).await;
    w.exec(Who::Staff(staff("m")), review(true)).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(
        names(&w.tasks().await, "as"),
        [format!("file_summary:{key}")]
    );
    w.exec(asst, step(SummaryCommand::File)).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert!(w.tasks().await.open.is_empty());
    let inst = rt
        .instances()
        .into_iter()
        .find(|i| i.kind == Some(WorkflowKind::OfficeSummaries))
        .expect("instance");
    // The next week's summary and the month's are scheduled.
    let dues: Vec<_> = inst.timers.iter().map(|t| t.due_at).collect();
    assert!(dues.contains(&shanghai(2026, 3, 16, 9, 0)), "{dues:?}");
    assert!(dues.contains(&shanghai(2026, 4, 1, 9, 0)), "{dues:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insider_escalation_and_stagnation_open_manager_tasks_closed_by_their_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 2, 9, 0));
    w.bootstrap().await;
    let mut rt = w.runtime();
    // Lead A: three visits without an insider, then one is developed.
    let a = w.register("e1", "华润", PurchaseMode::Independent).await;
    let mut da = Driver::new(&w, a, "e1", PurchaseMode::Independent);
    da.key_person(KeyPersonRole::Gatekeeper).await;
    for _ in 0..3 {
        da.visit().await;
    }
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let tasks = w.tasks().await;
    let mine = tasks.for_staff(&info("m"));
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].name, "help_develop_insider");
    assert_eq!(mine[0].lead_id, Some(a));
    da.mark_insider().await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let id = WorkflowId::derived(&format!("insider_escalation:{a}"));
    let events: Vec<Event> = rt
        .show(id)
        .await
        .expect("instance")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(outcome(&events).as_deref(), Some("insider developed"));
    assert!(w.tasks().await.for_staff(&info("m")).is_empty());
    // Lead B: five visits with both relationships C open a review; the manager suspends it.
    let b = w.register("e2", "龙湖", PurchaseMode::Independent).await;
    let mut db = Driver::new(&w, b, "e2", PurchaseMode::Independent);
    db.key_person(KeyPersonRole::Gatekeeper).await;
    for _ in 0..5 {
        db.visit().await;
    }
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let names: Vec<String> = w
        .tasks()
        .await
        .for_staff(&info("m"))
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, ["help_develop_insider", "stagnation_review"]);
    w.lead(
        "m",
        b,
        2,
        LeadCommand::DecideStagnationReview {
            decision: StagnationDecision::Suspend,
            note: "停滞分析".into(),
        },
    )
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    for kind in [
        WorkflowKind::InsiderEscalation,
        WorkflowKind::StagnationReview,
    ] {
        let id = WorkflowId::derived(&format!("{}:{b}", kind.as_str()));
        let events: Vec<Event> = rt
            .show(id)
            .await
            .expect("instance")
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert!(outcome(&events).is_some(), "{kind:?} still open");
    }
    assert!(w.tasks().await.open.is_empty());
}
