//! Billing identifiers (issue 20, item 5): given an executant who bills under
//! an AM number or a FINESS, when validation runs, then a well-formed number
//! of a fitting category passes and is kept, the RPPS stays the signer, and a
//! malformed number or an AM number of another category is refused with its
//! code.

use serde_json::{Value, json};

use crate::domain::{Billing, FseInput};
use crate::rules::Rules;
use crate::stages::tests::{GP, Kit, PHARMACIST, claim, codes};
use crate::stages::{Outcome, Validated};
use crate::state::keys;

/// The set before FSE numbers were per professional (rules/history/sets.toml).
const BEFORE: &str = "sha256:baba004200863a94fc45436e999c5044261482a63516e77d9514bfdf28da6033";

fn gp_billing(billing: Value) -> Value {
    claim(
        json!({"professional": {"rpps": GP, "category": "gp", "sector": "1",
                                  "billing": billing}}),
    )
}

fn validate(kit: &Kit, fse: &Value) -> Outcome<Validated> {
    let input: FseInput = serde_json::from_value(fse.clone()).unwrap();
    kit.with_ctx(|ctx| {
        Kit::run(&kit.validation, |txn| {
            super::validate(&input, crate::clock::simulated_receipt(&input), txn, ctx)
        })
    })
}

fn refusal(fse: &Value) -> Vec<(&'static str, Option<String>)> {
    match validate(&Kit::new(), fse) {
        Outcome::Pass(_) => Vec::new(),
        Outcome::Reject(d) => codes(&d.reasons)
            .into_iter()
            .map(|(c, f)| (c, f.map(str::to_string)))
            .collect(),
    }
}

fn id_field() -> Option<String> {
    Some("professional.billing.id".into())
}

#[test]
fn a_health_centre_finess_bills_and_the_rpps_still_signs() {
    let v = Kit::new().validated(&gp_billing(json!({"kind": "finess", "id": "750000010"})));
    let pro = &v.fse.professional;
    assert_eq!(pro.rpps.as_str(), GP);
    assert!(matches!(&pro.billing, Some(Billing::Finess(f)) if f.as_str() == "750000010"));
    assert_eq!(pro.payee(), "750000010");
}

#[test]
fn without_a_billing_identifier_the_rpps_is_paid() {
    let v = Kit::new().validated(&claim(json!({})));
    assert_eq!(v.fse.professional.billing, None);
    assert_eq!(v.fse.professional.payee(), GP);
}

#[test]
fn an_am_number_of_the_doctors_category_or_an_establishment_bills() {
    for id in ["751123456", "750123456", "2a1123456"] {
        let v = Kit::new().validated(&gp_billing(json!({"kind": "am", "id": id})));
        assert_eq!(v.fse.professional.payee(), id.to_ascii_uppercase(), "{id}");
    }
}

#[test]
fn an_am_number_of_another_category_is_refused() {
    for id in ["752123456", "756123456", "759123456"] {
        assert_eq!(
            refusal(&gp_billing(json!({"kind": "am", "id": id}))),
            vec![("billing_category_mismatch", id_field())],
            "{id}"
        );
    }
}

#[test]
fn a_malformed_billing_identifier_is_refused() {
    for (kind, id) in [
        ("finess", "750000011"), // Luhn key
        ("finess", "75000001"),
        ("am", "75112345"),
        ("am", "7511234X6"),
    ] {
        assert_eq!(
            refusal(&gp_billing(json!({"kind": kind, "id": id}))),
            vec![("invalid_billing_id", id_field())],
            "{kind} {id}"
        );
    }
    assert_eq!(
        refusal(&gp_billing(json!({"kind": "rpps", "id": GP}))),
        vec![(
            "invalid_billing_id",
            Some("professional.billing.kind".into())
        )]
    );
    assert_eq!(
        refusal(&gp_billing(json!({"kind": "am"}))),
        vec![("missing_field", id_field())]
    );
}

#[test]
fn a_corsican_finess_is_accepted_unchecked_as_for_a_prescriber() {
    let v = Kit::new().validated(&gp_billing(json!({"kind": "finess", "id": "2A0000019"})));
    assert_eq!(v.fse.professional.payee(), "2A0000019");
}

/// Two pharmacists of one pharmacy, billing under its AM number, number
/// their FSEs each on their own: the same number for the same patient is
/// no duplicate; the same pharmacist's resend is. A store written under the
/// set before (its key without the RPPS) still refuses the resend; under
/// that set the second pharmacist is refused, as it was.
#[test]
fn two_pharmacists_may_use_the_same_fse_number() {
    let pharmacist = |rpps: &str| {
        claim(json!({
            "professional": {"rpps": rpps, "category": "pharmacist", "sector": "1",
                             "billing": {"kind": "am", "id": "752000017"}},
            "pathway": null,
            "acts": [{"code": "PH7", "quantity": 1, "product": "3400940000004",
                      "unit_price": "1.61", "charged": "1.61"}]
        }))
    };
    let (first, second) = (pharmacist(PHARMACIST), pharmacist("10002727385"));
    let is_duplicate = |kit: &Kit, fse: &Value| match validate(kit, fse) {
        Outcome::Pass(_) => false,
        Outcome::Reject(d) => codes(&d.reasons) == [("duplicate", Some("fse_id"))],
    };
    let kit = Kit::new();
    assert!(!is_duplicate(&kit, &first));
    assert!(!is_duplicate(&kit, &second));
    assert!(is_duplicate(&kit, &first));
    assert!(is_duplicate(&kit, &second));

    // A store of the set before holds the key without the RPPS.
    let kit = Kit::new();
    // The same development key: the same beneficiary key.
    let beneficiary = Kit::new().validated(&first).beneficiary;
    let legacy = keys::seen_fse(&beneficiary, "12345678-000000042");
    Kit::run(&kit.validation, |txn| {
        txn.put(legacy, b"2025-06-03".to_vec());
        Ok(())
    });
    assert!(is_duplicate(&kit, &first));

    let mut kit = Kit::new();
    kit.rules = (*Rules::published(BEFORE)
        .unwrap()
        .expect("the set before is kept"))
    .clone();
    assert!(!is_duplicate(&kit, &first));
    assert!(is_duplicate(&kit, &second));
}
