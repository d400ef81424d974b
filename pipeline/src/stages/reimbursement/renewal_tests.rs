//! Renewable prescriptions (docs/rules.md, "Prescriptions"): given a GP's
//! prescription of 10 Dec 2026 for a medicine, "QSP 1 mois, à renouveler N
//! fois", when the pharmacy's monthly dispensings go through the stages,
//! then the first must come within 3 months (art. R.5132-22 CSP), the later
//! ones up to the end of the treatment, 1 + N months capped at 12 (art.
//! R.5132-21), and no more than 1 + N are paid; the set before renewals reads
//! every dispensing against the 3 months, as it did.

use serde_json::{Value, json};

use crate::adjudicate::Adjudicator;
use crate::domain::{Decision, Status};
use crate::pseudonym::PseudonymKey;
use crate::refdata::TrustUnsigned;
use crate::rules::Rules;

const GP: &str = "10000123454";
const PHARMACIST: &str = "10002727377";
const NIR: &str = "185057800604830";
const DOLIPRANE_1000: &str = "3400935955838";
/// The set in force before renewals were honoured (history/sets.toml).
const BEFORE_RENEWALS: &str =
    "sha256:baba004200863a94fc45436e999c5044261482a63516e77d9514bfdf28da6033";

fn adjudicator(rules: Rules) -> Adjudicator {
    let mut a = Adjudicator::new(rules, PseudonymKey::development(), Box::new(TrustUnsigned));
    let rights = json!({
        "nir": NIR, "birth_date": "1985-05-12", "rank": 1,
        "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
        "ald": [], "css": [], "ame": [], "maternity": [],
        "local_regime": null, "declared_gp": GP
    });
    a.load_rights_line(&rights.to_string()).unwrap();
    a
}

fn current() -> Adjudicator {
    adjudicator(Rules::embedded().unwrap())
}

/// One box of DOLIPRANE 1000 mg on `care`, invoice `invoice`, against the
/// prescription of 10 Dec 2026 renewed `renewals` times.
fn dispensing(care: &str, invoice: u32, renewals: Option<u32>) -> String {
    let mut rx = json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2026-12-10",
                        "number": "ON000000000077"});
    if let Some(n) = renewals {
        rx["renewals"] = json!(n);
    }
    let claim: Value = json!({
        "fse_id": format!("12345678-{invoice:09}"),
        "received_at": format!("{care}T18:00:00+01:00"),
        "care_date": care,
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "tiers_payant": {"amo": false, "amc": false},
        "acts": [{"code": "PH7", "quantity": 1, "product": DOLIPRANE_1000,
                  "unit_price": "2.18", "charged": "2.18", "prescription": rx}],
    });
    claim.to_string()
}

fn decide(a: &mut Adjudicator, line: &str) -> Decision {
    let d = a.decide_line(line).unwrap();
    d.check_invariants().unwrap();
    d
}

fn paid(a: &mut Adjudicator, line: &str) {
    let d = decide(a, line);
    assert_eq!(d.status, Status::Paid, "{d:#?}");
    assert_eq!(d.lines[0].base.to_string(), "2.18", "the listed price");
}

/// The refusal's code and line.
fn refused(a: &mut Adjudicator, line: &str) -> (&'static str, Option<usize>) {
    let d = decide(a, line);
    assert_eq!(d.status, Status::Rejected, "{d:#?}");
    assert_eq!(d.reasons.len(), 1, "{:?}", d.reasons);
    (d.reasons[0].code.as_str(), d.reasons[0].line)
}

/// "À renouveler 5 fois": six monthly dispensings from 12 Dec 2026; the 4th
/// renewal (12 Apr 2027, four months on) is paid, and so is the 5th; a
/// seventh, still within the treatment's six months, is one dispensing too
/// many.
#[test]
fn the_fourth_monthly_renewal_is_paid() {
    let mut a = current();
    let months = [
        "2026-12-12",
        "2027-01-12",
        "2027-02-12",
        "2027-03-12",
        "2027-04-12",
        "2027-05-12",
    ];
    for (i, care) in months.iter().enumerate() {
        paid(&mut a, &dispensing(care, i as u32 + 1, Some(5)));
    }
    assert_eq!(
        refused(&mut a, &dispensing("2027-06-09", 7, Some(5))),
        ("prescription_exhausted", Some(1))
    );
}

/// Art. R.5132-22: the first dispensing within 3 months of the prescription,
/// renewable or not: 10 Mar 2027 is paid, 11 Mar (3 months and a day)
/// refused, by reimbursement, which knows it is the first.
#[test]
fn a_first_dispensing_after_three_months_is_refused() {
    let mut a = current();
    assert_eq!(
        refused(&mut a, &dispensing("2027-03-11", 1, Some(5))),
        ("prescription_expired", Some(1))
    );
    let mut a = current();
    paid(&mut a, &dispensing("2027-03-10", 1, Some(5)));
    // Its renewals then run on past the 3 months.
    paid(&mut a, &dispensing("2027-04-10", 2, Some(5)));
}

/// The treatment of "à renouveler 5 fois" ends six months after the
/// prescription: a renewal on 10 Jun 2027 is paid, on 11 Jun refused.
#[test]
fn a_dispensing_after_the_treatment_is_refused() {
    let mut a = current();
    paid(&mut a, &dispensing("2026-12-12", 1, Some(5)));
    assert_eq!(
        refused(&mut a, &dispensing("2027-06-11", 2, Some(5))),
        ("prescription_expired", Some(1))
    );
    paid(&mut a, &dispensing("2027-06-10", 3, Some(5)));
}

/// Art. R.5132-21: 12 months at most, however many renewals: 10 Dec 2027 is
/// paid, 11 Dec refused.
#[test]
fn a_treatment_is_capped_at_twelve_months() {
    let mut a = current();
    paid(&mut a, &dispensing("2026-12-12", 1, Some(20)));
    assert_eq!(
        refused(&mut a, &dispensing("2027-12-11", 2, Some(20))),
        ("prescription_expired", Some(1))
    );
    paid(&mut a, &dispensing("2027-12-10", 3, Some(20)));
}

/// Without renewals nothing changes: every dispensing within the 3 months.
#[test]
fn a_prescription_without_renewals_keeps_its_three_months() {
    let mut a = current();
    paid(&mut a, &dispensing("2026-12-12", 1, None));
    assert_eq!(
        refused(&mut a, &dispensing("2027-03-11", 2, None)),
        ("prescription_expired", Some(1))
    );
}

/// The set before renewals decides as it did: the renewal of 12 Apr 2027 is
/// refused, the prescription's 3 months long past.
#[test]
fn an_older_rule_set_ignores_renewals() {
    let before = Rules::published(BEFORE_RENEWALS).unwrap().expect("kept");
    let mut a = adjudicator((*before).clone());
    paid(&mut a, &dispensing("2026-12-12", 1, Some(5)));
    assert_eq!(
        refused(&mut a, &dispensing("2027-04-12", 2, Some(5))),
        ("prescription_expired", Some(1))
    );
}

/// More renewals than one a week over 12 months is no prescription: a
/// coded refusal naming the field; 52 is taken (and capped at 12 months).
#[test]
fn more_than_fifty_two_renewals_are_refused() {
    let mut a = current();
    let d = decide(&mut a, &dispensing("2026-12-12", 1, Some(53)));
    assert_eq!(d.status, Status::Rejected, "{d:#?}");
    assert_eq!(d.reasons[0].code.as_str(), "invalid_prescription");
    assert_eq!(
        d.reasons[0].field.as_deref(),
        Some("acts[0].prescription.renewals")
    );
    paid(&mut a, &dispensing("2026-12-12", 2, Some(52)));
}

/// A negative or fractional count is bad input: a coded refusal naming the
/// field, never a crash nor a count read as none.
#[test]
fn a_count_that_is_no_count_is_refused() {
    for bad in [json!(-1), json!(1.5), json!("5")] {
        let mut claim: Value = serde_json::from_str(&dispensing("2026-12-12", 1, None)).unwrap();
        claim["acts"][0]["prescription"]["renewals"] = bad.clone();
        let d = decide(&mut current(), &claim.to_string());
        assert_eq!(d.status, Status::Rejected, "{bad}: {d:#?}");
        let field = d.reasons[0].field.as_deref().unwrap_or_default();
        assert!(field.contains("renewals"), "{bad}: {:?}", d.reasons);
    }
}
