//! §1, §6 and Tables 3–4: offices and staff, visit plans with local deadlines, office summaries.

use crate::fixtures::*;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use funnel_domain::events::*;
use funnel_domain::model::Period;
use funnel_domain::org::*;
use funnel_domain::plan::*;
use funnel_domain::summary::*;
use funnel_domain::*;
use funnel_types::*;
use std::collections::BTreeMap;

fn run(
    acting: Acting,
    at: chrono::DateTime<Utc>,
    f: impl FnOnce(&Ctx<'_>) -> Decision,
) -> Decision {
    let policy = Policy::default();
    let dir: BTreeMap<StaffId, StaffInfo> = directory();
    let ctx = Ctx {
        acting: &acting,
        at,
        policy: &policy,
        staff: &dir,
    };
    f(&ctx)
}

#[test]
fn offices_need_a_real_time_zone_and_open_once() {
    let cmd = |tz: &str| OfficeCommand::Open {
        office_id: office(),
        name: "上海".into(),
        code: "SH".into(),
        timezone: tz.into(),
        region: "".into(),
    };
    let r = run(Acting::Staff(sales_dept()), t0(), |c| {
        decide_office(&OfficeState::default(), &cmd("Mars/Base"), c)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::InvalidValue);
    let r = run(Acting::Staff(manager()), t0(), |c| {
        decide_office(&OfficeState::default(), &cmd("Asia/Shanghai"), c)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::RoleNotPermitted);
    let events = run(Acting::system("bootstrap"), t0(), |c| {
        decide_office(&OfficeState::default(), &cmd("Asia/Shanghai"), c)
    })
    .unwrap();
    let state = events.iter().fold(OfficeState::default(), evolve_office);
    assert_eq!(state.timezone(), chrono_tz::Asia::Shanghai);
    let r = run(Acting::Staff(sales_dept()), t0(), |c| {
        decide_office(&state, &cmd("Asia/Shanghai"), c)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::OfficeExists);
}

#[test]
fn staff_join_change_role_move_and_leave() {
    let id = StaffId::derived("new");
    let hq = Acting::Staff(sales_dept());
    let join = |role, office| StaffCommand::Join {
        staff_id: id,
        name: "新人".into(),
        role,
        office,
    };
    let r = run(hq.clone(), t0(), |c| {
        decide_staff(&StaffState::default(), &join(Role::SalesEngineer, None), c)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::FieldRequired);
    let r = run(Acting::Staff(executive()), t0(), |c| {
        decide_staff(
            &StaffState::default(),
            &join(Role::Auditor, Some(office())),
            c,
        )
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::InvalidValue);
    let r = run(Acting::Staff(manager()), t0(), |c| {
        decide_staff(
            &StaffState::default(),
            &join(Role::SalesEngineer, Some(office())),
            c,
        )
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::RoleNotPermitted);
    let r = run(hq.clone(), t0(), |c| {
        decide_staff(
            &StaffState::default(),
            &StaffCommand::Leave { reason: "".into() },
            c,
        )
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::StaffNotFound);

    let mut state = StaffState::default();
    for cmd in [
        join(Role::SalesEngineer, Some(office())),
        StaffCommand::ChangeRole {
            role: Role::OfficeManager,
        },
        StaffCommand::MoveOffice {
            office: Some(other_office()),
        },
        StaffCommand::Leave {
            reason: "退休".into(),
        },
    ] {
        let events = run(hq.clone(), t0(), |c| decide_staff(&state, &cmd, c)).expect("accepted");
        state = events.iter().fold(state, evolve_staff);
    }
    let info = state.info().expect("exists");
    assert_eq!(
        (info.role, info.office, info.active),
        (Role::OfficeManager, Some(other_office()), false)
    );
    let r = run(hq, t0(), |c| {
        decide_staff(
            &state,
            &StaffCommand::ChangeRole {
                role: Role::SalesEngineer,
            },
            c,
        )
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::StaffInactive);
}

#[test]
fn reassigning_moves_between_office_and_headquarters_in_one_step() {
    let id = StaffId::derived("moving");
    let hq = Acting::Staff(sales_dept());
    let decide = |state: &StaffState, cmd: StaffCommand| {
        run(hq.clone(), t0(), |c| decide_staff(state, &cmd, c))
    };
    let joined = decide(
        &StaffState::default(),
        StaffCommand::Join {
            staff_id: id,
            name: "陈经理".into(),
            role: Role::OfficeManager,
            office: Some(office()),
        },
    )
    .expect("joined");
    let state = joined.iter().fold(StaffState::default(), evolve_staff);
    let reassign = |role, office| StaffCommand::Reassign { role, office };

    // One role change alone cannot leave an office role without an office, nor give HQ an office.
    let r = decide(
        &state,
        StaffCommand::ChangeRole {
            role: Role::SalesDepartment,
        },
    );
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::InvalidValue);
    let r = decide(&state, reassign(Role::SalesDepartment, Some(office())));
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::InvalidValue);
    let r = decide(&state, reassign(Role::SalesEngineer, None));
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::FieldRequired);
    let r = decide(&state, reassign(Role::OfficeManager, Some(office())));
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::NothingToDo);

    // To headquarters: both facts, role first, in one decision.
    let events = decide(&state, reassign(Role::SalesDepartment, None)).expect("accepted");
    assert!(matches!(
        events.as_slice(),
        [Event::StaffRoleChanged(r), Event::StaffMovedOffice(m)]
            if r.to == Role::SalesDepartment && m.from == Some(office()) && m.to.is_none()
    ));
    let state = events.iter().fold(state, evolve_staff);
    let again = decide(&state, reassign(Role::SalesDepartment, None));
    assert_eq!(again.unwrap_err().refusal.code, RefusalCode::NothingToDo);
    // And back to an office role, in another office.
    let events =
        decide(&state, reassign(Role::OfficeManager, Some(other_office()))).expect("accepted");
    let state = events.iter().fold(state, evolve_staff);
    let info = state.info().expect("exists");
    assert_eq!(
        (info.role, info.office),
        (Role::OfficeManager, Some(other_office()))
    );
    // Only the office changes: one event.
    let events = decide(&state, reassign(Role::OfficeManager, Some(office()))).expect("moved");
    assert!(matches!(events.as_slice(), [Event::StaffMovedOffice(_)]));
    // Managers cannot reassign anyone.
    let r = run(Acting::Staff(manager()), t0(), |c| {
        decide_staff(&state, &reassign(Role::SalesEngineer, Some(office())), c)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::RoleNotPermitted);
}

#[test]
fn headquarters_publishes_a_checked_working_calendar() {
    use funnel_domain::work_calendar::*;
    let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).expect("date");
    let publish = |holidays: Vec<NaiveDate>, workdays: Vec<NaiveDate>| CalendarCommand::Publish {
        year: 2026,
        holidays,
        workdays,
        note: "国务院办公厅通知".into(),
    };
    let hq = Acting::Staff(sales_dept());
    let decide = |acting: Acting, state: &CalendarState, cmd: CalendarCommand| {
        run(acting, t0(), |c| decide_calendar(state, &cmd, c))
    };
    let code = |d: Decision| d.unwrap_err().refusal.code;
    let empty = CalendarState::default();
    let good = || publish(vec![day(10, 2), day(10, 1), day(10, 1)], vec![day(10, 10)]);
    assert_eq!(
        code(decide(Acting::Staff(manager()), &empty, good())),
        RefusalCode::RoleNotPermitted
    );
    // A Saturday is not a holiday to list, a Thursday not a make-up day, 2027 not in 2026.
    assert_eq!(
        code(decide(
            hq.clone(),
            &empty,
            publish(vec![day(10, 3)], vec![])
        )),
        RefusalCode::InvalidValue
    );
    assert_eq!(
        code(decide(
            hq.clone(),
            &empty,
            publish(vec![], vec![day(10, 1)])
        )),
        RefusalCode::InvalidValue
    );
    let next_year = NaiveDate::from_ymd_opt(2027, 1, 1).expect("date");
    assert_eq!(
        code(decide(hq.clone(), &empty, publish(vec![next_year], vec![]))),
        RefusalCode::InvalidValue
    );
    // Accepted: dates sorted and deduplicated; the same again is nothing to do; a correction is
    // a new publication that replaces it.
    let events = decide(hq.clone(), &empty, good()).expect("published");
    let Event::CalendarPublished(p) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(p.holidays, vec![day(10, 1), day(10, 2)]);
    let state = events.iter().fold(empty, evolve_calendar);
    assert_eq!(
        code(decide(hq.clone(), &state, good())),
        RefusalCode::NothingToDo
    );
    let corrected = decide(
        Acting::system("bootstrap"),
        &state,
        publish(vec![day(10, 1)], vec![]),
    )
    .expect("corrected");
    let mut calendar = WorkCalendar::default();
    for e in events.iter().chain(&corrected) {
        calendar.evolve(e);
    }
    assert!(calendar.is_working_day(day(10, 2)) && !calendar.is_working_day(day(10, 10)));
}

fn next_week() -> Period {
    Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 9).expect("date"),
    }
}

fn visit_on(day: u32) -> PlannedVisit {
    PlannedVisit {
        date: NaiveDate::from_ymd_opt(2026, 3, day).expect("date"),
        lead_id: None,
        customer: "万科".into(),
        purpose: "演示".into(),
    }
}

#[test]
fn weekly_plan_is_due_friday_1730_office_time() {
    let tz = chrono_tz::Asia::Shanghai;
    // Friday 6 March 2026 17:30 in Shanghai is 09:30 UTC.
    let due = Utc
        .with_ymd_and_hms(2026, 3, 6, 9, 30, 0)
        .single()
        .expect("time");
    assert_eq!(due_at(&next_week(), tz), Some(due));
    let submit = PlanCommand::Submit {
        period: next_week(),
        visits: vec![visit_on(10)],
    };
    for (at, on_time) in [
        (due, true),
        (due + Duration::seconds(1), false),
        (due - Duration::days(2), true),
    ] {
        let events = run(Acting::Staff(wang()), at, |c| {
            decide_plan(&PlanState::default(), &submit, c, tz)
        })
        .expect("accepted");
        let Event::VisitPlanSubmitted(p) = &events[0] else {
            unreachable!()
        };
        assert_eq!(
            (p.on_time, p.due_at, p.revision),
            (on_time, due, 1),
            "submitted at {at}"
        );
    }
    // The same wall-clock deadline in another office's zone is a different instant.
    assert_ne!(due_at(&next_week(), chrono_tz::Europe::Berlin), Some(due));
}

#[test]
fn monthly_plan_is_due_by_the_28th_of_the_month_before() {
    let tz = chrono_tz::Asia::Shanghai;
    let april = Period::Month {
        year: 2026,
        month: 4,
    };
    assert_eq!(
        due_at(&april, tz),
        Utc.with_ymd_and_hms(2026, 3, 28, 15, 59, 59).single()
    );
    let january = Period::Month {
        year: 2027,
        month: 1,
    };
    assert_eq!(
        due_at(&january, tz),
        Utc.with_ymd_and_hms(2026, 12, 28, 15, 59, 59).single()
    );
    assert_eq!(
        due_at(
            &Period::Month {
                year: 2026,
                month: 13
            },
            tz
        ),
        None
    );
}

#[test]
fn plans_are_validated_revised_marked_overdue_and_filed() {
    let tz = chrono_tz::Asia::Shanghai;
    let bad_week = PlanCommand::Submit {
        period: Period::Week {
            monday: NaiveDate::from_ymd_opt(2026, 3, 10).expect("d"),
        },
        visits: vec![],
    };
    let r = run(Acting::Staff(wang()), t0(), |c| {
        decide_plan(&PlanState::default(), &bad_week, c, tz)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::InvalidValue);
    let outside = PlanCommand::Submit {
        period: next_week(),
        visits: vec![visit_on(20)],
    };
    let r = run(Acting::Staff(wang()), t0(), |c| {
        decide_plan(&PlanState::default(), &outside, c, tz)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::InvalidValue);
    let r = run(Acting::Staff(manager()), t0(), |c| {
        decide_plan(
            &PlanState::default(),
            &PlanCommand::Submit {
                period: next_week(),
                visits: vec![],
            },
            c,
            tz,
        )
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::RoleNotPermitted);

    let overdue = PlanCommand::MarkOverdue {
        engineer: wang().id,
        office: office(),
        period: next_week(),
    };
    let r = run(Acting::system("timer"), t0(), |c| {
        decide_plan(&PlanState::default(), &overdue, c, tz)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::PlanNotDue);
    let late = t0() + Duration::days(10);
    let events = run(Acting::system("timer"), late, |c| {
        decide_plan(&PlanState::default(), &overdue, c, tz)
    })
    .expect("overdue");
    let mut state = events.iter().fold(PlanState::default(), evolve_plan);
    assert!(state.overdue);
    let submit = PlanCommand::Submit {
        period: next_week(),
        visits: vec![visit_on(11)],
    };
    let events = run(Acting::Staff(wang()), late, |c| {
        decide_plan(&state, &submit, c, tz)
    })
    .expect("late submission");
    assert!(matches!(&events[0], Event::VisitPlanSubmitted(p) if !p.on_time));
    state = events.iter().fold(state, evolve_plan);
    let r = run(Acting::Staff(li()), late, |c| {
        decide_plan(&state, &submit, c, tz)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::NotOwner);
    let events = run(Acting::Staff(wang()), late, |c| {
        decide_plan(&state, &submit, c, tz)
    })
    .expect("revision");
    assert!(matches!(&events[0], Event::VisitPlanSubmitted(p) if p.revision == 2));
    state = events.iter().fold(state, evolve_plan);
    let events = run(Acting::Staff(assistant()), late, |c| {
        decide_plan(&state, &PlanCommand::File, c, tz)
    })
    .expect("filed");
    state = events.iter().fold(state, evolve_plan);
    let r = run(Acting::Staff(wang()), late, |c| {
        decide_plan(&state, &submit, c, tz)
    });
    assert_eq!(r.unwrap_err().refusal.code, RefusalCode::PlanClosed);
}

#[test]
fn summaries_are_compiled_verified_reviewed_and_filed_in_order() {
    let period = next_week();
    let lines = vec![SummaryLine {
        lead_id: LeadId::derived("x"),
        engineer: wang().id,
        customer: "万科".into(),
    }];
    let step = |state: &SummaryState, who: StaffInfo, cmd: SummaryCommand| {
        run(Acting::Staff(who), t0(), |c| decide_summary(state, &cmd, c))
    };
    let mut state = SummaryState::default();
    assert_eq!(
        step(
            &state,
            assistant(),
            SummaryCommand::Verify { note: "".into() }
        )
        .unwrap_err()
        .refusal
        .code,
        RefusalCode::SummaryNotFound
    );
    assert_eq!(
        step(
            &state,
            wang(),
            SummaryCommand::Compile {
                office: office(),
                period,
                lines: lines.clone()
            }
        )
        .unwrap_err()
        .refusal
        .code,
        RefusalCode::RoleNotPermitted
    );
    for (who, cmd) in [
        (
            assistant(),
            SummaryCommand::Compile {
                office: office(),
                period,
                lines: lines.clone(),
            },
        ),
        (
            assistant(),
            SummaryCommand::Verify {
                note: "核实".into(),
            },
        ),
        (
            manager(),
            SummaryCommand::Review {
                approve: false,
                note: "漏报".into(),
            },
        ),
        (
            assistant(),
            SummaryCommand::Compile {
                office: office(),
                period,
                lines: lines.clone(),
            },
        ),
        (assistant(), SummaryCommand::Verify { note: "".into() }),
    ] {
        state = step(&state, who, cmd)
            .expect("accepted")
            .iter()
            .fold(state, evolve_summary);
    }
    assert_eq!(
        step(&state, assistant(), SummaryCommand::File)
            .unwrap_err()
            .refusal
            .code,
        RefusalCode::SummaryWrongState
    );
    assert_eq!(
        step(
            &state,
            other_manager(),
            SummaryCommand::Review {
                approve: true,
                note: "".into()
            }
        )
        .unwrap_err()
        .refusal
        .code,
        RefusalCode::OtherOffice
    );
    state = step(
        &state,
        manager(),
        SummaryCommand::Review {
            approve: true,
            note: "".into(),
        },
    )
    .expect("ok")
    .iter()
    .fold(state, evolve_summary);
    state = step(&state, assistant(), SummaryCommand::File)
        .expect("ok")
        .iter()
        .fold(state, evolve_summary);
    assert_eq!(state.stage, SummaryStage::Filed);
    assert_eq!(state.id, Some(summary_id(office(), &period)));
}

/// A member of staff as on record after joining.
fn on_record(info: StaffInfo) -> StaffState {
    evolve_staff(
        StaffState::default(),
        &Event::StaffJoined(StaffJoined {
            staff_id: info.id,
            name: format!("{:?}", info.role),
            role: info.role,
            office: info.office,
        }),
    )
}

fn run_in(
    acting: StaffInfo,
    dir: &BTreeMap<StaffId, StaffInfo>,
    state: &StaffState,
    cmd: StaffCommand,
) -> Decision {
    let policy = Policy::default();
    let acting = Acting::Staff(acting);
    let ctx = Ctx {
        acting: &acting,
        at: t0(),
        policy: &policy,
        staff: dir,
    };
    decide_staff(state, &cmd, &ctx)
}

#[track_caller]
fn refused_with(d: Decision, code: RefusalCode) {
    let r = d.expect_err("refused").refusal;
    assert_eq!(r.code, code, "{}", r.message_en);
    assert!(!r.message_zh.is_empty());
}

#[test]
fn only_an_executive_appoints_executives_and_auditors() {
    let dir = directory();
    let newcomer = StaffId::derived("newcomer");
    let join = |role| StaffCommand::Join {
        staff_id: newcomer,
        name: "新人".into(),
        role,
        office: None,
    };
    let nobody = StaffState::default();
    for role in [Role::Executive, Role::Auditor] {
        refused_with(
            run_in(sales_dept(), &dir, &nobody, join(role)),
            RefusalCode::ExecutiveOnly,
        );
        run_in(executive(), &dir, &nobody, join(role)).expect("an executive appoints");
    }
    run_in(sales_dept(), &dir, &nobody, join(Role::SalesDepartment)).expect("HQ staff");
    // Nor promotes anyone to them, nor reassigns or removes them.
    let engineer = on_record(wang());
    let to = |role| StaffCommand::Reassign { role, office: None };
    for role in [Role::Executive, Role::Auditor] {
        refused_with(
            run_in(sales_dept(), &dir, &engineer, to(role)),
            RefusalCode::ExecutiveOnly,
        );
        run_in(executive(), &dir, &engineer, to(role)).expect("an executive promotes");
    }
    let auditor = on_record(auditor());
    refused_with(
        run_in(sales_dept(), &dir, &auditor, to(Role::SalesDepartment)),
        RefusalCode::ExecutiveOnly,
    );
    refused_with(
        run_in(
            sales_dept(),
            &dir,
            &auditor,
            StaffCommand::Leave { reason: "".into() },
        ),
        RefusalCode::ExecutiveOnly,
    );
    run_in(
        executive(),
        &dir,
        &auditor,
        StaffCommand::Leave { reason: "".into() },
    )
    .expect("an executive removes an auditor");
}

#[test]
fn no_one_changes_their_own_role_or_office() {
    let dir = directory();
    let me = on_record(sales_dept());
    for cmd in [
        StaffCommand::Reassign {
            role: Role::Executive,
            office: None,
        },
        StaffCommand::ChangeRole {
            role: Role::Auditor,
        },
        StaffCommand::Reassign {
            role: Role::OfficeManager,
            office: Some(office()),
        },
        StaffCommand::MoveOffice {
            office: Some(office()),
        },
    ] {
        refused_with(run_in(sales_dept(), &dir, &me, cmd), RefusalCode::OwnRole);
    }
    // Not even an executive.
    let mut two = dir.clone();
    let other = staff("boss2", Role::Executive, None);
    two.insert(other.id, other);
    refused_with(
        run_in(
            executive(),
            &two,
            &on_record(executive()),
            StaffCommand::Reassign {
                role: Role::SalesDepartment,
                office: None,
            },
        ),
        RefusalCode::OwnRole,
    );
    // Someone else may: the sales department reassigns an engineer.
    run_in(
        sales_dept(),
        &dir,
        &on_record(wang()),
        StaffCommand::Reassign {
            role: Role::OfficeManager,
            office: Some(office()),
        },
    )
    .expect("reassigned");
}

#[test]
fn a_phone_number_is_set_by_its_holder_or_headquarters_written_any_way() {
    let dir = directory();
    let set = |p: &str| StaffCommand::SetPhone {
        phone: Some(p.into()),
    };
    // The holder, written with spaces, a country code or full-width digits: the same 11 digits.
    for written in [
        "138 0013 8000",
        "+86 138-0013-8000",
        "１３８００１３８０００",
    ] {
        let events = run_in(wang(), &dir, &on_record(wang()), set(written)).expect("their own");
        let [Event::StaffPhoneChanged(e)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(e.phone.as_deref(), Some("13800138000"));
        assert_eq!(e.staff_id, wang().id);
    }
    // Headquarters for an engineer; another engineer's colleague or manager not.
    run_in(sales_dept(), &dir, &on_record(wang()), set("13800138000")).expect("headquarters");
    refused_with(
        run_in(wang(), &dir, &on_record(key_account()), set("13800138000")),
        RefusalCode::RoleNotPermitted,
    );
    // An executive's number: the executive or another executive only.
    refused_with(
        run_in(
            sales_dept(),
            &dir,
            &on_record(executive()),
            set("13800138000"),
        ),
        RefusalCode::ExecutiveOnly,
    );
    run_in(
        executive(),
        &dir,
        &on_record(executive()),
        set("13800138000"),
    )
    .expect("their own");
    // Not a mobile number, and nothing changed.
    for bad in ["12345", "010-12345678", "1380013800a", "23800138000"] {
        refused_with(
            run_in(wang(), &dir, &on_record(wang()), set(bad)),
            RefusalCode::InvalidValue,
        );
    }
    let with_phone = evolve_staff(
        on_record(wang()),
        &Event::StaffPhoneChanged(StaffPhoneChanged {
            staff_id: wang().id,
            phone: Some("13800138000".into()),
        }),
    );
    assert_eq!(with_phone.phone.as_deref(), Some("13800138000"));
    refused_with(
        run_in(wang(), &dir, &with_phone, set("138 0013 8000")),
        RefusalCode::NothingToDo,
    );
    let removed = run_in(
        wang(),
        &dir,
        &with_phone,
        StaffCommand::SetPhone { phone: None },
    )
    .expect("removed");
    assert!(matches!(
        removed.as_slice(),
        [Event::StaffPhoneChanged(StaffPhoneChanged {
            phone: None,
            ..
        })]
    ));
}

#[test]
fn a_token_is_issued_only_to_its_holder_or_by_an_executive() {
    let dir = directory();
    let issue = || StaffCommand::IssueToken {
        token_id: uuid::Uuid::from_u128(7),
        token_hash: "ab".repeat(32),
    };
    for other in [executive(), auditor(), wang(), key_account()] {
        refused_with(
            run_in(sales_dept(), &dir, &on_record(other), issue()),
            RefusalCode::TokenHolderOrExecutive,
        );
        run_in(executive(), &dir, &on_record(other), issue()).expect("an executive issues");
    }
    run_in(sales_dept(), &dir, &on_record(sales_dept()), issue()).expect("for themselves");
    // Every role issues its own, for its integrations; an office role no one else's.
    for holder in [wang(), auditor(), key_account()] {
        run_in(holder, &dir, &on_record(holder), issue()).expect("the holder for themselves");
    }
    refused_with(
        run_in(wang(), &dir, &on_record(key_account()), issue()),
        RefusalCode::RoleNotPermitted,
    );
    let system = run(Acting::system("cli"), t0(), |c| {
        decide_staff(&on_record(wang()), &issue(), c)
    });
    system.expect("the system (direct access to the store) issues");
    // Revoking an executive's token is an executive's business too; an engineer's is not.
    let mut boss = on_record(executive());
    boss = evolve_staff(
        boss,
        &Event::StaffTokenIssued(StaffTokenIssued {
            staff_id: executive().id,
            token_id: uuid::Uuid::from_u128(7),
            token_hash: "ab".repeat(32),
        }),
    );
    refused_with(
        run_in(
            sales_dept(),
            &dir,
            &boss,
            StaffCommand::RevokeToken {
                token_id: uuid::Uuid::from_u128(7),
            },
        ),
        RefusalCode::ExecutiveOnly,
    );
}

#[test]
fn the_last_executive_neither_leaves_nor_is_reassigned_away() {
    let dir = directory();
    let boss = on_record(executive());
    let leave = || StaffCommand::Leave {
        reason: "退休".into(),
    };
    let away = || StaffCommand::Reassign {
        role: Role::SalesDepartment,
        office: None,
    };
    refused_with(
        run_in(executive(), &dir, &boss, leave()),
        RefusalCode::LastExecutive,
    );
    let system = |cmd: StaffCommand| {
        run(Acting::system("cli"), t0(), |c| {
            decide_staff(&boss, &cmd, c)
        })
    };
    refused_with(system(away()), RefusalCode::LastExecutive);
    refused_with(system(leave()), RefusalCode::LastExecutive);
    // An executive who left does not count; a second active one does.
    let mut two = dir.clone();
    let mut gone = staff("boss-gone", Role::Executive, None);
    gone.active = false;
    two.insert(gone.id, gone);
    refused_with(
        run_in(executive(), &two, &boss, leave()),
        RefusalCode::LastExecutive,
    );
    let second = staff("boss2", Role::Executive, None);
    two.insert(second.id, second);
    run_in(executive(), &two, &boss, leave()).expect("another executive stays");
    run_in(second, &two, &boss, away()).expect("reassigned by the other executive");
}

#[test]
fn staff_names_refuse_control_bidi_and_invisible_characters() {
    let dir = directory();
    for (name, code) in [
        ("王\t伟", RefusalCode::ControlCharacter),
        ("\u{202E}伟王", RefusalCode::BidiControl),
        ("王伟\u{2066}", RefusalCode::BidiControl),
        ("\u{3164}\u{200D} ", RefusalCode::InvisibleName),
    ] {
        refused_with(
            run_in(
                sales_dept(),
                &dir,
                &StaffState::default(),
                StaffCommand::Join {
                    staff_id: StaffId::derived("x"),
                    name: name.into(),
                    role: Role::SalesEngineer,
                    office: Some(office()),
                },
            ),
            code,
        );
    }
}

#[test]
fn a_calendar_taking_many_weekdays_off_needs_an_executive() {
    use funnel_domain::work_calendar::*;
    // The first 31 weekdays of 2026 off; with two Saturdays worked, 29.
    let weekdays: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2026, 1, 1)
        .expect("date")
        .iter_days()
        .filter(|d| {
            !matches!(
                chrono::Datelike::weekday(d),
                chrono::Weekday::Sat | chrono::Weekday::Sun
            )
        })
        .take(31)
        .collect();
    let saturdays = vec![
        NaiveDate::from_ymd_opt(2026, 3, 7).expect("date"),
        NaiveDate::from_ymd_opt(2026, 3, 14).expect("date"),
    ];
    let publish = |workdays: Vec<NaiveDate>| CalendarCommand::Publish {
        year: 2026,
        holidays: weekdays.clone(),
        workdays,
        note: String::new(),
    };
    let empty = CalendarState::default();
    let by =
        |who: Acting, cmd: CalendarCommand| run(who, t0(), |c| decide_calendar(&empty, &cmd, c));
    let r = by(Acting::Staff(sales_dept()), publish(vec![])).expect_err("refused");
    assert_eq!(r.refusal.code, RefusalCode::CalendarNeedsExecutive);
    assert!(r.refusal.message_en.contains("31") && r.refusal.message_en.contains("executive"));
    by(Acting::Staff(executive()), publish(vec![])).expect("an executive publishes it");
    by(Acting::Staff(sales_dept()), publish(saturdays))
        .expect("29 weekdays off is within the limit");
}

#[test]
fn a_summary_period_is_a_week_from_a_monday_or_a_month() {
    let Period::Week { monday } = next_week() else {
        unreachable!("next_week is a week")
    };
    for period in [
        Period::Week {
            monday: monday + Duration::days(1),
        },
        Period::Month {
            year: 2026,
            month: 13,
        },
    ] {
        let refused = run(Acting::Staff(assistant()), t0(), |c| {
            decide_summary(
                &SummaryState::default(),
                &SummaryCommand::Compile {
                    office: office(),
                    period,
                    lines: Vec::new(),
                },
                c,
            )
        })
        .unwrap_err();
        assert_eq!(
            refused.refusal.code,
            RefusalCode::InvalidValue,
            "{period:?}"
        );
        assert!(refused.refusal.message_zh.contains("汇总周期无效"));
    }
}

#[test]
fn an_invitation_links_an_openid_connect_identity_that_then_signs_the_person_in() {
    let dir = directory();
    let hash = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
    let invited = evolve_staff(
        on_record(wang()),
        &Event::StaffInvited(StaffInvited {
            staff_id: wang().id,
            invitation_id: uuid::Uuid::nil(),
            secret_hash: hash('a'),
            expires_at: t0() + Duration::hours(72),
        }),
    );
    let link = |secret: char, issuer: &str, subject: &str| {
        StaffCommand::Session(SessionCommand::LinkOidc {
            secret_hash: hash(secret),
            issuer: issuer.into(),
            subject: subject.into(),
        })
    };
    let start = StaffCommand::Session(SessionCommand::Start {
        session_id: uuid::Uuid::nil(),
        secret_hash: hash('b'),
        method: SignInMethod::Oidc,
        expires_at: t0() + Duration::hours(12),
        idle_minutes: 60,
    });
    // Not linked yet: no session through the provider.
    refused_with(
        run_in(wang(), &dir, &invited, start.clone()),
        RefusalCode::InvalidValue,
    );
    // Another invitation's secret, someone else, an empty or non-ASCII subject: refused.
    refused_with(
        run_in(
            wang(),
            &dir,
            &invited,
            link('c', "https://sso.example.com", "u1"),
        ),
        RefusalCode::InvalidValue,
    );
    refused_with(
        run_in(
            key_account(),
            &dir,
            &invited,
            link('a', "https://sso.example.com", "u1"),
        ),
        RefusalCode::SessionHolderOnly,
    );
    for subject in ["", "王 工", "用户"] {
        refused_with(
            run_in(
                wang(),
                &dir,
                &invited,
                link('a', "https://sso.example.com", subject),
            ),
            RefusalCode::InvalidValue,
        );
    }
    let events = run_in(
        wang(),
        &dir,
        &invited,
        link('a', "https://sso.example.com", "u1"),
    )
    .expect("linked");
    let [Event::StaffOidcLinked(e)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (e.issuer.as_str(), e.subject.as_str()),
        ("https://sso.example.com", "u1")
    );
    let linked = events.iter().fold(invited, evolve_staff);
    assert_eq!(
        linked.oidc,
        Some(("https://sso.example.com".into(), "u1".into()))
    );
    // The invitation is used up, and the provider now begins sessions.
    refused_with(
        run_in(
            wang(),
            &dir,
            &linked,
            link('a', "https://sso.example.com", "u2"),
        ),
        RefusalCode::InvalidValue,
    );
    run_in(wang(), &dir, &linked, start).expect("a session through the provider");
}
