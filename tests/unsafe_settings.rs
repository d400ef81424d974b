//! Unsafe settings on Kafka (issue 17 item 6), with the `clearing` binary
//! and the development broker (one broker, PLAINTEXT): `clearing run`
//! refuses `--trust-unsigned`, the connection in clear, the development
//! pseudonym secret and topics under three replicas, each until its flag
//! (or `--simulation`) accepts it, and names what it accepted; replay
//! reports the batches whose signatures were not checked.

mod common;

use std::path::Path;
use std::process::Output;

use common::clearing;

/// A namespace no other test or run uses.
fn fresh_url(test: &str) -> String {
    format!(
        "kafka://{}/{}",
        common::kafka_bootstrap(),
        common::fresh_namespace(&format!("unsafe-{test}"))
    )
}

/// A secret that is not the development one.
const SECRET: &str = "a-production-secret-of-enough-length";

/// `clearing run --until-caught-up` on `url` with `flags`; `secret` sets
/// `CLEARING_PSEUDONYM_SECRET`.
fn run(url: &str, state: &Path, flags: &[&str], secret: Option<&str>) -> (Option<i32>, String) {
    let mut command = clearing();
    command
        .args(["run", "--until-caught-up", "--bus", url])
        .args(flags)
        .arg("--state")
        .arg(state)
        .env_remove("CLEARING_KAFKA_CONFIG")
        .env_remove("CLEARING_KAFKA_REPLICATION_FACTOR");
    if let Some(secret) = secret {
        command.env("CLEARING_PSEUDONYM_SECRET", secret);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const TRUST: &str =
    "--trust-unsigned: claims are paid without checking their signatures; or --simulation";
const CLEAR: &str = "(security.protocol is PLAINTEXT)";
const DEV: &str = "development pseudonym secret";
const REPLICAS: &str = "topics below 3 replicas and min.insync.replicas 2";

/// Whether `clearing read` finds the topic: a refused run must create none.
fn topic_exists(url: &str, topic: &str) -> bool {
    clearing()
        .args(["read", "--bus", url, "--topic", topic])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_run_on_kafka_refuses_each_unsafe_setting_with_its_flag_and_writes_nothing() {
    let url = fresh_url("refused");
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run(&url, dir.path(), &["--trust-unsigned"], None);
    assert_eq!(code, Some(2), "a usage error: {err}");
    for needle in [
        TRUST,
        CLEAR,
        "or --allow-plaintext",
        DEV,
        "or --allow-development-secret",
        REPLICAS,
        "29 topic(s) to be created with 1 replica(s) and min.insync.replicas 1",
        "or --allow-under-replicated",
        "--simulation accepts them all",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert!(
        !topic_exists(&url, "fse.submitted"),
        "the refused run created its topics"
    );
    // No per-setting flag accepts skipping signatures.
    let every = [
        "--trust-unsigned",
        "--allow-plaintext",
        "--allow-development-secret",
        "--allow-under-replicated",
    ];
    let (code, err) = run(&url, dir.path(), &every, None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(TRUST), "{err}");
    for other in [CLEAR, DEV, REPLICAS] {
        assert!(
            !err.contains(other),
            "{other:?} accepted by its flag: {err}"
        );
    }
}

#[test]
fn each_flag_accepts_its_setting_only_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        ("--allow-plaintext", CLEAR),
        ("--allow-development-secret", DEV),
        ("--allow-under-replicated", REPLICAS),
    ];
    for (left_out, refused) in flags {
        let url = fresh_url("one-left-out");
        let given: Vec<&str> = flags
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| *f != left_out)
            .collect();
        let (code, err) = run(&url, dir.path(), &given, None);
        assert_eq!(code, Some(2), "{left_out} left out: {err}");
        assert!(err.contains(&format!("; or {left_out}")), "{err}");
        assert!(err.contains(refused), "{err}");
        for (flag, text) in flags {
            if flag != left_out {
                assert!(!err.contains(text), "{flag} given, still refused: {err}");
            }
        }
    }
    // All three: the run goes, naming each setting it accepted and by what.
    let every: Vec<&str> = flags.iter().map(|(f, _)| *f).collect();
    let (code, err) = run(&fresh_url("all-three"), &dir.path().join("a"), &every, None);
    assert_eq!(code, Some(0), "{err}");
    for (flag, text) in flags {
        let line = err
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} not named: {err}"));
        assert!(
            line.starts_with(&format!("clearing run: accepted by {flag} on kafka://")),
            "{line}"
        );
    }
    assert!(err.contains("stopped cleanly"), "{err}");
    // With a secret of its own, the development secret's flag is not needed.
    let (code, err) = run(
        &fresh_url("secret"),
        &dir.path().join("b"),
        &["--allow-plaintext", "--allow-under-replicated"],
        Some(SECRET),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains(DEV), "{err}");
    // --simulation accepts all four, and says it did.
    let (code, err) = run(
        &fresh_url("simulation"),
        &dir.path().join("c"),
        &["--simulation", "--trust-unsigned"],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    for text in [
        TRUST.split(';').next().unwrap_or(TRUST),
        CLEAR,
        DEV,
        REPLICAS,
    ] {
        assert!(
            err.lines().any(
                |l| l.starts_with("clearing run: accepted by --simulation") && l.contains(text)
            ),
            "{text:?} not named: {err}"
        );
    }
}

#[test]
fn existing_topics_under_three_replicas_are_refused_whatever_factor_is_configured() {
    let url = fresh_url("existing");
    let dir = tempfile::tempdir().unwrap();
    // `submit` makes the topics, on one broker with one replica each.
    let output = common::with_stdin(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &url]),
        "",
    );
    assert!(output.status.success(), "{output:?}");
    assert!(topic_exists(&url, "fse.submitted"));
    for configured in [None, Some("1")] {
        let mut command = clearing();
        command
            .args(["run", "--until-caught-up", "--bus", &url])
            .args(["--allow-plaintext", "--allow-development-secret"])
            .arg("--state")
            .arg(dir.path());
        if let Some(factor) = configured {
            command.env("CLEARING_KAFKA_REPLICATION_FACTOR", factor);
        }
        let output: Output = command.output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{configured:?}: {err}");
        assert!(
            err.contains("fse.submitted (1 replica(s), min.insync.replicas 1)")
                && err.contains("and 23 more; or --allow-under-replicated"),
            "{configured:?}: {err}"
        );
    }
}

#[test]
fn replay_reports_the_batches_whose_signatures_were_not_checked() {
    let url = fresh_url("replay");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::generate(&data, 120);
    common::publish_refs(&data, &url);
    let claims = std::fs::read_to_string(data.join("claims.jsonl")).unwrap();
    let lines: Vec<&str> = claims.lines().collect();
    let (first, second) = lines.split_at(50);
    let submit = |part: &[&str]| {
        let output = common::with_stdin(
            clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &url]),
            &(part.join("\n") + "\n"),
        );
        assert!(output.status.success(), "{output:?}");
    };
    // Half the claims in a simulation that checks no signature, the rest
    // in a run that checks them, with the same stores and group.
    let state = dir.path().join("state");
    submit(first);
    let simulation = ["--simulation", "--trust-unsigned", "--batch", "7"];
    let (code, err) = run(&url, &state, &simulation, None);
    assert_eq!(code, Some(0), "{err}");
    submit(second);
    let (code, err) = run(&url, &state, &["--simulation", "--batch", "7"], None);
    assert_eq!(code, Some(0), "{err}");

    let report_path = dir.path().join("report.json");
    let (code, stdout) = replay(&url, &report_path);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("IDENTICAL"), "{stdout}");
    let report = read_json(&report_path);
    let count = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in the report: {report:#}"))
    };
    // Exactly the first half's inputs, from the start of each partition.
    assert_eq!(count("unchecked_signature_inputs"), first.len() as u64);
    let batches = count("unchecked_signature_batches");
    assert!(batches >= first.len() as u64 / 7, "{batches}");
    let validated = validated_inputs_unchecked_from_the_start(&report);
    assert_eq!(validated, lines.len() as u64, "every claim was validated");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("signatures NOT checked when recorded"))
        .unwrap_or_else(|| panic!("no unchecked line in {stdout}"));
    assert!(
        line.contains(&format!(
            "{batches} validation batch(es), 50 input(s): validation p"
        )),
        "{line}"
    );
    a_run_that_checked_every_signature_reports_none(&data, &claims, dir.path(), &report_path);
}

/// `clearing replay --quiet` of `url`, its report written at
/// `report_path`: its exit status and stdout.
fn replay(url: &str, report_path: &Path) -> (Option<i32>, String) {
    let output = clearing()
        .args(["replay", "--quiet", "--bus", url, "--report"])
        .arg(report_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), stdout)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The inputs validation saw, checking that only validation's partitions
/// have unchecked signatures, in one range from the partition's start.
fn validated_inputs_unchecked_from_the_start(report: &serde_json::Value) -> u64 {
    let mut validated = 0;
    for p in report["partitions"].as_array().unwrap() {
        let ranges = p["unchecked_signatures"].as_array().unwrap();
        if p["stage"] != "validation" {
            assert!(ranges.is_empty(), "{p:#}");
            continue;
        }
        validated += p["inputs"].as_u64().unwrap();
        assert!(ranges.len() <= 1, "{p:#}");
        if let Some(r) = ranges.first() {
            assert_eq!(r["from"], 0, "{p:#}");
            assert!(r["to"].as_u64().unwrap() < p["inputs"].as_u64().unwrap());
        }
    }
    validated
}

/// A run that checked every signature reports none.
fn a_run_that_checked_every_signature_reports_none(
    data: &Path,
    claims: &str,
    dir: &Path,
    report_path: &Path,
) {
    let other = fresh_url("replay-checked");
    common::publish_refs(data, &other);
    let output = common::with_stdin(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &other]),
        claims,
    );
    assert!(output.status.success());
    let (code, err) = run(&other, &dir.join("state2"), &["--simulation"], None);
    assert_eq!(code, Some(0), "{err}");
    let (_, stdout) = replay(&other, report_path);
    assert!(stdout.contains("IDENTICAL"), "{stdout}");
    assert!(!stdout.contains("NOT checked"), "{stdout}");
    let report = read_json(report_path);
    assert_eq!(report["unchecked_signature_batches"], 0);
}
