//! The values every part of the generation shares: what to generate, and the scheduled commands
//! with what each is expected to do. A leaf: it imports nothing of this crate.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use funnel_domain::RefusalCode;
use funnel_engine::{Command, Who};

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub seed: u64,
    pub leads: usize,
    /// The last day of the history (headquarters' calendar): nothing happens after it. The
    /// command line passes yesterday, so the demo always looks like today; tests pass a fixed day.
    pub end: NaiveDate,
    /// About how long the history is: it starts on the first Monday of the `weeks` weeks that end
    /// with [`DemoOptions::end`].
    pub weeks: u32,
}

impl Default for DemoOptions {
    /// A fixed history (26 weeks from Monday 4 May to Saturday 31 October 2026), for tests.
    fn default() -> Self {
        Self {
            seed: 1,
            leads: 500,
            end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(),
            weeks: 26,
        }
    }
}

impl DemoOptions {
    /// The default history, ending the day before `today` (headquarters' calendar).
    pub fn ending_before(today: NaiveDate) -> Self {
        Self {
            end: today.pred_opt().unwrap_or(today),
            ..Self::default()
        }
    }

    /// The Monday the history starts: the first Monday on or after the first of its `weeks` weeks.
    pub fn start(&self) -> NaiveDate {
        let first = self.end + Duration::days(1) - Duration::weeks(i64::from(self.weeks));
        let to_monday = (7 - first.weekday().num_days_from_monday()) % 7;
        first + Duration::days(i64::from(to_monday))
    }

    /// The day after the last day: the history ends at its midnight.
    pub fn end_exclusive(&self) -> NaiveDate {
        self.end + Duration::days(1)
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
