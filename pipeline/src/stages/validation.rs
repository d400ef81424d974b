//! Validation: from the FSE as received to a checked [`Fse`] — format,
//! identifiers, dates, amounts, act codes against the nomenclature, the
//! signature (through the [`SignatureVerifier`](crate::refdata::SignatureVerifier)
//! hook), and duplicates. Every problem found is reported, not only the first.

use chrono::{DateTime, Datelike, NaiveDate};

use super::contract::{self, Decided, Topics};
use super::emit::{Inputs, claim_ref};
use super::{Context, Outcome, Validated, reject};
use crate::clock::Receipt;
use crate::domain::fse::{
    ActLineInput, BeneficiaryInput, BillingInput, EhicInput, ForeignPrescriptionInput, MAX_LINES,
    MAX_QUANTITY, MAX_TEXT_BYTES, PrescriptionInput, ProfessionalInput,
};
use crate::domain::{
    ActLine, Billing, Category, Complement, Ehic, ForeignPrescription, Fse, FseInput, Insured,
    NonSubstitution, Pathway, Patient, Prescriber, Prescription, Professional, Reason, ReasonCode,
    Sector, Signature, Stage, TiersPayant,
};
use crate::events::convert;
use crate::events::model::{EventHeader, FseSubmitted};
use crate::ids::{
    AmNumber, CcamCode, Cip13, Country, EhicCardId, EhicInstitutionId, EhicPersonalId, Finess,
    NgapKey, Nir, Rpps,
};
use crate::money::{Cents, Hundredths};
use crate::pseudonym::BeneficiaryKey;
use crate::rules::{Family, LimitationValue, Pricing, Rules};
use crate::state::{StateTxn, StoreError, expiry, keys};
use crate::topics;

/// Validation on the bus: `fse.submitted` in; `fse.validated` or
/// `fse.rejected` out.
pub struct ValidationStage;

impl contract::Stage for ValidationStage {
    type Input = FseSubmitted;

    const TOPICS: Topics = Topics {
        name: "validation",
        input: topics::FSE_SUBMITTED,
        pass: topics::FSE_VALIDATED,
        outputs: &[topics::FSE_VALIDATED, topics::FSE_REJECTED],
        changelog: "validation.changelog",
        dlq: "dlq.validation",
    };

    fn header(_: &FseSubmitted) -> Option<&EventHeader> {
        None
    }

    /// Only the insurer's stamp moves the clock that expires duplicate keys:
    /// a sender's `received_at` (all an unstamped record has) must not be
    /// able to age them.
    fn event_time(submitted: &FseSubmitted) -> Option<i64> {
        submitted.ingested_at_millis
    }

    fn decide(
        &self,
        submitted: FseSubmitted,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let record = at.record;
        let causation = format!("{}/{}/{}", record.topic, record.partition, record.offset);
        // The insurer's clock travels on in every header from here.
        let event_time = submitted
            .ingested_at_millis
            .unwrap_or(submitted.received_at_millis);
        let mut header = at.header(Some(causation), &submitted.fse_id, event_time);
        let receipt = Receipt::of(submitted.ingested_at_millis);
        let input = convert::input_from_submitted(&submitted);
        let claim = claim_ref(&submitted, None, None);
        Ok(match validate(&input, receipt, state, ctx)? {
            // The submitter keys by the same pseudonym: a record on the wrong
            // key would escape duplicate detection (its state, dropped with
            // the dead letter, would turn the rightly keyed one away).
            Outcome::Pass(v) if v.beneficiary.as_str().as_bytes() != record.key.as_slice() => {
                Decided::DeadLetter(
                    "record key is not the FSE's beneficiary key (misrouted submission)".into(),
                )
            }
            Outcome::Pass(v) => {
                header.rules_version = ctx.rules.version.clone();
                at.pass(
                    Self::TOPICS.pass,
                    &convert::validated_event(header, submitted, &v),
                )
            }
            Outcome::Reject(d) => at.rejected(header, &d, claim),
        })
    }
}

/// Collects reasons while parsing: each helper returns `None` after recording why.
struct Checker {
    reasons: Vec<Reason>,
    warnings: Vec<Reason>,
}

impl Checker {
    fn fail(&mut self, code: ReasonCode, field: &str, message: impl Into<String>) {
        self.reasons
            .push(Reason::new(Stage::Validation, code, message).field(field));
    }

    fn fail_line(
        &mut self,
        code: ReasonCode,
        line: usize,
        field: &str,
        message: impl Into<String>,
    ) {
        self.reasons.push(
            Reason::new(Stage::Validation, code, message)
                .field(format!("acts[{}].{field}", line - 1))
                .line(line),
        );
    }

    fn required<'v, T>(&mut self, value: &'v Option<T>, field: &str) -> Option<&'v T> {
        if value.is_none() {
            self.fail(
                ReasonCode::MissingField,
                field,
                format!("{field} is required"),
            );
        }
        value.as_ref()
    }

    fn date(&mut self, value: &Option<String>, field: &str) -> Option<NaiveDate> {
        let text = self.required(value, field)?;
        match crate::dates::parse_iso_date(text) {
            Some(date) if text.len() == 10 => Some(date),
            _ => {
                self.fail(
                    ReasonCode::InvalidDate,
                    field,
                    format!("{field} is not a calendar date YYYY-MM-DD"),
                );
                None
            }
        }
    }

    fn text(&mut self, value: &Option<String>, field: &str, code: ReasonCode) -> Option<String> {
        let text = self.required(value, field)?;
        let trimmed = text.trim();
        if trimmed.is_empty()
            || trimmed.len() > MAX_TEXT_BYTES
            || trimmed.chars().any(char::is_control)
        {
            self.fail(
                code,
                field,
                format!("{field} must be 1 to {MAX_TEXT_BYTES} bytes of printable text"),
            );
            return None;
        }
        Some(trimmed.to_string())
    }
}

/// FSE id: the professional's billing number (8 characters) and the invoice
/// number (9 digits), e.g. `12345678-000000042`.
fn fse_id_ok(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 18
        && bytes[8] == b'-'
        && bytes[..8]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && bytes[9..].iter().all(u8::is_ascii_digit)
}

fn parse_professional(c: &mut Checker, input: &ProfessionalInput) -> Option<Professional> {
    let rpps = c
        .required(&input.rpps, "professional.rpps")
        .and_then(|text| {
            Rpps::parse(text)
                .map_err(|e| c.fail(ReasonCode::InvalidRpps, "professional.rpps", e.to_string()))
                .ok()
        });
    if let Some(rpps) = &rpps
        && !rpps.luhn_ok()
    {
        c.warnings.push(
            Reason::new(
                Stage::Validation,
                ReasonCode::RppsKeyWarning,
                "the RPPS does not pass the Luhn check",
            )
            .field("professional.rpps"),
        );
    }
    let category = c
        .required(&input.category, "professional.category")
        .and_then(|text| {
            Category::parse(text).or_else(|| {
                c.fail(
                    ReasonCode::InvalidCategory,
                    "professional.category",
                    "unknown professional category",
                );
                None
            })
        });
    let sector = c
        .required(&input.sector, "professional.sector")
        .and_then(|text| {
            Sector::parse(text).or_else(|| {
                c.fail(
                    ReasonCode::InvalidSector,
                    "professional.sector",
                    "sector must be \"1\", \"2\" or \"3\"",
                );
                None
            })
        });
    let billing = match &input.billing {
        None => Some(None),
        Some(b) => parse_billing(c, b, category).map(Some),
    };
    Some(Professional {
        rpps: rpps?,
        category: category?,
        sector: sector?,
        optam: input.optam,
        billing: billing?,
    })
}

/// The executant's billing identifier: an AM number of the right shape whose
/// category character fits the professional's category (checked once that
/// category is known), or a FINESS whose Luhn key checks (2A/2B unchecked,
/// as for a prescriber); the AM key rule is UNCONFIRMED: shape only.
fn parse_billing(
    c: &mut Checker,
    input: &BillingInput,
    category: Option<Category>,
) -> Option<Billing> {
    let kind = c.required(&input.kind, "professional.billing.kind")?;
    let id = c.required(&input.id, "professional.billing.id")?;
    let field = "professional.billing.id";
    let parsed = match kind.as_str() {
        "finess" => Finess::parse(id)
            .map(Billing::Finess)
            .map_err(|e| (ReasonCode::InvalidBillingId, field, e.to_string())),
        "am" => AmNumber::parse(id)
            .map_err(|e| (ReasonCode::InvalidBillingId, field, e.to_string()))
            .and_then(|am| match category {
                Some(cat) if !cat.bills_under(am.category()) => Err((
                    ReasonCode::BillingCategoryMismatch,
                    field,
                    "the AM number's category character is not the professional's category".into(),
                )),
                _ => Ok(Billing::Am(am)),
            }),
        _ => Err((
            ReasonCode::InvalidBillingId,
            "professional.billing.kind",
            "billing kind must be am or finess".into(),
        )),
    };
    parsed
        .map_err(|(code, field, message)| c.fail(code, field, message))
        .ok()
}

fn parse_insured(c: &mut Checker, input: &BeneficiaryInput) -> Option<Insured> {
    let nir = c.required(&input.nir, "beneficiary.nir").and_then(|text| {
        Nir::parse(text)
            .map_err(|e| c.fail(ReasonCode::InvalidNir, "beneficiary.nir", e.to_string()))
            .ok()
    });
    let birth_date = c.date(&input.birth_date, "beneficiary.birth_date");
    let rank = c.required(&input.rank, "beneficiary.rank").copied();
    let rank = rank.filter(|r| (1..=9).contains(r)).or_else(|| {
        if rank.is_some() {
            c.fail(
                ReasonCode::InvalidBeneficiary,
                "beneficiary.rank",
                "rank must be 1 to 9",
            );
        }
        None
    });
    Some(Insured {
        nir: nir?,
        birth_date: birth_date?,
        rank: rank?,
    })
}

fn parse_ehic(c: &mut Checker, input: &EhicInput) -> Option<Ehic> {
    let invalid = ReasonCode::InvalidEhic;
    let country = c.required(&input.country, "ehic.country").and_then(|text| {
        Country::parse(text)
            .map_err(|e| c.fail(invalid, "ehic.country", e.to_string()))
            .ok()
    });
    let institution_id = c
        .required(&input.institution_id, "ehic.institution_id")
        .and_then(|text| {
            EhicInstitutionId::parse(text)
                .map_err(|e| c.fail(invalid, "ehic.institution_id", e.to_string()))
                .ok()
        });
    let card_id = c.required(&input.card_id, "ehic.card_id").and_then(|text| {
        EhicCardId::parse(text)
            .map_err(|e| c.fail(invalid, "ehic.card_id", e.to_string()))
            .ok()
    });
    let personal_id = c
        .required(&input.personal_id, "ehic.personal_id")
        .and_then(|text| {
            EhicPersonalId::parse(text)
                .map_err(|e| c.fail(invalid, "ehic.personal_id", e.to_string()))
                .ok()
        });
    let surname = c.text(&input.surname, "ehic.surname", invalid);
    let given_names = c.text(&input.given_names, "ehic.given_names", invalid);
    let birth_date = c.date(&input.birth_date, "ehic.birth_date");
    let expiry = c.date(&input.expiry, "ehic.expiry");
    Some(Ehic {
        country: country?,
        institution_id: institution_id?,
        card_id: card_id?,
        personal_id: personal_id?,
        surname: surname?,
        given_names: given_names?,
        birth_date: birth_date?,
        expiry: expiry?,
    })
}

fn parse_amount(c: &mut Checker, line: usize, field: &str, text: &str) -> Option<Cents> {
    Cents::parse_euros(text)
        .map_err(|e| {
            c.fail_line(
                ReasonCode::InvalidAmount,
                line,
                field,
                format!("{field}: {e}"),
            )
        })
        .ok()
}

/// Checks one act line's own fields (the nomenclature is checked later,
/// once the date of care and the category are known).
fn parse_line(c: &mut Checker, line: usize, input: &ActLineInput) -> Option<ActLine> {
    let code = parse_act_code(c, line, &input.code);
    let quantity = input.quantity.unwrap_or(1);
    let quantity_ok = (1..=MAX_QUANTITY).contains(&quantity);
    if !quantity_ok {
        c.fail_line(
            ReasonCode::InvalidQuantity,
            line,
            "quantity",
            format!("quantity must be 1 to {MAX_QUANTITY}"),
        );
    }
    let coefficient = parse_coefficient(c, line, &input.coefficient);
    let charged = match &input.charged {
        None => {
            let field = format!("acts[{}].charged", line - 1);
            c.fail(ReasonCode::MissingField, &field, "charged is required");
            None
        }
        Some(text) => parse_amount(c, line, "charged", text),
    };
    let declared_base = optional_amount(c, line, "base", &input.base);
    let unit_price = optional_amount(c, line, "unit_price", &input.unit_price);
    let product = parse_product(c, line, &input.product);
    let complement = parse_complement(c, line, &input.complement);
    let prescription = match &input.prescription {
        None => Some(None),
        Some(p) => parse_prescription(c, line, p).map(Some),
    };
    if !quantity_ok {
        return None;
    }
    Some(ActLine {
        code: code?,
        quantity,
        coefficient: coefficient?,
        charged: charged?,
        complement: complement?,
        ald_related: input.ald_related,
        declared_base: declared_base?,
        product: product?,
        unit_price: unit_price?,
        leg: input.leg,
        prescription: prescription?,
    })
}

/// A line's prescription: a prescriber of a known kind whose identifier
/// checks (an RPPS's Luhn key is a warning, as the executant's; a FINESS
/// key is checked; an AM number's key rule is UNCONFIRMED: its shape only),
/// a real date, a quantity from 1, a known non-substitution mention.
fn parse_prescription(
    c: &mut Checker,
    line: usize,
    input: &PrescriptionInput,
) -> Option<Prescription> {
    let field = |name: &str| format!("prescription.{name}");
    let id = input.prescriber.as_deref().unwrap_or_default();
    let parsed = match input.prescriber_kind.as_deref() {
        // A foreign ePrescription's prescriber is known abroad only.
        None if input.foreign.is_some() && input.prescriber.is_none() => Ok(Prescriber::Foreign),
        Some(_) if input.foreign.is_some() => Err((
            "prescriber_kind",
            "a foreign ePrescription names no French prescriber".into(),
        )),
        Some("rpps") => Rpps::parse(id)
            .map(|rpps| {
                if !rpps.luhn_ok() {
                    c.warnings.push(
                        Reason::new(
                            Stage::Validation,
                            ReasonCode::PrescriberKeyWarning,
                            "the prescriber's RPPS does not pass the Luhn check",
                        )
                        .field(format!("acts[{}].prescription.prescriber", line - 1))
                        .line(line),
                    );
                }
                Prescriber::Rpps(rpps)
            })
            .map_err(|e| ("prescriber", e.to_string())),
        Some("finess") => Finess::parse(id)
            .map(Prescriber::Finess)
            .map_err(|e| ("prescriber", e.to_string())),
        Some("am") => AmNumber::parse(id)
            .map(|am| Prescriber::Am(am.as_str().to_string()))
            .map_err(|e| ("prescriber", e.to_string())),
        _ => Err((
            "prescriber_kind",
            "prescriber_kind must be rpps, finess or am".into(),
        )),
    };
    let prescriber = match parsed {
        Ok(prescriber) => Some(prescriber),
        Err((name, message)) => {
            c.fail_line(ReasonCode::InvalidPrescriber, line, &field(name), message);
            None
        }
    };
    let date = c.date(
        &input.date,
        &format!("acts[{}].prescription.date", line - 1),
    );
    let quantity = match input.quantity {
        Some(q) if q == 0 || q > MAX_PRESCRIBED_QUANTITY => {
            c.fail_line(
                ReasonCode::InvalidPrescription,
                line,
                &field("quantity"),
                format!("a prescribed quantity is 1 to {MAX_PRESCRIBED_QUANTITY}"),
            );
            None
        }
        q => Some(q),
    };
    let number = match &input.number {
        Some(n) if n.is_empty() || n.len() > MAX_TEXT_BYTES => {
            c.fail_line(
                ReasonCode::InvalidPrescription,
                line,
                &field("number"),
                format!("a prescription number is 1 to {MAX_TEXT_BYTES} bytes"),
            );
            None
        }
        n => Some(n.clone()),
    };
    let non_substitution = match &input.non_substitution {
        None => Some(None),
        Some(text) => NonSubstitution::parse(text).map(Some).or_else(|| {
            c.fail_line(
                ReasonCode::InvalidPrescription,
                line,
                &field("non_substitution"),
                "non_substitution must be mte, efg or cif",
            );
            None
        }),
    };
    let foreign = match &input.foreign {
        None => Some(None),
        Some(f) => parse_foreign(c, line, f).map(Some),
    };
    let renewals = match input.renewals {
        Some(r) if r > MAX_RENEWALS => {
            c.fail_line(
                ReasonCode::InvalidPrescription,
                line,
                &field("renewals"),
                format!("a prescription is renewed 0 to {MAX_RENEWALS} times"),
            );
            None
        }
        r => Some(r),
    };
    Some(Prescription {
        prescriber: prescriber?,
        date: date?,
        number: number?,
        quantity: quantity?,
        non_substitution: non_substitution?,
        foreign: foreign?,
        renewals: renewals?,
    })
}

/// A foreign ePrescription's shape: a known country code, an id of 1 to
/// `MAX_TEXT_BYTES` bytes, an ATC code of any level. Whether the country
/// may issue one, and the substance against the product, are checked
/// against the rules ([`check_foreign`]).
fn parse_foreign(
    c: &mut Checker,
    line: usize,
    input: &ForeignPrescriptionInput,
) -> Option<ForeignPrescription> {
    let fail = |c: &mut Checker, name: &str, message: &str| {
        c.fail_line(
            ReasonCode::InvalidPrescription,
            line,
            &format!("prescription.foreign.{name}"),
            message,
        );
    };
    let country = match input.country.as_deref().map(Country::parse) {
        Some(Ok(country)) => Some(country),
        _ => {
            fail(c, "country", "country must be a 2-letter country code");
            None
        }
    };
    let id = match &input.id {
        Some(id) if !id.is_empty() && id.len() <= MAX_TEXT_BYTES => Some(id.clone()),
        _ => {
            fail(
                c,
                "id",
                &format!("a foreign ePrescription id is 1 to {MAX_TEXT_BYTES} bytes"),
            );
            None
        }
    };
    let atc = match input.atc.as_deref() {
        Some(atc) if atc_code_ok(atc) => Some(atc.to_string()),
        _ => {
            fail(
                c,
                "atc",
                "atc must be an ATC code (A, A10, A10B, A10BA, A10BA02)",
            );
            None
        }
    };
    Some(ForeignPrescription {
        country: country?,
        id: id?,
        atc: atc?,
    })
}

/// An ATC code of one of its five levels: a letter; two digits; a letter; a
/// letter; two digits (A, A10, A10B, A10BA, A10BA02). Upper case only.
pub fn atc_code_ok(code: &str) -> bool {
    let b = code.as_bytes();
    if !matches!(b.len(), 1 | 3 | 4 | 5 | 7) {
        return false;
    }
    b.iter().enumerate().all(|(i, c)| match i {
        0 | 3 | 4 => c.is_ascii_uppercase(),
        _ => c.is_ascii_digit(),
    })
}

/// Bound on a prescribed quantity (a year of monthly boxes is 12; renewals
/// of several boxes stay far below).
const MAX_PRESCRIBED_QUANTITY: u32 = 999;
/// At most one dispensing a week over the 12 months a prescription may
/// cover (art. R.5132-21 CSP); the treatment's length is the rules' to cap.
const MAX_RENEWALS: u32 = 52;

/// An act code of the shape of an NGAP key, a CCAM code or a pharmacy
/// prestation code (`PH` and a digit).
fn parse_act_code(c: &mut Checker, line: usize, code: &Option<String>) -> Option<String> {
    let Some(code) = code else {
        let field = format!("acts[{}].code", line - 1);
        c.fail(ReasonCode::MissingField, &field, "act code is required");
        return None;
    };
    let syntactic = NgapKey::parse(code).is_ok()
        || CcamCode::parse(code).is_ok()
        || (code.len() == 3 && code.starts_with("PH") && code.as_bytes()[2].is_ascii_digit());
    if !syntactic {
        c.fail_line(
            ReasonCode::InvalidActCode,
            line,
            "code",
            "not an NGAP key, a CCAM code or a pharmacy prestation code",
        );
        return None;
    }
    Some(code.clone())
}

fn parse_coefficient(c: &mut Checker, line: usize, text: &Option<String>) -> Option<Hundredths> {
    match text {
        None => Some(Hundredths::ONE),
        Some(text) => Hundredths::parse(text).or_else(|| {
            c.fail_line(
                ReasonCode::InvalidCoefficient,
                line,
                "coefficient",
                format!(
                    "coefficient must be a positive decimal up to {}",
                    Hundredths::MAX
                ),
            );
            None
        }),
    }
}

/// An amount the line may omit: `Some(None)` when it does, `None` when it
/// is given but bad.
fn optional_amount(
    c: &mut Checker,
    line: usize,
    field: &str,
    text: &Option<String>,
) -> Option<Option<Cents>> {
    match text {
        None => Some(None),
        Some(text) => parse_amount(c, line, field, text).map(Some),
    }
}

fn parse_product(c: &mut Checker, line: usize, text: &Option<String>) -> Option<Option<Cip13>> {
    match text {
        None => Some(None),
        Some(text) => match Cip13::parse(text) {
            Ok(cip) => Some(Some(cip)),
            Err(e) => {
                c.fail_line(ReasonCode::InvalidProduct, line, "product", e.to_string());
                None
            }
        },
    }
}

fn parse_complement(
    c: &mut Checker,
    line: usize,
    text: &Option<String>,
) -> Option<Option<Complement>> {
    match text {
        None => Some(None),
        Some(text) => Complement::parse(text).map(Some).or_else(|| {
            c.fail_line(
                ReasonCode::InvalidComplement,
                line,
                "complement",
                "complement must be night, sunday or urgency",
            );
            None
        }),
    }
}

/// Parses the whole FSE, recording every problem.
fn parse_fse(c: &mut Checker, input: &FseInput) -> Option<Fse> {
    let fse_id = c.required(&input.fse_id, "fse_id").and_then(|id| {
        if fse_id_ok(id) {
            Some(id.clone())
        } else {
            c.fail(
                ReasonCode::InvalidFseId,
                "fse_id",
                "fse_id must be the billing number (8 characters), '-', and the invoice number (9 digits)",
            );
            None
        }
    });
    let received_at = c
        .required(&input.received_at, "received_at")
        .and_then(|text| {
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    c.fail(
                        ReasonCode::InvalidTimestamp,
                        "received_at",
                        "received_at is not an RFC 3339 instant",
                    )
                })
                .ok()
        });
    let care_date = c.date(&input.care_date, "care_date");
    let professional = c
        .required(&input.professional, "professional")
        .and_then(|p| parse_professional(c, p));
    let patient = parse_patient(c, input);
    let pathway = parse_pathway(c, &input.pathway);
    let tiers_payant = input.tiers_payant.unwrap_or_default();
    let lines = parse_lines(c, &input.acts);
    let signature = input.signature.as_ref().map(|s| Signature {
        alg: s.alg.clone().unwrap_or_default(),
        cert: s.cert.clone().unwrap_or_default(),
        value: s.value.clone().unwrap_or_default(),
    });
    Some(Fse {
        fse_id: fse_id?,
        received_at: received_at?,
        care_date: care_date?,
        professional: professional?,
        patient: patient?,
        pathway: pathway?,
        tiers_payant: TiersPayant {
            amo: tiers_payant.amo,
            amc: tiers_payant.amc,
        },
        lines: lines?,
        signature,
    })
}

/// The patient: an insured beneficiary or an EHIC visitor, exactly one.
fn parse_patient(c: &mut Checker, input: &FseInput) -> Option<Patient> {
    match (&input.beneficiary, &input.ehic) {
        (Some(b), None) => parse_insured(c, b).map(Patient::Insured),
        (None, Some(e)) => parse_ehic(c, e).map(Patient::Visitor),
        _ => {
            c.fail(
                ReasonCode::PatientAmbiguous,
                "beneficiary",
                "exactly one of beneficiary and ehic must be given",
            );
            None
        }
    }
}

/// The declared pathway; `Some(None)` when the FSE does not fill it
/// (pharmacies, labs and transport do not), `None` when it is unknown.
fn parse_pathway(c: &mut Checker, text: &Option<String>) -> Option<Option<Pathway>> {
    match text {
        None => Some(None),
        Some(text) => Pathway::parse(text).map(Some).or_else(|| {
            c.fail(
                ReasonCode::InvalidPathway,
                "pathway",
                "unknown care pathway",
            );
            None
        }),
    }
}

/// The act lines: 1 to `MAX_LINES`, each checked (every bad one reported).
fn parse_lines(c: &mut Checker, acts: &Option<Vec<ActLineInput>>) -> Option<Vec<ActLine>> {
    match acts {
        None => {
            c.fail(ReasonCode::MissingField, "acts", "acts is required");
            None
        }
        Some(acts) if acts.is_empty() => {
            c.fail(ReasonCode::NoActLines, "acts", "the FSE has no act line");
            None
        }
        Some(acts) if acts.len() > MAX_LINES => {
            c.fail(
                ReasonCode::TooManyLines,
                "acts",
                format!("{} act lines; at most {MAX_LINES}", acts.len()),
            );
            None
        }
        Some(acts) => {
            let parsed: Vec<Option<ActLine>> = acts
                .iter()
                .enumerate()
                .map(|(i, line)| parse_line(c, i + 1, line))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
    }
}

/// Checks that need the rule tables: dates against the limitation period,
/// act codes against the nomenclature on the date of care.
fn check_against_rules(c: &mut Checker, fse: &Fse, receipt: Receipt, rules: &Rules) {
    if !check_dates(c, fse, receipt, rules) {
        return;
    }
    for (index, line) in fse.lines.iter().enumerate() {
        check_line_against_rules(c, fse, index + 1, line, rules);
    }
}

/// The dates of care, receipt, birth and EHIC expiry; false when no rule
/// table is in force on the date of care (nothing more can be checked).
fn check_dates(c: &mut Checker, fse: &Fse, receipt: Receipt, rules: &Rules) -> bool {
    let care = fse.care_date;
    let received = receipt.time_bar_date(fse);
    if care > fse.reimbursement_date() || care > received {
        c.fail(
            ReasonCode::CareDateAfterReceipt,
            "care_date",
            "the date of care is after the date of receipt",
        );
    }
    if care < fse.patient.birth_date() {
        c.fail(
            ReasonCode::CareDateBeforeBirth,
            "care_date",
            "the date of care is before the beneficiary's birth",
        );
    }
    if let Patient::Visitor(ehic) = &fse.patient
        && ehic.expiry.year() > care.year() + 50
    {
        c.fail(
            ReasonCode::InvalidEhic,
            "ehic.expiry",
            "expiry is absurdly far",
        );
    }
    let Some(limit) = rules.general.limitation.at(care) else {
        c.fail(
            ReasonCode::NoRulesForDate,
            "care_date",
            "no rule table is in force on the date of care",
        );
        return false;
    };
    if let Some(barred_from) = limit.value.barred_from(care)
        && received >= barred_from
    {
        c.fail(
            ReasonCode::ClaimTimeBarred,
            "care_date",
            time_barred_message(&limit.value, barred_from),
        );
    }
    true
}

/// Why a claim is time-barred, in the words of the rule that bars it.
fn time_barred_message(limit: &LimitationValue, barred_from: NaiveDate) -> String {
    match limit.days {
        Some(days) => format!("received more than {days} days after the date of care"),
        None => format!(
            "received on or after {barred_from}: the action is barred {} years from the \
             first day of the quarter after the care (art. L.332-1 CSS)",
            limit.years_from_next_quarter.unwrap_or_default()
        ),
    }
}

/// Line `n` against the nomenclature on the date of care: an act the
/// professional may bill then, priced as the act is, with a complement it has.
fn check_line_against_rules(c: &mut Checker, fse: &Fse, n: usize, line: &ActLine, rules: &Rules) {
    let (care, category) = (fse.care_date, fse.professional.category);
    let Some(act) = rules.acts.find(&line.code, category) else {
        if rules.acts.knows_code(&line.code) {
            c.fail_line(
                ReasonCode::ActNotAllowedForCategory,
                n,
                "code",
                format!("{} cannot be billed by a {}", line.code, category.as_str()),
            );
        } else {
            c.fail_line(
                ReasonCode::UnknownActCode,
                n,
                "code",
                format!("{} is not in the nomenclature", line.code),
            );
        }
        return;
    };
    if !act.billable_on(care) {
        c.fail_line(
            ReasonCode::ActNotBillableOnDate,
            n,
            "code",
            format!("{} has no tariff on {care}", line.code),
        );
    }
    match act.pricing {
        Pricing::DeclaredPrice if line.product.is_none() || line.unit_price.is_none() => {
            c.fail_line(
                ReasonCode::InvalidProduct,
                n,
                "product",
                "a pharmacy line needs product (CIP13) and unit_price",
            );
        }
        Pricing::Unit if line.coefficient != Hundredths::ONE => {
            c.fail_line(
                ReasonCode::InvalidCoefficient,
                n,
                "coefficient",
                format!("{} is priced per unit: coefficient must be 1", line.code),
            );
        }
        _ => {}
    }
    check_prescription(c, fse, n, line, act.family, rules);
    if let Some(complement) = line.complement {
        let offered = rules
            .rates
            .complements(act.family)
            .and_then(|c| c.at(care))
            .is_some_and(|v| match complement {
                Complement::Night => v.value.night.is_some(),
                Complement::Sunday => v.value.sunday.is_some(),
                Complement::Urgency => v.value.urgency.is_some(),
            });
        if !offered {
            c.fail_line(
                ReasonCode::InvalidComplement,
                n,
                "complement",
                format!("no {complement:?} complement applies to {}", line.code),
            );
        }
    }
}

/// Line `n`'s prescription against the rules of its family on the date of
/// care (acts.toml `[[prescribed]]`; docs/rules.md, "Prescriptions"):
/// present where required, written on or before the care, still valid: the
/// care within the last day any dispensing may be made (a renewable
/// prescription's treatment). Whether a first dispensing came within the
/// validity needs the dispensings already paid: reimbursement judges it.
fn check_prescription(
    c: &mut Checker,
    fse: &Fse,
    n: usize,
    line: &ActLine,
    family: Family,
    rules: &Rules,
) {
    let care = fse.care_date;
    let table = &rules.acts.prescriptions;
    let Some(p) = &line.prescription else {
        if table.required(family, care) {
            c.fail_line(
                ReasonCode::PrescriptionMissing,
                n,
                "prescription",
                format!(
                    "{} is prescribed care: the line needs its prescription",
                    line.code
                ),
            );
        }
        return;
    };
    // A date of care already refused (after receipt, before birth) would
    // only repeat itself as a prescription out of date.
    if c.reasons
        .iter()
        .any(|r| r.field.as_deref() == Some("care_date"))
    {
        return;
    }
    if p.date > care {
        c.fail_line(
            ReasonCode::PrescriptionAfterCare,
            n,
            "prescription.date",
            "the prescription is dated after the care",
        );
    } else if let Some(until) = table.last_day(family, p.date, p.renewals)
        && care > until
    {
        c.fail_line(
            ReasonCode::PrescriptionExpired,
            n,
            "prescription.date",
            format!("the prescription of {} was valid until {until}", p.date),
        );
    }
    if let Some(foreign) = &p.foreign {
        check_foreign(c, care, n, line, foreign, rules);
    }
}

/// Line `n`'s foreign ePrescription on the date of care (docs/rules.md,
/// "EU ePrescriptions"): the service in force (general.toml
/// `eu_eprescription`), an issuing state the entry lists and eu.toml
/// accepts on that date, and a dispensed CIP13 listed with exactly the prescribed
/// substance (the ATC code at its fifth level: a broader level would leave
/// the substance to the pharmacist).
fn check_foreign(
    c: &mut Checker,
    care: NaiveDate,
    n: usize,
    line: &ActLine,
    foreign: &ForeignPrescription,
    rules: &Rules,
) {
    let Some(countries) = rules.general.eu_eprescription_countries(care) else {
        c.fail_line(
            ReasonCode::EuEprescriptionNotInService,
            n,
            "prescription.foreign",
            "foreign ePrescriptions are not dispensed in France on the date of care",
        );
        return;
    };
    let country = foreign.country;
    if !rules.eu.accepts(country, care) || !countries.iter().any(|c| c == country.as_str()) {
        c.fail_line(
            ReasonCode::EuEprescriptionCountry,
            n,
            "prescription.foreign.country",
            format!(
                "{} is not a state whose ePrescriptions France dispenses on the date of care",
                country.as_str()
            ),
        );
    }
    let listed_atc = (line.product.as_ref())
        .and_then(|cip| rules.acts.products.product(cip.as_str()))
        .and_then(|p| p.atc.as_deref());
    if listed_atc != Some(foreign.atc.as_str()) {
        c.fail_line(
            ReasonCode::EuEprescriptionSubstanceMismatch,
            n,
            "product",
            format!(
                "the dispensed product is not a listed product of the prescribed substance {}",
                foreign.atc
            ),
        );
    }
}

/// Re-checks an FSE that validation passed before, as a later stage reads it
/// back from a topic: the same parse, without rules, signature or state.
pub fn reparse(input: &FseInput) -> Option<Fse> {
    let mut c = Checker {
        reasons: Vec::new(),
        warnings: Vec::new(),
    };
    parse_fse(&mut c, input).filter(|_| c.reasons.is_empty())
}

/// The beneficiary's pseudonymous key.
pub fn beneficiary_key(fse: &Fse, ctx: &Context<'_>) -> BeneficiaryKey {
    match &fse.patient {
        Patient::Insured(i) => ctx.pseudonyms.insured(&i.nir, i.birth_date, i.rank),
        Patient::Visitor(e) => ctx.pseudonyms.visitor(&e.institution_id, &e.card_id),
    }
}

/// The validation stage.
pub fn validate(
    input: &FseInput,
    receipt: Receipt,
    state: &mut StateTxn<'_>,
    ctx: &Context<'_>,
) -> Result<Outcome<Validated>, StoreError> {
    let mut c = Checker {
        reasons: Vec::new(),
        warnings: Vec::new(),
    };
    let parsed = parse_fse(&mut c, input);
    let fse_id = input.fse_id.as_deref().filter(|id| fse_id_ok(id));
    let early = |c: Checker| {
        let mut decision = reject(fse_id, c.reasons, c.warnings, ctx);
        decision.signature_check = ctx.refs.signatures.unchecked_outcome();
        Ok(Outcome::Reject(decision))
    };
    let Some(fse) = parsed else {
        return early(c);
    };
    check_against_rules(&mut c, &fse, receipt, ctx.rules);
    if !c.reasons.is_empty() {
        return early(c);
    }
    // The signature before the duplicate check: a forged FSE must not occupy
    // a genuine one's id.
    let signature_check = match ctx.refs.signatures.check(input, &fse, receipt) {
        Ok(check) => check,
        Err(reason) => {
            return Ok(Outcome::Reject(reject(
                fse_id,
                vec![reason],
                c.warnings,
                ctx,
            )));
        }
    };
    let beneficiary = beneficiary_key(&fse, ctx);
    // Each professional numbers their own FSEs (several may bill under one
    // AM number): where the rule says so, a duplicate is per RPPS. The key
    // without the RPPS, which stores of older sets hold, still counts, so
    // an FSE received before the change is refused when resent.
    let legacy = keys::seen_fse(&beneficiary, &fse.fse_id);
    let per_professional = (ctx.rules.general).invoice_number_per_professional(fse.care_date);
    let seen = match per_professional {
        true => keys::seen_fse_of(&beneficiary, fse.professional.rpps.as_str(), &fse.fse_id),
        false => legacy.clone(),
    };
    if state.get(&seen)?.is_some() || (per_professional && state.get(&legacy)?.is_some()) {
        let reason = Reason::new(
            Stage::Validation,
            ReasonCode::Duplicate,
            "an FSE with this id was already received for this beneficiary",
        )
        .field("fse_id");
        let validated = Validated {
            fse,
            beneficiary,
            signature_check,
            warnings: c.warnings,
        };
        return Ok(Outcome::Reject(super::reject_validated(
            &validated,
            vec![reason],
            ctx,
        )));
    }
    // The id is consumed once the FSE passes validation with a genuine
    // signature: a later rejection (entitlement, routing) does not free it; a
    // corrected FSE is sent under a new invoice number (docs/rules.md).
    // Kept while a resend could still be in time (docs/rules.md, "Retention").
    if let Some(until) = ctx.rules.general.kept_until(fse.care_date) {
        expiry::expire_on(state, &seen, until)?;
    }
    state.put(seen, fse.reimbursement_date().to_string().into_bytes());
    Ok(Outcome::Pass(Validated {
        fse,
        beneficiary,
        signature_check,
        warnings: c.warnings,
    }))
}

/// The rejection of a submission that is not even of the FSE's shape (wrong
/// JSON types, unknown fields). `path` names the field; the value is never
/// echoed, since it may be personal data.
pub fn malformed(
    fse_id: Option<&str>,
    error: &crate::domain::json::ShapeError,
    rules: &Rules,
) -> crate::domain::Decision {
    let code = if error.what == "missing" {
        ReasonCode::MissingField
    } else {
        ReasonCode::Malformed
    };
    crate::domain::Decision::rejected(
        fse_id.filter(|id| fse_id_ok(id)).map(str::to_string),
        vec![Reason::new(Stage::Validation, code, error.to_string()).field(error.path.clone())],
        Vec::new(),
        &rules.version,
    )
}

#[cfg(test)]
mod billing_tests;

#[cfg(test)]
mod tests {
    use super::atc_code_ok;

    #[test]
    fn an_atc_code_is_one_of_its_five_levels() {
        for code in ["N", "N02", "N02B", "N02BE", "N02BE01"] {
            assert!(atc_code_ok(code), "{code}");
        }
        for code in [
            "", "n02be01", "N2", "N02BE0", "N02BE011", "N0ABE01", "N02B1", "02BE01A",
        ] {
            assert!(!atc_code_ok(code), "{code}");
        }
    }
}
