//! Golden tests: the worked examples of domain.md §3.10, to the cent, through
//! the same in-process chain `clearing adjudicate` runs.
//!
//! E6 is not here: its figures (a régime local supplement equal to the whole
//! ticket modérateur, 100 %) contradict E4's 90 % — docs/rules.md explains.

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::domain::{Decision, Route, Status};
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{AmcClaim, ClaimRefRec, FseDecided, TiersPayantRec};
use clearing_pipeline::outbound::{Emit, blank_header, settle};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::TrustUnsigned;
use clearing_pipeline::rules::Rules;
use serde_json::{Value, json};

const GP: &str = "10000123454";
const SPECIALIST: &str = "10101234564";
const DENTIST: &str = "10000000009";
const NIR: &str = "185057800604830";

fn adjudicator(rights: Value) -> Adjudicator {
    let mut a = Adjudicator::new(
        Rules::embedded().unwrap(),
        PseudonymKey::development(),
        Box::new(TrustUnsigned),
    );
    a.load_rights_line(&rights.to_string()).unwrap();
    a
}

fn rights(extra: Value) -> Value {
    let mut r = json!({
        "nir": NIR, "birth_date": "1985-05-12", "rank": 1,
        "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
        "ald": [], "css": [], "ame": [], "maternity": [],
        "local_regime": null, "declared_gp": GP
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn fse(care_date: &str, professional: Value, pathway: &str, acts: Value) -> Value {
    json!({
        "fse_id": "12345678-000000042",
        "received_at": format!("{care_date}T18:00:00+01:00"),
        "care_date": care_date,
        "professional": professional,
        "beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 1},
        "pathway": pathway,
        "tiers_payant": {"amo": false, "amc": false},
        "acts": acts,
    })
}

fn gp(sector: &str, optam: bool) -> Value {
    json!({"rpps": GP, "category": "gp", "sector": sector, "optam": optam})
}

fn decide(a: &mut Adjudicator, claim: Value) -> Decision {
    let decision = a.decide_line(&claim.to_string()).unwrap();
    assert_eq!(decision.status, Status::Paid, "{decision:#?}");
    decision.check_invariants().unwrap();
    decision
}

/// Asserts the money of a decision: (amo, css, participation, patient).
fn assert_money(d: &Decision, amo: &str, css: &str, participation: &str, patient: &str) {
    let got = (
        d.amo.to_string(),
        d.css.to_string(),
        d.participation.to_string(),
        d.patient.to_string(),
    );
    assert_eq!(
        got,
        (amo.into(), css.into(), participation.into(), patient.into()),
        "(amo, css, participation, patient) of {d:#?}"
    );
}

#[test]
fn e1_adult_gp_with_depassement_2018() {
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        fse(
            "2018-04-03",
            gp("2", true),
            "mt",
            json!([{"code": "G", "charged": "27.00"}]),
        ),
    );
    assert_eq!(d.lines[0].base.to_string(), "25.00");
    assert_eq!(d.lines[0].rate.percent(), 70);
    assert_money(&d, "16.50", "0.00", "1.00", "10.50");
    assert_eq!(d.paid_to_insured.to_string(), "16.50");
}

#[test]
fn e2_ald_related_consultation_2019_still_bears_participation() {
    let mut a = adjudicator(rights(json!({"ald": [{"from": "2018-01-01", "to": null}]})));
    let d = decide(
        &mut a,
        fse(
            "2019-05-05",
            gp("1", false),
            "mt",
            json!([{"code": "G", "charged": "25.00", "ald_related": true}]),
        ),
    );
    assert_eq!(d.lines[0].rate.percent(), 100);
    assert_money(&d, "24.00", "0.00", "1.00", "1.00");
}

#[test]
fn e3_cmu_c_ticket_paid_by_css_2017() {
    let mut a = adjudicator(rights(json!({"css": [{"from": "2017-01-01", "to": null}]})));
    let d = decide(
        &mut a,
        fse(
            "2017-06-12",
            gp("1", false),
            "mt",
            json!([{"code": "G", "charged": "25.00"}]),
        ),
    );
    assert_money(&d, "17.50", "7.50", "0.00", "0.00");
}

#[test]
fn e4_alsace_moselle_with_depassement_2018() {
    let mut a = adjudicator(rights(json!({"local_regime": "alsace-moselle"})));
    let d = decide(
        &mut a,
        fse(
            "2018-03-04",
            gp("2", true),
            "mt",
            json!([{"code": "G", "charged": "30.00"}]),
        ),
    );
    assert_eq!(d.lines[0].rate.percent(), 90);
    assert_money(&d, "21.50", "0.00", "1.00", "8.50");
}

#[test]
fn e5_gp_with_sunday_complement_and_coordination_majoration_2019() {
    // domain.md labels the 19.06 complement "night"; 19.06 is the Sunday and
    // holiday majoration (F), which is how the tables carry it.
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        fse(
            "2019-04-03",
            gp("1", false),
            "mt",
            json!([
                {"code": "G", "charged": "44.06", "complement": "sunday"},
                {"code": "MCG", "charged": "3.00"}
            ]),
        ),
    );
    // 17.50 + 13.34 + 2.10 = 32.94 gross, minus one participation.
    assert_eq!(d.lines[0].base.to_string(), "44.06");
    assert_eq!(d.lines[0].amo.to_string(), "29.84");
    assert_eq!(d.lines[1].amo.to_string(), "2.10");
    assert_money(&d, "31.94", "0.00", "1.00", "15.12");
}

#[test]
fn e7_optam_specialist_in_pathway_2019() {
    let mut a = adjudicator(rights(json!({})));
    let specialist =
        json!({"rpps": SPECIALIST, "category": "specialist", "sector": "2", "optam": true});
    let d = decide(
        &mut a,
        fse(
            "2019-09-10",
            specialist,
            "referred",
            json!([{"code": "CS", "charged": "45.00"}]),
        ),
    );
    assert_eq!(d.lines[0].base.to_string(), "30.00");
    assert_money(&d, "20.00", "0.00", "1.00", "25.00");
}

#[test]
fn e8_gp_declared_consultation_from_22_december_2024() {
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        fse(
            "2025-01-20",
            gp("1", false),
            "mt",
            json!([{"code": "G", "charged": "30.00"}]),
        ),
    );
    assert_money(&d, "19.00", "0.00", "2.00", "11.00");
    assert_eq!(d.paid_to_insured.to_string(), "19.00");
    assert_eq!(d.lines[0].tariff, "G@2024-12-22");
}

#[test]
fn e9_gp_at_26_50_either_side_of_the_2024_participation_change() {
    let mut a = adjudicator(rights(json!({})));
    let after = decide(
        &mut a,
        fse(
            "2024-06-10",
            gp("1", false),
            "mt",
            json!([{"code": "G", "charged": "26.50"}]),
        ),
    );
    assert_money(&after, "16.55", "0.00", "2.00", "9.95");
    let mut claim = fse(
        "2024-03-11",
        gp("1", false),
        "mt",
        json!([{"code": "G", "charged": "26.50"}]),
    );
    claim["fse_id"] = json!("12345678-000000043");
    let before = decide(&mut a, claim);
    assert_money(&before, "17.55", "0.00", "1.00", "8.95");
}

#[test]
fn e10_dentist_consultation_either_side_of_15_october_2023() {
    let mut a = adjudicator(rights(json!({})));
    let dentist = json!({"rpps": DENTIST, "category": "dentist", "sector": "1", "optam": false});
    let before = decide(
        &mut a,
        fse(
            "2023-10-14",
            dentist.clone(),
            "direct_access",
            json!([{"code": "C", "charged": "23.00"}]),
        ),
    );
    assert_money(&before, "16.10", "0.00", "0.00", "6.90");
    let mut claim = fse(
        "2023-10-15",
        dentist,
        "direct_access",
        json!([{"code": "C", "charged": "23.00"}]),
    );
    claim["fse_id"] = json!("12345678-000000043");
    let after = decide(&mut a, claim);
    assert_money(&after, "13.80", "0.00", "0.00", "9.20");
}

#[test]
fn e11_gp_at_25_between_2017_and_2023() {
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        fse(
            "2020-02-03",
            gp("1", false),
            "mt",
            json!([{"code": "G", "charged": "25.00"}]),
        ),
    );
    assert_money(&d, "16.50", "0.00", "1.00", "8.50");
}

#[test]
fn e12_sector_2_non_optam_base_23() {
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        fse(
            "2019-11-04",
            gp("2", false),
            "mt",
            json!([{"code": "G", "charged": "40.00"}]),
        ),
    );
    assert_eq!(d.lines[0].base.to_string(), "23.00");
    assert_money(&d, "15.10", "0.00", "1.00", "24.90");
}

#[test]
fn e13_gp_outside_pathway_after_31_january_2009() {
    let mut a = adjudicator(rights(json!({"declared_gp": null})));
    let d = decide(
        &mut a,
        fse(
            "2009-03-02",
            gp("1", false),
            "outside",
            json!([{"code": "C", "charged": "22.00"}]),
        ),
    );
    assert_eq!(d.lines[0].rate.percent(), 30);
    assert_money(&d, "5.60", "0.00", "1.00", "16.40");
}

#[test]
fn e14_photocoagulation_flat_fee_replaces_the_ticket() {
    let mut a = adjudicator(rights(json!({})));
    let specialist =
        json!({"rpps": SPECIALIST, "category": "specialist", "sector": "1", "optam": false});
    let d = decide(
        &mut a,
        fse(
            "2019-06-01",
            specialist,
            "referred",
            json!([{"code": "BGLA001", "charged": "125.40"}]),
        ),
    );
    assert_eq!(d.flat_fee.to_string(), "24.00");
    assert_money(&d, "101.40", "0.00", "0.00", "24.00");
}

// --- The product list (issue 20, item 2; docs/rules.md, "Products") ---------

const PHARMACIST: &str = "10002727377";

fn pharmacy(care_date: &str, acts: Value) -> Value {
    let mut claim = fse(
        care_date,
        json!({"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"}),
        "referred",
        acts,
    );
    claim.as_object_mut().unwrap().remove("pathway");
    claim
}

fn reason_codes(d: &Decision) -> Vec<(String, Option<usize>)> {
    (d.reasons.iter().chain(&d.warnings))
        .map(|r| (r.code.as_str().to_string(), r.line))
        .collect()
}

/// A prescribed medicine priced from the list: DOLIPRANE 1000 mg box of 8
/// (CIP13 3400935955838, BDPM; listed base EUR 2.18, UNCONFIRMED) declared at
/// EUR 2.50 is paid on 2.18 a box, never on the declared price; 65 % band
/// (domain.md 3.2), franchise EUR 1 a box since 31 Mar 2024 (3.4).
#[test]
fn a_pharmacy_line_is_paid_on_the_listed_base() {
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        pharmacy(
            "2025-02-04",
            json!([{"code": "PH7", "quantity": 2, "product": "3400935955838",
                    "unit_price": "2.50", "charged": "5.00"}]),
        ),
    );
    assert_eq!(d.lines[0].base.to_string(), "4.36");
    assert_eq!(d.lines[0].rate.percent(), 65);
    assert_eq!(d.lines[0].tariff, "3400935955838@2015-01-01");
    // 4.36 x 65 % = 2.83, less two box franchises.
    assert_eq!(d.franchise.to_string(), "2.00");
    assert_money(&d, "0.83", "0.00", "0.00", "4.17");
}

/// A refused generic: XANAX 0.50 mg (princeps, CIP13 3400932644551) dispensed
/// without a justified "non substituable" mention is reimbursed, since 1 Jan
/// 2020 (LFSS 2019 art. 66), on its group's dearest generic (EUR 1.61, a
/// synthetic generic of the list), with the warning `generic_refused`; the
/// same box in 2019 was reimbursed on its own base (EUR 2.39).
#[test]
fn a_refused_generic_is_reimbursed_on_the_dearest_generic_from_2020() {
    let xanax = json!([{"code": "PH7", "quantity": 1, "product": "3400932644551",
                        "unit_price": "2.39", "charged": "2.39"}]);
    let mut a = adjudicator(rights(json!({})));
    let d = decide(&mut a, pharmacy("2025-02-04", xanax.clone()));
    assert_eq!(d.lines[0].base.to_string(), "1.61");
    assert_eq!(reason_codes(&d), vec![("generic_refused".into(), Some(1))]);
    // 1.61 x 65 % = 1.05 (1.0465 rounded), less a EUR 1 franchise.
    assert_money(&d, "0.05", "0.00", "0.00", "2.34");

    let mut a = adjudicator(rights(json!({})));
    let d = decide(&mut a, pharmacy("2019-06-04", xanax));
    assert_eq!(d.lines[0].base.to_string(), "2.39");
    assert!(reason_codes(&d).is_empty());
    // 2.39 x 65 % = 1.55, less a EUR 0.50 franchise (2008 amounts).
    assert_money(&d, "1.05", "0.00", "0.00", "1.34");
}

/// Tiers payant contre génériques (art. L.162-16-7 CSS, national agreement
/// of 2012; applied from 1 Jul 2012, UNCONFIRMED): the XANAX box above, under
/// tiers payant and refused against its generic, is paid as without tiers
/// payant: to the insured, the franchise taken from the payment
/// (`tiers_payant_withdrawn`). In 2019 the box keeps its own base but loses
/// tiers payant all the same. The set before (`sha256:96902476…`) paid the
/// pharmacist and deferred the franchise.
#[test]
fn a_refused_generic_under_tiers_payant_is_paid_to_the_insured() {
    let xanax = json!([{"code": "PH7", "quantity": 1, "product": "3400932644551",
                        "unit_price": "2.39", "charged": "2.39"}]);
    let under_tiers_payant = |care: &str| {
        let mut claim = pharmacy(care, xanax.clone());
        claim["tiers_payant"] = json!({"amo": true, "amc": false});
        claim
    };
    let payees = |d: &Decision| {
        [d.paid_to_insured, d.paid_to_professional, d.deferred].map(|c| c.to_string())
    };
    let mut a = adjudicator(rights(json!({})));
    let d = decide(&mut a, under_tiers_payant("2025-02-04"));
    assert_eq!(
        reason_codes(&d),
        vec![
            ("generic_refused".into(), Some(1)),
            ("tiers_payant_withdrawn".into(), Some(1))
        ]
    );
    // 1.61 x 65 % = 1.05, less the EUR 1 franchise: 0.05 to the insured.
    assert_money(&d, "0.05", "0.00", "0.00", "2.34");
    assert_eq!(payees(&d), ["0.05", "0.00", "0.00"]);

    let mut a = adjudicator(rights(json!({})));
    let d = decide(&mut a, under_tiers_payant("2019-06-04"));
    assert_eq!(
        reason_codes(&d),
        vec![("tiers_payant_withdrawn".into(), Some(1))]
    );
    // 2.39 x 65 % = 1.55, less EUR 0.50: 1.05 to the insured.
    assert_eq!(payees(&d), ["1.05", "0.00", "0.00"]);

    let before =
        Rules::published("sha256:969024769ca7d52542ff4009f818265c41c350260769a30cfca26e95c7107b37")
            .unwrap()
            .expect("the set before tiers payant contre generiques is kept");
    let mut a = Adjudicator::new(
        (*before).clone(),
        PseudonymKey::development(),
        Box::new(TrustUnsigned),
    );
    a.load_rights_line(&rights(json!({})).to_string()).unwrap();
    let d = decide(&mut a, under_tiers_payant("2025-02-04"));
    assert_eq!(reason_codes(&d), vec![("generic_refused".into(), Some(1))]);
    // The pharmacist is paid the whole 1.05; the EUR 1 franchise deferred.
    assert_eq!(payees(&d), ["0.00", "1.05", "1.00"]);
}

/// The set before tiers payant was withdrawn from the AMC part too, and
/// before the rule applied ahead of the product list (rules/history/sets.toml).
const BEFORE_WITHDRAWS_AMC: &str =
    "sha256:baba004200863a94fc45436e999c5044261482a63516e77d9514bfdf28da6033";

/// The complementary claims settlement sends for a paid decision of an FSE
/// under tiers payant on both parts, its beneficiary insured by AMC000042.
fn amc_claims(d: &Decision, received_on: &str, rules: &Rules) -> Vec<AmcClaim> {
    let decided = FseDecided {
        header: blank_header(),
        decision: decision_rec(d),
        claim: Some(ClaimRefRec {
            rpps: PHARMACIST.into(),
            received_on: received_on.parse().unwrap(),
            tiers_payant: TiersPayantRec {
                amo: true,
                amc: true,
            },
            amc: Some("AMC000042".into()),
            eu_country: None,
            eu_institution_id: None,
            payee: None,
        }),
    };
    settle(&decided, rules)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Emit::Amc(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Tiers payant contre génériques withdraws tiers payant as a whole (art.
/// L.162-16-7 CSS: the patient pays the pharmacist): the XANAX box refused
/// against its generic, under tiers payant on the AMO and AMC parts, sends
/// no complementary claim; the insured's complementary reimbursement is
/// outside tiers payant. The rule applies from 1 Jul 2012, before the list:
/// in 2013 the box keeps its declared price and still loses tiers payant.
/// The set before withdrew the AMO part only, from the list on: its runs
/// settle as they did, the AMC's 1.34 forwarded.
#[test]
fn a_withdrawn_tiers_payant_sends_nothing_to_the_amc() {
    let xanax = json!([{"code": "PH7", "quantity": 1, "product": "3400932644551",
                        "unit_price": "2.39", "charged": "2.39"}]);
    let under_tiers_payant = |care: &str| {
        let mut claim = pharmacy(care, xanax.clone());
        claim["tiers_payant"] = json!({"amo": true, "amc": true});
        claim["fse_id"] = json!(format!("12345678-0{}", care.replace('-', "")));
        claim
    };
    let before = Rules::published(BEFORE_WITHDRAWS_AMC)
        .unwrap()
        .expect("the set before is kept");
    let mut old = Adjudicator::new(
        (*before).clone(),
        PseudonymKey::development(),
        Box::new(TrustUnsigned),
    );
    old.load_rights_line(&rights(json!({})).to_string())
        .unwrap();
    let mut a = adjudicator(rights(json!({})));

    let d = decide(&mut a, under_tiers_payant("2025-02-04"));
    assert_eq!(
        reason_codes(&d),
        vec![
            ("generic_refused".into(), Some(1)),
            ("tiers_payant_withdrawn".into(), Some(1))
        ]
    );
    assert_eq!(amc_claims(&d, "2025-02-04", a.rules()), vec![]);
    let was = decide(&mut old, under_tiers_payant("2025-02-04"));
    assert_eq!(reason_codes(&was), reason_codes(&d));
    // Ticket 1.61 − 1.05 = 0.56, overrun 2.39 − 1.61 = 0.78.
    let forwarded = amc_claims(&was, "2025-02-04", &before);
    assert_eq!(
        forwarded
            .iter()
            .map(|c| (c.ticket_cents, c.depassement_cents, c.amount_cents))
            .collect::<Vec<_>>(),
        vec![(56, 78, 134)]
    );

    // Before the list: the declared 2.39, tiers payant withdrawn all the same.
    let d = decide(&mut a, under_tiers_payant("2013-03-05"));
    assert_eq!(
        reason_codes(&d),
        vec![("tiers_payant_withdrawn".into(), Some(1))]
    );
    assert_eq!(d.lines[0].base.to_string(), "2.39");
    assert_eq!(
        [d.paid_to_insured, d.paid_to_professional, d.deferred].map(|c| c.to_string()),
        ["1.05", "0.00", "0.00"]
    );
    assert_eq!(amc_claims(&d, "2013-03-05", a.rules()), vec![]);
    // The set before waited for the list: the pharmacist and the AMC paid.
    let was = decide(&mut old, under_tiers_payant("2013-03-05"));
    assert!(reason_codes(&was).is_empty());
    assert_eq!(amc_claims(&was, "2013-03-05", &before).len(), 1);
}

/// An unlisted CIP13 (3400949497294: a real BDPM presentation, not in our
/// list) is a coded rejection, and so is a prestation code whose rate is not
/// the product's band (DOLIPRANE is 65 %, PH4 is 30 %).
#[test]
fn an_unlisted_product_or_a_wrong_band_is_rejected() {
    for (cip, code, reason) in [
        ("3400949497294", "PH7", "unknown_product"),
        ("3400935955838", "PH4", "product_band_mismatch"),
    ] {
        let mut a = adjudicator(rights(json!({})));
        let claim = pharmacy(
            "2025-02-04",
            json!([{"code": code, "quantity": 1, "product": cip,
                    "unit_price": "2.18", "charged": "2.18"}]),
        );
        let d = a.decide_line(&claim.to_string()).unwrap();
        assert_eq!(d.status, Status::Rejected, "{d:#?}");
        assert_eq!(reason_codes(&d), vec![(reason.to_string(), Some(1))]);
        assert_eq!(d.reasons[0].field.as_deref(), Some("acts[0].product"));
    }
}

// --- Prescriptions (issue 20, items 1 and 3; docs/rules.md, "Prescriptions") --

fn prescribed(cip: &str, boxes: u32, unit: &str, prescription: Value) -> Value {
    let charged = format!("{:.2}", unit.parse::<f64>().unwrap() * f64::from(boxes));
    json!([{"code": "PH7", "quantity": boxes, "product": cip, "unit_price": unit,
            "charged": charged, "prescription": prescription}])
}

fn numbered(mut claim: Value, invoice: u32) -> Value {
    claim["fse_id"] = json!(format!("12345678-{invoice:09}"));
    claim
}

fn rejected_with(a: &mut Adjudicator, claim: Value) -> Vec<(String, Option<usize>)> {
    let d = a.decide_line(&claim.to_string()).unwrap();
    assert_eq!(d.status, Status::Rejected, "{d:#?}");
    d.reasons
        .iter()
        .map(|r| (r.code.as_str().to_string(), r.line))
        .collect()
}

/// A prescribed pharmacy line priced from the list: the GP's prescription
/// (RPPS, Luhn-valid) of 20 Jan 2025 for 2 boxes of DOLIPRANE 1000 mg,
/// dispensed on 4 Feb: paid on the listed EUR 2.18 a box.
#[test]
fn a_prescribed_pharmacy_line_is_priced_from_the_list() {
    let mut a = adjudicator(rights(json!({})));
    let rx = json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2025-01-20",
                    "number": "ON000000000001", "quantity": 2});
    let d = decide(
        &mut a,
        pharmacy("2025-02-04", prescribed("3400935955838", 2, "2.18", rx)),
    );
    assert_eq!(d.lines[0].base.to_string(), "4.36");
    assert_money(&d, "0.83", "0.00", "0.00", "3.53");
}

/// The generics rule with a justified "non substituable" mention (MTE): the
/// princeps keeps its own base (EUR 2.39), no warning; without it, the
/// dearest generic's (EUR 1.61; golden test above).
#[test]
fn a_justified_non_substitution_keeps_the_princeps_base() {
    let mut a = adjudicator(rights(json!({})));
    let rx = json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2025-01-20",
                    "non_substitution": "mte"});
    let d = decide(
        &mut a,
        pharmacy("2025-02-04", prescribed("3400932644551", 1, "2.39", rx)),
    );
    assert_eq!(d.lines[0].base.to_string(), "2.39");
    assert!(reason_codes(&d).is_empty(), "{:?}", reason_codes(&d));
}

/// Partial dispensing: a prescription of 3 boxes (a hospital's, by FINESS
/// 750000010), 2 dispensed on 4 Feb, the remaining 1 on 20 Feb; a third
/// dispensing on 1 Mar is refused (`prescription_exhausted`), and so is the
/// same box sent again by another pharmacy invoice.
#[test]
fn a_partial_dispensing_its_remainder_and_a_double_dispensing() {
    let mut a = adjudicator(rights(json!({})));
    let rx = json!({"prescriber_kind": "finess", "prescriber": "750000010",
                    "date": "2025-02-01", "quantity": 3});
    let first = decide(
        &mut a,
        numbered(
            pharmacy(
                "2025-02-04",
                prescribed("3400935955838", 2, "2.18", rx.clone()),
            ),
            1,
        ),
    );
    assert_eq!(first.lines[0].base.to_string(), "4.36");
    let remainder = decide(
        &mut a,
        numbered(
            pharmacy(
                "2025-02-20",
                prescribed("3400935955838", 1, "2.18", rx.clone()),
            ),
            2,
        ),
    );
    assert_eq!(remainder.lines[0].base.to_string(), "2.18");
    let again = numbered(
        pharmacy("2025-03-01", prescribed("3400935955838", 1, "2.18", rx)),
        3,
    );
    assert_eq!(
        rejected_with(&mut a, again),
        vec![("prescription_exhausted".to_string(), Some(1))]
    );
}

/// A renewed prescription (docs/rules.md, "Prescriptions", renewals): the
/// GP's "QSP 1 mois, à renouveler 5 fois" of 10 Dec 2026 for DOLIPRANE
/// 1000 mg, one box a month from 12 Dec; the dispensing of 12 Apr 2027, four
/// months on and past the 3 months of a first dispensing (art. R.5132-22
/// CSP), is paid on the listed EUR 2.18 like the first: 65 % = 1.42, less
/// the EUR 1 franchise on the box.
#[test]
fn a_renewed_prescriptions_month_four_dispensing_is_paid() {
    let mut a = adjudicator(rights(json!({})));
    let rx = json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2026-12-10",
                    "number": "ON000000000078", "renewals": 5});
    for (invoice, care) in [
        (1, "2026-12-12"),
        (2, "2027-01-12"),
        (3, "2027-02-12"),
        (4, "2027-03-12"),
    ] {
        decide(
            &mut a,
            numbered(
                pharmacy(care, prescribed("3400935955838", 1, "2.18", rx.clone())),
                invoice,
            ),
        );
    }
    let month_four = decide(
        &mut a,
        numbered(
            pharmacy("2027-04-12", prescribed("3400935955838", 1, "2.18", rx)),
            5,
        ),
    );
    assert_eq!(month_four.lines[0].base.to_string(), "2.18");
    assert_eq!(month_four.amo.to_string(), "0.42");
    assert_eq!(month_four.patient.to_string(), "1.76");
}

/// Validation of the prescription (domain.md 1.3 "Prescription", 2.2, 2.4):
/// dated after the care, expired (medicines: 3 months, art. R.5132-22 CSP),
/// a FINESS failing its Luhn key, an unknown prescriber kind; and, from
/// 2027 (our date), a prescribed line without one.
#[test]
fn prescriptions_are_checked_and_required_from_2027() {
    let cases = [
        (
            "2025-02-04",
            json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2025-02-05"}),
            "prescription_after_care",
        ),
        (
            "2025-06-04",
            json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2025-02-03"}),
            "prescription_expired",
        ),
        (
            "2025-02-04",
            json!({"prescriber_kind": "finess", "prescriber": "750000011", "date": "2025-02-01"}),
            "invalid_prescriber",
        ),
        (
            "2025-02-04",
            json!({"prescriber_kind": "adeli", "prescriber": GP, "date": "2025-02-01"}),
            "invalid_prescriber",
        ),
    ];
    for (care, rx, code) in cases {
        let mut a = adjudicator(rights(json!({})));
        let claim = pharmacy(care, prescribed("3400935955838", 1, "2.18", rx));
        assert_eq!(
            rejected_with(&mut a, claim),
            vec![(code.to_string(), Some(1))],
            "{code}"
        );
    }
    // The same prescription on its last valid day is paid.
    let mut a = adjudicator(rights(json!({})));
    let rx = json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2025-02-03"});
    decide(
        &mut a,
        pharmacy("2025-05-03", prescribed("3400935955838", 1, "2.18", rx)),
    );
    // Without a prescription: paid in 2026, rejected from 2027.
    let bare = json!([{"code": "PH7", "quantity": 1, "product": "3400935955838",
                       "unit_price": "2.18", "charged": "2.18"}]);
    let mut a = adjudicator(rights(json!({})));
    decide(&mut a, pharmacy("2026-12-31", bare.clone()));
    let mut a = adjudicator(rights(json!({})));
    assert_eq!(
        rejected_with(&mut a, pharmacy("2027-01-04", bare)),
        vec![("prescription_missing".to_string(), Some(1))]
    );
}

// --- EU ePrescriptions (issue 20, item 4; docs/rules.md, "EU ePrescriptions") --

/// A German ePrescription (MyHealth@EU) of 28 Nov 2026 for paracetamol
/// (ATC N02BE01), `boxes` boxes of DOLIPRANE 1000 mg dispensed; no French
/// prescriber.
fn german_eprescription(boxes: u32, atc: &str) -> Value {
    let rx = json!({"date": "2026-11-28", "quantity": boxes,
                    "foreign": {"country": "DE", "id": "160.000.000.000.042", "atc": atc}});
    prescribed("3400935955838", boxes, "2.18", rx)
}

/// An EHIC visitor (German card, AOK) has a German ePrescription dispensed
/// in a French pharmacy on 3 Dec 2026, after the service's start (1 Dec
/// 2026, UNCONFIRMED): the line is priced as any (2 × 2.18 = 4.36 at the
/// 65 % band = 2.83, less EUR 2 of franchises, EUR 1 a box) and the AMO
/// share goes to the card's institution (route EU).
#[test]
fn a_foreign_eprescription_for_an_ehic_visitor_is_billed_to_the_card_institution() {
    let mut a = adjudicator(rights(json!({})));
    a.load_institution_line(
        &json!({"country": "DE", "institution_id": "108310400",
                "name": "AOK Baden-Wuerttemberg", "from": "2004-06-01"})
        .to_string(),
    )
    .unwrap();
    let mut claim = pharmacy("2026-12-03", german_eprescription(2, "N02BE01"));
    claim.as_object_mut().unwrap().remove("beneficiary");
    claim["ehic"] = json!({"country": "DE", "institution_id": "108310400",
                           "card_id": "80276001234567890123", "personal_id": "X123456789",
                           "surname": "Muster", "given_names": "Erika",
                           "birth_date": "1970-01-31", "expiry": "2027-12-31"});
    let d = decide(&mut a, claim);
    assert_eq!(d.route, Some(Route::Eu));
    assert_eq!(d.lines[0].base.to_string(), "4.36");
    assert_eq!(d.lines[0].rate.percent(), 65);
    assert!(reason_codes(&d).is_empty(), "{:?}", reason_codes(&d));
    assert_money(&d, "0.83", "0.00", "0.00", "3.53");
    assert_eq!(d.franchise.to_string(), "2.00");
}

/// A patient identified by a NIR whose coverage ended on 30 Jun 2026, and
/// who holds no EHIC, has the same German ePrescription dispensed: accepted
/// with no mandatory share (`eu_eprescription_no_mandatory_share`), AMO 0,
/// the patient pays the whole 2.18, no franchise. The same claim without a
/// foreign ePrescription is refused as before (`not_covered_on_care_date`).
#[test]
fn a_foreign_eprescription_for_a_patient_without_coverage_has_no_mandatory_share() {
    let ended = json!({"coverage": [{"from": "2000-01-01", "to": "2026-06-30",
                                      "regime": "01", "fund": "751"}]});
    let mut a = adjudicator(rights(ended.clone()));
    let d = decide(
        &mut a,
        pharmacy("2026-12-03", german_eprescription(1, "N02BE01")),
    );
    assert_eq!(d.route, Some(Route::Domestic));
    assert_eq!(
        reason_codes(&d),
        vec![("eu_eprescription_no_mandatory_share".to_string(), None)]
    );
    assert_money(&d, "0.00", "0.00", "0.00", "2.18");
    assert_eq!(d.franchise.to_string(), "0.00");
    assert_eq!(d.lines[0].rate.percent(), 0);

    let french = json!({"prescriber_kind": "rpps", "prescriber": GP, "date": "2026-11-28"});
    let mut a = adjudicator(rights(ended));
    assert_eq!(
        rejected_with(
            &mut a,
            pharmacy("2026-12-03", prescribed("3400935955838", 1, "2.18", french))
        ),
        vec![("not_covered_on_care_date".to_string(), None)]
    );
}

/// Refused: before the service's start (30 Nov 2026), and a product that is
/// not the prescribed substance (XANAX is alprazolam, N05BA12; a level-4
/// code, N02BE, leaves the substance open and matches no product).
#[test]
fn a_foreign_eprescription_before_the_service_or_of_another_substance_is_refused() {
    let mut a = adjudicator(rights(json!({})));
    assert_eq!(
        rejected_with(
            &mut a,
            pharmacy("2026-11-30", german_eprescription(1, "N02BE01"))
        ),
        vec![("eu_eprescription_not_in_service".to_string(), Some(1))]
    );
    let rx = json!({"date": "2026-11-28",
                    "foreign": {"country": "DE", "id": "160.000.000.000.043", "atc": "N02BE01"}});
    let mut a = adjudicator(rights(json!({})));
    assert_eq!(
        rejected_with(
            &mut a,
            pharmacy("2026-12-03", prescribed("3400932644551", 1, "2.39", rx))
        ),
        vec![("eu_eprescription_substance_mismatch".to_string(), Some(1))]
    );
    let mut a = adjudicator(rights(json!({})));
    assert_eq!(
        rejected_with(
            &mut a,
            pharmacy("2026-12-03", german_eprescription(1, "N02BE"))
        ),
        vec![("eu_eprescription_substance_mismatch".to_string(), Some(1))]
    );
}

/// `professional` billing under another number than its RPPS (issue 20,
/// item 5).
fn billing_under(mut professional: Value, kind: &str, id: &str) -> Value {
    professional["billing"] = json!({"kind": kind, "id": id});
    professional
}

/// A salaried GP of a health centre bills the centre's consultation under
/// its FINESS (750000010, Luhn-valid, synthetic; domain.md 2.4): decided as
/// the same consultation billed on the RPPS (E8: G at EUR 30 on 20 Jan 2025,
/// AMO 19.00 after the EUR 2 participation), the RPPS still signing.
#[test]
fn a_health_centre_bills_a_consultation_by_finess() {
    let mut a = adjudicator(rights(json!({})));
    let d = decide(
        &mut a,
        fse(
            "2025-01-20",
            billing_under(gp("1", false), "finess", "750000010"),
            "mt",
            json!([{"code": "G", "charged": "30.00"}]),
        ),
    );
    assert_money(&d, "19.00", "0.00", "2.00", "11.00");
    assert_eq!(d.paid_to_insured.to_string(), "19.00");
    assert_eq!(d.lines[0].tariff, "G@2024-12-22");
    assert!(reason_codes(&d).is_empty(), "{d:#?}");
}

/// A pharmacy bills under its AM number (13 department, category 2
/// "supplier": pharmacy; domain.md 2.3), in tiers payant: DOLIPRANE 1000 mg
/// 2 boxes on 4 Feb 2025 on the listed base EUR 2.18 a box, 65 %, two EUR 1
/// box franchises: AMO 0.83; in tiers payant the pharmacy is paid the
/// whole 2.83 and the franchises are deferred (the payment order pays its
/// AM number: `outbound::ledger::tests::a_payment_order_pays_the_billing_identifier_the_fses_name`).
#[test]
fn a_pharmacy_bills_by_its_am_number() {
    let mut a = adjudicator(rights(json!({})));
    let mut claim = pharmacy(
        "2025-02-04",
        json!([{"code": "PH7", "quantity": 2, "product": "3400935955838",
                "unit_price": "2.18", "charged": "4.36"}]),
    );
    claim["professional"] = billing_under(claim["professional"].clone(), "am", "132123456");
    claim["tiers_payant"] = json!({"amo": true, "amc": false});
    let d = decide(&mut a, claim);
    assert_eq!(d.lines[0].base.to_string(), "4.36");
    assert_eq!(d.franchise.to_string(), "2.00");
    assert_money(&d, "0.83", "0.00", "0.00", "3.53");
    assert_eq!(
        [d.paid_to_professional, d.deferred].map(|c| c.to_string()),
        ["2.83", "2.00"]
    );
}

/// The two refusals: a FINESS whose Luhn key fails (750000011), and a
/// pharmacist billing under a doctor's AM number (category 1).
#[test]
fn a_malformed_billing_identifier_or_another_categorys_am_number_is_refused() {
    let mut a = adjudicator(rights(json!({})));
    let consultation = |professional| {
        fse(
            "2025-01-20",
            professional,
            "mt",
            json!([{"code": "G", "charged": "30.00"}]),
        )
    };
    let d = a
        .decide_line(
            &consultation(billing_under(gp("1", false), "finess", "750000011")).to_string(),
        )
        .unwrap();
    assert_eq!(d.status, Status::Rejected);
    let refusal = |d: &Decision| {
        d.reasons
            .iter()
            .map(|r| (r.code.as_str().to_string(), r.field.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        refusal(&d),
        [(
            "invalid_billing_id".to_string(),
            Some("professional.billing.id".to_string())
        )]
    );
    let mut claim = pharmacy(
        "2025-02-04",
        json!([{"code": "PH7", "quantity": 2, "product": "3400935955838",
                "unit_price": "2.18", "charged": "4.36"}]),
    );
    claim["fse_id"] = json!("12345678-000000043");
    claim["professional"] = billing_under(claim["professional"].clone(), "am", "131123456");
    let d = a.decide_line(&claim.to_string()).unwrap();
    assert_eq!(d.status, Status::Rejected);
    assert_eq!(
        refusal(&d),
        [(
            "billing_category_mismatch".to_string(),
            Some("professional.billing.id".to_string())
        )]
    );
}
