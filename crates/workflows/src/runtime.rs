//! The runtime: the instance index (built from the log), reacting to business events, firing
//! timers, parking and retrying reactions.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use funnel_domain::Event;
use funnel_domain::events::{
    ReactionParked, ReactionRetried, TimerFired, TimerPurpose, WorkflowCommandSent, WorkflowKind,
};
use funnel_domain::workflow::{self, OutCommand, ReactCtx, Trigger, WorkflowState};
use funnel_engine::{Command, CommandMeta, Engine, EngineError, Who};
use funnel_store::{AppendRequest, Filter, ProposedEvent, StoreError};
use funnel_types::{
    Actor, Clock, CommandId, CorrelationId, EventId, ExpectedVersion, OfficeId, Position, StreamId,
    TimerId, Version, WorkflowId,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Why the runtime stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] funnel_codec::DecodeError),
    #[error("no workflow instance {0}")]
    UnknownInstance(WorkflowId),
}

/// A timer waiting to fire.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingTimer {
    pub workflow_id: WorkflowId,
    pub timer_id: TimerId,
    pub purpose: TimerPurpose,
    pub due_at: DateTime<Utc>,
}

/// One instance as `funnel workflows` lists it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Instance {
    pub id: WorkflowId,
    pub kind: Option<WorkflowKind>,
    pub subject: String,
    pub lead_id: Option<funnel_types::LeadId>,
    pub office: Option<OfficeId>,
    pub active: bool,
    pub outcome: Option<String>,
    pub open_tasks: usize,
    pub next_timer: Option<DateTime<Utc>>,
    pub parked: Vec<String>,
}

#[derive(Default)]
struct Inst {
    state: WorkflowState,
    version: Option<Version>,
    /// Triggers this instance has handled (causation ids of its events).
    causes: HashSet<uuid::Uuid>,
}

/// The saga runtime. One per log: it is the only writer of `workflow-*` streams.
pub struct WorkflowRuntime {
    engine: Engine,
    clock: Arc<dyn Clock>,
    after: Position,
    instances: HashMap<WorkflowId, Inst>,
    office_tz: HashMap<OfficeId, chrono_tz::Tz>,
    failpoint: Option<String>,
}

impl std::fmt::Debug for WorkflowRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRuntime")
            .field("after", &self.after)
            .field("instances", &self.instances.len())
            .finish()
    }
}

/// What one trigger is: a business event read from the log, or a timer.
struct Fire<'a> {
    id: uuid::Uuid,
    position: Option<Position>,
    occurred_at: DateTime<Utc>,
    office: Option<OfficeId>,
    event: &'a Event,
}

impl WorkflowRuntime {
    /// A runtime over the engine's store. `FUNNEL_FAILPOINT=after_commands` makes it abort between
    /// sending a reaction's commands and appending the instance's events (crash tests).
    pub fn new(engine: Engine, clock: Arc<dyn Clock>) -> Self {
        Self {
            engine,
            clock,
            after: Position::START,
            instances: HashMap::new(),
            office_tz: HashMap::new(),
            failpoint: std::env::var("FUNNEL_FAILPOINT").ok(),
        }
    }

    fn tz(&self, office: Option<OfficeId>) -> chrono_tz::Tz {
        office
            .and_then(|o| self.office_tz.get(&o).copied())
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Reads the log up to its head, reacting to every business event not yet handled. Returns the
    /// number of events read.
    pub async fn catch_up(
        &mut self,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<u64, RuntimeError> {
        let store = self.engine.store().clone();
        let head = store.head().await?;
        let mut read = 0;
        loop {
            let batch = store.read_all(self.after, &Filter::All, 2048).await?;
            let Some(last) = batch.last().map(|r| r.meta.position) else {
                break;
            };
            for rec in batch {
                let env = funnel_codec::decode_recorded(&rec)?;
                self.observe(&env);
                if env.meta.stream.category() != "workflow" {
                    let fire = Fire {
                        id: env.meta.event_id.0,
                        position: Some(env.meta.position),
                        occurred_at: env.meta.occurred_at,
                        office: env.meta.office,
                        event: &env.payload,
                    };
                    for (kind, id) in workflow::route(&env.payload, env.meta.office) {
                        self.react(kind, id, &fire, false).await?;
                    }
                }
            }
            read += 1;
            self.after = last;
            progress(last, head);
        }
        Ok(read)
    }

    /// Keeps the index in step with the log: instances' own events, and office time zones.
    fn observe(&mut self, env: &funnel_types::Envelope<Event>) {
        if let Event::OfficeOpened(o) = &env.payload
            && let Ok(tz) = o.timezone.parse()
        {
            self.office_tz.insert(o.office_id, tz);
        }
        let Some(id) = env.payload.workflow_id() else {
            return;
        };
        let inst = self.instances.entry(id).or_default();
        if inst.version.is_some_and(|v| v >= env.meta.version) {
            return; // Already applied when this runtime appended it.
        }
        inst.state = workflow::evolve(std::mem::take(&mut inst.state), &env.payload);
        inst.version = Some(env.meta.version);
        inst.causes.insert(env.meta.causation_id);
    }

    /// Lets one instance react to one trigger: commands first, then the instance's events.
    async fn react(
        &mut self,
        kind: WorkflowKind,
        id: WorkflowId,
        fire: &Fire<'_>,
        retry: bool,
    ) -> Result<(), RuntimeError> {
        let inst = self.instances.entry(id).or_default();
        if !retry && inst.causes.contains(&fire.id) {
            return Ok(());
        }
        let office = inst.state.office.or(fire.office);
        let tz = self.tz(office);
        let now = self.clock.now();
        let policy = self.engine.policy().clone();
        let ctx = ReactCtx {
            now,
            policy: &policy,
            tz,
        };
        let trigger = Trigger {
            id: fire.id,
            occurred_at: fire.occurred_at,
            office: fire.office,
            event: fire.event,
        };
        let state = &self
            .instances
            .get(&id)
            .map(|i| i.state.clone())
            .unwrap_or_default();
        let reaction = workflow::react(kind, id, state, &trigger, &ctx);
        let mut events: Vec<Event> = Vec::new();
        if let Event::TimerFired(_) = fire.event {
            events.push(fire.event.clone());
        }
        if retry {
            events.push(Event::ReactionRetried(ReactionRetried {
                workflow_id: id,
                cause: EventId(fire.id),
            }));
        }
        if reaction.events.is_empty() && reaction.commands.is_empty() && events.is_empty() {
            return Ok(());
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
                    tracing::warn!(workflow = %id, cause = %fire.id, error = %e, "reaction parked");
                    let parked = Event::ReactionParked(ReactionParked {
                        workflow_id: id,
                        cause: EventId(fire.id),
                        position: fire.position,
                        reason: e.to_string(),
                    });
                    return self.append(kind, id, fire, vec![parked]).await;
                }
            };
            events.push(Event::WorkflowCommandSent(WorkflowCommandSent {
                workflow_id: id,
                command_id,
                command: out.command.name().to_string(),
                outcome,
            }));
        }
        if !reaction.commands.is_empty() && self.failpoint.as_deref() == Some("after_commands") {
            // Crash tests: die between the commands and the instance's own events.
            std::process::abort();
        }
        self.append(kind, id, fire, events).await
    }

    /// Appends an instance's events (causation: the trigger) and applies them to the index. They
    /// occur when their trigger did: a task opened because of an event is owed since that event.
    async fn append(
        &mut self,
        kind: WorkflowKind,
        id: WorkflowId,
        fire: &Fire<'_>,
        events: Vec<Event>,
    ) -> Result<(), RuntimeError> {
        let stream =
            StreamId::new("workflow", id).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        let cause = fire.id;
        let now = fire.occurred_at;
        let inst = self.instances.entry(id).or_default();
        let office = inst.state.office.or_else(|| {
            events.iter().find_map(|e| match e {
                Event::WorkflowStarted(s) => s.office,
                _ => None,
            })
        });
        let actor = Actor::system(format!("workflow:{}", kind.as_str()));
        let proposed = events
            .iter()
            .enumerate()
            .map(|(i, e)| ProposedEvent {
                event_id: EventId::derived(&format!("{id}:{cause}:{i}")),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                occurred_at: now,
                actor: actor.clone(),
                office,
                correlation_id: CorrelationId(id.0),
                causation_id: cause,
                payload: Bytes::from(funnel_codec::encode(e)),
            })
            .collect();
        let expected = inst
            .version
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let command_id = CommandId::derived(&format!("{id}:{cause}:events"));
        let outcome = self
            .engine
            .store()
            .append(AppendRequest {
                stream,
                expected,
                command_id,
                events: proposed,
            })
            .await?;
        let inst = self.instances.entry(id).or_default();
        for e in &events {
            inst.state = workflow::evolve(std::mem::take(&mut inst.state), e);
        }
        inst.version = Some(outcome.last_version);
        inst.causes.insert(cause);
        Ok(())
    }

    /// Timers due at the clock's time, earliest first.
    pub fn due_timers(&self) -> Vec<(WorkflowKind, PendingTimer)> {
        let now = self.clock.now();
        let mut due: Vec<(WorkflowKind, PendingTimer)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.state.active)
            .flat_map(|(id, i)| {
                let kind = i.state.kind;
                i.state
                    .timers
                    .iter()
                    .filter_map(move |(timer_id, (purpose, due_at))| {
                        let kind = kind?;
                        (*due_at <= now).then(|| {
                            (
                                kind,
                                PendingTimer {
                                    workflow_id: *id,
                                    timer_id: *timer_id,
                                    purpose: purpose.clone(),
                                    due_at: *due_at,
                                },
                            )
                        })
                    })
            })
            .collect();
        due.sort_by_key(|(_, t)| (t.due_at, t.timer_id));
        due
    }

    /// Fires every due timer, again and again while firing schedules more that are already due.
    pub async fn fire_due(&mut self) -> Result<u64, RuntimeError> {
        let mut fired = 0;
        loop {
            let due = self.due_timers();
            if due.is_empty() {
                return Ok(fired);
            }
            for (kind, t) in due {
                let still = self
                    .instances
                    .get(&t.workflow_id)
                    .is_some_and(|i| i.state.timers.contains_key(&t.timer_id));
                if !still {
                    continue;
                }
                let now = self.clock.now();
                let event = Event::TimerFired(TimerFired {
                    workflow_id: t.workflow_id,
                    timer_id: t.timer_id,
                    purpose: t.purpose.clone(),
                    due_at: t.due_at,
                    fired_at: now,
                    late: now - t.due_at > Duration::minutes(1),
                });
                let fire = Fire {
                    id: t.timer_id.0,
                    position: None,
                    occurred_at: now,
                    office: None,
                    event: &event,
                };
                self.react(kind, t.workflow_id, &fire, false).await?;
                fired += 1;
            }
        }
    }

    /// Catches up with the log and fires due timers until there is nothing left to do.
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

    /// Follows the log and the clock until `shutdown` completes.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), RuntimeError> {
        tokio::pin!(shutdown);
        loop {
            self.run_until_idle(&mut |_, _| {}).await?;
            let store = self.engine.store().clone();
            let wait = store.wait_for_append(self.after, std::time::Duration::from_secs(1));
            tokio::select! {
                r = wait => { r?; }
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    /// Every instance, most recent first by id.
    pub fn instances(&self) -> Vec<Instance> {
        let mut out: Vec<Instance> = self
            .instances
            .iter()
            .filter(|(_, i)| i.state.kind.is_some())
            .map(|(id, i)| Instance {
                id: *id,
                kind: i.state.kind,
                subject: i.state.subject.clone(),
                lead_id: i.state.lead_id,
                office: i.state.office,
                active: i.state.active,
                outcome: i.state.outcome.clone(),
                open_tasks: i.state.tasks.len(),
                next_timer: i.state.timers.values().map(|(_, d)| *d).min(),
                parked: i.state.parked.values().cloned().collect(),
            })
            .collect();
        out.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
        out
    }

    /// Runs an instance's parked reactions again.
    pub async fn retry(&mut self, id: WorkflowId) -> Result<usize, RuntimeError> {
        let inst = self
            .instances
            .get(&id)
            .ok_or(RuntimeError::UnknownInstance(id))?;
        let Some(kind) = inst.state.kind else {
            return Err(RuntimeError::UnknownInstance(id));
        };
        let parked: Vec<EventId> = inst.state.parked.keys().copied().collect();
        let timers: BTreeMap<uuid::Uuid, (TimerPurpose, DateTime<Utc>)> = inst
            .state
            .timers
            .iter()
            .map(|(t, v)| (t.0, v.clone()))
            .collect();
        let store = self.engine.store().clone();
        let mut done = 0;
        for cause in parked {
            if let Some((purpose, due_at)) = timers.get(&cause.0) {
                let now = self.clock.now();
                let event = Event::TimerFired(TimerFired {
                    workflow_id: id,
                    timer_id: TimerId(cause.0),
                    purpose: purpose.clone(),
                    due_at: *due_at,
                    fired_at: now,
                    late: now - *due_at > Duration::minutes(1),
                });
                let fire = Fire {
                    id: cause.0,
                    position: None,
                    occurred_at: now,
                    office: None,
                    event: &event,
                };
                self.react(kind, id, &fire, true).await?;
                done += 1;
                continue;
            }
            // A business event: find it by its id in the log.
            let mut after = Position::START;
            'scan: loop {
                let batch = store.read_all(after, &Filter::All, 4096).await?;
                let Some(last) = batch.last().map(|r| r.meta.position) else {
                    break;
                };
                for rec in &batch {
                    if rec.meta.event_id == cause {
                        let env = funnel_codec::decode_recorded(rec)?;
                        let fire = Fire {
                            id: cause.0,
                            position: Some(env.meta.position),
                            occurred_at: env.meta.occurred_at,
                            office: env.meta.office,
                            event: &env.payload,
                        };
                        self.react(kind, id, &fire, true).await?;
                        done += 1;
                        break 'scan;
                    }
                }
                after = last;
            }
        }
        Ok(done)
    }
}
