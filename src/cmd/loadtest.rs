//! `clearing loadtest`: a realistic stream of signed claims (the generator's
//! mix) through the four stages on the local log or Kafka, at a fixed rate or
//! flat out, with the raw limits measured in the same run so that every
//! figure is also a ratio (docs/performance.md).
//!
//! Threads, all in this process: a feeder (`lt-feeder`) publishes the corpus
//! to `fse.submitted` at the rate; the four stages run as in `clearing run`
//! (`st-<stage>`, or `st-chain-<n>` with `--layout chained`; each worker
//! measures its own CPU); a reader (`lt-reader`) follows `fse.decided` and
//! `fse.rejected`; the main thread samples CPU, memory, stage counters and
//! consumer lag every second and draws the progress bar. Then, with the
//! pipeline stopped: signature verification of the same claims alone, and a
//! bare consume→produce loop over the same records on the same bus.
//!
//! **Latency clock.** The process's monotonic clock (`Instant`); feeder and
//! reader share it. The start is, at a fixed rate, the time the claim was
//! *due* by the schedule (so a feeder that falls behind cannot hide queueing:
//! no coordinated omission) and, flat out, the time it was handed to the
//! producer. The end is the time the reader saw its decision. `received_at`
//! is part of the signed bytes (docs/signatures.md), so it is never
//! re-stamped; the start times live in a side table keyed by FSE id.

mod corpus;
mod html;
mod raw;
mod report;
mod sample;
mod state_scale;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clearing_pipeline::bus::Bus;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::codec::{AvroField, Decoder};
use clearing_pipeline::events::model::EventHeader;
use clearing_pipeline::events::registry::{SchemaRegistry, split_single};
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::runtime::ingest::{Ingest, partition_of};
use clearing_pipeline::runtime::{self, Progress, Shared, StageKind, topics};
use clearing_pipeline::state::{SledStore, StateStore};
use hdrhistogram::Histogram;

use self::report::*;
use super::args::{Partitions, Signatures, WorkerArgs};
use super::{for_each_line, open_bus, pseudonym_key};

pub use state_scale::StateScaleArgs;

const GROUP: &str = "loadtest";
/// Flat out, and the most a fixed-rate feeder holds before a flush.
const FEED_CHUNK: usize = 1000;
/// A fixed-rate feeder flushes at least this often.
const FEED_FLUSH_EVERY: Duration = Duration::from_millis(5);
/// Corpus size of a flat-out run bounded by duration only.
const FLAT_OUT_CORPUS: u64 = 100_000;
const LATENCY_MAX_US: u64 = 3_600_000_000;

#[derive(Args)]
pub struct LoadtestArgs {
    /// `local:DIR` (default: a fresh log in `<out>/bus`) or
    /// `kafka://HOST:PORT[/NAMESPACE]` (without a namespace, a fresh
    /// `loadtest-<time>` one, so every run starts on empty topics).
    #[arg(long)]
    pub bus: Option<String>,
    /// Claims to send (default 20,000 unless --duration is given).
    #[arg(long)]
    pub claims: Option<u64>,
    /// Seconds to send for.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Claims per second; 0 = flat out. (31.7/s is the billion-a-year mean.)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// A `clearing gen` output to send (generated there if empty). Default:
    /// a cached corpus of the seed and size under ~/.cache/clearing/loadtest.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    #[command(flatten)]
    pub partitions: Partitions,
    /// Where report.json, report.html and (local bus) the log and state go.
    #[arg(long, default_value = "./data/loadtest")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub workers: WorkerArgs,
    #[command(flatten)]
    pub signatures: Signatures,
    /// Seconds to wait for the last outcomes once the feeder is done.
    #[arg(long, default_value_t = 600)]
    pub drain_timeout: u64,
    /// Claims of the corpus the raw verification rate is measured on.
    #[arg(long, default_value_t = 3000)]
    pub verify_claims: usize,
    /// Most records the bus pass-through loop moves.
    #[arg(long, default_value_t = 200_000)]
    pub passthrough_records: u64,
    /// Skip the raw limits (verification, bus pass-through).
    #[arg(long)]
    pub no_raw: bool,
    /// Instead of a run: the state-scale measurement with this many
    /// beneficiaries' rights in sled (e.g. 10000000), and a simulated year
    /// of accumulators. Writes state-scale.json.
    #[arg(long)]
    pub state_scale: Option<u64>,
    /// Feeder, reader and sampler only: the stages run elsewhere, as
    /// `clearing run --group loadtest` on the same Kafka namespace (several
    /// machines). Dead letters are then not counted (no stage statistics).
    #[arg(long)]
    pub no_stages: bool,
    #[command(flatten)]
    pub scale: StateScaleArgs,
}

/// Counters shared by the feeder, the reader, the stages' reporter and the
/// sampler.
struct Live {
    fed: AtomicU64,
    paid: AtomicU64,
    rejected: AtomicU64,
    unmatched: AtomicU64,
    feeding_done: AtomicBool,
    wraps: AtomicU64,
    /// Start times by FSE id, oldest first (a duplicate shares its id).
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
    latency: Mutex<Histogram<u64>>,
    /// Claims started after the warm-up ([`Plan::warm_up`]) only.
    latency_steady: Mutex<Histogram<u64>>,
    /// Since the last sample (per-second percentiles).
    interval: Mutex<Histogram<u64>>,
    progress: Mutex<Progress>,
    first_sent: Mutex<Option<Instant>>,
    last_outcome: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).context("latency histogram")
}

impl Live {
    fn new() -> Result<Live> {
        Ok(Live {
            fed: AtomicU64::new(0),
            paid: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            feeding_done: AtomicBool::new(false),
            wraps: AtomicU64::new(0),
            sent: Mutex::new(HashMap::new()),
            latency: Mutex::new(histogram()?),
            latency_steady: Mutex::new(histogram()?),
            interval: Mutex::new(histogram()?),
            progress: Mutex::new(Progress::default()),
            first_sent: Mutex::new(None),
            last_outcome: Mutex::new(None),
        })
    }

    fn decided(&self) -> u64 {
        self.paid.load(Ordering::Relaxed) + self.rejected.load(Ordering::Relaxed)
    }

    /// Claims dead-lettered by a stage (reference-data errors excluded).
    fn claim_dead_letters(&self) -> u64 {
        lock(&self.progress)
            .stats
            .iter()
            .map(|(_, s)| s.dead_letters.saturating_sub(s.ref_errors))
            .sum()
    }

    fn outcomes(&self) -> u64 {
        self.decided() + self.claim_dead_letters()
    }
}

/// What the feeder is asked to send.
struct Plan {
    claims: Option<u64>,
    duration: Option<Duration>,
    rate: f64,
}

impl Plan {
    /// The start of a run left out of the steady-state latency: a tenth of
    /// its planned length, between 1 and 10 s. The stages have just opened
    /// their stores, and each partition's first batch applies the reference
    /// data published before the run (entitlement: every beneficiary's
    /// rights), which a pipeline that runs all day does as the data comes.
    fn warm_up(&self) -> Duration {
        let planned = match (self.duration, self.claims) {
            (Some(d), _) => d.as_secs_f64(),
            (None, Some(n)) if self.rate > 0.0 => n as f64 / self.rate,
            _ => 0.0,
        };
        Duration::from_secs_f64((planned / 10.0).clamp(1.0, 10.0))
    }
}

pub fn run(args: LoadtestArgs) -> Result<ExitCode> {
    if let Some(n) = args.state_scale {
        return state_scale::run(n, &args.out, args.partitions.count, args.seed, &args.scale);
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--rate must be 0 (flat out) or a positive number of claims/s");
    }
    if args.claims.is_some() && args.duration.is_some() {
        bail!("give --claims or --duration, not both");
    }
    let plan = Plan {
        claims: match (args.claims, args.duration) {
            (Some(n), _) => Some(n),
            (None, None) => Some(20_000),
            (None, Some(_)) => None,
        },
        duration: args.duration.map(Duration::from_secs_f64),
        rate: args.rate,
    };
    let needed = match (plan.claims, args.duration) {
        (Some(n), _) => n,
        (None, Some(d)) if args.rate > 0.0 => (d * args.rate).ceil() as u64,
        _ => FLAT_OUT_CORPUS,
    }
    .max(1);
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_before = sample::load_avg();

    let corpus = corpus::prepare(args.corpus.as_deref(), args.seed, needed)?;
    if corpus.claims < needed {
        eprintln!(
            "loadtest: the corpus has {} claims, the run needs {needed}: claims sent again are duplicates (rejected by validation)",
            corpus.claims
        );
    }
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;
    corpus.ensure_wire(&registry, &pseudonyms)?;

    if args.no_stages
        && !args
            .bus
            .as_deref()
            .and_then(|url| url.strip_prefix("kafka://"))
            .is_some_and(|rest| rest.contains('/'))
    {
        bail!(
            "--no-stages needs --bus kafka://HOST:PORT/NAMESPACE, the namespace the `clearing run` processes use"
        );
    }
    let bus_url = match &args.bus {
        Some(url) if url.starts_with("kafka://") && !url["kafka://".len()..].contains('/') => {
            format!("{url}/loadtest-{started_unix_s}")
        }
        Some(url) => url.clone(),
        None => {
            let dir = args.out.join("bus");
            remove_dir(&dir)?;
            format!("local:{}", dir.display())
        }
    };
    let state_dir = args.out.join("state");
    remove_dir(&state_dir)?;
    let bus = open_bus(&bus_url)?;
    if bus_url.starts_with("kafka://") {
        // Like the demo, a load test is a simulation on claims it makes:
        // `clearing run`'s refusals of unsafe settings do not apply.
        eprintln!(
            "loadtest: a simulation on synthetic claims: the unsafe settings `clearing run` \
             refuses on Kafka without --simulation are accepted here{}",
            if args.no_stages {
                "; the `clearing run` processes on this namespace need --simulation"
            } else {
                ""
            }
        );
    }
    runtime::ensure_topics(bus.as_ref(), args.partitions.count)?;
    if bus.end_offset(topics::FSE_SUBMITTED, 0)? > 0 {
        bail!(
            "{}: fse.submitted is not empty; a load test needs fresh topics",
            bus.describe()
        );
    }
    eprintln!(
        "loadtest: reference data of {} onto {}",
        corpus.dir.display(),
        bus.describe()
    );
    publish_reference(bus.as_ref(), &registry, &pseudonyms, &corpus.dir)?;

    let rules = Arc::new(super::load_rules(None)?);
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        rules: rules.clone(),
        registry: Arc::new(SchemaRegistry::new()?),
        pseudonyms: pseudonyms.clone(),
        trust_unsigned: args.signatures.trust_unsigned,
        state_dir: state_dir.clone(),
        group: GROUP.into(),
        batch_max: args.workers.batch_max(),
        verify_threads: args
            .workers
            .verify_threads
            .unwrap_or_else(clearing_pipeline::runtime::cores),
        workers_per_stage: args.workers.workers_per_stage(),
        layout: args.workers.layout,
    });
    let live = Live::new()?;
    let expected = plan.claims.unwrap_or(needed);
    eprintln!(
        "loadtest: {} claims {} through the four stages ({} partitions, batch {})",
        plan.claims.map_or_else(
            || format!("{:.0} s of", args.duration.unwrap_or(0.0)),
            |n| n.to_string()
        ),
        if plan.rate > 0.0 {
            format!(
                "at {:.0}/s ({:.0}× the billion-a-year mean)",
                plan.rate,
                plan.rate / BILLION_A_YEAR_PER_S
            )
        } else {
            "flat out".to_string()
        },
        args.partitions.count,
        args.workers.batch
    );

    let partitions = args.partitions.count;
    let stage_stop = AtomicBool::new(false);
    let reader_stop = AtomicBool::new(false);
    let feeder_stop = AtomicBool::new(false);
    // The origin, so every chart starts at zero.
    let mut timeline: Vec<Sample> = vec![Sample {
        t_s: 0.0,
        fed: 0,
        outcomes: 0,
        fed_per_s: 0.0,
        outcomes_per_s: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        cpu_percent: 0.0,
        rss_mb: sample::rss_bytes() as f64 / 1e6,
        state_memory_mb: 0.0,
        stage_inputs: vec![0; StageKind::DECIDING.len()],
        lag: vec![0; StageKind::DECIDING.len()],
    }];
    let mut thread_cpu: BTreeMap<String, f64> = BTreeMap::new();
    let (cpu_start, rss_start) = (sample::process_cpu_s(), sample::rss_bytes());
    let run_started = Instant::now();
    let mut feed_ended: Option<Instant> = None;
    let mut complete = false;

    let outcome: Result<()> = std::thread::scope(|scope| {
        let live = &live;
        let (shared, stage_stop, reader_stop, feeder_stop) =
            (&shared, &stage_stop, &reader_stop, &feeder_stop);
        let (bus_ref, corpus, plan): (&dyn Bus, _, _) = (bus.as_ref(), &corpus, &plan);
        let no_stages = args.no_stages;
        let stages = scope.spawn(move || {
            let report = |p: &Progress| *lock(&live.progress) = p.clone();
            let result = if no_stages {
                // The stages run in other processes; nothing to do but wait.
                while !stage_stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(Progress::default())
            } else {
                runtime::run_stages(
                    shared.clone(),
                    &StageKind::DECIDING,
                    stage_stop,
                    false,
                    Duration::from_millis(250),
                    &report,
                )
            };
            // Stages gone: the reader makes its last pass and stops.
            reader_stop.store(true, Ordering::Release);
            result
        });
        let reader = std::thread::Builder::new()
            .name("lt-reader".into())
            .spawn_scoped(scope, move || {
                follow(bus_ref, live, plan.warm_up(), reader_stop)
            })?;
        let feeder = std::thread::Builder::new()
            .name("lt-feeder".into())
            .spawn_scoped(scope, move || {
                let result = feed(bus_ref, corpus, plan, partitions, live, feeder_stop);
                live.feeding_done.store(true, Ordering::Release);
                result
            })?;

        let interactive = std::io::stderr().is_terminal();
        let mut last_sample = Instant::now();
        let mut last_line = Instant::now();
        let (mut prev_fed, mut prev_out, mut prev_cpu) = (0u64, 0u64, cpu_start);
        let mut failed = None;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if stages.is_finished() || reader.is_finished() {
                failed = Some("a pipeline thread stopped early");
                break;
            }
            if feed_ended.is_none() && live.feeding_done.load(Ordering::Acquire) {
                feed_ended = Some(Instant::now());
                if feeder.is_finished() && live.fed.load(Ordering::Relaxed) == 0 {
                    failed = Some("the feeder sent nothing");
                    break;
                }
            }
            if last_sample.elapsed() >= Duration::from_secs(1) {
                let dt = last_sample.elapsed().as_secs_f64();
                last_sample = Instant::now();
                let s = take_sample(
                    bus.as_ref(),
                    live,
                    run_started,
                    dt,
                    (prev_fed, prev_out, prev_cpu),
                );
                prev_fed = s.fed;
                prev_out = s.outcomes;
                prev_cpu = sample::process_cpu_s();
                // Keep the last reading of each thread (ended threads vanish from /proc).
                for (name, cpu) in sample::threads_cpu_s() {
                    thread_cpu.insert(name, cpu);
                }
                timeline.push(s);
            }
            let (fed, outcomes) = (live.fed.load(Ordering::Relaxed), live.outcomes());
            if last_line.elapsed() >= Duration::from_millis(if interactive { 250 } else { 5000 }) {
                last_line = Instant::now();
                progress_bar(
                    live,
                    expected,
                    fed,
                    outcomes,
                    run_started,
                    timeline.last(),
                    interactive,
                );
            }
            if let Some(ended) = feed_ended {
                if outcomes >= fed {
                    complete = true;
                    break;
                }
                if ended.elapsed() > Duration::from_secs(args.drain_timeout) {
                    break;
                }
            }
        }
        for (name, cpu) in sample::threads_cpu_s() {
            thread_cpu.insert(name, cpu);
        }
        progress_bar(
            live,
            expected,
            live.fed.load(Ordering::Relaxed),
            live.outcomes(),
            run_started,
            timeline.last(),
            interactive,
        );
        eprintln!();
        feeder_stop.store(true, Ordering::Release);
        stage_stop.store(true, Ordering::Release);
        let feed_result = feeder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let stage_result = stages
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        reader_stop.store(true, Ordering::Release);
        let read_result = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        feed_result?;
        let progress = stage_result?;
        *lock(&live.progress) = progress;
        read_result?;
        if let Some(why) = failed {
            bail!("loadtest: {why}");
        }
        Ok(())
    });
    outcome?;
    let cpu_end = sample::process_cpu_s();
    let rss_end = sample::rss_bytes();

    let state = inventory(&state_dir, args.partitions.count);

    let mut raw_limits = RawLimits {
        verification: None,
        bus_passthrough: None,
    };
    if !args.no_raw {
        eprintln!("loadtest: raw limit 1/2, signature verification of the same claims");
        raw_limits.verification = Some(raw::verification(&corpus.dir, args.verify_claims, &rules)?);
        eprintln!("loadtest: raw limit 2/2, bus pass-through of the same records");
        let run = raw::passthrough(
            bus.as_ref(),
            args.partitions.count,
            args.workers.batch_max(),
            args.passthrough_records,
        )?;
        raw_limits.bus_passthrough = Some(Passthrough {
            records: run.records,
            seconds: run.seconds,
            per_s: run.records as f64 / run.seconds.max(1e-9),
            bytes_per_record: run.bytes as f64 / (run.records.max(1)) as f64,
            partitions: args.partitions.count,
            pipeline_ratio: 0.0,
        });
    }

    let report = assemble(Assembly {
        args: &args,
        bus: bus.as_ref(),
        corpus: &corpus,
        live: &live,
        plan: &plan,
        timeline,
        thread_cpu,
        state,
        raw: raw_limits,
        started_unix_s,
        load_before,
        cpu_s: cpu_end - cpu_start,
        rss: (rss_start, rss_end),
        feed_s: feed_ended.map_or(0.0, |e| (e - run_started).as_secs_f64()),
        complete,
    });
    let json_path = args.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| json_path.display().to_string())?;
    let html_path = args.out.join("report.html");
    std::fs::write(&html_path, html::render(&report))
        .with_context(|| html_path.display().to_string())?;
    print_summary(&report);
    println!(
        "  report: {} and {}",
        json_path.display(),
        html_path.display()
    );
    Ok(if report.run.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn remove_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    Ok(())
}

fn publish_reference(
    bus: &dyn Bus,
    registry: &SchemaRegistry,
    pseudonyms: &clearing_pipeline::pseudonym::PseudonymKey,
    dir: &Path,
) -> Result<()> {
    let mut ingest = Ingest::new(bus, registry, pseudonyms)?;
    for_each_line(&dir.join("rights.jsonl"), |_, line| {
        let rights: RightsInput = serde_json::from_str(line)?;
        ingest.rights(&rights)?;
        Ok(())
    })?;
    for_each_line(&dir.join("pki.jsonl"), |_, line| {
        ingest.pki(&PkiRecord::from_json(line)?)?;
        Ok(())
    })?;
    for_each_line(&dir.join("eu_institutions.jsonl"), |_, line| {
        let input: EuInstitutionInput = serde_json::from_str(line)?;
        ingest.institution(&input)?;
        Ok(())
    })?;
    ingest.flush()?;
    Ok(())
}

/// The feeder: the corpus onto `fse.submitted`, paced by the plan.
fn feed(
    bus: &dyn Bus,
    corpus: &corpus::Corpus,
    plan: &Plan,
    partitions: u32,
    live: &Live,
    stop: &AtomicBool,
) -> Result<()> {
    let mut producer = bus.producer()?;
    let mut wire = corpus.wire()?;
    let started = Instant::now();
    *lock(&live.first_sent) = Some(started);
    let mut sent = 0u64;
    let mut unflushed = 0usize;
    let mut last_flush = Instant::now();
    let mut batch = Vec::with_capacity(FEED_CHUNK);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let elapsed = started.elapsed();
        let within_time = plan.duration.is_none_or(|d| elapsed < d);
        let limit = plan.claims.unwrap_or(u64::MAX);
        if !within_time || sent >= limit {
            break;
        }
        let due = if plan.rate > 0.0 {
            ((elapsed.as_secs_f64() * plan.rate) as u64 + 1).min(limit)
        } else {
            (sent + FEED_CHUNK as u64).min(limit)
        };
        let due = due.min(sent + FEED_CHUNK as u64);
        batch.clear();
        while sent + (batch.len() as u64) < due {
            let record = match wire.next_record()? {
                Some(record) => record,
                None => {
                    live.wraps.fetch_add(1, Ordering::Relaxed);
                    wire = corpus.wire()?;
                    wire.next_record()?.context("the corpus is empty")?
                }
            };
            let index = sent + batch.len() as u64;
            let start = if plan.rate > 0.0 {
                started + Duration::from_secs_f64(index as f64 / plan.rate)
            } else {
                Instant::now()
            };
            batch.push((record, start));
        }
        if !batch.is_empty() {
            // Into the side table before the records can be read.
            {
                let mut table = lock(&live.sent);
                for (record, start) in &batch {
                    table
                        .entry(record.fse_id.clone())
                        .or_default()
                        .push_back(*start);
                }
            }
            for (record, _) in &batch {
                let partition = partition_of(&record.key, partitions);
                producer.send(
                    topics::FSE_SUBMITTED,
                    partition,
                    &record.key,
                    &record.value,
                    record.timestamp,
                )?;
            }
            sent += batch.len() as u64;
            unflushed += batch.len();
        }
        if unflushed > 0
            && (plan.rate <= 0.0
                || unflushed >= FEED_CHUNK
                || last_flush.elapsed() >= FEED_FLUSH_EVERY)
        {
            producer.flush()?;
            live.fed.fetch_add(unflushed as u64, Ordering::Relaxed);
            unflushed = 0;
            last_flush = Instant::now();
        }
        if plan.rate > 0.0 {
            let next = started + Duration::from_secs_f64(sent as f64 / plan.rate);
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(FEED_FLUSH_EVERY);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
    if unflushed > 0 {
        producer.flush()?;
        live.fed.fetch_add(unflushed as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// The FSE id (correlation id) of a decision, from its header alone.
fn correlation_id(value: &[u8]) -> Option<String> {
    let (_, body) = split_single(value).ok()?;
    <EventHeader as AvroField>::decode_field(&mut Decoder::new(body))
        .ok()
        .map(|h| h.correlation_id)
}

/// The reader: every decision, its latency from the side table.
fn follow(bus: &dyn Bus, live: &Live, warm_up: Duration, stop: &AtomicBool) -> Result<()> {
    let mut positions: Vec<(&'static str, u32, u64)> = Vec::new();
    for topic in [topics::FSE_DECIDED, topics::FSE_REJECTED] {
        for partition in 0..bus.partition_count(topic)? {
            positions.push((topic, partition, bus.end_offset(topic, partition)?));
        }
    }
    loop {
        // Read the stop flag first: a pass after it saw every decision written.
        let last_pass = stop.load(Ordering::Acquire);
        let mut any = false;
        for (topic, partition, position) in positions.iter_mut() {
            loop {
                let records = bus.read(topic, *partition, *position, 4096)?;
                let Some(last) = records.last() else { break };
                *position = last.offset + 1;
                any = true;
                let now = Instant::now();
                let mut latencies = Vec::with_capacity(records.len());
                let steady_from = lock(&live.first_sent).map(|first| first + warm_up);
                {
                    let mut table = lock(&live.sent);
                    for record in &records {
                        let start = correlation_id(&record.value).and_then(|id| {
                            let queue = table.get_mut(&id)?;
                            let start = queue.pop_front();
                            if queue.is_empty() {
                                table.remove(&id);
                            }
                            start
                        });
                        match start {
                            Some(start) => latencies.push((
                                u64::try_from(now.saturating_duration_since(start).as_micros())
                                    .unwrap_or(u64::MAX)
                                    .clamp(1, LATENCY_MAX_US),
                                steady_from.is_some_and(|from| start >= from),
                            )),
                            None => {
                                live.unmatched.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                {
                    let (mut all, mut interval) = (lock(&live.latency), lock(&live.interval));
                    let mut steady = lock(&live.latency_steady);
                    for (us, after_warm_up) in latencies {
                        let _ = all.record(us);
                        let _ = interval.record(us);
                        if after_warm_up {
                            let _ = steady.record(us);
                        }
                    }
                }
                let counter = if *topic == topics::FSE_DECIDED {
                    &live.paid
                } else {
                    &live.rejected
                };
                counter.fetch_add(records.len() as u64, Ordering::Relaxed);
                *lock(&live.last_outcome) = Some(now);
            }
        }
        if last_pass {
            return Ok(());
        }
        if !any {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Records on each stage's input not yet committed by its group.
fn lags(bus: &dyn Bus) -> Vec<u64> {
    StageKind::DECIDING
        .iter()
        .map(|kind| {
            let topic = kind.input_topic();
            let group = format!("{GROUP}.{}", kind.name());
            let partitions = bus.partition_count(topic).unwrap_or(0);
            (0..partitions)
                .map(|p| {
                    let end = bus.end_offset(topic, p).unwrap_or(0);
                    let committed = bus.committed(&group, topic, p).ok().flatten().unwrap_or(0);
                    end.saturating_sub(committed)
                })
                .sum()
        })
        .collect()
}

fn take_sample(
    bus: &dyn Bus,
    live: &Live,
    run_started: Instant,
    dt: f64,
    (prev_fed, prev_out, prev_cpu): (u64, u64, f64),
) -> Sample {
    let fed = live.fed.load(Ordering::Relaxed);
    let outcomes = live.outcomes();
    let (p50, p99) = {
        let mut interval = lock(&live.interval);
        let figures = if interval.is_empty() {
            (0.0, 0.0)
        } else {
            (
                interval.value_at_quantile(0.5) as f64 / 1000.0,
                interval.value_at_quantile(0.99) as f64 / 1000.0,
            )
        };
        interval.reset();
        figures
    };
    let state_memory_mb = lock(&live.progress)
        .stats
        .iter()
        .map(|(_, s)| s.state_memory_bytes as f64 / 1e6)
        .sum();
    let stage_inputs = {
        let progress = lock(&live.progress);
        StageKind::DECIDING
            .iter()
            .map(|k| {
                progress
                    .stats
                    .iter()
                    .find(|(kind, _)| kind == k)
                    .map_or(0, |(_, s)| s.inputs)
            })
            .collect()
    };
    let dt = dt.max(1e-9);
    Sample {
        t_s: run_started.elapsed().as_secs_f64(),
        fed,
        outcomes,
        fed_per_s: fed.saturating_sub(prev_fed) as f64 / dt,
        outcomes_per_s: outcomes.saturating_sub(prev_out) as f64 / dt,
        p50_ms: p50,
        p99_ms: p99,
        cpu_percent: 100.0 * (sample::process_cpu_s() - prev_cpu) / dt,
        rss_mb: sample::rss_bytes() as f64 / 1e6,
        state_memory_mb,
        stage_inputs,
        lag: lags(bus),
    }
}

fn progress_bar(
    live: &Live,
    expected: u64,
    fed: u64,
    outcomes: u64,
    started: Instant,
    last: Option<&Sample>,
    interactive: bool,
) {
    let width = 24usize;
    let filled = ((outcomes.min(expected) as f64 / expected.max(1) as f64) * width as f64) as usize;
    let rate = last.map_or(0.0, |s| s.outcomes_per_s);
    let p99 = {
        let h = lock(&live.latency);
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(0.99) as f64 / 1000.0
        }
    };
    let lag: u64 = last.map_or(0, |s| s.lag.iter().sum());
    let line = format!(
        "[{}{}] {outcomes:>9}/{expected} decided  fed {fed:>9}  {rate:>7.0}/s ({:>5.0}×)  p99 {p99:>7.1} ms  lag {lag:>7}  rss {:>5.0} MB  {:>5.0} s",
        "#".repeat(filled.min(width)),
        ".".repeat(width - filled.min(width)),
        rate / BILLION_A_YEAR_PER_S,
        last.map_or(0.0, |s| s.rss_mb),
        started.elapsed().as_secs_f64()
    );
    if interactive {
        eprint!("\r{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Keys and bytes of each stage's sled store after the run.
fn inventory(state_dir: &Path, partitions: u32) -> Vec<StateInventory> {
    StageKind::DECIDING
        .iter()
        .map(|kind| {
            let dir = state_dir.join(kind.name());
            let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
            let mut bytes = 0u64;
            if let Ok(db) = SledStore::open(&dir, "meta") {
                for p in 0..partitions {
                    let Ok(tree) = db.tree(&format!("p{p}")) else {
                        continue;
                    };
                    for (key, value) in tree.scan_prefix(b"").unwrap_or_default() {
                        let kind = if key.first() == Some(&0) {
                            format!(
                                "\\0{}",
                                String::from_utf8_lossy(&key[1..])
                                    .split('/')
                                    .next()
                                    .unwrap_or("")
                            )
                        } else {
                            String::from_utf8_lossy(&key)
                                .split('/')
                                .next()
                                .unwrap_or("")
                                .to_string()
                        };
                        *by_kind.entry(kind).or_default() += 1;
                        bytes += (key.len() + value.len()) as u64;
                    }
                }
            }
            StateInventory {
                stage: kind.name(),
                disk_bytes: sample::dir_bytes(&dir),
                keys: by_kind.values().sum(),
                keys_by_kind: by_kind.into_iter().collect(),
                key_value_bytes: bytes,
            }
        })
        .collect()
}

struct Assembly<'a> {
    args: &'a LoadtestArgs,
    bus: &'a dyn Bus,
    corpus: &'a corpus::Corpus,
    live: &'a Live,
    plan: &'a Plan,
    timeline: Vec<Sample>,
    thread_cpu: BTreeMap<String, f64>,
    state: Vec<StateInventory>,
    raw: RawLimits,
    started_unix_s: u64,
    load_before: [f64; 3],
    cpu_s: f64,
    rss: (u64, u64),
    feed_s: f64,
    complete: bool,
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Slope (per minute) of y over t by least squares.
fn slope_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mt, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut num, mut den) = (0.0, 0.0);
    for (t, y) in points {
        num += (t - mt) * (y - my);
        den += (t - mt) * (t - mt);
    }
    if den == 0.0 { 0.0 } else { 60.0 * num / den }
}

fn assemble(a: Assembly<'_>) -> Report {
    let live = a.live;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let submitted = live.fed.load(Ordering::Relaxed);
    let paid = live.paid.load(Ordering::Relaxed);
    let rejected = live.rejected.load(Ordering::Relaxed);
    let dead_letters = live.claim_dead_letters();
    let outcomes = paid + rejected + dead_letters;
    let first = *lock(&live.first_sent);
    let last = *lock(&live.last_outcome);
    let wall_s = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    let overall = outcomes as f64 / wall_s.max(1e-9);
    // Steady: between the samples at 10 % and 90 % of the outcomes.
    let total = a.timeline.last().map_or(0, |s| s.outcomes).max(1);
    let at = |share: f64| {
        a.timeline
            .iter()
            .find(|s| s.outcomes as f64 >= share * total as f64)
    };
    let steady = match (at(0.1), at(0.9)) {
        (Some(x), Some(y)) if y.t_s > x.t_s => (y.outcomes - x.outcomes) as f64 / (y.t_s - x.t_s),
        _ => overall,
    };
    let latency = latency_figures(&lock(&live.latency));
    let latency_after_warm_up = SteadyLatency {
        warm_up_s: a.plan.warm_up().as_secs_f64(),
        latency: latency_figures(&lock(&live.latency_steady)),
    };
    let progress = lock(&live.progress).clone();
    let stages: Vec<StageFigures> = StageKind::DECIDING
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let s = progress
                .stats
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            // Measured by the workers around their steps (and on their
            // signature threads), so it holds for chained threads too.
            let cpu_s = s.cpu_ns as f64 / 1e9;
            let lags: Vec<u64> = a.timeline.iter().map(|x| x.lag[i]).collect();
            StageFigures {
                stage: kind.name(),
                inputs: s.inputs,
                passed: s.passed,
                rejected: s.rejected,
                dead_letters: s.dead_letters,
                duplicates_dropped: s.duplicates_dropped,
                batches: s.batches,
                cpu_s,
                cpu_us_per_input: 1e6 * cpu_s / s.inputs.max(1) as f64,
                per_core_per_s: s.inputs as f64 / cpu_s.max(1e-9),
                per_s: s.inputs as f64 / wall_s.max(1e-9),
                lag_mean: lags.iter().sum::<u64>() as f64 / lags.len().max(1) as f64,
                lag_max: lags.iter().copied().max().unwrap_or(0),
            }
        })
        .collect();
    let harness_cpu_s: f64 = a
        .thread_cpu
        .iter()
        .filter(|(name, _)| name.starts_with("lt-"))
        .map(|(_, cpu)| cpu)
        .sum();
    let rss: Vec<(f64, f64)> = a.timeline.iter().map(|s| (s.t_s, s.rss_mb)).collect();
    let resources = Resources {
        cpu_s: a.cpu_s,
        cpu_percent_mean: 100.0 * a.cpu_s / wall_s.max(1e-9),
        harness_cpu_s,
        pipeline_cpu_us_per_claim: 1e6 * (a.cpu_s - harness_cpu_s).max(0.0)
            / outcomes.max(1) as f64,
        rss_start_mb: a.rss.0 as f64 / 1e6,
        rss_max_mb: rss.iter().map(|p| p.1).fold(a.rss.1 as f64 / 1e6, f64::max),
        rss_end_mb: a.rss.1 as f64 / 1e6,
        rss_slope_mb_per_min: slope_per_min(&rss[rss.len() / 2..]),
        state_memory_slope_mb_per_min: {
            let state: Vec<(f64, f64)> = a
                .timeline
                .iter()
                .map(|s| (s.t_s, s.state_memory_mb))
                .collect();
            slope_per_min(&state[state.len() / 2..])
        },
    };
    let mut raw = a.raw;
    if let Some(v) = raw.verification.as_mut() {
        v.pipeline_validation_ratio = stages
            .first()
            .filter(|s| s.cpu_s > 0.0 && !a.args.signatures.trust_unsigned)
            .map(|s| s.per_core_per_s / v.raw_per_s.max(1e-9));
    }
    if let Some(p) = raw.bus_passthrough.as_mut() {
        p.pipeline_ratio = steady / p.per_s.max(1e-9);
    }
    let backend = if a.bus.describe().starts_with("kafka") {
        "kafka"
    } else {
        "local"
    };
    let run = RunCounts {
        submitted,
        paid,
        rejected,
        dead_letters,
        pending: submitted.saturating_sub(outcomes),
        unmatched: live.unmatched.load(Ordering::Relaxed),
        complete: a.complete,
        wall_s,
        feed_s: a.feed_s,
    };
    let throughput = Throughput {
        overall_per_s: overall,
        steady_per_s: steady,
        fed_per_s: submitted as f64 / a.feed_s.max(1e-9),
        overall_x_mean: overall / BILLION_A_YEAR_PER_S,
        steady_x_mean: steady / BILLION_A_YEAR_PER_S,
    };
    let targets = targets(
        a.args,
        backend,
        &throughput,
        (&latency, &latency_after_warm_up),
        &raw,
        &resources,
        wall_s,
    );
    let load_after = sample::load_avg();
    let bound = bound(
        &stages,
        &raw,
        &throughput,
        &resources,
        a.args.rate,
        [a.load_before[0], load_after[0]],
    );
    Report {
        tool: "clearing loadtest",
        version: env!("CARGO_PKG_VERSION"),
        started_unix_s: a.started_unix_s,
        machine: Machine {
            cores,
            load_avg_before: a.load_before,
            load_avg_after: load_after,
            kernel: sample::kernel(),
        },
        config: Config {
            bus: a.bus.describe(),
            backend,
            partitions: a.args.partitions.count,
            mode: if a.args.rate > 0.0 {
                "fixed rate"
            } else {
                "flat out"
            },
            rate: a.args.rate,
            rate_x_mean: a.args.rate / BILLION_A_YEAR_PER_S,
            claims: a.args.claims,
            duration_s: a.args.duration,
            batch: a.args.workers.batch,
            layout: a.args.workers.layout.name(),
            workers_per_stage: a.args.workers.workers_per_stage(),
            trust_unsigned: a.args.signatures.trust_unsigned,
            seed: a.args.seed,
            latency_clock: "monotonic clock of this process; from the claim's due time in the schedule (fixed rate) or its send (flat out) to the reader seeing its decision on fse.decided/fse.rejected",
        },
        corpus: CorpusInfo {
            dir: a.corpus.dir.display().to_string(),
            claims: a.corpus.claims,
            reused: a.corpus.reused,
            generate_seconds: a.corpus.generate_seconds,
            wraps: live.wraps.load(Ordering::Relaxed),
            signed_rsa_per_mille: corpus::RSA_PER_MILLE,
        },
        run,
        throughput,
        latency,
        latency_after_warm_up,
        stages,
        resources,
        timeline: a.timeline,
        state: a.state,
        raw,
        targets,
        bound,
    }
}

/// Percentiles and the distribution chart's buckets of a histogram (µs).
fn latency_figures(h: &Histogram<u64>) -> Latency {
    let edges = [
        1.0,
        2.0,
        5.0,
        10.0,
        20.0,
        50.0,
        100.0,
        200.0,
        500.0,
        1000.0,
        2000.0,
        5000.0,
        10_000.0,
        30_000.0,
        60_000.0,
        300_000.0,
        3_600_000.0,
    ];
    let mut buckets = Vec::new();
    let mut below = 0u64;
    for edge in edges {
        let upto = h.count_between(0, (edge * 1000.0) as u64);
        buckets.push((edge, upto.saturating_sub(below)));
        below = upto;
    }
    while buckets.last().is_some_and(|b| b.1 == 0) && buckets.len() > 1 {
        buckets.pop();
    }
    Latency {
        count: h.len(),
        p50_ms: quantile_ms(h, 0.5),
        p90_ms: quantile_ms(h, 0.9),
        p95_ms: quantile_ms(h, 0.95),
        p99_ms: quantile_ms(h, 0.99),
        p999_ms: quantile_ms(h, 0.999),
        max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
        mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        buckets,
    }
}

fn targets(
    args: &LoadtestArgs,
    backend: &str,
    throughput: &Throughput,
    (latency, steady): (&Latency, &SteadyLatency),
    raw: &RawLimits,
    resources: &Resources,
    wall_s: f64,
) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(v) = &raw.verification {
        out.push(Target {
            name: "validation against raw verification".into(),
            target: "≥ 80 % of the raw rate".into(),
            measured: format!(
                "{:.1} % (pure path, interleaved){}",
                100.0 * v.validation_ratio,
                v.pipeline_validation_ratio
                    .map(|r| format!(
                        "; {:.1} % in the pipeline (per CPU-second of its thread)",
                        100.0 * r
                    ))
                    .unwrap_or_default()
            ),
            met: Some(v.validation_ratio >= 0.8),
        });
    }
    let local = backend == "local";
    out.push(Target {
        name: "end to end, local log, 4 stages, one process".into(),
        target: "≥ 25,000 claims/s".into(),
        measured: format!(
            "{:.0} claims/s steady ({:.0}× the mean){}",
            throughput.steady_per_s,
            throughput.steady_x_mean,
            if args.rate > 0.0 {
                ", at a fixed rate: not a flat-out figure"
            } else {
                ""
            }
        ),
        met: (local && args.rate == 0.0 && !args.signatures.trust_unsigned)
            .then_some(throughput.steady_per_s >= 25_000.0),
    });
    let at_100x =
        args.rate > 0.0 && (args.rate / (100.0 * BILLION_A_YEAR_PER_S) - 1.0).abs() < 0.05;
    out.push(Target {
        name: "p99 latency at 100× the mean rate (3,169/s)".into(),
        target: "< 50 ms".into(),
        measured: format!(
            "{}, {:.1} ms over the whole run, at {}",
            steady.describe_p99(),
            latency.p99_ms,
            if args.rate > 0.0 {
                format!(
                    "{:.0}/s ({:.0}×)",
                    args.rate,
                    args.rate / BILLION_A_YEAR_PER_S
                )
            } else {
                "flat out (queueing included)".into()
            }
        ),
        // Judged in steady state; the run's start is in the figure too.
        met: (at_100x && local && throughput.steady_per_s >= 0.95 * args.rate)
            .then_some(steady.latency.count > 0 && steady.latency.p99_ms < 50.0),
    });
    if let Some(p) = &raw.bus_passthrough {
        out.push(Target {
            name: format!("pipeline against bus pass-through ({backend})"),
            target: if backend == "kafka" {
                "≥ 50 %".into()
            } else {
                "(target set for Kafka)".into()
            },
            measured: format!(
                "{:.1} % ({:.0}/s against {:.0}/s)",
                100.0 * p.pipeline_ratio,
                throughput.steady_per_s,
                p.per_s
            ),
            met: (backend == "kafka" && args.rate == 0.0).then_some(p.pipeline_ratio >= 0.5),
        });
    }
    out.push(Target {
        name: "memory flat over a long run".into(),
        target: "RSS slope ≈ 0 over the second half of a 30-minute run".into(),
        measured: format!(
            "{:+.2} MB/min over the second half of {:.0} s (RSS {:.0} → {:.0} MB, max {:.0}); of which the stages' in-memory state {:+.2} MB/min",
            resources.rss_slope_mb_per_min,
            wall_s,
            resources.rss_start_mb,
            resources.rss_end_mb,
            resources.rss_max_mb,
            resources.state_memory_slope_mb_per_min
        ),
        // Flat: growing less than 1 % of the peak per 10 minutes.
        met: (wall_s >= 1500.0)
            .then_some(resources.rss_slope_mb_per_min * 10.0 < 0.01 * resources.rss_max_mb),
    });
    out
}

/// What bounds the rate, read from the figures: the stage whose input
/// queued up, its cost per claim, and the raw limits.
fn bound(
    stages: &[StageFigures],
    raw: &RawLimits,
    throughput: &Throughput,
    resources: &Resources,
    rate: f64,
    load: [f64; 2],
) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = Vec::new();
    if rate > 0.0 && throughput.steady_per_s >= 0.95 * rate {
        out.push(format!(
            "On average the pipeline kept up with the offered {rate:.0} claims/s: the feed set the rate; latency is then queueing in bursts and the per-batch flushes."
        ));
    }
    let share = resources.cpu_percent_mean / (100.0 * cores as f64);
    if share < 0.8 {
        out.push(format!(
            "The process used {:.0} % of one core on average, {:.0} % of the machine's {cores} (load average {:.1} → {:.1}): its threads waited (for a core held by other processes, for fsync, for each other) more than they ran.",
            resources.cpu_percent_mean,
            100.0 * share,
            load[0],
            load[1]
        ));
    }
    if let Some(slowest) = stages
        .iter()
        .max_by(|a, b| a.lag_mean.total_cmp(&b.lag_mean))
        .filter(|s| s.lag_mean > 0.0)
    {
        out.push(format!(
            "Most queued input: {} (mean lag {:.0} records, max {}); its thread spent {:.1} µs of CPU per input ({:.0} inputs per CPU-second).",
            slowest.stage, slowest.lag_mean, slowest.lag_max, slowest.cpu_us_per_input, slowest.per_core_per_s
        ));
    }
    let total_us: f64 = stages.iter().map(|s| s.cpu_us_per_input).sum();
    if total_us > 0.0 {
        out.push(format!(
            "Stage threads together: {total_us:.0} µs of CPU per claim, so at most {:.0} claims/s on {cores} cores with nothing else running; by stage: {}.",
            1e6 * cores as f64 / total_us,
            stages
                .iter()
                .map(|s| format!("{} {:.0} µs", s.stage, s.cpu_us_per_input))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(v) = &raw.verification {
        out.push(format!(
            "Signature verification alone: {:.0}/s on one core, {:.0}/s on all {cores}: no pipeline that verifies every claim on this machine goes faster.",
            v.raw_per_s, v.raw_all_cores_per_s
        ));
    }
    if let Some(p) = &raw.bus_passthrough {
        out.push(format!(
            "Bus pass-through (consume → produce, no work): {:.0} records/s; the four stages make four such hops.",
            p.per_s
        ));
    }
    out
}

fn print_summary(r: &Report) {
    println!();
    println!(
        "clearing loadtest — {} on {} ({} partitions, {} × {} workers per stage), {}",
        r.config.mode,
        r.config.bus,
        r.config.partitions,
        r.config.layout,
        r.config.workers_per_stage,
        if r.run.complete {
            "complete"
        } else {
            "INCOMPLETE"
        }
    );
    println!(
        "  claims   submitted {}  paid {}  rejected {}  dead letters {}  pending {}",
        r.run.submitted, r.run.paid, r.run.rejected, r.run.dead_letters, r.run.pending
    );
    println!(
        "  rate     steady {:.0}/s ({:.0}× the billion-a-year mean), overall {:.0}/s over {:.1} s",
        r.throughput.steady_per_s,
        r.throughput.steady_x_mean,
        r.throughput.overall_per_s,
        r.run.wall_s
    );
    println!(
        "  latency  p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} decisions)",
        r.latency.p50_ms, r.latency.p95_ms, r.latency.p99_ms, r.latency.max_ms, r.latency.count
    );
    let steady = &r.latency_after_warm_up;
    if steady.latency.count == 0 {
        println!(
            "           after the {:.0} s warm-up: no claims (a shorter run)",
            steady.warm_up_s
        );
    } else {
        println!(
            "           after the {:.0} s warm-up: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} decisions)",
            steady.warm_up_s,
            steady.latency.p50_ms,
            steady.latency.p95_ms,
            steady.latency.p99_ms,
            steady.latency.max_ms,
            steady.latency.count
        );
    }
    for s in &r.stages {
        println!(
            "  {:<14} {:>8} inputs  {:>7.1} µs CPU/input  {:>8.0}/s per core  lag mean {:>8.0}",
            s.stage, s.inputs, s.cpu_us_per_input, s.per_core_per_s, s.lag_mean
        );
    }
    println!(
        "  process  CPU {:.1} s ({:.0} % of a core), {:.0} µs per claim; RSS {:.0} → {:.0} MB",
        r.resources.cpu_s,
        r.resources.cpu_percent_mean,
        r.resources.pipeline_cpu_us_per_claim,
        r.resources.rss_start_mb,
        r.resources.rss_end_mb
    );
    if let Some(v) = &r.raw.verification {
        println!(
            "  raw      verification {:.0}/s per core; validation path {:.0}/s = {:.1} %",
            v.raw_per_s,
            v.validation_per_s,
            100.0 * v.validation_ratio
        );
    }
    if let Some(p) = &r.raw.bus_passthrough {
        println!(
            "  raw      bus pass-through {:.0}/s; pipeline at {:.1} % of it",
            p.per_s,
            100.0 * p.pipeline_ratio
        );
    }
    for t in &r.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not judged by this run",
        };
        println!(
            "  target   {}: {} — {} ({verdict})",
            t.name, t.target, t.measured
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slope_is_per_minute() {
        let points: Vec<(f64, f64)> = (0..10)
            .map(|t| (f64::from(t), 100.0 + 0.5 * f64::from(t)))
            .collect();
        assert!((slope_per_min(&points) - 30.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&points[..1]), 0.0);
        let flat: Vec<(f64, f64)> = (0..10).map(|t| (f64::from(t), 42.0)).collect();
        assert_eq!(slope_per_min(&flat), 0.0);
    }

    #[test]
    fn bytes_that_are_no_event_give_no_fse_id() {
        // The real headers are covered end to end (tests/loadtest.rs: every
        // decision matched, none unmatched).
        assert_eq!(correlation_id(b""), None);
        assert_eq!(
            correlation_id(&[0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]),
            None
        );
    }
}
