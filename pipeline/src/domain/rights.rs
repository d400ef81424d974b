//! A beneficiary's rights (the `ref.rights` record): coverage periods,
//! long-term illness (ALD), CSS, AME, maternity, and the dated local
//! regime, declared GP and complementary insurer ([`dated`]).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{Nir, Rpps};

pub mod dated;

pub use dated::{AmcPeriod, GpPeriod, LocalRegimePeriod};
use dated::{check_periods, value_on};

/// Bound on the periods of one kind in a rights record.
pub const MAX_PERIODS: usize = 64;

/// An inclusive date period; `to: None` is open-ended. Unknown fields are
/// refused, as in every input shape: a record that took any key would let
/// one through unseen, and its name could be personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

impl Period {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && self.to.is_none_or(|to| date <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoveragePeriod {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub regime: String,
    pub fund: String,
}

impl CoveragePeriod {
    pub fn period(&self) -> Period {
        Period {
            from: self.from,
            to: self.to,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalRegime {
    AlsaceMoselle,
}

/// The JSON shape of contract.md (`ref.rights`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsInput {
    pub nir: String,
    pub birth_date: NaiveDate,
    pub rank: u8,
    #[serde(default)]
    pub coverage: Vec<CoveragePeriod>,
    #[serde(default)]
    pub ald: Vec<Period>,
    #[serde(default)]
    pub css: Vec<Period>,
    #[serde(default)]
    pub ame: Vec<Period>,
    #[serde(default)]
    pub maternity: Vec<Period>,
    #[serde(default)]
    pub local_regime: Option<LocalRegime>,
    #[serde(default)]
    pub declared_gp: Option<String>,
    /// Complementary insurer (AMC) number, where the insured consented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amc: Option<String>,
    /// Dated values; outside every period the scalar above holds
    /// ([`dated`]). Optional, and left out when empty, so older JSON reads
    /// and renders as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_gp_periods: Vec<GpPeriod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_regime_periods: Vec<LocalRegimePeriod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amc_periods: Vec<AmcPeriod>,
}

impl std::fmt::Debug for RightsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RightsInput(<redacted>)")
    }
}

/// Checked rights, as stored in the entitlement stage's state. The NIR is not
/// kept: the record is stored under the beneficiary's pseudonymous key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rights {
    pub birth_date: NaiveDate,
    pub coverage: Vec<CoveragePeriod>,
    pub ald: Vec<Period>,
    pub css: Vec<Period>,
    pub ame: Vec<Period>,
    pub maternity: Vec<Period>,
    pub local_regime: Option<LocalRegime>,
    /// The declared GP's RPPS, checked.
    pub declared_gp: Option<String>,
    #[serde(default)]
    pub amc: Option<String>,
    /// Dated values, checked. Left out of the stored bytes when empty: a
    /// record without them stores, hence digests, as before they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_gp_periods: Vec<GpPeriod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_regime_periods: Vec<LocalRegimePeriod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amc_periods: Vec<AmcPeriod>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RightsError {
    #[error("nir: {0}")]
    Nir(crate::ids::IdError),
    #[error("declared_gp: {0}")]
    DeclaredGp(crate::ids::IdError),
    #[error("{0}: a period ends before it starts")]
    Inverted(&'static str),
    #[error("{0}: more than {MAX_PERIODS} periods")]
    TooMany(&'static str),
    #[error("{0}: two periods share a day")]
    Overlap(&'static str),
    #[error("coverage: regime must be 2 digits and fund 3 digits")]
    Coverage,
}

impl RightsInput {
    /// Checks the record; returns the NIR (to derive the key) and the rights.
    pub fn check(self) -> Result<(Nir, Rights), RightsError> {
        let nir = Nir::parse(&self.nir).map_err(RightsError::Nir)?;
        let declared_gp = self.declared_gp.as_deref().map(checked_rpps).transpose()?;
        let declared_gp_periods = self
            .declared_gp_periods
            .into_iter()
            .map(|p| {
                Ok(GpPeriod {
                    rpps: checked_rpps(&p.rpps)?,
                    ..p
                })
            })
            .collect::<Result<Vec<_>, RightsError>>()?;
        check_periods("declared_gp_periods", &declared_gp_periods)?;
        check_periods("local_regime_periods", &self.local_regime_periods)?;
        check_periods("amc_periods", &self.amc_periods)?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if self.coverage.len() > MAX_PERIODS {
            return Err(RightsError::TooMany("coverage"));
        }
        for c in &self.coverage {
            if !digits(&c.regime, 2) || !digits(&c.fund, 3) {
                return Err(RightsError::Coverage);
            }
        }
        let coverage_periods: Vec<Period> = self.coverage.iter().map(|c| c.period()).collect();
        for (name, periods) in [
            ("coverage", &coverage_periods),
            ("ald", &self.ald),
            ("css", &self.css),
            ("ame", &self.ame),
            ("maternity", &self.maternity),
        ] {
            if periods.len() > MAX_PERIODS {
                return Err(RightsError::TooMany(name));
            }
            if periods.iter().any(|p| p.to.is_some_and(|to| to < p.from)) {
                return Err(RightsError::Inverted(name));
            }
        }
        Ok((
            nir,
            Rights {
                birth_date: self.birth_date,
                coverage: self.coverage,
                ald: self.ald,
                css: self.css,
                ame: self.ame,
                maternity: self.maternity,
                local_regime: self.local_regime,
                declared_gp,
                amc: self.amc,
                declared_gp_periods,
                local_regime_periods: self.local_regime_periods,
                amc_periods: self.amc_periods,
            },
        ))
    }

    /// The declared GP on `date`, as given (unchecked; the synthetic world
    /// reads it to pick a claim's doctor).
    pub fn declared_gp_on(&self, date: NaiveDate) -> Option<&str> {
        value_on(&self.declared_gp_periods, self.declared_gp.as_deref(), date)
    }

    /// The complementary insurer on `date`, as given.
    pub fn amc_on(&self, date: NaiveDate) -> Option<&str> {
        value_on(&self.amc_periods, self.amc.as_deref(), date)
    }
}

fn checked_rpps(rpps: &str) -> Result<String, RightsError> {
    Rpps::parse(rpps)
        .map(|rpps| rpps.as_str().to_string())
        .map_err(RightsError::DeclaredGp)
}

impl Rights {
    pub fn coverage_on(&self, date: NaiveDate) -> Option<&CoveragePeriod> {
        self.coverage.iter().find(|c| c.period().contains(date))
    }

    pub fn any_on(periods: &[Period], date: NaiveDate) -> bool {
        periods.iter().any(|p| p.contains(date))
    }

    /// The declared GP on `date` ([`dated`]).
    pub fn declared_gp_on(&self, date: NaiveDate) -> Option<&str> {
        value_on(&self.declared_gp_periods, self.declared_gp.as_deref(), date)
    }

    /// The local regime on `date` ([`dated`]).
    pub fn local_regime_on(&self, date: NaiveDate) -> Option<LocalRegime> {
        value_on(&self.local_regime_periods, self.local_regime.as_ref(), date).copied()
    }

    /// The complementary insurer on `date` ([`dated`]).
    pub fn amc_on(&self, date: NaiveDate) -> Option<&str> {
        value_on(&self.amc_periods, self.amc.as_deref(), date)
    }
}
