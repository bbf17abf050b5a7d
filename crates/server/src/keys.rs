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

/// What [`KeyLedger::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now held for this command: release it if nothing is recorded.
    New,
    /// The key already stands for this same command (a retry, or the same request in flight).
    Same,
}

impl KeyLedger {
    /// Claims `key` for `command` before it runs, under one lock: a key that stands for another
    /// command (recorded, or another request under the same key still in flight) is refused with
    /// that command, so two concurrent requests with one key and different bodies cannot both run.
    pub fn claim(&self, key: uuid::Uuid, command: CommandId) -> Result<Claim, CommandId> {
        let mut ledger = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match ledger.commands.get(&key) {
            Some(c) if *c == command => return Ok(Claim::Same),
            Some(c) => return Err(*c),
            None => {}
        }
        if ledger.order.len() >= CAPACITY
            && let Some(oldest) = ledger.order.pop_front()
        {
            ledger.commands.remove(&oldest);
        }
        ledger.commands.insert(key, command);
        ledger.order.push_back(key);
        Ok(Claim::New)
    }

    /// Frees a key claimed for `command` whose request recorded nothing (a bad body, a refusal not
    /// on record, a failure), so the caller may use it again for another request.
    pub fn release(&self, key: uuid::Uuid, command: CommandId) {
        let mut ledger = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if ledger.commands.get(&key) == Some(&command) {
            ledger.commands.remove(&key);
            ledger.order.retain(|k| *k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_answers_for_its_first_command_and_the_oldest_is_forgotten_first() {
        let ledger = KeyLedger::default();
        let (k, a, b) = (uuid::Uuid::now_v7(), CommandId::new(), CommandId::new());
        assert_eq!(ledger.claim(k, a), Ok(Claim::New));
        assert_eq!(ledger.claim(k, a), Ok(Claim::Same));
        // Another request under the key is refused while the first is in flight and after it.
        assert_eq!(ledger.claim(k, b), Err(a));
        for _ in 0..CAPACITY {
            ledger
                .claim(uuid::Uuid::now_v7(), CommandId::new())
                .unwrap();
        }
        assert_eq!(
            ledger.claim(k, b),
            Ok(Claim::New),
            "forgotten after CAPACITY newer keys"
        );
    }

    #[test]
    fn a_key_whose_request_recorded_nothing_is_free_again() {
        let ledger = KeyLedger::default();
        let (k, a, b) = (uuid::Uuid::now_v7(), CommandId::new(), CommandId::new());
        assert_eq!(ledger.claim(k, a), Ok(Claim::New));
        ledger.release(k, b);
        assert_eq!(
            ledger.claim(k, b),
            Err(a),
            "only its own command releases it"
        );
        ledger.release(k, a);
        assert_eq!(ledger.claim(k, b), Ok(Claim::New));
    }
}
