//! The signature check of validation: the health PKI over the FSE's
//! canonical bytes, i.e. its signed form's single-object encoding
//! (`fse.submitted.v1`) with the signature field null (docs/signatures.md).
//!
//! The certificate must have existed on the date of care and still be valid
//! and unrevoked on the insurer's date of receipt (the ingest stamp,
//! docs/architecture.md "The insurer's clock"): the date a signer writes
//! proves nothing. A record without the stamp is judged on the date of care.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::clock::Receipt;
use crate::domain::{Fse, FseInput, Reason, ReasonCode, SignatureCheck, Stage};
use crate::events::convert::submitted_from_input;
use crate::events::model::{ActLineRec, FseSubmitted};
use crate::events::registry::SchemaRegistry;
use crate::events::{AvroField, Encoder};
use crate::pki::{Pki, SigningDates, VerifyFailure};
use crate::refdata::SignatureVerifier;

/// The canonical signed bytes of a wire FSE: its signed form
/// (`fse.submitted.v1`, without the insurer's stamp) with `signature: null`.
/// Pinned to that version so that a later field of `fse.submitted` never
/// changes what was signed. When a line carries a prescription (since
/// 2026-12-06; v1 has no such field), every line's `prescription` field
/// follows, in line order: an FSE without one signs the bytes it always did,
/// and one with a prescription cannot lose or gain it unnoticed. Those
/// prescriptions are written without their `foreign` field; when a line
/// carries a foreign ePrescription (since 2026-12-06), every line's foreign
/// ePrescription (null when none) follows in turn, so the bytes signed before
/// that field are unchanged. Then, when the professional names a billing
/// identifier (since 2026-12-06), its `billing` field: who is paid is signed.
/// Last, when a prescription says how many times it may be renewed (since
/// 2026-12-07; the prescriptions above are written without it), every line's
/// renewals (null for a line without a prescription or without renewals), so
/// that the treatment a prescription covers cannot be lengthened unnoticed.
pub fn canonical_bytes(registry: &SchemaRegistry, fse: &FseSubmitted) -> Vec<u8> {
    let mut bytes = if fse.signature.is_none() {
        registry.encode_signed_form(fse)
    } else {
        let mut unsigned = fse.clone();
        unsigned.signature = None;
        registry.encode_signed_form(&unsigned)
    };
    if fse.acts.iter().any(|a| a.prescription.is_some()) {
        let mut tail = Encoder::from_vec(bytes);
        tail.without.foreign = true;
        tail.without.renewals = true;
        for line in &fse.acts {
            line.prescription.encode_field(&mut tail);
        }
        let foreign =
            |line: &ActLineRec| line.prescription.as_ref().and_then(|p| p.foreign.clone());
        if fse.acts.iter().any(|a| foreign(a).is_some()) {
            for line in &fse.acts {
                foreign(line).encode_field(&mut tail);
            }
        }
        bytes = tail.into_bytes();
    }
    if fse.professional.billing.is_some() {
        let mut tail = Encoder::from_vec(bytes);
        fse.professional.billing.encode_field(&mut tail);
        bytes = tail.into_bytes();
    }
    let renewals = |line: &ActLineRec| line.prescription.as_ref().and_then(|p| p.renewals);
    if fse.acts.iter().any(|a| renewals(a).is_some()) {
        let mut tail = Encoder::from_vec(bytes);
        for line in &fse.acts {
            renewals(line).encode_field(&mut tail);
        }
        bytes = tail.into_bytes();
    }
    bytes
}

/// Verifies against a PKI held in memory (the `ref.pki` table as of a watermark).
pub struct PkiVerifier<'a> {
    pub pki: &'a Pki,
    pub registry: &'a SchemaRegistry,
}

fn failure_code(failure: VerifyFailure) -> ReasonCode {
    match failure {
        VerifyFailure::UnsupportedAlgorithm => ReasonCode::UnsupportedAlgorithm,
        VerifyFailure::UnknownCertificate => ReasonCode::UnknownCertificate,
        VerifyFailure::OtherProfessional => ReasonCode::CertificateOtherProfessional,
        VerifyFailure::NotValidOnDate => ReasonCode::CertificateNotValid,
        VerifyFailure::Revoked => ReasonCode::CertificateRevoked,
        VerifyFailure::BadSignature => ReasonCode::BadSignature,
    }
}

impl SignatureVerifier for PkiVerifier<'_> {
    fn check(
        &self,
        submission: &FseInput,
        fse: &Fse,
        receipt: Receipt,
    ) -> Result<SignatureCheck, Reason> {
        let reason = |code: ReasonCode, message: &str| {
            Reason::new(Stage::Validation, code, message).field("signature")
        };
        let Some(signature) = &submission.signature else {
            return Err(reason(
                ReasonCode::MissingSignature,
                "the FSE carries no signature",
            ));
        };
        let value = BASE64
            .decode(signature.value.as_deref().unwrap_or_default())
            .map_err(|_| {
                reason(
                    ReasonCode::BadSignature,
                    "the signature value is not base64",
                )
            })?;
        // Validation has checked every field already, so the wire form exists.
        let wire = submitted_from_input(submission).map_err(|e| {
            reason(
                ReasonCode::BadSignature,
                &format!("the FSE has no canonical form: {}", e.field),
            )
        })?;
        let message = canonical_bytes(self.registry, &wire);
        self.pki
            .verify(
                signature.cert.as_deref().unwrap_or_default(),
                fse.professional.rpps.as_str(),
                signature.alg.as_deref().unwrap_or_default(),
                SigningDates {
                    care: fse.care_date,
                    receipt: receipt.signature_date(fse),
                },
                &message,
                &value,
            )
            .map(|()| SignatureCheck::Verified)
            .map_err(|failure| reason(failure_code(failure), failure_code(failure).description()))
    }
}

/// A verifier that owns its PKI and registry (`clearing adjudicate --pki`).
pub struct OwnedPkiVerifier {
    pki: Pki,
    registry: SchemaRegistry,
}

impl OwnedPkiVerifier {
    pub fn new(pki: Pki) -> Result<OwnedPkiVerifier, crate::events::registry::RegistryError> {
        Ok(OwnedPkiVerifier {
            pki,
            registry: SchemaRegistry::new()?,
        })
    }
}

impl SignatureVerifier for OwnedPkiVerifier {
    fn check(
        &self,
        submission: &FseInput,
        fse: &Fse,
        receipt: Receipt,
    ) -> Result<SignatureCheck, Reason> {
        PkiVerifier {
            pki: &self.pki,
            registry: &self.registry,
        }
        .check(submission, fse, receipt)
    }
}

#[cfg(test)]
mod tests {
    //! Given a GP's FSE billed under a health centre's FINESS and signed by
    //! the GP's card, when validation checks it against the health PKI, then
    //! it verifies against the RPPS's certificate, and the billing identifier
    //! cannot be changed, added or removed after signing.

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use chrono::NaiveDate;
    use serde_json::json;

    use super::*;
    use crate::adjudicate::Adjudicator;
    use crate::domain::Status;
    use crate::domain::fse::{BillingInput, SignatureInput};
    use crate::pki::{PkiRecord, SignatureAlg, SigningKey, certificate_for};
    use crate::pseudonym::PseudonymKey;
    use crate::rules::Rules;

    const GP: &str = "10000123454";
    const CARD: &str = "CPS-GP";

    fn key() -> SigningKey {
        SigningKey::generate(SignatureAlg::EcdsaP256Sha256, [23; 32])
    }

    fn adjudicator() -> Adjudicator {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let mut pki = Pki::default();
        let cert = certificate_for(
            &key(),
            CARD,
            GP,
            "IGC-SANTE-TEST",
            date(2020, 1, 1),
            date(2027, 12, 31),
        );
        pki.apply(PkiRecord::from(&cert)).unwrap();
        let mut a = Adjudicator::new(
            Rules::embedded().unwrap(),
            PseudonymKey::development(),
            Box::new(OwnedPkiVerifier::new(pki).unwrap()),
        );
        a.load_rights_line(
            &json!({"nir": "185057800604830", "birth_date": "1985-05-12", "rank": 1,
                    "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
                    "ald": [], "css": [], "ame": [], "maternity": [],
                    "local_regime": null, "declared_gp": GP})
            .to_string(),
        )
        .unwrap();
        a
    }

    fn billing(id: &str) -> Option<BillingInput> {
        Some(BillingInput {
            kind: Some("finess".into()),
            id: Some(id.into()),
        })
    }

    /// The G consultation of 20 Jan 2025, billed under `billed`, signed as
    /// billed under `signed`.
    fn consultation(signed: Option<BillingInput>, billed: Option<BillingInput>) -> FseInput {
        let mut input: FseInput = serde_json::from_value(json!({
            "fse_id": "12345678-000000042", "received_at": "2025-01-20T18:00:00+01:00",
            "care_date": "2025-01-20",
            "professional": {"rpps": GP, "category": "gp", "sector": "1"},
            "beneficiary": {"nir": "185057800604830", "birth_date": "1985-05-12", "rank": 1},
            "pathway": "mt", "tiers_payant": {"amo": false, "amc": false},
            "acts": [{"code": "G", "charged": "30.00"}]}))
        .unwrap();
        let registry = SchemaRegistry::new().unwrap();
        if let Some(p) = input.professional.as_mut() {
            p.billing = signed;
        }
        let wire = submitted_from_input(&input).unwrap();
        let value = key().sign(&canonical_bytes(&registry, &wire));
        input.signature = Some(SignatureInput {
            alg: Some(key().alg().as_str().into()),
            cert: Some(CARD.into()),
            value: Some(BASE64.encode(value)),
        });
        if let Some(p) = input.professional.as_mut() {
            p.billing = billed;
        }
        input
    }

    fn codes(input: &FseInput) -> (Status, Vec<&'static str>) {
        let d = adjudicator().decide(input).unwrap();
        (
            d.status,
            d.reasons.iter().map(|r| r.code.as_str()).collect(),
        )
    }

    #[test]
    fn the_rpps_signs_what_a_finess_bills_and_the_finess_is_signed() {
        let centre = || billing("750000010");
        assert_eq!(
            codes(&consultation(centre(), centre())),
            (Status::Paid, vec![])
        );
        let bad = (Status::Rejected, vec!["bad_signature"]);
        assert_eq!(codes(&consultation(centre(), billing("130000011"))), bad);
        assert_eq!(codes(&consultation(None, centre())), bad);
        assert_eq!(codes(&consultation(centre(), None)), bad);
    }
}
