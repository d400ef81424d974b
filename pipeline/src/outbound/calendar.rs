//! Calendar arithmetic: working days (from the holiday table) and the
//! month-end and half-year arithmetic of the EU time limits. Pure: every date
//! comes from an event or a table, never from the clock.

use chrono::{Datelike, Days, NaiveDate};

use crate::rules::CalendarTable;

/// A date the holiday table does not cover: refused, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("date {0} is outside the years the holiday table covers")]
    Uncovered(NaiveDate),
    #[error("date arithmetic overflows from {0}")]
    Overflow(NaiveDate),
}

/// Bound on a working-day count: a guard against a runaway loop on bad input.
pub const MAX_WORKING_DAYS: u32 = 3660;

/// Whether `date` is a working day (a working weekday and not a public holiday).
pub fn is_working_day(table: &CalendarTable, date: NaiveDate) -> Result<bool, CalendarError> {
    if !table.covers(date) {
        return Err(CalendarError::Uncovered(date));
    }
    Ok(table.is_working_weekday(date) && table.holiday(date).is_none())
}

fn next_day(date: NaiveDate) -> Result<NaiveDate, CalendarError> {
    date.checked_add_days(Days::new(1))
        .ok_or(CalendarError::Overflow(date))
}

/// The `n`-th working day strictly after `date` (`n = 0`: `date` itself).
pub fn add_working_days(
    table: &CalendarTable,
    date: NaiveDate,
    n: u32,
) -> Result<NaiveDate, CalendarError> {
    let mut day = date;
    let mut left = n.min(MAX_WORKING_DAYS);
    while left > 0 {
        day = next_day(day)?;
        if is_working_day(table, day)? {
            left -= 1;
        }
    }
    Ok(day)
}

/// How many working days lie in `(from, to]`: the working day of `from`'s
/// count on which `to` falls (0 when `to <= from`).
pub fn working_days_between(
    table: &CalendarTable,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<u32, CalendarError> {
    let mut count = 0;
    let mut day = from;
    while day < to && count < MAX_WORKING_DAYS {
        day = next_day(day)?;
        if is_working_day(table, day)? {
            count += 1;
        }
    }
    Ok(count)
}

/// The first working day on or after `date`.
pub fn working_day_on_or_after(
    table: &CalendarTable,
    date: NaiveDate,
) -> Result<NaiveDate, CalendarError> {
    let mut day = date;
    for _ in 0..MAX_WORKING_DAYS {
        if is_working_day(table, day)? {
            return Ok(day);
        }
        day = next_day(day)?;
    }
    Err(CalendarError::Overflow(date))
}

/// The last day of the month of `year`/`month` (1-12).
pub fn month_end(year: i32, month: u32) -> Option<NaiveDate> {
    let (y, m) = if month == 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
}

/// The last day of the month `months` after `date`'s month.
pub fn month_end_after(date: NaiveDate, months: u32) -> Option<NaiveDate> {
    let index = i64::from(date.year()) * 12 + i64::from(date.month0()) + i64::from(months);
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    month_end(year, month)
}

/// A calendar half-year: H1 = January-June, H2 = July-December.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HalfYear {
    pub year: i32,
    /// 1 or 2.
    pub half: u8,
}

impl HalfYear {
    pub fn of(date: NaiveDate) -> HalfYear {
        HalfYear {
            year: date.year(),
            half: if date.month() <= 6 { 1 } else { 2 },
        }
    }

    /// Its last day (30 June or 31 December).
    pub fn end(self) -> NaiveDate {
        let (m, d) = if self.half == 1 { (6, 30) } else { (12, 31) };
        NaiveDate::from_ymd_opt(self.year, m, d).unwrap_or(NaiveDate::MAX)
    }

    /// `YYYY-H1` / `YYYY-H2`, the label claims carry.
    pub fn label(self) -> String {
        format!("{}-H{}", self.year, self.half)
    }

    pub fn parse(text: &str) -> Option<HalfYear> {
        let (year, half) = text.split_once("-H")?;
        let half: u8 = half.parse().ok()?;
        ((1..=2).contains(&half)).then_some(HalfYear {
            year: year.parse().ok()?,
            half,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;
    use chrono::Weekday;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn table() -> CalendarTable {
        Rules::embedded().unwrap().calendar
    }

    /// Easter Sunday by the Meeus/Jones/Butcher algorithm: independent of the
    /// generator that wrote calendar.toml.
    fn easter(y: i32) -> NaiveDate {
        let a = y % 19;
        let b = y / 100;
        let c = y % 100;
        let h = (19 * a + b - b / 4 - (b - (b + 8) / 25 + 1) / 3 + 15) % 30;
        let l = (32 + 2 * (b % 4) + 2 * (c / 4) - h - c % 4) % 7;
        let m = (a + 11 * h + 22 * l) / 451;
        let month = (h + l - 7 * m + 114) / 31;
        let day = (h + l - 7 * m + 114) % 31 + 1;
        NaiveDate::from_ymd_opt(y, month as u32, day as u32).unwrap()
    }

    #[test]
    fn the_holiday_table_holds_the_eleven_national_holidays_of_every_year() {
        let t = table();
        for year in t.first_year..=t.last_year {
            let e = easter(year);
            let mut want: Vec<NaiveDate> = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1)]
                .iter()
                .chain(&[(11, 11), (12, 25)])
                .map(|(m, dd)| NaiveDate::from_ymd_opt(year, *m, *dd).unwrap())
                .chain([e + Days::new(1), e + Days::new(39), e + Days::new(50)])
                .collect();
            want.sort();
            want.dedup();
            let got: Vec<NaiveDate> = t.holidays_in(year).into_iter().map(|(d, _)| d).collect();
            assert_eq!(got, want, "{year}");
        }
        assert_eq!(easter(2024), d("2024-03-31"));
        assert_eq!(easter(2025), d("2025-04-20"));
        assert_eq!(t.holiday(d("2008-05-01")), Some("ascension+labour_day"));
    }

    #[test]
    fn working_days_skip_weekends_and_holidays() {
        let t = table();
        assert!(!is_working_day(&t, d("2025-05-01")).unwrap(), "labour day");
        assert!(!is_working_day(&t, d("2025-05-03")).unwrap(), "saturday");
        assert!(is_working_day(&t, d("2025-05-02")).unwrap());
        // Wed 30 Apr 2025 + 7: Fri 2, Mon 5, Tue 6, Wed 7, (Thu 8 V-day), Fri 9,
        // Mon 12, Tue 13.
        assert_eq!(
            add_working_days(&t, d("2025-04-30"), 7).unwrap(),
            d("2025-05-13")
        );
        // Ascension 29 May 2025 and Whit Monday 9 June 2025.
        assert_eq!(
            add_working_days(&t, d("2025-05-28"), 1).unwrap(),
            d("2025-05-30")
        );
        assert_eq!(
            add_working_days(&t, d("2025-06-06"), 1).unwrap(),
            d("2025-06-10")
        );
        // Christmas to New Year 2024: Tue 24 -> 26, 27, 30, 31, (1 Jan) 2 Jan.
        assert_eq!(
            add_working_days(&t, d("2024-12-24"), 5).unwrap(),
            d("2025-01-02")
        );
        assert_eq!(
            add_working_days(&t, d("2025-01-04"), 0).unwrap(),
            d("2025-01-04")
        );
        assert_eq!(
            working_days_between(&t, d("2024-12-24"), d("2025-01-02")).unwrap(),
            5
        );
        assert_eq!(
            working_days_between(&t, d("2025-01-02"), d("2024-12-24")).unwrap(),
            0
        );
        assert_eq!(
            working_day_on_or_after(&t, d("2025-05-31")).unwrap(),
            d("2025-06-02")
        );
        // A leap day that is a working day.
        assert_eq!(
            add_working_days(&t, d("2024-02-28"), 1).unwrap(),
            d("2024-02-29")
        );
        assert_eq!(
            add_working_days(&t, d("2041-01-01"), 1),
            Err(CalendarError::Uncovered(d("2041-01-02")))
        );
        assert!(is_working_day(&t, d("2004-12-31")).is_err());
    }

    #[test]
    fn month_ends_and_half_years() {
        assert_eq!(month_end(2024, 2), Some(d("2024-02-29")), "leap");
        assert_eq!(month_end(2025, 2), Some(d("2025-02-28")));
        assert_eq!(
            month_end(2100, 2),
            Some(d("2100-02-28")),
            "century, not leap"
        );
        assert_eq!(month_end(2000, 2), Some(d("2000-02-29")), "400, leap");
        assert_eq!(month_end(2025, 12), Some(d("2025-12-31")));
        assert_eq!(month_end_after(d("2026-08-15"), 18), Some(d("2028-02-29")));
        assert_eq!(month_end_after(d("2025-01-31"), 1), Some(d("2025-02-28")));
        assert_eq!(month_end_after(d("2025-12-01"), 0), Some(d("2025-12-31")));
        assert_eq!(HalfYear::of(d("2025-06-30")).label(), "2025-H1");
        assert_eq!(HalfYear::of(d("2025-07-01")).label(), "2025-H2");
        assert_eq!(HalfYear::of(d("2025-07-01")).end(), d("2025-12-31"));
        assert_eq!(
            HalfYear::parse("2025-H2"),
            Some(HalfYear::of(d("2025-12-31")))
        );
        assert_eq!(HalfYear::parse("2025-H3"), None);
    }

    proptest! {
        #[test]
        fn adding_working_days_lands_on_a_working_day_and_counts_back(
            start in 0i64..(365 * 30), n in 1u32..40
        ) {
            let t = table();
            let from = d("2006-01-01") + Days::new(start as u64);
            let to = add_working_days(&t, from, n).unwrap();
            prop_assert!(is_working_day(&t, to).unwrap());
            prop_assert!(to.weekday() != Weekday::Sat && to.weekday() != Weekday::Sun);
            prop_assert_eq!(working_days_between(&t, from, to).unwrap(), n);
            // n working days never take fewer than n calendar days, nor more
            // than 2n + 7 (weekends, at most a few holidays in a row).
            let span = (to - from).num_days();
            prop_assert!(span >= i64::from(n) && span <= 2 * i64::from(n) + 7);
        }

        #[test]
        fn month_end_after_is_a_month_end_n_months_later(
            start in 0i64..(365 * 100), n in 0u32..60
        ) {
            let from = d("1990-01-01") + Days::new(start as u64);
            let end = month_end_after(from, n).unwrap();
            prop_assert_eq!(end.succ_opt().unwrap().day(), 1);
            let months = (end.year() - from.year()) * 12 + end.month() as i32 - from.month() as i32;
            prop_assert_eq!(months, n as i32);
        }

        #[test]
        fn a_date_lies_in_its_half_year(start in 0i64..(365 * 100)) {
            let date = d("1990-01-01") + Days::new(start as u64);
            let h = HalfYear::of(date);
            prop_assert!(date <= h.end());
            prop_assert!((h.end() - date).num_days() < 184);
            prop_assert_eq!(HalfYear::parse(&h.label()), Some(h));
        }
    }
}
