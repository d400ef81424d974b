//! `clearing adjudicate`: the four stages in process over FSE JSON Lines.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use clearing_pipeline::adjudicate::{Adjudicator, LineError};
use clearing_pipeline::domain::{Status, json};
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::refdata::{NoPki, SignatureVerifier, TrustUnsigned};

use super::args::{RulesArgs, Signatures};
use super::{for_each_line, pseudonym_key};

#[derive(Args)]
pub struct AdjudicateArgs {
    /// Rights JSON Lines (the ref.rights shape).
    #[arg(long)]
    pub rights: Option<PathBuf>,
    /// Health PKI JSON Lines (the ref.pki shape: certificates and revocations).
    #[arg(long)]
    pub pki: Option<PathBuf>,
    /// EU institution directory JSON Lines (the ref.eu.institutions shape).
    #[arg(long)]
    pub institutions: Option<PathBuf>,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub signatures: Signatures,
    /// Exit 1 if any claim is rejected or any line is unreadable.
    #[arg(long)]
    pub strict: bool,
}

/// Loads a PKI file; a bad line is a configuration error naming it. Read
/// as `clearing publish` reads it: a key given twice is refused, and an
/// unknown key is not named (it may be personal data).
pub fn load_pki(path: &std::path::Path) -> Result<Pki> {
    let mut pki = Pki::default();
    for_each_line(path, |_, line| {
        let document = json::parse(line).map_err(|e| anyhow::anyhow!("not JSON ({e})"))?;
        pki.apply(json::from_document::<PkiRecord>(&document, &[])?)?;
        Ok(())
    })?;
    Ok(pki)
}

/// Builds an adjudicator from the arguments' reference files.
pub fn adjudicator(args: &AdjudicateArgs) -> Result<Adjudicator> {
    let rules = args.rules.load()?;
    let verifier: Box<dyn SignatureVerifier> = match (&args.pki, args.signatures.trust_unsigned) {
        (_, true) => Box::new(TrustUnsigned),
        (Some(path), false) => Box::new(clearing_pipeline::signatures::OwnedPkiVerifier::new(
            load_pki(path)?,
        )?),
        (None, false) => Box::new(NoPki),
    };
    let mut adjudicator = Adjudicator::new(rules, pseudonym_key()?, verifier);
    if let Some(path) = &args.rights {
        for_each_line(path, |_, line| Ok(adjudicator.load_rights_line(line)?))?;
    }
    if let Some(path) = &args.institutions {
        for_each_line(path, |_, line| Ok(adjudicator.load_institution_line(line)?))?;
    }
    Ok(adjudicator)
}

pub fn run(args: AdjudicateArgs) -> Result<ExitCode> {
    let mut adjudicator = adjudicator(&args)?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for (index, line) in stdin.lines().enumerate() {
        let line = line.with_context(|| format!("stdin: line {}", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match adjudicator.decide_line(&line) {
            Ok(decision) => {
                failed |= decision.status == Status::Rejected;
                serde_json::to_writer(&mut out, &decision)?;
                out.write_all(b"\n")?;
            }
            Err(LineError::Store(e)) => return Err(e.into()),
            Err(e) => {
                failed = true;
                eprintln!("stdin: line {}: {e}", index + 1);
            }
        }
    }
    out.flush()?;
    Ok(if args.strict && failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
