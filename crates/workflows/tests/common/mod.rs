//! Shared test fixtures: a SQLite store in a temp dir with a manual clock and the engine, an office
//! with its staff, and a driver that takes a lead through the funnel with realistic commands.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use funnel_domain::events::WorkflowKind;
use funnel_domain::lead::{LeadCommand, LogVisit, RecordKeyPerson, Register, checklist};
use funnel_domain::model::*;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Event, Policy, StaffInfo};
use funnel_engine::{Accepted, Command, CommandMeta, Engine, EngineError, Who};
use funnel_projections::ReadModel;
use funnel_store::{EventStore, Filter};
use funnel_types::*;
use funnel_workflows::{Tasks, WorkflowRuntime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A local time in Shanghai.
pub fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("a valid local time")
        .with_timezone(&Utc)
}

pub fn office() -> OfficeId {
    OfficeId::derived("wf-office")
}

pub fn staff(n: &str) -> StaffId {
    StaffId::derived(&format!("wf:{n}"))
}

/// The staff of the test office: manager, assistant, two engineers; and the headquarters roles.
pub const STAFF: [(&str, Role, bool); 7] = [
    ("m", Role::OfficeManager, true),
    ("as", Role::OfficeAssistant, true),
    ("e1", Role::SalesEngineer, true),
    ("e2", Role::SalesEngineer, true),
    ("hq", Role::SalesDepartment, false),
    ("ka", Role::KeyAccountDepartment, false),
    ("gm", Role::Executive, false),
];

pub fn info(n: &str) -> StaffInfo {
    let (_, role, in_office) = STAFF
        .iter()
        .find(|(name, _, _)| *name == n)
        .copied()
        .expect("a member of the test staff");
    StaffInfo {
        id: staff(n),
        role,
        office: in_office.then(office),
        active: true,
    }
}

pub struct World {
    pub dir: PathBuf,
    pub store: Arc<dyn EventStore>,
    pub clock: ManualClock,
    pub engine: Engine,
}

impl World {
    /// A store in `dir` (created when missing) with the clock at `now`.
    pub fn open(dir: &Path, now: DateTime<Utc>) -> World {
        let store: Arc<dyn EventStore> = Arc::new(
            funnel_store_sqlite::SqliteStore::open(dir.join("store.db")).expect("open store"),
        );
        let clock = ManualClock::new(now);
        let engine = Engine::new(store.clone(), Policy::default(), Arc::new(clock.clone()));
        World {
            dir: dir.to_path_buf(),
            store,
            clock,
            engine,
        }
    }

    /// A runtime with its checkpoint beside the store.
    pub fn runtime(&self) -> WorkflowRuntime {
        WorkflowRuntime::new(
            self.engine.clone(),
            Arc::new(self.clock.clone()),
            Some(&self.dir.join("workflows.db")),
        )
        .expect("runtime")
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn try_exec(&self, who: Who, cmd: Command) -> Result<Accepted, EngineError> {
        self.engine
            .execute(CommandMeta::new(who).at(self.clock.now()), cmd)
            .await
    }

    /// Executes a command that must be accepted.
    pub async fn exec(&self, who: Who, cmd: Command) -> Accepted {
        let name = format!("{cmd:?}");
        match self.try_exec(who, cmd).await {
            Ok(a) => a,
            Err(e) => panic!("{name} refused: {e}"),
        }
    }

    /// A lead command by a member of the test staff, after `hours` more hours.
    pub async fn lead(&self, n: &str, lead: LeadId, hours: i64, cmd: LeadCommand) -> Accepted {
        self.clock.advance(Duration::hours(hours));
        self.exec(
            Who::Staff(staff(n)),
            Command::Lead {
                lead_id: Some(lead),
                cmd,
            },
        )
        .await
    }

    /// Opens the office (in Shanghai) and has the staff join.
    pub async fn bootstrap(&self) {
        let sys = Who::System("bootstrap".into());
        let open = OfficeCommand::Open {
            office_id: office(),
            name: "上海".into(),
            code: "SH".into(),
            timezone: "Asia/Shanghai".into(),
            region: String::new(),
        };
        self.exec(
            sys.clone(),
            Command::Office {
                office_id: office(),
                cmd: open,
            },
        )
        .await;
        for (n, role, in_office) in STAFF {
            let join = StaffCommand::Join {
                staff_id: staff(n),
                name: n.into(),
                role,
                office: in_office.then(office),
            };
            self.exec(
                sys.clone(),
                Command::Staff {
                    staff_id: staff(n),
                    cmd: join,
                },
            )
            .await;
        }
    }

    /// Registers a lead by `engineer`; returns its id.
    pub async fn register(&self, engineer: &str, customer: &str, mode: PurchaseMode) -> LeadId {
        let a = self
            .exec(
                Who::Staff(staff(engineer)),
                Command::Lead {
                    lead_id: None,
                    cmd: LeadCommand::Register(registration(customer, mode)),
                },
            )
            .await;
        LeadId(uuid::Uuid::parse_str(a.stream.id_part()).expect("a lead stream"))
    }

    /// Every event of a category, decoded.
    pub async fn events(&self, category: &str) -> Vec<Envelope<Event>> {
        events_of(self.store.as_ref(), category).await
    }

    /// The tasks read model over the whole log.
    pub async fn tasks(&self) -> Tasks {
        let mut t = Tasks::default();
        for e in self.events("workflow").await {
            t.apply(&e).expect("applies");
        }
        t
    }

    /// The events of the one instance of `kind` (panics unless there is exactly one).
    pub async fn instance(&self, kind: WorkflowKind) -> Vec<Event> {
        let all = self.events("workflow").await;
        let ids: std::collections::BTreeSet<WorkflowId> = all
            .iter()
            .filter_map(|e| match &e.payload {
                Event::WorkflowStarted(s) if s.kind == kind => Some(s.workflow_id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1, "instances of {kind:?}: {ids:?}");
        all.into_iter()
            .filter(|e| e.payload.workflow_id() == ids.first().copied())
            .map(|e| e.payload)
            .collect()
    }
}

pub async fn events_of(store: &dyn EventStore, category: &str) -> Vec<Envelope<Event>> {
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

pub fn registration(customer: &str, mode: PurchaseMode) -> Register {
    Register {
        customer_name: customer.into(),
        project_name: "城市花园".into(),
        industry: Industry::RealEstate,
        purchase_mode: mode,
        channel: Channel::BuildingSweep,
        office: office(),
        location: "上海".into(),
        contact: Contact {
            name: "李".into(),
            phone: "13800000000".into(),
        },
        need: "数字对讲".into(),
    }
}

/// How many events match.
pub fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// The outcome the instance completed with, if it did.
pub fn outcome(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match e {
        Event::WorkflowCompleted(c) => Some(c.outcome.clone()),
        _ => None,
    })
}

/// Takes one lead through the funnel as its owner would, a few hours between steps.
pub struct Driver<'a> {
    pub w: &'a World,
    pub lead: LeadId,
    pub owner: &'static str,
    pub mode: PurchaseMode,
    pub key_persons: Vec<KeyPersonId>,
    pub visits: u32,
}

impl<'a> Driver<'a> {
    pub fn new(w: &'a World, lead: LeadId, owner: &'static str, mode: PurchaseMode) -> Self {
        Self {
            w,
            lead,
            owner,
            mode,
            key_persons: Vec::new(),
            visits: 0,
        }
    }

    pub async fn cmd(&self, cmd: LeadCommand) -> Accepted {
        self.w.lead(self.owner, self.lead, 2, cmd).await
    }

    pub async fn key_person(&mut self, role: KeyPersonRole) -> KeyPersonId {
        let id = KeyPersonId::derived(&format!("{}:{}", self.lead, self.key_persons.len()));
        self.key_persons.push(id);
        self.cmd(LeadCommand::RecordKeyPerson(RecordKeyPerson {
            key_person_id: id,
            name: "王工".into(),
            title: "弱电工程师".into(),
            role,
            phone: "13900000000".into(),
            personal_notes: "喜欢喝茶".into(),
            levels: None,
        }))
        .await;
        id
    }

    pub async fn visit(&mut self) -> Accepted {
        self.visits += 1;
        let at = self.w.now() + Duration::hours(2);
        self.cmd(LeadCommand::LogVisit(LogVisit {
            visit_id: VisitId::derived(&format!("{}:{}", self.lead, self.visits)),
            kind: ContactKind::Visit,
            visited_at: at,
            purposes: vec![VisitPurpose::CollectNeeds],
            summary: "了解需求".into(),
            information_gained: "项目进度".into(),
            customer_feedback: "感兴趣".into(),
            next_step: "再次拜访".into(),
            met: self.key_persons.iter().take(1).copied().collect(),
        }))
        .await
    }

    pub async fn mark_insider(&self) {
        let key_person_id = self.key_persons[0];
        self.cmd(LeadCommand::MarkInsider {
            key_person_id,
            note: "愿意提供决策链信息".into(),
        })
        .await;
    }

    pub async fn assess(&self, company: Level, personal: Level) {
        self.cmd(LeadCommand::AssessRelationship {
            company,
            personal,
            key_person_id: self.key_persons.first().copied(),
            note: String::new(),
        })
        .await;
    }

    pub async fn criteria(&self, stage: Stage) {
        for c in checklist(self.mode, stage) {
            if !c.is_derived() {
                self.cmd(LeadCommand::RecordCriterion {
                    criterion: *c,
                    evidence: format!("{}：已核实", c.label_zh()),
                })
                .await;
            }
        }
    }

    /// Everything a valid-info declaration needs: an insider, relationships, the decision maker and
    /// the checklist.
    pub async fn ready_for_valid(&mut self) {
        self.key_person(KeyPersonRole::Gatekeeper).await;
        self.visit().await;
        self.mark_insider().await;
        self.assess(Level::B, Level::C).await;
        self.key_person(KeyPersonRole::DecisionMaker).await;
        self.criteria(Stage::Valid).await;
    }

    /// Declares valid info, has the manager approve and the sales department file it.
    pub async fn valid(&mut self) {
        self.ready_for_valid().await;
        let d = DeclarationId::derived(&format!("{}:valid", self.lead));
        self.cmd(LeadCommand::DeclareValidInfo {
            declaration_id: d,
            note: "满足有效信息标准".into(),
        })
        .await;
        self.review_and_file(d).await;
    }

    pub async fn review_and_file(&self, declaration_id: DeclarationId) {
        self.w
            .lead(
                "m",
                self.lead,
                3,
                LeadCommand::ReviewDeclaration {
                    declaration_id,
                    approve: true,
                    note: String::new(),
                },
            )
            .await;
        self.w
            .lead(
                "hq",
                self.lead,
                3,
                LeadCommand::FileDeclaration { declaration_id },
            )
            .await;
    }

    /// Everything a prospect declaration needs after valid info.
    pub async fn ready_for_prospect(&mut self) {
        self.visit().await;
        self.criteria(Stage::Prospect).await;
        self.assess(Level::B, Level::A).await;
    }

    pub fn prospect_declaration(amount_cny: u64, id: DeclarationId) -> LeadCommand {
        LeadCommand::DeclareProspect {
            declaration_id: id,
            amount_cny,
            flags: QualitativeFlags::default(),
            quoting_strategy: "标准报价".into(),
        }
    }
}
