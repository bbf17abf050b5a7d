//! How many refusal records one member of staff may add: a token bucket per member of staff,
//! timed by the engine's clock (so tests move time by hand).

use chrono::{DateTime, Duration, Utc};
use funnel_types::StaffId;
use std::collections::HashMap;
use std::sync::Mutex;

/// The budget of refusal records (`lead.touch_refused`) per member of staff: up to `burst` at once,
/// and one more every `refill_every` after that. Past it a refused command is still answered with
/// its refusal, but nothing is written. The budget lives in the engine's memory: it starts full
/// when the process starts and is per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordBudget {
    pub burst: u32,
    pub refill_every: Duration,
}

impl RecordBudget {
    /// No limit (loading a known history, e.g. the demo).
    pub const UNLIMITED: RecordBudget = RecordBudget {
        burst: u32::MAX,
        refill_every: Duration::zero(),
    };
}

impl Default for RecordBudget {
    /// 20 records at once, then one every 3 minutes (20 an hour).
    fn default() -> Self {
        Self {
            burst: 20,
            refill_every: Duration::minutes(3),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at: DateTime<Utc>,
}

#[derive(Debug)]
pub(crate) struct Budgets {
    budget: RecordBudget,
    buckets: Mutex<HashMap<StaffId, Bucket>>,
}

impl Budgets {
    pub(crate) fn new(budget: RecordBudget) -> Self {
        Self {
            budget,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The staff member's bucket, refilled up to `now`.
    fn refilled(&self, b: Bucket, now: DateTime<Utc>) -> Bucket {
        let RecordBudget {
            burst,
            refill_every,
        } = self.budget;
        if b.tokens >= burst || refill_every <= Duration::zero() {
            return Bucket {
                tokens: burst,
                at: now,
            };
        }
        let elapsed = now - b.at;
        if elapsed <= Duration::zero() {
            return b;
        }
        let gained = elapsed.num_milliseconds() / refill_every.num_milliseconds().max(1);
        let gained = u32::try_from(gained).unwrap_or(u32::MAX);
        let tokens = b.tokens.saturating_add(gained).min(burst);
        if tokens >= burst {
            return Bucket { tokens, at: now };
        }
        Bucket {
            tokens,
            at: b.at + refill_every * i32::try_from(gained).unwrap_or(i32::MAX),
        }
    }

    /// Takes one record from `staff`'s budget now, if there is one left: checked and spent under
    /// one lock, so concurrent refusals by one person cannot all pass the check before any spends.
    pub(crate) fn take(&self, staff: StaffId, now: DateTime<Utc>) -> bool {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let full = Bucket {
            tokens: self.budget.burst,
            at: now,
        };
        let b = self.refilled(map.get(&staff).copied().unwrap_or(full), now);
        if b.tokens == 0 {
            map.insert(staff, b);
            return false;
        }
        map.insert(
            staff,
            Bucket {
                tokens: b.tokens - 1,
                at: b.at,
            },
        );
        true
    }

    /// Gives back a record taken for an append that wrote nothing (a duplicate, a conflict, a
    /// failure).
    pub(crate) fn give_back(&self, staff: StaffId) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(&staff) {
            b.tokens = b.tokens.saturating_add(1).min(self.budget.burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refills_one_record_per_interval_up_to_the_burst() {
        let budgets = Budgets::new(RecordBudget {
            burst: 2,
            refill_every: Duration::minutes(3),
        });
        let (a, b) = (StaffId::derived("a"), StaffId::derived("b"));
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        assert!(budgets.take(a, t0));
        assert!(budgets.take(a, t0));
        assert!(!budgets.take(a, t0));
        assert!(budgets.take(b, t0), "another member of staff is unaffected");
        assert!(!budgets.take(a, t0 + Duration::seconds(179)));
        assert!(budgets.take(a, t0 + Duration::minutes(3)));
        assert!(!budgets.take(a, t0 + Duration::minutes(5)));
        // A record taken for an append that wrote nothing is given back.
        budgets.give_back(a);
        assert!(budgets.take(a, t0 + Duration::minutes(5)));
        // A long pause refills up to the burst, not beyond.
        let later = t0 + Duration::hours(5);
        assert!(budgets.take(a, later));
        assert!(budgets.take(a, later));
        assert!(!budgets.take(a, later));
    }

    #[test]
    fn concurrent_refusals_of_one_person_take_no_more_than_the_burst() {
        let budgets = std::sync::Arc::new(Budgets::new(RecordBudget {
            burst: 20,
            refill_every: Duration::minutes(3),
        }));
        let a = StaffId::derived("a");
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budgets = budgets.clone();
                std::thread::spawn(move || (0..10).filter(|_| budgets.take(a, t0)).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(taken, 20);
    }
}
