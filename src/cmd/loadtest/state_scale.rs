//! `clearing loadtest --state-scale N`: the size of state at population
//! scale, in the real store with the real keys.
//!
//! 1. **Rights.** N beneficiaries of the generator's population (the same
//!    function `clearing gen` uses, by index), each stored by
//!    `entitlement::apply_rights` into the entitlement stage's sled layout
//!    (one database, a tree per partition), in batches applied and flushed as
//!    the runtime does. Then bytes per beneficiary, on disk and logical, and
//!    the lookup rate: `get` alone, and `get` + decode + digest (what
//!    entitlement does per claim), hits in random order, and misses.
//!    Extrapolated linearly to 68 M beneficiaries.
//! 2. **Accumulators after a year.** A population of B beneficiaries making
//!    `claims_per_beneficiary` claims each over one calendar year, uniform
//!    over days and over a pool of professionals; each claim writes the
//!    reimbursement stage's keys (`state::keys`) with the shares of each key
//!    kind measured in a pipeline run (`report.json`, `state`). Daily keys
//!    live through the time-bar window (over two years: docs/rules.md,
//!    "Retention"), so this is the store a year leaves behind; the steady
//!    state is about 2.3 such years (`--time-lapse` measures it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use chrono::{Datelike, Duration, NaiveDate};
use clap::Args;
use clearing_pipeline::domain::rights::Rights;
use clearing_pipeline::ids::rpps::Rpps;
use clearing_pipeline::pseudonym::{BeneficiaryKey, PseudonymKey};
use clearing_pipeline::rules::sha256_tag;
use clearing_pipeline::stages::entitlement;
use clearing_pipeline::state::{
    MemStore, SledStore, StateRead, StateStore, StateTxn, WriteBatch, keys,
};
use clearing_pipeline::synth::{parallel_map, rng::Rng, world};
use serde::Serialize;

use super::sample;

/// The French scheme's population (beneficiaries with rights).
const POPULATION: u64 = 68_000_000;
/// Beneficiaries generated and stored per batch (the runtime's default batch
/// is 2,000 claims per partition; 20,000 over 4 partitions is about that).
const BATCH: usize = 20_000;

#[derive(Args, Clone, Debug)]
pub struct StateScaleArgs {
    /// State scale: random lookups to time.
    #[arg(long, default_value_t = 200_000)]
    pub scale_lookups: usize,
    /// State scale: close and reopen the sled database every this many
    /// rights while loading (0 = never). sled 0.34 keeps what one handle
    /// wrote resident (17 GB at 10 M rights); a reopened handle starts
    /// from its page cache, so the load fits the machine, as a store
    /// built over several worker restarts would.
    #[arg(long, default_value_t = 1_000_000)]
    pub scale_reopen_every: u64,
    /// State scale: beneficiaries of the simulated year of accumulators
    /// (0 = skip it).
    #[arg(long, default_value_t = 1_000_000)]
    pub year_beneficiaries: u64,
    /// State scale: claims per beneficiary in the year (10⁹ / 68 M ≈ 14.7).
    #[arg(long, default_value_t = 14.7)]
    pub claims_per_beneficiary: f64,
    /// State scale: per mille of claims writing a participation day key
    /// (`pfd`), an auxiliary franchise day key (`fad`), a transport
    /// franchise day key (`ftd`); comma-separated. Defaults: the shares in
    /// the reimbursement store of a 190,000-claim load test of the
    /// generator's mix (docs/performance.md).
    #[arg(long, default_value = "717,116,10")]
    pub day_keys_per_mille: String,
    /// State scale: per mille of claims that also touch the yearly
    /// participation (`pfy`) and franchise (`fry`) totals, and the deferred
    /// balance (`def`); comma-separated (defaults: as above; `def` from the
    /// share of beneficiaries holding one).
    #[arg(long, default_value = "717,700,265")]
    pub year_keys_per_mille: String,
}

#[derive(Serialize)]
struct RightsFigures {
    beneficiaries: u64,
    keys: u64,
    partitions: u32,
    load_seconds: f64,
    load_per_s: f64,
    /// Times the loader closed and reopened sled (`--scale-reopen-every`).
    reopens: u32,
    /// The process's highest RSS seen while loading (sampled per batch),
    /// and its RSS after the lookups.
    load_peak_rss_bytes: u64,
    lookup_rss_bytes: u64,
    disk_bytes: u64,
    disk_bytes_per_beneficiary: f64,
    key_value_bytes_per_beneficiary: f64,
    lookups: usize,
    /// The first pass over the sampled keys (pages from disk or the OS cache).
    get_hit_first_pass_per_s: f64,
    /// Again, sled's cache warm with what the first pass read.
    get_hit_per_s: f64,
    get_decode_digest_per_s: f64,
    get_miss_per_s: f64,
    extrapolated_68m_disk_gb: f64,
    extrapolated_68m_key_value_gb: f64,
}

#[derive(Serialize)]
struct YearFigures {
    beneficiaries: u64,
    claims: u64,
    keys: u64,
    keys_by_kind: BTreeMap<String, u64>,
    seconds: f64,
    disk_bytes: u64,
    disk_bytes_per_beneficiary: f64,
    key_value_bytes_per_beneficiary: f64,
    extrapolated_68m_disk_gb: f64,
    model: String,
}

#[derive(Serialize)]
struct StateScaleReport {
    tool: &'static str,
    machine_cores: usize,
    load_avg_before: [f64; 3],
    load_avg_after: [f64; 3],
    rights: RightsFigures,
    year: Option<YearFigures>,
}

fn per_mille(text: &str, n: usize) -> Result<Vec<u64>> {
    let values: Vec<u64> = text
        .split(',')
        .map(|v| v.trim().parse::<u64>().map(|v| v.min(1000)))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{text}: expected {n} comma-separated per-mille figures"))?;
    anyhow::ensure!(values.len() == n, "{text}: expected {n} figures");
    Ok(values)
}

fn world_config(seed: u64) -> world::WorldConfig {
    world::WorldConfig {
        seed,
        professionals: 0,
        beneficiaries: 0,
        rsa_per_mille: 0,
        first_care_date: NaiveDate::from_ymd_opt(2024, 7, 1).unwrap_or_default(),
        last_care_date: NaiveDate::from_ymd_opt(2025, 6, 30).unwrap_or_default(),
        key_cache: None,
    }
}

fn rpps(index: u64) -> String {
    Rpps::from_body(&format!("10{:08}", index % 100_000_000))
        .map(|r| r.as_str().to_string())
        .unwrap_or_default()
}

/// Opens a stage's store in `dir`: the database and a tree per partition.
fn open_trees(dir: &Path, partitions: u32) -> Result<(SledStore, Vec<SledStore>)> {
    let db = SledStore::open(dir, "meta")?;
    let trees = (0..partitions)
        .map(|p| db.tree(&format!("p{p}")))
        .collect::<Result<_, _>>()?;
    Ok((db, trees))
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

pub fn run(
    n: u64,
    out: &Path,
    partitions: u32,
    seed: u64,
    args: &StateScaleArgs,
) -> Result<ExitCode> {
    let day_shares = per_mille(&args.day_keys_per_mille, 3)?;
    let year_shares = per_mille(&args.year_keys_per_mille, 3)?;
    let load_before = sample::load_avg();
    let pseudonyms = PseudonymKey::development();
    std::fs::create_dir_all(out)?;
    let dir = out.join("state-scale");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    }
    let loader = RightsLoader {
        dir: dir.join("entitlement"),
        partitions,
        pseudonyms: &pseudonyms,
        config: world_config(seed),
        gps: (0..2000).map(rpps).collect(),
    };
    let rights = loader.measure(n, seed, args)?;
    let year = if args.year_beneficiaries > 0 {
        let year = Year {
            dir: dir.join("reimbursement"),
            partitions,
            seed,
            args,
            day: &day_shares,
            year: &year_shares,
        };
        Some(year.simulate(&pseudonyms)?)
    } else {
        None
    };
    let report = StateScaleReport {
        tool: "clearing loadtest --state-scale",
        machine_cores: threads(),
        load_avg_before: load_before,
        load_avg_after: sample::load_avg(),
        rights,
        year,
    };
    let path = out.join("state-scale.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| path.display().to_string())?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Part 1: generated beneficiaries' rights into the entitlement store.
struct RightsLoader<'a> {
    dir: PathBuf,
    partitions: u32,
    pseudonyms: &'a PseudonymKey,
    config: world::WorldConfig,
    /// The general practitioners the beneficiaries declare.
    gps: Vec<String>,
}

/// What loading the rights left.
struct Loaded {
    keys: u64,
    kv_bytes: u64,
    reopens: u32,
    load_peak_rss_bytes: u64,
    load_seconds: f64,
    /// Keys to look up (partition, key): one beneficiary in `sample_every`.
    sample_keys: Vec<(u32, Vec<u8>)>,
}

/// Lookup rates (per second) on the loaded store.
struct Lookups {
    get_hit_first_pass_per_s: f64,
    get_hit_per_s: f64,
    get_decode_digest_per_s: f64,
    get_miss_per_s: f64,
    lookup_rss_bytes: u64,
}

impl RightsLoader<'_> {
    /// Loads `n` beneficiaries' rights, times lookups, and reports.
    fn measure(&self, n: u64, seed: u64, args: &StateScaleArgs) -> Result<RightsFigures> {
        let mut loaded = self.load(n, args)?;
        let disk_bytes = sample::dir_bytes(&self.dir);
        let lookups = self.lookups(&mut loaded.sample_keys, seed)?;
        let scale = POPULATION as f64 / n.max(1) as f64;
        let rights = RightsFigures {
            beneficiaries: n,
            // Keys written; a rare NIR collision between two generated
            // beneficiaries overwrites one (not counted by a scan: a full scan
            // of a cold 10 M-key sled tree took over 15 minutes of small reads).
            keys: loaded.keys,
            partitions: self.partitions,
            load_seconds: loaded.load_seconds,
            load_per_s: n as f64 / loaded.load_seconds.max(1e-9),
            reopens: loaded.reopens,
            load_peak_rss_bytes: loaded.load_peak_rss_bytes,
            lookup_rss_bytes: lookups.lookup_rss_bytes,
            disk_bytes,
            disk_bytes_per_beneficiary: disk_bytes as f64 / n.max(1) as f64,
            key_value_bytes_per_beneficiary: loaded.kv_bytes as f64 / n.max(1) as f64,
            lookups: loaded.sample_keys.len(),
            get_hit_first_pass_per_s: lookups.get_hit_first_pass_per_s,
            get_hit_per_s: lookups.get_hit_per_s,
            get_decode_digest_per_s: lookups.get_decode_digest_per_s,
            get_miss_per_s: lookups.get_miss_per_s,
            extrapolated_68m_disk_gb: disk_bytes as f64 * scale / 1e9,
            extrapolated_68m_key_value_gb: loaded.kv_bytes as f64 * scale / 1e9,
        };
        eprintln!(
            "state scale: {} beneficiaries' rights: {:.0} bytes each on disk ({:.0} key+value); {:.0} gets/s, {:.0} get+decode/s; 68 M → {:.1} GB",
            n,
            rights.disk_bytes_per_beneficiary,
            rights.key_value_bytes_per_beneficiary,
            rights.get_hit_per_s,
            rights.get_decode_digest_per_s,
            rights.extrapolated_68m_disk_gb
        );
        Ok(rights)
    }

    /// In batches applied and flushed as the runtime does, the database
    /// reopened every `--scale-reopen-every` rights.
    fn load(&self, n: u64, args: &StateScaleArgs) -> Result<Loaded> {
        let (mut db, mut trees) = open_trees(&self.dir, self.partitions)?;
        let mut loaded = Loaded {
            keys: 0,
            kv_bytes: 0,
            reopens: 0,
            load_peak_rss_bytes: 0,
            load_seconds: 0.0,
            sample_keys: Vec::new(),
        };
        let sample_every = (n / args.scale_lookups.max(1) as u64).max(1);
        let started = Instant::now();
        let mut start = 0u64;
        while start < n {
            let count = usize::try_from((n - start).min(BATCH as u64))?;
            let batches = self.batches(start, count, sample_every, &mut loaded);
            for (tree, batch) in trees.iter().zip(&batches) {
                loaded.keys += batch.len() as u64;
                tree.apply(batch)?;
                tree.flush()?;
            }
            loaded.load_peak_rss_bytes = loaded.load_peak_rss_bytes.max(sample::rss_bytes());
            let reopen = args.scale_reopen_every;
            if reopen > 0 && start / reopen != (start + count as u64) / reopen {
                drop(trees);
                drop(db);
                (db, trees) = open_trees(&self.dir, self.partitions)?;
                loaded.reopens += 1;
            }
            start += count as u64;
            let rate = start as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rstate scale: rights {start:>10}/{n}  {rate:>8.0}/s  {:>6.0} s  rss {:>5.0} MB ",
                started.elapsed().as_secs_f64(),
                sample::rss_bytes() as f64 / 1e6
            );
        }
        eprintln!();
        loaded.load_seconds = started.elapsed().as_secs_f64();
        Ok(loaded)
    }

    /// The writes of beneficiaries `start..start + count` by partition,
    /// their keys sampled and their bytes counted into `loaded`.
    fn batches(
        &self,
        start: u64,
        count: usize,
        sample_every: u64,
        loaded: &mut Loaded,
    ) -> Vec<WriteBatch> {
        let made = parallel_map(count, threads(), |i| {
            let index = start + i as u64;
            let beneficiary = world::beneficiary(&self.config, index as usize, &self.gps);
            let scratch = MemStore::default();
            let mut txn = StateTxn::new(&scratch);
            let key =
                entitlement::apply_rights(beneficiary.rights, &mut txn, self.pseudonyms).ok()?;
            Some((index, key.partition(self.partitions), txn.into_writes()))
        });
        let mut batches: Vec<WriteBatch> = vec![WriteBatch::new(); self.partitions as usize];
        for (index, partition, writes) in made.into_iter().flatten() {
            for (key, value) in writes {
                if index % sample_every == 0 {
                    loaded.sample_keys.push((partition, key.clone()));
                }
                loaded.kv_bytes += (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
                batches[partition as usize].insert(key, value);
            }
        }
        batches
    }

    /// Lookups on a reopened store (as a restarted worker finds it), the
    /// sampled keys in random order: hits twice, hits decoded and digested
    /// (what entitlement does per claim), and misses.
    fn lookups(&self, sample_keys: &mut [(u32, Vec<u8>)], seed: u64) -> Result<Lookups> {
        let (db, trees) = open_trees(&self.dir, self.partitions)?;
        let mut rng = Rng::new(seed, 0x5ca1e);
        for i in (1..sample_keys.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            sample_keys.swap(i, j);
        }
        let timed = |f: &dyn Fn(&SledStore, &[u8]) -> Result<()>| -> Result<f64> {
            let started = Instant::now();
            for (partition, key) in sample_keys.iter() {
                f(&trees[*partition as usize], key)?;
            }
            Ok(sample_keys.len() as f64 / started.elapsed().as_secs_f64().max(1e-9))
        };
        let get = |tree: &SledStore, key: &[u8]| -> Result<()> {
            std::hint::black_box(tree.get(key)?.context("a stored key is missing")?);
            Ok(())
        };
        let lookups = Lookups {
            get_hit_first_pass_per_s: timed(&get)?,
            get_hit_per_s: timed(&get)?,
            get_decode_digest_per_s: timed(&|tree, key| {
                let bytes = tree.get(key)?.context("a stored key is missing")?;
                let rights: Rights = serde_json::from_slice(&bytes)?;
                std::hint::black_box((rights, sha256_tag(&bytes)));
                Ok(())
            })?,
            get_miss_per_s: timed(&|tree, key| {
                let mut other = key.to_vec();
                if let Some(last) = other.last_mut() {
                    *last = if *last == b'0' { b'1' } else { b'0' };
                }
                std::hint::black_box(tree.get(&other)?);
                Ok(())
            })?,
            lookup_rss_bytes: sample::rss_bytes(),
        };
        drop(trees);
        drop(db);
        Ok(lookups)
    }
}

/// Part 2: a year of the reimbursement stage's accumulators.
struct Year<'a> {
    dir: PathBuf,
    partitions: u32,
    seed: u64,
    args: &'a StateScaleArgs,
    /// Per mille of claims writing each day key (pfd, fad, ftd).
    day: &'a [u64],
    /// Per mille of claims touching each yearly key (pfy, fry, def).
    year: &'a [u64],
}

impl Year<'_> {
    fn simulate(&self, pseudonyms: &PseudonymKey) -> Result<YearFigures> {
        let args = self.args;
        let population = args.year_beneficiaries;
        let who = self.population(pseudonyms)?;
        let claims = (population as f64 * args.claims_per_beneficiary).round() as u64;
        let professionals: Vec<String> = (0..100_000).map(rpps).collect();
        let (db, trees) = open_trees(&self.dir, self.partitions)?;
        let started = Instant::now();
        self.write_claims(&who, &professionals, claims, &trees)?;
        let seconds = started.elapsed().as_secs_f64();
        let (by_kind, total_keys, total_kv) = count_by_kind(&trees)?;
        drop(trees);
        drop(db);
        let disk_bytes = sample::dir_bytes(&self.dir);
        let scale = POPULATION as f64 / population.max(1) as f64;
        Ok(YearFigures {
            beneficiaries: population,
            claims,
            keys: total_keys,
            keys_by_kind: by_kind,
            seconds,
            disk_bytes,
            disk_bytes_per_beneficiary: disk_bytes as f64 / population.max(1) as f64,
            key_value_bytes_per_beneficiary: total_kv as f64 / population.max(1) as f64,
            extrapolated_68m_disk_gb: disk_bytes as f64 * scale / 1e9,
            model: format!(
                "{:.1} claims per beneficiary over 2025, uniform over days and 100,000 professionals; per mille of claims writing pfd/fad/ftd {}, pfy/fry/def {}",
                args.claims_per_beneficiary, args.day_keys_per_mille, args.year_keys_per_mille
            ),
        })
    }

    /// The beneficiaries' keys.
    fn population(&self, pseudonyms: &PseudonymKey) -> Result<Vec<BeneficiaryKey>> {
        let config = world_config(self.seed);
        let population = usize::try_from(self.args.year_beneficiaries)?;
        Ok(parallel_map(population, threads(), |i| {
            let rights = world::beneficiary(&config, i, &[]).rights;
            let birth = rights.birth_date;
            let rank = rights.rank;
            rights
                .check()
                .map(|(nir, _)| pseudonyms.insured(&nir, birth, rank))
                .unwrap_or_else(|_| BeneficiaryKey::from_stored(&format!("k1-{i:032x}")))
        }))
    }

    /// `claims` claims of random beneficiaries, days and professionals,
    /// each writing its keys, in batches applied and flushed.
    fn write_claims(
        &self,
        who: &[BeneficiaryKey],
        professionals: &[String],
        claims: u64,
        trees: &[SledStore],
    ) -> Result<()> {
        let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
        let mut rng = Rng::new(self.seed, 0x7ea7);
        let started = Instant::now();
        let mut done = 0u64;
        while done < claims {
            let count = (claims - done).min(BATCH as u64 * 5);
            let mut batches: Vec<WriteBatch> = vec![WriteBatch::new(); self.partitions as usize];
            for j in 0..count {
                let b = &who[rng.below(self.args.year_beneficiaries) as usize];
                let care = first + Duration::days(rng.range(0, 364));
                let rpps = &professionals[rng.below(professionals.len() as u64) as usize];
                let partition = b.partition(self.partitions) as usize;
                for key in self.claim_keys(&mut rng, b, care, rpps) {
                    // The value is an i64 (`StateTxn::put_i64`), whatever it holds.
                    batches[partition].insert(key, Some((done + j).to_be_bytes().to_vec()));
                }
            }
            for (tree, batch) in trees.iter().zip(&batches) {
                tree.apply(batch)?;
                tree.flush()?;
            }
            done += count;
            eprint!(
                "\rstate scale: a year of accumulators, claim {done:>10}/{claims}  {:>6.0} s ",
                started.elapsed().as_secs_f64()
            );
        }
        eprintln!();
        Ok(())
    }

    /// The keys one claim writes, each kind drawn with its share.
    fn claim_keys(
        &self,
        rng: &mut Rng,
        b: &BeneficiaryKey,
        care: NaiveDate,
        rpps: &str,
    ) -> Vec<Vec<u8>> {
        let (day, year) = (self.day, self.year);
        let mut roll = |share: u64| rng.below(1000) < share;
        let mut writes = Vec::new();
        if roll(day[0]) {
            writes.push(keys::participation_day(b, care, rpps));
        }
        if roll(day[1]) {
            writes.push(keys::auxiliary_franchise_day(b, care, rpps));
        }
        if roll(day[2]) {
            writes.push(keys::transport_franchise_day(b, care));
        }
        if roll(year[0]) {
            writes.push(keys::participation_year(b, care.year()));
        }
        if roll(year[1]) {
            writes.push(keys::franchise_year(b, care.year()));
        }
        if roll(year[2]) {
            writes.push(keys::deferred_balance(b));
        }
        writes
    }
}

/// Keys by kind, keys and key+value bytes, counted kind by kind and
/// partition by partition: one scan holds a slice.
fn count_by_kind(trees: &[SledStore]) -> Result<(BTreeMap<String, u64>, u64, usize)> {
    let (mut by_kind, mut total_keys, mut total_kv) = (BTreeMap::new(), 0u64, 0usize);
    for kind in ["pfd", "fad", "ftd", "pfy", "fry", "def"] {
        let mut count = 0u64;
        for tree in trees {
            let found = tree.scan_prefix(format!("{kind}/").as_bytes())?;
            count += found.len() as u64;
            total_kv += found.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        }
        total_keys += count;
        by_kind.insert(kind.to_string(), count);
    }
    Ok((by_kind, total_keys, total_kv))
}
