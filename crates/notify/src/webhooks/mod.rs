//! Webhook subscriptions: who wants which events, where, from which position; a delivery worker
//! per subscription; a log of every attempt.
//!
//! Subscriptions are operational settings, not business facts, and they hold a signing secret that
//! must be deletable: they live in a small SQLite file beside the read models (never in the log).
//! Each subscription keeps its own cursor (the last log position it delivered or skipped), so it
//! can be paused, resumed and replayed from any position without affecting the others.
//!
//! Delivery (see [`dispatch`]): one event per POST, in log order, so events of one lead arrive in
//! the order they happened; the next event waits until the current one is acknowledged with a 2xx.
//! Failures (other statuses, timeouts, refused connections) are retried with capped exponential
//! backoff and jitter, forever, until the receiver recovers or the subscription is paused; a
//! `410 Gone` pauses the subscription. Receivers must tolerate duplicates (at least once): the
//! `webhook-id` header is the event id and stays the same across retries and replays.

mod db;
pub mod dispatch;
pub mod sign;

pub use dispatch::{DeliveryOptions, Dispatcher};

use crate::Selector;
use chrono::{DateTime, Utc};
use funnel_types::Position;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use uuid::Uuid;

/// What went wrong with the subscription database or a request to change it.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook subscription {0}")]
    NotFound(Uuid),
    #[error("invalid webhook URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("webhook database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("webhook database holds a bad {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// A subscription as the API shows it (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subscription {
    pub id: Uuid,
    /// Where events are POSTed (http or https).
    pub url: String,
    pub description: String,
    /// Offices (ids) whose events are sent; empty: every office and events of none.
    pub offices: Vec<funnel_types::OfficeId>,
    /// Event kinds sent: exact types or prefixes ending in `*`; empty: every kind.
    pub kinds: Vec<String>,
    /// The last log position delivered or skipped; delivery goes on after it.
    pub cursor: Position,
    pub paused: bool,
    /// Why it was paused, when Funnel paused it (a `410 Gone`).
    pub paused_reason: Option<String>,
    /// Events delivered (acknowledged with a 2xx) since the subscription was made.
    pub delivered: u64,
    /// Set while the current event keeps failing.
    pub failing: Option<Failing>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Changes with every pause, resume or replay.
    pub revision: u64,
}

impl Subscription {
    pub fn selector(&self) -> Selector {
        Selector {
            offices: self.offices.clone(),
            kinds: crate::Kinds(self.kinds.clone()),
        }
    }
}

/// The current event's failed attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failing {
    pub position: Position,
    pub since: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: String,
    pub next_attempt_at: DateTime<Utc>,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Delivery {
    /// Increases with every attempt (of any subscription); pages of the log go by it.
    pub seq: u64,
    pub position: Position,
    pub event_id: Uuid,
    pub event_type: String,
    /// 1 for the first attempt at this event, then 2, 3 …
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// A new subscription.
#[derive(Clone, Debug)]
pub struct NewSubscription {
    pub url: String,
    pub description: String,
    pub selector: Selector,
    /// Deliver what comes after this position.
    pub after: Position,
    pub created_by: String,
}

/// The subscription database, shared by the API (which changes subscriptions) and the dispatcher
/// (which delivers and moves cursors). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    db: Arc<Mutex<rusqlite::Connection>>,
    changed: Arc<watch::Sender<u64>>,
}

/// Refuses URLs that are not absolute http(s) URLs with a host.
pub fn check_url(text: &str) -> Result<(), WebhookError> {
    let bad = |reason: &str| WebhookError::InvalidUrl {
        url: text.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL would be shown to every reader; use the signature instead",
        ));
    }
    Ok(())
}

impl Webhooks {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, WebhookError> {
        Self::from_connection(rusqlite::Connection::open(path)?)
    }

    /// A database in memory (tests, and servers run without webhooks).
    pub fn in_memory() -> Result<Self, WebhookError> {
        Self::from_connection(rusqlite::Connection::open_in_memory()?)
    }

    fn from_connection(conn: rusqlite::Connection) -> Result<Self, WebhookError> {
        db::migrate(&conn)?;
        Ok(Self {
            db: Arc::new(Mutex::new(conn)),
            changed: Arc::new(watch::channel(0).0),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, WebhookError>,
    ) -> Result<T, WebhookError> {
        let conn = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }

    fn touched(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// Told of every change made through [`Webhooks::create`], pause, resume, replay and delete.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Makes a subscription; returns it with its signing secret (shown once).
    pub fn create(&self, new: NewSubscription) -> Result<(Subscription, String), WebhookError> {
        check_url(&new.url)?;
        let secret = sign::new_secret();
        let id = Uuid::now_v7();
        let sub = self.with(|c| {
            db::insert(c, id, &new, &secret, Utc::now())?;
            db::get(c, id)
        })?;
        self.touched();
        Ok((sub, secret))
    }

    pub fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        self.with(db::list)
    }

    pub fn get(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        self.with(|c| db::get(c, id))
    }

    /// Stops delivery (the cursor stays where it is).
    pub fn pause(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        self.change(id, |c| db::set_paused(c, id, true, None))
    }

    /// Delivery goes on from the cursor.
    pub fn resume(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        self.change(id, |c| db::set_paused(c, id, false, None))
    }

    /// Delivery starts again after `after` (earlier or later than the cursor); the current
    /// failure, if any, is forgotten.
    pub fn replay(&self, id: Uuid, after: Position) -> Result<Subscription, WebhookError> {
        self.change(id, |c| db::replay(c, id, after))
    }

    /// Removes the subscription and its delivery log.
    pub fn delete(&self, id: Uuid) -> Result<(), WebhookError> {
        self.with(|c| db::delete(c, id))?;
        self.touched();
        Ok(())
    }

    /// Delivery attempts, newest first, with `seq` below `before` when given.
    pub fn deliveries(
        &self,
        id: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.with(|c| {
            db::get(c, id)?;
            db::deliveries(c, id, before, limit)
        })
    }

    fn change(
        &self,
        id: Uuid,
        f: impl FnOnce(&rusqlite::Connection) -> Result<usize, WebhookError>,
    ) -> Result<Subscription, WebhookError> {
        let sub = self.with(|c| {
            if f(c)? == 0 {
                return Err(WebhookError::NotFound(id));
            }
            db::get(c, id)
        })?;
        self.touched();
        Ok(sub)
    }

    /// The secret the dispatcher signs with.
    fn secret(&self, id: Uuid) -> Result<String, WebhookError> {
        self.with(|c| db::secret(c, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(url: &str) -> NewSubscription {
        NewSubscription {
            url: url.into(),
            description: "crm sync".into(),
            selector: Selector::default(),
            after: Position(7),
            created_by: "manager".into(),
        }
    }

    #[test]
    fn create_pause_resume_replay_delete() {
        let hooks = Webhooks::in_memory().unwrap();
        let mut changes = hooks.changes();
        let (sub, secret) = hooks.create(new("https://crm.example/hook")).unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(
            (sub.cursor, sub.paused, sub.revision),
            (Position(7), false, 0)
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let paused = hooks.pause(sub.id).unwrap();
        assert!(paused.paused && paused.revision > sub.revision);
        assert!(changes.has_changed().unwrap());
        let resumed = hooks.resume(sub.id).unwrap();
        assert!(!resumed.paused);
        let replayed = hooks.replay(sub.id, Position(0)).unwrap();
        assert_eq!(replayed.cursor, Position(0));
        assert_eq!(hooks.list().unwrap(), vec![replayed]);
        hooks.delete(sub.id).unwrap();
        assert!(matches!(
            hooks.pause(sub.id),
            Err(WebhookError::NotFound(_))
        ));
        assert!(matches!(
            hooks.deliveries(sub.id, None, 10),
            Err(WebhookError::NotFound(_))
        ));
    }

    #[test]
    fn urls_must_be_absolute_http() {
        for bad in [
            "ftp://x/y",
            "not a url",
            "/relative",
            "https://user:pw@host/",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        for good in ["http://127.0.0.1:9000/hook", "https://crm.example/a?b=c"] {
            check_url(good).unwrap();
        }
    }
}
