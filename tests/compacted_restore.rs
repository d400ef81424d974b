//! The restore path across a compaction (docs/reliability.md, "Compacted
//! changelogs"): the deciding stages run to the end on a local log whose
//! segments roll every 16 KiB, in batches of 20, so their changelogs span
//! many closed segments; `compact_changelogs` drops every superseded record
//! (and every tombstone: a retention of 0); the stores are deleted and the
//! stages restarted: each partition's store equals the one before, key for
//! key.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, StageKind};
use clearing_pipeline::state::{Engine, StateStore, StoreTree};
use clearing_pipeline::synth::GenConfig;
use common::dataset::{DataSet, run_to_end, shared_with};

/// Every key and value of each deciding stage's store (one partition).
fn stores(state: &Path) -> BTreeMap<(String, Vec<u8>), Vec<u8>> {
    let mut all = BTreeMap::new();
    for kind in StageKind::DECIDING {
        let dir = state.join(kind.name());
        let db = StoreTree::open(Engine::of_store(&dir), &dir, "meta").unwrap();
        for (key, value) in db.tree("p0").unwrap().scan_prefix(b"").unwrap() {
            all.insert((kind.name().to_string(), key), value);
        }
    }
    all
}

/// Bytes of the segment files of every changelog partition.
fn changelog_bytes(bus: &Path) -> u64 {
    StageKind::DECIDING
        .iter()
        .flat_map(|k| std::fs::read_dir(bus.join(k.changelog_topic()).join("0")).unwrap())
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The deciding stages run to the end over `bus`, stores in `state`.
fn run(bus: Arc<LocalLog>, state: &Path) {
    let shared = shared_with(Arc::new(bus), state, 20, 1, 1);
    run_to_end(&shared, &StageKind::DECIDING);
}

#[test]
fn stores_restored_from_compacted_changelogs_equal_the_stores_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GenConfig::for_claims(29, 300);
    config.beneficiaries = 20;
    let data = DataSet::generate(&config, &dir.path().join("data"));
    let (bus_dir, state) = (dir.path().join("bus"), dir.path().join("state"));
    {
        let bus = LocalLog::open_with_segment_bytes(&bus_dir, 16 * 1024).unwrap();
        runtime::ensure_topics(&bus, 1).unwrap();
        data.publish_references(&bus);
        let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
        let mut ingest = Ingest::new(&bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        for claim in &data.claims {
            ingest.submit(claim).unwrap();
        }
        ingest.flush().unwrap();
        drop(ingest);
        run(bus, &state);
    }
    let before = stores(&state);
    assert!(before.len() > 100, "{} keys", before.len());
    let bus = LocalLog::open(&bus_dir).unwrap();
    let bytes = changelog_bytes(&bus_dir);
    let done = runtime::compact_changelogs(&bus, 0).unwrap();
    let dropped: u64 = done
        .iter()
        .flat_map(|(_, p)| p)
        .map(|c| c.records_dropped)
        .sum();
    assert!(dropped > 0, "{done:?}");
    assert!(changelog_bytes(&bus_dir) < bytes);
    std::fs::remove_dir_all(&state).unwrap();
    run(bus, &state);
    assert_eq!(stores(&state), before);
}
