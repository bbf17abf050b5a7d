//! The working calendars the demo publishes: the State Council's schedule of public holidays and
//! make-up working days (调休) for the years it is known here, and for any other year the holidays
//! fixed by date (New Year's Day, Labour Day, National Day) without make-up days, said so in the
//! publication's note so nobody takes it for the official schedule.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use funnel_domain::work_calendar::{CalendarCommand, WorkCalendar};

/// One holiday: its first and last day (weekends inside are listed too; the publication keeps the
/// weekdays), and the weekend days worked to make up for it.
type Holiday = ((u32, u32), (u32, u32), &'static [(u32, u32)]);

/// The published schedules (国务院办公厅关于部分节假日安排的通知).
const KNOWN: &[(i32, &[Holiday])] = &[
    (
        2024,
        &[
            ((1, 1), (1, 1), &[]),
            ((2, 10), (2, 17), &[(2, 4), (2, 18)]),
            ((4, 4), (4, 6), &[(4, 7)]),
            ((5, 1), (5, 5), &[(4, 28), (5, 11)]),
            ((6, 10), (6, 10), &[]),
            ((9, 15), (9, 17), &[(9, 14)]),
            ((10, 1), (10, 7), &[(9, 29), (10, 12)]),
        ],
    ),
    (
        2025,
        &[
            ((1, 1), (1, 1), &[]),
            ((1, 28), (2, 4), &[(1, 26), (2, 8)]),
            ((4, 4), (4, 6), &[]),
            ((5, 1), (5, 5), &[(4, 27)]),
            ((5, 31), (6, 2), &[]),
            ((10, 1), (10, 8), &[(9, 28), (10, 11)]),
        ],
    ),
    (
        2026,
        &[
            ((1, 1), (1, 3), &[(1, 4)]),
            ((2, 15), (2, 23), &[(2, 14), (2, 28)]),
            ((4, 4), (4, 6), &[]),
            ((5, 1), (5, 5), &[(5, 9)]),
            ((6, 19), (6, 21), &[]),
            ((9, 25), (9, 27), &[]),
            ((10, 1), (10, 7), &[(9, 20), (10, 10)]),
        ],
    ),
];

/// The holidays fixed by date, for a year whose schedule is not known here.
const FIXED: &[Holiday] = &[
    ((1, 1), (1, 1), &[]),
    ((5, 1), (5, 5), &[]),
    ((10, 1), (10, 7), &[]),
];

fn weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The publication of `year`'s calendar.
pub fn publication(year: i32) -> CalendarCommand {
    let known = KNOWN.iter().find(|(y, _)| *y == year).map(|(_, h)| *h);
    let day = |(m, d): (u32, u32)| NaiveDate::from_ymd_opt(year, m, d);
    let mut holidays = Vec::new();
    let mut workdays = Vec::new();
    for (first, last, made_up) in known.unwrap_or(FIXED) {
        let (Some(mut d), Some(last)) = (day(*first), day(*last)) else {
            continue;
        };
        while d <= last {
            if !weekend(d) {
                holidays.push(d);
            }
            d += Duration::days(1);
        }
        workdays.extend(made_up.iter().filter_map(|x| day(*x)));
    }
    let note = if known.is_some() {
        format!("{year} 年部分节假日安排（国务院办公厅通知）")
    } else {
        format!(
            "{year} 年固定日期的节假日（元旦、劳动节、国庆节）；春节、清明、端午、中秋及调休以国务院办公厅通知为准，公布后请更正"
        )
    };
    CalendarCommand::Publish {
        year,
        holidays,
        workdays,
        note,
    }
}

/// The calendar the publications of `years` make, for scheduling the demo's own work.
pub fn calendar(years: impl IntoIterator<Item = i32>) -> WorkCalendar {
    let mut c = WorkCalendar::default();
    for year in years {
        let CalendarCommand::Publish {
            year,
            holidays,
            workdays,
            note,
        } = publication(year);
        c.apply(&funnel_domain::events::CalendarPublished {
            year,
            holidays,
            workdays,
            note,
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn known_years_follow_the_published_schedule() {
        let c = calendar([2025, 2026]);
        assert!(!c.is_working_day(d(2026, 2, 16)), "Spring Festival");
        assert!(c.is_working_day(d(2026, 2, 14)), "a Saturday worked");
        assert!(!c.is_working_day(d(2026, 10, 7)), "National Day");
        assert!(c.is_working_day(d(2026, 10, 10)), "a Saturday worked");
        assert!(
            !c.is_working_day(d(2025, 10, 8)),
            "the eight-day holiday of 2025"
        );
        assert!(c.is_working_day(d(2026, 10, 9)));
    }

    #[test]
    fn other_years_have_only_the_fixed_holidays_and_say_so() {
        let CalendarCommand::Publish {
            holidays,
            workdays,
            note,
            ..
        } = publication(2031);
        assert!(holidays.contains(&d(2031, 1, 1)));
        assert!(holidays.contains(&d(2031, 10, 1)));
        assert!(holidays.iter().all(|h| !weekend(*h)));
        assert!(workdays.is_empty());
        assert!(note.contains("国务院办公厅通知为准"), "{note}");
    }
}
