//! The command engine against both backends: at-most-once by command id, recorded refusals,
//! bounded retries under concurrent writers, and first-to-register decided by the store.

use chrono::{Duration, TimeZone, Utc};
use funnel_domain::lead::{LeadCommand, LogVisit, Register};
use funnel_domain::model::*;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Event, Policy, RefusalCode};
use funnel_engine::{Command, CommandMeta, Engine, EngineError, Who};
use funnel_store::EventStore;
use funnel_types::*;
use std::sync::Arc;

fn office() -> OfficeId {
    OfficeId::derived("sh")
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("time")
}

fn engine(store: Arc<dyn EventStore>) -> Engine {
    Engine::new(store, Policy::default(), Arc::new(ManualClock::new(t0())))
}

async fn run(e: &Engine, who: Who, cmd: Command) -> Result<funnel_engine::Accepted, EngineError> {
    e.execute(CommandMeta::new(who).at(t0()), cmd).await
}

/// An office with a manager and engineers e0..e{n}.
async fn bootstrap(e: &Engine, engineers: usize) -> Vec<StaffId> {
    let sys = Who::System("bootstrap".into());
    let open = OfficeCommand::Open {
        office_id: office(),
        name: "上海".into(),
        code: "SH".into(),
        timezone: "Asia/Shanghai".into(),
        region: "".into(),
    };
    run(
        e,
        sys.clone(),
        Command::Office {
            office_id: office(),
            cmd: open,
        },
    )
    .await
    .expect("office");
    let mut ids = Vec::new();
    for i in 0..engineers {
        let id = StaffId::derived(&format!("e{i}"));
        let join = StaffCommand::Join {
            staff_id: id,
            name: format!("工程师{i}"),
            role: Role::SalesEngineer,
            office: Some(office()),
        };
        run(
            e,
            sys.clone(),
            Command::Staff {
                staff_id: id,
                cmd: join,
            },
        )
        .await
        .expect("staff");
        ids.push(id);
    }
    ids
}

fn register() -> Command {
    Command::Lead {
        lead_id: None,
        cmd: LeadCommand::Register(Register {
            customer_name: "万科".into(),
            project_name: "城市花园（二期）".into(),
            industry: Industry::RealEstate,
            purchase_mode: PurchaseMode::Independent,
            channel: Channel::BuildingSweep,
            office: office(),
            location: "上海".into(),
            contact: Contact {
                name: "李".into(),
                phone: "138".into(),
            },
            need: "楼宇对讲".into(),
        }),
    }
}

fn visit(lead: LeadId, n: usize) -> Command {
    Command::Lead {
        lead_id: Some(lead),
        cmd: LeadCommand::LogVisit(LogVisit {
            visit_id: VisitId::derived(&format!("v{n}")),
            kind: ContactKind::Visit,
            visited_at: t0(),
            purposes: vec![],
            summary: format!("visit {n}"),
            information_gained: String::new(),
            customer_feedback: String::new(),
            next_step: String::new(),
            met: vec![],
        }),
    }
}

async fn at_most_once_by_command_id(store: Arc<dyn EventStore>) {
    let e = engine(store.clone());
    let staff = bootstrap(&e, 1).await;
    let meta = CommandMeta::new(Who::Staff(staff[0]))
        .with_id(CommandId::derived("reg"))
        .at(t0());
    let first = e
        .execute(meta.clone(), register())
        .await
        .expect("registered");
    assert!(!first.duplicate);
    assert_eq!(first.events.len(), 2);
    let head = store.head().await.expect("head");
    let again = e.execute(meta, register()).await.expect("retry answers");
    assert!(again.duplicate);
    assert_eq!(again.last_position, first.last_position);
    assert_eq!(
        again
            .events
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<_>>(),
        first
            .events
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.head().await.expect("head"),
        head,
        "nothing new written"
    );
}

async fn refused_touches_are_recorded_once(store: Arc<dyn EventStore>) {
    let e = engine(store.clone());
    let staff = bootstrap(&e, 2).await;
    let lead = run(&e, Who::Staff(staff[0]), register())
        .await
        .expect("registered");
    let lead_id = match &lead.events[0].payload {
        Event::LeadRegistered(r) => r.lead_id,
        other => panic!("{other:?}"),
    };
    let meta = CommandMeta::new(Who::Staff(staff[1]))
        .with_id(CommandId::derived("poach"))
        .at(t0());
    for attempt in 0..3 {
        match e.execute(meta.clone(), visit(lead_id, 1)).await {
            Err(EngineError::Refused {
                refusal,
                recorded: Some(_),
                recorded_before,
                ..
            }) => {
                assert_eq!(refusal.code, RefusalCode::NotOwner);
                assert_eq!(recorded_before, attempt > 0, "attempt {attempt}");
            }
            other => panic!("expected a recorded refusal, got {other:?}"),
        }
    }
    let events = funnel_store::read_whole_stream(store.as_ref(), &lead.stream)
        .await
        .expect("read");
    let touches = events
        .iter()
        .filter(|r| r.meta.event_type == "lead.touch_refused")
        .count();
    assert_eq!(touches, 1);
    let unknown = run(
        &e,
        Who::Staff(StaffId::derived("nobody")),
        visit(lead_id, 2),
    )
    .await;
    assert_eq!(
        unknown.unwrap_err().refusal().map(|r| r.code),
        Some(RefusalCode::UnknownStaff)
    );
}

async fn concurrent_commands_on_one_lead_all_land_once(store: Arc<dyn EventStore>) {
    let e = engine(store.clone());
    let staff = bootstrap(&e, 1).await;
    let lead = run(&e, Who::Staff(staff[0]), register())
        .await
        .expect("registered");
    let lead_id = LeadId(uuid::Uuid::parse_str(lead.stream.id_part()).expect("uuid"));
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let e = e.clone();
            let who = Who::Staff(staff[0]);
            tokio::spawn(async move {
                e.execute(CommandMeta::new(who).at(t0()), visit(lead_id, n))
                    .await
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.expect("task").expect("visit accepted after retries");
    }
    let events = funnel_store::read_whole_stream(store.as_ref(), &lead.stream)
        .await
        .expect("read");
    let numbers: Vec<u32> = events
        .iter()
        .filter_map(
            |r| match funnel_codec::decode_recorded(r).expect("decodes").payload {
                Event::VisitLogged(v) => Some(v.visit_number),
                _ => None,
            },
        )
        .collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<u32>>());
}

async fn first_to_register_is_decided_by_the_store(store: Arc<dyn EventStore>) {
    let e = engine(store.clone());
    let staff = bootstrap(&e, 4).await;
    let tasks: Vec<_> = staff
        .iter()
        .map(|s| {
            let e = e.clone();
            let who = Who::Staff(*s);
            tokio::spawn(async move { e.execute(CommandMeta::new(who).at(t0()), register()).await })
        })
        .collect();
    let mut registered = 0;
    let mut duplicates = 0;
    for t in futures::future::join_all(tasks).await {
        let accepted = t.expect("task").expect("each registration is decided");
        match accepted.events[0].payload {
            Event::LeadRegistered(_) => registered += 1,
            Event::DuplicateRegistrationReceived(_) => duplicates += 1,
            ref other => panic!("{other:?}"),
        }
    }
    assert_eq!((registered, duplicates), (1, 3));
    // Past the window the same registration is refused.
    let late = CommandMeta::new(Who::Staff(StaffId::derived("e9"))).at(t0() + Duration::days(30));
    let sys = Who::System("bootstrap".into());
    let join = StaffCommand::Join {
        staff_id: StaffId::derived("e9"),
        name: "晚到".into(),
        role: Role::SalesEngineer,
        office: Some(office()),
    };
    run(
        &e,
        sys,
        Command::Staff {
            staff_id: StaffId::derived("e9"),
            cmd: join,
        },
    )
    .await
    .expect("joined");
    let r = e.execute(late, register()).await.unwrap_err();
    assert_eq!(
        r.refusal().map(|r| r.code),
        Some(RefusalCode::AlreadyRegistered)
    );
}

/// A stored command answers only the actor who sent it, and an actor's idempotency key answers only
/// the command it first ran on a stream.
async fn a_command_id_answers_only_its_actor_and_a_key_only_its_command(
    store: Arc<dyn EventStore>,
) {
    let e = engine(store.clone());
    let staff = bootstrap(&e, 2).await;
    let lead = run(&e, Who::Staff(staff[0]), register())
        .await
        .expect("registered");
    let lead_id = match &lead.events[0].payload {
        Event::LeadRegistered(r) => r.lead_id,
        other => panic!("{other:?}"),
    };
    let key = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"owner's key");
    let owner = |id: &str| {
        CommandMeta::new(Who::Staff(staff[0]))
            .with_id(CommandId::derived(id))
            .with_key(key)
            .at(t0())
    };
    let first = e
        .execute(owner("visit-1"), visit(lead_id, 1))
        .await
        .expect("visit");
    assert_eq!(first.events[0].meta.correlation_id.0, key);
    let head = store.head().await.expect("head");
    // Another member of staff with the same command id gets neither the events nor a decision.
    let other = CommandMeta::new(Who::Staff(staff[1]))
        .with_id(CommandId::derived("visit-1"))
        .at(t0());
    match e.execute(other, visit(lead_id, 1)).await {
        Err(EngineError::CommandIdTaken { .. }) => {}
        other => panic!("expected CommandIdTaken, got {other:?}"),
    }
    // The owner's key with another command on the same stream is refused, not run.
    match e.execute(owner("visit-2"), visit(lead_id, 2)).await {
        Err(EngineError::KeyReused { earlier, .. }) => {
            assert_eq!(earlier, CommandId::derived("visit-1"))
        }
        other => panic!("expected KeyReused, got {other:?}"),
    }
    // The same command again is the duplicate.
    let again = e
        .execute(owner("visit-1"), visit(lead_id, 1))
        .await
        .expect("duplicate");
    assert!(again.duplicate);
    assert_eq!(
        store.head().await.expect("head"),
        head,
        "nothing new written"
    );
    // A refusal recorded for one member of staff does not answer another's command.
    let poach = CommandMeta::new(Who::Staff(staff[1]))
        .with_id(CommandId::derived("shared"))
        .at(t0());
    let refused = e.execute(poach, visit(lead_id, 3)).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::Refused {
                recorded: Some(_),
                ..
            })
        ),
        "{refused:?}"
    );
    let mine = CommandMeta::new(Who::Staff(staff[0]))
        .with_id(CommandId::derived("shared"))
        .at(t0());
    match e.execute(mine, visit(lead_id, 3)).await {
        Err(EngineError::CommandIdTaken { .. }) => {}
        other => panic!("expected CommandIdTaken, got {other:?}"),
    }
}

/// An answer that writes nothing is given from the stream as it is now, not as this engine last
/// saw it: another process may have written the command since.
async fn answers_that_write_nothing_see_other_writers(store: Arc<dyn EventStore>) {
    let here = engine(store.clone());
    let staff = bootstrap(&here, 2).await;
    let lead = run(&here, Who::Staff(staff[0]), register())
        .await
        .expect("registered");
    let lead_id = match &lead.events[0].payload {
        Event::LeadRegistered(r) => r.lead_id,
        other => panic!("{other:?}"),
    };
    let key = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"a key");
    let meta = |who: StaffId, id: &str| {
        CommandMeta::new(Who::Staff(who))
            .with_id(CommandId::derived(id))
            .at(t0())
    };
    here.execute(meta(staff[0], "visit-1").with_key(key), visit(lead_id, 1))
        .await
        .expect("visit 1");
    // Another process (its own memory, the same store) runs a command and records a refusal,
    // neither of which this one saw.
    let there = engine(store.clone());
    there
        .execute(meta(staff[0], "visit-2"), visit(lead_id, 2))
        .await
        .expect("visit 2");
    let poach = there
        .execute(meta(staff[1], "visit-3"), visit(lead_id, 3))
        .await;
    assert!(
        matches!(
            poach,
            Err(EngineError::Refused {
                recorded: Some(_),
                ..
            })
        ),
        "{poach:?}"
    );
    // The owner retries visit-2 here under the key of visit-1: it is the duplicate of what the
    // other process wrote, not a reused key.
    let again = here
        .execute(meta(staff[0], "visit-2").with_key(key), visit(lead_id, 2))
        .await
        .expect("the duplicate");
    assert!(again.duplicate);
    // visit-3 is another member of staff's (refused) command: taken, whatever the key once meant
    // here.
    match here
        .execute(meta(staff[0], "visit-3").with_key(key), visit(lead_id, 3))
        .await
    {
        Err(EngineError::CommandIdTaken { .. }) => {}
        other => panic!("expected CommandIdTaken, got {other:?}"),
    }
}

macro_rules! both_backends {
    ($($name:ident),*) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = funnel_store_sqlite::SqliteStore::open(dir.path().join("f.db")).expect("open");
                super::$name(std::sync::Arc::new(store)).await;
            })*
        }
        mod nats {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let server = funnel_testkit::NatsServer::start();
                let store = funnel_store_nats::NatsStore::connect(funnel_store_nats::NatsOptions::new(server.url())).await.expect("connect");
                super::$name(std::sync::Arc::new(store)).await;
                drop(server);
            })*
        }
    };
}

both_backends!(
    at_most_once_by_command_id,
    answers_that_write_nothing_see_other_writers,
    refused_touches_are_recorded_once,
    concurrent_commands_on_one_lead_all_land_once,
    first_to_register_is_decided_by_the_store,
    a_command_id_answers_only_its_actor_and_a_key_only_its_command
);
