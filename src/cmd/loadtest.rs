//! `clearing loadtest`: a realistic stream of signed claims (the generator's
//! mix) through the four stages on the local log or Kafka, at a fixed rate or
//! flat out, with the raw limits measured in the same run so that every
//! figure is also a ratio (docs/performance.md).
//!
//! Threads, all in this process: a feeder (`lt-feeder`) publishes the corpus
//! to `fse.submitted` at the rate; the four stages run as in `clearing run`
//! (`st-<stage>`; each worker
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

mod assemble;
mod corpus;
mod feed;
mod follow;
mod html;
mod inventory;
mod live;
mod monitor;
mod pipeline;
mod plan;
mod raw;
mod report;
mod sample;
mod setup;
mod state_scale;
mod summary;
mod targets;
mod time_lapse;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

use self::assemble::{Assembly, assemble};
use self::live::Live;
use self::plan::Plan;
use self::report::{BILLION_A_YEAR_PER_S, Passthrough, RawLimits, Report};
use self::setup::Setup;
use super::args::{Partitions, Signatures, WorkerArgs};

pub use state_scale::StateScaleArgs;
pub use time_lapse::TimeLapseArgs;

/// The stages' consumer group (each stage uses `loadtest.<stage>`).
const GROUP: &str = "loadtest";

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
    /// Instead of a run: this many simulated years of claims at a constant
    /// daily volume (--per-day, from --start), month by month, with the
    /// stores' size and the memory after each month. Writes
    /// time-lapse.json and time-lapse.html.
    #[arg(long)]
    pub time_lapse: Option<u32>,
    #[command(flatten)]
    pub time_lapse_args: TimeLapseArgs,
}

pub fn run(args: LoadtestArgs) -> Result<ExitCode> {
    if let Some(n) = args.state_scale {
        return state_scale::run(n, &args.out, args.partitions.count, args.seed, &args.scale);
    }
    if let Some(years) = args.time_lapse {
        return time_lapse::run(&args, years);
    }
    let plan = Plan::new(&args)?;
    let setup = setup::prepare(&args, &plan)?;
    let live = Live::new(plan.claims.is_some())?;
    announce(&args, &plan);
    let measured = pipeline::run(&args, &plan, &setup, &live)?;
    let state = inventory::inventory(&setup.state_dir, args.partitions.count);
    let raw = raw_limits(&args, &setup)?;
    let report = assemble(Assembly {
        args: &args,
        plan: &plan,
        setup: &setup,
        live: &live,
        measured,
        state,
        raw,
    });
    write_reports(&args, &report)?;
    Ok(if report.run.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What is about to run, on stderr.
fn announce(args: &LoadtestArgs, plan: &Plan) {
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
}

/// With the pipeline stopped: signature verification of the same claims
/// alone, and a bare consume→produce loop over the same records.
fn raw_limits(args: &LoadtestArgs, setup: &Setup) -> Result<RawLimits> {
    let mut raw_limits = RawLimits {
        verification: None,
        bus_passthrough: None,
    };
    if args.no_raw {
        return Ok(raw_limits);
    }
    eprintln!("loadtest: raw limit 1/2, signature verification of the same claims");
    raw_limits.verification = Some(raw::verification(
        &setup.corpus.dir,
        args.verify_claims,
        &setup.rules,
    )?);
    eprintln!("loadtest: raw limit 2/2, bus pass-through of the same records");
    let partitions = args.partitions.count;
    let run = raw::passthrough(
        setup.bus.as_ref(),
        partitions,
        args.workers.batch_max(),
        args.passthrough_records,
    )?;
    raw_limits.bus_passthrough = Some(Passthrough {
        records: run.records,
        seconds: run.seconds,
        per_s: run.records as f64 / run.seconds.max(1e-9),
        bytes_per_record: run.bytes as f64 / (run.records.max(1)) as f64,
        partitions,
        pipeline_ratio: 0.0,
    });
    Ok(raw_limits)
}

/// report.json and report.html under `--out`, and the summary on stdout.
fn write_reports(args: &LoadtestArgs, report: &Report) -> Result<()> {
    let json_path = args.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(report)?)
        .with_context(|| json_path.display().to_string())?;
    let html_path = args.out.join("report.html");
    std::fs::write(&html_path, html::render(report))
        .with_context(|| html_path.display().to_string())?;
    summary::print_summary(report);
    println!(
        "  report: {} and {}",
        json_path.display(),
        html_path.display()
    );
    Ok(())
}
