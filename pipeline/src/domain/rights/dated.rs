//! The dated values of a rights record: the declared GP (médecin traitant),
//! the local regime and the complementary insurer (AMC), each a list of
//! periods read on the date of care, as coverage is.
//!
//! On a date inside one of a kind's periods, that period's value holds;
//! outside every period, the record's scalar value (`declared_gp`,
//! `local_regime`, `amc`) holds. A record without periods (every record
//! written with `ref.rights.v0`) therefore decides exactly as before: its
//! scalar holds on every date. Periods of one kind may not overlap, so at
//! most one holds on a date.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{LocalRegime, MAX_PERIODS, Period, RightsError};

/// A period that carries a value.
pub trait DatedValue {
    type Value: ?Sized;
    fn period(&self) -> Period;
    fn value(&self) -> &Self::Value;
}

/// The declared GP over an inclusive period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpPeriod {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    /// The GP's RPPS.
    pub rpps: String,
}

/// The local regime over an inclusive period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRegimePeriod {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub regime: LocalRegime,
}

/// The complementary insurer (AMC) over an inclusive period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmcPeriod {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    /// The AMC's number.
    pub amc: String,
}

/// A period type whose `from`/`to` bound one value, held in `$field`.
macro_rules! dated_value {
    ($period:ty, $value:ty, $field:ident) => {
        impl DatedValue for $period {
            type Value = $value;
            fn period(&self) -> Period {
                Period {
                    from: self.from,
                    to: self.to,
                }
            }
            fn value(&self) -> &$value {
                &self.$field
            }
        }
    };
}

dated_value!(GpPeriod, str, rpps);
dated_value!(LocalRegimePeriod, LocalRegime, regime);
dated_value!(AmcPeriod, str, amc);

/// The value on `date`: the period's that contains it, else the scalar.
pub fn value_on<'a, P: DatedValue>(
    periods: &'a [P],
    scalar: Option<&'a P::Value>,
    date: NaiveDate,
) -> Option<&'a P::Value> {
    match periods.iter().find(|p| p.period().contains(date)) {
        Some(p) => Some(p.value()),
        None => scalar,
    }
}

/// At most [`MAX_PERIODS`] periods, none ending before it starts, no two
/// sharing a day (else the value on that day would depend on their order).
pub fn check_periods<P: DatedValue>(name: &'static str, periods: &[P]) -> Result<(), RightsError> {
    if periods.len() > MAX_PERIODS {
        return Err(RightsError::TooMany(name));
    }
    let mut sorted: Vec<Period> = periods.iter().map(DatedValue::period).collect();
    if sorted.iter().any(|p| p.to.is_some_and(|to| to < p.from)) {
        return Err(RightsError::Inverted(name));
    }
    sorted.sort();
    if sorted
        .windows(2)
        .any(|w| w[0].to.is_none_or(|to| to >= w[1].from))
    {
        return Err(RightsError::Overlap(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn amc(from: &str, to: Option<&str>, value: &str) -> AmcPeriod {
        AmcPeriod {
            from: d(from),
            to: to.map(d),
            amc: value.to_string(),
        }
    }

    #[test]
    fn without_periods_the_scalar_holds_on_every_date() {
        let none: [AmcPeriod; 0] = [];
        for date in ["1900-01-01", "2025-06-15", "2099-12-31"] {
            assert_eq!(value_on(&none, Some("AMC1"), d(date)), Some("AMC1"));
            assert_eq!(value_on(&none, None, d(date)), None);
        }
    }

    #[test]
    fn a_period_wins_inside_it_and_the_scalar_holds_outside() {
        let periods = [
            amc("2025-01-01", Some("2025-06-14"), "OLD"),
            amc("2025-06-15", Some("2025-12-31"), "NEW"),
        ];
        let on = |date| value_on(&periods, Some("SCALAR"), d(date));
        assert_eq!(on("2024-12-31"), Some("SCALAR"));
        assert_eq!(on("2025-01-01"), Some("OLD"));
        assert_eq!(on("2025-06-14"), Some("OLD"), "the last day is inside");
        assert_eq!(on("2025-06-15"), Some("NEW"), "the first day is inside");
        assert_eq!(on("2025-12-31"), Some("NEW"));
        assert_eq!(on("2026-01-01"), Some("SCALAR"));
        assert_eq!(value_on(&periods, None, d("2026-01-01")), None);
    }

    #[test]
    fn periods_that_share_a_day_are_refused_in_any_order() {
        let touching = [
            amc("2025-06-15", None, "NEW"),
            amc("2025-01-01", Some("2025-06-15"), "OLD"),
        ];
        assert_eq!(
            check_periods("amc_periods", &touching),
            Err(RightsError::Overlap("amc_periods"))
        );
        let open_then_later = [
            amc("2025-01-01", None, "OLD"),
            amc("2026-01-01", None, "NEW"),
        ];
        assert_eq!(
            check_periods("amc_periods", &open_then_later),
            Err(RightsError::Overlap("amc_periods"))
        );
        let adjacent = [
            amc("2025-06-15", None, "NEW"),
            amc("2025-01-01", Some("2025-06-14"), "OLD"),
        ];
        assert_eq!(check_periods("amc_periods", &adjacent), Ok(()));
    }

    #[test]
    fn an_inverted_period_and_too_many_periods_are_refused() {
        let inverted = [amc("2025-06-15", Some("2025-06-14"), "X")];
        assert_eq!(
            check_periods("amc_periods", &inverted),
            Err(RightsError::Inverted("amc_periods"))
        );
        let one_day = [amc("2025-06-15", Some("2025-06-15"), "X")];
        assert_eq!(check_periods("amc_periods", &one_day), Ok(()));
        let many: Vec<AmcPeriod> = (0..=MAX_PERIODS)
            .map(|i| {
                let day = d("2000-01-01") + chrono::Duration::days(i as i64);
                AmcPeriod {
                    from: day,
                    to: Some(day),
                    amc: "X".to_string(),
                }
            })
            .collect();
        assert_eq!(
            check_periods("amc_periods", &many),
            Err(RightsError::TooMany("amc_periods"))
        );
        assert_eq!(check_periods("amc_periods", &many[1..]), Ok(()));
    }
}
