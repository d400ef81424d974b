//! The report's headline figures on stdout.

use super::report::{Report, SteadyLatency};

pub fn print_summary(r: &Report) {
    println!();
    println!(
        "clearing loadtest — {} on {} ({} partitions, {} workers per stage), {}",
        r.config.mode,
        r.config.bus,
        r.config.partitions,
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
    print_steady_latency(&r.latency_after_warm_up);
    print_costs(r);
    print_raw(r);
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

fn print_steady_latency(steady: &SteadyLatency) {
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
}

/// CPU per input of each stage, and the process's CPU and memory.
fn print_costs(r: &Report) {
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
}

fn print_raw(r: &Report) {
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
}
