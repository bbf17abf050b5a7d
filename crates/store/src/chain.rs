//! Tamper evidence: every commit of the log carries a hash chained to the previous commit's.
//!
//! A commit is one append: the events one command wrote, at consecutive positions. Its hash is
//! SHA-256 over a domain tag, the previous commit's hash, and every field of every event as the
//! store keeps it (each one length-prefixed, so no two different commits encode alike). Changing,
//! removing, reordering or inserting an event changes the hash of its commit and, through the
//! chain, of every commit after it; [`Verifier`] walks the log and the recorded hashes and names
//! the first position where they disagree.
//!
//! What the chain alone does not prove: someone who can write the store can also rewrite every
//! hash after the event they changed. Signed checkpoints of the chain's head, kept where the log's
//! writers cannot rewrite them ([`crate::checkpoint`]), close that gap up to the last one; without
//! them, `verify` shows that the log is consistent with itself, not that it is the log that was
//! written.

use crate::checkpoint::Witnessed;
use funnel_types::Position;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Hash of one commit (and, through the chain, of every commit before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// What the first commit of a chain follows.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From the 32 bytes a store keeps; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<ChainHash> {
        <[u8; 32]>::try_from(bytes).ok().map(ChainHash)
    }
}

impl std::fmt::Display for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The tag every commit's hash starts with: the format of the chain, so that a new encoding of the
/// fields can never collide with this one.
const TAG: &[u8] = b"funnel-chain-v1";

/// The hash of one commit, fed field by field in the store's own order.
#[derive(Clone, Debug)]
pub struct Link {
    hasher: Sha256,
}

impl Link {
    /// Starts the commit that follows `previous`.
    pub fn after(previous: &ChainHash) -> Link {
        let mut hasher = Sha256::new();
        hasher.update((TAG.len() as u64).to_le_bytes());
        hasher.update(TAG);
        hasher.update(previous.0);
        Link { hasher }
    }

    /// Adds a field of bytes (text as UTF-8), length-prefixed.
    pub fn bytes(&mut self, field: &[u8]) -> &mut Link {
        self.hasher.update((field.len() as u64).to_le_bytes());
        self.hasher.update(field);
        self
    }

    /// Adds a field that may be absent (a marker byte, then the bytes).
    pub fn optional(&mut self, field: Option<&[u8]>) -> &mut Link {
        match field {
            None => self.hasher.update([0u8]),
            Some(b) => {
                self.hasher.update([1u8]);
                self.bytes(b);
            }
        }
        self
    }

    /// Adds an integer field.
    pub fn int(&mut self, value: i64) -> &mut Link {
        self.hasher.update(value.to_le_bytes());
        self
    }

    /// The commit's hash.
    pub fn finish(self) -> ChainHash {
        ChainHash(self.hasher.finalize().into())
    }
}

/// What is wrong at the first bad position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// The events of the commit starting here hash to something else than recorded: an event of it
    /// was changed, or events were swapped.
    Changed,
    /// No event is at this position, which a recorded commit covers: it was removed.
    Missing,
    /// An event is at this position that no recorded commit covers: it was inserted, or its
    /// commit's record was removed.
    Unchained,
    /// The recorded chain does not reach a signed checkpoint's head: events from here up to the
    /// checkpoint's position (`until`) were changed and the hashes after them recomputed.
    Rewritten,
    /// The log ends before a signed checkpoint's position (`until`): events from here on were
    /// removed.
    Truncated,
}

impl Tamper {
    /// What it means, in English and in Chinese.
    pub fn explain(self) -> (&'static str, &'static str) {
        match self {
            Tamper::Changed => (
                "the events of the commit starting here are not what was written (changed or reordered)",
                "从此位置开始的提交中的事件与写入时不一致（被修改或调换顺序）",
            ),
            Tamper::Missing => (
                "an event of a recorded commit is missing here (removed)",
                "此位置缺少一条已记录提交中的事件（被删除）",
            ),
            Tamper::Unchained => (
                "an event is here that no recorded commit covers (inserted)",
                "此位置的事件不属于任何已记录的提交（被插入）",
            ),
            Tamper::Rewritten => (
                "the chain no longer matches a signed checkpoint: events from here up to the checkpoint were changed and their hashes recomputed",
                "哈希链与签名检查点不符：从此位置到检查点之间的事件被修改，且哈希被重新计算",
            ),
            Tamper::Truncated => (
                "the log ends before a signed checkpoint: events from here on were removed",
                "日志短于签名检查点记录的长度：从此位置起的事件被删除",
            ),
        }
    }
}

/// One recorded commit: its positions and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedCommit {
    pub first: Position,
    pub last: Position,
    pub hash: ChainHash,
}

/// Where a walk found the log tampered with first, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub position: Position,
    pub tamper: Tamper,
    /// The last position affected, when only a range is known (a rewritten or truncated log:
    /// the signed checkpoint's position).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Position>,
}

/// What a walk of the log found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Verification {
    /// Where the walk started (the first position it checked).
    pub from: Position,
    /// The last position checked.
    pub to: Position,
    /// Commits whose hash was recomputed and matched.
    pub commits: u64,
    /// Events checked.
    pub events: u64,
    /// The first position of the chain: events before it were written before the store kept one
    /// and prove nothing.
    pub chain_starts_at: Option<Position>,
    /// The first bad position and what is wrong there (`None`: nothing found).
    pub first_bad: Option<Finding>,
    /// The hash of the last commit checked (the head of the chain when nothing is wrong).
    pub head_hash: Option<String>,
    /// What the signed checkpoints say (`None`: none were checked).
    pub witness: Option<Witnessed>,
}

impl Verification {
    /// Nothing was found wrong, in the log or in its checkpoints.
    pub fn is_clean(&self) -> bool {
        self.first_bad.is_none()
            && self
                .witness
                .as_ref()
                .is_none_or(|w| w.bad_checkpoint.is_none())
    }
}

/// Walks a log against its recorded commits, in position order: feed it the commits
/// ([`Verifier::commit`]) and, for each, its events' hashes as the store recomputes them. It keeps
/// only the first finding.
#[derive(Debug)]
pub struct Verifier {
    previous: ChainHash,
    /// The position after which the next commit must start (`None` before the first).
    last: Option<Position>,
    report: Verification,
}

impl Verifier {
    /// A walk that starts at the commit following `previous` (the genesis for a whole log), where
    /// `last` is the last position of that previous commit.
    pub fn new(from: Position, previous: ChainHash, last: Option<Position>) -> Verifier {
        Verifier {
            previous,
            last,
            report: Verification::starting_at(from),
        }
    }

    /// The previous commit's hash: what the store starts the next commit's [`Link`] with.
    pub fn previous(&self) -> &ChainHash {
        &self.previous
    }

    /// Whether something was found (the walk can stop).
    pub fn found(&self) -> bool {
        self.report.first_bad.is_some()
    }

    fn bad(&mut self, at: Position, what: Tamper) {
        self.report.bad(at, what);
    }

    /// The first position the store chained (events below it were written before it kept a
    /// chain).
    pub fn chain_from(&mut self, position: Position) {
        self.report.chain_starts_at = Some(position);
    }

    /// Events before the first recorded commit (written before the store kept a chain).
    pub fn unchained_prefix(&mut self, events: u64, last: Position) {
        self.report.events += events;
        self.report.to = self.report.to.max(last);
    }

    /// An event no recorded commit covers, at `at`.
    pub fn stray(&mut self, at: Position) {
        self.report.events += 1;
        self.report.to = self.report.to.max(at);
        self.bad(at, Tamper::Unchained);
    }

    /// One recorded commit, with the positions of the events the store holds in its range and the
    /// hash it recomputed from them (with [`Verifier::previous`] first).
    pub fn commit(&mut self, recorded: RecordedCommit, held: &[Position], recomputed: ChainHash) {
        self.report.chain_starts_at.get_or_insert(recorded.first);
        if let Some(last) = self.last
            && recorded.first.0 > last.0 + 1
        {
            // A whole commit's record is gone, or its events were never chained.
            self.bad(Position(last.0 + 1), Tamper::Unchained);
        }
        let mut expected = recorded.first.0;
        for p in held {
            if p.0 != expected {
                self.bad(Position(expected), Tamper::Missing);
                break;
            }
            expected += 1;
        }
        if expected <= recorded.last.0 && held.len() as u64 == expected - recorded.first.0 {
            self.bad(Position(expected), Tamper::Missing);
        }
        if recomputed != recorded.hash {
            self.bad(recorded.first, Tamper::Changed);
        }
        if !self.found() {
            self.report.commits += 1;
            self.report.head_hash = Some(recorded.hash.to_hex());
        }
        self.report.events += held.len() as u64;
        self.report.to = self.report.to.max(recorded.last);
        // The recorded hash goes on: a change here is reported here, not again at every commit after.
        self.previous = recorded.hash;
        self.last = Some(recorded.last);
    }

    /// The findings.
    pub fn finish(self) -> Verification {
        self.report
    }
}

impl Verification {
    /// A walk that starts at `from` and has checked nothing yet.
    pub fn starting_at(from: Position) -> Verification {
        Verification {
            from,
            to: from,
            commits: 0,
            events: 0,
            chain_starts_at: None,
            first_bad: None,
            head_hash: None,
            witness: None,
        }
    }

    /// Records `what` at `at`, unless something was found before (only the first is kept).
    pub fn bad(&mut self, at: Position, what: Tamper) {
        self.first_bad.get_or_insert(Finding {
            position: at,
            tamper: what,
            until: None,
        });
    }

    /// Adds what the signed checkpoints say: their finding is the first bad position when the
    /// walk found nothing (a walk's finding is exact; a checkpoint's names a range).
    pub fn witnessed(&mut self, witness: Witnessed) {
        if self.first_bad.is_none() {
            self.first_bad = witness.finding;
        }
        self.witness = Some(witness);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(previous: &ChainHash, payload: &[u8]) -> ChainHash {
        let mut link = Link::after(previous);
        link.bytes(payload);
        link.finish()
    }

    #[test]
    fn fields_are_length_prefixed_so_that_moving_a_boundary_changes_the_hash() {
        let mut a = Link::after(&ChainHash::GENESIS);
        a.bytes(b"ab").bytes(b"c");
        let mut b = Link::after(&ChainHash::GENESIS);
        b.bytes(b"a").bytes(b"bc");
        assert_ne!(a.finish(), b.finish());
        let mut none = Link::after(&ChainHash::GENESIS);
        none.optional(None);
        let mut empty = Link::after(&ChainHash::GENESIS);
        empty.optional(Some(b""));
        assert_ne!(none.finish(), empty.finish());
    }

    #[test]
    fn the_hash_depends_on_the_previous_one() {
        let one = hash_of(&ChainHash::GENESIS, b"x");
        assert_ne!(hash_of(&one, b"y"), hash_of(&ChainHash::GENESIS, b"y"));
        assert_eq!(ChainHash::from_slice(&one.0), Some(one));
        assert_eq!(ChainHash::from_slice(&one.0[1..]), None);
        assert_eq!(one.to_hex().len(), 64);
    }

    fn commit(first: u64, last: u64, hash: ChainHash) -> RecordedCommit {
        RecordedCommit {
            first: Position(first),
            last: Position(last),
            hash,
        }
    }

    #[test]
    fn a_walk_names_the_first_bad_position_and_what_is_wrong() {
        let h1 = hash_of(&ChainHash::GENESIS, b"1");
        let h2 = hash_of(&h1, b"2");
        // Clean.
        let mut v = Verifier::new(Position(1), ChainHash::GENESIS, None);
        v.commit(commit(1, 2, h1), &[Position(1), Position(2)], h1);
        v.commit(commit(3, 3, h2), &[Position(3)], h2);
        let r = v.finish();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!((r.commits, r.events, r.to), (2, 3, Position(3)));
        assert_eq!(r.head_hash, Some(h2.to_hex()));
        // A missing event inside a commit, and one at its end.
        let mut v = Verifier::new(Position(1), ChainHash::GENESIS, None);
        v.commit(commit(1, 3, h1), &[Position(1), Position(3)], h1);
        assert_eq!(
            v.finish().first_bad,
            Some(Finding {
                position: Position(2),
                tamper: Tamper::Missing,
                until: None
            })
        );
        let mut v = Verifier::new(Position(1), ChainHash::GENESIS, None);
        v.commit(commit(1, 3, h1), &[Position(1), Position(2)], h1);
        assert_eq!(
            v.finish().first_bad,
            Some(Finding {
                position: Position(3),
                tamper: Tamper::Missing,
                until: None
            })
        );
        // A changed commit is reported at its first position, once.
        let mut v = Verifier::new(Position(1), ChainHash::GENESIS, None);
        v.commit(commit(1, 2, h1), &[Position(1), Position(2)], h2);
        v.commit(commit(3, 3, h2), &[Position(3)], h1);
        assert_eq!(
            v.finish().first_bad,
            Some(Finding {
                position: Position(1),
                tamper: Tamper::Changed,
                until: None
            })
        );
        // A gap between commits, and a stray event after the last.
        let mut v = Verifier::new(Position(1), ChainHash::GENESIS, None);
        v.commit(commit(1, 1, h1), &[Position(1)], h1);
        v.commit(commit(3, 3, h2), &[Position(3)], h2);
        assert_eq!(
            v.finish().first_bad,
            Some(Finding {
                position: Position(2),
                tamper: Tamper::Unchained,
                until: None
            })
        );
        let mut v = Verifier::new(Position(1), ChainHash::GENESIS, None);
        v.commit(commit(1, 1, h1), &[Position(1)], h1);
        v.stray(Position(2));
        assert_eq!(
            v.finish().first_bad,
            Some(Finding {
                position: Position(2),
                tamper: Tamper::Unchained,
                until: None
            })
        );
    }
}
