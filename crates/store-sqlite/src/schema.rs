//! The on-disk format: the tables, the connection settings, and the schema version check that keeps
//! an older Funnel from writing to a file a newer one created.

use crate::{SqliteOptions, sql_error};
use funnel_store::StoreError;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// The schema version this build writes and understands. 2: the hash chain (`chain`, and
/// `meta.chain_from`), which an older build would not extend; opening a version-1 file upgrades it.
pub const SCHEMA_VERSION: i64 = 2;

/// The tables (`snapshots` came later; it is created on open when missing, and older builds leave
/// it alone, so it needs no new schema version). Times are nanoseconds since the Unix epoch (UTC); ids are 16-byte UUID blobs; the actor
/// is JSON text; payloads are the writer's bytes.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at    INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    office         BLOB,
    command_id     BLOB    NOT NULL,
    correlation_id BLOB    NOT NULL,
    causation_id   BLOB    NOT NULL,
    payload        BLOB    NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS streams (
    stream  TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    command_id     BLOB PRIMARY KEY,
    stream         TEXT    NOT NULL,
    first_version  INTEGER NOT NULL,
    last_version   INTEGER NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chain (
    last_position  INTEGER PRIMARY KEY,
    first_position INTEGER NOT NULL,
    hash           BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream  TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data    BLOB    NOT NULL
) WITHOUT ROWID;
";

/// Opens one connection with Funnel's settings (WAL, the chosen `synchronous`, a busy timeout).
pub fn connect(
    path: &Path,
    options: &SqliteOptions,
    memory: bool,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    if !memory {
        // The log is readable by its owner only (SQLite gives its -wal and -shm the same mode).
        funnel_store::files::prepare_private_file(path).map_err(|e| StoreError::Backend {
            backend: "sqlite",
            message: format!(
                "cannot create {} readable by its owner only: {e}",
                path.display()
            ),
        })?;
    }
    let conn = if memory {
        Connection::open_in_memory()
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(|e| open_error(path, e))?;
    conn.busy_timeout(options.busy_timeout())
        .map_err(sql_error)?;
    if !memory {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                backend: "sqlite",
                message: format!(
                    "{}: could not switch to WAL journal mode (got `{mode}`)",
                    path.display()
                ),
            });
        }
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(32);
    // Plans that do not depend on the values bound: otherwise SQLite prepares a kept statement
    // again whenever a value is bound to its `LIMIT ?` (every read of a stream).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(sql_error)?;
    Ok(conn)
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        backend: "sqlite",
        message: format!("cannot open {}: {e}", path.display()),
    }
}

/// Creates the tables on a new file, or checks that an existing file's schema is one this build
/// understands. Runs in one write transaction so that two processes opening a new file agree.
pub fn prepare(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| open_error(path, e))?;
    let result = check_and_create(conn, path);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(sql_error);
    result.and(ended)
}

fn check_and_create(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let table_exists = |name: &str| -> Result<bool, StoreError> {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
        .map_err(sql_error)
    };
    if table_exists("meta")? {
        let found: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Backend {
                    backend: "sqlite",
                    message: format!(
                        "{} has store schema version {v}, written by a newer Funnel; this build understands \
                         schema version {SCHEMA_VERSION} or older. Upgrade Funnel to open it.",
                        path.display()
                    ),
                });
            }
            Some(_) => {}
            None => {
                return Err(StoreError::Backend {
                    backend: "sqlite",
                    message: format!(
                        "{} has a `meta` table without a schema version: not a Funnel store",
                        path.display()
                    ),
                });
            }
        }
    } else if table_exists("events")? {
        return Err(StoreError::Backend {
            backend: "sqlite",
            message: format!(
                "{} has an `events` table but no `meta` table: not a Funnel store",
                path.display()
            ),
        });
    }
    let chained = table_exists("chain")?;
    conn.execute_batch(SCHEMA).map_err(sql_error)?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [SCHEMA_VERSION],
    )
    .map_err(sql_error)?;
    if !chained {
        // The chain starts after the events already there (none on a new file).
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value)
             SELECT 'chain_from', coalesce(max(position), 0) + 1 FROM events",
            [],
        )
        .map_err(sql_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept statement runs as prepared whatever is bound to it (see [`connect`]).
    #[test]
    fn a_connection_runs_its_kept_statements_without_preparing_them_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("log.db"), &SqliteOptions::default(), false).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (stream TEXT, version INTEGER, PRIMARY KEY (stream, version));
             INSERT INTO t VALUES ('a', 1), ('a', 2), ('b', 1);",
        )
        .unwrap();
        let sql =
            "SELECT version FROM t WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3";
        for (stream, from, limit) in [("a", 1i64, 10i64), ("b", 1, 1), ("a", 2, 3)] {
            let mut s = conn.prepare_cached(sql).unwrap();
            let rows = s
                .query_map(rusqlite::params![stream, from, limit], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap();
            assert!(rows.count() >= 1);
        }
        let s = conn.prepare_cached(sql).unwrap();
        assert_eq!(s.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
