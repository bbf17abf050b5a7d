//! Subscriptions in key-value buckets of the log's JetStream cluster, so that every `funnel serve`
//! process on one cluster sees the same subscriptions, and whichever holds the `webhooks` lease
//! goes on delivering from the cursors the last holder left.
//!
//! - `<log stream>_WEBHOOKS` (e.g. `FUNNEL_WEBHOOKS`): `sub.<id>` holds a [`Stored`] subscription as
//!   JSON (its secret sealed with the webhook key, which is not in the cluster), changed by
//!   compare-and-set at the revision read; `key-id` names the key the secrets are sealed with
//!   ([`SealKey::id`](super::seal::SealKey::id)), so a process started with another key file is
//!   refused at start instead of failing every delivery.
//! - `<log stream>_WEBHOOK_DELIVERIES`: the delivery log. `<id>.last` counts a subscription's
//!   attempts (compare-and-set); attempt `n` is kept at `<id>.a.<n mod KEEP_DELIVERIES>`, so the
//!   log is a ring of the last [`KEEP_DELIVERIES`] attempts and a page of it is that many direct
//!   reads by key.
//!
//! Both buckets keep one revision per key, and deleting a subscription purges its keys, so a
//! deleted secret leaves no copy in the cluster's stores. Neither bucket is the log: they are not
//! exported, replayed or served by `/events`.

use super::store::{Change, KEEP_DELIVERIES, Stored, SubscriptionStore};
use super::{Delivery, Subscription, WebhookError};
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

use funnel_store_nats::{CAS_ATTEMPTS, cas_backoff, write_if_unchanged};

/// The subscriptions bucket of the log stream `stream_name`.
pub fn subscriptions_bucket(stream_name: &str) -> String {
    format!("{stream_name}_WEBHOOKS")
}

/// The delivery log bucket of the log stream `stream_name`.
pub fn deliveries_bucket(stream_name: &str) -> String {
    format!("{stream_name}_WEBHOOK_DELIVERIES")
}

const KEY_ID: &str = "key-id";

fn sub_key(id: Uuid) -> String {
    format!("sub.{id}")
}

fn failed(what: &str, e: impl std::fmt::Display) -> WebhookError {
    WebhookError::Cluster(format!("{what}: {e}"))
}

fn corrupt(what: &'static str, e: impl std::fmt::Display) -> WebhookError {
    WebhookError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

/// The subscription buckets of one log on its JetStream cluster.
pub struct KvSubscriptions {
    subs: kv::Store,
    deliveries: kv::Store,
    context: jetstream::Context,
    changed: std::sync::Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for KvSubscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSubscriptions")
            .field("bucket", &self.subs.name)
            .finish_non_exhaustive()
    }
}

impl KvSubscriptions {
    /// Connects to `url` (cluster members separated by commas), makes (or opens) the buckets of
    /// the log `stream_name` with `replicas`, and starts following changes made by any process.
    pub async fn open(
        url: &str,
        stream_name: &str,
        replicas: usize,
        request_timeout: Duration,
    ) -> Result<Self, WebhookError> {
        let cluster = |e: funnel_store::StoreError| WebhookError::Cluster(e.to_string());
        let context = funnel_store_nats::bucket_context(url, request_timeout, "funnel-webhooks")
            .await
            .map_err(cluster)?;
        let config = |bucket: String, description: &str| kv::Config {
            bucket,
            description: description.into(),
            history: 1,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        let subs = funnel_store_nats::create_bucket_patiently(
            &context,
            config(
                subscriptions_bucket(stream_name),
                "Funnel webhook subscriptions and their cursors",
            ),
        )
        .await
        .map_err(cluster)?;
        let deliveries = funnel_store_nats::create_bucket_patiently(
            &context,
            config(
                deliveries_bucket(stream_name),
                "Funnel webhook delivery log: the last attempts of each subscription",
            ),
        )
        .await
        .map_err(cluster)?;
        let changed = std::sync::Arc::new(watch::channel(0).0);
        let store = Self {
            subs,
            deliveries,
            context,
            changed,
        };
        store.follow();
        Ok(store)
    }

    /// Changes that matter to readers and the dispatch (made, deleted, paused, resumed,
    /// replayed), by any process; not a cursor moving.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Records that the secrets are sealed with the key `key_id`, or refuses when the bucket
    /// already says they are sealed with another one.
    pub async fn claim_key(&self, key_id: &str, key_file: &str) -> Result<(), WebhookError> {
        match self
            .subs
            .create(KEY_ID, key_id.as_bytes().to_vec().into())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed("recording the webhook key id", e)),
        }
        let found = self
            .subs
            .get(KEY_ID)
            .await
            .map_err(|e| failed("reading the webhook key id", e))?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if found == key_id {
            return Ok(());
        }
        Err(WebhookError::Key {
            path: key_file.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "this key (id {key_id}) is not the one the subscriptions in {} are sealed with \
                     (id {found}): every funnel serve on one log must be given the same key file \
                     (notify.webhook_key_file), or it cannot open their secrets",
                    self.subs.name
                ),
            ),
        })
    }

    /// Follows the subscriptions bucket and tells [`KvSubscriptions::changes`] of changes that
    /// matter, for as long as the store lives; watches again after a broken connection.
    fn follow(&self) {
        let subs = self.subs.clone();
        let changed = std::sync::Arc::downgrade(&self.changed);
        tokio::spawn(async move {
            let mut seen: HashMap<String, (u64, bool)> = HashMap::new();
            loop {
                let watch = subs.watch_with_history("sub.>").await;
                let Ok(mut watch) = watch else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if changed.upgrade().is_none() {
                        return;
                    }
                    continue;
                };
                while let Some(entry) = watch.next().await {
                    let Some(tx) = changed.upgrade() else { return };
                    let Ok(entry) = entry else { break };
                    let now = match entry.operation {
                        kv::Operation::Put => serde_json::from_slice::<Stored>(&entry.value)
                            .ok()
                            .map(|s| (s.subscription.revision, s.subscription.paused)),
                        kv::Operation::Delete | kv::Operation::Purge => None,
                    };
                    let before = match now {
                        Some(v) => seen.insert(entry.key.clone(), v),
                        None => seen.remove(&entry.key),
                    };
                    if before != now {
                        tx.send_modify(|g| *g += 1);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    async fn entry(&self, id: Uuid) -> Result<Option<(Stored, u64)>, WebhookError> {
        let entry = self
            .subs
            .entry(sub_key(id))
            .await
            .map_err(|e| failed("reading a subscription", e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let stored: Stored =
                    serde_json::from_slice(&e.value).map_err(|e| corrupt("subscription", e))?;
                Ok(Some((stored, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// The number of attempts logged for `id`, and the revision of that count.
    async fn attempts(&self, id: Uuid) -> Result<(u64, Option<u64>), WebhookError> {
        let entry = self
            .deliveries
            .entry(format!("{id}.last"))
            .await
            .map_err(|e| failed("reading the delivery count", e))?;
        Ok(match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                String::from_utf8_lossy(&e.value).parse().unwrap_or(0),
                Some(e.revision),
            ),
            _ => (0, None),
        })
    }
}

#[async_trait::async_trait]
impl SubscriptionStore for KvSubscriptions {
    async fn insert(&self, stored: &Stored) -> Result<(), WebhookError> {
        let value = serde_json::to_vec(stored).map_err(|e| corrupt("subscription", e))?;
        self.subs
            .create(sub_key(stored.subscription.id), value.into())
            .await
            .map_err(|e| failed("storing a subscription", e))?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Stored, WebhookError> {
        self.entry(id)
            .await?
            .map(|(s, _)| s)
            .ok_or(WebhookError::NotFound(id))
    }

    async fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        let mut keys = self
            .subs
            .keys()
            .await
            .map_err(|e| failed("listing subscriptions", e))?;
        let mut ids = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| failed("listing subscriptions", e))?;
            if let Some(id) = key
                .strip_prefix("sub.")
                .and_then(|k| k.parse::<Uuid>().ok())
            {
                ids.push(id);
            }
        }
        let found = futures::future::join_all(ids.into_iter().map(|id| self.entry(id))).await;
        let mut out = Vec::new();
        for entry in found {
            // One deleted between the listing and the read is not listed.
            if let Some((stored, _)) = entry? {
                out.push(stored.subscription);
            }
        }
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    async fn update(
        &self,
        id: Uuid,
        change: &Change,
    ) -> Result<Option<Subscription>, WebhookError> {
        for attempt in 1..=CAS_ATTEMPTS {
            let (mut stored, revision) = self.entry(id).await?.ok_or(WebhookError::NotFound(id))?;
            if !change.apply(&mut stored.subscription) {
                return Ok(None);
            }
            let value = serde_json::to_vec(&stored).map_err(|e| corrupt("subscription", e))?;
            match write_if_unchanged(&self.subs, &sub_key(id), value.into(), Some(revision)).await {
                Ok(true) => return Ok(Some(stored.subscription)),
                // Another process changed it meanwhile: apply the change to what it wrote.
                Ok(false) => cas_backoff(attempt).await,
                Err(e) => return Err(failed("changing a subscription", e)),
            }
        }
        Err(WebhookError::Cluster(format!(
            "changing subscription {id}: {CAS_ATTEMPTS} other changes came in between"
        )))
    }

    async fn delete(&self, id: Uuid) -> Result<(), WebhookError> {
        if self.entry(id).await?.is_none() {
            return Err(WebhookError::NotFound(id));
        }
        // Purging (not deleting) drops every stored revision of the key, the secret with it.
        self.subs
            .purge(sub_key(id))
            .await
            .map_err(|e| failed("deleting a subscription", e))?;
        let stream = self
            .context
            .get_stream(&self.deliveries.stream_name)
            .await
            .map_err(|e| failed("deleting a delivery log", e))?;
        stream
            .purge()
            .filter(format!("{}{id}.>", self.deliveries.prefix))
            .await
            .map_err(|e| failed("deleting a delivery log", e))?;
        Ok(())
    }

    async fn log_attempt(&self, id: Uuid, delivery: &Delivery) -> Result<u64, WebhookError> {
        let counter = format!("{id}.last");
        for attempt in 1..=CAS_ATTEMPTS {
            let (n, revision) = self.attempts(id).await?;
            let next = n + 1;
            let value = next.to_string().into_bytes().into();
            match write_if_unchanged(&self.deliveries, &counter, value, revision).await {
                Ok(true) => {}
                Ok(false) => {
                    cas_backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(failed("counting a delivery attempt", e)),
            }
            let mut d = delivery.clone();
            d.seq = next;
            let value = serde_json::to_vec(&d).map_err(|e| corrupt("delivery", e))?;
            self.deliveries
                .put(format!("{id}.a.{}", next % KEEP_DELIVERIES), value.into())
                .await
                .map_err(|e| failed("logging a delivery attempt", e))?;
            return Ok(next);
        }
        Err(WebhookError::Cluster(format!(
            "logging an attempt of subscription {id}: {CAS_ATTEMPTS} other attempts came in between"
        )))
    }

    async fn deliveries(
        &self,
        id: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookError> {
        if self.entry(id).await?.is_none() {
            return Err(WebhookError::NotFound(id));
        }
        let (last, _) = self.attempts(id).await?;
        let top = before.map_or(last, |b| last.min(b.saturating_sub(1)));
        let oldest = last.saturating_sub(KEEP_DELIVERIES - 1).max(1);
        let wanted: Vec<u64> = (oldest..=top).rev().take(limit).collect();
        let read = futures::future::join_all(wanted.iter().map(|n| {
            self.deliveries
                .get(format!("{id}.a.{}", n % KEEP_DELIVERIES))
        }))
        .await;
        let mut out = Vec::new();
        for (n, value) in wanted.into_iter().zip(read) {
            let value = value.map_err(|e| failed("reading the delivery log", e))?;
            // An attempt counted but not written (the process stopped in between) is skipped.
            let Some(d) = value.and_then(|v| serde_json::from_slice::<Delivery>(&v).ok()) else {
                continue;
            };
            if d.seq == n {
                out.push(d);
            }
        }
        Ok(out)
    }
}
