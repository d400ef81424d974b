//! Money in integer euro cents, and the project's one rounding rule.
//!
//! Every amount is a [`Cents`] (`i64`); floats never touch money. Rates are
//! integer percents ([`Rate`]), coefficients are hundredths ([`Hundredths`]).
//! Products are computed exactly in `i128` and rounded **once**, by
//! [`round_half_up_div`]: half a cent rounds away from zero (domain.md §3.1
//! says "half-up assumed — UNCONFIRMED"; docs/rules.md records the choice).

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bound on any single amount the pipeline accepts or computes: €10 million.
/// Far above any real care line, far below `i64` overflow even when summed
/// over a year of claims.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000;

/// An amount of money in euro cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is not a decimal number of euros with at most two decimals")]
    Syntax,
    #[error("amount is negative")]
    Negative,
    #[error("amount exceeds the bound of 10,000,000.00 euros")]
    TooLarge,
}

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub const fn new(cents: i64) -> Cents {
        Cents(cents)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// Parses a non-negative decimal euro amount: `"30"`, `"30.5"`, `"30.00"`.
    /// Input is lenient on the number of decimals (0 to 2); output is always
    /// two decimals. Signs, exponents, separators and spaces are refused.
    pub fn parse_euros(text: &str) -> Result<Cents, MoneyError> {
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (units, decimals) = match text.split_once('.') {
            Some((u, d)) => (u, d),
            None => (text, ""),
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if units.is_empty() || !digits_only(units) || !digits_only(decimals) || decimals.len() > 2 {
            return Err(MoneyError::Syntax);
        }
        if text.contains('.') && decimals.is_empty() {
            return Err(MoneyError::Syntax);
        }
        // 10 digits of euros already exceed the bound: refuse before parsing.
        if units.trim_start_matches('0').len() > 8 {
            return Err(MoneyError::TooLarge);
        }
        let euros: i64 = units.parse().map_err(|_| MoneyError::Syntax)?;
        let mut cents: i64 = if decimals.is_empty() {
            0
        } else {
            decimals.parse().map_err(|_| MoneyError::Syntax)?
        };
        if decimals.len() == 1 {
            cents *= 10;
        }
        let total = euros * 100 + cents;
        if total > MAX_AMOUNT_CENTS {
            return Err(MoneyError::TooLarge);
        }
        Ok(Cents(total))
    }

    /// `self × rate`, rounded by the project rule.
    pub fn apply_rate(self, rate: Rate) -> Cents {
        Cents(round_half_up_div(
            i128::from(self.0) * i128::from(rate.percent()),
            100,
        ))
    }

    /// `self × coefficient × quantity`, rounded once by the project rule.
    pub fn times(self, coefficient: Hundredths, quantity: u32) -> Cents {
        Cents(round_half_up_div(
            i128::from(self.0) * i128::from(coefficient.get()) * i128::from(quantity),
            100,
        ))
    }

    pub fn min(self, other: Cents) -> Cents {
        Cents(self.0.min(other.0))
    }

    pub fn max(self, other: Cents) -> Cents {
        Cents(self.0.max(other.0))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Big-endian bytes, for state values.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    pub fn from_be_bytes(bytes: [u8; 8]) -> Cents {
        Cents(i64::from_be_bytes(bytes))
    }
}

/// The rounding rule, written down once: `numerator / denominator` rounded to
/// the nearest integer, halves away from zero. `denominator` must be positive.
/// Results are clamped into `i64`, which no bounded amount can reach.
pub fn round_half_up_div(numerator: i128, denominator: i128) -> i64 {
    debug_assert!(denominator > 0, "rounding by a non-positive denominator");
    let half = denominator / 2;
    let rounded = if numerator >= 0 {
        (numerator + half) / denominator
    } else {
        -((-numerator + half) / denominator)
    };
    rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl fmt::Display for Cents {
    /// Euros with exactly two decimals: `30.00`, `-0.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cents, D::Error> {
        let text = String::deserialize(deserializer)?;
        let negative = text.starts_with('-');
        let magnitude =
            Cents::parse_euros(text.trim_start_matches('-')).map_err(serde::de::Error::custom)?;
        Ok(if negative { -magnitude } else { magnitude })
    }
}

impl Add for Cents {
    type Output = Cents;
    fn add(self, rhs: Cents) -> Cents {
        Cents(self.0 + rhs.0)
    }
}

impl AddAssign for Cents {
    fn add_assign(&mut self, rhs: Cents) {
        self.0 += rhs.0;
    }
}

impl Sub for Cents {
    type Output = Cents;
    fn sub(self, rhs: Cents) -> Cents {
        Cents(self.0 - rhs.0)
    }
}

impl SubAssign for Cents {
    fn sub_assign(&mut self, rhs: Cents) {
        self.0 -= rhs.0;
    }
}

impl Neg for Cents {
    type Output = Cents;
    fn neg(self) -> Cents {
        Cents(-self.0)
    }
}

impl Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents::ZERO, Add::add)
    }
}

/// A reimbursement rate in whole percent, 0 to 100. Every rate the domain
/// knows (15, 30, 55, 60, 65, 70, 80, 90, 100) is a whole percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Rate(u8);

impl Rate {
    pub const FULL: Rate = Rate(100);
    pub const ZERO: Rate = Rate(0);

    pub const fn new(percent: u8) -> Option<Rate> {
        if percent <= 100 {
            Some(Rate(percent))
        } else {
            None
        }
    }

    pub const fn percent(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Rate {
    type Error = String;
    fn try_from(percent: u8) -> Result<Rate, String> {
        Rate::new(percent).ok_or_else(|| format!("rate {percent} is above 100 %"))
    }
}

impl From<Rate> for u8 {
    fn from(rate: Rate) -> u8 {
        rate.0
    }
}

/// A non-negative decimal with two decimals, as hundredths: NGAP coefficients
/// (`"1"`, `"1.5"`, `"8.5"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hundredths(u32);

impl Hundredths {
    pub const ONE: Hundredths = Hundredths(100);
    /// NGAP coefficients stay well under this; anything above is absurd input.
    pub const MAX: Hundredths = Hundredths(100_000);

    pub const fn new(hundredths: u32) -> Hundredths {
        Hundredths(hundredths)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parses `"1"`, `"1.5"`, `"12.25"`: positive, at most two decimals,
    /// at most [`Hundredths::MAX`].
    pub fn parse(text: &str) -> Option<Hundredths> {
        let cents = Cents::parse_euros(text).ok()?;
        let value = u32::try_from(cents.get()).ok()?;
        (value > 0 && value <= Self::MAX.0).then_some(Hundredths(value))
    }
}

impl<'de> Deserialize<'de> for Hundredths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hundredths, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hundredths::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("not a positive decimal with two decimals"))
    }
}

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (units, rest) = (self.0 / 100, self.0 % 100);
        match rest {
            0 => write!(f, "{units}"),
            r if r % 10 == 0 => write!(f, "{units}.{}", r / 10),
            r => write!(f, "{units}.{r:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_lenient_decimals_and_prints_two() {
        assert_eq!(Cents::parse_euros("30").unwrap(), Cents(3000));
        assert_eq!(Cents::parse_euros("30.5").unwrap(), Cents(3050));
        assert_eq!(Cents::parse_euros("19.06").unwrap(), Cents(1906));
        assert_eq!(Cents::parse_euros("0.07").unwrap().to_string(), "0.07");
        assert_eq!(Cents(-50).to_string(), "-0.50");
        assert_eq!(Cents(123_456).to_string(), "1234.56");
    }

    #[test]
    fn refuses_malformed_amounts() {
        for bad in [
            "", ".", "1.", ".5", "1.234", "1,00", "1e3", " 1", "+1", "abc", "1.2.3", "١",
        ] {
            assert_eq!(
                Cents::parse_euros(bad),
                Err(MoneyError::Syntax),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(Cents::parse_euros("-1.00"), Err(MoneyError::Negative));
        assert_eq!(Cents::parse_euros("10000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(
            Cents::parse_euros("99999999999999999999999"),
            Err(MoneyError::TooLarge)
        );
        assert!(Cents::parse_euros("10000000.00").is_ok());
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_half_up_div(5, 10), 1);
        assert_eq!(round_half_up_div(4, 10), 0);
        assert_eq!(round_half_up_div(-5, 10), -1);
        assert_eq!(round_half_up_div(-4, 10), 0);
        // 19.06 × 70 % = 13.342 → 13.34 (domain.md E5).
        assert_eq!(Cents(1906).apply_rate(Rate(70)), Cents(1334));
        // 26.50 × 70 % = 18.55 exactly (E9).
        assert_eq!(Cents(2650).apply_rate(Rate(70)), Cents(1855));
        // 0.27 × 60 % = 0.162 → 0.16; 0.25 × 30 % = 0.075 → 0.08.
        assert_eq!(Cents(27).apply_rate(Rate(60)), Cents(16));
        assert_eq!(Cents(25).apply_rate(Rate(30)), Cents(8));
    }

    #[test]
    fn coefficients() {
        assert_eq!(Hundredths::parse("1"), Some(Hundredths(100)));
        assert_eq!(Hundredths::parse("8.5"), Some(Hundredths(850)));
        assert_eq!(Hundredths::parse("0"), None);
        assert_eq!(Hundredths::parse("1000.01"), None);
        assert_eq!(Hundredths(850).to_string(), "8.5");
        assert_eq!(Hundredths(1225).to_string(), "12.25");
        // AMI 3.15 × 1.5 × 2 acts = 9.45.
        assert_eq!(Cents(315).times(Hundredths(150), 2), Cents(945));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(cents in 0i64..=MAX_AMOUNT_CENTS) {
            let text = Cents(cents).to_string();
            prop_assert_eq!(Cents::parse_euros(&text).unwrap(), Cents(cents));
        }

        #[test]
        fn parse_never_panics(text in ".{0,24}") {
            let _ = Cents::parse_euros(&text);
        }

        #[test]
        fn rate_never_exceeds_base(cents in 0i64..=MAX_AMOUNT_CENTS, percent in 0u8..=100) {
            let gross = Cents(cents).apply_rate(Rate(percent));
            prop_assert!(gross >= Cents::ZERO && gross <= Cents(cents));
            // Complementary shares never lose or invent a cent beyond one rounding.
            let rest = Cents(cents).apply_rate(Rate(100 - percent));
            prop_assert!((gross + rest - Cents(cents)).get().abs() <= 1);
        }
    }
}
