//! Identifier value types used across the clearing pipeline: parsing,
//! normalisation and check keys for the national and European identifiers
//! that appear on a claim. Owns [`IdError`], the error shared by all of them.
//!
//! Personal identifiers (NIR, EHIC card number, EHIC personal id) never show
//! their value in `Debug` or in errors; they are read through `expose()`.

/// An identifier that is not personal data reads, shows and serialises as
/// its text (a personal one is read through `expose()` and redacted in
/// `Debug`). `$id` is a newtype over its normalised `String`.
macro_rules! public_text {
    ($id:ident) => {
        impl $id {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $id {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}
pub(crate) use public_text;

pub mod am;
pub mod ccam;
pub mod cip13;
pub mod country;
pub mod ehic;
pub mod finess;
pub mod luhn;
pub mod ngap;
pub mod nir;
pub mod rpps;

pub use am::{AmCategory, AmNumber};
pub use ccam::CcamCode;
pub use cip13::Cip13;
pub use country::Country;
pub use ehic::{EhicCardId, EhicInstitutionId, EhicPersonalId};
pub use finess::Finess;
pub use ngap::NgapKey;
pub use nir::Nir;
pub use rpps::Rpps;

/// Why an identifier was rejected. Messages are static on purpose: they must
/// never echo the input, which may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind}: expected {expected}")]
    Format {
        kind: &'static str,
        expected: &'static str,
    },
    #[error("{kind}: check key does not match")]
    Key { kind: &'static str },
    #[error("{kind}: unknown code")]
    Unknown { kind: &'static str },
}

/// True when `s` is non-empty and made of ASCII digits only.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Value of an ASCII digit byte; callers have already checked it is a digit.
fn digit_value(b: u8) -> u8 {
    b.wrapping_sub(b'0')
}
