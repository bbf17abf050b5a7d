//! The runtime's core: the index rebuilt at start, catching up with the log from the checkpoint,
//! and one instance's reaction to one trigger (commands first, then the instance's own events),
//! parking a reaction that fails for a reason outside the domain.

use crate::failpoint::FailPoint;
use crate::index::{Index, Inst, InstanceSummary, Through};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_codec::DecodeError;
use funnel_domain::Event;
use funnel_domain::events::{ReactionParked, ReactionRetried, WorkflowCommandSent, WorkflowKind};
use funnel_domain::workflow::{self, OutCommand, ReactCtx, Trigger, WorkflowState};
use funnel_engine::{Command, CommandMeta, Engine, EngineError, Who};
use funnel_projections::checkpoint::{CheckpointError, CheckpointStore, Row, Slot, Write};
use funnel_store::{AppendRequest, Filter, ProposedEvent, StoreError, read_whole_stream};
use funnel_types::{
    Actor, Clock, CommandId, CorrelationId, Envelope, EventId, ExpectedVersion, OfficeId, Position,
    StreamId, Version, WorkflowId,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Events read per page while catching up.
const PAGE: usize = 2048;
/// The checkpoint's name in the checkpoint store.
const CHECKPOINT: &str = "workflows";
/// The index snapshot's name in the checkpoint store (its checkpoint: the last workflow event in it).
const INDEX_SNAPSHOT: &str = "workflows.index";
/// The index snapshot is written again when this many workflow events were read since the last
/// one, or when the last one is older than [`SNAPSHOT_AGE`] (and something changed): rewriting the
/// whole index after every page would cost more than reading the workflow events it saves.
const SNAPSHOT_EVERY: u64 = 5_000;
const SNAPSHOT_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// Why the runtime stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("no workflow instance {0}")]
    UnknownInstance(WorkflowId),
    /// A reaction failed and recording that on the instance failed as well.
    #[error(
        "the reaction of workflow {workflow} to {cause} failed ({reason}) and could not be parked: {source}"
    )]
    ParkFailed {
        workflow: WorkflowId,
        cause: uuid::Uuid,
        reason: String,
        #[source]
        source: StoreError,
    },
}

/// A request to a running runtime, answered between its rounds (see
/// [`WorkflowRuntime::run_controlled`]).
#[derive(Debug)]
pub enum Control {
    /// Run an instance's parked reactions again; the answer is how many were retried.
    Retry {
        id: WorkflowId,
        reply: tokio::sync::oneshot::Sender<Result<usize, RuntimeError>>,
    },
}

/// Counters since the runtime started.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub events_read: u64,
    /// Reactions appended to instance streams.
    pub reactions: u64,
    pub commands_sent: u64,
    pub timers_fired: u64,
    pub parked: u64,
    /// Triggers an instance had already handled (redelivery).
    pub skipped: u64,
    /// Business events that did not decode and so could not be routed.
    pub undecodable: u64,
    /// Workflow events read to build the index at start: those after the index snapshot when one
    /// was used, else every one.
    pub index_events_read: u64,
    /// Whether the index started from its snapshot.
    pub index_from_snapshot: bool,
}

/// What the saga runtime has not done yet, for monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// The log position the runtime has handled up to.
    pub position: Position,
    pub instances_active: usize,
    pub timers_pending: usize,
    /// Pending timers whose due time has passed (they fire once the runtime has caught up; a
    /// timer whose reaction is parked stays here).
    pub timers_overdue: usize,
    pub reactions_parked: usize,
}

/// One trigger: a business event read from the log, or a timer of the instance.
#[derive(Debug)]
pub(crate) struct Fire<'a> {
    pub id: uuid::Uuid,
    pub position: Option<Position>,
    pub occurred_at: DateTime<Utc>,
    pub office: Option<OfficeId>,
    pub event: &'a Event,
}

impl Fire<'_> {
    fn is_timer(&self) -> bool {
        matches!(self.event, Event::TimerFired(_))
    }
}

/// The saga runtime. One per log: it assumes it is the only writer of `workflow-*` streams (and
/// checks each instance's stream version before reacting, reloading it when another wrote).
pub struct WorkflowRuntime {
    pub(crate) engine: Engine,
    pub(crate) clock: Arc<dyn Clock>,
    checkpoints: Option<CheckpointStore>,
    pub(crate) after: Position,
    started: bool,
    pub(crate) index: Index,
    office_tz: HashMap<OfficeId, chrono_tz::Tz>,
    /// Published holidays and make-up working days, as of the last event delivered.
    calendar: funnel_domain::WorkCalendar,
    failpoint: Option<FailPoint>,
    pub(crate) stats: Stats,
    /// The last workflow event read from the log into the index.
    through: Option<Through>,
    /// Workflow events read since the index snapshot was last written, and when that was.
    since_snapshot: u64,
    snapshot_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for WorkflowRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRuntime")
            .field("after", &self.after)
            .field("instances", &self.index.instances.len())
            .field("stats", &self.stats)
            .finish()
    }
}

pub(crate) fn stream_of(id: WorkflowId) -> Result<StreamId, StoreError> {
    StreamId::new("workflow", id).map_err(|e| StoreError::InvalidRequest(e.to_string()))
}

impl WorkflowRuntime {
    /// A runtime over the engine's store. With a checkpoint file it resumes reading the log where it
    /// stopped (redelivery after a crash is harmless); without one it reads from the start. The fail
    /// point comes from `FUNNEL_FAILPOINT` (crash tests).
    pub fn new(
        engine: Engine,
        clock: Arc<dyn Clock>,
        checkpoint_path: Option<&Path>,
    ) -> Result<Self, RuntimeError> {
        let checkpoints = checkpoint_path.map(CheckpointStore::open).transpose()?;
        let after = match &checkpoints {
            Some(c) => c
                .load(CHECKPOINT, Slot::Live)?
                .map_or(Position::START, |(row, _)| row.checkpoint),
            None => Position::START,
        };
        Ok(Self {
            engine,
            clock,
            checkpoints,
            after,
            started: false,
            index: Index::default(),
            office_tz: HashMap::new(),
            calendar: funnel_domain::WorkCalendar::default(),
            failpoint: FailPoint::from_env(),
            stats: Stats::default(),
            through: None,
            since_snapshot: 0,
            snapshot_at: None,
        })
    }

    /// Makes the runtime abort the process at a fail point (crash tests); `None` disarms it.
    pub fn set_failpoint(&mut self, failpoint: Option<FailPoint>) {
        self.failpoint = failpoint;
    }

    /// The position the runtime has read the log up to.
    pub fn position(&self) -> Position {
        self.after
    }

    pub fn backlog(&self) -> Backlog {
        let (instances_active, timers_pending, timers_overdue, reactions_parked) =
            self.index.backlog(self.clock.now());
        Backlog {
            position: self.after,
            instances_active,
            timers_pending,
            timers_overdue,
            reactions_parked,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Every instance, as of the last run (empty before the first).
    pub fn instances(&self) -> Vec<InstanceSummary> {
        self.index.summaries()
    }

    /// When the next timer is due, as of the last run.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.index.next_due()
    }

    /// An instance's own events, decoded.
    pub async fn show(&self, id: WorkflowId) -> Result<Vec<Envelope<Event>>, RuntimeError> {
        let records = read_whole_stream(self.engine.store().as_ref(), &stream_of(id)?).await?;
        if records.is_empty() {
            return Err(RuntimeError::UnknownInstance(id));
        }
        Ok(records
            .iter()
            .map(funnel_codec::decode_recorded)
            .collect::<Result<_, _>>()?)
    }

    /// Builds the index from every `workflow-*` stream, once.
    pub(crate) async fn start(&mut self) -> Result<(), RuntimeError> {
        if self.started {
            return Ok(());
        }
        let store = self.engine.store().clone();
        let filter = Filter::category("workflow");
        let mut after = Position::START;
        if let Some((index, through)) = self.index_snapshot().await? {
            self.index = index;
            self.through = Some(through);
            self.stats.index_from_snapshot = true;
            after = through.position;
        }
        loop {
            let batch = store.read_all(after, &filter, PAGE).await?;
            let Some(last) = batch.last().map(|r| r.meta.position) else {
                break;
            };
            for rec in &batch {
                self.observe(&funnel_codec::decode_recorded(rec)?);
            }
            self.stats.index_events_read += batch.len() as u64;
            after = last;
        }
        // The working calendars up to the checkpoint; later publications arrive in log order.
        let filter = Filter::category("calendar");
        let mut after = Position::START;
        loop {
            let batch = store.read_all(after, &filter, PAGE).await?;
            let Some(last) = batch.last().map(|r| r.meta.position) else {
                break;
            };
            for rec in batch.iter().filter(|r| r.meta.position <= self.after) {
                // As in catch-up: an event that does not decode is seen by no workflow.
                match funnel_codec::decode_recorded(rec) {
                    Ok(env) => self.calendar.evolve(&env.payload),
                    Err(e) => tracing::warn!(error = %e, "a calendar event does not decode"),
                }
            }
            if last > self.after {
                break;
            }
            after = last;
        }
        self.started = true;
        Ok(())
    }

    /// The index snapshot in the checkpoint file, when there is one this build reads and the log
    /// holds the event it ends with (a snapshot of another log, or of a log since replaced, is not).
    async fn index_snapshot(&self) -> Result<Option<(Index, Through)>, RuntimeError> {
        let Some(c) = &self.checkpoints else {
            return Ok(None);
        };
        let Some((row, _)) = c.load(INDEX_SNAPSHOT, Slot::Live)? else {
            return Ok(None);
        };
        let Some((index, through)) = crate::index::decode(&row.state) else {
            tracing::info!(
                "the saga index snapshot is of another version; building the index from the log"
            );
            return Ok(None);
        };
        let at = Position(through.position.0.saturating_sub(1));
        let found = self
            .engine
            .store()
            .read_all(at, &Filter::All, 1)
            .await?
            .into_iter()
            .next();
        if found.is_some_and(|r| {
            r.meta.position == through.position && r.meta.event_id == through.event_id
        }) {
            Ok(Some((index, through)))
        } else {
            tracing::warn!(
                position = %through.position,
                "the saga index snapshot names an event this log does not hold there; building the index from the log"
            );
            Ok(None)
        }
    }

    /// Writes the index snapshot when enough workflow events were read since the last one (see
    /// [`SNAPSHOT_EVERY`]), or some were and the last is old or was never written by this process.
    fn save_index_snapshot(&mut self) -> Result<(), RuntimeError> {
        let (Some(c), Some(through)) = (&self.checkpoints, self.through) else {
            return Ok(());
        };
        let due = self.since_snapshot >= SNAPSHOT_EVERY
            || (self.since_snapshot > 0
                && self
                    .snapshot_at
                    .is_none_or(|at| at.elapsed() >= SNAPSHOT_AGE));
        if !due {
            return Ok(());
        }
        let Some(state) = crate::index::encode(&self.index, through) else {
            return Ok(());
        };
        // The workflow rows are written by one runtime per file, with no expectation: always done.
        let _ = c.commit(&[Write::Put {
            row: Row {
                name: INDEX_SNAPSHOT.into(),
                slot: Slot::Live,
                version: 1,
                checkpoint: through.position,
                state,
                target: None,
                tables: None,
            },
            parked: Vec::new(),
        }])?;
        self.since_snapshot = 0;
        self.snapshot_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// Applies an instance's event read from the log (a no-op for those the runtime wrote itself).
    fn observe(&mut self, env: &Envelope<Event>) {
        if self.through.is_none_or(|t| t.position < env.meta.position) {
            self.through = Some(Through {
                position: env.meta.position,
                event_id: env.meta.event_id,
            });
            self.since_snapshot += 1;
        }
        let id = env.payload.workflow_id().or_else(|| {
            uuid::Uuid::parse_str(env.meta.stream.id_part())
                .ok()
                .map(WorkflowId)
        });
        if let Some(id) = id {
            self.index.apply(
                id,
                env.meta.version,
                env.meta.causation_id,
                std::slice::from_ref(&env.payload),
            );
        }
    }

    fn save_checkpoint(&self) -> Result<(), RuntimeError> {
        if let Some(c) = &self.checkpoints {
            let _ = c.commit(&[Write::Put {
                row: Row {
                    name: CHECKPOINT.into(),
                    slot: Slot::Live,
                    version: 1,
                    checkpoint: self.after,
                    state: Vec::new(),
                    target: None,
                    tables: None,
                },
                parked: Vec::new(),
            }])?;
        }
        Ok(())
    }

    /// Reads the log from the checkpoint to its head, letting the instances react to every business
    /// event. Returns the number of events read; `progress` gets (position, head) after each page.
    pub async fn catch_up(
        &mut self,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<u64, RuntimeError> {
        self.start().await?;
        let store = self.engine.store().clone();
        let head = store.head().await?;
        let mut read = 0;
        loop {
            let batch = store.read_all(self.after, &Filter::All, PAGE).await?;
            let Some(last) = batch.last().map(|r| r.meta.position) else {
                break;
            };
            for rec in &batch {
                read += 1;
                match funnel_codec::decode_recorded(rec) {
                    Ok(env) if env.meta.stream.category() == "workflow" => self.observe(&env),
                    Ok(env) => {
                        self.deliver(&env).await?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "an event does not decode; no workflow sees it");
                        self.stats.undecodable += 1;
                    }
                }
            }
            self.stats.events_read += batch.len() as u64;
            self.after = last;
            self.save_checkpoint()?;
            progress(self.after, head.max(self.after));
        }
        self.save_index_snapshot()?;
        Ok(read)
    }

    /// Lets every instance a business event concerns react to it. Delivering an event again is
    /// harmless: an instance that already holds an event caused by it skips it. Returns the number
    /// of reactions appended.
    pub async fn deliver(&mut self, env: &Envelope<Event>) -> Result<usize, RuntimeError> {
        self.start().await?;
        self.calendar.evolve(&env.payload);
        let fire = Fire {
            id: env.meta.event_id.0,
            position: Some(env.meta.position),
            occurred_at: env.meta.occurred_at,
            office: env.meta.office,
            event: &env.payload,
        };
        let mut n = 0;
        for (kind, id) in workflow::route(&env.payload, env.meta.office) {
            if self.handle(kind, id, &fire, false).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The time zone of an office, from its stream (headquarters' when none).
    async fn office_tz(&mut self, office: Option<OfficeId>) -> Result<chrono_tz::Tz, RuntimeError> {
        let Some(office) = office else {
            return Ok(funnel_domain::DEFAULT_TIME_ZONE);
        };
        if let Some(tz) = self.office_tz.get(&office) {
            return Ok(*tz);
        }
        let stream = StreamId::new("office", office)
            .map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        let records = read_whole_stream(self.engine.store().as_ref(), &stream).await?;
        let mut state = funnel_domain::org::OfficeState::default();
        for r in &records {
            state = funnel_domain::org::evolve_office(
                state,
                &funnel_codec::decode_recorded(r)?.payload,
            );
        }
        let tz = state.timezone();
        if !records.is_empty() {
            self.office_tz.insert(office, tz);
        }
        Ok(tz)
    }

    /// Makes sure the index holds the instance's stream as stored: reloads it when the versions
    /// differ (another writer, or an append whose outcome was lost).
    async fn refresh(&mut self, id: WorkflowId) -> Result<(), RuntimeError> {
        let stream = stream_of(id)?;
        let store = self.engine.store().clone();
        let stored = store.stream_version(&stream).await?;
        let known = self.index.instances.get(&id).and_then(|i| i.version);
        if stored == known {
            return Ok(());
        }
        let records = read_whole_stream(store.as_ref(), &stream).await?;
        let mut inst = Inst::default();
        for r in &records {
            let env = funnel_codec::decode_recorded(r)?;
            inst.state = workflow::evolve(std::mem::take(&mut inst.state), &env.payload);
            inst.version = Some(env.meta.version);
            inst.causes.insert(env.meta.causation_id);
        }
        self.index.replace(id, inst);
        Ok(())
    }

    /// One instance's reaction to one trigger: skipped when already handled (unless retrying);
    /// commands first, then the instance's events in one append. Returns whether anything was
    /// appended. A failure outside the domain parks the reaction on the instance.
    pub(crate) async fn handle(
        &mut self,
        kind: WorkflowKind,
        id: WorkflowId,
        fire: &Fire<'_>,
        retry: bool,
    ) -> Result<bool, RuntimeError> {
        if let Err(e) = self.refresh(id).await {
            return self.park(kind, id, fire, e.to_string()).await;
        }
        let (handled, office) = match self.index.instances.get(&id) {
            Some(i) => (i.causes.contains(&fire.id), i.state.office.or(fire.office)),
            None => (false, fire.office),
        };
        if handled && !retry {
            self.stats.skipped += 1;
            return Ok(false);
        }
        let tz = match self.office_tz(office).await {
            Ok(tz) => tz,
            Err(e) => return self.park(kind, id, fire, e.to_string()).await,
        };
        let now = self.clock.now();
        let reaction = {
            let empty = WorkflowState::default();
            let state = self.index.instances.get(&id).map_or(&empty, |i| &i.state);
            let ctx = ReactCtx {
                now,
                policy: self.engine.policy(),
                tz,
                calendar: &self.calendar,
            };
            let trigger = Trigger {
                id: fire.id,
                occurred_at: fire.occurred_at,
                office: fire.office,
                event: fire.event,
            };
            workflow::react(kind, id, state, &trigger, &ctx)
        };
        // An id the instance recorded that does not read back: park, never go on without it.
        let reaction = match reaction {
            Ok(reaction) => reaction,
            Err(unreadable) => return self.park(kind, id, fire, unreadable.to_string()).await,
        };
        let mut events = Vec::new();
        if fire.is_timer() {
            events.push(fire.event.clone());
        }
        if retry {
            events.push(Event::ReactionRetried(ReactionRetried {
                workflow_id: id,
                cause: EventId(fire.id),
            }));
        }
        if events.is_empty() && reaction.events.is_empty() && reaction.commands.is_empty() {
            return Ok(false);
        }
        events.extend(reaction.events);
        for out in &reaction.commands {
            let command_id = CommandId::derived(&format!("{id}:{}:{}", fire.id, out.key));
            let meta = CommandMeta {
                command_id,
                who: Who::System(format!("workflow:{}", kind.as_str())),
                at: Some(now),
                correlation_id: Some(CorrelationId(id.0)),
                causation_id: Some(fire.id),
                idempotency_key: None,
            };
            let command = match &out.command {
                OutCommand::Lead { lead_id, cmd } => Command::Lead {
                    lead_id: Some(*lead_id),
                    cmd: cmd.clone(),
                },
                OutCommand::Plan { cmd } => Command::Plan {
                    plan_id: None,
                    cmd: cmd.clone(),
                },
            };
            let outcome = match self.engine.execute(meta, command).await {
                Ok(a) if a.duplicate => "duplicate".to_string(),
                Ok(_) => "accepted".to_string(),
                Err(EngineError::Refused { refusal, .. }) => refusal.code.as_str().to_string(),
                Err(e) => {
                    let reason = format!("command {}: {e}", out.command.name());
                    return self.park(kind, id, fire, reason).await;
                }
            };
            self.stats.commands_sent += 1;
            events.push(Event::WorkflowCommandSent(WorkflowCommandSent {
                workflow_id: id,
                command_id,
                command: out.command.name().to_string(),
                outcome,
            }));
        }
        if let Some(fp) = self.failpoint
            && fp.hit(fire.is_timer(), reaction.commands.len())
        {
            // Crash tests: die after the commands, before the instance's own events.
            tracing::error!(failpoint = fp.as_str(), "aborting at the fail point");
            std::process::abort();
        }
        match self.append(kind, id, fire, &events).await {
            Ok(()) => {
                self.stats.reactions += 1;
                Ok(true)
            }
            Err(e) => self.park(kind, id, fire, e.to_string()).await,
        }
    }

    /// Appends an instance's events at the version the index knows, with the trigger as causation,
    /// and applies them to the index. They occur when their trigger did, so a task is owed since the
    /// event that opened it.
    async fn append(
        &mut self,
        kind: WorkflowKind,
        id: WorkflowId,
        fire: &Fire<'_>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let known = self.index.instances.get(&id).and_then(|i| i.version);
        self.append_at(kind, id, fire, events, known, "events")
            .await
    }

    async fn append_at(
        &mut self,
        kind: WorkflowKind,
        id: WorkflowId,
        fire: &Fire<'_>,
        events: &[Event],
        known: Option<Version>,
        tag: &str,
    ) -> Result<(), StoreError> {
        let office = self
            .index
            .instances
            .get(&id)
            .and_then(|i| i.state.office)
            .or_else(|| {
                events.iter().find_map(|e| match e {
                    Event::WorkflowStarted(s) => s.office,
                    _ => None,
                })
            })
            .or(fire.office);
        let first = known.map_or(Version::FIRST, Version::next);
        let actor = Actor::system(format!("workflow:{}", kind.as_str()));
        let proposed = events
            .iter()
            .enumerate()
            .map(|(i, e)| ProposedEvent {
                event_id: EventId::derived(&format!("{id}:{}", first.0 + i as u64)),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                occurred_at: fire.occurred_at,
                actor: actor.clone(),
                office,
                correlation_id: CorrelationId(id.0),
                causation_id: fire.id,
                payload: Bytes::from(funnel_codec::encode(e)),
            })
            .collect();
        let outcome = self
            .engine
            .store()
            .append(AppendRequest {
                stream: stream_of(id)?,
                expected: known.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                command_id: CommandId::derived(&format!("{id}:{}:{}:{tag}", fire.id, first.0)),
                events: proposed,
            })
            .await?;
        self.index.apply(id, outcome.first_version, fire.id, events);
        Ok(())
    }

    /// Records a failed reaction on the instance (at the stream's actual version) and moves on.
    /// Only a failure to record it stops the runtime.
    async fn park(
        &mut self,
        kind: WorkflowKind,
        id: WorkflowId,
        fire: &Fire<'_>,
        reason: String,
    ) -> Result<bool, RuntimeError> {
        tracing::warn!(workflow = %id, cause = %fire.id, %reason, "reaction parked");
        let failed = |source| RuntimeError::ParkFailed {
            workflow: id,
            cause: fire.id,
            reason: reason.clone(),
            source,
        };
        let stream = stream_of(id).map_err(failed)?;
        let actual = self
            .engine
            .store()
            .stream_version(&stream)
            .await
            .map_err(failed)?;
        let parked = Event::ReactionParked(ReactionParked {
            workflow_id: id,
            cause: EventId(fire.id),
            position: fire.position,
            reason: reason.clone(),
        });
        self.append_at(
            kind,
            id,
            fire,
            std::slice::from_ref(&parked),
            actual,
            "parked",
        )
        .await
        .map_err(failed)?;
        self.stats.parked += 1;
        Ok(true)
    }
}
