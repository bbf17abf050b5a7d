//! The keys of the people a log's personal fields are about, in a JetStream key-value bucket
//! beside the log (`<log stream>_KEYS`, e.g. `FUNNEL_KEYS`). Each key is a person (`contact.<lead
//! id>`, `key_person.<id>`, `snapshot.<stream>`: the subject with `:` as `.`); its value is JSON,
//! `{"wrapped": BASE64}` (the key wrapped by the master key, which never reaches the cluster) or,
//! once erased, `{"erased_at": TIME}`. The bucket keeps one revision per key, and an erasure first
//! deletes the wrapped key's message with JetStream's erase (its bytes overwritten on disk), then
//! records when; so no copy of a destroyed key is left in the bucket.

use crate::lease::failed;
use async_nats::jetstream::kv;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use funnel_store::StoreError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The bucket holding the keys of the log stream `stream_name`.
pub fn keys_bucket(stream_name: &str) -> String {
    format!("{stream_name}_KEYS")
}

/// What the bucket holds for one person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRecord {
    Wrapped(Vec<u8>),
    Erased(DateTime<Utc>),
}

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wrapped: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    erased_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    fn to_bytes(&self) -> bytes::Bytes {
        let stored = match self {
            KeyRecord::Wrapped(w) => Stored {
                wrapped: Some(STANDARD.encode(w)),
                erased_at: None,
            },
            KeyRecord::Erased(at) => Stored {
                wrapped: None,
                erased_at: Some(*at),
            },
        };
        serde_json::to_vec(&stored)
            .expect("a key record serialises")
            .into()
    }

    fn from_bytes(subject: &str, b: &[u8]) -> Result<KeyRecord, StoreError> {
        let bad = || crate::connect::backend(format!("the key record of {subject} does not read"));
        let s: Stored = serde_json::from_slice(b).map_err(|_| bad())?;
        match (s.wrapped, s.erased_at) {
            (Some(w), _) => STANDARD
                .decode(w)
                .map(KeyRecord::Wrapped)
                .map_err(|_| bad()),
            (None, Some(at)) => Ok(KeyRecord::Erased(at)),
            (None, None) => Err(bad()),
        }
    }
}

/// The key bucket of one log on its JetStream cluster.
#[derive(Clone)]
pub struct NatsKeyBucket {
    kv: kv::Store,
}

impl std::fmt::Debug for NatsKeyBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsKeyBucket")
            .field("bucket", &self.kv.name)
            .finish_non_exhaustive()
    }
}

fn key_of(subject: &str) -> String {
    subject.replace(':', ".")
}

impl NatsKeyBucket {
    /// Connects to `url` and creates (or updates) the bucket of the log `stream_name`.
    pub async fn connect(
        url: &str,
        stream_name: &str,
        replicas: usize,
        request_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let context = crate::buckets::bucket_context(url, request_timeout, "funnel-keys").await?;
        let kv = crate::buckets::create_erasable_bucket_patiently(
            &context,
            &keys_bucket(stream_name),
            "Funnel: the keys of the people the log's personal fields are about, wrapped by the \
             master key",
            replicas,
        )
        .await?;
        Ok(Self { kv })
    }

    /// Whether the log `stream_name` at `url` has a key bucket that has ever held a key (its
    /// fields were sealed, or its people erased).
    pub async fn ever_held_keys(
        url: &str,
        stream_name: &str,
        request_timeout: Duration,
    ) -> Result<bool, StoreError> {
        let context = crate::buckets::bucket_context(url, request_timeout, "funnel-keys").await?;
        // A bucket is the stream `KV_<bucket>`.
        match context
            .get_stream(format!("KV_{}", keys_bucket(stream_name)))
            .await
        {
            Ok(mut stream) => Ok(stream
                .info()
                .await
                .map_err(|e| failed("reading the key bucket", e))?
                .state
                .messages
                > 0),
            Err(e) => match e.kind() {
                async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(false)
                }
                _ => Err(failed("looking for the key bucket", e)),
            },
        }
    }

    /// What the bucket holds for `subject`, with its revision.
    async fn entry(&self, subject: &str) -> Result<Option<(KeyRecord, u64)>, StoreError> {
        let entry = self
            .kv
            .entry(key_of(subject))
            .await
            .map_err(|e| failed("reading a person's key", e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => Ok(Some((
                KeyRecord::from_bytes(subject, &e.value)?,
                e.revision,
            ))),
            _ => Ok(None),
        }
    }

    /// What the bucket holds for `subject`.
    pub async fn get(&self, subject: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.entry(subject).await?.map(|(r, _)| r))
    }

    /// Keeps `wrapped` as `subject`'s key unless one is there already (made by another process
    /// meanwhile); returns the key that is kept.
    pub async fn create(&self, subject: &str, wrapped: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        for attempt in 1..=crate::buckets::CAS_ATTEMPTS {
            let revision = match self.entry(subject).await? {
                Some((KeyRecord::Wrapped(w), _)) => return Ok(w),
                Some((KeyRecord::Erased(_), r)) => Some(r),
                None => None,
            };
            let record = KeyRecord::Wrapped(wrapped.clone()).to_bytes();
            if crate::buckets::write_if_unchanged(&self.kv, &key_of(subject), record, revision)
                .await
                .map_err(|e| failed("keeping a person's key", e))?
            {
                return Ok(wrapped);
            }
            crate::buckets::cas_backoff(attempt).await;
        }
        Err(crate::connect::unavailable(format!(
            "the key of {subject} kept changing while it was made"
        )))
    }

    /// Destroys `subject`'s key: its message is erased, then the erasure recorded. Returns whether
    /// there was a key.
    pub async fn erase(&self, subject: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some((KeyRecord::Wrapped(_), revision)) = self.entry(subject).await? else {
            return Ok(false);
        };
        self.kv
            .stream
            .delete_message(revision)
            .await
            .map_err(|e| failed("erasing a person's key", e))?;
        self.kv
            .put(key_of(subject), KeyRecord::Erased(at).to_bytes())
            .await
            .map_err(|e| failed("recording an erasure", e))?;
        Ok(true)
    }
}
