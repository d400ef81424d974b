//! The events' enums and records, declared in schema order, and the topic
//! each top-level record is the value of.

#[cfg(test)]
use super::ToAvroValue;
use super::{AvroEnum, AvroField, AvroRecord, CodecError, Decoder, Encoder, Without};
use crate::events::model::{
    ActLineRec, AmcClaim, AmcPeriodRec, AuditCheckpoint, BeneficiaryRec, BillingKind, BillingRec,
    Category, CertificateRec, ClaimRefRec, Complement, CoverageRec, DecisionLineRec, DecisionRec,
    EhicRec, EntitlementRec, EuClaim, EuInstitutionRecord, EventHeader, ForeignPrescriptionRec,
    FseDecided, FseEntitled, FseRejected, FseRouted, FseSubmitted, FseValidated, GpPeriodRec,
    GuaranteeRec, LedgerEntry, LedgerOutcomeRec, LocalRegimePeriodRec, LocalRegimeSymbol,
    NonSubstitution, Pathway, PayeeKind, PaymentOrder, PeriodRec, PkiEvent, PrescriberKind,
    PrescriptionRec, ProfessionalRec, ProfessionalReturn, RawCutRec, ReasonRec, RefOffset,
    ReturnKind, RevocationRec, RightsRecord, Route, RoutingRec, SectorSymbol, SignatureCheck,
    SignatureRec, SourceRef, Stage, Status, TiersPayantRec,
};

/// An Avro enum: the variants listed in declaration order with their symbols.
/// `symbol` is an exhaustive match, so a variant missing here does not compile;
/// a test checks that the list order is the declaration order.
macro_rules! avro_enum {
    ($ty:ident, $name:literal, [$($variant:ident = $symbol:literal),+ $(,)?]) => {
        impl AvroEnum for $ty {
            const NAME: &'static str = $name;
            const VARIANTS: &'static [Self] = &[$($ty::$variant),+];
            const SYMBOLS: &'static [&'static str] = &[$($symbol),+];
            fn index(self) -> u32 {
                self as u32
            }
            fn symbol(self) -> &'static str {
                match self {
                    $($ty::$variant => $symbol),+
                }
            }
        }

        impl AvroField for $ty {
            fn encode_field(&self, out: &mut Encoder) {
                out.enum_index(self.index());
            }
            fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                input.enum_value::<$ty>()
            }
        }

        #[cfg(test)]
        impl ToAvroValue for $ty {
            fn to_avro_value(&self) -> apache_avro::types::Value {
                super::test_values::enum_value(*self)
            }
        }
    };
}

/// An Avro record: its fields in schema order. The decoder builds the struct
/// with every field named, so a field missing here does not compile.
macro_rules! avro_record {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl AvroField for $ty {
            fn encode_field(&self, out: &mut Encoder) {
                $(self.$field.encode_field(out);)+
            }
            fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                input.enter()?;
                // Struct expression fields are evaluated in the order written.
                let value = $ty {
                    $($field: AvroField::decode_field(input)?,)+
                };
                input.leave();
                Ok(value)
            }
        }

        #[cfg(test)]
        impl ToAvroValue for $ty {
            fn to_avro_value(&self) -> apache_avro::types::Value {
                apache_avro::types::Value::Record(vec![
                    $((stringify!($field).to_owned(), self.$field.to_avro_value()),)+
                ])
            }
        }
    };
}

/// The items every topic's [`AvroRecord`] has alike: its schema, its topic,
/// the plain encode and decode, and its fingerprint's cache.
macro_rules! avro_topic_items {
    ($topic:literal) => {
        const SCHEMA_JSON: &'static str =
            include_str!(concat!("../../../../schemas/", $topic, ".avsc"));
        const TOPIC: &'static str = $topic;
        fn encode(&self, out: &mut Encoder) {
            self.encode_field(out);
        }
        fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
            Self::decode_field(input)
        }
        fn fingerprint_cache() -> &'static std::sync::OnceLock<[u8; 8]> {
            static CACHE: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
            &CACHE
        }
    };
}

/// A record that is a topic's value: its schema file is `schemas/<topic>.avsc`.
/// With `before_prescriptions = N, before_foreign = M, before_billing = B`: a
/// record carrying the FSE, written in its history version N (act lines
/// without `prescription`) when no line has a prescription, in its version M
/// (prescriptions without `foreign`) when no prescription is foreign, and in
/// its version B (the professional without `billing`) when the professional
/// names no billing identifier, and in its version R (prescriptions without
/// `renewals`) when no prescription is renewable, so that a run recorded
/// before any of those fields existed re-runs to the same bytes
/// (docs/audit.md); all read back by hand.
macro_rules! avro_topic {
    ($ty:ident, $topic:literal, before_prescriptions = $v0:literal, before_foreign = $v1:literal, before_billing = $v2:literal, before_renewals = $v3:literal) => {
        impl AvroRecord for $ty {
            avro_topic_items!($topic);
            fn decode_older(
                version: u32,
                input: &mut Decoder<'_>,
            ) -> Option<Result<Self, CodecError>> {
                let form = OlderForm::of(version, $v0, [$v0, $v1, $v2, $v3])?;
                form.read_with(input);
                let value = Self::decode_field(input);
                OlderForm::CURRENT.read_with(input);
                Some(value)
            }
            fn written_as(&self) -> Option<u32> {
                written_as_before(&self.fse, Some($v0), [$v1, $v2, $v3])
            }
            fn older_form(version: u32, out: &mut Encoder) {
                if let Some(form) = OlderForm::of(version, $v0, [$v0, $v1, $v2, $v3]) {
                    form.write_with(out);
                }
            }
        }
    };
    ($ty:ident, $topic:literal, before_payee = $v:literal, $payee:expr) => {
        impl AvroRecord for $ty {
            avro_topic_items!($topic);
            fn decode_older(
                version: u32,
                input: &mut Decoder<'_>,
            ) -> Option<Result<Self, CodecError>> {
                if version != $v {
                    return None;
                }
                input.without.payee = true;
                let value = Self::decode_field(input);
                input.without.payee = false;
                Some(value)
            }
            /// Without a billing identifier to pay, the version from before
            /// the field, so runs recorded then re-run to the same bytes.
            fn written_as(&self) -> Option<u32> {
                let payee: fn(&Self) -> bool = $payee;
                (!payee(self)).then_some($v)
            }
            fn older_form(version: u32, out: &mut Encoder) {
                if version == $v {
                    out.without.payee = true;
                }
            }
        }
    };
    ($ty:ident, $topic:literal) => {
        impl AvroRecord for $ty {
            avro_topic_items!($topic);
        }
    };
}

avro_enum!(
    Category,
    "Category",
    [
        Gp = "GP",
        Specialist = "SPECIALIST",
        Dentist = "DENTIST",
        Midwife = "MIDWIFE",
        Nurse = "NURSE",
        Physiotherapist = "PHYSIOTHERAPIST",
        Pharmacist = "PHARMACIST",
        Laboratory = "LABORATORY",
        Radiology = "RADIOLOGY",
        Transport = "TRANSPORT",
        Hospital = "HOSPITAL",
    ]
);
avro_enum!(SectorSymbol, "Sector", [S1 = "S1", S2 = "S2", S3 = "S3"]);
avro_enum!(
    Pathway,
    "Pathway",
    [
        Mt = "MT",
        Referred = "REFERRED",
        DirectAccess = "DIRECT_ACCESS",
        Emergency = "EMERGENCY",
        Outside = "OUTSIDE",
    ]
);
avro_enum!(
    Complement,
    "Complement",
    [Night = "NIGHT", Sunday = "SUNDAY", Urgency = "URGENCY"]
);
avro_enum!(
    Stage,
    "Stage",
    [
        Validation = "VALIDATION",
        Entitlement = "ENTITLEMENT",
        Routing = "ROUTING",
        Reimbursement = "REIMBURSEMENT",
    ]
);
avro_enum!(
    SignatureCheck,
    "SignatureCheck",
    [Verified = "VERIFIED", NotChecked = "NOT_CHECKED"]
);
avro_enum!(
    LocalRegimeSymbol,
    "LocalRegime",
    [AlsaceMoselle = "ALSACE_MOSELLE"]
);
avro_enum!(Route, "Route", [Domestic = "DOMESTIC", Eu = "EU"]);
avro_enum!(Status, "Status", [Paid = "PAID", Rejected = "REJECTED"]);
avro_enum!(
    PayeeKind,
    "PayeeKind",
    [Professional = "PROFESSIONAL", Insured = "INSURED"]
);
avro_enum!(
    ReturnKind,
    "ReturnKind",
    [
        ArlPositive = "ARL_POSITIVE",
        ArlNegative = "ARL_NEGATIVE",
        RspPayment = "RSP_PAYMENT",
        RspRejection = "RSP_REJECTION",
    ]
);

avro_record!(SourceRef {
    topic,
    partition,
    offset,
    ordinal
});
avro_record!(RefOffset {
    topic,
    partition,
    offset
});
avro_record!(EventHeader {
    event_id,
    causation_id,
    correlation_id,
    event_time_millis,
    source,
    ref_watermark,
    rules_version,
});
avro_record!(BeneficiaryRec {
    nir,
    birth_date,
    rank
});
avro_record!(EhicRec {
    country,
    institution_id,
    card_id,
    personal_id,
    surname,
    given_names,
    birth_date,
    expiry,
});
avro_record!(TiersPayantRec { amo, amc });
avro_enum!(
    PrescriberKind,
    "PrescriberKind",
    [Rpps = "RPPS", Finess = "FINESS", Am = "AM"]
);
avro_enum!(
    NonSubstitution,
    "NonSubstitution",
    [Mte = "MTE", Efg = "EFG", Cif = "CIF"]
);
avro_record!(ForeignPrescriptionRec { country, id, atc });
/// A record whose last fields came later than the others, in order: each is
/// written and read only when the encoder's or decoder's form has it (its
/// flag in [`Without`] unset), so one type serves the versions before and
/// after them.
macro_rules! record_with_later_field {
    ($record:ident { $($field:ident),+ $(,)? } then $($later:ident unless $without:ident),+) => {
        impl AvroField for $record {
            fn encode_field(&self, out: &mut Encoder) {
                $(self.$field.encode_field(out);)+
                $(if !out.without.$without {
                    self.$later.encode_field(out);
                })+
            }
            fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                input.enter()?;
                let mut value = $record {
                    $($field: AvroField::decode_field(input)?,)+
                    $($later: None,)+
                };
                $(if !input.without.$without {
                    value.$later = AvroField::decode_field(input)?;
                })+
                input.leave();
                Ok(value)
            }
        }

        #[cfg(test)]
        impl ToAvroValue for $record {
            fn to_avro_value(&self) -> apache_avro::types::Value {
                apache_avro::types::Value::Record(vec![
                    $((stringify!($field).to_owned(), self.$field.to_avro_value()),)+
                    $((stringify!($later).to_owned(), self.$later.to_avro_value()),)+
                ])
            }
        }
    };
}
// A prescription: its fields up to `non_substitution`, then `foreign`
// (2026-12-06) and `renewals` (2026-12-07), which the versions of the FSE's
// topics before each lack, and which the signed bytes carry apart
// (signatures.rs).
record_with_later_field!(
    PrescriptionRec {
        prescriber_kind,
        prescriber_id,
        date,
        number,
        quantity,
        non_substitution,
    } then foreign unless foreign,
        renewals unless renewals
);
// An act line: its fields up to `leg`, then `prescription` (2026-12-06),
// which the FSE's signed form (`fse.submitted.v1`) and the versions of the
// stage topics before it lack.
record_with_later_field!(
    ActLineRec {
        code,
        quantity,
        coefficient_hundredths,
        charged_cents,
        complement,
        ald_related,
        base_cents,
        product,
        unit_price_cents,
        leg,
    } then prescription unless prescriptions
);
avro_enum!(BillingKind, "BillingKind", [Am = "AM", Finess = "FINESS"]);
avro_record!(BillingRec { kind, id });
// The professional: its fields up to `optam`, then `billing` (2026-12-06),
// which the versions of the FSE's topics before it lack, and which the signed
// bytes carry apart (signatures.rs).
record_with_later_field!(
    ProfessionalRec {
        rpps,
        category,
        sector,
        optam,
    } then billing unless billing
);
avro_record!(SignatureRec { alg, cert, value });
// `FseSubmitted` as a field (inside `fse.validated` and `fse.entitled`) is
// its signed form, the `fse.submitted.v1` record: everything but the
// insurer's stamp. As the value of `fse.submitted` it is that form followed
// by the stamp; the field order makes the two encodings a prefix and its
// continuation.
macro_rules! fse_signed_form {
    ($($field:ident),+ $(,)?) => {
        impl AvroField for FseSubmitted {
            fn encode_field(&self, out: &mut Encoder) {
                $(self.$field.encode_field(out);)+
            }
            fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                input.enter()?;
                let value = FseSubmitted {
                    $($field: AvroField::decode_field(input)?,)+
                    ingested_at_millis: None,
                };
                input.leave();
                Ok(value)
            }
        }

        #[cfg(test)]
        impl ToAvroValue for FseSubmitted {
            fn to_avro_value(&self) -> apache_avro::types::Value {
                apache_avro::types::Value::Record(vec![
                    $((stringify!($field).to_owned(), self.$field.to_avro_value()),)+
                ])
            }

            fn to_avro_record_value(&self) -> apache_avro::types::Value {
                let mut fields = match self.to_avro_value() {
                    apache_avro::types::Value::Record(fields) => fields,
                    other => return other,
                };
                fields.push((
                    "ingested_at_millis".to_owned(),
                    self.ingested_at_millis.to_avro_value(),
                ));
                apache_avro::types::Value::Record(fields)
            }
        }
    };
}
fse_signed_form!(
    fse_id,
    received_at_millis,
    received_offset_minutes,
    care_date,
    professional,
    beneficiary,
    ehic,
    pathway,
    tiers_payant,
    acts,
    signature,
);

impl AvroRecord for FseSubmitted {
    const SCHEMA_JSON: &'static str = include_str!("../../../../schemas/fse.submitted.avsc");
    const TOPIC: &'static str = "fse.submitted";
    fn encode(&self, out: &mut Encoder) {
        self.encode_field(out);
        self.ingested_at_millis.encode_field(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let mut fse = Self::decode_field(input)?;
        fse.ingested_at_millis = AvroField::decode_field(input)?;
        Ok(fse)
    }
    /// v1, the signed form, is every record written before the stamp; v2
    /// every record written before prescriptions, v3 before foreign
    /// ePrescriptions, v4 before billing identifiers (all 2026-12-06), v5
    /// before renewable prescriptions (2026-12-07): all read by hand (the
    /// fast path), not through apache-avro's resolution.
    fn decode_older(version: u32, input: &mut Decoder<'_>) -> Option<Result<Self, CodecError>> {
        let form = OlderForm::of(version, SIGNED_FORM_VERSION, SUBMITTED_BEFORE)?;
        form.read_with(input);
        let fse = Self::decode_field(input).and_then(|mut fse| {
            if version != SIGNED_FORM_VERSION {
                fse.ingested_at_millis = AvroField::decode_field(input)?;
            }
            Ok(fse)
        });
        OlderForm::CURRENT.read_with(input);
        Some(fse)
    }
    /// An FSE is written in the oldest version that holds it: v3 without a
    /// foreign ePrescription, a billing identifier or a renewable
    /// prescription (as every FSE was before those fields), v4 with a
    /// foreign ePrescription only, v5 with a billing identifier but no
    /// renewals, so that `clearing gen` and the readers of the topic see the
    /// bytes they did.
    fn written_as(&self) -> Option<u32> {
        written_as_before(
            self,
            None,
            [BEFORE_FOREIGN, BEFORE_BILLING, BEFORE_RENEWALS],
        )
    }
    fn older_form(version: u32, out: &mut Encoder) {
        if let Some(form) = OlderForm::of(version, SIGNED_FORM_VERSION, SUBMITTED_BEFORE) {
            form.write_with(out);
        }
    }
    fn fingerprint_cache() -> &'static std::sync::OnceLock<[u8; 8]> {
        static CACHE: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
        &CACHE
    }
}

/// The history version of `fse.submitted` that is the FSE's signed form.
pub const SIGNED_FORM_VERSION: u32 = 1;
/// The history version of `fse.submitted` before act lines carried their
/// prescription (2026-12-06).
pub const BEFORE_PRESCRIPTIONS: u32 = 2;
/// The history version of `fse.submitted` before a prescription could be a
/// foreign ePrescription (2026-12-06).
pub const BEFORE_FOREIGN: u32 = 3;
/// The history version of `fse.submitted` before the professional could name
/// a billing identifier (2026-12-06).
pub const BEFORE_BILLING: u32 = 4;
/// The history version of `fse.submitted` before a prescription could say
/// how many times it may be renewed (2026-12-07).
pub const BEFORE_RENEWALS: u32 = 5;
/// The versions of `fse.submitted` before each later field.
const SUBMITTED_BEFORE: [u32; 4] = [
    BEFORE_PRESCRIPTIONS,
    BEFORE_FOREIGN,
    BEFORE_BILLING,
    BEFORE_RENEWALS,
];

avro_record!(ReasonRec {
    code,
    stage,
    message,
    field,
    line
});
avro_record!(FseValidated {
    header,
    fse,
    beneficiary_key,
    signature_check,
    warnings
});
avro_record!(EntitlementRec {
    regime,
    fund,
    ald,
    css,
    ame,
    maternity,
    minor,
    pathway_free,
    local_regime,
    declared_gp,
    amc,
    rights_digest,
});
avro_record!(FseEntitled {
    header,
    fse,
    beneficiary_key,
    signature_check,
    warnings,
    entitlement,
});
avro_record!(RoutingRec {
    route,
    country,
    institution_id
});
avro_record!(FseRouted {
    header,
    fse,
    beneficiary_key,
    signature_check,
    warnings,
    entitlement,
    routing,
});
avro_record!(DecisionLineRec {
    code,
    charged_cents,
    base_cents,
    rate_percent,
    amo_cents,
    css_cents,
    participation_cents,
    franchise_cents,
    tariff,
});
avro_record!(DecisionRec {
    fse_id,
    status,
    route,
    reasons,
    warnings,
    lines,
    amo_cents,
    css_cents,
    participation_cents,
    franchise_cents,
    flat_fee_cents,
    deferred_cents,
    imputed_cents,
    patient_cents,
    paid_to_professional_cents,
    paid_to_insured_cents,
    rules_version,
    signature_check,
    beneficiary_key,
    care_date,
    reimbursement_date,
});
// Its last field, `payee` (2026-12-06), is left out of the version before it.
record_with_later_field!(
    ClaimRefRec {
    rpps,
    received_on,
    tiers_payant,
    amc,
    eu_country,
    eu_institution_id,
} then payee unless payee
);
avro_record!(FseDecided {
    header,
    decision,
    claim
});
avro_record!(FseRejected {
    header,
    decision,
    claim
});
avro_record!(PaymentOrder {
    header,
    order_id,
    payee_kind,
    payee,
    value_date,
    amount_cents,
    imputed_cents,
    fse_ids,
    guarantee_due,
    late_penalty_cents,
    guarantees,
});
avro_record!(GuaranteeRec {
    fse_id,
    received_on,
    due,
    paid_working_day,
    late,
    penalty_cents,
});
// Its last field, `payee` (2026-12-06), is left out of the version before it.
record_with_later_field!(
    ProfessionalReturn {
    header,
    kind,
    rpps,
    batch_id,
    fse_id,
    amount_cents,
    reasons,
    fse_count,
} then payee unless payee
);
// Its last field, `payee` (2026-12-06), is left out of the version before it.
record_with_later_field!(
    LedgerOutcomeRec {
    fse_id,
    beneficiary_key,
    rpps,
    received_on,
    status,
    validation_rejected,
    reason_codes,
    tiers_payant_amo,
    amo_cents,
    paid_to_professional_cents,
    paid_to_insured_cents,
    imputed_cents,
    eu_country,
    eu_institution_id,
} then payee unless payee
);
avro_record!(LedgerEntry {
    header,
    close_on,
    outcome
});
avro_record!(EuClaim {
    header,
    claim_id,
    country,
    institution_id,
    half_year,
    introduced_on,
    introduction_deadline,
    payment_due,
    dispute_deadline,
    receivable,
    amount_cents,
    currency,
    fse_ids,
});
avro_record!(AmcClaim {
    header,
    amc,
    fse_id,
    beneficiary_key,
    ticket_cents,
    depassement_cents,
    amount_cents,
});
avro_record!(AuditCheckpoint {
    stage,
    partition,
    input_offset_from,
    input_offset_to,
    output_count,
    chain_hash,
    rules_version,
    ref_watermark,
});
avro_record!(PeriodRec { from, to });
avro_record!(CoverageRec {
    from,
    to,
    regime,
    fund
});
avro_record!(RightsRecord {
    nir,
    birth_date,
    rank,
    coverage,
    ald,
    css,
    ame,
    maternity,
    local_regime,
    declared_gp,
    amc,
    declared_gp_periods,
    local_regime_periods,
    amc_periods,
});
avro_record!(GpPeriodRec { from, to, rpps });
avro_record!(LocalRegimePeriodRec { from, to, regime });
avro_record!(AmcPeriodRec { from, to, amc });
avro_record!(CertificateRec {
    id,
    rpps,
    alg,
    public_key,
    issuer,
    not_before,
    not_after
});
avro_record!(RevocationRec { cert, revoked_on });
avro_record!(EuInstitutionRecord {
    country,
    institution_id,
    name,
    acronym,
    from,
    to
});
avro_record!(RawCutRec { length, sha256 });

avro_topic!(
    FseValidated,
    "fse.validated",
    before_prescriptions = 0,
    before_foreign = 1,
    before_billing = 2,
    before_renewals = 3
);
avro_topic!(
    FseEntitled,
    "fse.entitled",
    before_prescriptions = 0,
    before_foreign = 1,
    before_billing = 2,
    before_renewals = 3
);
avro_topic!(
    FseRouted,
    "fse.routed",
    before_prescriptions = 0,
    before_foreign = 1,
    before_billing = 2,
    before_renewals = 3
);

/// The fields a history version of a topic carrying the FSE lacks, each of
/// which came later: a line's `prescription`, a prescription's `foreign`, the
/// professional's `billing`, a prescription's `renewals`.
#[derive(Debug, Clone, Copy)]
struct OlderForm(Without);

impl OlderForm {
    const CURRENT: OlderForm = OlderForm(Without {
        prescriptions: false,
        foreign: false,
        billing: false,
        payee: false,
        renewals: false,
    });

    /// The form of history version `version`, given the last versions before
    /// each later field (`before`: prescriptions, foreign, billing,
    /// renewals), or `None` for a version outside `oldest..=` the last of
    /// them (another form, read by the registry's generic path).
    fn of(version: u32, oldest: u32, before: [u32; 4]) -> Option<OlderForm> {
        let [prescriptions, foreign, billing, renewals] = before;
        (oldest..=renewals)
            .contains(&version)
            .then_some(OlderForm(Without {
                prescriptions: version <= prescriptions,
                foreign: version <= foreign,
                billing: version <= billing,
                payee: false,
                renewals: version <= renewals,
            }))
    }

    /// The FSE's fields of this form; `payee`, not the FSE's, is left as is.
    fn write_with(self, out: &mut Encoder) {
        out.without = Without {
            payee: out.without.payee,
            ..self.0
        };
    }

    fn read_with(self, input: &mut Decoder<'_>) {
        input.without = Without {
            payee: input.without.payee,
            ..self.0
        };
    }
}

/// The oldest version that holds `fse` unchanged, or `None` when a
/// prescription says how many times it may be renewed (the current version):
/// the version before renewals when the professional names a billing
/// identifier, else the one before billing when a line carries a foreign
/// ePrescription, else the one before foreign ePrescriptions, or before
/// prescriptions when no line has one and the topic writes that version
/// (`before_prescriptions`). `before` holds the versions before foreign,
/// billing and renewals.
fn written_as_before(
    fse: &FseSubmitted,
    before_prescriptions: Option<u32>,
    before: [u32; 3],
) -> Option<u32> {
    let [before_foreign, before_billing, before_renewals] = before;
    let prescriptions = || fse.acts.iter().filter_map(|a| a.prescription.as_ref());
    if prescriptions().any(|p| p.renewals.is_some()) {
        None
    } else if fse.professional.billing.is_some() {
        Some(before_renewals)
    } else if prescriptions().any(|p| p.foreign.is_some()) {
        Some(before_billing)
    } else if prescriptions().next().is_some() {
        Some(before_foreign)
    } else {
        Some(before_prescriptions.unwrap_or(before_foreign))
    }
}
avro_topic!(FseDecided, "fse.decided", before_payee = 1, |d| d
    .claim
    .as_ref()
    .is_some_and(|c| c.payee.is_some()));
avro_topic!(FseRejected, "fse.rejected", before_payee = 1, |d| d
    .claim
    .as_ref()
    .is_some_and(|c| c.payee.is_some()));
avro_topic!(PaymentOrder, "payments.orders");
avro_topic!(
    ProfessionalReturn,
    "returns.professional",
    before_payee = 1,
    |r| r.payee.is_some()
);
avro_topic!(EuClaim, "eu.claims");
avro_topic!(AmcClaim, "amc.claims");
avro_topic!(LedgerEntry, "outbound.ledger", before_payee = 0, |e| e
    .outcome
    .as_ref()
    .is_some_and(|o| o.payee.is_some()));
avro_topic!(AuditCheckpoint, "audit.checkpoints");
avro_topic!(RightsRecord, "ref.rights");
avro_topic!(PkiEvent, "ref.pki");
avro_topic!(EuInstitutionRecord, "ref.eu.institutions");
