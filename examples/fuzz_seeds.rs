//! Writes the fuzzers' seed corpus (fuzz/seeds/) from a small data set run
//! through the local pipeline: real records of every topic a stage reads,
//! real FSE / reference JSON lines, and the identifiers they carry. The
//! fuzzers start from valid inputs, so they reach the deep checks at once.
//!
//! ```text
//! clearing gen --seed 7 --claims 400 --professionals 8 --beneficiaries 60 \
//!     --bad-per-mille 150 --out G
//! clearing publish/submit … --bus local:B ; clearing run --bus local:B --until-caught-up
//! clearing close --bus local:B --on 2025-06-30   # close events for outbound.ledger
//! clearing run --bus local:B --until-caught-up
//! cargo run --example fuzz_seeds -- B G fuzz/seeds
//! ```
//! (scripts/fuzz.sh documents the whole sequence.)

use std::collections::BTreeSet;
use std::path::Path;

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;

/// Records per topic kept as seeds (spread over the partitions).
const PER_TOPIC: usize = 40;

/// Each fuzz target and the topic whose records seed it.
const TOPICS: &[(&str, &str)] = &[
    ("event_fse_submitted", "fse.submitted"),
    ("event_fse_validated", "fse.validated"),
    ("event_fse_entitled", "fse.entitled"),
    ("event_fse_routed", "fse.routed"),
    ("event_fse_decided", "fse.decided"),
    ("event_fse_rejected", "fse.rejected"),
    ("event_outbound_ledger", "outbound.ledger"),
    ("event_ref_rights", "ref.rights"),
    ("event_ref_pki", "ref.pki"),
    ("event_ref_eu_institutions", "ref.eu.institutions"),
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

/// Every string leaf of a JSON value.
fn strings(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::String(s) => {
            out.insert(s.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bus, generated, out] = args.as_slice() else {
        return Err("usage: fuzz_seeds BUS_DIR GEN_DIR OUT_DIR".into());
    };
    let (generated, out) = (Path::new(generated), Path::new(out));
    let log = LocalLog::open(Path::new(bus))?;
    for (target, topic) in TOPICS {
        let mut records = Vec::new();
        for partition in 0..log.partition_count(topic)? {
            records.extend(log.read(topic, partition, 0, usize::MAX)?);
        }
        let stride = records.len().div_ceil(PER_TOPIC).max(1);
        for r in records.iter().step_by(stride) {
            let name = format!("{topic}-p{}-{}", r.partition, r.offset);
            write(&out.join(target), &name, &r.value)?;
        }
    }
    let claims = std::fs::read_to_string(generated.join("claims.jsonl"))?;
    let mut ids = BTreeSet::new();
    for (n, line) in claims.lines().take(PER_TOPIC).enumerate() {
        write(
            &out.join("json_fse"),
            &format!("claim-{n}"),
            line.as_bytes(),
        )?;
        strings(&serde_json::from_str(line)?, &mut ids);
    }
    // json_ref: the first byte picks the parser (r: rights, i: institution, p: PKI).
    for (tag, file) in [
        (b'r', "rights.jsonl"),
        (b'i', "eu_institutions.jsonl"),
        (b'p', "pki.jsonl"),
    ] {
        let text = std::fs::read_to_string(generated.join(file))?;
        for (n, line) in text.lines().take(PER_TOPIC / 2).enumerate() {
            let mut bytes = vec![tag];
            bytes.extend_from_slice(line.as_bytes());
            write(&out.join("json_ref"), &format!("{file}-{n}"), &bytes)?;
            strings(&serde_json::from_str(line)?, &mut ids);
        }
        // The harness loads the whole reference data set into its state.
        write(&out.join("ref"), file, text.as_bytes())?;
    }
    // A sample of the strings (dates, codes, amounts, every kind of id).
    let ids: Vec<&String> = ids.iter().filter(|s| s.len() <= 64).collect();
    let stride = ids.len().div_ceil(3 * PER_TOPIC).max(1);
    for (n, id) in ids.iter().step_by(stride).enumerate() {
        write(&out.join("ids"), &format!("id-{n}"), id.as_bytes())?;
    }
    Ok(())
}
