//! Renewable prescriptions in synthetic claims (docs/rules.md,
//! "Prescriptions", renewals): a chronic treatment, "QSP 1 mois, à
//! renouveler 5 fois", dispensed by the same pharmacy once a month.
//!
//! About one claim in [`ONE_IN`], a pharmacist's to an insured beneficiary,
//! is the head of a series: its prescriptions say [`RENEWALS`] renewals and
//! allow the line's quantity for each dispensing. The next [`LATER`] claims
//! are replaced by its renewals, one month apart: the head's claim, its care
//! and receipt moved on by whole months, under their own ids. All drawn from
//! the claims' indices, never from their random streams, and only where the
//! rule set honours renewals, so every other claim of a data set, and a data
//! set made under a set before renewals, stays what it was.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};

use super::claims::paris_offset_minutes;
use crate::domain::Category;
use crate::events::model::{ActLineRec, FseSubmitted};
use crate::rules::Rules;

/// One series head in this many claims.
const ONE_IN: usize = 50;
/// Which claim of each `ONE_IN` heads a series (foreign ePrescriptions take
/// 24: `eprescription::RESIDUE`).
const HEAD: usize = 36;
/// How many renewals a head's prescriptions say.
pub(super) const RENEWALS: i32 = 5;
/// How many of the next claims are its renewals (months 1 to 3, the third
/// past the 3 months of a first dispensing).
const LATER: usize = 3;

/// Whether claim `index` heads a series.
fn head(index: usize) -> bool {
    index % ONE_IN == HEAD
}

/// For a claim that is a head's renewal: the head's index and the months
/// since it.
pub(super) fn renewal_of(index: usize) -> Option<(usize, u32)> {
    let months = (index % ONE_IN).checked_sub(HEAD)?;
    (1..=LATER).contains(&months).then(|| {
        let months = u32::try_from(months).unwrap_or(0);
        (index - months as usize, months)
    })
}

/// Makes the French prescriptions of claim `index`'s pharmacy lines
/// renewable when it heads a series, the claim is a pharmacist's to an
/// insured beneficiary and the rules honour renewals for the line's family
/// on the prescription's date; each then allows what the claim dispenses of
/// the line's item at every dispensing.
pub(super) fn make_renewable(fse: &mut FseSubmitted, rules: &Rules, index: usize) {
    if !head(index)
        || fse.professional.category != Category::Pharmacist
        || fse.beneficiary.is_none()
    {
        return;
    }
    let category = fse.professional.category;
    let item = |line: &ActLineRec| line.product.clone().unwrap_or_else(|| line.code.clone());
    let mut per_item: BTreeMap<String, i32> = BTreeMap::new();
    for line in &fse.acts {
        *per_item.entry(item(line)).or_default() += line.quantity;
    }
    for line in &mut fse.acts {
        let each = per_item.get(&item(line)).copied().unwrap_or(line.quantity);
        let Some(family) = rules.acts.find(&line.code, category).map(|a| a.family) else {
            continue;
        };
        let Some(p) = &mut line.prescription else {
            continue;
        };
        let honoured = (rules.acts.prescriptions)
            .treatment_until(family, p.date, Some(RENEWALS.unsigned_abs()))
            .is_some();
        if p.foreign.is_none() && honoured {
            p.renewals = Some(RENEWALS);
            p.quantity = Some(each.saturating_mul(RENEWALS + 1));
        }
    }
}

fn renewable(acts: &[ActLineRec]) -> bool {
    acts.iter().any(|a| {
        a.prescription
            .as_ref()
            .is_some_and(|p| p.renewals.is_some())
    })
}

/// The head's claim `head` as its renewal `months` later, or `None` when
/// the head carries no renewals or the renewal would fall after `last_care`.
/// Its id is the head's professional's with `index`.
pub(super) fn renewed(
    head: &FseSubmitted,
    months: u32,
    index: usize,
    last_care: NaiveDate,
) -> Option<FseSubmitted> {
    if !renewable(&head.acts) {
        return None;
    }
    let care = head.care_date.checked_add_months(Months::new(months))?;
    if care > last_care {
        return None;
    }
    // Received the same number of days after the care, at the same local
    // time, in the offset of its own season.
    let minute = 60_000;
    let old_offset = i64::from(head.received_offset_minutes) * minute;
    let shifted =
        (head.received_at_millis).checked_add((care - head.care_date).num_milliseconds())?;
    let local = chrono::DateTime::from_timestamp_millis(shifted.checked_add(old_offset)?)?;
    let offset = paris_offset_minutes(local.date_naive());
    let billing = head.fse_id.rsplit_once('-')?.0;
    let mut fse = head.clone();
    fse.fse_id = format!("{billing}-{:09}", index % 1_000_000_000);
    fse.care_date = care;
    fse.received_at_millis = shifted - (i64::from(offset) * minute - old_offset);
    fse.received_offset_minutes = offset;
    fse.signature = None;
    Some(fse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_followed_by_its_renewals_only() {
        assert!(head(36) && head(86));
        assert_eq!(renewal_of(36), None);
        assert_eq!(renewal_of(37), Some((36, 1)));
        assert_eq!(renewal_of(39), Some((36, 3)));
        assert_eq!(renewal_of(40), None);
        assert_eq!(renewal_of(88), Some((86, 2)));
        assert_eq!(renewal_of(24), None);
    }
}
