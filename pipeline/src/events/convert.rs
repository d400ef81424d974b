//! Conversions between the JSON/domain shapes and the wire shapes.
//!
//! `FseInput → FseSubmitted` is fallible (it is how `clearing submit` and the
//! signature check see a JSON FSE: the wire shape is typed); the reverse is
//! total, so the validation stage reads any well-typed wire FSE through the
//! same checks as a JSON one. Rendering is chosen so that
//! `submitted → input → submitted` is the identity: the signed bytes survive
//! a trip through JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, FixedOffset, NaiveDate, Offset, SecondsFormat, Utc};

use super::model::*;
use crate::domain::fse::{
    ActLineInput, BeneficiaryInput, BillingInput, EhicInput, ForeignPrescriptionInput,
    PrescriptionInput, ProfessionalInput, SignatureInput, TiersPayantInput,
};
use crate::domain::rights::{
    AmcPeriod, CoveragePeriod, GpPeriod, LocalRegime, LocalRegimePeriod, Period, RightsInput,
};
use crate::domain::{Decision, DecisionLine, FseInput, Reason, Sector};
use crate::ids::{Country, EhicInstitutionId};
use crate::money::{Cents, Hundredths};
use crate::pseudonym::BeneficiaryKey;
use crate::stages::{Entitled, Entitlement, Routed, Routing, Validated};

/// A JSON FSE that the typed wire shape cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConvertError {
    pub field: String,
    pub problem: &'static str,
}

fn err(field: impl Into<String>, problem: &'static str) -> ConvertError {
    ConvertError {
        field: field.into(),
        problem,
    }
}

fn required<'a, T>(value: &'a Option<T>, field: &str) -> Result<&'a T, ConvertError> {
    value.as_ref().ok_or_else(|| err(field, "required"))
}

fn date(value: &Option<String>, field: &str) -> Result<NaiveDate, ConvertError> {
    let text = required(value, field)?;
    crate::dates::parse_iso_date(text).ok_or_else(|| err(field, "not a date YYYY-MM-DD"))
}

/// An amount as sent, sign included: the wire carries what the professional
/// sent, and validation rejects a negative amount with its code.
fn cents(text: &str, field: &str) -> Result<i64, ConvertError> {
    let (sign, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    Cents::parse_euros(magnitude)
        .map(|c| sign * c.get())
        .map_err(|_| err(field, "not an amount in euros"))
}

fn sector_symbol(sector: Sector) -> SectorSymbol {
    match sector {
        Sector::One => SectorSymbol::S1,
        Sector::Two => SectorSymbol::S2,
        Sector::Three => SectorSymbol::S3,
    }
}

/// The typed wire form of a JSON FSE.
pub fn submitted_from_input(input: &FseInput) -> Result<FseSubmitted, ConvertError> {
    let received = DateTime::parse_from_rfc3339(required(&input.received_at, "received_at")?)
        .map_err(|_| err("received_at", "not an RFC 3339 instant"))?;
    let professional = required(&input.professional, "professional")?;
    let category =
        crate::domain::Category::parse(required(&professional.category, "professional.category")?)
            .ok_or_else(|| err("professional.category", "unknown category"))?;
    let sector = Sector::parse(required(&professional.sector, "professional.sector")?)
        .ok_or_else(|| err("professional.sector", "unknown sector"))?;
    let beneficiary = input
        .beneficiary
        .as_ref()
        .map(beneficiary_rec)
        .transpose()?;
    let ehic = input.ehic.as_ref().map(ehic_rec).transpose()?;
    let pathway = match &input.pathway {
        None => None,
        Some(text) => Some(
            crate::domain::Pathway::parse(text).ok_or_else(|| err("pathway", "unknown pathway"))?,
        ),
    };
    let tiers_payant = input.tiers_payant.unwrap_or_default();
    let acts = (required(&input.acts, "acts")?.iter().enumerate())
        .map(|(i, line)| act_line_rec(i, line))
        .collect::<Result<Vec<_>, _>>()?;
    let signature = input.signature.as_ref().map(signature_rec).transpose()?;
    Ok(FseSubmitted {
        fse_id: required(&input.fse_id, "fse_id")?.clone(),
        received_at_millis: received.timestamp_millis(),
        received_offset_minutes: received.offset().local_minus_utc() / 60,
        ingested_at_millis: None,
        care_date: date(&input.care_date, "care_date")?,
        professional: ProfessionalRec {
            rpps: required(&professional.rpps, "professional.rpps")?.clone(),
            category,
            sector: sector_symbol(sector),
            optam: professional.optam,
            billing: professional.billing.as_ref().map(billing_rec).transpose()?,
        },
        beneficiary,
        ehic,
        pathway,
        tiers_payant: TiersPayantRec {
            amo: tiers_payant.amo,
            amc: tiers_payant.amc,
        },
        acts,
        signature,
    })
}

/// The professional's billing identifier: a known kind and an id (its
/// checks are validation's).
fn billing_rec(b: &BillingInput) -> Result<BillingRec, ConvertError> {
    let kind = match required(&b.kind, "professional.billing.kind")?.as_str() {
        "am" => BillingKind::Am,
        "finess" => BillingKind::Finess,
        _ => {
            return Err(err(
                "professional.billing.kind",
                "unknown billing kind (am or finess)",
            ));
        }
    };
    Ok(BillingRec {
        kind,
        id: required(&b.id, "professional.billing.id")?.clone(),
    })
}

fn beneficiary_rec(b: &BeneficiaryInput) -> Result<BeneficiaryRec, ConvertError> {
    Ok(BeneficiaryRec {
        nir: required(&b.nir, "beneficiary.nir")?.clone(),
        birth_date: date(&b.birth_date, "beneficiary.birth_date")?,
        rank: i32::from(*required(&b.rank, "beneficiary.rank")?),
    })
}

fn ehic_rec(e: &EhicInput) -> Result<EhicRec, ConvertError> {
    Ok(EhicRec {
        country: required(&e.country, "ehic.country")?.clone(),
        institution_id: required(&e.institution_id, "ehic.institution_id")?.clone(),
        card_id: required(&e.card_id, "ehic.card_id")?.clone(),
        personal_id: required(&e.personal_id, "ehic.personal_id")?.clone(),
        surname: required(&e.surname, "ehic.surname")?.clone(),
        given_names: required(&e.given_names, "ehic.given_names")?.clone(),
        birth_date: date(&e.birth_date, "ehic.birth_date")?,
        expiry: date(&e.expiry, "ehic.expiry")?,
    })
}

/// Act line `i` (from 0).
fn act_line_rec(i: usize, line: &ActLineInput) -> Result<ActLineRec, ConvertError> {
    let field = |name: &str| format!("acts[{i}].{name}");
    let coefficient = match &line.coefficient {
        None => Hundredths::ONE,
        Some(text) => Hundredths::parse(text)
            .ok_or_else(|| err(field("coefficient"), "not a positive decimal"))?,
    };
    let optional_cents = |text: &Option<String>, name: &str| {
        text.as_deref().map(|t| cents(t, &field(name))).transpose()
    };
    Ok(ActLineRec {
        code: required(&line.code, &field("code"))?.clone(),
        quantity: i32::try_from(line.quantity.unwrap_or(1))
            .map_err(|_| err(field("quantity"), "too large"))?,
        coefficient_hundredths: i32::try_from(coefficient.get())
            .map_err(|_| err(field("coefficient"), "too large"))?,
        charged_cents: cents(
            required(&line.charged, &field("charged"))?,
            &field("charged"),
        )?,
        complement: match &line.complement {
            None => None,
            Some(text) => Some(
                crate::domain::Complement::parse(text)
                    .ok_or_else(|| err(field("complement"), "unknown complement"))?,
            ),
        },
        ald_related: line.ald_related,
        base_cents: optional_cents(&line.base, "base")?,
        product: line.product.clone(),
        unit_price_cents: optional_cents(&line.unit_price, "unit_price")?,
        leg: line
            .leg
            .map(i32::try_from)
            .transpose()
            .map_err(|_| err(field("leg"), "too large"))?,
        prescription: line
            .prescription
            .as_ref()
            .map(|p| prescription_rec(i, p))
            .transpose()?,
    })
}

/// The prescription of act line `i` (from 0).
fn prescription_rec(i: usize, p: &PrescriptionInput) -> Result<PrescriptionRec, ConvertError> {
    let field = |name: &str| format!("acts[{i}].prescription.{name}");
    let foreign = match &p.foreign {
        None => None,
        Some(_) if p.prescriber_kind.is_some() || p.prescriber.is_some() => {
            return Err(err(
                field("prescriber"),
                "a foreign ePrescription names no French prescriber",
            ));
        }
        Some(f) => Some(ForeignPrescriptionRec {
            country: required(&f.country, &field("foreign.country"))?.clone(),
            id: required(&f.id, &field("foreign.id"))?.clone(),
            atc: required(&f.atc, &field("foreign.atc"))?.clone(),
        }),
    };
    let (prescriber_kind, prescriber_id) = if foreign.is_some() {
        // The wire's prescriber fields are required: a foreign
        // ePrescription's are RPPS and empty (schemas/fse.submitted.avsc).
        (PrescriberKind::Rpps, String::new())
    } else {
        let kind = match required(&p.prescriber_kind, &field("prescriber_kind"))?.as_str() {
            "rpps" => PrescriberKind::Rpps,
            "finess" => PrescriberKind::Finess,
            "am" => PrescriberKind::Am,
            _ => return Err(err(field("prescriber_kind"), "unknown prescriber kind")),
        };
        (kind, required(&p.prescriber, &field("prescriber"))?.clone())
    };
    Ok(PrescriptionRec {
        prescriber_kind,
        prescriber_id,
        date: date(&p.date, &field("date"))?,
        number: p.number.clone(),
        quantity: p
            .quantity
            .map(i32::try_from)
            .transpose()
            .map_err(|_| err(field("quantity"), "too large"))?,
        non_substitution: non_substitution_rec(p, &field)?,
        foreign,
        renewals: p
            .renewals
            .map(i32::try_from)
            .transpose()
            .map_err(|_| err(field("renewals"), "too large"))?,
    })
}

fn non_substitution_rec(
    p: &PrescriptionInput,
    field: &dyn Fn(&str) -> String,
) -> Result<Option<NonSubstitution>, ConvertError> {
    Ok(match &p.non_substitution {
        None => None,
        Some(text) => Some(
            match crate::domain::NonSubstitution::parse(text)
                .ok_or_else(|| err(field("non_substitution"), "unknown mention"))?
            {
                crate::domain::NonSubstitution::Mte => NonSubstitution::Mte,
                crate::domain::NonSubstitution::Efg => NonSubstitution::Efg,
                crate::domain::NonSubstitution::Cif => NonSubstitution::Cif,
            },
        ),
    })
}

fn prescription_input(p: &PrescriptionRec) -> PrescriptionInput {
    let foreign = p.foreign.as_ref().map(|f| ForeignPrescriptionInput {
        country: Some(f.country.clone()),
        id: Some(f.id.clone()),
        atc: Some(f.atc.clone()),
    });
    let french = foreign.is_none();
    PrescriptionInput {
        prescriber_kind: french.then(|| {
            match p.prescriber_kind {
                PrescriberKind::Rpps => "rpps",
                PrescriberKind::Finess => "finess",
                PrescriberKind::Am => "am",
            }
            .to_string()
        }),
        prescriber: french.then(|| p.prescriber_id.clone()),
        date: Some(p.date.to_string()),
        number: p.number.clone(),
        // Negative quantities become 0: rejected by validation.
        quantity: p.quantity.map(|q| u32::try_from(q).unwrap_or(0)),
        non_substitution: p.non_substitution.map(|n| {
            match n {
                NonSubstitution::Mte => "mte",
                NonSubstitution::Efg => "efg",
                NonSubstitution::Cif => "cif",
            }
            .to_string()
        }),
        foreign,
        // Negative renewals become u32::MAX: rejected by validation.
        renewals: p.renewals.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
    }
}

fn signature_rec(s: &SignatureInput) -> Result<SignatureRec, ConvertError> {
    Ok(SignatureRec {
        alg: s.alg.clone().unwrap_or_default(),
        cert: s.cert.clone().unwrap_or_default(),
        value: BASE64
            .decode(s.value.as_deref().unwrap_or_default())
            .map_err(|_| err("signature.value", "not base64"))?,
    })
}

fn render_instant(millis: i64, offset_minutes: i32) -> String {
    // An offset beyond ±24 h cannot be rendered: UTC is shown instead, and the
    // instant itself is kept.
    let offset = FixedOffset::east_opt(offset_minutes.saturating_mul(60)).unwrap_or(Utc.fix());
    match DateTime::from_timestamp_millis(millis) {
        Some(utc) => {
            let local = utc.with_timezone(&offset);
            let format = if millis % 1000 == 0 {
                SecondsFormat::Secs
            } else {
                SecondsFormat::Millis
            };
            local.to_rfc3339_opts(format, false)
        }
        // Out of chrono's range: validation reports it as an invalid instant.
        None => format!("invalid-instant:{millis}"),
    }
}

fn render_cents(cents: i64) -> String {
    Cents::new(cents).to_string()
}

fn sector_str(sector: SectorSymbol) -> &'static str {
    match sector {
        SectorSymbol::S1 => "1",
        SectorSymbol::S2 => "2",
        SectorSymbol::S3 => "3",
    }
}

fn act_line_input(a: &ActLineRec) -> ActLineInput {
    ActLineInput {
        code: Some(a.code.clone()),
        // Negative quantities and coefficients become 0: rejected by validation.
        quantity: Some(u32::try_from(a.quantity).unwrap_or(0)),
        coefficient: Some(
            Hundredths::new(u32::try_from(a.coefficient_hundredths).unwrap_or(0)).to_string(),
        ),
        charged: Some(render_cents(a.charged_cents)),
        complement: a.complement.map(|c| complement_str(c).to_string()),
        ald_related: a.ald_related,
        base: a.base_cents.map(render_cents),
        product: a.product.clone(),
        unit_price: a.unit_price_cents.map(render_cents),
        leg: a.leg.map(|l| u32::try_from(l).unwrap_or(0)),
        prescription: a.prescription.as_ref().map(prescription_input),
    }
}

/// The JSON form of a wire FSE (total: odd values surface as validation
/// rejections, never as conversion failures).
pub fn input_from_submitted(fse: &FseSubmitted) -> FseInput {
    FseInput {
        fse_id: Some(fse.fse_id.clone()),
        received_at: Some(render_instant(
            fse.received_at_millis,
            fse.received_offset_minutes,
        )),
        care_date: Some(fse.care_date.to_string()),
        professional: Some(ProfessionalInput {
            rpps: Some(fse.professional.rpps.clone()),
            category: Some(fse.professional.category.as_str().to_string()),
            sector: Some(sector_str(fse.professional.sector).to_string()),
            optam: fse.professional.optam,
            billing: fse.professional.billing.as_ref().map(|b| BillingInput {
                kind: Some(
                    match b.kind {
                        BillingKind::Am => "am",
                        BillingKind::Finess => "finess",
                    }
                    .to_string(),
                ),
                id: Some(b.id.clone()),
            }),
        }),
        beneficiary: fse.beneficiary.as_ref().map(|b| BeneficiaryInput {
            nir: Some(b.nir.clone()),
            birth_date: Some(b.birth_date.to_string()),
            // Out-of-range ranks become 0, which validation rejects.
            rank: Some(u8::try_from(b.rank).unwrap_or(0)),
        }),
        ehic: fse.ehic.as_ref().map(|e| EhicInput {
            country: Some(e.country.clone()),
            institution_id: Some(e.institution_id.clone()),
            card_id: Some(e.card_id.clone()),
            personal_id: Some(e.personal_id.clone()),
            surname: Some(e.surname.clone()),
            given_names: Some(e.given_names.clone()),
            birth_date: Some(e.birth_date.to_string()),
            expiry: Some(e.expiry.to_string()),
        }),
        pathway: fse.pathway.map(|p| pathway_str(p).to_string()),
        tiers_payant: Some(TiersPayantInput {
            amo: fse.tiers_payant.amo,
            amc: fse.tiers_payant.amc,
        }),
        acts: Some(fse.acts.iter().map(act_line_input).collect()),
        signature: fse.signature.as_ref().map(|s| SignatureInput {
            alg: Some(s.alg.clone()),
            cert: Some(s.cert.clone()),
            value: Some(BASE64.encode(&s.value)),
        }),
    }
}

pub fn pathway_str(p: crate::domain::Pathway) -> &'static str {
    use crate::domain::Pathway::*;
    match p {
        Mt => "mt",
        Referred => "referred",
        DirectAccess => "direct_access",
        Emergency => "emergency",
        Outside => "outside",
    }
}

pub fn complement_str(c: crate::domain::Complement) -> &'static str {
    use crate::domain::Complement::*;
    match c {
        Night => "night",
        Sunday => "sunday",
        Urgency => "urgency",
    }
}

pub fn reason_rec(reason: &Reason) -> ReasonRec {
    ReasonRec {
        code: reason.code.as_str().to_string(),
        stage: reason.stage,
        message: reason.message.clone(),
        field: reason.field.clone(),
        line: reason.line.and_then(|l| i32::try_from(l).ok()),
    }
}

fn line_rec(line: &DecisionLine) -> DecisionLineRec {
    DecisionLineRec {
        code: line.code.clone(),
        charged_cents: line.charged.get(),
        base_cents: line.base.get(),
        rate_percent: i32::from(line.rate.percent()),
        amo_cents: line.amo.get(),
        css_cents: line.css.get(),
        participation_cents: line.participation.get(),
        franchise_cents: line.franchise.get(),
        tariff: line.tariff.clone(),
    }
}

pub fn decision_rec(d: &Decision) -> DecisionRec {
    DecisionRec {
        fse_id: d.fse_id.clone(),
        status: d.status,
        route: d.route,
        reasons: d.reasons.iter().map(reason_rec).collect(),
        warnings: d.warnings.iter().map(reason_rec).collect(),
        lines: d.lines.iter().map(line_rec).collect(),
        amo_cents: d.amo.get(),
        css_cents: d.css.get(),
        participation_cents: d.participation.get(),
        franchise_cents: d.franchise.get(),
        flat_fee_cents: d.flat_fee.get(),
        deferred_cents: d.deferred.get(),
        imputed_cents: d.imputed.get(),
        patient_cents: d.patient.get(),
        paid_to_professional_cents: d.paid_to_professional.get(),
        paid_to_insured_cents: d.paid_to_insured.get(),
        rules_version: d.rules_version.clone(),
        signature_check: d.signature_check,
        beneficiary_key: d.beneficiary_key.clone(),
        care_date: d.care_date,
        reimbursement_date: d.reimbursement_date,
    }
}

fn period(p: &Period) -> PeriodRec {
    PeriodRec {
        from: p.from,
        to: p.to,
    }
}

fn period_back(p: &PeriodRec) -> Period {
    Period {
        from: p.from,
        to: p.to,
    }
}

pub fn rights_record(r: &RightsInput) -> RightsRecord {
    RightsRecord {
        nir: r.nir.clone(),
        birth_date: r.birth_date,
        rank: i32::from(r.rank),
        coverage: r
            .coverage
            .iter()
            .map(|c| CoverageRec {
                from: c.from,
                to: c.to,
                regime: c.regime.clone(),
                fund: c.fund.clone(),
            })
            .collect(),
        ald: r.ald.iter().map(period).collect(),
        css: r.css.iter().map(period).collect(),
        ame: r.ame.iter().map(period).collect(),
        maternity: r.maternity.iter().map(period).collect(),
        local_regime: r.local_regime.map(local_symbol),
        declared_gp: r.declared_gp.clone(),
        amc: r.amc.clone(),
        declared_gp_periods: r.declared_gp_periods.iter().map(gp_period).collect(),
        local_regime_periods: r.local_regime_periods.iter().map(local_period).collect(),
        amc_periods: r.amc_periods.iter().map(amc_period).collect(),
    }
}

fn local_symbol(r: LocalRegime) -> LocalRegimeSymbol {
    match r {
        LocalRegime::AlsaceMoselle => LocalRegimeSymbol::AlsaceMoselle,
    }
}

fn local_back(r: LocalRegimeSymbol) -> LocalRegime {
    match r {
        LocalRegimeSymbol::AlsaceMoselle => LocalRegime::AlsaceMoselle,
    }
}

fn gp_period(p: &GpPeriod) -> GpPeriodRec {
    GpPeriodRec {
        from: p.from,
        to: p.to,
        rpps: p.rpps.clone(),
    }
}

fn gp_period_back(p: &GpPeriodRec) -> GpPeriod {
    GpPeriod {
        from: p.from,
        to: p.to,
        rpps: p.rpps.clone(),
    }
}

fn local_period(p: &LocalRegimePeriod) -> LocalRegimePeriodRec {
    LocalRegimePeriodRec {
        from: p.from,
        to: p.to,
        regime: local_symbol(p.regime),
    }
}

fn local_period_back(p: &LocalRegimePeriodRec) -> LocalRegimePeriod {
    LocalRegimePeriod {
        from: p.from,
        to: p.to,
        regime: local_back(p.regime),
    }
}

fn amc_period(p: &AmcPeriod) -> AmcPeriodRec {
    AmcPeriodRec {
        from: p.from,
        to: p.to,
        amc: p.amc.clone(),
    }
}

fn amc_period_back(p: &AmcPeriodRec) -> AmcPeriod {
    AmcPeriod {
        from: p.from,
        to: p.to,
        amc: p.amc.clone(),
    }
}

pub fn rights_input(r: &RightsRecord) -> RightsInput {
    RightsInput {
        nir: r.nir.clone(),
        birth_date: r.birth_date,
        // Out-of-range ranks become 0; the key then differs from any claim's.
        rank: u8::try_from(r.rank).unwrap_or(0),
        coverage: r
            .coverage
            .iter()
            .map(|c| CoveragePeriod {
                from: c.from,
                to: c.to,
                regime: c.regime.clone(),
                fund: c.fund.clone(),
            })
            .collect(),
        ald: r.ald.iter().map(period_back).collect(),
        css: r.css.iter().map(period_back).collect(),
        ame: r.ame.iter().map(period_back).collect(),
        maternity: r.maternity.iter().map(period_back).collect(),
        local_regime: r.local_regime.map(local_back),
        declared_gp: r.declared_gp.clone(),
        amc: r.amc.clone(),
        declared_gp_periods: r.declared_gp_periods.iter().map(gp_period_back).collect(),
        local_regime_periods: r
            .local_regime_periods
            .iter()
            .map(local_period_back)
            .collect(),
        amc_periods: r.amc_periods.iter().map(amc_period_back).collect(),
    }
}

// ---------------------------------------------------------------------------
// Stage outputs read back from a topic (the runtime's restore and replay path)

/// A reason as it travels; `None` for a code this binary does not know.
pub fn reason_from_rec(rec: &ReasonRec) -> Option<Reason> {
    Some(Reason {
        code: crate::domain::ReasonCode::parse(&rec.code)?,
        stage: rec.stage,
        message: rec.message.clone(),
        field: rec.field.clone(),
        line: rec.line.and_then(|l| usize::try_from(l).ok()),
    })
}

/// Why an event read back cannot become a stage input (it is dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadBackError(pub String);

fn validated_parts(
    fse: &FseSubmitted,
    beneficiary_key: &str,
    signature_check: crate::domain::SignatureCheck,
    warnings: &[ReasonRec],
) -> Result<Validated, ReadBackError> {
    let checked = crate::stages::validation::reparse(&input_from_submitted(fse))
        .ok_or_else(|| ReadBackError("the FSE no longer passes validation's checks".into()))?;
    // The date rules that need no reference data, again: every later rule
    // is looked up by the date of care, so one that validation would have
    // refused (a care date in 9999 still finds the last rule table) must not
    // be paid on an upstream event's word.
    if checked.care_date > checked.reimbursement_date()
        || checked.care_date < checked.patient.birth_date()
    {
        return Err(ReadBackError(
            "the date of care is after the receipt or before the birth".into(),
        ));
    }
    let warnings = warnings
        .iter()
        .map(reason_from_rec)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ReadBackError("a warning carries an unknown code".into()))?;
    Ok(Validated {
        fse: checked,
        beneficiary: BeneficiaryKey::from_stored(beneficiary_key),
        signature_check,
        warnings,
    })
}

/// `fse.validated`: the FSE in its signed form (the insurer's stamp is in
/// the header's `event_time_millis`, not in the embedded FSE).
pub fn validated_event(header: EventHeader, mut fse: FseSubmitted, v: &Validated) -> FseValidated {
    fse.ingested_at_millis = None;
    FseValidated {
        header,
        fse,
        beneficiary_key: v.beneficiary.to_string(),
        signature_check: v.signature_check,
        warnings: v.warnings.iter().map(reason_rec).collect(),
    }
}

pub fn validated_from_event(e: &FseValidated) -> Result<Validated, ReadBackError> {
    validated_parts(&e.fse, &e.beneficiary_key, e.signature_check, &e.warnings)
}

fn entitlement_rec(e: &Entitlement) -> EntitlementRec {
    EntitlementRec {
        regime: e.regime.clone(),
        fund: e.fund.clone(),
        ald: e.ald,
        css: e.css,
        ame: e.ame,
        maternity: e.maternity,
        minor: e.minor,
        pathway_free: e.pathway_free,
        local_regime: e
            .local_regime
            .map(|LocalRegime::AlsaceMoselle| LocalRegimeSymbol::AlsaceMoselle),
        declared_gp: e.declared_gp.clone(),
        amc: e.amc.clone(),
        rights_digest: e.rights_digest.clone(),
    }
}

fn entitlement_from_rec(e: &EntitlementRec) -> Entitlement {
    Entitlement {
        regime: e.regime.clone(),
        fund: e.fund.clone(),
        ald: e.ald,
        css: e.css,
        ame: e.ame,
        maternity: e.maternity,
        minor: e.minor,
        pathway_free: e.pathway_free,
        local_regime: e
            .local_regime
            .map(|LocalRegimeSymbol::AlsaceMoselle| LocalRegime::AlsaceMoselle),
        declared_gp: e.declared_gp.clone(),
        amc: e.amc.clone(),
        rights_digest: e.rights_digest.clone(),
    }
}

pub fn entitled_event(header: EventHeader, fse: FseSubmitted, e: &Entitled) -> FseEntitled {
    let v = &e.validated;
    FseEntitled {
        header,
        fse,
        beneficiary_key: v.beneficiary.to_string(),
        signature_check: v.signature_check,
        warnings: v.warnings.iter().map(reason_rec).collect(),
        entitlement: entitlement_rec(&e.entitlement),
    }
}

pub fn entitled_from_event(e: &FseEntitled) -> Result<Entitled, ReadBackError> {
    Ok(Entitled {
        validated: validated_parts(&e.fse, &e.beneficiary_key, e.signature_check, &e.warnings)?,
        entitlement: entitlement_from_rec(&e.entitlement),
    })
}

pub fn routed_event(header: EventHeader, fse: FseSubmitted, r: &Routed) -> FseRouted {
    let e = &r.entitled;
    let v = &e.validated;
    let routing = match &r.routing {
        Routing::Domestic => RoutingRec {
            route: crate::domain::Route::Domestic,
            country: None,
            institution_id: None,
        },
        Routing::Eu {
            country,
            institution,
        } => RoutingRec {
            route: crate::domain::Route::Eu,
            country: Some(country.as_str().to_string()),
            institution_id: Some(institution.as_str().to_string()),
        },
    };
    FseRouted {
        header,
        fse,
        beneficiary_key: v.beneficiary.to_string(),
        signature_check: v.signature_check,
        warnings: v.warnings.iter().map(reason_rec).collect(),
        entitlement: entitlement_rec(&e.entitlement),
        routing,
    }
}

pub fn routed_from_event(e: &FseRouted) -> Result<Routed, ReadBackError> {
    let routing = match e.routing.route {
        crate::domain::Route::Domestic => Routing::Domestic,
        crate::domain::Route::Eu => {
            let country = e
                .routing
                .country
                .as_deref()
                .and_then(|c| Country::parse(c).ok())
                .ok_or_else(|| ReadBackError("eu route without a valid country".into()))?;
            let institution = e
                .routing
                .institution_id
                .as_deref()
                .and_then(|i| EhicInstitutionId::parse(i).ok())
                .ok_or_else(|| ReadBackError("eu route without a valid institution".into()))?;
            Routing::Eu {
                country,
                institution,
            }
        }
    };
    Ok(Routed {
        entitled: Entitled {
            validated: validated_parts(&e.fse, &e.beneficiary_key, e.signature_check, &e.warnings)?,
            entitlement: entitlement_from_rec(&e.entitlement),
        },
        routing,
    })
}

/// The wire form of a `ref.pki` JSON record.
pub fn pki_event(record: &crate::pki::PkiRecord) -> Result<PkiEvent, ConvertError> {
    Ok(match record {
        crate::pki::PkiRecord::Certificate {
            id,
            rpps,
            alg,
            public_key,
            issuer,
            not_before,
            not_after,
        } => PkiEvent::Certificate(CertificateRec {
            id: id.clone(),
            rpps: rpps.clone(),
            alg: alg.as_str().to_string(),
            public_key: BASE64
                .decode(public_key)
                .map_err(|_| err("public_key", "not base64"))?,
            issuer: issuer.clone(),
            not_before: *not_before,
            not_after: *not_after,
        }),
        crate::pki::PkiRecord::Revocation { cert, revoked_on } => {
            PkiEvent::Revocation(RevocationRec {
                cert: cert.clone(),
                revoked_on: *revoked_on,
            })
        }
    })
}

/// The JSON form of a `ref.pki` wire record; an unknown algorithm is an error.
pub fn pki_record(event: &PkiEvent) -> Result<crate::pki::PkiRecord, ConvertError> {
    Ok(match event {
        PkiEvent::Certificate(c) => crate::pki::PkiRecord::Certificate {
            id: c.id.clone(),
            rpps: c.rpps.clone(),
            alg: crate::pki::SignatureAlg::parse(&c.alg)
                .ok_or_else(|| err("alg", "unknown signature algorithm"))?,
            public_key: BASE64.encode(&c.public_key),
            issuer: c.issuer.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
        },
        PkiEvent::Revocation(r) => crate::pki::PkiRecord::Revocation {
            cert: r.cert.clone(),
            revoked_on: r.revoked_on,
        },
    })
}

/// A `ref.eu.institutions` record as the directory takes it.
pub fn institution_input(rec: EuInstitutionRecord) -> crate::refdata::EuInstitutionInput {
    crate::refdata::EuInstitutionInput {
        country: rec.country,
        institution_id: rec.institution_id,
        name: rec.name,
        acronym: rec.acronym,
        from: rec.from,
        to: rec.to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> FseInput {
        serde_json::from_str(
            r#"{"fse_id": "12345678-000000042", "received_at": "2025-01-20T09:14:03.250+01:00",
            "care_date": "2025-01-20",
            "professional": {"rpps": "10000123454", "category": "gp", "sector": "1", "optam": false},
            "beneficiary": {"nir": "185057800604830", "birth_date": "1985-05-12", "rank": 1},
            "pathway": "mt", "tiers_payant": {"amo": true, "amc": false},
            "acts": [{"code": "G", "quantity": 1, "coefficient": "1.5", "charged": "30.00",
                      "complement": "night", "base": "30.00", "leg": 2}],
            "signature": {"alg": "rsa-pkcs1-sha256", "cert": "CPS-1", "value": "AAEC"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn submitted_survives_a_trip_through_json() {
        let submitted = submitted_from_input(&example()).unwrap();
        assert_eq!(submitted.received_offset_minutes, 60);
        assert_eq!(submitted.acts[0].coefficient_hundredths, 150);
        let again = submitted_from_input(&input_from_submitted(&submitted)).unwrap();
        assert_eq!(again, submitted);
    }

    #[test]
    fn a_billing_identifier_survives_a_trip_and_its_kind_is_typed() {
        let mut input = example();
        let professional = input.professional.as_mut().unwrap();
        professional.billing = Some(BillingInput {
            kind: Some("finess".into()),
            id: Some("750000010".into()),
        });
        let submitted = submitted_from_input(&input).unwrap();
        assert_eq!(
            submitted.professional.billing,
            Some(BillingRec {
                kind: BillingKind::Finess,
                id: "750000010".into()
            })
        );
        assert_eq!(input_from_submitted(&submitted), input);
        input.professional.as_mut().unwrap().billing = Some(BillingInput {
            kind: Some("siret".into()),
            id: Some("750000010".into()),
        });
        assert_eq!(
            submitted_from_input(&input).unwrap_err().field,
            "professional.billing.kind"
        );
    }

    #[test]
    fn untyped_json_is_refused_with_the_field() {
        let mut input = example();
        input.care_date = Some("2025-02-30".into());
        assert_eq!(submitted_from_input(&input).unwrap_err().field, "care_date");
        let mut input = example();
        input.acts.as_mut().unwrap()[0].charged = Some("1e3".into());
        assert_eq!(
            submitted_from_input(&input).unwrap_err().field,
            "acts[0].charged"
        );
        // A negative amount travels: validation rejects it with its code.
        let mut input = example();
        input.acts.as_mut().unwrap()[0].charged = Some("-1.50".into());
        assert_eq!(
            submitted_from_input(&input).unwrap().acts[0].charged_cents,
            -150
        );
    }

    /// A foreign ePrescription names no French prescriber: the wire carries
    /// RPPS and an empty id, read back as none, so the trip is exact; a
    /// French prescriber beside it is refused.
    #[test]
    fn a_foreign_eprescription_survives_a_trip_without_a_french_prescriber() {
        let mut input = example();
        let foreign = PrescriptionInput {
            date: Some("2025-01-18".into()),
            foreign: Some(ForeignPrescriptionInput {
                country: Some("DE".into()),
                id: Some("DE-RX-1".into()),
                atc: Some("N02BE01".into()),
            }),
            ..PrescriptionInput::default()
        };
        input.acts.as_mut().unwrap()[0].prescription = Some(foreign.clone());
        let submitted = submitted_from_input(&input).unwrap();
        let p = submitted.acts[0].prescription.as_ref().unwrap();
        assert_eq!(
            (p.prescriber_kind, p.prescriber_id.as_str()),
            (PrescriberKind::Rpps, "")
        );
        assert_eq!(p.foreign.as_ref().unwrap().atc, "N02BE01");
        let back = input_from_submitted(&submitted);
        assert_eq!(back.acts.unwrap()[0].prescription, Some(foreign.clone()));

        let mut both = example();
        both.acts.as_mut().unwrap()[0].prescription = Some(PrescriptionInput {
            prescriber_kind: Some("rpps".into()),
            prescriber: Some("10000123454".into()),
            ..foreign
        });
        assert_eq!(
            submitted_from_input(&both).unwrap_err().field,
            "acts[0].prescription.prescriber"
        );
    }

    /// Renewals survive the trip; a count too large for the wire's int is
    /// refused with its field, and a negative one read off the wire comes
    /// back out of range, for validation to refuse rather than to read as
    /// none.
    #[test]
    fn renewals_survive_a_trip() {
        let mut input = example();
        let renewable = PrescriptionInput {
            prescriber_kind: Some("rpps".into()),
            prescriber: Some("10000123454".into()),
            date: Some("2025-01-18".into()),
            renewals: Some(5),
            ..PrescriptionInput::default()
        };
        input.acts.as_mut().unwrap()[0].prescription = Some(renewable.clone());
        let mut submitted = submitted_from_input(&input).unwrap();
        let p = submitted.acts[0].prescription.as_mut().unwrap();
        assert_eq!(p.renewals, Some(5));
        let back = input_from_submitted(&submitted);
        assert_eq!(back.acts.unwrap()[0].prescription, Some(renewable.clone()));

        submitted.acts[0].prescription.as_mut().unwrap().renewals = Some(-1);
        let back = input_from_submitted(&submitted);
        let renewals = back.acts.unwrap()[0]
            .prescription
            .as_ref()
            .unwrap()
            .renewals;
        assert_eq!(renewals, Some(u32::MAX));

        input.acts.as_mut().unwrap()[0].prescription = Some(PrescriptionInput {
            renewals: Some(u32::MAX),
            ..renewable
        });
        assert_eq!(
            submitted_from_input(&input).unwrap_err().field,
            "acts[0].prescription.renewals"
        );
    }
}
