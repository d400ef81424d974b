//! NGAP key letter(s) (Nomenclature générale des actes professionnels), e.g.
//! `C`, `CS`, `AMI`. Format only: membership in the tariff tables is checked
//! elsewhere.

use super::IdError;

/// An NGAP key: 1 to 4 ASCII uppercase letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NgapKey(String);

super::public_text!(NgapKey);

impl NgapKey {
    /// Parses an NGAP key (trimmed). Uppercase only, like the tables.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        if !(1..=4).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(IdError::Format {
                kind: "NGAP",
                expected: "1 to 4 uppercase letters",
            });
        }
        Ok(NgapKey(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid() {
        for v in [
            "G", "C", "CS", "V", "VG", "AMI", "AIS", "AMK", "B", "SF", "MCG", "IFD",
        ] {
            let k = NgapKey::parse(v).unwrap();
            assert_eq!(k.as_str(), v);
            assert_eq!(k.to_string(), v);
        }
        assert_eq!(NgapKey::parse(" AMI ").unwrap().as_str(), "AMI");
    }

    #[test]
    fn rejections() {
        for bad in ["", "  ", "ABCDE", "ami", "Cs", "C1", "A I", "É", "CÉ", "C-"] {
            assert!(NgapKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            !NgapKey::parse("ABCDE")
                .unwrap_err()
                .to_string()
                .contains("ABCDE")
        );
    }

    proptest! {
        #[test]
        fn round_trip(s in "[A-Z]{1,4}") {
            let k = NgapKey::parse(&s).unwrap();
            prop_assert_eq!(k.as_str(), s.as_str());
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = NgapKey::parse(&s);
        }

        #[test]
        fn never_panics_charset(s in "[0-9A-Z ]{0,20}") {
            let _ = NgapKey::parse(&s);
        }
    }
}
