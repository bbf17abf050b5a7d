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
//!
//! Targets must be public addresses unless the deployment allows internal ones ([`target`]).
//! Secrets are sealed with a key kept outside the database ([`seal`]). A subscription lives no
//! longer than its owner's authority: when the owner leaves or changes role or office, the
//! subscription's worker sees that event in log order before any later event, and pauses it there
//! (see [`dispatch`]).

mod db;
pub mod dispatch;
pub mod robot;
pub mod seal;
pub mod sign;
pub mod target;

pub use dispatch::{DeliveryOptions, Dispatcher};
pub use robot::{RobotOrigins, TargetKind};
pub use target::Targets;

use crate::Selector;
use chrono::{DateTime, Utc};
use funnel_types::Position;
use schemars::JsonSchema;
use seal::SealKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

/// What went wrong with the subscription database or a request to change it.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook subscription {0}")]
    NotFound(Uuid),
    #[error("invalid chat robot target: {0}")]
    InvalidRobot(#[from] robot::BadRobot),
    #[error("invalid webhook URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("webhook URL `{url}` is refused: {refused}")]
    ForbiddenTarget {
        url: String,
        refused: target::Refused,
    },
    #[error("webhook key file {path}: {source}")]
    Key {
        path: String,
        source: std::io::Error,
    },
    #[error("webhook database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("webhook database holds a bad {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// A subscription as the API shows it (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subscription {
    pub id: Uuid,
    /// Where events are POSTed (http or https). For a chat robot, the vendor's URL with its
    /// credential masked.
    pub url: String,
    /// What receives the events: a plain webhook, or a DingTalk, WeCom or Feishu/Lark robot.
    #[serde(default)]
    pub target: TargetKind,
    pub description: String,
    /// Offices (ids) whose events are sent; empty: every office and events of none.
    pub offices: Vec<funnel_types::OfficeId>,
    /// Event kinds sent: exact types or prefixes ending in `*`; empty: every kind.
    pub kinds: Vec<String>,
    /// The last log position delivered or skipped; delivery goes on after it.
    pub cursor: Position,
    pub paused: bool,
    /// Why it was paused, when Funnel paused it (a `410 Gone`, or the owner's authority ended).
    pub paused_reason: Option<String>,
    /// When it was paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// The log position it was paused at, when Funnel paused it: the event that ended the
    /// owner's authority, or the one the receiver answered `410 Gone` to.
    pub paused_at_position: Option<Position>,
    /// Events delivered (acknowledged with a 2xx) since the subscription was made.
    pub delivered: u64,
    /// Set while the current event keeps failing.
    pub failing: Option<Failing>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The member of staff whose authority keeps the subscription going: its maker, then whoever
    /// resumed it last. When they leave or change role or office, it is paused.
    pub owner: Option<funnel_types::StaffId>,
    /// The log position the owner's authority was checked at; their changes after it count.
    pub owner_since: Position,
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
    /// How many events the attempt carried: 1, or more for a chat robot's digest (whose
    /// `position`, `event_id` and `event_type` are those of its last event).
    #[serde(default = "one")]
    pub events: u32,
    /// How long the attempt took (not shown to office roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

impl Delivery {
    /// The attempt as office roles see it: delivered or failed, and the HTTP status when the
    /// target answered (or a chat robot's own error code); not why the network failed nor how
    /// long it took.
    pub fn without_network_detail(mut self) -> Self {
        if !self.ok && !self.error.as_deref().is_some_and(robot::is_vendor_answer) {
            self.error = Some(match self.status {
                Some(s) => format!("the receiver answered {s}"),
                None => "delivery failed".into(),
            });
        }
        self.duration_ms = None;
        self
    }
}

impl Subscription {
    /// The subscription as office roles see it (see [`Delivery::without_network_detail`]).
    pub fn without_network_detail(mut self) -> Self {
        if let Some(f) = &mut self.failing
            && !f.last_error.starts_with("the receiver answered ")
            && !robot::is_vendor_answer(&f.last_error)
        {
            f.last_error = "delivery failed".into();
        }
        self
    }
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
    /// Whose authority keeps it going (none: only a pause by hand stops it).
    pub owner: Option<funnel_types::StaffId>,
    /// The log position `owner`'s authority was checked at.
    pub owner_since: Position,
}

/// A chat robot a new subscription delivers to (its URL is [`NewSubscription::url`]).
#[derive(Clone)]
pub struct NewRobot {
    pub kind: TargetKind,
    /// The signing secret from the robot's settings (DingTalk: `SEC…`; Feishu/Lark), when the
    /// robot signs. Sealed at rest, never shown again.
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewRobot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRobot")
            .field("kind", &self.kind)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// What a chat robot's worker holds: how far it has read the log, and how many events wait for
/// the robot's budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Queue {
    pub read_to: Position,
    pub waiting: usize,
}

/// The subscription database, shared by the API (which changes subscriptions) and the dispatcher
/// (which delivers and moves cursors). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    db: Arc<Mutex<rusqlite::Connection>>,
    changed: Arc<watch::Sender<u64>>,
    key: SealKey,
    targets: Arc<RwLock<Arc<Targets>>>,
    robots: Arc<RwLock<RobotOrigins>>,
    queues: Arc<Mutex<HashMap<Uuid, Queue>>>,
}

/// Refuses URLs that are not absolute http(s) URLs with a host.
pub fn check_url(text: &str) -> Result<url::Url, WebhookError> {
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
    Ok(url)
}

/// The key file of the database at `path`: beside it, `<name>.key` for `<name>.db`.
pub fn key_path(path: &Path) -> PathBuf {
    path.with_extension("key")
}

/// How many secrets in the database at `path` are sealed (zero when it has no subscriptions yet).
fn sealed_secrets(path: &Path) -> Result<i64, WebhookError> {
    let c = rusqlite::Connection::open(path)?;
    let has_table: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'subscriptions')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    Ok(c.query_row(
        "SELECT COUNT(*) FROM subscriptions WHERE secret LIKE ?1",
        [format!("{}%", seal::SEALED)],
        |r| r.get(0),
    )?)
}

impl Webhooks {
    /// Opens (creating if needed, readable by its owner only) the database at `path`, with its
    /// key file beside it ([`key_path`], made when missing). Secrets an older Funnel stored in
    /// plain text are sealed now, and the database is rewritten so no copy of them is left.
    pub fn open(path: &Path) -> Result<Self, WebhookError> {
        let key_file = key_path(path);
        let key_err = |source| WebhookError::Key {
            path: key_file.display().to_string(),
            source,
        };
        funnel_store::files::prepare_private_file(path).map_err(key_err)?;
        if key_file.exists() {
            // A key file restored from a backup with looser permissions is made private again.
            funnel_store::files::prepare_private_file(&key_file).map_err(key_err)?;
        } else {
            // A new key cannot open secrets sealed with a lost one: say so rather than make one
            // and fail every delivery of those subscriptions.
            let sealed = sealed_secrets(path)?;
            if sealed > 0 {
                return Err(key_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the key file is missing, and {sealed} subscription secret(s) in {} are \
                         sealed with it: restore the key file from where it was backed up (a new \
                         key cannot open them), or move the database away to start without its \
                         subscriptions",
                        path.display()
                    ),
                )));
            }
        }
        let key = SealKey::load_or_create(&key_file).map_err(key_err)?;
        let hooks = Self::from_connection(rusqlite::Connection::open(path)?, key)?;
        hooks.seal_plaintext()?;
        Ok(hooks)
    }

    /// A database in memory (tests, and servers run without webhooks).
    pub fn in_memory() -> Result<Self, WebhookError> {
        Self::from_connection(rusqlite::Connection::open_in_memory()?, SealKey::random())
    }

    fn from_connection(conn: rusqlite::Connection, key: SealKey) -> Result<Self, WebhookError> {
        db::migrate(&conn)?;
        Ok(Self {
            db: Arc::new(Mutex::new(conn)),
            changed: Arc::new(watch::channel(0).0),
            key,
            targets: Arc::new(RwLock::new(Arc::new(Targets::default()))),
            robots: Arc::new(RwLock::new(RobotOrigins::default())),
            queues: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Seals every secret stored in plain text, then rewrites the database and empties its
    /// write-ahead log so the plain text is gone from both files.
    fn seal_plaintext(&self) -> Result<(), WebhookError> {
        self.with(|c| {
            let plain = db::unsealed_secrets(c)?;
            if plain.is_empty() {
                return Ok(());
            }
            for (id, secret) in &plain {
                db::set_secret(c, *id, &self.key.seal(*id, secret))?;
            }
            db::flush_wal(c)?;
            c.execute_batch("VACUUM")?;
            db::flush_wal(c)?;
            tracing::info!(
                subscriptions = plain.len(),
                "webhook secrets stored in plain text were sealed"
            );
            Ok(())
        })
    }

    /// Where targets may be, and how names resolve (the default: public addresses only, through
    /// the system resolver). Used when subscriptions are made and by dispatchers made after it.
    pub fn set_targets(&self, targets: Targets) {
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(targets);
    }

    pub fn targets(&self) -> Arc<Targets> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Origins accepted for chat robots besides the vendors' own (see [`RobotOrigins`]).
    pub fn set_robot_origins(&self, origins: RobotOrigins) {
        *self.robots.write().unwrap_or_else(|e| e.into_inner()) = origins;
    }

    /// What the worker of a chat robot subscription holds right now (`None` while none runs).
    pub fn queue(&self, id: Uuid) -> Option<Queue> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }

    fn set_queue(&self, id: Uuid, queue: Option<Queue>) {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queue {
            Some(v) => q.insert(id, v),
            None => q.remove(&id),
        };
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
    /// The URL must be a public target ([`Targets::check_url`]).
    pub async fn create(
        &self,
        new: NewSubscription,
    ) -> Result<(Subscription, String), WebhookError> {
        let url = check_url(&new.url)?;
        self.targets()
            .check_url(&url)
            .await
            .map_err(|refused| WebhookError::ForbiddenTarget {
                url: new.url.clone(),
                refused,
            })?;
        let secret = sign::new_secret();
        let id = Uuid::now_v7();
        let sealed = self.key.seal(id, &secret);
        let sub = self.with(|c| {
            db::insert(
                c,
                id,
                &new,
                TargetKind::Webhook,
                &new.url,
                &sealed,
                Utc::now(),
            )?;
            db::get(c, id)
        })?;
        self.touched();
        Ok((sub, secret))
    }

    /// Makes a subscription that delivers to a chat robot. The URL must have the vendor's shape
    /// ([`robot::check`]) and be a permitted target; the URL and secret are sealed, and the
    /// subscription shows the URL with its credential masked.
    pub async fn create_robot(
        &self,
        new: NewSubscription,
        robot: NewRobot,
    ) -> Result<Subscription, WebhookError> {
        if !robot.kind.is_robot() {
            return self.create(new).await.map(|(s, _)| s);
        }
        let origins = self
            .robots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let masked = robot::check(robot.kind, &new.url, robot.secret.as_deref(), &origins)?;
        let url = check_url(&new.url)?;
        self.targets()
            .check_url(&url)
            .await
            .map_err(|refused| WebhookError::ForbiddenTarget {
                url: masked.clone(),
                refused,
            })?;
        let creds = robot::Credentials {
            url: new.url.clone(),
            secret: robot.secret.clone(),
        };
        let id = Uuid::now_v7();
        let text = serde_json::to_string(&creds).map_err(|e| WebhookError::Corrupt {
            what: "robot credentials",
            detail: e.to_string(),
        })?;
        let sealed = self.key.seal(id, &text);
        let sub = self.with(|c| {
            db::insert(c, id, &new, robot.kind, &masked, &sealed, Utc::now())?;
            db::get(c, id)
        })?;
        self.touched();
        Ok(sub)
    }

    /// The URL and secret a chat robot subscription sends with.
    fn credentials(&self, id: Uuid) -> Result<robot::Credentials, WebhookError> {
        let text = self.secret(id)?;
        serde_json::from_str(&text).map_err(|e| WebhookError::Corrupt {
            what: "robot credentials",
            detail: e.to_string(),
        })
    }

    pub fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        self.with(db::list)
    }

    pub fn get(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        self.with(|c| db::get(c, id))
    }

    /// Stops delivery (the cursor stays where it is).
    pub fn pause(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        self.change(id, |c| db::pause(c, id, Utc::now()))
    }

    /// Delivery goes on from the cursor. `owner` (whose authority was checked at the position
    /// given) becomes the subscription's owner.
    pub fn resume(
        &self,
        id: Uuid,
        owner: Option<(funnel_types::StaffId, Position)>,
    ) -> Result<Subscription, WebhookError> {
        self.change(id, |c| db::resume(c, id, owner))
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
        let sealed = self.with(|c| db::secret(c, id))?;
        self.key
            .open(id, &sealed)
            .ok_or_else(|| WebhookError::Corrupt {
                what: "secret",
                detail: format!(
                    "the secret of subscription {id} does not open with this database's key file"
                ),
            })
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
            owner: None,
            owner_since: Position(7),
        }
    }

    /// Targets resolving `crm.example` to a public address, never asking DNS.
    fn public_targets() -> Targets {
        let mut table = HashMap::new();
        table.insert(
            "crm.example".to_string(),
            vec!["93.184.215.14".parse().unwrap()],
        );
        Targets::default().with_resolver(Arc::new(target::StaticResolver(table)))
    }

    #[tokio::test]
    async fn create_pause_resume_replay_delete() {
        let hooks = Webhooks::in_memory().unwrap();
        hooks.set_targets(public_targets());
        let mut changes = hooks.changes();
        let (sub, secret) = hooks.create(new("https://crm.example/hook")).await.unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(hooks.secret(sub.id).unwrap(), secret);
        assert_eq!(
            (sub.cursor, sub.paused, sub.revision),
            (Position(7), false, 0)
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let paused = hooks.pause(sub.id).unwrap();
        assert!(paused.paused && paused.revision > sub.revision && paused.paused_at.is_some());
        assert!(changes.has_changed().unwrap());
        let owner = funnel_types::StaffId::derived("new owner");
        let resumed = hooks.resume(sub.id, Some((owner, Position(9)))).unwrap();
        assert!(!resumed.paused && resumed.paused_at.is_none());
        assert_eq!(
            (resumed.owner, resumed.owner_since),
            (Some(owner), Position(9))
        );
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

    #[tokio::test]
    async fn internal_targets_are_refused_unless_allowed() {
        let hooks = Webhooks::in_memory().unwrap();
        hooks.set_targets(public_targets());
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/",
            "http://metadata.google.internal/",
            "http://2130706433/",
        ] {
            let err = hooks.create(new(url)).await.unwrap_err();
            assert!(
                matches!(err, WebhookError::ForbiddenTarget { .. }),
                "{url}: {err}"
            );
        }
        hooks.set_targets(Targets::new(&["127.0.0.1/32".into()]).unwrap());
        hooks
            .create(new("http://127.0.0.1:9000/hook"))
            .await
            .unwrap();
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
