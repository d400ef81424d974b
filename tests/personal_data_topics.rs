//! Which topics carry personal data in clear (issue 17 item 7, second half):
//! a pipeline run on the local log, closed so the outbound topics fill, then
//! every record of every topic searched for the data set's NIRs, EHIC card
//! numbers, personal ids and names. The answer must be the table of
//! pipeline/src/pseudonym.rs and docs/operations.md ("Topics that carry
//! personal data"): the input topics and the three topics between the
//! stages carry them; decisions, outbound topics, checkpoints and
//! changelogs never do. A change to either side must change the table.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::runtime::topics;
use common::{clearing, ok};

/// The data set's identifying values, by kind.
fn identifiers(claims: &str) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for line in claims.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut add = |kind, pointer: &str| {
            if let Some(text) = v.pointer(pointer).and_then(|x| x.as_str())
                // Short names would match by chance inside other bytes.
                && text.len() >= 6
            {
                out.entry(kind).or_default().insert(text.to_string());
            }
        };
        add("nir", "/beneficiary/nir");
        add("card number", "/ehic/card_id");
        add("personal id", "/ehic/personal_id");
        add("name", "/ehic/surname");
        add("name", "/ehic/given_names");
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kinds of identifier found in each topic's records (keys and values).
fn found(
    bus: &dyn Bus,
    ids: &BTreeMap<&'static str, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut out: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for spec in topics::all(common_partitions()) {
        let kinds = out.entry(spec.name.clone()).or_default();
        for partition in 0..bus.partition_count(&spec.name).unwrap() {
            let mut position = 0;
            loop {
                let records = bus.read(&spec.name, partition, position, 4096).unwrap();
                let Some(last) = records.last() else { break };
                position = last.offset + 1;
                for r in &records {
                    for (kind, values) in ids {
                        if values.iter().any(|x| {
                            contains(&r.value, x.as_bytes()) || contains(&r.key, x.as_bytes())
                        }) {
                            kinds.insert(*kind);
                        }
                    }
                }
            }
        }
    }
    out
}

fn common_partitions() -> u32 {
    4
}

#[test]
fn personal_data_is_on_the_input_and_between_stage_topics_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bus_dir = dir.path().join("bus");
    common::prepare(&data, &bus_dir, 300);
    let url = format!("local:{}", bus_dir.display());
    ok(clearing().args(["run", "--until-caught-up", "--bus", &url]));
    for on in common::CLOSES {
        ok(clearing().args(["close", "--bus", &url, "--on", on]));
    }
    ok(clearing().args(["run", "--until-caught-up", "--bus", &url]));

    let claims = std::fs::read_to_string(data.join("claims.jsonl")).unwrap();
    let ids = identifiers(&claims);
    assert!(
        ids.len() == 4 && ids.values().all(|v| !v.is_empty()),
        "the data set has French and visitor claims: {:?}",
        ids.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    let bus = LocalLog::open(&bus_dir).unwrap();
    let found = found(&bus, &ids);
    let every: BTreeSet<&str> = ["card number", "name", "nir", "personal id"].into();
    let carrying: BTreeMap<&str, BTreeSet<&str>> = found
        .iter()
        .filter(|(_, kinds)| !kinds.is_empty())
        .map(|(t, kinds)| (t.as_str(), kinds.clone()))
        .collect();
    let want: BTreeMap<&str, BTreeSet<&str>> = [
        (topics::FSE_SUBMITTED, every.clone()),
        (topics::REF_RIGHTS, ["nir"].into()),
        (topics::FSE_VALIDATED, every.clone()),
        (topics::FSE_ENTITLED, every.clone()),
        (topics::FSE_ROUTED, every.clone()),
    ]
    .into();
    assert_eq!(
        carrying, want,
        "the topics carrying personal data in clear are not those of the table \
         (pipeline/src/pseudonym.rs, docs/operations.md): change the table with the code"
    );
    // The decisions and outbound topics were written: their silence counts.
    for topic in [
        topics::FSE_DECIDED,
        topics::AMC_CLAIMS,
        topics::PAYMENTS_ORDERS,
        topics::EU_CLAIMS,
        topics::RETURNS_PROFESSIONAL,
    ] {
        let records: usize = (0..bus.partition_count(topic).unwrap())
            .map(|p| bus.read(topic, p, 0, 4096).unwrap().len())
            .sum();
        assert!(
            records > 0,
            "{topic} is empty: the test proves nothing of it"
        );
    }
}
