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
pub mod kv;
pub mod robot;
pub mod seal;
pub mod sign;
pub mod store;
pub mod target;

pub use dispatch::{DeliveryOptions, Dispatcher};
pub use robot::{RobotOrigins, TargetKind};
pub use store::{Change, KEEP_DELIVERIES, Stored, SubscriptionStore};
pub use target::{Targets, guarded_client};

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
    #[error("webhook subscriptions on the log's cluster: {0}")]
    Cluster(String),
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

/// The subscriptions, shared by the API (which changes subscriptions) and the dispatcher (which
/// delivers and moves cursors). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    store: Arc<dyn SubscriptionStore>,
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

/// Seals every secret stored in plain text, then rewrites the database and empties its
/// write-ahead log so the plain text is gone from both files.
fn seal_plaintext(subs: &db::SqliteSubscriptions, key: &SealKey) -> Result<(), WebhookError> {
    subs.with(|c| {
        let plain = db::unsealed_secrets(c)?;
        if plain.is_empty() {
            return Ok(());
        }
        for (id, secret) in &plain {
            db::set_secret(c, *id, &key.seal(*id, secret))?;
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
        let conn = rusqlite::Connection::open(path)?;
        db::migrate(&conn)?;
        let subs = db::SqliteSubscriptions::new(conn);
        seal_plaintext(&subs, &key)?;
        Ok(Self::with_store(Arc::new(subs), key))
    }

    /// The subscriptions of the log `stream_name` in buckets of its JetStream cluster at `url`
    /// ([`kv`]), shared by every process on that log. Their secrets are sealed with the key in
    /// `key_file` (made when missing), which every such process must be given: a process with
    /// another key is refused here, naming the file.
    pub async fn open_on_cluster(
        url: &str,
        stream_name: &str,
        replicas: usize,
        request_timeout: std::time::Duration,
        key_file: &Path,
    ) -> Result<Self, WebhookError> {
        let key_err = |source| WebhookError::Key {
            path: key_file.display().to_string(),
            source,
        };
        if key_file.exists() {
            funnel_store::files::prepare_private_file(key_file).map_err(key_err)?;
        }
        let key = SealKey::load_or_create(key_file).map_err(key_err)?;
        let subs = kv::KvSubscriptions::open(url, stream_name, replicas, request_timeout).await?;
        subs.claim_key(&key.id(), &key_file.display().to_string())
            .await?;
        let others = subs.changes();
        let hooks = Self::with_store(Arc::new(subs), key);
        hooks.follow_changes_of_others(others);
        Ok(hooks)
    }

    /// Copies the subscriptions of `from` that are not here yet (with their cursors, their
    /// secrets sealed again with this key); answers how many. Their delivery logs stay behind.
    /// Refused, copying nothing, when a secret of `from` does not open with its key.
    pub async fn import(&self, from: &Webhooks) -> Result<usize, WebhookError> {
        let mut moving = Vec::new();
        for sub in from.store.list().await? {
            match self.store.get(sub.id).await {
                Ok(_) => continue,
                Err(WebhookError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            let plain = from.secret(sub.id).await?;
            moving.push(Stored {
                sealed_secret: self.key.seal(sub.id, &plain),
                subscription: sub,
            });
        }
        for stored in &moving {
            self.store.insert(stored).await?;
        }
        if !moving.is_empty() {
            self.touched();
        }
        Ok(moving.len())
    }

    /// A database in memory (tests, and servers run without webhooks).
    pub fn in_memory() -> Result<Self, WebhookError> {
        let conn = rusqlite::Connection::open_in_memory()?;
        db::migrate(&conn)?;
        Ok(Self::with_store(
            Arc::new(db::SqliteSubscriptions::new(conn)),
            SealKey::random(),
        ))
    }

    /// Subscriptions kept in `store`, their secrets sealed with `key`.
    pub fn with_store(store: Arc<dyn SubscriptionStore>, key: SealKey) -> Self {
        Self {
            store,
            changed: Arc::new(watch::channel(0).0),
            key,
            targets: Arc::new(RwLock::new(Arc::new(Targets::default()))),
            robots: Arc::new(RwLock::new(RobotOrigins::default())),
            queues: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Tells [`Webhooks::changes`] of changes made elsewhere (another process on the same
    /// buckets) as `seen` reports them, until it ends or every handle is dropped.
    pub fn follow_changes_of_others(&self, mut seen: watch::Receiver<u64>) {
        let changed = Arc::downgrade(&self.changed);
        tokio::spawn(async move {
            while seen.changed().await.is_ok() {
                match changed.upgrade() {
                    Some(c) => c.send_modify(|g| *g += 1),
                    None => break,
                }
            }
        });
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
        let shown = new.url.clone();
        let sub = self
            .insert(id, new, TargetKind::Webhook, shown, sealed)
            .await?;
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
        self.insert(id, new, robot.kind, masked, sealed).await
    }

    async fn insert(
        &self,
        id: Uuid,
        new: NewSubscription,
        target: TargetKind,
        shown_url: String,
        sealed_secret: String,
    ) -> Result<Subscription, WebhookError> {
        let subscription = Subscription {
            id,
            url: shown_url,
            target,
            description: new.description,
            offices: new.selector.offices,
            kinds: new.selector.kinds.0,
            cursor: new.after,
            paused: false,
            paused_reason: None,
            paused_at: None,
            paused_at_position: None,
            delivered: 0,
            failing: None,
            created_at: Utc::now(),
            created_by: new.created_by,
            owner: new.owner,
            owner_since: new.owner_since,
            revision: 0,
        };
        self.store
            .insert(&Stored {
                subscription: subscription.clone(),
                sealed_secret,
            })
            .await?;
        self.touched();
        Ok(subscription)
    }

    /// The URL and secret a chat robot subscription sends with.
    async fn credentials(&self, id: Uuid) -> Result<robot::Credentials, WebhookError> {
        let text = self.secret(id).await?;
        serde_json::from_str(&text).map_err(|e| WebhookError::Corrupt {
            what: "robot credentials",
            detail: e.to_string(),
        })
    }

    pub async fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        self.store.list().await
    }

    pub async fn get(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        Ok(self.store.get(id).await?.subscription)
    }

    /// Stops delivery (the cursor stays where it is).
    pub async fn pause(&self, id: Uuid) -> Result<Subscription, WebhookError> {
        self.change(id, Change::Pause { at: Utc::now() }).await
    }

    /// Delivery goes on from the cursor. `owner` (whose authority was checked at the position
    /// given) becomes the subscription's owner.
    pub async fn resume(
        &self,
        id: Uuid,
        owner: Option<(funnel_types::StaffId, Position)>,
    ) -> Result<Subscription, WebhookError> {
        self.change(id, Change::Resume { owner }).await
    }

    /// Delivery starts again after `after` (earlier or later than the cursor); the current
    /// failure, if any, is forgotten.
    pub async fn replay(&self, id: Uuid, after: Position) -> Result<Subscription, WebhookError> {
        self.change(id, Change::Replay { after }).await
    }

    /// Removes the subscription and its delivery log.
    pub async fn delete(&self, id: Uuid) -> Result<(), WebhookError> {
        self.store.delete(id).await?;
        self.touched();
        Ok(())
    }

    /// Delivery attempts, newest first, with `seq` below `before` when given.
    pub async fn deliveries(
        &self,
        id: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.store.deliveries(id, before, limit).await
    }

    /// A change asked for through the API: it always applies.
    async fn change(&self, id: Uuid, change: Change) -> Result<Subscription, WebhookError> {
        let sub = self
            .store
            .update(id, &change)
            .await?
            .ok_or(WebhookError::NotFound(id))?;
        self.touched();
        Ok(sub)
    }

    /// A change the dispatch makes; whether it applied. Pauses are announced.
    pub(crate) async fn apply(&self, id: Uuid, change: Change) -> Result<bool, WebhookError> {
        let applied = self.store.update(id, &change).await?.is_some();
        if applied && change.is_announced() {
            self.touched();
        }
        Ok(applied)
    }

    /// Records an attempt.
    pub(crate) async fn log_attempt(&self, id: Uuid, d: &Delivery) -> Result<u64, WebhookError> {
        self.store.log_attempt(id, d).await
    }

    /// The secret the dispatcher signs with.
    async fn secret(&self, id: Uuid) -> Result<String, WebhookError> {
        let sealed = self.store.get(id).await?.sealed_secret;
        self.key
            .open(id, &sealed)
            .ok_or_else(|| WebhookError::Corrupt {
                what: "secret",
                detail: format!(
                    "the secret of subscription {id} does not open with this process's webhook key file"
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
        assert_eq!(hooks.secret(sub.id).await.unwrap(), secret);
        assert_eq!(
            (sub.cursor, sub.paused, sub.revision),
            (Position(7), false, 0)
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let paused = hooks.pause(sub.id).await.unwrap();
        assert!(paused.paused && paused.revision > sub.revision && paused.paused_at.is_some());
        assert!(changes.has_changed().unwrap());
        let owner = funnel_types::StaffId::derived("new owner");
        let resumed = hooks
            .resume(sub.id, Some((owner, Position(9))))
            .await
            .unwrap();
        assert!(!resumed.paused && resumed.paused_at.is_none());
        assert_eq!(
            (resumed.owner, resumed.owner_since),
            (Some(owner), Position(9))
        );
        let replayed = hooks.replay(sub.id, Position(0)).await.unwrap();
        assert_eq!(replayed.cursor, Position(0));
        assert_eq!(hooks.list().await.unwrap(), vec![replayed]);
        hooks.delete(sub.id).await.unwrap();
        assert!(matches!(
            hooks.pause(sub.id).await,
            Err(WebhookError::NotFound(_))
        ));
        assert!(matches!(
            hooks.deliveries(sub.id, None, 10).await,
            Err(WebhookError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn imported_subscriptions_keep_their_state_and_secret_under_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = Webhooks::open(&dir.path().join("old.db")).unwrap();
        old.set_targets(public_targets());
        let (a, secret) = old.create(new("https://crm.example/a")).await.unwrap();
        let b = old
            .replay(
                old.create(new("https://crm.example/b")).await.unwrap().0.id,
                Position(2),
            )
            .await
            .unwrap();
        let to = Webhooks::in_memory().unwrap();
        // One is there already (a second start after an interrupted move): it is kept.
        to.store
            .insert(&Stored {
                subscription: a.clone(),
                sealed_secret: to.key.seal(a.id, &secret),
            })
            .await
            .unwrap();
        assert_eq!(to.import(&old).await.unwrap(), 1);
        assert_eq!(to.list().await.unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(to.secret(a.id).await.unwrap(), secret);
        assert_eq!(
            to.secret(b.id).await.unwrap(),
            old.secret(b.id).await.unwrap()
        );
        // Sealed with the new key, not copied.
        let sealed = to.store.get(b.id).await.unwrap().sealed_secret;
        assert_ne!(sealed, old.store.get(b.id).await.unwrap().sealed_secret);
        assert_eq!(to.import(&old).await.unwrap(), 0, "nothing twice");
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
