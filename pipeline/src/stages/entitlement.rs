//! Entitlement: is the beneficiary covered on the date of care, under which
//! regime, with which exemptions, declared GP, local regime and AMC (each
//! the rights' value on that date, so a late or replayed claim is judged
//! as on its date of care). Rights live in this stage's state (the
//! `ref.rights` topic is co-partitioned with claims), stored under the
//! pseudonymous key by [`apply_rights`].

use chrono::{Datelike, NaiveDate};

use super::contract::{self, Decided, Topics};
use super::emit::{Carried, Inputs, claim_ref};
use super::{Context, Entitled, Entitlement, Outcome, Validated, age_on, reject_validated};
use crate::domain::rights::{Rights, RightsError, RightsInput};
use crate::domain::{Fse, Patient, Reason, ReasonCode, Stage};
use crate::events::convert;
use crate::events::model::{EventHeader, FseValidated};
use crate::pseudonym::{BeneficiaryKey, PseudonymKey};
use crate::rules::{ExemptionValue, sha256_tag};
use crate::state::{StateRead, StateTxn, StoreError, keys};
use crate::topics;

/// Entitlement on the bus: `fse.validated` in; `fse.entitled` or
/// `fse.rejected` out.
pub struct EntitlementStage;

impl contract::Stage for EntitlementStage {
    type Input = FseValidated;

    const TOPICS: Topics = Topics {
        name: "entitlement",
        input: topics::FSE_VALIDATED,
        pass: topics::FSE_ENTITLED,
        outputs: &[topics::FSE_ENTITLED, topics::FSE_REJECTED],
        changelog: "entitlement.changelog",
        dlq: "dlq.entitlement",
    };

    fn header(event: &FseValidated) -> Option<&EventHeader> {
        Some(&event.header)
    }

    fn decide(
        &self,
        event: FseValidated,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let claim = claim_ref(&event.fse, None, None);
        let carried = Carried {
            header: &event.header,
            fse_id: event.fse.fse_id.clone(),
            claim,
        };
        at.decide_downstream(
            carried,
            convert::validated_from_event(&event),
            |input| entitle(input, state, ctx),
            |mut header, out| {
                header.rules_version = ctx.rules.version.clone();
                let event = convert::entitled_event(header, event.fse, &out);
                at.pass(Self::TOPICS.pass, &event)
            },
        )
    }
}

/// Applies one `ref.rights` record: checks it and stores it under the key.
/// Returns the key it was stored under.
pub fn apply_rights(
    input: RightsInput,
    state: &mut StateTxn<'_>,
    pseudonyms: &PseudonymKey,
) -> Result<BeneficiaryKey, RightsError> {
    let birth_date = input.birth_date;
    let rank = input.rank;
    let (nir, rights) = input.check()?;
    let key = pseudonyms.insured(&nir, birth_date, rank);
    state.put(keys::rights(&key), encode_rights(&rights));
    Ok(key)
}

fn encode_rights(rights: &Rights) -> Vec<u8> {
    // Struct fields serialize in declaration order and the record holds no
    // map: the bytes are deterministic, hence a stable digest.
    serde_json::to_vec(rights).unwrap_or_default()
}

/// The rights stored under `key`, and the digest of their stored bytes
/// (what a decision records); read by the stage and by the online look-up.
pub fn load_rights(
    state: &dyn StateRead,
    key: &BeneficiaryKey,
) -> Result<Option<(Rights, String)>, StoreError> {
    let state_key = keys::rights(key);
    match state.get(&state_key)? {
        None => Ok(None),
        Some(bytes) => {
            let rights = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&state_key).into_owned(),
                what: e.to_string(),
            })?;
            Ok(Some((rights, sha256_tag(&bytes))))
        }
    }
}

/// Under the minor age on 1 January of the year of care.
fn is_minor(birth: NaiveDate, care: NaiveDate, exemptions: &ExemptionValue) -> bool {
    let january_first = NaiveDate::from_ymd_opt(care.year(), 1, 1).unwrap_or(care);
    age_on(birth, january_first) < i32::try_from(exemptions.minor_age).unwrap_or(i32::MAX)
}

/// The entitlement stage.
pub fn entitle(
    input: Validated,
    state: &mut StateTxn<'_>,
    ctx: &Context<'_>,
) -> Result<Outcome<Entitled>, StoreError> {
    let fse = &input.fse;
    let care = fse.care_date;
    let reject = |reason: Reason, input: &Validated| {
        Ok(Outcome::Reject(reject_validated(input, vec![reason], ctx)))
    };
    let Some(exemptions) = ctx.rules.exemptions.versions.at(care).map(|v| &v.value) else {
        return reject(
            Reason::new(
                Stage::Entitlement,
                ReasonCode::NoRulesForDate,
                "no exemption table is in force on the date of care",
            ),
            &input,
        );
    };
    let birth = fse.patient.birth_date();
    let ages = Ages {
        minor: is_minor(birth, care, exemptions),
        pathway_free: age_on(birth, care)
            < i32::try_from(exemptions.pathway_free_under).unwrap_or(i32::MAX),
    };
    let entitlement = match &fse.patient {
        Patient::Visitor(_) => visitor_entitlement(ages),
        Patient::Insured(_) => {
            let Some((rights, digest)) = load_rights(state, &input.beneficiary)? else {
                if foreign_eprescriptions_only(fse) {
                    return Ok(Outcome::Pass(Entitled {
                        entitlement: uncovered_entitlement(ages, None),
                        validated: input,
                    }));
                }
                return reject(
                    Reason::new(
                        Stage::Entitlement,
                        ReasonCode::UnknownBeneficiary,
                        "no rights record for this beneficiary",
                    ),
                    &input,
                );
            };
            match insured_entitlement(fse, &rights, digest, ages) {
                Ok(entitlement) => entitlement,
                Err(reason) => return reject(reason, &input),
            }
        }
    };
    Ok(Outcome::Pass(Entitled {
        validated: input,
        entitlement,
    }))
}

/// What the patient's age on the date of care decides.
#[derive(Clone, Copy)]
struct Ages {
    minor: bool,
    pathway_free: bool,
}

/// A visitor's: no French rights, only what their age decides.
fn visitor_entitlement(ages: Ages) -> Entitlement {
    Entitlement {
        regime: None,
        fund: None,
        ald: false,
        css: false,
        ame: false,
        maternity: false,
        minor: ages.minor,
        pathway_free: ages.pathway_free,
        local_regime: None,
        declared_gp: None,
        amc: None,
        rights_digest: None,
    }
}

/// Whether every line dispenses a foreign ePrescription: a patient neither
/// covered nor on an EHIC may have those dispensed, paying them with no
/// mandatory share (docs/rules.md, "EU ePrescriptions").
fn foreign_eprescriptions_only(fse: &Fse) -> bool {
    !fse.lines.is_empty()
        && fse
            .lines
            .iter()
            .all(|l| l.prescription.as_ref().is_some_and(|p| p.foreign.is_some()))
}

/// A patient identified as insured but without coverage on the date of care
/// (or without rights at all), whose claim is only foreign ePrescriptions:
/// no regime and no AME, which reimbursement reads as no mandatory share
/// ([`Entitlement::covered`]).
fn uncovered_entitlement(ages: Ages, rights_digest: Option<String>) -> Entitlement {
    Entitlement {
        rights_digest,
        ..visitor_entitlement(ages)
    }
}

/// An insured beneficiary's, from their rights on the date of care; the
/// reason when they are not covered, or a line claims an ALD they lack.
fn insured_entitlement(
    fse: &Fse,
    rights: &Rights,
    digest: String,
    ages: Ages,
) -> Result<Entitlement, Reason> {
    let care = fse.care_date;
    let coverage = rights.coverage_on(care);
    let ame = Rights::any_on(&rights.ame, care);
    if coverage.is_none() && !ame {
        if foreign_eprescriptions_only(fse) {
            return Ok(uncovered_entitlement(ages, Some(digest)));
        }
        return Err(Reason::new(
            Stage::Entitlement,
            ReasonCode::NotCoveredOnCareDate,
            "no coverage on the date of care",
        ));
    }
    let ald = Rights::any_on(&rights.ald, care);
    if !ald && fse.lines.iter().any(|l| l.ald_related) {
        let line = fse.lines.iter().position(|l| l.ald_related).unwrap_or(0) + 1;
        return Err(Reason::new(
            Stage::Entitlement,
            ReasonCode::ExonerationNotFound,
            "a line is marked ALD-related but the rights hold no ALD on the date of care",
        )
        .field(format!("acts[{}].ald_related", line - 1))
        .line(line));
    }
    Ok(Entitlement {
        regime: coverage.map(|c| c.regime.clone()),
        fund: coverage.map(|c| c.fund.clone()),
        ald,
        css: Rights::any_on(&rights.css, care),
        ame,
        maternity: Rights::any_on(&rights.maternity, care),
        minor: ages.minor,
        pathway_free: ages.pathway_free,
        local_regime: rights.local_regime_on(care),
        declared_gp: rights.declared_gp_on(care).map(str::to_string),
        amc: rights.amc_on(care).map(str::to_string),
        rights_digest: Some(digest),
    })
}

#[cfg(test)]
mod tests;
