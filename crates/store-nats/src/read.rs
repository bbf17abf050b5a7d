//! Reading: a stream's last commit (leader message get), a stream's events (message gets per commit,
//! or a consumer for long streams), the whole log through a short-lived ephemeral pull consumer,
//! the head, and waiting for appends with a core NATS subscription.

use crate::codec::{self, RawCommit};
use crate::{NatsStore, Tip};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{LastRawMessageErrorKind, RawMessageErrorKind};
use funnel_store::chain::ChainHash;
use funnel_store::{Filter, RecordedEvent, StoreError};
use funnel_types::{Position, StreamId, Version};
use futures::StreamExt;
use std::time::Duration;

/// Streams with more versions than this are read through a consumer instead of one get per commit.
const GET_PER_COMMIT_MAX_VERSIONS: u64 = 32;

/// Most messages asked for in one pull. Large pulls matter for `read_all`: with 512 a replay of
/// ~900-byte commits measured ~95k msgs/s, with 4096 ~140k (`funnel bench store`); with ~600-byte
/// `FNL2` commits, one pull per 10,000-event page (16,384) read ~10% faster than 4096. `PULL_BYTES`
/// still bounds the memory one pull holds.
const PULL_BATCH: usize = 16_384;

/// Most bytes asked for in one pull.
const PULL_BYTES: usize = 16 * 1024 * 1024;

/// A scanning consumer is removed by the server this long after its last use, if our delete is lost.
const CONSUMER_IDLE: Duration = Duration::from_secs(30);

/// How many consumers one scan may use before giving up on replicas that are behind the leader.
const SCAN_ATTEMPTS: usize = 8;

/// How the client reports a pull that no server answered (status 503, no responders).
const NO_RESPONDERS_STATUS: &str = ": 503,";

/// The pause before a scan's next consumer, times the attempt number.
const SCAN_RETRY_DELAY: Duration = Duration::from_millis(25);

impl NatsStore {
    /// The version, stream sequence and chain link of the stream's last commit, from the stream
    /// leader (remembered in the cache of last commits).
    pub(crate) async fn last_commit(&self, stream: &StreamId) -> Result<Option<Tip>, StoreError> {
        let subject = codec::subject_for(&self.opts.subject_prefix, stream);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(msg) => {
                let head = codec::decode_head(msg.sequence, Some(&msg.headers), &msg.payload)?;
                let last = Some(Tip {
                    version: head.last_version,
                    seq: msg.sequence,
                    link: crate::chain::recorded_link(Some(&msg.headers))
                        .unwrap_or(ChainHash::GENESIS),
                });
                self.remember(stream, last);
                Ok(last)
            }
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                self.remember(stream, None);
                Ok(None)
            }
            Err(e) => {
                let transient = matches!(e.kind(), LastRawMessageErrorKind::JetStream(ref j) if j.code() == 503);
                Err(self.request_failed("read the last commit", e, transient))
            }
        }
    }

    pub(crate) async fn read_stream_inner(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_near_inner(stream, from, Position::START, max)
            .await
    }

    /// `read_stream` starting at the commit that holds `near` (a position of the stream at or
    /// before version `from`): message gets, or a consumer for many versions, from that sequence
    /// on instead of the stream's first commit. A hint that turns out to lie (the first commit at
    /// or after it starts after `from`) falls back to reading from the first commit.
    pub(crate) async fn read_stream_near_inner(
        &self,
        stream: &StreamId,
        from: Version,
        near: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from.max(Version::FIRST);
        let Some(Tip {
            version: last_version,
            seq: last_seq,
            ..
        }) = self.last_commit(stream).await?
        else {
            return Ok(Vec::new());
        };
        if max == 0 || from > last_version {
            return Ok(Vec::new());
        }
        let start = codec::sequence_of(near).clamp(1, last_seq);
        match self
            .read_commits(stream, from, max, start, last_version, last_seq)
            .await?
        {
            Some(events) => Ok(events),
            None => Ok(self
                .read_commits(stream, from, max, 1, last_version, last_seq)
                .await?
                .unwrap_or_default()),
        }
    }

    /// The events of version ≥ `from` (at most `max`) in the commits of `stream` from sequence
    /// `start` to `last_seq`; `None` when the first of those commits starts after `from` (events
    /// before `start` were wanted).
    async fn read_commits(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
        start: u64,
        last_version: Version,
        last_seq: u64,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let prefix = self.opts.subject_prefix.clone();
        let subject = codec::subject_for(&prefix, stream);
        let mut out = Vec::new();
        let mut first = true;
        let mut missed = false;
        let keep = |events: Vec<RecordedEvent>, out: &mut Vec<RecordedEvent>| {
            for e in events {
                if e.meta.version >= from && out.len() < max {
                    out.push(e);
                }
            }
            out.len() < max
        };
        let versions = last_version.0 + 1 - from.0;
        if versions > GET_PER_COMMIT_MAX_VERSIONS {
            self.scan(start, vec![subject], last_seq, usize::MAX, |m| {
                let commit = codec::decode_commit(&prefix, m)?;
                if std::mem::take(&mut first) && commit.head.first_version() > from {
                    missed = true;
                    return Ok(false);
                }
                let done = commit.head.last_version >= last_version;
                if commit.head.last_version < from {
                    return Ok(!done);
                }
                Ok(keep(commit.events, &mut out) && !done)
            })
            .await?;
            return Ok((!missed).then_some(out));
        }
        let mut seq = start;
        while seq <= last_seq {
            let msg = match self
                .stream
                .get_first_raw_message_by_subject(&subject, seq)
                .await
            {
                Ok(msg) => msg,
                Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => break,
                Err(e) => return Err(self.request_failed("read a stream", e, false)),
            };
            let raw = RawCommit {
                subject: msg.subject.as_str(),
                seq: msg.sequence,
                headers: Some(&msg.headers),
                payload: &msg.payload,
                time_nanos: msg.time.unix_timestamp_nanos(),
            };
            let head = codec::decode_head(raw.seq, raw.headers, raw.payload)?;
            if std::mem::take(&mut first) && head.first_version() > from {
                return Ok(None);
            }
            seq = msg.sequence + 1;
            if head.last_version < from {
                continue;
            }
            let commit = codec::decode_commit(&prefix, &raw)?;
            if !keep(commit.events, &mut out) {
                break;
            }
        }
        Ok(Some(out))
    }

    pub(crate) async fn read_all_inner(
        &self,
        after: Position,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let start = codec::sequence_of(after).max(1);
        // Nothing at or after `start`: answer without creating a consumer (the common caught-up case).
        let last = self.last_sequence().await?;
        if last < start {
            return Ok(Vec::new());
        }
        let prefix = self.opts.subject_prefix.clone();
        let filters = match filter {
            Filter::All => Vec::new(),
            Filter::Categories(cats) => {
                let mut subjects: Vec<String> =
                    cats.iter().map(|c| format!("{prefix}.log.{c}.>")).collect();
                subjects.sort();
                subjects.dedup();
                subjects
            }
        };
        let mut out = Vec::new();
        // One message more than `max`: the first commit may hold only events at or before `after`.
        self.scan(start, filters, last, max.saturating_add(1), |m| {
            let commit = codec::decode_commit(&prefix, m)?;
            for e in commit.events {
                if e.meta.position > after && out.len() < max {
                    out.push(e);
                }
            }
            Ok(out.len() < max)
        })
        .await?;
        Ok(out)
    }

    /// The stream sequence of the log's last message (0 when empty).
    pub(crate) async fn last_sequence(&self) -> Result<u64, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| self.request_failed("read the stream info", e, false))?;
        Ok(info.state.last_sequence)
    }

    pub(crate) async fn head_inner(&self) -> Result<Position, StoreError> {
        let last = self.last_sequence().await?;
        if last == 0 {
            return Ok(Position::START);
        }
        let msg = self
            .stream
            .get_raw_message(last)
            .await
            .map_err(|e| self.request_failed("read the last message", e, false))?;
        Ok(codec::decode_head(last, Some(&msg.headers), &msg.payload)?.last_position())
    }

    pub(crate) async fn wait_for_append_inner(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        // Subscribe before looking at the head, so an append in between still wakes us.
        let mut sub = self
            .client
            .subscribe(format!("{}.log.>", self.opts.subject_prefix))
            .await
            .map_err(|e| self.request_failed("subscribe to appends", e, true))?;
        self.bounded(async {
            self.client
                .flush()
                .await
                .map_err(|e| self.request_failed("flush the subscription", e, true))
        })
        .await?;
        if self.bounded(self.head_inner()).await? > after {
            return Ok(true);
        }
        // Any message on the log wakes the waiter; a refused publish makes a harmless early wake-up.
        match tokio::time::timeout(timeout, sub.next()).await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Err(crate::connect::unavailable(
                "the subscription to appends was closed",
            )),
            Err(_) => Ok(false),
        }
    }

    /// Delivers the log's messages from stream sequence `start` (restricted to `filters` when not
    /// empty) to `visit`, through ephemeral pull consumers, until `visit` returns false, nothing is
    /// pending any more, or `max_msgs` messages were delivered.
    ///
    /// `until` is the stream sequence of the last message the caller learnt about from the stream
    /// leader: every matching message up to it is delivered (unless `visit` or `max_msgs` stops the
    /// scan first). The server places a reading consumer on any replica of the stream, and a replica
    /// that is still catching up (after a restart, say) only knows a prefix of the log, so a consumer
    /// that runs dry before `until` is checked against the leader. When it missed messages, the scan
    /// resumes after the last delivered message with a new consumer, a bounded number of times, and
    /// then fails with the retryable [`StoreError::Unavailable`]. A pull that no server answers
    /// (the consumer's interest has not reached our server yet, or its server went away) resumes the
    /// same way.
    pub(crate) async fn scan(
        &self,
        start: u64,
        filters: Vec<String>,
        until: u64,
        max_msgs: usize,
        visit: impl FnMut(&RawCommit<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.scan_with(start, filters, until, max_msgs, false, visit)
            .await
    }

    /// [`NatsStore::scan`], delivering only the messages' headers when `headers_only` (their
    /// payloads are then empty).
    pub(crate) async fn scan_with(
        &self,
        start: u64,
        filters: Vec<String>,
        until: u64,
        max_msgs: usize,
        headers_only: bool,
        mut visit: impl FnMut(&RawCommit<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut from = start;
        let mut delivered = 0usize;
        for attempt in 1..=SCAN_ATTEMPTS {
            let end = self
                .scan_once(
                    from,
                    filters.clone(),
                    max_msgs,
                    headers_only,
                    &mut delivered,
                    &mut visit,
                )
                .await?;
            match end {
                ScanEnd::Stopped => return Ok(()),
                ScanEnd::Drained { last_seen } => {
                    let last_seen = last_seen.unwrap_or(from - 1);
                    if last_seen >= until || !self.missed(&filters, last_seen + 1, until).await? {
                        return Ok(());
                    }
                    tracing::debug!(
                        last_seen,
                        until,
                        attempt,
                        "a reading consumer is behind the stream leader, resuming with a new one"
                    );
                    from = last_seen + 1;
                }
                ScanEnd::Unserved { last_seen } => {
                    tracing::debug!(
                        attempt,
                        "a reading consumer did not answer, resuming with a new one"
                    );
                    from = last_seen.map_or(from, |seq| seq + 1);
                }
            }
            if attempt < SCAN_ATTEMPTS {
                tokio::time::sleep(SCAN_RETRY_DELAY * attempt as u32).await;
            }
        }
        Err(crate::connect::unavailable(format!(
            "{SCAN_ATTEMPTS} reading consumers of {} were behind its leader (sequence {until}) or did not answer; retry",
            self.opts.stream_name
        )))
    }

    /// Whether the stream leader holds a message matching `filters` (all log subjects when empty)
    /// at a sequence in `from..=until`.
    async fn missed(&self, filters: &[String], from: u64, until: u64) -> Result<bool, StoreError> {
        let everything = [format!("{}.log.>", self.opts.subject_prefix)];
        let subjects = if filters.is_empty() {
            &everything[..]
        } else {
            filters
        };
        for subject in subjects {
            match self
                .stream
                .get_first_raw_message_by_subject(subject, from)
                .await
            {
                Ok(msg) if msg.sequence <= until => return Ok(true),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => {}
                Err(e) => {
                    return Err(self.request_failed(
                        "check a read against the stream leader",
                        e,
                        false,
                    ));
                }
            }
        }
        Ok(false)
    }

    /// One consumer's part of [`NatsStore::scan`]: delivers from `start` until `visit` says stop,
    /// `max_msgs` messages were delivered in all (counted in `delivered`), or the consumer has
    /// nothing more to deliver.
    async fn scan_once(
        &self,
        start: u64,
        filters: Vec<String>,
        max_msgs: usize,
        headers_only: bool,
        delivered: &mut usize,
        visit: &mut impl FnMut(&RawCommit<'_>) -> Result<bool, StoreError>,
    ) -> Result<ScanEnd, StoreError> {
        let mut config = pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: CONSUMER_IDLE,
            memory_storage: true,
            num_replicas: 1,
            headers_only,
            ..Default::default()
        };
        if filters.len() == 1 {
            config.filter_subject = filters.into_iter().next().unwrap_or_default();
        } else {
            config.filter_subjects = filters;
        }
        let consumer = self
            .stream
            .create_consumer(config)
            .await
            .map_err(|e| self.request_failed("create a reading consumer", e, false))?;
        let name = consumer.cached_info().name.clone();
        let result = async {
            let mut pending = consumer.cached_info().num_pending;
            let mut last_seen = None;
            while pending > 0 && *delivered < max_msgs {
                let want = (max_msgs - *delivered).min(PULL_BATCH);
                let mut batch = consumer
                    .fetch()
                    .max_messages(want)
                    .max_bytes(PULL_BYTES)
                    .messages()
                    .await
                    .map_err(|e| self.request_failed("pull from the log", e, false))?;
                let mut got = 0usize;
                while let Some(msg) = batch.next().await {
                    let msg = match msg {
                        Ok(msg) => msg,
                        // Nobody answered the pull: the consumer's server has not made its interest
                        // known to ours yet, or it went away.
                        Err(e) if e.to_string().contains(NO_RESPONDERS_STATUS) => {
                            return Ok(ScanEnd::Unserved { last_seen });
                        }
                        Err(e) => return Err(self.request_failed("pull from the log", e, false)),
                    };
                    let reply = msg.reply.as_deref().unwrap_or_default();
                    let Some(info) = Delivery::parse(reply) else {
                        return Err(crate::connect::backend(format!(
                            "bad delivery: reply subject `{reply}` is not a JetStream ack subject"
                        )));
                    };
                    let (seq, now_pending, time_nanos) = (
                        info.stream_sequence,
                        info.pending,
                        i128::from(info.published),
                    );
                    let raw = RawCommit {
                        subject: msg.subject.as_str(),
                        seq,
                        headers: msg.headers.as_ref(),
                        payload: &msg.payload,
                        time_nanos,
                    };
                    got += 1;
                    *delivered += 1;
                    pending = now_pending;
                    last_seen = Some(seq);
                    if !visit(&raw)? || *delivered >= max_msgs {
                        return Ok(ScanEnd::Stopped);
                    }
                    if pending == 0 {
                        break;
                    }
                }
                if got == 0 {
                    break;
                }
            }
            if *delivered >= max_msgs {
                return Ok(ScanEnd::Stopped);
            }
            Ok(ScanEnd::Drained { last_seen })
        }
        .await;
        // Remove the consumer without making the caller wait; the idle threshold covers a lost delete.
        let stream = self.stream.clone();
        tokio::spawn(async move {
            let _ = stream.delete_consumer(&name).await;
        });
        result
    }
}

/// How one consumer's part of a scan ended.
enum ScanEnd {
    /// The visitor said stop, or enough messages were delivered.
    Stopped,
    /// The consumer had nothing more to deliver; `last_seen` is the stream sequence of the last
    /// message it delivered.
    Drained { last_seen: Option<u64> },
    /// No server answered a pull (status 503); `last_seen` as for `Drained`.
    Unserved { last_seen: Option<u64> },
}

/// What the reply subject of a consumer's delivery says about it (the part of
/// `async_nats::jetstream::Message::info` the scans need, without its date conversion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Delivery {
    stream_sequence: u64,
    /// The broker's timestamp of the message, in nanoseconds since the Unix epoch.
    published: i64,
    pending: u64,
}

impl Delivery {
    /// Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`
    /// and the ADR-15 form with the domain and account hash before the stream and possibly more
    /// tokens after the pending count.
    fn parse(reply: &str) -> Option<Self> {
        let rest = reply.strip_prefix("$JS.ACK.")?;
        let mut tokens = [""; 9];
        let mut n = 0;
        for token in rest.split('.') {
            if n == tokens.len() {
                break;
            }
            tokens[n] = token;
            n += 1;
        }
        // Index of the stream sequence: after stream, consumer and delivered (and, in the longer
        // form, domain and account hash first).
        let at = match n {
            7 => 3,
            9 => 5,
            _ => return None,
        };
        Some(Self {
            stream_sequence: tokens[at].parse().ok()?,
            published: tokens[at + 2].parse().ok()?,
            pending: tokens[at + 3].parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Delivery;

    #[test]
    fn delivery_reply_subjects_parse_in_both_forms() {
        let want = Delivery {
            stream_sequence: 42,
            published: 1_700_000_000_123_456_789,
            pending: 7,
        };
        for reply in [
            "$JS.ACK.FUNNEL.c1.1.42.3.1700000000123456789.7",
            "$JS.ACK._.ACCHASH.FUNNEL.c1.1.42.3.1700000000123456789.7",
            "$JS.ACK.dom.ACCHASH.FUNNEL.c1.1.42.3.1700000000123456789.7.tok",
            "$JS.ACK.dom.ACCHASH.FUNNEL.c1.1.42.3.1700000000123456789.7.tok.more",
        ] {
            assert_eq!(Delivery::parse(reply), Some(want), "{reply}");
        }
        for bad in [
            "",
            "$JS.ACK.FUNNEL.c1.1.42.3.1700000000123456789",
            "$JS.ACK.FUNNEL.c1.1.x.3.1700000000123456789.7",
            "$JS.ACK.a.b.FUNNEL.c1.1.42.3.1700000000123456789",
            "_INBOX.abc",
        ] {
            assert_eq!(Delivery::parse(bad), None, "{bad}");
        }
    }
}
