//! Appending one command as one JetStream message: expected version → expected last subject
//! sequence, the cache of last commits, broker dedup, and the durable duplicate check that answers
//! retries beyond the dedup window.

use crate::codec::{self, CommitHead};
use crate::{NatsStore, body};
use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use bytes::Bytes;
use funnel_store::{AppendOutcome, AppendRequest, StoreError};
use funnel_types::{ExpectedVersion, StreamId, Version};
use std::time::Duration;

/// Room left in a message for headers and protocol framing.
const HEADER_ROOM: usize = 512;

/// How often an append retries after losing a race before it gives up (only `Any`/`Exists`).
const MAX_ATTEMPTS: usize = 32;

/// How often one commit is published while no server responds for the stream.
const NO_RESPONDERS_ATTEMPTS: u32 = 8;

/// The pause before publishing again after no server responded, times the attempt number.
const NO_RESPONDERS_DELAY: Duration = Duration::from_millis(25);

/// The outcome an append of `head` had, as a duplicate or not.
fn outcome(stream: &StreamId, head: &CommitHead, duplicate: bool) -> AppendOutcome {
    AppendOutcome {
        stream: stream.clone(),
        first_version: head.first_version(),
        last_version: head.last_version,
        first_position: head.first_position(),
        last_position: head.last_position(),
        duplicate,
    }
}

impl NatsStore {
    pub(crate) async fn append_inner(
        &self,
        req: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let subject = codec::subject_for(&self.opts.subject_prefix, &req.stream);
        // The body holds the commit's last version, known only once the stream's state is: check
        // its size now, encode it per attempt.
        let size = body::encoded_len(&req.events)?;
        let limit = self.max_payload.saturating_sub(HEADER_ROOM);
        if size > limit {
            return Err(StoreError::TooLarge {
                what: "encoded append bytes",
                size,
                limit,
            });
        }
        let count = req.events.len() as u64;

        // `Any` and `Exists` are not refused when retried on an existing stream, so a retry beyond
        // the dedup window is only found by looking.
        let mut known = None;
        if matches!(req.expected, ExpectedVersion::Any | ExpectedVersion::Exists) {
            let last = self.last_commit(&req.stream).await?;
            if let Some((_, last_seq)) = last
                && let Some(original) = self.find_command(&req, &subject, last_seq).await?
            {
                return Ok(original);
            }
            known = Some(last);
        }

        let mut fresh = known.is_some();
        for _ in 0..MAX_ATTEMPTS {
            let state = match (req.expected, known.take()) {
                (ExpectedVersion::NoStream, _) => None,
                (_, Some(last)) => last,
                (expected, None) => match self.cached(&req.stream) {
                    Some(c)
                        if !fresh && !matches!(expected, ExpectedVersion::Exact(v) if v != c.0) =>
                    {
                        Some(c)
                    }
                    _ => self.last_commit(&req.stream).await?,
                },
            };
            let current = state.map(|(v, _)| v);
            if !req.expected.admits(current) {
                return self.conflict(&req, &subject, state).await;
            }
            let last_version = Version(current.map_or(0, |v| v.0) + count);
            let expected_seq = state.map_or(0, |(_, seq)| seq);
            let body = codec::encode_body(last_version, &req.events)?;
            match self.publish(&subject, &req, expected_seq, body).await {
                Ok((seq, false)) => {
                    self.remember(&req.stream, Some((last_version, seq)));
                    let head = CommitHead {
                        seq,
                        last_version,
                        count,
                        command_id: req.command_id,
                    };
                    return Ok(outcome(&req.stream, &head, false));
                }
                Ok((seq, true)) => return self.duplicate_at(&req, seq).await,
                Err(PublishRefused::WrongLastSequence) => {
                    self.forget(&req.stream);
                    fresh = true;
                    if req.expected == ExpectedVersion::NoStream {
                        let actual = self.last_commit(&req.stream).await?;
                        return self.conflict(&req, &subject, actual).await;
                    }
                }
                Err(PublishRefused::Failed(e)) => return Err(e),
            }
        }
        Err(crate::connect::unavailable(format!(
            "append to {} lost {MAX_ATTEMPTS} races with concurrent writers; retry it",
            req.stream
        )))
    }

    /// Publishes one commit; `Ok((seq, duplicate))` from the broker's ack.
    async fn publish(
        &self,
        subject: &str,
        req: &AppendRequest,
        expected_seq: u64,
        body: Bytes,
    ) -> Result<(u64, bool), PublishRefused> {
        let headers = || {
            let mut headers = HeaderMap::new();
            let mut id = uuid::Uuid::encode_buffer();
            headers.insert(
                codec::HEADER_MSG_ID,
                &*req.command_id.0.hyphenated().encode_lower(&mut id),
            );
            headers.insert(
                codec::HEADER_EXPECTED_LAST_SUBJECT_SEQ,
                &*expected_seq.to_string(),
            );
            headers
        };
        // No responders means no server took the message: the stream's leader is being elected, or
        // its interest in the subject has not reached our server yet (right after the stream was
        // created or moved). Nothing was stored, so publishing again is safe.
        let mut attempt = 1;
        let ack = loop {
            let sent = self
                .context
                .publish_with_headers(subject.to_string(), headers(), body.clone())
                .await;
            let ack = match sent {
                Ok(ack_future) => ack_future.await,
                Err(e) => Err(e),
            };
            match ack {
                Err(e)
                    if e.kind() == PublishErrorKind::StreamNotFound
                        && attempt < NO_RESPONDERS_ATTEMPTS =>
                {
                    tokio::time::sleep(NO_RESPONDERS_DELAY * attempt).await;
                    attempt += 1;
                }
                ack => break ack,
            }
        };
        match ack {
            Ok(ack) => Ok((ack.sequence, ack.duplicate)),
            Err(e) => match e.kind() {
                PublishErrorKind::WrongLastSequence => Err(PublishRefused::WrongLastSequence),
                PublishErrorKind::MaxPayloadExceeded => {
                    Err(PublishRefused::Failed(StoreError::TooLarge {
                        what: "encoded append bytes",
                        size: req.events.iter().map(|e| e.payload.len()).sum(),
                        limit: self.max_payload,
                    }))
                }
                kind => {
                    let transient = matches!(
                        kind,
                        PublishErrorKind::TimedOut
                            | PublishErrorKind::BrokenPipe
                            | PublishErrorKind::StreamNotFound
                            | PublishErrorKind::MaxAckPending
                    );
                    Err(PublishRefused::Failed(
                        self.request_failed("publish", e, transient),
                    ))
                }
            },
        }
    }

    /// A refused expectation: the original outcome when this command was already appended (a retry
    /// beyond the dedup window), otherwise the conflict. `actual` is the (version, stream sequence)
    /// of the stream's last commit, as the stream leader reported it.
    async fn conflict(
        &self,
        req: &AppendRequest,
        subject: &str,
        actual: Option<(Version, u64)>,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some((_, last_seq)) = actual
            && let Some(original) = self.find_command(req, subject, last_seq).await?
        {
            return Ok(original);
        }
        Err(StoreError::WrongExpectedVersion {
            stream: req.stream.clone(),
            expected: req.expected,
            actual: actual.map(|(v, _)| v),
        })
    }

    /// The broker said the command is a duplicate of the message at `seq`: read that message's
    /// headers to give the original outcome.
    async fn duplicate_at(
        &self,
        req: &AppendRequest,
        seq: u64,
    ) -> Result<AppendOutcome, StoreError> {
        let msg = self
            .stream
            .get_raw_message(seq)
            .await
            .map_err(|e| self.request_failed("read the original of a duplicate", e, false))?;
        let head = codec::decode_head(seq, Some(&msg.headers), &msg.payload)?;
        let subject = codec::subject_for(&self.opts.subject_prefix, &req.stream);
        if head.command_id != req.command_id || msg.subject.as_str() != subject {
            return Err(crate::connect::backend(format!(
                "the broker reported command {} as a duplicate of sequence {seq}, which holds command {} on {}",
                req.command_id, head.command_id, msg.subject
            )));
        }
        Ok(outcome(&req.stream, &head, true))
    }

    /// Scans the headers of every commit of `stream` up to stream sequence `last_seq` (its last
    /// commit, as the stream leader reported it) for `command_id` (the `Nats-Msg-Id` header), then
    /// reads the body of the commit found to give its outcome.
    async fn find_command(
        &self,
        req: &AppendRequest,
        subject: &str,
        last_seq: u64,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let mut found = None;
        self.scan(
            1,
            vec![subject.to_string()],
            last_seq,
            true,
            usize::MAX,
            |m| {
                if codec::command_id_of(m.headers) == Some(req.command_id) {
                    found = Some(m.seq);
                    return Ok(false);
                }
                Ok(true)
            },
        )
        .await?;
        match found {
            Some(seq) => self.duplicate_at(req, seq).await.map(Some),
            None => Ok(None),
        }
    }
}

/// Why a publish did not store a message.
enum PublishRefused {
    /// The expected last subject sequence did not match (JetStream error 10071).
    WrongLastSequence,
    Failed(StoreError),
}
