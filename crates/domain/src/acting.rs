//! Who is acting on a command and the permission checks every decider shares. The engine resolves
//! the acting staff member from their staff stream, so permission decisions can be replayed.

use crate::refusal::{RefusalCode, Rejected, refuse};
use chrono::{DateTime, Utc};
use funnel_types::{Actor, OfficeId, Role, StaffId};

/// The member of staff (or system component) issuing a command, as known from the staff events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acting {
    Staff(StaffInfo),
    /// A saga, the timer scheduler or the bootstrap of a new installation.
    System {
        name: String,
    },
}

/// What the staff events say about one member of staff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaffInfo {
    pub id: StaffId,
    pub role: Role,
    pub office: Option<OfficeId>,
    pub active: bool,
}

/// Looks up other members of staff a command names (an assignee, a conflict winner). The engine
/// fills it from the staff streams; tests use a map.
pub trait StaffLookup: std::fmt::Debug {
    fn staff(&self, id: StaffId) -> Option<StaffInfo>;

    /// How many active executives there are besides `except`. The engine fills the lookup with the
    /// whole organisation for the commands that could remove the last executive
    /// (`Command::needs_organisation`).
    fn other_active_executives(&self, except: StaffId) -> usize;
}

impl StaffLookup for std::collections::BTreeMap<StaffId, StaffInfo> {
    fn staff(&self, id: StaffId) -> Option<StaffInfo> {
        self.get(&id).copied()
    }

    fn other_active_executives(&self, except: StaffId) -> usize {
        self.values()
            .filter(|s| s.id != except && s.active && s.role == Role::Executive)
            .count()
    }
}

impl Acting {
    pub fn staff(id: StaffId, role: Role, office: Option<OfficeId>) -> Self {
        Acting::Staff(StaffInfo {
            id,
            role,
            office,
            active: true,
        })
    }

    pub fn system(name: impl Into<String>) -> Self {
        Acting::System { name: name.into() }
    }

    /// The actor recorded on events.
    pub fn actor(&self) -> Actor {
        match self {
            Acting::Staff(s) => Actor::staff(s.id, s.role),
            Acting::System { name } => Actor::system(name.clone()),
        }
    }

    pub fn staff_id(&self) -> Option<StaffId> {
        match self {
            Acting::Staff(s) => Some(s.id),
            Acting::System { .. } => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Acting::Staff(s) => Some(s.role),
            Acting::System { .. } => None,
        }
    }

    pub fn office(&self) -> Option<OfficeId> {
        match self {
            Acting::Staff(s) => s.office,
            Acting::System { .. } => None,
        }
    }

    pub fn is_system(&self) -> bool {
        matches!(self, Acting::System { .. })
    }
}

/// Everything a decider may know besides the aggregate's state and the command.
#[derive(Clone, Debug)]
pub struct Ctx<'a> {
    pub acting: &'a Acting,
    /// When the command happened, as given by the command (deciders never read a clock).
    pub at: DateTime<Utc>,
    pub policy: &'a crate::Policy,
    /// Other members of staff the command names.
    pub staff: &'a dyn StaffLookup,
}

/// A staff member who may change things: active and not an auditor. The system always may.
pub(crate) fn may_write(acting: &Acting) -> Result<(), Rejected> {
    match acting {
        Acting::System { .. } => Ok(()),
        Acting::Staff(StaffInfo { active: false, .. }) => refuse(
            RefusalCode::StaffInactive,
            "this member of staff has left and can no longer act",
            "该员工已离职，不能再执行操作",
        ),
        Acting::Staff(StaffInfo {
            role: Role::Auditor,
            ..
        }) => refuse(
            RefusalCode::ReadOnly,
            "auditors read everything and change nothing",
            "审计人员只能查看，不能修改",
        ),
        Acting::Staff(_) => Ok(()),
    }
}

/// The actor must hold one of `roles` (the system is always allowed).
pub(crate) fn require_role(acting: &Acting, roles: &[Role], action: &str) -> Result<(), Rejected> {
    may_write(acting)?;
    match acting.role() {
        None => Ok(()),
        Some(r) if roles.contains(&r) => Ok(()),
        Some(r) => {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let allowed_zh: Vec<&str> = roles.iter().map(|r| r.label_zh()).collect();
            refuse(
                RefusalCode::RoleNotPermitted,
                format!(
                    "a {r} may not {action}; this needs: {}",
                    allowed.join(" or ")
                ),
                format!(
                    "{}无权执行此操作（{action}），需要：{}",
                    r.label_zh(),
                    allowed_zh.join("或")
                ),
            )
        }
    }
}

/// The actor must work in `office`, unless they are headquarters staff or the system.
pub(crate) fn require_office(acting: &Acting, office: OfficeId) -> Result<(), Rejected> {
    match acting {
        Acting::System { .. } => Ok(()),
        Acting::Staff(s) if s.role.is_headquarters() => Ok(()),
        Acting::Staff(s) if s.office == Some(office) => Ok(()),
        Acting::Staff(_) => refuse(
            RefusalCode::OtherOffice,
            format!("this belongs to office {office}, not to yours"),
            format!("该记录属于办事处 {office}，不属于您的办事处"),
        ),
    }
}
