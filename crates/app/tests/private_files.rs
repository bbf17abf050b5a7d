//! The files a SQLite store is kept in are readable by their owner only: the folder Funnel makes
//! for it `0700`, the database and its `-wal`/`-shm` `0600`; a folder that exists is left alone.
#![cfg(unix)]

use funnel_app::{StoreUrl, open_store};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_store_is_private_and_a_named_folder_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join(".funnel/funnel.db");
    let url: StoreUrl = format!("sqlite:{}", db.display()).parse().unwrap();
    let store = open_store(&url).await.unwrap();
    store.head().await.unwrap();
    assert_eq!(
        mode(&dir.path().join(".funnel")),
        0o700,
        "the folder Funnel made"
    );
    assert_eq!(mode(dir.path()), 0o755, "the folder the user named");
    assert_eq!(mode(&db), 0o600, "the database");
    for suffix in ["-wal", "-shm"] {
        let p = dir.path().join(format!(".funnel/funnel.db{suffix}"));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[tokio::test]
async fn an_existing_world_readable_store_is_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let url: StoreUrl = format!("sqlite:{}", db.display()).parse().unwrap();
    drop(open_store(&url).await.unwrap());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(open_store(&url).await.unwrap());
    assert_eq!(mode(&db), 0o600);
}
