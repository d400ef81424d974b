//! Prescribed care: which families of acts need a prescription on their
//! line, from which date of care, and how long a prescription stays valid
//! (acts.toml `[[prescribed]]`; docs/rules.md, "Prescriptions").
//!
//! A rule set without `[[prescribed]]` (every set before 2026-12-06) has no
//! rule: a line's prescription, if any, is neither required nor checked
//! against a validity, and no dispensing is counted.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde::Deserialize;

use super::dated::Dated;
use super::tables::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredValue {
    pub required: bool,
}

/// How long after its date a prescription may still be dispensed or
/// performed (by the prescription's date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityValue {
    pub months: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prescribed {
    pub family: Family,
    /// From when a line of the family without a prescription is rejected.
    pub required: Dated<RequiredValue>,
    pub validity: Dated<ValidityValue>,
}

/// The prescribed families, by family.
#[derive(Debug, Clone, Default)]
pub struct PrescriptionTable {
    by_family: BTreeMap<Family, Prescribed>,
}

impl PrescriptionTable {
    pub fn new(entries: Vec<Prescribed>) -> Result<PrescriptionTable, String> {
        let mut by_family = BTreeMap::new();
        for entry in entries {
            let family = entry.family;
            if by_family.insert(family, entry).is_some() {
                return Err(format!("prescribed family {family:?} listed twice"));
            }
        }
        Ok(PrescriptionTable { by_family })
    }

    /// Whether the family is prescribed care in this rule set at all (its
    /// dispensings are then counted).
    pub fn covers(&self, family: Family) -> bool {
        self.by_family.contains_key(&family)
    }

    /// Whether a line of `family` on `care` must carry its prescription.
    pub fn required(&self, family: Family, care: NaiveDate) -> bool {
        (self.by_family.get(&family))
            .and_then(|p| p.required.at(care))
            .is_some_and(|v| v.value.required)
    }

    /// The last day a prescription of `family` dated `date` may be used.
    pub fn valid_until(&self, family: Family, date: NaiveDate) -> Option<NaiveDate> {
        let months = self.by_family.get(&family)?.validity.at(date)?.value.months;
        date.checked_add_months(Months::new(months))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[derive(Deserialize)]
    struct File {
        prescribed: Vec<Prescribed>,
    }

    #[test]
    fn required_from_its_date_and_valid_for_its_months() {
        let file: File = toml::from_str(
            r#"
[[prescribed]]
family = "pharmacy"
required = [{ from = "2027-01-01", required = true }]
validity = [{ from = "2000-01-01", months = 3 }]
"#,
        )
        .unwrap();
        let table = PrescriptionTable::new(file.prescribed).unwrap();
        assert!(!table.required(Family::Pharmacy, d("2026-12-31")));
        assert!(table.required(Family::Pharmacy, d("2027-01-01")));
        assert!(!table.required(Family::Nursing, d("2027-01-01")));
        assert_eq!(
            table.valid_until(Family::Pharmacy, d("2025-11-30")),
            Some(d("2026-02-28"))
        );
        assert!(table.covers(Family::Pharmacy));
        assert!(!table.covers(Family::Consultation));
    }
}
