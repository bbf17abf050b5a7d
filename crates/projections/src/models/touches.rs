//! The touch index: for a lead, every actor who changed it or tried to, what they did, when and in
//! which role; for an actor, every lead they touched. One row per lead event, kept as SQL tables
//! (a [`TableModel`]) so that memory does not grow with the log: an audit reads one lead's or one
//! actor's rows through an index, and as of a past moment it is the same query with the rows up to
//! that position or time, without a replay.

use crate::AsOf;
use crate::tables::{LiveTables, TableModel, TableView};
use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_types::{Actor, Envelope, LeadId, Position, Role, StaffId};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// One touch of a lead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Touch {
    pub lead_id: LeadId,
    pub position: Position,
    pub at: DateTime<Utc>,
    /// Who acted, in which role (for a refused touch: who tried).
    pub actor: Actor,
    /// The name of the member of staff who acted (their id when the index has no name), or
    /// `system:NAME` for a component.
    pub actor_name: String,
    /// The event type, or for a refused touch the command that was refused.
    pub action: String,
    /// True when the attempt was refused (touching another engineer's lead, §5.7).
    pub refused: bool,
}

/// The touch index's pending rows (the table model).
#[derive(Debug, Default)]
pub struct TouchIndex {
    touches: Vec<(Touch, String)>,
    names: Vec<(StaffId, String)>,
}

/// The key an actor's touches are found by: a member of staff's id, or `system:NAME`.
pub fn actor_key(actor: &Actor) -> String {
    match actor {
        Actor::Staff { id, .. } => id.to_string(),
        Actor::System { name } => format!("system:{name}"),
    }
}

/// A moment as the tables keep it: nanoseconds since 1970 in UTC (to the year 2262), so that
/// number order is time order.
fn moment(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl TableModel for TouchIndex {
    const NAME: &'static str = "touches";
    /// 3: kept as tables. 4: leads as 16 bytes, moments as integers, the actor as its key and
    /// role (half the bytes per row: fewer pages to write while rebuilding and to read).
    const VERSION: u32 = 4;

    fn schema(p: &str) -> String {
        format!(
            "CREATE TABLE {p}touches (
                position INTEGER PRIMARY KEY,
                lead BLOB NOT NULL,
                at INTEGER NOT NULL,
                actor_key TEXT NOT NULL,
                role TEXT,
                action TEXT NOT NULL,
                refused INTEGER NOT NULL
            );
            CREATE INDEX {p}touches_lead ON {p}touches (lead, position);
            CREATE INDEX {p}touches_actor ON {p}touches (actor_key, position);
            CREATE TABLE {p}names (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL
            ) WITHOUT ROWID;"
        )
    }

    fn apply(&mut self, _view: &TableView<'_>, env: &Envelope<Event>) -> Result<(), String> {
        if let Event::StaffJoined(e) = &env.payload {
            self.names.push((e.staff_id, e.name.clone()));
            return Ok(());
        }
        let Some(lead_id) = env.payload.lead_id() else {
            return Ok(());
        };
        let (actor, action, refused) = match &env.payload {
            Event::TouchRefused(t) => {
                (Actor::staff(t.attempted_by, t.role), t.action.clone(), true)
            }
            other => (
                env.meta.actor.clone(),
                other.event_type().to_string(),
                false,
            ),
        };
        let key = actor_key(&actor);
        self.touches.push((
            Touch {
                lead_id,
                position: env.meta.position,
                at: env.meta.occurred_at,
                actor,
                actor_name: String::new(),
                action,
                refused,
            },
            key,
        ));
        Ok(())
    }

    fn write(&self, tx: &Connection, p: &str) -> rusqlite::Result<()> {
        let mut put = tx.prepare_cached(&format!(
            "INSERT INTO {p}touches (position, lead, at, actor_key, role, action, refused)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?;
        for (t, key) in &self.touches {
            put.execute(params![
                t.position.0 as i64,
                t.lead_id.0.as_bytes(),
                moment(t.at),
                key,
                t.actor.role().map(Role::as_str),
                t.action,
                t.refused,
            ])?;
        }
        let mut name = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {p}names (id, name) VALUES (?1, ?2)"
        ))?;
        for (id, n) in &self.names {
            name.execute(params![id.to_string(), n])?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.touches.clear();
        self.names.clear();
    }
}

/// The part of the history a touch query reads: the rows up to a position and, as of a moment,
/// only the touches that occurred by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upto {
    pub position: Position,
    pub moment: Option<DateTime<Utc>>,
}

impl Upto {
    /// The rows of the tables `t` as of `as_of`: up to a position (no further than the tables
    /// reach), or the touches that occurred by a moment; everything they hold when `None`.
    pub fn of(as_of: Option<AsOf>, t: &LiveTables) -> Upto {
        match as_of {
            None => Upto {
                position: t.checkpoint,
                moment: None,
            },
            Some(AsOf::Position(p)) => Upto {
                position: p.min(t.checkpoint),
                moment: None,
            },
            Some(AsOf::Time(m)) => Upto {
                position: t.checkpoint,
                moment: Some(m),
            },
        }
    }
}

/// Which touches a query lists, and how many from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TouchQuery {
    pub upto: Upto,
    /// Touches after this position.
    pub after: Option<Position>,
    /// At most this many (the next page's cursor is given when more follow).
    pub limit: usize,
    /// Only touches that occurred at or after this moment.
    pub from: Option<DateTime<Utc>>,
    /// Only touches that occurred before this moment.
    pub to: Option<DateTime<Utc>>,
    /// The latest first (for "recent touches"); otherwise in log order.
    pub latest_first: bool,
}

/// One page of touches, and the cursor of the next page (`None` on the last).
pub type TouchPage = (Vec<Touch>, Option<Position>);

/// The touches of a lead.
pub fn lead_touches(
    conn: &Connection,
    t: &LiveTables,
    lead: LeadId,
    q: &TouchQuery,
) -> rusqlite::Result<TouchPage> {
    select(conn, t, "t.lead", &lead.0.as_bytes().as_slice(), q)
}

/// The touches of an actor ([`actor_key`]).
pub fn actor_touches(
    conn: &Connection,
    t: &LiveTables,
    key: &str,
    q: &TouchQuery,
) -> rusqlite::Result<TouchPage> {
    select(conn, t, "t.actor_key", &key, q)
}

fn select(
    conn: &Connection,
    t: &LiveTables,
    column: &str,
    value: &dyn rusqlite::ToSql,
    q: &TouchQuery,
) -> rusqlite::Result<TouchPage> {
    let p = &t.prefix;
    let upto = q.upto.position.min(t.checkpoint).0 as i64;
    let (order, after) = if q.latest_first {
        ("DESC", q.after.map_or(i64::MAX, |a| a.0 as i64))
    } else {
        ("ASC", q.after.map_or(-1, |a| a.0 as i64))
    };
    let compare = if q.latest_first { "<" } else { ">" };
    let sql = format!(
        "SELECT t.position, t.lead, t.at, t.role, t.actor_key, t.action, t.refused, n.name
         FROM {p}touches t LEFT JOIN {p}names n ON n.id = t.actor_key
         WHERE {column} = ?1 AND t.position <= ?2 AND t.position {compare} ?3
           AND (?4 IS NULL OR t.at <= ?4) AND (?5 IS NULL OR t.at >= ?5)
           AND (?6 IS NULL OR t.at < ?6)
         ORDER BY t.position {order} LIMIT ?7"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            value,
            upto,
            after,
            q.upto.moment.map(moment),
            q.from.map(moment),
            q.to.map(moment),
            i64::try_from(q.limit).unwrap_or(i64::MAX).saturating_add(1),
        ],
        |r| {
            let bad = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
            };
            let lead: [u8; 16] = r.get(1)?;
            let role: Option<String> = r.get(3)?;
            let key: String = r.get(4)?;
            let name: Option<String> = r.get(7)?;
            let actor = match (key.strip_prefix("system:"), role) {
                (Some(name), None) => Actor::system(name),
                (_, Some(role)) => Actor::staff(
                    key.parse().map_err(|e| bad(4, Box::new(e)))?,
                    role.parse().map_err(|e: String| bad(3, e.into()))?,
                ),
                (None, None) => return Err(bad(3, "a member of staff without a role".into())),
            };
            Ok(Touch {
                position: Position(r.get::<_, i64>(0)? as u64),
                lead_id: LeadId(uuid::Uuid::from_bytes(lead)),
                at: DateTime::from_timestamp_nanos(r.get(2)?),
                actor,
                actor_name: name.unwrap_or(key),
                action: r.get(5)?,
                refused: r.get(6)?,
            })
        },
    )?;
    let mut out: Vec<Touch> = rows.collect::<rusqlite::Result<_>>()?;
    let next = if out.len() > q.limit {
        out.truncate(q.limit);
        out.last().map(|t| t.position)
    } else {
        None
    };
    Ok((out, next))
}
