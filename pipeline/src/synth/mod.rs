//! `clearing gen`: a deterministic synthetic world and signed claims.
//!
//! Same seed, same bytes: every draw comes from [`rng::Rng`] streams named by
//! what they draw (a professional, a beneficiary, a claim), so output does
//! not depend on the number of threads. Work is split over threads in index
//! ranges and written in index order.

mod billing;
pub mod claims;
mod eprescription;
mod renewal;
pub mod rng;
pub mod world;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use crate::events::convert::input_from_submitted;
use crate::events::registry::SchemaRegistry;
use crate::pki::PkiRecord;
use crate::rules::Rules;

/// The generator's revision: raised when the same seed, dates and rules
/// make other claims, so that a cache of its output made before is made
/// again. 1: foreign ePrescriptions from their service date (2026-12-06);
/// 2: billing identifiers (AM numbers, health centres' FINESS) and their
/// two bad kinds (2026-12-06); 3: renewable prescriptions, a head's claim
/// and its monthly renewals (2026-12-07).
pub const REVISION: u32 = 3;

/// Claims generated and written per chunk: bounds memory whatever the count.
const CHUNK: usize = 16_384;

#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub claims: usize,
    pub professionals: usize,
    pub beneficiaries: usize,
    /// Per mille of professionals whose card signs with RSA-2048.
    pub rsa_per_mille: u32,
    /// Per mille of claims that are bad, of every kind.
    pub bad_per_mille: u32,
    pub visitors_per_mille: u32,
    pub first_care_date: NaiveDate,
    pub last_care_date: NaiveDate,
    pub threads: usize,
    /// RSA key cache directory (keys are pure functions of their seeds).
    pub key_cache: Option<std::path::PathBuf>,
}

impl GenConfig {
    /// Defaults scaled to the claim count: a population of about a quarter of
    /// the claims (so caps and duplicates occur), professionals in proportion.
    pub fn for_claims(seed: u64, claims: usize) -> GenConfig {
        let first = NaiveDate::from_ymd_opt(2024, 7, 1).unwrap_or_default();
        let last = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap_or_default();
        GenConfig {
            seed,
            claims,
            professionals: (claims / 40).clamp(200, 4000),
            beneficiaries: (claims / 4).clamp(100, 5_000_000),
            rsa_per_mille: 200,
            bad_per_mille: 20,
            visitors_per_mille: 20,
            first_care_date: first,
            last_care_date: last,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            key_cache: default_key_cache(),
        }
    }
}

/// `$CLEARING_KEY_CACHE`, else `~/.cache/clearing/keys`.
pub fn default_key_cache() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("CLEARING_KEY_CACHE") {
        return Some(dir.into());
    }
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cache/clearing/keys"))
}

/// What was generated: counts and the bad kinds, written as `manifest.json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Manifest {
    pub seed: u64,
    pub claims: usize,
    pub professionals: usize,
    pub rsa_professionals: usize,
    pub beneficiaries: usize,
    pub institutions: usize,
    pub visitor_claims: usize,
    /// Bad claims by the reason code the pipeline must give.
    pub bad_claims: BTreeMap<String, usize>,
    pub rules_version: String,
}

/// Maps `f` over `0..n` on `threads` threads, results in index order.
pub fn parallel_map<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, 64);
    if threads == 1 || n < 64 {
        return (0..n).map(&f).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || (t * per..((t + 1) * per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn write_jsonl<T: Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for item in items {
        serde_json::to_writer(&mut out, &item)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Generates the world and `config.claims` claims into `dir`: `claims.jsonl`,
/// `rights.jsonl`, `pki.jsonl`, `eu_institutions.jsonl`, `manifest.json`.
pub fn generate(
    config: &GenConfig,
    rules: &Rules,
    registry: &SchemaRegistry,
    dir: &Path,
) -> std::io::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    let config = &GenConfig {
        professionals: config.professionals.max(world::MIN_PROFESSIONALS),
        beneficiaries: config.beneficiaries.max(1),
        ..config.clone()
    };
    let world = world::build(
        &world::WorldConfig {
            seed: config.seed,
            professionals: config.professionals,
            beneficiaries: config.beneficiaries,
            rsa_per_mille: config.rsa_per_mille,
            first_care_date: config.first_care_date,
            last_care_date: config.last_care_date,
            key_cache: config.key_cache.clone(),
        },
        config.threads,
    );
    write_reference_data(dir, &world)?;
    let written = write_claims(dir, config, &world, rules, registry)?;
    let manifest = Manifest {
        seed: config.seed,
        claims: config.claims,
        professionals: world.professionals.len(),
        rsa_professionals: world
            .professionals
            .iter()
            .filter(|p| p.key.alg() == crate::pki::SignatureAlg::RsaPkcs1Sha256)
            .count(),
        beneficiaries: world.beneficiaries.len(),
        institutions: world.institutions.len(),
        visitor_claims: written.visitor_claims,
        bad_claims: written.bad_claims,
        rules_version: rules.version.clone(),
    };
    let mut file = BufWriter::new(File::create(dir.join("manifest.json"))?);
    serde_json::to_writer_pretty(&mut file, &manifest)?;
    file.write_all(b"\n")?;
    file.flush()?;
    Ok(manifest)
}

/// The world's rights, PKI (certificates, then revocations) and EU
/// institutions, one JSON line each.
pub fn write_reference_data(dir: &Path, world: &world::World) -> std::io::Result<()> {
    write_jsonl(
        &dir.join("rights.jsonl"),
        world.beneficiaries.iter().map(|b| &b.rights),
    )?;
    let mut pki: Vec<PkiRecord> = world
        .professionals
        .iter()
        .map(|p| PkiRecord::from(&p.certificate))
        .collect();
    pki.extend(world.professionals.iter().filter_map(|p| {
        p.revoked_on.map(|revoked_on| PkiRecord::Revocation {
            cert: p.certificate.id.clone(),
            revoked_on,
        })
    }));
    write_jsonl(&dir.join("pki.jsonl"), &pki)?;
    write_jsonl(
        &dir.join("eu_institutions.jsonl"),
        world.institution_inputs(),
    )
}

/// What the claims written count for the manifest.
struct WrittenClaims {
    bad_claims: BTreeMap<String, usize>,
    visitor_claims: usize,
}

/// The claims, made in chunks across the threads and written in order.
fn write_claims(
    dir: &Path,
    config: &GenConfig,
    world: &world::World,
    rules: &Rules,
    registry: &SchemaRegistry,
) -> std::io::Result<WrittenClaims> {
    let claim_config = claims::ClaimConfig {
        seed: config.seed,
        bad_per_mille: config.bad_per_mille,
        visitors_per_mille: config.visitors_per_mille,
    };
    let mut written = WrittenClaims {
        bad_claims: BTreeMap::new(),
        visitor_claims: 0,
    };
    let mut out = BufWriter::new(File::create(dir.join("claims.jsonl"))?);
    let mut start = 0;
    while start < config.claims {
        let end = (start + CHUNK).min(config.claims);
        let lines = parallel_map(end - start, config.threads, |offset| {
            let generated = claims::claim(&claim_config, world, rules, registry, start + offset);
            let json =
                serde_json::to_vec(&input_from_submitted(&generated.fse)).unwrap_or_default();
            (json, generated.bad, generated.fse.ehic.is_some())
        });
        for (json, bad, visitor) in lines {
            out.write_all(&json)?;
            out.write_all(b"\n")?;
            if let Some(kind) = bad {
                *written
                    .bad_claims
                    .entry(kind.expected().to_string())
                    .or_default() += 1;
            }
            written.visitor_claims += usize::from(visitor);
        }
        start = end;
    }
    out.flush()?;
    Ok(written)
}
