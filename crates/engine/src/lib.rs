//! The command engine: resolve who is acting → load the aggregate's stream → decide (pure) →
//! append with the expected version, retrying on conflict within a bound.
//!
//! Idempotency is by command id and does not depend on any broker window: before deciding, the
//! engine looks for the command id in the aggregate's own stream, and a command already appended
//! answers with its original events, but only to the actor who sent it: a stored command of another
//! actor is a conflict, never a duplicate. A command sent under a caller's idempotency key
//! (`CommandMeta::idempotency_key`) is refused when the stream holds that actor's events of a
//! different command under the same key. Refusals the domain wants on record (a touch of another
//! engineer's lead) are appended under a command id derived from the refused command's, so a retried
//! refusal is recorded once; each member of staff may add such records only within a budget
//! (`RecordBudget`), past which the refusal is still answered but not recorded again.

mod budget;
mod command;
mod keys;

pub use budget::RecordBudget;
pub use command::{Command, Who};
pub use keys::KeyReservations;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_codec::DecodeError;
use funnel_domain::{Acting, Ctx, Event, Policy, Refusal, RefusalCode, Rejected, StaffInfo};
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, ProposedEvent, StoreError, read_whole_stream,
};
use funnel_types::{
    Actor, Clock, CommandId, CorrelationId, Envelope, EventId, ExpectedVersion, OfficeId, Position,
    StaffId, StreamId, Version,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Facts about a command that are not its content.
#[derive(Clone, Debug)]
pub struct CommandMeta {
    /// Retries carry the same id; the command is applied at most once.
    pub command_id: CommandId,
    pub who: Who,
    /// When the fact happened; the engine's clock when absent.
    pub at: Option<DateTime<Utc>>,
    /// The conversation this command belongs to; derived from the command id when absent.
    pub correlation_id: Option<CorrelationId>,
    /// What caused this command (an event id for saga reactions); the command id when absent.
    pub causation_id: Option<uuid::Uuid>,
    /// The caller's idempotency key, already scoped to the caller (e.g. a UUIDv5 of the caller and
    /// the key they sent). It becomes the correlation id when none is given, and the engine
    /// refuses the command (`EngineError::KeyReused`) when the stream holds the same actor's events
    /// of another command under this key.
    pub idempotency_key: Option<uuid::Uuid>,
}

impl CommandMeta {
    pub fn new(who: Who) -> Self {
        Self {
            command_id: CommandId::new(),
            who,
            at: None,
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
        }
    }

    pub fn with_id(mut self, id: CommandId) -> Self {
        self.command_id = id;
        self
    }

    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }

    /// Sends the command under a caller-scoped idempotency key (see the field).
    pub fn with_key(mut self, key: uuid::Uuid) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    fn correlation(&self) -> CorrelationId {
        self.correlation_id.unwrap_or(CorrelationId(
            self.idempotency_key.unwrap_or(self.command_id.0),
        ))
    }
}

/// An accepted (or earlier accepted) command.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub stream: StreamId,
    pub events: Vec<Envelope<Event>>,
    pub last_version: Version,
    pub last_position: Position,
    /// True when the command id had been applied before and nothing new was written.
    pub duplicate: bool,
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The domain refused it. `recorded` is the position of the refusal's own record, if the domain
    /// wants it on record; `recorded_before` says the record was already there (a retry);
    /// `suppressed` says the domain wanted it on record but the actor's `RecordBudget` was spent,
    /// so nothing was written.
    #[error("refused: {refusal}")]
    Refused {
        refusal: Refusal,
        recorded: Option<Position>,
        recorded_before: bool,
        suppressed: bool,
    },
    /// The command id is already on record for another actor: nothing is answered from it and
    /// nothing is written.
    #[error("command id {command_id} is already used on {stream} by another actor")]
    CommandIdTaken {
        command_id: CommandId,
        stream: StreamId,
    },
    /// The actor's idempotency key already applied a different command to this stream.
    #[error("idempotency key already used for command {earlier} on {stream}")]
    KeyReused {
        earlier: CommandId,
        stream: StreamId,
    },
    /// The store failed; `StoreError::is_retryable` says whether retrying with the same id may help.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event of the aggregate's stream does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Other writers kept changing the stream; every attempt conflicted.
    #[error("stream {stream} kept changing under {attempts} attempts; try again")]
    Contention { stream: StreamId, attempts: u32 },
}

impl EngineError {
    fn refused(code: RefusalCode, en: impl Into<String>, zh: impl Into<String>) -> Self {
        EngineError::Refused {
            refusal: Refusal::new(code, en, zh),
            recorded: None,
            recorded_before: false,
            suppressed: false,
        }
    }

    /// The refusal, when the domain refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            EngineError::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

/// The engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    store: Arc<dyn EventStore>,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    records: Arc<budget::Budgets>,
}

/// A loaded stream: its decoded events and version.
struct Loaded {
    events: Vec<Envelope<Event>>,
    version: Option<Version>,
}

impl Loaded {
    fn expected(&self) -> ExpectedVersion {
        self.version
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
    }

    fn by_command(&self, id: CommandId) -> Vec<Envelope<Event>> {
        self.events
            .iter()
            .filter(|e| e.meta.command_id == id)
            .cloned()
            .collect()
    }

    /// What the stream already says about this command, if anything: its own events (a duplicate),
    /// its recorded refusal, or a reason not to run it (the id is another actor's, or the actor's
    /// key was used for another command here). `None`: decide it.
    #[allow(clippy::type_complexity)]
    fn earlier(
        &self,
        meta: &CommandMeta,
        record_id: CommandId,
        actor: &Actor,
        stream: &StreamId,
    ) -> Result<Option<Result<Accepted, EngineError>>, EngineError> {
        let taken = || EngineError::CommandIdTaken {
            command_id: meta.command_id,
            stream: stream.clone(),
        };
        let earlier = self.by_command(meta.command_id);
        if let Some(last) = earlier.last() {
            if !earlier.iter().all(|e| same_actor(&e.meta.actor, actor)) {
                return Err(taken());
            }
            return Ok(Some(Ok(Accepted {
                stream: stream.clone(),
                last_version: last.meta.version,
                last_position: last.meta.position,
                events: earlier,
                duplicate: true,
            })));
        }
        // A refusal already on record answers a retry the same way, whatever changed since.
        if let Some(prior) = self.by_command(record_id).last() {
            if !same_actor(&prior.meta.actor, actor) {
                return Err(taken());
            }
            return Ok(Some(Err(EngineError::Refused {
                refusal: recorded_refusal(&prior.payload),
                recorded: Some(prior.meta.position),
                recorded_before: true,
                suppressed: false,
            })));
        }
        if let Some(key) = meta.idempotency_key
            && let Some(other) = self.events.iter().find(|e| {
                e.meta.correlation_id.0 == key
                    && same_actor(&e.meta.actor, actor)
                    && e.meta.command_id != meta.command_id
                    && e.meta.command_id != record_id
            })
        {
            return Err(EngineError::KeyReused {
                earlier: other.meta.command_id,
                stream: stream.clone(),
            });
        }
        Ok(None)
    }
}

/// Whether two records name the same actor: the same member of staff (whatever their role then),
/// or the same system component.
fn same_actor(a: &Actor, b: &Actor) -> bool {
    match (a, b) {
        (Actor::Staff { id: x, .. }, Actor::Staff { id: y, .. }) => x == y,
        (Actor::System { name: x }, Actor::System { name: y }) => x == y,
        _ => false,
    }
}

impl Engine {
    pub fn new(store: Arc<dyn EventStore>, policy: Policy, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            policy: Arc::new(policy),
            clock,
            max_attempts: 20,
            records: Arc::new(budget::Budgets::new(RecordBudget::default())),
        }
    }

    /// How many refusal records (`lead.touch_refused`) one member of staff may add; the default is
    /// `RecordBudget::default()`. Clones made before this call keep their budget.
    pub fn with_record_budget(mut self, budget: RecordBudget) -> Self {
        self.records = Arc::new(budget::Budgets::new(budget));
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The clock commands are timed by (and sessions expire by).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    async fn load(&self, stream: &StreamId) -> Result<Loaded, EngineError> {
        let records = read_whole_stream(self.store.as_ref(), stream).await?;
        let version = records.last().map(|r| r.meta.version);
        let events = records
            .iter()
            .map(funnel_codec::decode_recorded)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded { events, version })
    }

    /// What the staff events say about a member of staff, if they exist.
    pub async fn staff_info(&self, id: StaffId) -> Result<Option<StaffInfo>, EngineError> {
        let loaded = self.load(&command::staff_stream(id)).await?;
        let state = loaded
            .events
            .iter()
            .fold(funnel_domain::org::StaffState::default(), |s, e| {
                funnel_domain::org::evolve_staff(s, &e.payload)
            });
        Ok(state.info())
    }

    /// Every member of staff on record, from the staff streams: what decisions about the whole
    /// organisation (the last executive) need.
    async fn organisation(&self) -> Result<BTreeMap<StaffId, StaffInfo>, EngineError> {
        let filter = funnel_store::Filter::category("staff");
        let mut states: BTreeMap<StaffId, funnel_domain::org::StaffState> = BTreeMap::new();
        let mut after = Position::START;
        loop {
            let page = self.store.read_all(after, &filter, 4096).await?;
            let Some(last) = page.last() else { break };
            after = last.meta.position;
            for rec in &page {
                let env = funnel_codec::decode_recorded(rec)?;
                let id = match &env.payload {
                    Event::StaffJoined(e) => e.staff_id,
                    Event::StaffRoleChanged(e) => e.staff_id,
                    Event::StaffMovedOffice(e) => e.staff_id,
                    Event::StaffLeft(e) => e.staff_id,
                    _ => continue,
                };
                let state = states.remove(&id).unwrap_or_default();
                states.insert(id, funnel_domain::org::evolve_staff(state, &env.payload));
            }
        }
        Ok(states
            .into_iter()
            .filter_map(|(id, s)| Some((id, s.info()?)))
            .collect())
    }

    async fn acting(&self, who: &Who) -> Result<Acting, EngineError> {
        match who {
            Who::System(name) => Ok(Acting::system(name.clone())),
            Who::Staff(id) => match self.staff_info(*id).await? {
                Some(info) => Ok(Acting::Staff(info)),
                None => Err(EngineError::refused(
                    RefusalCode::UnknownStaff,
                    format!("no member of staff {id} is on record"),
                    format!("没有员工 {id} 的记录"),
                )),
            },
        }
    }

    async fn office_timezone(
        &self,
        office: Option<OfficeId>,
    ) -> Result<chrono_tz::Tz, EngineError> {
        let Some(office) = office else {
            return Ok(funnel_domain::DEFAULT_TIME_ZONE);
        };
        let loaded = self.load(&command::office_stream(office)).await?;
        let state = loaded
            .events
            .iter()
            .fold(funnel_domain::org::OfficeState::default(), |s, e| {
                funnel_domain::org::evolve_office(s, &e.payload)
            });
        Ok(state.timezone())
    }

    /// Executes one command: at most once per command id, retried on conflicting writers.
    pub async fn execute(&self, meta: CommandMeta, cmd: Command) -> Result<Accepted, EngineError> {
        let acting = self.acting(&meta.who).await?;
        let at = meta.at.unwrap_or_else(|| self.clock.now());
        let stream = cmd.route(self.store.as_ref(), &acting).await?;
        let mut staff: BTreeMap<StaffId, StaffInfo> = BTreeMap::new();
        if cmd.needs_organisation() {
            staff = self.organisation().await?;
        }
        for id in cmd.referenced_staff() {
            if let Some(info) = self.staff_info(id).await? {
                staff.insert(id, info);
            }
        }
        let actor = acting.actor();
        let record_id = CommandId::derived(&format!("{}:refusal", meta.command_id));
        for attempt in 1..=self.max_attempts {
            let loaded = self.load(&stream).await?;
            if let Some(answer) = loaded.earlier(&meta, record_id, &actor, &stream)? {
                return answer;
            }
            let payloads: Vec<&Event> = loaded.events.iter().map(|e| &e.payload).collect();
            for id in cmd.people_in(&payloads) {
                if !staff.contains_key(&id)
                    && let Some(info) = self.staff_info(id).await?
                {
                    staff.insert(id, info);
                }
            }
            let tz = self
                .office_timezone(cmd.office_for_timezone(&acting, &payloads))
                .await?;
            let decided = {
                let ctx = Ctx {
                    acting: &acting,
                    at,
                    policy: &self.policy,
                    staff: &staff,
                };
                cmd.decide(&payloads, &ctx, tz)
            };
            let (events, command_id, refusal) = match decided {
                Ok(events) => (events, meta.command_id, None),
                Err(Rejected { refusal, record }) if record.is_empty() => {
                    return Err(EngineError::Refused {
                        refusal,
                        recorded: None,
                        recorded_before: false,
                        suppressed: false,
                    });
                }
                Err(Rejected { refusal, record }) => {
                    if let Acting::Staff(info) = &acting
                        && !self.records.take(info.id, self.clock.now())
                    {
                        tracing::info!(staff = %info.id, code = refusal.code.as_str(),
                            "refusal record budget spent; refusal answered, not recorded");
                        return Err(EngineError::Refused {
                            refusal,
                            recorded: None,
                            recorded_before: false,
                            suppressed: true,
                        });
                    }
                    (record, record_id, Some(refusal))
                }
            };
            let office = cmd.office_of(&acting, &payloads, &events);
            let req = self.request(
                &stream,
                loaded.expected(),
                &meta,
                command_id,
                &acting,
                at,
                office,
                &events,
            );
            match self.store.append(req).await {
                Ok(outcome) => {
                    if let Some(refusal) = refusal {
                        if outcome.duplicate {
                            // A concurrent call with the same command id got there first.
                            self.give_back_record(&acting);
                            let stored = self.load(&stream).await?;
                            if let Some(answer) =
                                stored.earlier(&meta, record_id, &actor, &stream)?
                            {
                                return answer;
                            }
                        }
                        return Err(EngineError::Refused {
                            refusal,
                            recorded: Some(outcome.last_position),
                            recorded_before: outcome.duplicate,
                            suppressed: false,
                        });
                    }
                    if outcome.duplicate {
                        // A concurrent call with the same command id got there first: answer with
                        // what is stored (if it is this actor's), not with this attempt's decision.
                        let stored = self.load(&stream).await?;
                        if let Some(answer) = stored.earlier(&meta, record_id, &actor, &stream)? {
                            return answer;
                        }
                    }
                    return Ok(self.accepted(stream, outcome, events, &meta, &acting, at, office));
                }
                Err(e) if e.is_conflict() => {
                    if refusal.is_some() {
                        self.give_back_record(&acting);
                    }
                    tracing::debug!(%stream, attempt, "conflict; reloading and deciding again");
                    // Back off a little more each time, spread by the command id so racing
                    // writers do not retry in lockstep.
                    let spread = u64::from(meta.command_id.0.as_bytes()[15] % 8);
                    let wait = (u64::from(attempt) * 2).min(40) + spread;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                Err(e) => {
                    if refusal.is_some() {
                        self.give_back_record(&acting);
                    }
                    return Err(e.into());
                }
            }
        }
        Err(EngineError::Contention {
            stream,
            attempts: self.max_attempts,
        })
    }

    /// Returns a refusal record taken for an append that wrote nothing.
    fn give_back_record(&self, acting: &Acting) {
        if let Acting::Staff(info) = acting {
            self.records.give_back(info.id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        meta: &CommandMeta,
        command_id: CommandId,
        acting: &Acting,
        at: DateTime<Utc>,
        office: Option<OfficeId>,
        events: &[Event],
    ) -> AppendRequest {
        let actor = acting.actor();
        let correlation = meta.correlation();
        let causation = meta.causation_id.unwrap_or(meta.command_id.0);
        let events = events
            .iter()
            .enumerate()
            .map(|(i, e)| ProposedEvent {
                event_id: event_id(command_id, i, at),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                occurred_at: at,
                actor: actor.clone(),
                office,
                correlation_id: correlation,
                causation_id: causation,
                payload: Bytes::from(funnel_codec::encode(e)),
            })
            .collect();
        AppendRequest {
            stream: stream.clone(),
            expected,
            command_id,
            events,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn accepted(
        &self,
        stream: StreamId,
        outcome: AppendOutcome,
        events: Vec<Event>,
        meta: &CommandMeta,
        acting: &Acting,
        at: DateTime<Utc>,
        office: Option<OfficeId>,
    ) -> Accepted {
        let correlation = meta.correlation();
        let envelopes = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let i64 = i as u64;
                Envelope {
                    meta: funnel_types::Metadata {
                        event_id: event_id(meta.command_id, i, at),
                        event_type: e.event_type().to_string(),
                        schema_version: e.schema_version(),
                        stream: stream.clone(),
                        version: Version(outcome.first_version.0 + i64),
                        // The events of one append have consecutive positions (store contract).
                        position: Position(outcome.first_position.0 + i64),
                        occurred_at: at,
                        recorded_at: self.clock.now(),
                        actor: acting.actor(),
                        office,
                        command_id: meta.command_id,
                        correlation_id: correlation,
                        causation_id: meta.causation_id.unwrap_or(meta.command_id.0),
                    },
                    payload: e,
                }
            })
            .collect();
        Accepted {
            stream,
            events: envelopes,
            last_version: outcome.last_version,
            last_position: outcome.last_position,
            duplicate: outcome.duplicate,
        }
    }
}

/// The refusal a recorded refusal event stands for.
fn recorded_refusal(event: &Event) -> Refusal {
    let code = match event {
        Event::TouchRefused(t) => RefusalCode::parse(&t.code),
        _ => None,
    };
    Refusal::new(
        code.unwrap_or(RefusalCode::NotOwner),
        "this command was refused before and the refusal is on record",
        "该命令此前已被拒绝，拒绝记录已存档",
    )
}

/// A deterministic, time-ordered event id: UUIDv7 with the command's time and bits derived from the
/// command id and the event's index, so a retried command proposes the same ids.
fn event_id(command: CommandId, index: usize, at: DateTime<Utc>) -> EventId {
    let seed = uuid::Uuid::new_v5(&command.0, &(index as u64).to_be_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&seed.as_bytes()[6..16]);
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    EventId::v7_from_parts(millis, random)
}
