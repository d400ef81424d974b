//! Property tests over random claim streams, through the in-process chain:
//! amounts always add up, no cap is ever exceeded, and one beneficiary's
//! decisions never depend on another's claims.

use std::collections::BTreeMap;

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::domain::{Decision, Status};
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{ClaimRefRec, FseDecided, TiersPayantRec};
use clearing_pipeline::ids::Nir;
use clearing_pipeline::money::Cents;
use clearing_pipeline::outbound::{Emit, blank_header, settle};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::TrustUnsigned;
use clearing_pipeline::rules::Rules;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Luhn-valid RPPS numbers, one per professional in the streams.
const GPS: [&str; 2] = ["10000123454", "10101234564"];
const NURSE: &str = "10000000009";
const PHARMACIST: &str = "10002727377";
const TRANSPORTER: &str = "10000000017";

#[derive(Debug, Clone)]
enum Care {
    Gp { rpps: usize, acts: u32 },
    Nurse { acts: u32 },
    Pharmacy { boxes: u32, price_cents: i64 },
    Transport { legs: u32, emergency: bool },
}

#[derive(Debug, Clone)]
struct Claim {
    /// Days after 2024-01-01 (a span across the 2024 rule changes and a year end).
    care_day: i64,
    /// Days between care and receipt.
    delay_days: i64,
    tiers_payant: bool,
    care: Care,
}

fn care() -> impl Strategy<Value = Care> {
    prop_oneof![
        (0..2usize, 1..4u32).prop_map(|(rpps, acts)| Care::Gp { rpps, acts }),
        (1..6u32).prop_map(|acts| Care::Nurse { acts }),
        (1..6u32, 50..3000i64)
            .prop_map(|(boxes, price_cents)| Care::Pharmacy { boxes, price_cents }),
        (1..4u32, any::<bool>()).prop_map(|(legs, emergency)| Care::Transport { legs, emergency }),
    ]
}

fn claim() -> impl Strategy<Value = Claim> {
    (0..500i64, 0..20i64, any::<bool>(), care()).prop_map(
        |(care_day, delay_days, tiers_payant, care)| Claim {
            care_day,
            delay_days,
            tiers_payant,
            care,
        },
    )
}

fn nir(n: u32) -> String {
    Nir::from_body(&format!("18505780{:05}", 600 + n))
        .unwrap()
        .expose()
        .to_string()
}

fn rights_line(n: u32) -> String {
    json!({
        "nir": nir(n), "birth_date": "1985-05-12", "rank": 1,
        "coverage": [{"from": "2000-01-01", "to": null, "regime": "01", "fund": "751"}],
        "declared_gp": GPS[0]
    })
    .to_string()
}

fn claim_json(beneficiary: u32, seq: usize, c: &Claim) -> Value {
    let base = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let care = base + chrono::Duration::days(c.care_day);
    let received = care + chrono::Duration::days(c.delay_days);
    let (professional, pathway, acts) = match &c.care {
        Care::Gp { rpps, acts } => (
            json!({"rpps": GPS[*rpps], "category": "gp", "sector": "1"}),
            "mt",
            json!([{"code": "G", "quantity": acts, "charged": format!("{}.00", 30 * acts)}]),
        ),
        Care::Nurse { acts } => (
            json!({"rpps": NURSE, "category": "nurse", "sector": "1"}),
            "referred",
            json!([{"code": "AMI", "quantity": acts, "coefficient": "2", "charged": "50.00"}]),
        ),
        Care::Pharmacy { boxes, price_cents } => (
            json!({"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"}),
            "referred",
            json!([{"code": "PH7", "quantity": boxes, "product": "3400935955838",
                    "unit_price": Cents::new(*price_cents).to_string(),
                    "charged": Cents::new(*price_cents * i64::from(*boxes)).to_string()}]),
        ),
        Care::Transport { legs, emergency } => (
            json!({"rpps": TRANSPORTER, "category": "transport", "sector": "1"}),
            if *emergency { "emergency" } else { "referred" },
            json!([{"code": "VSL", "quantity": legs, "charged": "100.00"}]),
        ),
    };
    json!({
        "fse_id": format!("{:08}-{:09}", beneficiary, seq),
        "received_at": format!("{received}T10:00:00+01:00"),
        "care_date": care.to_string(),
        "professional": professional,
        "beneficiary": {"nir": nir(beneficiary), "birth_date": "1985-05-12", "rank": 1},
        "pathway": pathway,
        "tiers_payant": {"amo": c.tiers_payant, "amc": false},
        "acts": acts,
    })
}

fn adjudicator(beneficiaries: &[u32]) -> Adjudicator {
    let mut a = Adjudicator::new(
        Rules::embedded().unwrap(),
        PseudonymKey::development(),
        Box::new(TrustUnsigned),
    );
    for n in beneficiaries {
        a.load_rights_line(&rights_line(*n)).unwrap();
    }
    a
}

fn run(a: &mut Adjudicator, beneficiary: u32, claims: &[Claim]) -> Vec<Decision> {
    claims
        .iter()
        .enumerate()
        .map(|(seq, c)| {
            a.decide_line(&claim_json(beneficiary, seq, c).to_string())
                .unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn amounts_add_up_and_caps_hold(claims in prop::collection::vec(claim(), 1..120)) {
        let mut a = adjudicator(&[1]);
        let decisions = run(&mut a, 1, &claims);
        let mut pf_year: BTreeMap<i32, Cents> = BTreeMap::new();
        let mut fr_year: BTreeMap<i32, Cents> = BTreeMap::new();
        let mut pf_day: BTreeMap<(String, chrono::NaiveDate), Cents> = BTreeMap::new();
        let mut owed = Cents::ZERO;
        for (d, c) in decisions.iter().zip(&claims) {
            prop_assert_eq!(d.status, Status::Paid, "{:?}", d.reasons);
            d.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(d.charged(), d.amo + d.css + d.patient);
            let year = chrono::Datelike::year(&d.reimbursement_date.unwrap());
            *pf_year.entry(year).or_default() += d.participation;
            *fr_year.entry(year).or_default() += d.franchise;
            if let Care::Gp { rpps, .. } = c.care {
                *pf_day.entry((GPS[rpps].to_string(), d.care_date.unwrap())).or_default() += d.participation;
            }
            owed = owed + d.deferred - d.imputed;
            prop_assert!(owed >= Cents::ZERO);
        }
        for (year, total) in &pf_year {
            prop_assert!(*total <= Cents::new(5000), "participation {} in {}", total, year);
        }
        for (year, total) in &fr_year {
            prop_assert!(*total <= Cents::new(5000), "franchises {} in {}", total, year);
        }
        let may_2024 = chrono::NaiveDate::from_ymd_opt(2024, 5, 15).unwrap();
        for ((rpps, day), total) in &pf_day {
            // At most 4 acts a day per professional: EUR 4, or EUR 8 from 15 May 2024.
            let cap = if *day < may_2024 { Cents::new(400) } else { Cents::new(800) };
            prop_assert!(*total <= cap, "participation {} with {} on {}", total, rpps, day);
        }
    }

    #[test]
    fn decisions_do_not_depend_on_other_beneficiaries(
        mine in prop::collection::vec(claim(), 1..40),
        theirs in prop::collection::vec(claim(), 1..40),
        interleave in prop::collection::vec(any::<bool>(), 80),
    ) {
        let mut alone = adjudicator(&[1, 2]);
        let expected = run(&mut alone, 1, &mine);

        let mut mixed = adjudicator(&[1, 2]);
        let (mut i, mut j) = (0, 0);
        let mut got = Vec::new();
        for pick_mine in interleave.iter().copied().chain(std::iter::repeat(true)) {
            if i == mine.len() { break; }
            if pick_mine || j == theirs.len() {
                got.push(mixed.decide_line(&claim_json(1, i, &mine[i]).to_string()).unwrap());
                i += 1;
            } else {
                mixed.decide_line(&claim_json(2, j, &theirs[j]).to_string()).unwrap();
                j += 1;
            }
        }
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn the_daily_auxiliary_and_transport_caps_bind() {
    let mut a = adjudicator(&[1]);
    // 2024-06-03, after 31 March 2024: EUR 1 per act, EUR 4 per day per nurse.
    let nurse = Claim {
        care_day: 154,
        delay_days: 1,
        tiers_payant: false,
        care: Care::Nurse { acts: 5 },
    };
    let first = a
        .decide_line(&claim_json(1, 1, &nurse).to_string())
        .unwrap();
    assert_eq!(first.franchise.to_string(), "4.00");
    let second = a
        .decide_line(&claim_json(1, 2, &nurse).to_string())
        .unwrap();
    assert_eq!(
        second.franchise.to_string(),
        "0.00",
        "the day's cap is spent"
    );
    // Transport: EUR 4 per leg, EUR 8 per day.
    let legs = Claim {
        care_day: 154,
        delay_days: 1,
        tiers_payant: false,
        care: Care::Transport {
            legs: 3,
            emergency: false,
        },
    };
    let d = a.decide_line(&claim_json(1, 3, &legs).to_string()).unwrap();
    assert_eq!(d.franchise.to_string(), "8.00");
    let emergency = Claim {
        care_day: 155,
        delay_days: 1,
        tiers_payant: false,
        care: Care::Transport {
            legs: 2,
            emergency: true,
        },
    };
    let d = a
        .decide_line(&claim_json(1, 4, &emergency).to_string())
        .unwrap();
    assert_eq!(
        d.franchise.to_string(),
        "0.00",
        "emergency transport is exempt"
    );
}

#[test]
fn deferred_deductions_are_imputed_on_a_later_payment_to_the_insured() {
    // Care from 26 Dec 2024: G at EUR 30, participation EUR 2.
    let mut a = adjudicator(&[1]);
    let tp = Claim {
        care_day: 360,
        delay_days: 0,
        tiers_payant: true,
        care: Care::Gp { rpps: 0, acts: 1 },
    };
    let d = a.decide_line(&claim_json(1, 1, &tp).to_string()).unwrap();
    assert_eq!(
        (d.participation.to_string(), d.deferred.to_string()),
        ("2.00".into(), "2.00".into())
    );
    assert_eq!(
        d.paid_to_professional.to_string(),
        "21.00",
        "the professional gets the whole AMO share"
    );
    let later = Claim {
        care_day: 370,
        delay_days: 0,
        tiers_payant: false,
        care: Care::Gp { rpps: 0, acts: 1 },
    };
    let d = a
        .decide_line(&claim_json(1, 2, &later).to_string())
        .unwrap();
    assert_eq!(d.imputed.to_string(), "2.00");
    assert_eq!(
        d.paid_to_insured.to_string(),
        "17.00",
        "19.00 less the 2.00 owed"
    );
    let again = Claim {
        care_day: 380,
        delay_days: 0,
        tiers_payant: false,
        care: Care::Gp { rpps: 0, acts: 1 },
    };
    let d = a
        .decide_line(&claim_json(1, 3, &again).to_string())
        .unwrap();
    assert_eq!(d.imputed.to_string(), "0.00", "the debt was settled once");
}

#[test]
fn yearly_caps_count_by_reimbursement_date() {
    let mut a = adjudicator(&[1]);
    // 25 days of 4 GP acts each at EUR 2 (after 15 May 2024) = EUR 200 wanted;
    // care in late December 2024, half received in January 2025.
    let mut taken_2024 = Cents::ZERO;
    let mut taken_2025 = Cents::ZERO;
    for day in 0..25 {
        let c = Claim {
            care_day: 340 + day,
            delay_days: if day % 2 == 0 { 0 } else { 30 },
            tiers_payant: false,
            care: Care::Gp { rpps: 0, acts: 4 },
        };
        let d = a
            .decide_line(&claim_json(1, day as usize, &c).to_string())
            .unwrap();
        match chrono::Datelike::year(&d.reimbursement_date.unwrap()) {
            2024 => taken_2024 += d.participation,
            _ => taken_2025 += d.participation,
        }
    }
    assert_eq!(taken_2024.to_string(), "50.00");
    assert!(taken_2025 > Cents::ZERO && taken_2025 <= Cents::new(5000));
}

// --- Tiers payant contre génériques (docs/rules.md, "Products") -------------

const XANAX: &str = "3400932644551";
const ALPRAZOLAM: &str = "3400940000004";
/// The set before tiers payant contre génériques (rules/history/sets.toml).
const BEFORE_TP_GENERICS: &str =
    "sha256:969024769ca7d52542ff4009f818265c41c350260769a30cfca26e95c7107b37";

/// One pharmacy claim of alprazolam: the princeps (XANAX) or a generic.
#[derive(Debug, Clone)]
struct Dispensing {
    /// Days after 2010-01-01: across the rule (1 Jul 2012), the product list
    /// (1 Jan 2015) and the dearest-generic base (1 Jan 2020).
    care_day: i64,
    tiers_payant: bool,
    princeps: bool,
    /// A justified "non substituable" mention (MTE) on the prescription.
    mention: bool,
    boxes: u32,
}

fn dispensing() -> impl Strategy<Value = Dispensing> {
    (
        0..6000i64,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1..4u32,
    )
        .prop_map(
            |(care_day, tiers_payant, princeps, mention, boxes)| Dispensing {
                care_day,
                tiers_payant,
                princeps,
                mention,
                boxes,
            },
        )
}

/// The complementary claims settlement sends for `d`, were its FSE under
/// tiers payant on the AMC part too, its beneficiary insured by AMC000042.
fn amc_claims(
    d: &Decision,
    received_on: chrono::NaiveDate,
    tiers_payant_amo: bool,
    rules: &Rules,
) -> Vec<Emit> {
    let decided = FseDecided {
        header: blank_header(),
        decision: decision_rec(d),
        claim: Some(ClaimRefRec {
            rpps: PHARMACIST.into(),
            received_on,
            tiers_payant: TiersPayantRec {
                amo: tiers_payant_amo,
                amc: true,
            },
            amc: Some("AMC000042".into()),
            eu_country: None,
            eu_institution_id: None,
            payee: None,
        }),
    };
    (settle(&decided, rules).unwrap().into_iter())
        .filter(|e| matches!(e, Emit::Amc(_)))
        .collect()
}

fn dispensing_care(d: &Dispensing) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2010, 1, 1).unwrap() + chrono::Duration::days(d.care_day)
}

fn dispensing_json(beneficiary: u32, d: &Dispensing) -> Value {
    let care = dispensing_care(d);
    let (cip, price) = if d.princeps {
        (XANAX, 239)
    } else {
        (ALPRAZOLAM, 155)
    };
    let mut line = json!({"code": "PH7", "quantity": d.boxes, "product": cip,
                          "unit_price": Cents::new(price).to_string(),
                          "charged": Cents::new(price * i64::from(d.boxes)).to_string()});
    if d.mention {
        line["prescription"] = json!({"prescriber_kind": "rpps", "prescriber": GPS[0],
                                      "date": care.to_string(), "non_substitution": "mte"});
    }
    json!({
        "fse_id": format!("{beneficiary:08}-000000001"),
        "received_at": format!("{care}T10:00:00+01:00"),
        "care_date": care.to_string(),
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "beneficiary": {"nir": nir(beneficiary), "birth_date": "1985-05-12", "rank": 1},
        "pathway": "referred",
        "tiers_payant": {"amo": d.tiers_payant, "amc": false},
        "acts": [line],
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Under the current set, a princeps dispensed under tiers payant without
    /// a justified mention is paid to the insured, nothing deferred, the same
    /// money as the set before paid the pharmacist; every other claim is
    /// decided as the set before decided it. The rule is in force from
    /// 1 Jul 2012, before the list (1 Jan 2015) too: a princeps is told by
    /// its group. No complementary claim ever accompanies a withdrawn
    /// decision: tiers payant is withdrawn as a whole.
    #[test]
    fn a_refused_generic_loses_tiers_payant_and_nothing_else_changes(
        claims in prop::collection::vec(dispensing(), 1..24),
    ) {
        let before = Rules::published(BEFORE_TP_GENERICS).unwrap().expect("kept");
        let mut old = Adjudicator::new(
            (*before).clone(),
            PseudonymKey::development(),
            Box::new(TrustUnsigned),
        );
        let beneficiaries: Vec<u32> = (1..=claims.len() as u32).collect();
        let mut new = adjudicator(&beneficiaries);
        for n in &beneficiaries {
            old.load_rights_line(&rights_line(*n)).unwrap();
        }
        let rule_from = chrono::NaiveDate::from_ymd_opt(2012, 7, 1).unwrap();
        for (n, c) in beneficiaries.iter().zip(&claims) {
            let line = dispensing_json(*n, c).to_string();
            let d = new.decide_line(&line).unwrap();
            let mut was = old.decide_line(&line).unwrap();
            prop_assert_eq!(d.status, Status::Paid, "{:?}", d.reasons);
            d.check_invariants().map_err(TestCaseError::fail)?;
            let withdrawn = c.tiers_payant && c.princeps && !c.mention
                && dispensing_care(c) >= rule_from;
            let warned = d.warnings.iter().any(|w| w.code.as_str() == "tiers_payant_withdrawn");
            prop_assert_eq!(warned, withdrawn, "{:?}", d.warnings);
            let amc = amc_claims(&d, dispensing_care(c), c.tiers_payant, new.rules());
            prop_assert!(!withdrawn || amc.is_empty(), "{:?}", amc);
            if withdrawn {
                prop_assert_eq!(d.paid_to_professional, Cents::ZERO);
                prop_assert_eq!(d.deferred, Cents::ZERO);
                prop_assert_eq!(
                    (d.amo, d.css, d.participation, d.franchise, d.patient),
                    (was.amo, was.css, was.participation, was.franchise, was.patient)
                );
                prop_assert_eq!(d.paid_to_insured, was.paid_to_professional - was.deferred);
            } else {
                was.rules_version = d.rules_version.clone();
                prop_assert_eq!(d, was);
            }
        }
    }
}
