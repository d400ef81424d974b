//! Helpers shared by the integration tests.

use std::path::Path;

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::signatures::OwnedPkiVerifier;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An in-process adjudicator loaded with a `clearing gen` data set's
/// reference files (PKI, rights, EU institutions), signatures verified.
pub fn dataset_adjudicator(dir: &Path) -> Adjudicator {
    let mut pki = Pki::default();
    for line in lines(&dir.join("pki.jsonl")) {
        pki.apply(PkiRecord::from_json(&line).unwrap()).unwrap();
    }
    let mut a = Adjudicator::new(
        Rules::embedded().unwrap(),
        PseudonymKey::development(),
        Box::new(OwnedPkiVerifier::new(pki).unwrap()),
    );
    for line in lines(&dir.join("rights.jsonl")) {
        a.load_rights_line(&line).unwrap();
    }
    for line in lines(&dir.join("eu_institutions.jsonl")) {
        a.load_institution_line(&line).unwrap();
    }
    a
}
