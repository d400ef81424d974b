//! Signatures of FSEs against the health PKI.
//!
//! The signed bytes are supplied by the caller: the canonical Avro bytes of
//! the `fse.submitted` event without its signature field. This module checks
//! a signature over them with a certificate from the `ref.pki` topic, in a
//! fixed order of checks (see [`Pki::verify`] and docs/signatures.md), and
//! derives deterministic signing keys for the synthetic data generator.
//!
//! - `cert.rs`: algorithms, certificates, the `ref.pki` record shape;
//! - `registry.rs`: the [`Pki`] registry and its checks;
//! - `verify.rs`: the public-key parsing and the cryptographic check;
//! - `keys.rs`: [`SigningKey`] and [`certificate_for`];
//! - `derive.rs`: the seed-to-key derivation, frozen;
//! - `error.rs`: [`PkiError`] and [`VerifyFailure`].
//!
//! Pure: no I/O, no clock, no global random-number generator.

#![forbid(unsafe_code)]

mod cert;
mod derive;
mod error;
mod keys;
mod registry;
mod verify;

#[cfg(test)]
mod fixtures;

pub use cert::{Certificate, PkiRecord, SignatureAlg};
pub use error::{PkiError, VerifyFailure};
pub use keys::{RSA_KEY_BITS, SigningKey, certificate_for};
pub use registry::{Pki, SigningDates};
pub use verify::{RSA_MAX_BITS, RSA_MIN_BITS};
