//! Working days. Monday to Friday are working days and weekends are not, except where headquarters
//! published a year's calendar (`calendar.published`): its public holidays are days off, its
//! make-up working days (调休, usually a Saturday or Sunday next to a long holiday) are worked.
//! Reminders and escalations "after N working days" count with it. A calendar that takes more
//! weekdays off than `Policy::calendar_days_off_without_executive` is published by an executive.

use crate::acting::{Ctx, require_role};
use crate::events::{CalendarPublished, Event};
use crate::refusal::{Decision, RefusalCode, check, refuse};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use funnel_types::Role;
use std::collections::{BTreeMap, BTreeSet};

/// One year's exceptions to Monday-to-Friday.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct YearCalendar {
    pub holidays: BTreeSet<NaiveDate>,
    pub workdays: BTreeSet<NaiveDate>,
}

/// The published calendars, by year. `Default` knows no holidays: Monday to Friday.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkCalendar {
    pub years: BTreeMap<i32, YearCalendar>,
}

fn weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

impl WorkCalendar {
    /// Applies a publication: it replaces that year's calendar.
    pub fn apply(&mut self, e: &CalendarPublished) {
        self.years.insert(
            e.year,
            YearCalendar {
                holidays: e.holidays.iter().copied().collect(),
                workdays: e.workdays.iter().copied().collect(),
            },
        );
    }

    /// Applies an event if it is a calendar publication.
    pub fn evolve(&mut self, event: &Event) {
        if let Event::CalendarPublished(e) = event {
            self.apply(e);
        }
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        match self.years.get(&d.year()) {
            Some(y) if y.workdays.contains(&d) => true,
            Some(y) if y.holidays.contains(&d) => false,
            _ => !weekend(d),
        }
    }

    /// `n` working days (office time in `tz`) after `t`, at the same local time of day.
    pub fn add_working_days(&self, t: DateTime<Utc>, n: u32, tz: chrono_tz::Tz) -> DateTime<Utc> {
        let local = t.with_timezone(&tz).naive_local();
        let mut date = local.date();
        let mut left = n;
        while left > 0 {
            let Some(next) = date.succ_opt() else {
                return t;
            };
            date = next;
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        let naive = date.and_time(local.time());
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|| {
                t.checked_add_signed(Duration::days(i64::from(n)))
                    .unwrap_or(t)
            })
    }
}

/// The calendar of one year as an aggregate (`calendar-<year>`). `Default` is "never published".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalendarState {
    pub published: Option<CalendarPublished>,
}

pub fn evolve_calendar(mut state: CalendarState, event: &Event) -> CalendarState {
    if let Event::CalendarPublished(e) = event {
        state.published = Some(e.clone());
    }
    state
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalendarCommand {
    /// Publish (or correct) a year's calendar. Dates may come in any order and repeated.
    Publish {
        year: i32,
        holidays: Vec<NaiveDate>,
        workdays: Vec<NaiveDate>,
        note: String,
    },
}

pub fn decide_calendar(state: &CalendarState, cmd: &CalendarCommand, ctx: &Ctx<'_>) -> Decision {
    require_role(
        ctx.acting,
        &[Role::SalesDepartment, Role::Executive],
        "publish the working calendar",
    )?;
    let CalendarCommand::Publish {
        year,
        holidays,
        workdays,
        note,
    } = cmd;
    check::optional("note", note, check::LONG)?;
    if !(2000..=2100).contains(year) {
        return refuse(
            RefusalCode::InvalidValue,
            format!("{year} is not a year a calendar is published for (2000 to 2100)"),
            format!("{year} 不在可发布日历的年份范围内（2000–2100）"),
        );
    }
    let holidays: BTreeSet<NaiveDate> = holidays.iter().copied().collect();
    let workdays: BTreeSet<NaiveDate> = workdays.iter().copied().collect();
    for d in holidays.iter().chain(&workdays) {
        if d.year() != *year {
            return refuse(
                RefusalCode::InvalidValue,
                format!("{d} is not in {year}"),
                format!("{d} 不在 {year} 年内"),
            );
        }
    }
    if let Some(d) = holidays.iter().find(|d| weekend(**d)) {
        return refuse(
            RefusalCode::InvalidValue,
            format!(
                "{d} is a {}, not a working day anyway: holidays are the weekdays off",
                d.weekday()
            ),
            format!("{d} 是周末，本就不是工作日：假日只列出放假的工作日"),
        );
    }
    if let Some(d) = workdays.iter().find(|d| !weekend(**d)) {
        return refuse(
            RefusalCode::InvalidValue,
            format!(
                "{d} is a {}, a working day anyway: make-up working days are the weekend days worked",
                d.weekday()
            ),
            format!("{d} 是工作日：调休上班日只列出需上班的周末"),
        );
    }
    // Holidays less make-up days: the weekdays this publication takes off the year.
    let days_off = holidays.len().saturating_sub(workdays.len());
    let limit = ctx.policy.calendar_days_off_without_executive;
    let executive = ctx.acting.is_system() || ctx.acting.role() == Some(Role::Executive);
    if days_off > limit as usize && !executive {
        return refuse(
            RefusalCode::CalendarNeedsExecutive,
            format!(
                "this calendar takes {days_off} weekdays off {year} (holidays less make-up days); more than {limit} must be published by an executive"
            ),
            format!(
                "该日历使 {year} 年减少 {days_off} 个工作日（假日减去调休上班日）；超过 {limit} 个须由公司高层发布"
            ),
        );
    }
    let event = CalendarPublished {
        year: *year,
        holidays: holidays.into_iter().collect(),
        workdays: workdays.into_iter().collect(),
        note: note.trim().to_string(),
    };
    if state.published.as_ref() == Some(&event) {
        return refuse(
            RefusalCode::NothingToDo,
            format!("the {year} calendar is already exactly this"),
            format!("{year} 年日历已是如此"),
        );
    }
    Ok(vec![Event::CalendarPublished(event)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    /// National Day 2026 as a schedule of this shape: 1–7 October off (the weekdays among them
    /// listed), Sunday 27 September and Saturday 10 October worked.
    fn golden_week() -> WorkCalendar {
        let mut c = WorkCalendar::default();
        c.apply(&CalendarPublished {
            year: 2026,
            holidays: vec![
                d(2026, 10, 1),
                d(2026, 10, 2),
                d(2026, 10, 5),
                d(2026, 10, 6),
                d(2026, 10, 7),
            ],
            workdays: vec![d(2026, 9, 27), d(2026, 10, 10)],
            note: String::new(),
        });
        c
    }

    #[test]
    fn holidays_are_off_and_make_up_days_are_worked() {
        let c = golden_week();
        assert!(!c.is_working_day(d(2026, 10, 1)));
        assert!(c.is_working_day(d(2026, 10, 8)));
        assert!(c.is_working_day(d(2026, 10, 10)), "a Saturday worked");
        assert!(c.is_working_day(d(2026, 9, 27)), "a Sunday worked");
        assert!(!c.is_working_day(d(2026, 10, 11)), "an ordinary Sunday");
        // Another year is Monday to Friday.
        assert!(
            c.is_working_day(d(2027, 10, 1)),
            "a Friday with no calendar"
        );
    }

    #[test]
    fn counting_working_days_skips_the_holiday() {
        let tz = chrono_tz::Asia::Shanghai;
        let c = golden_week();
        // Wednesday 30 September 2026, 10:00 in Shanghai.
        let t = tz
            .with_ymd_and_hms(2026, 9, 30, 10, 0, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc);
        let at = |y, m, day| {
            tz.with_ymd_and_hms(y, m, day, 10, 0, 0)
                .single()
                .expect("time")
                .with_timezone(&Utc)
        };
        assert_eq!(c.add_working_days(t, 1, tz), at(2026, 10, 8));
        assert_eq!(c.add_working_days(t, 2, tz), at(2026, 10, 9));
        assert_eq!(c.add_working_days(t, 3, tz), at(2026, 10, 10));
        assert_eq!(c.add_working_days(t, 4, tz), at(2026, 10, 12));
        // Without the calendar, the same count lands in the holiday.
        assert_eq!(
            WorkCalendar::default().add_working_days(t, 1, tz),
            at(2026, 10, 1)
        );
    }

    proptest! {
        #[test]
        fn adding_n_working_days_passes_exactly_n_of_them(
            start in 0i64..3000, n in 0u32..40,
            holidays in prop::collection::btree_set(0i64..3000, 0..60),
            workdays in prop::collection::btree_set(0i64..3000, 0..30),
        ) {
            let base = d(2024, 1, 1);
            let day = |k: i64| base + Duration::days(k);
            let mut c = WorkCalendar::default();
            for y in 2024..=2032 {
                let pick = |set: &BTreeSet<i64>, want_weekend: bool| -> Vec<NaiveDate> {
                    set.iter().map(|k| day(*k)).filter(|x| x.year() == y && weekend(*x) == want_weekend).collect()
                };
                c.apply(&CalendarPublished { year: y, holidays: pick(&holidays, false), workdays: pick(&workdays, true), note: String::new() });
            }
            let tz = chrono_tz::Asia::Shanghai;
            let t = tz.from_local_datetime(&day(start).and_hms_opt(9, 30, 0).expect("time")).single().expect("time").with_timezone(&Utc);
            let end = c.add_working_days(t, n, tz);
            let end_local = end.with_timezone(&tz);
            prop_assert_eq!(end_local.time(), chrono::NaiveTime::from_hms_opt(9, 30, 0).expect("time"));
            let mut k = day(start);
            let mut passed = 0;
            while k < end_local.date_naive() {
                k = k.succ_opt().expect("date");
                if c.is_working_day(k) { passed += 1; }
            }
            prop_assert_eq!(passed, n);
            prop_assert!(n == 0 || c.is_working_day(end_local.date_naive()));
        }
    }
}
