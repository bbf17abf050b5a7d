//! The log's tamper evidence for every interface: where the signed checkpoints of the hash chain
//! are kept, signing the chain's head, and walking the log with them
//! ([`funnel_store::chain`], [`funnel_store::checkpoint`]). `funnel verify`, `funnel checkpoint`
//! and `GET /verify` call these; `funnel serve` signs the head periodically with
//! [`sign_head`] and keeps the last walk in [`ChainAudit`] for the dashboard.

use crate::auth::Caller;
use crate::error::{AppError, ErrorKind};
use crate::open::StoreUrl;
use chrono::{DateTime, Utc};
use funnel_domain::refusal::RefusalCode;
use funnel_store::EventStore;
use funnel_store::chain::Verification;
use funnel_store::checkpoint::{self, Checkpoint, CheckpointSigner, PublicKey, Witness};
use funnel_store_nats::{NatsCheckpoints, NatsOptions};
use funnel_types::{Position, Role};
use schemars::JsonSchema;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the signed checkpoints of a store are kept when no file is named: beside the embedded
/// store's file (`<store>.checkpoints`), or in the JetStream stream beside the log
/// (`FUNNEL_CHECKPOINTS`).
pub fn default_checkpoints(store: &StoreUrl) -> Checkpoints {
    match store {
        StoreUrl::Sqlite(path) => {
            let mut name = path.as_os_str().to_os_string();
            name.push(".checkpoints");
            Checkpoints::File(PathBuf::from(name))
        }
        StoreUrl::Nats(url) => Checkpoints::Stream(CheckpointStream::new(url)),
    }
}

/// Where signed checkpoints are kept: a file of JSON lines, or a JetStream stream.
#[derive(Clone, Debug)]
pub enum Checkpoints {
    File(PathBuf),
    Stream(CheckpointStream),
}

/// The checkpoint stream beside a JetStream log, connected on first use.
#[derive(Clone, Debug)]
pub struct CheckpointStream {
    options: NatsOptions,
    opened: Arc<tokio::sync::OnceCell<NatsCheckpoints>>,
}

impl CheckpointStream {
    /// The stream beside the default log stream at `url`.
    pub fn new(url: &str) -> CheckpointStream {
        CheckpointStream {
            options: NatsOptions {
                replicas: funnel_store_nats::default_replicas(url),
                ..NatsOptions::new(url)
            },
            opened: Arc::default(),
        }
    }

    /// With `replicas` when the stream is created (`None`: as the log's default for the URL).
    pub fn with_replicas(mut self, replicas: Option<usize>) -> CheckpointStream {
        if let Some(r) = replicas {
            self.options.replicas = r;
        }
        self
    }

    /// Its name on the broker.
    pub fn name(&self) -> String {
        funnel_store_nats::checkpoints_stream(&self.options.stream_name)
    }

    async fn get(&self) -> Result<&NatsCheckpoints, AppError> {
        Ok(self
            .opened
            .get_or_try_init(|| NatsCheckpoints::open(&self.options))
            .await?)
    }
}

impl std::fmt::Display for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checkpoints::File(p) => write!(f, "the file {}", p.display()),
            Checkpoints::Stream(s) => write!(f, "the JetStream stream {}", s.name()),
        }
    }
}

impl Checkpoints {
    /// Every checkpoint in order (a line or message that is not one: why not).
    pub async fn read(&self) -> Result<Vec<Result<Checkpoint, String>>, AppError> {
        match self {
            Checkpoints::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    checkpoint::read(&path).map_err(|e| checkpoint_file_error(&path, &e))
                })
                .await
                .map_err(AppError::internal)?
            }
            Checkpoints::Stream(s) => Ok(s.get().await?.read().await?),
        }
    }

    /// Appends one checkpoint.
    pub async fn append(&self, c: &Checkpoint) -> Result<(), AppError> {
        match self {
            Checkpoints::File(path) => {
                let (path, line) = (path.clone(), c.clone());
                tokio::task::spawn_blocking(move || {
                    checkpoint::append(&path, &line).map_err(|e| {
                        AppError::new(
                            ErrorKind::Unavailable,
                            "chain.checkpoints_unwritable",
                            format!(
                                "the checkpoint file {} cannot be written: {e}",
                                path.display()
                            ),
                            format!("无法写入检查点文件 {}：{e}", path.display()),
                        )
                    })
                })
                .await
                .map_err(AppError::internal)?
            }
            Checkpoints::Stream(s) => Ok(s.get().await?.append(c).await?),
        }
    }

    /// A figure that changes when a checkpoint is added: the file's size, the stream's last
    /// sequence (0 when unknown).
    async fn mark(&self) -> u64 {
        match self {
            Checkpoints::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
            Checkpoints::Stream(s) => match s.get().await {
                Ok(c) => c.count().await.unwrap_or(0),
                Err(_) => 0,
            },
        }
    }
}

/// Where the checkpoints are and whom they are trusted by.
#[derive(Clone, Debug, Default)]
pub struct ChainSettings {
    /// Where checkpoints are kept (`None`: none are read or written).
    pub checkpoints: Option<Checkpoints>,
    /// The key that signs checkpoints (a server that writes them).
    pub signer: Option<Arc<CheckpointSigner>>,
    /// The key checkpoints are checked with; the signer's public half when not given.
    pub public_key: Option<PublicKey>,
}

impl ChainSettings {
    /// The key checkpoints are trusted by.
    pub fn trusted(&self) -> Option<PublicKey> {
        self.public_key
            .or_else(|| self.signer.as_ref().map(|s| s.public()))
    }
}

fn no_chain() -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "chain.not_kept",
        "this store keeps no hash chain",
        "此事件存储没有哈希链",
    )
}

fn checkpoint_file_error(path: &Path, e: &std::io::Error) -> AppError {
    AppError::new(
        ErrorKind::Unavailable,
        "chain.checkpoints_unreadable",
        format!("the checkpoint file {} cannot be read: {e}", path.display()),
        format!("无法读取检查点文件 {}：{e}", path.display()),
    )
}

/// Walks the log from the commit holding `from` and checks the checkpoints of `settings` (when
/// there is a file and a trusted key). `progress` is called with the last position checked.
pub async fn verify(
    store: &dyn EventStore,
    settings: &ChainSettings,
    from: Position,
    progress: Box<dyn FnMut(Position) + Send>,
) -> Result<Verification, AppError> {
    let witness = match (&settings.checkpoints, settings.trusted()) {
        (Some(place), Some(key)) => Some(Witness {
            key,
            lines: place.read().await?,
        }),
        _ => None,
    };
    store
        .verify_chain(from, witness, progress)
        .await?
        .ok_or_else(no_chain)
}

/// Signs the chain's head and appends the checkpoint to `place`, unless the head is `last` (what
/// the caller signed before). `None`: nothing to sign (no chain yet, or no change).
pub async fn sign_head(
    store: &dyn EventStore,
    signer: &Arc<CheckpointSigner>,
    place: &Checkpoints,
    last: Option<Position>,
) -> Result<Option<Checkpoint>, AppError> {
    let Some((position, hash)) = store.chain_head().await? else {
        return Ok(None);
    };
    if last == Some(position) {
        return Ok(None);
    }
    let c = signer.sign(position, &hash, Utc::now());
    place.append(&c).await?;
    Ok(Some(c))
}

/// A walk of the whole log, as the server keeps it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct VerifyReport {
    /// When the walk ended.
    pub verified_at: DateTime<Utc>,
    /// The log's head when the walk started.
    pub head: Position,
    /// Nothing was found wrong (in the log or its checkpoints).
    pub clean: bool,
    /// What the walk found, in English and Chinese, when something is wrong.
    pub message: Option<String>,
    pub message_zh: Option<String>,
    pub verification: Verification,
}

impl VerifyReport {
    fn of(head: Position, verification: Verification) -> VerifyReport {
        let (message, message_zh) = match explain(&verification) {
            Some((en, zh)) => (Some(en), Some(zh)),
            None => (None, None),
        };
        VerifyReport {
            verified_at: Utc::now(),
            head,
            clean: verification.is_clean(),
            message,
            message_zh,
            verification,
        }
    }
}

/// What is wrong, in English and Chinese; `None` when nothing is.
pub fn explain(v: &Verification) -> Option<(String, String)> {
    if let Some(f) = v.first_bad {
        let (en, zh) = f.tamper.explain();
        let at = f.position;
        return Some(match f.until {
            Some(u) => (
                format!("the log was tampered with between positions {at} and {u}: {en}"),
                format!("日志在位置 {at} 至 {u} 之间被篡改：{zh}"),
            ),
            None => (
                format!("the log was tampered with at position {at}: {en}"),
                format!("日志在位置 {at} 被篡改：{zh}"),
            ),
        });
    }
    let bad = v.witness.as_ref()?.bad_checkpoint.as_ref()?;
    Some((
        format!(
            "the checkpoint file was tampered with at line {}: {}",
            bad.line, bad.reason
        ),
        format!("检查点文件第 {} 行被篡改：{}", bad.line, bad.reason_zh),
    ))
}

/// The server's walks of the log: one at a time, the last kept for the dashboard and for
/// callers who ask again before the log or its checkpoints changed.
#[derive(Debug)]
pub struct ChainAudit {
    settings: ChainSettings,
    /// The last walk and the [`Checkpoints::mark`] it read.
    last: Mutex<Option<(VerifyReport, u64)>>,
    /// Held while walking: a second caller waits for the walk under way and takes its answer.
    walking: tokio::sync::Mutex<()>,
}

impl ChainAudit {
    pub fn new(settings: ChainSettings) -> ChainAudit {
        ChainAudit {
            settings,
            last: Mutex::new(None),
            walking: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &ChainSettings {
        &self.settings
    }

    /// The last walk, if any.
    pub fn last(&self) -> Option<VerifyReport> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(r, _)| r.clone())
    }

    /// A walk of the whole log as of now: the last one when neither the log's head nor the
    /// checkpoint file changed since (unless `again`: a new one whatever), else a new one. A
    /// change in place that moves neither is found by the next walk asked for `again` (the
    /// server's periodic walks are).
    pub async fn current(
        &self,
        store: &dyn EventStore,
        again: bool,
    ) -> Result<VerifyReport, AppError> {
        let mark = || async {
            match &self.settings.checkpoints {
                Some(place) => place.mark().await,
                None => 0,
            }
        };
        let fresh = |head: Position, len: u64| {
            if again {
                return None;
            }
            self.last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .filter(|(r, l)| r.head == head && *l == len)
                .map(|(r, _)| r.clone())
        };
        if let Some(r) = fresh(store.head().await?, mark().await) {
            return Ok(r);
        }
        let _walking = self.walking.lock().await;
        let head = store.head().await?;
        let len = mark().await;
        if let Some(r) = fresh(head, len) {
            return Ok(r);
        }
        let v = verify(store, &self.settings, Position(1), Box::new(|_| {})).await?;
        let report = VerifyReport::of(head, v);
        match &report.message {
            Some(m) => tracing::error!(message = %m, "the log's hash chain does not verify"),
            None => tracing::info!(head = %head, "the log's hash chain verifies"),
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((report.clone(), len));
        Ok(report)
    }
}

/// Who may walk the log through the server: the auditor, whose work it is. (At the command line
/// whoever can open the store file walks it with `funnel verify`.)
pub fn check_may_verify(caller: &Caller) -> Result<(), AppError> {
    if caller.role == Role::Auditor {
        return Ok(());
    }
    Err(AppError::forbidden(
        RefusalCode::RoleNotPermitted,
        format!(
            "verifying the log is the auditor's: a {} may not",
            caller.role
        ),
        format!("校验日志由审计人员进行，{}无权操作", caller.role.label_zh()),
    ))
}

/// `GET /verify`: the auditor's walk of the log and its signed checkpoints (`again`: a new walk
/// even if nothing moved since the last).
pub async fn verify_for(
    audit: &ChainAudit,
    store: &dyn EventStore,
    caller: &Caller,
    again: bool,
) -> Result<VerifyReport, AppError> {
    check_may_verify(caller)?;
    audit.current(store, again).await
}
