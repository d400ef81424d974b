//! CIP13 code: the 13-digit EAN identifier of a medicine presentation
//! (prefix 34009). Also owns the EAN-13 check used for UCD13 codes.

use super::{IdError, all_digits, digit_value};

const KIND: &str = "CIP13";
const PREFIX: &str = "34009";

/// A CIP13 code: 13 digits, prefix 34009, valid EAN-13 key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cip13(String);

super::public_text!(Cip13);

/// EAN-13 check digit for 12 ASCII digits: weights 1,3,1,3… from the left,
/// key = (10 − sum mod 10) mod 10. `None` unless exactly 12 digits.
pub fn ean13_check_digit(first12: &str) -> Option<u8> {
    if first12.len() != 12 || !all_digits(first12) {
        return None;
    }
    let sum: u32 = first12
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(digit_value(b)) * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    // The result is below 10, so the cast cannot truncate.
    Some(((10 - sum % 10) % 10) as u8)
}

/// True when `s` is 13 ASCII digits with a correct EAN-13 key (any prefix:
/// usable for UCD13 as well as CIP13).
pub fn ean13_valid(s: &str) -> bool {
    match (s.get(..12), s.as_bytes().get(12)) {
        (Some(body), Some(&last)) if s.len() == 13 && last.is_ascii_digit() => {
            ean13_check_digit(body) == Some(digit_value(last))
        }
        _ => false,
    }
}

impl Cip13 {
    /// Parses a CIP13 (trimmed): format and prefix, then key.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        if s.len() != 13 || !all_digits(s) || !s.starts_with(PREFIX) {
            return Err(IdError::Format {
                kind: KIND,
                expected: "13 digits starting with 34009",
            });
        }
        if !ean13_valid(s) {
            return Err(IdError::Key { kind: KIND });
        }
        Ok(Cip13(s.to_owned()))
    }

    /// Builds a CIP13 from its first 12 digits (prefix 34009) by appending
    /// the EAN-13 key.
    pub fn from_body(first12: &str) -> Result<Cip13, IdError> {
        let body = first12.trim();
        let bad = IdError::Format {
            kind: KIND,
            expected: "12-digit body starting with 34009",
        };
        if !body.starts_with(PREFIX) {
            return Err(bad);
        }
        let key = ean13_check_digit(body).ok_or(bad)?;
        Ok(Cip13(format!("{body}{key}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_vectors() {
        for v in ["3400935955838", "3400930000014", "3400940000004"] {
            let c = Cip13::parse(v).unwrap();
            assert_eq!(c.as_str(), v);
            assert_eq!(c.to_string(), v);
            assert_eq!(Cip13::from_body(&v[..12]).unwrap(), c);
        }
    }

    #[test]
    fn ucd13_and_ean() {
        assert!(ean13_valid("3400890000017"));
        assert!(!ean13_valid("3400890000018"));
        assert!(!ean13_valid("340089000001"));
        assert!(!ean13_valid("34008900000170"));
        assert!(!ean13_valid("340089000001X"));
        assert!(!ean13_valid("34008900000é"));
        assert!(!ean13_valid(""));
        // Valid EAN but not a medicine CIP13 prefix.
        assert!(matches!(
            Cip13::parse("3400890000017"),
            Err(IdError::Format { .. })
        ));
        assert_eq!(ean13_check_digit("340093595583"), Some(8));
        assert_eq!(ean13_check_digit("34009359558"), None);
        assert_eq!(ean13_check_digit("34009359558A"), None);
    }

    #[test]
    fn rejections() {
        assert_eq!(
            Cip13::parse("3400935955839"),
            Err(IdError::Key { kind: "CIP13" })
        );
        for bad in [
            "",
            "340093595583",
            "34009359558380",
            "340093595583A",
            "3400935955é8",
            "4400935955838",
        ] {
            assert!(
                matches!(Cip13::parse(bad), Err(IdError::Format { .. })),
                "{bad:?}"
            );
        }
        assert!(Cip13::from_body("340083595583").is_err());
        assert!(Cip13::from_body("3400935955").is_err());
        assert_eq!(
            Cip13::parse(" 3400935955838 ").unwrap().as_str(),
            "3400935955838"
        );
    }

    #[test]
    fn errors_do_not_contain_input() {
        for bad in ["3400935955839", "340093595583A"] {
            assert!(!Cip13::parse(bad).unwrap_err().to_string().contains(bad));
        }
    }

    proptest! {
        #[test]
        fn from_body_parse_round_trip(rest in "[0-9]{7}") {
            let c = Cip13::from_body(&format!("34009{rest}")).unwrap();
            prop_assert!(ean13_valid(c.as_str()));
            prop_assert_eq!(Cip13::parse(c.as_str()).unwrap(), c);
        }

        #[test]
        fn single_digit_change_rejected(rest in "[0-9]{7}", pos in 0usize..13, delta in 1u8..=9) {
            let c = Cip13::from_body(&format!("34009{rest}")).unwrap();
            let mut bytes = c.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(Cip13::parse(&changed).is_err());
            prop_assert!(!ean13_valid(&changed));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = Cip13::parse(&s);
            let _ = Cip13::from_body(&s);
            let _ = ean13_valid(&s);
            let _ = ean13_check_digit(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = Cip13::parse(&s);
            let _ = Cip13::from_body(&s);
            let _ = ean13_valid(&s);
        }
    }
}
