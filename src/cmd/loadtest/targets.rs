//! The performance targets a run is judged against, and what bounds its
//! rate, in words, from the report's figures.

use super::report::{BILLION_A_YEAR_PER_S, Report, Target};

/// Each target with what the run measured, and whether it is met where
/// this run can judge it.
pub fn targets(r: &Report) -> Vec<Target> {
    let mut out = Vec::new();
    out.extend(verification(r));
    out.push(end_to_end(r));
    out.push(p99_at_100x(r));
    out.extend(passthrough(r));
    out.push(flat_memory(r));
    out
}

fn is_local(r: &Report) -> bool {
    r.config.backend == "local"
}

fn verification(r: &Report) -> Option<Target> {
    let v = r.raw.verification.as_ref()?;
    Some(Target {
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
    })
}

fn end_to_end(r: &Report) -> Target {
    let (rate, throughput) = (r.config.rate, &r.throughput);
    Target {
        name: "end to end, local log, 4 stages, one process".into(),
        target: "≥ 25,000 claims/s".into(),
        measured: format!(
            "{:.0} claims/s steady ({:.0}× the mean){}",
            throughput.steady_per_s,
            throughput.steady_x_mean,
            if rate > 0.0 {
                ", at a fixed rate: not a flat-out figure"
            } else {
                ""
            }
        ),
        met: (is_local(r) && rate == 0.0 && !r.config.trust_unsigned)
            .then_some(throughput.steady_per_s >= 25_000.0),
    }
}

fn p99_at_100x(r: &Report) -> Target {
    let rate = r.config.rate;
    let steady = &r.latency_after_warm_up;
    let at_100x = rate > 0.0 && (rate / (100.0 * BILLION_A_YEAR_PER_S) - 1.0).abs() < 0.05;
    Target {
        name: "p99 latency at 100× the mean rate (3,169/s)".into(),
        target: "< 50 ms".into(),
        measured: format!(
            "{}, {:.1} ms over the whole run, at {}",
            steady.describe_p99(),
            r.latency.p99_ms,
            if rate > 0.0 {
                format!("{:.0}/s ({:.0}×)", rate, rate / BILLION_A_YEAR_PER_S)
            } else {
                "flat out (queueing included)".into()
            }
        ),
        // Judged in steady state; the run's start is in the figure too.
        met: (at_100x && is_local(r) && r.throughput.steady_per_s >= 0.95 * rate)
            .then_some(steady.latency.count > 0 && steady.latency.p99_ms < 50.0),
    }
}

fn passthrough(r: &Report) -> Option<Target> {
    let p = r.raw.bus_passthrough.as_ref()?;
    let kafka = r.config.backend == "kafka";
    Some(Target {
        name: format!("pipeline against bus pass-through ({})", r.config.backend),
        target: if kafka {
            "≥ 50 %".into()
        } else {
            "(target set for Kafka)".into()
        },
        measured: format!(
            "{:.1} % ({:.0}/s against {:.0}/s)",
            100.0 * p.pipeline_ratio,
            r.throughput.steady_per_s,
            p.per_s
        ),
        met: (kafka && r.config.rate == 0.0).then_some(p.pipeline_ratio >= 0.5),
    })
}

fn flat_memory(r: &Report) -> Target {
    let (resources, wall_s) = (&r.resources, r.run.wall_s);
    Target {
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
        met: (wall_s >= 1500.0).then_some(memory_flat(
            resources.rss_slope_mb_per_min,
            resources.rss_max_mb,
        )),
    }
}

/// The live report's rule for flat memory: growing less than 1 % of the
/// peak per 10 minutes.
pub fn memory_flat(slope_mb_per_min: f64, max_mb: f64) -> bool {
    slope_mb_per_min * 10.0 < 0.01 * max_mb
}

/// The rule of [`memory_flat`] in words, for the reports.
pub const MEMORY_FLAT_RULE: &str = "flat when the least-squares slope of RSS (MB/min) times \
     10 minutes is under 1 % of the highest RSS of the same samples";

/// What bounds the rate, read from the figures: the stage whose input
/// queued up, its cost per claim, and the raw limits.
pub fn bound(r: &Report) -> Vec<String> {
    let cores = r.machine.cores;
    let (rate, throughput, resources) = (r.config.rate, &r.throughput, &r.resources);
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
            r.machine.load_avg_before[0],
            r.machine.load_avg_after[0]
        ));
    }
    out.extend(stage_bounds(r));
    if let Some(v) = &r.raw.verification {
        out.push(format!(
            "Signature verification alone: {:.0}/s on one core, {:.0}/s on all {cores}: no pipeline that verifies every claim on this machine goes faster.",
            v.raw_per_s, v.raw_all_cores_per_s
        ));
    }
    if let Some(p) = &r.raw.bus_passthrough {
        out.push(format!(
            "Bus pass-through (consume → produce, no work): {:.0} records/s; the four stages make four such hops.",
            p.per_s
        ));
    }
    out
}

/// The stage that queued most, and the stages' CPU per claim.
fn stage_bounds(r: &Report) -> Vec<String> {
    let (cores, stages) = (r.machine.cores, &r.stages);
    let mut out = Vec::new();
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
    out
}
