//! The command index of one stream: which command ids its events carry, by whom, at which
//! versions, and under which caller keys (correlation ids). It answers what the engine asks before
//! deciding ("was this command applied here, is its id another actor's, was this key used for
//! another command") without reading the stream, and travels in the stream's snapshot.
//!
//! It holds one entry per command (16-byte id, first and last version, an actor number, a flag)
//! and one per caller key that is not its command's own id: compact, but it grows with the
//! commands of the stream. Funnel writes every command as one contiguous append by one actor;
//! a stream that breaks that (a command id on two separate appends, or two actors in one command;
//! only a hand-made import could) is marked `irregular`, and the engine then answers from a scan
//! of the whole stream ([`scan_earlier`]), exactly as before the index existed.

use funnel_types::{Actor, CommandId, Metadata, StaffId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// Who an event is by, as far as "the same actor" goes: a member of staff whatever their role
/// then, or a named system component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum ActorKey {
    Staff(StaffId),
    System(String),
}

impl ActorKey {
    pub fn of(actor: &Actor) -> Self {
        match actor {
            Actor::Staff { id, .. } => ActorKey::Staff(*id),
            Actor::System { name } => ActorKey::System(name.clone()),
        }
    }
}

/// The versions and actor of one command on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub first: u64,
    pub last: u64,
    actor: u32,
    /// Some event of the command has the command id as its correlation id.
    self_keyed: bool,
}

/// What the stream already says about a command (see `Engine::execute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Earlier {
    /// Applied before by the same actor: its events are these versions.
    Duplicate { first: u64, last: u64 },
    /// Refused before by the same actor, with the refusal's record at this version.
    Refused { version: u64 },
    /// The command id (or its refusal record's) is another actor's.
    Taken,
    /// The actor's key already applied this other command here.
    KeyReused(CommandId),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommandIndex {
    actors: Vec<ActorKey>,
    commands: HashMap<Uuid, Entry>,
    /// Caller key (correlation id) → (actor, command) for events whose correlation id is not their
    /// command id, in the order the commands first appear.
    keys: HashMap<Uuid, Vec<(u32, Uuid)>>,
    last_command: Option<Uuid>,
    pub irregular: bool,
}

impl CommandIndex {
    /// Commands indexed (a measure of the index's size).
    pub fn len(&self) -> usize {
        self.commands.len() + self.keys.len()
    }

    fn actor_number(&mut self, actor: &Actor) -> u32 {
        let key = ActorKey::of(actor);
        match self.actors.iter().position(|a| *a == key) {
            Some(i) => i as u32,
            None => {
                self.actors.push(key);
                (self.actors.len() - 1) as u32
            }
        }
    }

    fn find_actor(&self, actor: &Actor) -> Option<u32> {
        let key = ActorKey::of(actor);
        self.actors.iter().position(|a| *a == key).map(|i| i as u32)
    }

    /// Adds the next event of the stream (events must come in version order).
    pub fn apply(&mut self, meta: &Metadata) {
        let command = meta.command_id.0;
        let version = meta.version.0;
        let actor = self.actor_number(&meta.actor);
        let continues = self.last_command == Some(command);
        match self.commands.get_mut(&command) {
            Some(entry) => {
                if !continues || entry.last + 1 != version || entry.actor != actor {
                    self.irregular = true;
                }
                entry.last = entry.last.max(version);
            }
            None => {
                self.commands.insert(
                    command,
                    Entry {
                        first: version,
                        last: version,
                        actor,
                        self_keyed: false,
                    },
                );
            }
        }
        let correlation = meta.correlation_id.0;
        if correlation == command {
            if let Some(entry) = self.commands.get_mut(&command) {
                entry.self_keyed = true;
            }
        } else {
            let users = self.keys.entry(correlation).or_default();
            if !users.contains(&(actor, command)) {
                users.push((actor, command));
            }
        }
        self.last_command = Some(command);
    }

    /// What the stream says about `command` sent by `actor` under `key` (its refusal record would
    /// carry `record`), or `None`: decide it. Only for a regular index.
    pub fn earlier(
        &self,
        command: CommandId,
        record: CommandId,
        actor: &Actor,
        key: Option<Uuid>,
    ) -> Option<Earlier> {
        let me = self.find_actor(actor);
        if let Some(entry) = self.commands.get(&command.0) {
            return Some(if Some(entry.actor) == me {
                Earlier::Duplicate {
                    first: entry.first,
                    last: entry.last,
                }
            } else {
                Earlier::Taken
            });
        }
        if let Some(entry) = self.commands.get(&record.0) {
            return Some(if Some(entry.actor) == me {
                Earlier::Refused {
                    version: entry.last,
                }
            } else {
                Earlier::Taken
            });
        }
        let (key, me) = (key?, me?);
        let other = |c: &Uuid| *c != command.0 && *c != record.0;
        let mut found: Option<(u64, Uuid)> = None;
        let mut consider = |c: Uuid| {
            if let Some(entry) = self.commands.get(&c)
                && found.is_none_or(|(first, _)| entry.first < first)
            {
                found = Some((entry.first, c));
            }
        };
        for (a, c) in self.keys.get(&key).into_iter().flatten() {
            if *a == me && other(c) {
                consider(*c);
            }
        }
        if let Some(entry) = self.commands.get(&key)
            && entry.self_keyed
            && entry.actor == me
            && other(&key)
        {
            consider(key);
        }
        found.map(|(_, c)| Earlier::KeyReused(CommandId(c)))
    }
}

/// Whether two records name the same actor: the same member of staff (whatever their role then),
/// or the same system component.
pub(crate) fn same_actor(a: &Actor, b: &Actor) -> bool {
    ActorKey::of(a) == ActorKey::of(b)
}

/// [`CommandIndex::earlier`] by a scan of every event of the stream: the definition the index
/// follows, and the answer for an irregular stream.
pub(crate) fn scan_earlier(
    events: &[&Metadata],
    command: CommandId,
    record: CommandId,
    actor: &Actor,
    key: Option<Uuid>,
) -> Option<Earlier> {
    let of = |id: CommandId| events.iter().filter(move |m| m.command_id == id);
    if let Some(last) = of(command).next_back() {
        if !of(command).all(|m| same_actor(&m.actor, actor)) {
            return Some(Earlier::Taken);
        }
        let first = of(command).next().map_or(last.version.0, |m| m.version.0);
        return Some(Earlier::Duplicate {
            first,
            last: last.version.0,
        });
    }
    if let Some(prior) = of(record).next_back() {
        if !same_actor(&prior.actor, actor) {
            return Some(Earlier::Taken);
        }
        return Some(Earlier::Refused {
            version: prior.version.0,
        });
    }
    let key = key?;
    events
        .iter()
        .find(|m| {
            m.correlation_id.0 == key
                && same_actor(&m.actor, actor)
                && m.command_id != command
                && m.command_id != record
        })
        .map(|m| Earlier::KeyReused(m.command_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use funnel_types::{CorrelationId, EventId, Position, Role, StreamId, Version};

    /// A small deterministic generator (no dependency for one test).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn ids(n: usize, seed: &str) -> Vec<Uuid> {
        (0..n)
            .map(|i| Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{seed}{i}").as_bytes()))
            .collect()
    }

    /// Random regular streams (commands of one to three events by one of four actors, with or
    /// without keys from a small pool, keys that are other commands' ids included): the index
    /// answers every question exactly as the scan does.
    #[test]
    fn the_index_answers_as_a_scan_of_the_stream() {
        let commands = ids(12, "c");
        let keys = ids(4, "k");
        let actors = [
            Actor::staff(StaffId::derived("a"), Role::SalesEngineer),
            Actor::staff(StaffId::derived("a"), Role::OfficeManager),
            Actor::staff(StaffId::derived("b"), Role::SalesEngineer),
            Actor::system("sagas"),
            Actor::system("bootstrap"),
        ];
        let stream = StreamId::parse("lead-x").expect("stream");
        for seed in 1..400u64 {
            let mut rng = Rng(seed * 7919);
            let mut metas: Vec<Metadata> = Vec::new();
            let mut index = CommandIndex::default();
            let mut used: Vec<Uuid> = Vec::new();
            for _ in 0..rng.below(14) {
                let fresh: Vec<&Uuid> = commands.iter().filter(|c| !used.contains(c)).collect();
                if fresh.is_empty() {
                    break;
                }
                let command = *fresh[rng.below(fresh.len() as u64) as usize];
                used.push(command);
                let actor = actors[rng.below(actors.len() as u64) as usize].clone();
                let correlation = match rng.below(4) {
                    0 => command,
                    1 => keys[rng.below(4) as usize],
                    2 => used[rng.below(used.len() as u64) as usize],
                    _ => commands[rng.below(12) as usize],
                };
                for _ in 0..=rng.below(3) {
                    let meta = Metadata {
                        event_id: EventId::new(),
                        event_type: "t.x".into(),
                        schema_version: 1,
                        stream: stream.clone(),
                        version: Version(metas.len() as u64 + 1),
                        position: Position(metas.len() as u64 + 1),
                        occurred_at: chrono::DateTime::UNIX_EPOCH,
                        recorded_at: chrono::DateTime::UNIX_EPOCH,
                        actor: actor.clone(),
                        office: None,
                        command_id: CommandId(command),
                        correlation_id: CorrelationId(correlation),
                        causation_id: command,
                    };
                    index.apply(&meta);
                    metas.push(meta);
                }
            }
            assert!(
                !index.irregular,
                "seed {seed}: a regular stream read as irregular"
            );
            let refs: Vec<&Metadata> = metas.iter().collect();
            for command in commands.iter().chain(&keys) {
                let record = CommandId::derived(&format!("{command}:refusal"));
                for actor in &actors {
                    for key in keys.iter().chain(&commands).map(|k| Some(*k)).chain([None]) {
                        let c = CommandId(*command);
                        assert_eq!(
                            index.earlier(c, record, actor, key),
                            scan_earlier(&refs, c, record, actor, key),
                            "seed {seed}: command {command}, actor {actor:?}, key {key:?}"
                        );
                    }
                }
            }
            // A refusal record stands for its command.
            if let Some(c) = used.first() {
                let record = CommandId(*c);
                let other = CommandId(Uuid::nil());
                assert_eq!(
                    index.earlier(other, record, &actors[0], None),
                    scan_earlier(&refs, other, record, &actors[0], None)
                );
            }
        }
    }

    #[test]
    fn a_command_split_over_two_appends_makes_the_stream_irregular() {
        let stream = StreamId::parse("lead-x").expect("stream");
        let meta = |v: u64, c: &str| Metadata {
            event_id: EventId::new(),
            event_type: "t.x".into(),
            schema_version: 1,
            stream: stream.clone(),
            version: Version(v),
            position: Position(v),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            recorded_at: chrono::DateTime::UNIX_EPOCH,
            actor: Actor::system("s"),
            office: None,
            command_id: CommandId::derived(c),
            correlation_id: CorrelationId(CommandId::derived(c).0),
            causation_id: Uuid::nil(),
        };
        let mut index = CommandIndex::default();
        index.apply(&meta(1, "a"));
        index.apply(&meta(2, "b"));
        assert!(!index.irregular);
        index.apply(&meta(3, "a"));
        assert!(index.irregular);
    }
}
