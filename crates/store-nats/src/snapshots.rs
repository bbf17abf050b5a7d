//! Snapshots beside the log: a second JetStream stream, `<log stream>_SNAPSHOTS`, with one subject
//! per event stream (`<prefix>.snapshot.<category>.<id part>`) that keeps only its last message
//! (`max_messages_per_subject = 1`), the same replicas and file storage as the log. A snapshot is
//! that message: the version it reflects in the `Funnel-Snapshot-Version` header, the data as the
//! body. It is written only over an older one: the writer reads the subject's last message and
//! publishes with `Nats-Expected-Last-Subject-Sequence` set to it, so a slower writer of an older
//! snapshot cannot replace a newer one (it loses the race and its snapshot is dropped).
//!
//! The stream is made on first use, so a log that never snapshots has none, and an older Funnel
//! that does not know it leaves it alone.

use crate::{NatsStore, codec};
use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use bytes::Bytes;
use funnel_store::{Snapshot, StoreError};
use funnel_types::{StreamId, Version};

const HEADER_VERSION: &str = "Funnel-Snapshot-Version";

impl NatsStore {
    /// The name of the snapshot stream of this log.
    pub fn snapshot_stream_name(&self) -> String {
        format!("{}_SNAPSHOTS", self.opts.stream_name)
    }

    fn snapshot_subject(&self, stream: &StreamId) -> String {
        format!(
            "{}.snapshot.{}.{}",
            self.opts.subject_prefix,
            stream.category(),
            stream.id_part()
        )
    }

    /// The snapshot stream, made on first use.
    async fn snapshots(&self) -> Result<&stream::Stream<()>, StoreError> {
        self.snapshots
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: self.snapshot_stream_name(),
                    description: Some(
                        "Funnel aggregate snapshots: the last one per event stream".into(),
                    ),
                    subjects: vec![format!("{}.snapshot.>", self.opts.subject_prefix)],
                    storage: stream::StorageType::File,
                    num_replicas: self.opts.replicas,
                    retention: stream::RetentionPolicy::Limits,
                    discard: stream::DiscardPolicy::Old,
                    max_messages_per_subject: 1,
                    max_message_size: i32::try_from(self.max_payload).unwrap_or(i32::MAX),
                    ..Default::default()
                };
                self.context
                    .get_or_create_stream(config)
                    .await
                    .map_err(|e| self.request_failed("make the snapshot stream", e, false))?;
                self.context
                    .get_stream_no_info(self.snapshot_stream_name())
                    .await
                    .map_err(|e| self.request_failed("open the snapshot stream", e, false))
            })
            .await
    }

    /// The (version, sequence) of the stream's kept snapshot and its body.
    async fn last_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(Version, u64, Bytes)>, StoreError> {
        let snapshots = self.snapshots().await?;
        match snapshots
            .get_last_raw_message_by_subject(&self.snapshot_subject(stream))
            .await
        {
            Ok(msg) => {
                let version = msg
                    .headers
                    .get(HEADER_VERSION)
                    .and_then(|v| v.as_str().parse::<u64>().ok())
                    .unwrap_or(0);
                Ok(Some((Version(version), msg.sequence, msg.payload)))
            }
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => {
                let transient = matches!(e.kind(), LastRawMessageErrorKind::JetStream(ref j) if j.code() == 503);
                Err(self.request_failed("read a snapshot", e, transient))
            }
        }
    }

    pub(crate) async fn save_snapshot_inner(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let expected = match self.last_snapshot(&snapshot.stream).await? {
            Some((version, _, _)) if version > snapshot.version => return Ok(()),
            Some((_, seq, _)) => seq,
            None => 0,
        };
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_VERSION, snapshot.version.0.to_string().as_str());
        headers.insert(
            codec::HEADER_EXPECTED_LAST_SUBJECT_SEQ,
            expected.to_string().as_str(),
        );
        let sent = self
            .context
            .publish_with_headers(
                self.snapshot_subject(&snapshot.stream),
                headers,
                snapshot.data,
            )
            .await;
        let ack = match sent {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(_) => Ok(()),
            // Another writer kept a snapshot meanwhile: theirs stays (a cache; nothing is lost).
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(()),
            Err(e) => Err(self.request_failed("write a snapshot", e, false)),
        }
    }

    pub(crate) async fn load_snapshot_inner(
        &self,
        stream: &StreamId,
    ) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .last_snapshot(stream)
            .await?
            .map(|(version, _, data)| Snapshot {
                stream: stream.clone(),
                version,
                data,
            }))
    }
}
