//! As-of replay: a read model computed from scratch as of a position or a date, streaming the log
//! page by page so memory does not grow with the number of events.

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
    let mut model = M::default();
    let mut parked = Vec::new();
    let end = match as_of {
        AsOf::Position(p) => p.min(head),
        AsOf::Time(_) => head,
    };
    let mut after = Position::START;
    while after < end {
        let page = store.read_all(after, &Filter::All, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.meta.position;
        for rec in page
            .iter()
            .filter(|r| r.meta.position <= end && as_of.admits(r))
        {
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
    Ok((model, parked))
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
