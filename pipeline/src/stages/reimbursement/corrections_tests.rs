//! The corrections of 2026-12-06 (issue 20, item 5; docs/rules.md,
//! "Corrections of 2026-12-06"): given a claim, when the current rules decide
//! it, then the corrected rule applies; and when the rule set in force before
//! them decides it, then it decides as it did (runs recorded under it replay
//! identically). Each test names its source.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::stages::tests::{GP, Kit, OTHER_DOCTOR, PHARMACIST, claim, codes};

/// The rule set in force before the corrections (rules/history/sets.toml).
const BEFORE: &str = "sha256:98f62d4c327e46e8c3dec4ea2321f500c3ef2f2c9d9405b8d3b74cb5fee677de";

fn before() -> Arc<Rules> {
    Rules::published(BEFORE)
        .unwrap()
        .expect("the set before the corrections is kept")
}

/// A kit with rights whose declared GP is `declared_gp`, under `rules`.
fn kit(rules: Option<Arc<Rules>>, declared_gp: Value) -> Kit {
    let mut kit = Kit::new();
    if let Some(rules) = rules {
        kit.rules = (*rules).clone();
    }
    kit.rights(json!({"declared_gp": declared_gp}));
    kit
}

fn decide(kit: &Kit, fse: &Value) -> Decision {
    let routed = kit.routed(fse);
    match kit.with_ctx(|ctx| Kit::run(&kit.reimbursement, |txn| reimburse(routed, txn, ctx))) {
        Outcome::Pass(d) => {
            d.check_invariants().unwrap();
            d
        }
        Outcome::Reject(d) => panic!("rejected: {:?}", d.reasons),
    }
}

/// The rate of the first line, and whether a pathway warning explains it.
fn rate_and_warning(d: &Decision) -> (u8, bool) {
    let warned = codes(&d.warnings).contains(&("pathway_not_honoured", Some("pathway")));
    (d.lines[0].rate.percent(), warned)
}

fn specialist_cs(pathway: Option<&str>) -> Value {
    let mut fse = claim(json!({
        "professional": {"rpps": OTHER_DOCTOR, "category": "specialist", "sector": "1"},
        "acts": [{"code": "CS", "charged": "31.50"}]
    }));
    match pathway {
        Some(p) => fse["pathway"] = json!(p),
        None => {
            fse.as_object_mut().unwrap().remove("pathway");
        }
    }
    fse
}

/// domain.md 1.3, PRS_PDS_QCP 3 ("patient referred by MT") and 24 ("out of
/// coordination without MT"); 3.2: outside the pathway when no MT is
/// declared: 30 %.
#[test]
fn a_referral_without_a_declared_gp_is_outside_the_pathway() {
    let fse = specialist_cs(Some("referred"));
    let d = decide(&kit(None, Value::Null), &fse);
    assert_eq!(rate_and_warning(&d), (30, true));
    // Under the set before the corrections: 70 %, as it was recorded.
    let d = decide(&kit(Some(before()), Value::Null), &fse);
    assert_eq!(rate_and_warning(&d), (70, false));
}

/// domain.md 1.3, PRS_PDS_QCP 4 ("direct-access specialty with MT
/// declared"): direct access also needs a declared GP.
#[test]
fn direct_access_without_a_declared_gp_is_outside_the_pathway() {
    let fse = specialist_cs(Some("direct_access"));
    let d = decide(&kit(None, Value::Null), &fse);
    assert_eq!(rate_and_warning(&d), (30, true));
    let d = decide(&kit(Some(before()), Value::Null), &fse);
    assert_eq!(rate_and_warning(&d), (70, false));
    // With a declared GP, a specialist's direct access is honoured.
    let d = decide(&kit(None, json!(GP)), &fse);
    assert_eq!(rate_and_warning(&d), (70, false));
}

/// domain.md 1.3, PRS_PDS_QCP 26 ("non-direct-access specialty"); 3.2: direct
/// access is a specialists' exception (gynaecology, ophthalmology,
/// psychiatry, stomatology), never a GP's.
#[test]
fn a_gp_cannot_claim_direct_access() {
    let gp = claim(json!({
        "professional": {"rpps": OTHER_DOCTOR, "category": "gp", "sector": "1"},
        "pathway": "direct_access"
    }));
    let d = decide(&kit(None, json!(GP)), &gp);
    assert_eq!(rate_and_warning(&d), (30, true));
    let d = decide(&kit(Some(before()), json!(GP)), &gp);
    assert_eq!(rate_and_warning(&d), (70, false));
}

/// domain.md 1.3, PRS_PDS_QCP 22 ("not filled, executant is not the MT"): a
/// doctor's blank pathway is no referral.
#[test]
fn a_doctors_blank_pathway_is_in_it_only_for_the_declared_gp() {
    let fse = specialist_cs(None);
    let d = decide(&kit(None, json!(GP)), &fse);
    assert_eq!(rate_and_warning(&d), (30, true));
    let d = decide(&kit(Some(before()), json!(GP)), &fse);
    assert_eq!(rate_and_warning(&d), (70, false), "read as referred before");
    // The declared GP's own blank claim is in the pathway.
    let mut own = claim(json!({}));
    own.as_object_mut().unwrap().remove("pathway");
    let d = decide(&kit(None, json!(GP)), &own);
    assert_eq!(rate_and_warning(&d), (70, false));
}

/// A pharmacy fills no pathway and is never penalised (domain.md 3.2: the
/// penalty concerns doctors' fees).
#[test]
fn a_pharmacys_blank_pathway_is_not_penalised() {
    let mut fse = claim(json!({
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "acts": [{"code": "PH7", "quantity": 1, "product": "3400935955838",
                  "unit_price": "10.00", "charged": "10.00"}]
    }));
    fse.as_object_mut().unwrap().remove("pathway");
    let d = decide(&kit(None, Value::Null), &fse);
    assert_eq!(rate_and_warning(&d), (65, false));
}

fn radiologist(sector: &str, pathway: &str) -> Value {
    claim(json!({
        "professional": {"rpps": OTHER_DOCTOR, "category": "radiology", "sector": sector},
        "pathway": pathway,
        "acts": [{"code": "ZBQK002", "charged": "21.28"}]
    }))
}

/// domain.md 3.2 ("doctors, outside parcours: 30 %") and 3.8 (sectors): a
/// radiologist is a doctor (a medical specialty, RPPS profession "médecin").
#[test]
fn a_radiologist_outside_the_pathway_is_penalised() {
    let fse = radiologist("1", "outside");
    let d = decide(&kit(None, json!(GP)), &fse);
    assert_eq!(d.lines[0].rate.percent(), 30);
    let d = decide(&kit(Some(before()), json!(GP)), &fse);
    assert_eq!(d.lines[0].rate.percent(), 70);
}

/// domain.md 3.8: a non-conventioned (sector 3) doctor is reimbursed on the
/// tarif d'autorité; the table has none for ZBQK002, hence a zero base and
/// the warning that says so.
#[test]
fn a_sector_3_radiologist_is_reimbursed_on_the_authority_base() {
    let fse = radiologist("3", "referred");
    let d = decide(&kit(None, json!(GP)), &fse);
    assert_eq!(d.lines[0].base, Cents::ZERO);
    assert!(codes(&d.warnings).contains(&("no_authority_tariff", None)));
    let d = decide(&kit(Some(before()), json!(GP)), &fse);
    assert_eq!(d.lines[0].base.to_string(), "21.28");
}

/// domain.md 3.3 (the PF is due on each doctor's act) and 3.5 (the flat fee
/// replaces the ticket modérateur of the costly acts; ameli's E14: no PF on
/// the photocoagulation): a consultation billed with a costly act still
/// bears its participation.
#[test]
fn the_participation_follows_the_lines_not_the_flat_fee_claim() {
    let fse = claim(json!({
        "professional": {"rpps": OTHER_DOCTOR, "category": "specialist", "sector": "1"},
        "pathway": "referred",
        "acts": [{"code": "CS", "charged": "31.50"}, {"code": "BGLA001", "charged": "125.40"}]
    }));
    let d = decide(&kit(None, json!(GP)), &fse);
    assert_eq!(d.flat_fee.to_string(), "24.00");
    let pf: Vec<String> = d
        .lines
        .iter()
        .map(|l| l.participation.to_string())
        .collect();
    assert_eq!(pf, ["2.00", "0.00"]);
    // 22.05 - 2.00 on the consultation, 125.40 - 24.00 on the photocoagulation.
    assert_eq!(d.amo.to_string(), "121.45");
    // Before: the flat fee spared the whole claim.
    let d = decide(&kit(Some(before()), json!(GP)), &fse);
    assert_eq!(d.participation, Cents::ZERO);
    assert_eq!(d.amo.to_string(), "123.45");
}

/// GIE SESAM-Vitale specification "IP - Acquérir les informations des
/// prestations": QZFA036 is a skin lesion excision at EUR 28.80, below the
/// flat fee's threshold; before, the table priced it at EUR 205 (flat fee).
#[test]
fn qzfa036_is_a_skin_lesion_excision_at_28_80() {
    let fse = claim(json!({
        "professional": {"rpps": OTHER_DOCTOR, "category": "specialist", "sector": "1"},
        "pathway": "referred",
        "acts": [{"code": "QZFA036", "charged": "28.80"}]
    }));
    let d = decide(&kit(None, json!(GP)), &fse);
    assert_eq!(d.lines[0].base.to_string(), "28.80");
    assert_eq!(d.flat_fee, Cents::ZERO);
    assert_eq!(d.amo.to_string(), "18.16"); // 20.16 less the PF of 2.00
}

/// The rule set before the product list (issue 20, item 2), kept so that its
/// runs replay as recorded.
const BEFORE_PRODUCTS: &str =
    "sha256:4c2af217d4a8362bb453e02c780ddaa82467cdff173e556a75741b1da355cc17";

fn pharmacy_line(cip: &str, unit_price: &str) -> Value {
    let mut fse = claim(json!({
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "acts": [{"code": "PH7", "quantity": 1, "product": cip,
                  "unit_price": unit_price, "charged": unit_price}]
    }));
    fse.as_object_mut().unwrap().remove("pathway");
    fse
}

/// docs/rules.md, "acts.toml — products": a line is paid on the listed base
/// (DOLIPRANE 1000 mg, BDPM CIP13, EUR 2.18 UNCONFIRMED), never on the
/// declared price; under the set before the list, on the declared price, as
/// its runs recorded.
#[test]
fn a_pharmacy_line_is_paid_on_the_listed_base_not_the_declared_price() {
    let fse = pharmacy_line("3400935955838", "10.00");
    let d = decide(&kit(None, Value::Null), &fse);
    assert_eq!(d.lines[0].base, Cents(218));
    let before = Rules::published(BEFORE_PRODUCTS).unwrap().expect("kept");
    let d = decide(&kit(Some(before), Value::Null), &fse);
    assert_eq!(d.lines[0].base, Cents(1000));
    assert_eq!(d.lines[0].tariff, "PH7@declared");
}

/// An unlisted CIP13 is rejected under the list; the set before paid it.
#[test]
fn an_unlisted_cip13_is_rejected_only_under_the_list() {
    let fse = pharmacy_line("3400949497294", "3.00");
    let kit_now = kit(None, Value::Null);
    let routed = kit_now.routed(&fse);
    let outcome =
        kit_now.with_ctx(|ctx| Kit::run(&kit_now.reimbursement, |txn| reimburse(routed, txn, ctx)));
    let Outcome::Reject(d) = outcome else {
        panic!("an unlisted CIP13 was paid")
    };
    assert_eq!(
        codes(&d.reasons),
        vec![("unknown_product", Some("acts[0].product"))]
    );
    let before = Rules::published(BEFORE_PRODUCTS).unwrap().expect("kept");
    let d = decide(&kit(Some(before), Value::Null), &fse);
    assert_eq!(d.lines[0].base, Cents(300));
}
