//! The checkpoint store: one SQLite file that holds, per projection, the version its state was built
//! with, the position it has applied up to, its state as a snapshot, and the events it parked.
//!
//! Each projection has up to two slots: `live` (the state that serves reads) and `rebuild` (a fresh
//! state being built beside it after a version change or on request). Every change goes through
//! [`CheckpointStore::commit`], which writes a list of [`Write`]s in one transaction, so a snapshot and
//! its checkpoint (and the parked events up to it) are always saved together: after a crash the store
//! holds a state and exactly the position it reflects. The file runs in WAL mode with
//! `synchronous=NORMAL`: a transaction is atomic either way, and what a power loss may take back
//! is only the last commits, after which the runner applies those events again from the log (the
//! file is a cache of folds of the log; nothing outside it counts on its commits). A sync per
//! commit made a rebuild wait on the disk for every page.
//!
//! A table model ([`crate::TableModel`]) keeps its state in SQL tables of this same file, named
//! `rm_<name>_g<generation>_<table>`; `table_sets` says which generation each slot of it uses, and a
//! commit that clears a slot drops the tables no slot names any more, in the same transaction.
//!
//! Several processes may open one file (a server and a command run beside it, or two commands):
//! each keeps its own copy of the states and catches up on its own. A runner's commit expects each
//! slot it writes to hold what that runner last saw there ([`Write::Expect`]); when another
//! process has moved the slot on since, the whole commit is refused ([`Committed::Superseded`])
//! and the runner loads the newer states instead of writing over them. Without that, two runners
//! applying the same events on top of one table generation would write the same rows twice.

use crate::Parked;
use funnel_types::Position;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the checkpoint store failed.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint store {path}: {source}")]
pub struct CheckpointError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

/// Which state of a projection a row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The state that serves reads.
    Live,
    /// A fresh state being rebuilt from position zero beside the live one.
    Rebuild,
}

impl Slot {
    fn as_str(self) -> &'static str {
        match self {
            Slot::Live => "live",
            Slot::Rebuild => "rebuild",
        }
    }
}

/// One saved state of one projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub slot: Slot,
    /// The `ReadModel::VERSION` the state was built with.
    pub version: u32,
    /// The last position the state reflects.
    pub checkpoint: Position,
    /// The model as JSON.
    pub state: Vec<u8>,
    /// For a rebuild: the head seen when it started; it replaces the live state once it reaches it.
    pub target: Option<Position>,
    /// For a table model ([`crate::TableModel`]): the generation of the SQL tables that hold its
    /// state (recorded in `table_sets`; tables no slot names are dropped in the same transaction).
    pub tables: Option<u64>,
}

impl Row {
    /// What the row says about the state it holds, for a later [`Write::Expect`].
    pub fn saved(&self) -> Saved {
        Saved {
            version: self.version,
            checkpoint: self.checkpoint,
            tables: self.tables,
        }
    }
}

/// What a slot's saved row holds, as far as one writer knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    pub version: u32,
    pub checkpoint: Position,
    pub tables: Option<u64>,
}

/// Whether a [`CheckpointStore::commit`] wrote its changes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Committed {
    /// Every change is durable.
    Done,
    /// Nothing was written: the slot `slot` of `name` no longer holds what a [`Write::Expect`]
    /// said (another process saved it since).
    Superseded { name: String, slot: Slot },
}

/// One change, applied with the others of the same [`CheckpointStore::commit`] in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Refuses the whole commit unless the slot holds `saved` (`None`: no row) at this point of
    /// the transaction.
    Expect {
        name: String,
        slot: Slot,
        saved: Option<Saved>,
    },
    /// Stores the row (replacing the slot's row) and adds `parked` to the slot's parked events.
    Put { row: Row, parked: Vec<Parked> },
    /// Removes the slot's row and its parked events.
    Clear { name: String, slot: Slot },
    /// Saves spans of the time index ([`crate::history`]), replacing one saved by its start.
    Spans(Vec<crate::history::Span>),
    /// Saves a history snapshot.
    History(crate::history::HistoryRow),
    /// Removes the history snapshots of `name` written by any version but `keep`.
    ForgetHistory { name: String, keep: u32 },
}

/// The SQLite checkpoint file.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    // The mutex only makes the store `Sync`; one runner uses it (other processes open their own).
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    slot TEXT NOT NULL,
    version INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL,
    state BLOB NOT NULL,
    target INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS projections_slot ON projections (name, slot);
CREATE TABLE IF NOT EXISTS table_sets (
    name TEXT NOT NULL,
    slot TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (name, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS table_generations (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parked (
    name TEXT NOT NULL,
    slot TEXT NOT NULL,
    position INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (name, slot, position)
) WITHOUT ROWID;
";

impl CheckpointStore {
    /// Opens (creating when missing) the checkpoint file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref().to_path_buf();
        let err = |source| CheckpointError {
            path: path.clone(),
            source,
        };
        // Readable by its owner only (SQLite gives the -wal and -shm the same mode). If this
        // fails, opening fails below with SQLite's own message.
        if let Err(e) = funnel_store::files::prepare_private_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the checkpoint file private");
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // Freed space is zeroed, so that a row rewritten after an erasure leaves no old bytes.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(err)?;
        // 64 MiB of page cache (SQLite's default is 2 MiB): the table models' indexes take rows
        // in key order, not log order (the touch index by lead), and with a small cache every
        // insert rereads the pages it needs.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(err)?;
        migrate_without_rowid(&conn).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(crate::history::SCHEMA).map_err(err)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Leaves no old copy of rows just rewritten (a person's erased fields) on disk: full-text
    /// indexes are merged into one segment (which drops the deleted entries their older
    /// segments still hold), then the write-ahead log is copied into the file and truncated;
    /// freed space is zeroed as it is freed (`secure_delete`). A reader holding an old snapshot
    /// keeps the truncation from completing: that is logged, and the next erasure or SQLite's
    /// own checkpoints finish it.
    pub(crate) fn scrub(&self) {
        let done = self.with_conn(|c| {
            let fts: Vec<String> = c
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%'",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for name in fts {
                let quoted = name.replace('"', "\"\"");
                c.execute(
                    &format!("INSERT INTO \"{quoted}\"(\"{quoted}\") VALUES ('optimize')"),
                    [],
                )?;
            }
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        match done {
            Ok(0) => {
                tracing::info!("the read models' write-ahead log was truncated after an erasure")
            }
            Ok(_) => tracing::warn!(
                "the read models' write-ahead log could not be truncated after an erasure (a reader was busy); it will be at the next checkpoint"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "scrubbing the read models after an erasure failed")
            }
        }
    }

    /// Runs `f` on the connection (for the runner's reads of its own tables).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CheckpointError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| self.err(e))
    }

    /// The file the checkpoints live in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> CheckpointError {
        CheckpointError {
            path: self.path.clone(),
            source,
        }
    }

    /// The saved row of one slot and its parked events, in position order.
    pub fn load(
        &self,
        name: &str,
        slot: Slot,
    ) -> Result<Option<(Row, Vec<Parked>)>, CheckpointError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let row = conn
            .query_row(
                "SELECT version, checkpoint, state, target FROM projections WHERE name = ?1 AND slot = ?2",
                params![name, slot.as_str()],
                |r| {
                    Ok(Row {
                        name: name.to_string(),
                        slot,
                        version: r.get::<_, u32>(0)?,
                        checkpoint: Position(r.get::<_, i64>(1)? as u64),
                        // Blob snapshots, or text ones written by older builds (which then fail to
                        // restore and are rebuilt).
                        state: match r.get_ref(2)? {
                            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
                            _ => Vec::new(),
                        },
                        target: r.get::<_, Option<i64>>(3)?.map(|t| Position(t as u64)),
                        tables: None,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        row.tables = conn
            .query_row(
                "SELECT generation FROM table_sets WHERE name = ?1 AND slot = ?2",
                params![name, slot.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .map(|g| g as u64);
        let mut stmt = conn
            .prepare(
                "SELECT position, event_type, reason FROM parked WHERE name = ?1 AND slot = ?2 ORDER BY position",
            )
            .map_err(|e| self.err(e))?;
        let parked = stmt
            .query_map(params![name, slot.as_str()], |r| {
                Ok(Parked {
                    position: Position(r.get::<_, i64>(0)? as u64),
                    event_type: r.get(1)?,
                    reason: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(Some((row, parked)))
    }

    /// Names of every projection with a saved state (also ones no longer registered).
    pub fn names(&self) -> Result<Vec<String>, CheckpointError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare("SELECT DISTINCT name FROM projections ORDER BY name")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))
    }

    /// A new table generation for the table model `name`: never handed out before in this file.
    pub fn next_generation(&self, name: &str) -> Result<u64, CheckpointError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row(
            "INSERT INTO table_generations (name, last) VALUES (?1, 1)
             ON CONFLICT (name) DO UPDATE SET last = last + 1 RETURNING last",
            params![name],
            |r| r.get::<_, i64>(0),
        )
        .map(|g| g as u64)
        .map_err(|e| self.err(e))
    }

    /// Applies all `writes` in one transaction: either every one is durable or none is.
    pub fn commit(&self, writes: &[Write]) -> Result<Committed, CheckpointError> {
        self.commit_with(writes, |_| Ok(()))
    }

    /// What the slot's row holds now (inside a transaction).
    fn saved_in(tx: &Connection, name: &str, slot: Slot) -> rusqlite::Result<Option<Saved>> {
        tx.query_row(
            "SELECT p.version, p.checkpoint, t.generation FROM projections p
             LEFT JOIN table_sets t ON t.name = p.name AND t.slot = p.slot
             WHERE p.name = ?1 AND p.slot = ?2",
            params![name, slot.as_str()],
            |r| {
                Ok(Saved {
                    version: r.get(0)?,
                    checkpoint: Position(r.get::<_, i64>(1)? as u64),
                    tables: r.get::<_, Option<i64>>(2)?.map(|g| g as u64),
                })
            },
        )
        .optional()
    }

    /// [`CheckpointStore::commit`], with `tables` writing the table models' rows in the same
    /// transaction (after the checkpoint rows). Tables of a generation that no slot names any more
    /// (a cleared slot) are dropped in that transaction too.
    pub fn commit_with(
        &self,
        writes: &[Write],
        tables: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Committed, CheckpointError> {
        if writes.is_empty() {
            return Ok(Committed::Done);
        }
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let mut cleared: Vec<&str> = Vec::new();
        for w in writes {
            match w {
                Write::Expect { name, slot, saved } => {
                    let now = Self::saved_in(&tx, name, *slot).map_err(|e| self.err(e))?;
                    if now != *saved {
                        // Dropping the transaction rolls back what it wrote so far.
                        return Ok(Committed::Superseded {
                            name: name.clone(),
                            slot: *slot,
                        });
                    }
                }
                Write::Put { row, parked } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO projections (name, slot, version, checkpoint, state, target)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            row.name,
                            row.slot.as_str(),
                            row.version,
                            to_sql(row.checkpoint),
                            row.state,
                            row.target.map(to_sql),
                        ],
                    )
                    .map_err(|e| self.err(e))?;
                    if let Some(generation) = row.tables {
                        tx.execute(
                            "INSERT OR REPLACE INTO table_sets (name, slot, generation) VALUES (?1, ?2, ?3)",
                            params![row.name, row.slot.as_str(), generation as i64],
                        )
                        .map_err(|e| self.err(e))?;
                    }
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO parked (name, slot, position, event_type, reason)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .map_err(|e| self.err(e))?;
                    for p in parked {
                        stmt.execute(params![
                            row.name,
                            row.slot.as_str(),
                            to_sql(p.position),
                            p.event_type,
                            p.reason,
                        ])
                        .map_err(|e| self.err(e))?;
                    }
                }
                Write::Clear { name, slot } => {
                    for sql in [
                        "DELETE FROM projections WHERE name = ?1 AND slot = ?2",
                        "DELETE FROM parked WHERE name = ?1 AND slot = ?2",
                        "DELETE FROM table_sets WHERE name = ?1 AND slot = ?2",
                    ] {
                        tx.execute(sql, params![name, slot.as_str()])
                            .map_err(|e| self.err(e))?;
                    }
                    if !cleared.contains(&name.as_str()) {
                        cleared.push(name.as_str());
                    }
                }
                Write::Spans(spans) => {
                    crate::history::write_spans(&tx, spans).map_err(|e| self.err(e))?
                }
                Write::History(row) => {
                    crate::history::write_history(&tx, row).map_err(|e| self.err(e))?
                }
                Write::ForgetHistory { name, keep } => {
                    crate::history::forget_other_versions(&tx, name, *keep)
                        .map_err(|e| self.err(e))?
                }
            }
        }
        tables(&tx).map_err(|e| self.err(e))?;
        for name in cleared {
            drop_unnamed_tables(&tx, name).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Committed::Done)
    }
}

/// Moves a `projections` table of the first layout (`WITHOUT ROWID`, keyed by name and slot) to
/// the present one (row ids, and a unique index on name and slot), in one transaction.
///
/// In a `WITHOUT ROWID` table the rows are the key's b-tree, and SQLite compares a sought key with
/// a row whose payload spills onto overflow pages by reading the whole row: every lookup of one
/// projection's checkpoint read the snapshots of the rows it passed, some a hundred megabytes,
/// so a reader's cost grew with the log. With row ids the key lives in a small index.
fn migrate_without_rowid(conn: &Connection) -> rusqlite::Result<()> {
    let old: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'projections'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if !old.is_some_and(|sql| sql.to_ascii_uppercase().contains("WITHOUT ROWID")) {
        return Ok(());
    }
    tracing::info!("moving the checkpoint rows to the row-id layout");
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         ALTER TABLE projections RENAME TO projections_without_rowid;",
    )?;
    let moved = conn.execute_batch(SCHEMA).and_then(|()| {
        conn.execute_batch(
            "INSERT INTO projections (name, slot, version, checkpoint, state, target)
                 SELECT name, slot, version, checkpoint, state, target
                 FROM projections_without_rowid;
                 DROP TABLE projections_without_rowid;",
        )
    });
    match moved {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The prefix of every SQL object of generation `generation` of the table model `name`.
pub fn table_prefix(name: &str, generation: u64) -> String {
    format!("rm_{name}_g{generation}_")
}

/// Drops the tables of every generation of `name` that no slot names in `table_sets`.
fn drop_unnamed_tables(tx: &Connection, name: &str) -> rusqlite::Result<()> {
    let named: Vec<u64> = tx
        .prepare("SELECT generation FROM table_sets WHERE name = ?1")?
        .query_map(params![name], |r| r.get::<_, i64>(0))?
        .map(|g| g.map(|g| g as u64))
        .collect::<Result<_, _>>()?;
    let start = format!("rm_{name}_g");
    // Virtual tables first: dropping one drops its shadow tables.
    let objects: Vec<String> = tx
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             ORDER BY (sql LIKE 'CREATE VIRTUAL%') DESC, name",
        )?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    for object in objects {
        let Some(rest) = object.strip_prefix(&start) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(generation) = digits.parse::<u64>() else {
            continue;
        };
        if rest[digits.len()..].starts_with('_') && !named.contains(&generation) {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{object}\""))?;
        }
    }
    Ok(())
}

fn to_sql(p: Position) -> i64 {
    i64::try_from(p.0).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_checkpoint_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.db");
        drop(CheckpointStore::open(&path).unwrap());
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_os_string();
            p.push(suffix);
            let p = PathBuf::from(p);
            if p.exists() {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
            }
        }
    }

    #[test]
    fn a_file_of_the_first_layout_keeps_its_rows_in_the_row_id_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE projections (
                    name TEXT NOT NULL, slot TEXT NOT NULL, version INTEGER NOT NULL,
                    checkpoint INTEGER NOT NULL, state BLOB NOT NULL, target INTEGER,
                    PRIMARY KEY (name, slot)
                ) WITHOUT ROWID;",
            )
            .unwrap();
            let big = vec![7u8; 3 * 1024 * 1024];
            conn.execute(
                "INSERT INTO projections VALUES ('pipeline', 'live', 3, 41, ?1, NULL)",
                params![big],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO projections VALUES ('pipeline', 'rebuild', 4, 7, x'01', 99)",
                [],
            )
            .unwrap();
        }
        let store = CheckpointStore::open(&path).unwrap();
        let (live, _) = store.load("pipeline", Slot::Live).unwrap().unwrap();
        assert_eq!((live.version, live.checkpoint), (3, Position(41)));
        assert_eq!(live.state.len(), 3 * 1024 * 1024);
        let (rebuild, _) = store.load("pipeline", Slot::Rebuild).unwrap().unwrap();
        assert_eq!(
            (rebuild.checkpoint, rebuild.target),
            (Position(7), Some(Position(99)))
        );
        let sql: String = store
            .with_conn(|c| {
                c.query_row(
                    "SELECT sql FROM sqlite_master WHERE name = 'projections'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert!(!sql.to_ascii_uppercase().contains("WITHOUT ROWID"), "{sql}");
        // Opening again leaves it as it is.
        drop(store);
        let store = CheckpointStore::open(&path).unwrap();
        assert_eq!(store.names().unwrap(), ["pipeline"]);
    }

    fn row(slot: Slot, checkpoint: u64) -> Row {
        Row {
            name: "m".into(),
            slot,
            version: 3,
            checkpoint: Position(checkpoint),
            state: b"\x81\xa1n\x01".to_vec(),
            target: None,
            tables: None,
        }
    }

    #[test]
    fn writes_are_saved_together_and_cleared_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("cp.sqlite")).unwrap();
        let parked = Parked {
            position: Position(2),
            event_type: "x.y".into(),
            reason: "no".into(),
        };
        store
            .commit(&[Write::Put {
                row: row(Slot::Live, 5),
                parked: vec![parked.clone()],
            }])
            .unwrap()
            .done();
        let (r, p) = store.load("m", Slot::Live).unwrap().unwrap();
        assert_eq!(r, row(Slot::Live, 5));
        assert_eq!(p, vec![parked]);
        assert!(store.load("m", Slot::Rebuild).unwrap().is_none());
        store
            .commit(&[Write::Clear {
                name: "m".into(),
                slot: Slot::Live,
            }])
            .unwrap()
            .done();
        assert!(store.load("m", Slot::Live).unwrap().is_none());
        assert!(store.names().unwrap().is_empty());
    }

    impl Committed {
        fn done(self) {
            assert_eq!(self, Committed::Done);
        }
    }

    #[test]
    fn a_commit_expecting_what_another_writer_moved_on_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.sqlite");
        let ours = CheckpointStore::open(&path).unwrap();
        let theirs = CheckpointStore::open(&path).unwrap();
        let expect = |saved: Option<Saved>| Write::Expect {
            name: "m".into(),
            slot: Slot::Live,
            saved,
        };
        let put = |checkpoint| Write::Put {
            row: row(Slot::Live, checkpoint),
            parked: Vec::new(),
        };
        // Both saw an empty slot; the first to commit wins.
        theirs.commit(&[expect(None), put(7)]).unwrap().done();
        let history = crate::history::HistoryRow {
            name: "m".into(),
            version: 3,
            position: Position(5),
            event_id: "e".into(),
            state: vec![1],
        };
        let refused = ours
            .commit_with(&[Write::History(history), expect(None), put(5)], |tx| {
                tx.execute_batch("CREATE TABLE written_by_ours (x)")
            })
            .unwrap();
        assert_eq!(
            refused,
            Committed::Superseded {
                name: "m".into(),
                slot: Slot::Live
            }
        );
        // Nothing of the refused commit is there: not its row, its history or its tables.
        assert_eq!(
            ours.load("m", Slot::Live).unwrap().unwrap().0,
            row(Slot::Live, 7)
        );
        let count = |sql: &str| {
            ours.with_conn(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
                .unwrap()
        };
        assert_eq!(count("SELECT count(*) FROM history"), 0);
        assert_eq!(
            count("SELECT count(*) FROM sqlite_master WHERE name = 'written_by_ours'"),
            0
        );
        // Expecting what is there goes through; so does expecting a table generation.
        let seen = ours.load("m", Slot::Live).unwrap().unwrap().0.saved();
        ours.commit(&[expect(Some(seen)), put(9)]).unwrap().done();
        let mut with_tables = row(Slot::Live, 10);
        with_tables.tables = Some(4);
        ours.commit(&[
            expect(Some(row(Slot::Live, 9).saved())),
            Write::Put {
                row: with_tables.clone(),
                parked: Vec::new(),
            },
        ])
        .unwrap()
        .done();
        let stale_generation = Saved {
            tables: Some(3),
            ..with_tables.saved()
        };
        assert!(matches!(
            theirs
                .commit(&[expect(Some(stale_generation)), put(11)])
                .unwrap(),
            Committed::Superseded { .. }
        ));
        theirs
            .commit(&[expect(Some(with_tables.saved())), put(11)])
            .unwrap()
            .done();
    }
}
