//! Appending one command as one JetStream message: expected version → expected last subject
//! sequence, the cache of last commits, broker dedup, and the durable duplicate check that answers
//! retries beyond the dedup window.

use crate::codec::{self, CommitHead};
use crate::{NatsStore, Tip, body};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{HeaderMap, HeaderValue, Subject};
use bytes::Bytes;
use funnel_store::chain::ChainHash;
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
fn outcome(stream: StreamId, head: &CommitHead, duplicate: bool) -> AppendOutcome {
    AppendOutcome {
        stream,
        first_version: head.first_version(),
        last_version: head.last_version,
        first_position: head.first_position(),
        last_position: head.last_position(),
        duplicate,
    }
}

impl NatsStore {
    /// Appends `req` (its limits checked): the common append, to a new stream or at the version the
    /// cache of last commits knows, is one publish, which the client bounds on its own (sending
    /// and awaiting the ack each wait at most a request timeout); everything else runs under
    /// [`NatsStore::bounded`] with what is left of its time.
    pub(crate) async fn append_checked(
        &self,
        req: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        self.ensure_connected()?;
        let deadline = self.deadline();
        let subject = Subject::from(codec::subject_for(&self.opts.subject_prefix, &req.stream));
        // The body holds the commit's last version, known only once the stream's state is: check
        // its size now, encode it per attempt.
        let size = body::encoded_len(req.command_id, &req.events)?;
        let limit = self.max_payload.saturating_sub(HEADER_ROOM);
        if size > limit {
            return Err(StoreError::TooLarge {
                what: "encoded append bytes",
                size,
                limit,
            });
        }
        let known = match req.expected {
            ExpectedVersion::NoStream => Some(None),
            ExpectedVersion::Exact(v) => self
                .cached(&req.stream)
                .filter(|tip| tip.version == v)
                .map(Some),
            // `Any` and `Exists` look for a retry first (see `append_inner`).
            ExpectedVersion::Any | ExpectedVersion::Exists => None,
        };
        let mut refused = false;
        if let Some(state) = known {
            match self.attempt(&subject, &req, state).await {
                Ok(Attempt::Stored(seq, link)) => {
                    return Ok(self.stored(req, state, seq, link));
                }
                Ok(Attempt::Duplicate(seq)) => {
                    return self
                        .bounded_until(deadline, Box::pin(self.duplicate_at(&req, seq)))
                        .await;
                }
                Ok(Attempt::Refused) => refused = true,
                // Nobody answered: `append_inner` publishes again, a bounded number of times.
                Ok(Attempt::Unserved) => {}
                Err(e) => return Err(e),
            }
        }
        self.bounded_until(deadline, Box::pin(self.append_inner(req, subject, refused)))
            .await
    }

    /// The outcome of `req`, stored at stream sequence `seq` with chain link `link` on a stream
    /// whose last commit was `state`; remembered as the stream's last commit.
    fn stored(
        &self,
        req: AppendRequest,
        state: Option<Tip>,
        seq: u64,
        link: ChainHash,
    ) -> AppendOutcome {
        let count = req.events.len() as u64;
        let last_version = Version(state.map_or(0, |t| t.version.0) + count);
        self.remember(
            &req.stream,
            Some(Tip {
                version: last_version,
                seq,
                link,
            }),
        );
        let head = CommitHead {
            seq,
            last_version,
            count,
            command_id: req.command_id,
        };
        outcome(req.stream, &head, false)
    }

    /// Publishes `req` once, as the commit after `state` (the stream's last commit, `None` when it
    /// must not exist yet).
    async fn attempt(
        &self,
        subject: &Subject,
        req: &AppendRequest,
        state: Option<Tip>,
    ) -> Result<Attempt, StoreError> {
        let count = req.events.len() as u64;
        let last_version = Version(state.map_or(0, |t| t.version.0) + count);
        let expected_seq = state.map_or(0, |t| t.seq);
        let body = codec::encode_body(last_version, req.command_id, &req.events)?;
        let previous = state.map_or(ChainHash::GENESIS, |t| t.link);
        let link = crate::chain::link(&previous, expected_seq, subject, &body);
        match self.publish(subject, req, expected_seq, &link, body).await {
            Ok((seq, false)) => Ok(Attempt::Stored(seq, link)),
            Ok((seq, true)) => Ok(Attempt::Duplicate(seq)),
            Err(PublishRefused::WrongLastSequence) => {
                self.forget(&req.stream);
                Ok(Attempt::Refused)
            }
            Err(PublishRefused::Unserved) => Ok(Attempt::Unserved),
            Err(PublishRefused::Failed(e)) => Err(e),
        }
    }

    /// The append after the fast path of [`NatsStore::append_checked`] did not store it (or did
    /// not apply); `refused` when the broker refused its expected sequence (the cache was stale).
    async fn append_inner(
        &self,
        req: AppendRequest,
        subject: Subject,
        refused: bool,
    ) -> Result<AppendOutcome, StoreError> {
        if refused && req.expected == ExpectedVersion::NoStream {
            let actual = self.last_commit(&req.stream).await?;
            return self.conflict(&req, &subject, actual).await;
        }
        // `Any` and `Exists` are not refused when retried on an existing stream, so a retry beyond
        // the dedup window, or of a command first appended with another expectation (which sent no
        // `Nats-Msg-Id`), is only found by looking.
        let mut known = None;
        if matches!(req.expected, ExpectedVersion::Any | ExpectedVersion::Exists) {
            let last = self.last_commit(&req.stream).await?;
            if let Some(tip) = last
                && let Some(original) = self.find_command(&req, &subject, tip.seq).await?
            {
                return Ok(original);
            }
            known = Some(last);
        }

        let mut fresh = refused || known.is_some();
        for _ in 0..MAX_ATTEMPTS {
            let state = match (req.expected, known.take()) {
                (ExpectedVersion::NoStream, _) => None,
                (_, Some(last)) => last,
                (expected, None) => match self.cached(&req.stream) {
                    Some(c)
                        if !fresh
                            && !matches!(expected, ExpectedVersion::Exact(v) if v != c.version) =>
                    {
                        Some(c)
                    }
                    _ => self.last_commit(&req.stream).await?,
                },
            };
            let current = state.map(|t| t.version);
            if !req.expected.admits(current) {
                return self.conflict(&req, &subject, state).await;
            }
            // No responders means no server took the message: the stream's leader is being
            // elected, or its interest in the subject has not reached our server yet (right after
            // the stream was created or moved). Nothing was stored, so publishing again is safe.
            let mut unserved = 0;
            let attempt = loop {
                match self.attempt(&subject, &req, state).await? {
                    Attempt::Unserved if unserved + 1 < NO_RESPONDERS_ATTEMPTS => {
                        unserved += 1;
                        tokio::time::sleep(NO_RESPONDERS_DELAY * unserved).await;
                    }
                    attempt => break attempt,
                }
            };
            match attempt {
                Attempt::Stored(seq, link) => return Ok(self.stored(req, state, seq, link)),
                Attempt::Duplicate(seq) => return self.duplicate_at(&req, seq).await,
                Attempt::Refused => {
                    fresh = true;
                    if req.expected == ExpectedVersion::NoStream {
                        let actual = self.last_commit(&req.stream).await?;
                        return self.conflict(&req, &subject, actual).await;
                    }
                }
                Attempt::Unserved => {
                    return Err(crate::connect::unavailable(format!(
                        "no server answered the publish to {subject}; retry"
                    )));
                }
            }
        }
        Err(crate::connect::unavailable(format!(
            "append to {} lost {MAX_ATTEMPTS} races with concurrent writers; retry it",
            req.stream
        )))
    }

    /// Publishes one commit; `Ok((seq, duplicate))` from the broker's ack, or
    /// [`PublishRefused::Unserved`] when no server responded. Sends `Nats-Msg-Id` only with
    /// `Any`/`Exists` (see the crate documentation): `Exact`/`NoStream` appends cannot be applied
    /// twice, as a stored original has moved the stream past their expected sequence.
    async fn publish(
        &self,
        subject: &Subject,
        req: &AppendRequest,
        expected_seq: u64,
        link: &ChainHash,
        body: Bytes,
    ) -> Result<(u64, bool), PublishRefused> {
        let mut headers = HeaderMap::new();
        headers.insert(
            codec::HEADER_EXPECTED_LAST_SUBJECT_SEQ,
            HeaderValue::from(expected_seq),
        );
        headers.insert(codec::HEADER_CHAIN, link.to_hex().as_str());
        if matches!(req.expected, ExpectedVersion::Any | ExpectedVersion::Exists) {
            let mut id = uuid::Uuid::encode_buffer();
            headers.insert(
                codec::HEADER_MSG_ID,
                &*req.command_id.0.hyphenated().encode_lower(&mut id),
            );
        }
        // Boxed: the client's publish future is large, and an append's whole future is boxed by
        // the trait; two allocations the allocator serves from its small-size caches are cheaper
        // than one it does not.
        let sent = Box::pin(
            self.context
                .publish_with_headers(subject.clone(), headers, body),
        )
        .await;
        let ack = match sent {
            Ok(ack_future) => ack_future.await,
            Err(e) => Err(e),
        };
        if matches!(&ack, Err(e) if e.kind() == PublishErrorKind::StreamNotFound) {
            return Err(PublishRefused::Unserved);
        }
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
        subject: &Subject,
        actual: Option<Tip>,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(tip) = actual
            && let Some(original) = self.find_command(req, subject, tip.seq).await?
        {
            return Ok(original);
        }
        Err(StoreError::WrongExpectedVersion {
            stream: req.stream.clone(),
            expected: req.expected,
            actual: actual.map(|t| t.version),
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
        Ok(outcome(req.stream.clone(), &head, true))
    }

    /// Scans every commit of `stream` up to stream sequence `last_seq` (its last commit, as the
    /// stream leader reported it) for `command_id` (in the `FNL3` body, or the `Nats-Msg-Id` header
    /// of an `FNL2` commit), then reads the commit found to give its outcome.
    async fn find_command(
        &self,
        req: &AppendRequest,
        subject: &Subject,
        last_seq: u64,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let mut found = None;
        self.scan(1, vec![subject.to_string()], last_seq, usize::MAX, |m| {
            if codec::command_id_in(m.headers, m.payload) == Some(req.command_id) {
                found = Some(m.seq);
                return Ok(false);
            }
            Ok(true)
        })
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
    /// No server responded to any of the attempts: nothing was stored.
    Unserved,
    Failed(StoreError),
}

/// What one publish of a commit did.
enum Attempt {
    /// Stored at this stream sequence, with this chain link.
    Stored(u64, ChainHash),
    /// The broker reported the command as a duplicate of the message at this sequence.
    Duplicate(u64),
    /// The broker refused the expected sequence: the stream moved on.
    Refused,
    /// No server responded: nothing was stored.
    Unserved,
}
