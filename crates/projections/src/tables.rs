//! Table models: read models whose state is SQL tables and indexes in the checkpoint file, so
//! that memory does not grow with the log and readers query them in place.
//!
//! - A [`TableModel`] applies events to *pending changes* (rows it has touched since the last
//!   save), reading what it has not touched from the committed tables through a [`TableView`]. The
//!   runner writes the pending changes with the model's checkpoint in one transaction
//!   ([`crate::checkpoint::CheckpointStore::commit_with`]) after every page at the tail of the
//!   log, and every [`crate::RunnerOptions::table_batch`] events while catching up, so pending
//!   changes are bounded by that many events and the tables always reflect exactly the checkpoint saved
//!   beside them.
//! - Each state (live, or a rebuild beside it) has its own *generation* of tables, named
//!   `rm_<name>_g<generation>_<table>` ([`crate::checkpoint::table_prefix`]); the checkpoint
//!   store's `table_sets` says which generation each slot uses. A rebuild switches in by changing
//!   the rows of the slots in one transaction, which also drops the old generation's tables.
//! - Readers open their own read-only connections ([`TableReaders`]); in WAL mode they neither wait
//!   for the runner nor for each other. A reader looks up the live generation and its checkpoint
//!   ([`live_tables`]) and queries the tables in the same read transaction, so it sees one
//!   committed state and knows the position it reflects.

use crate::checkpoint::{CheckpointStore, table_prefix};
use crate::projection::Projection;
use funnel_domain::Event;
use funnel_types::{Envelope, Position};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A read model kept as SQL tables. The value of the type is the pending changes.
pub trait TableModel: Default + std::fmt::Debug + Send + Sync + 'static {
    /// Stable name, used on the command line, in the checkpoint store and in table names.
    const NAME: &'static str;
    /// Bumped whenever `apply` or the tables change meaning; a new version is rebuilt from
    /// position zero into a new generation of tables beside the served one.
    const VERSION: u32;
    /// The SQL that creates the tables and indexes, every name starting with `prefix`.
    fn schema(prefix: &str) -> String;
    /// Applies one event to the pending changes, reading what they do not hold from `view`. An
    /// `Err` parks the event with the reason; the pending changes must then be unchanged.
    fn apply(&mut self, view: &TableView<'_>, event: &Envelope<Event>) -> Result<(), String>;
    /// Writes the pending changes into the tables under `prefix` (inside the runner's transaction).
    fn write(&self, tx: &Connection, prefix: &str) -> rusqlite::Result<()>;
    /// Forgets the pending changes once written.
    fn clear(&mut self);
}

/// What a [`TableModel`] reads while applying: the committed tables of its own generation.
#[derive(Debug)]
pub struct TableView<'a> {
    conn: Option<&'a Connection>,
    prefix: &'a str,
}

impl<'a> TableView<'a> {
    /// A connection to the committed tables; `None` while the state has never been written (its
    /// tables are empty, and do not exist yet).
    pub fn conn(&self) -> Option<&'a Connection> {
        self.conn
    }

    /// The prefix of the tables' names.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }
}

/// What the checkpoint row of a table model holds: its table generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TableState {
    generation: u64,
}

/// Wraps a [`TableModel`] as a [`Projection`].
#[derive(Debug, Default)]
pub struct Tabled<M> {
    pending: M,
    generation: Option<u64>,
    /// The tables exist (the state was written at least once).
    materialized: bool,
    reader: Option<Mutex<Connection>>,
}

impl<M: TableModel> Tabled<M> {
    fn prefix(&self) -> String {
        table_prefix(M::NAME, self.generation.unwrap_or(0))
    }
}

impl<M: TableModel> Projection for Tabled<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn version(&self) -> u32 {
        M::VERSION
    }

    fn apply(&mut self, event: &Envelope<Event>) -> Result<(), String> {
        let prefix = self.prefix();
        let guard = match (&self.reader, self.materialized) {
            (Some(r), true) => Some(r.lock().unwrap_or_else(|e| e.into_inner())),
            (None, true) => return Err("the table model is not attached to its tables".into()),
            (_, false) => None,
        };
        let view = TableView {
            conn: guard.as_deref(),
            prefix: &prefix,
        };
        self.pending.apply(&view, event)
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        let generation = self
            .generation
            .ok_or("the table model has no table generation")?;
        rmp_serde::to_vec(&TableState { generation }).map_err(|e| e.to_string())
    }

    fn restore(&self, snapshot: &[u8]) -> Result<Box<dyn Projection>, String> {
        let state: TableState = rmp_serde::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(Box::new(Tabled::<M> {
            pending: M::default(),
            generation: Some(state.generation),
            materialized: true,
            reader: None,
        }))
    }

    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Tabled::<M>::default())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn attach(&mut self, checkpoints: &CheckpointStore) -> Result<(), String> {
        if self.generation.is_none() {
            self.generation = Some(
                checkpoints
                    .next_generation(M::NAME)
                    .map_err(|e| e.to_string())?,
            );
        }
        if self.reader.is_none() {
            let conn = open_reader(checkpoints.path()).map_err(|e| e.to_string())?;
            self.reader = Some(Mutex::new(conn));
        }
        Ok(())
    }

    fn tables(&self) -> Option<u64> {
        self.generation
    }

    fn write_tables(&self, tx: &Connection) -> rusqlite::Result<()> {
        let prefix = self.prefix();
        if !self.materialized {
            tx.execute_batch(&M::schema(&prefix))?;
        }
        self.pending.write(tx, &prefix)
    }

    fn tables_written(&mut self) {
        self.materialized = true;
        self.pending.clear();
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Plans that do not depend on the values bound: otherwise SQLite prepares a kept statement
    // again whenever a value is bound to its `LIMIT ?` (most of a lead's audit went there).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

/// The served state of a table model as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveTables {
    /// The prefix of the live generation's tables.
    pub prefix: String,
    /// The position the tables reflect.
    pub checkpoint: Position,
    /// The `VERSION` the tables were built with.
    pub version: u32,
}

/// The live tables of the table model `name`, read inside the caller's read transaction (so that
/// the queries that follow in it see exactly the state at `checkpoint`). `None` before the model
/// was first saved.
pub fn live_tables(conn: &Connection, name: &str) -> rusqlite::Result<Option<LiveTables>> {
    conn.prepare_cached(
        "SELECT p.version, p.checkpoint, t.generation FROM projections p
         JOIN table_sets t ON t.name = p.name AND t.slot = p.slot
         WHERE p.name = ?1 AND p.slot = 'live'",
    )?
    .query_row(params![name], |r| {
        Ok(LiveTables {
            version: r.get(0)?,
            checkpoint: Position(r.get::<_, i64>(1)? as u64),
            prefix: table_prefix(name, r.get::<_, i64>(2)? as u64),
        })
    })
    .optional()
}

/// Read-only connections to a checkpoint file, kept for reuse. Each read runs in its own read
/// transaction on its own connection: readers do not take the runner's lock and do not wait for
/// one another.
#[derive(Debug)]
pub struct TableReaders {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl TableReaders {
    /// Readers of the checkpoint file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// How many connections are kept for reuse: a caller that runs no more reads than this at
    /// once never opens a connection after the first ones (opening one reads the schema again).
    pub const KEPT: usize = 8;

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one read transaction (a consistent view of every table and checkpoint).
    /// Blocking: call it off the async threads.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let out = {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.finish()?;
            out
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < Self::KEPT {
            idle.push(conn);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// A kept statement of a reader runs as prepared whatever is bound to it: SQLite would
    /// otherwise prepare it again whenever a value is bound to its `LIMIT ?`.
    #[test]
    fn a_reader_runs_its_kept_statements_without_preparing_them_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.db");
        let w = Connection::open(&path).unwrap();
        w.execute_batch(
            "CREATE TABLE t (x INTEGER PRIMARY KEY, lead BLOB);
             CREATE INDEX t_lead ON t (lead);
             INSERT INTO t (lead) VALUES (x'01'), (x'01'), (x'02');",
        )
        .unwrap();
        let readers = TableReaders::new(&path);
        let sql = "SELECT x FROM t WHERE lead = ?1 AND x > ?2 ORDER BY x LIMIT ?3";
        let reprepared = readers
            .read(|c| {
                for (lead, after, limit) in [([1u8], -1i64, 2i64), ([2], 0, 5), ([1], 1, 1)] {
                    let mut s = c.prepare_cached(sql)?;
                    let n =
                        s.query_map(params![&lead[..], after, limit], |r| r.get::<_, i64>(0))?;
                    assert!(n.count() >= 1);
                }
                Ok(c.prepare_cached(sql)?
                    .get_status(StatementStatus::RePrepare))
            })
            .unwrap();
        assert_eq!(reprepared, 0);
    }
}
