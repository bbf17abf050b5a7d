//! The key ledger: which command each recently used `Idempotency-Key` ran, so that a key reused
//! for a different request is refused even when that request targets another aggregate (e.g.
//! `POST /leads` for another customer), where the engine, which looks only into the target's
//! stream, cannot see the first use. It lives in memory and holds the last `CAPACITY` keys of this
//! process; beyond it a reused key with another request runs as a new command (its command id
//! differs, so it never gets the other request's answer).

use funnel_types::CommandId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many keys the ledger remembers (oldest forgotten first; about 5 MiB).
pub const CAPACITY: usize = 65_536;

#[derive(Debug, Default)]
pub struct KeyLedger {
    inner: Mutex<Ledger>,
}

#[derive(Debug, Default)]
struct Ledger {
    commands: HashMap<uuid::Uuid, CommandId>,
    order: VecDeque<uuid::Uuid>,
}

impl KeyLedger {
    /// The command an earlier request under `key` ran, when it was not `command`.
    pub fn other_command(&self, key: uuid::Uuid, command: CommandId) -> Option<CommandId> {
        let ledger = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        ledger.commands.get(&key).copied().filter(|c| *c != command)
    }

    /// Remembers that `key` ran `command` (the first command a key ran stays).
    pub fn remember(&self, key: uuid::Uuid, command: CommandId) {
        let mut ledger = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if ledger.commands.contains_key(&key) {
            return;
        }
        if ledger.order.len() >= CAPACITY
            && let Some(oldest) = ledger.order.pop_front()
        {
            ledger.commands.remove(&oldest);
        }
        ledger.commands.insert(key, command);
        ledger.order.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_answers_for_its_first_command_and_the_oldest_is_forgotten_first() {
        let ledger = KeyLedger::default();
        let (k, a, b) = (uuid::Uuid::now_v7(), CommandId::new(), CommandId::new());
        assert_eq!(ledger.other_command(k, a), None);
        ledger.remember(k, a);
        assert_eq!(ledger.other_command(k, a), None);
        assert_eq!(ledger.other_command(k, b), Some(a));
        ledger.remember(k, b);
        assert_eq!(ledger.other_command(k, b), Some(a));
        for _ in 0..CAPACITY {
            ledger.remember(uuid::Uuid::now_v7(), CommandId::new());
        }
        assert_eq!(
            ledger.other_command(k, b),
            None,
            "forgotten after CAPACITY newer keys"
        );
    }
}
