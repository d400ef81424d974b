//! The four stages as pure functions (design.md §2).
//!
//! Each stage is `fn(input, &mut StateTxn, &Context) -> Result<Outcome<Out>, StoreError>`:
//! no I/O, no clock, no randomness, no hash-map iteration. Bad input is an
//! [`Outcome::Reject`] carrying a coded decision; a `StoreError` is a
//! technical failure of the store beneath, never the claim's fault.

pub mod entitlement;
pub mod reimbursement;
pub mod routing;
pub mod validation;

use chrono::NaiveDate;

use crate::domain::{Decision, Fse, Reason, SignatureCheck};
use crate::ids::{Country, EhicInstitutionId};
use crate::pseudonym::{BeneficiaryKey, PseudonymKey};
use crate::refdata::RefView;
use crate::rights::LocalRegime;
use crate::rules::Rules;

/// What a stage did with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Pass(T),
    Reject(Box<Decision>),
}

/// Everything a stage may consult besides its input and its state.
pub struct Context<'a> {
    pub rules: &'a Rules,
    pub refs: &'a RefView<'a>,
    pub pseudonyms: &'a PseudonymKey,
}

/// Output of validation (`fse.validated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub fse: Fse,
    pub beneficiary: BeneficiaryKey,
    pub signature_check: SignatureCheck,
    pub warnings: Vec<Reason>,
}

/// What the beneficiary's situation is on the date of care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// `None` for EHIC visitors.
    pub regime: Option<String>,
    pub fund: Option<String>,
    pub ald: bool,
    pub css: bool,
    pub ame: bool,
    pub maternity: bool,
    /// Under the minor age on 1 January of the year of care.
    pub minor: bool,
    /// Young enough that the care pathway does not apply.
    pub pathway_free: bool,
    pub local_regime: Option<LocalRegime>,
    pub declared_gp: Option<String>,
    pub amc: Option<String>,
    /// `sha256:` of the rights record used (`None` for visitors).
    pub rights_digest: Option<String>,
}

/// Output of entitlement (`fse.entitled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitled {
    pub validated: Validated,
    pub entitlement: Entitlement,
}

/// Where the claim is billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    Domestic,
    /// Billed to the visitor's competent institution.
    Eu {
        country: Country,
        institution: EhicInstitutionId,
    },
}

/// Output of routing (`fse.routed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub entitled: Entitled,
    pub routing: Routing,
}

/// Age in whole years on `on`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// A rejection decision from a stage's reasons, with what is known so far.
pub(crate) fn reject(
    fse_id: Option<&str>,
    reasons: Vec<Reason>,
    warnings: Vec<Reason>,
    ctx: &Context<'_>,
) -> Box<Decision> {
    Box::new(Decision::rejected(
        fse_id.map(str::to_string),
        reasons,
        warnings,
        &ctx.rules.version,
    ))
}

/// A rejection once the FSE is checked: carries its key, dates and signature outcome.
pub(crate) fn reject_validated(
    validated: &Validated,
    reasons: Vec<Reason>,
    ctx: &Context<'_>,
) -> Box<Decision> {
    let mut decision = Decision::rejected(
        Some(validated.fse.fse_id.clone()),
        reasons,
        validated.warnings.clone(),
        &ctx.rules.version,
    );
    decision.signature_check = Some(validated.signature_check);
    decision.beneficiary_key = Some(validated.beneficiary.to_string());
    decision.care_date = Some(validated.fse.care_date);
    decision.reimbursement_date = Some(validated.fse.reimbursement_date());
    Box::new(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(age_on(d("2007-01-01"), d("2025-01-01")), 18);
        assert_eq!(age_on(d("2007-01-02"), d("2025-01-01")), 17);
        assert_eq!(age_on(d("2008-02-29"), d("2025-02-28")), 16);
        assert_eq!(age_on(d("2008-02-29"), d("2025-03-01")), 17);
    }
}
