//! Inputs are known by their position, not their bus offset: on Kafka with
//! transactions every commit writes a marker that takes an offset in each
//! partition it wrote, at points that follow timing. A stage reading a topic
//! whose offsets have gaps must emit the bytes it emits on the same records
//! without gaps, and its run must replay identically.

mod common;

use std::sync::Arc;

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::runtime::{self, StageKind, topics};
use common::dataset::{DataSet, run_to_end, shared};

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
    let data = DataSet::small_month(&dir.path().join("gen"));
    let dense = data.published(dir.path());
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
    common::dataset::assert_replay_identical(
        &gapped_dir.join("bus"),
        "entitlement,routing,reimbursement",
    );
}
