//! The subject keys of the embedded store: one SQLite file apart from the log
//! (`<store>.keys` by default), a row per subject with its key wrapped by the master key (bound to
//! the subject's id, so a wrapped key cannot be given to someone else), and when it was erased.
//! Erasing deletes the wrapped key and keeps the row, so that an erasure is remembered.

use crate::aead;
use crate::fields::{KeyState, Keys};
use crate::store::{KeyStore, privacy_error};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use funnel_store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The subject keys, wrapped by a master key.
pub struct SubjectKeys {
    conn: Connection,
    master: [u8; 32],
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKeys(…)")
    }
}

/// A key store that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("the subject key store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the subject key store: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the key of {subject} does not open with this master key (another master key, or the file was edited)\n\
         错误：{subject} 的密钥无法用此主密钥解开（主密钥不同，或文件被修改）"
    )]
    WrongMaster { subject: String },
}

fn wrap_aad(subject: &str) -> Vec<u8> {
    let mut a = b"funnel-subject-key-v1\0".to_vec();
    a.extend_from_slice(subject.as_bytes());
    a
}

/// `key` wrapped by `master`, bound to `subject` (what a key store keeps).
pub fn wrap_key(master: &[u8; 32], subject: &str, key: &[u8; 32]) -> Vec<u8> {
    aead::seal(master, &wrap_aad(subject), key)
}

/// The key `wrapped` holds, if it opens with `master` for `subject`.
pub fn unwrap_key(master: &[u8; 32], subject: &str, wrapped: &[u8]) -> Option<[u8; 32]> {
    aead::open(master, &wrap_aad(subject), wrapped)
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
}

impl SubjectKeys {
    /// Opens (or makes, readable by its owner only) the key file at `path`.
    pub fn open(path: &Path, master: [u8; 32]) -> Result<SubjectKeys, KeysError> {
        funnel_store::files::prepare_private_file(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS subject_keys (
                 subject TEXT PRIMARY KEY,
                 wrapped BLOB,
                 created_at TEXT NOT NULL,
                 erased_at TEXT
             );",
        )?;
        Ok(SubjectKeys { conn, master })
    }

    /// Whether the key file at `path` exists and has ever held a key (a log with sealed fields,
    /// or one whose people were erased). Opens it read-only; a missing file holds none.
    pub fn ever_held_keys(path: &Path) -> Result<bool, KeysError> {
        if !path.exists() {
            return Ok(false);
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'subject_keys'",
            [],
            |r| r.get(0),
        )?;
        if tables == 0 {
            return Ok(false);
        }
        Ok(conn
            .query_row("SELECT 1 FROM subject_keys LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Destroys the subject's key: every field sealed with it reads as erased from now on.
    /// Returns whether there was a key to destroy.
    pub fn erase(&mut self, subject: &str, at: DateTime<Utc>) -> Result<bool, KeysError> {
        Ok(!self.erase_all(&[subject.to_string()], at)?.is_empty())
    }

    /// When the subject's key was erased, if it was (and none was made since).
    pub fn erased_at(&self, subject: &str) -> Result<Option<DateTime<Utc>>, KeysError> {
        let at: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT erased_at FROM subject_keys WHERE subject = ?1 AND wrapped IS NULL",
                [subject],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at
            .flatten()
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Changes when another connection (another process) changed the file since the last call.
    fn data_version(&self) -> Result<i64, KeysError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Destroys the keys of `subjects` in one transaction; returns those that had one.
    pub fn erase_all(
        &mut self,
        subjects: &[String],
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, KeysError> {
        let tx = self.conn.transaction()?;
        let mut erased = Vec::new();
        for s in subjects {
            let n = tx.execute(
                "UPDATE subject_keys SET wrapped = NULL, erased_at = ?2 WHERE subject = ?1 AND wrapped IS NOT NULL",
                params![s, at.to_rfc3339()],
            )?;
            if n > 0 {
                erased.push(s.clone());
            }
        }
        tx.commit()?;
        // The destroyed keys' bytes were zeroed in their pages (secure_delete); moving those
        // pages into the file and emptying the write-ahead log leaves no copy of them behind.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(erased)
    }

    fn wrapped(&self, subject: &str) -> Result<Option<Vec<u8>>, KeysError> {
        Ok(self
            .conn
            .query_row(
                "SELECT wrapped FROM subject_keys WHERE subject = ?1",
                [subject],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?
            .flatten())
    }

    fn unwrap_key(&self, subject: &str, wrapped: &[u8]) -> Result<[u8; 32], KeysError> {
        unwrap_key(&self.master, subject, wrapped).ok_or_else(|| KeysError::WrongMaster {
            subject: subject.to_string(),
        })
    }
}

impl Keys for SubjectKeys {
    type Error = KeysError;

    fn key_for_sealing(&mut self, subject: &str) -> Result<[u8; 32], KeysError> {
        if let Some(w) = self.wrapped(subject)? {
            return self.unwrap_key(subject, &w);
        }
        let key: [u8; 32] = rand::random();
        let wrapped = wrap_key(&self.master, subject, &key);
        // Another process may have made one meanwhile: the first one stays.
        self.conn.execute(
            "INSERT INTO subject_keys (subject, wrapped, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (subject) DO UPDATE SET wrapped = excluded.wrapped,
                 created_at = excluded.created_at, erased_at = NULL
             WHERE subject_keys.wrapped IS NULL",
            params![subject, wrapped, Utc::now().to_rfc3339()],
        )?;
        match self.wrapped(subject)? {
            Some(w) => self.unwrap_key(subject, &w),
            None => Err(KeysError::Sql(rusqlite::Error::QueryReturnedNoRows)),
        }
    }

    fn key_for_opening(&mut self, subject: &str) -> Result<KeyState, KeysError> {
        match self.wrapped(subject)? {
            Some(w) => self.unwrap_key(subject, &w).map(KeyState::Key),
            None => Ok(KeyState::Gone),
        }
    }
}

/// [`SubjectKeys`] as a [`KeyStore`]: calls run off the async threads, and keys are cached in
/// memory until another process changes the file (SQLite's `data_version`).
#[derive(Clone, Debug)]
pub struct SqliteKeyStore {
    inner: Arc<Mutex<Cached>>,
}

#[derive(Debug)]
struct Cached {
    keys: SubjectKeys,
    cache: HashMap<String, KeyState>,
    version: i64,
}

impl Cached {
    /// Forgets what may be stale: everything, when another process wrote to the file.
    fn refresh(&mut self) -> Result<(), KeysError> {
        let v = self.keys.data_version()?;
        if v != self.version {
            self.cache.clear();
            self.version = v;
        }
        Ok(())
    }
}

fn to_store(e: KeysError) -> StoreError {
    privacy_error(e.to_string())
}

impl SqliteKeyStore {
    /// Opens (or makes) the key file at `path`, keys wrapped by `master`.
    pub fn open(path: &Path, master: [u8; 32]) -> Result<SqliteKeyStore, KeysError> {
        let keys = SubjectKeys::open(path, master)?;
        let version = keys.data_version()?;
        Ok(SqliteKeyStore {
            inner: Arc::new(Mutex::new(Cached {
                keys,
                cache: HashMap::new(),
                version,
            })),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cached) -> Result<T, KeysError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            c.refresh()?;
            f(&mut c)
        })
        .await
        .map_err(|e| privacy_error(e.to_string()))?
        .map_err(to_store)
    }
}

#[async_trait]
impl KeyStore for SqliteKeyStore {
    async fn for_sealing(
        &self,
        subjects: Vec<String>,
    ) -> Result<HashMap<String, [u8; 32]>, StoreError> {
        self.with(move |c| {
            let mut out = HashMap::new();
            for s in subjects {
                let key = match c.cache.get(&s) {
                    Some(KeyState::Key(k)) => *k,
                    _ => {
                        let k = c.keys.key_for_sealing(&s)?;
                        c.cache.insert(s.clone(), KeyState::Key(k));
                        k
                    }
                };
                out.insert(s, key);
            }
            Ok(out)
        })
        .await
    }

    async fn for_opening(
        &self,
        subjects: Vec<String>,
    ) -> Result<HashMap<String, KeyState>, StoreError> {
        self.with(move |c| {
            let mut out = HashMap::new();
            for s in subjects {
                let state = match c.cache.get(&s) {
                    Some(k) => *k,
                    None => {
                        let k = c.keys.key_for_opening(&s)?;
                        c.cache.insert(s.clone(), k);
                        k
                    }
                };
                out.insert(s, state);
            }
            Ok(out)
        })
        .await
    }

    async fn erase(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.with(move |c| {
            let erased = c.keys.erase_all(&subjects, at)?;
            for s in &subjects {
                c.cache.insert(s.clone(), KeyState::Gone);
            }
            Ok(erased)
        })
        .await
    }

    async fn erased_at(&self, subject: String) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(move |c| c.keys.erased_at(&subject)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{open_payload, seal_payload};
    use funnel_domain::privacy::ERASED;
    use serde_json::json;

    #[test]
    fn an_erased_key_erases_the_fields_and_the_file_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("funnel.db.keys");
        let master: [u8; 32] = rand::random();
        let mut keys = SubjectKeys::open(&path, master).unwrap();
        let mut p = json!({ "lead_id": "L1", "key_person_id": "K1", "name": "王总",
            "title": "总经理", "role": "decision_maker", "phone": "13912345678",
            "personal_notes": "喜欢高尔夫" });
        seal_payload("lead.key_person_recorded", "E1", &mut p, &mut keys).unwrap();
        let stored = p.clone();
        // Another handle on the file (another process) opens it.
        let mut other = SubjectKeys::open(&path, master).unwrap();
        let mut read = stored.clone();
        open_payload("lead.key_person_recorded", "E1", &mut read, &mut other).unwrap();
        assert_eq!(read["phone"], "13912345678");
        // Another master key opens nothing, and says so.
        let mut wrong = SubjectKeys::open(&path, rand::random()).unwrap();
        let mut read = stored.clone();
        let e = open_payload("lead.key_person_recorded", "E1", &mut read, &mut wrong).unwrap_err();
        assert!(e.to_string().contains("主密钥"), "{e}");

        assert!(SubjectKeys::ever_held_keys(&path).unwrap());
        let empty = dir.path().join("empty.keys");
        drop(SubjectKeys::open(&empty, master).unwrap());
        assert!(!SubjectKeys::ever_held_keys(&empty).unwrap());
        assert!(!SubjectKeys::ever_held_keys(&dir.path().join("none.keys")).unwrap());
        let now = Utc::now();
        assert!(keys.erase("key_person:K1", now).unwrap());
        assert!(!keys.erase("key_person:K1", now).unwrap(), "once");
        assert!(keys.erased_at("key_person:K1").unwrap().is_some());
        let mut read = stored.clone();
        let o = open_payload("lead.key_person_recorded", "E1", &mut read, &mut other).unwrap();
        assert_eq!(o.erased.len(), 4);
        assert_eq!(read["name"], ERASED);
        assert_eq!(read["role"], "decision_maker");
        drop((keys, other, wrong));
        // Nothing of the person is in the key file, its log or the sealed payload.
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            for secret in ["13912345678", "王总", "高尔夫"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret}"
                );
            }
        }
        assert!(!stored.to_string().contains("13912345678"));
    }
}
