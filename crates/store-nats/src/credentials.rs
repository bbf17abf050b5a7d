//! Password hashes and recent failed sign-ins in a JetStream key-value bucket beside the log
//! (`<log stream>_CREDENTIALS`, e.g. `FUNNEL_CREDENTIALS`), so that every `funnel serve` process
//! on one cluster knows a password set through any of them and counts failed sign-ins together.
//! The bucket is not the log: it is not exported, replayed or served by `/events`, and keeps one
//! revision per key, so a replaced hash is gone. Keys: `password.<staff id>` (a PHC string) and
//! `failures.<staff id>` (the times of recent failures, milliseconds, JSON), the latter updated by
//! compare-and-set so two processes counting at once both count.

use crate::lease::failed;
use async_nats::jetstream::kv;
use funnel_store::StoreError;
use std::time::Duration;

/// The bucket holding the credentials of the log stream `stream_name`.
pub fn credentials_bucket(stream_name: &str) -> String {
    format!("{stream_name}_CREDENTIALS")
}

use crate::buckets::{CAS_ATTEMPTS, cas_backoff, write_if_unchanged};

/// The credential bucket of one log on its JetStream cluster.
pub struct NatsCredentials {
    kv: kv::Store,
    bucket: String,
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCredentials")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl NatsCredentials {
    /// Connects to `url` (cluster members separated by commas) and creates or updates the bucket of
    /// the log `stream_name` with `replicas`.
    pub async fn connect(
        url: &str,
        stream_name: &str,
        replicas: usize,
        request_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let context =
            crate::buckets::bucket_context(url, request_timeout, "funnel-credentials").await?;
        let bucket = credentials_bucket(stream_name);
        let config = kv::Config {
            bucket: bucket.clone(),
            description: "Funnel credentials: password hashes and recent failed sign-ins".into(),
            history: 1,
            storage: async_nats::jetstream::stream::StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        let kv = crate::buckets::create_bucket_patiently(&context, config).await?;
        Ok(Self { kv, bucket })
    }

    /// The PHC string of `staff`'s password, if one is set.
    pub async fn password(&self, staff: &str) -> Result<Option<String>, StoreError> {
        let key = format!("password.{staff}");
        let entry = self
            .kv
            .entry(key.as_str())
            .await
            .map_err(|e| failed("reading a password hash", e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// Keeps `phc` as `staff`'s password (replacing one set before).
    pub async fn set_password(&self, staff: &str, phc: &str) -> Result<(), StoreError> {
        self.kv
            .put(format!("password.{staff}"), phc.as_bytes().to_vec().into())
            .await
            .map_err(|e| failed("storing a password hash", e))?;
        Ok(())
    }

    /// Counts a failed sign-in of `staff` at `at_ms`; answers how many failed within `window_ms`
    /// before and including it. Older failures are forgotten.
    pub async fn record_failure(
        &self,
        staff: &str,
        at_ms: i64,
        window_ms: i64,
    ) -> Result<u32, StoreError> {
        let key = format!("failures.{staff}");
        for attempt in 1..=CAS_ATTEMPTS {
            let entry = self
                .kv
                .entry(key.as_str())
                .await
                .map_err(|e| failed("reading failed sign-ins", e))?;
            let mut times: Vec<i64> = entry
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .and_then(|e| serde_json::from_slice(&e.value).ok())
                .unwrap_or_default();
            times.retain(|t| *t > at_ms - window_ms);
            times.push(at_ms);
            let value: bytes::Bytes = serde_json::to_vec(&times).unwrap_or_default().into();
            match write_if_unchanged(&self.kv, &key, value, entry.map(|e| e.revision)).await {
                Ok(true) => return Ok(times.len() as u32),
                // Another process counted meanwhile: read again and count on top of it.
                Ok(false) => cas_backoff(attempt).await,
                Err(e) => return Err(failed("counting a failed sign-in", e)),
            }
        }
        Err(crate::connect::unavailable(format!(
            "counting a failed sign-in of {staff}: {CAS_ATTEMPTS} other updates came in between"
        )))
    }

    /// Forgets `staff`'s failed sign-ins.
    pub async fn clear_failures(&self, staff: &str) -> Result<(), StoreError> {
        self.kv
            .purge(format!("failures.{staff}"))
            .await
            .map_err(|e| failed("forgetting failed sign-ins", e))
    }
}
