//! `clearing gen`: a deterministic synthetic data set.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::synth::{self, GenConfig, Manifest};

use super::args::RulesArgs;

#[derive(Args, Clone)]
pub struct GenArgs {
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 1000)]
    pub claims: usize,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Professionals (default: claims / 40, within 200..=4000).
    #[arg(long)]
    pub professionals: Option<usize>,
    /// Beneficiaries (default: claims / 4, within 100..=5,000,000).
    #[arg(long)]
    pub beneficiaries: Option<usize>,
    /// Per mille of bad claims, of every rejection kind.
    #[arg(long, default_value_t = 20)]
    pub bad_per_mille: u32,
    /// Per mille of professionals signing with RSA-2048 (the rest ECDSA P-256).
    #[arg(long, default_value_t = 100)]
    pub rsa_per_mille: u32,
    /// Threads (default: the machine's cores). Output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub rules: RulesArgs,
}

impl GenArgs {
    pub fn config(&self) -> GenConfig {
        let mut config = GenConfig::for_claims(self.seed, self.claims);
        if let Some(p) = self.professionals {
            config.professionals = p.max(20);
        }
        if let Some(b) = self.beneficiaries {
            config.beneficiaries = b.max(10);
        }
        config.bad_per_mille = self.bad_per_mille.min(1000);
        config.rsa_per_mille = self.rsa_per_mille.min(1000);
        if let Some(t) = self.threads {
            config.threads = t.max(1);
        }
        config
    }
}

/// Generates, and reports the rate on stderr. Returns the manifest and seconds.
pub fn generate(args: &GenArgs) -> Result<(Manifest, f64)> {
    let rules = args.rules.load()?;
    let registry = SchemaRegistry::new()?;
    let config = args.config();
    let started = Instant::now();
    let manifest = synth::generate(&config, &rules, &registry, &args.out)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {} signed claims, {} professionals ({} RSA), {} beneficiaries into {} in {:.1} s ({:.0} claims/s)",
        manifest.claims,
        manifest.professionals,
        manifest.rsa_professionals,
        manifest.beneficiaries,
        args.out.display(),
        seconds,
        manifest.claims as f64 / seconds.max(1e-9)
    );
    Ok((manifest, seconds))
}

pub fn run(args: GenArgs) -> Result<()> {
    let (manifest, _) = generate(&args)?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
