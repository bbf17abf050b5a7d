//! Flat command cost must not change a single decision: random command sequences on one lead run
//! through an engine that keeps states in memory and snapshots beside the log, while its cache is
//! dropped, its snapshots are damaged or written by another domain version, and another engine
//! writes to the same streams behind its back; each command must answer exactly as the same
//! command does on a second store through an engine that keeps nothing and folds every stream from
//! its first event. Duplicate command ids (of the same and of other actors) and reused keys come
//! back across snapshot boundaries.

use funnel_domain::lead::LeadCommand;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Acting, Policy, customer_key, testing};
use funnel_engine::{Accepted, CacheLimits, Command, CommandMeta, Engine, EngineError, Who};
use funnel_store::{EventStore, Snapshot};
use funnel_types::*;
use proptest::prelude::*;
use std::sync::Arc;

/// What is done to the engine under test before a step.
#[derive(Clone, Copy, Debug)]
enum Upset {
    Nothing,
    /// Its memory is dropped: the next command starts from the snapshot.
    Forget,
    /// The snapshot is overwritten with bytes that do not decode, and memory dropped.
    Corrupt,
    /// The snapshot is overwritten with its own bytes cut short, and memory dropped.
    Truncate,
    /// The snapshot's state version is changed (a newer or older domain), and memory dropped.
    OtherDomainVersion,
    /// The step is run by another engine on the same store (the cache goes stale).
    OtherWriter,
}

fn upset() -> impl Strategy<Value = Upset> {
    prop_oneof![
        6 => Just(Upset::Nothing),
        1 => Just(Upset::Forget),
        1 => Just(Upset::Corrupt),
        1 => Just(Upset::Truncate),
        1 => Just(Upset::OtherDomainVersion),
        2 => Just(Upset::OtherWriter),
    ]
}

/// Which command id a step uses: a fresh one, or the id of an earlier step (a retry, by the same
/// or another actor), with or without one of three caller keys.
#[derive(Clone, Copy, Debug)]
struct Ids {
    reuse: Option<usize>,
    key: Option<u8>,
}

fn ids() -> impl Strategy<Value = Ids> {
    (
        prop_oneof![3 => Just(None), 1 => (0usize..64).prop_map(Some)],
        prop_oneof![2 => Just(None), 1 => (0u8..3).prop_map(Some)],
    )
        .prop_map(|(reuse, key)| Ids { reuse, key })
}

type Step = (Acting, LeadCommand, i64, Upset, Ids);

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            testing::acting(),
            testing::command(),
            0i64..400,
            upset(),
            ids(),
        ),
        1..max,
    )
}

fn the_lead() -> LeadId {
    LeadId::derived(&customer_key("万科", "城市花园（二期）"))
}

fn command(cmd: LeadCommand) -> Command {
    Command::Lead {
        lead_id: Some(the_lead()),
        cmd,
    }
}

fn who(acting: &Acting) -> Who {
    match acting {
        Acting::Staff(info) => Who::Staff(info.id),
        Acting::System { name } => Who::System(name.clone()),
    }
}

/// An answer with everything that must agree (positions included: both stores see the same
/// appends in the same order).
fn outcome(result: Result<Accepted, EngineError>) -> String {
    match result {
        Ok(a) => {
            let events: Vec<String> = a
                .events
                .iter()
                .map(|e| {
                    format!(
                        "{}@{}:{} by {:?} cmd {} corr {} {}",
                        e.meta.event_type,
                        e.meta.version,
                        e.meta.position,
                        e.meta.actor,
                        e.meta.command_id,
                        e.meta.correlation_id,
                        String::from_utf8_lossy(&funnel_codec::encode(&e.payload))
                    )
                })
                .collect();
            format!(
                "ok duplicate={} last={}:{} {events:?}",
                a.duplicate, a.last_version, a.last_position
            )
        }
        Err(EngineError::Refused {
            refusal,
            recorded,
            recorded_before,
            suppressed,
        }) => format!(
            "refused {} recorded={recorded:?} before={recorded_before} suppressed={suppressed}",
            refusal.code.as_str()
        ),
        Err(EngineError::CommandIdTaken { command_id, stream }) => {
            format!("taken {command_id} on {stream}")
        }
        Err(EngineError::KeyReused { earlier, stream }) => {
            format!("key reused for {earlier} on {stream}")
        }
        Err(e) => format!("error {e}"),
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(testing::start()))
}

/// The office and staff of the random world, on record.
async fn world(e: &Engine) {
    let sys = || CommandMeta::new(Who::System("bootstrap".into())).at(testing::start());
    for office in [testing::office(), OfficeId::derived("elsewhere")] {
        e.execute(
            sys().with_id(CommandId::derived(&format!("open {office}"))),
            Command::Office {
                office_id: office,
                cmd: OfficeCommand::Open {
                    office_id: office,
                    name: format!("办事处 {office}"),
                    code: office.to_string()[..8].to_string(),
                    timezone: "Asia/Shanghai".into(),
                    region: String::new(),
                },
            },
        )
        .await
        .expect("office");
    }
    for s in testing::staff() {
        let join = StaffCommand::Join {
            staff_id: s.id,
            name: format!("员工{}", &s.id.to_string()[..6]),
            role: s.role,
            office: s.office,
        };
        e.execute(
            sys().with_id(CommandId::derived(&format!("join {}", s.id))),
            Command::Staff {
                staff_id: s.id,
                cmd: join,
            },
        )
        .await
        .expect("join");
        if !s.active {
            e.execute(
                sys().with_id(CommandId::derived(&format!("leave {}", s.id))),
                Command::Staff {
                    staff_id: s.id,
                    cmd: StaffCommand::Leave {
                        reason: "gone".into(),
                    },
                },
            )
            .await
            .expect("leave");
        }
    }
}

/// Damages the kept snapshot of the lead's stream as `how` says; false when none is kept yet.
async fn damage(store: &dyn EventStore, how: Upset) -> bool {
    let stream = StreamId::new("lead", the_lead()).expect("stream");
    let Some(kept) = store.load_snapshot(&stream).await.expect("load") else {
        return false;
    };
    let mut data = kept.data.to_vec();
    match how {
        Upset::Corrupt => {
            for (i, b) in data.iter_mut().enumerate().skip(10) {
                *b = b.wrapping_mul(31).wrapping_add(i as u8);
            }
        }
        Upset::Truncate => data.truncate(data.len() / 2),
        Upset::OtherDomainVersion => {
            let v = funnel_engine::STATE_VERSION + 1;
            data[6..10].copy_from_slice(&v.to_be_bytes());
        }
        _ => return false,
    }
    store
        .save_snapshot(Snapshot {
            data: data.into(),
            ..kept
        })
        .await
        .expect("save");
    true
}

async fn check(
    steps: Vec<Step>,
    tested_store: Arc<dyn EventStore>,
    plain_store: Arc<dyn EventStore>,
) -> Result<(), TestCaseError> {
    let policy = Policy::default();
    let small = CacheLimits {
        streams: 8,
        index_entries: 10_000,
    };
    let mut tested = Engine::new(tested_store.clone(), policy.clone(), clock())
        .with_cache(small)
        .with_snapshots_every(2);
    let plain = Engine::new(plain_store.clone(), policy, clock())
        .with_cache(CacheLimits {
            streams: 0,
            index_entries: 0,
        })
        .with_snapshots_every(0);
    world(&tested).await;
    world(&plain).await;
    let mut at = testing::start();
    let mut sent: Vec<(CommandId, Who)> = Vec::new();
    for (n, (acting, cmd, hours, upset, ids)) in steps.into_iter().enumerate() {
        at += chrono::Duration::hours(hours);
        let who = who(&acting);
        let id = match ids.reuse {
            Some(i) if !sent.is_empty() => sent[i % sent.len()].0,
            _ => CommandId::derived(&format!("step {n}")),
        };
        let mut meta = CommandMeta::new(who.clone()).with_id(id).at(at);
        if let Some(k) = ids.key {
            meta = meta.with_key(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &[k]));
        }
        sent.push((id, who));
        let runner = match upset {
            Upset::Nothing => tested.clone(),
            Upset::Forget => {
                tested = tested.clone().with_cache(small);
                tested.clone()
            }
            Upset::Corrupt | Upset::Truncate | Upset::OtherDomainVersion => {
                damage(tested_store.as_ref(), upset).await;
                tested = tested.clone().with_cache(small);
                tested.clone()
            }
            // Another process: its own memory, the same store.
            Upset::OtherWriter => tested.clone().with_cache(small),
        };
        let got = outcome(runner.execute(meta.clone(), command(cmd.clone())).await);
        let want = outcome(plain.execute(meta, command(cmd.clone())).await);
        prop_assert_eq!(
            &got,
            &want,
            "step {} ({:?}, {:?}) by {:?} decided otherwise with a snapshot",
            n,
            upset,
            ids,
            acting
        );
    }
    // And the logs hold the same.
    let everything = |store: Arc<dyn EventStore>| async move {
        funnel_store::conformance::read_everything(store.as_ref())
            .await
            .into_iter()
            .map(|r| (r.meta.stream, r.meta.version, r.meta.command_id, r.payload))
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(
        everything(tested_store).await,
        everything(plain_store).await
    );
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn snapshots_and_cache_decide_as_the_log_sqlite(steps in steps(48)) {
        runtime().block_on(async {
            let tested: Arc<dyn EventStore> =
                Arc::new(funnel_store_sqlite::SqliteStore::open_in_memory().expect("store"));
            let plain: Arc<dyn EventStore> =
                Arc::new(funnel_store_sqlite::SqliteStore::open_in_memory().expect("store"));
            check(steps, tested, plain).await
        })?;
    }
}

fn nats_server() -> &'static funnel_testkit::NatsServer {
    static SERVER: std::sync::OnceLock<funnel_testkit::NatsServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(funnel_testkit::NatsServer::start)
}

async fn nats_store(url: &str) -> Arc<dyn EventStore> {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let opts = funnel_store_nats::NatsOptions {
        stream_name: format!("T{unique}"),
        subject_prefix: format!("t{unique}"),
        ..funnel_store_nats::NatsOptions::new(url)
    };
    Arc::new(
        funnel_store_nats::NatsStore::connect(opts)
            .await
            .expect("connect"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn snapshots_and_cache_decide_as_the_log_nats(steps in steps(32)) {
        let url = nats_server().url();
        runtime().block_on(async {
            let tested = nats_store(&url).await;
            let plain = nats_store(&url).await;
            check(steps, tested, plain).await
        })?;
    }
}

/// The events of a lead recorded through the engine that keeps snapshots are what a snapshot
/// stands for: after many commands a snapshot is kept, and a fresh engine (nothing in memory)
/// answers a retry of the first command, a reused key and another actor's id from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_keys_across_a_snapshot_boundary() {
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open_in_memory().expect("store"));
    let e = Engine::new(store.clone(), Policy::default(), clock()).with_snapshots_every(4);
    world(&e).await;
    let staff = testing::staff();
    let (e1, e2) = (staff[0].id, staff[1].id);
    let reg = LeadCommand::Register(funnel_domain::lead::Register {
        customer_name: "万科".into(),
        project_name: "城市花园（二期）".into(),
        industry: funnel_domain::model::Industry::RealEstate,
        purchase_mode: funnel_domain::model::PurchaseMode::Independent,
        channel: funnel_domain::model::Channel::BuildingSweep,
        office: testing::office(),
        location: "上海".into(),
        contact: funnel_domain::model::Contact {
            name: "李".into(),
            phone: "138".into(),
        },
        need: "楼宇对讲".into(),
    });
    let key = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"key");
    let first = CommandMeta::new(Who::Staff(e1))
        .with_id(CommandId::derived("first"))
        .with_key(key)
        .at(testing::start());
    let registered = e
        .execute(first.clone(), command(reg.clone()))
        .await
        .expect("registered");
    for n in 0..40 {
        let visit = LeadCommand::LogVisit(funnel_domain::lead::LogVisit {
            visit_id: VisitId::derived(&format!("v{n}")),
            kind: funnel_domain::model::ContactKind::Visit,
            visited_at: testing::start(),
            purposes: vec![],
            summary: format!("visit {n}"),
            information_gained: String::new(),
            customer_feedback: String::new(),
            next_step: String::new(),
            met: vec![],
        });
        e.execute(
            CommandMeta::new(Who::Staff(e1)).at(testing::start()),
            command(visit),
        )
        .await
        .expect("visit");
    }
    let stream = StreamId::new("lead", the_lead()).expect("stream");
    let kept = store
        .load_snapshot(&stream)
        .await
        .expect("load")
        .expect("a snapshot is kept after 40 commands");
    assert!(kept.version.0 > registered.last_version.0);
    // A fresh engine: nothing in memory, only the snapshot and the events after it.
    let fresh = Engine::new(store.clone(), Policy::default(), clock());
    let again = fresh
        .execute(first.clone(), command(reg.clone()))
        .await
        .expect("duplicate");
    assert!(again.duplicate);
    assert_eq!(
        outcome(Ok(again)),
        outcome(Ok(Accepted {
            duplicate: true,
            ..registered
        }))
    );
    let fresh = Engine::new(store.clone(), Policy::default(), clock());
    let other = CommandMeta::new(Who::Staff(e2))
        .with_id(CommandId::derived("first"))
        .at(testing::start());
    assert!(matches!(
        fresh.execute(other, command(reg.clone())).await,
        Err(EngineError::CommandIdTaken { .. })
    ));
    let fresh = Engine::new(store.clone(), Policy::default(), clock());
    let reuse = CommandMeta::new(Who::Staff(e1))
        .with_id(CommandId::derived("second"))
        .with_key(key)
        .at(testing::start());
    match fresh.execute(reuse, command(reg)).await {
        Err(EngineError::KeyReused { earlier, .. }) => {
            assert_eq!(earlier, CommandId::derived("first"))
        }
        other => panic!("expected KeyReused, got {other:?}"),
    }
}

/// What an engine keeps in memory about a person never outlives what the log says: one engine has
/// the engineer in memory, another records that they left, and the first refuses their next
/// command at once; the same for a lead that another engine changed (its refusal is decided on the
/// lead as it is now, not as remembered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_never_outlives_the_log() {
    let store: Arc<dyn EventStore> =
        Arc::new(funnel_store_sqlite::SqliteStore::open_in_memory().expect("store"));
    let here = Engine::new(store.clone(), Policy::default(), clock());
    let there = Engine::new(store.clone(), Policy::default(), clock());
    world(&here).await;
    let e1 = testing::staff()[0].id;
    let visit = |n: u32| {
        command(LeadCommand::LogVisit(funnel_domain::lead::LogVisit {
            visit_id: VisitId::derived(&format!("m{n}")),
            kind: funnel_domain::model::ContactKind::Visit,
            visited_at: testing::start(),
            purposes: vec![],
            summary: format!("visit {n}"),
            information_gained: String::new(),
            customer_feedback: String::new(),
            next_step: String::new(),
            met: vec![],
        }))
    };
    // `here` knows the lead only as missing.
    let missing = here
        .execute(
            CommandMeta::new(Who::Staff(e1)).at(testing::start()),
            visit(0),
        )
        .await;
    assert_eq!(
        missing.unwrap_err().refusal().map(|r| r.code),
        Some(funnel_domain::RefusalCode::LeadNotFound)
    );
    // `there` registers it; `here` must see it.
    let reg = LeadCommand::Register(funnel_domain::lead::Register {
        customer_name: "万科".into(),
        project_name: "城市花园（二期）".into(),
        industry: funnel_domain::model::Industry::RealEstate,
        purchase_mode: funnel_domain::model::PurchaseMode::Independent,
        channel: funnel_domain::model::Channel::BuildingSweep,
        office: testing::office(),
        location: "上海".into(),
        contact: funnel_domain::model::Contact {
            name: "李".into(),
            phone: "138".into(),
        },
        need: "楼宇对讲".into(),
    });
    there
        .execute(
            CommandMeta::new(Who::Staff(e1)).at(testing::start()),
            command(reg),
        )
        .await
        .expect("registered elsewhere");
    here.execute(
        CommandMeta::new(Who::Staff(e1)).at(testing::start()),
        visit(1),
    )
    .await
    .expect("the lead registered elsewhere is found");
    // `there` records that e1 left; `here` must refuse e1 at once.
    there
        .execute(
            CommandMeta::new(Who::System("bootstrap".into())).at(testing::start()),
            Command::Staff {
                staff_id: e1,
                cmd: StaffCommand::Leave {
                    reason: "left".into(),
                },
            },
        )
        .await
        .expect("left");
    let refused = here
        .execute(
            CommandMeta::new(Who::Staff(e1)).at(testing::start()),
            visit(2),
        )
        .await;
    assert_eq!(
        refused.unwrap_err().refusal().map(|r| r.code),
        Some(funnel_domain::RefusalCode::StaffInactive)
    );
}
