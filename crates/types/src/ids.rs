//! Typed identifiers. Each is a UUID newtype so that a lead id can never be passed where a staff id
//! is expected. New ids are UUIDv7 (time-ordered); ids derived from content use UUIDv5.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Namespace for the UUIDv5 ids Funnel derives from content (lead ids from customer keys, command ids
/// of saga reactions from the events that caused them).
pub const FUNNEL_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b0e_9a5d_4c3e_8e7f_1d2c_3b4a_5968);

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id (UUIDv7) taken from the system clock and OS randomness.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// A UUIDv7 id built from explicit parts, for deterministic generators (the demo, tests).
            pub fn v7_from_parts(unix_millis: u64, random: [u8; 10]) -> Self {
                Self(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
            }

            /// An id derived from content: the same name always gives the same id (UUIDv5).
            pub fn derived(name: &str) -> Self {
                let full = format!("{}:{}", $prefix, name);
                Self(Uuid::new_v5(&FUNNEL_NAMESPACE, full.as_bytes()))
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Short human form: the prefix and the last 8 hex digits (for logs and tables).
            pub fn short(&self) -> String {
                let s = self.0.simple().to_string();
                format!("{}-{}", $prefix, &s[24..])
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(/// A member of staff (any role).
    StaffId, "staff");
id_type!(/// A regional office (办事处).
    OfficeId, "office");
id_type!(/// A lead (one customer project). Derived from the normalised customer key, so that two
    /// registrations of the same customer land on the same stream.
    LeadId, "lead");
id_type!(/// One recorded event.
    EventId, "event");
id_type!(/// One command; retries carry the same id and are appended at most once.
    CommandId, "command");
id_type!(/// Groups the events of one business conversation (a saga, a request chain).
    CorrelationId, "correlation");
id_type!(/// A weekly or monthly visit plan (Table 4).
    PlanId, "plan");
id_type!(/// An office weekly or monthly summary (Table 3).
    SummaryId, "summary");
id_type!(/// A contract under review on a lead.
    ContractId, "contract");
id_type!(/// An ownership conflict on a lead.
    ConflictId, "conflict");
id_type!(/// A reassignment request on a lead.
    ReassignmentId, "reassignment");
id_type!(/// A valid-info or prospect declaration on a lead.
    DeclarationId, "declaration");
id_type!(/// A key person of a customer (Table 5).
    KeyPersonId, "keyperson");
id_type!(/// One visit or follow-up (Table 2).
    VisitId, "visit");
id_type!(/// One workflow (saga) instance.
    WorkflowId, "workflow");
id_type!(/// A task a workflow asks someone to do.
    TaskId, "task");
id_type!(/// A durable timer of a workflow.
    TimerId, "timer");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct_by_kind() {
        assert_eq!(LeadId::derived("x"), LeadId::derived("x"));
        assert_ne!(LeadId::derived("x").0, StaffId::derived("x").0);
        assert_eq!(LeadId::derived("x").0.get_version_num(), 5);
    }

    #[test]
    fn v7_from_parts_keeps_time_order() {
        let a = EventId::v7_from_parts(1_000, [0; 10]);
        let b = EventId::v7_from_parts(2_000, [0; 10]);
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = StaffId::new();
        assert_eq!(id.to_string().parse::<StaffId>().unwrap(), id);
        assert!("not-a-uuid".parse::<StaffId>().is_err());
    }
}
