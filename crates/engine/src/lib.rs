//! The command engine: resolve who is acting → load the aggregate's stream → decide (pure) →
//! append with the expected version, retrying on conflict within a bound.
//!
//! Idempotency is by command id and does not depend on any broker window: before deciding, the
//! engine looks for the command id in the aggregate's own stream, and a command already appended
//! answers with its original events. Refusals the domain wants on record (a touch of another
//! engineer's lead) are appended under a command id derived from the refused command's, so a retried
//! refusal is recorded once.

mod command;
mod keys;
mod open;

pub use command::{Command, Who};
pub use keys::KeyReservations;
pub use open::{StoreUrl, open_store};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_codec::DecodeError;
use funnel_domain::{Acting, Ctx, Event, Policy, Refusal, RefusalCode, Rejected, StaffInfo};
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, ProposedEvent, StoreError, read_whole_stream,
};
use funnel_types::{
    Clock, CommandId, CorrelationId, Envelope, EventId, ExpectedVersion, OfficeId, Position,
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
}

impl CommandMeta {
    pub fn new(who: Who) -> Self {
        Self {
            command_id: CommandId::new(),
            who,
            at: None,
            correlation_id: None,
            causation_id: None,
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
    /// wants it on record; `recorded_before` says the record was already there (a retry).
    #[error("refused: {refusal}")]
    Refused {
        refusal: Refusal,
        recorded: Option<Position>,
        recorded_before: bool,
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
}

impl Engine {
    pub fn new(store: Arc<dyn EventStore>, policy: Policy, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            policy: Arc::new(policy),
            clock,
            max_attempts: 20,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
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
            return Ok(chrono_tz::Asia::Shanghai);
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
        for id in cmd.referenced_staff() {
            if let Some(info) = self.staff_info(id).await? {
                staff.insert(id, info);
            }
        }
        for attempt in 1..=self.max_attempts {
            let loaded = self.load(&stream).await?;
            let earlier = loaded.by_command(meta.command_id);
            if let Some(last) = earlier.last() {
                return Ok(Accepted {
                    stream,
                    last_version: last.meta.version,
                    last_position: last.meta.position,
                    events: earlier,
                    duplicate: true,
                });
            }
            // A refusal already on record answers a retry the same way, whatever changed since.
            let record_id = CommandId::derived(&format!("{}:refusal", meta.command_id));
            if let Some(prior) = loaded.by_command(record_id).last() {
                return Err(EngineError::Refused {
                    refusal: recorded_refusal(&prior.payload),
                    recorded: Some(prior.meta.position),
                    recorded_before: true,
                });
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
                    });
                }
                Err(Rejected { refusal, record }) => (record, record_id, Some(refusal)),
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
                        return Err(EngineError::Refused {
                            refusal,
                            recorded: Some(outcome.last_position),
                            recorded_before: outcome.duplicate,
                        });
                    }
                    if outcome.duplicate {
                        // A concurrent call with the same command id got there first: answer with
                        // what is stored, not with this attempt's own decision.
                        let stored = self.load(&stream).await?.by_command(meta.command_id);
                        if let Some(last) = stored.last() {
                            return Ok(Accepted {
                                stream,
                                last_version: last.meta.version,
                                last_position: last.meta.position,
                                events: stored,
                                duplicate: true,
                            });
                        }
                    }
                    return Ok(self.accepted(stream, outcome, events, &meta, &acting, at, office));
                }
                Err(e) if e.is_conflict() => {
                    tracing::debug!(%stream, attempt, "conflict; reloading and deciding again");
                    // Back off a little more each time, spread by the command id so racing
                    // writers do not retry in lockstep.
                    let spread = u64::from(meta.command_id.0.as_bytes()[15] % 8);
                    let wait = (u64::from(attempt) * 2).min(40) + spread;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Contention {
            stream,
            attempts: self.max_attempts,
        })
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
        let correlation = meta
            .correlation_id
            .unwrap_or(CorrelationId(meta.command_id.0));
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
        let correlation = meta
            .correlation_id
            .unwrap_or(CorrelationId(meta.command_id.0));
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
