//! Given a routed claim (and, where it matters, the caps already spent),
//! when the reimbursement stage decides it, then the base, the rate and
//! every deduction are those of the tables on the date of care.

use serde_json::{Value, json};

use super::*;
use crate::stages::tests::{CARE, GP, Kit, NIR, NURSE, OTHER_DOCTOR, PHARMACIST, claim, codes};
use crate::state::StateStore;

/// When: the reimbursement stage decides the routed claim.
fn when_reimbursed(kit: &Kit, fse: &Value) -> Decision {
    let routed = kit.routed(fse);
    let outcome =
        kit.with_ctx(|ctx| Kit::run(&kit.reimbursement, |txn| reimburse(routed, txn, ctx)));
    match outcome {
        Outcome::Pass(d) => {
            d.check_invariants().unwrap();
            assert_eq!(d.status, Status::Paid);
            d
        }
        Outcome::Reject(d) => panic!("rejected: {:?}", d.reasons),
    }
}

fn cents(c: Cents) -> String {
    c.to_string()
}

/// (amo, css, participation, franchise, patient) of a decision.
fn money(d: &Decision) -> [String; 5] {
    [d.amo, d.css, d.participation, d.franchise, d.patient].map(cents)
}

fn expect(
    amo: &str,
    css: &str,
    participation: &str,
    franchise: &str,
    patient: &str,
) -> [String; 5] {
    [amo, css, participation, franchise, patient].map(str::to_string)
}

fn born(birth: &str) -> Value {
    json!({"nir": NIR, "birth_date": birth, "rank": 1})
}

fn specialist() -> Value {
    json!({"rpps": OTHER_DOCTOR, "category": "specialist", "sector": "1"})
}

#[test]
fn in_the_pathway_a_gp_consultation_is_70_percent_less_participation() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({})));
    // Then
    assert_eq!(d.lines[0].rate.percent(), 70);
    assert_eq!(d.lines[0].tariff, "G@2024-12-22");
    assert_eq!(money(&d), expect("19.00", "0.00", "2.00", "0.00", "11.00"));
    assert_eq!(d.route, Some(Route::Domestic));
    assert!(d.warnings.is_empty());
}

#[test]
fn outside_the_pathway_the_rate_is_30_percent() {
    // Given: no declared GP.
    let mut kit = Kit::new();
    kit.rights(json!({"declared_gp": null}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({"pathway": "outside"})));
    // Then
    assert_eq!(d.lines[0].rate.percent(), 30);
    assert_eq!(money(&d), expect("7.00", "0.00", "2.00", "0.00", "23.00"));
    assert!(d.warnings.is_empty());
}

#[test]
fn mt_naming_someone_else_as_declared_gp_is_30_percent_with_a_warning() {
    // Given: the rights name another doctor as declared GP.
    let mut kit = Kit::new();
    kit.rights(json!({"declared_gp": OTHER_DOCTOR}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({"pathway": "mt"})));
    // Then
    assert_eq!(d.lines[0].rate.percent(), 30);
    assert_eq!(
        codes(&d.warnings),
        vec![("pathway_not_honoured", Some("pathway"))]
    );
    assert_eq!(money(&d), expect("7.00", "0.00", "2.00", "0.00", "23.00"));
}

#[test]
fn mt_without_any_declared_gp_is_not_honoured_either() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"declared_gp": null}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({})));
    // Then
    assert_eq!(d.lines[0].rate.percent(), 30);
    assert_eq!(
        codes(&d.warnings),
        vec![("pathway_not_honoured", Some("pathway"))]
    );
}

#[test]
fn referred_direct_access_and_emergency_are_not_penalised() {
    // Given: a declared GP (not the executant), a specialist's consultation.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    for (n, pathway) in ["referred", "emergency", "direct_access"]
        .iter()
        .enumerate()
    {
        // When
        let d = when_reimbursed(
            &kit,
            &claim(
                json!({"pathway": pathway, "fse_id": format!("12345678-00000000{n}"),
                          "professional": specialist(), "acts": [{"code": "CS", "charged": "31.50"}]}),
            ),
        );
        // Then
        assert_eq!(d.lines[0].rate.percent(), 70, "{pathway}");
        assert!(d.warnings.is_empty(), "{pathway}");
    }
}

#[test]
fn an_emergency_without_a_declared_gp_is_not_penalised() {
    // Given: no declared GP (domain.md 1.3: code 25, emergency without MT).
    let mut kit = Kit::new();
    kit.rights(json!({"declared_gp": null}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({"pathway": "emergency"})));
    // Then
    assert_eq!(d.lines[0].rate.percent(), 70);
}

#[test]
fn under_16_is_never_penalised() {
    // Given: 15 on the date of care, no declared GP, outside the pathway.
    let mut kit = Kit::new();
    kit.rights(json!({"birth_date": "2010-01-15", "declared_gp": null}));
    // When
    let d = when_reimbursed(
        &kit,
        &claim(json!({"pathway": "outside", "beneficiary": born("2010-01-15")})),
    );
    // Then: 70 %, and a minor bears no participation.
    assert_eq!(d.lines[0].rate.percent(), 70);
    assert_eq!(money(&d), expect("21.00", "0.00", "0.00", "0.00", "9.00"));
    assert!(d.warnings.is_empty());
}

#[test]
fn a_minor_of_17_outside_the_pathway_is_penalised_but_bears_no_participation() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"birth_date": "2008-03-01", "declared_gp": null}));
    // When
    let d = when_reimbursed(
        &kit,
        &claim(json!({"pathway": "outside", "beneficiary": born("2008-03-01")})),
    );
    // Then
    assert_eq!(d.lines[0].rate.percent(), 30);
    assert_eq!(money(&d), expect("9.00", "0.00", "0.00", "0.00", "21.00"));
}

#[test]
fn a_minor_is_exempt_from_participation_and_franchises_but_not_full_rate() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"birth_date": "2012-07-21"}));
    // When
    let gp = when_reimbursed(&kit, &claim(json!({"beneficiary": born("2012-07-21")})));
    let nurse = when_reimbursed(
        &kit,
        &claim(json!({
            "fse_id": "23456789-000000007",
            "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
            "beneficiary": born("2012-07-21"),
            "pathway": "referred",
            "acts": [{"code": "AMI", "coefficient": "2", "quantity": 3, "charged": "18.90"}]
        })),
    );
    // Then
    assert_eq!(gp.lines[0].rate.percent(), 70);
    assert_eq!(money(&gp), expect("21.00", "0.00", "0.00", "0.00", "9.00"));
    assert_eq!(nurse.lines[0].rate.percent(), 60);
    assert_eq!(
        money(&nurse),
        expect("11.34", "0.00", "0.00", "0.00", "7.56")
    );
}

#[test]
fn an_adult_nurse_claim_bears_franchises_within_the_daily_cap() {
    // Given: 2025, EUR 1 per auxiliary act, EUR 4 a day per professional.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // When
    let d = when_reimbursed(
        &kit,
        &claim(json!({
            "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
            "pathway": "referred",
            "acts": [{"code": "AMI", "coefficient": "2", "quantity": 5, "charged": "31.50"}]
        })),
    );
    // Then: 31.50 × 60 % = 18.90, less EUR 4 (not 5).
    assert_eq!(money(&d), expect("14.90", "0.00", "0.00", "4.00", "16.60"));
}

#[test]
fn sector_3_is_reimbursed_on_the_authority_tariff() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": {"rpps": GP, "category": "gp", "sector": "3"},
        "acts": [{"code": "G", "charged": "50.00"}]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: base 0.61, 70 % = 0.43, below the participation: none taken.
    assert_eq!(cents(d.lines[0].base), "0.61");
    assert_eq!(d.lines[0].tariff, "G@2017-05-01");
    assert_eq!(money(&d), expect("0.43", "0.00", "0.00", "0.00", "49.57"));
}

#[test]
fn sector_3_without_an_authority_tariff_is_a_zero_base_with_a_warning() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": {"rpps": GP, "category": "gp", "sector": "3"},
        "acts": [{"code": "G", "charged": "50.00"}, {"code": "MCG", "charged": "5.00"}]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then
    assert_eq!(cents(d.lines[1].base), "0.00");
    assert_eq!(d.lines[1].tariff, "MCG@authority-none");
    let warnings: Vec<_> = d
        .warnings
        .iter()
        .map(|w| (w.code.as_str(), w.line))
        .collect();
    assert_eq!(warnings, vec![("no_authority_tariff", Some(2))]);
}

#[test]
fn sector_2_outside_optam_is_reimbursed_on_the_non_optam_base() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": {"rpps": GP, "category": "gp", "sector": "2", "optam": false},
        "acts": [{"code": "G", "charged": "40.00"}]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: 23.00 × 70 % = 16.10 − 2.00.
    assert_eq!(cents(d.lines[0].base), "23.00");
    assert_eq!(money(&d), expect("14.10", "0.00", "2.00", "0.00", "25.90"));
}

#[test]
fn a_line_charged_below_its_tariff_has_its_base_capped() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // When
    let d = when_reimbursed(
        &kit,
        &claim(json!({"acts": [{"code": "G", "charged": "20.00"}]})),
    );
    // Then
    assert_eq!(cents(d.lines[0].base), "20.00");
    assert_eq!(money(&d), expect("12.00", "0.00", "2.00", "0.00", "8.00"));
}

#[test]
fn two_ccam_lines_reaching_120_trigger_the_flat_fee() {
    // Given: a specialist's two ECG lines, bases 71.30 and 48.70 (capped
    // at what was charged): 120.00, the threshold.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": specialist(),
        "pathway": "referred",
        "acts": [
            {"code": "DEQP003", "quantity": 5, "charged": "71.30"},
            {"code": "DEQP003", "quantity": 4, "charged": "48.70"}
        ]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: the patient bears EUR 24 instead of the ticket, and no participation.
    assert_eq!(cents(d.flat_fee), "24.00");
    assert_eq!(money(&d), expect("96.00", "0.00", "0.00", "0.00", "24.00"));
    assert_eq!(cents(d.lines[0].amo), "47.30");
    assert_eq!(cents(d.lines[1].amo), "48.70");
}

#[test]
fn two_ccam_lines_one_cent_below_120_bear_the_ticket_and_participation() {
    // Given: 71.30 + 48.69 = 119.99.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": specialist(),
        "pathway": "referred",
        "acts": [
            {"code": "DEQP003", "quantity": 5, "charged": "71.30"},
            {"code": "DEQP003", "quantity": 4, "charged": "48.69"}
        ]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: 70 % of each line (49.91 + 34.08), less 4 participations (daily cap).
    assert_eq!(cents(d.flat_fee), "0.00");
    assert_eq!(money(&d), expect("75.99", "0.00", "8.00", "0.00", "44.00"));
}

#[test]
fn the_flat_fee_does_not_apply_to_css_beneficiaries() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
    let fse = claim(json!({
        "professional": specialist(),
        "pathway": "referred",
        "acts": [{"code": "BGLA001", "charged": "125.40"}]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: the ticket is paid by the CSS instead.
    assert_eq!(cents(d.flat_fee), "0.00");
    assert_eq!(money(&d), expect("87.78", "37.62", "0.00", "0.00", "0.00"));
}

#[test]
fn maternity_is_full_rate_and_exempt_from_participation() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"maternity": [{"from": "2025-03-01", "to": "2025-09-30"}]}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({})));
    // Then
    assert_eq!(d.lines[0].rate.percent(), 100);
    assert_eq!(money(&d), expect("30.00", "0.00", "0.00", "0.00", "0.00"));
}

#[test]
fn maternity_is_exempt_from_franchises() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"maternity": [{"from": "2025-03-01", "to": "2025-09-30"}]}));
    let fse = claim(json!({
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "pathway": null,
        "acts": [{"code": "PH7", "quantity": 2, "product": "3400935955838",
                  "unit_price": "2.18", "charged": "4.36"}]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: the listed base (2.18 a box) at 100 %, no franchise.
    assert_eq!(money(&d), expect("4.36", "0.00", "0.00", "0.00", "0.00"));
}

#[test]
fn css_pays_the_ticket_and_a_depassement_is_flagged() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
    // When
    let d = when_reimbursed(
        &kit,
        &claim(json!({"acts": [{"code": "G", "charged": "35.00"}]})),
    );
    // Then: 21.00 AMO, 9.00 CSS, no participation; the 5.00 above the base stays.
    assert_eq!(money(&d), expect("21.00", "9.00", "0.00", "0.00", "5.00"));
    assert_eq!(cents(d.paid_to_insured), "30.00");
    assert_eq!(codes(&d.warnings), vec![("depassement_under_css", None)]);
}

#[test]
fn css_without_depassement_has_no_warning() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
    // When
    let d = when_reimbursed(&kit, &claim(json!({})));
    // Then
    assert_eq!(money(&d), expect("21.00", "9.00", "0.00", "0.00", "0.00"));
    assert!(d.warnings.is_empty());
}

#[test]
fn a_declared_base_that_differs_is_a_warning_and_is_not_used() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({"acts": [{"code": "G", "charged": "30.00", "base": "25.00"}]}));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then
    assert_eq!(cents(d.lines[0].base), "30.00");
    assert_eq!(
        codes(&d.warnings),
        vec![("base_mismatch", Some("acts[0].base"))]
    );
    assert_eq!(d.warnings[0].line, Some(1));
    assert_eq!(money(&d), expect("19.00", "0.00", "2.00", "0.00", "11.00"));
}

#[test]
fn a_declared_base_that_matches_is_silent() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({"acts": [{"code": "G", "charged": "30.00", "base": "30.00"}]}));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then
    assert!(d.warnings.is_empty());
}

#[test]
fn the_yearly_participation_cap_stops_at_exactly_50() {
    // Given: 49.00 already taken in the reimbursement year.
    let mut kit = Kit::new();
    let who = kit.rights(json!({}));
    let mut seed = crate::state::WriteBatch::new();
    seed.insert(
        keys::participation_year(&who, 2025),
        Some(4900i64.to_be_bytes().to_vec()),
    );
    kit.reimbursement.apply(&seed).unwrap();
    // When
    let partial = when_reimbursed(&kit, &claim(json!({})));
    let after = when_reimbursed(
        &kit,
        &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
    );
    // Then: the last participation is partial, then none.
    assert_eq!(
        money(&partial),
        expect("20.00", "0.00", "1.00", "0.00", "10.00")
    );
    assert_eq!(
        money(&after),
        expect("21.00", "0.00", "0.00", "0.00", "9.00")
    );
    let counter = StateTxn::new(&kit.reimbursement)
        .get_i64(&keys::participation_year(&who, 2025))
        .unwrap();
    assert_eq!(counter, 5000);
}

#[test]
fn the_yearly_participation_cap_counts_by_reimbursement_year() {
    // Given: the 2025 cap is spent; care on 31 Dec 2024 received in 2025
    // and care on 30 Dec 2024 received in 2024.
    let mut kit = Kit::new();
    let who = kit.rights(json!({}));
    let mut seed = crate::state::WriteBatch::new();
    seed.insert(
        keys::participation_year(&who, 2025),
        Some(5000i64.to_be_bytes().to_vec()),
    );
    kit.reimbursement.apply(&seed).unwrap();
    // When
    let received_2025 = when_reimbursed(
        &kit,
        &claim(json!({"care_date": "2024-12-31", "received_at": "2025-01-02T09:00:00+01:00"})),
    );
    let received_2024 = when_reimbursed(
        &kit,
        &claim(json!({"care_date": "2024-12-30", "fse_id": "12345678-000000043"})),
    );
    // Then
    assert_eq!(cents(received_2025.participation), "0.00");
    assert_eq!(cents(received_2024.participation), "2.00");
}

#[test]
fn the_participation_is_at_most_4_acts_a_day_per_professional() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // When: 5 consultations on one line.
    let d = when_reimbursed(
        &kit,
        &claim(json!({"acts": [{"code": "G", "quantity": 5, "charged": "150.00"}]})),
    );
    // Then
    assert_eq!(cents(d.participation), "8.00");
}

#[test]
fn a_franchise_is_never_above_what_amo_pays_for_the_line() {
    // Given: a 30 % medicine charged 2.00 a box, below its listed 4.20 (the
    // base is capped at the charge: AMO 0.60 a box, franchise 1.00), and a
    // 65 % one at its listed 2.18.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
        "pathway": null,
        "acts": [
            {"code": "PH4", "quantity": 3, "product": "3400930000014",
             "unit_price": "2.00", "charged": "6.00"},
            {"code": "PH7", "quantity": 1, "product": "3400935955838",
             "unit_price": "2.18", "charged": "2.18"}
        ]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then: 1.80 on the PH4 line (not 3.00), 1.00 on the PH7 line (1.42 - 1.00).
    assert_eq!(cents(d.lines[0].franchise), "1.80");
    assert_eq!(cents(d.lines[0].amo), "0.00");
    assert_eq!(cents(d.lines[1].franchise), "1.00");
    assert_eq!(cents(d.lines[1].amo), "0.42");
    assert!(d.lines.iter().all(|l| !l.amo.is_negative()));
    assert_eq!(money(&d), expect("0.42", "0.00", "0.00", "2.80", "7.76"));
}

#[test]
fn a_nurse_act_below_the_franchise_bears_only_what_amo_pays() {
    // Given: AMI × 0.5 = 1.58 (rounded), 60 % = 0.95 < EUR 1.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({
        "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
        "pathway": "referred",
        "acts": [{"code": "AMI", "coefficient": "0.5", "charged": "1.58"}]
    }));
    // When
    let d = when_reimbursed(&kit, &fse);
    // Then
    assert_eq!(cents(d.lines[0].base), "1.58");
    assert_eq!(money(&d), expect("0.00", "0.00", "0.00", "0.95", "1.58"));
}

#[test]
fn under_tiers_payant_deductions_are_deferred_then_imputed() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let tp = claim(json!({"tiers_payant": {"amo": true, "amc": false}}));
    // When
    let first = when_reimbursed(&kit, &tp);
    let second = when_reimbursed(
        &kit,
        &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
    );
    // Then
    assert_eq!(cents(first.deferred), "2.00");
    assert_eq!(cents(first.paid_to_professional), "21.00");
    assert_eq!(cents(second.imputed), "2.00");
    assert_eq!(cents(second.paid_to_insured), "17.00");
    assert_eq!(
        second.care_date.map(|d| d.to_string()).as_deref(),
        Some("2025-06-03")
    );
    assert_eq!(
        first.care_date.map(|d| d.to_string()).as_deref(),
        Some(CARE)
    );
}

/// The reimbursement stage's store, key kind (`pfd`, `pfy`, `fad`, …) by key
/// kind, the expiry index aside.
fn kinds(kit: &Kit) -> Vec<String> {
    let mut kinds: Vec<String> = kit
        .reimbursement
        .scan_prefix(b"")
        .unwrap()
        .into_iter()
        .filter(|(key, _)| !key.starts_with(b"\x02"))
        .map(|(key, _)| {
            String::from_utf8_lossy(&key)
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    kinds.dedup();
    kinds
}

/// Moves the reimbursement partition's clock to `day`, as an input stamped
/// then would.
fn clock_reaches(kit: &Kit, day: &str) {
    let day: chrono::NaiveDate = day.parse().unwrap();
    Kit::run(&kit.reimbursement, |txn| {
        crate::state::expiry::advance(txn, day, u64::MAX)
    });
}

#[test]
fn daily_counters_expire_after_the_time_bar_of_their_day_and_yearly_ones_after_their_year() {
    // Given: a GP act (participation) and nurse acts (franchise) on
    // 2025-06-02: care in Q2 2025, barred from 2027-07-01, kept 31 days more.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    clock_reaches(&kit, CARE);
    when_reimbursed(&kit, &claim(json!({})));
    when_reimbursed(
        &kit,
        &claim(json!({
            "fse_id": "12345678-000000043",
            "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
            "pathway": "referred",
            "acts": [{"code": "AMI", "coefficient": "2", "quantity": 5, "charged": "31.50"}]
        })),
    );
    assert_eq!(kinds(&kit), ["fad", "fry", "pfd", "pfy"]);
    // A late claim for that day is still in time on 2027-06-30: its counters
    // must be there a month more.
    clock_reaches(&kit, "2027-07-31");
    assert_eq!(kinds(&kit), ["fad", "fry", "pfd", "pfy"]);
    clock_reaches(&kit, "2027-08-01");
    assert_eq!(kinds(&kit), ["fry", "pfy"]);
    // 2025's caps: any claim counted in 2025 has care by 2025-12-31, barred
    // from 2028-01-01.
    clock_reaches(&kit, "2028-01-31");
    assert_eq!(kinds(&kit), ["fry", "pfy"]);
    clock_reaches(&kit, "2028-02-01");
    assert_eq!(kinds(&kit), Vec::<String>::new());
    // Nothing is left of the index but the clock.
    assert_eq!(kit.reimbursement.scan_prefix(b"").unwrap().len(), 1);
}

/// A renewable prescription's counts (`rx` quantities, `rxd` dispensings)
/// are kept until the time-bar of its treatment's last day, not of its 3
/// months: "à renouveler 5 fois" of 10 Dec 2026 ends on 10 Jun 2027 (Q2),
/// barred from 2029-07-01, kept 31 days more; the claim's own counters
/// (care in December 2026) are gone long before.
#[test]
fn a_renewable_prescription_is_counted_until_the_time_bar_of_its_treatment() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    clock_reaches(&kit, "2026-12-12");
    when_reimbursed(
        &kit,
        &claim(json!({
            "care_date": "2026-12-12",
            "received_at": "2026-12-12T18:00:00+01:00",
            "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
            "pathway": null,
            "acts": [{"code": "PH7", "quantity": 1, "product": "3400935955838",
                      "unit_price": "2.18", "charged": "2.18",
                      "prescription": {"prescriber_kind": "rpps", "prescriber": GP,
                                       "date": "2026-12-10", "renewals": 5}}]
        })),
    );
    assert!(
        kinds(&kit).contains(&"rxd".to_string()),
        "{:?}",
        kinds(&kit)
    );
    clock_reaches(&kit, "2029-07-31");
    assert_eq!(kinds(&kit), ["rx", "rxd"]);
    clock_reaches(&kit, "2029-08-01");
    assert_eq!(kinds(&kit), Vec::<String>::new());
}

#[test]
fn a_settled_deferred_balance_leaves_no_key() {
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let tp = claim(json!({"tiers_payant": {"amo": true, "amc": false}}));
    when_reimbursed(&kit, &tp);
    assert!(kinds(&kit).contains(&"def".to_string()));
    // The next benefit paid to the insured takes the EUR 2 owed: settled.
    let second = when_reimbursed(
        &kit,
        &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
    );
    assert_eq!(cents(second.imputed), "2.00");
    assert!(!kinds(&kit).contains(&"def".to_string()));
}

/// Tiers payant contre génériques (art. L.162-16-7 CSS): XANAX (princeps)
/// dispensed under tiers payant without a justified mention is paid to the
/// insured, its franchises taken from the payment; with the mention (MTE) the
/// same claim stays under tiers payant, its franchises deferred.
#[test]
fn a_refused_generic_under_tiers_payant_is_paid_to_the_insured() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let xanax = |fse_id: &str, mention: Option<&str>| {
        let mut line = json!({"code": "PH7", "quantity": 2, "product": "3400932644551",
                              "unit_price": "2.39", "charged": "4.78"});
        if let Some(mention) = mention {
            line["prescription"] = json!({"prescriber_kind": "rpps", "prescriber": GP,
                                          "date": "2025-05-20", "non_substitution": mention});
        }
        claim(json!({
            "fse_id": fse_id,
            "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
            "pathway": null,
            "tiers_payant": {"amo": true, "amc": false},
            "acts": [line]
        }))
    };
    // When
    let refused = when_reimbursed(&kit, &xanax("12345678-000000042", None));
    let justified = when_reimbursed(&kit, &xanax("12345678-000000043", Some("mte")));
    // Then: 2 × 1.61 (dearest generic) at 65 % = 2.09, less EUR 2 of
    // franchises, paid to the insured; nothing deferred.
    assert_eq!(
        codes(&refused.warnings),
        [
            ("generic_refused", Some("acts[0].product")),
            ("tiers_payant_withdrawn", Some("tiers_payant.amo"))
        ]
    );
    assert_eq!(refused.warnings[1].line, Some(1));
    assert_eq!(
        money(&refused),
        expect("0.09", "0.00", "0.00", "2.00", "4.69")
    );
    assert_eq!(
        [
            refused.paid_to_insured,
            refused.paid_to_professional,
            refused.deferred
        ]
        .map(cents),
        ["0.09", "0.00", "0.00"]
    );
    // 2 × 2.39 at 65 % = 3.11 to the pharmacist; the EUR 2 deferred.
    assert!(justified.warnings.is_empty(), "{:?}", justified.warnings);
    assert_eq!(
        [
            justified.paid_to_insured,
            justified.paid_to_professional,
            justified.deferred
        ]
        .map(cents),
        ["0.00", "3.11", "2.00"]
    );
    assert_eq!(refused.rules_version, justified.rules_version);
}

/// Tiers payant contre génériques from its own date (1 Jul 2012), before the
/// list prices care (2015): XANAX, a princeps the table knows in a group
/// with a generic, dispensed under tiers payant without a justified mention,
/// is paid to the insured on the price declared. The day before, and under
/// the set before (which waited for the list), the pharmacist is paid.
#[test]
fn before_the_list_a_refused_generic_withdraws_tiers_payant_from_1_july_2012() {
    // Given
    let xanax = |care: &str| {
        claim(json!({
            "fse_id": format!("12345678-0{}", care.replace('-', "")),
            "care_date": care,
            "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
            "pathway": null,
            "tiers_payant": {"amo": true, "amc": false},
            "acts": [{"code": "PH7", "quantity": 1, "product": "3400932644551",
                      "unit_price": "2.39", "charged": "2.39"}]
        }))
    };
    let payees = |d: &Decision| [d.paid_to_insured, d.paid_to_professional, d.deferred].map(cents);
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // When
    let before = when_reimbursed(&kit, &xanax("2012-06-30"));
    let from = when_reimbursed(&kit, &xanax("2012-07-01"));
    // Then: 2.39 at 65 % = 1.55, less the EUR 0.50 franchise.
    assert!(before.warnings.is_empty(), "{:?}", before.warnings);
    assert_eq!(payees(&before), ["0.00", "1.55", "0.50"]);
    assert_eq!(
        codes(&from.warnings),
        [("tiers_payant_withdrawn", Some("tiers_payant.amo"))]
    );
    assert_eq!(from.lines[0].base, Cents(239));
    assert_eq!(from.lines[0].tariff, "PH7@declared");
    // 1.05 to the insured, less the EUR 0.50 deferred the day before.
    assert_eq!(payees(&from), ["0.55", "0.00", "0.00"]);
    assert_eq!(cents(from.imputed), "0.50");

    // The set before waited for the list: the pharmacist is paid.
    let mut kit = Kit::new();
    kit.rules = (*Rules::published(
        "sha256:baba004200863a94fc45436e999c5044261482a63516e77d9514bfdf28da6033",
    )
    .unwrap()
    .expect("the set before is kept"))
    .clone();
    kit.rights(json!({}));
    let old = when_reimbursed(&kit, &xanax("2012-07-01"));
    assert!(old.warnings.is_empty(), "{:?}", old.warnings);
    assert_eq!(payees(&old), ["0.00", "1.55", "0.50"]);
}
