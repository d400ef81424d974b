//! The streaming pipeline on the local log, with real processes: decisions
//! equal in-process adjudication, survive SIGKILL at random points, and
//! survive the loss of every store (rebuilt from the changelogs).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{DecisionRec, FseDecided, FseRejected};
use clearing_pipeline::events::registry::SchemaRegistry;

use common::{clearing, ok, prepare};

fn run_to_end(bus: &Path) {
    ok(clearing()
        .args(["run", "--until-caught-up", "--batch", "97"])
        .arg("--bus")
        .arg(format!("local:{}", bus.display())));
}

/// Every decision on the bus, by (fse id, beneficiary key), with how many
/// times each appears.
fn decisions(bus: &Path) -> BTreeMap<String, Vec<DecisionRec>> {
    let log = LocalLog::open(bus).unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let mut out: BTreeMap<String, Vec<DecisionRec>> = BTreeMap::new();
    for topic in ["fse.decided", "fse.rejected"] {
        for partition in 0..log.partition_count(topic).unwrap() {
            for record in log.read(topic, partition, 0, usize::MAX).unwrap() {
                let d = if topic == "fse.decided" {
                    registry
                        .decode_single::<FseDecided>(&record.value)
                        .unwrap()
                        .decision
                } else {
                    registry
                        .decode_single::<FseRejected>(&record.value)
                        .unwrap()
                        .decision
                };
                let key = format!("{:?}/{:?}", d.fse_id, d.beneficiary_key);
                out.entry(key).or_default().push(d);
            }
        }
    }
    out
}

fn adjudicated(data: &Path) -> BTreeMap<String, Vec<DecisionRec>> {
    let mut a = common::dataset_adjudicator(data);
    let mut out: BTreeMap<String, Vec<DecisionRec>> = BTreeMap::new();
    for line in std::fs::read_to_string(data.join("claims.jsonl"))
        .unwrap()
        .lines()
    {
        let d = decision_rec(&a.decide_line(line).unwrap());
        out.entry(format!("{:?}/{:?}", d.fse_id, d.beneficiary_key))
            .or_default()
            .push(d);
    }
    // The bus groups by topic, the file is in order: compare as multisets.
    for list in out.values_mut() {
        list.sort_by_key(|d| format!("{d:?}"));
    }
    out
}

fn sorted(mut map: BTreeMap<String, Vec<DecisionRec>>) -> BTreeMap<String, Vec<DecisionRec>> {
    for list in map.values_mut() {
        list.sort_by_key(|d| format!("{d:?}"));
    }
    map
}

#[test]
fn the_local_pipeline_decides_as_adjudicate_does_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bus) = (dir.path().join("data"), dir.path().join("bus"));
    prepare(&data, &bus, 1500);
    run_to_end(&bus);
    let got = sorted(decisions(&bus));
    let want = adjudicated(&data);
    assert_eq!(got.len(), want.len());
    for (key, list) in &want {
        assert_eq!(got.get(key), Some(list), "{key}");
    }
}

#[test]
fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (clean, crashed) = (dir.path().join("clean"), dir.path().join("crashed"));
    prepare(&data, &clean, 3000);
    prepare(&data, &crashed, 3000);
    run_to_end(&clean);
    let url = format!("local:{}", crashed.display());
    // Kill points spread from the first batch to the end of the run.
    let mut kills = 0;
    for delay_ms in [40u64, 90, 150, 220, 300, 380, 470, 560, 650, 800] {
        let mut child = clearing()
            .args(["run", "--batch", "53", "--bus", &url])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 8, "only {kills} kills landed");
    run_to_end(&crashed);
    let (want, got) = (sorted(decisions(&clean)), sorted(decisions(&crashed)));
    assert_eq!(got.len(), want.len(), "claims with a decision");
    for (key, list) in &want {
        assert_eq!(got.get(key), Some(list), "{key}: lost or duplicated");
    }
    // The replay of the crashed run is identical to its record, and every
    // stage partition's hash chain ends where the clean run's does: the same
    // outputs, in the same order, whatever the kills.
    // Stages reading a topic several stages write (returns: fse.rejected;
    // ledger: outbound.ledger) see an interleaving that is itself an input:
    // recorded and replayed exactly, but not the same in two live runs.
    let single_producer = |list: Vec<(String, u64, String)>| -> Vec<(String, u64, String)> {
        list.into_iter()
            .filter(|(stage, _, _)| stage != "returns" && stage != "ledger")
            .collect()
    };
    assert_eq!(
        single_producer(replayed_chains(dir.path(), &crashed)),
        single_producer(replayed_chains(dir.path(), &clean))
    );
}

/// Replays the run on `bus` (its report in `dir`), checking it is identical
/// to its record: each stage partition's (stage, partition, chain hash).
fn replayed_chains(dir: &Path, bus: &Path) -> Vec<(String, u64, String)> {
    let report = dir.join("replay.json");
    let status = clearing()
        .args(["replay", "--quiet", "--bus"])
        .arg(format!("local:{}", bus.display()))
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "replay of {} diverges", bus.display());
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    r["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["stage"].as_str().unwrap().to_owned(),
                p["partition"].as_u64().unwrap(),
                p["chain_hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn lost_stores_are_rebuilt_from_the_changelogs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (clean, lost) = (dir.path().join("clean"), dir.path().join("lost"));
    prepare(&data, &clean, 1200);
    prepare(&data, &lost, 1200);
    run_to_end(&clean);
    // Half the stages' work, then every store is lost.
    let url = format!("local:{}", lost.display());
    let mut child = clearing()
        .args(["run", "--batch", "50", "--bus", &url])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(lost.join("state")).unwrap();
    run_to_end(&lost);
    let (want, got) = (sorted(decisions(&clean)), sorted(decisions(&lost)));
    assert_eq!(got, want);
}

#[test]
fn undecodable_bytes_become_dead_letters_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bus) = (dir.path().join("data"), dir.path().join("bus"));
    prepare(&data, &bus, 200);
    let garbage: Vec<Vec<u8>> = vec![
        b"not avro at all".to_vec(),
        vec![0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9], // unknown fingerprint
        vec![0xC3],                                        // truncated header
    ];
    {
        let log = LocalLog::open(&bus).unwrap();
        let mut producer = log.producer().unwrap();
        for bytes in &garbage {
            producer
                .send("fse.submitted", 1, b"unkeyed-x", bytes, 0)
                .unwrap();
        }
        // A rights record that does not decode: entitlement dead-letters it.
        producer
            .send("ref.rights", 1, b"dev-x", b"not a rights record", 0)
            .unwrap();
        producer.flush().unwrap();
    }
    run_to_end(&bus);
    let registry = SchemaRegistry::new().unwrap();
    let log = LocalLog::open(&bus).unwrap();
    let letters: Vec<_> = log
        .read("dlq.validation", 1, 0, 100)
        .unwrap()
        .iter()
        .map(|r| {
            registry
                .decode_single::<clearing_pipeline::events::model::DeadLetter>(&r.value)
                .unwrap()
        })
        .collect();
    assert_eq!(letters.len(), garbage.len());
    for (letter, bytes) in letters.iter().zip(&garbage) {
        assert_eq!(&letter.raw, bytes, "the raw bytes are kept");
        assert_eq!(letter.topic, "fse.submitted");
        assert!(!letter.error.is_empty());
    }
    let rights_letters = log.read("dlq.entitlement", 1, 0, 100).unwrap();
    assert_eq!(rights_letters.len(), 1);
    let letter = registry
        .decode_single::<clearing_pipeline::events::model::DeadLetter>(&rights_letters[0].value)
        .unwrap();
    assert_eq!(
        (letter.topic.as_str(), letter.raw.as_slice()),
        ("ref.rights", &b"not a rights record"[..])
    );
    drop(log);
    // The claims around them were all decided.
    assert_eq!(decisions(&bus).values().map(Vec::len).sum::<usize>(), 200);
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn run_serves_metrics_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bus) = (dir.path().join("data"), dir.path().join("bus"));
    prepare(&data, &bus, 400);
    // A free port on the loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = clearing()
        .args(["run", "--metrics-addr", &addr])
        .arg("--bus")
        .arg(format!("local:{}", bus.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let names = [
        "clearing_inputs_total",
        "clearing_outputs_total",
        "clearing_rejections_total",
        "clearing_batch_seconds",
        "clearing_consumer_lag",
        "clearing_end_to_end_seconds",
    ];
    // Each stage records its batch's metrics once the batch is committed,
    // which can be after a later stage has decided its claims: wait for all.
    let mut metrics = String::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(body) = http_get(&addr, "/metrics") {
            let complete =
                names.iter().all(|n| body.contains(n)) && body.contains("stage=\"validation\"");
            metrics = body;
            if complete {
                break;
            }
        }
    }
    for name in names {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(metrics.contains("stage=\"validation\""));
    // No personal data in labels: no NIR of the data set appears.
    let rights = std::fs::read_to_string(data.join("rights.jsonl")).unwrap();
    for line in rights.lines().take(50) {
        let nir = serde_json::from_str::<serde_json::Value>(line).unwrap()["nir"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!metrics.contains(&nir));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit {:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stderr).contains("stopped cleanly"));
}
