//! Prescribed care: which families of acts need a prescription on their
//! line, from which date of care, and how long a prescription stays valid
//! (acts.toml `[[prescribed]]`; docs/rules.md, "Prescriptions").
//!
//! A rule set without `[[prescribed]]` (every set before 2026-12-06) has no
//! rule: a line's prescription, if any, is neither required nor checked
//! against a validity, and no dispensing is counted. A family without
//! `renewal` (every family in the sets before 2026-12-07) ignores a
//! prescription's renewals: its validity is the last day of every dispensing.

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

/// How far a renewable prescription reaches ("à renouveler N fois", by the
/// prescription's date): each of its 1 + N dispensings covers
/// `months_per_dispensing`, and the treatment ends at most `max_months`
/// after the prescription's date (art. R.5132-21 CSP: 12 months).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalValue {
    pub months_per_dispensing: u32,
    pub max_months: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prescribed {
    pub family: Family,
    /// From when a line of the family without a prescription is rejected.
    pub required: Dated<RequiredValue>,
    /// For the first dispensing; for every one when not renewable.
    pub validity: Dated<ValidityValue>,
    /// Renewals honoured (since 2026-12-07); absent: ignored.
    #[serde(default)]
    pub renewal: Option<Dated<RenewalValue>>,
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

    /// The last day a prescription of `family` dated `date` may be used
    /// for its first dispensing, and for every one unless renewable.
    pub fn valid_until(&self, family: Family, date: NaiveDate) -> Option<NaiveDate> {
        let months = self.by_family.get(&family)?.validity.at(date)?.value.months;
        date.checked_add_months(Months::new(months))
    }

    /// The end of the treatment a prescription of `family` dated `date`
    /// renewed `renewals` times covers, when the rule set honours renewals
    /// for the family: 1 + `renewals` dispensings of `months_per_dispensing`
    /// each, at most `max_months` from its date. `None` without renewals
    /// (none or 0) or without a rule.
    pub fn treatment_until(
        &self,
        family: Family,
        date: NaiveDate,
        renewals: Option<u32>,
    ) -> Option<NaiveDate> {
        let renewals = renewals.filter(|&n| n > 0)?;
        let rule = self
            .by_family
            .get(&family)?
            .renewal
            .as_ref()?
            .at(date)?
            .value;
        let months = renewals
            .saturating_add(1)
            .saturating_mul(rule.months_per_dispensing)
            .min(rule.max_months);
        date.checked_add_months(Months::new(months))
    }

    /// The last day any dispensing of the prescription may be made: the end
    /// of its treatment when renewable, never before its validity (the
    /// first dispensing may always come within it).
    pub fn last_day(
        &self,
        family: Family,
        date: NaiveDate,
        renewals: Option<u32>,
    ) -> Option<NaiveDate> {
        let valid = self.valid_until(family, date);
        match self.treatment_until(family, date, renewals) {
            Some(end) => Some(valid.map_or(end, |v| v.max(end))),
            None => valid,
        }
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

    fn renewing() -> PrescriptionTable {
        let file: File = toml::from_str(
            r#"
[[prescribed]]
family = "pharmacy"
required = [{ from = "2027-01-01", required = true }]
validity = [{ from = "2000-01-01", months = 3 }]
renewal = [{ from = "2026-12-07", months_per_dispensing = 1, max_months = 12 }]

[[prescribed]]
family = "nursing"
required = [{ from = "2027-01-01", required = true }]
validity = [{ from = "2000-01-01", months = 12 }]
"#,
        )
        .unwrap();
        PrescriptionTable::new(file.prescribed).unwrap()
    }

    /// "QSP 1 mois, à renouveler 5 fois": six monthly dispensings, so the
    /// treatment ends six months after the prescription; a short one never
    /// ends before the 3 months of the first dispensing.
    #[test]
    fn a_renewed_prescription_reaches_the_end_of_its_treatment() {
        let table = renewing();
        let date = d("2026-12-10");
        assert_eq!(
            table.treatment_until(Family::Pharmacy, date, Some(5)),
            Some(d("2027-06-10"))
        );
        for (renewals, last) in [
            (Some(5), "2027-06-10"),
            (Some(1), "2027-03-10"),
            (Some(0), "2027-03-10"),
            (None, "2027-03-10"),
        ] {
            assert_eq!(
                table.last_day(Family::Pharmacy, date, renewals),
                Some(d(last)),
                "{renewals:?}"
            );
        }
    }

    /// Art. R.5132-21 CSP: at most 12 months of treatment, however many
    /// renewals the prescription says.
    #[test]
    fn a_treatment_is_capped_at_twelve_months() {
        let table = renewing();
        for renewals in [11, 52, u32::MAX] {
            assert_eq!(
                table.last_day(Family::Pharmacy, d("2026-12-10"), Some(renewals)),
                Some(d("2027-12-10")),
                "{renewals}"
            );
        }
    }

    /// Renewals count only where and when the rule set says so: a family
    /// without `renewal` keeps its validity, and a prescription dated
    /// before the entry's `from` is read as before it.
    #[test]
    fn renewals_are_ignored_without_a_rule() {
        let table = renewing();
        assert_eq!(
            table.last_day(Family::Nursing, d("2026-12-10"), Some(5)),
            Some(d("2027-12-10"))
        );
        assert_eq!(
            table.treatment_until(Family::Nursing, d("2026-12-10"), Some(5)),
            None
        );
        assert_eq!(
            table.last_day(Family::Pharmacy, d("2026-12-06"), Some(5)),
            Some(d("2027-03-06"))
        );
    }
}
