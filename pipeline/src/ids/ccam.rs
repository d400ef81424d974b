//! CCAM act code (Classification commune des actes médicaux): four uppercase
//! letters then three digits, e.g. `DEQP003`. Format only; whether the code
//! exists is checked against the tariff tables elsewhere.

use super::IdError;

/// A CCAM act code matching `^[A-Z]{4}[0-9]{3}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CcamCode(String);

super::public_text!(CcamCode);

impl CcamCode {
    /// Parses a CCAM code (trimmed). Uppercase only: lowercase is rejected
    /// rather than fixed, as codes come from coded sources, not typing.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let ok = match s.as_bytes() {
            [l @ .., d1, d2, d3] if l.len() == 4 => {
                l.iter().all(u8::is_ascii_uppercase)
                    && [d1, d2, d3].iter().all(|d| d.is_ascii_digit())
            }
            _ => false,
        };
        if !ok {
            return Err(IdError::Format {
                kind: "CCAM",
                expected: "4 uppercase letters then 3 digits",
            });
        }
        Ok(CcamCode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid() {
        for v in ["DEQP003", "ZBQK002", "HBJD001"] {
            let c = CcamCode::parse(v).unwrap();
            assert_eq!(c.as_str(), v);
            assert_eq!(c.to_string(), v);
        }
        assert_eq!(CcamCode::parse(" DEQP003\t").unwrap().as_str(), "DEQP003");
    }

    #[test]
    fn rejections() {
        for bad in [
            "", "deqp003", "DEQp003", "DEQP03", "DEQP0033", "DEQ0003", "DEQPA03", "DEQP 003",
            "DÉQP003", "DEQP00é", "1EQP003",
        ] {
            assert!(CcamCode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            !CcamCode::parse("DEQP0033")
                .unwrap_err()
                .to_string()
                .contains("DEQP0033")
        );
    }

    proptest! {
        #[test]
        fn round_trip(s in "[A-Z]{4}[0-9]{3}") {
            let c = CcamCode::parse(&s).unwrap();
            prop_assert_eq!(c.as_str(), s.as_str());
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = CcamCode::parse(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = CcamCode::parse(&s);
        }
    }
}
