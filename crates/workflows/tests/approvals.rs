//! The approval workflows end to end through the engine and the runtime, with time simulated by a
//! manual clock through every deadline: ownership conflicts, reassignments, declarations and
//! contract review.

mod common;

use chrono::Duration;
use common::*;
use funnel_domain::Event;
use funnel_domain::events::{ApprovalParty, ConflictGround, WorkflowKind};
use funnel_domain::lead::LeadCommand;
use funnel_domain::model::*;
use funnel_engine::{Command, Who};
use funnel_types::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ownership_conflict_is_reminded_after_two_working_days_escalated_after_five_then_decided()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    // Friday 6 March 2026, 10:00 Shanghai.
    let w = World::open(dir.path(), shanghai(2026, 3, 6, 10, 0));
    w.bootstrap().await;
    let lead = w.register("e1", "万科", PurchaseMode::Independent).await;
    let second = w
        .exec(
            Who::Staff(staff("e2")),
            Command::Lead {
                lead_id: None,
                cmd: LeadCommand::Register(registration("万科 ", PurchaseMode::Independent)),
            },
        )
        .await;
    let conflict_id = second
        .events
        .iter()
        .find_map(|e| match &e.payload {
            Event::OwnershipConflictOpened(c) => Some(c.conflict_id),
            _ => None,
        })
        .expect("a conflict");
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    // The backlog: caught up with the log, active instances waiting on their timers.
    let b = rt.backlog();
    assert_eq!(b.position, w.engine.store().head().await.expect("head"));
    assert!(b.instances_active >= 1, "{b:?}");
    assert_eq!((b.timers_overdue, b.reactions_parked), (0, 0), "{b:?}");
    assert!(b.timers_pending >= 1, "{b:?}");
    let manager = w.tasks().await;
    let mine = manager.for_staff(&info("m"));
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].name, "decide_conflict");
    assert_eq!(mine[0].due_at, Some(shanghai(2026, 3, 10, 10, 0)));
    let reminders = |e: &[Event]| count(e, |e| matches!(e, Event::ReminderRaised(_)));
    // Monday 9 March: one working day later, nothing yet.
    w.clock.set(shanghai(2026, 3, 9, 12, 0));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(
        reminders(&w.instance(WorkflowKind::OwnershipConflict).await),
        0
    );
    // Tuesday 10 March 10:00 is two working days: the manager is reminded, on time.
    w.clock.set(shanghai(2026, 3, 10, 10, 0));
    assert!(
        rt.backlog().timers_overdue >= 1,
        "the reminder is due, not yet fired"
    );
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::OwnershipConflict).await;
    assert_eq!(reminders(&events), 1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TimerFired(f) if !f.late))
    );
    // Friday 13 March 10:00 is five: escalated to the sales department, still open for the manager.
    w.clock.set(shanghai(2026, 3, 13, 10, 0));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::OwnershipConflict).await;
    assert_eq!(count(&events, |e| matches!(e, Event::TaskEscalated(_))), 1);
    let t = w.tasks().await;
    assert_eq!(t.for_staff(&info("hq")).len(), 1);
    assert_eq!(t.for_staff(&info("m")).len(), 1);
    assert!(t.for_staff(&info("m"))[0].escalated_to.is_some());
    assert!(t.for_staff(&info("e1")).is_empty());
    // The manager decides: the instance completes and every task closes.
    w.lead(
        "m",
        lead,
        1,
        LeadCommand::DecideConflict {
            conflict_id,
            winner: staff("e1"),
            grounds: vec![ConflictGround::RegisteredFirst],
            note: "先报备".into(),
        },
    )
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::OwnershipConflict).await;
    assert_eq!(outcome(&events).as_deref(), Some("decided"));
    let b = rt.backlog();
    assert_eq!(b.timers_overdue, 0, "{b:?}");
    assert!(
        w.tasks()
            .await
            .all()
            .iter()
            .all(|t| t.lead_id != Some(lead))
    );
}

/// A reassignment request by the manager for e1's lead, handed to e2.
async fn request_reassignment(w: &World) -> (LeadId, ReassignmentId) {
    w.bootstrap().await;
    let lead = w.register("e1", "万科", PurchaseMode::Independent).await;
    let id = ReassignmentId::derived("r");
    w.lead(
        "m",
        lead,
        1,
        LeadCommand::RequestReassignment {
            reassignment_id: id,
            to: staff("e2"),
            evidence: "原负责人调岗".into(),
        },
    )
    .await;
    (lead, id)
}

async fn reassignment_approved_in_order(first: &str, second: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    let (lead, id) = request_reassignment(&w).await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let t = w.tasks().await;
    assert_eq!(
        t.for_staff(&info("hq"))[0].name,
        "approve_as_sales_department"
    );
    assert_eq!(t.for_staff(&info("e1"))[0].name, "approve_as_owner");
    assert!(t.for_staff(&info("e2")).is_empty());
    let approve = LeadCommand::ApproveReassignment {
        reassignment_id: id,
        note: "同意".into(),
    };
    w.lead(first, lead, 5, approve.clone()).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::Reassignment).await;
    assert_eq!(count(&events, |e| matches!(e, Event::TaskClosed(_))), 1);
    assert!(w.tasks().await.for_staff(&info(first)).is_empty());
    assert_eq!(w.tasks().await.for_staff(&info(second)).len(), 1);
    w.lead(second, lead, 5, approve).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::Reassignment).await;
    assert_eq!(outcome(&events).as_deref(), Some("approved"));
    assert!(events.iter().any(|e| matches!(e, Event::TimerCancelled(_))));
    assert!(w.tasks().await.open.is_empty());
    // Past the expiry nothing more happens: the timer was cancelled.
    w.clock.advance(Duration::days(20));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let after = w.instance(WorkflowKind::Reassignment).await;
    assert_eq!(
        count(&after, |e| matches!(e, Event::WorkflowCommandSent(_))),
        0
    );
    assert_eq!(after.len(), events.len());
    let _ = ApprovalParty::SalesDepartment;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_approved_by_the_sales_department_then_the_owner_completes() {
    reassignment_approved_in_order("hq", "e1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_approved_by_the_owner_then_the_sales_department_completes() {
    reassignment_approved_in_order("e1", "hq").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_reassignment_completes_denied_and_closes_both_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    let (lead, id) = request_reassignment(&w).await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    w.lead(
        "e1",
        lead,
        4,
        LeadCommand::DenyReassignment {
            reassignment_id: id,
            reason: "近期已有进展".into(),
        },
    )
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::Reassignment).await;
    assert_eq!(outcome(&events).as_deref(), Some("denied"));
    assert_eq!(count(&events, |e| matches!(e, Event::TaskClosed(_))), 2);
    assert!(w.tasks().await.open.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_reassignment_is_expired_by_its_timer_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 3, 10, 0));
    let (lead, _id) = request_reassignment(&w).await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    // Thirteen days later nothing has expired.
    w.clock.advance(Duration::days(13));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(outcome(&w.instance(WorkflowKind::Reassignment).await), None);
    // Past the fourteen days: the saga sends ExpireReassignment, accepted; the expiry it caused
    // completes the instance.
    w.clock.advance(Duration::days(2));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::Reassignment).await;
    let sent: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::WorkflowCommandSent(c) => Some((c.command.as_str(), c.outcome.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [("expire_reassignment", "accepted")]);
    assert_eq!(outcome(&events).as_deref(), Some("expired"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TimerFired(f) if f.late))
    );
    let expired = count(
        &w.events("lead")
            .await
            .into_iter()
            .map(|e| e.payload)
            .collect::<Vec<_>>(),
        |e| matches!(e, Event::ReassignmentExpired(_)),
    );
    assert_eq!(expired, 1);
    // The office's summary tasks fell due meanwhile; none is left about the lead.
    assert!(
        w.tasks()
            .await
            .all()
            .iter()
            .all(|t| t.lead_id != Some(lead))
    );
    // A fresh runtime without the checkpoint redelivers the whole log: nothing is written.
    let head = w.store.head().await.expect("head");
    let mut again = funnel_workflows::WorkflowRuntime::new(
        w.engine.clone(),
        std::sync::Arc::new(w.clock.clone()),
        None,
    )
    .expect("runtime");
    again.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.store.head().await.expect("head"), head);
    assert!(again.stats().skipped > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_are_reviewed_returned_or_filed_and_strategic_prospects_bring_in_key_accounts()
{
    let dir = tempfile::tempdir().expect("tempdir");
    // Monday 2 March 2026.
    let w = World::open(dir.path(), shanghai(2026, 3, 2, 9, 0));
    w.bootstrap().await;
    let lead = w.register("e1", "保利", PurchaseMode::Independent).await;
    let mut d = Driver::new(&w, lead, "e1", PurchaseMode::Independent);
    d.ready_for_valid().await;
    let mut rt = w.runtime();
    // A first declaration is returned by the manager.
    let first = DeclarationId::derived("valid-1");
    d.cmd(LeadCommand::DeclareValidInfo {
        declaration_id: first,
        note: "申报".into(),
    })
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let review = w.tasks().await;
    assert_eq!(review.for_staff(&info("m"))[0].name, "review_declaration");
    // Two working days without a review: the manager is reminded.
    w.clock.advance(Duration::days(3));
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    w.lead(
        "m",
        lead,
        1,
        LeadCommand::ReviewDeclaration {
            declaration_id: first,
            approve: false,
            note: "证据不足".into(),
        },
    )
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = rt
        .show(workflow_id(WorkflowKind::ValidInfoDeclaration, first))
        .await
        .expect("show");
    let events: Vec<Event> = events.into_iter().map(|e| e.payload).collect();
    assert_eq!(count(&events, |e| matches!(e, Event::ReminderRaised(_))), 1);
    assert_eq!(outcome(&events).as_deref(), Some("returned"));
    // The second is approved and filed.
    let second = DeclarationId::derived("valid-2");
    d.cmd(LeadCommand::DeclareValidInfo {
        declaration_id: second,
        note: "补充后申报".into(),
    })
    .await;
    d.review_and_file(second).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events: Vec<Event> = rt
        .show(workflow_id(WorkflowKind::ValidInfoDeclaration, second))
        .await
        .expect("show")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(outcome(&events).as_deref(), Some("filed"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskOpened(t) if t.name == "file_declaration"))
    );
    assert!(w.tasks().await.open.is_empty());
    // A strategic prospect (over 3M): filed, the key-account department is brought in.
    d.ready_for_prospect().await;
    let p = DeclarationId::derived("prospect");
    d.cmd(Driver::prospect_declaration(5_000_000, p)).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.tasks().await.for_staff(&info("m")).len(), 1);
    d.review_and_file(p).await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::ProspectDeclaration).await;
    assert_eq!(outcome(&events).as_deref(), Some("filed"));
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ReminderRaised(r) if r.to.role == Role::KeyAccountDepartment)
        )
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::WorkflowNoted(n) if n.key == "key_account"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_under_review_is_withdrawn_when_the_lead_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 2, 9, 0));
    w.bootstrap().await;
    let lead = w.register("e1", "华润", PurchaseMode::Independent).await;
    let mut d = Driver::new(&w, lead, "e1", PurchaseMode::Independent);
    d.ready_for_valid().await;
    let mut rt = w.runtime();
    let first = DeclarationId::derived("valid-lost");
    d.cmd(LeadCommand::DeclareValidInfo {
        declaration_id: first,
        note: "申报".into(),
    })
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(w.tasks().await.for_staff(&info("m")).len(), 1);
    // The lead is lost while the manager has not reviewed: the declaration lapses with it.
    let lost = d
        .cmd(LeadCommand::MarkLost {
            reason: "客户选择了竞品".into(),
            competitor: "某品牌".into(),
        })
        .await;
    let types: Vec<&str> = lost
        .events
        .iter()
        .map(|e| e.meta.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "lead.lost",
            "lead.declaration_withdrawn",
            "lead.stage_changed"
        ]
    );
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events: Vec<Event> = rt
        .show(workflow_id(WorkflowKind::ValidInfoDeclaration, first))
        .await
        .expect("show")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(
        outcome(&events).as_deref(),
        Some("withdrawn: the lead left the funnel")
    );
    assert!(
        w.tasks().await.for_staff(&info("m")).is_empty(),
        "no stale review task"
    );
    // Taken up again, the lead can be declared anew.
    d.cmd(LeadCommand::Reactivate {
        reason: "客户重新招标".into(),
    })
    .await;
    d.cmd(LeadCommand::DeclareValidInfo {
        declaration_id: DeclarationId::derived("valid-again"),
        note: "重新申报".into(),
    })
    .await;
}

fn workflow_id(kind: WorkflowKind, d: DeclarationId) -> WorkflowId {
    WorkflowId::derived(&format!("{}:{d}", kind.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_is_reviewed_by_every_seat_reopened_by_an_amendment_and_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(dir.path(), shanghai(2026, 3, 2, 9, 0));
    w.bootstrap().await;
    let lead = w.register("e1", "招商", PurchaseMode::Independent).await;
    let mut d = Driver::new(&w, lead, "e1", PurchaseMode::Independent);
    d.valid().await;
    d.ready_for_prospect().await;
    let p = DeclarationId::derived("prospect");
    d.cmd(Driver::prospect_declaration(1_500_000, p)).await;
    d.review_and_file(p).await;
    d.cmd(LeadCommand::NoteNegotiation {
        note: "谈判准备".into(),
        executives_invited: false,
    })
    .await;
    let contract_id = ContractId::derived("c");
    let (v1, v2) = ("a".repeat(64), "b".repeat(64));
    d.cmd(LeadCommand::SubmitContract {
        contract_id,
        amount_cny: 1_500_000,
        content_hash: v1.clone(),
    })
    .await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let seats = |t: &funnel_workflows::Tasks| {
        let mut s: Vec<String> = t
            .all()
            .iter()
            .filter(|t| t.name.starts_with("review_contract:"))
            .map(|t| t.name.clone())
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        seats(&w.tasks().await),
        [
            "review_contract:finance",
            "review_contract:office_manager",
            "review_contract:sales_department"
        ]
    );
    assert_eq!(w.tasks().await.for_staff(&info("gm")).len(), 1);
    let review = |seat: &str, approve: bool, hash: &str| LeadCommand::ReviewContract {
        contract_id,
        seat: seat.into(),
        approve,
        content_hash: hash.into(),
        reasons: if approve {
            String::new()
        } else {
            "折扣超出授权".into()
        },
    };
    // The office manager approves, then the sales department rejects: the owner renegotiates.
    w.lead("m", lead, 2, review("office_manager", true, &v1))
        .await;
    w.lead("hq", lead, 2, review("sales_department", false, &v1))
        .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let t = w.tasks().await;
    assert!(seats(&t).is_empty());
    assert_eq!(t.for_staff(&info("e1"))[0].name, "renegotiate_contract");
    // The amendment voids the approvals: every seat reviews again.
    d.cmd(LeadCommand::AmendContract {
        contract_id,
        amount_cny: 1_450_000,
        content_hash: v2.clone(),
        reason: "调整折扣".into(),
    })
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    assert_eq!(seats(&w.tasks().await).len(), 3);
    assert!(w.tasks().await.for_staff(&info("e1")).is_empty());
    for (who, seat) in [
        ("hq", "sales_department"),
        ("m", "office_manager"),
        ("gm", "finance"),
    ] {
        w.lead(who, lead, 2, review(seat, true, &v2)).await;
    }
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let t = w.tasks().await;
    assert!(seats(&t).is_empty());
    assert_eq!(t.for_staff(&info("e1"))[0].name, "sign_contract");
    d.cmd(LeadCommand::SignContract {
        contract_id,
        content_hash: v2,
    })
    .await;
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let events = w.instance(WorkflowKind::ContractReview).await;
    assert_eq!(outcome(&events).as_deref(), Some("signed"));
    assert!(w.tasks().await.open.is_empty());
}

/// A working calendar published in the log moves the deadlines past its holidays, in the runtime
/// that reads it, and in one started afresh from a checkpoint after the publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_skip_the_published_holidays() {
    use funnel_domain::work_calendar::CalendarCommand;
    let dir = tempfile::tempdir().expect("tempdir");
    // Wednesday 30 September 2026, 10:00 Shanghai, on the eve of National Day.
    let w = World::open(dir.path(), shanghai(2026, 9, 30, 10, 0));
    w.bootstrap().await;
    let day = |m, d| chrono::NaiveDate::from_ymd_opt(2026, m, d).expect("date");
    w.exec(
        Who::System("bootstrap".into()),
        Command::Calendar {
            cmd: CalendarCommand::Publish {
                year: 2026,
                holidays: vec![day(10, 1), day(10, 2), day(10, 5), day(10, 6), day(10, 7)],
                workdays: vec![day(9, 27), day(10, 10)],
                note: "国庆节".into(),
            },
        },
    )
    .await;
    // The runtime reads the publication first, then stops; a new one resumes from its checkpoint.
    w.runtime()
        .run_until_idle(&mut |_, _| {})
        .await
        .expect("runs");
    w.register("e1", "万科", PurchaseMode::Independent).await;
    w.exec(
        Who::Staff(staff("e2")),
        Command::Lead {
            lead_id: None,
            cmd: LeadCommand::Register(registration("万科 ", PurchaseMode::Independent)),
        },
    )
    .await;
    let mut rt = w.runtime();
    rt.run_until_idle(&mut |_, _| {}).await.expect("runs");
    let tasks = w.tasks().await;
    let mine = tasks.for_staff(&info("m"));
    assert_eq!(mine.len(), 1);
    // Two working days after Wednesday 30 September: Thursday 8 and Friday 9 October.
    assert_eq!(mine[0].due_at, Some(shanghai(2026, 10, 9, 10, 0)));
    let summary = rt
        .instances()
        .into_iter()
        .find(|i| i.kind == Some(WorkflowKind::OwnershipConflict))
        .expect("the conflict");
    let dues: Vec<_> = summary.timers.iter().map(|t| t.due_at).collect();
    // Five: 8, 9, Saturday 10 (worked), 12 and 13 October.
    assert_eq!(
        dues,
        vec![shanghai(2026, 10, 9, 10, 0), shanghai(2026, 10, 13, 10, 0)]
    );
}
