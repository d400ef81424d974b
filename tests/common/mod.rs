//! Helpers shared by the integration tests (each test crate uses a subset).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

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

/// The `clearing` binary, with the development pseudonym key.
pub fn clearing() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clearing"));
    command.env_remove("CLEARING_PSEUDONYM_SECRET");
    command
}

/// Runs a command and asserts it succeeded, showing its stderr if not.
pub fn ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a command with a file on its stdin and asserts it succeeded.
pub fn pipe(command: &mut Command, file: &Path) {
    let stdin = std::fs::File::open(file).unwrap();
    ok(command.stdin(Stdio::from(stdin)));
}
