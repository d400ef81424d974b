//! `clearing loadtest --time-lapse` end to end at a small size: three
//! simulated years at two claims a day through the real binary, the local
//! log and sled; the report has a row per simulated month, and `clearing
//! replay` of the run's bus is IDENTICAL.

mod common;

use std::path::Path;

use common::clearing;
use serde_json::Value;

fn time_lapse(out: &Path, corpus: &Path) -> Value {
    let output = clearing()
        .args(["loadtest", "--time-lapse", "3", "--per-day", "2"])
        .args(["--start", "2024-01-01", "--partitions", "2", "--seed", "5"])
        .arg("--out")
        .arg(out)
        .arg("--corpus")
        .arg(corpus)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "time-lapse failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("verdict:"), "the summary: {stdout}");
    let html = std::fs::read_to_string(out.join("time-lapse.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"));
    serde_json::from_slice(&std::fs::read(out.join("time-lapse.json")).unwrap()).unwrap()
}

fn keys_by_month(r: &Value) -> Vec<Vec<u64>> {
    r["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["stages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["keys"].as_u64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn a_three_year_time_lapse_has_a_row_per_month_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (out, corpus) = (dir.path().join("out"), dir.path().join("corpus"));
    let r = time_lapse(&out, &corpus);

    // 2024 is a leap year: 1096 days at 2 a day; a few bad claims move out.
    assert_eq!(r["config"]["claims_made"], 2192);
    let in_period = r["config"]["claims_in_period"].as_u64().unwrap();
    assert!(in_period > 2150 && in_period <= 2192, "{in_period}");
    assert_eq!(r["config"]["corpus_reused"], false);

    let months = r["months"].as_array().unwrap();
    assert_eq!(months.len(), 36, "one row per simulated month");
    assert_eq!(months[0]["month"], "2024-01");
    assert_eq!(months[35]["month"], "2026-12");
    let mut last = 0;
    for m in months {
        let so_far = m["claims_so_far"].as_u64().unwrap();
        assert!(so_far > last, "claims keep coming: {m}");
        last = so_far;
        assert!(m["rss_peak_bytes"].as_u64().unwrap() > 0);
        let stages = m["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 4);
        for s in stages {
            assert!(s["disk_bytes"].as_u64().unwrap() > 0, "{s}");
            assert!(s["keys"].as_u64().unwrap() > 0, "{s}");
            assert!(s["inputs"].as_u64().unwrap() > 0, "{s}");
        }
    }
    assert_eq!(last, in_period, "every claim of the period was fed");
    // Validation keeps a duplicate key per distinct claim: at least one per
    // claim fed, less the resends.
    let validation = &months[35]["stages"][0];
    assert_eq!(validation["stage"], "validation");
    assert!(validation["keys_by_kind"]["dup"].as_u64().unwrap() > in_period * 9 / 10);

    // The window comes from the rule: care of 2024-01-01 is barred from
    // 2026-04-01; with the default 92 days' margin, judged from 2026-08.
    assert_eq!(r["window"]["barred_from"], "2026-04-01");
    assert_eq!(r["window"]["steady_from"], "2026-08");
    let series = r["verdict"]["series"].as_array().unwrap();
    assert_eq!(series.len(), 4 * 2 + 1);
    for s in series {
        assert_eq!(s["months"], 5, "{s}");
        assert!(s["flat"].is_boolean() && s["slope_pct_per_month"].is_number());
    }

    let replay = clearing()
        .args(["replay", "--bus"])
        .arg(format!("local:{}", out.join("bus").display()))
        .arg("--quiet")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success() && said.contains("IDENTICAL"),
        "replay: {said}{}",
        String::from_utf8_lossy(&replay.stderr)
    );

    // Again from the cached corpus: the same stores, month by month.
    let again = time_lapse(&dir.path().join("again"), &corpus);
    assert_eq!(again["config"]["corpus_reused"], true);
    assert_eq!(keys_by_month(&again), keys_by_month(&r));
}
