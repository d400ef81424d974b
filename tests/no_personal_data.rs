//! No NIR, name or card number in clear in anything the programs print or
//! serve: the demo's output, the stderr of submit / publish / run (bad lines
//! included), the metrics endpoint, and the error texts written to the bus
//! (dead letters' errors, rejections' reasons). The personal data to look
//! for is every identifier and name of the generated data set.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::events::model::{DeadLetter, FseRejected};
use clearing_pipeline::events::registry::SchemaRegistry;
use serde_json::Value;

use common::clearing;

#[derive(Default)]
struct Personal {
    /// NIRs, EHIC card numbers and personal ids: found as substrings.
    ids: BTreeSet<String>,
    /// Surnames and given names: found as whole words.
    names: BTreeSet<String>,
}

fn personal_data(data: &Path) -> Personal {
    let mut p = Personal::default();
    let text = |file: &str| std::fs::read_to_string(data.join(file)).unwrap();
    for line in text("claims.jsonl").lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for (pointer, names) in [
            ("/beneficiary/nir", false),
            ("/ehic/card_id", false),
            ("/ehic/personal_id", false),
            ("/ehic/surname", true),
            ("/ehic/given_names", true),
        ] {
            if let Some(s) = v.pointer(pointer).and_then(Value::as_str) {
                if names {
                    p.names.extend(s.split_whitespace().map(str::to_string));
                } else {
                    p.ids.insert(s.to_string());
                }
            }
        }
    }
    for line in text("rights.jsonl").lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        p.ids.insert(v["nir"].as_str().unwrap().to_string());
    }
    p
}

fn whole_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Fails naming the source and the kind of data, never the value itself.
fn scan(source: &str, text: &str, p: &Personal) {
    for id in &p.ids {
        assert!(
            !text.contains(id.as_str()),
            "{source} shows a personal identifier"
        );
    }
    for name in &p.names {
        assert!(!whole_word(text, name), "{source} shows a person's name");
    }
}

fn output_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Claims of the data set broken so that every error path names what is
/// wrong, with the personal data in the broken claim.
fn bad_lines(data: &Path) -> Vec<String> {
    let claims = std::fs::read_to_string(data.join("claims.jsonl")).unwrap();
    let mut insured: Value = serde_json::from_str(claims.lines().next().unwrap()).unwrap();
    let visitor: Value = claims
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["ehic"].is_object())
        .expect("the data set has an EHIC visitor");
    let nir = insured["beneficiary"]["nir"].as_str().unwrap().to_string();
    let mut lines = Vec::new();
    // Refused by submit: a wrong type, an unknown field, not JSON at all.
    insured["beneficiary"]["rank"] = Value::from("first");
    lines.push(insured.to_string());
    let mut extra = visitor.clone();
    extra["ehic"]["nickname"] = extra["ehic"]["surname"].clone();
    lines.push(extra.to_string());
    lines.push(format!("{{\"beneficiary\": {{\"nir\": \"{nir}\""));
    // Accepted by submit, rejected by the stages with a reason.
    for (field, bad) in [
        ("expiry", "31/12/2027"),
        ("card_id", "1234"),
        ("birth_date", "1970-02-30"),
    ] {
        let mut v = visitor.clone();
        v["fse_id"] = Value::from(format!("99999999-00000000{}", lines.len()));
        v["ehic"][field] = Value::from(bad);
        lines.push(v.to_string());
    }
    let mut v: Value = serde_json::from_str(claims.lines().nth(1).unwrap()).unwrap();
    v["fse_id"] = Value::from("99999999-000000099");
    v["beneficiary"]["nir"] = Value::from(format!("{}0", &nir[..14]));
    lines.push(v.to_string());
    lines
}

#[test]
fn nothing_printed_or_served_names_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let (data, personal) = demo_and_its_personal_data(&dir.path().join("demo"));

    // A bus fed by the CLI, bad lines included, run with metrics.
    let bus = dir.path().join("bus");
    let url = format!("local:{}", bus.display());
    publish_references(&data, &url, &personal);
    submit_claims_and_bad_lines(&data, &url, &personal);
    send_undecodable_events(&bus, &personal);
    run_with_metrics(&url, &personal);
    error_texts_on_the_bus(&bus, &personal);
}

/// Runs the demo into `demo`, checks its output, and returns its data set
/// with the personal data in it.
fn demo_and_its_personal_data(demo: &Path) -> (PathBuf, Personal) {
    let output = clearing()
        .args(["demo", "--claims", "800", "--seed", "5", "--data"])
        .arg(demo)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output_text(&output));
    let data = demo.join("gen");
    let personal = personal_data(&data);
    assert!(
        personal.ids.len() > 100 && personal.names.len() >= 2,
        "{} identifiers, {} names",
        personal.ids.len(),
        personal.names.len()
    );
    scan("the demo's output", &output_text(&output), &personal);
    (data, personal)
}

fn publish_references(data: &Path, url: &str, personal: &Personal) {
    for (topic, file) in [
        ("ref.rights", "rights.jsonl"),
        ("ref.pki", "pki.jsonl"),
        ("ref.eu.institutions", "eu_institutions.jsonl"),
    ] {
        let mut text = std::fs::read_to_string(data.join(file)).unwrap();
        if topic == "ref.rights" {
            // A rights record that does not check, with a real NIR.
            let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            let mut bad = first.clone();
            bad["birth_date"] = Value::from("not a date");
            text.push_str(&(bad.to_string() + "\n"));
        }
        let output = common::with_stdin(
            clearing().args(["publish", "--bus", url, "--topic", topic]),
            &text,
        );
        scan("publish's output", &output_text(&output), personal);
    }
}

fn submit_claims_and_bad_lines(data: &Path, url: &str, personal: &Personal) {
    let mut claims = std::fs::read_to_string(data.join("claims.jsonl")).unwrap();
    for line in bad_lines(data) {
        claims.push_str(&line);
        claims.push('\n');
    }
    let output = common::with_stdin(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", url]),
        &claims,
    );
    let text = output_text(&output);
    assert!(
        text.contains("lines refused") && !text.contains("; 0 lines refused"),
        "{text}"
    );
    scan("submit's output", &text, personal);
}

/// Bytes that are no event at all, carrying a NIR: dead-lettered.
fn send_undecodable_events(bus: &Path, personal: &Personal) {
    let log = LocalLog::open(bus).unwrap();
    let mut producer = log.producer().unwrap();
    let nir = personal.ids.iter().next().unwrap();
    producer
        .send("fse.submitted", 0, b"x", nir.as_bytes(), 0)
        .unwrap();
    let rights = format!("{{\"nir\": \"{nir}\"}}");
    producer
        .send("ref.rights", 0, b"x", rights.as_bytes(), 0)
        .unwrap();
    producer.flush().unwrap();
}

/// Runs the stages with a metrics endpoint until every claim is decided,
/// scanning what it serves and what it prints.
fn run_with_metrics(url: &str, personal: &Personal) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = clearing()
        .args(["run", "--batch", "200", "--metrics-addr", &port.to_string()])
        .args(["--bus", url])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = scrape_until_steady(&addr);
    assert!(metrics.contains("clearing_rejections_total"), "{metrics}");
    scan("the metrics", &metrics, personal);
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    scan("run's output", &output_text(&output), personal);
}

/// Scrapes until the numbers stop moving: every claim decided.
fn scrape_until_steady(addr: &str) -> String {
    let (mut metrics, mut same, started) = (String::new(), 0, Instant::now());
    while started.elapsed() < Duration::from_secs(120) && same < 4 {
        std::thread::sleep(Duration::from_millis(500));
        let Some(body) = http_get(addr, "/metrics") else {
            continue;
        };
        same = if body == metrics && body.contains("clearing_end_to_end_seconds") {
            same + 1
        } else {
            0
        };
        metrics = body;
    }
    metrics
}

/// The error texts the stages wrote to the bus.
fn error_texts_on_the_bus(bus: &Path, personal: &Personal) {
    let registry = SchemaRegistry::new().unwrap();
    let log = LocalLog::open(bus).unwrap();
    let (mut reasons, mut letters) = (0, 0);
    for topic in [
        "fse.rejected",
        "dlq.validation",
        "dlq.entitlement",
        "dlq.routing",
        "dlq.reimbursement",
    ] {
        for partition in 0..log.partition_count(topic).unwrap() {
            for record in log.read(topic, partition, 0, usize::MAX).unwrap() {
                if topic == "fse.rejected" {
                    let d = registry
                        .decode_single::<FseRejected>(&record.value)
                        .unwrap()
                        .decision;
                    for r in d.reasons.iter().chain(&d.warnings) {
                        reasons += 1;
                        scan("a rejection reason", &format!("{r:?}"), personal);
                    }
                } else {
                    let letter: DeadLetter = registry.decode_single(&record.value).unwrap();
                    letters += 1;
                    scan("a dead letter's error", &letter.error, personal);
                }
            }
        }
    }
    assert!(
        reasons > 20 && letters >= 2,
        "{reasons} reasons, {letters} letters"
    );
}
