//! The registry of the health PKI ([`Pki`]): certificates and revocations
//! built from `ref.pki` records, and the ordered checks of
//! [`Pki::verify`]. Pure: no I/O, no clock; the caller supplies the signing
//! date and the signed bytes.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::cert::{self, Certificate, PkiRecord, SignatureAlg};
use super::error::{PkiError, VerifyFailure};
use super::verify::VerifyingKey;

/// The health PKI as of the records applied so far.
#[derive(Debug, Clone, Default)]
pub struct Pki {
    certificates: BTreeMap<String, Entry>,
    /// Certificate id → earliest revocation date. Kept apart from the
    /// certificates so that re-publishing a certificate never lifts its
    /// revocation.
    revocations: BTreeMap<String, NaiveDate>,
}

#[derive(Debug, Clone)]
struct Entry {
    cert: Certificate,
    key: VerifyingKey,
}

impl Pki {
    /// Checks `record` and takes it; a refused record changes nothing.
    ///
    /// A certificate needs an id of 1 to 64 printable ASCII characters, an
    /// 11-digit RPPS, an issuer (1 to 256 characters, no control character),
    /// a public key that decodes (standard base64) as a SubjectPublicKeyInfo
    /// for the declared algorithm (RSA: 2048 to 4096 bits), and
    /// `not_before <= not_after`; it replaces an earlier certificate with the
    /// same id. A revocation is held whether or not its certificate is:
    /// `ref.pki` is compacted, so a certificate republished after its
    /// revocation comes after it in the topic, and a revocation refused then
    /// would leave the card valid ([`Pki::unmatched_revocation`] tells a
    /// revocation still waiting for its certificate). Several revocations of
    /// one certificate keep the earliest date.
    pub fn apply(&mut self, record: PkiRecord) -> Result<(), PkiError> {
        match record {
            PkiRecord::Certificate {
                id,
                rpps,
                alg,
                public_key,
                issuer,
                not_before,
                not_after,
            } => {
                cert::check_id(&id)?;
                cert::check_rpps(&rpps)?;
                cert::check_issuer(&issuer)?;
                if not_before > not_after {
                    return Err(PkiError::InvalidValidity {
                        not_before,
                        not_after,
                    });
                }
                let public_key = cert::decode_public_key(&public_key)?;
                let key = VerifyingKey::from_spki(alg, &public_key)?;
                let cert = Certificate {
                    id,
                    rpps,
                    alg,
                    public_key,
                    issuer,
                    not_before,
                    not_after,
                };
                self.certificates
                    .insert(cert.id.clone(), Entry { cert, key });
                Ok(())
            }
            PkiRecord::Revocation { cert, revoked_on } => {
                cert::check_id(&cert)?;
                self.revocations
                    .entry(cert)
                    .and_modify(|d| *d = (*d).min(revoked_on))
                    .or_insert(revoked_on);
                Ok(())
            }
        }
    }

    /// Number of certificates held.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// The certificate with this id.
    pub fn certificate(&self, id: &str) -> Option<&Certificate> {
        self.certificates.get(id).map(|e| &e.cert)
    }

    /// The date the certificate was revoked on, if it was.
    pub fn revoked_on(&self, id: &str) -> Option<NaiveDate> {
        self.revocations.get(id).copied()
    }

    /// [`PkiError::UnknownCertificate`] when `id` is revoked but no
    /// certificate of that id is held (yet): the revocation applies as soon
    /// as one is, and meanwhile the reader can say so.
    pub fn unmatched_revocation(&self, id: &str) -> Option<PkiError> {
        (self.revocations.contains_key(id) && !self.certificates.contains_key(id))
            .then(|| PkiError::UnknownCertificate(cert::truncated(id)))
    }

    /// The certificates, by id.
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.certificates.values().map(|e| &e.cert)
    }

    /// Verifies `signature` over `message` (the FSE's canonical bytes) by the
    /// professional `rpps` with certificate `cert_id`, for care on
    /// `dates.care` received by the insurer on `dates.receipt`.
    /// Checks, in order, the first failure winning:
    /// 1. `alg` names a supported algorithm, else `UnsupportedAlgorithm`;
    /// 2. the certificate is known, else `UnknownCertificate`;
    /// 3. it is `rpps`'s, else `OtherProfessional`;
    /// 4. `not_before <= care` and `receipt <= not_after` (the card existed
    ///    when the care was given and was still valid when the insurer got
    ///    the claim), else `NotValidOnDate`;
    /// 5. no revocation dated on or before `receipt`, else `Revoked`: a
    ///    revoked card cannot sign claims dated before its revocation, since
    ///    the date a signer writes proves nothing;
    /// 6. `alg` is the certificate's and the signature verifies, else
    ///    `BadSignature`.
    pub fn verify(
        &self,
        cert_id: &str,
        rpps: &str,
        alg: &str,
        dates: impl Into<SigningDates>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyFailure> {
        let SigningDates { care, receipt } = dates.into();
        let alg = SignatureAlg::parse(alg).ok_or(VerifyFailure::UnsupportedAlgorithm)?;
        let entry = self
            .certificates
            .get(cert_id)
            .ok_or(VerifyFailure::UnknownCertificate)?;
        let cert = &entry.cert;
        if cert.rpps != rpps {
            return Err(VerifyFailure::OtherProfessional);
        }
        if care < cert.not_before || receipt > cert.not_after || care > cert.not_after {
            return Err(VerifyFailure::NotValidOnDate);
        }
        if self
            .revocations
            .get(cert_id)
            .is_some_and(|&revoked| revoked <= receipt)
        {
            return Err(VerifyFailure::Revoked);
        }
        if alg != cert.alg || alg != entry.key.alg() || !entry.key.verify(message, signature) {
            return Err(VerifyFailure::BadSignature);
        }
        Ok(())
    }
}

/// The dates a signature is judged on: the date of care (the card must
/// have existed) and the insurer's date of receipt (the card must still be
/// valid and unrevoked). One date for both judges everything on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningDates {
    pub care: NaiveDate,
    pub receipt: NaiveDate,
}

impl From<NaiveDate> for SigningDates {
    fn from(date: NaiveDate) -> SigningDates {
        SigningDates {
            care: date,
            receipt: date,
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use proptest::prelude::*;

    use super::super::fixtures::{RPPS, date, ecdsa_key, pki_with, rsa_key, small_rsa_key};
    use super::super::keys::{SigningKey, certificate_for};
    use super::*;

    const MESSAGE: &[u8] = b"canonical avro bytes of fse.submitted without its signature";

    fn keys() -> [(SigningKey, &'static str); 2] {
        [(rsa_key(), "CPS-RSA"), (ecdsa_key(), "ECPS-EC")]
    }

    /// The PKI with both keys' certificates, valid 2020-01-01..=2027-12-31.
    fn pki() -> Pki {
        pki_with(
            &keys()
                .iter()
                .map(|(k, id)| (k.clone(), *id))
                .collect::<Vec<_>>(),
        )
    }

    fn on() -> NaiveDate {
        date(2025, 3, 1)
    }

    #[test]
    fn sign_then_verify() {
        let pki = pki();
        assert_eq!(pki.len(), 2);
        for (key, id) in keys() {
            let sig = key.sign(MESSAGE);
            assert_eq!(
                pki.verify(id, RPPS, key.alg().as_str(), on(), MESSAGE, &sig),
                Ok(())
            );
            // Bounds are inclusive.
            assert_eq!(
                pki.verify(
                    id,
                    RPPS,
                    key.alg().as_str(),
                    date(2020, 1, 1),
                    MESSAGE,
                    &sig
                ),
                Ok(())
            );
            assert_eq!(
                pki.verify(
                    id,
                    RPPS,
                    key.alg().as_str(),
                    date(2027, 12, 31),
                    MESSAGE,
                    &sig
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn each_failure_in_order() {
        let mut pki = pki();
        for (key, id) in keys() {
            failures_before_revocation(&pki, &key, id);
            pki.apply(PkiRecord::Revocation {
                cert: id.into(),
                revoked_on: on(),
            })
            .unwrap();
            failures_after_revocation(&pki, &key, id);
        }
    }

    fn check(
        pki: &Pki,
        cert: &str,
        rpps: &str,
        alg: &str,
        on: NaiveDate,
        sig: &[u8],
    ) -> Result<(), VerifyFailure> {
        pki.verify(cert, rpps, alg, on, MESSAGE, sig)
    }

    /// The algorithm, then the certificate, its professional, its validity
    /// and the signature itself.
    fn failures_before_revocation(pki: &Pki, key: &SigningKey, id: &str) {
        use VerifyFailure::*;
        let alg = key.alg().as_str();
        let sig = key.sign(MESSAGE);
        assert_eq!(
            check(pki, id, RPPS, "rsa-pkcs1-sha1", on(), &sig),
            Err(UnsupportedAlgorithm)
        );
        assert_eq!(
            check(pki, "nope", "x", "ed25519", on(), &[]),
            Err(UnsupportedAlgorithm)
        );
        assert_eq!(
            check(pki, "CPS-UNKNOWN", RPPS, alg, on(), &sig),
            Err(UnknownCertificate)
        );
        assert_eq!(
            check(pki, id, "10000999993", alg, on(), &sig),
            Err(OtherProfessional)
        );
        assert_eq!(
            check(pki, id, "10000999993", alg, date(2019, 1, 1), &[]),
            Err(OtherProfessional)
        );
        assert_eq!(
            check(pki, id, RPPS, alg, date(2019, 12, 31), &sig),
            Err(NotValidOnDate)
        );
        assert_eq!(
            check(pki, id, RPPS, alg, date(2028, 1, 1), &sig),
            Err(NotValidOnDate)
        );
        let other = SignatureAlg::ALL
            .into_iter()
            .find(|a| *a != key.alg())
            .unwrap();
        assert_eq!(
            check(pki, id, RPPS, other.as_str(), on(), &sig),
            Err(BadSignature)
        );
        assert_eq!(check(pki, id, RPPS, alg, on(), &[]), Err(BadSignature));
    }

    /// The certificate `id`, revoked on `on()`.
    fn failures_after_revocation(pki: &Pki, key: &SigningKey, id: &str) {
        use VerifyFailure::*;
        let alg = key.alg().as_str();
        let sig = key.sign(MESSAGE);
        // Revoked on the signing date.
        assert_eq!(check(pki, id, RPPS, alg, on(), &sig), Err(Revoked));
        // Revoked before the signing date (even with a bad signature).
        assert_eq!(
            check(pki, id, RPPS, alg, date(2026, 6, 1), &[]),
            Err(Revoked)
        );
        // Revoked the day after: earlier signatures stay valid.
        assert_eq!(
            check(pki, id, RPPS, alg, on().pred_opt().unwrap(), &sig),
            Ok(())
        );
        // Validity is checked before revocation.
        assert_eq!(
            check(pki, id, RPPS, alg, date(2028, 1, 1), &sig),
            Err(NotValidOnDate)
        );
    }

    #[test]
    fn revocations_keep_the_earliest_date_and_survive_republication() {
        let mut pki = pki();
        let (key, id) = (ecdsa_key(), "ECPS-EC");
        let sig = key.sign(MESSAGE);
        let verify = |pki: &Pki, on| pki.verify(id, RPPS, key.alg().as_str(), on, MESSAGE, &sig);
        pki.apply(PkiRecord::Revocation {
            cert: id.into(),
            revoked_on: date(2025, 6, 1),
        })
        .unwrap();
        pki.apply(PkiRecord::Revocation {
            cert: id.into(),
            revoked_on: date(2025, 3, 1),
        })
        .unwrap();
        pki.apply(PkiRecord::Revocation {
            cert: id.into(),
            revoked_on: date(2025, 9, 1),
        })
        .unwrap();
        assert_eq!(pki.revoked_on(id), Some(date(2025, 3, 1)));
        assert_eq!(verify(&pki, date(2025, 4, 1)), Err(VerifyFailure::Revoked));
        let cert = pki.certificate(id).unwrap().clone();
        pki.apply(PkiRecord::from(&cert)).unwrap();
        assert_eq!(verify(&pki, date(2025, 4, 1)), Err(VerifyFailure::Revoked));
        assert_eq!(verify(&pki, date(2025, 2, 28)), Ok(()));
    }

    /// On a compacted `ref.pki` a certificate republished after its
    /// revocation comes after it: the revocation must hold all the same.
    #[test]
    fn a_revocation_before_its_certificate_holds() {
        let (key, id) = (ecdsa_key(), "ECPS-LATE");
        let sig = key.sign(MESSAGE);
        let cert = certificate_for(&key, id, RPPS, "IGC", date(2020, 1, 1), date(2027, 12, 31));
        let verify = |pki: &Pki, on| pki.verify(id, RPPS, key.alg().as_str(), on, MESSAGE, &sig);
        let revocation = PkiRecord::Revocation {
            cert: id.into(),
            revoked_on: date(2025, 3, 1),
        };
        let mut after = Pki::default();
        after.apply(PkiRecord::from(&cert)).unwrap();
        after.apply(revocation.clone()).unwrap();
        let mut before = Pki::default();
        assert_eq!(
            before.apply(revocation),
            Ok(()),
            "held until its certificate"
        );
        assert_eq!(before.revoked_on(id), Some(date(2025, 3, 1)));
        assert_eq!(
            before.unmatched_revocation(id),
            Some(PkiError::UnknownCertificate(id.into()))
        );
        assert_eq!(
            verify(&before, date(2025, 4, 1)),
            Err(VerifyFailure::UnknownCertificate)
        );
        before.apply(PkiRecord::from(&cert)).unwrap();
        assert_eq!(before.unmatched_revocation(id), None);
        for pki in [&before, &after] {
            assert_eq!(verify(pki, date(2025, 3, 1)), Err(VerifyFailure::Revoked));
            assert_eq!(verify(pki, date(2025, 4, 1)), Err(VerifyFailure::Revoked));
            assert_eq!(verify(pki, date(2025, 2, 28)), Ok(()));
        }
    }

    #[test]
    fn a_later_certificate_replaces_the_earlier() {
        let mut pki = pki();
        let old = ecdsa_key();
        let new = SigningKey::generate(SignatureAlg::EcdsaP256Sha256, [77; 32]);
        let cert = certificate_for(
            &new,
            "ECPS-EC",
            RPPS,
            "IGC",
            date(2024, 1, 1),
            date(2024, 12, 31),
        );
        pki.apply(PkiRecord::from(&cert)).unwrap();
        assert_eq!(pki.len(), 2);
        assert_eq!(pki.certificate("ECPS-EC"), Some(&cert));
        let alg = "ecdsa-p256-sha256";
        let d = date(2024, 5, 5);
        assert_eq!(
            pki.verify("ECPS-EC", RPPS, alg, d, MESSAGE, &old.sign(MESSAGE)),
            Err(VerifyFailure::BadSignature)
        );
        assert_eq!(
            pki.verify("ECPS-EC", RPPS, alg, d, MESSAGE, &new.sign(MESSAGE)),
            Ok(())
        );
        assert_eq!(
            pki.verify("ECPS-EC", RPPS, alg, on(), MESSAGE, &new.sign(MESSAGE)),
            Err(VerifyFailure::NotValidOnDate)
        );
    }

    /// A refused record and the error it must give.
    type Refused = (PkiRecord, fn(&PkiError) -> bool);

    /// A new certificate `NEW-1` of `RPPS` (the EC key), changed.
    fn new_certificate(change: impl FnOnce(&mut Certificate)) -> PkiRecord {
        let mut c = certificate_for(
            &ecdsa_key(),
            "NEW-1",
            RPPS,
            "IGC",
            date(2020, 1, 1),
            date(2027, 12, 31),
        );
        change(&mut c);
        PkiRecord::from(&c)
    }

    /// `NEW-1` with this algorithm and public key (base64 text).
    fn with_key(alg: SignatureAlg, public_key: String) -> PkiRecord {
        let mut record = new_certificate(|c| c.alg = alg);
        if let PkiRecord::Certificate {
            public_key: key, ..
        } = &mut record
        {
            *key = public_key;
        }
        record
    }

    fn invalid_id(e: &PkiError) -> bool {
        matches!(e, PkiError::InvalidId(_))
    }

    fn invalid_key(e: &PkiError) -> bool {
        matches!(e, PkiError::InvalidPublicKey { .. })
    }

    /// Certificates and revocations with a bad field.
    fn refused_fields() -> Vec<Refused> {
        vec![
            (new_certificate(|c| c.id.clear()), invalid_id),
            (new_certificate(|c| c.id = "x".repeat(65)), invalid_id),
            (new_certificate(|c| c.id = "tab\there".into()), invalid_id),
            (new_certificate(|c| c.rpps = "1234".into()), |e| {
                matches!(e, PkiError::InvalidRpps(_))
            }),
            (new_certificate(|c| c.issuer.clear()), |e| {
                matches!(e, PkiError::InvalidIssuer(_))
            }),
            (new_certificate(|c| c.not_after = date(2019, 12, 31)), |e| {
                matches!(e, PkiError::InvalidValidity { .. })
            }),
            (
                PkiRecord::Revocation {
                    cert: "tab\there".into(),
                    revoked_on: on(),
                },
                invalid_id,
            ),
        ]
    }

    /// Certificates whose public key is not one of their algorithm.
    fn refused_keys() -> Vec<Refused> {
        use SignatureAlg::{EcdsaP256Sha256 as Ec, RsaPkcs1Sha256 as Rsa};
        let ec = ecdsa_key().public_key_der();
        let mut truncated = ec.clone();
        truncated.pop();
        let mut trailing = ec.clone();
        trailing.push(0);
        let mut off_curve = ec.clone();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        let mut refused: Vec<Refused> = vec![(with_key(Ec, "not base64!".into()), |e| {
            *e == PkiError::BadBase64
        })];
        for (alg, der) in [
            (Ec, Vec::new()),
            (Ec, b"garbage key bytes".to_vec()),
            (Ec, rsa_key().public_key_der()),
            (Rsa, ec),
            (Ec, truncated),
            (Ec, trailing),
            (Ec, off_curve),
            (Rsa, small_rsa_key().public_key_der()),
        ] {
            refused.push((with_key(alg, BASE64.encode(der)), invalid_key));
        }
        refused
    }

    #[test]
    fn refused_records_change_nothing() {
        let mut pki = pki();
        for (record, expected) in refused_fields().into_iter().chain(refused_keys()) {
            let before = format!("{pki:?}");
            let err = pki.apply(record.clone()).unwrap_err();
            assert!(expected(&err), "{record:?} gave {err:?}");
            assert_eq!(format!("{pki:?}"), before);
        }
        assert_eq!(pki.len(), 2);
        assert!(pki.certificate("NEW-1").is_none());
        pki.apply(new_certificate(|_| {})).unwrap();
        assert_eq!(pki.len(), 3);
    }

    #[test]
    fn pki_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + Clone + std::fmt::Debug>() {}
        shared::<Pki>();
    }

    #[test]
    fn certificates_come_out_by_id() {
        let pki = pki();
        let ids: Vec<_> = pki.certificates().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["CPS-RSA", "ECPS-EC"]);
        assert!(!pki.is_empty());
        assert!(Pki::default().is_empty());
    }

    #[test]
    fn huge_inputs() {
        let pki = pki();
        let big = vec![0xa5u8; 4 << 20];
        for (key, id) in keys() {
            let alg = key.alg().as_str();
            let sig = key.sign(&big);
            assert_eq!(pki.verify(id, RPPS, alg, on(), &big, &sig), Ok(()));
            assert_eq!(
                pki.verify(id, RPPS, alg, on(), MESSAGE, &big),
                Err(VerifyFailure::BadSignature)
            );
        }
        let long = "x".repeat(1 << 20);
        assert_eq!(
            pki.verify(&long, RPPS, "ecdsa-p256-sha256", on(), MESSAGE, &[]),
            Err(VerifyFailure::UnknownCertificate)
        );
    }

    fn signed() -> &'static [(SigningKey, &'static str, Vec<u8>); 2] {
        static SIGNED: std::sync::OnceLock<[(SigningKey, &'static str, Vec<u8>); 2]> =
            std::sync::OnceLock::new();
        SIGNED.get_or_init(|| {
            keys().map(|(k, id)| {
                let sig = k.sign(MESSAGE);
                (k, id, sig)
            })
        })
    }

    fn shared_pki() -> &'static Pki {
        static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
        PKI.get_or_init(pki)
    }

    proptest! {
        #[test]
        fn flipping_a_message_byte_breaks_the_signature(pos in 0..MESSAGE.len(), mask in 1u8..=255, which in 0usize..2) {
            let (key, id, sig) = &signed()[which];
            let mut msg = MESSAGE.to_vec();
            msg[pos] ^= mask;
            prop_assert_eq!(
                shared_pki().verify(id, RPPS, key.alg().as_str(), on(), &msg, sig),
                Err(VerifyFailure::BadSignature)
            );
        }

        #[test]
        fn flipping_a_signature_byte_breaks_the_signature(pos in 0usize..256, mask in 1u8..=255, which in 0usize..2) {
            let (key, id, sig) = &signed()[which];
            let mut sig = sig.clone();
            let pos = pos % sig.len();
            sig[pos] ^= mask;
            prop_assert_eq!(
                shared_pki().verify(id, RPPS, key.alg().as_str(), on(), MESSAGE, &sig),
                Err(VerifyFailure::BadSignature)
            );
        }

        #[test]
        fn verify_never_panics(
            cert in prop_oneof![Just("CPS-RSA".to_string()), Just("ECPS-EC".to_string()), ".{0,80}"],
            rpps in prop_oneof![Just(RPPS.to_string()), "[0-9]{0,12}", ".{0,20}"],
            alg in prop_oneof![Just("rsa-pkcs1-sha256".to_string()), Just("ecdsa-p256-sha256".to_string()), ".{0,20}"],
            days in -1_000_000i32..1_000_000,
            message in proptest::collection::vec(any::<u8>(), 0..600),
            signature in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let on = NaiveDate::from_num_days_from_ce_opt(730_000 + days).unwrap_or(NaiveDate::MIN);
            let got = shared_pki().verify(&cert, &rpps, &alg, on, &message, &signature);
            // Random bytes are never a valid signature.
            prop_assert!(got.is_err());
        }

        #[test]
        fn apply_never_panics(
            id in ".{0,70}",
            rpps in prop_oneof!["[0-9]{11}", ".{0,14}"],
            alg in prop_oneof![Just(SignatureAlg::RsaPkcs1Sha256), Just(SignatureAlg::EcdsaP256Sha256)],
            key in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| BASE64.encode(b)),
                ".{0,100}",
            ],
            issuer in ".{0,40}",
            before in -1_000_000i32..1_000_000,
            after in -1_000_000i32..1_000_000,
            revoke in any::<bool>(),
        ) {
            let mut pki = shared_pki().clone();
            let d = |n| NaiveDate::from_num_days_from_ce_opt(730_000 + n).unwrap_or(NaiveDate::MAX);
            let record = if revoke {
                PkiRecord::Revocation { cert: id, revoked_on: d(before) }
            } else {
                PkiRecord::Certificate { id, rpps, alg, public_key: key, issuer, not_before: d(before), not_after: d(after) }
            };
            let _ = pki.apply(record);
        }

        #[test]
        fn parsing_any_line_never_panics(line in ".{0,300}") {
            if let Ok(record) = PkiRecord::from_json(&line) {
                let _ = shared_pki().clone().apply(record);
            }
        }
    }
}
