//! Aggregates kept in memory between commands: per stream, the folded state and command index with
//! the version (and the last event's position and id) they reflect. Bounded: least recently used
//! streams are dropped past a number of streams or of index entries in all.
//!
//! A slot is an async mutex, so the commands of one process on one stream take turns instead of
//! racing each other to the store; commands on other streams run in parallel.

use crate::aggregate::Folded;
use crate::index::CommandIndex;
use funnel_types::{EventId, Position, StreamId, Version};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A stream as folded up to `version`.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub folded: Folded,
    pub index: CommandIndex,
    /// `None`: the stream had no events.
    pub version: Option<Version>,
    pub last_position: Position,
    pub last_event_id: Option<EventId>,
    /// The version of the newest snapshot known to be kept (0: none) and its size.
    pub snapshot_version: u64,
    pub snapshot_bytes: usize,
    /// The ticket ([`Cache::ticket`]) taken just before the store was last asked for the stream's
    /// version (or events to its end): the state is current for every caller whose own ticket is
    /// older.
    pub checked: u64,
}

impl Cached {
    pub fn empty(stream: &StreamId) -> Self {
        Self {
            folded: Folded::empty(stream),
            index: CommandIndex::default(),
            version: None,
            last_position: Position::START,
            last_event_id: None,
            snapshot_version: 0,
            snapshot_bytes: 0,
            checked: 0,
        }
    }

    /// Folds the stream's next event in.
    pub fn apply(&mut self, env: &funnel_types::Envelope<funnel_domain::Event>) {
        self.folded.apply(&env.payload);
        self.index.apply(&env.meta);
        self.version = Some(env.meta.version);
        self.last_position = env.meta.position;
        self.last_event_id = Some(env.meta.event_id);
    }

    pub fn version_number(&self) -> u64 {
        self.version.map_or(0, |v| v.0)
    }
}

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Sizes of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Streams kept (0: nothing is kept; every command reads its stream's snapshot and tail).
    pub streams: usize,
    /// Command index entries kept in all (an entry is about 60 bytes in memory).
    pub index_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            streams: 4096,
            index_entries: 2_000_000,
        }
    }
}

struct Entry {
    slot: Slot,
    tick: u64,
    weight: usize,
}

#[derive(Default)]
struct Lru {
    map: HashMap<StreamId, Entry>,
    order: BTreeMap<u64, StreamId>,
    tick: u64,
    weight: usize,
}

pub(crate) struct Cache {
    limits: CacheLimits,
    lru: Mutex<Lru>,
    tickets: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            lru: Mutex::new(Lru::default()),
            tickets: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A number larger than every one handed out before. A caller takes one when it arrives; a
    /// read of the store issued later (a larger ticket) answers for it too, so callers waiting for
    /// one stream share one read instead of queueing for one each.
    pub fn ticket(&self) -> u64 {
        self.tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    /// The slot of `stream`, marked as used now.
    pub fn slot(&self, stream: &StreamId) -> Slot {
        if self.limits.streams == 0 {
            return Slot::default();
        }
        let mut lru = self.lru.lock().unwrap_or_else(|e| e.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        let slot = match lru.map.get_mut(stream) {
            Some(entry) => {
                let old = std::mem::replace(&mut entry.tick, tick);
                let slot = entry.slot.clone();
                lru.order.remove(&old);
                slot
            }
            None => {
                let slot = Slot::default();
                lru.map.insert(
                    stream.clone(),
                    Entry {
                        slot: slot.clone(),
                        tick,
                        weight: 1,
                    },
                );
                lru.weight += 1;
                slot
            }
        };
        lru.order.insert(tick, stream.clone());
        self.evict(&mut lru);
        slot
    }

    /// Records how much of the budget `stream`'s entry now takes.
    pub fn weigh(&self, stream: &StreamId, cached: Option<&Cached>) {
        if self.limits.streams == 0 {
            return;
        }
        let weight = 1 + cached.map_or(0, |c| c.index.len());
        let mut lru = self.lru.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = lru.map.get_mut(stream) else {
            return;
        };
        let old = std::mem::replace(&mut entry.weight, weight);
        lru.weight = lru.weight + weight - old;
        self.evict(&mut lru);
    }

    /// Drops least recently used streams until the cache is within its limits (the most recent
    /// one stays). A slot in use stays valid for its holder; the next command starts a new one.
    fn evict(&self, lru: &mut Lru) {
        while lru.map.len() > 1
            && (lru.map.len() > self.limits.streams || lru.weight > self.limits.index_entries)
        {
            let Some((_, stream)) = lru.order.pop_first() else {
                break;
            };
            if let Some(entry) = lru.map.remove(&stream) {
                lru.weight -= entry.weight;
            }
        }
    }

    /// Drops `stream`'s entry (a holder of its slot keeps it; the next command folds again).
    pub fn forget(&self, stream: &StreamId) {
        let mut lru = self.lru.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = lru.map.remove(stream) {
            lru.weight -= entry.weight;
            lru.order.remove(&entry.tick);
        }
    }

    /// Streams kept now.
    pub fn len(&self) -> usize {
        self.lru.lock().unwrap_or_else(|e| e.into_inner()).map.len()
    }
}
