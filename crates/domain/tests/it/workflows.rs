//! Given/when/then tests of the nine workflows as pure reactions, with time simulated by firing
//! their timers, and a property that a redelivered trigger changes nothing.

use crate::fixtures::*;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use funnel_domain::events::*;
use funnel_domain::lead::LeadCommand;
use funnel_domain::model::*;
use funnel_domain::plan::PlanCommand;
use funnel_domain::workflow::{self, OutCommand, ReactCtx, Reaction, Trigger, WorkflowState};
use funnel_domain::{Event, Policy, WorkCalendar, testing};
use funnel_types::*;
use proptest::prelude::*;

fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc)
}

/// One workflow instance driven by hand.
struct Saga {
    kind: WorkflowKind,
    id: WorkflowId,
    state: WorkflowState,
    policy: Policy,
    calendar: WorkCalendar,
    now: DateTime<Utc>,
}

impl Saga {
    fn for_event(event: &Event) -> Saga {
        let targets = workflow::route(event, Some(office()));
        let (kind, id) = targets[0];
        Saga {
            kind,
            id,
            state: WorkflowState::default(),
            policy: Policy::default(),
            calendar: WorkCalendar::default(),
            now: t0(),
        }
    }

    fn trigger(&mut self, event: &Event, at: DateTime<Utc>) -> Reaction {
        self.now = self.now.max(at);
        let trigger = Trigger {
            id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{event:?}").as_bytes()),
            occurred_at: at,
            office: Some(office()),
            event,
        };
        let ctx = ReactCtx {
            now: self.now,
            policy: &self.policy,
            tz: chrono_tz::Asia::Shanghai,
            calendar: &self.calendar,
        };
        let r = workflow::react(self.kind, self.id, &self.state, &trigger, &ctx)
            .expect("the instance's ids read");
        for e in &r.events {
            self.state = workflow::evolve(std::mem::take(&mut self.state), e);
        }
        r
    }

    /// Fires the pending timer with this purpose (as the runtime would at `now`).
    fn fire(&mut self, pick: impl Fn(&TimerPurpose) -> bool, now: DateTime<Utc>) -> Reaction {
        let (timer_id, (purpose, due_at)) = self
            .state
            .timers
            .iter()
            .find(|(_, (p, _))| pick(p))
            .map(|(id, v)| (*id, v.clone()))
            .expect("such a timer is pending");
        let fired = Event::TimerFired(TimerFired {
            workflow_id: self.id,
            timer_id,
            purpose,
            due_at,
            fired_at: now,
            late: false,
        });
        let mut r = self.trigger(&fired, now);
        r.events.insert(0, fired.clone());
        self.state = workflow::evolve(std::mem::take(&mut self.state), &fired);
        r
    }

    fn open_tasks(&self) -> Vec<String> {
        self.state.tasks.values().map(|t| t.name.clone()).collect()
    }
}

fn names(r: &Reaction) -> Vec<&'static str> {
    r.events.iter().map(Event::event_type).collect()
}

#[test]
fn ownership_conflict_reminds_after_two_working_days_and_escalates_after_five() {
    let lead = LeadId::derived("l");
    let opened = Event::OwnershipConflictOpened(OwnershipConflictOpened {
        lead_id: lead,
        conflict_id: ConflictId::derived("c"),
        claimants: vec![wang().id, li().id],
        opened_at: t0(),
    });
    let mut saga = Saga::for_event(&opened);
    // Friday 10:00: two working days later is Tuesday 10:00, five is the next Friday.
    let friday = shanghai(2026, 3, 6, 10, 0);
    let r = saga.trigger(&opened, friday);
    assert_eq!(
        names(&r),
        [
            "workflow.started",
            "workflow.task_opened",
            "workflow.timer_scheduled",
            "workflow.timer_scheduled"
        ]
    );
    let dues: Vec<DateTime<Utc>> = saga.state.timers.values().map(|(_, d)| *d).collect();
    assert!(
        dues.contains(&shanghai(2026, 3, 10, 10, 0))
            && dues.contains(&shanghai(2026, 3, 13, 10, 0)),
        "{dues:?}"
    );
    assert!(
        saga.trigger(&opened, friday).events.is_empty(),
        "redelivery changes nothing"
    );
    let r = saga.fire(
        |p| matches!(p, TimerPurpose::Reminder { .. }),
        shanghai(2026, 3, 10, 10, 0),
    );
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::ReminderRaised(m) if m.to.role == Role::OfficeManager))
    );
    let r = saga.fire(
        |p| matches!(p, TimerPurpose::Escalation { .. }),
        shanghai(2026, 3, 13, 10, 0),
    );
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::TaskEscalated(x) if x.to.role == Role::SalesDepartment))
    );
    assert_eq!(saga.open_tasks().len(), 2);
    let decided = Event::OwnershipConflictDecided(OwnershipConflictDecided {
        lead_id: lead,
        conflict_id: ConflictId::derived("c"),
        winner: li().id,
        decided_by: manager().id,
        grounds: vec![ConflictGround::DeeperContact],
        note: String::new(),
    });
    let r = saga.trigger(&decided, shanghai(2026, 3, 13, 11, 0));
    assert!(names(&r).ends_with(&["workflow.completed"]));
    assert!(saga.open_tasks().is_empty() && saga.state.timers.is_empty() && !saga.state.active);
}

#[test]
fn reminders_count_working_days_past_a_published_holiday() {
    let opened = Event::OwnershipConflictOpened(OwnershipConflictOpened {
        lead_id: LeadId::derived("l"),
        conflict_id: ConflictId::derived("c"),
        claimants: vec![wang().id, li().id],
        opened_at: t0(),
    });
    let mut saga = Saga::for_event(&opened);
    let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).expect("date");
    saga.calendar.apply(&CalendarPublished {
        year: 2026,
        holidays: vec![day(10, 1), day(10, 2), day(10, 5), day(10, 6), day(10, 7)],
        workdays: vec![day(9, 27), day(10, 10)],
        note: "国庆节".into(),
    });
    // Wednesday 30 September 10:00: the 2nd working day after it is Friday 9 October (1–7 are
    // off), the 5th is Tuesday 13 October (Saturday 10 October is worked).
    saga.trigger(&opened, shanghai(2026, 9, 30, 10, 0));
    let dues: Vec<DateTime<Utc>> = saga.state.timers.values().map(|(_, d)| *d).collect();
    assert!(
        dues.contains(&shanghai(2026, 10, 9, 10, 0))
            && dues.contains(&shanghai(2026, 10, 13, 10, 0)),
        "{dues:?}"
    );
}

#[test]
fn a_decision_before_the_reminder_cancels_both_timers() {
    let opened = Event::OwnershipConflictOpened(OwnershipConflictOpened {
        lead_id: LeadId::derived("l"),
        conflict_id: ConflictId::derived("c"),
        claimants: vec![],
        opened_at: t0(),
    });
    let mut saga = Saga::for_event(&opened);
    saga.trigger(&opened, t0());
    let decided = Event::OwnershipConflictDecided(OwnershipConflictDecided {
        lead_id: LeadId::derived("l"),
        conflict_id: ConflictId::derived("c"),
        winner: li().id,
        decided_by: manager().id,
        grounds: vec![ConflictGround::DeeperContact],
        note: String::new(),
    });
    let r = saga.trigger(&decided, t0() + Duration::hours(3));
    assert_eq!(
        r.events
            .iter()
            .filter(|e| matches!(e, Event::TimerCancelled(_)))
            .count(),
        2
    );
}

fn requested(expires_at: DateTime<Utc>) -> Event {
    Event::ReassignmentRequested(ReassignmentRequested {
        lead_id: LeadId::derived("l"),
        reassignment_id: ReassignmentId::derived("r"),
        from: wang().id,
        to: li().id,
        requested_by: manager().id,
        evidence: "x".into(),
        requested_at: t0(),
        expires_at,
    })
}

#[test]
fn reassignment_waits_for_both_parties_in_either_order() {
    let req = requested(t0() + Duration::days(14));
    let mut saga = Saga::for_event(&req);
    saga.trigger(&req, t0());
    assert_eq!(saga.open_tasks().len(), 2);
    let owner_task = saga
        .state
        .tasks
        .values()
        .find(|t| t.name == "approve_as_owner")
        .expect("owner task");
    assert_eq!(owner_task.assignee.staff, Some(wang().id));
    let approve = |party| {
        Event::ReassignmentApproved(ReassignmentApproved {
            lead_id: LeadId::derived("l"),
            reassignment_id: ReassignmentId::derived("r"),
            party,
            approved_by: wang().id,
            note: String::new(),
        })
    };
    saga.trigger(
        &approve(ApprovalParty::OriginalOwner),
        t0() + Duration::hours(1),
    );
    assert_eq!(saga.open_tasks(), ["approve_as_sales_department"]);
    let assigned = Event::LeadOwnerAssigned(LeadOwnerAssigned {
        lead_id: LeadId::derived("l"),
        owner: li().id,
        previous: Some(wang().id),
        basis: AssignmentBasis::Reassignment {
            reassignment_id: ReassignmentId::derived("r"),
        },
    });
    assert_eq!(workflow::route(&assigned, None)[0].1, saga.id);
    saga.trigger(
        &approve(ApprovalParty::SalesDepartment),
        t0() + Duration::hours(2),
    );
    let r = saga.trigger(&assigned, t0() + Duration::hours(2));
    assert!(names(&r).ends_with(&["workflow.completed"]));
    assert_eq!(saga.state.outcome.as_deref(), Some("approved"));
}

#[test]
fn an_unanswered_reassignment_is_expired_by_its_timer_once() {
    let req = requested(t0() + Duration::days(14));
    let mut saga = Saga::for_event(&req);
    saga.trigger(&req, t0());
    let r = saga.fire(
        |p| *p == TimerPurpose::ReassignmentExpiry,
        t0() + Duration::days(15),
    );
    assert!(matches!(
        &r.commands[..],
        [workflow::Outgoing {
            command: OutCommand::Lead {
                cmd: LeadCommand::ExpireReassignment { .. },
                ..
            },
            ..
        }]
    ));
    let expired = Event::ReassignmentExpired(ReassignmentExpired {
        lead_id: LeadId::derived("l"),
        reassignment_id: ReassignmentId::derived("r"),
    });
    let r = saga.trigger(&expired, t0() + Duration::days(15));
    assert!(names(&r).ends_with(&["workflow.completed"]));
    assert_eq!(saga.state.outcome.as_deref(), Some("expired"));
}

#[test]
fn declarations_go_to_review_then_filing_and_strategic_ones_to_key_accounts() {
    let declared = Event::ProspectDeclared(ProspectDeclared {
        lead_id: LeadId::derived("l"),
        declaration_id: DeclarationId::derived("d"),
        declared_by: wang().id,
        amount_cny: 5_000_000,
        tier: Tier::Strategic,
        flags: QualitativeFlags::default(),
        company_level: Level::B,
        personal_level: Level::B,
        quoting_strategy: String::new(),
        criteria: vec![],
    });
    let targets = workflow::route(&declared, None);
    assert_eq!(targets[0].0, WorkflowKind::ProspectDeclaration);
    let mut saga = Saga::for_event(&declared);
    saga.trigger(&declared, t0());
    assert_eq!(saga.open_tasks(), ["review_declaration"]);
    // The valid-info instance of the same declaration id never started: it ignores the review.
    let reviewed = Event::DeclarationReviewed(DeclarationReviewed {
        lead_id: LeadId::derived("l"),
        declaration_id: DeclarationId::derived("d"),
        reviewed_by: manager().id,
        approved: true,
        note: String::new(),
    });
    let valid_id = workflow::route(&reviewed, None)
        .into_iter()
        .find(|(k, _)| *k == WorkflowKind::ValidInfoDeclaration)
        .expect("routed")
        .1;
    let mut other = Saga {
        kind: WorkflowKind::ValidInfoDeclaration,
        id: valid_id,
        state: WorkflowState::default(),
        policy: Policy::default(),
        calendar: WorkCalendar::default(),
        now: t0(),
    };
    assert!(other.trigger(&reviewed, t0()).events.is_empty());
    saga.trigger(&reviewed, t0() + Duration::days(1));
    assert_eq!(saga.open_tasks(), ["file_declaration"]);
    let filed = Event::DeclarationFiled(DeclarationFiled {
        lead_id: LeadId::derived("l"),
        declaration_id: DeclarationId::derived("d"),
        filed_by: sales_dept().id,
        key_account_involved: true,
    });
    let r = saga.trigger(&filed, t0() + Duration::days(2));
    assert!(
        r.events.iter().any(
            |e| matches!(e, Event::ReminderRaised(m) if m.to.role == Role::KeyAccountDepartment)
        )
    );
    assert_eq!(saga.state.outcome.as_deref(), Some("filed"));
}

#[test]
fn contract_review_reopens_seats_after_an_amendment_and_ends_at_signing() {
    let contract = ContractId::derived("c");
    let submitted = Event::ContractSubmitted(ContractSubmitted {
        lead_id: LeadId::derived("l"),
        contract_id: contract,
        amount_cny: 1,
        content_hash: "a".repeat(64),
        reviewers: vec![
            "sales_department".into(),
            "office_manager".into(),
            "finance".into(),
        ],
        submitted_by: wang().id,
    });
    let mut saga = Saga::for_event(&submitted);
    let r = saga.trigger(&submitted, t0());
    assert_eq!(saga.open_tasks().len(), 3);
    // Each seat's task names the seat as people read it, not by its code.
    let titles: Vec<(String, String)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TaskOpened(t) => Some((t.title_zh.clone(), t.title_en.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        titles,
        [
            (
                "以“销售部”身份评审合同".to_string(),
                "Review the contract as sales department".to_string()
            ),
            (
                "以“办事处经理”身份评审合同".into(),
                "Review the contract as office manager".into()
            ),
            (
                "以“财务”身份评审合同".into(),
                "Review the contract as finance".into()
            ),
        ]
    );
    let approve = |seat: &str, hash: &str| {
        Event::ContractApproved(ContractApproved {
            lead_id: LeadId::derived("l"),
            contract_id: contract,
            seat: seat.into(),
            approved_by: sales_dept().id,
            content_hash: hash.into(),
        })
    };
    saga.trigger(&approve("sales_department", &"a".repeat(64)), t0());
    saga.trigger(&approve("finance", &"a".repeat(64)), t0());
    assert_eq!(saga.open_tasks(), ["review_contract:office_manager"]);
    let amended = Event::ContractAmended(ContractAmended {
        lead_id: LeadId::derived("l"),
        contract_id: contract,
        amount_cny: 2,
        content_hash: "b".repeat(64),
        amended_by: wang().id,
        reason: "x".into(),
    });
    saga.trigger(&amended, t0() + Duration::days(1));
    assert_eq!(
        saga.open_tasks().len(),
        3,
        "approvals of the old content are void"
    );
    for seat in ["sales_department", "office_manager", "finance"] {
        saga.trigger(&approve(seat, &"b".repeat(64)), t0() + Duration::days(2));
    }
    assert_eq!(saga.open_tasks(), ["sign_contract"]);
    let signed = Event::ContractSigned(ContractSigned {
        lead_id: LeadId::derived("l"),
        contract_id: contract,
        amount_cny: 2,
        content_hash: "b".repeat(64),
        signed_by: wang().id,
    });
    saga.trigger(&signed, t0() + Duration::days(3));
    assert!(saga.open_tasks().is_empty());
    assert_eq!(saga.state.outcome.as_deref(), Some("signed"));
}

#[test]
fn visit_plans_remind_the_day_before_and_mark_missing_plans_overdue_at_the_deadline() {
    let joined = Event::StaffJoined(StaffJoined {
        staff_id: wang().id,
        name: "王工".into(),
        role: Role::SalesEngineer,
        office: Some(office()),
    });
    let mut saga = Saga::for_event(&joined);
    // Monday 2 March: the next weekly deadline is Friday 6 March 17:30 (for the week of 9 March).
    saga.trigger(&joined, shanghai(2026, 3, 2, 9, 0));
    let week = Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 9).expect("date"),
    };
    assert!(
        saga.state
            .timers
            .values()
            .any(|(p, d)| *p == TimerPurpose::PlanDeadline { period: week }
                && *d == shanghai(2026, 3, 6, 17, 30) + Duration::seconds(1))
    );
    let r = saga.fire(
        |p| matches!(p, TimerPurpose::PlanReminder { period, .. } if *period == week),
        shanghai(2026, 3, 5, 17, 30),
    );
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::ReminderRaised(m) if m.to.staff == Some(wang().id)))
    );
    // Submitted on time: the deadline passes quietly and the next one is scheduled.
    let submitted = Event::VisitPlanSubmitted(VisitPlanSubmitted {
        plan_id: PlanId::derived("p"),
        engineer: wang().id,
        office: office(),
        period: week,
        visits: vec![],
        submitted_at: shanghai(2026, 3, 6, 12, 0),
        due_at: shanghai(2026, 3, 6, 17, 30),
        on_time: true,
        revision: 1,
    });
    saga.trigger(&submitted, shanghai(2026, 3, 6, 12, 0));
    let r = saga.fire(
        |p| *p == TimerPurpose::PlanDeadline { period: week },
        shanghai(2026, 3, 6, 17, 30),
    );
    assert!(r.commands.is_empty());
    let next = Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 16).expect("date"),
    };
    // Nothing submitted for the next week: overdue at its deadline, exactly once.
    let r = saga.fire(
        |p| *p == TimerPurpose::PlanDeadline { period: next },
        shanghai(2026, 3, 13, 17, 30),
    );
    assert!(
        matches!(&r.commands[..], [workflow::Outgoing { command: OutCommand::Plan { cmd: PlanCommand::MarkOverdue { period, .. } }, .. }] if *period == next)
    );
    let again = saga.trigger(&r.events[0].clone(), shanghai(2026, 3, 13, 17, 31));
    assert!(
        again.commands.is_empty(),
        "a refired deadline sends nothing again"
    );
}

#[test]
fn office_summaries_run_compile_review_file() {
    let opened = Event::OfficeOpened(OfficeOpened {
        office_id: office(),
        name: "上海".into(),
        code: "SH".into(),
        timezone: "Asia/Shanghai".into(),
        region: String::new(),
    });
    let mut saga = Saga::for_event(&opened);
    saga.trigger(&opened, shanghai(2026, 3, 3, 9, 0));
    let week = Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
    };
    saga.fire(
        |p| *p == TimerPurpose::SummaryDue { period: week },
        shanghai(2026, 3, 9, 9, 0),
    );
    assert_eq!(saga.open_tasks(), ["compile_summary:2026-W10"]);
    let id = SummaryId::derived("s");
    saga.trigger(
        &Event::SummaryCompiled(SummaryCompiled {
            summary_id: id,
            office: office(),
            period: week,
            compiled_by: assistant().id,
            lines: vec![],
        }),
        shanghai(2026, 3, 9, 10, 0),
    );
    saga.trigger(
        &Event::SummaryVerified(SummaryVerified {
            summary_id: id,
            verified_by: assistant().id,
            note: String::new(),
        }),
        shanghai(2026, 3, 9, 11, 0),
    );
    assert_eq!(saga.open_tasks(), ["review_summary:2026-W10"]);
    saga.trigger(
        &Event::SummaryReviewed(SummaryReviewed {
            summary_id: id,
            reviewed_by: manager().id,
            approved: true,
            note: String::new(),
        }),
        shanghai(2026, 3, 10, 10, 0),
    );
    assert_eq!(saga.open_tasks(), ["file_summary:2026-W10"]);
    saga.trigger(
        &Event::SummaryFiled(SummaryFiled {
            summary_id: id,
            filed_by: assistant().id,
        }),
        shanghai(2026, 3, 10, 16, 0),
    );
    assert!(saga.open_tasks().is_empty());
}

#[test]
fn insider_and_stagnation_tasks_close_on_their_events_or_when_the_lead_leaves() {
    let lead = LeadId::derived("l");
    let raised = Event::InsiderEscalationRaised(InsiderEscalationRaised {
        lead_id: lead,
        owner: wang().id,
        visits_without_insider: 3,
    });
    let mut insider = Saga::for_event(&raised);
    insider.trigger(&raised, t0());
    assert_eq!(insider.open_tasks(), ["help_develop_insider"]);
    insider.trigger(
        &Event::InsiderDeveloped(InsiderDeveloped {
            lead_id: lead,
            key_person_id: KeyPersonId::derived("k"),
            note: String::new(),
        }),
        t0(),
    );
    assert!(!insider.state.active);

    let opened = Event::StagnationReviewOpened(StagnationReviewOpened {
        lead_id: lead,
        owner: wang().id,
        visits: 5,
    });
    let mut review = Saga::for_event(&opened);
    review.trigger(&opened, t0());
    assert_eq!(review.open_tasks(), ["stagnation_review"]);
    let lost = Event::StageChanged(StageChanged {
        lead_id: lead,
        office: office(),
        from: Stage::Ordinary,
        to: Stage::Lost,
        owner: Some(wang().id),
    });
    review.trigger(&lost, t0());
    assert_eq!(
        review.state.outcome.as_deref(),
        Some("lead left the funnel")
    );
}

#[test]
fn the_insider_task_opens_on_the_third_visit_not_on_phone_calls() {
    use crate::lead_work::{phone_call, visit};
    let mut lead = LeadSpec::owned_by_wang();
    lead.policy.stagnation_visits = 100;
    let raised = |events: &[Event]| {
        events
            .iter()
            .find(|e| matches!(e, Event::InsiderEscalationRaised(_)))
            .cloned()
    };
    // Two visits among four phone follow-ups: no task for the manager yet.
    for contact in [
        visit(1),
        phone_call(1),
        phone_call(2),
        phone_call(3),
        visit(2),
        phone_call(4),
    ] {
        assert_eq!(raised(&lead.ok(wang(), contact)), None);
    }
    let third = lead.ok(wang(), visit(3));
    let escalation = raised(&third).expect("the third visit escalates");
    let mut saga = Saga::for_event(&escalation);
    saga.trigger(&escalation, t0());
    assert_eq!(saga.open_tasks(), ["help_develop_insider"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every trigger delivered twice: the second delivery sends no command and opens nothing.
    #[test]
    fn redelivered_triggers_change_nothing(steps in testing::steps(80)) {
        let (_, log) = testing::run(&steps, &Policy::default());
        let policy = Policy::default();
        let calendar = WorkCalendar::default();
        let mut states: std::collections::BTreeMap<WorkflowId, WorkflowState> = Default::default();
        for (i, event) in log.iter().enumerate() {
            for (kind, id) in workflow::route(event, Some(testing::office())) {
                let trigger = Trigger { id: uuid::Uuid::from_u128(i as u128), occurred_at: t0() + Duration::hours(i as i64), office: Some(testing::office()), event };
                let ctx = ReactCtx { now: trigger.occurred_at, policy: &policy, tz: chrono_tz::Asia::Shanghai, calendar: &calendar };
                let state = states.remove(&id).unwrap_or_default();
                let first = workflow::react(kind, id, &state, &trigger, &ctx).expect("ids read");
                let state = first.events.iter().fold(state, workflow::evolve);
                let second = workflow::react(kind, id, &state, &trigger, &ctx).expect("ids read");
                prop_assert!(second.commands.is_empty(), "{:?} sent again", second.commands);
                prop_assert!(second.events.is_empty(), "{} changed again: {:?}", event.event_type(), second.events);
                states.insert(id, state);
            }
        }
    }
}

#[test]
fn a_contract_review_ends_when_the_lead_is_lost() {
    let lead = LeadId::derived("l");
    let submitted = Event::ContractSubmitted(ContractSubmitted {
        lead_id: lead,
        contract_id: ContractId::derived("c"),
        amount_cny: 1,
        content_hash: "a".repeat(64),
        reviewers: vec!["finance".into()],
        submitted_by: wang().id,
    });
    let mut saga = Saga::for_event(&submitted);
    saga.trigger(&submitted, t0());
    let lost = Event::StageChanged(StageChanged {
        lead_id: lead,
        office: office(),
        from: Stage::Prospect,
        to: Stage::Lost,
        owner: Some(wang().id),
    });
    assert!(
        workflow::route(&lost, None)
            .iter()
            .any(|(k, id)| *k == WorkflowKind::ContractReview && *id == saga.id)
    );
    saga.trigger(&lost, t0() + Duration::days(1));
    assert!(saga.open_tasks().is_empty());
    assert_eq!(saga.state.outcome.as_deref(), Some("lead left the funnel"));
}

/// The ids a contract review keeps are typed in its state; one recorded as text that does not read
/// back stops the reaction that needs it (the runtime parks it) instead of being skipped.
#[test]
fn a_contract_review_keeps_its_engineer_typed_and_stops_on_one_that_does_not_read() {
    let contract = ContractId::derived("c");
    let submitted = Event::ContractSubmitted(ContractSubmitted {
        lead_id: LeadId::derived("l"),
        contract_id: contract,
        amount_cny: 1,
        content_hash: "a".repeat(64),
        reviewers: vec!["finance".into()],
        submitted_by: wang().id,
    });
    let mut saga = Saga::for_event(&submitted);
    saga.trigger(&submitted, t0());
    assert_eq!(saga.state.owner, Some(wang().id));
    assert!(saga.state.unreadable.is_empty());

    // The note as a hand-edited or damaged log might hold it.
    let bad = Event::WorkflowNoted(WorkflowNoted {
        workflow_id: saga.id,
        key: "owner".into(),
        value: "wang".into(),
    });
    saga.state = workflow::evolve(std::mem::take(&mut saga.state), &bad);
    assert_eq!(saga.state.owner, None);
    let approved = Event::ContractApproved(ContractApproved {
        lead_id: LeadId::derived("l"),
        contract_id: contract,
        seat: "finance".into(),
        approved_by: sales_dept().id,
        content_hash: "a".repeat(64),
    });
    let trigger = Trigger {
        id: uuid::Uuid::from_u128(7),
        occurred_at: t0(),
        office: Some(office()),
        event: &approved,
    };
    let calendar = WorkCalendar::default();
    let policy = Policy::default();
    let ctx = ReactCtx {
        now: t0(),
        policy: &policy,
        tz: chrono_tz::Asia::Shanghai,
        calendar: &calendar,
    };
    let err = workflow::react(saga.kind, saga.id, &saga.state, &trigger, &ctx)
        .expect_err("the signing task needs the engineer");
    assert_eq!(
        (err.what.as_str(), err.text.as_str()),
        ("owner", "wang"),
        "{err}"
    );
    assert!(
        err.to_string().contains("`wang` is not a valid id"),
        "{err}"
    );

    // Recorded again as an id, it reads, and the signing task goes to that engineer.
    let good = Event::WorkflowNoted(WorkflowNoted {
        workflow_id: saga.id,
        key: "owner".into(),
        value: wang().id.to_string(),
    });
    saga.state = workflow::evolve(std::mem::take(&mut saga.state), &good);
    saga.trigger(&approved, t0());
    assert_eq!(saga.open_tasks(), ["sign_contract"]);
}
