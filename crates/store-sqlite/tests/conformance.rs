//! Runs the store conformance suite against the embedded SQLite backend, on a fresh file per case.

use async_trait::async_trait;
use funnel_store::EventStore;
use funnel_store::conformance::Harness;
use funnel_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;

/// A temporary directory holding one store file.
struct SqliteHarness {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("events.db");
        Self { _dir: dir, path }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        Arc::new(SqliteStore::open(&self.path).expect("open the store file"))
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Arc<dyn EventStore> {
        self.store()
    }

    async fn restart(&self) -> Arc<dyn EventStore> {
        self.store()
    }

    async fn expire_dedup_window(&self) {}
}

funnel_store::conformance_tests!(SqliteHarness::new());
