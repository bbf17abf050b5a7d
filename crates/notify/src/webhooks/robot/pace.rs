//! How often a robot may be sent to, and the clock that decides it.
//!
//! Every robot has a budget: DingTalk and WeCom accept 20 messages a minute, Feishu/Lark 100 a
//! minute and 5 a second. Messages are spaced evenly (a minute divided by one less than the
//! budget, 60/19 s for DingTalk), so no 60-second window, however it is placed, ever holds more
//! than the budget, and the events that arrive between two messages wait and go together as one
//! digest. A throttling answer from the vendor blocks the robot for as long as the vendor asks.
//!
//! Time goes through a [`RobotClock`], so tests drive it instead of waiting.

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;

/// The time robots are paced by, and the signing timestamps.
pub trait RobotClock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
    /// Completes when [`RobotClock::now`] reaches `at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The system's time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRobotClock;

impl RobotClock for SystemRobotClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to (tests).
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<watch::Sender<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(watch::channel(start).0))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let by = Duration::from_std(by).unwrap_or(Duration::MAX);
        self.0.send_modify(|t| *t += by);
    }
}

impl RobotClock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, nothing will ever wake this.
            let _ = rx.wait_for(|now| *now >= at).await;
        })
    }
}

/// A robot's sending budget.
#[derive(Clone, Debug)]
pub struct Budget {
    per_minute: usize,
    per_second: Option<usize>,
    sent: VecDeque<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
}

impl Budget {
    pub fn new(per_minute: usize, per_second: Option<usize>) -> Self {
        Self {
            per_minute: per_minute.max(2),
            per_second,
            sent: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// The even spacing that keeps any 60-second window within the budget.
    fn spacing(&self) -> Duration {
        let n = i64::try_from(self.per_minute - 1).unwrap_or(i64::MAX);
        Duration::milliseconds(60_000 / n + i64::from(60_000 % n != 0))
    }

    /// The earliest time the next message may go.
    pub fn next_slot(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = now;
        if let Some(b) = self.blocked_until {
            at = at.max(b);
        }
        if let Some(last) = self.sent.back() {
            at = at.max(*last + self.spacing());
        }
        // The windows themselves, in case the clock was moved back.
        let window = |at: DateTime<Utc>, len: Duration, max: usize| {
            let in_window: Vec<_> = self.sent.iter().filter(|t| **t > at - len).collect();
            (in_window.len() >= max).then(|| *in_window[in_window.len() - max] + len)
        };
        if let Some(t) = window(at, Duration::minutes(1), self.per_minute) {
            at = at.max(t);
        }
        if let Some(t) = self
            .per_second
            .and_then(|n| window(at, Duration::seconds(1), n))
        {
            at = at.max(t);
        }
        at
    }

    /// A message went at `at`.
    pub fn spend(&mut self, at: DateTime<Utc>) {
        self.sent.push_back(at);
        while self
            .sent
            .front()
            .is_some_and(|t| *t <= at - Duration::minutes(1))
        {
            self.sent.pop_front();
        }
    }

    /// The vendor asked for quiet until `until`.
    pub fn block(&mut self, until: DateTime<Utc>) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// A sender that sends whenever its budget lets it, for an hour of events arriving every
    /// second, never puts more than 20 messages in any 60 s window.
    #[test]
    fn no_minute_ever_holds_more_than_the_budget() {
        let mut b = Budget::new(20, None);
        let mut sent = Vec::new();
        for s in 0..3600 {
            let now = t0() + Duration::seconds(s);
            if b.next_slot(now) <= now {
                b.spend(now);
                sent.push(now);
            }
        }
        for (i, start) in sent.iter().enumerate() {
            let in_minute = sent[i..]
                .iter()
                .take_while(|t| **t <= *start + Duration::minutes(1))
                .count();
            assert!(in_minute <= 20, "{in_minute} messages from {start}");
        }
        // Sent each whole second the spacing (3.158 s) allows: every 4 s.
        assert_eq!(sent.len(), 900, "messages in an hour");
    }

    #[test]
    fn per_second_cap_and_blocks() {
        let mut b = Budget::new(100, Some(5));
        let now = t0();
        assert_eq!(b.next_slot(now), now);
        b.spend(now);
        // 60/99 s apart: never 5 in one second, and 100 a minute at most.
        let next = b.next_slot(now);
        assert_eq!(next, now + Duration::milliseconds(607));
        b.block(now + Duration::minutes(10));
        assert_eq!(b.next_slot(now), now + Duration::minutes(10));
    }

    #[tokio::test]
    async fn the_manual_clock_wakes_sleepers_when_moved() {
        let c = ManualClock::new(t0());
        let sleeper = c.sleep_until(t0() + Duration::seconds(5));
        let handle = tokio::spawn(sleeper);
        c.advance(std::time::Duration::from_secs(2));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        c.advance(std::time::Duration::from_secs(3));
        handle.await.unwrap();
        assert_eq!(c.now(), t0() + Duration::seconds(5));
    }
}
