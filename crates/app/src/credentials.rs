//! Passwords, kept apart from the log. The log is exported, replayed into webhooks and read through
//! `/events`; a password hash there would be offered to every one of those readers for offline
//! guessing, forever (the log is append-only). So the log records only the facts
//! (`staff.invitation_issued`, `staff.invitation_accepted`, `staff.sign_in_locked`, …) and the
//! hashes live in this credential store, with the recent failed attempts that the lock-out counts:
//! on the embedded store a SQLite file beside the read models, private to the installation; on
//! JetStream a key-value bucket beside the log (`FUNNEL_CREDENTIALS`), so that every process on the
//! cluster knows a password set through any of them and counts failures together.
//!
//! Hashes are Argon2id (RFC 9106) in PHC string form, with the parameters OWASP recommends for
//! Argon2id: 19 MiB of memory, 2 passes, 1 lane, a 16-byte random salt, a 32-byte output. The
//! parameters are inside each PHC string, so raising them later still verifies older hashes.
//! Hashing runs on the blocking pool, at most [`CONCURRENT_HASHES`] at once: a flood of sign-in
//! attempts waits (up to [`HASH_WAIT`]) instead of taking every core and all memory.

use crate::error::AppError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use funnel_types::StaffId;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many passwords are hashed or verified at once.
pub const CONCURRENT_HASHES: usize = 4;
/// How long a sign-in waits for a hashing slot before it is answered 503.
pub const HASH_WAIT: Duration = Duration::from_secs(5);
/// Passwords are at least this many characters …
pub const MIN_PASSWORD_CHARS: usize = 10;
/// … and at most this many (a bound on hashing work).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Why the credential store failed.
#[derive(Debug, thiserror::Error)]
#[error("credential store: {0}")]
pub struct CredentialError(String);

impl From<rusqlite::Error> for CredentialError {
    fn from(e: rusqlite::Error) -> Self {
        CredentialError(e.to_string())
    }
}

impl From<funnel_store::StoreError> for CredentialError {
    fn from(e: funnel_store::StoreError) -> Self {
        CredentialError(e.to_string())
    }
}

impl From<CredentialError> for AppError {
    fn from(e: CredentialError) -> Self {
        AppError::internal(e.to_string())
    }
}

/// The password hashes and recent failed sign-ins of an installation.
#[derive(Debug, Clone)]
pub struct Credentials {
    backend: Backend,
    hashing: Arc<tokio::sync::Semaphore>,
}

/// Where the hashes are kept: a private SQLite file beside the read models (the embedded store,
/// one process), or a JetStream bucket beside the log (every process on the cluster shares it).
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Nats(Arc<funnel_store_nats::NatsCredentials>),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2id parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Credentials {
    /// Opens (or creates) the credential store at `path`, readable by its owner only.
    pub fn open(path: &Path) -> Result<Self, CredentialError> {
        let conn = rusqlite::Connection::open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::with(conn)
    }

    /// A store that lives in memory (tests, a throwaway demo).
    pub fn in_memory() -> Result<Self, CredentialError> {
        Self::with(rusqlite::Connection::open_in_memory()?)
    }

    /// The credentials of the log `stream_name` on a JetStream cluster, in its bucket (created
    /// with `replicas`), shared by every process on the cluster.
    pub async fn on_nats(
        url: &str,
        stream_name: &str,
        replicas: usize,
        request_timeout: Duration,
    ) -> Result<Self, CredentialError> {
        let kv = funnel_store_nats::NatsCredentials::connect(
            url,
            stream_name,
            replicas,
            request_timeout,
        )
        .await?;
        Ok(Self {
            backend: Backend::Nats(Arc::new(kv)),
            hashing: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HASHES)),
        })
    }

    fn with(conn: rusqlite::Connection) -> Result<Self, CredentialError> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS passwords (staff_id TEXT PRIMARY KEY, phc TEXT NOT NULL, set_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS failures (staff_id TEXT NOT NULL, at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS failures_by_staff ON failures (staff_id, at);",
        )?;
        Ok(Self {
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
            hashing: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HASHES)),
        })
    }

    /// Runs `f` (hashing) on the blocking pool once a hashing slot is free.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let busy = || {
            AppError::unavailable(
                "too many sign-ins at once; try again in a moment",
                "同时登录的请求过多，请稍后再试",
            )
        };
        let _permit = tokio::time::timeout(HASH_WAIT, self.hashing.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| AppError::internal(format!("password hashing failed: {e}")))
    }

    /// Hashes `password` (Argon2id, a fresh salt) and keeps it as `staff`'s password.
    pub async fn set_password(
        &self,
        staff: StaffId,
        password: String,
        at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let phc = self
            .hashing(move || {
                let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
                argon2()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
            })
            .await?
            .map_err(|e| AppError::internal(format!("password hashing failed: {e}")))?;
        match &self.backend {
            Backend::Sqlite(conn) => {
                lock(conn)
                    .execute(
                        "INSERT INTO passwords (staff_id, phc, set_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (staff_id) DO UPDATE SET phc = excluded.phc, set_at = excluded.set_at",
                        rusqlite::params![staff.to_string(), phc, at.to_rfc3339()],
                    )
                    .map_err(CredentialError::from)?;
            }
            Backend::Nats(kv) => kv
                .set_password(&staff.to_string(), &phc)
                .await
                .map_err(CredentialError::from)?,
        }
        Ok(())
    }

    /// Whether `password` is `staff`'s password. Someone without a password is verified against a
    /// fixed hash, so the answer takes as long either way.
    pub async fn verify(&self, staff: Option<StaffId>, password: String) -> Result<bool, AppError> {
        let stored: Option<String> = match staff {
            Some(id) => self.stored(id).await?,
            None => None,
        };
        let known = stored.is_some();
        let ok = self
            .hashing(move || {
                let phc = stored.unwrap_or_else(|| decoy().to_string());
                PasswordHash::new(&phc)
                    .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && ok)
    }

    /// The PHC string of `staff`'s password, if one is set.
    async fn stored(&self, staff: StaffId) -> Result<Option<String>, CredentialError> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = lock(conn);
                let mut stmt =
                    conn.prepare_cached("SELECT phc FROM passwords WHERE staff_id = ?1")?;
                let mut rows = stmt.query([staff.to_string()])?;
                Ok(match rows.next()? {
                    Some(row) => Some(row.get(0)?),
                    None => None,
                })
            }
            Backend::Nats(kv) => Ok(kv.password(&staff.to_string()).await?),
        }
    }

    /// Counts a failed sign-in of `staff` at `at`; answers how many failed within `window` before
    /// and including it. Older failures are forgotten.
    pub async fn record_failure(
        &self,
        staff: StaffId,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<u32, CredentialError> {
        let conn = match &self.backend {
            Backend::Sqlite(conn) => lock(conn),
            Backend::Nats(kv) => {
                return Ok(kv
                    .record_failure(
                        &staff.to_string(),
                        at.timestamp_millis(),
                        window.num_milliseconds(),
                    )
                    .await?);
            }
        };
        let since = (at - window).timestamp_millis();
        conn.execute(
            "DELETE FROM failures WHERE staff_id = ?1 AND at <= ?2",
            rusqlite::params![staff.to_string(), since],
        )?;
        conn.execute(
            "INSERT INTO failures (staff_id, at) VALUES (?1, ?2)",
            rusqlite::params![staff.to_string(), at.timestamp_millis()],
        )?;
        let n: u32 = conn.query_row(
            "SELECT COUNT(*) FROM failures WHERE staff_id = ?1",
            [staff.to_string()],
            |r| r.get(0),
        )?;
        Ok(n)
    }

    /// Forgets `staff`'s failed sign-ins (after a success, a lock or an unlock).
    pub async fn clear_failures(&self, staff: StaffId) -> Result<(), CredentialError> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                lock(conn).execute(
                    "DELETE FROM failures WHERE staff_id = ?1",
                    [staff.to_string()],
                )?;
            }
            Backend::Nats(kv) => kv.clear_failures(&staff.to_string()).await?,
        }
        Ok(())
    }
}

fn lock(conn: &Mutex<rusqlite::Connection>) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

/// An Argon2id hash of a random text nobody knows (made once per process), verified when a login
/// names no one with a password, so that timing does not tell who has one.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let unknown: [u8; 32] = rand::random();
        argon2()
            .hash_password(&unknown, &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// The password policy: 10 to 128 characters, at least two kinds of letters, digits and other
/// characters, and not containing the person's name.
pub fn check_password(password: &str, name: &str) -> Result<(), AppError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AppError::new(
            crate::ErrorKind::Unprocessable,
            "auth.weak_password",
            format!(
                "a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters; this one has {chars}"
            ),
            format!(
                "密码长度须为 {MIN_PASSWORD_CHARS} 到 {MAX_PASSWORD_CHARS} 个字符，当前为 {chars} 个"
            ),
        ));
    }
    let kinds = [
        password.chars().any(char::is_alphabetic),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds < 2 {
        return Err(AppError::new(
            crate::ErrorKind::Unprocessable,
            "auth.weak_password",
            "a password mixes at least two of letters, digits and other characters",
            "密码须至少包含字母、数字、其他字符中的两类",
        ));
    }
    let name = name.trim();
    if !name.is_empty() && password.to_lowercase().contains(&name.to_lowercase()) {
        return Err(AppError::new(
            crate::ErrorKind::Unprocessable,
            "auth.weak_password",
            "a password may not contain the person's name",
            "密码不得包含本人姓名",
        ));
    }
    Ok(())
}
