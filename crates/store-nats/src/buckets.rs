//! What the key-value buckets beside the log (leases, credentials) share: a connection of their
//! own, and creating a bucket patiently on a cluster whose members are still coming online.

use crate::connect::{server_addrs, unavailable};
use async_nats::jetstream::{self, kv};
use funnel_store::StoreError;
use std::time::Duration;

/// How long creating a bucket waits for a cluster whose peers are not all online yet.
pub const PLACEMENT_PATIENCE: Duration = Duration::from_secs(20);

/// A JetStream context on a connection named `name` that reconnects for ever.
pub async fn bucket_context(
    url: &str,
    request_timeout: Duration,
    name: &str,
) -> Result<jetstream::Context, StoreError> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .request_timeout(Some(request_timeout))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        })
        .max_reconnects(None)
        .connect(server_addrs(url)?)
        .await
        .map_err(|e| unavailable(format!("cannot connect to {url}: {e}")))?;
    Ok(jetstream::ContextBuilder::new()
        .timeout(request_timeout)
        .build(client))
}

/// Creates (or updates) the bucket `config` describes. A cluster that just (re)started may not
/// count every peer online yet ("no suitable peers for placement, peer offline"): this waits for
/// it up to [`PLACEMENT_PATIENCE`], warning once, before giving up. A bucket just created on a
/// cluster has no leader for a moment, and reading it then answers "503 no responders": this
/// also waits, within the same patience, until a read of the bucket is answered, so that the
/// caller's first read or write does not fail.
pub async fn create_bucket_patiently(
    context: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, StoreError> {
    let bucket = config.bucket.clone();
    patiently(&bucket, || async {
        context
            .create_or_update_key_value(config.clone())
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

/// Makes a bucket with `make` until it succeeds and the bucket answers a read, or
/// [`PLACEMENT_PATIENCE`] passes; warns once while waiting.
async fn patiently<F, Fut>(bucket: &str, mut make: F) -> Result<kv::Store, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<kv::Store, String>>,
{
    let deadline = tokio::time::Instant::now() + PLACEMENT_PATIENCE;
    let mut told = false;
    loop {
        match make().await {
            Ok(kv) => return answering(kv, deadline).await,
            Err(e) if tokio::time::Instant::now() < deadline => {
                if !told {
                    tracing::warn!(%bucket, error = %e, "the bucket cannot be placed yet; waiting for the cluster");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(crate::lease::failed(
                    &format!("cannot create the bucket {bucket}"),
                    e,
                ));
            }
        }
    }
}

/// Creates a bucket like [`create_bucket_patiently`] with one revision per key, whose single
/// messages may be deleted (a bucket made by the client refuses that, and a stream's setting
/// cannot allow it later): deleting one erases its bytes, which is how a destroyed key is made
/// unrecoverable. Its stream is the one the client would make (`KV_<bucket>`, `$KV.<bucket>.>`).
pub async fn create_erasable_bucket_patiently(
    context: &jetstream::Context,
    bucket: &str,
    description: &str,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: false,
        deny_purge: false,
        allow_direct: true,
        num_replicas: replicas.max(1),
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    patiently(bucket, || async {
        context
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| e.to_string())?;
        context
            .get_key_value(bucket)
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

/// The key read to learn whether a bucket answers; never written.
const PROBE_KEY: &str = "funnel-probe";

/// Waits until `kv` answers a read (its stream has a leader), or `deadline` passes.
async fn answering(kv: kv::Store, deadline: tokio::time::Instant) -> Result<kv::Store, StoreError> {
    let mut told = false;
    loop {
        match kv.get(PROBE_KEY).await {
            Ok(_) => return Ok(kv),
            Err(e) if tokio::time::Instant::now() < deadline => {
                if !told {
                    tracing::warn!(bucket = %kv.name, error = %e, "the bucket does not answer yet; waiting for its leader");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(crate::lease::failed(
                    &format!("the bucket {} does not answer", kv.name),
                    e,
                ));
            }
        }
    }
}

/// How many times a compare-and-set is tried before giving up; each writer at once costs the
/// others at most one more try.
pub const CAS_ATTEMPTS: usize = 64;

/// Waits before compare-and-set attempt `attempt` (from 1) again: a random pause that grows with
/// the attempts (up to about 32 ms), so that writers that keep colliding spread out.
pub async fn cas_backoff(attempt: usize) {
    let ceiling_us = 500u64 << attempt.min(6);
    let jitter = u64::from(rand::random::<u32>()) % ceiling_us;
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}

/// Writes `value` at `key` only if the key is as it was read: at `revision` (the entry read,
/// whatever its operation), or without any entry (`None`). `Ok(false)` when another writer got in
/// between (read again and retry after [`cas_backoff`]); `Err` with the reason otherwise.
pub async fn write_if_unchanged(
    kv: &kv::Store,
    key: &str,
    value: bytes::Bytes,
    revision: Option<u64>,
) -> Result<bool, String> {
    match revision {
        Some(r) => match kv.update(key, value, r).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(e.to_string()),
        },
        None => match kv.create(key, value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.to_string()),
        },
    }
}
