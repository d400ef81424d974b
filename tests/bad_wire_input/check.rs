//! The cases, the driver that runs a table of them, and the checks of a
//! bad record's outcome on a stage topic (through `run_batch`) and on the
//! reference topics (through `runtime::refs`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::{DeadLetter, FseRejected, PkiEvent, RightsRecord};
use clearing_pipeline::runtime::batch::Source;
use clearing_pipeline::runtime::process::{DEAD_LETTER_MAX_BYTES, Output};
use clearing_pipeline::runtime::refs::{GlobalRefs, apply_rights};
use clearing_pipeline::runtime::{self, StageKind, WorkerStats, topics};
use clearing_pipeline::stages::entitlement;
use clearing_pipeline::state::{MemStore, StateTxn, WriteBatch};

use crate::world::{World, batch, batch_alone, record, stage_of, world};

/// What a bad record must give.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Stage topics and `ref.rights`: one dead letter with the raw bytes.
    /// `ref.pki`, `ref.eu.institutions`: counted as a reference error and
    /// not applied (every instance reads them; design in docs/architecture.md).
    Refused,
    /// A rejection on `fse.rejected` with exactly these reason codes.
    Rejected(Vec<&'static str>),
    /// Dropped by the downstream duplicate filter (counted), no output.
    Duplicate,
    /// Processed as a valid input: outputs on the stage's usual topics (a
    /// control, or what the reference topic takes as a new record).
    Accepted,
    /// Any one outcome of the above but never a panic (bit flips at every
    /// position: some give valid events).
    AnyOne,
}

pub struct Case {
    pub bad: Vec<Vec<u8>>,
    /// The record key of the bad records (default: the follower's).
    pub key: Option<Vec<u8>>,
    pub expect: Expect,
}

pub fn case(bad: Vec<u8>, expect: Expect) -> Case {
    Case {
        bad: vec![bad],
        key: None,
        expect,
    }
}

pub fn refused(bad: Vec<u8>) -> Case {
    case(bad, Expect::Refused)
}

/// Several bad records, each refused.
pub fn refused_each(bad: Vec<Vec<u8>>) -> Case {
    Case {
        bad,
        key: None,
        expect: Expect::Refused,
    }
}

/// A named case, made when it runs (so that a panic making it is named too).
pub type Row = (&'static str, Box<dyn FnOnce() -> Case>);

pub fn row(name: &'static str, make: impl FnOnce() -> Case + 'static) -> Row {
    (name, Box::new(make))
}

/// Runs every case of `topic`; then fails naming each case that failed.
pub fn run_all(topic: &'static str, rows: Vec<Row>) {
    let mut failed = Vec::new();
    for (name, make) in rows {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(topic, make()))) {
            let message = (panic.downcast_ref::<String>().cloned())
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{topic} {name}: {message}"));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

pub fn run(topic: &'static str, case: Case) {
    match topic {
        topics::REF_RIGHTS => run_rights(case),
        topics::REF_PKI | topics::REF_EU_INSTITUTIONS => run_global(topic, case),
        _ => run_stage(topic, case),
    }
}

pub fn assert_no_personal_data(error: &str) {
    let w = world();
    for p in &w.personal {
        let whole_word = error
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == p);
        assert!(
            !(error.contains(p.as_str()) && (p.bytes().any(|b| b.is_ascii_digit()) || whole_word)),
            "the error quotes personal data: {error}"
        );
    }
}

pub fn assert_dead_letter(kind: StageKind, topic: &str, offset: u64, raw: &[u8], output: &Output) {
    assert_eq!(output.topic, kind.dlq_topic(), "a dead letter");
    let letter: DeadLetter = world().registry.decode_single(&output.value).unwrap();
    match &letter.cut {
        None => assert_eq!(letter.raw, raw, "the dead letter keeps the raw bytes"),
        // Too large for a letter whole: their beginning, and their length.
        Some(cut) => {
            assert_eq!(letter.raw[..], raw[..letter.raw.len()]);
            assert_eq!(cut.length, raw.len() as i64);
            assert!(output.key.len() + output.value.len() <= DEAD_LETTER_MAX_BYTES);
        }
    }
    assert_eq!(
        (letter.topic.as_str(), letter.offset, letter.stage.as_str()),
        (topic, offset as i64, kind.name())
    );
    assert!(!letter.error.is_empty());
    assert_no_personal_data(&letter.error);
}

/// State writes other than the reserved ones (cursor, chain, filter marks).
pub fn own_writes(writes: &WriteBatch) -> WriteBatch {
    writes
        .iter()
        .filter(|(k, _)| !matches!(k.first(), Some(0 | 1)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn run_stage(topic: &'static str, case: Case) {
    // Each bad record in its own batch before the follower: two bad records
    // made from one template share its upstream offset, and the second
    // would be filtered as a duplicate of the first.
    for (i, bytes) in case.bad.iter().enumerate() {
        run_stage_one(topic, &case, i, bytes);
    }
}

fn topics_of(outputs: &[&Output]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| match dead_letter_error(o) {
            Some(error) if o.topic.starts_with("dlq.") => format!("{}: {error}", o.topic),
            _ => o.topic.to_string(),
        })
        .collect()
}

/// One bad record of a stage topic, at the template's offset.
struct BadRecord<'a> {
    kind: StageKind,
    topic: &'static str,
    offset: u64,
    /// Its place among the case's bad records.
    index: usize,
    bytes: &'a [u8],
}

fn run_stage_one(topic: &'static str, case: &Case, index: usize, bytes: &[u8]) {
    let w = world();
    let kind = stage_of(topic);
    let stream = &w.streams[topic];
    let offset = stream.start();
    let bad = BadRecord {
        kind,
        topic,
        offset,
        index,
        bytes,
    };
    let key = case
        .key
        .clone()
        .unwrap_or_else(|| stream.follower().key.clone());
    let mut follower = stream.follower().clone();
    follower.offset = offset + 1;
    let records = vec![
        record(topic, offset, &key, bytes.to_vec()),
        follower.clone(),
    ];

    let (outputs, stats, writes) = batch(w, kind, &stream.base, &records);
    let (alone, alone_stats, alone_writes) = batch_alone(w, kind, &stream.base, &follower);
    assert!(!alone.is_empty(), "the follower gives outputs alone");
    assert_eq!(alone_stats.duplicates_dropped, 0);

    let of = |offset: u64| -> Vec<&Output> {
        outputs
            .iter()
            .filter(|(s, _)| matches!(s, Source::Input(o, _) if *o == offset))
            .map(|(_, o)| o)
            .collect()
    };
    let got = of(offset);
    let what = topics_of(&got);
    check_outcome(w, &bad, &case.expect, &got, &what);
    let i = index;
    match &case.expect {
        // Multi-producer topics are filtered inside the stage (one mark per
        // source topic), uncounted (docs/reliability.md).
        Expect::Duplicate if matches!(kind, StageKind::Returns | StageKind::Ledger) => {}
        Expect::Duplicate => assert_eq!(stats.duplicates_dropped, 1, "dropped as a duplicate"),
        _ => assert_eq!(
            stats.duplicates_dropped, 0,
            "bad record {i}: nothing dropped as a duplicate ({what:?})"
        ),
    }
    // The stage kept going: the follower's outputs are those it gives alone
    // (after an accepted record, that it gives some: they may differ).
    if matches!(case.expect, Expect::Accepted | Expect::AnyOne) {
        assert!(!of(offset + 1).is_empty(), "the follower is processed");
        return;
    }
    let follower_out = topics_of(&of(offset + 1));
    assert_eq!(
        of(offset + 1),
        alone.iter().map(|(_, o)| o).collect::<Vec<_>>(),
        "bad record {i}: the follower is processed as it is alone ({follower_out:?})"
    );
    // Bad input changes no state (accepted records may).
    if matches!(
        case.expect,
        Expect::Refused | Expect::Duplicate | Expect::Rejected(_)
    ) {
        assert_eq!(
            own_writes(&writes),
            own_writes(&alone_writes),
            "bad record {i}: changed the stage's state"
        );
    }
}

/// The bad record's own outputs (`got`, their topics `what`) are what `expect` says.
fn check_outcome(w: &World, bad: &BadRecord, expect: &Expect, got: &[&Output], what: &[String]) {
    let BadRecord {
        kind,
        topic,
        offset,
        index: i,
        bytes,
    } = *bad;
    match expect {
        Expect::Refused => {
            assert_eq!(
                got.len(),
                1,
                "bad record {i}: one dead letter, got {what:?}"
            );
            assert_dead_letter(kind, topic, offset, bytes, got[0]);
        }
        Expect::Rejected(codes) => {
            assert_eq!(got.len(), 1, "bad record {i}: one rejection, got {what:?}");
            assert_eq!(
                got[0].topic,
                topics::FSE_REJECTED,
                "bad record {i}: {what:?}"
            );
            let rejected: FseRejected = w.registry.decode_single(&got[0].value).unwrap();
            let mut found: Vec<&str> = rejected
                .decision
                .reasons
                .iter()
                .map(|r| r.code.as_str())
                .collect();
            found.sort_unstable();
            let mut want = codes.clone();
            want.sort_unstable();
            assert_eq!(found, want, "reason codes");
            for reason in &rejected.decision.reasons {
                assert_no_personal_data(&reason.message);
            }
        }
        Expect::Duplicate => {
            assert!(got.is_empty(), "bad record {i}: no output, got {what:?}");
        }
        Expect::Accepted => {
            // A ledger outcome is accumulated: no output until a close.
            assert!(
                !got.is_empty() || kind == StageKind::Ledger,
                "bad record {i}: outputs"
            );
            for o in got {
                assert!(
                    kind.output_topics().contains(&o.topic) && !o.topic.starts_with("dlq."),
                    "bad record {i}: accepted, got {what:?}"
                );
            }
        }
        Expect::AnyOne => {
            assert!(got.len() <= 4, "a bounded number of outputs");
            for o in got {
                if o.topic == kind.dlq_topic() {
                    assert_dead_letter(kind, topic, offset, bytes, o);
                }
            }
        }
    }
}

fn dead_letter_error(o: &Output) -> Option<String> {
    world()
        .registry
        .decode_single::<DeadLetter>(&o.value)
        .ok()
        .map(|d| d.error)
}

/// A fresh local log with every topic (one partition each).
fn log() -> (tempfile::TempDir, std::sync::Arc<LocalLog>) {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalLog::open(dir.path()).unwrap();
    runtime::ensure_topics(&log, 1).unwrap();
    (dir, log)
}

fn publish(log: &std::sync::Arc<LocalLog>, topic: &str, values: &[Vec<u8>]) {
    let mut producer = log.producer().unwrap();
    for value in values {
        producer.send(topic, 0, b"k", value, 0).unwrap();
    }
    producer.flush().unwrap();
}

/// A good rights record (the follower of `ref.rights` cases).
fn good_rights() -> &'static RightsRecord {
    world().rights.last().unwrap()
}

fn run_rights(case: Case) {
    let w = world();
    let good = w.registry.encode_single(good_rights());
    let (_dir, bus) = log();
    let mut values = case.bad.clone();
    values.push(good);
    publish(&bus, topics::REF_RIGHTS, &values);
    let store = MemStore::default();
    let mut txn = StateTxn::new(&store);
    let mut stats = WorkerStats::default();
    let (watermark, letters) = apply_rights(
        &bus,
        &w.registry,
        &w.pseudonyms,
        0,
        None,
        &mut txn,
        &mut stats,
    )
    .unwrap();
    assert_eq!(watermark.offset, values.len() as i64, "read to the end");
    match case.expect {
        Expect::Refused => {
            assert_eq!(
                letters.len(),
                case.bad.len(),
                "one dead letter per bad record"
            );
            for (i, ((source, output), bytes)) in letters.iter().zip(&case.bad).enumerate() {
                assert_eq!(*source, Source::Ref(i as u64));
                assert_dead_letter(
                    StageKind::Entitlement,
                    topics::REF_RIGHTS,
                    i as u64,
                    bytes,
                    output,
                );
            }
        }
        Expect::Accepted => assert!(letters.is_empty(), "accepted: {:?}", {
            letters
                .iter()
                .map(|(_, o)| dead_letter_error(o))
                .collect::<Vec<_>>()
        }),
        Expect::AnyOne => {
            for (source, output) in &letters {
                let Source::Ref(i) = *source else {
                    panic!("a reference source")
                };
                let bytes = &case.bad[i as usize];
                assert_dead_letter(StageKind::Entitlement, topics::REF_RIGHTS, i, bytes, output);
            }
            return;
        }
        ref other => panic!("not a ref.rights outcome: {other:?}"),
    }
    the_good_record_is_applied_as_alone(&case, txn.into_writes());
}

/// The good record after the case's is applied as it is alone (after the
/// case's records when they are accepted): `writes` are the run's.
fn the_good_record_is_applied_as_alone(case: &Case, writes: WriteBatch) {
    let w = world();
    let alone = MemStore::default();
    let mut alone_txn = StateTxn::new(&alone);
    if let Expect::Accepted = case.expect {
        for bytes in &case.bad {
            let r: RightsRecord = w.registry.decode_single(bytes).unwrap();
            entitlement::apply_rights(convert::rights_input(&r), &mut alone_txn, &w.pseudonyms)
                .unwrap();
        }
    }
    entitlement::apply_rights(
        convert::rights_input(good_rights()),
        &mut alone_txn,
        &w.pseudonyms,
    )
    .unwrap();
    assert_eq!(own_writes(&writes), own_writes(&alone_txn.into_writes()));
}

fn run_global(topic: &'static str, case: Case) {
    let w = world();
    let kind = if topic == topics::REF_PKI {
        StageKind::Validation
    } else {
        StageKind::Routing
    };
    let good = if topic == topics::REF_PKI {
        w.registry.encode_single(&w.pki_events[0])
    } else {
        w.registry.encode_single(&w.institution_records[0])
    };
    let (_dir, bus) = log();
    let mut values = case.bad.clone();
    values.push(good);
    publish(&bus, topic, &values);
    let mut refs = GlobalRefs::default();
    let mut stats = WorkerStats::default();
    let watermark = refs
        .advance(&bus, &w.registry, kind, false, None, &mut stats)
        .unwrap();
    assert_eq!(watermark[0].offset, values.len() as i64, "read to the end");
    let (held, good_held) = if topic == topics::REF_PKI {
        let PkiEvent::Certificate(c) = &w.pki_events[0] else {
            panic!("the first PKI record is a certificate")
        };
        (refs.pki.len(), refs.pki.certificate(&c.id).is_some())
    } else {
        let r = &w.institution_records[0];
        let held = refs.institutions.valid_on(
            clearing_pipeline::ids::Country::parse(&r.country).unwrap(),
            &clearing_pipeline::ids::EhicInstitutionId::parse(&r.institution_id).unwrap(),
            r.from,
        );
        (refs.institutions.len(), held.is_some())
    };
    assert!(good_held, "the good record after the bad ones is applied");
    match case.expect {
        Expect::Refused => {
            assert_eq!(
                stats.ref_errors,
                case.bad.len() as u64,
                "each bad record counted"
            );
            assert_eq!(held, 1, "nothing but the good record applied");
        }
        Expect::Accepted => assert_eq!(stats.ref_errors, 0, "accepted"),
        Expect::AnyOne => assert!(stats.ref_errors <= case.bad.len() as u64),
        ref other => panic!("not a global reference outcome: {other:?}"),
    }
}
