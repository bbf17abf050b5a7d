//! The delivery worker of a chat robot subscription.
//!
//! It reads the log like a webhook worker (with the owner's staff events, and the office, staff
//! and lead events that give names), renders each selected event, and keeps it in a queue until
//! the robot's budget allows a message; then everything queued goes as one message (a digest when
//! there are several), split only where the vendor's size limit requires. The cursor moves only
//! past events a robot accepted, so a restart sends the rest again.

use super::pace::Budget;
use super::render::{Names, Rendered};
use super::{Answer, Message, TargetKind};
use crate::webhooks::dispatch::{SAVE_SKIPPED_EVERY, Worker, WorkerError, describe};
use crate::webhooks::{Delivery, Failing, Queue, Subscription};
use funnel_store::{Filter, SubscriptionItem};
use funnel_types::Position;
use futures::StreamExt;
use std::collections::VecDeque;
use std::time::Instant;

/// Events read ahead of the robot at most (the log is read on when they are sent).
const MAX_WAITING: usize = 500;

/// Events in one message at most (beyond the vendors' size limits, a digest must stay readable).
const MAX_PER_MESSAGE: usize = 100;

/// An event waiting for the robot.
struct Waiting {
    position: Position,
    event_id: uuid::Uuid,
    event_type: String,
    rendered: Rendered,
}

impl Worker {
    /// Names from the history before the cursor.
    async fn names_before(&self, cursor: Position) -> Result<Names, WorkerError> {
        let mut names = Names::default();
        let filter = Filter::Categories(vec!["lead".into(), "office".into(), "staff".into()]);
        let mut after = Position::START;
        while after < cursor {
            let batch = self.store.read_all(after, &filter, 1024).await?;
            let Some(last) = batch.last() else { break };
            after = last.meta.position;
            for rec in batch
                .iter()
                .filter(|r| r.meta.position <= cursor && Names::learns_from(&r.meta.event_type))
            {
                if let Ok(env) = funnel_codec::decode_recorded(rec) {
                    names.note(&env.payload);
                }
            }
        }
        Ok(names)
    }

    pub(in crate::webhooks) async fn run_robot(
        &self,
        sub: &Subscription,
    ) -> Result<(), WorkerError> {
        let ran = self.robot_loop(sub).await;
        self.hooks.set_queue(sub.id, None);
        ran
    }

    async fn robot_loop(&self, sub: &Subscription) -> Result<(), WorkerError> {
        let kind = sub.target;
        let creds = self.hooks.credentials(sub.id).await?;
        if self.authority_before_cursor(sub).await? {
            return Ok(());
        }
        let selector = sub.selector();
        let mut names = self.names_before(sub.cursor).await?;
        let filter = match selector.kinds.filter() {
            Filter::Categories(mut cats) => {
                for c in ["lead", "office", "staff"] {
                    if !cats.iter().any(|x| x == c) {
                        cats.push(c.into());
                    }
                }
                Filter::Categories(cats)
            }
            f => f,
        };
        let mut events = self.store.clone().subscribe(sub.cursor, filter);
        let mut waiting: VecDeque<Waiting> = VecDeque::new();
        let mut budget = kind.budget();
        let mut read_to = sub.cursor;
        let mut saved = sub.cursor;
        let mut skipped = 0u32;
        self.hooks.set_queue(sub.id, Some(Queue::default()));
        loop {
            let slot = budget.next_slot(self.clock.now());
            tokio::select! {
                // Read what is there before sending, so a backlog goes as digests.
                biased;
                item = events.next(), if waiting.len() < MAX_WAITING => {
                    let Some(item) = item else { break };
                    match item? {
                        SubscriptionItem::CaughtUp(head) => {
                            read_to = read_to.max(head);
                            if waiting.is_empty() && read_to > saved {
                                self.hooks.advance(sub, read_to, 0).await?;
                                saved = read_to;
                                skipped = 0;
                            }
                        }
                        SubscriptionItem::Event(rec) => {
                            let position = rec.meta.position;
                            if self.check_authority(sub, &rec).await? {
                                return Ok(());
                            }
                            read_to = position;
                            let admitted = selector.admits(&rec.meta);
                            if admitted {
                                let env = self.decode_or_fail(sub, &rec).await?;
                                names.note(&env.payload);
                                waiting.push_back(Waiting {
                                    position,
                                    event_id: rec.meta.event_id.as_uuid(),
                                    event_type: rec.meta.event_type.clone(),
                                    rendered: Rendered::of(&env, &names),
                                });
                            } else {
                                if Names::learns_from(&rec.meta.event_type)
                                    && let Ok(env) = funnel_codec::decode_recorded(&rec)
                                {
                                    names.note(&env.payload);
                                }
                                if waiting.is_empty() {
                                    skipped += 1;
                                    if skipped >= SAVE_SKIPPED_EVERY {
                                        self.hooks.advance(sub, read_to, 0).await?;
                                        saved = read_to;
                                        skipped = 0;
                                    }
                                }
                            }
                        }
                    }
                    self.hooks.set_queue(sub.id, Some(Queue { read_to, waiting: waiting.len() }));
                }
                () = self.clock.sleep_until(slot), if !waiting.is_empty() => {
                    let sent = self.send_next(sub, kind, &creds, &mut budget, &waiting).await?;
                    waiting.drain(..sent);
                    // Everything before the first event still waiting was sent or skipped.
                    let to = waiting
                        .front()
                        .map_or(read_to, |w| Position(w.position.0.saturating_sub(1)));
                    self.hooks.advance(sub, to, sent as u64).await?;
                    saved = saved.max(to);
                    skipped = 0;
                    self.hooks.set_queue(sub.id, Some(Queue { read_to, waiting: waiting.len() }));
                }
            }
        }
        Ok(())
    }

    /// The message for the first events waiting: as many as fit the vendor's size limit.
    fn next_message(&self, kind: TargetKind, waiting: &VecDeque<Waiting>) -> (Message, usize) {
        let link = self.options.dashboard_url.as_deref();
        let first = Message::single(&waiting[0].rendered, link);
        if waiting.len() == 1 {
            return (first.fitted(kind), 1);
        }
        let all: Vec<Rendered> = waiting
            .iter()
            .take(MAX_PER_MESSAGE)
            .map(|w| w.rendered.clone())
            .collect();
        // The longest digest that fits: grow while it does.
        let mut n = 1;
        while n < all.len() && Message::digest(&all[..=n], link).fits(kind) {
            n += 1;
        }
        if n == 1 {
            (first.fitted(kind), 1)
        } else {
            (Message::digest(&all[..n], link), n)
        }
    }

    /// Sends the first events waiting until the robot accepts them; returns how many it took.
    async fn send_next(
        &self,
        sub: &Subscription,
        kind: TargetKind,
        creds: &super::Credentials,
        budget: &mut Budget,
        waiting: &VecDeque<Waiting>,
    ) -> Result<usize, WorkerError> {
        let (message, n) = self.next_message(kind, waiting);
        let last = &waiting[n - 1];
        let mut attempt = 0u32;
        let mut since = None;
        loop {
            let slot = budget.next_slot(self.clock.now());
            self.clock.sleep_until(slot).await;
            attempt += 1;
            self.may_send().await?;
            let now = self.clock.now();
            budget.spend(now);
            let url = super::send_url(kind, creds, now);
            let body = message.body(kind, creds.secret.as_deref(), now).to_string();
            let started = Instant::now();
            let literal = url::Url::parse(&url)
                .map_err(|e| e.to_string())
                .and_then(|u| {
                    self.hooks
                        .targets()
                        .check_literal(&u)
                        .map_err(|r| format!("refused: {r}"))
                });
            let sent = match literal {
                Err(refused) => Err(refused),
                Ok(()) => self
                    .client
                    .post(&url)
                    .timeout(self.options.timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| describe(&e)),
            };
            let (status, answer) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse().ok());
                    let text = resp.text().await.unwrap_or_default();
                    (
                        Some(status),
                        super::answer(kind, status, retry_after, &text),
                    )
                }
                Err(e) => (None, Answer::Failed(e)),
            };
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let error = match &answer {
                Answer::Accepted => None,
                Answer::Failed(e) | Answer::Throttled(e, _) => Some(e.clone()),
            };
            let delivery = Delivery {
                seq: 0,
                position: last.position,
                event_id: last.event_id,
                event_type: last.event_type.clone(),
                attempt,
                at: now,
                status,
                ok: error.is_none(),
                error,
                events: u32::try_from(n).unwrap_or(u32::MAX),
                duration_ms: Some(duration_ms),
            };
            self.hooks.log_attempt(sub.id, &delivery).await?;
            let (error, next) = match answer {
                Answer::Accepted => return Ok(n),
                Answer::Throttled(e, wait) => {
                    let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    budget.block(until);
                    tracing::info!(subscription = %sub.id, error = %e, %until, "chat robot throttled");
                    (e, until)
                }
                Answer::Failed(e) => {
                    let wait = self.options.backoff(attempt);
                    tracing::debug!(subscription = %sub.id, attempt, error = %e, "chat robot delivery failed");
                    (
                        e,
                        now + chrono::Duration::from_std(wait).unwrap_or_default(),
                    )
                }
            };
            let failing = Failing {
                position: waiting[0].position,
                since: *since.get_or_insert(now),
                attempts: attempt,
                last_error: error.clone(),
                next_attempt_at: next,
            };
            self.hooks.set_failing(sub, failing).await?;
            if next > now && budget.next_slot(now) < next {
                // An ordinary failure waits its backoff in real time; a throttle waits on the
                // budget above.
                tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            }
        }
    }
}
