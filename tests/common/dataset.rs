//! A generated data set read back as values, for the tests that drive the
//! runtime step by step (`tests/replay.rs`, `tests/cut_batch.rs`,
//! `tests/positions.rs`): the claims, rights, certificates and institutions,
//! and a one-partition local bus holding them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::NaiveDate;
use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Shared, StageKind};
use clearing_pipeline::synth::{GenConfig, generate};
use serde_json::Value;

pub struct DataSet {
    pub claims: Vec<FseInput>,
    pub rights: Vec<Value>,
    pub pki: Vec<PkiRecord>,
    pub institutions: Vec<EuInstitutionInput>,
}

impl DataSet {
    /// Generates `config`'s data set into `dir` and reads it back.
    pub fn generate(config: &GenConfig, dir: &Path) -> DataSet {
        generate(
            config,
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
        let json = |name: &str| -> Vec<Value> {
            lines(name)
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        DataSet {
            claims: lines("claims.jsonl")
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            rights: json("rights.jsonl"),
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

    /// 40 claims of 20 beneficiaries in March 2025: ECDSA cards only (quick
    /// to verify), no bad input, no visitors.
    pub fn small_month(dir: &Path) -> DataSet {
        let mut config = GenConfig::for_claims(29, 40);
        config.rsa_per_mille = 0;
        config.bad_per_mille = 0;
        config.visitors_per_mille = 0;
        config.beneficiaries = 20;
        config.first_care_date = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        config.last_care_date = NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
        DataSet::generate(&config, dir)
    }

    /// The certificates, institutions and rights, published on `bus`.
    pub fn publish_references(&self, bus: &dyn Bus) {
        let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
        let mut ingest = Ingest::new(bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        for record in &self.pki {
            ingest.pki(record).unwrap();
        }
        for institution in &self.institutions {
            ingest.institution(institution).unwrap();
        }
        for rights in &self.rights {
            let input: RightsInput = serde_json::from_value(rights.clone()).unwrap();
            ingest.rights(&input).unwrap();
        }
        ingest.flush().unwrap();
    }

    /// A local bus of one partition at `bus` holding the reference data
    /// alone; the log is closed when it returns.
    #[allow(dead_code)]
    pub fn references_only(&self, bus: &Path) {
        let log = LocalLog::open(bus).unwrap();
        runtime::ensure_topics(&log, 1).unwrap();
        self.publish_references(&log);
    }

    /// A local bus of one partition in `dir/bus` holding the reference data,
    /// then the claims.
    pub fn published(&self, dir: &Path) -> Arc<LocalLog> {
        let bus = LocalLog::open(&dir.join("bus")).unwrap();
        runtime::ensure_topics(&bus, 1).unwrap();
        self.publish_references(&bus);
        let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
        let mut ingest = Ingest::new(&bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        for claim in &self.claims {
            ingest.submit(claim).unwrap();
        }
        ingest.flush().unwrap();
        bus
    }
}

/// The runtime's shared context over `bus`, stores in `state`: one worker per
/// stage, batches of up to 10,000, signatures checked.
pub fn shared(bus: Arc<LocalLog>, state: &Path) -> Arc<Shared> {
    shared_with(Arc::new(bus), state, 10_000, 1, 1)
}

/// [`shared`] with its batch size, verifier threads and workers per stage
/// chosen.
pub fn shared_with(
    bus: Arc<dyn Bus>,
    state: &Path,
    batch_max: usize,
    verify_threads: usize,
    workers_per_stage: u32,
) -> Arc<Shared> {
    Arc::new(Shared {
        bus,
        rules: Arc::new(Rules::embedded().unwrap()),
        registry: Arc::new(SchemaRegistry::new().unwrap()),
        pseudonyms: PseudonymKey::development(),
        trust_unsigned: false,
        state_dir: state.to_path_buf(),
        group: "clearing".into(),
        batch_max,
        verify_threads,
        workers_per_stage,
        queries: None,
        store_rewrite: clearing_pipeline::state::RewritePolicy::DEFAULT,
        store_engine: clearing_pipeline::state::Engine::default(),
    })
}

/// `stages` run until every input is consumed, in this process.
pub fn run_to_end(shared: &Arc<Shared>, stages: &[StageKind]) {
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

/// `clearing replay` of the local bus in `bus_dir` for `stages` (comma
/// separated) exits 0: identical. Every handle on the bus must be dropped
/// first (its lock).
pub fn assert_replay_identical(bus_dir: &Path, stages: &str) {
    let out = super::clearing()
        .args(["replay", "--bus"])
        .arg(format!("local:{}", bus_dir.display()))
        .args(["--stages", stages, "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
