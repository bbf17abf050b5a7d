//! The runner: keeps a set of projections up to date with the log and their checkpoints durable.
//!
//! - Every projection has a *live* state (serving reads through [`Runner::get`]) and, during a
//!   rebuild, a *fresh* state built from position zero beside it. The runner reads the log once, from
//!   the lowest checkpoint of all states, in large pages, decodes each event once, and applies it to
//!   every state whose checkpoint is below its position.
//! - An event that does not decode, or that a model refuses, is parked for that state with the
//!   reason; the checkpoint moves past it.
//! - Every `save_every` events, at the end of a catch-up and when a rebuild switches, the runner
//!   writes the snapshots and checkpoints of the changed states in one transaction
//!   ([`CheckpointStore::commit`]), so after a crash each state restarts exactly where its snapshot
//!   was taken: no event is applied twice or skipped.
//! - A rebuild starts when the saved version differs from the code's `VERSION`, when the saved
//!   snapshot no longer reads, or on [`Runner::rebuild`]. It resumes after a restart from its own
//!   saved checkpoint, and replaces the live state (in one transaction) once it has reached the head
//!   seen when it started. Until then the old state keeps following the log and serving reads.
//! - Other processes may run their own runner on the same file. Every commit expects the slots it
//!   writes to hold what this runner last loaded or saved there; when another runner has moved one
//!   on, nothing is written and this runner loads the saved states (and the time index) again,
//!   then goes on from their checkpoints ([`Runner::reload`]).

use crate::checkpoint::{CheckpointStore, Committed, Row, Saved, Slot, Write};
use crate::history::{HistoryRow, TimeIndex};
use crate::projection::{Projection, Typed, downcast};
use crate::tables::{TableModel, TableReaders, Tabled};
use crate::{
    Parked, Progress, ProjectionState, ProjectionStatus, ReadModel, RebuildProgress, RunnerError,
};
use funnel_codec::DecodeError;
use funnel_domain::Event;
use funnel_store::{EventStore, Filter, RecordedEvent};
use funnel_types::{Envelope, Position};
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// Settings of a [`Runner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnerOptions {
    /// Events read from the store per request.
    pub page_size: usize,
    /// Events after which snapshots and checkpoints are saved during a catch-up.
    pub save_every: u64,
    /// While following the live tail, the shortest time between two saves of the in-memory
    /// models (table models commit every page at the tail). A save serialises them (under the
    /// read lock of a followed runner, beside its readers); a crash replays at most this long of
    /// events.
    pub follow_save_interval: Duration,
    /// Events between two history snapshots of a model that keeps them
    /// ([`ReadModel::KEEPS_HISTORY`], [`crate::history`]); 0 keeps none.
    pub history_every: u64,
    /// While catching up from far behind (every page read is full), the table models' rows of
    /// up to this many events are held and written at once ([`Runner::tables_due`]): each write
    /// copies every index page it touches into the write-ahead log, so fewer, larger writes copy
    /// each page fewer times. Readers of the tables see them as of the last write, and
    /// [`Runner::live_checkpoint`] says so. At the tail, every page is written.
    pub table_batch: u64,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            page_size: 8192,
            save_every: 50_000,
            follow_save_interval: Duration::from_secs(10),
            history_every: 20_000,
            table_batch: 65_536,
        }
    }
}

/// One state of a projection (live or rebuilding) and its bookkeeping.
#[derive(Debug)]
struct Instance {
    model: Box<dyn Projection>,
    version: u32,
    checkpoint: Position,
    parked: Vec<Parked>,
    /// `parked[saved_parked..]` are not in the checkpoint store yet.
    saved_parked: usize,
    /// Changed since the last save.
    dirty: bool,
    /// False for a live state whose snapshot does not read; it neither serves nor follows.
    readable: bool,
    /// For a rebuild: the head seen when it started.
    target: Option<Position>,
    /// For a rebuild: events taken so far.
    events_done: u64,
    /// The position at or after which the next history snapshot is taken (`None`: the state keeps
    /// no history, or was built by another version than the code's).
    history_due: Option<Position>,
    /// A history snapshot taken while applying a chunk (its position and state), to be saved.
    history_taken: Option<(Position, Vec<u8>)>,
}

impl Instance {
    /// What the state's row says once saved.
    fn saved(&self) -> Saved {
        Saved {
            version: self.version,
            checkpoint: self.checkpoint,
            tables: self.model.tables(),
        }
    }

    fn fresh(model: Box<dyn Projection>) -> Self {
        Self {
            version: model.version(),
            model,
            checkpoint: Position::START,
            parked: Vec::new(),
            saved_parked: 0,
            dirty: true,
            readable: true,
            target: None,
            events_done: 0,
            history_due: None,
            history_taken: None,
        }
    }

    fn loaded(model: Box<dyn Projection>, row: Row, parked: Vec<Parked>) -> Self {
        Self {
            model,
            version: row.version,
            checkpoint: row.checkpoint,
            saved_parked: parked.len(),
            parked,
            dirty: false,
            readable: true,
            target: row.target,
            events_done: 0,
            history_due: None,
            history_taken: None,
        }
    }

    /// Whether a history snapshot is due with the state exactly at `at`.
    fn history_is_due(&self, at: Position) -> bool {
        self.history_due
            .is_some_and(|due| self.checkpoint >= due && self.checkpoint == at)
    }

    /// Takes a history snapshot if one is due and the state is exactly at `at` (the end of the
    /// chunk it just applied).
    fn take_history(&mut self, at: Position) {
        if self.history_is_due(at) {
            match self.model.snapshot() {
                Ok(state) => self.history_taken = Some((at, crate::history::pack(&state))),
                Err(reason) => {
                    tracing::warn!(projection = self.model.name(), %reason, "no history snapshot")
                }
            }
        }
    }

    fn row(&self, slot: Slot) -> Result<Row, RunnerError> {
        let name = self.model.name();
        let state = self
            .model
            .snapshot()
            .map_err(|reason| RunnerError::Snapshot { name, reason })?;
        Ok(Row {
            name: name.to_string(),
            slot,
            version: self.version,
            checkpoint: self.checkpoint,
            state,
            target: self.target,
            tables: self.model.tables(),
        })
    }
}

/// What a save writes besides the time index and the history snapshots due (which go with any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveScope {
    /// Every changed state.
    Everything,
    /// The changed table models' rows and checkpoints (they serve reads).
    Tables,
    /// Only the history snapshots due ([`Runner::history_due`]).
    History,
}

/// A save made from the runner's state and not recorded yet ([`Runner::prepare_save`]).
#[derive(Debug)]
pub struct PreparedSave {
    writes: Vec<Write>,
    saved: Vec<SavedState>,
    cleared: Vec<usize>,
    /// History snapshots it writes (the first of the runner's list).
    history: usize,
    /// History snapshots it took itself: (entry, slot, position, compressed size).
    history_now: Vec<(usize, Slot, Position, usize)>,
    /// Closed spans of the time index it writes (the first of the index's list).
    spans_closed: usize,
    /// What it saves.
    scope: SaveScope,
}

/// One state a save writes, as it was when the save was made.
#[derive(Debug)]
struct SavedState {
    entry: usize,
    slot: Slot,
    checkpoint: Position,
    parked: usize,
}

/// A registered projection: its live state and maybe a rebuild.
#[derive(Debug)]
struct Entry {
    live: Instance,
    rebuild: Option<Instance>,
    /// The saved rebuild slot is stale and must be cleared at the next save.
    clear_rebuild: bool,
    /// What the live and rebuild slots held when this runner last loaded or saved them.
    saved_live: Option<Saved>,
    saved_rebuild: Option<Saved>,
}

impl Entry {
    fn saved_mut(&mut self, slot: Slot) -> &mut Option<Saved> {
        match slot {
            Slot::Live => &mut self.saved_live,
            Slot::Rebuild => &mut self.saved_rebuild,
        }
    }

    fn expect(&self, slot: Slot) -> Write {
        Write::Expect {
            name: self.live.model.name().to_string(),
            slot,
            saved: match slot {
                Slot::Live => self.saved_live,
                Slot::Rebuild => self.saved_rebuild,
            },
        }
    }

    /// The position reads of the live state reflect: for a table model, the last write of its
    /// tables (its rows applied since wait in memory, [`Runner::tables_due`]).
    fn served(&self) -> Position {
        if self.live.dirty && self.live.model.tables().is_some() {
            self.saved_live.map_or(Position::START, |s| s.checkpoint)
        } else {
            self.live.checkpoint
        }
    }

    fn instances_mut(&mut self) -> impl Iterator<Item = &mut Instance> {
        std::iter::once(&mut self.live)
            .filter(|i| i.readable)
            .chain(self.rebuild.as_mut())
    }

    fn instances(&self) -> impl Iterator<Item = &Instance> {
        std::iter::once(&self.live)
            .filter(|i| i.readable)
            .chain(self.rebuild.as_ref())
    }
}

/// Events until the next history snapshot after one of `size` bytes: a whole model per snapshot,
/// spaced so that the history takes at most `HISTORY_BYTES_PER_EVENT` of disk per event of the
/// log, not a square of it.
fn history_spacing(every: u64, size: usize) -> u64 {
    every.max(size as u64 / crate::history::HISTORY_BYTES_PER_EVENT)
}

/// Decodes a page, the two halves on two threads.
fn decode_page(page: &[RecordedEvent]) -> Vec<Result<Envelope<Event>, DecodeError>> {
    let (a, b) = page.split_at(page.len() / 2);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            b.iter()
                .map(funnel_codec::decode_recorded)
                .collect::<Vec<_>>()
        });
        let mut out: Vec<_> = a.iter().map(funnel_codec::decode_recorded).collect();
        match second.join() {
            Ok(rest) => out.extend(rest),
            Err(_) => out.extend(b.iter().map(funnel_codec::decode_recorded)),
        }
        out
    })
}

/// Applies the events of a page above the state's checkpoint; events it refuses or that do not
/// decode are parked with the reason.
fn apply_to(
    i: &mut Instance,
    page: &[RecordedEvent],
    decoded: &[Result<Envelope<Event>, DecodeError>],
) {
    for (rec, d) in page.iter().zip(decoded) {
        let position = rec.meta.position;
        if i.checkpoint >= position {
            continue;
        }
        let refused = match d {
            Ok(env) => i.model.apply(env).err(),
            Err(err) => Some(err.to_string()),
        };
        if let Some(reason) = refused {
            tracing::warn!(projection = i.model.name(), %position, %reason, "parked an event");
            i.parked.push(Parked {
                position,
                event_type: rec.meta.event_type.clone(),
                reason,
            });
        }
        i.checkpoint = position;
        i.dirty = true;
        i.events_done += 1;
    }
}

// A runner must be shareable behind a lock across tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Runner>();
};

/// Keeps a set of projections up to date in its checkpoint store (beside any other runners on
/// the same file: see [`Runner::reload`]).
#[derive(Debug)]
pub struct Runner {
    checkpoints: CheckpointStore,
    options: RunnerOptions,
    entries: Vec<Entry>,
    head: Position,
    /// Whether the store's positions are consecutive, so that lag in positions is lag in events.
    consecutive: bool,
    since_save: u64,
    /// Events applied since the table models' rows were last written.
    since_tables: u64,
    live_tx: watch::Sender<Position>,
    /// The time index of the history snapshots ([`crate::history`]).
    times: TimeIndex,
    /// History snapshots taken and not yet saved.
    history: Vec<HistoryRow>,
    /// How many times the saved states were loaded again ([`Runner::reload`]).
    reloads: u64,
    /// The position and id of the last event applied (where a history snapshot taken by the
    /// next save stands).
    last_applied: Option<(Position, String)>,
    /// A person was erased in the events applied since the last save: once that save is
    /// written, the file's write-ahead log (old page images holding the person's fields) is
    /// checkpointed and truncated.
    scrub: std::sync::atomic::AtomicBool,
}

impl Runner {
    /// Opens the checkpoint file at `path` (created when missing). Register projections next.
    pub fn open(path: impl AsRef<Path>, options: RunnerOptions) -> Result<Self, RunnerError> {
        let checkpoints = CheckpointStore::open(path)?;
        let times = checkpoints.with_conn(TimeIndex::load)?;
        Ok(Self {
            checkpoints,
            times,
            history: Vec::new(),
            reloads: 0,
            last_applied: None,
            options: RunnerOptions {
                page_size: options.page_size.max(1),
                save_every: options.save_every.max(1),
                ..options
            },
            entries: Vec::new(),
            head: Position::START,
            consecutive: false,
            since_save: 0,
            scrub: std::sync::atomic::AtomicBool::new(false),
            since_tables: 0,
            live_tx: watch::channel(Position::START).0,
        })
    }

    /// The settings in use.
    pub fn options(&self) -> RunnerOptions {
        self.options
    }

    /// The checkpoint store (for inspection).
    pub fn checkpoints(&self) -> &CheckpointStore {
        &self.checkpoints
    }

    /// Registers `M`, loading its saved state (see [`Runner::add`]).
    pub fn register<M: ReadModel>(&mut self) -> Result<&mut Self, RunnerError> {
        self.add(Box::new(Typed::<M>::default()))?;
        Ok(self)
    }

    /// Registers the table model `M`, loading its saved checkpoint (see [`Runner::add`]).
    pub fn register_tables<M: TableModel>(&mut self) -> Result<&mut Self, RunnerError> {
        self.add(Box::new(Tabled::<M>::default()))?;
        Ok(self)
    }

    /// Readers of the table models' tables (see [`TableReaders`]).
    pub fn table_readers(&self) -> TableReaders {
        TableReaders::new(self.checkpoints.path())
    }

    /// A state bound to the checkpoint file (a table model's tables).
    fn attached(&self, mut model: Box<dyn Projection>) -> Result<Box<dyn Projection>, RunnerError> {
        let name = model.name();
        model
            .attach(&self.checkpoints)
            .map_err(|reason| RunnerError::Snapshot { name, reason })?;
        Ok(model)
    }

    /// Registers a projection: loads its saved snapshot and checkpoint, and schedules a rebuild when
    /// the saved version differs from the projection's version or the snapshot does not read.
    pub fn add(&mut self, proto: Box<dyn Projection>) -> Result<(), RunnerError> {
        let name = proto.name();
        if self.entries.iter().any(|e| e.live.model.name() == name) {
            return Err(RunnerError::AlreadyRegistered(name));
        }
        let version = proto.version();
        let saved_live = self.checkpoints.load(name, Slot::Live)?;
        let saved = saved_live.as_ref().map(|(row, _)| row.saved());
        let live = match saved_live {
            None => Instance::fresh(self.attached(proto.fresh())?),
            Some((row, parked)) => match proto.restore(&row.state) {
                Ok(model) => {
                    let mut i = Instance::loaded(self.attached(model)?, row, parked);
                    // Tables built by another version may not have the shape this build writes
                    // and reads: they neither follow nor serve until the rebuild replaces them.
                    if i.model.tables().is_some() && i.version != version {
                        i.readable = false;
                    }
                    i
                }
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "saved snapshot does not read; rebuilding");
                    let mut i = Instance::loaded(proto.fresh(), row, parked);
                    i.readable = false;
                    i
                }
            },
        };
        let saved_rebuild = self.checkpoints.load(name, Slot::Rebuild)?;
        let saved_rebuild_row = saved_rebuild.as_ref().map(|(row, _)| row.saved());
        let mut clear_rebuild = saved_rebuild.is_some();
        let mut rebuild = None;
        if let Some((row, parked)) = saved_rebuild
            && row.version == version
            && let Ok(model) = proto.restore(&row.state)
        {
            rebuild = Some(Instance::loaded(self.attached(model)?, row, parked));
            clear_rebuild = false;
        }
        if rebuild.is_none() && (!live.readable || live.version != version) {
            tracing::info!(
                projection = name,
                stored = live.version,
                version,
                "rebuilding"
            );
            rebuild = Some(Instance::fresh(self.attached(proto.fresh())?));
        }
        let mut entry = Entry {
            live,
            rebuild,
            clear_rebuild,
            saved_live: saved,
            saved_rebuild: saved_rebuild_row,
        };
        if let Some(due) = self.history_due_of(proto.as_ref())? {
            for i in entry.instances_mut().filter(|i| i.version == version) {
                i.history_due = Some(due);
            }
        }
        self.entries.push(entry);
        self.publish();
        Ok(())
    }

    /// Whether the runner keeps a time index: some model keeps history.
    fn keeps_times(&self) -> bool {
        self.options.history_every > 0 && self.entries.iter().any(|e| e.live.model.keeps_history())
    }

    /// Starts building `name` afresh from position zero beside its live state (replacing any rebuild
    /// under way). The live state keeps serving until the fresh one has caught up.
    pub fn rebuild(&mut self, name: &str) -> Result<(), RunnerError> {
        let index = self
            .entries
            .iter()
            .position(|e| e.live.model.name() == name)
            .ok_or_else(|| RunnerError::Unknown(name.to_string()))?;
        let fresh = self.attached(self.entries[index].live.model.fresh())?;
        let due = self.history_due_of(fresh.as_ref())?;
        let entry = &mut self.entries[index];
        if entry.rebuild.is_some() {
            entry.clear_rebuild = true;
        }
        let mut instance = Instance::fresh(fresh);
        instance.history_due = due;
        entry.rebuild = Some(instance);
        Ok(())
    }

    /// When a fresh state of `model` takes its first history snapshot.
    fn history_due_of(&self, model: &dyn Projection) -> Result<Option<Position>, RunnerError> {
        if self.options.history_every == 0 || !model.keeps_history() {
            return Ok(None);
        }
        let last = self
            .checkpoints
            .with_conn(|c| crate::history::last_position(c, model.name(), model.version()))?;
        Ok(Some(Position(last.0 + self.options.history_every)))
    }

    /// The live state of `M`; `None` when `M` is not registered or its saved snapshot did not read
    /// and the rebuild has not replaced it yet.
    pub fn get<M: ReadModel>(&self) -> Option<&M> {
        self.entries
            .iter()
            .find(|e| e.live.model.name() == M::NAME && e.live.readable)
            .and_then(|e| downcast::<M>(e.live.model.as_ref()))
    }

    /// The position the live state of `M` reflects, when it serves reads.
    pub fn checkpoint_of<M: ReadModel>(&self) -> Option<Position> {
        self.entries
            .iter()
            .find(|e| e.live.model.name() == M::NAME && e.live.readable)
            .map(|e| e.live.checkpoint)
    }

    /// The lowest checkpoint of all states (live and rebuilding): where the next page starts.
    /// `None` when nothing is registered.
    pub fn low_water(&self) -> Option<Position> {
        let states = self
            .entries
            .iter()
            .flat_map(Entry::instances)
            .map(|i| i.checkpoint)
            .min()?;
        // The time index goes on from where it was saved (after an upgrade, from zero).
        Some(if self.keeps_times() {
            states.min(self.times.end)
        } else {
            states
        })
    }

    /// The lowest position the live states that serve reads reflect (for a table model, the last
    /// write of its tables): every read reflects at least this.
    pub fn live_checkpoint(&self) -> Position {
        self.entries
            .iter()
            .filter(|e| e.live.readable)
            .map(Entry::served)
            .min()
            .unwrap_or(self.head)
    }

    /// A receiver of [`Runner::live_checkpoint`], updated after every page (for read-your-writes).
    pub fn watch_live_checkpoint(&self) -> watch::Receiver<Position> {
        self.live_tx.subscribe()
    }

    /// The last head seen.
    pub fn head(&self) -> Position {
        self.head
    }

    /// Records the store's head (never moving it back) and whether its positions are consecutive,
    /// and sets the target of rebuilds that have none yet.
    pub fn note_head(&mut self, head: Position, backend: &str) {
        self.head = self.head.max(head);
        self.consecutive = backend == "sqlite";
        self.target_rebuilds();
    }

    /// Gives the rebuilds that have no target yet the last head seen.
    fn target_rebuilds(&mut self) {
        for e in &mut self.entries {
            if let Some(r) = &mut e.rebuild
                && r.target.is_none()
            {
                r.target = Some(self.head);
                r.dirty = true;
            }
        }
    }

    /// Whether the table models' rows applied since their last write should be written now:
    /// after a page shorter than the page size (the tail of the log), once every live state has
    /// reached the last head seen, and every [`RunnerOptions::table_batch`] events while catching
    /// up from further behind.
    pub fn tables_due(&self, short_page: bool) -> bool {
        short_page
            || self.since_tables >= self.options.table_batch
            || self
                .entries
                .iter()
                .filter(|e| e.live.readable)
                .all(|e| e.live.checkpoint >= self.head)
    }

    /// Whether any state changed since the last save.
    pub fn is_dirty(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.clear_rebuild || e.instances().any(|i| i.dirty))
    }

    /// Applies one page read with `read_all(after, Filter::All, …)`. A state takes the events above
    /// its checkpoint, and only if its checkpoint is at or above `after` (so a page read before a
    /// rebuild started never skips events for it). Saves every `save_every` events and switches
    /// rebuilds that have caught up.
    pub fn apply_page(
        &mut self,
        after: Position,
        page: &[RecordedEvent],
    ) -> Result<(), RunnerError> {
        self.apply_chunks(after, page, true)?;
        // Table models serve from their committed tables: write what the pages changed (at the
        // tail, now), so that the checkpoint published below is what readers of the tables see.
        if self.tables_due(page.len() < self.options.page_size) {
            self.save_now(SaveScope::Tables)?;
        }
        self.check_switches()?;
        self.publish();
        Ok(())
    }

    /// [`Runner::apply_page`] without any save, switch or publication: a runner behind a lock
    /// applies a page under the write lock, then writes it under a read lock
    /// ([`Runner::prepare_save`], [`Runner::write_save`]), then records it
    /// ([`Runner::finish_save`], which publishes) and switches rebuilds
    /// ([`Runner::check_switches`]) under the write lock again ([`crate::follow`]).
    pub fn apply_page_unsaved(
        &mut self,
        after: Position,
        page: &[RecordedEvent],
    ) -> Result<(), RunnerError> {
        self.apply_chunks(after, page, false)
    }

    /// Applies a page chunk by chunk (a chunk ends at every `save_every` events); saves at the end
    /// of each chunk that completes `save_every` when `saving`.
    fn apply_chunks(
        &mut self,
        after: Position,
        page: &[RecordedEvent],
        saving: bool,
    ) -> Result<(), RunnerError> {
        let Some(last) = page.last().map(|e| e.meta.position) else {
            return Ok(());
        };
        if page
            .iter()
            .any(|e| e.meta.event_type == funnel_domain::erasure::SUBJECT_ERASED)
        {
            self.scrub.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let needed = self
            .entries
            .iter_mut()
            .flat_map(Entry::instances_mut)
            .any(|i| i.checkpoint >= after && i.checkpoint < last);
        // Decode each event once, the two halves of the page at the same time.
        let decoded = if needed {
            decode_page(page)
        } else {
            Vec::new()
        };
        let mut start = 0;
        while start < page.len() {
            // Apply up to the next save point, so saves fall every `save_every` events (the whole
            // page when the caller saves).
            let room = if saving {
                self.options
                    .save_every
                    .saturating_sub(self.since_save)
                    .max(1)
            } else {
                u64::MAX
            };
            let end = start
                + usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .min(page.len() - start);
            let chunk = &page[start..end];
            let chunk_last = chunk[chunk.len() - 1].meta.position;
            if needed {
                let decoded = &decoded[start..end];
                let mut instances: Vec<&mut Instance> = self
                    .entries
                    .iter_mut()
                    .flat_map(Entry::instances_mut)
                    .filter(|i| i.checkpoint >= after && i.checkpoint < chunk_last)
                    .collect();
                // The states are independent: each applies the chunk on its own thread, while the
                // store reads the next page.
                // No state may need this chunk (a page read before the states moved on).
                // Without saving, the history snapshot is taken by the save that follows
                // (`prepare_save`), beside the readers of a shared runner.
                if let Some((first, rest)) = instances.split_first_mut() {
                    std::thread::scope(|scope| {
                        for i in rest.iter_mut() {
                            scope.spawn(move || {
                                apply_to(i, chunk, decoded);
                                if saving {
                                    i.take_history(chunk_last);
                                }
                            });
                        }
                        apply_to(first, chunk, decoded);
                        if saving {
                            first.take_history(chunk_last);
                        }
                    });
                }
            }
            if self.keeps_times() {
                self.times.note(chunk);
                self.collect_history(&chunk[chunk.len() - 1]);
            }
            let last = &chunk[chunk.len() - 1].meta;
            self.last_applied = Some((last.position, last.event_id.to_string()));
            self.head = self.head.max(chunk_last);
            self.since_save += chunk.len() as u64;
            self.since_tables += chunk.len() as u64;
            if saving && self.since_save >= self.options.save_every {
                let reloads = self.reloads;
                self.save()?;
                // The states loaded again may be anywhere below this chunk: the rest of the page
                // would skip events for them. They go on from their checkpoints at the next page.
                if self.reloads != reloads {
                    break;
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Moves the history snapshots taken while applying the chunk ending at `last` to the ones to
    /// save, and ends the time index's span there so that it says exactly when their events
    /// occurred.
    fn collect_history(&mut self, last: &RecordedEvent) {
        let every = self.options.history_every;
        let mut taken = false;
        for e in &mut self.entries {
            for i in e.instances_mut() {
                let Some((position, state)) = i.history_taken.take() else {
                    continue;
                };
                i.history_due = Some(Position(position.0 + history_spacing(every, state.len())));
                self.history.push(HistoryRow {
                    name: i.model.name().to_string(),
                    version: i.version,
                    position,
                    event_id: last.meta.event_id.to_string(),
                    state,
                });
                taken = true;
            }
        }
        if taken {
            self.times.close();
        }
    }

    /// Replaces live states by rebuilds that have reached their target (and the live checkpoint), in
    /// one transaction per projection.
    pub fn check_switches(&mut self) -> Result<(), RunnerError> {
        for n in 0..self.entries.len() {
            let e = &mut self.entries[n];
            let ready = e.rebuild.as_ref().is_some_and(|r| {
                r.target.is_some_and(|t| r.checkpoint >= t)
                    && (!e.live.readable || r.checkpoint >= e.live.checkpoint)
            });
            if !ready {
                continue;
            }
            let Some(mut fresh) = e.rebuild.take() else {
                continue;
            };
            fresh.target = None;
            let name = fresh.model.name().to_string();
            let forget = fresh.model.keeps_history().then(|| Write::ForgetHistory {
                name: name.clone(),
                keep: fresh.version,
            });
            let writes = [
                e.expect(Slot::Live),
                e.expect(Slot::Rebuild),
                Write::Clear {
                    name: name.clone(),
                    slot: Slot::Live,
                },
                Write::Clear {
                    name: name.clone(),
                    slot: Slot::Rebuild,
                },
                Write::Put {
                    row: fresh.row(Slot::Live)?,
                    parked: fresh.parked.clone(),
                },
            ]
            .into_iter()
            .chain(forget)
            .collect::<Vec<_>>();
            match self
                .checkpoints
                .commit_with(&writes, |tx| fresh.model.write_tables(tx))
            {
                Err(err) => {
                    self.entries[n].rebuild = Some(fresh);
                    return Err(err.into());
                }
                Ok(Committed::Superseded { name, slot }) => {
                    self.entries[n].rebuild = Some(fresh);
                    return self.reload(&name, slot);
                }
                Ok(Committed::Done) => {}
            }
            fresh.model.tables_written();
            tracing::info!(projection = %name, checkpoint = %fresh.checkpoint, "rebuild switched in");
            fresh.saved_parked = fresh.parked.len();
            fresh.dirty = false;
            fresh.events_done = 0;
            let e = &mut self.entries[n];
            e.saved_live = Some(fresh.saved());
            e.saved_rebuild = None;
            e.live = fresh;
            e.clear_rebuild = false;
        }
        self.publish();
        Ok(())
    }

    /// Writes the snapshots and checkpoints (and the tables of table models) of every changed
    /// state in one transaction.
    pub fn save(&mut self) -> Result<(), RunnerError> {
        self.save_now(SaveScope::Everything)
    }

    /// Whether a save of every changed state is due while following: `save_every` events since
    /// the last one (during a long catch-up).
    pub fn save_due(&self) -> bool {
        self.since_save >= self.options.save_every
    }

    /// Prepares, writes and records a save at once ([`Runner::prepare_save`]).
    fn save_now(&mut self, scope: SaveScope) -> Result<(), RunnerError> {
        let Some(save) = self.prepare_save(scope)? else {
            // Nothing changed: the next save of everything is `save_every` events away all the
            // same.
            if scope == SaveScope::Everything {
                self.since_save = 0;
            }
            return Ok(());
        };
        let committed = self.write_save(&save);
        self.finish_save(save, committed)
    }

    /// Makes the rows of a save of every changed state (or only of the table models, whose
    /// tables serve reads and are written after every page at the tail) from a shared borrow, so
    /// that a runner behind a lock can be serialised and written under a read lock while readers
    /// go on ([`crate::follow`]). `None` when there is nothing to save. Write it with
    /// [`Runner::write_save`] and record it with [`Runner::finish_save`]; nothing may be applied
    /// in between.
    pub fn prepare_save(&self, scope: SaveScope) -> Result<Option<PreparedSave>, RunnerError> {
        match scope {
            SaveScope::Everything => self.prepare_matching(|_| true, scope),
            SaveScope::Tables => self.prepare_matching(|i| i.model.tables().is_some(), scope),
            SaveScope::History => self.prepare_matching(|_| false, scope),
        }
    }

    /// Whether a history snapshot is due with the states exactly where they are. A runner
    /// applying pages without saving takes it with a save of its own ([`SaveScope::History`]),
    /// so that during a long catch-up snapshots still fall every `history_every` events (the gap
    /// an as-of replay reads), not only at its saves of everything.
    pub fn history_due(&self) -> bool {
        let Some((at, _)) = &self.last_applied else {
            return false;
        };
        self.entries
            .iter()
            .flat_map(Entry::instances)
            .any(|i| i.readable && i.history_is_due(*at))
    }

    fn prepare_matching(
        &self,
        which: impl Fn(&Instance) -> bool,
        scope: SaveScope,
    ) -> Result<Option<PreparedSave>, RunnerError> {
        let mut writes = Vec::new();
        let mut saved = Vec::new();
        let mut cleared: Vec<usize> = Vec::new();
        for (n, e) in self.entries.iter().enumerate() {
            let selected = |i: &&Instance| i.readable && which(i);
            // A stale rebuild slot goes with the save of the projection's rebuild (before the new
            // one's row), or with the projection's live state when no rebuild is under way.
            let clear = e.clear_rebuild
                && match &e.rebuild {
                    Some(r) => selected(&r),
                    None => which(&e.live),
                };
            if clear {
                writes.push(e.expect(Slot::Rebuild));
                writes.push(Write::Clear {
                    name: e.live.model.name().to_string(),
                    slot: Slot::Rebuild,
                });
                cleared.push(n);
            }
            for (i, slot) in [
                (Some(&e.live), Slot::Live),
                (e.rebuild.as_ref(), Slot::Rebuild),
            ] {
                let Some(i) = i.filter(|i| i.dirty).filter(selected) else {
                    continue;
                };
                // A cleared slot was expected before its clear.
                if !(clear && slot == Slot::Rebuild) {
                    writes.push(e.expect(slot));
                }
                writes.push(Write::Put {
                    row: i.row(slot)?,
                    parked: i.parked[i.saved_parked..].to_vec(),
                });
                saved.push(SavedState {
                    entry: n,
                    slot,
                    checkpoint: i.checkpoint,
                    parked: i.parked.len(),
                });
            }
        }
        // History snapshots due at the last event applied (a runner applying pages without
        // saving takes them here, outside its write lock).
        let mut history_now = Vec::new();
        if let Some((at, event_id)) = &self.last_applied {
            for (n, e) in self.entries.iter().enumerate() {
                for (i, slot) in [
                    (Some(&e.live), Slot::Live),
                    (e.rebuild.as_ref(), Slot::Rebuild),
                ] {
                    let Some(i) = i.filter(|i| i.readable && i.history_is_due(*at)) else {
                        continue;
                    };
                    match i.model.snapshot() {
                        Ok(state) => {
                            let state = crate::history::pack(&state);
                            history_now.push((n, slot, *at, state.len()));
                            writes.push(Write::History(HistoryRow {
                                name: i.model.name().to_string(),
                                version: i.version,
                                position: *at,
                                event_id: event_id.clone(),
                                state,
                            }));
                        }
                        Err(reason) => {
                            tracing::warn!(projection = i.model.name(), %reason, "no history snapshot")
                        }
                    }
                }
            }
        }
        if writes.is_empty() && self.history.is_empty() {
            return Ok(None);
        }
        // The time index and the history snapshots go with any save (kept if it fails).
        let spans = self.times.unsaved();
        let spans_closed = self.times.closed();
        if !spans.is_empty() {
            writes.push(Write::Spans(spans));
        }
        writes.extend(self.history.iter().cloned().map(Write::History));
        Ok(Some(PreparedSave {
            writes,
            saved,
            cleared,
            history: self.history.len(),
            history_now,
            spans_closed,
            scope,
        }))
    }

    /// Writes a prepared save in one transaction (with the pending rows of its table models).
    pub fn write_save(&self, save: &PreparedSave) -> Result<Committed, RunnerError> {
        let mut states = Vec::new();
        for s in &save.saved {
            let e = &self.entries[s.entry];
            let i = match s.slot {
                Slot::Live => Some(&e.live),
                Slot::Rebuild => e.rebuild.as_ref(),
            };
            // Tables written beyond (or short of) the checkpoint saved beside them would be
            // applied again, or skipped, after a restart.
            match i.filter(|i| i.checkpoint == s.checkpoint) {
                Some(i) => states.push(i),
                None => return Err(RunnerError::StaleSave(e.live.model.name())),
            }
        }
        let committed = self.checkpoints.commit_with(&save.writes, |tx| {
            for i in &states {
                i.model.write_tables(tx)?;
            }
            Ok(())
        })?;
        if self.scrub.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.checkpoints.scrub();
        }
        Ok(committed)
    }

    /// Records a save written by [`Runner::write_save`]: the states it saved are clean, or, when
    /// another runner had saved first, the saved states are loaded again.
    pub fn finish_save(
        &mut self,
        save: PreparedSave,
        committed: Result<Committed, RunnerError>,
    ) -> Result<(), RunnerError> {
        match committed? {
            Committed::Superseded { name, slot } => return self.reload(&name, slot),
            Committed::Done => {}
        }
        self.times.saved_first(save.spans_closed);
        self.history.drain(..save.history.min(self.history.len()));
        if !save.history_now.is_empty() {
            for (n, slot, at, size) in &save.history_now {
                let e = &mut self.entries[*n];
                let i = match slot {
                    Slot::Live => Some(&mut e.live),
                    Slot::Rebuild => e.rebuild.as_mut(),
                };
                if let Some(i) = i {
                    i.history_due = Some(Position(
                        at.0 + history_spacing(self.options.history_every, *size),
                    ));
                }
            }
            // The spans before the snapshot say exactly when its events occurred.
            self.times.close();
        }
        for n in save.cleared {
            let e = &mut self.entries[n];
            e.clear_rebuild = false;
            e.saved_rebuild = None;
        }
        for s in save.saved {
            let e = &mut self.entries[s.entry];
            let i = match s.slot {
                Slot::Live => Some(&mut e.live),
                Slot::Rebuild => e.rebuild.as_mut(),
            };
            // The state saved is the one here (nothing was applied in between).
            if let Some(i) = i.filter(|i| i.checkpoint == s.checkpoint) {
                i.model.tables_written();
                i.dirty = false;
                i.saved_parked = s.parked;
                let saved = i.saved();
                *e.saved_mut(s.slot) = Some(saved);
            }
        }
        if save.scope == SaveScope::Everything {
            self.since_save = 0;
        }
        // Every save but a history snapshot's writes the rows of every table model that changed.
        if save.scope != SaveScope::History {
            self.since_tables = 0;
        }
        self.publish();
        Ok(())
    }

    /// Loads every saved state (and the time index) again, after another runner on the same file
    /// saved the slot `slot` of `name` since this one last did: what this runner applied since
    /// its last save is dropped, and it goes on from the saved checkpoints. A rebuild asked for
    /// here and never saved is asked for again.
    fn reload(&mut self, name: &str, slot: Slot) -> Result<(), RunnerError> {
        tracing::info!(
            projection = name,
            slot = ?slot,
            "another process saved this state since; loading the saved states"
        );
        let models: Vec<(Box<dyn Projection>, bool)> = self
            .entries
            .iter()
            .map(|e| {
                let asked = e.rebuild.is_some() && e.saved_rebuild.is_none();
                (e.live.model.fresh(), asked)
            })
            .collect();
        self.entries.clear();
        self.reloads += 1;
        self.times = self.checkpoints.with_conn(TimeIndex::load)?;
        self.history.clear();
        self.since_save = 0;
        self.since_tables = 0;
        for (model, asked) in models {
            let name = model.name();
            self.add(model)?;
            if asked && self.entries.last().is_some_and(|e| e.rebuild.is_none()) {
                self.rebuild(name)?;
            }
        }
        self.target_rebuilds();
        Ok(())
    }

    /// Reads and applies one page from the lowest checkpoint. Returns the number of events read
    /// (zero when every state is at the head).
    pub async fn step(&mut self, store: &dyn EventStore) -> Result<usize, RunnerError> {
        let head = store.head().await?;
        self.note_head(head, store.backend());
        let Some(after) = self.low_water() else {
            return Ok(0);
        };
        let page = store
            .read_all(after, &Filter::All, self.options.page_size)
            .await?;
        self.apply_page(after, &page)?;
        Ok(page.len())
    }

    /// Applies everything up to the head seen at the start, then saves. Calls `progress` after every
    /// page. Returns the lowest checkpoint reached.
    pub async fn catch_up(
        &mut self,
        store: &dyn EventStore,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<Position, RunnerError> {
        let head = store.head().await?;
        self.note_head(head, store.backend());
        let mut events = 0u64;
        let size = self.options.page_size;
        let mut next: Option<(Position, Vec<RecordedEvent>)> = None;
        while let Some(after) = self.low_water().filter(|a| *a < head) {
            // Use the page read ahead while the previous one was applied, if it starts here.
            let page = match next.take() {
                Some((start, page)) if start == after => page,
                _ => store.read_all(after, &Filter::All, size).await?,
            };
            let Some(last) = page.last().map(|e| e.meta.position) else {
                break;
            };
            events += page.len() as u64;
            // Read the next page while this one is applied: the store works on its own threads (or
            // the network), so reading and applying overlap.
            let (ahead, applied) = if last < head {
                let (ahead, applied) =
                    tokio::join!(store.read_all(last, &Filter::All, size), async {
                        self.apply_page(after, &page)
                    });
                (Some(ahead), applied)
            } else {
                (None, self.apply_page(after, &page))
            };
            applied?;
            if let Some(ahead) = ahead {
                next = Some((last, ahead?));
            }
            progress(&self.progress(events));
        }
        self.check_switches()?;
        self.save()?;
        Ok(self.low_water().unwrap_or(head))
    }

    /// Catches up until every live state is at or beyond `position` (read-your-writes), waiting for
    /// appends when the store is not there yet; [`RunnerError::Timeout`] after `timeout`.
    pub async fn wait_until(
        &mut self,
        store: &dyn EventStore,
        position: Position,
        timeout: Duration,
    ) -> Result<(), RunnerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.live_checkpoint() >= position {
                return Ok(());
            }
            self.catch_up(store, &mut |_| {}).await?;
            if self.live_checkpoint() >= position {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(RunnerError::Timeout {
                    position,
                    checkpoint: self.live_checkpoint(),
                });
            }
            let after = self.low_water().unwrap_or(self.head);
            store.wait_for_append(after, left).await?;
        }
    }

    /// A progress report with `events` read so far.
    pub fn progress(&self, events: u64) -> Progress {
        Progress {
            events,
            position: self.low_water().unwrap_or(self.head),
            head: self.head,
            rebuilds: self.entries.iter().filter_map(rebuild_progress).collect(),
        }
    }

    /// The state of every projection, against the last head seen.
    pub fn status(&self) -> Vec<ProjectionStatus> {
        self.entries
            .iter()
            .map(|e| {
                let live = &e.live;
                // What its readers see: a table model's rows applied since its last write are not
                // served yet.
                let checkpoint = e.served();
                let lag = self.head.0.saturating_sub(checkpoint.0);
                let state = if e.rebuild.is_some() || !live.readable {
                    ProjectionState::Rebuilding
                } else if lag == 0 {
                    ProjectionState::Live
                } else {
                    ProjectionState::CatchingUp
                };
                ProjectionStatus {
                    name: live.model.name(),
                    version: live.model.version(),
                    stored_version: live.version,
                    checkpoint,
                    head: self.head,
                    lag,
                    lag_events: (lag == 0 || self.consecutive).then_some(lag),
                    parked: live.parked.clone(),
                    state,
                    readable: live.readable,
                    rebuild: rebuild_progress(e),
                }
            })
            .collect()
    }

    fn publish(&self) {
        let p = self.live_checkpoint();
        self.live_tx.send_if_modified(|old| {
            let changed = *old != p;
            *old = p;
            changed
        });
    }
}

fn rebuild_progress(e: &Entry) -> Option<RebuildProgress> {
    e.rebuild.as_ref().map(|r| RebuildProgress {
        name: r.model.name(),
        events_done: r.events_done,
        checkpoint: r.checkpoint,
        target: r.target,
    })
}
