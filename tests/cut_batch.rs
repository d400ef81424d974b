//! Issue 17, item 1: a batch cut by a crash after its outputs were
//! acknowledged, and before its checkpoint and changelog, is run again on
//! restart. Reference data published in between must not decide it again
//! differently: the outputs on the bus record the reference watermark they
//! were decided at, and the batch is re-run at that watermark, so a claim
//! never gets two outcomes (paid and returned).
//!
//! The runtime is driven step by step: a worker runs one batch (outputs
//! produced and acknowledged) and is dropped before its commit, which is
//! where a SIGKILL between the two flushes leaves a stage.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::{AuditCheckpoint, EventHeader, FseRejected, FseValidated};
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{Member, Shared, StageKind, StageStore, StageWorker, topics};
use common::dataset::{DataSet, run_to_end, shared};
use serde_json::Value;

/// One batch of `kind` whose outputs are acknowledged, then the process
/// "dies": the worker and its store are dropped before the checkpoint, the
/// changelog and the state.
fn cut_batch(shared: &Arc<Shared>, kind: StageKind) {
    let store = StageStore::open(kind, shared).unwrap();
    let mut worker =
        StageWorker::new(kind, shared.clone(), &store, Member { index: 0, of: 1 }).unwrap();
    for _ in 0..20 {
        let ran = worker.run(Duration::from_millis(200)).unwrap();
        if ran.inputs() > 0 {
            assert!(ran.has_batches());
            // Dropped uncommitted: the crash.
            return;
        }
    }
    panic!("{}: no batch ran", kind.name());
}

fn header(registry: &SchemaRegistry, topic: &str, value: &[u8]) -> EventHeader {
    match topic {
        topics::FSE_REJECTED => registry.decode_single::<FseRejected>(value).unwrap().header,
        topics::FSE_VALIDATED => {
            registry
                .decode_single::<FseValidated>(value)
                .unwrap()
                .header
        }
        topics::FSE_ENTITLED => {
            registry
                .decode_single::<clearing_pipeline::events::model::FseEntitled>(value)
                .unwrap()
                .header
        }
        other => panic!("unexpected topic {other}"),
    }
}

/// The FSE ids of `topic`'s events written by `stage` (its source is the
/// stage's input).
fn fse_ids(bus: &dyn Bus, topic: &str, stage: StageKind) -> BTreeSet<String> {
    let registry = SchemaRegistry::new().unwrap();
    bus.read(topic, 0, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| header(&registry, topic, &r.value))
        .filter(|h| {
            h.source
                .as_ref()
                .is_some_and(|s| s.topic == stage.input_topic())
        })
        .map(|h| h.correlation_id)
        .collect()
}

fn checkpoints(bus: &dyn Bus, stage: StageKind) -> Vec<AuditCheckpoint> {
    let registry = SchemaRegistry::new().unwrap();
    bus.read(topics::AUDIT_CHECKPOINTS, 0, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| registry.decode_single::<AuditCheckpoint>(&r.value).unwrap())
        .filter(|c| c.stage == stage.name())
        .collect()
}

/// Every FSE `stage` passed is not also rejected by it, and the replay of
/// the bus is identical (the re-run batch's checkpoint names the watermark
/// it ran at).
fn one_outcome_each(bus: &Arc<LocalLog>, stage: StageKind, passed: &str) -> BTreeSet<String> {
    let passed = fse_ids(bus, passed, stage);
    let rejected = fse_ids(bus, topics::FSE_REJECTED, stage);
    let both: Vec<_> = passed.intersection(&rejected).collect();
    assert!(
        both.is_empty(),
        "{}: FSEs both passed and rejected: {both:?}",
        stage.name()
    );
    passed
}

/// Validation acknowledges `fse.validated` for a batch and dies; a
/// revocation of a card dated on the care date of one of the batch's claims
/// is then published. The restart must not return that claim as revoked.
#[test]
fn a_revocation_published_after_a_cut_batch_does_not_give_its_claim_a_second_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("gen"));
    let bus = data.published(dir.path());
    let shared = shared(bus.clone(), &dir.path().join("state"));
    cut_batch(&shared, StageKind::Validation);
    let validated = fse_ids(&bus, topics::FSE_VALIDATED, StageKind::Validation);
    let claim = data
        .claims
        .iter()
        .find(|c| c.fse_id.as_ref().is_some_and(|id| validated.contains(id)))
        .expect("a validated claim");
    let card = claim
        .signature
        .as_ref()
        .and_then(|s| s.cert.clone())
        .expect("a signed claim");
    let care_date: NaiveDate = claim.care_date.as_deref().unwrap().parse().unwrap();
    let pki_end = bus.end_offset(topics::REF_PKI, 0).unwrap();
    {
        let registry = SchemaRegistry::new().unwrap();
        let pseudonyms = PseudonymKey::development();
        let mut ingest = Ingest::new(&bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        ingest
            .pki(&PkiRecord::Revocation {
                cert: card,
                revoked_on: care_date,
            })
            .unwrap();
        ingest.flush().unwrap();
    }
    run_to_end(&shared, &[StageKind::Validation]);
    let after = one_outcome_each(&bus, StageKind::Validation, topics::FSE_VALIDATED);
    assert!(after.contains(claim.fse_id.as_ref().unwrap()));
    // The re-run batch ran at the watermark its outputs recorded.
    let first = checkpoints(&bus, StageKind::Validation)
        .into_iter()
        .next()
        .expect("a checkpoint");
    let pki = first
        .ref_watermark
        .iter()
        .find(|w| w.topic == topics::REF_PKI)
        .expect("ref.pki in the watermark");
    assert_eq!(u64::try_from(pki.offset).unwrap(), pki_end);
    run_to_end(&shared, &[StageKind::Entitlement]);
    drop((shared, bus));
    common::dataset::assert_replay_identical(&dir.path().join("bus"), "validation,entitlement");
}

/// Entitlement acknowledges `fse.entitled` for a batch and dies; the
/// coverage of one of its beneficiaries is then ended before the care date.
/// The restart must not reject that claim as not covered.
#[test]
fn a_rights_change_published_after_a_cut_batch_does_not_give_its_claim_a_second_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("gen"));
    let bus = data.published(dir.path());
    let shared = shared(bus.clone(), &dir.path().join("state"));
    run_to_end(&shared, &[StageKind::Validation]);
    cut_batch(&shared, StageKind::Entitlement);
    let entitled = fse_ids(&bus, topics::FSE_ENTITLED, StageKind::Entitlement);
    let claim = data
        .claims
        .iter()
        .find(|c| c.fse_id.as_ref().is_some_and(|id| entitled.contains(id)))
        .expect("an entitled claim");
    let nir = claim
        .beneficiary
        .as_ref()
        .and_then(|b| b.nir.clone())
        .expect("a beneficiary");
    let mut rights = data
        .rights
        .iter()
        .find(|r| r["nir"] == nir.as_str())
        .expect("the beneficiary's rights")
        .clone();
    rights["coverage"][0]["to"] = Value::from("2025-02-28");
    let rights_end = bus.end_offset(topics::REF_RIGHTS, 0).unwrap();
    {
        let registry = SchemaRegistry::new().unwrap();
        let pseudonyms = PseudonymKey::development();
        let mut ingest = Ingest::new(&bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        ingest
            .rights(&serde_json::from_value::<RightsInput>(rights).unwrap())
            .unwrap();
        ingest.flush().unwrap();
    }
    run_to_end(&shared, &[StageKind::Entitlement]);
    let after = one_outcome_each(&bus, StageKind::Entitlement, topics::FSE_ENTITLED);
    assert!(after.contains(claim.fse_id.as_ref().unwrap()));
    let first = checkpoints(&bus, StageKind::Entitlement)
        .into_iter()
        .next()
        .expect("a checkpoint");
    let applied = first
        .ref_watermark
        .iter()
        .find(|w| w.topic == topics::REF_RIGHTS)
        .expect("ref.rights in the watermark");
    assert_eq!(u64::try_from(applied.offset).unwrap(), rights_end);
    drop((shared, bus));
    common::dataset::assert_replay_identical(&dir.path().join("bus"), "validation,entitlement");
}
