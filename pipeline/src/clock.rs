//! The insurer's clock. Every date the pipeline judges "today" by (the
//! time-bar, a certificate's revocation, when state may expire) is the date
//! the insurer's front door received the FSE, stamped on `fse.submitted`
//! outside the signed bytes ([`FseSubmitted::ingested_at_millis`]). The
//! dates inside the FSE (`care_date`, `received_at`) are the sender's word.
//!
//! The stamp is an instant; its date is the legal date in metropolitan France
//! (the insurer's seat), whatever the offset of the sender's clock.
//!
//! [`FseSubmitted::ingested_at_millis`]: crate::events::model::FseSubmitted::ingested_at_millis

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};

use crate::domain::{Fse, FseInput};
use crate::events::model::FseSubmitted;

/// The date of `millis` (since the epoch, UTC) in metropolitan France: UTC+1,
/// UTC+2 in summer time (EU rule, directive 2000/84/EC: from the last Sunday
/// of March to the last Sunday of October, changing at 01:00 UTC). `None`
/// outside chrono's range.
pub fn insurer_date(millis: i64) -> Option<NaiveDate> {
    let utc = DateTime::<Utc>::from_timestamp_millis(millis)?;
    let year = utc.year();
    let summer_from = last_sunday(year, 3)?.and_hms_opt(1, 0, 0)?.and_utc();
    let summer_until = last_sunday(year, 10)?.and_hms_opt(1, 0, 0)?.and_utc();
    let offset_hours = if utc >= summer_from && utc < summer_until {
        2
    } else {
        1
    };
    Some((utc + Duration::hours(offset_hours)).date_naive())
}

/// The last Sunday of `month` (March or October: 31-day months).
fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let last = NaiveDate::from_ymd_opt(year, month, 31)?;
    let back = last.weekday().num_days_from_sunday();
    last.checked_sub_days(chrono::Days::new(u64::from(back)))
        .filter(|d| d.weekday() == Weekday::Sun)
}

/// When the insurer received an FSE, as validation judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Receipt {
    /// Stamped by the front door: the insurer's date of receipt.
    Stamped(NaiveDate),
    /// A record without the stamp (written before 2026-12-05, or by a
    /// producer that does not stamp): judged as such records always were,
    /// by the dates the FSE carries, so that old runs replay as they ran.
    Unstamped,
}

impl Receipt {
    /// The receipt of an `fse.submitted` record with this stamp.
    pub fn of(ingested_at_millis: Option<i64>) -> Receipt {
        ingested_at_millis
            .and_then(insurer_date)
            .map_or(Receipt::Unstamped, Receipt::Stamped)
    }

    /// The date the time-bar is judged on: the insurer's date, or (unstamped)
    /// the date of the FSE's `received_at`.
    pub fn time_bar_date(self, fse: &Fse) -> NaiveDate {
        match self {
            Receipt::Stamped(date) => date,
            Receipt::Unstamped => fse.reimbursement_date(),
        }
    }

    /// The date a certificate must be valid and unrevoked on: the insurer's
    /// date (a signing date the signer writes proves nothing), or
    /// (unstamped) the date of care, as before the stamp.
    pub fn signature_date(self, fse: &Fse) -> NaiveDate {
        match self {
            Receipt::Stamped(date) => date,
            Receipt::Unstamped => fse.care_date,
        }
    }
}

/// How the front door stamps a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestClock {
    /// The machine's clock, when the FSE reaches the front door: production.
    Wall,
    /// Each FSE as if received at its own `received_at`: for synthetic
    /// claims dated in the past (`clearing demo`, `gen` then `submit`,
    /// the load test) and `clearing adjudicate`, which have no front door.
    Simulated,
}

impl IngestClock {
    /// The stamp for `fse`: read once per FSE at the front door, outside
    /// every stage (a stage never reads the clock; replay reads the stamp).
    pub fn stamp(self, fse: &FseSubmitted) -> i64 {
        match self {
            IngestClock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            IngestClock::Simulated => fse.received_at_millis,
        }
    }

    /// `wall` or `simulated`, as the command line gives it.
    pub fn parse(text: &str) -> Option<IngestClock> {
        match text {
            "wall" => Some(IngestClock::Wall),
            "simulated" => Some(IngestClock::Simulated),
            _ => None,
        }
    }
}

/// The receipt [`IngestClock::Simulated`] gives an FSE that has not been
/// through the front door (its JSON form): its `received_at`, or unstamped
/// when that does not parse (validation then rejects the FSE for it).
pub fn simulated_receipt(input: &FseInput) -> Receipt {
    let stamp = input
        .received_at
        .as_deref()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.timestamp_millis());
    Receipt::of(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_insurer_date_is_the_date_in_paris() {
        // Winter: UTC+1.
        assert_eq!(
            insurer_date(millis("2025-01-20T22:59:59Z")),
            Some(date(2025, 1, 20))
        );
        assert_eq!(
            insurer_date(millis("2025-01-20T23:00:00Z")),
            Some(date(2025, 1, 21))
        );
        // Summer: UTC+2.
        assert_eq!(
            insurer_date(millis("2025-07-14T21:59:59Z")),
            Some(date(2025, 7, 14))
        );
        assert_eq!(
            insurer_date(millis("2025-07-14T22:00:00Z")),
            Some(date(2025, 7, 15))
        );
        // A sender's offset does not move the insurer's date.
        assert_eq!(
            insurer_date(millis("2025-01-21T02:00:00+04:00")),
            Some(date(2025, 1, 20))
        );
    }

    #[test]
    fn summer_time_starts_and_ends_on_the_last_sundays_at_one_utc() {
        // 2025: 30 March and 26 October.
        assert_eq!(last_sunday(2025, 3), Some(date(2025, 3, 30)));
        assert_eq!(last_sunday(2025, 10), Some(date(2025, 10, 26)));
        // 2024: 31 March (the 31st itself is a Sunday).
        assert_eq!(last_sunday(2024, 3), Some(date(2024, 3, 31)));
        // 22:30 UTC the evening before the change is 23:30 in Paris either way.
        assert_eq!(
            insurer_date(millis("2025-03-29T22:30:00Z")),
            Some(date(2025, 3, 29))
        );
        // 00:59 UTC on the day of change is still winter (01:59 Paris).
        assert_eq!(
            insurer_date(millis("2025-03-30T00:59:00Z")),
            Some(date(2025, 3, 30))
        );
        // 22:30 UTC on 25 October is summer: 00:30 on the 26th in Paris.
        assert_eq!(
            insurer_date(millis("2025-10-25T22:30:00Z")),
            Some(date(2025, 10, 26))
        );
        // 23:30 UTC on 26 October is winter again: 00:30 on the 27th.
        assert_eq!(
            insurer_date(millis("2025-10-26T23:30:00Z")),
            Some(date(2025, 10, 27))
        );
    }

    #[test]
    fn a_stamp_out_of_range_is_unstamped() {
        assert_eq!(Receipt::of(Some(i64::MAX)), Receipt::Unstamped);
        assert_eq!(Receipt::of(None), Receipt::Unstamped);
        assert_eq!(
            Receipt::of(Some(millis("2026-12-05T10:00:00Z"))),
            Receipt::Stamped(date(2026, 12, 5))
        );
    }
}
