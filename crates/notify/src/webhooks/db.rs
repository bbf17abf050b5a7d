//! The SQLite tables of the webhook subscriptions and their delivery log.

use super::store::{Change, KEEP_DELIVERIES, Stored, SubscriptionStore};
use super::{Delivery, Failing, Subscription, TargetKind, WebhookError};
use chrono::{DateTime, Utc};
use funnel_types::{OfficeId, Position, StaffId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

/// 2: the owner whose authority keeps a subscription alive, when and where it was paused, and
/// sealed secrets. 3: chat robot targets, and how many events an attempt carried.
const SCHEMA_VERSION: i64 = 3;

pub fn migrate(c: &Connection) -> Result<(), WebhookError> {
    // Deleted content (a deleted subscription's sealed secret) is overwritten, not left in free
    // pages.
    c.pragma_update(None, "secure_delete", "ON")?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS webhook_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS subscriptions (
             id TEXT PRIMARY KEY,
             url TEXT NOT NULL,
             description TEXT NOT NULL,
             offices TEXT NOT NULL,
             kinds TEXT NOT NULL,
             secret TEXT NOT NULL,
             cursor INTEGER NOT NULL,
             paused INTEGER NOT NULL,
             paused_reason TEXT,
             delivered INTEGER NOT NULL DEFAULT 0,
             failing TEXT,
             created_at TEXT NOT NULL,
             created_by TEXT NOT NULL,
             revision INTEGER NOT NULL DEFAULT 0
         );
         CREATE TABLE IF NOT EXISTS deliveries (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             subscription_id TEXT NOT NULL,
             position INTEGER NOT NULL,
             event_id TEXT NOT NULL,
             event_type TEXT NOT NULL,
             attempt INTEGER NOT NULL,
             at TEXT NOT NULL,
             status INTEGER,
             ok INTEGER NOT NULL,
             error TEXT,
             duration_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS deliveries_by_subscription
             ON deliveries (subscription_id, seq);",
    )?;
    let found: Option<i64> = c
        .query_row(
            "SELECT value FROM webhook_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let found = found.unwrap_or(1);
    if found > SCHEMA_VERSION {
        return Err(WebhookError::Corrupt {
            what: "schema version",
            detail: format!("found {found}, this build reads {SCHEMA_VERSION}"),
        });
    }
    if found < 2 {
        // Subscriptions made before owners were recorded: the staff id in `created_by`
        // ("name (id)") is the owner, whose authority is checked from the start of the log
        // (an owner who left before this upgrade pauses the subscription at once).
        c.execute_batch(
            "ALTER TABLE subscriptions ADD COLUMN owner TEXT;
             ALTER TABLE subscriptions ADD COLUMN owner_since INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE subscriptions ADD COLUMN paused_at TEXT;
             ALTER TABLE subscriptions ADD COLUMN paused_position INTEGER;
             UPDATE subscriptions SET owner_since = 0,
                 owner = CASE WHEN created_by LIKE '%)'
                     THEN substr(created_by, -37, 36) END;",
        )?;
    }
    if found < 3 {
        // Every subscription made before is a plain webhook; every attempt carried one event.
        c.execute_batch(
            "ALTER TABLE subscriptions ADD COLUMN target TEXT NOT NULL DEFAULT 'webhook';
             ALTER TABLE deliveries ADD COLUMN events INTEGER NOT NULL DEFAULT 1;",
        )?;
    }
    if found < SCHEMA_VERSION {
        c.execute(
            "INSERT INTO webhook_meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION],
        )?;
    }
    Ok(())
}

/// What a stored value that does not read becomes.
fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> WebhookError {
    move |e| WebhookError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

fn uuid_of(text: &str, what: &'static str) -> Result<Uuid, WebhookError> {
    text.parse().map_err(corrupt::<uuid::Error>(what))
}

fn time_of(text: &str, what: &'static str) -> Result<DateTime<Utc>, WebhookError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(corrupt(what))
}

fn revision_sql(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

pub fn insert(c: &Connection, stored: &Stored) -> Result<(), WebhookError> {
    let sub = &stored.subscription;
    let offices = serde_json::to_string(&sub.offices).map_err(corrupt("offices"))?;
    let kinds = serde_json::to_string(&sub.kinds).map_err(corrupt("kinds"))?;
    c.execute(
        "INSERT INTO subscriptions
             (id, url, description, offices, kinds, secret, cursor, paused, created_at, created_by,
              owner, owner_since, target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12)",
        params![
            sub.id.to_string(),
            sub.url,
            sub.description,
            offices,
            kinds,
            stored.sealed_secret,
            position_sql(sub.cursor),
            sub.created_at.to_rfc3339(),
            sub.created_by,
            sub.owner.map(|o| o.to_string()),
            position_sql(sub.owner_since),
            sub.target.as_str(),
        ],
    )?;
    // What changes after creation (an imported subscription comes with it).
    write_state(c, sub)
}

/// Writes what changes after creation: cursor, pause, counts, failure, revision and owner.
fn write_state(c: &Connection, sub: &Subscription) -> Result<(), WebhookError> {
    let failing = sub
        .failing
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt("failure"))?;
    c.execute(
        "UPDATE subscriptions SET cursor = ?2, paused = ?3, paused_reason = ?4, paused_at = ?5,
             paused_position = ?6, delivered = ?7, failing = ?8, revision = ?9, owner = ?10,
             owner_since = ?11
         WHERE id = ?1",
        params![
            sub.id.to_string(),
            position_sql(sub.cursor),
            sub.paused,
            sub.paused_reason,
            sub.paused_at.map(|t| t.to_rfc3339()),
            sub.paused_at_position.map(position_sql),
            i64::try_from(sub.delivered).unwrap_or(i64::MAX),
            failing,
            revision_sql(sub.revision),
            sub.owner.map(|o| o.to_string()),
            position_sql(sub.owner_since),
        ],
    )?;
    Ok(())
}

fn position_sql(p: Position) -> i64 {
    i64::try_from(p.0).unwrap_or(i64::MAX)
}

fn position_of(v: i64) -> Position {
    Position(u64::try_from(v).unwrap_or(0))
}

const COLUMNS: &str = "id, url, description, offices, kinds, cursor, paused, paused_reason, \
                       delivered, failing, created_at, created_by, revision, owner, owner_since, \
                       paused_at, paused_position, target";

fn subscription(r: &Row<'_>) -> Result<Subscription, WebhookError> {
    let offices: String = r.get(3)?;
    let kinds: String = r.get(4)?;
    let failing: Option<String> = r.get(9)?;
    Ok(Subscription {
        id: uuid_of(&r.get::<_, String>(0)?, "subscription id")?,
        url: r.get(1)?,
        description: r.get(2)?,
        offices: serde_json::from_str::<Vec<OfficeId>>(&offices).map_err(corrupt("offices"))?,
        kinds: serde_json::from_str(&kinds).map_err(corrupt("kinds"))?,
        cursor: position_of(r.get(5)?),
        paused: r.get(6)?,
        paused_reason: r.get(7)?,
        delivered: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
        failing: failing
            .map(|f| serde_json::from_str::<Failing>(&f))
            .transpose()
            .map_err(corrupt("failure"))?,
        created_at: time_of(&r.get::<_, String>(10)?, "creation time")?,
        created_by: r.get(11)?,
        revision: u64::try_from(r.get::<_, i64>(12)?).unwrap_or(0),
        owner: r
            .get::<_, Option<String>>(13)?
            .and_then(|o| o.parse::<StaffId>().ok()),
        owner_since: position_of(r.get(14)?),
        paused_at: r
            .get::<_, Option<String>>(15)?
            .map(|t| time_of(&t, "pause time"))
            .transpose()?,
        paused_at_position: r.get::<_, Option<i64>>(16)?.map(position_of),
        target: {
            let t: String = r.get(17)?;
            TargetKind::parse(&t).ok_or_else(|| WebhookError::Corrupt {
                what: "target",
                detail: format!("unknown target kind `{t}`"),
            })?
        },
    })
}

pub fn get(c: &Connection, id: Uuid) -> Result<Subscription, WebhookError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id.to_string()])?;
    match rows.next()? {
        Some(r) => subscription(r),
        None => Err(WebhookError::NotFound(id)),
    }
}

pub fn list(c: &Connection) -> Result<Vec<Subscription>, WebhookError> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM subscriptions ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(subscription(r)?);
    }
    Ok(out)
}

pub fn secret(c: &Connection, id: Uuid) -> Result<String, WebhookError> {
    c.query_row(
        "SELECT secret FROM subscriptions WHERE id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(WebhookError::NotFound(id))
}

/// Every subscription whose secret is not sealed yet (written by an older Funnel).
pub fn unsealed_secrets(c: &Connection) -> Result<Vec<(Uuid, String)>, WebhookError> {
    let mut stmt = c.prepare("SELECT id, secret FROM subscriptions WHERE secret NOT LIKE ?1")?;
    let mut rows = stmt.query([format!("{}%", super::seal::SEALED)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push((
            uuid_of(&r.get::<_, String>(0)?, "subscription id")?,
            r.get(1)?,
        ));
    }
    Ok(out)
}

pub fn set_secret(c: &Connection, id: Uuid, sealed: &str) -> Result<(), WebhookError> {
    c.execute(
        "UPDATE subscriptions SET secret = ?2 WHERE id = ?1",
        params![id.to_string(), sealed],
    )?;
    Ok(())
}

/// Copies the write-ahead log into the database and empties it, so content overwritten or
/// deleted (with `secure_delete`) is not left behind in the `-wal` file.
pub fn flush_wal(c: &Connection) -> Result<(), WebhookError> {
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .optional()?;
    Ok(())
}

/// Applies `change` inside one transaction; the subscription when it applied.
pub fn update(
    c: &mut Connection,
    id: Uuid,
    change: &Change,
) -> Result<Option<Subscription>, WebhookError> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut sub = get(&tx, id)?;
    if !change.apply(&mut sub) {
        return Ok(None);
    }
    write_state(&tx, &sub)?;
    tx.commit()?;
    Ok(Some(sub))
}

pub fn delete(c: &Connection, id: Uuid) -> Result<(), WebhookError> {
    let n = c.execute("DELETE FROM subscriptions WHERE id = ?1", [id.to_string()])?;
    if n == 0 {
        return Err(WebhookError::NotFound(id));
    }
    c.execute(
        "DELETE FROM deliveries WHERE subscription_id = ?1",
        [id.to_string()],
    )?;
    flush_wal(c)
}

pub fn log_attempt(c: &Connection, id: Uuid, d: &Delivery) -> Result<u64, WebhookError> {
    c.execute(
        "INSERT INTO deliveries (subscription_id, position, event_id, event_type, attempt, at,
             status, ok, error, duration_ms, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id.to_string(),
            position_sql(d.position),
            d.event_id.to_string(),
            d.event_type,
            d.attempt,
            d.at.to_rfc3339(),
            d.status,
            d.ok,
            d.error,
            i64::try_from(d.duration_ms.unwrap_or(0)).unwrap_or(i64::MAX),
            d.events,
        ],
    )?;
    let seq = c.last_insert_rowid();
    if seq % 1000 == 0 {
        c.execute(
            "DELETE FROM deliveries WHERE subscription_id = ?1 AND seq <= (
                 SELECT seq FROM deliveries WHERE subscription_id = ?1
                 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            params![id.to_string(), KEEP_DELIVERIES as i64],
        )?;
    }
    Ok(u64::try_from(seq).unwrap_or(0))
}

pub fn deliveries(
    c: &Connection,
    id: Uuid,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Delivery>, WebhookError> {
    let mut stmt = c.prepare(
        "SELECT seq, position, event_id, event_type, attempt, at, status, ok, error, duration_ms,
             events
         FROM deliveries WHERE subscription_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    )?;
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![id.to_string(), before, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Delivery {
            seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            position: position_of(r.get(1)?),
            event_id: uuid_of(&r.get::<_, String>(2)?, "event id")?,
            event_type: r.get(3)?,
            attempt: r.get(4)?,
            at: time_of(&r.get::<_, String>(5)?, "attempt time")?,
            status: r.get(6)?,
            ok: r.get(7)?,
            error: r.get(8)?,
            duration_ms: Some(u64::try_from(r.get::<_, i64>(9)?).unwrap_or(0)),
            events: r.get(10)?,
        });
    }
    Ok(out)
}

/// The subscriptions in a SQLite file (or in memory).
#[derive(Debug)]
pub struct SqliteSubscriptions {
    conn: std::sync::Mutex<Connection>,
}

impl SqliteSubscriptions {
    /// Takes `conn` (migrated already).
    pub fn new(conn: Connection) -> Self {
        Self {
            conn: std::sync::Mutex::new(conn),
        }
    }

    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, WebhookError>,
    ) -> Result<T, WebhookError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }
}

#[async_trait::async_trait]
impl SubscriptionStore for SqliteSubscriptions {
    async fn insert(&self, stored: &Stored) -> Result<(), WebhookError> {
        self.with(|c| insert(c, stored))
    }

    async fn get(&self, id: Uuid) -> Result<Stored, WebhookError> {
        self.with(|c| {
            Ok(Stored {
                subscription: get(c, id)?,
                sealed_secret: secret(c, id)?,
            })
        })
    }

    async fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        self.with(|c| list(c))
    }

    async fn update(
        &self,
        id: Uuid,
        change: &Change,
    ) -> Result<Option<Subscription>, WebhookError> {
        self.with(|c| update(c, id, change))
    }

    async fn delete(&self, id: Uuid) -> Result<(), WebhookError> {
        self.with(|c| delete(c, id))
    }

    async fn log_attempt(&self, id: Uuid, delivery: &Delivery) -> Result<u64, WebhookError> {
        self.with(|c| log_attempt(c, id, delivery))
    }

    async fn deliveries(
        &self,
        id: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.with(|c| {
            get(c, id)?;
            deliveries(c, id, before, limit)
        })
    }
}
