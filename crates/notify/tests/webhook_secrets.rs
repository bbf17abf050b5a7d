//! Webhook secrets at rest: the database and its write-ahead log never hold a secret in plain
//! text (sealed with a key in a separate `0600` file), a deleted subscription leaves nothing
//! behind, the files are readable by their owner only, and secrets an older Funnel stored in plain
//! text are sealed when the database is opened.

use funnel_notify::webhooks::{NewSubscription, Targets, Webhooks, key_path};
use funnel_notify::{Kinds, Selector};
use funnel_types::Position;
use std::path::Path;

fn new(url: &str) -> NewSubscription {
    NewSubscription {
        url: url.into(),
        description: String::new(),
        selector: Selector {
            offices: vec![],
            kinds: Kinds::default(),
        },
        after: Position::START,
        created_by: "test".into(),
        owner: None,
        owner_since: Position::START,
    }
}

/// The key bytes of a `whsec_…` secret as they would appear in a file (its base64 text).
fn secret_text(secret: &str) -> &str {
    secret.strip_prefix("whsec_").unwrap()
}

/// Whether the database or its `-wal` holds `needle`.
fn on_disk(db: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["", "-wal"] {
        let mut p = db.as_os_str().to_os_string();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(Path::new(&p).display().to_string());
        }
    }
    found
}

fn allow_local(hooks: &Webhooks) {
    hooks.set_targets(Targets::new(&["127.0.0.1".into()]).unwrap());
}

#[tokio::test]
async fn no_secret_in_the_database_files_before_or_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hooks.db");
    let hooks = Webhooks::open(&db).unwrap();
    allow_local(&hooks);
    let mut secrets = Vec::new();
    for i in 0..3 {
        let (sub, secret) = hooks
            .create(new(&format!("http://127.0.0.1:9/{i}")))
            .await
            .unwrap();
        secrets.push((sub.id, secret));
    }
    for (_, secret) in &secrets {
        assert_eq!(on_disk(&db, secret_text(secret)), Vec::<String>::new());
    }
    hooks.delete(secrets[0].0).await.unwrap();
    for (_, secret) in &secrets {
        assert_eq!(on_disk(&db, secret_text(secret)), Vec::<String>::new());
    }
    // The same key opens the database again, so the remaining secrets still sign.
    drop(hooks);
    let again = Webhooks::open(&db).unwrap();
    assert_eq!(again.list().await.unwrap().len(), 2);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600, "the database");
        assert_eq!(mode(&key_path(&db)), 0o600, "the key file");
        let wal = dir.path().join("hooks.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600, "the write-ahead log");
        }
    }
}

#[tokio::test]
async fn plain_text_secrets_of_an_older_database_are_sealed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let plain = "whsec_T2xkU2VjcmV0T2xkU2VjcmV0T2xkU2Vj";
    {
        // The schema an older Funnel wrote, with a secret in plain text.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE webhook_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO webhook_meta VALUES ('schema_version', 1);
             CREATE TABLE subscriptions (
                 id TEXT PRIMARY KEY, url TEXT NOT NULL, description TEXT NOT NULL,
                 offices TEXT NOT NULL, kinds TEXT NOT NULL, secret TEXT NOT NULL,
                 cursor INTEGER NOT NULL, paused INTEGER NOT NULL, paused_reason TEXT,
                 delivered INTEGER NOT NULL DEFAULT 0, failing TEXT, created_at TEXT NOT NULL,
                 created_by TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0);
             INSERT INTO subscriptions (id, url, description, offices, kinds, secret, cursor,
                 paused, created_at, created_by)
             VALUES ('0190a5c8-0000-7000-8000-000000000001', 'https://crm.example/', '', '[]',
                 '[]', '{plain}', 5, 0, '2026-01-01T00:00:00+00:00',
                 'Wang (0190a5c8-0000-7000-8000-0000000000aa)');"
        ))
        .unwrap();
    }
    assert!(!on_disk(&db, secret_text(plain)).is_empty(), "the fixture");
    let hooks = Webhooks::open(&db).unwrap();
    assert_eq!(on_disk(&db, secret_text(plain)), Vec::<String>::new());
    let sub = hooks.list().await.unwrap().remove(0);
    assert_eq!(
        sub.owner.map(|o| o.to_string()).as_deref(),
        Some("0190a5c8-0000-7000-8000-0000000000aa"),
        "the maker becomes the owner"
    );
    // The owner's authority is checked from the start of the log: a manager who left before the
    // upgrade, while the subscription kept delivering, pauses it at once.
    assert_eq!(sub.owner_since, Position::START);
}

#[tokio::test]
async fn a_lost_key_file_is_said_and_a_loose_one_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hooks.db");
    {
        let hooks = Webhooks::open(&db).unwrap();
        allow_local(&hooks);
        hooks.create(new("http://127.0.0.1:9/a")).await.unwrap();
    }
    let key = key_path(&db);
    // Restored from a backup with looser permissions: private again once opened.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Webhooks::open(&db).unwrap());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Lost: opening says what to do instead of making a key that opens nothing.
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = Webhooks::open(&db).unwrap_err().to_string();
    assert!(err.contains("key file is missing"), "{err}");
    assert!(err.contains("1 subscription secret"), "{err}");
    assert!(!key.exists(), "no new key is made");
    std::fs::write(&key, saved).unwrap();
    assert_eq!(Webhooks::open(&db).unwrap().list().await.unwrap().len(), 1);
}
