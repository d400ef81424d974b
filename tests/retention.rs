//! Retention end to end (docs/rules.md, "Retention"): the validation stage,
//! on a local bus with real sled stores, keeps a claim's duplicate key while
//! a resend could be in time, deletes it (a tombstone on its changelog) on
//! the day the ingest stamps in the stream reach the time-bar plus the
//! margin, and a resend after that is time-barred, never let through. The
//! run replays IDENTICAL.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::convert::submitted_from_input;
use clearing_pipeline::events::model::{FseRejected, FseValidated};
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::{Ingest, fse_key};
use clearing_pipeline::runtime::{self, StageKind, topics};
use clearing_pipeline::state::{Engine, StateRead, StoreTree};
use common::dataset::{DataSet, assert_replay_identical, run_to_end, shared};
use common::each_record;

/// 10:00 UTC on `day`: noon in Paris in summer, 11:00 in winter, the same
/// insurer date either way.
fn stamp_on(day: NaiveDate) -> i64 {
    day.and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// A claim of the month signed by a card that stays valid and unrevoked
/// past every stamp of the test, so that only the clock decides.
fn long_lived_claim(data: &DataSet, until: NaiveDate) -> FseInput {
    let good_cert = |id: &str| {
        let revoked = data
            .pki
            .iter()
            .any(|r| matches!(r, PkiRecord::Revocation { cert, .. } if cert == id));
        let lasts = data.pki.iter().any(|r| {
            matches!(r, PkiRecord::Certificate { id: c, not_after, .. } if c == id && *not_after >= until)
        });
        lasts && !revoked
    };
    data.claims
        .iter()
        .find(|c| {
            c.signature
                .as_ref()
                .and_then(|s| s.cert.as_deref())
                .is_some_and(good_cert)
        })
        .expect("a claim whose card lasts")
        .clone()
}

/// The front door: `claim` stamped on `day`.
fn submit(bus: &Arc<LocalLog>, claim: &FseInput, day: NaiveDate) {
    let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
    let mut fse = submitted_from_input(claim).unwrap();
    fse.ingested_at_millis = Some(stamp_on(day));
    let mut ingest = Ingest::new(bus, &registry, &pseudonyms, IngestClock::Wall).unwrap();
    ingest.submit_wire(&fse).unwrap();
    ingest.flush().unwrap();
}

/// The validation stage over everything submitted so far.
fn validate(bus: &Arc<LocalLog>, state: &Path) {
    run_to_end(&shared(bus.clone(), state), &[StageKind::Validation]);
}

/// The rejection codes of the latest rejection.
fn last_rejection(bus: &Arc<LocalLog>) -> Vec<String> {
    let rejected = each_record::<FseRejected>(bus, topics::FSE_REJECTED);
    let last = rejected.last().expect("a rejection");
    last.decision
        .reasons
        .iter()
        .map(|r| r.code.clone())
        .collect()
}

/// Whether the validation stage's store holds `key` (the stage stopped).
fn stored(state: &Path, key: &[u8]) -> bool {
    let dir = state.join(StageKind::Validation.name());
    let db = StoreTree::open(Engine::of_store(&dir), &dir, "meta").unwrap();
    db.tree("p0").unwrap().get(key).unwrap().is_some()
}

/// How many tombstones the validation changelog holds for `key`.
fn tombstones(bus: &Arc<LocalLog>, key: &[u8]) -> usize {
    let changelog = StageKind::Validation.changelog_topic();
    let end = bus.end_offset(changelog, 0).unwrap();
    let (mut next, mut count) = (0, 0);
    while next < end {
        let chunk = bus.read(changelog, 0, next, 10_000).unwrap();
        let Some(last) = chunk.last() else { break };
        next = last.offset + 1;
        count += chunk.iter().filter(|r| r.tombstone && r.key == key).count();
    }
    count
}

#[test]
fn a_duplicate_key_lives_through_the_time_bar_and_its_expiry_lets_no_resend_through() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let rules = Rules::embedded().unwrap();
    let care = |c: &FseInput| {
        c.care_date
            .as_deref()
            .unwrap()
            .parse::<NaiveDate>()
            .unwrap()
    };
    // Care in March 2025: barred from 2027-04-01, the key kept until 2027-05-02.
    let claim = long_lived_claim(&data, NaiveDate::from_ymd_opt(2027, 5, 4).unwrap());
    let other = data
        .claims
        .iter()
        .find(|c| c.fse_id != claim.fse_id)
        .unwrap()
        .clone();
    let kept_until = rules.general.kept_until(care(&claim)).unwrap();
    let barred_from = rules
        .general
        .limitation
        .at(care(&claim))
        .unwrap()
        .value
        .barred_from(care(&claim))
        .unwrap();
    assert!(barred_from < kept_until);

    let bus = LocalLog::open(&dir.path().join("bus")).unwrap();
    runtime::ensure_topics(&bus, 1).unwrap();
    data.publish_references(&bus);
    let state = dir.path().join("state");
    let pseudonyms = PseudonymKey::development();
    let record_key = fse_key(&submitted_from_input(&claim).unwrap(), &pseudonyms);
    // Per beneficiary, RPPS and FSE id (general.toml's `invoice_number`).
    let dup_key = [
        b"dup/".as_slice(),
        &record_key,
        b"/",
        claim
            .professional
            .as_ref()
            .unwrap()
            .rpps
            .as_deref()
            .unwrap()
            .as_bytes(),
        b"/",
        claim.fse_id.as_deref().unwrap().as_bytes(),
    ]
    .concat();

    // Received: the key is taken.
    submit(&bus, &claim, care(&claim) + Days::new(1));
    validate(&bus, &state);
    assert_eq!(
        each_record::<FseValidated>(&bus, topics::FSE_VALIDATED).len(),
        1
    );
    assert!(stored(&state, &dup_key));

    // Resent on the last day it is in time: a duplicate.
    submit(&bus, &claim, barred_from - Days::new(1));
    validate(&bus, &state);
    assert_eq!(last_rejection(&bus), ["duplicate"]);

    // Other claims move the clock to the day before the key's last one: kept.
    submit(&bus, &other, kept_until - Days::new(1));
    validate(&bus, &state);
    assert!(stored(&state, &dup_key));
    assert_eq!(tombstones(&bus, &dup_key), 0);

    // The first input stamped on `kept_until` deletes it, tombstone included.
    submit(&bus, &other, kept_until);
    validate(&bus, &state);
    assert!(!stored(&state, &dup_key));
    assert_eq!(tombstones(&bus, &dup_key), 1);

    // A resend now is past the time-bar: rejected for that, never passed.
    submit(&bus, &claim, kept_until);
    validate(&bus, &state);
    assert_eq!(last_rejection(&bus), ["claim_time_barred"]);
    assert_eq!(
        each_record::<FseValidated>(&bus, topics::FSE_VALIDATED).len(),
        1
    );

    drop(bus);
    assert_replay_identical(&dir.path().join("bus"), "validation");
}
