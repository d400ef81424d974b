//! The PKI's data: the accepted signature algorithms ([`SignatureAlg`]), a
//! professional's certificate ([`Certificate`]) and the JSON-lines shape of
//! the `ref.pki` topic ([`PkiRecord`]), with the field checks a record must
//! pass before the registry takes it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::error::PkiError;

/// A signature algorithm accepted on an FSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SignatureAlg {
    /// RSA (2048 to 4096 bits), PKCS#1 v1.5 padding, SHA-256: CPS3 cards.
    #[serde(rename = "rsa-pkcs1-sha256")]
    RsaPkcs1Sha256,
    /// ECDSA on P-256 with SHA-256, signature DER-encoded (X9.62
    /// `Ecdsa-Sig-Value`): e-CPS and the mobile application.
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
}

impl SignatureAlg {
    pub const ALL: [SignatureAlg; 2] =
        [SignatureAlg::RsaPkcs1Sha256, SignatureAlg::EcdsaP256Sha256];

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlg::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignatureAlg::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }

    /// The exact name (case-sensitive), or `None`.
    pub fn parse(s: &str) -> Option<SignatureAlg> {
        SignatureAlg::ALL.into_iter().find(|alg| alg.as_str() == s)
    }
}

impl fmt::Display for SignatureAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A professional's signing certificate, as the registry holds it. Dates are
/// inclusive: the certificate is valid from `not_before` through `not_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: String,
    /// The professional's RPPS number (11 digits).
    pub rpps: String,
    pub alg: SignatureAlg,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    pub issuer: String,
    pub not_before: NaiveDate,
    pub not_after: NaiveDate,
}

/// One line of the `ref.pki` topic (JSON, one record a line), tagged by
/// `"kind"`. Unknown fields are refused.
///
/// ```json
/// {"kind":"certificate","id":"CPS-000123","rpps":"10000123454","alg":"rsa-pkcs1-sha256","public_key":"<base64 SPKI DER>","issuer":"IGC-SANTE-ROOT","not_before":"2020-01-01","not_after":"2027-12-31"}
/// {"kind":"revocation","cert":"CPS-000123","revoked_on":"2025-03-01"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PkiRecord {
    Certificate {
        id: String,
        rpps: String,
        alg: SignatureAlg,
        /// Standard base64 (with padding, no line breaks) of the
        /// SubjectPublicKeyInfo DER.
        public_key: String,
        issuer: String,
        not_before: NaiveDate,
        not_after: NaiveDate,
    },
    Revocation {
        cert: String,
        revoked_on: NaiveDate,
    },
}

impl PkiRecord {
    /// Parses one JSON line.
    pub fn from_json(line: &str) -> Result<PkiRecord, PkiError> {
        serde_json::from_str(line).map_err(|e| PkiError::Malformed(e.to_string()))
    }

    /// One JSON line, without the trailing newline.
    pub fn to_json(&self) -> String {
        // A map of strings and dates always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<&Certificate> for PkiRecord {
    fn from(cert: &Certificate) -> PkiRecord {
        PkiRecord::Certificate {
            id: cert.id.clone(),
            rpps: cert.rpps.clone(),
            alg: cert.alg,
            public_key: BASE64.encode(&cert.public_key),
            issuer: cert.issuer.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
        }
    }
}

/// 1 to 64 printable ASCII characters (0x20 to 0x7E).
pub(crate) fn check_id(id: &str) -> Result<(), PkiError> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidId(truncated(id)))
    }
}

/// Exactly 11 ASCII digits.
pub(crate) fn check_rpps(rpps: &str) -> Result<(), PkiError> {
    if rpps.len() == 11 && rpps.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PkiError::InvalidRpps(truncated(rpps)))
    }
}

/// 1 to 256 characters, none a control character.
pub(crate) fn check_issuer(issuer: &str) -> Result<(), PkiError> {
    let n = issuer.chars().count();
    if (1..=256).contains(&n) && !issuer.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(PkiError::InvalidIssuer(truncated(issuer)))
    }
}

pub(crate) fn decode_public_key(b64: &str) -> Result<Vec<u8>, PkiError> {
    BASE64.decode(b64).map_err(|_| PkiError::BadBase64)
}

/// At most 80 characters of an offending value, for error messages.
pub(crate) fn truncated(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_round_trip() {
        for alg in SignatureAlg::ALL {
            assert_eq!(SignatureAlg::parse(alg.as_str()), Some(alg));
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
        }
        for bad in [
            "",
            "RSA-PKCS1-SHA256",
            "rsa-pkcs1-sha1",
            "ecdsa-p256-sha256 ",
            "ed25519",
        ] {
            assert_eq!(SignatureAlg::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_documented_lines_parse() {
        let cert = r#"{"kind":"certificate","id":"CPS-000123","rpps":"10000123454","alg":"rsa-pkcs1-sha256","public_key":"AAEC","issuer":"IGC-SANTE-ROOT","not_before":"2020-01-01","not_after":"2027-12-31"}"#;
        let rec = PkiRecord::from_json(cert).unwrap();
        let PkiRecord::Certificate {
            id,
            alg,
            public_key,
            not_after,
            ..
        } = &rec
        else {
            panic!("not a certificate: {rec:?}");
        };
        assert_eq!(id, "CPS-000123");
        assert_eq!(*alg, SignatureAlg::RsaPkcs1Sha256);
        assert_eq!(public_key, "AAEC");
        assert_eq!(*not_after, NaiveDate::from_ymd_opt(2027, 12, 31).unwrap());
        assert_eq!(rec.to_json(), cert);

        let rev = r#"{"kind":"revocation","cert":"CPS-000123","revoked_on":"2025-03-01"}"#;
        let rec = PkiRecord::from_json(rev).unwrap();
        assert_eq!(
            rec,
            PkiRecord::Revocation {
                cert: "CPS-000123".into(),
                revoked_on: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()
            }
        );
        assert_eq!(rec.to_json(), rev);
    }

    #[test]
    fn malformed_lines_are_errors() {
        let bad = [
            "",
            "{}",
            "not json",
            r#"{"kind":"crl","cert":"X","revoked_on":"2025-03-01"}"#,
            r#"{"kind":"revocation","cert":"X","revoked_on":"2025-03-01","why":"lost"}"#,
            r#"{"kind":"revocation","cert":"X","revoked_on":"2025-02-30"}"#,
            r#"{"kind":"revocation","cert":"X"}"#,
            r#"{"kind":"certificate","id":"C","rpps":"10000123454","alg":"rsa-pkcs1-sha1","public_key":"","issuer":"I","not_before":"2020-01-01","not_after":"2027-12-31"}"#,
            r#"{"kind":"certificate","id":"C","rpps":"10000123454","alg":"rsa-pkcs1-sha256","public_key":"","issuer":"I","not_before":"2020-01-01","not_after":"2027-12-31","serial":1}"#,
        ];
        for line in bad {
            assert!(
                matches!(PkiRecord::from_json(line), Err(PkiError::Malformed(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn field_checks() {
        assert!(check_id("CPS-000123").is_ok());
        assert!(check_id(&"x".repeat(64)).is_ok());
        assert!(check_id("").is_err());
        assert!(check_id(&"x".repeat(65)).is_err());
        assert!(check_id("a\nb").is_err());
        assert!(check_id("é").is_err());
        assert!(check_rpps("10000123454").is_ok());
        assert!(check_rpps("1000012345").is_err());
        assert!(check_rpps("100001234541").is_err());
        assert!(check_rpps("1000012345a").is_err());
        assert!(check_rpps("１0000123454").is_err());
        assert!(check_issuer("IGC-SANTE-ROOT").is_ok());
        assert!(check_issuer("").is_err());
        assert!(check_issuer("a\u{0}b").is_err());
        assert!(decode_public_key("AAEC").is_ok());
        assert_eq!(decode_public_key("AA EC"), Err(PkiError::BadBase64));
        assert_eq!(decode_public_key("%%%"), Err(PkiError::BadBase64));
    }
}
