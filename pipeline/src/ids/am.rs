//! Assurance Maladie PS number ("numéro AM"): the billing number of a
//! practice location (domain.md 2.3): department (2 characters, `2A`/`2B`
//! allowed), a category character, an order number and a key, 9 characters
//! in all. The key rule is UNCONFIRMED, so only the shape is checked.

use super::IdError;

const KIND: &str = "AM number";
const EXPECTED: &str = "9 characters: a department (2 digits, 2A or 2B) and 7 digits";

/// An AM number, stored uppercase (`2a` is accepted as `2A`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmNumber(String);

super::public_text!(AmNumber);

/// The category of an AM number (its third character, domain.md 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmCategory {
    Establishment,
    Doctor,
    /// Pharmacy, transporter, taxi.
    Supplier,
    Laboratory,
    Dentist,
    Midwife,
    Nurse,
    Physiotherapist,
    Podiatrist,
    /// Speech therapist or orthoptist.
    SpeechOrOrthoptist,
}

impl AmNumber {
    /// Parses an AM number (trimmed, uppercased) by its shape alone.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let id = s.as_bytes();
        let ok = id.len() == 9
            && (id[..2].iter().all(u8::is_ascii_digit)
                || matches!(id[..2], [b'2', b'A' | b'B' | b'a' | b'b']))
            && id[2..].iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(IdError::Format {
                kind: KIND,
                expected: EXPECTED,
            });
        }
        Ok(AmNumber(s.to_ascii_uppercase()))
    }

    /// The category its third character names.
    pub fn category(&self) -> AmCategory {
        match self.0.as_bytes().get(2) {
            Some(b'0') => AmCategory::Establishment,
            Some(b'1') => AmCategory::Doctor,
            Some(b'2') => AmCategory::Supplier,
            Some(b'3') => AmCategory::Laboratory,
            Some(b'4') => AmCategory::Dentist,
            Some(b'5') => AmCategory::Midwife,
            Some(b'6') => AmCategory::Nurse,
            Some(b'7') => AmCategory::Physiotherapist,
            Some(b'8') => AmCategory::Podiatrist,
            // Parsing admits digits only there: '9'.
            _ => AmCategory::SpeechOrOrthoptist,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_shape_and_uppercases_corsica() {
        assert_eq!(AmNumber::parse("751234567").unwrap().as_str(), "751234567");
        assert_eq!(
            AmNumber::parse(" 2a0123456 ").unwrap().as_str(),
            "2A0123456"
        );
        for bad in [
            "75123456",
            "7512345678",
            "7A1234567",
            "75123456X",
            "",
            "2C0123456",
        ] {
            assert!(AmNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_third_character_is_the_category() {
        let cat = |s: &str| AmNumber::parse(s).unwrap().category();
        assert_eq!(cat("750123456"), AmCategory::Establishment);
        assert_eq!(cat("751123456"), AmCategory::Doctor);
        assert_eq!(cat("132123456"), AmCategory::Supplier);
        assert_eq!(cat("2B6123456"), AmCategory::Nurse);
        assert_eq!(cat("449123456"), AmCategory::SpeechOrOrthoptist);
    }

    proptest! {
        #[test]
        fn any_nine_digits_parse(s in "[0-9]{9}") {
            let am = AmNumber::parse(&s).unwrap();
            prop_assert_eq!(am.as_str(), s.as_str());
        }

        #[test]
        fn other_lengths_never_parse(s in "[0-9]{0,8}|[0-9]{10,12}") {
            prop_assert!(AmNumber::parse(&s).is_err());
        }
    }
}
