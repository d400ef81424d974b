//! The time-lapse's claims: receipt days walked one by one from the start at
//! a constant daily volume, each claim's care a little before its receipt,
//! the generator's usual share of bad claims and resends. Signed once and
//! cached (signing costs far more than the run), already encoded for
//! `fse.submitted`, stamped by the simulated front door and in stamp order.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chrono::{Days, NaiveDate};
use clearing_pipeline::clock::{IngestClock, insurer_date};
use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::fse_key;
use clearing_pipeline::synth::claims::{self, ClaimConfig, Dating};
use clearing_pipeline::synth::rng::Rng;
use clearing_pipeline::synth::{parallel_map, world};
use serde::{Deserialize, Serialize};

use super::super::corpus::{RSA_PER_MILLE, WIRE_FILE, WIRE_MAGIC, WireReader, cache_root, put};

/// The draws of a claim's lateness (streams 1–4 are the generator's own).
const STREAM_LATENESS: u64 = 9;
/// The latest a claim's care is before its receipt, in days.
pub const LATEST_CARE_DAYS: u64 = 365;
/// Claims a beneficiary makes in a year: 10⁹ claims / 68 M beneficiaries.
const CLAIMS_PER_BENEFICIARY_YEAR: u64 = 15;
/// Claims generated per chunk: bounds the generator's memory.
const CHUNK: usize = 16_384;
const MANIFEST: &str = "time-lapse-corpus.json";

/// What the corpus is made of, and what of it falls in the period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub seed: u64,
    pub start: NaiveDate,
    /// The first day after the period.
    pub end: NaiveDate,
    pub per_day: u32,
    pub beneficiaries: usize,
    pub professionals: usize,
}

impl Plan {
    pub fn new(seed: u64, start: NaiveDate, years: u32, per_day: u32) -> Result<Plan> {
        let end = start
            .checked_add_months(chrono::Months::new(12 * years))
            .context("--start and --time-lapse: the end is out of range")?;
        let year_claims = u64::from(per_day) * 365;
        Ok(Plan {
            seed,
            start,
            end,
            per_day,
            beneficiaries: usize::try_from((year_claims / CLAIMS_PER_BENEFICIARY_YEAR).max(100))?,
            professionals: usize::try_from((year_claims / 40).clamp(200, 4000))?,
        })
    }

    pub fn days(&self) -> u64 {
        u64::try_from((self.end - self.start).num_days()).unwrap_or(0)
    }

    /// Claims made: `per_day` for every day of the period.
    pub fn claims(&self) -> u64 {
        self.days() * u64::from(self.per_day)
    }

    /// Claim `index`'s dates: received on the `index / per_day`-th day, its
    /// care mostly days before, some weeks, a few months.
    pub fn dating(&self, index: usize) -> Dating {
        let day = index as u64 / u64::from(self.per_day.max(1));
        let received = self.start + Days::new(day);
        let mut rng = Rng::new(self.seed, (STREAM_LATENESS << 40) | index as u64);
        let late = match rng.weighted(&[900, 80, 20]) {
            0 => rng.range(0, 7),
            1 => rng.range(8, 60),
            _ => rng.range(61, LATEST_CARE_DAYS as i64),
        };
        Dating {
            care: received - Days::new(u64::try_from(late).unwrap_or(0)),
            received,
        }
    }

    fn world_config(&self) -> world::WorldConfig {
        world::WorldConfig {
            seed: self.seed,
            professionals: self.professionals.max(world::MIN_PROFESSIONALS),
            beneficiaries: self.beneficiaries,
            rsa_per_mille: RSA_PER_MILLE,
            first_care_date: self.start - Days::new(LATEST_CARE_DAYS),
            last_care_date: self.end,
            key_cache: clearing_pipeline::synth::default_key_cache(),
        }
    }
}

/// What the cache directory holds beside the claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub plan: Plan,
    /// Claims made.
    pub claims: u64,
    /// Of which received (stamped) inside the period, in `submitted.bin`.
    pub in_period: u64,
    /// Bad claims made, by the reason the pipeline must give.
    pub bad_claims: std::collections::BTreeMap<String, u64>,
    pub rules_version: String,
    /// The generator's revision ([`clearing_pipeline::synth::REVISION`]);
    /// 0 in a corpus made before it was recorded (2026-12-06).
    #[serde(default)]
    pub generator: u32,
}

pub struct Corpus {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub reused: bool,
    pub generate_seconds: Option<f64>,
}

impl Corpus {
    pub fn wire(&self) -> Result<WireReader> {
        WireReader::open(&self.dir.join(WIRE_FILE))
    }
}

/// The corpus of `plan` in `dir` (default: the cache), made unless it is
/// there already, for the same plan and pseudonym key.
pub fn prepare(
    dir: Option<&Path>,
    plan: &Plan,
    rules: &Rules,
    registry: &SchemaRegistry,
    pseudonyms: &PseudonymKey,
) -> Result<Corpus> {
    let dir = dir.map_or_else(
        || {
            cache_root().join(format!(
                "time-lapse-seed{}-{}-{}-{}d",
                plan.seed, plan.start, plan.end, plan.per_day
            ))
        },
        Path::to_path_buf,
    );
    if let Some(manifest) = reusable(&dir, plan, rules, registry, pseudonyms) {
        return Ok(Corpus {
            dir,
            manifest,
            reused: true,
            generate_seconds: None,
        });
    }
    eprintln!(
        "loadtest: generating {} signed claims, {} a day from {} to {}, into {} (once; reused by later runs)",
        plan.claims(),
        plan.per_day,
        plan.start,
        plan.end,
        dir.display()
    );
    let started = Instant::now();
    let manifest = generate(&dir, plan, rules, registry, pseudonyms)?;
    Ok(Corpus {
        dir,
        manifest,
        reused: false,
        generate_seconds: Some(started.elapsed().as_secs_f64()),
    })
}

/// The manifest of a corpus already in `dir` for this plan, made by this
/// generator under these rules, if its records are keyed with this
/// pseudonym key.
fn reusable(
    dir: &Path,
    plan: &Plan,
    rules: &Rules,
    registry: &SchemaRegistry,
    pseudonyms: &PseudonymKey,
) -> Option<Manifest> {
    let text = std::fs::read(dir.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_slice(&text).ok()?;
    // Claims depend on the generator and on the rules it prices and dates
    // them by: a corpus made by another of either is made again.
    if manifest.plan != *plan
        || manifest.generator != clearing_pipeline::synth::REVISION
        || manifest.rules_version != rules.version
    {
        return None;
    }
    let first = WireReader::open(&dir.join(WIRE_FILE))
        .ok()?
        .next_record()
        .ok()??;
    let fse: FseSubmitted = registry.decode_single(&first.value).ok()?;
    (fse_key(&fse, pseudonyms) == first.key).then_some(manifest)
}

/// One claim, encoded, and where it lands in the stamp order.
struct Made {
    stamp: i64,
    fse_id: String,
    key: Vec<u8>,
    value: Vec<u8>,
    bad: Option<&'static str>,
}

/// Makes the world and the claims into `dir`: the reference data as
/// `clearing gen` writes it, the claims in `submitted.bin` in stamp order.
fn generate(
    dir: &Path,
    plan: &Plan,
    rules: &Rules,
    registry: &SchemaRegistry,
    pseudonyms: &PseudonymKey,
) -> Result<Manifest> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let world = world::build(&plan.world_config(), threads);
    clearing_pipeline::synth::write_reference_data(dir, &world)
        .with_context(|| format!("reference data into {}", dir.display()))?;
    let config = ClaimConfig {
        seed: plan.seed,
        bad_per_mille: 20,
        visitors_per_mille: 20,
    };
    let date_of = |index: usize| plan.dating(index);
    let make = |index: usize| {
        let made = claims::claim_dated(&config, &world, rules, registry, index, Some(&date_of));
        stamped(
            made.fse,
            made.bad.map(|b| b.expected()),
            registry,
            pseudonyms,
        )
    };
    let unsorted_path = dir.join(format!("unsorted.tmp{}", std::process::id()));
    let mut unsorted = BufWriter::new(
        File::create(&unsorted_path).with_context(|| unsorted_path.display().to_string())?,
    );
    let mut manifest = Manifest {
        plan: plan.clone(),
        claims: plan.claims(),
        in_period: 0,
        bad_claims: Default::default(),
        rules_version: rules.version.clone(),
        generator: clearing_pipeline::synth::REVISION,
    };
    // (stamp, index, offset in the unsorted file) of the claims in the period.
    let mut order: Vec<(i64, usize, u64)> = Vec::new();
    let (total, mut offset) = (usize::try_from(plan.claims())?, 0u64);
    for start in (0..total).step_by(CHUNK) {
        let end = (start + CHUNK).min(total);
        for (i, made) in parallel_map(end - start, threads, |o| make(start + o))
            .into_iter()
            .enumerate()
        {
            if let Some(bad) = made.bad {
                *manifest.bad_claims.entry(bad.to_string()).or_default() += 1;
            }
            // A claim moved out of the period by its bad kind (a card
            // expired after the end) is not sent.
            if insurer_date(made.stamp).is_some_and(|d| d >= plan.start && d < plan.end) {
                order.push((made.stamp, start + i, offset));
                offset += write_record(&mut unsorted, &made)?;
            }
        }
    }
    unsorted.flush()?;
    drop(unsorted);
    order.sort_unstable();
    manifest.in_period = order.len() as u64;
    write_sorted(dir, &unsorted_path, &order)?;
    std::fs::remove_file(&unsorted_path).with_context(|| unsorted_path.display().to_string())?;
    std::fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| dir.join(MANIFEST).display().to_string())?;
    Ok(manifest)
}

/// The claim as the simulated front door sends it: stamped at its own
/// `received_at` (outside the signed bytes), keyed and encoded.
fn stamped(
    mut fse: FseSubmitted,
    bad: Option<&'static str>,
    registry: &SchemaRegistry,
    pseudonyms: &PseudonymKey,
) -> Made {
    let stamp = IngestClock::Simulated.stamp(&fse);
    fse.ingested_at_millis = Some(stamp);
    Made {
        stamp,
        key: fse_key(&fse, pseudonyms),
        value: registry.encode_single(&fse),
        fse_id: fse.fse_id,
        bad,
    }
}

/// One record in the wire file's layout; returns the bytes written.
fn write_record(out: &mut impl Write, made: &Made) -> Result<u64> {
    put(out, made.fse_id.as_bytes())?;
    put(out, &made.key)?;
    put(out, &made.value)?;
    out.write_all(&made.stamp.to_be_bytes())?;
    Ok((12 + made.fse_id.len() + made.key.len() + made.value.len() + 8) as u64)
}

/// `submitted.bin`: the records of the unsorted file in `order`.
fn write_sorted(dir: &Path, unsorted: &Path, order: &[(i64, usize, u64)]) -> Result<()> {
    let path = dir.join(WIRE_FILE);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut out = BufWriter::new(File::create(&tmp).with_context(|| tmp.display().to_string())?);
    out.write_all(WIRE_MAGIC)?;
    let mut input =
        BufReader::new(File::open(unsorted).with_context(|| unsorted.display().to_string())?);
    for &(_, _, offset) in order {
        input.seek(SeekFrom::Start(offset))?;
        copy_record(&mut input, &mut out)?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    Ok(())
}

/// Copies one record (three length-prefixed fields and the timestamp).
fn copy_record(input: &mut impl Read, out: &mut impl Write) -> Result<()> {
    for _ in 0..3 {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
        input.read_exact(&mut bytes)?;
        out.write_all(&len)?;
        out.write_all(&bytes)?;
    }
    let mut stamp = [0u8; 8];
    input.read_exact(&mut stamp)?;
    out.write_all(&stamp)?;
    Ok(())
}

/// Refuses a period the rule tables do not cover (the calendar is the
/// table with a last year; the others hold from their last version on).
pub fn check_period(plan: &Plan, rules: &Rules) -> Result<()> {
    let first_care = plan.start - Days::new(LATEST_CARE_DAYS);
    for day in [first_care, plan.end] {
        if clearing_pipeline::outbound::calendar::is_working_day(&rules.calendar, day).is_err() {
            bail!(
                "the rule tables do not cover {day}: choose a --start and --time-lapse inside them"
            );
        }
    }
    if rules.general.limitation.at(first_care).is_none() {
        bail!("no time-bar rule in force on {first_care}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(7, NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), 2, 5).unwrap()
    }

    #[test]
    fn receipt_days_walk_at_a_constant_volume() {
        let plan = plan();
        assert_eq!(plan.end, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        assert_eq!(plan.claims(), 731 * 5);
        let mut per_day = std::collections::BTreeMap::new();
        for i in 0..usize::try_from(plan.claims()).unwrap() {
            let d = plan.dating(i);
            *per_day.entry(d.received).or_insert(0) += 1;
            assert!(d.care <= d.received);
            assert!(d.received - d.care <= chrono::Duration::days(LATEST_CARE_DAYS as i64));
        }
        assert_eq!(per_day.len(), 731);
        assert!(per_day.values().all(|&n| n == 5));
        assert_eq!(per_day.keys().next(), Some(&plan.start));
    }

    #[test]
    fn care_is_mostly_days_before_receipt_and_sometimes_months() {
        let plan = plan();
        let lateness: Vec<i64> = (0..3000)
            .map(|i| {
                let d = plan.dating(i);
                (d.received - d.care).num_days()
            })
            .collect();
        let within_a_week = lateness.iter().filter(|&&l| l <= 7).count();
        let months = lateness.iter().filter(|&&l| l > 60).count();
        assert!(within_a_week > 2500, "{within_a_week}");
        assert!(months > 10 && months < 200, "{months}");
        // Deterministic from the seed.
        assert_eq!(plan.dating(1234), plan.dating(1234));
    }
}
