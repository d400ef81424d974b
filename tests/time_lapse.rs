//! `clearing loadtest --time-lapse` end to end at a small size: four
//! simulated years at two claims a day through the real binary, the local
//! log and sled; the report has a row per simulated month, the duplicate
//! keys of claims past the time-bar are gone, and `clearing replay` of the
//! run's bus is IDENTICAL.

mod common;

use std::path::Path;

use common::clearing;
use serde_json::Value;

fn time_lapse(out: &Path, corpus: &Path) -> Value {
    let output = clearing()
        .args(["loadtest", "--time-lapse", "4", "--per-day", "2"])
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
fn a_four_year_time_lapse_has_a_row_per_month_expires_its_keys_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (out, corpus) = (dir.path().join("out"), dir.path().join("corpus"));
    let r = time_lapse(&out, &corpus);

    // 2024 is a leap year: 1461 days at 2 a day; a few bad claims move out.
    assert_eq!(r["config"]["claims_made"], 2922);
    let in_period = r["config"]["claims_in_period"].as_u64().unwrap();
    assert!(in_period > 2870 && in_period <= 2922, "{in_period}");
    assert_eq!(r["config"]["corpus_reused"], false);

    let months = r["months"].as_array().unwrap();
    assert_eq!(months.len(), 48, "one row per simulated month");
    assert_eq!(months[0]["month"], "2024-01");
    assert_eq!(months[47]["month"], "2027-12");
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
    // Validation keeps a duplicate key per distinct claim while a resend
    // could be in time: by the end, those of 2024 and most of 2025 are gone
    // (care in 2025's third quarter is barred from 2027-10-01, kept to
    // 2027-11-01: every key left is of a claim received from 2025-10), and
    // the claims of the last two years are still there.
    let dup_keys = |month: usize| {
        let validation = &months[month]["stages"][0];
        assert_eq!(validation["stage"], "validation");
        validation["keys_by_kind"]["dup"].as_u64().unwrap()
    };
    let fed_since = |month: usize| in_period - months[month - 1]["claims_so_far"].as_u64().unwrap();
    assert!(
        dup_keys(47) >= fed_since(24) * 9 / 10,
        "the last two years' keys"
    );
    assert!(
        dup_keys(47) < fed_since(20),
        "earlier keys expired: {}",
        dup_keys(47)
    );

    // The window comes from the rules: the first year's caps are kept while
    // care of 2024-12-31 is in time (to 2026-12-31), plus the 31 days'
    // margin of general.toml: judged from 2027-02.
    assert_eq!(r["window"]["barred_from"], "2027-01-01");
    assert_eq!(r["window"]["margin_days"], 31);
    assert_eq!(r["window"]["steady_from"], "2027-02");
    let series = r["verdict"]["series"].as_array().unwrap();
    // Per stage its files, content and keys; all stores' files; peak RSS.
    assert_eq!(series.len(), 4 * 3 + 2);
    for s in series {
        assert_eq!(s["months"], 11, "{s}");
        assert!(s["flat"].is_boolean() && s["slope_pct_per_month"].is_number());
        assert!(s["band_pct"].as_f64().unwrap() >= 10.0, "{s}");
    }
    let all_stores = series
        .iter()
        .find(|s| s["series"] == "all stores disk bytes")
        .unwrap();
    let stage_means: f64 = series
        .iter()
        .filter(|s| s["series"].as_str().unwrap().ends_with(" disk bytes") && *s != all_stores)
        .map(|s| s["mean"].as_f64().unwrap())
        .sum();
    assert!((all_stores["mean"].as_f64().unwrap() - stage_means).abs() < 1.0);

    common::assert_replays_identical(&out.join("bus"));

    // Again from the cached corpus: the same stores, month by month.
    let again = time_lapse(&dir.path().join("again"), &corpus);
    assert_eq!(again["config"]["corpus_reused"], true);
    assert_eq!(keys_by_month(&again), keys_by_month(&r));
}
