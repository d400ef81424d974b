//! Test fixtures shared by the PKI's unit tests: keys derived once per test
//! process (RSA derivation is slow in debug builds) and a populated registry.

use std::sync::OnceLock;

use chrono::NaiveDate;

use super::cert::{PkiRecord, SignatureAlg};
use super::keys::{SigningKey, certificate_for};
use super::registry::Pki;

pub(crate) const SEED_A: [u8; 32] = *b"fse-pki-test-seed-a-000000000000";
pub(crate) const SEED_B: [u8; 32] = *b"fse-pki-test-seed-b-000000000000";
pub(crate) const RPPS: &str = "10000123454";

pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

/// The RSA-2048 key of [`SEED_A`].
pub(crate) fn rsa_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(SignatureAlg::RsaPkcs1Sha256, SEED_A))
        .clone()
}

/// The ECDSA P-256 key of [`SEED_A`].
pub(crate) fn ecdsa_key() -> SigningKey {
    SigningKey::generate(SignatureAlg::EcdsaP256Sha256, SEED_A)
}

/// An RSA-1024 key, which the PKI refuses.
pub(crate) fn small_rsa_key() -> SigningKey {
    SigningKey::rsa_from_seed(SEED_A, 1024)
}

/// A registry holding one certificate per key, for [`RPPS`], valid
/// 2020-01-01 through 2027-12-31.
pub(crate) fn pki_with(keys: &[(SigningKey, &str)]) -> Pki {
    let mut pki = Pki::default();
    for (key, id) in keys {
        let cert = certificate_for(
            key,
            id,
            RPPS,
            "IGC-SANTE-TEST",
            date(2020, 1, 1),
            date(2027, 12, 31),
        );
        pki.apply(PkiRecord::from(&cert))
            .expect("test certificate is valid");
    }
    pki
}
