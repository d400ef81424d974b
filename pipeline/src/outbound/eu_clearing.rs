//! EU cross-border clearing: the French side's claims on foreign competent
//! institutions for the care it paid to their EHIC holders (claims on actual
//! expenditure, Reg. 883/2004 art. 35, Reg. 987/2009 art. 62 and 67).
//!
//! Expenditure is accumulated per debtor institution and per calendar
//! half-year of booking (the FSE's date of receipt: the day the decision is
//! recorded), and emitted by a close event dated D for every half-year that
//! ended before D, as a claim introduced on D. Its art. 67 dates:
//! - introduction deadline: end of the 12th month after the half-year's end;
//! - payment due: end of the 18th month after the month of introduction;
//! - disputes settled by: end of the 36th month after it.
//!
//! A claim introduced after its deadline is still emitted, marked not
//! receivable: late claims "are not taken into consideration" (art. 67(2)),
//! and the record says so rather than losing the money silently.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::calendar::{HalfYear, month_end_after};
use super::{MAX_FSES_PER_EVENT, OutboundError, blank_header};
use crate::events::model::EuClaim;
use crate::rules::{EuClaimValue, Rules};

/// One FSE's expenditure, as the ledger keeps it until its half-year closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EuEntry {
    pub fse_id: String,
    /// What the French side paid (to the professional and the insured).
    pub amount_cents: i64,
}

/// The dates of a claim introduced on `introduced_on` for `half`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Art67 {
    pub introduction_deadline: NaiveDate,
    pub payment_due: NaiveDate,
    pub dispute_deadline: NaiveDate,
    /// Introduced on or before its deadline.
    pub receivable: bool,
    pub currency: String,
}

/// The time limits in force for a half-year: the version in force on its
/// last day (the earliest version for a half-year before every version).
pub fn limits(rules: &Rules, half: HalfYear) -> Result<&EuClaimValue, OutboundError> {
    let table = &rules.outbound.eu_claim;
    table
        .at(half.end())
        .or_else(|| table.versions().first())
        .map(|v| &v.value)
        .ok_or_else(|| OutboundError::Input("no EU claim time limits".into()))
}

pub fn art67(
    rules: &Rules,
    half: HalfYear,
    introduced_on: NaiveDate,
) -> Result<Art67, OutboundError> {
    let l = limits(rules, half)?;
    let overflow = || OutboundError::Input(format!("EU claim dates overflow for {}", half.label()));
    let introduction_deadline =
        month_end_after(half.end(), l.introduction_months).ok_or_else(overflow)?;
    Ok(Art67 {
        introduction_deadline,
        payment_due: month_end_after(introduced_on, l.payment_months).ok_or_else(overflow)?,
        dispute_deadline: month_end_after(introduced_on, l.dispute_months).ok_or_else(overflow)?,
        receivable: introduced_on <= introduction_deadline,
        currency: l.currency.clone(),
    })
}

/// Whether a close on `close_on` introduces `half`'s claims: the half-year is over.
pub fn due(half: HalfYear, close_on: NaiveDate) -> bool {
    half.end() < close_on
}

/// The claims of one institution's half-year: FSEs sorted by id, split in
/// parts of at most [`MAX_FSES_PER_EVENT`], each part its own claim.
#[allow(clippy::too_many_arguments)]
pub fn claims(
    rules: &Rules,
    country: &str,
    institution_id: &str,
    half: HalfYear,
    mut entries: Vec<EuEntry>,
    introduced_on: NaiveDate,
    partition: u32,
) -> Result<Vec<EuClaim>, OutboundError> {
    let dates = art67(rules, half, introduced_on)?;
    entries.sort_by(|a, b| a.fse_id.cmp(&b.fse_id));
    Ok(entries
        .chunks(MAX_FSES_PER_EVENT)
        .enumerate()
        .map(|(part, chunk)| EuClaim {
            header: blank_header(),
            claim_id: format!(
                "EU-{country}-{institution_id}-{}-p{partition}-i{}-{part}",
                half.label(),
                introduced_on.format("%Y%m%d")
            ),
            country: country.to_string(),
            institution_id: institution_id.to_string(),
            half_year: half.label(),
            introduced_on,
            introduction_deadline: dates.introduction_deadline,
            payment_due: dates.payment_due,
            dispute_deadline: dates.dispute_deadline,
            receivable: dates.receivable,
            amount_cents: chunk.iter().map(|e| e.amount_cents).sum(),
            currency: dates.currency.clone(),
            fse_ids: chunk.iter().map(|e| e.fse_id.clone()).collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Days;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn rules() -> Rules {
        Rules::embedded().unwrap()
    }

    #[test]
    fn the_art_67_dates_of_each_half_year() {
        let r = rules();
        let h1 = HalfYear::of(d("2025-03-10"));
        let a = art67(&r, h1, d("2025-07-15")).unwrap();
        assert_eq!(a.introduction_deadline, d("2026-06-30"));
        assert_eq!(
            a.payment_due,
            d("2027-01-31"),
            "18 months after the end of July 2025"
        );
        assert_eq!(a.dispute_deadline, d("2028-07-31"));
        assert!(a.receivable);
        assert_eq!(a.currency, "EUR");
        let h2 = HalfYear::of(d("2024-10-01"));
        let a = art67(&r, h2, d("2025-12-31")).unwrap();
        assert_eq!(a.introduction_deadline, d("2025-12-31"));
        assert!(a.receivable, "introduced on the deadline itself");
    }

    #[test]
    fn a_claim_introduced_after_its_deadline_is_not_receivable() {
        let r = rules();
        let h2 = HalfYear::of(d("2024-10-01"));
        let late = art67(&r, h2, d("2026-01-01")).unwrap();
        assert!(!late.receivable);
        // Its payment and dispute dates still run from the introduction.
        assert_eq!(late.payment_due, d("2027-07-31"));
        assert_eq!(late.dispute_deadline, d("2029-01-31"));
        let claims = claims(
            &r,
            "DE",
            "DE-1234",
            h2,
            vec![EuEntry {
                fse_id: "F".into(),
                amount_cents: 2100,
            }],
            d("2026-01-01"),
            0,
        )
        .unwrap();
        assert_eq!(claims.len(), 1);
        assert!(!claims[0].receivable);
        assert_eq!(claims[0].amount_cents, 2100);
    }

    #[test]
    fn leap_years_and_the_old_regulation() {
        let r = rules();
        // Introduced in August 2026: payment due end of February 2028, a leap year.
        let a = art67(&r, HalfYear::of(d("2026-03-01")), d("2026-08-03")).unwrap();
        assert_eq!(a.payment_due, d("2028-02-29"));
        // Introduced in February 2027: 36 months later is February 2030 (28 days).
        let a = art67(&r, HalfYear::of(d("2026-07-01")), d("2027-02-10")).unwrap();
        assert_eq!(a.dispute_deadline, d("2030-02-28"));
        // Booked under Reg. 574/72 (half-year ended before 1 May 2010): 6 months.
        let old = art67(&r, HalfYear::of(d("2009-09-01")), d("2010-06-30")).unwrap();
        assert_eq!(old.introduction_deadline, d("2010-06-30"));
        assert!(old.receivable);
        // The half-year ending 30 June 2010 follows 987/2009.
        let new = art67(&r, HalfYear::of(d("2010-06-01")), d("2011-06-30")).unwrap();
        assert_eq!(new.introduction_deadline, d("2011-06-30"));
    }

    #[test]
    fn a_half_year_is_due_only_once_it_is_over() {
        let h1 = HalfYear::of(d("2025-06-30"));
        assert!(!due(h1, d("2025-06-30")));
        assert!(due(h1, d("2025-07-01")));
    }

    proptest! {
        #[test]
        fn receivable_exactly_when_introduced_within_twelve_months(
            booked in 0u64..(365 * 20), delay in 1u64..900
        ) {
            let r = rules();
            let half = HalfYear::of(d("2011-01-01") + Days::new(booked));
            let introduced = half.end() + Days::new(delay);
            let a = art67(&r, half, introduced).unwrap();
            let deadline = half.end().checked_add_months(chrono::Months::new(12)).unwrap();
            prop_assert_eq!(a.introduction_deadline, deadline);
            prop_assert_eq!(a.receivable, introduced <= deadline);
            prop_assert!(a.payment_due > introduced && a.dispute_deadline > a.payment_due);
        }

        #[test]
        fn claims_keep_every_fse_and_the_total(
            amounts in proptest::collection::vec(0i64..1_000_000, 1..2500)
        ) {
            let r = rules();
            let entries: Vec<EuEntry> = amounts
                .iter()
                .enumerate()
                .map(|(i, a)| EuEntry { fse_id: format!("F{i:05}"), amount_cents: *a })
                .collect();
            let claims = claims(&r, "BE", "BE-1", HalfYear::of(d("2025-01-01")), entries, d("2025-07-01"), 3).unwrap();
            prop_assert_eq!(claims.len(), amounts.len().div_ceil(MAX_FSES_PER_EVENT));
            prop_assert_eq!(claims.iter().map(|c| c.amount_cents).sum::<i64>(), amounts.iter().sum::<i64>());
            prop_assert_eq!(claims.iter().map(|c| c.fse_ids.len()).sum::<usize>(), amounts.len());
            let mut ids: Vec<&str> = claims.iter().map(|c| c.claim_id.as_str()).collect();
            ids.dedup();
            prop_assert_eq!(ids.len(), claims.len());
        }
    }
}
