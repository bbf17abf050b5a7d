//! The dispatcher: one delivery worker per active subscription, restarted when the subscription
//! changes (pause, resume, replay, delete) or when a worker stops on an error.
//!
//! A worker reads the log from its subscription's cursor with the staff events mixed in, so it
//! meets its owner leaving or changing role or office in log order, before any later event, and
//! pauses the subscription there (recording why, when and at which position). When it starts, it
//! first looks at the owner's staff events between the position their authority was checked at
//! and the cursor, so neither a restart nor a replay past such an event lets delivery go on.

use super::robot::pace::{RobotClock, SystemRobotClock};
use super::target::{Refused, guarded_client};
use super::{Change, Delivery, Failing, Subscription, WebhookError, Webhooks};
use chrono::Utc;
use funnel_domain::Event;
use funnel_store::Filter;
use funnel_store::lease::Fence;
use funnel_store::{EventStore, RecordedEvent, StoreError, SubscriptionItem};
use funnel_types::{Envelope, Position};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How deliveries are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// How long a receiver has to answer one POST.
    pub timeout: Duration,
    /// The wait after the first failed attempt; it doubles with each failure …
    pub backoff_initial: Duration,
    /// … up to this.
    pub backoff_max: Duration,
    /// How often stopped workers are looked at again.
    pub restart_every: Duration,
    /// The dashboard's public address (e.g. `https://funnel.example.com/`): chat robot messages
    /// link to it when set.
    pub dashboard_url: Option<String>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            restart_every: Duration::from_secs(5),
            dashboard_url: None,
        }
    }
}

impl DeliveryOptions {
    /// The wait before attempt `failed + 1`: exponential, capped, with the upper half jittered so
    /// that receivers coming back are not hit by every subscription at once.
    pub fn backoff(&self, failed: u32) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32 << failed.saturating_sub(1).min(20));
        let capped = exp.min(self.backoff_max);
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Why a worker stopped (it is started again).
#[derive(Debug, thiserror::Error)]
pub(super) enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Webhooks(#[from] WebhookError),
    #[error("the event at position {position} does not decode: {detail}")]
    Decode { position: Position, detail: String },
}

impl Webhooks {
    pub(super) async fn advance(
        &self,
        sub: &Subscription,
        to: Position,
        delivered: u64,
    ) -> Result<(), WebhookError> {
        self.apply(
            sub.id,
            Change::Advance {
                revision: sub.revision,
                to,
                delivered,
            },
        )
        .await?;
        Ok(())
    }

    /// Notes the current event's failure (while the subscription is at the revision read).
    pub(super) async fn set_failing(
        &self,
        sub: &Subscription,
        failing: Failing,
    ) -> Result<(), WebhookError> {
        self.apply(
            sub.id,
            Change::Failing {
                revision: sub.revision,
                failing,
            },
        )
        .await?;
        Ok(())
    }

    /// Pauses at `position` for `reason`, unless the subscription changed since it was read.
    pub(super) async fn pause_at(
        &self,
        sub: &Subscription,
        reason: String,
        position: Position,
    ) -> Result<(), WebhookError> {
        self.apply(
            sub.id,
            Change::PauseAt {
                revision: sub.revision,
                reason,
                position,
                at: Utc::now(),
            },
        )
        .await?;
        Ok(())
    }
}

/// Runs the delivery workers until `stop` completes.
#[derive(Debug)]
pub struct Dispatcher {
    hooks: Webhooks,
    fence: Option<(Fence, u64)>,
    store: Arc<dyn EventStore>,
    options: DeliveryOptions,
    client: reqwest::Client,
    clock: Arc<dyn RobotClock>,
}

impl Dispatcher {
    pub fn new(
        hooks: Webhooks,
        store: Arc<dyn EventStore>,
        options: DeliveryOptions,
    ) -> Result<Self, reqwest::Error> {
        let client = guarded_client(
            hooks.targets(),
            concat!("funnel-webhooks/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Self {
            hooks,
            fence: None,
            store,
            options,
            client,
            clock: Arc::new(SystemRobotClock),
        })
    }

    /// Every attempt first passes `fence` under `term` (the `webhooks` lease of a log shared by
    /// several processes), so a holder that lost the lease while paused sends nothing more.
    pub fn fenced(mut self, fence: Option<(Fence, u64)>) -> Self {
        self.fence = fence;
        self
    }

    /// Chat robots are paced, and sign, by `clock` (the system's by default).
    pub fn with_clock(mut self, clock: Arc<dyn RobotClock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut workers: HashMap<Uuid, (u64, JoinHandle<()>)> = HashMap::new();
        let mut changes = self.hooks.changes();
        tokio::pin!(stop);
        loop {
            match self.hooks.list().await {
                Ok(subs) => self.reconcile(&mut workers, subs),
                Err(e) => tracing::error!(error = %e, "cannot list webhook subscriptions"),
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(self.options.restart_every) => {}
                () = &mut stop => break,
            }
        }
        for (_, (_, handle)) in workers {
            handle.abort();
        }
    }

    fn reconcile(
        &self,
        workers: &mut HashMap<Uuid, (u64, JoinHandle<()>)>,
        subs: Vec<Subscription>,
    ) {
        let live: HashMap<Uuid, &Subscription> = subs.iter().map(|s| (s.id, s)).collect();
        workers.retain(|id, (revision, handle)| {
            let keep = live
                .get(id)
                .is_some_and(|s| !s.paused && s.revision == *revision && !handle.is_finished());
            if !keep {
                handle.abort();
            }
            keep
        });
        for sub in subs {
            if sub.paused || workers.contains_key(&sub.id) {
                continue;
            }
            let worker = Worker {
                hooks: self.hooks.clone(),
                fence: self.fence.clone(),
                store: self.store.clone(),
                options: self.options.clone(),
                client: self.client.clone(),
                clock: self.clock.clone(),
            };
            let (id, revision) = (sub.id, sub.revision);
            let handle = tokio::spawn(async move {
                let ran = if sub.target.is_robot() {
                    worker.run_robot(&sub).await
                } else {
                    worker.run(&sub).await
                };
                if let Err(e) = ran {
                    tracing::warn!(subscription = %sub.id, error = %e, "webhook worker stopped; it starts again shortly");
                }
            });
            workers.insert(id, (revision, handle));
        }
    }
}

pub(super) struct Worker {
    pub(super) hooks: Webhooks,
    pub(super) fence: Option<(Fence, u64)>,
    pub(super) store: Arc<dyn EventStore>,
    pub(super) options: DeliveryOptions,
    pub(super) client: reqwest::Client,
    pub(super) clock: Arc<dyn RobotClock>,
}

/// How one event's delivery ended.
enum Outcome {
    Delivered,
    /// The receiver answered 410 Gone; the subscription is paused.
    Gone,
}

/// Why `event` ends the authority of `owner`, if it does.
fn ends_authority(owner: funnel_types::StaffId, event: &Event) -> Option<String> {
    match event {
        Event::StaffLeft(e) if e.staff_id == owner => {
            Some(format!("its owner {owner} left ({})", e.reason))
        }
        Event::StaffRoleChanged(e) if e.staff_id == owner && e.from != e.to => Some(format!(
            "its owner {owner} changed role from {} to {}",
            e.from, e.to
        )),
        Event::StaffMovedOffice(e) if e.staff_id == owner && e.from != e.to => {
            let name = |o: Option<funnel_types::OfficeId>| {
                o.map_or_else(|| "headquarters".to_string(), |o| o.to_string())
            };
            Some(format!(
                "its owner {owner} moved from {} to {}",
                name(e.from),
                name(e.to)
            ))
        }
        _ => None,
    }
}

/// Skipped events move the cursor in steps of this many, so a narrow subscription does not write
/// once per event of the log.
pub(super) const SAVE_SKIPPED_EVERY: u32 = 512;

impl Worker {
    /// Passes when this process may still deliver (always without a lease).
    pub(super) async fn may_send(&self) -> Result<(), WorkerError> {
        if let Some((fence, term)) = &self.fence {
            fence.check(*term).await?;
        }
        Ok(())
    }

    /// Decodes an event to deliver; one that does not decode is shown on the subscription as its
    /// failure and stops the worker, which is started again (a newer Funnel may read the event).
    pub(super) async fn decode_or_fail(
        &self,
        sub: &Subscription,
        rec: &RecordedEvent,
    ) -> Result<Envelope<Event>, WorkerError> {
        match funnel_codec::decode_recorded(rec) {
            Ok(env) => Ok(env),
            Err(e) => {
                let now = Utc::now();
                let failing = Failing {
                    position: rec.meta.position,
                    since: now,
                    attempts: 0,
                    last_error: format!("the event does not decode: {e}"),
                    next_attempt_at: now,
                };
                self.hooks.set_failing(sub, failing).await?;
                Err(WorkerError::Decode {
                    position: rec.meta.position,
                    detail: e.to_string(),
                })
            }
        }
    }

    /// Pauses the subscription if `rec` ends its owner's authority; returns whether it did.
    pub(super) async fn check_authority(
        &self,
        sub: &Subscription,
        rec: &RecordedEvent,
    ) -> Result<bool, WorkerError> {
        let Some(owner) = sub.owner else {
            return Ok(false);
        };
        let position = rec.meta.position;
        if position <= sub.owner_since || !rec.meta.event_type.starts_with("staff.") {
            return Ok(false);
        }
        let env = funnel_codec::decode_recorded(rec).map_err(|e| WorkerError::Decode {
            position,
            detail: e.to_string(),
        })?;
        let Some(why) = ends_authority(owner, &env.payload) else {
            return Ok(false);
        };
        let reason = format!(
            "{why} at position {position}; whoever may manage it now can resume or delete it"
        );
        tracing::warn!(subscription = %sub.id, %reason, "webhook subscription paused");
        self.hooks.pause_at(sub, reason, position).await?;
        Ok(true)
    }

    /// The owner's staff events between the position their authority was checked at and the
    /// cursor (met again after a restart, or skipped by a replay forward).
    pub(super) async fn authority_before_cursor(
        &self,
        sub: &Subscription,
    ) -> Result<bool, WorkerError> {
        if sub.owner.is_none() {
            return Ok(false);
        }
        let mut after = sub.owner_since;
        while after < sub.cursor {
            let batch = self
                .store
                .read_all(after, &Filter::category("staff"), 1024)
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.meta.position;
            for rec in batch.iter().filter(|r| r.meta.position <= sub.cursor) {
                if self.check_authority(sub, rec).await? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    async fn run(&self, sub: &Subscription) -> Result<(), WorkerError> {
        let selector = sub.selector();
        let secret = self.hooks.secret(sub.id).await?;
        if self.authority_before_cursor(sub).await? {
            return Ok(());
        }
        let filter = match selector.kinds.filter() {
            Filter::Categories(mut cats) if sub.owner.is_some() => {
                if !cats.iter().any(|c| c == "staff") {
                    cats.push("staff".into());
                }
                Filter::Categories(cats)
            }
            f => f,
        };
        let mut events = self.store.clone().subscribe(sub.cursor, filter);
        let mut cursor = sub.cursor;
        let mut skipped = 0u32;
        while let Some(item) = events.next().await {
            match item? {
                SubscriptionItem::CaughtUp(head) => {
                    let to = cursor.max(head);
                    if to > sub.cursor {
                        self.hooks.advance(sub, to, 0).await?;
                    }
                    cursor = to;
                    skipped = 0;
                }
                SubscriptionItem::Event(rec) => {
                    let position = rec.meta.position;
                    if self.check_authority(sub, &rec).await? {
                        return Ok(());
                    }
                    if !selector.admits(&rec.meta) {
                        cursor = position;
                        skipped += 1;
                        if skipped >= SAVE_SKIPPED_EVERY {
                            self.hooks.advance(sub, cursor, 0).await?;
                            skipped = 0;
                        }
                        continue;
                    }
                    let env = self.decode_or_fail(sub, &rec).await?;
                    let body = funnel_codec::to_cloudevent(&env).to_string();
                    match self.deliver(sub, &secret, &rec.meta, body).await? {
                        Outcome::Delivered => {
                            self.hooks.advance(sub, position, 1).await?;
                            cursor = position;
                            skipped = 0;
                        }
                        Outcome::Gone => return Ok(()),
                    }
                }
            }
        }
        Ok(())
    }

    /// POSTs one event until a receiver acknowledges it (or answers 410 Gone).
    async fn deliver(
        &self,
        sub: &Subscription,
        secret: &str,
        meta: &funnel_types::Metadata,
        body: String,
    ) -> Result<Outcome, WorkerError> {
        let msg_id = meta.event_id.as_uuid().to_string();
        let mut attempt = 0u32;
        let mut since = None;
        loop {
            attempt += 1;
            self.may_send().await?;
            let now = Utc::now();
            let timestamp = now.timestamp();
            let signature = super::sign::sign(secret, &msg_id, timestamp, body.as_bytes())
                .ok_or_else(|| WebhookError::Corrupt {
                    what: "secret",
                    detail: format!("the secret of subscription {} is not base64", sub.id),
                })?;
            let started = Instant::now();
            // IP-literal URLs are not resolved, so the rule is checked here; names are checked on
            // the addresses they resolve to, by the client's resolver.
            let literal = url::Url::parse(&sub.url)
                .map_err(|e| e.to_string())
                .and_then(|u| {
                    self.hooks
                        .targets()
                        .check_literal(&u)
                        .map_err(|r| format!("refused: {r}"))
                });
            let request = self
                .client
                .post(&sub.url)
                .timeout(self.options.timeout)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/cloudevents+json",
                )
                .header("webhook-id", &msg_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .header("funnel-subscription", sub.id.to_string())
                .header("funnel-position", meta.position.0.to_string())
                .header("funnel-attempt", attempt.to_string())
                .body(body.clone());
            let sent = match literal {
                Err(refused) => Err(refused),
                Ok(()) => request.send().await.map_err(|e| describe(&e)),
            };
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (status, error) = match sent {
                Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
                Ok(resp) => (
                    Some(resp.status().as_u16()),
                    Some(format!("the receiver answered {}", resp.status())),
                ),
                Err(e) => (None, Some(e)),
            };
            let ok = error.is_none();
            let delivery = Delivery {
                seq: 0,
                position: meta.position,
                event_id: meta.event_id.as_uuid(),
                event_type: meta.event_type.clone(),
                attempt,
                at: now,
                status,
                ok,
                error: error.clone(),
                events: 1,
                duration_ms: Some(duration_ms),
            };
            self.hooks.log_attempt(sub.id, &delivery).await?;
            let Some(error) = error else {
                return Ok(Outcome::Delivered);
            };
            if status == Some(410) {
                let reason = format!(
                    "the receiver answered 410 Gone at position {}",
                    meta.position
                );
                tracing::warn!(subscription = %sub.id, %reason, "webhook subscription paused");
                self.hooks.pause_at(sub, reason, meta.position).await?;
                return Ok(Outcome::Gone);
            }
            let wait = self.options.backoff(attempt);
            let failing = Failing {
                position: meta.position,
                since: *since.get_or_insert(now),
                attempts: attempt,
                last_error: error,
                next_attempt_at: now
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
            };
            tracing::debug!(subscription = %sub.id, position = %meta.position, attempt, error = %failing.last_error, "webhook delivery failed");
            self.hooks.set_failing(sub, failing).await?;
            tokio::time::sleep(wait).await;
        }
    }
}

/// A short reason for a failed request.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return format!("refused: {refused}");
        }
        source = s.source();
    }
    if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the receiver".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stays_within_its_half() {
        let o = DeliveryOptions {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ..DeliveryOptions::default()
        };
        for (failed, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let d = o.backoff(failed);
            let full = Duration::from_secs(full);
            assert!(d >= full / 2 && d <= full, "{failed}: {d:?}");
        }
    }
}
