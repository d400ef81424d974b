//! Pseudonymous beneficiary keys: a keyed hash (HMAC-SHA256) of the
//! identifying fields, so that record keys and partitions, the stages'
//! state and changelogs, decisions, outbound topics, checkpoints, logs and
//! metrics never carry a NIR or a card number. The secret is configuration,
//! never committed; the key's `epoch` names which secret made it, so joins
//! stay reproducible across rotations (domain.md §5).
//!
//! Topics that do carry personal data in clear (tests/personal_data_topics.rs
//! searches every topic of a run and holds this list):
//!
//! | topic | carries | why |
//! |---|---|---|
//! | `fse.submitted` | the FSE as sent: NIR, birth date, rank, or the EHIC (card number, personal id, names, birth date) | it is the input, and validation derives the key from it |
//! | `ref.rights` | NIR, birth date, rank | the input; entitlement keys the rights by their pseudonym |
//! | `fse.validated`, `fse.entitled`, `fse.routed` | the submitted FSE whole, signature included | see below |
//! | `dlq.*` | an undecodable input's raw bytes | a dead letter keeps its input to be mended |
//!
//! Of the identity the three topics between the stages carry, the later
//! stages' decisions read the birth date (entitlement: a minor), whether
//! the patient is insured or a visitor (entitlement, routing,
//! reimbursement) and the EHIC's country, institution and expiry (routing);
//! the NIR, rank, card number, personal id, names and signature are read only
//! by the check every stage makes of an upstream event before acting on it
//! (`events::convert::validated_parts` re-runs validation's `reparse` on the
//! whole FSE), and by `clearing read`. No outbound consumer gets them:
//! `amc.claims` names the beneficiary by this key, returns, payments and
//! `eu.claims` by FSE id. Carrying less is a versioned schema change of
//! three topics whose replay of a run recorded before must still give the
//! recorded bytes (docs/operations.md, "Topics that carry personal data",
//! says why it is not made yet and how the topics are protected meanwhile).

use std::fmt;

use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::{EhicCardId, EhicInstitutionId, Nir};

/// The secret and its epoch name.
#[derive(Clone)]
pub struct PseudonymKey {
    epoch: String,
    secret: Vec<u8>,
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey(epoch {}, <secret>)", self.epoch)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymError {
    #[error("pseudonym secret must be at least 16 bytes")]
    ShortSecret,
    #[error("pseudonym epoch must be 1 to 16 letters, digits or '-'")]
    BadEpoch,
}

impl PseudonymKey {
    pub fn new(epoch: &str, secret: &[u8]) -> Result<PseudonymKey, PseudonymError> {
        if secret.len() < 16 {
            return Err(PseudonymError::ShortSecret);
        }
        if epoch.is_empty()
            || epoch.len() > 16
            || !epoch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(PseudonymError::BadEpoch);
        }
        Ok(PseudonymKey {
            epoch: epoch.to_string(),
            secret: secret.to_vec(),
        })
    }

    /// The development key: for synthetic data only. Production reads the
    /// secret from the environment (`CLEARING_PSEUDONYM_SECRET`).
    pub fn development() -> PseudonymKey {
        PseudonymKey {
            epoch: "dev".to_string(),
            secret: b"clearing-development-pseudonym-secret".to_vec(),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Whether this is the development key's secret (whatever the epoch):
    /// its pseudonyms can be recomputed by anyone with the source, so a
    /// run on real data must never use it (`clearing run` refuses it on a
    /// non-local bus).
    pub fn is_development(&self) -> bool {
        self.secret == PseudonymKey::development().secret
    }

    fn derive(&self, domain: &str, fields: &[&str]) -> BeneficiaryKey {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(domain.as_bytes());
        for field in fields {
            mac.update(b"\x1f");
            mac.update(field.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        BeneficiaryKey(format!("{}-{}", self.epoch, hex::encode(&digest[..16])))
    }

    /// A French beneficiary: insured's NIR, beneficiary's birth date and rank.
    pub fn insured(&self, nir: &Nir, birth_date: NaiveDate, rank: u8) -> BeneficiaryKey {
        self.derive(
            "fr",
            &[nir.expose(), &birth_date.to_string(), &rank.to_string()],
        )
    }

    /// An EHIC holder: issuing institution and card number.
    pub fn visitor(&self, institution: &EhicInstitutionId, card: &EhicCardId) -> BeneficiaryKey {
        self.derive("ehic", &[institution.as_str(), card.expose()])
    }
}

/// The pseudonymous key of a beneficiary: `<epoch>-<32 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeneficiaryKey(String);

impl BeneficiaryKey {
    /// A key read back from a stage's own event or state (already derived).
    pub fn from_stored(key: &str) -> BeneficiaryKey {
        BeneficiaryKey(key.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Partition of this key among `partitions` (stable across versions:
    /// the first 8 hex digits of the hash, modulo).
    pub fn partition(&self, partitions: u32) -> u32 {
        let hex_part = self.0.rsplit('-').next().unwrap_or("");
        let prefix = hex_part.get(..8).unwrap_or("0");
        let value = u32::from_str_radix(prefix, 16).unwrap_or(0);
        value % partitions.max(1)
    }
}

impl fmt::Display for BeneficiaryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_keyed_and_hide_the_nir() {
        let nir = Nir::parse("185057800604830").unwrap();
        let birth = NaiveDate::from_ymd_opt(1985, 5, 12).unwrap();
        let dev = PseudonymKey::development();
        let a = dev.insured(&nir, birth, 1);
        assert_eq!(a, dev.insured(&nir, birth, 1));
        assert_ne!(a, dev.insured(&nir, birth, 2), "rank distinguishes twins");
        let other = PseudonymKey::new("2026a", b"another-secret-of-enough-length").unwrap();
        assert_ne!(a.as_str()[4..], other.insured(&nir, birth, 1).as_str()[6..]);
        assert!(!a.as_str().contains("1850578"));
        assert!(a.as_str().starts_with("dev-"));
        assert_eq!(a.as_str().len(), 4 + 32);
        assert!(a.partition(8) < 8);
        assert!(PseudonymKey::new("e", b"short").is_err());
        assert!(dev.is_development() && !other.is_development());
        let same_secret =
            PseudonymKey::new("k1", b"clearing-development-pseudonym-secret").unwrap();
        assert!(
            same_secret.is_development(),
            "the secret decides, not the epoch"
        );
        assert!(PseudonymKey::new("bad epoch", b"0123456789abcdef").is_err());
    }
}
