//! The cryptographic check: a certificate's SubjectPublicKeyInfo is checked
//! strictly once (RustCrypto DER decoding: algorithm OID, curve, point on the
//! curve, RSA modulus size) and parsed once into an `aws-lc-rs`
//! [`ParsedPublicKey`]; each verification then only runs the signature
//! check. This is the only file that names the verification crate.

use std::fmt;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

use super::cert::SignatureAlg;
use super::error::PkiError;

/// Accepted RSA modulus sizes, in bits.
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 4096;

/// A certificate's public key, ready to verify.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    alg: SignatureAlg,
    key: ParsedPublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Checks `spki` (SubjectPublicKeyInfo DER, nothing after it) as a key
    /// for `alg` and parses it for verification.
    pub(crate) fn from_spki(alg: SignatureAlg, spki: &[u8]) -> Result<VerifyingKey, PkiError> {
        let invalid = |reason: String| PkiError::InvalidPublicKey { alg, reason };
        let params: &'static dyn lc::VerificationAlgorithm = match alg {
            SignatureAlg::RsaPkcs1Sha256 => {
                // rsaEncryption OID, NULL parameters, 2 <= e < 2^33, n <= 4096 bits.
                let key = rsa::RsaPublicKey::from_public_key_der(spki)
                    .map_err(|e| invalid(e.to_string()))?;
                let bits = key.n().bits();
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(invalid(format!(
                        "RSA modulus of {bits} bits, {RSA_MIN_BITS} to {RSA_MAX_BITS} accepted"
                    )));
                }
                &lc::RSA_PKCS1_2048_8192_SHA256
            }
            SignatureAlg::EcdsaP256Sha256 => {
                // id-ecPublicKey with namedCurve prime256v1; the point is on the curve.
                p256::PublicKey::from_public_key_der(spki).map_err(|e| invalid(e.to_string()))?;
                &lc::ECDSA_P256_SHA256_ASN1
            }
        };
        let key = ParsedPublicKey::new(params, spki).map_err(|e| invalid(e.to_string()))?;
        Ok(VerifyingKey { alg, key })
    }

    pub(crate) fn alg(&self) -> SignatureAlg {
        self.alg
    }

    /// Whether `signature` is a valid signature of `message` with this key:
    /// RSA PKCS#1 v1.5 over SHA-256, or a DER ECDSA P-256 signature over
    /// SHA-256.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}
