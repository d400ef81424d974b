//! The two error types of the PKI: [`PkiError`], a `ref.pki` record or a
//! cached key that cannot be taken (the caller dead-letters it), and
//! [`VerifyFailure`], why a signature is not accepted (the caller turns it
//! into a rejection reason).

use chrono::NaiveDate;
use thiserror::Error;

use super::cert::SignatureAlg;

/// A reference-data record, or a private key, that is refused. Applying a
/// refused record leaves the registry unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PkiError {
    /// The line is not a `ref.pki` record (bad JSON, unknown kind or field,
    /// unknown algorithm name, bad date).
    #[error("not a ref.pki record: {0}")]
    Malformed(String),
    #[error("certificate id must be 1 to 64 printable ASCII characters, got {0:?}")]
    InvalidId(String),
    #[error("rpps must be exactly 11 digits, got {0:?}")]
    InvalidRpps(String),
    #[error("issuer must be 1 to 256 characters without control characters, got {0:?}")]
    InvalidIssuer(String),
    #[error("public_key is not standard base64")]
    BadBase64,
    #[error("public_key is not a {alg} SubjectPublicKeyInfo: {reason}")]
    InvalidPublicKey { alg: SignatureAlg, reason: String },
    #[error("not_before {not_before} is after not_after {not_after}")]
    InvalidValidity {
        not_before: NaiveDate,
        not_after: NaiveDate,
    },
    /// A revocation names a certificate the registry does not hold.
    #[error("revocation of unknown certificate {0:?}")]
    UnknownCertificate(String),
    #[error("not a {alg} PKCS#8 private key: {reason}")]
    InvalidPrivateKey { alg: SignatureAlg, reason: String },
}

/// Why [`Pki::verify`](super::Pki::verify) refused a signature, in the order
/// the checks run (the first failing check wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Error)]
pub enum VerifyFailure {
    /// The algorithm name is not one of [`SignatureAlg`]'s.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// No certificate with this id is in the PKI.
    #[error("unknown certificate")]
    UnknownCertificate,
    /// The certificate belongs to another professional (RPPS).
    #[error("the certificate belongs to another professional")]
    OtherProfessional,
    /// The signing date is outside [not_before, not_after].
    #[error("the certificate was not valid on the signing date")]
    NotValidOnDate,
    /// The certificate was revoked on or before the signing date.
    #[error("the certificate was revoked on or before the signing date")]
    Revoked,
    /// The algorithm is not the certificate's, or the signature does not
    /// verify over the message with the certificate's key.
    #[error("the signature does not verify")]
    BadSignature,
}

impl VerifyFailure {
    /// Every variant, in check order.
    pub const ALL: [VerifyFailure; 6] = [
        VerifyFailure::UnsupportedAlgorithm,
        VerifyFailure::UnknownCertificate,
        VerifyFailure::OtherProfessional,
        VerifyFailure::NotValidOnDate,
        VerifyFailure::Revoked,
        VerifyFailure::BadSignature,
    ];

    /// The stable snake_case name of the matching rejection reason code.
    pub fn code(self) -> &'static str {
        match self {
            VerifyFailure::UnsupportedAlgorithm => "unsupported_algorithm",
            VerifyFailure::UnknownCertificate => "unknown_certificate",
            VerifyFailure::OtherProfessional => "certificate_other_professional",
            VerifyFailure::NotValidOnDate => "certificate_not_valid",
            VerifyFailure::Revoked => "certificate_revoked",
            VerifyFailure::BadSignature => "bad_signature",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<_> = VerifyFailure::ALL.iter().map(|f| f.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), VerifyFailure::ALL.len());
    }
}
