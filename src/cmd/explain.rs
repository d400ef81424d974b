//! `clearing explain FSE_ID`: one claim's decision path (docs/audit.md).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::ids::Nir;
use clearing_pipeline::pseudonym::BeneficiaryKey;
use clearing_pipeline::runtime::ingest::partition_of;
use clearing_pipeline::runtime::topics;
use clearing_replay::explain::{explain, render_text};
use clearing_replay::verify::Setup;

use super::args::{RecordedRun, RulesArgs};
use super::{open_bus, pseudonym_key};

#[derive(Args)]
#[command(mut_arg("rules", |arg| arg.help("Rule tables of the recorded run (default: the embedded tables)")))]
pub struct ExplainArgs {
    /// The FSE's id.
    pub fse_id: String,
    #[command(flatten)]
    pub recorded: RecordedRun,
    /// The beneficiary's NIR (with --birth-date and --rank): only the claim's partition is read.
    #[arg(long, requires_all = ["birth_date", "rank"])]
    pub nir: Option<String>,
    #[arg(long)]
    pub birth_date: Option<chrono::NaiveDate>,
    #[arg(long)]
    pub rank: Option<u8>,
    /// The beneficiary's pseudonymous key (as in decisions): only its partition is read.
    #[arg(long)]
    pub key: Option<String>,
    /// The partition to read (without a beneficiary, every partition is read).
    #[arg(long)]
    pub partition: Option<u32>,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// The explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExplainArgs) -> Result<ExitCode> {
    let bus = open_bus(&args.recorded.url())?;
    let pseudonyms = pseudonym_key()?;
    let count = bus
        .partition_count(topics::FSE_SUBMITTED)
        .context("fse.submitted is not on this bus")?;
    let key: Option<BeneficiaryKey> = match (&args.nir, &args.key) {
        (Some(nir), _) => {
            let nir = Nir::parse(nir).map_err(|e| anyhow::anyhow!("--nir: {e}"))?;
            let (Some(birth), Some(rank)) = (args.birth_date, args.rank) else {
                bail!("--nir needs --birth-date and --rank");
            };
            Some(pseudonyms.insured(&nir, birth, rank))
        }
        (None, Some(key)) => Some(BeneficiaryKey::from_stored(key)),
        (None, None) => None,
    };
    let partitions: Vec<u32> = match (key, args.partition) {
        (Some(key), _) => vec![partition_of(key.as_str().as_bytes(), count)],
        (None, Some(p)) => vec![p],
        (None, None) => (0..count).collect(),
    };
    let setup = Setup {
        bus,
        rules: Arc::new(args.rules.load()?),
        registry: Arc::new(SchemaRegistry::new()?),
        pseudonyms,
        trust_unsigned: false,
    };
    let explanation = explain(&setup, &args.fse_id, &partitions)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", render_text(&explanation));
    }
    Ok(if explanation.occurrences.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
