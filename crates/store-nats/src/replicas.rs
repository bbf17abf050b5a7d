//! Replicas of Funnel's JetStream streams (the log, and the notification stream beside it): the
//! default for a URL, creating a stream with the replicas asked for (or saying clearly why the
//! cluster cannot hold them), reporting an existing stream whose replicas differ from the setting
//! without changing it, and changing them when the operator asks ([`set_replicas`]), with progress.
//!
//! An existing stream keeps its replicas at start because changing them moves the whole stream
//! to new peers (or away from them), which takes time proportional to its size; that is an
//! operator's decision (`funnel store set-replicas N`), not a side effect of starting a process.

use crate::connect::{backend, server_addrs, unavailable};
use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind, stream};
use funnel_store::StoreError;
use std::time::{Duration, Instant};

/// The replicas a stream gets when the setting is absent: 3 when the URL names several cluster
/// members (the smallest group that survives losing a node), 1 for a single server.
pub fn default_replicas(url: &str) -> usize {
    let members = url.split(',').filter(|u| !u.trim().is_empty()).count();
    if members > 1 { 3 } else { 1 }
}

/// An existing stream whose replicas differ from the ones asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaMismatch {
    pub stream: String,
    /// The stream's replicas on the broker.
    pub actual: usize,
    /// The replicas the setting asks for.
    pub wanted: usize,
}

impl std::fmt::Display for ReplicaMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JetStream stream {} has {} replica(s) but the setting asks for {}; it is left as it \
             is, because changing replicas copies the whole stream: run `funnel store \
             set-replicas {} --stream {}` (with the same --store) when ready, or set the \
             replicas to {} to silence this",
            self.stream, self.actual, self.wanted, self.wanted, self.stream, self.actual
        )
    }
}

/// A stream of `subjects` that keeps every message: file storage, no limits at all (so the discard
/// policy never drops anything), no deletes, purges or rollups, with `replicas` when created.
pub(crate) fn keeping_everything(
    name: &str,
    description: &str,
    subjects: Vec<String>,
    replicas: usize,
) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        description: Some(description.to_string()),
        subjects,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        ..Default::default()
    }
}

/// Whether a JetStream error says the cluster cannot place the replicas asked for.
fn cannot_place(code: ErrorCode) -> bool {
    code == ErrorCode::INSUFFICIENT_RESOURCES
        || code == ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED
        || code == ErrorCode::CLUSTER_NO_PEERS
}

/// The error for a stream the cluster cannot hold with `replicas` replicas.
fn too_few_servers(
    name: &str,
    replicas: usize,
    url: &str,
    why: impl std::fmt::Display,
) -> StoreError {
    StoreError::InvalidRequest(format!(
        "cannot create JetStream stream {name} with {replicas} replicas on {url}: the cluster \
         has fewer than {replicas} JetStream servers that can hold it ({why}); start the missing \
         cluster members, or ask for fewer replicas (store.replicas, FUNNEL__STORE__REPLICAS or \
         --replicas; 1 on a single server)"
    ))
}

/// Makes sure the stream `config` describes exists. A missing stream is created with
/// `config.num_replicas`; an existing one is updated with `config` (when `update`) but keeps its
/// own replicas, and a difference is returned (and logged as a warning) rather than applied.
pub(crate) async fn prepare_stream(
    context: &jetstream::Context,
    mut config: stream::Config,
    url: &str,
    update: bool,
) -> Result<Option<ReplicaMismatch>, StoreError> {
    let wanted = config.num_replicas;
    match context.get_stream(&config.name).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| unavailable(format!("stream {} info: {e}", config.name)))?;
            let actual = info.config.num_replicas.max(1);
            config.num_replicas = actual;
            if update {
                context.update_stream(config.clone()).await.map_err(|e| {
                    backend(format!(
                        "cannot update JetStream stream {}: {e}",
                        config.name
                    ))
                })?;
            }
            if actual == wanted {
                return Ok(None);
            }
            let mismatch = ReplicaMismatch {
                stream: config.name.clone(),
                actual,
                wanted,
            };
            tracing::warn!(stream = %mismatch.stream, actual, wanted, "{mismatch}");
            Ok(Some(mismatch))
        }
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j)
                if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            match context.create_stream(config.clone()).await {
                Ok(_) => Ok(None),
                Err(e) => match e.kind() {
                    jetstream::context::CreateStreamErrorKind::JetStream(j)
                        if wanted > 1 && cannot_place(j.error_code()) =>
                    {
                        Err(too_few_servers(&config.name, wanted, url, j))
                    }
                    _ => Err(backend(format!(
                        "cannot create JetStream stream {}: {e}",
                        config.name
                    ))),
                },
            }
        }
        Err(e) => Err(backend(format!(
            "cannot look up JetStream stream {}: {e}",
            config.name
        ))),
    }
}

/// Where a change of replicas stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaProgress {
    pub stream: String,
    /// The replicas asked for.
    pub wanted: usize,
    /// The stream's leader, when it has one.
    pub leader: Option<String>,
    /// The other peers: name, whether it is current, how many operations it is behind.
    pub peers: Vec<(String, bool, u64)>,
    /// Messages in the stream.
    pub messages: u64,
}

impl ReplicaProgress {
    /// Every replica is placed and current.
    pub fn done(&self) -> bool {
        self.leader.is_some()
            && self.peers.len() + 1 == self.wanted
            && self.peers.iter().all(|(_, current, _)| *current)
    }
}

impl std::fmt::Display for ReplicaProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current =
            self.peers.iter().filter(|(_, c, _)| *c).count() + usize::from(self.leader.is_some());
        write!(
            f,
            "{}: {current} of {} replicas current ({} messages), leader {}",
            self.stream,
            self.wanted,
            self.messages,
            self.leader.as_deref().unwrap_or("(electing)")
        )?;
        for (name, current, lag) in &self.peers {
            let state = if *current { "current" } else { "catching up" };
            write!(f, "; {name} {state}, {lag} behind")?;
        }
        Ok(())
    }
}

/// Connects to `url` (several members separated by commas) for an administrative call.
async fn admin_context(url: &str, timeout: Duration) -> Result<jetstream::Context, StoreError> {
    let client = async_nats::ConnectOptions::new()
        .name("funnel-admin")
        .connection_timeout(timeout)
        .connect(server_addrs(url)?)
        .await
        .map_err(|e| unavailable(format!("cannot connect to {url}: {e}")))?;
    Ok(jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client))
}

/// The state of a stream's replicas as its leader reports it.
async fn progress(
    context: &jetstream::Context,
    name: &str,
    wanted: usize,
) -> Result<ReplicaProgress, StoreError> {
    let mut s = context
        .get_stream(name)
        .await
        .map_err(|e| unavailable(format!("stream {name}: {e}")))?;
    let info = s
        .info()
        .await
        .map_err(|e| unavailable(format!("stream {name} info: {e}")))?;
    let cluster = info.cluster.clone().unwrap_or_default();
    Ok(ReplicaProgress {
        stream: name.to_string(),
        wanted,
        leader: cluster.leader.clone(),
        peers: cluster
            .replicas
            .iter()
            .map(|p| (p.name.clone(), p.current && !p.offline, p.lag.unwrap_or(0)))
            .collect(),
        messages: info.state.messages,
    })
}

/// The replicas of stream `name` now.
pub async fn stream_replicas(url: &str, name: &str) -> Result<ReplicaProgress, StoreError> {
    let context = admin_context(url, Duration::from_secs(5)).await?;
    let mut s = context
        .get_stream(name)
        .await
        .map_err(|e| backend(format!("stream {name}: {e}")))?;
    let configured = s
        .info()
        .await
        .map_err(|e| unavailable(format!("stream {name} info: {e}")))?
        .config
        .num_replicas;
    progress(&context, name, configured).await
}

/// Changes the replicas of stream `name` to `replicas` and waits (at most `wait`) until every
/// replica is placed and current, telling `on_progress` where it stands about every half second.
/// The final state is returned; a stream still catching up when `wait` runs out is not an error
/// (the broker goes on moving it), the caller can look again.
pub async fn set_replicas(
    url: &str,
    name: &str,
    replicas: usize,
    wait: Duration,
    on_progress: &mut (dyn FnMut(&ReplicaProgress) + Send),
) -> Result<ReplicaProgress, StoreError> {
    if !(1..=5).contains(&replicas) {
        return Err(StoreError::InvalidRequest(format!(
            "replicas must be 1 to 5, not {replicas}"
        )));
    }
    let context = admin_context(url, Duration::from_secs(10)).await?;
    let mut s = context
        .get_stream(name)
        .await
        .map_err(|e| backend(format!("stream {name}: {e}")))?;
    let mut config = s
        .info()
        .await
        .map_err(|e| unavailable(format!("stream {name} info: {e}")))?
        .config
        .clone();
    if config.num_replicas != replicas {
        config.num_replicas = replicas;
        context
            .update_stream(config)
            .await
            .map_err(|e| match e.kind() {
                jetstream::context::UpdateStreamErrorKind::JetStream(j)
                    if cannot_place(j.error_code()) =>
                {
                    too_few_servers(name, replicas, url, j)
                }
                _ => backend(format!("cannot change the replicas of {name}: {e}")),
            })?;
    }
    let deadline = Instant::now() + wait;
    loop {
        // While peers are added or removed the leader may move: a failed look is tried again.
        match progress(&context, name, replicas).await {
            Ok(p) => {
                on_progress(&p);
                if p.done() || Instant::now() >= deadline {
                    return Ok(p);
                }
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => tracing::debug!(error = %e, "stream info during a replica change"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_members_default_to_three_replicas() {
        assert_eq!(default_replicas("nats://127.0.0.1:4222"), 1);
        assert_eq!(
            default_replicas("nats://127.0.0.1:4222,nats://127.0.0.1:4223"),
            3
        );
        assert_eq!(
            default_replicas("nats://a:4222, nats://b:4222,nats://c:4222"),
            3
        );
        assert_eq!(default_replicas("nats://a:4222,"), 1);
    }
}
