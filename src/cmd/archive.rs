//! `clearing archive`: copy a recorded run (inputs, reference topics,
//! outputs, checkpoints) to a local-log directory with a manifest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

use super::args::RecordedBus;
use super::open_bus;

#[derive(Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    pub bus: RecordedBus,
    /// The archive directory to create.
    #[arg(long)]
    pub out: PathBuf,
    /// Take the stages' changelogs too.
    #[arg(long)]
    pub with_changelogs: bool,
}

pub fn run(args: ArchiveArgs) -> Result<ExitCode> {
    let bus = open_bus(&args.bus.url)?;
    let manifest = clearing_replay::archive::export(bus.as_ref(), &args.out, args.with_changelogs)
        .with_context(|| format!("archive to {}", args.out.display()))?;
    let records: u64 = manifest
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records)
        .sum();
    println!(
        "archived {records} records of {} topics from {} to {} (digest {})",
        manifest.topics.len(),
        manifest.source,
        args.out.display(),
        manifest.digest
    );
    Ok(ExitCode::SUCCESS)
}
