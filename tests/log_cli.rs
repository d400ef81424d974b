//! `clearing log check` and `clearing log repair --quarantine` from the
//! outside, on a local log with a damaged segment (issue 17 item 3): the
//! check names the damage and exits 1, the repair moves it aside and says
//! what it moved, and the pipeline's bus opens again.

use std::path::Path;
use std::process::{Command, Output};

use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{Bus, TopicSpec};

const BIN: &str = env!("CARGO_BIN_EXE_clearing");

fn clearing(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .output()
        .expect("clearing runs");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Five acknowledged records on `t/0`, then a byte of the third flipped.
fn damaged_log(dir: &Path) {
    {
        let bus = LocalLog::open(dir).unwrap();
        bus.ensure_topic(&TopicSpec {
            name: "t".into(),
            partitions: 1,
            compacted: false,
            retention_ms: None,
        })
        .unwrap();
        let mut producer = bus.producer().unwrap();
        for i in 0..5u8 {
            producer.send("t", 0, b"", &[i; 64], 0).unwrap();
        }
        producer.flush().unwrap();
    }
    let segment = dir.join("t/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[2 * 96 + 40] ^= 1;
    std::fs::write(&segment, bytes).unwrap();
}

#[test]
fn check_names_the_damage_and_repair_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    damaged_log(dir.path());
    let bus = format!("local:{}", dir.path().display());

    let (code, out, err) = clearing(&["log", "check", "--bus", &bus]);
    assert_eq!(code, 1, "{out}{err}");
    for part in [
        "damaged: topic t partition 0",
        "00000000000000000000.log",
        "byte 192",
        "record 2",
        "2 valid record(s) follow it (offsets 3 to 4)",
        "1 damaged segment(s)",
    ] {
        assert!(out.contains(part), "{part:?} not in {out}");
    }

    let (code, _, err) = clearing(&["log", "repair", "--bus", &bus]);
    assert_eq!(code, 2, "repair without --quarantine: {err}");
    assert!(err.contains("--quarantine"), "{err}");

    let (code, out, err) = clearing(&["log", "repair", "--bus", &bus, "--quarantine"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("quarantined: topic t partition 0: moved bytes 192 to 480")
            && out.contains("00000000000000000000.log.quarantine")
            && out.contains("00000000000000000005.log"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("t/0/00000000000000000000.log.quarantine"))
            .unwrap()
            .len(),
        3 * 96
    );

    let (code, out, err) = clearing(&["log", "check", "--bus", &bus]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 damaged segment(s)"), "{out}");
    let log = LocalLog::open(dir.path()).unwrap();
    assert_eq!(log.read("t", 0, 0, 10).unwrap().len(), 2);
    assert_eq!(log.end_offset("t", 0).unwrap(), 5);
}

#[test]
fn a_missing_directory_is_not_checked_clean() {
    let dir = tempfile::tempdir().unwrap();
    let bus = format!("local:{}", dir.path().join("typo").display());
    let (code, _, err) = clearing(&["log", "check", "--bus", &bus]);
    assert_eq!(code, 2, "{err}");
    assert!(!dir.path().join("typo").exists(), "nothing created");
    let (code, _, err) = clearing(&["log", "check", "--bus", "kafka://127.0.0.1:9092"]);
    assert_eq!(code, 2, "{err}");
}

/// `clearing log compact` on a changelog whose segments rolled every few
/// records: it drops the superseded records and the tombstones past their
/// retention, says so, and the log reads the same latest value per key.
#[test]
fn compact_drops_superseded_records_of_the_changelogs() {
    let dir = tempfile::tempdir().unwrap();
    let latest = |bus: &std::sync::Arc<LocalLog>| {
        let mut state = std::collections::BTreeMap::new();
        for r in bus.read("validation.changelog", 0, 0, usize::MAX).unwrap() {
            if r.tombstone {
                state.remove(&r.key);
            } else {
                state.insert(r.key, r.value);
            }
        }
        state
    };
    let before = {
        let bus = LocalLog::open_with_segment_bytes(dir.path(), 200).unwrap();
        bus.ensure_topic(&TopicSpec {
            compacted: true,
            ..TopicSpec::new("validation.changelog", 1)
        })
        .unwrap();
        let mut producer = bus.producer().unwrap();
        for i in 0u32..200 {
            let key = [b'k', (i % 7) as u8];
            if i % 5 == 4 {
                producer
                    .send_tombstone("validation.changelog", 0, &key, 0)
                    .unwrap();
            } else {
                let value = [&[1u8][..], &i.to_be_bytes()].concat();
                producer
                    .send("validation.changelog", 0, &key, &value, 0)
                    .unwrap();
            }
            if i % 3 == 2 {
                producer
                    .send("validation.changelog", 0, b"\0commit", &[1], 0)
                    .unwrap();
            }
        }
        producer.flush().unwrap();
        latest(&bus)
    };
    let url = format!("local:{}", dir.path().display());
    let (code, stdout, stderr) = clearing(&[
        "log",
        "compact",
        "--bus",
        &url,
        "--tombstone-retention",
        "0",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("validation.changelog/0: "), "{stdout}");
    assert!(!stdout.contains(" 0 record(s) dropped"), "{stdout}");
    assert!(stdout.contains("compacted 1 changelog(s)"), "{stdout}");
    let bus = LocalLog::open(dir.path()).unwrap();
    assert_eq!(latest(&bus), before);
    assert!(bus.check().unwrap().damage.is_empty());
}
