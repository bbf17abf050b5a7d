//! Answers kept for the position of the read models they were computed at.
//!
//! A report that many people poll (the pipeline on every manager's screen) is the same answer for
//! everyone who may see the same offices, until the read models move on. [`Answers`] keeps the
//! answers asked for at the newest position seen, by what they answer ([`AnswerKey`]), and drops
//! them all as soon as someone asks at a newer position: a kept answer is what computing it
//! again would give (or newer), so keeping it changes no answer, only its cost.

use bytes::Bytes;
use chrono_tz::Tz;
use funnel_types::{OfficeId, Position};
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// At most this many answers are kept for one position (one per report, office and time zone
/// asked for); one more empties the store first.
const KEPT_PER_POSITION: usize = 256;

/// What an answer answers: the report, the office it is scoped to (`None`: every office) and the
/// time zone its dates are shown in. Whatever else would change the answer must be in the key, so
/// only answers that depend on nothing else (not on the caller beyond the scope) are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    pub report: &'static str,
    pub office: Option<OfficeId>,
    pub zone: Tz,
}

/// An answer and the position of the read models it was computed at.
pub type Kept = (Position, Arc<dyn Any + Send + Sync>);

/// Where one answer is kept: the first caller to find it empty computes the answer, and those who
/// ask meanwhile wait for it rather than compute it again.
pub type Slot = Arc<OnceCell<Kept>>;

/// An answer shared by everyone it is sent to, with its JSON written once, on first use: writing
/// a report of every office costs more than computing it from the kept totals.
#[derive(Debug)]
pub struct Shared<T> {
    answer: T,
    json: OnceCell<Bytes>,
    gzip: OnceCell<Bytes>,
}

impl<T> Shared<T> {
    pub fn new(answer: T) -> Self {
        Self {
            answer,
            json: OnceCell::new(),
            gzip: OnceCell::new(),
        }
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.answer
    }
}

impl<T: Serialize> Shared<T> {
    /// The answer as JSON: written by the first caller, then shared (callers meanwhile wait).
    pub async fn json(&self) -> Result<Bytes, serde_json::Error> {
        self.json
            .get_or_try_init(|| async { serde_json::to_vec(&self.answer).map(Bytes::from) })
            .await
            .cloned()
    }

    /// [`Shared::json`] compressed with gzip, for clients that accept it: compressed by the first
    /// caller, then shared. A report polled by many is written and compressed once per position,
    /// and the bytes each poll copies to its client shrink about fivefold (the pipeline of 30
    /// offices: 222 KB to 40 KB).
    pub async fn gzip(&self) -> std::io::Result<Bytes> {
        let json = self.json().await?;
        self.gzip
            .get_or_try_init(|| async move {
                use std::io::Write as _;
                // The fastest level: the first poll at a new position waits for it, and JSON of
                // repeated keys compresses well even so.
                let mut e = flate2::write::GzEncoder::new(
                    Vec::with_capacity(json.len() / 8),
                    flate2::Compression::fast(),
                );
                e.write_all(&json)?;
                e.finish().map(Bytes::from)
            })
            .await
            .cloned()
    }
}

/// The slots of the newest position seen.
#[derive(Debug, Default)]
pub struct Answers {
    at: Mutex<(Position, HashMap<AnswerKey, Slot>)>,
}

impl Answers {
    /// The slot of `key` for a caller who saw the read models at `position`, shared with everyone
    /// asking at that position. Slots of an older position are dropped first; a caller who saw an
    /// older position than the slots kept gets a slot of its own, kept by nobody.
    pub fn slot(&self, position: Position, key: AnswerKey) -> Slot {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if position < at.0 {
            return Slot::default();
        }
        if position > at.0 || (at.1.len() >= KEPT_PER_POSITION && !at.1.contains_key(&key)) {
            at.1.clear();
            at.0 = position;
        }
        at.1.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(report: &'static str) -> AnswerKey {
        AnswerKey {
            report,
            office: None,
            zone: chrono_tz::Asia::Shanghai,
        }
    }

    fn keep(slot: &Slot, position: u64, n: u32) {
        slot.set((Position(position), Arc::new(n)))
            .expect("an empty slot");
    }

    fn kept(slot: &Slot) -> Option<u32> {
        slot.get()
            .and_then(|(_, a)| a.downcast_ref::<u32>().copied())
    }

    #[test]
    fn a_slot_is_shared_at_its_position_only_until_a_newer_one_is_asked_for() {
        let answers = Answers::default();
        keep(&answers.slot(Position(5), key("a")), 5, 1);
        assert_eq!(kept(&answers.slot(Position(5), key("a"))), Some(1));
        assert_eq!(
            kept(&answers.slot(Position(5), key("b"))),
            None,
            "another report"
        );
        // A caller who saw an older position gets a slot nobody keeps.
        let old = answers.slot(Position(4), key("a"));
        assert_eq!(kept(&old), None);
        keep(&old, 4, 2);
        assert_eq!(kept(&answers.slot(Position(5), key("a"))), Some(1));
        // A newer position drops every slot of the older one.
        assert_eq!(kept(&answers.slot(Position(7), key("a"))), None);
        assert_eq!(kept(&answers.slot(Position(5), key("a"))), None);
    }

    #[tokio::test]
    async fn a_shared_answer_is_written_as_its_json() {
        let shared = Shared::new(serde_json::json!({"position": 3, "名": "上海"}));
        let first = shared.json().await.unwrap();
        assert_eq!(first, serde_json::to_vec(&*shared).unwrap());
        assert_eq!(shared.json().await.unwrap(), first);
    }

    #[tokio::test]
    async fn a_shared_answer_is_compressed_once_and_inflates_to_its_json() {
        use std::io::Read as _;
        let shared = Shared::new(serde_json::json!({"offices": vec!["上海"; 500]}));
        let gzip = shared.gzip().await.unwrap();
        assert!(gzip.len() * 10 < shared.json().await.unwrap().len());
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, shared.json().await.unwrap());
        // The same bytes, not compressed again.
        assert_eq!(shared.gzip().await.unwrap().as_ptr(), gzip.as_ptr());
    }

    #[test]
    fn the_answers_of_one_position_are_bounded() {
        let answers = Answers::default();
        let zones = chrono_tz::TZ_VARIANTS;
        for zone in zones.iter().take(KEPT_PER_POSITION) {
            let k = AnswerKey {
                report: "a",
                office: None,
                zone: *zone,
            };
            keep(&answers.slot(Position(1), k), 1, 0);
        }
        // The last of them is asked again: nothing is dropped.
        let last = AnswerKey {
            report: "a",
            office: None,
            zone: zones[KEPT_PER_POSITION - 1],
        };
        assert_eq!(kept(&answers.slot(Position(1), last)), Some(0));
        assert_eq!(answers.at.lock().unwrap().1.len(), KEPT_PER_POSITION);
        // One more empties the store first.
        let more = AnswerKey {
            zone: zones[KEPT_PER_POSITION],
            ..last
        };
        answers.slot(Position(1), more);
        assert_eq!(answers.at.lock().unwrap().1.len(), 1);
        assert_eq!(kept(&answers.slot(Position(1), last)), None);
    }
}
