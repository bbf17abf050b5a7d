//! Leases in a JetStream key-value bucket (`<log stream>_LEASES`, e.g. `FUNNEL_LEASES`), one key per
//! lease name, for [`funnel_store::lease`]. The bucket keeps one revision per key and its entries age
//! out after the time to live (`max_age`), measured by the broker: a holder that stops renewing loses
//! the lease without anyone deleting it. Acquiring is a create (`Nats-Expected-Last-Subject-Sequence:
//! 0`, refused while a live entry exists), renewing an update at the revision last written, releasing
//! a delete at that revision; all three are compare-and-set on the broker, so two processes can never
//! both believe a create or a renewal succeeded. The bucket has the log's replicas, so a lease
//! survives the loss of a node as the log does.

use crate::connect::{backend, looks_transient, unavailable};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use funnel_store::StoreError;
use funnel_store::lease::{LeaseEntry, LeaseRecord, LeaseStore};
use std::time::Duration;

/// Leases of one log on its JetStream cluster.
pub struct NatsLeases {
    kv: kv::Store,
    ttl: Duration,
    bucket: String,
}

impl std::fmt::Debug for NatsLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsLeases")
            .field("bucket", &self.bucket)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The bucket holding the leases of the log stream `stream_name`.
pub fn lease_bucket(stream_name: &str) -> String {
    format!("{stream_name}_LEASES")
}

pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    let text = format!("{what}: {e}");
    if looks_transient(&text) {
        unavailable(text)
    } else {
        backend(text)
    }
}

impl NatsLeases {
    /// The leases of the log `stream_name` with the time to live the bucket already has (set by
    /// `funnel serve`), or, when there is no bucket yet, created as [`Self::connect`] does with
    /// `ttl`. For one-off holders (`funnel workflows run`) that must not change the servers' setting.
    pub async fn join(
        url: &str,
        stream_name: &str,
        replicas: usize,
        ttl: Duration,
        request_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let context = crate::buckets::bucket_context(url, request_timeout, "funnel-leases").await?;
        let bucket = lease_bucket(stream_name);
        if let Ok(kv) = context.get_key_value(bucket.as_str()).await {
            let status = kv
                .status()
                .await
                .map_err(|e| failed(&format!("reading the lease bucket {bucket}"), e))?;
            return Ok(Self {
                kv,
                ttl: status.max_age(),
                bucket,
            });
        }
        Self::connect(url, stream_name, replicas, ttl, request_timeout).await
    }

    /// Connects to `url` (cluster members separated by commas) and creates or updates the bucket of
    /// the log `stream_name` with `replicas` and entries living `ttl`.
    pub async fn connect(
        url: &str,
        stream_name: &str,
        replicas: usize,
        ttl: Duration,
        request_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if ttl < Duration::from_secs(1) {
            return Err(StoreError::InvalidRequest(
                "a lease's time to live must be at least one second".into(),
            ));
        }
        let context = crate::buckets::bucket_context(url, request_timeout, "funnel-leases").await?;
        let bucket = lease_bucket(stream_name);
        let config = kv::Config {
            bucket: bucket.clone(),
            description: "Funnel leases: which process runs the sagas and the webhooks".into(),
            history: 1,
            max_age: ttl,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        let kv = crate::buckets::create_bucket_patiently(&context, config).await?;
        Ok(Self { kv, ttl, bucket })
    }
}

#[async_trait]
impl LeaseStore for NatsLeases {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&self, name: &str, holder: &str) -> Result<Option<u64>, StoreError> {
        // The term is the revision the create gets, which is not known before it is written: write
        // the holder with term 0 (= "the revision of this very entry"), then record the term with
        // an update at that revision. Until then a reader takes term 0 as the entry's revision.
        let first = LeaseRecord {
            holder: holder.into(),
            term: 0,
        };
        let value = serde_json::to_vec(&first).unwrap_or_default();
        match self.kv.create(name, value.into()).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(failed(&format!("acquiring lease {name}"), e)),
        }
    }

    async fn renew(
        &self,
        name: &str,
        record: &LeaseRecord,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let value = serde_json::to_vec(record).unwrap_or_default();
        match self.kv.update(name, value.into(), revision).await {
            Ok(next) => Ok(Some(next)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(failed(&format!("renewing lease {name}"), e)),
        }
    }

    async fn current(&self, name: &str) -> Result<Option<LeaseEntry>, StoreError> {
        let entry = self
            .kv
            .entry(name)
            .await
            .map_err(|e| failed(&format!("reading lease {name}"), e))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        let mut record: LeaseRecord = serde_json::from_slice(&entry.value)
            .map_err(|e| backend(format!("lease {name} at revision {}: {e}", entry.revision)))?;
        if record.term == 0 {
            record.term = entry.revision;
        }
        Ok(Some(LeaseEntry {
            record,
            revision: entry.revision,
        }))
    }

    async fn release(&self, name: &str, revision: u64) -> Result<(), StoreError> {
        self.kv
            .delete_expect_revision(name, Some(revision))
            .await
            .map_err(|e| failed(&format!("releasing lease {name}"), e))
    }
}
