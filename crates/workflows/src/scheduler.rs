//! Durable timers and the loops around the core: firing due timers once caught up with the log,
//! running until idle, following the live tail, and retrying parked reactions.

use crate::index::PendingTimer;
use crate::runtime::{Fire, RuntimeError, WorkflowRuntime, stream_of};
use chrono::Duration;
use funnel_domain::Event;
use funnel_domain::events::{TimerFired, WorkflowKind};
use funnel_domain::workflow;
use funnel_store::{Filter, read_whole_stream};
use funnel_types::{EventId, Position, TimerId, WorkflowId};

/// The longest the live loop sleeps before looking at the clock again.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);
/// The shortest, so a timer that cannot fire does not make the loop spin.
const MIN_SLEEP: std::time::Duration = std::time::Duration::from_millis(20);

impl WorkflowRuntime {
    /// Fires the timers due at the clock's time (one round, earliest first), but only when the
    /// runtime has caught up with the log, so history is judged before deadlines are. A round ends
    /// after a timer whose reaction sent commands, so their effects are read before the next timer
    /// fires. Returns the number of timers fired; a timer's reaction may schedule another that is
    /// already due, which the next round fires.
    pub async fn fire_due(&mut self) -> Result<u64, RuntimeError> {
        self.start().await?;
        if self.engine.store().head().await? > self.after {
            return Ok(0);
        }
        let due = self.index.due(self.clock.now());
        let mut fired = 0;
        for (kind, timer) in due {
            // An earlier timer of the same instance may have cancelled this one.
            let pending = self
                .index
                .instances
                .get(&timer.workflow_id)
                .is_some_and(|i| i.state.timers.contains_key(&timer.timer_id));
            let sent = self.stats.commands_sent;
            if pending && self.fire_timer(kind, &timer, false).await? {
                fired += 1;
            }
            if self.stats.commands_sent > sent {
                // The command's effect is in the log now: let the instances see it (the next
                // catch-up) before judging the next deadline.
                break;
            }
        }
        self.stats.timers_fired += fired;
        Ok(fired)
    }

    /// Fires one timer: the trigger is a synthetic `workflow.timer_fired` whose id is the timer's.
    async fn fire_timer(
        &mut self,
        kind: WorkflowKind,
        t: &PendingTimer,
        retry: bool,
    ) -> Result<bool, RuntimeError> {
        let now = self.clock.now();
        let event = Event::TimerFired(TimerFired {
            workflow_id: t.workflow_id,
            timer_id: t.timer_id,
            purpose: t.purpose.clone(),
            due_at: t.due_at,
            fired_at: now,
            late: now - t.due_at > Duration::minutes(1),
        });
        let office = self
            .index
            .instances
            .get(&t.workflow_id)
            .and_then(|i| i.state.office);
        // The fact is that the deadline passed: a task a late timer opens is owed since then.
        let fire = Fire {
            id: t.timer_id.0,
            position: None,
            occurred_at: t.due_at,
            office,
            event: &event,
        };
        self.handle(kind, t.workflow_id, &fire, retry).await
    }

    /// Catches up with the log and fires due timers, again and again until there are no new events
    /// and nothing is due. `progress` gets (position, head) while catching up.
    pub async fn run_until_idle(
        &mut self,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<(), RuntimeError> {
        loop {
            let read = self.catch_up(progress).await?;
            let fired = self.fire_due().await?;
            if read == 0 && fired == 0 {
                return Ok(());
            }
        }
    }

    /// Follows the live tail until `shutdown` completes: reacts to new events and fires timers as
    /// they come due, sleeping until the next due time or the next append, whichever is first.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), RuntimeError> {
        self.run_observed(shutdown, &mut |_| {}).await
    }

    /// [`WorkflowRuntime::run`], telling `observe` the backlog each time the runtime is idle.
    pub async fn run_observed(
        &mut self,
        shutdown: impl Future<Output = ()>,
        observe: &mut dyn FnMut(&crate::Backlog),
    ) -> Result<(), RuntimeError> {
        let (_keep, mut control) = tokio::sync::mpsc::channel(1);
        self.run_controlled(shutdown, observe, &mut control).await
    }

    /// [`Self::run_observed`], also answering [`Control`](crate::Control) requests between rounds.
    /// The receiver outlives the runtime, so a restarted runtime goes on answering.
    pub async fn run_controlled(
        &mut self,
        shutdown: impl Future<Output = ()>,
        observe: &mut dyn FnMut(&crate::Backlog),
        control: &mut tokio::sync::mpsc::Receiver<crate::Control>,
    ) -> Result<(), RuntimeError> {
        tokio::pin!(shutdown);
        loop {
            self.run_until_idle(&mut |_, _| {}).await?;
            observe(&self.backlog());
            let sleep = self
                .index
                .next_due()
                .map_or(MAX_SLEEP, |due| {
                    (due - self.clock.now()).to_std().unwrap_or_default()
                })
                .clamp(MIN_SLEEP, MAX_SLEEP);
            let store = self.engine.store().clone();
            tokio::select! {
                r = store.wait_for_append(self.after, sleep) => { r?; }
                Some(request) = control.recv() => match request {
                    // A failure is the caller's answer; if the store is down, the next round
                    // fails too and the runtime restarts as usual.
                    crate::Control::Retry { id, reply } => {
                        let _ = reply.send(self.retry(id).await);
                    }
                },
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    /// Runs an instance's parked reactions again: a business event is read again at the position
    /// the parking recorded, a timer is fired again. Each retried reaction appends
    /// `workflow.reaction_retried` (or is parked again). Returns how many were retried.
    pub async fn retry(&mut self, id: WorkflowId) -> Result<usize, RuntimeError> {
        self.start().await?;
        let stream = stream_of(id)?;
        let store = self.engine.store().clone();
        let records = read_whole_stream(store.as_ref(), &stream).await?;
        if records.is_empty() {
            return Err(RuntimeError::UnknownInstance(id));
        }
        // Where each parked cause was in the log, from the latest parking of it.
        let mut positions = std::collections::HashMap::new();
        for r in &records {
            if let Event::ReactionParked(p) = funnel_codec::decode_recorded(r)?.payload {
                positions.insert(p.cause, p.position);
            }
        }
        let Some(inst) = self.index.instances.get(&id) else {
            return Err(RuntimeError::UnknownInstance(id));
        };
        let parked: Vec<EventId> = inst.state.parked.keys().copied().collect();
        let kind = inst.state.kind;
        let timers = inst.state.timers.clone();
        let mut done = 0;
        for cause in parked {
            let timer = TimerId(cause.0);
            if let (Some(kind), Some((purpose, due_at))) = (kind, timers.get(&timer)) {
                let t = PendingTimer {
                    workflow_id: id,
                    timer_id: timer,
                    purpose: purpose.clone(),
                    due_at: *due_at,
                };
                self.fire_timer(kind, &t, true).await?;
                done += 1;
                continue;
            }
            let Some(env) = self
                .find_event(cause, positions.get(&cause).copied().flatten())
                .await?
            else {
                tracing::warn!(workflow = %id, %cause, "the parked cause is not in the log");
                continue;
            };
            let fire = Fire {
                id: cause.0,
                position: Some(env.meta.position),
                occurred_at: env.meta.occurred_at,
                office: env.meta.office,
                event: &env.payload,
            };
            for (kind, target) in workflow::route(&env.payload, env.meta.office) {
                if target == id {
                    self.handle(kind, id, &fire, true).await?;
                    done += 1;
                }
            }
        }
        Ok(done)
    }

    /// A business event by id: at its recorded position, or by scanning the log.
    async fn find_event(
        &self,
        id: EventId,
        position: Option<Position>,
    ) -> Result<Option<funnel_types::Envelope<Event>>, RuntimeError> {
        let store = self.engine.store().clone();
        if let Some(p) = position {
            let before = Position(p.0.saturating_sub(1));
            if let Some(rec) = store.read_all(before, &Filter::All, 1).await?.first()
                && rec.meta.event_id == id
            {
                return Ok(Some(funnel_codec::decode_recorded(rec)?));
            }
        }
        let mut after = Position::START;
        loop {
            let batch = store.read_all(after, &Filter::All, 4096).await?;
            let Some(last) = batch.last().map(|r| r.meta.position) else {
                return Ok(None);
            };
            if let Some(rec) = batch.iter().find(|r| r.meta.event_id == id) {
                return Ok(Some(funnel_codec::decode_recorded(rec)?));
            }
            after = last;
        }
    }
}
