//! A small world (one office with engineers, assistant, manager; HQ staff) and the given/when/then
//! helper every test uses.

use chrono::{DateTime, Duration, TimeZone, Utc};
use funnel_domain::events::*;
use funnel_domain::lead::{self, LeadCommand, LeadState, Register};
use funnel_domain::model::*;
use funnel_domain::*;
use funnel_types::*;
use std::collections::BTreeMap;

pub fn office() -> OfficeId {
    OfficeId::derived("shanghai")
}
pub fn other_office() -> OfficeId {
    OfficeId::derived("beijing")
}

pub fn staff(name: &str, role: Role, office: Option<OfficeId>) -> StaffInfo {
    StaffInfo {
        id: StaffId::derived(name),
        role,
        office,
        active: true,
    }
}

pub fn wang() -> StaffInfo {
    staff("wang", Role::SalesEngineer, Some(office()))
}
pub fn li() -> StaffInfo {
    staff("li", Role::SalesEngineer, Some(office()))
}
pub fn zhao_other_office() -> StaffInfo {
    staff("zhao", Role::SalesEngineer, Some(other_office()))
}
pub fn manager() -> StaffInfo {
    staff("chen", Role::OfficeManager, Some(office()))
}
pub fn other_manager() -> StaffInfo {
    staff("sun", Role::OfficeManager, Some(other_office()))
}
pub fn assistant() -> StaffInfo {
    staff("zhou", Role::OfficeAssistant, Some(office()))
}
pub fn sales_dept() -> StaffInfo {
    staff("hq-sales", Role::SalesDepartment, None)
}
pub fn key_account() -> StaffInfo {
    staff("hq-ka", Role::KeyAccountDepartment, None)
}
pub fn executive() -> StaffInfo {
    staff("boss", Role::Executive, None)
}
pub fn auditor() -> StaffInfo {
    staff("ops", Role::Auditor, None)
}

pub fn directory() -> BTreeMap<StaffId, StaffInfo> {
    [
        wang(),
        li(),
        zhao_other_office(),
        manager(),
        other_manager(),
        assistant(),
        sales_dept(),
        key_account(),
        executive(),
        auditor(),
    ]
    .into_iter()
    .map(|s| (s.id, s))
    .collect()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("valid time")
}

pub fn register_cmd(
    customer: &str,
    project: &str,
    channel: Channel,
    mode: PurchaseMode,
) -> LeadCommand {
    LeadCommand::Register(Register {
        customer_name: customer.into(),
        project_name: project.into(),
        industry: Industry::RealEstate,
        purchase_mode: mode,
        channel,
        office: office(),
        location: "上海市浦东新区".into(),
        contact: Contact {
            name: "李经理".into(),
            phone: "13800000000".into(),
        },
        need: "需要楼宇对讲".into(),
    })
}

/// Given/when/then for the lead decider. Accepted events are applied, so steps chain.
pub struct LeadSpec {
    pub state: LeadState,
    pub history: Vec<Event>,
    pub policy: Policy,
    pub dir: BTreeMap<StaffId, StaffInfo>,
    pub at: DateTime<Utc>,
}

impl LeadSpec {
    pub fn new() -> Self {
        Self {
            state: LeadState::default(),
            history: vec![],
            policy: Policy::default(),
            dir: directory(),
            at: t0(),
        }
    }

    /// A self-found independent lead registered and owned by Wang.
    pub fn owned_by_wang() -> Self {
        let mut s = Self::new();
        s.ok(
            wang(),
            register_cmd(
                "万科",
                "城市花园（二期）",
                Channel::BuildingSweep,
                PurchaseMode::Independent,
            ),
        );
        s
    }

    fn apply(&mut self, e: Event) {
        self.state = lead::evolve(std::mem::take(&mut self.state), &e);
        self.history.push(e);
    }

    pub fn later(&mut self, d: Duration) -> &mut Self {
        self.at += d;
        self
    }

    pub fn when(&self, who: StaffInfo, cmd: LeadCommand) -> Decision {
        let acting = Acting::Staff(who);
        let ctx = Ctx {
            acting: &acting,
            at: self.at,
            policy: &self.policy,
            staff: &self.dir,
        };
        lead::decide(&self.state, &cmd, &ctx)
    }

    pub fn when_system(&self, cmd: LeadCommand) -> Decision {
        let acting = Acting::system("test");
        let ctx = Ctx {
            acting: &acting,
            at: self.at,
            policy: &self.policy,
            staff: &self.dir,
        };
        lead::decide(&self.state, &cmd, &ctx)
    }

    /// Runs a command that must be accepted; applies and returns its events.
    #[track_caller]
    pub fn ok(&mut self, who: StaffInfo, cmd: LeadCommand) -> Vec<Event> {
        match self.when(who, cmd.clone()) {
            Ok(events) => {
                for e in &events {
                    self.apply(e.clone());
                }
                events
            }
            Err(r) => panic!("{} was refused: {}", cmd.name(), r.refusal),
        }
    }

    /// Runs a command that must be refused with `code`; applies what the refusal records.
    #[track_caller]
    pub fn refused(&mut self, who: StaffInfo, cmd: LeadCommand, code: RefusalCode) -> Rejected {
        match self.when(who, cmd.clone()) {
            Ok(events) => panic!("{} was accepted: {events:?}", cmd.name()),
            Err(r) => {
                assert_eq!(
                    r.refusal.code,
                    code,
                    "{}: {}",
                    cmd.name(),
                    r.refusal.message_en
                );
                assert!(!r.refusal.message_en.is_empty() && !r.refusal.message_zh.is_empty());
                for e in &r.record {
                    self.apply(e.clone());
                }
                r
            }
        }
    }

    pub fn lead(&self) -> &lead::Lead {
        self.state.lead.as_ref().expect("lead exists")
    }

    pub fn lead_id(&self) -> LeadId {
        self.lead().id
    }
}

/// The type names of a list of events.
pub fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::event_type).collect()
}
