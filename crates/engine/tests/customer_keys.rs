//! Customer keys across key versions: a look-alike of a registered customer (a Cyrillic or Greek
//! letter in a Latin name) collides with its lead, and a log written under key version 1 (leads
//! registered before look-alikes were folded) still decides the same way.

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use funnel_domain::lead::{LeadCommand, Register};
use funnel_domain::model::*;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Event, Policy, RefusalCode};
use funnel_engine::{Accepted, Command, CommandMeta, Engine, EngineError, Who};
use funnel_store::{AppendRequest, EventStore, ProposedEvent};
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

struct World {
    store: Arc<dyn EventStore>,
    engine: Engine,
    engineers: Vec<StaffId>,
}

async fn world(store: Arc<dyn EventStore>) -> World {
    let engine = Engine::new(
        store.clone(),
        Policy::default(),
        Arc::new(ManualClock::new(t0())),
    );
    let sys = Who::System("bootstrap".into());
    let open = OfficeCommand::Open {
        office_id: office(),
        name: "上海".into(),
        code: "SH".into(),
        timezone: "Asia/Shanghai".into(),
        region: "".into(),
    };
    engine
        .execute(
            CommandMeta::new(sys.clone()).at(t0()),
            Command::Office {
                office_id: office(),
                cmd: open,
            },
        )
        .await
        .expect("office");
    let mut engineers = Vec::new();
    for i in 0..3 {
        let id = StaffId::derived(&format!("e{i}"));
        let join = StaffCommand::Join {
            staff_id: id,
            name: format!("工程师{i}"),
            role: Role::SalesEngineer,
            office: Some(office()),
        };
        engine
            .execute(
                CommandMeta::new(sys.clone()).at(t0()),
                Command::Staff {
                    staff_id: id,
                    cmd: join,
                },
            )
            .await
            .expect("staff");
        engineers.push(id);
    }
    World {
        store,
        engine,
        engineers,
    }
}

fn registration(customer: &str, project: &str) -> Command {
    Command::Lead {
        lead_id: None,
        cmd: LeadCommand::Register(Register {
            customer_name: customer.into(),
            project_name: project.into(),
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

impl World {
    async fn register(
        &self,
        who: usize,
        at: chrono::DateTime<Utc>,
        customer: &str,
        project: &str,
    ) -> Result<Accepted, EngineError> {
        self.engine
            .execute(
                CommandMeta::new(Who::Staff(self.engineers[who])).at(at),
                registration(customer, project),
            )
            .await
    }

    /// A lead registered as Funnel wrote it before key version 2: `lead.registered` schema
    /// version 1 (no `key_version`), the key and id by key rule 1, on `lead-<uuid5(key)>`.
    async fn legacy_lead(&self, who: usize, customer: &str, key: &str) -> LeadId {
        let id = LeadId::derived(key);
        let by = self.engineers[who];
        let payload = serde_json::json!({
            "lead_id": id,
            "customer_key": key,
            "customer_name": customer,
            "project_name": "",
            "industry": "real_estate",
            "purchase_mode": "independent",
            "channel": "building_sweep",
            "office": office(),
            "location": "上海",
            "contact": {"name": "李", "phone": "138"},
            "need": "楼宇对讲",
            "registered_by": by,
            "registered_at": t0(),
        });
        let owner = serde_json::json!({
            "lead_id": id,
            "owner": by,
            "previous": null,
            "basis": {"kind": "first_to_register"},
        });
        let event = |i: u64, event_type: &str, payload: &serde_json::Value| ProposedEvent {
            event_id: EventId::derived(&format!("{id}:{i}")),
            event_type: event_type.into(),
            schema_version: 1,
            occurred_at: t0(),
            actor: Actor::staff(by, Role::SalesEngineer),
            office: Some(office()),
            correlation_id: CorrelationId::derived(key),
            causation_id: uuid::Uuid::nil(),
            payload: Bytes::from(serde_json::to_vec(payload).expect("json")),
        };
        self.store
            .append(AppendRequest {
                stream: StreamId::new("lead", id).expect("stream"),
                expected: ExpectedVersion::NoStream,
                command_id: CommandId::derived(key),
                events: vec![
                    event(0, "lead.registered", &payload),
                    event(1, "lead.owner_assigned", &owner),
                ],
            })
            .await
            .expect("legacy lead");
        id
    }
}

fn lead_of(a: &Accepted) -> LeadId {
    a.events[0].payload.lead_id().expect("a lead event")
}

fn refusal(r: Result<Accepted, EngineError>) -> RefusalCode {
    match r {
        Err(EngineError::Refused { refusal, .. }) => refusal.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn cyrillic_and_greek_look_alikes_collide_with_the_first_registration(
    store: Arc<dyn EventStore>,
) {
    let w = world(store).await;
    let first = w.register(0, t0(), "Vanke", "Park").await.expect("first");
    let lead = lead_of(&first);
    let Event::LeadRegistered(r) = &first.events[0].payload else {
        panic!("registered")
    };
    assert_eq!(r.key_version, 2);
    // Cyrillic а (U+0430) within the duplicate window: the same lead, a conflict for the manager.
    let second = w
        .register(1, t0() + Duration::hours(1), "V\u{430}nke", "Park")
        .await
        .expect("a duplicate registration");
    assert_eq!(second.stream, first.stream);
    assert_eq!(lead_of(&second), lead);
    assert!(matches!(
        second.events[0].payload,
        Event::DuplicateRegistrationReceived(_)
    ));
    assert!(
        second
            .events
            .iter()
            .any(|e| matches!(e.payload, Event::OwnershipConflictOpened(_)))
    );
    // Greek α (U+03B1) after the window: refused, the first to register owns it.
    let late = w
        .register(2, t0() + Duration::days(30), "Vanke", "P\u{3b1}rk")
        .await;
    assert_eq!(refusal(late), RefusalCode::AlreadyRegistered);
}

async fn a_log_written_under_key_version_1_decides_the_same_way(store: Arc<dyn EventStore>) {
    let w = world(store).await;
    // "Modern Homes" folds to another key under version 2 ("m" looks like "rn"); "Vanke" does not.
    let modern = w.legacy_lead(0, "Modern Homes", "modernhomes/").await;
    let vanke = w.legacy_lead(0, "Vanke", "vanke/").await;
    // The recorded registration reads as key version 1.
    let rec = funnel_store::read_whole_stream(
        w.store.as_ref(),
        &StreamId::new("lead", modern).expect("stream"),
    )
    .await
    .expect("read");
    let Event::LeadRegistered(r) = funnel_codec::decode_recorded(&rec[0])
        .expect("decodes")
        .payload
    else {
        panic!("registered")
    };
    assert_eq!(
        (r.key_version, r.customer_key.as_str()),
        (1, "modernhomes/")
    );

    // The same customers again, later: refused on the leads they already have, as before.
    for (name, lead) in [("Modern Homes", modern), ("VANKE", vanke)] {
        let again = w.register(1, t0() + Duration::hours(1), name, "").await;
        let Ok(a) = again else {
            panic!("{name}: {again:?}")
        };
        assert_eq!(lead_of(&a), lead, "{name}");
        assert!(matches!(
            a.events[0].payload,
            Event::DuplicateRegistrationReceived(_)
        ));
        let late = w.register(2, t0() + Duration::days(30), name, "").await;
        assert_eq!(refusal(late), RefusalCode::AlreadyRegistered, "{name}");
    }
}

async fn look_alikes_of_leads_registered_before_key_version_2_collide_once_reserved(
    store: Arc<dyn EventStore>,
) {
    let w = world(store).await;
    let modern = w.legacy_lead(0, "Modern Homes", "modernhomes/").await;
    let vanke = w.legacy_lead(0, "Vanke", "vanke/").await;
    // Two look-alike customers both registered before key version 2: each keeps its lead.
    let modern_cyrillic = w
        .legacy_lead(1, "M\u{43e}dern Homes", "m\u{43e}dernhomes/")
        .await;

    let report = w.engine.reserve_legacy_keys().await.expect("reserve");
    assert_eq!(report.legacy_leads, 2);
    assert_eq!(report.reserved, 1);
    assert_eq!(report.taken.len(), 1);
    assert_eq!(report.taken[0].0, modern_cyrillic);
    let again = w.engine.reserve_legacy_keys().await.expect("again");
    assert_eq!((again.reserved, again.already_reserved), (0, 1));

    // A new look-alike of each: Greek ο in "Modern", Cyrillic а in "Vanke", within the window.
    let a = w
        .register(2, t0() + Duration::hours(1), "M\u{3bf}dern Homes", "")
        .await
        .expect("modern look-alike");
    assert_eq!(lead_of(&a), modern);
    assert!(matches!(
        a.events[0].payload,
        Event::DuplicateRegistrationReceived(_)
    ));
    let b = w
        .register(2, t0() + Duration::hours(1), "V\u{430}nke", "")
        .await
        .expect("vanke look-alike");
    assert_eq!(lead_of(&b), vanke);
    // The second legacy look-alike is still found by its own name.
    let c = w
        .register(2, t0() + Duration::hours(1), "M\u{43e}dern Homes", "")
        .await
        .expect("its own lead");
    assert_eq!(lead_of(&c), modern_cyrillic);
    // Nobody but Funnel itself reserves keys.
    let by_staff = w
        .engine
        .execute(
            CommandMeta::new(Who::Staff(w.engineers[0])).at(t0()),
            Command::Lead {
                lead_id: Some(vanke),
                cmd: LeadCommand::ReserveKey {
                    lead_id: vanke,
                    registered_key: "v\u{430}nke/".into(),
                    registered_key_version: 1,
                    office: office(),
                },
            },
        )
        .await;
    assert_eq!(refusal(by_staff), RefusalCode::RoleNotPermitted);
}

/// A lead the domain will not reserve a key for (its customer name folds to nothing under the
/// current rule) is reported, and the pass still reserves the leads after it.
async fn a_lead_refused_a_reservation_does_not_stop_the_others(store: Arc<dyn EventStore>) {
    let w = world(store).await;
    let click = w.legacy_lead(0, "\u{1c3}", "\u{1c3}/").await;
    let cyrillic = w
        .legacy_lead(0, "M\u{43e}dern Homes", "m\u{43e}dernhomes/")
        .await;
    let report = w.engine.reserve_legacy_keys().await.expect("reserve");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].0, click);
    assert_eq!(report.reserved, 1, "{report:?}");
    let b = w
        .register(1, t0() + Duration::hours(1), "Modern Homes", "")
        .await
        .expect("a look-alike in plain Latin");
    assert_eq!(lead_of(&b), cyrillic);
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
    a_lead_refused_a_reservation_does_not_stop_the_others,
    cyrillic_and_greek_look_alikes_collide_with_the_first_registration,
    a_log_written_under_key_version_1_decides_the_same_way,
    look_alikes_of_leads_registered_before_key_version_2_collide_once_reserved
);
