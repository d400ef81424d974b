//! `clearing gen` is deterministic, its signatures verify through the health
//! PKI, and every bad claim it plants is rejected with the code it names.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::domain::Status;
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

fn generate(dir: &Path, claims: usize, threads: usize, bad_per_mille: u32) -> Manifest {
    generate_cached(dir, claims, threads, bad_per_mille, None)
}

fn generate_cached(
    dir: &Path,
    claims: usize,
    threads: usize,
    bad_per_mille: u32,
    key_cache: Option<&Path>,
) -> Manifest {
    let mut config = GenConfig::for_claims(7, claims);
    config.threads = threads;
    config.key_cache = key_cache.map(Path::to_path_buf);
    config.professionals = 60;
    config.bad_per_mille = bad_per_mille;
    config.rsa_per_mille = 150;
    synth::generate(
        &config,
        &Rules::embedded().unwrap(),
        &SchemaRegistry::new().unwrap(),
        dir,
    )
    .unwrap()
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
    generate_cached(two.path(), 400, 2, 50, Some(cache.path()));
    assert!(
        std::fs::read_dir(cache.path()).unwrap().count() > 0,
        "RSA keys cached"
    );
    generate_cached(three.path(), 400, 2, 50, Some(cache.path()));
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
    let mut a = adjudicator(dir.path());
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut verified = 0;
    for line in std::fs::read_to_string(dir.path().join("claims.jsonl"))
        .unwrap()
        .lines()
    {
        let d = a.decide_line(line).unwrap();
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
    assert!(verified > 800, "{verified} paid, rejected {rejected:?}");
    for (code, planted) in &manifest.bad_claims {
        let got = rejected.get(code).copied().unwrap_or(0);
        // Good claims can meet some rejections naturally (coverage that ended,
        // a revoked card still used), never the signature or format ones.
        assert!(got >= *planted, "{code}: planted {planted}, rejected {got}");
        if code.contains("signature")
            || code.contains("certificate") && code != "certificate_revoked"
        {
            assert_eq!(got, *planted, "{code}: planted {planted}, rejected {got}");
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
