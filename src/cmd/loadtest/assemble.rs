//! `report.json`'s figures, from what the run measured.

use std::sync::atomic::Ordering;
use std::time::Instant;

use clearing_pipeline::runtime::{Progress, StageKind};
use hdrhistogram::Histogram;

use super::live::{Live, lock};
use super::pipeline::Measured;
use super::plan::Plan;
use super::report::*;
use super::setup::Setup;
use super::targets::{bound, targets};
use super::{LoadtestArgs, corpus, sample};

/// Everything the report is made of.
pub struct Assembly<'a> {
    pub args: &'a LoadtestArgs,
    pub plan: &'a Plan,
    pub setup: &'a Setup,
    pub live: &'a Live,
    pub measured: Measured,
    pub state: Vec<StateInventory>,
    pub raw: RawLimits,
}

pub fn assemble(a: Assembly<'_>) -> Report {
    let live = a.live;
    let run = run_counts(live, &a.measured);
    let read_times = live.read_times.as_ref().map(|times| lock(times).clone());
    let throughput = throughput(&run, &a.measured, read_times.as_deref());
    let stages = stage_figures(&lock(&live.progress), &a.measured.timeline, run.wall_s);
    let resources = resources(&a.measured, &run);
    let raw = with_ratios(
        a.raw,
        &stages,
        &throughput,
        a.args.signatures.trust_unsigned,
    );
    let bus = a.setup.bus.describe();
    let backend = if bus.starts_with("kafka") {
        "kafka"
    } else {
        "local"
    };
    let corpus = &a.setup.corpus;
    let mut report = Report {
        tool: "clearing loadtest",
        version: env!("CARGO_PKG_VERSION"),
        started_unix_s: a.setup.started_unix_s,
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_avg_before: a.setup.load_before,
            load_avg_after: sample::load_avg(),
            kernel: sample::kernel(),
        },
        config: config(a.args, bus, backend),
        corpus: CorpusInfo {
            dir: corpus.dir.display().to_string(),
            claims: corpus.claims,
            reused: corpus.reused,
            generate_seconds: corpus.generate_seconds,
            wraps: live.wraps.load(Ordering::Relaxed),
            signed_rsa_per_mille: corpus::RSA_PER_MILLE,
        },
        run,
        throughput,
        latency: latency_figures(&lock(&live.latency)),
        latency_after_warm_up: SteadyLatency {
            warm_up_s: a.plan.warm_up().as_secs_f64(),
            latency: latency_figures(&lock(&live.latency_steady)),
        },
        stages,
        resources,
        timeline: a.measured.timeline,
        state: a.state,
        raw,
        targets: Vec::new(),
        bound: Vec::new(),
    };
    report.targets = targets(&report);
    report.bound = bound(&report);
    report
}

fn run_counts(live: &Live, measured: &Measured) -> RunCounts {
    let submitted = live.fed();
    let paid = live.paid.load(Ordering::Relaxed);
    let rejected = live.rejected.load(Ordering::Relaxed);
    let dead_letters = live.claim_dead_letters();
    let outcomes = paid + rejected + dead_letters;
    let wall_s = match (*lock(&live.first_sent), *lock(&live.last_outcome)) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    RunCounts {
        submitted,
        paid,
        rejected,
        dead_letters,
        pending: submitted.saturating_sub(outcomes),
        unmatched: live.unmatched.load(Ordering::Relaxed),
        complete: measured.complete,
        wall_s,
        feed_s: measured.feed_s,
    }
}

fn outcomes(run: &RunCounts) -> u64 {
    run.paid + run.rejected + run.dead_letters
}

fn throughput(
    run: &RunCounts,
    measured: &Measured,
    read_times: Option<&[(u64, Instant)]>,
) -> Throughput {
    let overall = outcomes(run) as f64 / run.wall_s.max(1e-9);
    let steady = read_times
        .and_then(steady_by_reads)
        .unwrap_or_else(|| steady_by_samples(&measured.timeline, overall));
    Throughput {
        overall_per_s: overall,
        steady_per_s: steady,
        fed_per_s: run.submitted as f64 / measured.feed_s.max(1e-9),
        overall_x_mean: overall / BILLION_A_YEAR_PER_S,
        steady_x_mean: steady / BILLION_A_YEAR_PER_S,
    }
}

/// Steady throughput as the peer's driver computes it (benches/peer,
/// `Driver.java`): the decisions from the ⌈10 %⌉-th to the ⌈90 %⌉-th over the
/// time between their reads. None when they were read at once.
fn steady_by_reads(reads: &[(u64, Instant)]) -> Option<f64> {
    let total = reads.last()?.0;
    let (lo, hi) = (total.div_ceil(10), (9 * total).div_ceil(10));
    let read_at = |k: u64| {
        reads
            .iter()
            .find(|(count, _)| *count >= k)
            .map(|(_, at)| *at)
    };
    let seconds = read_at(hi)?
        .saturating_duration_since(read_at(lo.max(1))?)
        .as_secs_f64();
    (hi > lo && seconds > 0.0).then(|| (hi - lo) as f64 / seconds)
}

/// Steady throughput between the once-a-second samples at 10 % and 90 % of
/// the outcomes: a run of a set duration, which keeps no read times.
fn steady_by_samples(timeline: &[Sample], overall: f64) -> f64 {
    let total = timeline.last().map_or(0, |s| s.outcomes).max(1);
    let at = |share: f64| {
        timeline
            .iter()
            .find(|s| s.outcomes as f64 >= share * total as f64)
    };
    match (at(0.1), at(0.9)) {
        (Some(x), Some(y)) if y.t_s > x.t_s => (y.outcomes - x.outcomes) as f64 / (y.t_s - x.t_s),
        _ => overall,
    }
}

fn stage_figures(progress: &Progress, timeline: &[Sample], wall_s: f64) -> Vec<StageFigures> {
    StageKind::DECIDING
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
            let lags: Vec<u64> = timeline.iter().map(|x| x.lag[i]).collect();
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
        .collect()
}

fn resources(m: &Measured, run: &RunCounts) -> Resources {
    let harness_cpu_s: f64 = m
        .thread_cpu
        .iter()
        .filter(|(name, _)| name.starts_with("lt-"))
        .map(|(_, cpu)| cpu)
        .sum();
    let rss: Vec<(f64, f64)> = m.timeline.iter().map(|s| (s.t_s, s.rss_mb)).collect();
    let state: Vec<(f64, f64)> = m
        .timeline
        .iter()
        .map(|s| (s.t_s, s.state_memory_mb))
        .collect();
    Resources {
        cpu_s: m.cpu_s,
        cpu_percent_mean: 100.0 * m.cpu_s / run.wall_s.max(1e-9),
        harness_cpu_s,
        pipeline_cpu_us_per_claim: 1e6 * (m.cpu_s - harness_cpu_s).max(0.0)
            / outcomes(run).max(1) as f64,
        rss_start_mb: m.rss.0 as f64 / 1e6,
        rss_max_mb: rss.iter().map(|p| p.1).fold(m.rss.1 as f64 / 1e6, f64::max),
        rss_end_mb: m.rss.1 as f64 / 1e6,
        rss_slope_mb_per_min: slope_per_min(&rss[rss.len() / 2..]),
        state_memory_slope_mb_per_min: slope_per_min(&state[state.len() / 2..]),
    }
}

/// The raw limits with the pipeline's ratios to them.
fn with_ratios(
    mut raw: RawLimits,
    stages: &[StageFigures],
    throughput: &Throughput,
    trust_unsigned: bool,
) -> RawLimits {
    if let Some(v) = raw.verification.as_mut() {
        v.pipeline_validation_ratio = stages
            .first()
            .filter(|s| s.cpu_s > 0.0 && !trust_unsigned)
            .map(|s| s.per_core_per_s / v.raw_per_s.max(1e-9));
    }
    if let Some(p) = raw.bus_passthrough.as_mut() {
        p.pipeline_ratio = throughput.steady_per_s / p.per_s.max(1e-9);
    }
    raw
}

fn config(args: &LoadtestArgs, bus: String, backend: &'static str) -> Config {
    Config {
        bus,
        backend,
        partitions: args.partitions.count,
        mode: if args.rate > 0.0 {
            "fixed rate"
        } else {
            "flat out"
        },
        rate: args.rate,
        rate_x_mean: args.rate / BILLION_A_YEAR_PER_S,
        claims: args.claims,
        duration_s: args.duration,
        batch: args.workers.batch,
        workers_per_stage: args.workers.workers_per_stage(),
        trust_unsigned: args.signatures.trust_unsigned,
        seed: args.seed,
        latency_clock: "monotonic clock of this process; from the claim's due time in the schedule (fixed rate) or its send (flat out) to the reader seeing its decision on fse.decided/fse.rejected",
    }
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Slope (per minute) of y over t by least squares.
pub(super) fn slope_per_min(points: &[(f64, f64)]) -> f64 {
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
    fn steady_throughput_is_timed_between_the_reads_of_the_tenth_and_ninth_tenths() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        // 100 decisions: nothing for 5 s (the group's start), then 10 every 100 ms.
        let reads: Vec<(u64, Instant)> = (1..=10).map(|i| (10 * i, at(5_000 + 100 * i))).collect();
        // The 10th decision read at 5.1 s, the 90th at 5.9 s: 80 in 0.8 s.
        let steady = steady_by_reads(&reads).unwrap();
        assert!((steady - 100.0).abs() < 1e-6, "{steady}");
        // Everything read at once, or nothing: no rate to time.
        assert_eq!(steady_by_reads(&[(100, at(1))]), None);
        assert_eq!(steady_by_reads(&[]), None);
        // Read one by one: the 1st (not the 0th) to the 9th of 10, 8 in 8 s.
        let one_by_one: Vec<(u64, Instant)> = (1..=10).map(|i| (i, at(1_000 * i))).collect();
        assert!((steady_by_reads(&one_by_one).unwrap() - 1.0).abs() < 1e-9);
    }
}
