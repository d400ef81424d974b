//! `clearing log`: check a local log's segments for damage, and move damaged
//! bytes aside so that an operator decides what becomes of them
//! (docs/audit.md, "Checking and repairing a local log"); compact the
//! stages' changelogs (docs/operations.md, "Compacting the changelogs").

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use clearing_pipeline::bus::local::{DEFAULT_TOMBSTONE_RETENTION, LocalLog};
use clearing_pipeline::runtime::compact_changelogs;

#[derive(Args)]
pub struct LogArgs {
    #[command(subcommand)]
    pub action: LogAction,
}

#[derive(Subcommand)]
pub enum LogAction {
    /// Scan every segment, changing nothing: report each damaged segment and each torn tail; exit 1 if any segment is damaged.
    Check(CheckArgs),
    /// Move each damaged segment's bytes, from the damage on, into a quarantine file next to it, and say what moved.
    Repair(RepairArgs),
    /// Compact the stages' changelogs: keep the latest record per key of each closed segment, drop tombstones past their retention.
    Compact(CompactArgs),
}

/// The log `check` and `repair` work on.
#[derive(Args)]
pub struct LogBus {
    /// The log: `local:DIR` (a pipeline's bus or an archive); `repair` needs
    /// it open in no other process.
    #[arg(long)]
    pub bus: String,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub log: LogBus,
}

#[derive(Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub log: LogBus,
    /// Move the damaged bytes to `<segment>.quarantine` and cut the segment
    /// there (the one repair there is, asked for by name since records go
    /// off the log).
    #[arg(long)]
    pub quarantine: bool,
}

#[derive(Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub log: LogBus,
    /// Offsets a tombstone is kept for past it before it is dropped: a
    /// stage store that recorded a changelog position further behind would
    /// miss the delete.
    #[arg(long, default_value_t = DEFAULT_TOMBSTONE_RETENTION)]
    pub tombstone_retention: u64,
}

pub fn run(args: LogArgs) -> Result<ExitCode> {
    match args.action {
        LogAction::Check(args) => check(&args.log.bus),
        LogAction::Repair(args) => repair(&args),
        LogAction::Compact(args) => compact(&args),
    }
}

fn compact(args: &CompactArgs) -> Result<ExitCode> {
    let url = &args.log.bus;
    let log = open(url)?;
    let done = compact_changelogs(&log, args.tombstone_retention)
        .with_context(|| format!("compaction of {url}"))?;
    for (topic, partitions) in &done {
        for (p, c) in partitions.iter().enumerate() {
            println!(
                "{topic}/{p}: {} segment(s) rewritten, {} record(s) dropped ({} tombstone(s)), {} -> {} bytes in closed segments, cleaned below offset {}",
                c.segments,
                c.records_dropped,
                c.tombstones_dropped,
                c.bytes_before,
                c.bytes_after,
                c.cleaned_end
            );
        }
    }
    println!("compacted {} changelog(s) of {url}", done.len());
    Ok(ExitCode::SUCCESS)
}

/// Opens an existing local log: a typo must not create an empty one, which
/// would check clean.
fn open(url: &str) -> Result<std::sync::Arc<LocalLog>> {
    let Some(dir) = url.strip_prefix("local:") else {
        bail!("bus {url}: `clearing log` works on a local log, local:DIR");
    };
    let dir = Path::new(dir);
    if !dir.is_dir() {
        bail!("bus {url}: {} is not a directory", dir.display());
    }
    LocalLog::open(dir).with_context(|| format!("bus {url}"))
}

fn check(url: &str) -> Result<ExitCode> {
    let log = open(url)?;
    let report = log.check().with_context(|| format!("check of {url}"))?;
    for damage in &report.damage {
        println!("damaged: {damage}");
    }
    for tail in &report.torn_tails {
        println!("torn tail: {tail}");
    }
    println!(
        "checked {} partition(s), {} segment(s), {} record(s) of {url}: {} damaged segment(s), {} torn tail(s)",
        report.partitions,
        report.segments,
        report.records,
        report.damage.len(),
        report.torn_tails.len()
    );
    if report.damage.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "a damaged partition does not open; `clearing log repair --bus {url} --quarantine` moves the damaged bytes aside"
    );
    Ok(ExitCode::from(1))
}

fn repair(args: &RepairArgs) -> Result<ExitCode> {
    if !args.quarantine {
        bail!(
            "repair needs --quarantine: it moves each damaged segment's bytes, from the damage on, into a file next to it"
        );
    }
    let log = open(&args.log.bus)?;
    let moved = log
        .quarantine_damage()
        .with_context(|| format!("repair of {}", args.log.bus))?;
    if moved.is_empty() {
        println!("nothing to repair in {}: no damaged segment", args.log.bus);
        return Ok(ExitCode::SUCCESS);
    }
    for quarantined in &moved {
        println!("quarantined: {quarantined}");
    }
    println!(
        "{} segment(s) cut; the records among the quarantined bytes are off the log: decide whether to publish them again (their bytes are in the quarantine files), or to restore the log from a copy",
        moved.len()
    );
    Ok(ExitCode::SUCCESS)
}
