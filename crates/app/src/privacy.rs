//! Personal fields sealed with a key per data subject (`funnel_privacy`): which key store a log
//! uses, and the store every interface reads through.
//!
//! Sealing is on when a master key file is given (`--privacy-key-file`, `FUNNEL_PRIVACY_KEY_FILE`,
//! or `privacy.master_key_file` of `funnel serve`). The subject keys of the embedded store live
//! in `<store>.keys` (or the file given), those of a JetStream log in its `<stream>_KEYS` bucket
//! ([`NatsKeyStore`]), each wrapped by the master key. A log whose key file or bucket has ever
//! held a key is refused without the master key: reading it would show sealed fields where
//! names belong.

use chrono::{DateTime, Utc};
use funnel_domain::privacy::{PersonalField, SubjectKind, personal_fields};
pub use funnel_privacy::SealedStore;
use funnel_privacy::store::privacy_error;
use funnel_privacy::{KeyState, KeyStore, SqliteKeyStore, subject_of};
use funnel_store::{EventStore, Filter, RecordedEvent, StoreError};
use funnel_store_nats::KeyRecord;
use funnel_types::{Position, StreamId};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::StoreUrl;

/// Where the keys are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivacySettings {
    /// The master key that wraps every subject key (32 bytes, hex or raw; readable by its owner
    /// only). None: personal fields are not sealed.
    pub master_key_file: Option<PathBuf>,
    /// The subject keys of the embedded store; none: `<store>.keys`.
    pub keys_file: Option<PathBuf>,
}

static DEFAULT: OnceLock<PrivacySettings> = OnceLock::new();

/// Sets the settings [`crate::open_store`] uses, once per process (the command line's flags).
pub fn set_default(settings: PrivacySettings) {
    let _ = DEFAULT.set(settings);
}

/// The settings [`crate::open_store`] uses.
pub fn default_settings() -> PrivacySettings {
    DEFAULT.get().cloned().unwrap_or_default()
}

/// The subject keys' file of an embedded store at `store`: `<store>.keys`.
pub fn default_keys_file(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".keys");
    PathBuf::from(name)
}

fn refused(message: String) -> StoreError {
    StoreError::InvalidRequest(message)
}

/// The subject keys of the embedded store at `path`, wrapped by the settings' master key.
async fn key_store(path: &Path, settings: &PrivacySettings) -> Result<SqliteKeyStore, StoreError> {
    let keys_file = settings
        .keys_file
        .clone()
        .unwrap_or_else(|| default_keys_file(path));
    let master_file = settings.master_key_file.clone().unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let master = funnel_store::keyfile::load(&master_file)
            .map_err(|e| refused(format!("the privacy master key: {e}")))?;
        SqliteKeyStore::open(&keys_file, master)
            .map_err(|e| privacy_error(format!("{}: {e}", keys_file.display())))
    })
    .await
    .map_err(|e| privacy_error(e.to_string()))?
}

/// `store` as every interface should read it: sealing and opening personal fields when the
/// settings give a master key; refused when the log has sealed fields and no key is given.
pub async fn wrap(
    url: &StoreUrl,
    store: Arc<dyn EventStore>,
    settings: &PrivacySettings,
) -> Result<Arc<dyn EventStore>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => {
            let keys_file = settings
                .keys_file
                .clone()
                .unwrap_or_else(|| default_keys_file(path));
            if settings.master_key_file.is_none() {
                let path = keys_file.clone();
                let held = tokio::task::spawn_blocking(move || {
                    funnel_privacy::SubjectKeys::ever_held_keys(&path)
                })
                .await
                .map_err(|e| privacy_error(e.to_string()))?
                .map_err(|e| privacy_error(format!("{}: {e}", keys_file.display())))?;
                if held {
                    return Err(refused(format!(
                        "this log's personal fields are sealed with the keys in {}: give the master key \
                         with --privacy-key-file, FUNNEL_PRIVACY_KEY_FILE or privacy.master_key_file\n\
                         错误：此日志的个人信息已用 {} 中的密钥加密，请提供主密钥（--privacy-key-file、\
                         FUNNEL_PRIVACY_KEY_FILE 或 privacy.master_key_file）",
                        keys_file.display(),
                        keys_file.display()
                    )));
                }
                return Ok(store);
            }
            let keys = key_store(path, settings).await?;
            Ok(Arc::new(SealedStore::new(store, Arc::new(keys))))
        }
        StoreUrl::Nats(url) => {
            if settings.master_key_file.is_none() {
                if NatsKeyStore::bucket_exists(url).await? {
                    return Err(refused(format!(
                        "this log's personal fields are sealed with the keys in the bucket {}: give \
                         the master key with --privacy-key-file, FUNNEL_PRIVACY_KEY_FILE or \
                         privacy.master_key_file\n\
                         错误：此日志的个人信息已用存储桶 {} 中的密钥加密，请提供主密钥（--privacy-key-file、\
                         FUNNEL_PRIVACY_KEY_FILE 或 privacy.master_key_file）",
                        NatsKeyStore::bucket(),
                        NatsKeyStore::bucket()
                    )));
                }
                return Ok(store);
            }
            let keys = NatsKeyStore::connect(url, settings).await?;
            Ok(Arc::new(SealedStore::new(store, Arc::new(keys))))
        }
    }
}

/// The keys of a JetStream log's people in its key bucket (`funnel_store_nats::NatsKeyBucket`),
/// wrapped and unwrapped here with the master key, which never reaches the cluster. Nothing is
/// cached: every process on the log sees an erasure by any of them at its next read, and none
/// seals with a key another has destroyed. The keys of a batch are fetched concurrently.
#[derive(Debug)]
pub struct NatsKeyStore {
    bucket: funnel_store_nats::NatsKeyBucket,
    master: [u8; 32],
}

/// Key fetches in flight at once.
const KEY_FETCHES: usize = 32;

impl NatsKeyStore {
    fn options(url: &str) -> funnel_store_nats::NatsOptions {
        funnel_store_nats::NatsOptions::new(url.to_string())
    }

    /// The bucket's name for the default log stream.
    pub fn bucket() -> String {
        funnel_store_nats::keys_bucket(&Self::options("nats://localhost").stream_name)
    }

    /// Whether the log at `url` has a key bucket that has ever held a key.
    async fn bucket_exists(url: &str) -> Result<bool, StoreError> {
        let o = Self::options(url);
        funnel_store_nats::NatsKeyBucket::ever_held_keys(url, &o.stream_name, o.request_timeout)
            .await
    }

    async fn connect(url: &str, settings: &PrivacySettings) -> Result<NatsKeyStore, StoreError> {
        let master_file = settings.master_key_file.clone().unwrap_or_default();
        let master = tokio::task::spawn_blocking(move || funnel_store::keyfile::load(&master_file))
            .await
            .map_err(|e| privacy_error(e.to_string()))?
            .map_err(|e| refused(format!("the privacy master key: {e}")))?;
        let o = Self::options(url);
        let bucket = funnel_store_nats::NatsKeyBucket::connect(
            url,
            &o.stream_name,
            funnel_store_nats::default_replicas(url),
            o.request_timeout,
        )
        .await?;
        Ok(NatsKeyStore { bucket, master })
    }

    fn unwrap(&self, subject: &str, wrapped: &[u8]) -> Result<[u8; 32], StoreError> {
        funnel_privacy::subjects::unwrap_key(&self.master, subject, wrapped).ok_or_else(|| {
            privacy_error(format!(
                "the key of {subject} does not open with this master key (another master key, or \
                 the bucket was edited)\n错误：{subject} 的密钥无法用此主密钥解开（主密钥不同，或存储桶被修改）"
            ))
        })
    }

    async fn sealing_key(&self, subject: String) -> Result<(String, [u8; 32]), StoreError> {
        let wrapped = match self.bucket.get(&subject).await? {
            Some(KeyRecord::Wrapped(w)) => w,
            _ => {
                let key: [u8; 32] = rand::random();
                let wrapped = funnel_privacy::subjects::wrap_key(&self.master, &subject, &key);
                self.bucket.create(&subject, wrapped).await?
            }
        };
        let key = self.unwrap(&subject, &wrapped)?;
        Ok((subject, key))
    }

    async fn opening_key(&self, subject: String) -> Result<(String, KeyState), StoreError> {
        let state = match self.bucket.get(&subject).await? {
            Some(KeyRecord::Wrapped(w)) => KeyState::Key(self.unwrap(&subject, &w)?),
            _ => KeyState::Gone,
        };
        Ok((subject, state))
    }
}

#[async_trait::async_trait]
impl KeyStore for NatsKeyStore {
    async fn for_sealing(
        &self,
        subjects: Vec<String>,
    ) -> Result<HashMap<String, [u8; 32]>, StoreError> {
        futures::stream::iter(subjects.into_iter().map(|s| self.sealing_key(s)))
            .buffer_unordered(KEY_FETCHES)
            .try_collect()
            .await
    }

    async fn for_opening(
        &self,
        subjects: Vec<String>,
    ) -> Result<HashMap<String, KeyState>, StoreError> {
        futures::stream::iter(subjects.into_iter().map(|s| self.opening_key(s)))
            .buffer_unordered(KEY_FETCHES)
            .try_collect()
            .await
    }

    async fn erase(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut erased = Vec::new();
        for s in subjects {
            if self.bucket.erase(&s, at).await? {
                erased.push(s);
            }
        }
        Ok(erased)
    }

    async fn erased_at(&self, subject: String) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(match self.bucket.get(&subject).await? {
            Some(KeyRecord::Erased(at)) => Some(at),
            _ => None,
        })
    }
}

/// Opens the store `url` names with sealing on (a master key must be given): for erasing and
/// exporting a person's data.
pub async fn open_sealed(
    url: &StoreUrl,
    settings: &PrivacySettings,
) -> Result<Arc<SealedStore>, StoreError> {
    open_sealed_with(url, None, settings).await
}

/// [`open_sealed`] with the JetStream replicas of the log when it is created (`None`: the
/// default for the URL).
pub async fn open_sealed_with(
    url: &StoreUrl,
    replicas: Option<usize>,
    settings: &PrivacySettings,
) -> Result<Arc<SealedStore>, StoreError> {
    if settings.master_key_file.is_none() {
        return Err(refused(
            "give the privacy master key (--privacy-key-file or FUNNEL_PRIVACY_KEY_FILE)\n\
             错误：请提供个人信息主密钥（--privacy-key-file 或 FUNNEL_PRIVACY_KEY_FILE）"
                .into(),
        ));
    }
    let store = crate::open::open_log(url, replicas).await?;
    let keys: Arc<dyn KeyStore> = match url {
        StoreUrl::Sqlite(path) => Arc::new(key_store(path, settings).await?),
        StoreUrl::Nats(u) => Arc::new(NatsKeyStore::connect(u, settings).await?),
    };
    Ok(Arc::new(SealedStore::new(store, keys)))
}

/// A data subject: a lead's contact (`contact:<lead id>`) or a key person
/// (`key_person:<key person id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject(String);

impl std::str::FromStr for Subject {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let ok = [SubjectKind::LeadContact, SubjectKind::KeyPerson]
            .iter()
            .any(|k| {
                s.strip_prefix(k.prefix())
                    .and_then(|r| r.strip_prefix(':'))
                    .is_some_and(|id| {
                        !id.is_empty()
                            && id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    })
            });
        if ok {
            Ok(Subject(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a data subject: give contact:<lead id> or key_person:<key person id>\n\
                 错误：`{s}` 不是个人信息主体：请写 contact:<线索编号> 或 key_person:<关键人编号>"
            ))
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Subject {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One personal field about a subject, as an access request returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportedField {
    pub position: Position,
    pub event_id: String,
    pub event_type: String,
    pub stream: String,
    pub occurred_at: DateTime<Utc>,
    /// JSON pointer of the field in the event's payload.
    pub field: String,
    /// The value, or the erased marker.
    pub value: Value,
}

/// What the log holds about a subject.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubjectData {
    pub subject: String,
    /// When its key was erased, if it is.
    pub erased_at: Option<DateTime<Utc>>,
    pub fields: Vec<ExportedField>,
}

/// Every personal field about `subject` in the log (read through `store`, which opens them),
/// in log order. `progress` is told the last position read.
pub async fn subject_data(
    store: &SealedStore,
    subject: &Subject,
    progress: &mut (dyn FnMut(Position) + Send),
) -> Result<SubjectData, StoreError> {
    let mut fields = Vec::new();
    personal_fields_in(store, progress, |e, f, payload, v| {
        if subject_of(payload, f).as_deref() == Some(subject.as_str()) {
            fields.push(ExportedField {
                position: e.meta.position,
                event_id: e.meta.event_id.to_string(),
                event_type: e.meta.event_type.clone(),
                stream: e.meta.stream.to_string(),
                occurred_at: e.meta.occurred_at,
                field: f.field.to_string(),
                value: v.clone(),
            });
        }
    })
    .await?;
    let erased_at = store.keys().erased_at(subject.to_string()).await?;
    Ok(SubjectData {
        subject: subject.to_string(),
        erased_at,
        fields,
    })
}

/// Calls `visit` with every personal field that is not null of the lead streams of `store`
/// (event, field, payload, value), in log order; `progress` is told the last position read.
async fn personal_fields_in(
    store: &dyn EventStore,
    progress: &mut (dyn FnMut(Position) + Send),
    mut visit: impl FnMut(&RecordedEvent, &PersonalField, &Value, &Value),
) -> Result<(), StoreError> {
    let mut after = Position::START;
    let filter = Filter::category("lead");
    loop {
        let batch = store.read_all(after, &filter, 1024).await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.meta.position;
        for e in &batch {
            let personal = personal_fields(&e.meta.event_type);
            if personal.is_empty() {
                continue;
            }
            let Ok(payload) = serde_json::from_slice::<Value>(&e.payload) else {
                continue;
            };
            for f in personal {
                if let Some(v) = payload.pointer(f.field).filter(|v| !v.is_null()) {
                    visit(e, f, &payload, v);
                }
            }
        }
        progress(after);
    }
}

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Erased {
    pub subject: String,
    /// Whether the subject had a key (false: erased before, or never written sealed).
    pub key_destroyed: bool,
    /// Fields of the subject in the log, now unreadable.
    pub fields: usize,
    /// Fields about them written in the clear (before sealing was turned on): an erasure cannot
    /// reach them; migrate the log (README: "Personal data") to erase them too.
    pub in_the_clear: usize,
    /// The streams whose snapshots were invalidated.
    pub streams: Vec<String>,
    pub at: DateTime<Utc>,
}

/// Destroys `subject`'s key, and the snapshot keys of the streams that mention them.
pub async fn erase(
    store: &SealedStore,
    subject: &Subject,
    at: DateTime<Utc>,
    progress: &mut (dyn FnMut(Position) + Send),
) -> Result<Erased, StoreError> {
    // What is sealed for them, and where, as the log stores it.
    let mut streams = std::collections::BTreeSet::new();
    let (mut sealed, mut clear) = (0, 0);
    personal_fields_in(store.raw().as_ref(), progress, |e, f, payload, v| {
        if funnel_privacy::fields::is_sealed(v) {
            if v["subject"].as_str() == Some(subject.as_str()) {
                sealed += 1;
                streams.insert(e.meta.stream.clone());
            }
        } else if subject_of(payload, f).as_deref() == Some(subject.as_str()) {
            clear += 1;
            streams.insert(e.meta.stream.clone());
        }
    })
    .await?;
    let streams: Vec<StreamId> = streams.into_iter().collect();
    let key_destroyed = store.erase(subject.as_str(), &streams, at).await?;
    Ok(Erased {
        subject: subject.to_string(),
        key_destroyed,
        fields: sealed,
        in_the_clear: clear,
        streams: streams.iter().map(ToString::to_string).collect(),
        at,
    })
}

/// Writes a new master key (32 random bytes) to `path`, readable by its owner only; never
/// replaces a file.
pub fn keygen(path: &Path) -> Result<(), funnel_store::keyfile::KeyFileError> {
    let key: [u8; 32] = rand::random();
    funnel_store::keyfile::create(path, &key)
}

/// A lead whose people the retention policy erases: it ended (lost, suspended, or its contract
/// signed, and not reactivated since) and nothing happened on it for the policy's years.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expired {
    pub stream: String,
    /// How it ended: `lead.lost`, `lead.suspended` or `lead.contract_signed`.
    pub ended_by: String,
    /// When anything last happened on the lead.
    pub last_activity: DateTime<Utc>,
    /// Its people: the contact, then its key persons, as the log names them.
    pub subjects: Vec<String>,
}

#[derive(Default)]
struct LeadLife {
    ended_by: Option<String>,
    last: Option<DateTime<Utc>>,
    subjects: std::collections::BTreeSet<String>,
}

/// The leads the retention policy reaches: ended, with nothing on them after `cutoff`, in log
/// order of their streams' first events. `progress` is told the last position read.
pub async fn expired_leads(
    store: &SealedStore,
    cutoff: DateTime<Utc>,
    progress: &mut (dyn FnMut(Position) + Send),
) -> Result<Vec<Expired>, StoreError> {
    let mut leads: Vec<(StreamId, LeadLife)> = Vec::new();
    let mut index: HashMap<StreamId, usize> = HashMap::new();
    let mut after = Position::START;
    let filter = Filter::category("lead");
    loop {
        // As stored: the subjects are named by the sealed fields, and nothing needs opening.
        let batch = store.raw().read_all(after, &filter, 1024).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for e in &batch {
            let i = *index.entry(e.meta.stream.clone()).or_insert_with(|| {
                leads.push((e.meta.stream.clone(), LeadLife::default()));
                leads.len() - 1
            });
            let life = &mut leads[i].1;
            life.last = Some(
                life.last
                    .map_or(e.meta.occurred_at, |l| l.max(e.meta.occurred_at)),
            );
            match e.meta.event_type.as_str() {
                t @ ("lead.lost" | "lead.suspended" | "lead.contract_signed") => {
                    life.ended_by = Some(t.to_string());
                }
                "lead.reactivated" => life.ended_by = None,
                _ => {}
            }
            let personal = personal_fields(&e.meta.event_type);
            if personal.is_empty() {
                continue;
            }
            let Ok(payload) = serde_json::from_slice::<Value>(&e.payload) else {
                continue;
            };
            for f in personal {
                let Some(v) = payload.pointer(f.field).filter(|v| !v.is_null()) else {
                    continue;
                };
                let subject = if funnel_privacy::fields::is_sealed(v) {
                    v["subject"].as_str().map(str::to_string)
                } else {
                    subject_of(&payload, f)
                };
                life.subjects.extend(subject);
            }
        }
        progress(after);
    }
    Ok(leads
        .into_iter()
        .filter_map(|(stream, life)| {
            let (ended_by, last) = (life.ended_by?, life.last?);
            (last < cutoff && !life.subjects.is_empty()).then(|| {
                // The contact first.
                let mut subjects: Vec<String> = life.subjects.into_iter().collect();
                subjects.sort_by_key(|s| !s.starts_with("contact:"));
                Expired {
                    stream: stream.to_string(),
                    ended_by,
                    last_activity: last,
                    subjects,
                }
            })
        })
        .collect())
}

/// Records in the log that `subject`'s key is destroyed, by the system `who` (the command line
/// or the server's retention policy), with `reason` (`privacy.subject_erased`). The store under
/// `engine` carries the erasure out as it appends the record (a [`SealedStore`] destroys the key);
/// the audit keeps who and why, and every running server drops what its read models and caches
/// hold of the person. `streams` are the lead streams that mention them; nothing is recorded
/// (`false`) when none does.
pub async fn record_erasure(
    engine: &funnel_engine::Engine,
    who: &str,
    subject: &str,
    streams: &[String],
    reason: &str,
) -> Result<bool, funnel_engine::EngineError> {
    let Some(lead_id) = streams
        .iter()
        .find_map(|s| s.strip_prefix("lead-"))
        .and_then(|id| id.parse().ok())
        .map(funnel_types::LeadId)
    else {
        return Ok(false);
    };
    engine
        .execute(
            funnel_engine::CommandMeta::new(funnel_engine::Who::System(who.to_string())),
            funnel_engine::Command::Erasure {
                erasure_id: uuid::Uuid::now_v7(),
                cmd: funnel_domain::erasure::ErasureCommand::Record {
                    subject: subject.to_string(),
                    lead_id,
                    reason: reason.to_string(),
                },
            },
        )
        .await?;
    Ok(true)
}

/// What one run of the retention policy found and did.
#[derive(Clone, Debug, Serialize)]
pub struct RetentionRun {
    pub years: u32,
    /// Leads with nothing on them since this moment are reached.
    pub cutoff: DateTime<Utc>,
    /// Whether the people found were erased (or only listed).
    pub applied: bool,
    pub leads: Vec<Expired>,
    /// The people whose key this run destroyed (the others were erased before).
    pub erased: Vec<String>,
}

/// A retention run that stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording the erasure of {subject}: {source}")]
    Record {
        subject: String,
        #[source]
        source: funnel_engine::EngineError,
    },
}

/// Runs the retention policy of `years` years at `now`: finds the leads it reaches
/// ([`expired_leads`]) and, given `apply` (an engine appending to `store`, and the system name
/// recorded as who erased), records the erasure of each of their people whose key still exists,
/// which destroys it. A person erased before is left alone, so a run can be repeated.
pub async fn retention(
    store: &SealedStore,
    years: u32,
    now: DateTime<Utc>,
    apply: Option<(&funnel_engine::Engine, &str)>,
    progress: &mut (dyn FnMut(Position) + Send),
) -> Result<RetentionRun, RetentionError> {
    let cutoff = retention_cutoff(now, years);
    let leads = expired_leads(store, cutoff, progress).await?;
    let mut erased = Vec::new();
    if let Some((engine, who)) = apply {
        for lead in &leads {
            let keys = store.keys().for_opening(lead.subjects.clone()).await?;
            for subject in &lead.subjects {
                if !matches!(keys.get(subject), Some(KeyState::Key(_))) {
                    continue;
                }
                let reason = format!(
                    "retention: the lead ended ({}) and nothing happened on it for {years} year(s)",
                    lead.ended_by
                );
                let recorded = record_erasure(
                    engine,
                    who,
                    subject,
                    std::slice::from_ref(&lead.stream),
                    &reason,
                )
                .await
                .map_err(|source| RetentionError::Record {
                    subject: subject.clone(),
                    source,
                })?;
                if recorded {
                    erased.push(subject.clone());
                }
            }
        }
    }
    Ok(RetentionRun {
        years,
        cutoff,
        applied: apply.is_some(),
        leads,
        erased,
    })
}

/// When the retention policy's window of `years` years before `now` starts.
pub fn retention_cutoff(now: DateTime<Utc>, years: u32) -> DateTime<Utc> {
    now.checked_sub_months(chrono::Months::new(years.saturating_mul(12)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
