//! Inputs are known by their position, not their bus offset: on Kafka with
//! transactions every commit writes a marker that takes an offset in each
//! partition it wrote, at points that follow timing. A stage reading a topic
//! whose offsets have gaps must emit the bytes it emits on the same records
//! without gaps, and its run must replay identically.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::NaiveDate;
use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Shared, StageKind, topics};
use clearing_pipeline::synth::{GenConfig, generate};
use serde_json::Value;

struct Data {
    claims: Vec<FseInput>,
    rights: Vec<Value>,
    pki: Vec<PkiRecord>,
    institutions: Vec<EuInstitutionInput>,
}

fn data(dir: &Path) -> Data {
    let mut config = GenConfig::for_claims(29, 40);
    config.rsa_per_mille = 0;
    config.bad_per_mille = 0;
    config.visitors_per_mille = 0;
    config.beneficiaries = 20;
    config.first_care_date = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
    config.last_care_date = NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
    generate(
        &config,
        &Rules::embedded().unwrap(),
        &SchemaRegistry::new().unwrap(),
        dir,
    )
    .unwrap();
    let lines = |name: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    Data {
        claims: lines("claims.jsonl")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        rights: lines("rights.jsonl")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        pki: lines("pki.jsonl")
            .iter()
            .map(|l| PkiRecord::from_json(l).unwrap())
            .collect(),
        institutions: lines("eu_institutions.jsonl")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    }
}

/// A bus of one partition holding the reference data and the claims.
fn published(dir: &Path, data: &Data) -> Arc<LocalLog> {
    let bus = LocalLog::open(&dir.join("bus")).unwrap();
    runtime::ensure_topics(&bus, 1).unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let pseudonyms = PseudonymKey::development();
    let mut ingest = Ingest::new(&bus, &registry, &pseudonyms).unwrap();
    for record in &data.pki {
        ingest.pki(record).unwrap();
    }
    for institution in &data.institutions {
        ingest.institution(institution).unwrap();
    }
    for rights in &data.rights {
        let input: RightsInput = serde_json::from_value(rights.clone()).unwrap();
        ingest.rights(&input).unwrap();
    }
    for claim in &data.claims {
        ingest.submit(claim).unwrap();
    }
    ingest.flush().unwrap();
    bus
}

fn shared(bus: Arc<LocalLog>, state: &Path) -> Arc<Shared> {
    let bus: Arc<dyn Bus> = Arc::new(bus);
    Arc::new(Shared {
        bus,
        rules: Arc::new(Rules::embedded().unwrap()),
        registry: Arc::new(SchemaRegistry::new().unwrap()),
        pseudonyms: PseudonymKey::development(),
        trust_unsigned: false,
        state_dir: state.to_path_buf(),
        group: "clearing".into(),
        batch_max: 10_000,
        verify_threads: 1,
        workers_per_stage: 1,
        layout: runtime::Layout::PerStage,
    })
}

fn run_to_end(shared: &Arc<Shared>, stages: &[StageKind]) {
    runtime::run_stages(
        shared.clone(),
        stages,
        &AtomicBool::new(false),
        true,
        Duration::from_secs(3600),
        &|_| {},
    )
    .unwrap();
}

fn copy(from: &Arc<LocalLog>, to: &Arc<LocalLog>, topic: &str, offset_of: impl Fn(u64) -> u64) {
    for r in from.read(topic, 0, 0, usize::MAX).unwrap() {
        to.append_at(
            topic,
            0,
            offset_of(r.offset),
            r.timestamp_millis,
            &r.key,
            &r.value,
        )
        .unwrap();
    }
    to.flush_partition(topic, 0).unwrap();
}

/// The records of `topic` whose source is not `fse.submitted` (the topic
/// validation shares with the later stages), in order.
fn downstream(bus: &Arc<LocalLog>, topic: &str) -> Vec<Vec<u8>> {
    bus.read(topic, 0, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|r| {
            clearing_pipeline::runtime::process::header_source(r)
                .is_none_or(|s| s.topic != topics::FSE_SUBMITTED)
        })
        .map(|r| r.value)
        .collect()
}

const LATER_STAGES: [StageKind; 3] = [
    StageKind::Entitlement,
    StageKind::Routing,
    StageKind::Reimbursement,
];

/// `fse.validated` copied with a gap after every third record (and before
/// the first), as transaction markers leave them; the later stages run on
/// it and on the same records without gaps.
#[test]
fn a_stage_emits_the_same_bytes_whether_its_inputs_offsets_have_gaps_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(&dir.path().join("gen"));
    let dense = published(dir.path(), &data);
    let dense_shared = shared(dense.clone(), &dir.path().join("state"));
    run_to_end(&dense_shared, &[StageKind::Validation]);
    let gapped_dir = dir.path().join("gapped");
    let gapped = LocalLog::open(&gapped_dir.join("bus")).unwrap();
    runtime::ensure_topics(&gapped, 1).unwrap();
    for topic in [
        topics::REF_PKI,
        topics::REF_RIGHTS,
        topics::REF_EU_INSTITUTIONS,
    ] {
        copy(&dense, &gapped, topic, |o| o);
    }
    copy(&dense, &gapped, topics::FSE_VALIDATED, |o| 1 + o + o / 3);
    let records = dense
        .read(topics::FSE_VALIDATED, 0, 0, usize::MAX)
        .unwrap()
        .len() as u64;
    assert!(records > 6, "{records} validated");
    assert_eq!(
        gapped.end_offset(topics::FSE_VALIDATED, 0).unwrap(),
        records + (records - 1) / 3 + 1
    );
    run_to_end(&dense_shared, &LATER_STAGES);
    let gapped_shared = shared(gapped.clone(), &gapped_dir.join("state"));
    run_to_end(&gapped_shared, &LATER_STAGES);
    for topic in [
        topics::FSE_ENTITLED,
        topics::FSE_ROUTED,
        topics::FSE_DECIDED,
        topics::FSE_REJECTED,
    ] {
        let (a, b) = (downstream(&dense, topic), downstream(&gapped, topic));
        assert!(
            !a.is_empty() || topic == topics::FSE_REJECTED,
            "{topic}: empty"
        );
        assert_eq!(a.len(), b.len(), "{topic}: record counts");
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert!(
                a == b,
                "{topic}: record {i} differs between dense and gapped offsets"
            );
        }
    }
    drop((gapped_shared, gapped));
    let out = common::clearing()
        .args(["replay", "--bus"])
        .arg(format!("local:{}", gapped_dir.join("bus").display()))
        .args(["--stages", "entitlement,routing,reimbursement", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
