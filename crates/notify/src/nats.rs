//! Per-office, per-kind NATS subjects for native consumers.
//!
//! The log's subjects (`funnel.log.<category>.<id>`) carry one message per command, which may
//! hold several events, and say nothing of the office; a subject filter cannot pick "stage changes
//! in Shanghai" out of them. The republisher follows the log and publishes every event again, one
//! message each, on
//!
//! ```text
//! funnel.notify.<office>.<event type>      e.g. funnel.notify.SH.lead.stage_changed
//! ```
//!
//! into a stream of its own (`FUNNEL_NOTIFY`, file storage, age-limited), so consumers subscribe
//! with plain filters (`funnel.notify.SH.>`, `funnel.notify.*.lead.stage_changed`) through core
//! NATS or their own JetStream consumers. `<office>` is the office's code when it is a valid
//! subject token (letters, digits, `-`, `_`), else its id without dashes, and `_` for events of no
//! office (staff, headquarters). The body is the event as a CloudEvents 1.0 JSON document
//! (`Content-Type: application/cloudevents+json`); `Nats-Msg-Id` is the event id, so a
//! republish after a crash is dropped by the stream's duplicate window, and `Funnel-Position`
//! is the event's log position. The republisher resumes where the stream's last messages say,
//! publishing whatever of them a failure lost ([`Republisher::resume_point`]).

use crate::{OfficeName, note_office};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use funnel_store::{EventStore, Filter, StoreError, SubscriptionItem};
use funnel_types::{OfficeId, Position};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

/// The subject prefix of notifications.
pub const PREFIX: &str = "funnel.notify";
/// The header holding an event's log position.
pub const POSITION_HEADER: &str = "Funnel-Position";

/// Where and how notifications are published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepublishOptions {
    /// The JetStream stream that keeps notifications.
    pub stream: String,
    /// How long notifications are kept.
    pub max_age: Duration,
    /// Replicas of the stream when it is created (an existing one keeps its own).
    pub replicas: usize,
    /// Publishes awaiting their acknowledgement at most.
    pub in_flight: usize,
}

impl Default for RepublishOptions {
    fn default() -> Self {
        Self {
            stream: "FUNNEL_NOTIFY".into(),
            max_age: Duration::from_secs(30 * 24 * 3600),
            replicas: 1,
            in_flight: 256,
        }
    }
}

/// Why republishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("NATS: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> RepublishError {
    RepublishError::Nats(e.to_string())
}

fn subject_token(text: &str) -> bool {
    !text.is_empty()
        && text != "_"
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The `<office>` token of an event's subject.
pub fn office_token(office: Option<OfficeId>, offices: &BTreeMap<OfficeId, OfficeName>) -> String {
    match office {
        None => "_".into(),
        Some(id) => match offices.get(&id) {
            Some(o) if subject_token(&o.code) => o.code.clone(),
            _ => id.as_uuid().simple().to_string(),
        },
    }
}

/// The subject an event is republished on.
pub fn subject(office: &str, event_type: &str) -> String {
    format!("{PREFIX}.{office}.{event_type}")
}

/// Where a republisher resumes: after `after`, skipping the positions in `held`, which the
/// notification stream already holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumePoint {
    pub after: Position,
    pub held: BTreeSet<u64>,
}

impl ResumePoint {
    /// From the positions of the last messages of the stream (`held`, in stream order);
    /// `from_start` when that window begins at the stream's first message ever, so that nothing
    /// before it was published at all.
    pub fn from_window(from_start: bool, held: &[u64]) -> Self {
        let after = match held.first() {
            Some(&first) if !from_start => Position(first),
            _ => Position::START,
        };
        Self {
            after,
            held: held.iter().copied().filter(|&p| p > after.0).collect(),
        }
    }
}

fn no_message(e: &stream::RawMessageError) -> bool {
    use stream::RawMessageErrorKind;
    match e.kind() {
        RawMessageErrorKind::NoMessageFound => true,
        RawMessageErrorKind::JetStream(js) => {
            js.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

/// Follows the log and republishes every event on its notification subject.
#[derive(Debug)]
pub struct Republisher {
    js: jetstream::Context,
    store: Arc<dyn EventStore>,
    options: RepublishOptions,
}

impl Republisher {
    pub fn new(
        client: async_nats::Client,
        store: Arc<dyn EventStore>,
        options: RepublishOptions,
    ) -> Self {
        Self {
            js: jetstream::new(client),
            store,
            options,
        }
    }

    /// Creates the notification stream if it is missing, with [`RepublishOptions::replicas`]; an
    /// existing one is left as configured, and replicas that differ from the setting are logged
    /// as a warning that says how to change them (moving a stream copies all of it).
    pub async fn ensure_stream(&self) -> Result<stream::Stream, RepublishError> {
        let config = stream::Config {
            name: self.options.stream.clone(),
            subjects: vec![format!("{PREFIX}.>")],
            storage: stream::StorageType::File,
            num_replicas: self.options.replicas,
            max_age: self.options.max_age,
            duplicate_window: Duration::from_secs(120),
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        };
        let mut stream = self.js.get_or_create_stream(config).await.map_err(|e| {
            let text = e.to_string();
            if text.contains("error code 10023") || text.contains("error code 10074") {
                RepublishError::Nats(format!(
                    "cannot create stream {} with {} replicas: the cluster has fewer JetStream \
                     servers that can hold it ({text}); start the missing members or set \
                     store.notify_replicas lower",
                    self.options.stream, self.options.replicas
                ))
            } else {
                nats(e)
            }
        })?;
        let actual = stream
            .info()
            .await
            .map_err(nats)?
            .config
            .num_replicas
            .max(1);
        if actual != self.options.replicas {
            tracing::warn!(
                stream = %self.options.stream,
                actual,
                wanted = self.options.replicas,
                "JetStream stream {} has {actual} replica(s) but the setting asks for {}; it is \
                 left as it is, because changing replicas copies the whole stream: run `funnel \
                 store set-replicas {} --stream {}` (with the same --store) when ready",
                self.options.stream,
                self.options.replicas,
                self.options.replicas,
                self.options.stream,
            );
        }
        Ok(stream)
    }

    /// Where to resume: the log position to follow the log after, and the positions at or after
    /// it that the stream already holds (to be skipped).
    ///
    /// The last message in the stream is not enough: up to [`RepublishOptions::in_flight`]
    /// publishes await their acknowledgement at once, so when a stream leader dies, one of them
    /// may be lost while a later one is stored. Every publish older than the last `in_flight` ones
    /// was acknowledged before the next was sent, and a lost publish takes no sequence number, so
    /// the last `in_flight` messages stored reach back at least to the oldest publish that may be
    /// missing. The republisher reads that window (twice `in_flight`, in case the setting was
    /// lower before), resumes after its first message and skips what the window holds. Nothing
    /// relies on the stream's duplicate window, which a long pause outlasts.
    pub async fn resume_point(
        &self,
        stream: &mut stream::Stream,
    ) -> Result<ResumePoint, RepublishError> {
        let (messages, first_sequence, last_sequence) = {
            let info = stream.info().await.map_err(nats)?;
            (
                info.state.messages,
                info.state.first_sequence,
                info.state.last_sequence,
            )
        };
        if messages == 0 {
            return Ok(ResumePoint::default());
        }
        let window = (self.options.in_flight.max(1) as u64).saturating_mul(2);
        let from = last_sequence
            .saturating_sub(window - 1)
            .max(first_sequence)
            .max(1);
        let mut held = Vec::new();
        for sequence in from..=last_sequence {
            match stream.get_raw_message(sequence).await {
                Ok(message) => {
                    let position = message
                        .headers
                        .get(POSITION_HEADER)
                        .and_then(|v| v.as_str().parse::<u64>().ok())
                        .ok_or_else(|| {
                            nats(format!(
                                "message {sequence} of stream {} has no {POSITION_HEADER} header",
                                self.options.stream
                            ))
                        })?;
                    held.push(position);
                }
                Err(e) if no_message(&e) => {}
                Err(e) => return Err(nats(e)),
            }
        }
        Ok(ResumePoint::from_window(from == 1, &held))
    }

    /// Republishes until `stop` completes. Every publish is acknowledged by the stream before the
    /// next batch is read past it.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<(), RepublishError> {
        let mut stream = self.ensure_stream().await?;
        let ResumePoint { after, held } = self.resume_point(&mut stream).await?;
        let mut offices = crate::offices(self.store.as_ref()).await?;
        tracing::info!(stream = %self.options.stream, %after, held = held.len(), "republishing the log on funnel.notify.<office>.<type>");
        let mut events = self.store.clone().subscribe(after, Filter::All);
        let mut acks: FuturesOrdered<
            <jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture,
        > = FuturesOrdered::new();
        tokio::pin!(stop);
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                () = &mut stop => break,
            };
            let Some(item) = item else { break };
            match item? {
                SubscriptionItem::CaughtUp(_) => {
                    while let Some(ack) = acks.next().await {
                        ack.map_err(nats)?;
                    }
                }
                SubscriptionItem::Event(rec) => {
                    if held.contains(&rec.meta.position.0) {
                        continue;
                    }
                    let env = match funnel_codec::decode_recorded(&rec) {
                        Ok(env) => env,
                        Err(e) => {
                            tracing::error!(position = %rec.meta.position, error = %e, "event not republished: it does not decode");
                            continue;
                        }
                    };
                    note_office(&mut offices, &env.payload);
                    let subject = subject(
                        &office_token(env.meta.office, &offices),
                        &env.meta.event_type,
                    );
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        "Nats-Msg-Id",
                        env.meta.event_id.as_uuid().to_string().as_str(),
                    );
                    headers.insert(POSITION_HEADER, env.meta.position.0.to_string().as_str());
                    headers.insert("Content-Type", "application/cloudevents+json");
                    let body = funnel_codec::to_cloudevent(&env).to_string();
                    let ack = self
                        .js
                        .publish_with_headers(subject, headers, body.into())
                        .await
                        .map_err(nats)?;
                    acks.push_back(ack.into_future());
                    while acks.len() >= self.options.in_flight {
                        if let Some(ack) = acks.next().await {
                            ack.map_err(nats)?;
                        }
                    }
                }
            }
        }
        while let Some(ack) = acks.next().await {
            ack.map_err(nats)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_window_from_the_first_message_resumes_from_the_start() {
        let point = ResumePoint::from_window(true, &[2048, 3072, 5120]);
        assert_eq!(point.after, Position::START);
        assert_eq!(point.held, BTreeSet::from([2048, 3072, 5120]));
    }

    #[test]
    fn a_later_window_resumes_after_its_first_message_and_skips_the_rest() {
        let point = ResumePoint::from_window(false, &[2048, 3072, 5120]);
        assert_eq!(point.after, Position(2048));
        assert_eq!(point.held, BTreeSet::from([3072, 5120]));
        assert_eq!(ResumePoint::from_window(false, &[]), ResumePoint::default());
    }

    use super::*;

    #[test]
    fn office_tokens_are_codes_when_they_can_be() {
        let mut offices = BTreeMap::new();
        let (sh, odd, unknown) = (
            OfficeId::derived("SH"),
            OfficeId::derived("odd"),
            OfficeId::derived("x"),
        );
        offices.insert(
            sh,
            OfficeName {
                code: "SH".into(),
                name: "上海".into(),
            },
        );
        offices.insert(
            odd,
            OfficeName {
                code: "上海 2".into(),
                name: "x".into(),
            },
        );
        assert_eq!(office_token(Some(sh), &offices), "SH");
        assert_eq!(
            office_token(Some(odd), &offices),
            odd.as_uuid().simple().to_string()
        );
        assert_eq!(
            office_token(Some(unknown), &offices),
            unknown.as_uuid().simple().to_string()
        );
        assert_eq!(office_token(None, &offices), "_");
        assert_eq!(
            subject("SH", "lead.stage_changed"),
            "funnel.notify.SH.lead.stage_changed"
        );
    }
}
