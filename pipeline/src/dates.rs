//! Dates as the wire and the JSON carry them: `YYYY-MM-DD`.
//!
//! The one parser every stage and decoder uses. Its meaning is chrono's
//! `NaiveDate::parse_from_str(text, "%Y-%m-%d")`, which old claims were
//! decided under and replay must reproduce; the common shape (ten ASCII
//! characters, four-digit year) is read directly, because chrono interprets
//! its format string on every call (3 % of replay's CPU, docs/performance.md,
//! "Replay"). Anything else goes to chrono, so odd forms it accepts stay accepted.

use chrono::NaiveDate;

/// Parses `text` exactly as `NaiveDate::parse_from_str(text, "%Y-%m-%d")`
/// does; `None` where chrono returns an error.
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    match text.as_bytes() {
        [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]
            if [y0, y1, y2, y3, m0, m1, d0, d1]
                .iter()
                .all(|b| b.is_ascii_digit()) =>
        {
            let number = |digits: &[&u8]| {
                digits
                    .iter()
                    .fold(0u32, |n, &&digit| n * 10 + u32::from(digit - b'0'))
            };
            let year = i32::try_from(number(&[y0, y1, y2, y3])).ok()?;
            NaiveDate::from_ymd_opt(year, number(&[m0, m1]), number(&[d0, d1]))
        }
        _ => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono(text: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
    }

    #[test]
    fn the_common_shape_and_its_edges() {
        assert_eq!(
            parse_iso_date("2025-03-14"),
            NaiveDate::from_ymd_opt(2025, 3, 14)
        );
        assert_eq!(
            parse_iso_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for text in [
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-01-00",
            "2025-04-31",
        ] {
            assert_eq!(parse_iso_date(text), None, "{text}");
            assert_eq!(chrono(text), None, "{text}");
        }
        // Forms outside the common shape keep chrono's answer, whatever it is.
        for text in [
            "02024-1-05",
            "2024-1-5",
            "+2024-01-05",
            "2024-01-05 ",
            "",
            "2024/01/05",
        ] {
            assert_eq!(parse_iso_date(text), chrono(text), "{text}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_chrono_on_dates_of_the_common_shape(
            y in 0u32..10_000, m in 0u32..100, d in 0u32..100,
        ) {
            let text = format!("{y:04}-{m:02}-{d:02}");
            prop_assert_eq!(parse_iso_date(&text), chrono(&text));
        }

        #[test]
        fn agrees_with_chrono_on_any_text(text in "[0-9+ /-]{0,12}|\\PC{0,12}") {
            prop_assert_eq!(parse_iso_date(&text), chrono(&text));
        }
    }
}
