//! The verbs of the `clearing` binary, one module each; shared helpers here.

pub mod adjudicate;
pub mod archive;
pub mod args;
pub mod demo;
pub mod explain;
pub mod gen_data;
pub mod loadtest;
pub mod log;
pub mod replay;
pub mod serve;
pub mod settings;
pub mod stream;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;

/// The pseudonymisation secret comes from the environment, never from a file
/// in the repository; without it, the development key (synthetic data only).
pub fn pseudonym_key() -> Result<PseudonymKey> {
    match std::env::var("CLEARING_PSEUDONYM_SECRET") {
        Ok(secret) => {
            let epoch = std::env::var("CLEARING_PSEUDONYM_EPOCH").unwrap_or_else(|_| "k1".into());
            PseudonymKey::new(&epoch, secret.as_bytes()).context("CLEARING_PSEUDONYM_SECRET")
        }
        Err(_) => Ok(PseudonymKey::development()),
    }
}

pub fn load_rules(dir: Option<&Path>) -> Result<Rules> {
    Ok(match dir {
        Some(dir) => Rules::from_dir(dir)?,
        None => Rules::embedded()?,
    })
}

/// Opens a bus from its URL: `local:DIR` or `kafka://HOST:PORT`
/// ([`clearing_pipeline::bus::open`]).
pub fn open_bus(url: &str) -> Result<Arc<dyn Bus>> {
    clearing_pipeline::bus::open(url).with_context(|| format!("bus {url}"))
}

/// Removes a directory a previous run left, if any.
pub fn remove_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    Ok(())
}

/// Publishes a `clearing gen` output's reference data (rights, PKI, EU
/// institutions) through `ingest`, unflushed.
pub fn publish_reference(ingest: &mut Ingest<'_>, dir: &Path) -> Result<()> {
    for_each_line(&dir.join("rights.jsonl"), |_, line| {
        let rights: RightsInput = serde_json::from_str(line)?;
        ingest.rights(&rights)?;
        Ok(())
    })?;
    for_each_line(&dir.join("pki.jsonl"), |_, line| {
        ingest.pki(&PkiRecord::from_json(line)?)?;
        Ok(())
    })?;
    for_each_line(&dir.join("eu_institutions.jsonl"), |_, line| {
        let input: EuInstitutionInput = serde_json::from_str(line)?;
        ingest.institution(&input)?;
        Ok(())
    })?;
    Ok(())
}

/// Calls `each` with every non-empty line of a file (1-based numbers); an
/// error names the file and the line.
pub fn for_each_line(
    path: &Path,
    mut each: impl FnMut(usize, &str) -> Result<()>,
) -> Result<usize> {
    let file = File::open(path).with_context(|| path.display().to_string())?;
    let mut count = 0;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        each(index + 1, &line)
            .with_context(|| format!("{}: line {}", path.display(), index + 1))?;
        count += 1;
    }
    Ok(count)
}

/// A one-line progress bar on stderr.
pub fn progress_line(label: &str, done: u64, total: u64, rate_per_s: f64) {
    let width = 30usize;
    let filled = if total == 0 {
        width
    } else {
        ((done.min(total) as f64 / total as f64) * width as f64) as usize
    };
    eprint!(
        "\r{label:<12} [{}{}] {done:>9}/{total:<9} {rate_per_s:>9.0}/s ",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
}
