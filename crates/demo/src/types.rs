//! The values every part of the generation shares: what to generate, and the scheduled commands
//! with what each is expected to do. A leaf: it imports nothing of this crate.

use chrono::{NaiveDate, Utc};
use funnel_domain::RefusalCode;
use funnel_engine::{Command, Who};

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub seed: u64,
    pub leads: usize,
    /// The Monday the history starts.
    pub start: NaiveDate,
    pub weeks: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            leads: 500,
            start: NaiveDate::from_ymd_opt(2026, 5, 4).unwrap_or_default(),
            weeks: 26,
        }
    }
}

/// What a command is expected to do; the demo checks every outcome against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Accept,
    Refuse(RefusalCode),
}

/// One scheduled command.
#[derive(Clone, Debug)]
pub struct Item {
    pub at: chrono::DateTime<Utc>,
    pub who: Who,
    pub cmd: Command,
    pub expect: Expect,
    /// Order of generation, to break ties in time deterministically.
    pub seq: u64,
}
