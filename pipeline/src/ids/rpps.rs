//! RPPS number (Répertoire partagé des professionnels de santé): the 11-digit
//! identifier of a health professional. Format is enforced; the Luhn key is
//! only reported, because its use on RPPS is not officially confirmed.

use super::luhn::{luhn_check_digit, luhn_valid};
use super::{IdError, all_digits};

const KIND: &str = "RPPS";

/// An 11-digit RPPS number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rpps(String);

super::public_text!(Rpps);

impl Rpps {
    /// Parses exactly 11 ASCII digits (surrounding whitespace trimmed). The
    /// Luhn key is not enforced: see [`Rpps::luhn_ok`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        if s.len() != 11 || !all_digits(s) {
            return Err(IdError::Format {
                kind: KIND,
                expected: "11 digits",
            });
        }
        Ok(Rpps(s.to_owned()))
    }

    /// Builds an RPPS from its first 10 digits by appending the Luhn digit.
    pub fn from_body(first10: &str) -> Result<Rpps, IdError> {
        let body = first10.trim();
        let bad = IdError::Format {
            kind: KIND,
            expected: "10-digit body",
        };
        if body.len() != 10 || !all_digits(body) {
            return Err(bad);
        }
        let key = luhn_check_digit(body).ok_or(bad)?;
        Ok(Rpps(format!("{body}{key}")))
    }

    /// Whether the last digit is a valid Luhn key. A warning-level check
    /// only: the RPPS key algorithm is not officially confirmed.
    pub fn luhn_ok(&self) -> bool {
        luhn_valid(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn luhn_vectors() {
        for v in ["10000123454", "10101234564", "10000000009", "10002727377"] {
            let r = Rpps::parse(v).unwrap();
            assert!(r.luhn_ok(), "{v}");
            assert_eq!(r.as_str(), v);
            assert_eq!(r.to_string(), v);
            assert_eq!(Rpps::from_body(&v[..10]).unwrap(), r);
        }
    }

    #[test]
    fn bad_luhn_is_accepted_but_flagged() {
        let r = Rpps::parse("10000123455").unwrap();
        assert!(!r.luhn_ok());
    }

    #[test]
    fn trims() {
        assert_eq!(
            Rpps::parse(" 10000123454\n").unwrap().as_str(),
            "10000123454"
        );
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "1000012345",
            "100001234540",
            "1000012345A",
            "10000 23454",
            "1000012345é",
            "-1000012345",
            "１0000123454",
        ] {
            assert!(
                matches!(Rpps::parse(bad), Err(IdError::Format { .. })),
                "{bad:?}"
            );
        }
        assert!(Rpps::from_body("100001234").is_err());
        assert!(Rpps::from_body("100001234A").is_err());
        assert!(Rpps::from_body("10000123454").is_err());
    }

    #[test]
    fn errors_do_not_contain_input() {
        for bad in ["1000012345A", "100001234540"] {
            assert!(!Rpps::parse(bad).unwrap_err().to_string().contains(bad));
        }
    }

    proptest! {
        #[test]
        fn from_body_parse_round_trip(body in "[0-9]{10}") {
            let r = Rpps::from_body(&body).unwrap();
            prop_assert!(r.luhn_ok());
            prop_assert_eq!(Rpps::parse(r.as_str()).unwrap(), r);
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = Rpps::parse(&s);
            let _ = Rpps::from_body(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = Rpps::parse(&s).map(|r| r.luhn_ok());
            let _ = Rpps::from_body(&s);
        }
    }
}
