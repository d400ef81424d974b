//! EU ePrescriptions (issue 20, item 4; docs/rules.md, "EU ePrescriptions"):
//! given a French pharmacy dispensing an ePrescription issued in another
//! EU/EEA state, when the claim goes through the stages, then validation
//! checks the service date, the issuing state and the substance, and billing
//! follows the patient: an insured's line is reimbursed, an EHIC visitor's
//! goes to the card's institution, anyone else pays with no mandatory share.

use serde_json::{Value, json};

use super::*;
use crate::domain::FseInput;
use crate::stages::tests::{Kit, PHARMACIST, claim, codes, visitor_claim};

/// In service from 2026-12-01 (general.toml): a Thursday after it.
const CARE: &str = "2026-12-03";
const DOLIPRANE_1000: &str = "3400935955838";
const XANAX: &str = "3400932644551";

/// A pharmacy line dispensing `cip` (EUR 2.18, band 65 %) on a foreign
/// ePrescription of `country` naming `atc`.
fn line(cip: &str, country: &str, atc: &str) -> Value {
    json!({"code": "PH7", "quantity": 1, "product": cip, "unit_price": "2.18",
           "charged": "2.18",
           "prescription": {"date": "2026-11-28",
                            "foreign": {"country": country, "id": "DE-RX-2026-0042",
                                        "atc": atc}}})
}

fn pharmacy(care: &str, acts: Value) -> Value {
    json!({
        "care_date": care,
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "pathway": null,
        "acts": acts,
    })
}

fn insured(care: &str, acts: Value) -> Value {
    claim(pharmacy(care, acts))
}

fn visitor(acts: Value) -> Value {
    let mut v = visitor_claim(json!({}), pharmacy(CARE, acts));
    v["received_at"] = json!(format!("{CARE}T18:00:00+01:00"));
    v
}

/// When: validation runs; the reasons it refuses with (none: it passed).
fn validation_reasons(kit: &Kit, fse: &Value) -> Vec<(&'static str, Option<String>)> {
    let input: FseInput = serde_json::from_value(fse.clone()).unwrap();
    let outcome = kit.with_ctx(|ctx| {
        Kit::run(&kit.validation, |txn| {
            crate::stages::validation::validate(
                &input,
                crate::clock::simulated_receipt(&input),
                txn,
                ctx,
            )
        })
    });
    match outcome {
        Outcome::Pass(_) => Vec::new(),
        Outcome::Reject(d) => codes(&d.reasons)
            .into_iter()
            .map(|(c, f)| (c, f.map(str::to_string)))
            .collect(),
    }
}

/// When: the claim goes through every stage, which must pay it.
fn decided(kit: &Kit, fse: &Value) -> Decision {
    let routed = kit.routed(fse);
    match kit.with_ctx(|ctx| Kit::run(&kit.reimbursement, |txn| reimburse(routed, txn, ctx))) {
        Outcome::Pass(d) => {
            d.check_invariants().unwrap();
            d
        }
        Outcome::Reject(d) => panic!("rejected: {:?}", d.reasons),
    }
}

fn one(code: &'static str, field: &str) -> Vec<(&'static str, Option<String>)> {
    vec![(code, Some(field.to_string()))]
}

#[test]
fn a_foreign_eprescription_before_the_service_date_is_refused() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = insured("2026-11-30", json!([line(DOLIPRANE_1000, "DE", "N02BE01")]));
    assert_eq!(
        validation_reasons(&kit, &fse),
        one(
            "eu_eprescription_not_in_service",
            "acts[0].prescription.foreign"
        )
    );
}

#[test]
fn the_issuing_state_is_an_eu_or_eea_state_other_than_france() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    for country in ["FR", "CH", "UK", "US"] {
        let fse = insured(CARE, json!([line(DOLIPRANE_1000, country, "N02BE01")]));
        let expected = if country == "US" {
            // Not a known country code at all.
            one(
                "invalid_prescription",
                "acts[0].prescription.foreign.country",
            )
        } else {
            one(
                "eu_eprescription_country",
                "acts[0].prescription.foreign.country",
            )
        };
        assert_eq!(validation_reasons(&kit, &fse), expected, "{country}");
    }
    for (n, country) in ["DE", "NO", "GR"].into_iter().enumerate() {
        let fse = merged_id(
            &insured(CARE, json!([line(DOLIPRANE_1000, country, "N02BE01")])),
            &format!("12345678-00000005{n}"),
        );
        assert_eq!(validation_reasons(&kit, &fse), [], "{country}");
    }
}

#[test]
fn the_dispensed_product_must_be_of_the_prescribed_substance() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // XANAX is alprazolam (N05BA12), not paracetamol; a level-4 code leaves
    // the substance open; a malformed code is no ATC code.
    for (cip, atc, code, field) in [
        (
            XANAX,
            "N02BE01",
            "eu_eprescription_substance_mismatch",
            "acts[0].product",
        ),
        (
            DOLIPRANE_1000,
            "N02BE",
            "eu_eprescription_substance_mismatch",
            "acts[0].product",
        ),
        (
            DOLIPRANE_1000,
            "n02be01",
            "invalid_prescription",
            "acts[0].prescription.foreign.atc",
        ),
    ] {
        let fse = insured(CARE, json!([line(cip, "DE", atc)]));
        assert_eq!(
            validation_reasons(&kit, &fse),
            one(code, field),
            "{cip} {atc}"
        );
    }
}

#[test]
fn a_foreign_eprescription_names_no_french_prescriber() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let mut l = line(DOLIPRANE_1000, "DE", "N02BE01");
    l["prescription"]["prescriber_kind"] = json!("rpps");
    let fse = insured(CARE, json!([l]));
    assert_eq!(
        validation_reasons(&kit, &fse),
        one("invalid_prescriber", "acts[0].prescription.prescriber_kind")
    );
}

#[test]
fn a_covered_insured_is_reimbursed_as_for_a_french_prescription() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let d = decided(
        &kit,
        &insured(CARE, json!([line(DOLIPRANE_1000, "DE", "N02BE01")])),
    );
    assert_eq!(d.route, Some(Route::Domestic));
    assert_eq!(d.lines[0].rate.percent(), 65);
    assert_eq!(d.lines[0].amo + d.lines[0].franchise, Cents(142));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn an_ehic_visitors_share_goes_to_the_eu_institution() {
    let kit = Kit::new();
    let d = decided(
        &kit,
        &visitor(json!([line(DOLIPRANE_1000, "DE", "N02BE01")])),
    );
    assert_eq!(d.route, Some(Route::Eu));
    assert_eq!(d.lines[0].rate.percent(), 65);
    assert!(d.amo > Cents::ZERO);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn a_patient_neither_covered_nor_on_an_ehic_pays_with_no_mandatory_share() {
    // Given: no rights record at all, then one whose coverage ended.
    let mut kit = Kit::new();
    let fse = insured(CARE, json!([line(DOLIPRANE_1000, "DE", "N02BE01")]));
    let unknown = decided(&kit, &fse);
    kit.rights(
        json!({"coverage": [{"from": "2000-01-01", "to": "2026-06-30",
                                    "regime": "01", "fund": "751"}]}),
    );
    // Another ePrescription: the first was dispensed up to its quantity.
    let mut second = merged_id(&fse, "12345678-000000043");
    second["acts"][0]["prescription"]["foreign"]["id"] = json!("DE-RX-2026-0043");
    let ended = decided(&kit, &second);
    for d in [unknown, ended] {
        assert_eq!(d.status, Status::Paid);
        assert_eq!(d.route, Some(Route::Domestic));
        assert_eq!(
            [d.amo, d.css, d.participation, d.franchise, d.patient],
            [
                Cents::ZERO,
                Cents::ZERO,
                Cents::ZERO,
                Cents::ZERO,
                Cents(218)
            ]
        );
        assert_eq!(d.lines[0].rate, Rate::ZERO);
        assert_eq!(
            codes(&d.warnings),
            [("eu_eprescription_no_mandatory_share", None)]
        );
    }
}

#[test]
fn an_uncovered_claim_with_a_line_not_on_a_foreign_eprescription_is_refused() {
    let kit = Kit::new();
    let french = json!({"code": "PH7", "quantity": 1, "product": DOLIPRANE_1000,
                        "unit_price": "2.18", "charged": "2.18"});
    let fse = insured(CARE, json!([line(DOLIPRANE_1000, "DE", "N02BE01"), french]));
    let validated = kit.validated(&fse);
    let outcome = kit.with_ctx(|ctx| {
        Kit::run(&kit.entitlement, |txn| {
            crate::stages::entitlement::entitle(validated, txn, ctx)
        })
    });
    match outcome {
        Outcome::Pass(_) => panic!("an uncovered claim passed entitlement"),
        Outcome::Reject(d) => {
            assert_eq!(codes(&d.reasons), [("unknown_beneficiary", None)]);
        }
    }
}

fn merged_id(fse: &Value, id: &str) -> Value {
    let mut v = fse.clone();
    v["fse_id"] = json!(id);
    v
}
