//! The pipeline on Apache Kafka (`CLEARING_KAFKA` when set, else the
//! development broker, which `ops/broker.sh ensure` starts when it is not up),
//! through `clearing run --bus kafka://…`. The Kafka bus alone is held to
//! the `Bus` contract, beside the local log, by tests/bus_contract.rs.
//!
//! Every test works in its own namespace (`kafka://HOST:PORT/NAMESPACE`
//! prefixes topic and group names), so tests and concurrent runs of the
//! suite never see each other's topics.
//! A broker that cannot be reached fails the test: it is never skipped.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clearing_pipeline::adjudicate::Adjudicator;
use clearing_pipeline::bus::kafka::{self, KafkaBus};
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{Bus, BusError, TopicSpec};
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{DecisionRec, FseDecided, FseRejected};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::signatures::OwnedPkiVerifier;

fn broker_address() -> String {
    common::kafka_bootstrap()
}

/// A namespace no other test or run uses.
fn namespace(test: &str) -> String {
    common::fresh_namespace(test)
}

fn url(namespace: &str) -> String {
    format!("kafka://{}/{namespace}", broker_address())
}

/// Connects, or fails the test with what to do.
fn connect(namespace: &str) -> KafkaBus {
    match KafkaBus::connect(&url(namespace)) {
        Ok(bus) => bus,
        Err(e @ BusError::Config(_)) => panic!("{e}"),
        Err(e) => panic!(
            "no Kafka broker at {} ({e}): see `ops/broker.sh status` and its log",
            broker_address()
        ),
    }
}

use common::{clearing, ok, pipe};

fn generate(data: &Path, seed: u64, claims: usize) {
    ok(clearing()
        .args([
            "gen",
            "--seed",
            &seed.to_string(),
            "--claims",
            &claims.to_string(),
            "--professionals",
            "80",
        ])
        .arg("--out")
        .arg(data));
}

/// Reference data and claims onto a bus (`local:DIR` or `kafka://…`).
fn load(data: &Path, bus: &str) {
    for (topic, file) in [
        ("ref.rights", "rights.jsonl"),
        ("ref.pki", "pki.jsonl"),
        ("ref.eu.institutions", "eu_institutions.jsonl"),
    ] {
        pipe(
            clearing().args(["publish", "--bus", bus, "--topic", topic]),
            &data.join(file),
        );
    }
    pipe(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", bus]),
        &data.join("claims.jsonl"),
    );
}

type Decisions = BTreeMap<String, Vec<DecisionRec>>;

/// Every decision on a bus, by (fse id, beneficiary key), each list sorted.
fn decisions(bus: &dyn Bus) -> Decisions {
    let registry = SchemaRegistry::new().unwrap();
    let mut out: Decisions = BTreeMap::new();
    for topic in ["fse.decided", "fse.rejected"] {
        for partition in 0..bus.partition_count(topic).unwrap() {
            let mut from = 0;
            loop {
                let records = bus.read(topic, partition, from, 4096).unwrap();
                let Some(last) = records.last() else { break };
                from = last.offset + 1;
                for record in records {
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
    }
    for list in out.values_mut() {
        list.sort_by_key(|d| format!("{d:?}"));
    }
    out
}

/// The decisions of the library's in-process adjudication of a data set.
fn adjudicated(data: &Path) -> Decisions {
    let mut pki = Pki::default();
    for line in std::fs::read_to_string(data.join("pki.jsonl"))
        .unwrap()
        .lines()
    {
        pki.apply(PkiRecord::from_json(line).unwrap()).unwrap();
    }
    let mut a = Adjudicator::new(
        Rules::embedded().unwrap(),
        PseudonymKey::development(),
        Box::new(OwnedPkiVerifier::new(pki).unwrap()),
    );
    for line in std::fs::read_to_string(data.join("rights.jsonl"))
        .unwrap()
        .lines()
    {
        a.load_rights_line(line).unwrap();
    }
    for line in std::fs::read_to_string(data.join("eu_institutions.jsonl"))
        .unwrap()
        .lines()
    {
        a.load_institution_line(line).unwrap();
    }
    let mut out: Decisions = BTreeMap::new();
    for line in std::fs::read_to_string(data.join("claims.jsonl"))
        .unwrap()
        .lines()
    {
        let d = decision_rec(&a.decide_line(line).unwrap());
        out.entry(format!("{:?}/{:?}", d.fse_id, d.beneficiary_key))
            .or_default()
            .push(d);
    }
    for list in out.values_mut() {
        list.sort_by_key(|d| format!("{d:?}"));
    }
    out
}

fn assert_same(got: &Decisions, want: &Decisions, what: &str) {
    let count = |d: &Decisions| d.values().map(Vec::len).sum::<usize>();
    assert_eq!(count(got), count(want), "{what}: decisions");
    assert_eq!(got.len(), want.len(), "{what}: claims with a decision");
    for (key, list) in want {
        assert_eq!(
            got.get(key),
            Some(list),
            "{what}: {key} lost, duplicated or different"
        );
    }
}

#[test]
fn adjudicate_the_local_pipeline_and_the_kafka_pipeline_decide_alike() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 11, 1500);
    let want = adjudicated(&data);
    // The local pipeline, each stage's partitions over four workers, a
    // thread each.
    let local = dir.path().join("local");
    let local_url = format!("local:{}", local.display());
    load(&data, &local_url);
    ok(clearing().args([
        "run",
        "--until-caught-up",
        "--batch",
        "97",
        "--workers-per-stage",
        "4",
        "--bus",
        &local_url,
    ]));
    let local_decisions = decisions(&LocalLog::open(&local).unwrap());
    assert_same(&local_decisions, &want, "local pipeline vs adjudicate");
    // The Kafka pipeline, two members of each stage's group in one process.
    let ns = namespace("pipeline");
    let bus = connect(&ns);
    load(&data, &url(&ns));
    let started = Instant::now();
    ok(clearing()
        .args([
            "run",
            "--simulation",
            "--until-caught-up",
            "--batch",
            "97",
            "--workers-per-stage",
            "2",
            "--bus",
            &url(&ns),
        ])
        .arg("--state")
        .arg(dir.path().join("state")));
    eprintln!("kafka pipeline, 1500 claims: {:?}", started.elapsed());
    let kafka_decisions = decisions(&bus);
    assert_same(&kafka_decisions, &want, "kafka pipeline vs adjudicate");
    assert_eq!(
        kafka_decisions, local_decisions,
        "kafka vs local, byte for byte"
    );
}

/// The partitions a `clearing run` process's stage owns after its latest
/// rebalance, from its log (`kafka: group G assigned [topic/p …]`).
fn assigned(log: &Path, group: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let prefix = format!("kafka: group {group} assigned [");
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix(&prefix)?.strip_suffix(']'))
        .map(|list| list.split_whitespace().map(String::from).collect())
}

/// Decisions on the bus so far (records in fse.decided and fse.rejected).
fn decision_count(bus: &dyn Bus) -> u64 {
    common::record_count(bus, &["fse.decided", "fse.rejected"]).unwrap()
}

/// A `clearing run` child, SIGKILLed if the test ends without stopping it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The consumer group of the members the tests start.
const GROUP: &str = "g";

/// `clearing run` as a member of [`GROUP`] on the namespace `ns`, with its
/// own store directory `dir/name` and its stderr in `dir/name.log`;
/// `stop_before_commit` has it stop itself (SIGSTOP) before that commit.
fn spawn_member(
    dir: &Path,
    ns: &str,
    name: &str,
    stop_before_commit: Option<u32>,
) -> (Child, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut command = clearing();
    command
        .args(["run", "--simulation", "--batch", "50", "--group", GROUP])
        .args(["--bus", &url(ns)])
        .arg("--state")
        .arg(dir.join(name))
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(n) = stop_before_commit {
        command.env("CLEARING_FAULT_STOP_BEFORE_COMMIT", n.to_string());
    }
    (Child(command.spawn().unwrap()), log)
}

#[test]
fn two_processes_split_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 23, 3000);
    let want = adjudicated(&data);
    let total: usize = want.values().map(Vec::len).sum();
    let ns = namespace("takeover");
    let bus = connect(&ns);
    load(&data, &url(&ns));
    let stage_group = |stage: &str| format!("{ns}.{GROUP}.{stage}");
    let started = Instant::now();
    let (mut b, b_log) = spawn_member(dir.path(), &ns, "b", None);
    // B alone owns every partition and starts deciding; then A joins.
    wait_for("first decisions", Duration::from_secs(60), || {
        decision_count(&bus) > 0
    });
    let (mut a, a_log) = spawn_member(dir.path(), &ns, "a", None);
    let validation = stage_group("validation");
    wait_for("the split", Duration::from_secs(60), || {
        let (a, b) = (assigned(&a_log, &validation), assigned(&b_log, &validation));
        matches!((a, b), (Some(a), Some(b)) if !a.is_empty() && !b.is_empty()
            && a.len() + b.len() == 4 && a.iter().all(|p| !b.contains(p)))
    });
    let at_kill = decision_count(&bus);
    b.0.kill().unwrap(); // SIGKILL, mid-run
    b.0.wait().unwrap();
    eprintln!(
        "B killed after {:?} with {at_kill} of {total} decisions; B owned {:?}",
        started.elapsed(),
        assigned(&b_log, &validation)
    );
    assert!(
        (at_kill as usize) < total,
        "the run ended before the kill: use more claims"
    );
    // A takes every partition over (restoring B's from the changelogs) and
    // finishes the run.
    let killed = Instant::now();
    wait_for("the takeover", Duration::from_secs(90), || {
        ["validation", "entitlement", "routing", "reimbursement"]
            .iter()
            .all(|stage| assigned(&a_log, &stage_group(stage)).is_some_and(|p| p.len() == 4))
    });
    eprintln!("takeover {:?} after the kill", killed.elapsed());
    wait_for("every decision", Duration::from_secs(120), || {
        decision_count(&bus) as usize >= total
    });
    // Nothing more (no duplicate) arrives; then A stops cleanly.
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("kill")
        .args(["-TERM", &a.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(a.0.wait().unwrap().success(), "A exits cleanly on SIGTERM");
    eprintln!("run with a kill: {:?}", started.elapsed());
    assert_same(
        &decisions(&bus),
        &want,
        "after the kill vs a single-process run",
    );
}

/// `ops/topics.toml` (a small fixed shape: the cluster-wide
/// `replication_factor` and `min_insync_replicas`, then `[[topic]]` tables
/// of `name`, `partitions`, `compacted`, optional `retention_ms`) read into
/// specs and settings.
fn topics_toml() -> (Vec<TopicSpec>, BTreeMap<String, u32>) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/topics.toml")).unwrap();
    let mut specs: Vec<TopicSpec> = Vec::new();
    let mut cluster = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line == "[[topic]]" {
            specs.push(TopicSpec::new("", 0));
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("topics.toml:{}: {line}", number + 1));
        let (key, value) = (key.trim(), value.trim());
        let Some(topic) = specs.last_mut() else {
            cluster.insert(key.to_string(), value.parse().unwrap());
            continue;
        };
        match key {
            "name" => topic.name = value.trim_matches('"').to_string(),
            "partitions" => topic.partitions = value.parse().unwrap(),
            "compacted" => topic.compacted = value.parse().unwrap(),
            "retention_ms" => topic.retention_ms = Some(value.parse().unwrap()),
            other => panic!("topics.toml:{}: unknown key {other}", number + 1),
        }
    }
    (specs, cluster)
}

#[test]
fn topics_toml_matches_the_code() {
    let sorted = |mut specs: Vec<TopicSpec>| {
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    };
    let (specs, cluster) = topics_toml();
    assert_eq!(
        sorted(specs),
        sorted(clearing_pipeline::runtime::topics::all(4))
    );
    assert_eq!(
        cluster,
        BTreeMap::from([
            (
                "min_insync_replicas".to_string(),
                kafka::MIN_INSYNC_REPLICAS
            ),
            ("replication_factor".to_string(), kafka::REPLICATION_FACTOR),
        ])
    );
}

/// A zombie member (issue 23, item 5). Member A stops itself (SIGSTOP)
/// before one of its batch commits, with that batch's outputs sent and not
/// committed: the worst moment for a pause, which a SIGSTOP from outside
/// hits only by chance. B joins, takes every partition once A's session
/// times out, fences A's partitions and finishes the run. A is then resumed
/// and commits: it must be refused, and nothing A wrote may be read. At the
/// end the outputs are byte for byte those of a clean run on the local log.
/// With `CLEARING_KAFKA_TRANSACTIONS=0` (no fence) the same test fails on
/// A's duplicates.
#[test]
fn a_member_paused_with_a_batch_in_flight_is_fenced_and_nothing_it_wrote_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 37, 1500);
    let clean = dir.path().join("clean");
    load(&data, &format!("local:{}", clean.display()));
    ok(clearing()
        .args(["run", "--until-caught-up", "--bus"])
        .arg(format!("local:{}", clean.display())));
    let want = common::outputs(&clean);
    let total = common::record_count(
        &LocalLog::open(&clean).unwrap(),
        &["fse.decided", "fse.rejected", "dlq.validation"],
    )
    .unwrap();
    let ns = namespace("zombie");
    let bus = connect(&ns);
    load(&data, &url(&ns));
    let (mut a, a_log) = spawn_member(dir.path(), &ns, "a", Some(40));
    let a_pid = a.0.id();
    wait_for(
        "A stopping itself before a commit",
        Duration::from_secs(120),
        || common::is_stopped(a_pid),
    );
    let at_pause = decision_count(&bus);
    assert!(
        at_pause < total,
        "the run ended before the pause: use more claims"
    );
    let (mut b, _b_log) = spawn_member(dir.path(), &ns, "b", None);
    wait_for("B deciding every claim", Duration::from_secs(180), || {
        common::record_count(&bus, &["fse.decided", "fse.rejected", "dlq.validation"]).unwrap_or(0)
            >= total
    });
    // A runs again: its commit is refused, and it stops. Without a fence it
    // would go on, so it is given a bounded time, and what the topics hold is
    // checked before how A ended.
    ok(Command::new("kill").args(["-CONT", &a_pid.to_string()]));
    let resumed = Instant::now();
    let a_status = loop {
        if let Some(status) = a.0.try_wait().unwrap() {
            break Some(status);
        }
        if resumed.elapsed() > Duration::from_secs(120) {
            let _ = a.0.kill();
            let _ = a.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("A: {a_status:?} {:?} after its resume", resumed.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    ok(Command::new("kill").args(["-TERM", &b.0.id().to_string()]));
    assert!(b.0.wait().unwrap().success(), "B exits cleanly on SIGTERM");
    common::assert_same_outputs(&want, &common::bus_outputs(&bus));
    let a_said = std::fs::read_to_string(&a_log).unwrap();
    assert!(
        a_status.is_some_and(|s| !s.success()) && a_said.contains("fenced"),
        "A, resumed, exits on its fence within 120 s: {a_status:?}\n{a_said}"
    );
}
