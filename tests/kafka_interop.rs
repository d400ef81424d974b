//! Interoperability on Kafka: `fse.decided`, as a pipeline on Apache Kafka
//! wrote it, read by tools that share nothing with our code but the broker
//! and the committed `.avsc` files.
//!
//! - A Python client (confluent-kafka, with fastavro and the `.avsc` files:
//!   `tests/interop/kafka_decided.py`) must decode, record for record, what
//!   the Rust bus and codec read from the same topic.
//! - Kafka's own console consumer (`ops/broker.sh tool …`) must return every
//!   record, the same bytes at the same partition and offset.
//!
//! Needs `python3`; installs `fastavro` and `confluent-kafka` with pip when
//! they are missing, and fails (never skips) when they cannot be had, like a
//! broker that cannot be reached.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

use clearing_pipeline::bus::kafka::KafkaBus;
use clearing_pipeline::bus::{Bus, TopicSpec};
use clearing_pipeline::events::model::FseDecided;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::events::{AvroEnum, fingerprint_of};
use common::{clearing, ok, pipe};
use serde_json::Value;

const CLAIMS: usize = 300;
const TOPIC: &str = "fse.decided";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A namespace of its own: nothing else on the broker writes these topics.
fn namespace() -> String {
    common::fresh_namespace("interop")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// fastavro and confluent-kafka, installed with pip when missing.
fn ensure_python_modules() {
    common::ensure_python_modules(&[
        ("fastavro", "fastavro"),
        ("confluent_kafka", "confluent-kafka"),
    ]);
}

/// What identifies a decided record: where it is, its key, and the decision's
/// id, outcome and amounts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    partition: u32,
    offset: u64,
    key: String,
    event_id: String,
    fse_id: Option<String>,
    status: String,
    route: Option<String>,
    reasons: Vec<String>,
    /// (code, base, AMO) of each line.
    lines: Vec<(String, i64, i64)>,
    /// AMO, CSS, participation, franchise, flat fee, deferred, imputed,
    /// patient, paid to the professional, paid to the insured.
    amounts: [i64; 10],
    rules_version: String,
    beneficiary_key: Option<String>,
    care_date: Option<String>,
}

/// Record values by (partition, offset).
type Values = BTreeMap<(u32, u64), Vec<u8>>;

/// `fse.decided` through the Rust bus and codec: what was seen, and each
/// record's value by (partition, offset).
fn rust_side(bus: &KafkaBus) -> (Vec<Seen>, Values) {
    let registry = SchemaRegistry::new().unwrap();
    let mut seen = Vec::new();
    let mut values = BTreeMap::new();
    for partition in 0..bus.partition_count(TOPIC).unwrap() {
        let end = bus.end_offset(TOPIC, partition).unwrap();
        let mut next = 0;
        while next < end {
            let chunk = bus.read(TOPIC, partition, next, 4096).unwrap();
            let Some(last) = chunk.last() else { break };
            next = last.offset + 1;
            for record in chunk {
                let e: FseDecided = registry.decode_single(&record.value).unwrap();
                let d = e.decision;
                seen.push(Seen {
                    partition,
                    offset: record.offset,
                    key: String::from_utf8(record.key.clone()).unwrap(),
                    event_id: e.header.event_id,
                    fse_id: d.fse_id,
                    status: d.status.symbol().to_string(),
                    route: d.route.map(|r| r.symbol().to_string()),
                    reasons: d.reasons.into_iter().map(|r| r.code).collect(),
                    lines: d
                        .lines
                        .into_iter()
                        .map(|l| (l.code, l.base_cents, l.amo_cents))
                        .collect(),
                    amounts: [
                        d.amo_cents,
                        d.css_cents,
                        d.participation_cents,
                        d.franchise_cents,
                        d.flat_fee_cents,
                        d.deferred_cents,
                        d.imputed_cents,
                        d.patient_cents,
                        d.paid_to_professional_cents,
                        d.paid_to_insured_cents,
                    ],
                    rules_version: d.rules_version,
                    beneficiary_key: d.beneficiary_key,
                    care_date: d.care_date.map(|c| c.to_string()),
                });
                values.insert((partition, record.offset), record.value);
            }
        }
    }
    (seen, values)
}

fn text(v: &Value, what: &str) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: {v} is not a string"))
        .to_string()
}

fn opt_text(v: &Value, what: &str) -> Option<String> {
    (!v.is_null()).then(|| text(v, what))
}

fn int(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what}: {v} is not an integer"))
}

/// One JSON line of kafka_decided.py.
fn python_seen(line: &Value) -> Seen {
    let record = &line["record"];
    // A decision without a payee is written in the version from before
    // payees (the bytes it had then), one with a payee in the current one.
    let writer = if record["claim"]["payee"].is_null() {
        format!("{TOPIC}.v1")
    } else {
        TOPIC.to_string()
    };
    assert_eq!(line["schema"], writer.as_str(), "the writer schema: {line}");
    let d = &record["decision"];
    let amount = |name: &str| int(&d[name], name);
    Seen {
        partition: u32::try_from(int(&line["partition"], "partition")).unwrap(),
        offset: u64::try_from(int(&line["offset"], "offset")).unwrap(),
        key: text(&line["key"], "key"),
        event_id: text(&record["header"]["event_id"], "event_id"),
        fse_id: opt_text(&d["fse_id"], "fse_id"),
        status: text(&d["status"], "status"),
        route: opt_text(&d["route"], "route"),
        reasons: d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| text(&r["code"], "reason code"))
            .collect(),
        lines: d["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    text(&l["code"], "line code"),
                    int(&l["base_cents"], "base_cents"),
                    int(&l["amo_cents"], "amo_cents"),
                )
            })
            .collect(),
        amounts: [
            amount("amo_cents"),
            amount("css_cents"),
            amount("participation_cents"),
            amount("franchise_cents"),
            amount("flat_fee_cents"),
            amount("deferred_cents"),
            amount("imputed_cents"),
            amount("patient_cents"),
            amount("paid_to_professional_cents"),
            amount("paid_to_insured_cents"),
        ],
        rules_version: text(&d["rules_version"], "rules_version"),
        beneficiary_key: opt_text(&d["beneficiary_key"], "beneficiary_key"),
        care_date: opt_text(&d["care_date"], "care_date"),
    }
}

fn per_partition(seen: &[Seen]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for s in seen {
        *counts.entry(s.partition).or_default() += 1;
    }
    counts
}

/// A value as Kafka's `BytesDeserializer` prints it (`Bytes.toString`:
/// printable ASCII as is, anything else and `\` as `\xHH`), back to bytes.
fn unescape(printed: &str) -> Vec<u8> {
    let bytes = printed.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            assert_eq!(bytes.get(i + 1), Some(&b'x'), "escape in {printed}");
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Kafka's console consumer on the topic: (partition, offset) → value bytes.
fn console_consumer(bootstrap: &str, topic: &str, count: usize) -> Values {
    let out = Command::new(repo().join("ops/broker.sh"))
        .args(["tool", "org.apache.kafka.tools.consumer.ConsoleConsumer"])
        .args(["--bootstrap-server", bootstrap, "--topic", topic])
        .args(["--from-beginning", "--max-messages", &count.to_string()])
        .args(["--timeout-ms", "30000"])
        // The stages write in transactions; Java's default reads aborted ones too.
        .args(["--consumer-property", "isolation.level=read_committed"])
        // One line per record, whatever bytes the value holds: the value
        // escaped by BytesDeserializer, after its partition and offset.
        .args([
            "--value-deserializer",
            "org.apache.kafka.common.serialization.BytesDeserializer",
        ])
        .args(["--property", "print.partition=true"])
        .args(["--property", "print.offset=true"])
        .output()
        .expect("run ops/broker.sh tool");
    assert!(out.status.success(), "console consumer: {}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let mut values = Values::new();
    for line in stdout.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(partition), Some(offset), Some(value)) =
            (fields.next(), fields.next(), fields.next())
        else {
            panic!("console consumer line: {line}");
        };
        let partition: u32 = partition
            .strip_prefix("Partition:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("console consumer line: {line}"));
        let offset: u64 = offset
            .strip_prefix("Offset:")
            .and_then(|o| o.parse().ok())
            .unwrap_or_else(|| panic!("console consumer line: {line}"));
        values.insert((partition, offset), unescape(value));
    }
    assert!(
        stderr(&out).contains(&format!("Processed a total of {count} messages")),
        "console consumer: {}",
        stderr(&out)
    );
    values
}

#[test]
fn python_and_the_console_consumer_read_fse_decided_as_rust_does() {
    ensure_python_modules();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::generate(&data, CLAIMS);
    let bootstrap = common::kafka_bootstrap();
    let ns = namespace();
    let url = format!("kafka://{bootstrap}/{ns}");
    common::publish_refs(&data, &url);
    pipe(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", &url]),
        &data.join("claims.jsonl"),
    );
    ok(clearing()
        .args(["run", "--simulation", "--until-caught-up", "--bus", &url])
        .arg("--state")
        .arg(dir.path().join("state")));
    eprintln!(
        "pipeline of {CLAIMS} claims on Kafka: {:?}",
        started.elapsed()
    );

    let bus = KafkaBus::connect(&url).unwrap();
    let (rust, values) = rust_side(&bus);
    // Every claim has its outcome when the run returns: a run that stopped
    // before Kafka had marked upstream commits readable (fixed 2026-12-07)
    // left most of them undecided.
    let rejected = common::record_count(&bus, &["fse.rejected"]).unwrap();
    assert_eq!(
        rust.len() as u64 + rejected,
        CLAIMS as u64,
        "{} decided and {rejected} rejected of {CLAIMS} claims",
        rust.len()
    );
    assert!(
        rust.len() > CLAIMS / 2,
        "only {} of {CLAIMS} claims decided: too few to compare",
        rust.len()
    );
    let topic = format!("{ns}.{TOPIC}");

    python_reads_what_rust_reads(&bootstrap, &topic, &rust);
    console_consumer_reads_the_same_bytes(&bootstrap, &topic, rust.len(), &values);
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Python: confluent-kafka reads, fastavro decodes with the .avsc alone.
fn python_reads_what_rust_reads(bootstrap: &str, topic: &str, rust: &[Seen]) {
    let python = Instant::now();
    let out = Command::new("python3")
        .arg(repo().join("tests/interop/kafka_decided.py"))
        .args([bootstrap, topic])
        .arg(repo().join("schemas"))
        .output()
        .expect("run kafka_decided.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafka_decided.py failed: {}",
        stderr(&out)
    );
    let mut from_python: Vec<Seen> = stdout
        .lines()
        .map(|l| python_seen(&serde_json::from_str(l).expect("a JSON line")))
        .collect();
    from_python.sort();
    eprintln!(
        "kafka_decided.py: {} records in {:?}",
        from_python.len(),
        python.elapsed()
    );
    assert_eq!(
        per_partition(&from_python),
        per_partition(rust),
        "records per partition"
    );
    for (want, got) in rust.iter().zip(&from_python) {
        assert_eq!(got, want, "Python vs Rust");
    }
    assert_eq!(from_python.len(), rust.len());
}

/// Kafka's console consumer: every record, the same bytes.
fn console_consumer_reads_the_same_bytes(
    bootstrap: &str,
    topic: &str,
    count: usize,
    values: &Values,
) {
    let console = Instant::now();
    let printed = console_consumer(bootstrap, topic, count);
    eprintln!(
        "console consumer: {} records in {:?}",
        printed.len(),
        console.elapsed()
    );
    assert_eq!(printed.len(), count, "console consumer records");
    for (at, value) in values {
        assert_eq!(
            printed.get(at),
            Some(value),
            "console consumer at partition/offset {at:?}"
        );
        assert_eq!(value[..2], [0xc3, 0x01], "single-object magic");
    }
}

/// A value the reader cannot decode fails the script (exit 1, each record
/// named), and it reads on: the test above cannot pass on a reader that
/// skips what it does not know.
#[test]
fn kafka_decided_py_fails_on_records_it_cannot_decode() {
    ensure_python_modules();
    let bootstrap = common::kafka_bootstrap();
    let ns = namespace();
    let bus = KafkaBus::connect(&format!("kafka://{bootstrap}/{ns}")).unwrap();
    bus.ensure_topic(&TopicSpec {
        name: "bad".into(),
        partitions: 1,
        compacted: false,
        retention_ms: None,
    })
    .unwrap();
    // C3 01, a fingerprint no .avsc has, a body.
    let unknown = [[0xc3, 0x01].as_slice(), &[0; 8], &[0]].concat();
    // fse.decided's header on a body cut short.
    let cut = [
        [0xc3, 0x01].as_slice(),
        &fingerprint_of::<FseDecided>(),
        &[0x02],
    ]
    .concat();
    let mut producer = bus.producer().unwrap();
    producer.send("bad", 0, b"k", b"not avro", 1).unwrap();
    producer.send("bad", 0, b"k", &unknown, 1).unwrap();
    producer.send("bad", 0, b"k", &cut, 1).unwrap();
    producer.flush().unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tests/interop/kafka_decided.py"))
        .args([&bootstrap, &format!("{ns}.bad")])
        .output()
        .expect("run kafka_decided.py");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("bad/0@0: not a single-object message"),
        "{err}"
    );
    assert!(err.contains("bad/0@1: unknown fingerprint"), "{err}");
    assert!(
        err.contains("bad/0@2: body does not decode as fse.decided"),
        "{err}"
    );
}
