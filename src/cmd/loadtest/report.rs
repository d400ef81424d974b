//! What `clearing loadtest` writes to `report.json`: every figure of the run,
//! and the ratios to the raw limits measured in the same run.

use serde::Serialize;

/// The billion-a-year mean rate: 10⁹ claims over a Julian year, in claims/s.
pub const BILLION_A_YEAR_PER_S: f64 = 1e9 / 31_557_600.0;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub started_unix_s: u64,
    pub machine: Machine,
    pub config: Config,
    pub corpus: CorpusInfo,
    pub run: RunCounts,
    pub throughput: Throughput,
    pub latency: Latency,
    /// The same, for the claims started after the warm-up.
    pub latency_after_warm_up: SteadyLatency,
    pub stages: Vec<StageFigures>,
    pub resources: Resources,
    pub timeline: Vec<Sample>,
    pub state: Vec<StateInventory>,
    pub raw: RawLimits,
    pub targets: Vec<Target>,
    /// What bounds the rate, in words, from the figures above.
    pub bound: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub load_avg_before: [f64; 3],
    pub load_avg_after: [f64; 3],
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub bus: String,
    pub backend: &'static str,
    pub partitions: u32,
    pub mode: &'static str,
    /// Claims/s asked for; 0 = flat out.
    pub rate: f64,
    pub rate_x_mean: f64,
    pub claims: Option<u64>,
    pub duration_s: Option<f64>,
    pub batch: usize,
    /// Workers per stage, a thread each.
    pub workers_per_stage: u32,
    pub trust_unsigned: bool,
    pub seed: u64,
    /// How the latency is timed (see the module doc of `loadtest`).
    pub latency_clock: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorpusInfo {
    pub dir: String,
    pub claims: u64,
    pub reused: bool,
    pub generate_seconds: Option<f64>,
    /// Times the feeder went round the corpus: a claim sent again is a
    /// duplicate, which validation rejects.
    pub wraps: u64,
    pub signed_rsa_per_mille: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunCounts {
    pub submitted: u64,
    /// Decisions seen on `fse.decided` (paid) and `fse.rejected`.
    pub paid: u64,
    pub rejected: u64,
    /// Claims dead-lettered by a stage (no decision).
    pub dead_letters: u64,
    /// Submitted claims with no outcome when the run ended (0 when complete).
    pub pending: u64,
    /// Decisions whose FSE id the feeder never sent (0 on a fresh bus).
    pub unmatched: u64,
    pub complete: bool,
    /// From the first claim sent to the last decision seen.
    pub wall_s: f64,
    pub feed_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Outcomes over the whole run (first send to last decision).
    pub overall_per_s: f64,
    /// Decisions per second from the ⌈10 %⌉-th read to the ⌈90 %⌉-th (a run
    /// of a set number of claims), or between the samples at 10 % and 90 %
    /// of the outcomes (a run of a set duration).
    pub steady_per_s: f64,
    pub fed_per_s: f64,
    pub overall_x_mean: f64,
    pub steady_x_mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// (upper bound ms, count) buckets for the distribution chart.
    pub buckets: Vec<(f64, u64)>,
}

/// Latency in steady state: the claims started after the first `warm_up_s`
/// of the run (stores just opened, reference data applied at each
/// partition's first batch).
#[derive(Debug, Clone, Serialize)]
pub struct SteadyLatency {
    pub warm_up_s: f64,
    #[serde(flatten)]
    pub latency: Latency,
}

impl SteadyLatency {
    /// "p99 X ms after the first W s (warm-up)", or that no claim came after.
    pub fn describe_p99(&self) -> String {
        if self.latency.count == 0 {
            format!(
                "no claims after the first {:.0} s (warm-up)",
                self.warm_up_s
            )
        } else {
            format!(
                "p99 {:.1} ms after the first {:.0} s (warm-up)",
                self.latency.p99_ms, self.warm_up_s
            )
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageFigures {
    pub stage: &'static str,
    pub inputs: u64,
    pub passed: u64,
    pub rejected: u64,
    pub dead_letters: u64,
    pub duplicates_dropped: u64,
    pub batches: u64,
    /// CPU of the stage's worker steps, seconds, on their threads and on
    /// the threads verifying validation's signatures in parallel.
    pub cpu_s: f64,
    pub cpu_us_per_input: f64,
    /// Inputs per CPU-second of its thread: the stage's rate on one core.
    pub per_core_per_s: f64,
    /// Inputs over the run's wall time.
    pub per_s: f64,
    pub lag_mean: f64,
    pub lag_max: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub cpu_s: f64,
    /// Mean over the run, in % of one core (200 = both cores of a 2-core box).
    pub cpu_percent_mean: f64,
    /// The harness's own threads (feeder, reader): not the pipeline's cost.
    pub harness_cpu_s: f64,
    /// Whole-process CPU per outcome, the harness's excluded.
    pub pipeline_cpu_us_per_claim: f64,
    pub rss_start_mb: f64,
    pub rss_max_mb: f64,
    pub rss_end_mb: f64,
    /// Least-squares slope of RSS over the second half of the run.
    pub rss_slope_mb_per_min: f64,
    /// The same for the state the stages hold in memory (bounded caches,
    /// writes on their way to sled): the part of RSS that follows the stores.
    pub state_memory_slope_mb_per_min: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub fed: u64,
    pub outcomes: u64,
    pub fed_per_s: f64,
    pub outcomes_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_percent: f64,
    pub rss_mb: f64,
    /// State the four stages hold in memory over sled (bounded caches,
    /// writes on their way, key filters), MB.
    pub state_memory_mb: f64,
    /// Of which the key filters and the caches, MB.
    pub state_filter_mb: f64,
    pub state_cache_mb: f64,
    /// Inputs of each stage so far, pipeline order.
    pub stage_inputs: Vec<u64>,
    /// Consumer lag of each stage (records on its input not yet committed).
    pub lag: Vec<u64>,
    /// Bytes of the files of each stage's sled store, pipeline order (read
    /// from the directory while the stores are open).
    pub store_bytes: Vec<u64>,
    /// The `received_at` stamp (ms) of the last claim fed.
    pub fed_stamp_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateInventory {
    pub stage: &'static str,
    pub disk_bytes: u64,
    pub keys: u64,
    /// Keys by their kind (the prefix before the first '/'; runtime keys as `\0…`).
    pub keys_by_kind: Vec<(String, u64)>,
    pub key_value_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RawLimits {
    pub verification: Option<Verification>,
    pub bus_passthrough: Option<Passthrough>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub claims: usize,
    pub rsa: usize,
    pub rounds: usize,
    /// `Pki::verify` alone over precomputed canonical bytes, per CPU-second
    /// of the measuring thread (one core).
    pub raw_per_s: f64,
    /// The same in wall time (lower when other processes took the core).
    pub raw_wall_per_s: f64,
    /// The validation stage's pure path on the same claims: decode the
    /// `fse.submitted` bytes, `validation::validate` with `PkiVerifier`.
    pub validation_per_s: f64,
    /// Median over rounds of validation rate / raw rate (interleaved rounds,
    /// CPU time).
    pub validation_ratio: f64,
    /// The pipeline's validation thread (inputs per CPU-second) / raw rate.
    pub pipeline_validation_ratio: Option<f64>,
    /// raw_per_s × cores: the most a machine this size verifies.
    pub raw_all_cores_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Passthrough {
    pub records: u64,
    pub seconds: f64,
    pub per_s: f64,
    pub bytes_per_record: f64,
    pub partitions: u32,
    /// The pipeline's steady outcome rate / this rate (one hop).
    pub pipeline_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// `None`: not judged by this run (another backend, rate or length).
    pub met: Option<bool>,
}
