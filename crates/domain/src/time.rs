//! Office time: every date a person writes and every time shown is read in an office's time zone
//! (`office.opened`'s `timezone`). Only where no office is known (headquarters, a member of staff
//! without an office, a malformed zone) does [`DEFAULT_TIME_ZONE`], headquarters' zone, apply; a
//! report across offices says which zone it used.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Headquarters' time zone: the zone of whatever has no office of its own.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Shanghai;

/// The zone an office's `timezone` names, or [`DEFAULT_TIME_ZONE`] when there is none or it is
/// not an IANA zone.
pub fn zone(name: Option<&str>) -> Tz {
    name.and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_TIME_ZONE)
}

/// A wall-clock time in `tz` as UTC: the earlier instant when the clock passes it twice, the
/// first instant after the gap when it is skipped (a daylight-saving jump).
pub fn at_local(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..=180 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += chrono::Duration::minutes(1);
    }
    // No zone skips three hours; read the wall clock as UTC rather than fail.
    local.and_utc()
}

/// The first instant of `date` in `tz`.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    at_local(date.and_time(NaiveTime::MIN), tz)
}

/// The last instant (nanosecond) of `date` in `tz`: "as of a date" means at its end.
pub fn end_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    match date.succ_opt() {
        Some(next) => start_of_day(next, tz) - chrono::Duration::nanoseconds(1),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// The instants of the days `from` to `to` (both inclusive) in `tz`: from the start of `from`
/// (inclusive) to the start of the day after `to` (exclusive); an open end stays open.
pub fn days_between(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    tz: Tz,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    (
        from.map(|d| start_of_day(d, tz)),
        to.and_then(|d| d.succ_opt()).map(|d| start_of_day(d, tz)),
    )
}

/// A time as shown to people: the wall clock in `tz`, to the minute (`2026-09-30 18:00`).
pub fn local_minute(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn an_office_zone_is_read_and_an_unknown_one_falls_back_to_headquarters() {
        assert_eq!(zone(Some("Asia/Urumqi")), chrono_tz::Asia::Urumqi);
        assert_eq!(zone(Some("Mars/Olympus")), DEFAULT_TIME_ZONE);
        assert_eq!(zone(None), DEFAULT_TIME_ZONE);
    }

    #[test]
    fn a_day_ends_at_midnight_of_its_own_zone() {
        let d = date("2026-09-30");
        assert_eq!(
            end_of_day(d, chrono_tz::Asia::Shanghai).to_rfc3339(),
            "2026-09-30T15:59:59.999999999+00:00"
        );
        assert_eq!(
            end_of_day(d, chrono_tz::Asia::Urumqi).to_rfc3339(),
            "2026-09-30T17:59:59.999999999+00:00"
        );
        assert_eq!(
            start_of_day(d, chrono_tz::Europe::Berlin).to_rfc3339(),
            "2026-09-29T22:00:00+00:00"
        );
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_at_the_first_instant_after_the_gap() {
        // Chile moves its clocks from 00:00 to 01:00 on 2026-09-06.
        let tz = chrono_tz::America::Santiago;
        let start = start_of_day(date("2026-09-06"), tz);
        assert_eq!(
            start.with_timezone(&tz).to_rfc3339(),
            "2026-09-06T01:00:00-03:00"
        );
        assert!(end_of_day(date("2026-09-05"), tz) < start);
    }

    #[test]
    fn days_between_take_whole_local_days() {
        let tz = chrono_tz::Asia::Urumqi;
        let (from, to) = days_between(Some(date("2026-09-01")), Some(date("2026-09-30")), tz);
        assert_eq!(from.unwrap().to_rfc3339(), "2026-08-31T18:00:00+00:00");
        assert_eq!(to.unwrap().to_rfc3339(), "2026-09-30T18:00:00+00:00");
        assert_eq!(days_between(None, None, tz), (None, None));
    }

    #[test]
    fn times_are_shown_on_the_office_clock() {
        let t: DateTime<Utc> = "2026-09-30T17:30:00Z".parse().unwrap();
        assert_eq!(local_minute(t, chrono_tz::Asia::Urumqi), "2026-09-30 23:30");
        assert_eq!(
            local_minute(t, chrono_tz::Asia::Shanghai),
            "2026-10-01 01:30"
        );
    }
}
