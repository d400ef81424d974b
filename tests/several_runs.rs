//! A bus that holds several runs (issue 23 item 9): the same claims and
//! reference data published and run twice on one local log. The second run
//! continues the first (its stores come back from the changelogs), so the
//! replay of both is identical; once the broker compacts the reference
//! topics, the first run's reference records are gone and the replay says
//! exactly that instead of naming a stage. A demo refuses a bus that already
//! holds a run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::runtime::topics;
use common::{clearing, ok, pipe};
use serde_json::Value;

/// `clearing replay --bus URL`: (exit code, stdout, JSON report).
fn replay(url: &str, report: &Path) -> (i32, String, Value) {
    let output = clearing()
        .args(["replay", "--bus", url, "--quiet", "--report"])
        .arg(report)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        json,
    )
}

/// Copies the local log at `from` to `to` with its offsets, compacting every
/// compacted topic as a Kafka broker's cleaner does: only each key's latest
/// record stays.
fn compacted_copy(from: &Path, to: &Path) {
    let source = LocalLog::open(from).unwrap();
    let target = LocalLog::open(to).unwrap();
    for spec in topics::all(4) {
        let Ok(partitions) = source.partition_count(&spec.name) else {
            continue;
        };
        target.ensure_topic(&spec).unwrap();
        for p in 0..partitions {
            let mut records = Vec::new();
            let mut position = 0;
            loop {
                let chunk = source.read(&spec.name, p, position, 1024).unwrap();
                let Some(last) = chunk.last() else { break };
                position = last.offset + 1;
                records.extend(chunk);
            }
            let latest: BTreeMap<&[u8], u64> = records
                .iter()
                .map(|r| (r.key.as_slice(), r.offset))
                .collect();
            for r in &records {
                if spec.compacted && latest.get(r.key.as_slice()) != Some(&r.offset) {
                    continue;
                }
                target
                    .append_at(
                        &spec.name,
                        p,
                        r.offset,
                        r.timestamp_millis,
                        &r.key,
                        &r.value,
                    )
                    .unwrap();
            }
            target.flush_partition(&spec.name, p).unwrap();
        }
    }
}

#[test]
fn a_bus_holding_two_runs_replays_identically_and_compacted_reference_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gen");
    common::generate(&data, 120);
    let bus = dir.path().join("bus");
    let url = format!("local:{}", bus.display());
    // Two runs, as two demos on one bus did: the same world and claims
    // published again, each run with stores of its own.
    for run in ["first", "second"] {
        common::publish_refs(&data, &url);
        pipe(
            clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &url]),
            &data.join("claims.jsonl"),
        );
        ok(clearing()
            .args(["run", "--bus", &url, "--until-caught-up", "--state"])
            .arg(dir.path().join(run).join("state")));
    }
    let (code, stdout, report) = replay(&url, &dir.path().join("both.json"));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("IDENTICAL"), "{stdout}");
    // Every claim of both runs went through validation.
    let validated: u64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stage"] == "validation")
        .map(|p| p["inputs"].as_u64().unwrap())
        .sum();
    assert_eq!(validated, 2 * 120, "{report:#}");

    // The broker compacts the reference topics: the second run's records,
    // same keys, leave none of the first run's. Its batches cannot be
    // replayed, and the replay says why rather than blame validation.
    let compacted = dir.path().join("compacted");
    compacted_copy(&bus, &compacted);
    let (code, stdout, report) = replay(
        &format!("local:{}", compacted.display()),
        &dir.path().join("compacted.json"),
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("CANNOT REPLAY"), "{stdout}");
    assert_eq!(report["identical"], false);
    let d = &report["first_divergence"];
    assert_eq!(d["kind"], "reference_compacted", "{d:#}");
    assert_eq!(d["stage"], "validation", "{d:#}");
    let pki_records = std::fs::read_to_string(data.join("pki.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    let missing = d["missing_reference"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{d:#}");
    assert_eq!(missing[0]["topic"], "ref.pki");
    assert_eq!(missing[0]["partition"], 0);
    assert_eq!(missing[0]["watermark"], pki_records, "{d:#}");
    assert_eq!(missing[0]["missing"], pki_records, "{d:#}");
    assert!(
        d["message"].as_str().unwrap().contains(&format!(
            "ref.pki/0: {pki_records} of the offsets 0..{pki_records}"
        )),
        "{d:#}"
    );
}

#[test]
fn a_demo_refuses_a_local_bus_that_holds_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gen");
    common::generate(&data, 20);
    let bus = dir.path().join("bus");
    let url = format!("local:{}", bus.display());
    common::publish_refs(&data, &url);
    let output = clearing()
        .args(["demo", "--claims", "20", "--bus", &url, "--data"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already holds an earlier run"), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    // Refused before generating anything.
    assert!(!dir.path().join("demo").join("gen").exists());
}
