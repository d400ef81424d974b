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
//!    never expire today, so this is the store a year leaves behind.

use std::collections::BTreeMap;
use std::path::Path;
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
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let pseudonyms = PseudonymKey::development();
    std::fs::create_dir_all(out)?;
    let dir = out.join("state-scale");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    }

    // 1. Rights.
    let config = world_config(seed);
    let gps: Vec<String> = (0..2000).map(rpps).collect();
    let open_trees = || -> Result<(SledStore, Vec<SledStore>)> {
        let db = SledStore::open(&dir.join("entitlement"), "meta")?;
        let trees = (0..partitions)
            .map(|p| db.tree(&format!("p{p}")))
            .collect::<Result<_, _>>()?;
        Ok((db, trees))
    };
    let (mut db, mut trees) = open_trees()?;
    let mut reopens = 0u32;
    let mut load_peak_rss_bytes = 0u64;
    let sample_every = (n / args.scale_lookups.max(1) as u64).max(1);
    let mut sample_keys: Vec<(u32, Vec<u8>)> = Vec::new();
    let (mut keys, mut kv_bytes) = (0u64, 0u64);
    let started = Instant::now();
    let mut start = 0u64;
    while start < n {
        let count = usize::try_from((n - start).min(BATCH as u64))?;
        let made = parallel_map(count, threads, |i| {
            let index = start + i as u64;
            let beneficiary = world::beneficiary(&config, index as usize, &gps);
            let scratch = MemStore::default();
            let mut txn = StateTxn::new(&scratch);
            let key = entitlement::apply_rights(beneficiary.rights, &mut txn, &pseudonyms).ok()?;
            Some((index, key.partition(partitions), txn.into_writes()))
        });
        let mut batches: Vec<WriteBatch> = vec![WriteBatch::new(); partitions as usize];
        for (index, partition, writes) in made.into_iter().flatten() {
            for (key, value) in writes {
                if index % sample_every == 0 {
                    sample_keys.push((partition, key.clone()));
                }
                kv_bytes += (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
                batches[partition as usize].insert(key, value);
            }
        }
        for (tree, batch) in trees.iter().zip(&batches) {
            keys += batch.len() as u64;
            tree.apply(batch)?;
            tree.flush()?;
        }
        load_peak_rss_bytes = load_peak_rss_bytes.max(sample::rss_bytes());
        let reopen = args.scale_reopen_every;
        if reopen > 0 && start / reopen != (start + count as u64) / reopen {
            drop(trees);
            drop(db);
            (db, trees) = open_trees()?;
            reopens += 1;
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
    let load_seconds = started.elapsed().as_secs_f64();
    drop(trees);
    drop(db);
    let disk_bytes = sample::dir_bytes(&dir.join("entitlement"));

    // Lookups on a reopened store (as a restarted worker finds it).
    let (db, trees) = open_trees()?;
    let mut rng = Rng::new(seed, 0x5ca1e);
    for i in (1..sample_keys.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        sample_keys.swap(i, j);
    }
    let timed = |f: &dyn Fn(&SledStore, &[u8]) -> Result<()>| -> Result<f64> {
        let started = Instant::now();
        for (partition, key) in &sample_keys {
            f(&trees[*partition as usize], key)?;
        }
        Ok(sample_keys.len() as f64 / started.elapsed().as_secs_f64().max(1e-9))
    };
    let get = |tree: &SledStore, key: &[u8]| -> Result<()> {
        std::hint::black_box(tree.get(key)?.context("a stored key is missing")?);
        Ok(())
    };
    let get_hit_first_pass_per_s = timed(&get)?;
    let get_hit_per_s = timed(&get)?;
    let get_decode_digest_per_s = timed(&|tree, key| {
        let bytes = tree.get(key)?.context("a stored key is missing")?;
        let rights: Rights = serde_json::from_slice(&bytes)?;
        std::hint::black_box((rights, sha256_tag(&bytes)));
        Ok(())
    })?;
    let get_miss_per_s = timed(&|tree, key| {
        let mut other = key.to_vec();
        if let Some(last) = other.last_mut() {
            *last = if *last == b'0' { b'1' } else { b'0' };
        }
        std::hint::black_box(tree.get(&other)?);
        Ok(())
    })?;
    let lookup_rss_bytes = sample::rss_bytes();
    drop(trees);
    drop(db);
    let scale = POPULATION as f64 / n.max(1) as f64;
    let rights = RightsFigures {
        beneficiaries: n,
        // Keys written; a rare NIR collision between two generated
        // beneficiaries overwrites one (not counted by a scan: a full scan
        // of a cold 10 M-key sled tree took over 15 minutes of small reads).
        keys,
        partitions,
        load_seconds,
        load_per_s: n as f64 / load_seconds.max(1e-9),
        reopens,
        load_peak_rss_bytes,
        lookup_rss_bytes,
        disk_bytes,
        disk_bytes_per_beneficiary: disk_bytes as f64 / n.max(1) as f64,
        key_value_bytes_per_beneficiary: kv_bytes as f64 / n.max(1) as f64,
        lookups: sample_keys.len(),
        get_hit_first_pass_per_s,
        get_hit_per_s,
        get_decode_digest_per_s,
        get_miss_per_s,
        extrapolated_68m_disk_gb: disk_bytes as f64 * scale / 1e9,
        extrapolated_68m_key_value_gb: kv_bytes as f64 * scale / 1e9,
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

    // 2. A year of accumulators.
    let year = if args.year_beneficiaries > 0 {
        Some(simulate_year(
            &dir.join("reimbursement"),
            partitions,
            seed,
            args,
            &day_shares,
            &year_shares,
            &pseudonyms,
        )?)
    } else {
        None
    };

    let report = StateScaleReport {
        tool: "clearing loadtest --state-scale",
        machine_cores: threads,
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

fn simulate_year(
    dir: &Path,
    partitions: u32,
    seed: u64,
    args: &StateScaleArgs,
    day: &[u64],
    year: &[u64],
    pseudonyms: &PseudonymKey,
) -> Result<YearFigures> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let population = args.year_beneficiaries;
    let config = world_config(seed);
    let who: Vec<BeneficiaryKey> = parallel_map(usize::try_from(population)?, threads, |i| {
        let rights = world::beneficiary(&config, i, &[]).rights;
        let birth = rights.birth_date;
        let rank = rights.rank;
        rights
            .check()
            .map(|(nir, _)| pseudonyms.insured(&nir, birth, rank))
            .unwrap_or_else(|_| BeneficiaryKey::from_stored(&format!("k1-{i:032x}")))
    });
    let professionals: Vec<String> = (0..100_000).map(rpps).collect();
    let claims = (population as f64 * args.claims_per_beneficiary).round() as u64;
    let db = SledStore::open(dir, "meta")?;
    let trees: Vec<SledStore> = (0..partitions)
        .map(|p| db.tree(&format!("p{p}")))
        .collect::<Result<_, _>>()?;
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    let mut rng = Rng::new(seed, 0x7ea7);
    let started = Instant::now();
    let mut done = 0u64;
    while done < claims {
        let count = (claims - done).min(BATCH as u64 * 5);
        let mut batches: Vec<WriteBatch> = vec![WriteBatch::new(); partitions as usize];
        for j in 0..count {
            let b = &who[rng.below(population) as usize];
            let care = first + Duration::days(rng.range(0, 364));
            let rpps = &professionals[rng.below(professionals.len() as u64) as usize];
            let roll = |rng: &mut Rng, share: u64| rng.below(1000) < share;
            let mut writes = Vec::new();
            if roll(&mut rng, day[0]) {
                writes.push(keys::participation_day(b, care, rpps));
            }
            if roll(&mut rng, day[1]) {
                writes.push(keys::auxiliary_franchise_day(b, care, rpps));
            }
            if roll(&mut rng, day[2]) {
                writes.push(keys::transport_franchise_day(b, care));
            }
            if roll(&mut rng, year[0]) {
                writes.push(keys::participation_year(b, care.year()));
            }
            if roll(&mut rng, year[1]) {
                writes.push(keys::franchise_year(b, care.year()));
            }
            if roll(&mut rng, year[2]) {
                writes.push(keys::deferred_balance(b));
            }
            let partition = b.partition(partitions) as usize;
            for key in writes {
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
    let seconds = started.elapsed().as_secs_f64();
    // Counted kind by kind, partition by partition: one scan holds a slice.
    let (mut by_kind, mut total_keys, mut total_kv) = (BTreeMap::new(), 0u64, 0usize);
    for kind in ["pfd", "fad", "ftd", "pfy", "fry", "def"] {
        let mut count = 0u64;
        for tree in &trees {
            let found = tree.scan_prefix(format!("{kind}/").as_bytes())?;
            count += found.len() as u64;
            total_kv += found.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        }
        total_keys += count;
        by_kind.insert(kind.to_string(), count);
    }
    drop(trees);
    drop(db);
    let disk_bytes = sample::dir_bytes(dir);
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
