//! Scheduling: the collector of timed commands the scripts and routines fill, and local time.

use crate::types::{Expect, Item};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use funnel_engine::{Command, Who};

/// A wall-clock time in `tz` (an office's zone, or headquarters' for the whole history) as UTC.
pub fn local(tz: Tz, date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let t = NaiveTime::from_hms_opt(hour.min(23), minute.min(59), 0).unwrap_or_default();
    funnel_domain::time::at_local(date.and_time(t), tz)
}

/// Collects scheduled commands.
pub struct Gen {
    pub items: Vec<Item>,
    seq: u64,
    pub end: DateTime<Utc>,
}

impl Gen {
    /// An empty timeline that ends at `end`.
    pub fn new(end: DateTime<Utc>) -> Self {
        Self {
            items: Vec::new(),
            seq: 0,
            end,
        }
    }

    /// Schedules a command; commands after the end of the history are dropped.
    pub fn push(&mut self, at: DateTime<Utc>, who: Who, cmd: Command, expect: Expect) -> bool {
        self.seq += 1;
        if at > self.end {
            return false;
        }
        self.items.push(Item {
            at,
            who,
            cmd,
            expect,
            seq: self.seq,
        });
        true
    }
}
