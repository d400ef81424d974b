//! The table corrections of 2026-12-06 (docs/rules.md, "Corrections of
//! 2026-12-06"), each with its source; and the rule set before them, kept so
//! that its runs replay as they ran.

use chrono::NaiveDate;

use super::*;
use crate::domain::Category;

/// The rule set in force before the corrections (rules/history/sets.toml).
const BEFORE: &str = "sha256:98f62d4c327e46e8c3dec4ea2321f500c3ef2f2c9d9405b8d3b74cb5fee677de";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The convention tariff of `code` for `category` on `date`, in euros, or
/// `None` when the code is not billable then.
fn tariff(rules: &Rules, code: &str, category: Category, date: &str) -> Option<String> {
    let act = rules.acts.find(code, category)?;
    let version = act.tariff_at(BaseKind::Convention, d(date))?;
    version.value.amount.map(|a| a.to_string())
}

fn now() -> Rules {
    Rules::embedded().unwrap()
}

fn before() -> std::sync::Arc<Rules> {
    Rules::published(BEFORE).unwrap().expect("kept")
}

/// GIE SESAM-Vitale specification "IP - Acquérir les informations des
/// prestations" (worked example): QZFA036, excision of a superficial skin
/// lesion under 5 cm2, EUR 28.80.
#[test]
fn qzfa036_is_a_skin_excision_at_28_80() {
    let rules = now();
    let act = rules.acts.find("QZFA036", Category::Specialist).unwrap();
    assert!(act.label.contains("skin lesion"), "{}", act.label);
    assert_eq!(
        tariff(&rules, "QZFA036", Category::Specialist, "2025-06-02").as_deref(),
        Some("28.80")
    );
    let old = before();
    assert_eq!(
        tariff(&old, "QZFA036", Category::Specialist, "2025-06-02").as_deref(),
        Some("205.00")
    );
}

/// Avenant 7 to the physiotherapists' convention: AMK EUR 2.21 from 22 Feb
/// 2024 (written question AN 16-17962; concourspluripro.fr).
#[test]
fn amk_is_2_21_from_22_february_2024() {
    let rules = now();
    let physio = Category::Physiotherapist;
    assert_eq!(
        tariff(&rules, "AMK", physio, "2024-02-21").as_deref(),
        Some("2.15")
    );
    assert_eq!(
        tariff(&rules, "AMK", physio, "2024-02-22").as_deref(),
        Some("2.21")
    );
    assert_eq!(
        tariff(&before(), "AMK", physio, "2024-02-22").as_deref(),
        Some("2.15")
    );
}

/// The national taxi agreement (arrêté of 29 Jul 2025): a EUR 13 pick-up flat
/// fee, a version of its own from 1 Nov 2025 (the figure before is marked
/// UNCONFIRMED).
#[test]
fn the_taxi_flat_fee_dates_from_the_2025_agreement() {
    let rules = now();
    let taxi = rules.acts.find("TAXI", Category::Transport).unwrap();
    let version = taxi
        .tariff_at(BaseKind::Convention, d("2025-11-01"))
        .unwrap();
    assert_eq!(version.from, d("2025-11-01"));
    assert!(version.source.contains("29 Jul 2025"));
    let earlier = taxi
        .tariff_at(BaseKind::Convention, d("2025-10-31"))
        .unwrap();
    assert!(earlier.source.starts_with("UNCONFIRMED"));
}

/// The 2016 medical convention (lecardiologue.com; Le Quotidien du médecin):
/// APC replaced C2 on 1 Oct 2017 at EUR 48, EUR 50 on 1 Jun 2018, EUR 55 on
/// 1 Apr 2022 (avenant 9), EUR 56.50 on 1 Nov 2023.
#[test]
fn apc_exists_from_1_october_2017() {
    let rules = now();
    let s = Category::Specialist;
    assert_eq!(tariff(&rules, "APC", s, "2017-09-30"), None);
    assert_eq!(
        tariff(&rules, "APC", s, "2017-10-01").as_deref(),
        Some("48.00")
    );
    assert_eq!(
        tariff(&rules, "APC", s, "2018-06-01").as_deref(),
        Some("50.00")
    );
    assert_eq!(
        tariff(&rules, "APC", s, "2022-04-01").as_deref(),
        Some("55.00")
    );
    assert_eq!(
        tariff(&rules, "APC", s, "2023-11-01").as_deref(),
        Some("56.50")
    );
    assert_eq!(tariff(&before(), "APC", s, "2022-04-01"), None);
}

/// Le Quotidien du médecin (1 May 2017): G, GS and VG at EUR 25 from 1 May
/// 2017; avenant 6 (JO 1 Aug 2018): TCG EUR 25 from 15 Sep 2018.
#[test]
fn gs_vg_and_tcg_are_billable() {
    let rules = now();
    let gp = Category::Gp;
    for code in ["GS", "VG"] {
        assert_eq!(tariff(&rules, code, gp, "2017-04-30"), None, "{code}");
        assert_eq!(
            tariff(&rules, code, gp, "2017-05-01").as_deref(),
            Some("25.00"),
            "{code}"
        );
    }
    assert_eq!(
        tariff(&rules, "GS", gp, "2023-11-01").as_deref(),
        Some("26.50")
    );
    assert_eq!(tariff(&rules, "TCG", gp, "2018-09-14"), None);
    assert_eq!(
        tariff(&rules, "TCG", gp, "2025-06-02").as_deref(),
        Some("25.00")
    );
    assert!(before().acts.find("GS", gp).is_none());
}

/// Every CCAM code of the tables names its public source or says
/// UNCONFIRMED (the review's "check every CCAM code").
#[test]
fn every_ccam_tariff_cites_a_source_or_says_unconfirmed() {
    let rules = now();
    let ccam = |code: &str| {
        code.len() == 7
            && code[..4].bytes().all(|b| b.is_ascii_uppercase())
            && code[4..].bytes().all(|b| b.is_ascii_digit())
    };
    let mut seen = 0;
    for act in rules.acts.entries().filter(|a| ccam(&a.code)) {
        let category = act.categories[0];
        let version = act
            .tariff_at(BaseKind::Convention, d("2025-06-02"))
            .unwrap();
        assert!(
            version.source.contains("UNCONFIRMED") || version.source.contains('['),
            "{}: {}",
            act.code,
            version.source
        );
        assert!(rules.acts.find(&act.code, category).is_some());
        seen += 1;
    }
    assert_eq!(
        seen, 6,
        "DEQP003, BGLA001, BGNP008, QZFA036, ZBQK002, HBJD001"
    );
}

/// The logic corrections are dated rule entries: present in the current
/// set, absent from the one before (which therefore decides as it did).
#[test]
fn the_logic_corrections_are_dated_entries_absent_before() {
    let (rules, old) = (now(), before());
    let care = d("2025-06-02");
    let pathway = rules.rates.care_pathway.as_ref().unwrap().at(care).unwrap();
    assert!(pathway.value.doctors.contains(&Category::Radiology));
    assert!(old.rates.care_pathway.is_none());
    let pf = |r: &Rules| {
        r.deductions
            .participation
            .at(care)
            .unwrap()
            .value
            .flat_fee_spares
    };
    assert_eq!(
        (pf(&rules), pf(&old)),
        (FlatFeeSpares::Line, FlatFeeSpares::Claim)
    );
    let eu = |r: &Rules| r.outbound.eu_claim.at(care).unwrap().value.amount;
    assert_eq!(
        (eu(&rules), eu(&old)),
        (EuClaimAmount::Amo, EuClaimAmount::Paid)
    );
}
