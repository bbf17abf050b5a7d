//! The hash chain on JetStream ([`funnel_store::chain`]).
//!
//! Writers to the log are many processes appending to different subjects at once, and JetStream
//! orders their messages only as it stores them, so no writer can know the message before its own
//! in the whole log. The chain is therefore kept per event stream (per subject), where every
//! append already names its predecessor (`Nats-Expected-Last-Subject-Sequence`):
//!
//! - **Link.** Each commit carries the header `Funnel-Chain`: the hex SHA-256 of a domain tag, the
//!   link of the subject's previous commit (zeros for the first, or when that one predates the
//!   chain), the subject, the previous commit's stream sequence (0 for none) and the body exactly as
//!   stored (ciphertext for sealed personal fields, so erasure leaves it intact). A changed body,
//!   a commit removed from under a later one of its subject, or a forged commit without a valid
//!   link breaks it.
//! - **Digest.** Whoever signs checkpoints folds every message of the log, in stream order, into
//!   one running digest: SHA-256 over the previous digest, the stream sequence and the message's
//!   recorded link. A signed checkpoint of (the last position of a message, the digest after it)
//!   pins the whole log up to it, so that removing, changing or recomputing anything before it
//!   no longer reaches the signed digest. The digest is kept nowhere on the broker; each signer
//!   computes it from the headers alone (an ordered, headers-only read) and then only for new
//!   messages.
//!
//! What a walk ([`NatsStore::verify_inner`]) finds: a gap in the stream sequences (a deleted
//! message, also at the tail: JetStream keeps the last sequence of a deleted tail), a message whose
//! link does not recompute (changed, or inserted with a link copied from elsewhere), a message
//! without a link after the chain began (inserted by a foreign writer), and a digest that no longer
//! reaches a signed checkpoint (rewritten with recomputed links). The broker's timestamp of a
//! message is not covered: writers cannot know it, and JetStream offers no way to change it.

use crate::NatsStore;
use crate::codec::{self, RawCommit};
use async_nats::HeaderMap;
use funnel_store::StoreError;
use funnel_store::chain::{ChainHash, Link, Tamper, Verification};
use funnel_store::checkpoint::{self, Witness};
use funnel_types::Position;
use std::collections::{HashMap, HashSet};

/// How often, in messages, a walk reports its progress.
const PROGRESS_EVERY: u64 = 1_000;

/// The link of a commit stored on `subject` with `body`, after the subject's commit at stream
/// sequence `previous_seq` (0: none) whose link was `previous`.
pub(crate) fn link(
    previous: &ChainHash,
    previous_seq: u64,
    subject: &str,
    body: &[u8],
) -> ChainHash {
    let mut l = Link::after(previous);
    l.bytes(b"jetstream-commit")
        .bytes(subject.as_bytes())
        .int(i64::try_from(previous_seq).unwrap_or(i64::MAX))
        .bytes(body);
    l.finish()
}

/// The running digest of the log after the message at stream sequence `seq` whose recorded link
/// is `link` (zeros when it has none).
pub(crate) fn digest(previous: &ChainHash, seq: u64, link: &ChainHash) -> ChainHash {
    let mut l = Link::after(previous);
    l.bytes(b"jetstream-digest")
        .int(i64::try_from(seq).unwrap_or(i64::MAX))
        .bytes(&link.0);
    l.finish()
}

/// The link a message's `Funnel-Chain` header records, if it has a well-formed one.
pub(crate) fn recorded_link(headers: Option<&HeaderMap>) -> Option<ChainHash> {
    let hex = headers?.get(codec::HEADER_CHAIN)?.as_str();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ChainHash(out))
}

/// The digest of the log up to a stream sequence, as this process last computed it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DigestTip {
    pub seq: u64,
    pub digest: ChainHash,
}

impl Default for DigestTip {
    fn default() -> Self {
        DigestTip {
            seq: 0,
            digest: ChainHash::GENESIS,
        }
    }
}

/// One walk of the log, message by message in stream order.
struct Walk {
    report: Verification,
    /// The next stream sequence expected.
    next_seq: u64,
    /// Subject → (recorded link, stream sequence) of its last message seen.
    subjects: HashMap<String, (ChainHash, u64)>,
    digest: ChainHash,
    /// The positions signed checkpoints name, and the digest found at each.
    wanted: HashSet<Position>,
    digests: HashMap<Position, ChainHash>,
}

impl Walk {
    fn new(wanted: HashSet<Position>) -> Walk {
        Walk {
            // `to` is the last position of the last message read (`START` before any): the log's
            // head the checkpoints are checked against.
            report: Verification {
                to: Position::START,
                ..Verification::starting_at(codec::position(1, 0))
            },
            next_seq: 1,
            subjects: HashMap::new(),
            digest: ChainHash::GENESIS,
            wanted,
            digests: HashMap::new(),
        }
    }

    fn found(&self) -> bool {
        self.report.first_bad.is_some()
    }

    fn message(&mut self, m: &RawCommit<'_>) {
        let first = codec::position(m.seq, 0);
        if m.seq > self.next_seq {
            // JetStream's sequences have no gaps but deleted messages.
            self.report
                .bad(codec::position(self.next_seq, 0), Tamper::Missing);
        }
        self.next_seq = m.seq + 1;
        // A body that does not decode still hashes as stored; it counts as one event.
        let count = codec::decode_head(m.seq, m.headers, m.payload).map_or(1, |h| h.count);
        let last = codec::position(m.seq, count.max(1) - 1);
        let recorded = recorded_link(m.headers);
        match recorded {
            None if self.report.chain_starts_at.is_some() => {
                self.report.bad(first, Tamper::Unchained)
            }
            None => {}
            Some(recorded) => {
                self.report.chain_starts_at.get_or_insert(first);
                let (previous, previous_seq) = self
                    .subjects
                    .get(m.subject)
                    .copied()
                    .unwrap_or((ChainHash::GENESIS, 0));
                if link(&previous, previous_seq, m.subject, m.payload) != recorded {
                    self.report.bad(first, Tamper::Changed);
                }
                if !self.found() {
                    self.report.commits += 1;
                }
            }
        }
        let recorded = recorded.unwrap_or(ChainHash::GENESIS);
        self.subjects
            .insert(m.subject.to_string(), (recorded, m.seq));
        self.digest = digest(&self.digest, m.seq, &recorded);
        if self.wanted.contains(&last) {
            self.digests.insert(last, self.digest);
        }
        self.report.events += count;
        self.report.to = last;
    }

    /// Ends the walk of a log whose stream leader reported `last_seq` as its last sequence.
    fn finish(mut self, last_seq: u64, witness: Option<&Witness>) -> Verification {
        if last_seq >= self.next_seq {
            // The tail was deleted: JetStream still reports its last sequence.
            self.report
                .bad(codec::position(self.next_seq, 0), Tamper::Missing);
        }
        if !self.found() && self.report.chain_starts_at.is_some() {
            self.report.head_hash = Some(self.digest.to_hex());
        }
        if let Some(w) = witness {
            let digests = &self.digests;
            let checked =
                checkpoint::check::<()>(w, self.report.to, &mut |p| Ok(digests.get(&p).copied()));
            if let Ok(witnessed) = checked {
                self.report.witnessed(witnessed);
            }
        }
        self.report
    }
}

impl NatsStore {
    /// The digest of the whole log and the last position it covers (`None`: an empty log), from
    /// where this process last left it: only messages since are read, headers only.
    pub(crate) async fn chain_head_inner(
        &self,
    ) -> Result<Option<(Position, ChainHash)>, StoreError> {
        let mut tip = self.digest_tip.lock().await;
        let last = self.last_sequence().await?;
        if last > tip.seq {
            let mut next = *tip;
            self.scan_with(tip.seq + 1, Vec::new(), last, usize::MAX, true, |m| {
                let link = recorded_link(m.headers).unwrap_or(ChainHash::GENESIS);
                next = DigestTip {
                    seq: m.seq,
                    digest: digest(&next.digest, m.seq, &link),
                };
                Ok(true)
            })
            .await?;
            *tip = next;
        }
        if tip.seq == 0 {
            return Ok(None);
        }
        // Its last position needs the body's event count.
        let msg = self
            .stream
            .get_raw_message(tip.seq)
            .await
            .map_err(|e| self.request_failed("read the last message signed", e, false))?;
        let head = codec::decode_head(tip.seq, Some(&msg.headers), &msg.payload)?;
        Ok(Some((head.last_position(), tip.digest)))
    }

    /// Walks the whole log (the digest that checkpoints sign runs from its first message, so a
    /// walk on JetStream always starts there) and checks `witness`'s checkpoints against it.
    pub(crate) async fn verify_inner(
        &self,
        witness: Option<Witness>,
        progress: &mut (dyn FnMut(Position) + Send),
    ) -> Result<Verification, StoreError> {
        let wanted = witness
            .iter()
            .flat_map(|w| w.lines.iter().filter_map(|l| l.as_ref().ok()))
            .map(|c| c.position)
            .collect();
        let mut walk = Walk::new(wanted);
        let last = self.last_sequence().await?;
        let mut seen = 0u64;
        self.scan_with(1, Vec::new(), last, usize::MAX, false, |m| {
            walk.message(m);
            seen += 1;
            if seen.is_multiple_of(PROGRESS_EVERY) {
                progress(walk.report.to);
            }
            Ok(!walk.found())
        })
        .await?;
        progress(walk.report.to);
        Ok(walk.finish(last, witness.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_link_binds_its_predecessor_subject_and_body() {
        let a = link(&ChainHash::GENESIS, 0, "funnel.log.lead.a", b"body");
        assert_ne!(
            a,
            link(&ChainHash::GENESIS, 0, "funnel.log.lead.b", b"body")
        );
        assert_ne!(
            a,
            link(&ChainHash::GENESIS, 0, "funnel.log.lead.a", b"bodY")
        );
        assert_ne!(
            a,
            link(&ChainHash::GENESIS, 7, "funnel.log.lead.a", b"body")
        );
        assert_ne!(a, link(&a, 0, "funnel.log.lead.a", b"body"));
        let mut h = HeaderMap::new();
        h.insert(codec::HEADER_CHAIN, a.to_hex().as_str());
        assert_eq!(recorded_link(Some(&h)), Some(a));
        h.insert(codec::HEADER_CHAIN, "zz");
        assert_eq!(recorded_link(Some(&h)), None);
        assert_eq!(recorded_link(None), None);
    }

    fn message<'a>(
        subject: &'a str,
        seq: u64,
        headers: &'a HeaderMap,
        payload: &'a Bytes,
    ) -> RawCommit<'a> {
        RawCommit {
            subject,
            seq,
            headers: Some(headers),
            payload,
            time_nanos: 0,
        }
    }

    fn linked(previous: (&ChainHash, u64), subject: &str, body: &Bytes) -> (HeaderMap, ChainHash) {
        let l = link(previous.0, previous.1, subject, body);
        let mut h = HeaderMap::new();
        h.insert(codec::HEADER_CHAIN, l.to_hex().as_str());
        (h, l)
    }

    #[test]
    fn a_walk_names_a_gap_a_changed_body_and_an_unlinked_message() {
        let (a, b) = ("funnel.log.lead.a", "funnel.log.lead.b");
        let body = Bytes::from_static(b"not decodable, hashed as stored");
        let (h1, l1) = linked((&ChainHash::GENESIS, 0), a, &body);
        let (h2, _) = linked((&ChainHash::GENESIS, 0), b, &body);
        let (h3, _) = linked((&l1, 1), a, &body);
        // Clean: three messages on two subjects.
        let mut w = Walk::new(HashSet::new());
        for (seq, s, h) in [(1, a, &h1), (2, b, &h2), (3, a, &h3)] {
            w.message(&message(s, seq, h, &body));
        }
        let r = w.finish(3, None);
        assert!(r.is_clean(), "{r:?}");
        assert_eq!((r.commits, r.events), (3, 3));
        // Message 2 deleted: named at its position (message 3 still links, to message 1).
        let mut w = Walk::new(HashSet::new());
        w.message(&message(a, 1, &h1, &body));
        w.message(&message(a, 3, &h3, &body));
        let bad = w.finish(3, None).first_bad.expect("a finding");
        assert_eq!(
            (bad.position, bad.tamper),
            (codec::position(2, 0), Tamper::Missing)
        );
        // The last message deleted: the leader still reports sequence 3.
        let mut w = Walk::new(HashSet::new());
        w.message(&message(a, 1, &h1, &body));
        w.message(&message(b, 2, &h2, &body));
        let bad = w.finish(3, None).first_bad.expect("a finding");
        assert_eq!(
            (bad.position, bad.tamper),
            (codec::position(3, 0), Tamper::Missing)
        );
        // A changed body.
        let other = Bytes::from_static(b"changed");
        let mut w = Walk::new(HashSet::new());
        w.message(&message(a, 1, &h1, &other));
        let bad = w.finish(1, None).first_bad.expect("a finding");
        assert_eq!(
            (bad.position, bad.tamper),
            (codec::position(1, 0), Tamper::Changed)
        );
        // A message without a link after the chain began; one before it is an unchained prefix.
        let none = HeaderMap::new();
        let mut w = Walk::new(HashSet::new());
        w.message(&message(b, 1, &none, &body));
        let (h2a, _) = linked((&ChainHash::GENESIS, 1), b, &body);
        w.message(&message(b, 2, &h2a, &body));
        w.message(&message(a, 3, &none, &body));
        let r = w.finish(3, None);
        assert_eq!(r.chain_starts_at, Some(codec::position(2, 0)));
        let bad = r.first_bad.expect("a finding");
        assert_eq!(
            (bad.position, bad.tamper),
            (codec::position(3, 0), Tamper::Unchained)
        );
    }
}
