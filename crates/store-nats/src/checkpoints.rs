//! Signed checkpoints of the log's digest ([`funnel_store::checkpoint`]) in a JetStream stream of
//! their own beside the log: `<log stream>_CHECKPOINTS` (e.g. `FUNNEL_CHECKPOINTS`), subject
//! `<prefix>.checkpoints`, one checkpoint per message as JSON, file storage, no limits,
//! `deny_delete` and `deny_purge`. Whoever can publish there can add a line but not sign one,
//! and nobody can remove or change one through JetStream's API: so a rewritten log cannot
//! silently take its old checkpoints with it.

use crate::NatsOptions;
use crate::buckets::bucket_context;
use crate::connect::{backend, unavailable};
use crate::replicas::prepare_stream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use funnel_store::StoreError;
use funnel_store::checkpoint::Checkpoint;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// The stream holding the checkpoints of the log stream `stream_name`.
pub fn checkpoints_stream(stream_name: &str) -> String {
    format!("{stream_name}_CHECKPOINTS")
}

/// The checkpoints of one log on its JetStream cluster.
#[derive(Clone)]
pub struct NatsCheckpoints {
    context: jetstream::Context,
    stream: stream::Stream<()>,
    subject: String,
    request_timeout: Duration,
}

impl std::fmt::Debug for NatsCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCheckpoints")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsCheckpoints {
    /// Connects and makes sure the stream exists (with the log's replicas when it is created).
    pub async fn open(opts: &NatsOptions) -> Result<NatsCheckpoints, StoreError> {
        opts.validate()?;
        let context = bucket_context(&opts.url, opts.request_timeout, "funnel-checkpoints").await?;
        let name = checkpoints_stream(&opts.stream_name);
        let subject = format!("{}.checkpoints", opts.subject_prefix);
        let config = crate::replicas::keeping_everything(
            &name,
            "Funnel: signed checkpoints of the event log's hash chain",
            vec![subject.clone()],
            opts.replicas,
        );
        // A cluster that has just started may still be electing leaders.
        let deadline = Instant::now() + opts.connect_timeout.max(Duration::from_secs(1));
        loop {
            match prepare_stream(&context, config.clone(), &opts.url, false).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "the checkpoint stream is not ready yet, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let stream = context
            .get_stream_no_info(&name)
            .await
            .map_err(|e| backend(format!("cannot open JetStream stream {name}: {e}")))?;
        Ok(NatsCheckpoints {
            context,
            stream,
            subject,
            request_timeout: opts.request_timeout,
        })
    }

    /// Appends one checkpoint, once the stream has stored it.
    pub async fn append(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let body = serde_json::to_vec(checkpoint)
            .map_err(|e| backend(format!("a checkpoint does not serialise: {e}")))?;
        self.context
            .publish(self.subject.clone(), body.into())
            .await
            .map_err(|e| unavailable(format!("publish a checkpoint: {e}")))?
            .await
            .map_err(|e| unavailable(format!("store a checkpoint: {e}")))?;
        Ok(())
    }

    /// How many checkpoints the stream holds (to tell whether it changed).
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.last_sequence().await
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| unavailable(format!("read the checkpoint stream's info: {e}")))?;
        Ok(info.state.last_sequence)
    }

    /// Every checkpoint in order; a message that is not one reads as the reason it is not.
    pub async fn read(&self) -> Result<Vec<Result<Checkpoint, String>>, StoreError> {
        let last = self.last_sequence().await?;
        let mut out = Vec::new();
        if last == 0 {
            return Ok(out);
        }
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("read the checkpoints: {e}")))?;
        let name = consumer.cached_info().name.clone();
        let result = async {
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| unavailable(format!("read the checkpoints: {e}")))?;
            loop {
                let next = tokio::time::timeout(self.request_timeout, messages.next())
                    .await
                    .map_err(|_| unavailable("reading the checkpoints timed out"))?;
                let Some(msg) = next else {
                    return Err(unavailable("the checkpoint stream ended early"));
                };
                let msg = msg.map_err(|e| unavailable(format!("read the checkpoints: {e}")))?;
                let seq = msg
                    .info()
                    .map_err(|e| backend(format!("a checkpoint's delivery: {e}")))?
                    .stream_sequence;
                out.push(serde_json::from_slice(&msg.payload).map_err(|e| e.to_string()));
                if seq >= last {
                    return Ok(());
                }
            }
        }
        .await;
        let _ = self.stream.delete_consumer(&name).await;
        result.map(|()| out)
    }
}
