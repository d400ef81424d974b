//! `clearing gen` is deterministic, its signatures verify through the health
//! PKI, and every bad claim it plants is rejected with the code it names.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::domain::{Decision, Status};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::synth::{self, GenConfig, Manifest};

const FILES: [&str; 5] = [
    "claims.jsonl",
    "rights.jsonl",
    "pki.jsonl",
    "eu_institutions.jsonl",
    "manifest.json",
];

fn config(claims: usize, threads: usize, bad_per_mille: u32) -> GenConfig {
    let mut config = GenConfig::for_claims(7, claims);
    config.threads = threads;
    config.key_cache = None;
    config.professionals = 60;
    config.bad_per_mille = bad_per_mille;
    config.rsa_per_mille = 150;
    config
}

fn generate(dir: &Path, claims: usize, threads: usize, bad_per_mille: u32) -> Manifest {
    generate_with(dir, &config(claims, threads, bad_per_mille))
}

fn generate_cached(
    dir: &Path,
    claims: usize,
    threads: usize,
    bad_per_mille: u32,
    key_cache: &Path,
) -> Manifest {
    let mut config = config(claims, threads, bad_per_mille);
    config.key_cache = Some(key_cache.to_path_buf());
    generate_with(dir, &config)
}

fn generate_with(dir: &Path, config: &GenConfig) -> Manifest {
    synth::generate(
        config,
        &Rules::embedded().unwrap(),
        &SchemaRegistry::new().unwrap(),
        dir,
    )
    .unwrap()
}

/// Every claim of the data set in `dir`, adjudicated, beside its JSON.
fn adjudicate_all(dir: &Path) -> Vec<(serde_json::Value, Decision)> {
    let mut a = adjudicator(dir);
    std::fs::read_to_string(dir.join("claims.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let decision = a.decide_line(line).unwrap();
            (serde_json::from_str(line).unwrap(), decision)
        })
        .collect()
}

/// Checks that every bad kind planted comes back with its code (as the
/// first reason), and that every claim paid has its signature verified.
/// Returns the rejections by code and the claims paid.
fn assert_planted_rejections(
    manifest: &Manifest,
    decided: &[(serde_json::Value, Decision)],
) -> (BTreeMap<String, usize>, usize) {
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut verified = 0;
    for (_, d) in decided {
        if d.status == Status::Rejected {
            *rejected
                .entry(d.reasons[0].code.as_str().to_string())
                .or_default() += 1;
        } else {
            verified += 1;
            assert_eq!(
                d.signature_check,
                Some(clearing_pipeline::domain::SignatureCheck::Verified)
            );
        }
    }
    for (code, planted) in &manifest.bad_claims {
        let got = rejected.get(code).copied().unwrap_or(0);
        // Good claims can meet some rejections naturally (coverage that ended,
        // a revoked card still used), never the signature, format, foreign
        // ePrescription or billing identifier ones.
        assert!(got >= *planted, "{code}: planted {planted}, rejected {got}");
        if code.contains("signature")
            || code.contains("certificate") && code != "certificate_revoked"
            || code.starts_with("eu_eprescription")
            || code.starts_with("billing_")
            || code == "invalid_billing_id"
        {
            assert_eq!(got, *planted, "{code}: planted {planted}, rejected {got}");
        }
    }
    (rejected, verified)
}

fn adjudicator(dir: &Path) -> Adjudicator {
    common::dataset_adjudicator(dir)
}

#[test]
fn same_seed_same_bytes_whatever_the_threads_and_the_key_cache() {
    let (one, two, three) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cache = tempfile::tempdir().unwrap();
    generate(one.path(), 400, 1, 50);
    // A cold cache, then a warm one.
    generate_cached(two.path(), 400, 2, 50, cache.path());
    assert!(
        std::fs::read_dir(cache.path()).unwrap().count() > 0,
        "RSA keys cached"
    );
    generate_cached(three.path(), 400, 2, 50, cache.path());
    for file in FILES {
        let a = std::fs::read(one.path().join(file)).unwrap();
        for other in [&two, &three] {
            let b = std::fs::read(other.path().join(file)).unwrap();
            assert!(a == b, "{file} differs with threads or the key cache");
        }
    }
}

#[test]
fn every_planted_rejection_comes_back_with_its_code_and_good_claims_verify() {
    let dir = tempfile::tempdir().unwrap();
    // A high share of bad claims so that every kind occurs.
    let manifest = generate(dir.path(), 1500, 2, 300);
    assert!(
        manifest.bad_claims.len() >= 15,
        "kinds planted: {:?}",
        manifest.bad_claims
    );
    let decided = adjudicate_all(dir.path());
    let (rejected, verified) = assert_planted_rejections(&manifest, &decided);
    assert!(verified > 800, "{verified} paid, rejected {rejected:?}");
    // Care before the service date of foreign ePrescriptions: none is made.
    assert_eq!(
        decided.iter().filter(|(c, _)| foreign_lines(c) > 0).count(),
        0
    );
    // Billing identifiers: both refusals planted, and claims billed under
    // a practice's AM number and a health centre's FINESS paid.
    for code in ["invalid_billing_id", "billing_category_mismatch"] {
        let planted = manifest.bad_claims.get(code).copied().unwrap_or(0);
        assert!(planted >= 3, "{code}: planted {planted}");
    }
    for kind in ["am", "finess"] {
        let paid = (decided.iter())
            .filter(|(c, d)| {
                c["professional"]["billing"]["kind"] == kind && d.status == Status::Paid
            })
            .count();
        assert!(paid >= 20, "{kind}: {paid} paid");
    }
    // Renewable prescriptions: a series' head is a claim like any other
    // (it may be planted bad); every renewal after it (the next claims, one
    // month apart) is paid, some past the 3 months of a first dispensing.
    let index = |c: &serde_json::Value| -> usize {
        let id = c["fse_id"].as_str().unwrap();
        id.rsplit_once('-').unwrap().1.parse().unwrap()
    };
    let renewed: Vec<_> = (decided.iter())
        .filter(|(c, _)| c["acts"][0]["prescription"]["renewals"].is_u64() && index(c) % 50 != 36)
        .collect();
    let late = (renewed.iter())
        .filter(|(c, d)| {
            let date = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|s| s.parse::<chrono::NaiveDate>().ok())
                    .unwrap()
            };
            let rx = date(&c["acts"][0]["prescription"]["date"]);
            d.status == Status::Paid
                && date(&c["care_date"]) > rx.checked_add_months(chrono::Months::new(3)).unwrap()
        })
        .count();
    let refused: Vec<_> = (renewed.iter())
        .filter(|(_, d)| d.status == Status::Rejected)
        .map(|(c, d)| (c["fse_id"].clone(), d.reasons[0].code.as_str()))
        .collect();
    assert!(renewed.len() >= 10, "{} renewable", renewed.len());
    assert!(late >= 1, "{late} paid past 3 months");
    assert!(
        refused.iter().all(|(_, code)| *code == "duplicate"),
        "{refused:?}"
    );
}

/// The lines of `claim` that dispense a foreign ePrescription.
fn foreign_lines(claim: &serde_json::Value) -> usize {
    (claim["acts"].as_array().unwrap().iter())
        .filter(|l| !l["prescription"]["foreign"].is_null())
        .count()
}

/// Care from a fortnight before the service date of foreign ePrescriptions
/// (general.toml, 2026-12-01) on: some claims dispense them, EHIC visitors'
/// among them, and are paid; the two bad kinds that spoil one come back
/// with exactly their code.
#[test]
fn after_the_service_date_foreign_eprescriptions_are_dispensed_and_their_bad_kinds_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(1500, 2, 300);
    config.first_care_date = NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
    config.last_care_date = NaiveDate::from_ymd_opt(2027, 5, 15).unwrap();
    // More visitors than usual, so that some of them dispense one.
    config.visitors_per_mille = 100;
    let manifest = generate_with(dir.path(), &config);
    let decided = adjudicate_all(dir.path());
    let (rejected, _) = assert_planted_rejections(&manifest, &decided);
    for code in [
        "eu_eprescription_country",
        "eu_eprescription_substance_mismatch",
    ] {
        let planted = manifest.bad_claims.get(code).copied().unwrap_or(0);
        assert!(
            planted >= 3,
            "{code}: planted {planted}, rejected {rejected:?}"
        );
    }
    let paid = |visitor: bool| {
        (decided.iter())
            .filter(|(c, d)| {
                foreign_lines(c) > 0
                    && d.status == Status::Paid
                    && c.get("ehic").is_some_and(|e| !e.is_null()) == visitor
            })
            .count()
    };
    assert!(paid(false) >= 3, "insured: {} paid", paid(false));
    assert!(paid(true) >= 1, "visitors: {} paid", paid(true));
    for (claim, d) in &decided {
        if foreign_lines(claim) > 0 && d.status == Status::Paid {
            let care = claim["care_date"].as_str().unwrap();
            assert!(care >= "2026-12-01", "{care}");
        }
    }
}

#[test]
fn one_changed_byte_and_the_signature_no_longer_verifies() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 50, 1, 0);
    let claims = std::fs::read_to_string(dir.path().join("claims.jsonl")).unwrap();
    let mut a = adjudicator(dir.path());
    let mut tampered = 0;
    for line in claims.lines().take(20) {
        let mut claim: serde_json::Value = serde_json::from_str(line).unwrap();
        if claim.get("beneficiary").is_none() {
            continue;
        }
        // One cent more on the first line's fee.
        let charged = claim["acts"][0]["charged"].as_str().unwrap().to_string();
        let cents: i64 = charged.replace('.', "").parse().unwrap();
        claim["acts"][0]["charged"] =
            serde_json::json!(format!("{}.{:02}", (cents + 1) / 100, (cents + 1) % 100));
        let d = a.decide_line(&claim.to_string()).unwrap();
        assert_eq!(d.status, Status::Rejected);
        assert_eq!(d.reasons[0].code.as_str(), "bad_signature");
        tampered += 1;
    }
    assert!(tampered > 10);
}
