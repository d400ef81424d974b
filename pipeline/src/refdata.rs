//! Reference data the stages consult besides their own state: the health PKI
//! (through a [`SignatureVerifier`]) and the EU institution directory. Both
//! are global tables (every instance reads them whole); a [`RefView`] is
//! their content as of a recorded watermark, so a decision can be replayed
//! against exactly what it saw.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::clock::Receipt;
use crate::domain::{Fse, FseInput, Reason, ReasonCode, SignatureCheck, Stage};
use crate::ids::{Country, EhicInstitutionId, IdError};

/// Checks an FSE's signature against the health PKI. Implementations are
/// pure: same FSE, same PKI content, same answer.
pub trait SignatureVerifier: Send + Sync {
    /// `submission` is the FSE as received (its canonical bytes are signed);
    /// `fse` its checked form (professional, dates); `receipt` when the
    /// insurer received it (the certificate is judged on that date).
    fn check(
        &self,
        submission: &FseInput,
        fse: &Fse,
        receipt: Receipt,
    ) -> Result<SignatureCheck, Reason>;

    /// The outcome every decision carries whatever the FSE, if the verifier
    /// has one: `not_checked` in simulation mode, so that even a claim
    /// rejected before the signature step says signatures were not checked.
    fn unchecked_outcome(&self) -> Option<SignatureCheck> {
        None
    }
}

/// Simulation mode (`--trust-unsigned`): no check, and every decision says so.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrustUnsigned;

impl SignatureVerifier for TrustUnsigned {
    fn check(&self, _: &FseInput, _: &Fse, _: Receipt) -> Result<SignatureCheck, Reason> {
        Ok(SignatureCheck::NotChecked)
    }

    fn unchecked_outcome(&self) -> Option<SignatureCheck> {
        Some(SignatureCheck::NotChecked)
    }
}

/// No PKI loaded: every FSE is rejected, since none can be verified.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPki;

impl SignatureVerifier for NoPki {
    fn check(&self, submission: &FseInput, _: &Fse, _: Receipt) -> Result<SignatureCheck, Reason> {
        let reason = match &submission.signature {
            None => Reason::new(
                Stage::Validation,
                ReasonCode::MissingSignature,
                "the FSE carries no signature",
            ),
            Some(_) => Reason::new(
                Stage::Validation,
                ReasonCode::UnknownCertificate,
                "no health PKI certificate is loaded: the signature cannot be verified",
            ),
        };
        Err(reason.field("signature"))
    }
}

/// One competent institution of another state (`ref.eu.institutions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EuInstitutionInput {
    pub country: String,
    pub institution_id: String,
    pub name: String,
    #[serde(default)]
    pub acronym: Option<String>,
    pub from: NaiveDate,
    #[serde(default)]
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuInstitution {
    pub name: String,
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("country: {0}")]
    Country(IdError),
    #[error("institution_id: {0}")]
    Institution(IdError),
    #[error("validity ends before it starts")]
    Inverted,
}

/// The EU institution directory.
#[derive(Debug, Clone, Default)]
pub struct InstitutionDirectory {
    entries: BTreeMap<(Country, EhicInstitutionId), EuInstitution>,
}

impl InstitutionDirectory {
    /// Adds or replaces an entry (a later record for the same id wins, as on a
    /// compacted topic).
    pub fn upsert(&mut self, input: EuInstitutionInput) -> Result<(), DirectoryError> {
        let country = Country::parse(&input.country).map_err(DirectoryError::Country)?;
        let id =
            EhicInstitutionId::parse(&input.institution_id).map_err(DirectoryError::Institution)?;
        if input.to.is_some_and(|to| to < input.from) {
            return Err(DirectoryError::Inverted);
        }
        self.entries.insert(
            (country, id),
            EuInstitution {
                name: input.name,
                from: input.from,
                to: input.to,
            },
        );
        Ok(())
    }

    /// The institution, if known and valid on `date`.
    pub fn valid_on(
        &self,
        country: Country,
        id: &EhicInstitutionId,
        date: NaiveDate,
    ) -> Option<&EuInstitution> {
        self.entries
            .get(&(country, id.clone()))
            .filter(|i| i.from <= date && i.to.is_none_or(|to| date <= to))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Reference data as one stage sees it for one batch.
pub struct RefView<'a> {
    pub signatures: &'a dyn SignatureVerifier,
    pub institutions: &'a InstitutionDirectory,
}
