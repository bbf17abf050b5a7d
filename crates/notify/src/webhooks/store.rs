//! Where subscriptions, their cursors and their delivery logs are kept: a SQLite file beside the
//! read models on the embedded store ([`super::db`]), or key-value buckets of the log's JetStream
//! cluster ([`super::kv`]), where every `funnel serve` process sees the same subscriptions and the
//! one holding the `webhooks` lease delivers them.
//!
//! Every change to a stored subscription is a [`Change`]: a pure function of the subscription
//! that says whether it applies. A store reads the subscription, applies the change and writes it
//! back only if nobody wrote it in between (a SQLite transaction; a key-value update at the
//! revision read, tried again on a conflict), so the rules live here once and both stores follow
//! them alike.

use super::{Delivery, Failing, Subscription, WebhookError};
use chrono::{DateTime, Utc};
use funnel_types::{Position, StaffId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A subscription as stored: what readers see, and its sealed secret (a webhook's signing
/// secret, or a chat robot's URL and secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub subscription: Subscription,
    pub sealed_secret: String,
}

/// One change to a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Paused by hand (the cursor stays where it is).
    Pause { at: DateTime<Utc> },
    /// Resumed; `owner` (with the position their authority was checked at) takes it over.
    Resume { owner: Option<(StaffId, Position)> },
    /// Delivery starts again after `after`.
    Replay { after: Position },
    /// Paused by Funnel at `position` (the owner's authority ended there, or the receiver
    /// answered `410 Gone`), unless it changed since the worker read it at `revision`.
    PauseAt {
        revision: u64,
        reason: String,
        position: Position,
        at: DateTime<Utc>,
    },
    /// The cursor moves forward to `to` and `delivered` more events were delivered, while the
    /// subscription is at `revision` (a pause or replay made meanwhile wins).
    Advance {
        revision: u64,
        to: Position,
        delivered: u64,
    },
    /// The current event keeps failing, while the subscription is at `revision`.
    Failing { revision: u64, failing: Failing },
}

impl Change {
    /// Applies the change to `s`; whether it changed anything (a change that does not apply
    /// leaves `s` as it was).
    pub fn apply(&self, s: &mut Subscription) -> bool {
        match self {
            Change::Pause { at } => {
                s.paused = true;
                s.paused_reason = None;
                s.paused_at = Some(*at);
                s.paused_at_position = None;
                s.failing = None;
                s.revision += 1;
            }
            Change::Resume { owner } => {
                s.paused = false;
                s.paused_reason = None;
                s.paused_at = None;
                s.paused_at_position = None;
                s.failing = None;
                s.revision += 1;
                if let Some((owner, since)) = owner {
                    s.owner = Some(*owner);
                    s.owner_since = *since;
                }
            }
            Change::Replay { after } => {
                s.cursor = *after;
                s.failing = None;
                s.revision += 1;
            }
            Change::PauseAt {
                revision,
                reason,
                position,
                at,
            } => {
                if s.revision != *revision {
                    return false;
                }
                s.paused = true;
                s.paused_reason = Some(reason.clone());
                s.paused_at = Some(*at);
                s.paused_at_position = Some(*position);
                s.failing = None;
                s.revision += 1;
            }
            Change::Advance {
                revision,
                to,
                delivered,
            } => {
                if s.revision != *revision || s.cursor >= *to {
                    return false;
                }
                s.cursor = *to;
                s.failing = None;
                s.delivered = s.delivered.saturating_add(*delivered);
            }
            Change::Failing { revision, failing } => {
                if s.revision != *revision {
                    return false;
                }
                s.failing = Some(failing.clone());
            }
        }
        true
    }

    /// Whether readers and the dispatch should hear of it (pauses, resumes and replays change
    /// what is delivered; a cursor moving or a failure being noted does not).
    pub fn is_announced(&self) -> bool {
        !matches!(self, Change::Advance { .. } | Change::Failing { .. })
    }
}

/// Attempts kept per subscription; older ones are forgotten.
pub const KEEP_DELIVERIES: u64 = 10_000;

/// Keeps subscriptions and their delivery logs.
#[async_trait::async_trait]
pub trait SubscriptionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new subscription.
    async fn insert(&self, stored: &Stored) -> Result<(), WebhookError>;
    /// One subscription with its sealed secret.
    async fn get(&self, id: Uuid) -> Result<Stored, WebhookError>;
    /// Every subscription, by id.
    async fn list(&self) -> Result<Vec<Subscription>, WebhookError>;
    /// Applies `change` to the subscription as stored when it is written (read again if another
    /// writer got in between). `None` when the change did not apply; the subscription otherwise.
    async fn update(&self, id: Uuid, change: &Change)
    -> Result<Option<Subscription>, WebhookError>;
    /// Removes the subscription, its secret and its delivery log, leaving no copy behind.
    async fn delete(&self, id: Uuid) -> Result<(), WebhookError>;
    /// Records an attempt; answers its `seq`.
    async fn log_attempt(&self, id: Uuid, delivery: &Delivery) -> Result<u64, WebhookError>;
    /// Attempts, newest first, with `seq` below `before` when given.
    async fn deliveries(
        &self,
        id: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscription {
        Subscription {
            id: Uuid::nil(),
            url: "https://crm.example/hook".into(),
            target: Default::default(),
            description: String::new(),
            offices: Vec::new(),
            kinds: Vec::new(),
            cursor: Position(10),
            paused: false,
            paused_reason: None,
            paused_at: None,
            paused_at_position: None,
            delivered: 0,
            failing: None,
            created_at: DateTime::UNIX_EPOCH,
            created_by: "m".into(),
            owner: None,
            owner_since: Position(0),
            revision: 3,
        }
    }

    #[test]
    fn a_worker_change_made_before_a_pause_or_replay_does_not_apply_after_it() {
        let mut s = sub();
        assert!(Change::Replay { after: Position(2) }.apply(&mut s));
        assert_eq!((s.cursor, s.revision), (Position(2), 4));
        // The worker read revision 3: its advance and its failure are stale.
        let stale = Change::Advance {
            revision: 3,
            to: Position(11),
            delivered: 1,
        };
        assert!(!stale.apply(&mut s));
        assert_eq!(s.cursor, Position(2));
        let failing = Failing {
            position: Position(3),
            since: DateTime::UNIX_EPOCH,
            attempts: 1,
            last_error: "x".into(),
            next_attempt_at: DateTime::UNIX_EPOCH,
        };
        assert!(
            !Change::Failing {
                revision: 3,
                failing: failing.clone()
            }
            .apply(&mut s)
        );
        assert!(
            Change::Failing {
                revision: 4,
                failing
            }
            .apply(&mut s)
        );
        // An advance clears the failure and counts; the cursor never moves back.
        let advance = |to| Change::Advance {
            revision: 4,
            to: Position(to),
            delivered: 1,
        };
        assert!(advance(3).apply(&mut s));
        assert_eq!(
            (s.cursor, s.delivered, s.failing.is_none()),
            (Position(3), 1, true)
        );
        assert!(!advance(3).apply(&mut s));
        assert!(!advance(1).apply(&mut s));
        let gone = Change::PauseAt {
            revision: 4,
            reason: "gone".into(),
            position: Position(4),
            at: DateTime::UNIX_EPOCH,
        };
        assert!(gone.apply(&mut s));
        assert!(s.paused && s.revision == 5 && s.paused_at_position == Some(Position(4)));
        assert!(!gone.apply(&mut s), "a second pause at the old revision");
        let owner = StaffId::derived("o");
        assert!(
            Change::Resume {
                owner: Some((owner, Position(9)))
            }
            .apply(&mut s)
        );
        assert!(!s.paused && s.paused_reason.is_none() && s.paused_at_position.is_none());
        assert_eq!((s.owner, s.owner_since), (Some(owner), Position(9)));
    }
}
