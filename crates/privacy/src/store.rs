//! A store that seals the personal fields of events as they are appended and opens them as they
//! are read: every reader of the log (the engine, read models, exports, webhooks, the API) goes
//! through it and sees the fields in the clear, or [`funnel_domain::privacy::ERASED`] once their
//! subject's key is destroyed, while the log itself only ever holds the sealed form.
//!
//! Aggregate snapshots (a cache of a fold of one stream, which may hold what the stream's events
//! said of a person) are sealed too, with a key of their stream (`snapshot:<stream>`); erasing a
//! subject also destroys the snapshot keys of the streams that mention them
//! ([`SealedStore::erase`]), so a snapshot taken before an erasure no longer opens and is
//! rebuilt from the log, which reads the marker.

use crate::aead;
use crate::fields::{
    KeyState, Keys, SEALED, SealedSpan, find_sealed, is_sealed, open_payload, open_spans,
    seal_payload, subject_of,
};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_domain::privacy::personal_fields;
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, Filter, RecordedEvent, Snapshot, StoreError,
    SubscriptionItem, chain, checkpoint,
};
use funnel_types::{Position, StreamId, Version};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Where the subject keys are kept, as the store needs them: in batches, asynchronously.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug + 'static {
    /// The keys of `subjects`, each made when there is none (or it was erased).
    async fn for_sealing(
        &self,
        subjects: Vec<String>,
    ) -> Result<HashMap<String, [u8; 32]>, StoreError>;
    /// The keys of `subjects` as they stand.
    async fn for_opening(
        &self,
        subjects: Vec<String>,
    ) -> Result<HashMap<String, KeyState>, StoreError>;
    /// Destroys the subjects' keys; returns those that had one.
    async fn erase(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
    /// When the subject's key was erased, if it is erased now.
    async fn erased_at(&self, subject: String) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// Keys fetched for one batch.
struct Fetched(HashMap<String, KeyState>);

impl Keys for Fetched {
    type Error = StoreError;
    fn key_for_sealing(&mut self, subject: &str) -> Result<[u8; 32], StoreError> {
        match self.0.get(subject) {
            Some(KeyState::Key(k)) => Ok(*k),
            _ => Err(privacy_error(format!("no key was made for {subject}"))),
        }
    }
    fn key_for_opening(&mut self, subject: &str) -> Result<KeyState, StoreError> {
        Ok(self.0.get(subject).copied().unwrap_or(KeyState::Gone))
    }
}

/// A failure of the key store, as a store error.
pub fn privacy_error(message: impl Into<String>) -> StoreError {
    StoreError::Backend {
        backend: "privacy",
        message: message.into(),
    }
}

/// The subjects whose keys sealing `payload` needs.
fn to_seal(event_type: &str, payload: &Value, out: &mut BTreeSet<String>) {
    for f in personal_fields(event_type) {
        let Some(v) = payload.pointer(f.field) else {
            continue;
        };
        if v.is_null() || is_sealed(v) {
            continue;
        }
        if let Some(s) = subject_of(payload, f) {
            out.insert(s);
        }
    }
}

/// The subjects of the sealed fields of `payload`.
fn sealed_in(event_type: &str, payload: &Value, out: &mut BTreeSet<String>) {
    for f in personal_fields(event_type) {
        if let Some(v) = payload.pointer(f.field).filter(|v| is_sealed(v))
            && let Some(s) = v["subject"].as_str()
        {
            out.insert(s.to_string());
        }
    }
}

/// Whether the bytes of a payload may hold a sealed field (a cheap test before parsing).
fn may_hold_sealed(payload: &[u8]) -> bool {
    memchr::memmem::find(payload, SEALED.as_bytes()).is_some()
}

/// The erasures an append records: (subject, the lead stream holding their fields, when).
fn erasures_in(req: &AppendRequest) -> Result<Vec<(String, StreamId, DateTime<Utc>)>, StoreError> {
    let mut out = Vec::new();
    for e in &req.events {
        if e.event_type != ERASED_EVENT {
            continue;
        }
        let bad = |why: &str| StoreError::InvalidRequest(format!("a {ERASED_EVENT} event {why}"));
        let v: Value = serde_json::from_slice(&e.payload).map_err(|_| bad("is not JSON"))?;
        let subject = v["subject"]
            .as_str()
            .ok_or_else(|| bad("names no subject"))?;
        let lead = v["lead_id"].as_str().ok_or_else(|| bad("names no lead"))?;
        let stream = StreamId::new("lead", lead).map_err(|_| bad("names no valid lead"))?;
        out.push((subject.to_string(), stream, e.occurred_at));
    }
    Ok(out)
}

/// The event that records an erasure, which the store carries out.
const ERASED_EVENT: &str = funnel_domain::erasure::SUBJECT_ERASED;

/// The snapshot key's subject of a stream.
pub fn snapshot_subject(stream: &StreamId) -> String {
    format!("snapshot:{stream}")
}

fn snapshot_aad(stream: &StreamId, version: Version) -> Vec<u8> {
    format!("funnel-snapshot-v1\0{stream}\0{}", version.0).into_bytes()
}

/// The log, with personal fields sealed on the way in and opened on the way out.
#[derive(Debug, Clone)]
pub struct SealedStore {
    inner: Arc<dyn EventStore>,
    keys: Arc<dyn KeyStore>,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn EventStore>, keys: Arc<dyn KeyStore>) -> SealedStore {
        SealedStore { inner, keys }
    }

    /// The log as stored, fields sealed (for copies that leave Funnel's control, and for tests).
    pub fn raw(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }

    /// The key store.
    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// Opens the sealed fields of `events` in place. Most payloads are opened where they lie
    /// ([`find_sealed`], [`open_spans`]); the few that reading in place does not take are opened
    /// as values, with the same outcome.
    async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        enum Found {
            Spans(Vec<SealedSpan>),
            Value(Value),
        }
        let mut found: Vec<(usize, Found)> = Vec::new();
        let mut subjects = BTreeSet::new();
        for (i, e) in events.iter().enumerate() {
            if personal_fields(&e.meta.event_type).is_empty() || !may_hold_sealed(&e.payload) {
                continue;
            }
            if let Some(spans) = find_sealed(&e.meta.event_type, &e.payload) {
                if spans.is_empty() {
                    continue;
                }
                subjects.extend(spans.iter().map(|s| s.subject.clone()));
                found.push((i, Found::Spans(spans)));
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&e.payload) else {
                continue;
            };
            sealed_in(&e.meta.event_type, &v, &mut subjects);
            found.push((i, Found::Value(v)));
        }
        if subjects.is_empty() {
            return Ok(());
        }
        let mut keys = Fetched(
            self.keys
                .for_opening(subjects.into_iter().collect())
                .await?,
        );
        for (i, f) in found {
            let e = &mut events[i];
            let id = e.meta.event_id.to_string();
            e.payload = match f {
                Found::Spans(spans) => {
                    Bytes::from(open_spans(&id, &e.payload, &spans, &mut keys)?.0)
                }
                Found::Value(mut v) => {
                    open_payload(&e.meta.event_type, &id, &mut v, &mut keys)?;
                    Bytes::from(serde_json::to_vec(&v).expect("a JSON value serialises"))
                }
            };
        }
        Ok(())
    }

    /// Seals the personal fields of an append in place.
    async fn seal(&self, req: &mut AppendRequest) -> Result<(), StoreError> {
        let mut parsed: Vec<(usize, Value)> = Vec::new();
        let mut subjects = BTreeSet::new();
        for (i, e) in req.events.iter().enumerate() {
            if personal_fields(&e.event_type).is_empty() {
                continue;
            }
            let v = serde_json::from_slice::<Value>(&e.payload).map_err(|err| {
                StoreError::InvalidRequest(format!(
                    "the payload of {} is not JSON: {err}",
                    e.event_type
                ))
            })?;
            to_seal(&e.event_type, &v, &mut subjects);
            parsed.push((i, v));
        }
        if subjects.is_empty() {
            return Ok(());
        }
        let keys = self
            .keys
            .for_sealing(subjects.into_iter().collect())
            .await?;
        let mut keys = Fetched(
            keys.into_iter()
                .map(|(s, k)| (s, KeyState::Key(k)))
                .collect(),
        );
        for (i, mut v) in parsed {
            let e = &mut req.events[i];
            seal_payload(&e.event_type, &e.event_id.to_string(), &mut v, &mut keys)?;
            e.payload = Bytes::from(serde_json::to_vec(&v).expect("a JSON value serialises"));
        }
        Ok(())
    }

    /// Erases `subject`: destroys its key and the snapshot keys of `streams` (those whose events
    /// mention the subject). Returns whether the subject had a key.
    pub async fn erase(
        &self,
        subject: &str,
        streams: &[StreamId],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut all = vec![subject.to_string()];
        all.extend(streams.iter().map(snapshot_subject));
        let erased = self.keys.erase(all, at).await?;
        Ok(erased.iter().any(|s| s == subject))
    }
}

#[async_trait]
impl EventStore for SealedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    /// Seals the personal fields, appends, and carries out the erasures the append records
    /// (`privacy.subject_erased`): once the record is in the log, the person's key and the
    /// snapshot key of their lead's stream are destroyed. Destroying is idempotent, so a retry of
    /// the same command (answered as a duplicate) completes an erasure a failure interrupted.
    async fn append(&self, mut req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let erasures = erasures_in(&req)?;
        self.seal(&mut req).await?;
        let outcome = self.inner.append(req).await?;
        for (subject, stream, at) in erasures {
            self.erase(&subject, &[stream], at).await?;
        }
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.inner.read_stream(stream, from, max).await?;
        self.open(&mut events).await?;
        Ok(events)
    }

    async fn read_stream_near(
        &self,
        stream: &StreamId,
        from: Version,
        near: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.inner.read_stream_near(stream, from, near, max).await?;
        self.open(&mut events).await?;
        Ok(events)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.inner.read_all(after, filter, max).await?;
        self.open(&mut events).await?;
        Ok(events)
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    async fn wait_for_append(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.wait_for_append(after, timeout).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let subject = snapshot_subject(&snapshot.stream);
        let keys = self.keys.for_sealing(vec![subject.clone()]).await?;
        let key = keys
            .get(&subject)
            .ok_or_else(|| privacy_error(format!("no key was made for {subject}")))?;
        let data = aead::seal(
            key,
            &snapshot_aad(&snapshot.stream, snapshot.version),
            &snapshot.data,
        );
        self.inner
            .save_snapshot(Snapshot {
                data: Bytes::from(data),
                ..snapshot
            })
            .await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let Some(s) = self.inner.load_snapshot(stream).await? else {
            return Ok(None);
        };
        let subject = snapshot_subject(stream);
        let keys = self.keys.for_opening(vec![subject.clone()]).await?;
        // A snapshot whose key is gone (erased), or that was not sealed by this store (taken
        // before sealing was turned on), is not used: the reader rebuilds from the log.
        let Some(KeyState::Key(key)) = keys.get(&subject) else {
            return Ok(None);
        };
        Ok(
            aead::open(key, &snapshot_aad(stream, s.version), &s.data).map(|data| Snapshot {
                data: Bytes::from(data),
                ..s
            }),
        )
    }

    async fn chain_head(&self) -> Result<Option<(Position, chain::ChainHash)>, StoreError> {
        self.inner.chain_head().await
    }

    async fn verify_chain(
        &self,
        from: Position,
        witness: Option<checkpoint::Witness>,
        progress: Box<dyn FnMut(Position) + Send>,
    ) -> Result<Option<chain::Verification>, StoreError> {
        self.inner.verify_chain(from, witness, progress).await
    }

    fn subscribe(
        self: Arc<Self>,
        after: Position,
        filter: Filter,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        let this = self.clone();
        self.inner
            .clone()
            .subscribe(after, filter)
            .then(move |item| {
                let this = this.clone();
                async move {
                    match item? {
                        SubscriptionItem::Event(e) => {
                            let mut one = [e];
                            this.open(&mut one).await?;
                            let [e] = one;
                            Ok(SubscriptionItem::Event(e))
                        }
                        other => Ok(other),
                    }
                }
            })
            .boxed()
    }
}
