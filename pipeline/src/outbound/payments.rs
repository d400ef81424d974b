//! Payment orders: to the professional under tiers payant, otherwise to the
//! insured (the decision says which: `paid_to_professional` /
//! `paid_to_insured`), grouped per payee and value date, with the deferred
//! deductions already imputed by the decision, and the tiers-payant payment
//! guarantee of décret 2016-1069 tracked per FSE.
//!
//! A payment run is a close event dated D: every pending payment received on
//! or before D is paid with value date D + lag working days (`outbound.toml`),
//! pushed past the previous run's value date so that a payee has at most one
//! order per value date. The guarantee counts working days from the date of
//! receipt to the value date: on time up to the 7th, €1 on the 8th and 9th,
//! 10 % of the AMO part from the 10th.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::calendar::{add_working_days, working_days_between};
use super::{MAX_FSES_PER_EVENT, OutboundError, blank_header};
use crate::events::model::{GuaranteeRec, PayeeKind, PaymentOrder};
use crate::money::round_half_up_div;
use crate::rules::{GuaranteeValue, Rules};

/// One FSE's payment to one payee, as the ledger keeps it until its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayEntry {
    pub fse_id: String,
    pub received_on: NaiveDate,
    pub amount_cents: i64,
    pub imputed_cents: i64,
    /// AMO part of the decision: the 10 % penalty's base.
    pub amo_cents: i64,
    /// Paid to the professional under tiers payant: guaranteed.
    pub guaranteed: bool,
}

/// The value date of a run closed on `close_on`: `lag` working days later,
/// and after the previous run's value date.
pub fn value_date(
    rules: &Rules,
    close_on: NaiveDate,
    previous: Option<NaiveDate>,
) -> Result<NaiveDate, OutboundError> {
    let lag = rules
        .outbound
        .payment
        .at(close_on)
        .map_or(0, |v| v.value.lag_working_days);
    let date = add_working_days(&rules.calendar, close_on, lag.max(1))?;
    match previous {
        Some(p) if date <= p => Ok(add_working_days(&rules.calendar, p, 1)?),
        _ => Ok(date),
    }
}

/// The penalty for paying on working day `k` after receipt.
pub fn penalty(g: &GuaranteeValue, k: u32, amo_cents: i64) -> i64 {
    if k >= g.percent_from_working_day {
        round_half_up_div(i128::from(amo_cents) * i128::from(g.percent), 100)
    } else if k > g.due_working_days {
        g.flat_penalty.get()
    } else {
        0
    }
}

/// The guarantee of a tiers-payant FSE paid on `value_date`: `None` when no
/// guarantee was in force on its date of receipt (before 1 July 2016) or the
/// payment is not guaranteed (paid to the insured).
pub fn guarantee(
    rules: &Rules,
    entry: &PayEntry,
    value_date: NaiveDate,
) -> Result<Option<GuaranteeRec>, OutboundError> {
    if !entry.guaranteed {
        return Ok(None);
    }
    let Some(g) = rules.outbound.guarantee.at(entry.received_on) else {
        return Ok(None);
    };
    let g = g.value;
    let due = add_working_days(&rules.calendar, entry.received_on, g.due_working_days)?;
    let k = working_days_between(&rules.calendar, entry.received_on, value_date)?;
    Ok(Some(GuaranteeRec {
        fse_id: entry.fse_id.clone(),
        received_on: entry.received_on,
        due,
        paid_working_day: i32::try_from(k).unwrap_or(i32::MAX),
        late: value_date > due,
        penalty_cents: penalty(&g, k, entry.amo_cents),
    }))
}

/// The orders of one run: per payee (in key order), FSEs sorted by id, split
/// in parts of at most [`MAX_FSES_PER_EVENT`]. An FSE with nothing to pay
/// and nothing imputed is left out; one whose payment was wholly taken by
/// earlier deferred deductions stays, so the order records the imputation.
pub fn orders(
    rules: &Rules,
    groups: BTreeMap<(PayeeKind, String), Vec<PayEntry>>,
    value_date: NaiveDate,
    partition: u32,
) -> Result<Vec<PaymentOrder>, OutboundError> {
    let mut out = Vec::new();
    for ((kind, payee), mut entries) in groups {
        entries.retain(|e| e.amount_cents > 0 || e.imputed_cents > 0);
        entries.sort_by(|a, b| a.fse_id.cmp(&b.fse_id));
        for (part, chunk) in entries.chunks(MAX_FSES_PER_EVENT).enumerate() {
            let mut guarantees = Vec::new();
            for entry in chunk {
                if let Some(g) = guarantee(rules, entry, value_date)? {
                    guarantees.push(g);
                }
            }
            let kind_tag = match kind {
                PayeeKind::Professional => "ps",
                PayeeKind::Insured => "ins",
            };
            out.push(PaymentOrder {
                header: blank_header(),
                order_id: format!(
                    "PO-{}-p{partition}-{kind_tag}-{payee}-{part}",
                    value_date.format("%Y%m%d")
                ),
                payee_kind: kind,
                payee: payee.clone(),
                value_date,
                amount_cents: chunk.iter().map(|e| e.amount_cents).sum(),
                imputed_cents: chunk.iter().map(|e| e.imputed_cents).sum(),
                fse_ids: chunk.iter().map(|e| e.fse_id.clone()).collect(),
                guarantee_due: guarantees.iter().map(|g| g.due).min(),
                late_penalty_cents: guarantees.iter().map(|g| g.penalty_cents).sum(),
                guarantees,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn rules() -> Rules {
        Rules::embedded().unwrap()
    }

    fn tp(fse: &str, received: &str, amount: i64, amo: i64) -> PayEntry {
        PayEntry {
            fse_id: fse.into(),
            received_on: d(received),
            amount_cents: amount,
            imputed_cents: 0,
            amo_cents: amo,
            guaranteed: true,
        }
    }

    #[test]
    fn penalty_tiers_follow_the_decree() {
        let r = rules();
        let g = r.outbound.guarantee.at(d("2025-01-01")).unwrap().value;
        assert_eq!(penalty(&g, 7, 2100), 0, "on the 7th working day: on time");
        assert_eq!(penalty(&g, 8, 2100), 100, "8th: EUR 1");
        assert_eq!(penalty(&g, 9, 2100), 100, "9th: EUR 1");
        assert_eq!(penalty(&g, 10, 2100), 210, "10th: 10 % of the AMO part");
        assert_eq!(penalty(&g, 30, 2105), 211, "rounded half up");
        assert_eq!(penalty(&g, 0, 2100), 0);
    }

    #[test]
    fn the_guarantee_counts_working_days_from_receipt() {
        let r = rules();
        // Received Wed 30 Apr 2025: the 7th working day is Tue 13 May (1 and
        // 8 May are holidays).
        let e = tp("F1", "2025-04-30", 2300, 2100);
        let on_time = guarantee(&r, &e, d("2025-05-13")).unwrap().unwrap();
        assert_eq!(on_time.due, d("2025-05-13"));
        assert_eq!(
            (
                on_time.paid_working_day,
                on_time.late,
                on_time.penalty_cents
            ),
            (7, false, 0)
        );
        let eighth = guarantee(&r, &e, d("2025-05-14")).unwrap().unwrap();
        assert_eq!(
            (eighth.paid_working_day, eighth.late, eighth.penalty_cents),
            (8, true, 100)
        );
        let tenth = guarantee(&r, &e, d("2025-05-16")).unwrap().unwrap();
        assert_eq!((tenth.paid_working_day, tenth.penalty_cents), (10, 210));
        // Before 1 July 2016 there was no guarantee.
        let old = tp("F0", "2016-06-30", 2300, 2100);
        assert_eq!(guarantee(&r, &old, d("2016-09-30")).unwrap(), None);
        let from = tp("F0", "2016-07-01", 2300, 2100);
        assert!(guarantee(&r, &from, d("2016-09-30")).unwrap().unwrap().late);
        // The insured's payments are not guaranteed.
        let insured = PayEntry {
            guaranteed: false,
            ..e
        };
        assert_eq!(guarantee(&r, &insured, d("2025-06-30")).unwrap(), None);
    }

    #[test]
    fn value_dates_are_working_days_after_the_run_and_strictly_increase() {
        let r = rules();
        // Run on Fri 27 Dec 2024, lag 3: Mon 30, Tue 31, (1 Jan), Thu 2 Jan.
        assert_eq!(
            value_date(&r, d("2024-12-27"), None).unwrap(),
            d("2025-01-02")
        );
        // A run on Sat 28 Dec lands on the same day: pushed one working day.
        assert_eq!(
            value_date(&r, d("2024-12-28"), Some(d("2025-01-02"))).unwrap(),
            d("2025-01-03")
        );
    }

    #[test]
    fn orders_group_per_payee_and_add_up() {
        let r = rules();
        let mut groups = BTreeMap::new();
        groups.insert(
            (PayeeKind::Professional, "10000123454".to_string()),
            vec![
                tp("F2", "2025-01-02", 2300, 2100),
                tp("F1", "2025-01-02", 1000, 900),
            ],
        );
        groups.insert(
            (PayeeKind::Insured, "key".to_string()),
            vec![PayEntry {
                guaranteed: false,
                imputed_cents: 200,
                ..tp("F3", "2025-01-03", 1700, 1900)
            }],
        );
        let orders = orders(&r, groups, d("2025-01-08"), 1).unwrap();
        assert_eq!(orders.len(), 2);
        let ps = &orders[0];
        assert_eq!(ps.payee_kind, PayeeKind::Professional);
        assert_eq!(ps.fse_ids, ["F1", "F2"]);
        assert_eq!(ps.amount_cents, 3300);
        assert_eq!(ps.guarantees.len(), 2);
        assert_eq!(ps.guarantee_due, Some(d("2025-01-13")));
        assert_eq!(ps.late_penalty_cents, 0);
        let ins = &orders[1];
        assert_eq!((ins.amount_cents, ins.imputed_cents), (1700, 200));
        assert!(ins.guarantees.is_empty() && ins.guarantee_due.is_none());
    }

    proptest! {
        #[test]
        fn the_penalty_grows_with_the_delay_and_is_zero_on_time(
            k in 0u32..60, amo in 0i64..1_000_000
        ) {
            let r = rules();
            let g = r.outbound.guarantee.at(d("2025-01-01")).unwrap().value;
            let p = penalty(&g, k, amo);
            if k <= 7 { prop_assert_eq!(p, 0); }
            else if k <= 9 { prop_assert_eq!(p, 100); }
            else { prop_assert_eq!(p, (amo * 10 + 50) / 100); }
            prop_assert!(penalty(&g, k + 1, amo) >= p || k + 1 == 10);
        }

        #[test]
        fn orders_sum_to_their_entries(
            amounts in proptest::collection::vec((0i64..100_000, 0usize..5), 0..300)
        ) {
            let r = rules();
            let mut groups: BTreeMap<(PayeeKind, String), Vec<PayEntry>> = BTreeMap::new();
            for (i, (amount, payee)) in amounts.iter().enumerate() {
                groups.entry((PayeeKind::Insured, format!("k{payee}"))).or_default().push(
                    PayEntry { guaranteed: false, ..tp(&format!("F{i}"), "2025-01-02", *amount, 0) },
                );
            }
            let orders = orders(&r, groups, d("2025-01-08"), 0).unwrap();
            let total: i64 = orders.iter().map(|o| o.amount_cents).sum();
            prop_assert_eq!(total, amounts.iter().map(|(a, _)| a).sum::<i64>());
            let paid: usize = orders.iter().map(|o| o.fse_ids.len()).sum();
            prop_assert_eq!(paid, amounts.iter().filter(|(a, _)| *a > 0).count());
            prop_assert!(orders.iter().all(|o| o.amount_cents > 0 || o.imputed_cents > 0));
        }
    }
}
