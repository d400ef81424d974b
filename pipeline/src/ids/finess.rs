//! FINESS number: the 9-character identifier of a health or social care
//! establishment (department + 6 digits + Luhn key).

use super::luhn::{luhn_check_digit, luhn_valid};
use super::{IdError, all_digits};

const KIND: &str = "FINESS";
const EXPECTED: &str = "9 characters: department (2 digits, 2A or 2B) and 7 digits";
const EXPECTED_BODY: &str = "8 digits (no key is computed for 2A/2B departments)";

/// A FINESS number. Stored uppercase (`2a` is accepted as `2A`, as for NIR).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finess(String);

super::public_text!(Finess);

fn is_corsica(s: &str) -> bool {
    matches!(s.as_bytes(), [b'2', b'A' | b'B', ..])
}

impl Finess {
    /// Parses a FINESS number (trimmed, uppercased). For numeric departments
    /// a Luhn failure is a hard [`IdError::Key`]. For 2A/2B the key rule is
    /// unconfirmed, so the number is accepted unchecked (see
    /// [`Finess::key_checked`]).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let bad = IdError::Format {
            kind: KIND,
            expected: EXPECTED,
        };
        // ASCII check first: the slicing below is by byte.
        if !s.is_ascii() || s.len() != 9 {
            return Err(bad);
        }
        let s = s.to_ascii_uppercase();
        if is_corsica(&s) {
            if !s.get(2..).is_some_and(all_digits) {
                return Err(bad);
            }
            return Ok(Finess(s));
        }
        if !all_digits(&s) {
            return Err(bad);
        }
        if !luhn_valid(&s) {
            return Err(IdError::Key { kind: KIND });
        }
        Ok(Finess(s))
    }

    /// Builds a FINESS from its first 8 digits by appending the Luhn key.
    /// Corsican bodies (2A/2B) are refused: their key rule is unknown, and
    /// inventing one would produce numbers that merely look checked.
    pub fn from_body(first8: &str) -> Result<Finess, IdError> {
        let body = first8.trim();
        let bad = IdError::Format {
            kind: KIND,
            expected: EXPECTED_BODY,
        };
        if body.len() != 8 || !all_digits(body) {
            return Err(bad);
        }
        let key = luhn_check_digit(body).ok_or(bad)?;
        Ok(Finess(format!("{body}{key}")))
    }

    /// The department part (2 digits, `2A` or `2B`).
    pub fn department(&self) -> &str {
        self.0.get(..2).unwrap_or_default()
    }

    /// Whether the Luhn key was verified: false for 2A/2B departments.
    pub fn key_checked(&self) -> bool {
        !is_corsica(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: [&str; 8] = [
        "240000117",
        "240000489",
        "600100713",
        "600000194",
        "060800174",
        "060780947",
        "750000010",
        "130000011",
    ];

    #[test]
    fn valid_vectors() {
        for v in VALID {
            let f = Finess::parse(v).unwrap();
            assert!(f.key_checked());
            assert_eq!(f.as_str(), v);
            assert_eq!(f.to_string(), v);
            assert_eq!(Finess::from_body(&v[..8]).unwrap(), f);
        }
        assert_eq!(Finess::parse("060800174").unwrap().department(), "06");
    }

    #[test]
    fn bad_key_is_hard_error() {
        assert_eq!(
            Finess::parse("240000118"),
            Err(IdError::Key { kind: "FINESS" })
        );
        assert_eq!(
            Finess::parse("750000011"),
            Err(IdError::Key { kind: "FINESS" })
        );
    }

    #[test]
    fn corsica_accepted_unchecked() {
        let f = Finess::parse("2A0000013").unwrap();
        assert!(!f.key_checked());
        assert_eq!(f.department(), "2A");
        let lower = Finess::parse(" 2b0000019 ").unwrap();
        assert_eq!(lower.as_str(), "2B0000019");
        assert!(!lower.key_checked());
        assert!(Finess::from_body("2A000001").is_err());
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "24000011",
            "2400001170",
            "24000011A",
            "2C0000013",
            "A20000013",
            "2A00000X3",
            "2A000001",
            "24000011é",
            "é24000011",
            "24 000117",
        ] {
            assert!(
                matches!(Finess::parse(bad), Err(IdError::Format { .. })),
                "{bad:?}"
            );
        }
        assert!(Finess::from_body("2400001").is_err());
        assert!(Finess::from_body("2400001X").is_err());
    }

    #[test]
    fn errors_do_not_contain_input() {
        for bad in ["240000118", "24000011A"] {
            assert!(!Finess::parse(bad).unwrap_err().to_string().contains(bad));
        }
    }

    proptest! {
        #[test]
        fn from_body_parse_round_trip(body in "[0-9]{8}") {
            let f = Finess::from_body(&body).unwrap();
            prop_assert_eq!(Finess::parse(f.as_str()).unwrap(), f);
        }

        #[test]
        fn corsica_round_trip(dept in "2[AB]", rest in "[0-9]{7}") {
            let s = format!("{dept}{rest}");
            let f = Finess::parse(&s).unwrap();
            prop_assert_eq!(f.as_str(), s.as_str());
            prop_assert!(!f.key_checked());
        }

        #[test]
        fn single_digit_change_rejected(body in "[0-9]{8}", pos in 0usize..9, delta in 1u8..=9) {
            let f = Finess::from_body(&body).unwrap();
            let mut bytes = f.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(Finess::parse(&changed).is_err());
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = Finess::parse(&s);
            let _ = Finess::from_body(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = Finess::parse(&s).map(|f| (f.key_checked(), f.department().len()));
            let _ = Finess::from_body(&s);
        }
    }
}
