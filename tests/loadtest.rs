//! `clearing loadtest` end to end at a tiny size: the real binary, a real
//! generated corpus, the local log, sled; then the report's figures must be
//! sane and agree with each other.

mod common;

use std::path::Path;

use common::clearing;
use serde_json::Value;

fn run_loadtest(dir: &Path, extra: &[&str]) -> Value {
    let out = dir.join("out");
    let corpus = dir.join("corpus");
    let mut command = clearing();
    command.args([
        "loadtest",
        "--claims",
        "300",
        "--partitions",
        "2",
        "--verify-claims",
        "200",
    ]);
    command.arg("--out").arg(&out).arg("--corpus").arg(&corpus);
    command.args(extra);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "loadtest failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "the HTML report has charts");
    assert!(!html.contains("<script"), "and no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "and fetches nothing"
    );
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing in report.json"))
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in report.json"))
}

#[test]
fn a_flat_out_run_reports_consistent_figures() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_loadtest(dir.path(), &[]);

    // Every claim sent reached exactly one outcome.
    let submitted = u(&r, "/run/submitted");
    assert_eq!(submitted, 300);
    assert_eq!(r.pointer("/run/complete"), Some(&Value::Bool(true)));
    let (paid, rejected, dead) = (
        u(&r, "/run/paid"),
        u(&r, "/run/rejected"),
        u(&r, "/run/dead_letters"),
    );
    assert_eq!(paid + rejected + dead + u(&r, "/run/pending"), submitted);
    assert_eq!(u(&r, "/run/pending"), 0);
    assert_eq!(u(&r, "/run/unmatched"), 0);
    assert!(paid > 200, "most generated claims are good: {paid} paid");
    assert!(rejected > 0, "the generator plants bad claims");

    latency_has_one_figure_per_decision(&r, paid + rejected);

    // Throughput and its expression against the mean.
    let overall = f(&r, "/throughput/overall_per_s");
    assert!(overall > 0.0 && f(&r, "/throughput/steady_per_s") > 0.0);
    let x = f(&r, "/throughput/overall_x_mean");
    assert!((x * 1e9 / 31_557_600.0 - overall).abs() < 1e-6 * overall.max(1.0));

    stages_pass_on_what_they_received(&r, submitted, paid, rejected);

    // Resources sampled; the timeline is in order.
    assert!(f(&r, "/resources/cpu_s") > 0.0 && f(&r, "/resources/rss_max_mb") > 0.0);
    let timeline = r["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty());
    for pair in timeline.windows(2) {
        assert!(pair[0]["t_s"].as_f64() < pair[1]["t_s"].as_f64());
        assert!(pair[0]["outcomes"].as_u64() <= pair[1]["outcomes"].as_u64());
    }

    // Raw limits measured in the same run, on the same claims and records.
    assert!(f(&r, "/raw/verification/raw_per_s") > 0.0);
    assert!(f(&r, "/raw/verification/validation_ratio") > 0.0);
    assert!(u(&r, "/raw/verification/claims") > 150);
    assert_eq!(u(&r, "/raw/bus_passthrough/records"), submitted);
    assert!(f(&r, "/raw/bus_passthrough/per_s") > 0.0);

    // State: one duplicate-check key per distinct claim id seen.
    let validation_state = &r["state"][0];
    assert_eq!(validation_state["stage"], "validation");
    assert!(validation_state["keys"].as_u64().unwrap() > 0);
    assert!(!r["targets"].as_array().unwrap().is_empty());
}

/// Latency: one per decision, ordered percentiles.
fn latency_has_one_figure_per_decision(r: &Value, decisions: u64) {
    assert_eq!(u(r, "/latency/count"), decisions);
    let (p50, p95, p99, max) = (
        f(r, "/latency/p50_ms"),
        f(r, "/latency/p95_ms"),
        f(r, "/latency/p99_ms"),
        f(r, "/latency/max_ms"),
    );
    assert!(
        0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max,
        "{p50} {p95} {p99} {max}"
    );
    let bucketed: u64 = r["latency"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(bucketed, decisions, "the distribution holds every decision");
}

/// Stages: validation saw every claim, each later stage what the one before
/// passed; the last stage's passes are the paid decisions.
fn stages_pass_on_what_they_received(r: &Value, submitted: u64, paid: u64, rejected: u64) {
    let stages = r["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["validation", "entitlement", "routing", "reimbursement"]
    );
    assert_eq!(stages[0]["inputs"].as_u64(), Some(submitted));
    for pair in stages.windows(2) {
        assert_eq!(pair[1]["inputs"], pair[0]["passed"]);
    }
    assert_eq!(stages[3]["passed"].as_u64(), Some(paid));
    let stage_rejections: u64 = stages.iter().map(|s| s["rejected"].as_u64().unwrap()).sum();
    assert_eq!(stage_rejections, rejected);
    assert!(stages.iter().all(|s| s["cpu_s"].as_f64().unwrap() >= 0.0));
    assert!(
        f(r, "/stages/0/cpu_s") > 0.0,
        "the validation thread's CPU is attributed"
    );
}

#[test]
fn a_fixed_rate_run_is_paced() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_loadtest(dir.path(), &["--rate", "300", "--no-raw"]);
    assert_eq!(u(&r, "/run/submitted"), 300);
    assert_eq!(r["config"]["mode"], "fixed rate");
    // 300 claims at 300/s take about a second, not a burst.
    let feed_s = f(&r, "/run/feed_s");
    assert!(feed_s > 0.8, "fed in {feed_s} s");
    assert!(f(&r, "/throughput/fed_per_s") < 400.0);
    assert!(r["raw"]["verification"].is_null());
}

#[test]
fn claims_and_duration_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = clearing()
        .args(["loadtest", "--claims", "10", "--duration", "1", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    // Stages elsewhere only make sense on a shared Kafka namespace.
    let output = clearing()
        .args(["loadtest", "--claims", "10", "--no-stages", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
