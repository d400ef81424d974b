//! `clearing`: the command-line edge. Parses arguments, wires files and
//! stores to the pipeline library, and maps failures to exit codes
//! (0 success, 1 a checked condition failed, 2 usage or configuration).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::domain::Status;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{NoPki, SignatureVerifier, TrustUnsigned};
use clearing_pipeline::rules::Rules;

#[derive(Parser)]
#[command(
    name = "clearing",
    version,
    about = "Event-sourced clearing of electronic care sheets (FSE)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the four stages in process over FSE JSON Lines on stdin; one decision per line on stdout.
    Adjudicate(AdjudicateArgs),
}

#[derive(Args)]
struct AdjudicateArgs {
    /// Rights JSON Lines (the ref.rights shape).
    #[arg(long)]
    rights: Option<PathBuf>,
    /// EU institution directory JSON Lines (the ref.eu.institutions shape).
    #[arg(long)]
    institutions: Option<PathBuf>,
    /// A rule-table directory instead of the embedded tables.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Simulation: skip signature checks, and say so in every decision.
    #[arg(long)]
    trust_unsigned: bool,
    /// Exit 1 if any claim is rejected or any line is unreadable.
    #[arg(long)]
    strict: bool,
}

/// The pseudonymisation secret comes from the environment, never from a file
/// in the repository; without it, the development key (synthetic data only).
fn pseudonym_key() -> Result<PseudonymKey> {
    match std::env::var("CLEARING_PSEUDONYM_SECRET") {
        Ok(secret) => {
            let epoch = std::env::var("CLEARING_PSEUDONYM_EPOCH").unwrap_or_else(|_| "k1".into());
            PseudonymKey::new(&epoch, secret.as_bytes()).context("CLEARING_PSEUDONYM_SECRET")
        }
        Err(_) => Ok(PseudonymKey::development()),
    }
}

fn load_rules(dir: Option<&Path>) -> Result<Rules> {
    Ok(match dir {
        Some(dir) => Rules::from_dir(dir)?,
        None => Rules::embedded()?,
    })
}

/// Feeds every line of a reference file to `load`; a bad line is a
/// configuration error naming the file and line.
fn load_lines(
    path: &Path,
    mut load: impl FnMut(&str) -> Result<(), clearing_pipeline::adjudicate::LineError>,
) -> Result<usize> {
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut count = 0;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        load(&line).with_context(|| format!("{}: line {}", path.display(), index + 1))?;
        count += 1;
    }
    Ok(count)
}

fn adjudicate(args: AdjudicateArgs) -> Result<ExitCode> {
    let rules = load_rules(args.rules.as_deref())?;
    let verifier: Box<dyn SignatureVerifier> = if args.trust_unsigned {
        Box::new(TrustUnsigned)
    } else {
        Box::new(NoPki)
    };
    let mut adjudicator = Adjudicator::new(rules, pseudonym_key()?, verifier);
    if let Some(path) = &args.rights {
        load_lines(path, |line| adjudicator.load_rights_line(line))?;
    }
    if let Some(path) = &args.institutions {
        load_lines(path, |line| adjudicator.load_institution_line(line))?;
    }
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
            Err(clearing_pipeline::adjudicate::LineError::Store(e)) => return Err(e.into()),
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Adjudicate(args) => adjudicate(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clearing: {e:#}");
            ExitCode::from(2)
        }
    }
}
