//! As-of replay: a read model computed from scratch as of a position or a date, streaming the log
//! page by page so memory does not grow with the number of events.

use crate::history::{Start, nanos};
use crate::{Parked, ReadModel};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use funnel_store::{EventStore, Filter, RecordedEvent, StoreError};
use funnel_types::Position;

/// Events per read during a replay.
const PAGE: usize = 8192;

/// The point in history a replay stops at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Every event at or below this position.
    Position(Position),
    /// Every event that occurred at or before this time (by `occurred_at`, which is not in log
    /// order, so the whole log up to the head at the start is scanned).
    Time(DateTime<Utc>),
}

impl AsOf {
    /// The moment in time, for `AsOf::Time`.
    pub fn moment(&self) -> Option<DateTime<Utc>> {
        match self {
            AsOf::Position(_) => None,
            AsOf::Time(t) => Some(*t),
        }
    }

    /// Whether an event belongs to the history as of this moment.
    pub fn admits(&self, rec: &RecordedEvent) -> bool {
        match self {
            AsOf::Position(p) => rec.meta.position <= *p,
            AsOf::Time(t) => rec.meta.occurred_at <= *t,
        }
    }
}

/// A moment as people write it — a position (digits), a date (`2026-09-30`) or an RFC 3339
/// date-time — before the time zone that says when a date ends is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOfInput {
    Position(Position),
    /// The end of this day, in the zone of the office the report is about.
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl AsOfInput {
    /// The point in history: a date ends at midnight in `tz` (the office's zone, or headquarters'
    /// for a report across offices); a position or a date-time needs no zone.
    pub fn resolve(self, tz: Tz) -> AsOf {
        match self {
            AsOfInput::Position(p) => AsOf::Position(p),
            AsOfInput::Date(d) => AsOf::Time(funnel_domain::time::end_of_day(d, tz)),
            AsOfInput::Time(t) => AsOf::Time(t),
        }
    }
}

impl std::str::FromStr for AsOfInput {
    type Err = String;

    fn from_str(text: &str) -> Result<AsOfInput, String> {
        let t = text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(|p| AsOfInput::Position(Position(p)))
                .map_err(|e| format!("bad position `{t}`: {e}"));
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(AsOfInput::Date(d));
        }
        DateTime::parse_from_rfc3339(t)
            .map(|d| AsOfInput::Time(d.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "`{t}` is neither a position, a date (YYYY-MM-DD) nor an RFC 3339 date-time"
                )
            })
    }
}

/// A fresh `M` with every event admitted by `as_of` applied in log order, and the events it parked
/// (did not decode or were refused). As of a time, the model is told that its history is complete
/// up to that moment ([`ReadModel::complete_until`]), so "days without a visit" count until then.
pub async fn replay_as_of<M: ReadModel>(
    store: &dyn EventStore,
    as_of: AsOf,
) -> Result<(M, Vec<Parked>), StoreError> {
    let head = store.head().await?;
    replay_as_of_until(store, as_of, head).await
}

/// [`replay_as_of`] reading the log no further than `head`, so the answer depends only on
/// (`head`, `as_of`) and can be cached by them.
pub async fn replay_as_of_until<M: ReadModel>(
    store: &dyn EventStore,
    as_of: AsOf,
    head: Position,
) -> Result<(M, Vec<Parked>), StoreError> {
    let (m, parked, _) = replay_from(store, as_of, head, Start::default()).await?;
    Ok((m, parked))
}

/// [`replay_as_of_until`] starting from a history snapshot ([`crate::history::start`]) and
/// skipping the spans of the gap where no event is admitted. The snapshot is used only if the log
/// holds the event it names at its position and it decodes; otherwise the replay starts from
/// position zero. The answer is the same either way. Also returns the position the replay
/// started after (zero without a snapshot), and the events it read.
pub async fn replay_from<M: ReadModel>(
    store: &dyn EventStore,
    as_of: AsOf,
    head: Position,
    start: Start,
) -> Result<(M, Vec<Parked>, Replayed), StoreError> {
    let mut start = start;
    let (mut model, mut after) = match start.base.take() {
        Some((at, id, state)) if still_there(store, at, &id).await? => {
            let decoded = crate::history::unpack(&state)
                .ok_or_else(|| "not an LZ4 block".to_string())
                .and_then(|s| rmp_serde::from_slice::<M>(&s).map_err(|e| e.to_string()));
            match decoded {
                Ok(m) => (m, at),
                Err(e) => {
                    tracing::warn!(model = M::NAME, position = %at, error = %e, "a history snapshot does not read; replaying from the start");
                    (M::default(), Position::START)
                }
            }
        }
        Some((at, _, _)) => {
            tracing::warn!(model = M::NAME, position = %at, "a history snapshot names an event the log does not hold there; replaying from the start");
            // A checkpoint file of another log: its time index says nothing of this one.
            start.spans.clear();
            (M::default(), Position::START)
        }
        None => (M::default(), Position::START),
    };
    let mut done = Replayed {
        from: after,
        events_read: 0,
    };
    let mut parked = Vec::new();
    let end = match as_of {
        AsOf::Position(p) => p.min(head),
        AsOf::Time(_) => head,
    };
    while after < end {
        // As of a moment, the gap is read span by span: one whose every event occurred after
        // the moment holds nothing to apply and is skipped.
        let mut limit = PAGE;
        if let (AsOf::Time(t), Some(span)) = (as_of, start.span_after(after)) {
            if span.earliest > nanos(t) {
                after = span.end;
                continue;
            }
            limit = usize::try_from(span.events).map_or(PAGE, |n| n.clamp(1, PAGE));
        }
        let page = store.read_all(after, &Filter::All, limit).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.meta.position;
        done.events_read += page.len() as u64;
        for rec in page
            .iter()
            .filter(|r| r.meta.position <= end && as_of.admits(r))
        {
            if !M::reads(&rec.meta.event_type) {
                model.pass(rec.meta.occurred_at);
                continue;
            }
            let refused = match funnel_codec::decode_recorded(rec) {
                Ok(env) => model.apply(&env).err(),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = refused {
                parked.push(Parked {
                    position: rec.meta.position,
                    event_type: rec.meta.event_type.clone(),
                    reason,
                });
            }
        }
    }
    if let Some(t) = as_of.moment() {
        model.complete_until(t);
    }
    Ok((model, parked, done))
}

/// Where an as-of replay started and how much of the log it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// The position of the snapshot it started from (zero: from the start of the log).
    pub from: Position,
    /// Events read from the log.
    pub events_read: u64,
}

/// Whether the log holds the event `id` at position `at`.
async fn still_there(store: &dyn EventStore, at: Position, id: &str) -> Result<bool, StoreError> {
    let Some(before) = at.0.checked_sub(1) else {
        return Ok(false);
    };
    let page = store.read_all(Position(before), &Filter::All, 1).await?;
    Ok(page
        .first()
        .is_some_and(|r| r.meta.position == at && r.meta.event_id.to_string() == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_kept_until_its_zone_is_known_then_ends_at_that_zones_midnight() {
        let asked: AsOfInput = "2026-09-30".parse().unwrap();
        assert_eq!(asked, AsOfInput::Date("2026-09-30".parse().unwrap()));
        let at = |tz| asked.resolve(tz).moment().unwrap().to_rfc3339();
        assert_eq!(
            at(chrono_tz::Asia::Shanghai),
            "2026-09-30T15:59:59.999999999+00:00"
        );
        assert_eq!(
            at(chrono_tz::Asia::Urumqi),
            "2026-09-30T17:59:59.999999999+00:00"
        );
    }

    #[test]
    fn positions_and_date_times_need_no_zone() {
        let p: AsOfInput = "42".parse().unwrap();
        assert_eq!(
            p.resolve(chrono_tz::Asia::Urumqi),
            AsOf::Position(Position(42))
        );
        let t: AsOfInput = "2026-09-30T12:00:00+08:00".parse().unwrap();
        assert_eq!(
            t.resolve(chrono_tz::Asia::Urumqi),
            t.resolve(chrono_tz::Asia::Shanghai)
        );
        assert_eq!(
            t.resolve(chrono_tz::Asia::Urumqi)
                .moment()
                .unwrap()
                .to_rfc3339(),
            "2026-09-30T04:00:00+00:00"
        );
        let err = "yesterday".parse::<AsOfInput>().unwrap_err();
        assert!(err.contains("neither"), "{err}");
    }
}
