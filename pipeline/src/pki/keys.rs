//! Signing keys for the synthetic data generator: [`SigningKey`] derived
//! deterministically from a seed (see `derive.rs`), deterministic signatures
//! (RSA PKCS#1 v1.5; ECDSA with RFC 6979 nonces), PKCS#8 export and import
//! so keys can be cached on disk, and [`certificate_for`] to publish a key.
//! Verification never uses this file.

use std::fmt;

use chrono::NaiveDate;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

use super::cert::{Certificate, SignatureAlg};
use super::derive;
use super::error::PkiError;
use super::verify::{RSA_MAX_BITS, RSA_MIN_BITS};

/// Size of generated RSA keys, in bits (public exponent 65537).
pub const RSA_KEY_BITS: usize = 2048;

/// A private signing key. Its `Debug` shows the algorithm and the SHA-256 of
/// the public key, never private material.
#[derive(Clone)]
pub struct SigningKey {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
    Ecdsa(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fingerprint: String = Sha256::digest(self.public_key_der())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        f.debug_struct("SigningKey")
            .field("alg", &self.alg())
            .field("public_key_sha256", &fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key derived from `seed`: same seed, same key, same bytes, on any
    /// machine and any version of this code (golden vectors in the tests).
    /// RSA keys are 2048-bit with e = 65537 and take a fraction of a second
    /// in a release build (see docs/signatures.md); ECDSA keys are instant.
    pub fn generate(alg: SignatureAlg, seed: [u8; 32]) -> SigningKey {
        match alg {
            SignatureAlg::RsaPkcs1Sha256 => SigningKey::rsa_from_seed(seed, RSA_KEY_BITS),
            SignatureAlg::EcdsaP256Sha256 => SigningKey {
                inner: Inner::Ecdsa(p256::ecdsa::SigningKey::from(derive::p256_scalar(seed))),
            },
        }
    }

    /// An RSA key of any size (tests use small ones to exercise refusals).
    pub(crate) fn rsa_from_seed(seed: [u8; 32], bits: usize) -> SigningKey {
        let parts = derive::rsa_parts(seed, bits);
        let key =
            rsa::RsaPrivateKey::from_components(parts.n, parts.e, parts.d, vec![parts.p, parts.q])
                // The derivation only yields valid (n, e, d, p, q): a failure here is
                // a bug in derive.rs, caught by the tests.
                .expect("derived RSA components are consistent");
        SigningKey::from_rsa(key)
    }

    fn from_rsa(key: rsa::RsaPrivateKey) -> SigningKey {
        SigningKey {
            inner: Inner::Rsa(Box::new(rsa::pkcs1v15::SigningKey::<Sha256>::new(key))),
        }
    }

    pub fn alg(&self) -> SignatureAlg {
        match &self.inner {
            Inner::Rsa(_) => SignatureAlg::RsaPkcs1Sha256,
            Inner::Ecdsa(_) => SignatureAlg::EcdsaP256Sha256,
        }
    }

    /// The public key as SubjectPublicKeyInfo DER (what a [`Certificate`]
    /// carries).
    pub fn public_key_der(&self) -> Vec<u8> {
        let doc = match &self.inner {
            Inner::Rsa(k) => rsa_private(k).to_public_key().to_public_key_der(),
            Inner::Ecdsa(k) => p256::PublicKey::from(k.verifying_key()).to_public_key_der(),
        };
        // Encoding a valid key into a growable buffer does not fail.
        doc.map(|d| d.into_vec()).unwrap_or_default()
    }

    /// Signs `message` (the FSE's canonical bytes). Deterministic: RSA
    /// PKCS#1 v1.5 has no randomness; ECDSA takes its nonce from RFC 6979.
    /// ECDSA signatures are DER-encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.inner {
            Inner::Rsa(k) => k.sign(message).to_vec(),
            Inner::Ecdsa(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }

    /// PKCS#8 `PrivateKeyInfo` DER, to cache the key on disk. Private
    /// material: store it only where synthetic test keys may live.
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        let doc = match &self.inner {
            Inner::Rsa(k) => rsa_private(k).to_pkcs8_der(),
            Inner::Ecdsa(k) => p256::SecretKey::from(k).to_pkcs8_der(),
        };
        doc.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// Reads back what [`to_pkcs8_der`](Self::to_pkcs8_der) wrote. RSA keys
    /// must be 2048 to 4096 bits (what the PKI accepts).
    pub fn from_pkcs8_der(alg: SignatureAlg, der: &[u8]) -> Result<SigningKey, PkiError> {
        let invalid = |reason: String| PkiError::InvalidPrivateKey { alg, reason };
        match alg {
            SignatureAlg::RsaPkcs1Sha256 => {
                let key =
                    rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| invalid(e.to_string()))?;
                let bits = key.n().bits();
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(invalid(format!("RSA modulus of {bits} bits")));
                }
                Ok(SigningKey::from_rsa(key))
            }
            SignatureAlg::EcdsaP256Sha256 => {
                let key =
                    p256::SecretKey::from_pkcs8_der(der).map_err(|e| invalid(e.to_string()))?;
                Ok(SigningKey {
                    inner: Inner::Ecdsa(p256::ecdsa::SigningKey::from(key)),
                })
            }
        }
    }
}

fn rsa_private(key: &rsa::pkcs1v15::SigningKey<Sha256>) -> &rsa::RsaPrivateKey {
    key.as_ref()
}

/// The certificate publishing `key` for the professional `rpps`. No checks:
/// [`Pki::apply`](super::Pki::apply) checks it when it is published.
pub fn certificate_for(
    key: &SigningKey,
    id: &str,
    rpps: &str,
    issuer: &str,
    not_before: NaiveDate,
    not_after: NaiveDate,
) -> Certificate {
    Certificate {
        id: id.to_owned(),
        rpps: rpps.to_owned(),
        alg: key.alg(),
        public_key: key.public_key_der(),
        issuer: issuer.to_owned(),
        not_before,
        not_after,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{SEED_A, SEED_B, ecdsa_key, rsa_key};
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn same_seed_same_key_and_signature() {
        for alg in SignatureAlg::ALL {
            let first = match alg {
                SignatureAlg::RsaPkcs1Sha256 => rsa_key(),
                SignatureAlg::EcdsaP256Sha256 => ecdsa_key(),
            };
            let again = SigningKey::generate(alg, SEED_A);
            assert_eq!(again.alg(), alg);
            assert_eq!(first.public_key_der(), again.public_key_der(), "{alg}");
            assert_eq!(first.to_pkcs8_der(), again.to_pkcs8_der(), "{alg}");
            assert_eq!(first.sign(b"fse bytes"), again.sign(b"fse bytes"), "{alg}");
            assert_eq!(first.sign(b"fse bytes"), first.sign(b"fse bytes"), "{alg}");
            assert_ne!(first.sign(b"fse bytes"), first.sign(b"fse byteS"), "{alg}");
        }
    }

    #[test]
    fn different_seeds_different_keys() {
        let a = ecdsa_key();
        let b = SigningKey::generate(SignatureAlg::EcdsaP256Sha256, SEED_B);
        assert_ne!(a.public_key_der(), b.public_key_der());
        let a = rsa_key();
        let b = SigningKey::generate(SignatureAlg::RsaPkcs1Sha256, SEED_B);
        assert_ne!(a.public_key_der(), b.public_key_der());
        assert_eq!(b.public_key_der().len(), a.public_key_der().len());
    }

    /// The derivation is frozen: if one of these changes, keys cached by the
    /// generator and data sets signed with them no longer match. Do not
    /// update them; define a new derivation version instead.
    #[test]
    fn golden_vectors() {
        let (ec, rsa) = (ecdsa_key(), rsa_key());
        let got = [
            sha(&ec.public_key_der()),
            sha(&ec.to_pkcs8_der()),
            sha(&ec.sign(b"golden")),
            sha(&rsa.public_key_der()),
            sha(&rsa.to_pkcs8_der()),
            sha(&rsa.sign(b"golden")),
        ];
        let expected = [
            "f80de0e2b7cc7fc7486191787aec0cf04ad78528c62574d8a4dacd0128e8c1cd",
            "5cc57b35582088214bbad47479be7bf1289b8e028220e1caf004f4f3f4bdb0a1",
            "a2f2b4c118aa434be0de098c4a50badd3b349ef6ca2204ca15114e36f3bd1e5c",
            "16c0bab9427a5f8530c0abfbd49b0522cfca9c6bb26ebd2a5a87c31b5532d202",
            "c258b15166a94e633ef090b0f3901baa27b3a1530afa987c3ab39c31e1626d80",
            "4e68f5d9024a9c03a730d28c0302b584917eedd8457493038a39d0bceb7403e6",
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn rsa_keys_are_2048_bit_e_65537() {
        let key = rsa_key();
        let Inner::Rsa(k) = &key.inner else {
            panic!("not RSA")
        };
        let k = rsa_private(k);
        assert_eq!(k.n().bits(), 2048);
        assert_eq!(k.e(), &rsa::BigUint::from(65_537u32));
        assert_eq!(rsa_key().sign(b"x").len(), 256);
    }

    #[test]
    fn pkcs8_round_trip() {
        for key in [rsa_key(), ecdsa_key()] {
            let der = key.to_pkcs8_der();
            let back = SigningKey::from_pkcs8_der(key.alg(), &der).unwrap();
            assert_eq!(back.public_key_der(), key.public_key_der());
            assert_eq!(back.sign(b"m"), key.sign(b"m"));
            assert_eq!(back.to_pkcs8_der(), der);
        }
    }

    #[test]
    fn pkcs8_refusals() {
        let rsa = rsa_key().to_pkcs8_der();
        let ec = ecdsa_key().to_pkcs8_der();
        let wrong = [
            (SignatureAlg::EcdsaP256Sha256, rsa.clone()),
            (SignatureAlg::RsaPkcs1Sha256, ec.clone()),
            (SignatureAlg::RsaPkcs1Sha256, vec![]),
            (
                SignatureAlg::EcdsaP256Sha256,
                vec![0x30, 0x03, 0x02, 0x01, 0x00],
            ),
            (SignatureAlg::RsaPkcs1Sha256, rsa[..rsa.len() - 1].to_vec()),
            (
                SignatureAlg::RsaPkcs1Sha256,
                SigningKey::rsa_from_seed(SEED_A, 1024).to_pkcs8_der(),
            ),
        ];
        for (alg, der) in wrong {
            assert!(
                matches!(
                    SigningKey::from_pkcs8_der(alg, &der),
                    Err(PkiError::InvalidPrivateKey { .. })
                ),
                "{alg} {}",
                der.len()
            );
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        for key in [rsa_key(), ecdsa_key()] {
            let shown = format!("{key:?}");
            let expected = format!(
                "SigningKey {{ alg: {:?}, public_key_sha256: \"{}\", .. }}",
                key.alg(),
                sha(&key.public_key_der())
            );
            assert_eq!(shown, expected);
        }
    }

    #[test]
    fn certificate_for_copies_the_key() {
        let key = ecdsa_key();
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let cert = certificate_for(
            &key,
            "CPS-1",
            "10000123454",
            "IGC",
            d(2020, 1, 1),
            d(2027, 12, 31),
        );
        assert_eq!(cert.alg, SignatureAlg::EcdsaP256Sha256);
        assert_eq!(cert.public_key, key.public_key_der());
        assert_eq!(cert.id, "CPS-1");
        assert_eq!(cert.not_after, d(2027, 12, 31));
    }
}
