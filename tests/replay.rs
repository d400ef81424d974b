//! Deterministic replay (issue 5): replay from empty state, and from any
//! intermediate snapshot, equals the original run byte for byte; a tampered
//! archive makes `clearing replay` exit 1 and name the exact event.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::{FseDecided, FseSubmitted};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, StageKind, topics};
use clearing_pipeline::synth::GenConfig;
use clearing_replay::run::replay;
use clearing_replay::verify::Setup;
use common::clearing;
use common::dataset::DataSet;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;

/// A small generated data set (ECDSA cards: quick to verify), care dates
/// across a year boundary so yearly caps reset mid-stream.
struct Data {
    set: DataSet,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Data {
    type Target = DataSet;
    fn deref(&self) -> &DataSet {
        &self.set
    }
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GenConfig::for_claims(11, 300);
        config.rsa_per_mille = 0;
        config.bad_per_mille = 80;
        config.beneficiaries = 60;
        config.first_care_date = chrono::NaiveDate::from_ymd_opt(2024, 11, 15).unwrap();
        config.last_care_date = chrono::NaiveDate::from_ymd_opt(2025, 2, 15).unwrap();
        Data {
            set: DataSet::generate(&config, dir.path()),
            _dir: dir,
        }
    })
}

/// One step of a recorded history.
#[derive(Debug, Clone)]
enum Op {
    Claim(usize),
    /// The same FSE sent again (a duplicate to reject).
    Resend(usize),
    /// A beneficiary's rights change mid-stream.
    Rights(usize, u8),
    /// Bytes that are no event, on a claim partition or on `ref.rights`.
    Garbage(u32, bool),
    /// The pipeline runs to the end of its input and stops (a restart);
    /// the stores are kept as a snapshot.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => any::<usize>().prop_map(Op::Claim),
        2 => any::<usize>().prop_map(Op::Resend),
        2 => (any::<usize>(), 0u8..4).prop_map(|(i, v)| Op::Rights(i, v)),
        1 => (0u32..4, any::<bool>()).prop_map(|(p, r)| Op::Garbage(p, r)),
        1 => Just(Op::Restart),
    ]
}

/// A rights record changed: coverage ends at the year boundary, a long-term
/// illness starts, CSS starts, or the record is sent again unchanged.
fn changed_rights(original: &Value, variant: u8) -> RightsInput {
    let mut v = original.clone();
    match variant {
        0 => {
            if let Some(first) = v["coverage"].get_mut(0) {
                first["to"] = Value::from("2024-12-31");
            }
        }
        1 => v["ald"] = serde_json::json!([{"from": "2025-01-01", "to": null}]),
        2 => v["css"] = serde_json::json!([{"from": "2024-12-01", "to": null}]),
        _ => {}
    }
    serde_json::from_value(v).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn run_to_end(bus: &Arc<dyn Bus>, state: &Path, batch: usize, workers: u32) {
    let shared = common::dataset::shared_with(
        bus.clone(),
        state,
        batch,
        clearing_pipeline::runtime::cores(),
        workers,
    );
    runtime::run_to_end(shared).unwrap();
}

fn setup(bus: Arc<dyn Bus>) -> Setup {
    Setup {
        bus,
        rules: Arc::new(Rules::embedded().unwrap()),
        registry: Arc::new(SchemaRegistry::new().unwrap()),
        pseudonyms: PseudonymKey::development(),
        trust_unsigned: false,
    }
}

fn all_jobs() -> Vec<(StageKind, u32)> {
    StageKind::ALL
        .into_iter()
        .flat_map(|k| (0..4).map(move |p| (k, p)))
        .collect()
}

/// The property's configuration: 64 cases, and the seeds of failures found
/// before (`tests/replay.proptest-regressions`, named after this file: the
/// default `SourceParallel` looks for a `lib.rs` or `main.rs` above `tests/`
/// and only falls back to this name) run first. A new failure's seed is
/// appended there, to be committed.
fn replay_config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Records a history on a fresh local log (running the pipeline at each
/// restart, keeping its stores as a snapshot), then replays it from empty
/// state and from every snapshot: each replay must give the recorded outputs
/// byte for byte.
fn check_history(ops: &[Op], batch: usize, workers: &[u32]) -> Result<(), TestCaseError> {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let log = LocalLog::open(&dir.path().join("bus")).unwrap();
    let bus: Arc<dyn Bus> = Arc::new(log.clone());
    runtime::ensure_topics(bus.as_ref(), 4).unwrap();
    let state = dir.path().join("state");
    data.publish_references(bus.as_ref());
    let registry = SchemaRegistry::new().unwrap();
    let mut snapshots: Vec<PathBuf> = Vec::new();
    for op in ops {
        if let Op::Restart = op {
            run_to_end(
                &bus,
                &state,
                batch,
                workers[snapshots.len() % workers.len()],
            );
            let snapshot = dir.path().join(format!("snapshot-{}", snapshots.len()));
            copy_dir(&state, &snapshot);
            snapshots.push(snapshot);
        } else {
            record(&bus, data, op, &registry);
        }
    }
    run_to_end(
        &bus,
        &state,
        batch,
        workers[snapshots.len() % workers.len()],
    );

    let setup = setup(bus.clone());
    let report = replay(&setup, &all_jobs(), None, 2, &|_, _| {}).unwrap();
    prop_assert!(report.identical, "{:?}", report.first_divergence);
    prop_assert_eq!(report.uncommitted_inputs, 0);
    prop_assert_eq!(report.uncovered_outputs, 0);
    let decided: u64 = (0..4)
        .map(|p| bus.end_offset(topics::FSE_DECIDED, p).unwrap())
        .sum();
    let compared: u64 = report
        .partitions
        .iter()
        .filter(|p| p.stage == "reimbursement")
        .map(|p| p.outputs_compared)
        .sum();
    prop_assert!(
        compared >= decided,
        "{compared} outputs compared, {decided} decisions"
    );
    for snapshot in &snapshots {
        let from_snapshot = replay(&setup, &all_jobs(), Some(snapshot), 2, &|_, _| {}).unwrap();
        prop_assert!(
            from_snapshot.identical,
            "{:?}",
            from_snapshot.first_divergence
        );
        for (a, b) in report.partitions.iter().zip(&from_snapshot.partitions) {
            prop_assert_eq!(&a.chain_hash, &b.chain_hash);
        }
    }
    Ok(())
}

/// One step of a history other than a restart, written to the bus.
fn record(bus: &Arc<dyn Bus>, data: &Data, op: &Op, registry: &SchemaRegistry) {
    let pseudonyms = PseudonymKey::development();
    match op {
        Op::Restart => unreachable!("a restart runs the pipeline"),
        Op::Garbage(partition, on_rights) => {
            let topic = if *on_rights {
                topics::REF_RIGHTS
            } else {
                topics::FSE_SUBMITTED
            };
            let mut producer = bus.producer().unwrap();
            producer
                .send(topic, *partition, b"garbage", &[0xC3, 0x01, 0xde, 0xad], 0)
                .unwrap();
            producer.flush().unwrap();
        }
        Op::Claim(i) | Op::Resend(i) => {
            let mut ingest =
                Ingest::new(bus.as_ref(), registry, &pseudonyms, IngestClock::Simulated).unwrap();
            let claim = &data.claims[i % data.claims.len()];
            // Claims the front door refuses never reach the bus.
            let _ = ingest.submit(claim);
            ingest.flush().unwrap();
        }
        Op::Rights(i, variant) => {
            let mut ingest =
                Ingest::new(bus.as_ref(), registry, &pseudonyms, IngestClock::Simulated).unwrap();
            let rights = &data.rights[i % data.rights.len()];
            ingest.rights(&changed_rights(rights, *variant)).unwrap();
            ingest.flush().unwrap();
        }
    }
}

proptest! {
    #![proptest_config(replay_config())]

    /// Random histories of claims, duplicates, rights changes, garbage and
    /// restarts: replay from empty state and from every snapshot taken at a
    /// restart gives the recorded outputs byte for byte, however many
    /// workers each stage ran (the partitions change hands at restarts).
    #[test]
    fn replay_from_empty_state_or_any_snapshot_equals_the_original_run(
        ops in prop::collection::vec(op(), 10..90),
        batch in 1usize..40,
        workers in prop::collection::vec(1u32..=4, 8),
    ) {
        check_history(&ops, batch, &workers)?;
    }
}

/// The property runs the committed regressions: its configuration loads
/// every seed of `tests/replay.proptest-regressions`, and the file is the
/// one beside this test.
#[test]
fn the_property_loads_its_committed_regressions() {
    let config = replay_config();
    let persistence = config
        .failure_persistence
        .as_ref()
        .expect("the property persists its failures");
    let loaded: Vec<String> = persistence
        .load_persisted_failures2(Some(file!()))
        .iter()
        .map(ToString::to_string)
        .collect();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay.proptest-regressions");
    let committed: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("cc "))
        .map(|line| format!("cc {}", line.split_whitespace().next().unwrap_or("")))
        .collect();
    assert!(!committed.is_empty(), "{}: no seed", file.display());
    // proptest runs the seeds last to first; the set is what matters.
    let (mut loaded, mut committed) = (loaded, committed);
    loaded.sort();
    committed.sort();
    assert_eq!(loaded, committed, "seeds the property runs first");
}

/// The committed regression as it was shrunk (its comment in
/// `tests/replay.proptest-regressions`), recorded before the property took
/// its workers: a rights change (an ALD starting) and an unchanged rights
/// record between claims, one restart. Run with one worker per stage and with four.
#[test]
fn the_committed_regression_replays_identically() {
    let ops = [
        Op::Claim(12806911193491),
        Op::Restart,
        Op::Claim(10077292350232055517),
        Op::Rights(11604500322252026995, 1),
        Op::Claim(17280359655437802224),
        Op::Claim(8087027238075849147),
        Op::Rights(5862135304844104941, 3),
        Op::Claim(14894170622845773622),
        Op::Claim(9135913045552522014),
        Op::Claim(135640439810099117),
    ];
    for workers in [1, 4] {
        check_history(&ops, 20, &[workers]).unwrap();
    }
}

/// A recorded run on the local log, archived: (run dir, archive dir).
fn recorded_archive() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    common::ok(clearing().args(["demo", "--claims", "600", "--data", data.to_str().unwrap()]));
    let archive = dir.path().join("archive");
    common::ok(clearing().args([
        "archive",
        "--bus",
        &format!("local:{}", data.join("bus").display()),
        "--out",
        archive.to_str().unwrap(),
    ]));
    (dir, archive)
}

/// New bytes for the one record to tamper with, given its offset and bytes.
type Tamper<'a> = &'a dyn Fn(u64, &[u8]) -> Option<Vec<u8>>;

/// Copies `archive` to `to` (manifest included), passing every record of
/// `topic`/`partition` through `change` (which returns new bytes for the
/// one record to tamper with).
fn tampered_copy(archive: &Path, to: &Path, topic: &str, change: Tamper<'_>) -> (u32, u64) {
    let source = LocalLog::open(archive).unwrap();
    let target = LocalLog::open(to).unwrap();
    let mut changed = None;
    for spec in topics::all(4) {
        let Ok(partitions) = source.partition_count(&spec.name) else {
            continue;
        };
        target.ensure_topic(&spec).unwrap();
        for p in 0..partitions {
            let mut from = 0;
            loop {
                let records = source.read(&spec.name, p, from, 1024).unwrap();
                let Some(last) = records.last() else { break };
                from = last.offset + 1;
                for r in records {
                    let mut value = r.value.clone();
                    if changed.is_none()
                        && spec.name == topic
                        && let Some(new) = change(r.offset, &r.value)
                    {
                        value = new;
                        changed = Some((p, r.offset));
                    }
                    target
                        .append_at(&spec.name, p, r.offset, r.timestamp_millis, &r.key, &value)
                        .unwrap();
                }
            }
            target.flush_partition(&spec.name, p).unwrap();
        }
    }
    std::fs::copy(archive.join("MANIFEST.json"), to.join("MANIFEST.json")).unwrap();
    changed.expect("nothing to tamper with")
}

fn replay_report(archive: &Path, report: &Path) -> (i32, String, Value) {
    let output = clearing()
        .args([
            "replay",
            "--archive",
            archive.to_str().unwrap(),
            "--quiet",
            "--report",
            report.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        json,
    )
}

/// An archive of a 60-claim demo run recorded at commit 3b6183f (before
/// the runtime took its `Stage` contract), kept in the repository: today's
/// code replays it to the same bytes, as an auditor's replay of an old run
/// must. Replayed from a copy: a replay locks the log's directory.
#[test]
fn an_archive_recorded_at_3b6183f_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/archive-3b6183f"),
        &archive,
    );
    let (code, stdout, report) = replay_report(&archive, &dir.path().join("report.json"));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(report["identical"], true, "{report}");
    assert_eq!(report["inputs"], 1368, "{report}");
}

/// A what-if on a run recorded under an earlier rule set compares against
/// that set, not against the binary's current one: the baseline decides as
/// the record did.
#[test]
fn a_what_if_on_an_old_archive_takes_the_recorded_rule_set_as_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/archive-3b6183f"),
        &archive,
    );
    let report = dir.path().join("what-if.json");
    common::ok(
        clearing().args([
            "replay",
            "--archive",
            archive.to_str().unwrap(),
            "--rules",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("pipeline/rules")
                .to_str()
                .unwrap(),
            "--out",
            dir.path().join("what-if").to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--quiet",
        ]),
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        r["baseline_rules"],
        "sha256:eeeedaef47c517134464ebd88db5da96e90c730bad50d568aaa8e157ba44644a",
        "{r:#}"
    );
    assert_eq!(
        r["what_if_rules"].as_str(),
        Some(
            clearing_pipeline::rules::Rules::embedded()
                .unwrap()
                .version
                .as_str()
        )
    );
}

#[test]
fn an_archive_replays_identically_and_one_tampered_event_is_named() {
    let (dir, archive) = recorded_archive();
    let (code, stdout, report) = replay_report(&archive, &dir.path().join("clean.json"));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("IDENTICAL"), "{stdout}");
    assert_eq!(report["identical"], true);
    assert!(report["inputs"].as_u64().unwrap() >= 4 * 500);

    let registry = SchemaRegistry::new().unwrap();
    a_tampered_decision_is_named_with_its_field(dir.path(), &archive, &registry);
    a_tampered_input_diverges_at_validation(dir.path(), &archive, &registry);
}

/// One recorded decision changed by one euro: the archive's digest breaks,
/// and the replay names that decision and the field.
fn a_tampered_decision_is_named_with_its_field(
    dir: &Path,
    archive: &Path,
    registry: &SchemaRegistry,
) {
    let tampered = dir.join("tampered-output");
    let (partition, offset) = tampered_copy(archive, &tampered, topics::FSE_DECIDED, &|o, v| {
        (o == 7).then(|| {
            let mut event: FseDecided = registry.decode_single(v).unwrap();
            event.decision.amo_cents += 100;
            registry.encode_single(&event)
        })
    });
    let (code, stdout, report) = replay_report(&tampered, &dir.join("t1.json"));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("DIVERGENT"), "{stdout}");
    let d = &report["first_divergence"];
    assert_eq!(d["kind"], "output_differs", "{d:#}");
    assert_eq!(d["stage"], "reimbursement");
    assert_eq!(d["partition"], partition);
    assert_eq!(d["topic"], "fse.decided");
    assert_eq!(d["recorded_offset"], offset);
    assert!(d["fse_id"].as_str().is_some());
    let fields: Vec<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["decision.amo"], "{d}");
    assert!(
        report["archive_damage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x
                .as_str()
                .unwrap()
                .starts_with(&format!("fse.decided/{partition}")))
    );
}

/// One input changed (a charged amount): its signature no longer holds,
/// validation's output differs at that input.
fn a_tampered_input_diverges_at_validation(dir: &Path, archive: &Path, registry: &SchemaRegistry) {
    let tampered = dir.join("tampered-input");
    let (partition, offset) = tampered_copy(archive, &tampered, topics::FSE_SUBMITTED, &|o, v| {
        let mut event: FseSubmitted = registry.decode_single(v).ok()?;
        (o >= 3 && event.signature.is_some()).then(|| {
            event.acts[0].charged_cents += 1;
            registry.encode_single(&event)
        })
    });
    let (code, stdout, report) = replay_report(&tampered, &dir.join("t2.json"));
    assert_eq!(code, 1, "{stdout}");
    let d = &report["first_divergence"];
    assert_eq!(d["stage"], "validation");
    assert_eq!(d["partition"], partition);
    assert_eq!(d["input_offset"], offset, "{d:#}");
    // The replay rejects it (bad signature) where the record has none, or
    // a later rejection.
    assert!(
        ["output_differs", "output_not_recorded"].contains(&d["kind"].as_str().unwrap()),
        "{d:#}"
    );
    assert_eq!(d["topic"], "fse.rejected");
    assert_eq!(
        d["replayed"]["decision"]["reasons"][0]["code"],
        "bad_signature"
    );
}

#[test]
fn explain_follows_one_claim_through_its_partition_and_what_if_isolates_a_rule_change() {
    let (dir, archive) = recorded_archive();
    let bus = LocalLog::open(&archive).unwrap();
    let registry = SchemaRegistry::new().unwrap();
    // A paid claim of partition 1.
    let record = bus.read(topics::FSE_DECIDED, 1, 3, 1).unwrap().remove(0);
    let decided: FseDecided = registry.decode_single(&record.value).unwrap();
    drop(bus);
    let fse_id = decided.decision.fse_id.clone().unwrap();
    let key = decided.decision.beneficiary_key.clone().unwrap();
    let e = explain_json(&archive, &fse_id, &key);
    assert_eq!(e["partitions_scanned"], serde_json::json!([1]));
    let o = &e["occurrences"][0];
    let stages: Vec<&str> = o["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["validation", "entitlement", "routing", "reimbursement"]
    );
    assert_eq!(o["steps"][3]["topic"], "fse.decided");
    assert_eq!(o["steps"][3]["offset"], record.offset);
    assert_eq!(
        o["steps"][3]["event"]["decision"]["fse_id"],
        fse_id.as_str()
    );
    let arithmetic = o["arithmetic"].as_array().unwrap();
    assert_eq!(
        arithmetic.len(),
        decided.decision.lines.len() + 2,
        "{arithmetic:?}"
    );
    assert!(arithmetic[0].as_str().unwrap().contains(" % = "));
    // The yearly participation and franchise counters are written by every
    // paid claim, before and after.
    assert!(!o["accumulators"].as_array().unwrap().is_empty(), "{o:#}");
    explain_prints_text_and_refuses_an_unknown_claim(&archive, &fse_id);

    what_if_nursing_at_65_changes_only_nurses_from_2025(dir.path(), &archive);
}

/// `clearing explain --json` on the archive, with the pseudonym key.
fn explain_json(archive: &Path, fse_id: &str, key: &str) -> Value {
    let output = clearing()
        .args(["explain", fse_id, "--archive", archive.to_str().unwrap()])
        .args(["--key", key, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn explain_prints_text_and_refuses_an_unknown_claim(archive: &Path, fse_id: &str) {
    let text = clearing()
        .args(["explain", fse_id, "--archive", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("accumulators"), "{text}");
    let missing = clearing()
        .args([
            "explain",
            "00000000-000000000",
            "--archive",
            archive.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

/// What-if: nursing at 65 % from 2025 instead of 60 %.
fn what_if_nursing_at_65_changes_only_nurses_from_2025(dir: &Path, archive: &Path) {
    let rules = rules_with_nursing_at_65_from_2025(dir);
    let report = dir.join("what-if.json");
    common::ok(clearing().args([
        "replay",
        "--archive",
        archive.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--out",
        dir.join("what-if").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ]));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(r["changed"].as_u64().unwrap() > 0, "{r:#}");
    assert!(r["total"]["difference_cents"].as_i64().unwrap() > 0);
    for (category, m) in r["by_category"].as_object().unwrap() {
        if category != "nurse" {
            assert_eq!(m["changed"], 0, "{category}: {m}");
            assert_eq!(m["baseline_payees"], m["what_if_payees"], "{category}");
        }
    }
    // The nurses' higher AMO share reaches a payee: the nurse under tiers
    // payant or the insured.
    let nurse = &r["by_category"]["nurse"];
    let paid = |side: &str| {
        let p = &nurse[side];
        p["to_professional_cents"].as_i64().unwrap() + p["to_insured_cents"].as_i64().unwrap()
    };
    assert!(paid("what_if_payees") > paid("baseline_payees"), "{nurse}");
    for (month, m) in r["by_month"].as_object().unwrap() {
        if month.as_str() < "2025-01" {
            assert_eq!(m["changed"], 0, "{month}: {m}");
        }
    }
    assert_eq!(
        r["total"]["difference_cents"],
        r["by_category"]["nurse"]["difference_cents"]
    );
}

/// A copy of the rules in `dir`, whose nursing rate is 60 % as recorded and
/// 65 % from 2025.
fn rules_with_nursing_at_65_from_2025(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    copy_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pipeline/rules")
            .as_path(),
        &rules,
    );
    let rates = std::fs::read_to_string(rules.join("rates.toml")).unwrap();
    let nursing = rates.find("family = \"nursing\"").unwrap();
    let line_end = nursing + rates[nursing..].find("\nrate = ").unwrap() + 1;
    let next = line_end + rates[line_end..].find('\n').unwrap();
    let changed = format!(
        "{}rate = [{{ from = \"2000-01-01\", percent = 60, source = \"as recorded\" }}, {{ from = \"2025-01-01\", percent = 65, source = \"what-if\" }}]{}",
        &rates[..line_end],
        &rates[next..]
    );
    std::fs::write(rules.join("rates.toml"), changed).unwrap();
    rules
}
