//! Billing identifiers (issue 20, item 5): given an executant who bills under
//! an AM number or a FINESS, when validation runs, then a well-formed number
//! of a fitting category passes and is kept, the RPPS stays the signer, and a
//! malformed number or an AM number of another category is refused with its
//! code.

use serde_json::{Value, json};

use crate::domain::{Billing, FseInput};
use crate::stages::tests::{GP, Kit, claim, codes};
use crate::stages::{Outcome, Validated};

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
