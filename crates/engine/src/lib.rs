//! The command engine: resolve who is acting → bring the aggregate's state up to date → decide
//! (pure) → append with the expected version, retrying on conflict within a bound.
//!
//! A command costs the same on a stream of ten events as on one of ten thousand: the folded state
//! and the stream's command index are kept in memory with the version they reflect (`cache.rs`), and
//! in snapshots beside the log (`snapshot.rs`, written every so many events); a command folds only
//! the events after them. Nothing cached admits anything on its own: an append carries the cached
//! version as its expected version (a conflict catches the cache up and decides again), and an
//! answer that writes nothing (a refusal) is given only once the stream's version has been read
//! and found unchanged. Members of staff a decision depends on are read the same way.
//!
//! Idempotency is by command id and does not depend on any broker window: before deciding, the
//! engine looks for the command id in the aggregate's own stream (its command index), and a
//! command already appended
//! answers with its original events, but only to the actor who sent it: a stored command of another
//! actor is a conflict, never a duplicate. A command sent under a caller's idempotency key
//! (`CommandMeta::idempotency_key`) is refused when the stream holds that actor's events of a
//! different command under the same key. Refusals the domain wants on record (a touch of another
//! engineer's lead) are appended under a command id derived from the refused command's, so a retried
//! refusal is recorded once; each member of staff may add such records only within a budget
//! (`RecordBudget`), past which the refusal is still answered but not recorded again.

mod aggregate;
mod budget;
mod cache;
mod command;
mod index;
mod keys;
mod snapshot;

pub use budget::RecordBudget;
pub use cache::CacheLimits;
pub use command::{Command, Who};
pub use keys::KeyReservations;
pub use snapshot::STATE_VERSION;

use aggregate::Folded;
use bytes::Bytes;
use cache::Cached;
use chrono::{DateTime, Utc};
use funnel_codec::DecodeError;
use funnel_domain::{Acting, Ctx, Event, Policy, Refusal, RefusalCode, Rejected, StaffInfo};
use funnel_store::{
    AppendOutcome, AppendRequest, EventStore, ProposedEvent, RecordedEvent, StoreError,
    read_whole_stream,
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
    cache: Arc<cache::Cache>,
    /// Events after which a stream's snapshot is written again (0: no snapshots).
    snapshot_every: u64,
}

/// A snapshot of `n` bytes is written again only after `n / SNAPSHOT_BYTES_PER_EVENT` more events
/// (and at least `snapshot_every`), so the bytes snapshots cost per event stay bounded however
/// large a stream's command index grows.
const SNAPSHOT_BYTES_PER_EVENT: usize = 256;

/// Events read from the store per page when folding a stream.
const PAGE: usize = 1024;

impl Engine {
    pub fn new(store: Arc<dyn EventStore>, policy: Policy, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            policy: Arc::new(policy),
            clock,
            max_attempts: 20,
            records: Arc::new(budget::Budgets::new(RecordBudget::default())),
            cache: Arc::new(cache::Cache::new(CacheLimits::default())),
            snapshot_every: 64,
        }
    }

    /// How many streams' states (and command index entries in all) this engine keeps in memory;
    /// `CacheLimits::default()` unless set. `streams: 0` keeps none, so every command reads its
    /// stream's snapshot and the events after it. Clones made before this call keep their cache.
    pub fn with_cache(mut self, limits: CacheLimits) -> Self {
        self.cache = Arc::new(cache::Cache::new(limits));
        self
    }

    /// Writes a stream's snapshot beside the log once `every` events (or more, for large
    /// snapshots) have been added since the last one; 64 unless set, 0 writes none and reads none.
    pub fn with_snapshots_every(mut self, every: u64) -> Self {
        self.snapshot_every = every;
        self
    }

    /// Drops the lead's state this engine keeps in memory, if any: the next command on it folds
    /// its stream again. For an erasure recorded elsewhere (another process, the command line),
    /// since a person's fields as read before the erasure are in that state.
    pub fn forget_lead(&self, lead: funnel_types::LeadId) {
        self.cache.forget(&command::lead_stream(lead));
    }

    /// Streams whose state this engine keeps in memory now.
    pub fn cached_streams(&self) -> usize {
        self.cache.len()
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

    /// The engine's clock: what "now" is for the commands it decides (and for dates printed on
    /// what is made from them).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The clock commands are timed by (and sessions expire by).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Decodes a page of a stream's events.
    fn decode(records: &[RecordedEvent]) -> Result<Vec<Envelope<Event>>, EngineError> {
        Ok(records
            .iter()
            .map(funnel_codec::decode_recorded)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Folds the events after `cached`'s version into it, page by page. Returns whether any came.
    async fn catch_up(&self, stream: &StreamId, cached: &mut Cached) -> Result<bool, EngineError> {
        let mut moved = false;
        loop {
            let from = Version(cached.version_number() + 1);
            let page = self
                .store
                .read_stream_near(stream, from, cached.last_position, PAGE)
                .await?;
            let n = page.len();
            for env in Self::decode(&page)? {
                if env.meta.version.0 != cached.version_number() + 1 {
                    return Err(StoreError::Corrupt {
                        position: env.meta.position,
                        reason: format!(
                            "{stream} read version {} after version {}",
                            env.meta.version,
                            cached.version_number()
                        ),
                    }
                    .into());
                }
                cached.apply(&env);
                moved = true;
            }
            if n < PAGE {
                return Ok(moved);
            }
        }
    }

    /// The stream folded from its snapshot (when one fits) and the events after it, or from its
    /// first event.
    async fn fold(&self, stream: &StreamId) -> Result<Cached, EngineError> {
        if let Some(cached) = self.fold_from_snapshot(stream).await? {
            return Ok(cached);
        }
        let mut cached = Cached::empty(stream);
        self.catch_up(stream, &mut cached).await?;
        Ok(cached)
    }

    /// The stream as its snapshot says plus the events after it, if a snapshot is kept, decodes,
    /// and names the stream's real event at its version; `None` otherwise.
    async fn fold_from_snapshot(&self, stream: &StreamId) -> Result<Option<Cached>, EngineError> {
        if self.snapshot_every == 0 || Folded::empty(stream).persisted().is_none() {
            return Ok(None);
        }
        let kept = match self.store.load_snapshot(stream).await {
            Ok(Some(kept)) => kept,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(%stream, error = %e, "cannot read the snapshot; folding the stream");
                return Ok(None);
            }
        };
        let Some(mut cached) = snapshot::decode(stream, kept.version, &kept.data) else {
            tracing::info!(%stream, version = %kept.version,
                "the snapshot does not fit this build or is damaged; folding the stream");
            return Ok(None);
        };
        // The snapshot's last event must be the stream's event at that version.
        let page = self
            .store
            .read_stream_near(stream, kept.version, cached.last_position, PAGE)
            .await?;
        let Some(first) = page.first() else {
            return Ok(None);
        };
        if first.meta.version != kept.version
            || Some(first.meta.event_id) != cached.last_event_id
            || first.meta.position != cached.last_position
        {
            tracing::info!(%stream, version = %kept.version,
                "the snapshot names another event than the log; folding the stream");
            return Ok(None);
        }
        for env in Self::decode(&page[1..])? {
            cached.apply(&env);
        }
        if page.len() == PAGE {
            self.catch_up(stream, &mut cached).await?;
        }
        Ok(Some(cached))
    }

    /// Brings the slot up to the stream's current version: folds it when empty, else reads the
    /// version and catches up when it moved.
    async fn refresh(
        &self,
        stream: &StreamId,
        slot: &mut Option<Cached>,
    ) -> Result<(), EngineError> {
        let ticket = self.cache.ticket();
        let result = async {
            match slot {
                None => *slot = Some(self.fold(stream).await?),
                Some(cached) => {
                    let current = self.store.stream_version(stream).await?;
                    if current != cached.version {
                        self.catch_up(stream, cached).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        match (&result, slot.as_mut()) {
            (Ok(()), Some(cached)) => cached.checked = ticket,
            // A half-folded state must not be kept.
            _ => *slot = None,
        }
        result
    }

    /// Before an answer that writes nothing (and so checks no version): unless the slot is
    /// already `current`, reads the stream's version and catches up. True when the stream had moved,
    /// so the command must be decided again.
    async fn moved_since(
        &self,
        stream: &StreamId,
        slot: &mut Option<Cached>,
        current: &mut bool,
    ) -> Result<bool, EngineError> {
        if *current {
            return Ok(false);
        }
        let before = slot.as_ref().map(|c| c.version);
        self.refresh(stream, slot).await?;
        *current = true;
        Ok(slot.as_ref().map(|c| c.version) != before)
    }

    /// Writes the stream's snapshot when enough events came since the last one.
    async fn maybe_snapshot(&self, stream: &StreamId, cached: &mut Cached) {
        if self.snapshot_every == 0 {
            return;
        }
        let since = cached
            .version_number()
            .saturating_sub(cached.snapshot_version);
        let due = self
            .snapshot_every
            .max((cached.snapshot_bytes / SNAPSHOT_BYTES_PER_EVENT) as u64);
        if since < due {
            return;
        }
        let (Some(version), Some(data)) = (cached.version, snapshot::encode(stream, cached)) else {
            return;
        };
        let bytes = data.len();
        let saved = self
            .store
            .save_snapshot(funnel_store::Snapshot {
                stream: stream.clone(),
                version,
                data,
            })
            .await;
        if let Err(e) = saved {
            tracing::warn!(%stream, %version, bytes, error = %e, "snapshot not kept");
        }
        // Also after a failure: trying again at every command would not make it fit.
        cached.snapshot_version = version.0;
        cached.snapshot_bytes = bytes;
    }

    /// Runs `f` on the stream's state as of now (its version read from the store).
    async fn current<T>(
        &self,
        stream: &StreamId,
        f: impl FnOnce(&Cached) -> T,
    ) -> Result<T, EngineError> {
        let arrived = self.cache.ticket();
        let slot = self.cache.slot(stream);
        let mut guard = slot.lock().await;
        // A read issued since this caller arrived (by a caller ahead of it) answers for it too.
        if guard.as_ref().is_none_or(|c| c.checked < arrived) {
            self.refresh(stream, &mut guard).await?;
        }
        let cached = guard.as_mut().expect("refreshed");
        self.maybe_snapshot(stream, cached).await;
        let answer = f(cached);
        self.cache.weigh(stream, guard.as_ref());
        Ok(answer)
    }

    /// What the staff events say about a member of staff, if they exist.
    pub async fn staff_info(&self, id: StaffId) -> Result<Option<StaffInfo>, EngineError> {
        self.current(&command::staff_stream(id), |c| c.folded.staff_info())
            .await
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
        self.current(&command::office_stream(office), |c| c.folded.timezone())
            .await
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
        let arrived = self.cache.ticket();
        let slot = self.cache.slot(&stream);
        let mut guard = slot.lock().await;
        let result = self
            .execute_on(
                &meta, &cmd, &acting, at, staff, &stream, &mut guard, arrived,
            )
            .await;
        if let Err(
            EngineError::Store(_) | EngineError::Decode(_) | EngineError::Contention { .. },
        ) = &result
        {
            // After a failure the cache may not know what the store did: fold again next time.
            *guard = None;
        }
        self.cache.weigh(&stream, guard.as_ref());
        drop(guard);
        if let Ok(accepted) = &result {
            // An erasure destroys a person's key: the lead's state cached here still holds their
            // personal fields as read before, so it is folded again (and reads them as erased).
            for e in &accepted.events {
                if let Event::SubjectErased(erased) = &e.payload {
                    self.cache.forget(&command::lead_stream(erased.lead_id));
                }
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute_on(
        &self,
        meta: &CommandMeta,
        cmd: &Command,
        acting: &Acting,
        at: DateTime<Utc>,
        mut staff: BTreeMap<StaffId, StaffInfo>,
        stream: &StreamId,
        slot: &mut Option<Cached>,
        arrived: u64,
    ) -> Result<Accepted, EngineError> {
        let actor = acting.actor();
        let record_id = CommandId::derived(&format!("{}:refusal", meta.command_id));
        // Whether the slot is known to be the stream as it was at some moment since this command
        // arrived (read by it, or by a command ahead of it since).
        let mut current = slot.as_ref().is_some_and(|c| c.checked > arrived);
        if slot.is_none() {
            self.refresh(stream, slot).await?;
            current = true;
        }
        let mut attempt = 0;
        while attempt < self.max_attempts {
            attempt += 1;
            let cached = slot.as_mut().expect("folded");
            if let Some(earlier) = self
                .earlier(stream, cached, meta, record_id, &actor)
                .await?
            {
                // Nothing is written, so nothing checks the version: a key reuse or a taken id
                // seen in an older state may be this actor's own retry in the current one.
                if self.moved_since(stream, slot, &mut current).await? {
                    attempt -= 1;
                    continue;
                }
                return self.answer(stream, earlier, meta).await;
            }
            for id in cmd.people_in(&cached.folded) {
                if !staff.contains_key(&id)
                    && let Some(info) = self.staff_info(id).await?
                {
                    staff.insert(id, info);
                }
            }
            let tz = self
                .office_timezone(cmd.office_for_timezone(acting, &cached.folded))
                .await?;
            let decided = {
                let ctx = Ctx {
                    acting,
                    at,
                    policy: &self.policy,
                    staff: &staff,
                };
                cmd.decide(&cached.folded, &ctx, tz)
            };
            let (events, command_id, refusal) = match decided {
                Ok(events) => (events, meta.command_id, None),
                Err(Rejected { refusal, record }) if record.is_empty() => {
                    // Nothing is written, so nothing checks the version: read it, and decide
                    // again if the stream moved since it was cached.
                    if self.moved_since(stream, slot, &mut current).await? {
                        attempt -= 1;
                        continue;
                    }
                    return Err(EngineError::Refused {
                        refusal,
                        recorded: None,
                        recorded_before: false,
                        suppressed: false,
                    });
                }
                Err(Rejected { refusal, record }) => {
                    if let Acting::Staff(info) = acting
                        && !self.records.take(info.id, self.clock.now())
                    {
                        // Suppressed records are answered as refusals too: from a current state.
                        if self.moved_since(stream, slot, &mut current).await? {
                            attempt -= 1;
                            continue;
                        }
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
            let office = cmd.office_of(acting, &cached.folded, &events);
            let expected = cached
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            let req = self.request(
                stream, expected, meta, command_id, acting, at, office, &events,
            );
            match self.store.append(req).await {
                Ok(outcome) if outcome.duplicate => {
                    // A concurrent call with the same command id got there first: answer with what
                    // is stored (if it is this actor's), not with this attempt's decision.
                    if refusal.is_some() {
                        self.give_back_record(acting);
                    }
                    self.refresh(stream, slot).await?;
                    let cached = slot.as_mut().expect("folded");
                    if let Some(earlier) = self
                        .earlier(stream, cached, meta, record_id, &actor)
                        .await?
                    {
                        return self.answer(stream, earlier, meta).await;
                    }
                    // Not on this stream (no store does that for exact expectations): answer
                    // as the store did, as this engine always has.
                    if let Some(refusal) = refusal {
                        return Err(EngineError::Refused {
                            refusal,
                            recorded: Some(outcome.last_position),
                            recorded_before: true,
                            suppressed: false,
                        });
                    }
                    let events = self.envelopes(
                        stream, &outcome, events, command_id, meta, acting, at, office,
                    );
                    return Ok(Accepted {
                        stream: stream.clone(),
                        events,
                        last_version: outcome.last_version,
                        last_position: outcome.last_position,
                        duplicate: true,
                    });
                }
                Ok(outcome) => {
                    let envelopes = self.envelopes(
                        stream, &outcome, events, command_id, meta, acting, at, office,
                    );
                    for env in &envelopes {
                        cached.apply(env);
                    }
                    self.maybe_snapshot(stream, cached).await;
                    if let Some(refusal) = refusal {
                        return Err(EngineError::Refused {
                            refusal,
                            recorded: Some(outcome.last_position),
                            recorded_before: false,
                            suppressed: false,
                        });
                    }
                    return Ok(Accepted {
                        stream: stream.clone(),
                        events: envelopes,
                        last_version: outcome.last_version,
                        last_position: outcome.last_position,
                        duplicate: false,
                    });
                }
                Err(e) if e.is_conflict() => {
                    if refusal.is_some() {
                        self.give_back_record(acting);
                    }
                    tracing::debug!(%stream, attempt, "conflict; catching up and deciding again");
                    // Catch up from the cached version; back off a little more each time (after
                    // the first), spread by the command id so racing writers do not retry in
                    // lockstep.
                    if attempt > 1 {
                        let spread = u64::from(meta.command_id.0.as_bytes()[15] % 8);
                        let wait = (u64::from(attempt) * 2).min(40) + spread;
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    }
                    self.refresh(stream, slot).await?;
                    current = true;
                }
                Err(e) => {
                    if refusal.is_some() {
                        self.give_back_record(acting);
                    }
                    return Err(e.into());
                }
            }
        }
        Err(EngineError::Contention {
            stream: stream.clone(),
            attempts: self.max_attempts,
        })
    }

    /// What the stream already says about this command (from its index, or a scan when the stream
    /// is irregular).
    async fn earlier(
        &self,
        stream: &StreamId,
        cached: &Cached,
        meta: &CommandMeta,
        record_id: CommandId,
        actor: &Actor,
    ) -> Result<Option<index::Earlier>, EngineError> {
        if !cached.index.irregular {
            return Ok(cached.index.earlier(
                meta.command_id,
                record_id,
                actor,
                meta.idempotency_key,
            ));
        }
        let records = read_whole_stream(self.store.as_ref(), stream).await?;
        let metas: Vec<&funnel_types::Metadata> = records.iter().map(|r| &r.meta).collect();
        Ok(index::scan_earlier(
            &metas,
            meta.command_id,
            record_id,
            actor,
            meta.idempotency_key,
        ))
    }

    /// The answer to a command the stream already holds something about.
    async fn answer(
        &self,
        stream: &StreamId,
        earlier: index::Earlier,
        meta: &CommandMeta,
    ) -> Result<Accepted, EngineError> {
        match earlier {
            index::Earlier::Taken => Err(EngineError::CommandIdTaken {
                command_id: meta.command_id,
                stream: stream.clone(),
            }),
            index::Earlier::KeyReused(earlier) => Err(EngineError::KeyReused {
                earlier,
                stream: stream.clone(),
            }),
            index::Earlier::Refused { version } => {
                let prior = self.read_versions(stream, version, version).await?;
                let prior = prior.last().ok_or_else(|| missing_event(stream, version))?;
                Err(EngineError::Refused {
                    refusal: recorded_refusal(&prior.payload),
                    recorded: Some(prior.meta.position),
                    recorded_before: true,
                    suppressed: false,
                })
            }
            index::Earlier::Duplicate { first, last } => {
                let events: Vec<Envelope<Event>> = self
                    .read_versions(stream, first, last)
                    .await?
                    .into_iter()
                    .filter(|e| e.meta.command_id == meta.command_id)
                    .collect();
                let last = events.last().ok_or_else(|| missing_event(stream, last))?;
                Ok(Accepted {
                    stream: stream.clone(),
                    last_version: last.meta.version,
                    last_position: last.meta.position,
                    events,
                    duplicate: true,
                })
            }
        }
    }

    /// The decoded events of versions `first..=last` of the stream.
    async fn read_versions(
        &self,
        stream: &StreamId,
        first: u64,
        last: u64,
    ) -> Result<Vec<Envelope<Event>>, EngineError> {
        let mut out = Vec::new();
        let mut from = first;
        while from <= last {
            let want = usize::try_from(last - from + 1)
                .unwrap_or(usize::MAX)
                .min(PAGE);
            let page = self.store.read_stream(stream, Version(from), want).await?;
            let n = page.len();
            out.extend(Self::decode(&page)?);
            if n < want {
                break;
            }
            from += n as u64;
        }
        Ok(out)
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

    /// The envelopes of events just appended under `command_id`, as the store holds them (but
    /// for the recorded time, which is the engine's clock).
    #[allow(clippy::too_many_arguments)]
    fn envelopes(
        &self,
        stream: &StreamId,
        outcome: &AppendOutcome,
        events: Vec<Event>,
        command_id: CommandId,
        meta: &CommandMeta,
        acting: &Acting,
        at: DateTime<Utc>,
        office: Option<OfficeId>,
    ) -> Vec<Envelope<Event>> {
        let correlation = meta.correlation();
        let actor = acting.actor();
        let recorded_at = self.clock.now();
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let i64 = i as u64;
                Envelope {
                    meta: funnel_types::Metadata {
                        event_id: event_id(command_id, i, at),
                        event_type: e.event_type().to_string(),
                        schema_version: e.schema_version(),
                        stream: stream.clone(),
                        version: Version(outcome.first_version.0 + i64),
                        // The events of one append have consecutive positions (store contract).
                        position: Position(outcome.first_position.0 + i64),
                        occurred_at: at,
                        recorded_at,
                        actor: actor.clone(),
                        office,
                        command_id,
                        correlation_id: correlation,
                        causation_id: meta.causation_id.unwrap_or(meta.command_id.0),
                    },
                    payload: e,
                }
            })
            .collect()
    }
}

fn missing_event(stream: &StreamId, version: u64) -> EngineError {
    EngineError::Store(StoreError::Backend {
        backend: "engine",
        message: format!("{stream} no longer holds its event at version {version}"),
    })
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
