//! Complementary insurers (AMC): when the beneficiary's rights name an
//! insurer and tiers payant covers its part, the remainder is forwarded to it
//! (`amc.claims`): its share of the ticket modérateur and of the fee overrun,
//! within its contract (reference data, `outbound.toml`).
//!
//! Per line: ticket = base − (amo + participation + franchise) − css, i.e. the
//! part of the base the mandatory insurers leave (the flat fee on costly acts
//! included, since it replaces the ticket); participation and franchises are
//! never forwarded. Overrun = charged − base.

use chrono::NaiveDate;

use super::{OutboundError, blank_header};
use crate::domain::ReasonCode;
use crate::events::model::{AmcClaim, ClaimRefRec, DecisionRec};
use crate::money::round_half_up_div;
use crate::rules::Rules;

/// The claim on the complementary insurer, if one is due: `None` without a
/// named insurer, without tiers payant on its part, with tiers payant
/// withdrawn as a whole, or with nothing to forward.
pub fn claim(
    decision: &DecisionRec,
    claim: &ClaimRefRec,
    rules: &Rules,
) -> Result<Option<AmcClaim>, OutboundError> {
    let (Some(amc), true) = (&claim.amc, claim.tiers_payant.amc) else {
        return Ok(None);
    };
    let on = decision.care_date.unwrap_or(claim.received_on);
    if withdrawn_from_amc(decision, rules, on) {
        return Ok(None);
    }
    let Some(contract) = rules.outbound.amc_contract(amc, on) else {
        return Err(OutboundError::Input(format!(
            "no complementary contract in force on {on}"
        )));
    };
    let mut ticket = 0i64;
    let mut overrun = 0i64;
    let mut base_total = 0i64;
    for line in &decision.lines {
        let left = line.base_cents
            - line.amo_cents
            - line.participation_cents
            - line.franchise_cents
            - line.css_cents;
        if left < 0 || line.charged_cents < line.base_cents {
            return Err(OutboundError::Input(format!(
                "decision line {} has more paid than its base, or a base above what was charged",
                line.code
            )));
        }
        ticket += left;
        overrun += line.charged_cents - line.base_cents;
        base_total += line.base_cents;
    }
    let c = contract.value;
    let ticket_cents = round_half_up_div(i128::from(ticket) * i128::from(c.ticket_percent), 100);
    let overrun_cap = round_half_up_div(
        i128::from(base_total) * i128::from(c.overrun_cap_percent),
        100,
    );
    let depassement_cents = overrun.min(overrun_cap);
    let amount_cents = ticket_cents + depassement_cents;
    if amount_cents == 0 {
        return Ok(None);
    }
    Ok(Some(AmcClaim {
        header: blank_header(),
        amc: amc.clone(),
        fse_id: decision.fse_id.clone().unwrap_or_default(),
        beneficiary_key: decision.beneficiary_key.clone().unwrap_or_default(),
        ticket_cents,
        depassement_cents,
        amount_cents,
    }))
}

/// Tiers payant contre génériques (art. L.162-16-7 CSS) withdraws tiers
/// payant as a whole: the patient pays the pharmacist, so nothing is due to
/// the pharmacist from the AMC either; the insured's complementary
/// reimbursement takes the ordinary path, outside this flow. Only where the
/// rule in force on the date of care says so (`withdraws_amc`): older sets
/// forwarded it, and their runs settle as they did.
fn withdrawn_from_amc(decision: &DecisionRec, rules: &Rules, care: NaiveDate) -> bool {
    let withdrawn = decision
        .warnings
        .iter()
        .any(|w| w.code == ReasonCode::TiersPayantWithdrawn.as_str());
    withdrawn
        && (rules.acts.products)
            .generic_rule(care)
            .is_some_and(|r| r.withdraws_amc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{DecisionLineRec, ReasonRec, Status, TiersPayantRec};
    use proptest::prelude::*;

    fn line(charged: i64, base: i64, amo: i64, pf: i64, css: i64) -> DecisionLineRec {
        DecisionLineRec {
            code: "G".into(),
            charged_cents: charged,
            base_cents: base,
            rate_percent: 70,
            amo_cents: amo,
            css_cents: css,
            participation_cents: pf,
            franchise_cents: 0,
            tariff: "G@2024-12-22".into(),
        }
    }

    fn decision(lines: Vec<DecisionLineRec>) -> DecisionRec {
        DecisionRec {
            fse_id: Some("F1".into()),
            status: Status::Paid,
            route: None,
            reasons: vec![],
            warnings: vec![],
            amo_cents: lines.iter().map(|l| l.amo_cents).sum(),
            css_cents: lines.iter().map(|l| l.css_cents).sum(),
            participation_cents: lines.iter().map(|l| l.participation_cents).sum(),
            lines,
            franchise_cents: 0,
            flat_fee_cents: 0,
            deferred_cents: 0,
            imputed_cents: 0,
            patient_cents: 0,
            paid_to_professional_cents: 0,
            paid_to_insured_cents: 0,
            rules_version: String::new(),
            signature_check: None,
            beneficiary_key: Some("k".into()),
            care_date: NaiveDate::from_ymd_opt(2025, 1, 20),
            reimbursement_date: None,
        }
    }

    fn claim_ref(amc: Option<&str>, tp_amc: bool) -> ClaimRefRec {
        ClaimRefRec {
            rpps: "10000123454".into(),
            received_on: NaiveDate::from_ymd_opt(2025, 1, 20).unwrap(),
            tiers_payant: TiersPayantRec {
                amo: true,
                amc: tp_amc,
            },
            amc: amc.map(str::to_string),
            eu_country: None,
            eu_institution_id: None,
            payee: None,
        }
    }

    fn rules() -> Rules {
        Rules::embedded().unwrap()
    }

    #[test]
    fn a_gp_visit_forwards_the_ticket_but_never_the_participation() {
        // G 30.00 at 70 %: AMO 21.00 − PF 2.00 = 19.00; ticket 9.00.
        let d = decision(vec![line(3000, 3000, 1900, 200, 0)]);
        let c = claim(&d, &claim_ref(Some("AMC000042"), true), &rules())
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.ticket_cents, c.depassement_cents, c.amount_cents),
            (900, 0, 900)
        );
        assert_eq!(c.amc, "AMC000042");
    }

    #[test]
    fn overruns_are_forwarded_within_the_contract_cap() {
        // Charged 80 on a base of 30: overrun 50, capped at 100 % of the base.
        let d = decision(vec![line(8000, 3000, 1900, 200, 0)]);
        let c = claim(&d, &claim_ref(Some("AMC000042"), true), &rules())
            .unwrap()
            .unwrap();
        assert_eq!((c.ticket_cents, c.depassement_cents), (900, 3000));
        // The entry-level contract takes no overrun.
        let c = claim(&d, &claim_ref(Some("AMC000001"), true), &rules())
            .unwrap()
            .unwrap();
        assert_eq!((c.ticket_cents, c.depassement_cents), (900, 0));
    }

    #[test]
    fn nothing_is_forwarded_without_an_insurer_tiers_payant_or_a_remainder() {
        let d = decision(vec![line(3000, 3000, 1900, 200, 0)]);
        assert_eq!(claim(&d, &claim_ref(None, true), &rules()).unwrap(), None);
        assert_eq!(
            claim(&d, &claim_ref(Some("AMC1"), false), &rules()).unwrap(),
            None
        );
        // CSS pays the whole ticket: nothing left for the insurer.
        let css = decision(vec![line(3000, 3000, 1900, 200, 900)]);
        assert_eq!(
            claim(&css, &claim_ref(Some("AMC1"), true), &rules()).unwrap(),
            None
        );
    }

    /// The set in force before tiers payant was withdrawn from the AMC part.
    const BEFORE_WITHDRAWS_AMC: &str =
        "sha256:baba004200863a94fc45436e999c5044261482a63516e77d9514bfdf28da6033";

    fn withdrawn(mut d: DecisionRec) -> DecisionRec {
        d.warnings.push(ReasonRec {
            code: ReasonCode::TiersPayantWithdrawn.as_str().into(),
            stage: crate::domain::Stage::Reimbursement,
            message: String::new(),
            field: Some("tiers_payant.amo".into()),
            line: Some(1),
        });
        d
    }

    /// Tiers payant withdrawn (a refused generic) is withdrawn from the AMC
    /// too under the current set; the set before forwarded it, and a run
    /// recorded under it settles as it did.
    #[test]
    fn a_withdrawn_tiers_payant_forwards_nothing_to_the_amc() {
        let d = withdrawn(decision(vec![line(3000, 3000, 1900, 200, 0)]));
        let c = claim_ref(Some("AMC000042"), true);
        assert_eq!(claim(&d, &c, &rules()).unwrap(), None);
        let before = Rules::published(BEFORE_WITHDRAWS_AMC)
            .unwrap()
            .expect("the set before is kept");
        let forwarded = claim(&d, &c, &before).unwrap().unwrap();
        assert_eq!(forwarded.amount_cents, 900);
        // Before the rule's date (1 Jul 2012) nothing withdraws it.
        let mut early = d.clone();
        early.care_date = NaiveDate::from_ymd_opt(2012, 6, 30);
        assert_eq!(
            claim(&early, &c, &rules()).unwrap().unwrap().amount_cents,
            900
        );
    }

    proptest! {
        #[test]
        fn the_claim_never_exceeds_what_the_patient_was_left_to_pay(
            base in 0i64..100_000, over in 0i64..100_000, rate in 0i64..=100, pf in 0i64..500
        ) {
            let gross = base * rate / 100;
            let pf = pf.min(gross);
            let d = decision(vec![line(base + over, base, gross - pf, pf, 0)]);
            if let Some(c) = claim(&d, &claim_ref(Some("AMC7"), true), &rules()).unwrap() {
                prop_assert_eq!(c.amount_cents, c.ticket_cents + c.depassement_cents);
                prop_assert!(c.ticket_cents <= base - gross);
                prop_assert!(c.depassement_cents <= over.min(base));
                prop_assert!(c.amount_cents <= base + over - gross);
            }
        }
    }
}
