//! European Health Insurance Card fields: card identification number
//! (field 8), institution identification number (field 7) and personal
//! identification number (field 6). The card number and the personal id are
//! personal data: redacted `Debug`, value only through `expose()`.

use std::fmt;

use super::luhn::luhn_valid;
use super::{IdError, all_digits};

/// EHIC field 8: 20 digits, the first 10 identifying the issuing
/// institution, the last 10 the card serial.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EhicCardId(String);

impl EhicCardId {
    /// Parses exactly 20 ASCII digits (trimmed).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        if s.len() != 20 || !all_digits(s) {
            return Err(IdError::Format {
                kind: "EHIC card id",
                expected: "20 digits",
            });
        }
        Ok(EhicCardId(s.to_owned()))
    }

    /// The full 20-digit value. Personal data.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first 10 digits (issuer institution).
    pub fn issuer(&self) -> &str {
        self.0.get(..10).unwrap_or_default()
    }

    /// The last 10 digits (card serial).
    pub fn serial(&self) -> &str {
        self.0.get(10..).unwrap_or_default()
    }

    /// Whether the last digit is a Luhn key. Informational only: whether
    /// EHIC numbers carry one is unconfirmed and varies by issuer.
    pub fn luhn_ok(&self) -> bool {
        luhn_valid(&self.0)
    }
}

impl fmt::Debug for EhicCardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EhicCardId(<redacted>)")
    }
}

/// EHIC field 7: 1 to 10 ASCII uppercase letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EhicInstitutionId(String);

super::public_text!(EhicInstitutionId);

impl EhicInstitutionId {
    /// Parses an institution id (trimmed). Lowercase is rejected, not fixed:
    /// the field is printed in uppercase, and a silent change would make
    /// ids that match nothing in institution directories look valid.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let ok = (1..=10).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(IdError::Format {
                kind: "EHIC institution id",
                expected: "1 to 10 uppercase letters or digits",
            });
        }
        Ok(EhicInstitutionId(s.to_owned()))
    }
}

/// EHIC field 6: 1 to 20 printable ASCII characters; internal spaces are
/// allowed, surrounding whitespace is trimmed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EhicPersonalId(String);

impl EhicPersonalId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let ok = (1..=20).contains(&s.len()) && s.bytes().all(|b| (b' '..=b'~').contains(&b));
        if !ok {
            return Err(IdError::Format {
                kind: "EHIC personal id",
                expected: "1 to 20 printable ASCII characters",
            });
        }
        Ok(EhicPersonalId(s.to_owned()))
    }

    /// The value. Personal data.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EhicPersonalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EhicPersonalId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CARD: &str = "80250000011234567890";

    #[test]
    fn card_id() {
        let c = EhicCardId::parse(CARD).unwrap();
        assert_eq!(c.expose(), CARD);
        assert_eq!(c.issuer(), "8025000001");
        assert_eq!(c.serial(), "1234567890");
        assert!(c.luhn_ok());
        assert!(!EhicCardId::parse("80250000011234567891").unwrap().luhn_ok());
        assert_eq!(EhicCardId::parse(" 80250000011234567890\n").unwrap(), c);
    }

    #[test]
    fn card_id_rejections() {
        for bad in [
            "",
            "8025000001123456789",
            "802500000112345678901",
            "8025000001123456789A",
            "8025000001 123456789",
            "8025000001123456789é",
            "８0250000011234567890",
        ] {
            assert!(EhicCardId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn institution_id() {
        for v in ["108310400", "A", "ABCDE12345", "0123456789"] {
            let i = EhicInstitutionId::parse(v).unwrap();
            assert_eq!(i.as_str(), v);
            assert_eq!(i.to_string(), v);
            assert!(format!("{i:?}").contains(v));
        }
        for bad in ["", "ABCDE123456", "abc", "AB C", "AB-C", "ÄBC"] {
            assert!(EhicInstitutionId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn personal_id() {
        for v in ["A", "123-456 789/X", "12345678901234567890", "~!@#"] {
            assert_eq!(EhicPersonalId::parse(v).unwrap().expose(), v);
        }
        assert_eq!(
            EhicPersonalId::parse("  AB 12  ").unwrap().expose(),
            "AB 12"
        );
        for bad in [
            "",
            "   ",
            "123456789012345678901",
            "AB\tCD",
            "Müller",
            "AB\u{7f}",
        ] {
            assert!(EhicPersonalId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_leak_in_debug_or_errors() {
        let c = EhicCardId::parse(CARD).unwrap();
        let dbg = format!("{c:?}");
        assert_eq!(dbg, "EhicCardId(<redacted>)");
        assert!(!dbg.chars().any(|ch| ch.is_ascii_digit()));
        let p = EhicPersonalId::parse("ZX987654321").unwrap();
        let dbg = format!("{p:?}");
        assert_eq!(dbg, "EhicPersonalId(<redacted>)");
        assert!(!dbg.chars().any(|ch| ch.is_ascii_digit()));
        assert!(!format!("{:?}", Some(&c)).contains(CARD));
        for bad in ["8025000001123456789X", "802500000112345678901"] {
            let e = EhicCardId::parse(bad).unwrap_err();
            assert!(!e.to_string().contains(bad) && !format!("{e:?}").contains(bad));
        }
        let bad = "Personal\u{7f}Id12345";
        assert!(
            !EhicPersonalId::parse(bad)
                .unwrap_err()
                .to_string()
                .contains(bad)
        );
    }

    proptest! {
        #[test]
        fn card_round_trip(s in "[0-9]{20}") {
            let c = EhicCardId::parse(&s).unwrap();
            prop_assert_eq!(format!("{}{}", c.issuer(), c.serial()), s.clone());
            let dbg = format!("{c:?}");
            prop_assert!(!dbg.contains(&s));
        }

        #[test]
        fn personal_round_trip(s in "[!-~][ -~]{0,18}[!-~]") {
            let p = EhicPersonalId::parse(&s).unwrap();
            prop_assert_eq!(p.expose(), s.as_str());
            let dbg = format!("{p:?}");
            // The redacted form's own text ("Eh" of its type name) is no leak.
            let redacted = format!("{:?}", EhicPersonalId::parse("Q").unwrap());
            prop_assume!(!redacted.contains(&s));
            prop_assert!(!dbg.contains(&s));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = EhicCardId::parse(&s).map(|c| (c.issuer().len(), c.serial().len(), c.luhn_ok()));
            let _ = EhicInstitutionId::parse(&s);
            let _ = EhicPersonalId::parse(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = EhicCardId::parse(&s);
            let _ = EhicInstitutionId::parse(&s);
            let _ = EhicPersonalId::parse(&s);
        }
    }
}
