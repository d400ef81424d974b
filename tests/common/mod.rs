//! Helpers shared by the integration tests (each test crate uses a subset).
#![allow(dead_code)]

pub mod dataset;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::signatures::OwnedPkiVerifier;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An in-process adjudicator loaded with a `clearing gen` data set's
/// reference files (PKI, rights, EU institutions), signatures verified.
pub fn dataset_adjudicator(dir: &Path) -> Adjudicator {
    let mut pki = Pki::default();
    for line in lines(&dir.join("pki.jsonl")) {
        pki.apply(PkiRecord::from_json(&line).unwrap()).unwrap();
    }
    let mut a = Adjudicator::new(
        Rules::embedded().unwrap(),
        PseudonymKey::development(),
        Box::new(OwnedPkiVerifier::new(pki).unwrap()),
    );
    for line in lines(&dir.join("rights.jsonl")) {
        a.load_rights_line(&line).unwrap();
    }
    for line in lines(&dir.join("eu_institutions.jsonl")) {
        a.load_institution_line(&line).unwrap();
    }
    a
}

/// The `clearing` binary, with the development pseudonym key.
pub fn clearing() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clearing"));
    command.env_remove("CLEARING_PSEUDONYM_SECRET");
    command
}

/// `clearing replay` of the local log in `bus_dir` says IDENTICAL.
pub fn assert_replays_identical(bus_dir: &Path) {
    let replay = clearing()
        .args(["replay", "--bus"])
        .arg(format!("local:{}", bus_dir.display()))
        .arg("--quiet")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success() && said.contains("IDENTICAL"),
        "replay: {said}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
}

/// Runs a command and asserts it succeeded, showing its stderr if not.
pub fn ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a command with a file on its stdin and asserts it succeeded.
pub fn pipe(command: &mut Command, file: &Path) {
    let stdin = std::fs::File::open(file).unwrap();
    ok(command.stdin(Stdio::from(stdin)));
}

/// Writes a `clearing gen` data set of `claims` claims (seed 11) to `data`,
/// unless it is there already.
pub fn generate(data: &Path, claims: usize) {
    if !data.join("claims.jsonl").exists() {
        ok(clearing()
            .args(["gen", "--seed", "11", "--claims", &claims.to_string()])
            .args(["--professionals", "80"])
            .arg("--out")
            .arg(data));
    }
}

/// Publishes a data set's reference files to the bus at `url`.
pub fn publish_refs(data: &Path, url: &str) {
    for (topic, file) in [
        ("ref.rights", "rights.jsonl"),
        ("ref.pki", "pki.jsonl"),
        ("ref.eu.institutions", "eu_institutions.jsonl"),
    ] {
        pipe(
            clearing().args(["publish", "--bus", url, "--topic", topic]),
            &data.join(file),
        );
    }
}

/// A data set and a local bus loaded with it (reference data, then claims).
pub fn prepare(data: &Path, bus: &Path, claims: usize) {
    generate(data, claims);
    let url = format!("local:{}", bus.display());
    publish_refs(data, &url);
    pipe(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &url]),
        &data.join("claims.jsonl"),
    );
}

/// The topics a run writes that must come out the same whatever happened
/// during the run: the claim path and the dead letters (not the
/// changelogs, whose records follow the batch boundaries).
pub const OUTPUT_TOPICS: &[&str] = &[
    "fse.validated",
    "fse.entitled",
    "fse.routed",
    "fse.decided",
    "fse.rejected",
    "dlq.validation",
    "dlq.entitlement",
    "dlq.routing",
    "dlq.reimbursement",
];

/// Every output record's (key, value) by topic and partition, in log order.
/// `fse.rejected` has four writers (each stage rejects into it), whose
/// interleaving is timing: its partitions are compared sorted.
pub type Outputs = BTreeMap<(String, u32), Vec<(Vec<u8>, Vec<u8>)>>;

pub fn outputs(bus: &Path) -> Outputs {
    bus_outputs(&LocalLog::open(bus).unwrap())
}

/// [`outputs`] of any bus (a read returns at most a fetch's worth: read on
/// to the end).
pub fn bus_outputs(bus: &dyn Bus) -> Outputs {
    let mut out = Outputs::new();
    for topic in OUTPUT_TOPICS {
        for partition in 0..bus.partition_count(topic).unwrap() {
            // By offset: transaction markers take offsets on Kafka.
            let end = bus.end_offset(topic, partition).unwrap();
            let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut next = 0;
            while next < end {
                let chunk = bus.read(topic, partition, next, 100_000).unwrap();
                let Some(last) = chunk.last() else { break };
                next = last.offset + 1;
                records.extend(chunk.into_iter().map(|r| (r.key, r.value)));
            }
            if *topic == "fse.rejected" {
                records.sort();
            }
            out.insert((topic.to_string(), partition), records);
        }
    }
    out
}

/// Records on `topics` (read, not taken from the ends: transaction markers
/// take offsets on Kafka).
#[allow(dead_code)]
pub fn record_count(
    bus: &dyn Bus,
    topics: &[&str],
) -> Result<u64, clearing_pipeline::bus::BusError> {
    let mut count = 0;
    for topic in topics {
        for partition in 0..bus.partition_count(topic)? {
            let end = bus.end_offset(topic, partition)?;
            let mut next = 0;
            while next < end {
                let chunk = bus.read(topic, partition, next, 100_000)?;
                let Some(last) = chunk.last() else { break };
                next = last.offset + 1;
                count += chunk.len() as u64;
            }
        }
    }
    Ok(count)
}

/// Asserts two runs wrote the same bytes to every output partition, naming
/// the first partition and position that differ.
pub fn assert_same_outputs(want: &Outputs, got: &Outputs) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "output partitions"
    );
    for (partition, records) in want {
        let other = &got[partition];
        if let Some(i) =
            (0..records.len().max(other.len())).find(|&i| records.get(i) != other.get(i))
        {
            // Duplicates are the usual way a crash shows: count them.
            let distinct: std::collections::BTreeSet<_> = other.iter().collect();
            panic!(
                "{}/{}: {} records ({} distinct), {} expected; first difference at position {i}{}",
                partition.0,
                partition.1,
                other.len(),
                distinct.len(),
                records.len(),
                describe_difference(&partition.0, records, other)
            );
        }
    }
}

/// The records one side has more of than the other (multisets), rendered
/// with their headers, so that a failed soak says which stage's outputs,
/// of which inputs, were lost or written twice.
fn describe_difference(
    topic: &str,
    want: &[(Vec<u8>, Vec<u8>)],
    got: &[(Vec<u8>, Vec<u8>)],
) -> String {
    let count = |records: &[(Vec<u8>, Vec<u8>)]| {
        let mut counts: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (_, value) in records {
            *counts.entry(value.clone()).or_default() += 1;
        }
        counts
    };
    let (mut balance, got) = (count(want), count(got));
    for (value, n) in got {
        *balance.entry(value).or_default() -= n;
    }
    let Ok(registry) = clearing_pipeline::events::registry::SchemaRegistry::new() else {
        return String::new();
    };
    let mut out = String::new();
    for (label, sign) in [("missing", 1), ("extra", -1)] {
        let differing: Vec<(&Vec<u8>, i64)> = balance
            .iter()
            .filter(|(_, n)| **n * sign > 0)
            .map(|(v, n)| (v, n * sign))
            .collect();
        out += &format!("\n{label}: {} records", differing.len());
        for (value, n) in differing.iter().take(12) {
            let shown = clearing_pipeline::events::render::render(&registry, topic, value)
                .map_or_else(|e| format!("undecodable: {e}"), |v| v.to_string());
            let shown: String = shown.chars().take(700).collect();
            out += &format!("\n  {n}x {shown}");
        }
    }
    out
}

/// The closes the outbound tests and soaks publish: mid H1 2025 (H2 2024
/// claimed in time, most payments late), 3 August 2026 (H1 2025 claimed 13
/// months after its end: not receivable), then 2 January 2030 (everything
/// else).
#[allow(dead_code)]
pub const CLOSES: [&str; 3] = ["2025-06-16", "2026-08-03", "2030-01-02"];

/// Every record of a topic, decoded (read on to the end of each partition).
#[allow(dead_code)]
pub fn each_record<T: clearing_pipeline::events::AvroRecord>(bus: &dyn Bus, topic: &str) -> Vec<T> {
    let registry = clearing_pipeline::events::registry::SchemaRegistry::new().unwrap();
    let mut out = Vec::new();
    for partition in 0..bus.partition_count(topic).unwrap() {
        let end = bus.end_offset(topic, partition).unwrap();
        let mut next = 0;
        while next < end {
            let chunk = bus.read(topic, partition, next, 100_000).unwrap();
            let Some(last) = chunk.last() else { break };
            next = last.offset + 1;
            for record in &chunk {
                out.push(registry.decode_single::<T>(&record.value).unwrap());
            }
        }
    }
    out
}

/// Every outbound event (returns, payment orders, EU claims, complementary
/// claims) without its header, as a sorted multiset: sources and ids depend
/// on how the two producers of outbound.ledger interleaved, the bodies do not.
#[allow(dead_code)]
pub fn outbound_bodies(bus: &dyn Bus) -> Vec<String> {
    use clearing_pipeline::events::model::{AmcClaim, EuClaim, PaymentOrder, ProfessionalReturn};
    use clearing_pipeline::outbound::blank_header;
    let mut out = Vec::new();
    for mut e in each_record::<ProfessionalReturn>(bus, "returns.professional") {
        e.header = blank_header();
        out.push(format!("{e:?}"));
    }
    for mut e in each_record::<PaymentOrder>(bus, "payments.orders") {
        e.header = blank_header();
        out.push(format!("{e:?}"));
    }
    for mut e in each_record::<EuClaim>(bus, "eu.claims") {
        e.header = blank_header();
        out.push(format!("{e:?}"));
    }
    for mut e in each_record::<AmcClaim>(bus, "amc.claims") {
        e.header = blank_header();
        out.push(format!("{e:?}"));
    }
    out.sort();
    out
}

/// Total records in the outputs (for a test to show it compared something).
pub fn output_count(outputs: &Outputs) -> usize {
    outputs.values().map(Vec::len).sum()
}

/// The Kafka broker the Kafka tests use: `CLEARING_KAFKA` when set (a
/// bootstrap list), else the development broker of `ops/broker.sh`, started
/// here if it is not up (`ensure`: once for all test binaries, under a file
/// lock, reused when already running). The first start on a machine resolves
/// Apache Kafka's jars with Maven (about a minute) and needs Java 17.
#[allow(dead_code)]
pub fn kafka_bootstrap() -> String {
    static BOOTSTRAP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOTSTRAP
        .get_or_init(|| {
            if let Ok(servers) = std::env::var("CLEARING_KAFKA")
                && !servers.is_empty()
            {
                return servers;
            }
            let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/broker.sh"))
                .arg("ensure")
                .stderr(Stdio::inherit())
                .output()
                .expect("run ops/broker.sh");
            assert!(
                out.status.success(),
                "ops/broker.sh ensure failed: the Kafka tests need Java 17 and Maven \
                 (or CLEARING_KAFKA pointing at a broker)"
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// Python modules a test needs, installed with pip when missing (`(module,
/// package)` pairs): a failure, never a skip. Each test binary installs at
/// most once at a time, since its tests run in parallel and pip must not.
#[allow(dead_code)]
pub fn ensure_python_modules(needed: &[(&str, &str)]) {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let found = Command::new("python3").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "python3 is required for the interoperability tests"
    );
    let has = |module: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing = || -> Vec<&str> {
        needed
            .iter()
            .filter(|(module, _)| !has(module))
            .map(|(_, package)| *package)
            .collect()
    };
    let wanted = missing();
    if wanted.is_empty() {
        return;
    }
    let pip = |extra: &[&str]| {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .args(&wanted)
            .output()
            .expect("run pip");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = pip(&[]);
    if !missing().is_empty() {
        // A system Python that refuses pip (PEP 668).
        let second = pip(&["--break-system-packages"]);
        let still = missing();
        assert!(
            still.is_empty(),
            "{still:?} missing and pip could not install them:\n{first}\n{second}"
        );
    }
}

/// Runs `command` with `input` on its standard input; returns its output.
pub fn with_stdin(command: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// One FSE's final outcome: its decision as written to `fse.decided` (paid)
/// or `fse.rejected`, or a dead letter (which carries no readable FSE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FseOutcome {
    Decision {
        topic: String,
        /// Compared whole: amounts, reasons and their codes, route, lines,
        /// dates, keys, rules version, signature check.
        decision: Box<clearing_pipeline::events::model::DecisionRec>,
    },
    DeadLetter {
        topic: String,
        error: String,
    },
}

/// Final outcomes by `(fse id, beneficiary key)`, each list sorted (a
/// resent FSE has one outcome per sending); dead letters under
/// `dead letter <topic>/<partition>@<offset>`.
pub type FseOutcomes = BTreeMap<String, Vec<FseOutcome>>;

fn outcome_key(d: &clearing_pipeline::events::model::DecisionRec) -> String {
    format!("{:?}/{:?}", d.fse_id, d.beneficiary_key)
}

fn decision_outcome(d: &clearing_pipeline::events::model::DecisionRec) -> FseOutcome {
    use clearing_pipeline::domain::Status;
    FseOutcome::Decision {
        topic: match d.status {
            Status::Paid => "fse.decided",
            Status::Rejected => "fse.rejected",
        }
        .to_string(),
        decision: Box::new(d.clone()),
    }
}

/// What `clearing adjudicate` decides, in process, for every claim of a
/// `clearing gen` data set that `clearing submit` accepts (the others never
/// reach a bus), with the data set's reference files and the embedded rules,
/// in the file's order.
pub fn adjudicated_outcomes(data: &Path) -> FseOutcomes {
    use clearing_pipeline::adjudicate::FSE_OBJECTS;
    use clearing_pipeline::domain::{FseInput, json};
    use clearing_pipeline::events::convert::decision_rec;
    let mut adjudicator = dataset_adjudicator(data);
    let mut out = FseOutcomes::new();
    for line in lines(&data.join("claims.jsonl")) {
        let Ok(document) = json::parse(&line) else {
            continue;
        };
        let Ok(input) = json::from_document::<FseInput>(&document, FSE_OBJECTS) else {
            continue;
        };
        let d = decision_rec(&adjudicator.decide(&input).unwrap());
        out.entry(outcome_key(&d))
            .or_default()
            .push(decision_outcome(&d));
    }
    for list in out.values_mut() {
        list.sort_by_cached_key(|o| format!("{o:?}"));
    }
    out
}

/// Every final outcome on a bus: the decisions of `fse.decided` and
/// `fse.rejected` (each checked to be on the topic its status says) and
/// the dead letters of the four deciding stages. Also returns how many FSEs
/// `fse.submitted` holds.
pub fn bus_outcomes(bus: &dyn Bus) -> (FseOutcomes, usize) {
    use clearing_pipeline::events::model::{DeadLetter, FseDecided, FseRejected, FseSubmitted};
    let mut out = FseOutcomes::new();
    let mut add = |topic: &str, d: &clearing_pipeline::events::model::DecisionRec| {
        let outcome = decision_outcome(d);
        if let FseOutcome::Decision { topic: want, .. } = &outcome {
            assert_eq!(
                want, topic,
                "{:?}: a {:?} decision on {topic}",
                d.fse_id, d.status
            );
        }
        out.entry(outcome_key(d)).or_default().push(outcome);
    };
    for e in each_record::<FseDecided>(bus, "fse.decided") {
        add("fse.decided", &e.decision);
    }
    for e in each_record::<FseRejected>(bus, "fse.rejected") {
        add("fse.rejected", &e.decision);
    }
    for stage in ["validation", "entitlement", "routing", "reimbursement"] {
        let topic = format!("dlq.{stage}");
        for letter in each_record::<DeadLetter>(bus, &topic) {
            out.entry(format!(
                "dead letter {}/{}@{}",
                letter.topic, letter.partition, letter.offset
            ))
            .or_default()
            .push(FseOutcome::DeadLetter {
                topic: topic.clone(),
                error: letter.error,
            });
        }
    }
    for list in out.values_mut() {
        list.sort_by_cached_key(|o| format!("{o:?}"));
    }
    let submitted = each_record::<FseSubmitted>(bus, "fse.submitted").len();
    (out, submitted)
}

/// The differences between a run's outcomes and the adjudicated ones, one
/// line each (empty when they agree): an FSE missing, duplicated, dead
/// lettered, or decided otherwise (naming the first field that differs).
pub fn outcome_differences(want: &FseOutcomes, got: &FseOutcomes) -> Vec<String> {
    let mut differences = Vec::new();
    let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for key in keys {
        let (w, g) = (
            want.get(key).map_or(&[][..], Vec::as_slice),
            got.get(key).map_or(&[][..], Vec::as_slice),
        );
        if w == g {
            continue;
        }
        let text = if w.len() != g.len() {
            format!("{} outcome(s) in the run, {} adjudicated", g.len(), w.len())
        } else {
            w.iter()
                .zip(g)
                .find(|(a, b)| a != b)
                .map(|(a, b)| first_difference(a, b))
                .unwrap_or_default()
        };
        differences.push(format!("{key}: {text}"));
    }
    differences
}

/// Where two outcomes part, with a little context either side.
fn first_difference(want: &FseOutcome, got: &FseOutcome) -> String {
    let (w, g) = (format!("{want:?}"), format!("{got:?}"));
    let at = w
        .char_indices()
        .zip(g.chars())
        .find(|((_, a), b)| a != b)
        .map_or(w.len().min(g.len()), |((i, _), _)| i);
    let from = w[..at].rfind(", ").map_or(0, |i| i + 2);
    let window = |s: &str| {
        s.get(from..)
            .unwrap_or("")
            .chars()
            .take(90)
            .collect::<String>()
    };
    format!("run has `{}…`, adjudicate `{}…`", window(&g), window(&w))
}

/// Checks each submitted FSE's final outcome on `bus` against what
/// `clearing adjudicate` decides for it in process (same reference data,
/// rules and pseudonym key): the same decision, field for field, on the
/// topic its status says, once; no dead letter (adjudicate decides every
/// claim `clearing submit` accepts). Returns the number of FSEs checked.
pub fn assert_outcomes_match_adjudicate(data: &Path, bus: &dyn Bus) -> usize {
    let want = adjudicated_outcomes(data);
    let (got, submitted) = bus_outcomes(bus);
    let expected: usize = want.values().map(Vec::len).sum();
    assert_eq!(
        submitted, expected,
        "FSEs on fse.submitted vs claims clearing submit accepts"
    );
    let differences = outcome_differences(&want, &got);
    assert!(
        differences.is_empty(),
        "{} FSE(s) whose outcome is not adjudicate's:\n{}",
        differences.len(),
        differences
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    expected
}

/// The dead letters of the outbound stages (settlement, returns, ledger)
/// as a sorted multiset of (topic, error, raw bytes): positions left out,
/// since the two producers of `outbound.ledger` interleave by timing.
pub fn outbound_dead_letters(bus: &dyn Bus) -> Vec<(String, String, Vec<u8>)> {
    use clearing_pipeline::events::model::DeadLetter;
    let mut out = Vec::new();
    for stage in ["settlement", "returns", "ledger"] {
        let topic = format!("dlq.{stage}");
        for letter in each_record::<DeadLetter>(bus, &topic) {
            out.push((topic.clone(), letter.error, letter.raw));
        }
    }
    out.sort();
    out
}

/// Whether a process is stopped (SIGSTOP): state `T` in /proc.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state == 'T')
        })
        .unwrap_or(false)
}

/// A Kafka namespace no other test or run uses: the process, the time's
/// nanoseconds, a counter and the test's name.
pub fn fresh_namespace(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "test-{}-{nanos:x}-{}-{test}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// xorshift64*: a soak's own randomness, from a seed it prints, so a failing
/// run's kill plan can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
