//! `clearing loadtest --time-lapse YEARS --rate R` end to end at a small
//! size: four simulated years at two claims a day through ONE process at a
//! real rate (about 20 s), the stages never stopped; the live report and
//! continuous.json have their shape, retention expired keys while the run
//! went on, memory is judged only after the time-bar window, and `clearing
//! replay` of the run's bus is IDENTICAL.

mod common;

use common::clearing;
use serde_json::Value;

fn json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_continuous_time_lapse_judges_memory_after_the_window_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (out, corpus) = (dir.path().join("out"), dir.path().join("corpus"));
    let output = clearing()
        .args(["loadtest", "--time-lapse", "4", "--per-day", "2"])
        .args(["--start", "2024-01-01", "--partitions", "2", "--seed", "5"])
        .args(["--rate", "150", "--duration", "60"])
        .arg("--out")
        .arg(&out)
        .arg("--corpus")
        .arg(&corpus)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "continuous time-lapse failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("rss after the window"), "{stdout}");

    // The live report of the same run: every claim of the period fed once.
    let report = json(&out.join("report.json"));
    assert_eq!(report["run"]["complete"], true);
    assert_eq!(report["corpus"]["wraps"], 0, "the corpus is never rounded");
    let timeline = report["timeline"].as_array().unwrap();
    let last = timeline.last().unwrap();
    assert_eq!(last["store_bytes"].as_array().unwrap().len(), 4);
    assert!(last["fed_stamp_ms"].as_i64().unwrap() > 0);

    let r = json(&out.join("continuous.json"));
    let in_period = r["config"]["claims_in_period"].as_u64().unwrap();
    assert!(in_period > 2870 && in_period <= 2922, "{in_period}");
    assert_eq!(r["fed"].as_u64().unwrap(), in_period);
    assert_eq!(report["run"]["submitted"].as_u64().unwrap(), in_period);
    assert_eq!(r["window"]["steady_from"], "2027-02");

    // A point per simulated month the samples (one a second) saw, in order:
    // at 150 claims/s a month's 61 claims take 0.4 s, so about one in two.
    let months = r["months"].as_array().unwrap();
    assert!(months.len() >= 12, "{} months", months.len());
    // The first sample, a second in: 150 claims, the first 2.5 months.
    assert!(
        months[0]["month"].as_str() <= Some("2024-03"),
        "{}",
        months[0]
    );
    assert_eq!(months.last().unwrap()["month"], "2027-12");
    for pair in months.windows(2) {
        assert!(pair[0]["month"].as_str() < pair[1]["month"].as_str());
        assert!(pair[0]["t_s"].as_f64() <= pair[1]["t_s"].as_f64());
    }
    for m in months {
        let stores = m["store_bytes"].as_array().unwrap();
        assert_eq!(stores.len(), 4);
        assert!(stores[0].as_u64().unwrap() > 0, "{m}");
    }

    // Memory judged by the live rule over the samples after the window only.
    let memory = &r["memory"];
    assert!(memory["samples"].as_u64().unwrap() >= 2, "{memory}");
    assert!(memory["flat"].is_boolean(), "{memory}");
    let from_s = memory["from_s"].as_f64().unwrap();
    let before_window = months
        .iter()
        .rfind(|m| m["month"].as_str() < Some("2027-02"))
        .expect("a sample before the window's end");
    assert!(from_s > before_window["t_s"].as_f64().unwrap());
    assert!(memory["rss_max_mb"].as_f64().unwrap() > 0.0);
    let stores = r["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 5);
    for s in stores {
        assert!(s["months"].as_u64().unwrap() >= 2, "{s}");
        assert!(s["flat"].is_boolean(), "{s}");
    }

    // Retention deleted keys while the stages ran: a 2024 claim's duplicate
    // key is gone by 2027; the stores were counted once closed.
    assert!(r["keys_expired"]["validation"].as_u64().unwrap() > 0, "{r}");
    assert!(r["keys_after"]["validation"].as_u64().unwrap() > 0, "{r}");

    common::assert_replays_identical(&out.join("bus"));
}
