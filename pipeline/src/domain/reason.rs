//! Reasons: why a claim is rejected (or flagged), with a stable code.
//!
//! Codes are part of the contract with professionals' software: they never
//! change meaning and are never reused. Where the national return norm has a
//! known code (domain.md §1.5) it is given by [`ReasonCode::noemie`].
//! Messages never contain personal data (NIR, names, card numbers).

use std::fmt;

use serde::{Serialize, Serializer};

/// The stage that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Validation,
    Entitlement,
    Routing,
    Reimbursement,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validation => "validation",
            Stage::Entitlement => "entitlement",
            Stage::Routing => "routing",
            Stage::Reimbursement => "reimbursement",
        }
    }
}

macro_rules! reason_codes {
    ($($variant:ident => $code:literal, $noemie:expr, $doc:literal;)*) => {
        /// Every reason a stage can give. `as_str` is the stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ReasonCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ReasonCode {
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $code,)*
                }
            }

            /// The code with this stable string, if any.
            pub fn parse(code: &str) -> Option<ReasonCode> {
                match code {
                    $($code => Some(ReasonCode::$variant),)*
                    _ => None,
                }
            }

            /// The national return-norm code, where one is known.
            pub fn noemie(self) -> Option<&'static str> {
                match self {
                    $(ReasonCode::$variant => $noemie,)*
                }
            }

            pub fn description(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $doc,)*
                }
            }
        }
    };
}

reason_codes! {
    // --- validation: shape -------------------------------------------------
    Malformed => "malformed", None, "The FSE is not well-typed JSON of the contract's shape.";
    MissingField => "missing_field", None, "A mandatory field is absent.";
    TooManyLines => "too_many_lines", None, "More act lines than one FSE may carry.";
    NoActLines => "no_act_lines", None, "The FSE carries no act line.";
    InvalidFseId => "invalid_fse_id", None, "The FSE id is not PS number (8) '-' invoice number (9 digits).";
    InvalidTimestamp => "invalid_timestamp", None, "received_at is not an RFC 3339 instant.";
    InvalidDate => "invalid_date", None, "A date is not a real calendar date (YYYY-MM-DD).";
    CareDateAfterReceipt => "care_date_after_receipt", None, "The date of care is after the date the FSE was received.";
    CareDateBeforeBirth => "care_date_before_birth", None, "The date of care is before the beneficiary's birth.";
    ClaimTimeBarred => "claim_time_barred", None, "Received after the limitation period from the date of care.";
    NoRulesForDate => "no_rules_for_date", None, "No rule table is in force on the date of care.";
    InvalidNir => "invalid_nir", None, "The NIR is malformed or its key does not match.";
    InvalidBeneficiary => "invalid_beneficiary", None, "Beneficiary birth date or rank is invalid.";
    PatientAmbiguous => "patient_ambiguous", None, "Exactly one of beneficiary and ehic must be given.";
    InvalidEhic => "invalid_ehic", None, "An EHIC field is malformed.";
    InvalidRpps => "invalid_rpps", None, "The professional's RPPS is not 11 digits.";
    RppsKeyWarning => "rpps_key_warning", None, "The RPPS does not pass the Luhn check (warning only).";
    InvalidCategory => "invalid_category", None, "Unknown professional category.";
    InvalidSector => "invalid_sector", None, "Sector is not 1, 2 or 3.";
    InvalidBillingId => "invalid_billing_id", None, "The professional's billing identifier is not of kind am or finess, or is malformed, or its FINESS fails its key.";
    BillingCategoryMismatch => "billing_category_mismatch", None, "The category character of the AM number billed under is not the professional's category (an establishment's number accepts any).";
    InvalidPathway => "invalid_pathway", None, "Unknown care pathway.";
    InvalidActCode => "invalid_act_code", None, "The act code is neither an NGAP key, a CCAM code nor a prestation code.";
    UnknownActCode => "unknown_act_code", None, "The act code is not in the nomenclature.";
    ActNotAllowedForCategory => "act_not_allowed_for_category", Some("0317051"), "The act cannot be billed by this category of professional.";
    ActNotBillableOnDate => "act_not_billable_on_date", Some("0470049"), "The act has no tariff on the date of care.";
    InvalidQuantity => "invalid_quantity", None, "Quantity is not a whole number from 1 to the bound.";
    InvalidCoefficient => "invalid_coefficient", None, "Coefficient is not a positive decimal within the bound.";
    InvalidAmount => "invalid_amount", None, "An amount is not a non-negative decimal within the bound.";
    InvalidComplement => "invalid_complement", None, "Complement is not night, sunday or urgency, or none applies to the act.";
    InvalidProduct => "invalid_product", None, "A pharmacy line needs a valid CIP13 product and a unit price.";
    BaseMismatch => "base_mismatch", None, "The base computed by the professional's software differs from the insurer's (warning: the insurer's applies).";
    Duplicate => "duplicate", Some("2900005"), "An FSE with this id was already received for this beneficiary.";
    InvalidPrescriber => "invalid_prescriber", None, "The prescriber's kind is not rpps, finess or am, or its identifier is malformed or fails its key.";
    PrescriberKeyWarning => "prescriber_key_warning", None, "The prescriber's RPPS does not pass the Luhn check (warning only).";
    InvalidPrescription => "invalid_prescription", None, "A prescription's quantity, number or non-substitution mention is malformed.";
    PrescriptionMissing => "prescription_missing", None, "Prescribed care (medicines, nursing, physiotherapy, biology, transport) without its prescription.";
    PrescriptionAfterCare => "prescription_after_care", None, "The prescription is dated after the care.";
    PrescriptionExpired => "prescription_expired", None, "The care is after the prescription's validity, or a renewable prescription's first dispensing after the validity of a first dispensing.";
    EuEprescriptionNotInService => "eu_eprescription_not_in_service", None, "A foreign ePrescription on a date of care when France does not dispense them (before the service's start in the rule tables).";
    EuEprescriptionCountry => "eu_eprescription_country", None, "A foreign ePrescription whose country is not an EU/EEA state other than France on the date of care.";
    EuEprescriptionSubstanceMismatch => "eu_eprescription_substance_mismatch", None, "The dispensed CIP13 is not a listed product of the substance (ATC code) the foreign ePrescription names.";
    // --- validation: signature ---------------------------------------------
    MissingSignature => "missing_signature", None, "The FSE is not signed.";
    UnsupportedAlgorithm => "unsupported_algorithm", None, "The signature algorithm is not accepted.";
    UnknownCertificate => "unknown_certificate", None, "The signing certificate is not in the health PKI.";
    CertificateNotValid => "certificate_not_valid", None, "The certificate was not valid on the signing date.";
    CertificateRevoked => "certificate_revoked", None, "The certificate was revoked on or before the signing date.";
    CertificateOtherProfessional => "certificate_other_professional", None, "The certificate belongs to another professional.";
    BadSignature => "bad_signature", None, "The signature does not verify over the FSE.";
    // --- entitlement --------------------------------------------------------
    UnknownBeneficiary => "unknown_beneficiary", Some("0250050"), "No rights record for this beneficiary.";
    NotCoveredOnCareDate => "not_covered_on_care_date", Some("0250050"), "The beneficiary had no coverage on the date of care.";
    ExonerationNotFound => "exoneration_not_found", Some("0450072"), "An ALD-related line, but no ALD in the rights on the date of care.";
    EuEprescriptionNoMandatoryShare => "eu_eprescription_no_mandatory_share", None, "Foreign ePrescriptions dispensed to a patient neither covered nor on an EHIC: accepted with no mandatory share, the patient pays the whole (warning).";
    // --- routing ------------------------------------------------------------
    EhicFrenchCard => "ehic_french_card", None, "A French EHIC is not usable in France.";
    EhicStateNotAccepted => "ehic_state_not_accepted", None, "The card's state is not under coordination on the date of care.";
    EhicExpired => "ehic_expired", None, "The EHIC had expired on the date of care.";
    EuInstitutionUnknown => "eu_institution_unknown", None, "The card's institution is not in the EU institution directory.";
    // --- reimbursement ------------------------------------------------------
    PathwayNotHonoured => "pathway_not_honoured", None, "The declared pathway is not honoured: it claims the declared GP the rights do not name, or a referral or direct access without a declared GP or outside the categories that may claim it, or it is blank and the executant is not the declared GP (warning: outside-pathway rate applies).";
    DepassementUnderCss => "depassement_under_css", None, "A fee above the base for a CSS beneficiary (warning).";
    NoAuthorityTariff => "no_authority_tariff", None, "A sector 3 act with no tarif d'autorite: reimbursed on a zero base (warning).";
    UnknownProduct => "unknown_product", None, "The line's CIP13 has no listed base on the date of care (not in the product list, or not on that date).";
    ProductBandMismatch => "product_band_mismatch", None, "The prestation code's rate is not the product's rate band on the date of care.";
    PrescriptionExhausted => "prescription_exhausted", None, "The prescription's item was already dispensed up to its quantity, or a renewable prescription all the dispensings its renewals allow: this line would exceed it.";
    GenericRefused => "generic_refused", None, "A princeps dispensed without a justified non-substitution mention: reimbursed on its dearest generic's base (warning).";
    TiersPayantWithdrawn => "tiers_payant_withdrawn", None, "A princeps dispensed against its generic without a justified non-substitution mention: the claim is paid to the insured, its deductions taken from the payment, not deferred (tiers payant contre generiques; warning).";
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A coded reason, as the professional receives it. `field` names the input
/// field, `line` the 1-based act line, where they apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub stage: Stage,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Reason {
    pub fn new(stage: Stage, code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            stage,
            message: message.into(),
            field: None,
            line: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Reason {
        self.field = Some(field.into());
        self
    }

    pub fn line(mut self, line: usize) -> Reason {
        self.line = Some(line);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let codes: BTreeSet<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), ReasonCode::ALL.len());
        for code in codes {
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{code}"
            );
        }
    }
}
