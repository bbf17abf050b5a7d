//! Roles of the sales organisation (process §1) and the actor that caused an event.

use crate::StaffId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a member of staff is. Every permission decision is derived from the role, the office and,
/// for leads, ownership.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 销售工程师: registers leads, visits, declares, negotiates.
    SalesEngineer,
    /// 办事处销售助理: verifies and aggregates records into summaries.
    OfficeAssistant,
    /// 办事处经理: adjudicates conflicts, assigns leads, reviews.
    OfficeManager,
    /// 销售部 (HQ): files records, approves owner changes.
    SalesDepartment,
    /// 大客户部 (HQ): works group and strategic customers.
    KeyAccountDepartment,
    /// 公司高层 / 总经理.
    Executive,
    /// Operations: reads everything, changes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::SalesEngineer,
        Role::OfficeAssistant,
        Role::OfficeManager,
        Role::SalesDepartment,
        Role::KeyAccountDepartment,
        Role::Executive,
        Role::Auditor,
    ];

    /// The stable snake_case name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SalesEngineer => "sales_engineer",
            Role::OfficeAssistant => "office_assistant",
            Role::OfficeManager => "office_manager",
            Role::SalesDepartment => "sales_department",
            Role::KeyAccountDepartment => "key_account_department",
            Role::Executive => "executive",
            Role::Auditor => "auditor",
        }
    }

    /// The Simplified Chinese label users read.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::SalesEngineer => "销售工程师",
            Role::OfficeAssistant => "办事处销售助理",
            Role::OfficeManager => "办事处经理",
            Role::SalesDepartment => "销售部",
            Role::KeyAccountDepartment => "大客户部",
            Role::Executive => "公司高层",
            Role::Auditor => "审计",
        }
    }

    /// Headquarters roles act across offices.
    pub fn is_headquarters(self) -> bool {
        matches!(
            self,
            Role::SalesDepartment | Role::KeyAccountDepartment | Role::Executive | Role::Auditor
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}` (expected one of: {})",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })
    }
}

/// Who caused an event: a member of staff acting in a role, or a named part of the system (a saga,
/// the timer scheduler, the demo loader's bootstrap).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    Staff { id: StaffId, role: Role },
    System { name: String },
}

impl Actor {
    pub fn staff(id: StaffId, role: Role) -> Self {
        Actor::Staff { id, role }
    }

    pub fn system(name: impl Into<String>) -> Self {
        Actor::System { name: name.into() }
    }

    pub fn staff_id(&self) -> Option<StaffId> {
        match self {
            Actor::Staff { id, .. } => Some(*id),
            Actor::System { .. } => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::Staff { role, .. } => Some(*role),
            Actor::System { .. } => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Staff { id, role } => write!(f, "{role}:{id}"),
            Actor::System { name } => write!(f, "system:{name}"),
        }
    }
}

/// Reads the form `Display` writes: `system:NAME` or `ROLE:STAFF_ID`.
impl std::str::FromStr for Actor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not an actor (`system:NAME` or `ROLE:STAFF_ID`)"))?;
        if kind == "system" {
            return Ok(Actor::system(rest));
        }
        let role: Role = kind.parse().map_err(|e| format!("`{s}`: {e}"))?;
        let id: StaffId = rest
            .parse()
            .map_err(|_| format!("`{s}`: `{rest}` is not a staff id"))?;
        Ok(Actor::staff(id, role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_through_text() {
        let id = StaffId(uuid::Uuid::now_v7());
        for a in [
            Actor::staff(id, Role::SalesEngineer),
            Actor::system("saga:lead-rules"),
        ] {
            assert_eq!(a.to_string().parse::<Actor>(), Ok(a));
        }
        assert!("sales_engineer".parse::<Actor>().is_err());
        assert!("pilot:x".parse::<Actor>().is_err());
        assert!("sales_engineer:not-a-uuid".parse::<Actor>().is_err());
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
        assert!(
            "boss"
                .parse::<Role>()
                .unwrap_err()
                .contains("sales_engineer")
        );
    }
}
