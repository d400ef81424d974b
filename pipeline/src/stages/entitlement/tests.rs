//! Given a rights record in the stage's state, when a validated claim is
//! entitled, then the beneficiary's situation on the date of care is
//! what the rights and the exemption table say.

use serde_json::{Value, json};

use super::*;
use crate::domain::rights::LocalRegime;
use crate::stages::tests::{CARE, Kit, NIR, claim, codes, visitor_claim};

/// When: the entitlement stage runs on the validated claim.
fn when_entitled(kit: &Kit, fse: &Value) -> Outcome<Entitled> {
    let validated = kit.validated(fse);
    kit.with_ctx(|ctx| Kit::run(&kit.entitlement, |txn| entitle(validated, txn, ctx)))
}

fn entitlement(kit: &Kit, fse: &Value) -> Entitlement {
    match when_entitled(kit, fse) {
        Outcome::Pass(e) => e.entitlement,
        Outcome::Reject(d) => panic!("rejected: {:?}", d.reasons),
    }
}

fn rejection(kit: &Kit, fse: &Value) -> Vec<(&'static str, Option<String>)> {
    match when_entitled(kit, fse) {
        Outcome::Pass(_) => panic!("entitled, expected a rejection"),
        Outcome::Reject(d) => {
            assert!(d.reasons.iter().all(|r| r.stage == Stage::Entitlement));
            assert_eq!(d.fse_id.as_deref(), Some("12345678-000000042"));
            assert!(d.beneficiary_key.is_some());
            codes(&d.reasons)
                .into_iter()
                .map(|(c, f)| (c, f.map(str::to_string)))
                .collect()
        }
    }
}

/// A claim for `NIR` born on `birth` (the rights must say the same date:
/// the key depends on it).
fn born(kit: &mut Kit, birth: &str, care: &str) -> Value {
    kit.rights(json!({"birth_date": birth}));
    claim(json!({
        "care_date": care,
        "beneficiary": {"nir": NIR, "birth_date": birth, "rank": 1}
    }))
}

#[test]
fn an_adult_in_the_pathway_has_no_exemption() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    // When
    let e = entitlement(&kit, &claim(json!({})));
    // Then
    assert_eq!(e.regime.as_deref(), Some("01"));
    assert_eq!(e.fund.as_deref(), Some("751"));
    assert!(!e.minor && !e.pathway_free && !e.ald && !e.css && !e.ame && !e.maternity);
    assert_eq!(e.declared_gp.as_deref(), Some(crate::stages::tests::GP));
    assert_eq!(e.local_regime, None);
    assert!(e.rights_digest.unwrap().starts_with("sha256:"));
}

#[test]
fn born_on_2_january_2007_is_a_minor_for_care_in_2025() {
    // Given: 17 on 1 January 2025, 18 on the date of care.
    let mut kit = Kit::new();
    let fse = born(&mut kit, "2007-01-02", "2025-06-02");
    // When
    let e = entitlement(&kit, &fse);
    // Then
    assert!(e.minor, "the age on 1 January decides");
    assert!(!e.pathway_free);
}

#[test]
fn born_on_1_january_2007_is_not_a_minor_for_care_in_2025() {
    // Given: 18 on 1 January 2025.
    let mut kit = Kit::new();
    let fse = born(&mut kit, "2007-01-01", "2025-01-01");
    // When
    let e = entitlement(&kit, &fse);
    // Then
    assert!(!e.minor);
}

#[test]
fn born_on_1_january_2007_was_a_minor_for_care_on_31_december_2024() {
    // Given
    let mut kit = Kit::new();
    let fse = born(&mut kit, "2007-01-01", "2024-12-31");
    // When
    let e = entitlement(&kit, &fse);
    // Then
    assert!(e.minor);
}

#[test]
fn under_16_on_the_date_of_care_is_pathway_free() {
    // Given: 15 on the date of care (16 the next day).
    let mut kit = Kit::new();
    let fse = born(&mut kit, "2009-06-03", CARE);
    // When
    let e = entitlement(&kit, &fse);
    // Then
    assert!(e.pathway_free);
    assert!(e.minor);
}

#[test]
fn sixteen_on_the_date_of_care_is_no_longer_pathway_free() {
    // Given: 16 on the date of care, still a minor.
    let mut kit = Kit::new();
    let fse = born(&mut kit, "2009-06-02", CARE);
    // When
    let e = entitlement(&kit, &fse);
    // Then
    assert!(!e.pathway_free);
    assert!(e.minor);
}

#[test]
fn ame_without_coverage_is_entitled() {
    // Given: no coverage at all, AME on the date of care.
    let mut kit = Kit::new();
    kit.rights(json!({"coverage": [], "ame": [{"from": "2025-01-01", "to": "2025-12-31"}]}));
    // When
    let e = entitlement(&kit, &claim(json!({})));
    // Then
    assert!(e.ame);
    assert_eq!(e.regime, None);
    assert_eq!(e.fund, None);
}

#[test]
fn ame_outside_its_period_without_coverage_is_not_covered() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({"coverage": [], "ame": [{"from": "2024-01-01", "to": "2025-06-01"}]}));
    // When / Then
    assert_eq!(
        rejection(&kit, &claim(json!({}))),
        vec![("not_covered_on_care_date", None)]
    );
}

#[test]
fn coverage_periods_are_inclusive() {
    // Given: coverage ending on the date of care.
    let mut kit = Kit::new();
    kit.rights(json!({"coverage": [
        {"from": "2000-01-01", "to": CARE, "regime": "01", "fund": "751"},
        {"from": "2025-06-03", "to": null, "regime": "02", "fund": "672"}
    ]}));
    // When
    let on = entitlement(&kit, &claim(json!({})));
    let after = entitlement(
        &kit,
        &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
    );
    // Then
    assert_eq!(on.regime.as_deref(), Some("01"));
    assert_eq!(after.regime.as_deref(), Some("02"));
    assert_eq!(after.fund.as_deref(), Some("672"));
}

#[test]
fn maternity_and_css_are_flagged_within_their_periods() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({
        "maternity": [{"from": "2025-03-01", "to": CARE}],
        "css": [{"from": "2025-01-01", "to": null}]
    }));
    // When
    let during = entitlement(&kit, &claim(json!({})));
    let after = entitlement(
        &kit,
        &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
    );
    // Then
    assert!(during.maternity && during.css);
    assert!(!after.maternity && after.css);
}

#[test]
fn ald_and_the_local_regime_are_carried() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({
        "ald": [{"from": "2020-01-01", "to": null}],
        "local_regime": "alsace-moselle",
        "declared_gp": null
    }));
    // When
    let e = entitlement(
        &kit,
        &claim(json!({"acts": [{"code": "G", "charged": "30.00", "ald_related": true}]})),
    );
    // Then
    assert!(e.ald);
    assert_eq!(e.local_regime, Some(LocalRegime::AlsaceMoselle));
    assert_eq!(e.declared_gp, None);
}

#[test]
fn an_ald_related_line_without_ald_on_the_date_is_rejected() {
    // Given: the ALD ended the day before.
    let mut kit = Kit::new();
    kit.rights(json!({"ald": [{"from": "2020-01-01", "to": "2025-06-01"}]}));
    let fse = claim(json!({"acts": [
        {"code": "G", "charged": "30.00"},
        {"code": "MCG", "charged": "3.00", "ald_related": true}
    ]}));
    // When / Then
    assert_eq!(
        rejection(&kit, &fse),
        vec![("exoneration_not_found", Some("acts[1].ald_related".into()))]
    );
}

#[test]
fn no_rights_record_is_an_unknown_beneficiary() {
    // Given: nothing loaded.
    let kit = Kit::new();
    // When / Then
    assert_eq!(
        rejection(&kit, &claim(json!({}))),
        vec![("unknown_beneficiary", None)]
    );
}

#[test]
fn another_rank_is_another_beneficiary() {
    // Given: rights for rank 1 only.
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let fse = claim(json!({"beneficiary": {"nir": NIR, "birth_date": "1985-05-12", "rank": 2}}));
    // When / Then
    assert_eq!(rejection(&kit, &fse), vec![("unknown_beneficiary", None)]);
}

#[test]
fn the_rights_digest_changes_with_the_record() {
    // Given
    let mut kit = Kit::new();
    kit.rights(json!({}));
    let before = entitlement(&kit, &claim(json!({}))).rights_digest;
    // When: the record is replaced (a later ref.rights event).
    kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
    let after = entitlement(&kit, &claim(json!({"fse_id": "12345678-000000043"}))).rights_digest;
    // Then
    assert!(before.is_some() && after.is_some());
    assert_ne!(before, after);
}

#[test]
fn a_visitor_needs_no_rights_record() {
    // Given: no rights, a German EHIC holder born in 2010.
    let kit = Kit::new();
    let fse = visitor_claim(json!({"birth_date": "2010-02-01"}), json!({}));
    // When
    let e = entitlement(&kit, &fse);
    // Then
    assert_eq!(e.regime, None);
    assert_eq!(e.rights_digest, None);
    assert!(e.minor && e.pathway_free);
    assert!(!e.css && !e.ame && !e.ald && !e.maternity);
}

// ---------------------------------------------------------------------------
// Dated GP, local regime and AMC: read on the date of care.

/// Rights whose declared GP changes from `GP` to `OTHER_DOCTOR` on
/// 2025-06-02 (the default date of care), and whose AMC and local regime
/// start that day.
fn given_a_change_on_the_care_date(kit: &mut Kit) {
    kit.rights(json!({
        "declared_gp": crate::stages::tests::GP,
        "declared_gp_periods": [
            {"from": "2025-06-02", "to": null, "rpps": crate::stages::tests::OTHER_DOCTOR}
        ],
        "amc": "AMC000001",
        "amc_periods": [{"from": "2025-06-02", "to": "2025-12-31", "amc": "AMC000002"}],
        "local_regime_periods": [{"from": "2025-06-02", "to": null, "regime": "alsace-moselle"}]
    }));
}

/// Each date's claim has its own id (one kit validates them all).
fn entitled_on(kit: &Kit, care: &str) -> Entitlement {
    let id = format!("12345678-{}0", care.replace('-', ""));
    entitlement(kit, &claim(json!({"care_date": care, "fse_id": id})))
}

#[test]
fn care_the_day_before_the_change_is_judged_with_the_old_values() {
    let mut kit = Kit::new();
    given_a_change_on_the_care_date(&mut kit);
    let e = entitled_on(&kit, "2025-06-01");
    assert_eq!(e.declared_gp.as_deref(), Some(crate::stages::tests::GP));
    assert_eq!(e.amc.as_deref(), Some("AMC000001"));
    assert_eq!(e.local_regime, None);
}

#[test]
fn care_on_the_change_day_is_judged_with_the_new_values() {
    let mut kit = Kit::new();
    given_a_change_on_the_care_date(&mut kit);
    let e = entitled_on(&kit, "2025-06-02");
    assert_eq!(
        e.declared_gp.as_deref(),
        Some(crate::stages::tests::OTHER_DOCTOR)
    );
    assert_eq!(e.amc.as_deref(), Some("AMC000002"));
    assert_eq!(e.local_regime, Some(LocalRegime::AlsaceMoselle));
}

#[test]
fn after_a_closed_period_the_scalar_holds_again() {
    let mut kit = Kit::new();
    given_a_change_on_the_care_date(&mut kit);
    let inside = entitled_on(&kit, "2025-12-31");
    let after = entitled_on(&kit, "2026-01-02");
    assert_eq!(inside.amc.as_deref(), Some("AMC000002"));
    assert_eq!(after.amc.as_deref(), Some("AMC000001"));
    assert_eq!(
        after.declared_gp.as_deref(),
        Some(crate::stages::tests::OTHER_DOCTOR),
        "the open GP period still holds"
    );
}

#[test]
fn a_record_without_periods_stores_the_bytes_it_stored_before_them() {
    // The digest in every decision hashes these bytes: old records must
    // keep theirs, so the new members are left out when empty.
    let input: RightsInput =
        serde_json::from_value(crate::stages::tests::rights_json(json!({}))).unwrap();
    let (_, rights) = input.check().unwrap();
    let text = String::from_utf8(encode_rights(&rights)).unwrap();
    assert!(!text.contains("periods"), "{text}");
    assert!(
        text.ends_with(r#""declared_gp":"10000123454","amc":null}"#),
        "{text}"
    );
}

#[test]
fn overlapping_or_malformed_dated_values_are_refused() {
    let check = |extra: Value| {
        let input: RightsInput =
            serde_json::from_value(crate::stages::tests::rights_json(extra)).unwrap();
        input.check().map(|_| ())
    };
    assert_eq!(
        check(json!({"declared_gp_periods": [
            {"from": "2025-01-01", "to": null, "rpps": crate::stages::tests::GP},
            {"from": "2025-06-01", "to": null, "rpps": crate::stages::tests::OTHER_DOCTOR}
        ]})),
        Err(RightsError::Overlap("declared_gp_periods"))
    );
    assert!(matches!(
        check(json!({"declared_gp_periods": [{"from": "2025-01-01", "to": null, "rpps": "12"}]})),
        Err(RightsError::DeclaredGp(_))
    ));
    assert_eq!(
        check(json!({"local_regime_periods": [
            {"from": "2025-01-02", "to": "2025-01-01", "regime": "alsace-moselle"}
        ]})),
        Err(RightsError::Inverted("local_regime_periods"))
    );
    assert_eq!(check(json!({"amc_periods": []})), Ok(()));
}
