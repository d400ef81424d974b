//! The outbound rule tables: the working-day calendar (`calendar.toml`) and
//! payment, guarantee, EU-claim and complementary-contract parameters
//! (`outbound.toml`). Parsing checks each table; the arithmetic lives in
//! `crate::outbound`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

use super::dated::{Dated, Version};
use crate::money::Cents;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkingDaysRow {
    weekdays: Vec<String>,
    first_year: i32,
    last_year: i32,
    #[serde(default)]
    #[allow(dead_code)]
    source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayRow {
    date: NaiveDate,
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    working_days: WorkingDaysRow,
    holiday: Vec<HolidayRow>,
}

/// Working days and public holidays, for the years the table covers.
#[derive(Debug, Clone)]
pub struct CalendarTable {
    weekdays: BTreeSet<u32>,
    pub first_year: i32,
    pub last_year: i32,
    holidays: BTreeMap<NaiveDate, String>,
}

fn weekday(name: &str) -> Result<Weekday, String> {
    match name {
        "mon" => Ok(Weekday::Mon),
        "tue" => Ok(Weekday::Tue),
        "wed" => Ok(Weekday::Wed),
        "thu" => Ok(Weekday::Thu),
        "fri" => Ok(Weekday::Fri),
        "sat" => Ok(Weekday::Sat),
        "sun" => Ok(Weekday::Sun),
        other => Err(format!("unknown weekday {other:?}")),
    }
}

impl CalendarTable {
    pub fn parse(text: &str) -> Result<CalendarTable, String> {
        let file: CalendarFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let w = file.working_days;
        if w.first_year > w.last_year {
            return Err("working_days: first_year after last_year".into());
        }
        let mut weekdays = BTreeSet::new();
        for name in &w.weekdays {
            weekdays.insert(weekday(name)?.num_days_from_monday());
        }
        if weekdays.is_empty() {
            return Err("working_days: no weekday".into());
        }
        let mut holidays = BTreeMap::new();
        for row in file.holiday {
            if !(w.first_year..=w.last_year).contains(&row.date.year()) {
                return Err(format!("holiday {} outside the covered years", row.date));
            }
            // Two holidays may share a date (Ascension on 1 May 2008).
            holidays
                .entry(row.date)
                .and_modify(|n: &mut String| {
                    n.push('+');
                    n.push_str(&row.name)
                })
                .or_insert(row.name);
        }
        Ok(CalendarTable {
            weekdays,
            first_year: w.first_year,
            last_year: w.last_year,
            holidays,
        })
    }

    /// Whether the table can answer for `date`.
    pub fn covers(&self, date: NaiveDate) -> bool {
        (self.first_year..=self.last_year).contains(&date.year())
    }

    /// The holiday's name on `date`, if it is one.
    pub fn holiday(&self, date: NaiveDate) -> Option<&str> {
        self.holidays.get(&date).map(String::as_str)
    }

    pub fn is_working_weekday(&self, date: NaiveDate) -> bool {
        self.weekdays
            .contains(&date.weekday().num_days_from_monday())
    }

    /// Every holiday in `year`, in date order.
    pub fn holidays_in(&self, year: i32) -> Vec<(NaiveDate, &str)> {
        self.holidays
            .iter()
            .filter(|(d, _)| d.year() == year)
            .map(|(d, n)| (*d, n.as_str()))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentValue {
    /// Working days from a payment run's close to its value date.
    pub lag_working_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuaranteeValue {
    /// Paid on or before this working day after receipt: on time.
    pub due_working_days: u32,
    /// Paid after the due day but before `percent_from_working_day`: this, per invoice.
    pub flat_penalty: Cents,
    /// Paid on or after this working day: `percent` of the AMO part.
    pub percent_from_working_day: u32,
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EuClaimValue {
    pub introduction_months: u32,
    pub payment_months: u32,
    pub dispute_months: u32,
    pub currency: String,
    /// What each decision adds to a claim.
    #[serde(default)]
    pub amount: EuClaimAmount,
}

/// What a paid decision adds to its institution's claim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EuClaimAmount {
    /// What was paid to the professional and the insured (rule sets before
    /// 2026-12-06): deferred deductions and imputed debts changed it.
    #[default]
    Paid,
    /// The decision's AMO share: what the competent institution owes.
    Amo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmcContractValue {
    /// Share of the ticket modérateur the insurer takes, percent.
    pub ticket_percent: u32,
    /// Cap on fee overruns, percent of the base.
    pub overrun_cap_percent: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmcContractRow {
    amc: String,
    versions: Dated<AmcContractValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundFile {
    payment: Vec<Version<PaymentValue>>,
    guarantee: Vec<Version<GuaranteeValue>>,
    eu_claim: Vec<Version<EuClaimValue>>,
    amc_contract: Vec<AmcContractRow>,
}

/// Payment runs, the payment guarantee, EU claim limits, AMC contracts.
#[derive(Debug, Clone)]
pub struct OutboundTable {
    pub payment: Dated<PaymentValue>,
    /// Absent before the guarantee existed (1 July 2016).
    pub guarantee: Dated<GuaranteeValue>,
    pub eu_claim: Dated<EuClaimValue>,
    /// By insurer id; `*` is the default contract.
    amc_contracts: BTreeMap<String, Dated<AmcContractValue>>,
}

/// The default contract's key.
pub const ANY_AMC: &str = "*";

impl OutboundTable {
    pub fn parse(text: &str) -> Result<OutboundTable, String> {
        let file: OutboundFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for g in &file.guarantee {
            let v = g.value;
            if v.due_working_days == 0
                || v.percent_from_working_day <= v.due_working_days + 1
                || v.percent > 100
            {
                return Err(format!("guarantee from {}: inconsistent tiers", g.from));
            }
        }
        for e in &file.eu_claim {
            if e.value.currency.len() != 3 {
                return Err(format!(
                    "eu_claim from {}: currency is not ISO 4217",
                    e.from
                ));
            }
        }
        let mut amc_contracts = BTreeMap::new();
        for row in file.amc_contract {
            for v in row.versions.versions() {
                if v.value.ticket_percent > 100 {
                    return Err(format!(
                        "amc_contract {}: ticket_percent above 100",
                        row.amc
                    ));
                }
            }
            if amc_contracts
                .insert(row.amc.clone(), row.versions)
                .is_some()
            {
                return Err(format!("amc_contract {} listed twice", row.amc));
            }
        }
        if !amc_contracts.contains_key(ANY_AMC) {
            return Err("amc_contract: no default contract (amc = \"*\")".into());
        }
        Ok(OutboundTable {
            payment: Dated::new(file.payment, "payment")?,
            guarantee: Dated::new(file.guarantee, "guarantee")?,
            eu_claim: Dated::new(file.eu_claim, "eu_claim")?,
            amc_contracts,
        })
    }

    /// The contract of `amc` in force on `date` (the default one if the insurer is not listed).
    pub fn amc_contract(&self, amc: &str, date: NaiveDate) -> Option<&Version<AmcContractValue>> {
        self.amc_contracts
            .get(amc)
            .or_else(|| self.amc_contracts.get(ANY_AMC))
            .and_then(|d| d.at(date))
    }
}
