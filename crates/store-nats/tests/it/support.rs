//! The conformance harness (a private server per case, a 1 s broker dedup window) and helpers
//! shared by the other tests.

use async_trait::async_trait;
use funnel_store::conformance::Harness;
use funnel_store::{EventStore, StoreError};
use funnel_store_nats::{NatsOptions, NatsStore};
use funnel_testkit::NatsServer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The broker dedup window the harness configures, short so "beyond the window" is quick to reach.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(1);

/// Options for a test server: short dedup window and short timeouts.
pub fn options(url: String) -> NatsOptions {
    NatsOptions {
        duplicate_window: DEDUP_WINDOW,
        request_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(5),
        ..NatsOptions::new(url)
    }
}

/// Connects a store, panicking with the reason when it cannot.
pub async fn connect(opts: NatsOptions) -> NatsStore {
    match NatsStore::connect(opts).await {
        Ok(s) => s,
        Err(e) => panic!("connect the NATS store: {e}"),
    }
}

/// One server per conformance case.
pub struct NatsHarness {
    server: Mutex<NatsServer>,
    url: String,
}

impl NatsHarness {
    pub fn start() -> Self {
        let server = NatsServer::start();
        let url = server.url();
        Self {
            server: Mutex::new(server),
            url,
        }
    }
}

#[async_trait]
impl Harness for NatsHarness {
    async fn open(&self) -> Arc<dyn EventStore> {
        Arc::new(connect(options(self.url.clone())).await)
    }

    async fn restart(&self) -> Arc<dyn EventStore> {
        tokio::task::block_in_place(|| {
            self.server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .restart()
        });
        Arc::new(connect(options(self.url.clone())).await)
    }

    async fn expire_dedup_window(&self) {
        // The server forgets message ids on a timer once they are older than the window.
        tokio::time::sleep(DEDUP_WINDOW * 2).await;
    }
}

/// Retries `op` while it fails with a retryable error, for at most `attempts` tries.
pub async fn retry_unavailable<T, F, Fut>(attempts: usize, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut last = None;
    for _ in 0..attempts {
        match op().await {
            Err(e) if e.is_retryable() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    Err(last.unwrap_or(StoreError::InvalidRequest("no attempts".into())))
}
