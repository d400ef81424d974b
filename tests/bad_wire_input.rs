//! Bad input on the wire (issue 8): a catalogue of malformed records on every
//! topic a stage reads, each through the production code — the shared batch
//! core (`runtime::batch::run_batch`) for the seven stage inputs, the
//! reference path (`runtime::refs`) for the three reference topics.
//!
//! The world is a small `synth::generate` data set (signed claims, rights,
//! PKI, EU institutions) run through the seven stages in process, which gives
//! real records for every input topic. For a stage topic, each test runs one
//! batch from the stage's state just before the last two records of the
//! stream: the bad record(s), then the last record (the "follower"). It
//! asserts the bad record's exact outcome — a dead letter on the stage's dlq
//! topic with the raw bytes and an error that quotes no personal data, a
//! rejection with its exact reason codes, or a drop the design calls for —
//! and that the follower gives, byte for byte, the outputs it gives alone:
//! the stage kept going and the bad record changed no state.
//!
//! Bad bytes that keep a decodable header are made from the second-to-last
//! record (the "template"), unprocessed by the base state, so that its
//! upstream offset lies between the filter's mark and the follower's.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::NaiveDate;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{Bus, Record};
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::events::codec::{AvroField, AvroRecord, Encoder};
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::{
    CoverageRec, DeadLetter, EuInstitutionRecord, EventHeader, FseDecided, FseEntitled,
    FseRejected, FseRouted, FseSubmitted, FseValidated, LedgerEntry, PkiEvent, RevocationRec,
    RightsRecord, SignatureRec, SourceRef, Status,
};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pki::{Pki, PkiRecord, SignatureAlg, SigningKey, certificate_for};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{EuInstitutionInput, InstitutionDirectory, RefView};
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::batch::{BatchInput, Cursor, Source, run_batch};
use clearing_pipeline::runtime::ingest::fse_key;
use clearing_pipeline::runtime::process::{DEAD_LETTER_MAX_BYTES, Output};
use clearing_pipeline::runtime::refs::{GlobalRefs, apply_rights};
use clearing_pipeline::runtime::{self, StageKind, WorkerStats, topics};
use clearing_pipeline::signatures::{PkiVerifier, canonical_bytes};
use clearing_pipeline::stages::{Context, entitlement};
use clearing_pipeline::state::{MemStore, StateStore, StateTxn, WriteBatch};
use clearing_pipeline::synth::{self, GenConfig};

// ---------------------------------------------------------------------------
// The world

/// The day the ledger stream's close event closes.
const CLOSE_ON: (i32, u32, u32) = (2025, 6, 30);

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A stage topic's records and the stage's state before the last two.
struct Stream {
    records: Vec<Record>,
    /// The stage's state (cursor included) after `records[..n-2]`.
    base: MemStore,
}

impl Stream {
    fn template(&self) -> &Record {
        &self.records[self.records.len() - 2]
    }
    fn follower(&self) -> &Record {
        &self.records[self.records.len() - 1]
    }
    /// The offset of the template: where a test's bad records start.
    fn start(&self) -> u64 {
        (self.records.len() - 2) as u64
    }
}

struct World {
    registry: SchemaRegistry,
    rules: Rules,
    pseudonyms: PseudonymKey,
    /// The data set's PKI plus this test's own cards (below).
    pki: Pki,
    institutions: InstitutionDirectory,
    rights: Vec<RightsRecord>,
    pki_events: Vec<PkiEvent>,
    institution_records: Vec<EuInstitutionRecord>,
    streams: BTreeMap<&'static str, Stream>,
    /// A domestic claim validation passed, in the base state (its id is taken).
    domestic: FseSubmitted,
    /// A visitor's (EHIC) claim validation passed.
    visitor: FseSubmitted,
    /// A professional other than the domestic claim's.
    other_rpps: String,
    /// This test's signing key; certificates `own/<rpps>` (every RPPS of
    /// the data set), `revoked/<rpps>`, `expired/<rpps>` carry it.
    key: SigningKey,
    /// Every NIR, EHIC card and personal id, surname and given name of the data set.
    personal: Vec<String>,
    _dir: tempfile::TempDir,
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn with_ctx<T>(w: &World, f: impl FnOnce(&Context<'_>) -> T) -> T {
    let verifier = PkiVerifier {
        pki: &w.pki,
        registry: &w.registry,
    };
    let refs = RefView {
        signatures: &verifier,
        institutions: &w.institutions,
    };
    let ctx = Context {
        rules: &w.rules,
        refs: &refs,
        pseudonyms: &w.pseudonyms,
    };
    f(&ctx)
}

/// One batch of `kind` over `records` from `store`'s state; returns the
/// outputs with their sources, the stats and the state writes (not applied).
fn batch(
    w: &World,
    kind: StageKind,
    store: &MemStore,
    records: &[Record],
) -> (Vec<(Source, Output)>, WorkerStats, WriteBatch) {
    batch_at(w, kind, store, records, None)
}

/// The follower alone, at its own position: the records before it taken as
/// read (otherwise the offset it skips is a gap, as a Kafka transaction
/// marker leaves, and its position is one less).
fn batch_alone(
    w: &World,
    kind: StageKind,
    store: &MemStore,
    follower: &Record,
) -> (Vec<(Source, Output)>, WorkerStats, WriteBatch) {
    batch_at(
        w,
        kind,
        store,
        std::slice::from_ref(follower),
        Some(follower.offset),
    )
}

fn batch_at(
    w: &World,
    kind: StageKind,
    store: &MemStore,
    records: &[Record],
    position: Option<u64>,
) -> (Vec<(Source, Output)>, WorkerStats, WriteBatch) {
    let mut cursor = Cursor::load(store).unwrap();
    if let Some(position) = position {
        (cursor.applied, cursor.raw) = (position, position);
    }
    let mut txn = StateTxn::new(store);
    let mut stats = WorkerStats::default();
    let out = with_ctx(w, |ctx| {
        run_batch(
            BatchInput {
                kind,
                partition: 0,
                records,
                prelude: Vec::new(),
                watermark: &[],
                registry: &w.registry,
                record_limit: clearing_pipeline::bus::local::MAX_RECORD_BYTES,
            },
            ctx,
            &mut cursor,
            &mut None,
            &mut txn,
            &mut stats,
        )
        .unwrap()
    });
    let chained = out.map(|o| o.chained).unwrap_or_default();
    (chained, stats, txn.into_writes())
}

fn record(topic: &str, offset: u64, key: &[u8], value: Vec<u8>) -> Record {
    Record {
        topic: topic.to_string(),
        partition: 0,
        offset,
        timestamp_millis: 0,
        key: key.to_vec(),
        value,
    }
}

fn sign_with(w_registry: &SchemaRegistry, fse: &mut FseSubmitted, key: &SigningKey, cert: &str) {
    fse.signature = None;
    let message = canonical_bytes(w_registry, fse);
    fse.signature = Some(SignatureRec {
        alg: key.alg().as_str().to_string(),
        cert: cert.to_string(),
        value: key.sign(&message),
    });
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build_world)
}

fn build_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let rules = Rules::embedded().unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let pseudonyms = PseudonymKey::development();
    let mut config = GenConfig::for_claims(23, 160);
    config.rsa_per_mille = 0;
    config.bad_per_mille = 100;
    config.visitors_per_mille = 150;
    config.beneficiaries = 60;
    config.first_care_date = date(2024, 11, 15);
    config.last_care_date = date(2025, 2, 15);
    synth::generate(&config, &rules, &registry, dir.path()).unwrap();

    let rights_inputs: Vec<clearing_pipeline::rights::RightsInput> =
        lines(&dir.path().join("rights.jsonl"))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let pki_records: Vec<PkiRecord> = lines(&dir.path().join("pki.jsonl"))
        .iter()
        .map(|l| PkiRecord::from_json(l).unwrap())
        .collect();
    let institution_inputs: Vec<EuInstitutionInput> =
        lines(&dir.path().join("eu_institutions.jsonl"))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let claims: Vec<FseSubmitted> = lines(&dir.path().join("claims.jsonl"))
        .iter()
        .map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).unwrap();
            let input: FseInput = clearing_pipeline::domain::json::from_value(
                &value,
                clearing_pipeline::adjudicate::FSE_OBJECTS,
            )
            .unwrap();
            convert::submitted_from_input(&input).unwrap()
        })
        .collect();

    // This test's own card, certified for every professional of the data set.
    let key = SigningKey::generate(
        SignatureAlg::EcdsaP256Sha256,
        *b"bad-wire-input-test-signing-key!",
    );
    let mut pki = Pki::default();
    for record in &pki_records {
        pki.apply(record.clone()).unwrap();
    }
    let mut rpps_all: Vec<String> = claims.iter().map(|c| c.professional.rpps.clone()).collect();
    rpps_all.sort();
    rpps_all.dedup();
    for rpps in &rpps_all {
        let cert = |id: String, from, to| {
            PkiRecord::from(&certificate_for(
                &key,
                &id,
                rpps,
                "IGC-SANTE-TEST",
                from,
                to,
            ))
        };
        pki.apply(cert(
            format!("own/{rpps}"),
            date(2020, 1, 1),
            date(2030, 12, 31),
        ))
        .unwrap();
        pki.apply(cert(
            format!("revoked/{rpps}"),
            date(2020, 1, 1),
            date(2030, 12, 31),
        ))
        .unwrap();
        pki.apply(PkiRecord::Revocation {
            cert: format!("revoked/{rpps}"),
            revoked_on: date(2020, 6, 1),
        })
        .unwrap();
        pki.apply(cert(
            format!("expired/{rpps}"),
            date(2015, 1, 1),
            date(2016, 12, 31),
        ))
        .unwrap();
    }
    let mut institutions = InstitutionDirectory::default();
    for input in &institution_inputs {
        institutions.upsert(input.clone()).unwrap();
    }
    let rights_store = MemStore::default();
    {
        let mut txn = StateTxn::new(&rights_store);
        for input in &rights_inputs {
            entitlement::apply_rights(input.clone(), &mut txn, &pseudonyms).unwrap();
        }
        rights_store.apply(&txn.into_writes()).unwrap();
    }

    let mut personal: Vec<String> = rights_inputs.iter().map(|r| r.nir.clone()).collect();
    for c in &claims {
        if let Some(b) = &c.beneficiary {
            personal.push(b.nir.clone());
        }
        if let Some(e) = &c.ehic {
            personal.extend([
                e.card_id.clone(),
                e.personal_id.clone(),
                e.surname.clone(),
                e.given_names.clone(),
            ]);
        }
    }
    personal.retain(|p| p.len() >= 4);
    personal.sort();
    personal.dedup();

    let mut w = World {
        registry,
        rules,
        pseudonyms,
        pki,
        institutions,
        rights: rights_inputs.iter().map(convert::rights_record).collect(),
        pki_events: pki_records
            .iter()
            .map(|r| convert::pki_event(r).unwrap())
            .collect(),
        institution_records: institution_inputs
            .iter()
            .map(|i| EuInstitutionRecord {
                country: i.country.clone(),
                institution_id: i.institution_id.clone(),
                name: i.name.clone(),
                acronym: i.acronym.clone(),
                from: i.from,
                to: i.to,
            })
            .collect(),
        streams: BTreeMap::new(),
        domestic: claims[0].clone(),
        visitor: claims[0].clone(),
        other_rpps: String::new(),
        key,
        personal,
        _dir: dir,
    };

    // The claim path, stage by stage, in process: each stage's outputs are
    // the next topics' records, in order, on partition 0.
    let mut topics_records: BTreeMap<&'static str, Vec<Record>> = BTreeMap::new();
    topics_records.insert(
        topics::FSE_SUBMITTED,
        claims
            .iter()
            .enumerate()
            .map(|(i, c)| {
                record(
                    topics::FSE_SUBMITTED,
                    i as u64,
                    &fse_key(c, &w.pseudonyms),
                    w.registry.encode_single(c),
                )
            })
            .collect(),
    );
    for kind in StageKind::ALL {
        if kind == StageKind::Ledger {
            let on = date(CLOSE_ON.0, CLOSE_ON.1, CLOSE_ON.2);
            let close = LedgerEntry {
                header: EventHeader {
                    event_id: format!("close-{on}-p0"),
                    causation_id: None,
                    correlation_id: format!("close-{on}"),
                    event_time_millis: 0,
                    source: None,
                    ref_watermark: Vec::new(),
                    rules_version: w.rules.version.clone(),
                },
                close_on: Some(on),
                outcome: None,
            };
            let ledger = topics_records.entry(topics::OUTBOUND_LEDGER).or_default();
            let offset = ledger.len() as u64;
            ledger.push(record(
                topics::OUTBOUND_LEDGER,
                offset,
                format!("close-{on}").as_bytes(),
                w.registry.encode_single(&close),
            ));
        }
        let input = topics_records[kind.input_topic()].clone();
        assert!(input.len() >= 3, "{}: {} records", kind.name(), input.len());
        let initial = match kind {
            StageKind::Entitlement => rights_store.clone(),
            _ => MemStore::default(),
        };
        let (outputs, _, _) = batch(&w, kind, &initial, &input);
        if kind == StageKind::Validation {
            let passed: Vec<u64> = outputs
                .iter()
                .filter(|(_, o)| o.topic == topics::FSE_VALIDATED)
                .map(|(s, _)| match s {
                    Source::Input(offset, _) => *offset,
                    Source::Ref(_) => unreachable!(),
                })
                .collect();
            let passing = |ehic: bool| {
                passed
                    .iter()
                    .map(|&o| &claims[o as usize])
                    .find(|c| c.ehic.is_some() == ehic)
                    .unwrap()
                    .clone()
            };
            w.domestic = passing(false);
            w.visitor = passing(true);
            assert!(
                (passed[0] as usize) < claims.len() - 2,
                "the domestic claim is in the base state"
            );
            w.other_rpps = rpps_all
                .iter()
                .find(|r| **r != w.domestic.professional.rpps)
                .unwrap()
                .clone();
        }
        for (_, output) in outputs {
            if output.topic.starts_with("dlq.") {
                continue;
            }
            let list = topics_records.entry(output.topic).or_default();
            let offset = list.len() as u64;
            list.push(record(output.topic, offset, &output.key, output.value));
        }
        let mut base = initial.clone();
        let n = input.len();
        let (_, _, writes) = batch(&w, kind, &base, &input[..n - 2]);
        base.apply(&writes).unwrap();
        w.streams.insert(
            kind.input_topic(),
            Stream {
                records: input,
                base: std::mem::take(&mut base),
            },
        );
    }
    w
}

fn stage_of(topic: &str) -> StageKind {
    StageKind::ALL
        .into_iter()
        .find(|k| k.input_topic() == topic)
        .unwrap_or_else(|| panic!("no stage reads {topic}"))
}

// ---------------------------------------------------------------------------
// Cases and their checks

/// What a bad record must give.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
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

struct Case {
    bad: Vec<Vec<u8>>,
    /// The record key of the bad records (default: the follower's).
    key: Option<Vec<u8>>,
    expect: Expect,
}

fn case(bad: Vec<u8>, expect: Expect) -> Case {
    Case {
        bad: vec![bad],
        key: None,
        expect,
    }
}

fn refused(bad: Vec<u8>) -> Case {
    case(bad, Expect::Refused)
}

fn run(topic: &'static str, case: Case) {
    match topic {
        topics::REF_RIGHTS => run_rights(case),
        topics::REF_PKI | topics::REF_EU_INSTITUTIONS => run_global(topic, case),
        _ => run_stage(topic, case),
    }
}

fn assert_no_personal_data(error: &str) {
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

fn assert_dead_letter(kind: StageKind, topic: &str, offset: u64, raw: &[u8], output: &Output) {
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
fn own_writes(writes: &WriteBatch) -> WriteBatch {
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

fn run_stage_one(topic: &'static str, case: &Case, i: usize, bytes: &[u8]) {
    let w = world();
    let kind = stage_of(topic);
    let stream = &w.streams[topic];
    let offset = stream.start();
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
    match &case.expect {
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
            for o in &got {
                assert!(
                    kind.output_topics().contains(&o.topic) && !o.topic.starts_with("dlq."),
                    "bad record {i}: accepted, got {what:?}"
                );
            }
        }
        Expect::AnyOne => {
            assert!(got.len() <= 4, "a bounded number of outputs");
            for o in &got {
                if o.topic == kind.dlq_topic() {
                    assert_dead_letter(kind, topic, offset, bytes, o);
                }
            }
        }
    }
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
    // The good record after them is applied as it is alone.
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
    assert_eq!(
        own_writes(&txn.into_writes()),
        own_writes(&alone_txn.into_writes())
    );
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

// ---------------------------------------------------------------------------
// Crafting bytes

fn long(value: i64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.long(value);
    e.into_bytes()
}

fn enc(fields: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new();
    fields(&mut e);
    e.into_bytes()
}

/// A valid record of `topic` that is none of the stage's own (for headerless
/// topics: the template; else the template).
fn template(topic: &str) -> Vec<u8> {
    let w = world();
    match topic {
        topics::REF_RIGHTS => w.registry.encode_single(&w.rights[0]),
        topics::REF_PKI => w.registry.encode_single(&w.pki_events[0]),
        topics::REF_EU_INSTITUTIONS => w.registry.encode_single(&w.institution_records[0]),
        _ => w.streams[topic].template().value.clone(),
    }
}

/// Re-encodes `topic`'s template with the fingerprint of `T` (its type).
fn decoded<T: AvroRecord>(topic: &str) -> T {
    world().registry.decode_single(&template(topic)).unwrap()
}

/// Where a crafted field goes.
#[derive(Clone, Copy)]
enum At {
    /// The first string of the record.
    FirstString,
    /// A `["null", …]` union.
    Union,
    /// An array.
    Array,
    /// An enum.
    Enum,
    /// A `date`.
    Date,
    /// A boolean.
    Bool,
}

/// The header fields before `at` (a header opens every stage output).
fn header_prefix(e: &mut Encoder, h: &EventHeader, at: At) {
    h.event_id.encode_field(e);
    if let At::Union = at {
        return;
    }
    h.causation_id.encode_field(e);
    h.correlation_id.encode_field(e);
    h.event_time_millis.encode_field(e);
    h.source.encode_field(e);
}

fn fse_prefix(e: &mut Encoder, f: &FseSubmitted, at: At) {
    f.fse_id.encode_field(e);
    f.received_at_millis.encode_field(e);
    f.received_offset_minutes.encode_field(e);
    if let At::Date = at {
        return;
    }
    f.care_date.encode_field(e);
    if let At::Union = at {
        f.professional.encode_field(e);
        return;
    }
    f.professional.rpps.encode_field(e);
    if let At::Enum = at {
        return;
    }
    f.professional.category.encode_field(e);
    f.professional.sector.encode_field(e);
    if let At::Bool = at {
        return;
    }
    f.professional.optam.encode_field(e);
    f.beneficiary.encode_field(e);
    f.ehic.encode_field(e);
    f.pathway.encode_field(e);
    f.tiers_payant.encode_field(e);
}

/// The template's body up to the field `at` (excluded), or `None` when the
/// topic's schema has no such field.
fn prefix(topic: &str, at: At) -> Option<Vec<u8>> {
    if let At::FirstString = at {
        return Some(match topic {
            topics::REF_PKI => long(0),
            _ => Vec::new(),
        });
    }
    Some(match topic {
        topics::FSE_SUBMITTED => {
            let f: FseSubmitted = decoded(topic);
            enc(|e| fse_prefix(e, &f, at))
        }
        topics::FSE_VALIDATED | topics::FSE_ENTITLED | topics::FSE_ROUTED => {
            let (h, f) = match topic {
                topics::FSE_VALIDATED => {
                    let v: FseValidated = decoded(topic);
                    (v.header, v.fse)
                }
                topics::FSE_ENTITLED => {
                    let v: FseEntitled = decoded(topic);
                    (v.header, v.fse)
                }
                _ => {
                    let v: FseRouted = decoded(topic);
                    (v.header, v.fse)
                }
            };
            enc(|e| {
                header_prefix(e, &h, at);
                if matches!(at, At::Enum | At::Date | At::Bool) {
                    h.ref_watermark.encode_field(e);
                    h.rules_version.encode_field(e);
                    fse_prefix(e, &f, at);
                }
            })
        }
        topics::FSE_DECIDED | topics::FSE_REJECTED => {
            let (h, d, c) = if topic == topics::FSE_DECIDED {
                let v: FseDecided = decoded(topic);
                (v.header, v.decision, v.claim)
            } else {
                let v: FseRejected = decoded(topic);
                (v.header, v.decision, v.claim)
            };
            let c = c.unwrap();
            enc(|e| {
                header_prefix(e, &h, at);
                if let At::Union | At::Array = at {
                    return;
                }
                h.ref_watermark.encode_field(e);
                h.rules_version.encode_field(e);
                d.fse_id.encode_field(e);
                if let At::Enum = at {
                    return;
                }
                d.encode_field(e);
                e.union_branch(1);
                c.rpps.encode_field(e);
                if let At::Date = at {
                    return;
                }
                c.received_on.encode_field(e);
            })
        }
        topics::OUTBOUND_LEDGER => {
            let l: LedgerEntry = decoded(topic);
            enc(|e| {
                header_prefix(e, &l.header, at);
                if let At::Union | At::Array = at {
                    return;
                }
                l.header.ref_watermark.encode_field(e);
                l.header.rules_version.encode_field(e);
                if let At::Date = at {
                    e.union_branch(1);
                    return;
                }
                let o = l.outcome.clone().unwrap();
                e.union_branch(0);
                e.union_branch(1);
                o.fse_id.encode_field(e);
                o.beneficiary_key.encode_field(e);
                o.rpps.encode_field(e);
                o.received_on.encode_field(e);
                if let At::Enum = at {
                    return;
                }
                o.status.encode_field(e);
            })
        }
        topics::REF_RIGHTS => {
            let r = &world().rights[0];
            enc(|e| {
                r.nir.encode_field(e);
                if let At::Date = at {
                    return;
                }
                r.birth_date.encode_field(e);
                r.rank.encode_field(e);
                if let At::Array = at {
                    return;
                }
                for _ in 0..5 {
                    e.long(0); // coverage, ald, css, ame, maternity: empty
                }
                if let At::Enum = at {
                    e.union_branch(1);
                }
            })
        }
        topics::REF_PKI => match at {
            At::Union => Vec::new(),
            At::Date => enc(|e| {
                e.union_branch(1);
                "cert-1".to_string().encode_field(e);
            }),
            _ => return None,
        },
        topics::REF_EU_INSTITUTIONS => {
            let r = &world().institution_records[0];
            enc(|e| {
                r.country.encode_field(e);
                r.institution_id.encode_field(e);
                r.name.encode_field(e);
                if let At::Date = at {
                    r.acronym.encode_field(e);
                }
            })
        }
        _ => unreachable!("{topic}"),
    })
    .filter(|_| {
        // Fields a topic's schema lacks.
        !matches!(
            (topic, at),
            (
                topics::REF_PKI | topics::REF_EU_INSTITUTIONS,
                At::Array | At::Enum | At::Bool
            ) | (topics::REF_RIGHTS, At::Bool)
        )
    })
}

/// `topic`'s single-object header with the body `prefix(at) + rest`.
fn crafted(topic: &str, at: At, rest: &[u8]) -> Vec<u8> {
    let mut body = prefix(topic, at).expect("the topic has the field");
    body.extend_from_slice(rest);
    with_fingerprint(topic, &body)
}

fn with_fingerprint(topic: &str, body: &[u8]) -> Vec<u8> {
    let mut out = template(topic)[..10].to_vec();
    out.extend_from_slice(body);
    out
}

/// The length of the template's header fields (stage outputs), or 0.
fn header_len(topic: &str) -> usize {
    let bytes = template(topic);
    let body = &bytes[10..];
    if matches!(
        topic,
        topics::FSE_SUBMITTED | topics::REF_RIGHTS | topics::REF_PKI | topics::REF_EU_INSTITUTIONS
    ) {
        return 0;
    }
    let mut d = clearing_pipeline::events::codec::Decoder::new(body);
    EventHeader::decode_field(&mut d).unwrap();
    d.position()
}

// ---------------------------------------------------------------------------
// The generic classes: every topic

mod class {
    use super::*;

    pub fn empty_value(_: &str) -> Case {
        refused(Vec::new())
    }

    pub fn random_bytes(_: &str) -> Case {
        // A fixed xorshift: the same bytes every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let bytes = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        refused(bytes)
    }

    pub fn single_c3_byte(_: &str) -> Case {
        refused(vec![0xC3])
    }

    pub fn truncated_single_object_header(topic: &str) -> Case {
        let t = template(topic);
        Case {
            bad: (1..10).map(|n| t[..n].to_vec()).collect(),
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn bad_magic(topic: &str) -> Case {
        let mut t = template(topic);
        t[1] = 0x02;
        refused(t)
    }

    pub fn plain_json(topic: &str) -> Case {
        let _ = topic;
        refused(br#"{"fse_id":"12345678-000000001","acts":[]}"#.to_vec())
    }

    pub fn unknown_fingerprint(topic: &str) -> Case {
        let mut t = template(topic);
        t[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        refused(t)
    }

    pub fn another_topics_event(topic: &str) -> Case {
        // A valid record of the topic before it in the list (wrong fingerprint).
        let all = [
            topics::FSE_SUBMITTED,
            topics::FSE_VALIDATED,
            topics::FSE_ENTITLED,
            topics::FSE_ROUTED,
            topics::FSE_DECIDED,
            topics::FSE_REJECTED,
            topics::OUTBOUND_LEDGER,
            topics::REF_RIGHTS,
            topics::REF_PKI,
            topics::REF_EU_INSTITUTIONS,
        ];
        let i = all.iter().position(|t| *t == topic).unwrap();
        let other = all[(i + all.len() - 1) % all.len()];
        Case {
            bad: vec![
                template(other),
                world().registry.encode_single(&dead_letter()),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    fn dead_letter() -> DeadLetter {
        DeadLetter {
            stage: "validation".into(),
            topic: "fse.submitted".into(),
            partition: 0,
            offset: 0,
            error: "x".into(),
            raw: Vec::new(),
            cut: None,
        }
    }

    pub fn truncated_body_at_several_points(topic: &str) -> Case {
        let t = template(topic);
        let len = t.len();
        let mut cuts = vec![
            10,
            11,
            12,
            10 + (len - 10) / 3,
            10 + (len - 10) / 2,
            len - 2,
            len - 1,
        ];
        cuts.sort_unstable();
        cuts.dedup();
        Case {
            bad: cuts.into_iter().map(|n| t[..n].to_vec()).collect(),
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn trailing_garbage(topic: &str) -> Case {
        let mut t = template(topic);
        t.extend_from_slice(b"\0garbage");
        let mut one = template(topic);
        one.push(0);
        Case {
            bad: vec![t, one],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn two_events_concatenated(topic: &str) -> Case {
        let t = template(topic);
        refused([t.clone(), t].concat())
    }

    pub fn string_length_claims_gigabytes(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::FirstString, &long(1 << 40)),
                crafted(topic, At::FirstString, &long(i64::MAX)),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn oversized_string_of_two_mebibytes(topic: &str) -> Case {
        let mut rest = long(2 << 20);
        rest.extend(std::iter::repeat_n(b'a', 2 << 20));
        refused(crafted(topic, At::FirstString, &rest))
    }

    pub fn oversized_message_of_four_mebibytes(topic: &str) -> Case {
        let mut t = template(topic);
        t.resize(4 << 20, 0xAA);
        refused(t)
    }

    pub fn array_claims_billions_of_items(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::Array, &long(3_000_000_000)),
                crafted(topic, At::Array, &[long(-3_000_000_000), long(8)].concat()),
                crafted(topic, At::Array, &long(i64::MIN)),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn negative_length(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::FirstString, &long(-1)),
                crafted(topic, At::FirstString, &long(i64::MIN)),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn overflowing_varint(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::FirstString, &[0xFF; 11]),
                crafted(
                    topic,
                    At::FirstString,
                    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
                ),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn union_branch_out_of_range(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::Union, &long(2)),
                crafted(topic, At::Union, &long(-1)),
                crafted(topic, At::Union, &long(1 << 40)),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn enum_index_out_of_range(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::Enum, &long(99)),
                crafted(topic, At::Enum, &long(-1)),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn invalid_utf8_in_a_string(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(
                    topic,
                    At::FirstString,
                    &[long(2), vec![0xFF, 0xFE]].concat(),
                ),
                // A lone surrogate in CESU/WTF-8 form.
                crafted(
                    topic,
                    At::FirstString,
                    &[long(3), vec![0xED, 0xA0, 0x80]].concat(),
                ),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn date_out_of_range(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::Date, &long(i64::from(i32::MAX))),
                crafted(topic, At::Date, &long(i64::from(i32::MIN))),
                crafted(topic, At::Date, &long(1 << 40)),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn invalid_boolean_byte(topic: &str) -> Case {
        Case {
            bad: vec![
                crafted(topic, At::Bool, &[2]),
                crafted(topic, At::Bool, &[0xFF]),
            ],
            key: None,
            expect: Expect::Refused,
        }
    }

    pub fn bit_flip_in_a_length_prefix(topic: &str) -> Case {
        // The first field after the header is a string (or, for ref.pki, the
        // union branch): flipping the low bit of its even zig-zag length
        // makes it negative.
        let mut t = template(topic);
        let at = 10 + header_len(topic) + usize::from(topic == topics::REF_PKI);
        t[at] ^= 1;
        refused(t)
    }

    pub fn bit_flip_at_every_body_position(topic: &str) -> Case {
        let t = template(topic);
        let from = 10 + header_len(topic);
        let step = ((t.len() - from) / 40).max(1);
        Case {
            bad: (from..t.len())
                .step_by(step)
                .flat_map(|i| {
                    [0x01u8, 0x80].map(|bit| {
                        let mut v = t.clone();
                        v[i] ^= bit;
                        v
                    })
                })
                .collect(),
            key: None,
            expect: Expect::AnyOne,
        }
    }
}

/// The generic classes of `topic`, one test each.
macro_rules! catalogue {
    ($topic:expr => $($class:ident),+ $(,)?) => {
        $(
            #[test]
            fn $class() {
                crate::run($topic, crate::class::$class($topic));
            }
        )+
    };
}

/// Every generic class that applies to all ten topics.
macro_rules! generic {
    ($topic:expr) => {
        catalogue!($topic =>
            empty_value,
            random_bytes,
            single_c3_byte,
            truncated_single_object_header,
            bad_magic,
            plain_json,
            unknown_fingerprint,
            truncated_body_at_several_points,
            trailing_garbage,
            two_events_concatenated,
            string_length_claims_gigabytes,
            oversized_string_of_two_mebibytes,
            oversized_message_of_four_mebibytes,
            negative_length,
            overflowing_varint,
            union_branch_out_of_range,
            invalid_utf8_in_a_string,
            date_out_of_range,
            bit_flip_in_a_length_prefix,
            bit_flip_at_every_body_position,
        );
    };
}

// ---------------------------------------------------------------------------
// Helpers for the topic-specific classes

/// `template` of a stage topic decoded, changed, re-encoded.
fn changed<T: AvroRecord>(topic: &str, change: impl FnOnce(&mut T)) -> Vec<u8> {
    let mut v: T = decoded(topic);
    change(&mut v);
    world().registry.encode_single(&v)
}

/// The header's source of a stage topic's template, changed.
fn with_source<T: AvroRecord>(
    topic: &str,
    header: fn(&mut T) -> &mut EventHeader,
    change: impl FnOnce(&mut SourceRef),
) -> Vec<u8> {
    changed(topic, |v: &mut T| {
        let h = header(v);
        let mut s = h.source.clone().unwrap();
        change(&mut s);
        h.source = Some(s);
    })
}

/// The first record of a stage topic: processed by the base state.
fn replayed(topic: &str) -> Case {
    case(
        world().streams[topic].records[0].value.clone(),
        Expect::Duplicate,
    )
}

// ---------------------------------------------------------------------------
// fse.submitted (validation)

mod fse_submitted {
    use super::*;
    const TOPIC: &str = topics::FSE_SUBMITTED;
    generic!(TOPIC);
    catalogue!(TOPIC => another_topics_event);
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);

    /// The domestic claim with a new id, re-signed with this test's card.
    fn fresh(change: impl FnOnce(&mut FseSubmitted)) -> FseSubmitted {
        let w = world();
        let mut f = w.domestic.clone();
        let ps = f.fse_id.split('-').next().unwrap().to_string();
        f.fse_id = format!("{ps}-987654321");
        change(&mut f);
        let cert = format!("own/{}", f.professional.rpps);
        sign_with(&w.registry, &mut f, &w.key, &cert);
        f
    }

    fn submission(f: &FseSubmitted) -> Case {
        let w = world();
        Case {
            bad: vec![w.registry.encode_single(f)],
            key: Some(fse_key(f, &w.pseudonyms)),
            expect: Expect::Accepted,
        }
    }

    fn rejected(f: &FseSubmitted, codes: &[&'static str]) -> Case {
        Case {
            expect: Expect::Rejected(codes.to_vec()),
            ..submission(f)
        }
    }

    fn resigned(f: &mut FseSubmitted, cert: &str) {
        let w = world();
        sign_with(&w.registry, f, &w.key, cert);
    }

    #[test]
    fn control_a_fresh_claim_signed_with_a_known_card_passes() {
        run(TOPIC, submission(&fresh(|_| {})));
    }

    #[test]
    fn duplicate_fse_received_again_later() {
        let w = world();
        let mut f = w.domestic.clone();
        f.received_at_millis += 86_400_000;
        let cert = format!("own/{}", f.professional.rpps);
        resigned(&mut f, &cert);
        run(TOPIC, rejected(&f, &["duplicate"]));
    }

    #[test]
    fn replayed_old_fse_bytes() {
        let w = world();
        let f = &w.domestic;
        let original = w.streams[TOPIC]
            .records
            .iter()
            .find(|r| r.value == w.registry.encode_single(f))
            .unwrap();
        run(
            TOPIC,
            Case {
                bad: vec![original.value.clone()],
                key: Some(original.key.clone()),
                expect: Expect::Rejected(vec!["duplicate"]),
            },
        );
    }

    #[test]
    fn future_care_date() {
        let f = fresh(|f| f.care_date = f.care_date + chrono::Days::new(40));
        run(TOPIC, rejected(&f, &["care_date_after_receipt"]));
    }

    #[test]
    fn care_date_in_year_9999() {
        let f = fresh(|f| f.care_date = date(9999, 12, 31));
        run(TOPIC, rejected(&f, &["care_date_after_receipt"]));
    }

    #[test]
    fn care_date_before_1900() {
        let f = fresh(|f| f.care_date = date(1899, 12, 31));
        run(
            TOPIC,
            rejected(&f, &["care_date_before_birth", "no_rules_for_date"]),
        );
    }

    #[test]
    fn signature_of_another_professional() {
        let w = world();
        let mut f = fresh(|_| {});
        resigned(&mut f, &format!("own/{}", w.other_rpps));
        run(TOPIC, rejected(&f, &["certificate_other_professional"]));
    }

    #[test]
    fn forged_signature_value() {
        let mut f = fresh(|_| {});
        if let Some(s) = &mut f.signature {
            let last = s.value.len() - 1;
            s.value[last] ^= 0x55;
        }
        run(TOPIC, rejected(&f, &["bad_signature"]));
    }

    #[test]
    fn claim_altered_after_signing() {
        let mut f = fresh(|_| {});
        f.acts[0].charged_cents += 100;
        run(TOPIC, rejected(&f, &["bad_signature"]));
    }

    #[test]
    fn revoked_certificate() {
        let mut f = fresh(|_| {});
        let cert = format!("revoked/{}", f.professional.rpps);
        resigned(&mut f, &cert);
        run(TOPIC, rejected(&f, &["certificate_revoked"]));
    }

    #[test]
    fn expired_certificate() {
        let mut f = fresh(|_| {});
        let cert = format!("expired/{}", f.professional.rpps);
        resigned(&mut f, &cert);
        run(TOPIC, rejected(&f, &["certificate_not_valid"]));
    }

    #[test]
    fn unknown_certificate() {
        let mut f = fresh(|_| {});
        resigned(&mut f, "no-such-card");
        run(TOPIC, rejected(&f, &["unknown_certificate"]));
    }

    #[test]
    fn unsupported_algorithm() {
        let mut f = fresh(|_| {});
        if let Some(s) = &mut f.signature {
            s.alg = "md5WithRSAEncryption".into();
        }
        run(TOPIC, rejected(&f, &["unsupported_algorithm"]));
    }

    #[test]
    fn missing_signature() {
        let mut f = fresh(|_| {});
        f.signature = None;
        run(TOPIC, rejected(&f, &["missing_signature"]));
    }

    #[test]
    fn ehic_of_a_non_member_state() {
        let w = world();
        let mut f = w.visitor.clone();
        let ps = f.fse_id.split('-').next().unwrap().to_string();
        f.fse_id = format!("{ps}-987654322");
        if let Some(e) = &mut f.ehic {
            e.country = "US".into();
        }
        let cert = format!("own/{}", f.professional.rpps);
        resigned(&mut f, &cert);
        run(TOPIC, rejected(&f, &["invalid_ehic"]));
    }

    #[test]
    fn nir_with_a_bad_key() {
        let f = fresh(|f| {
            if let Some(b) = &mut f.beneficiary {
                let key: u32 = b.nir[13..].parse().unwrap();
                b.nir = format!("{}{:02}", &b.nir[..13], (key % 97) + 1);
            }
        });
        run(TOPIC, rejected(&f, &["invalid_nir"]));
    }

    #[test]
    fn negative_amount() {
        let f = fresh(|f| f.acts[0].charged_cents = -100);
        run(TOPIC, rejected(&f, &["invalid_amount"]));
    }

    #[test]
    fn amount_of_i64_max_cents() {
        let f = fresh(|f| f.acts[0].charged_cents = i64::MAX);
        run(TOPIC, rejected(&f, &["invalid_amount"]));
    }

    #[test]
    fn empty_fse_id() {
        let f = fresh(|f| f.fse_id = String::new());
        run(TOPIC, rejected(&f, &["invalid_fse_id"]));
    }

    #[test]
    fn ten_thousand_act_lines() {
        let f = fresh(|f| f.acts = vec![f.acts[0].clone(); 10_000]);
        run(TOPIC, rejected(&f, &["too_many_lines"]));
    }

    /// Dead-lettered, but validation has already taken the FSE id into the
    /// beneficiary's seen set by then: the same claim correctly keyed later
    /// would be rejected as a duplicate.
    #[test]
    fn record_key_of_another_beneficiary_changes_no_state() {
        let f = fresh(|_| {});
        run(
            TOPIC,
            Case {
                key: Some(b"someone-else".to_vec()),
                expect: Expect::Refused,
                ..submission(&f)
            },
        );
    }

    #[test]
    fn record_key_of_another_beneficiary() {
        let w = world();
        let f = fresh(|_| {});
        let stream = &w.streams[TOPIC];
        let bad = record(
            TOPIC,
            stream.start(),
            b"someone-else",
            w.registry.encode_single(&f),
        );
        let mut follower = stream.follower().clone();
        follower.offset = stream.start() + 1;
        let (outputs, _, _) = batch(
            w,
            StageKind::Validation,
            &stream.base,
            &[bad.clone(), follower.clone()],
        );
        let (alone, _, _) = batch_alone(w, StageKind::Validation, &stream.base, &follower);
        assert_eq!(outputs.len(), 2);
        assert_dead_letter(
            StageKind::Validation,
            TOPIC,
            bad.offset,
            &bad.value,
            &outputs[0].1,
        );
        assert_eq!(outputs[1], alone[0]);
    }
}

// ---------------------------------------------------------------------------
// The header topics: a replayed upstream event and a header pointing elsewhere

/// A header topic's classes about the header (the type and its header).
macro_rules! header_classes {
    ($topic:expr, $ty:ty) => {
        fn header_of(v: &mut $ty) -> &mut EventHeader {
            &mut v.header
        }

        #[test]
        fn replayed_upstream_event() {
            run($topic, replayed($topic));
        }

        /// The source names another topic and partition, far ahead: it must
        /// be refused, and not move the filter's mark (which keys by offset
        /// alone, and would then drop every later record of the partition).
        #[test]
        fn header_source_on_another_topic_and_partition() {
            let bad = with_source($topic, header_of, |s| {
                s.topic = "fse.decided".into();
                s.partition = 9;
                s.offset = i64::MAX;
            });
            run($topic, refused(bad));
        }

        #[test]
        fn event_ids_empty() {
            let bad = changed($topic, |v: &mut $ty| {
                v.header.event_id = String::new();
                v.header.correlation_id = String::new();
            });
            run($topic, case(bad, Expect::Accepted));
        }
    };
}

/// A record that does not decode, its header's source far ahead.
macro_rules! header_far_ahead {
    ($topic:expr, $ty:ty $(, #[$attr:meta])*) => {
        /// A record whose body does not decode, with a header whose source
        /// offset is far ahead (a flipped high bit): it must not move the
        /// downstream filter's mark, which would drop every later record.
        #[test]
        $(#[$attr])*
        fn undecodable_record_with_a_header_far_ahead() {
            let mut bad = with_source($topic, header_of_far, |s| {
                s.offset += 1 << 40;
            });
            bad.truncate(bad.len() - 1);
            run($topic, refused(bad));
        }

        fn header_of_far(v: &mut $ty) -> &mut EventHeader {
            &mut v.header
        }
    };
}

// ---------------------------------------------------------------------------
// fse.validated (entitlement)

mod fse_validated {
    use super::*;
    const TOPIC: &str = topics::FSE_VALIDATED;
    generic!(TOPIC);

    catalogue!(TOPIC => another_topics_event);
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);
    header_classes!(TOPIC, FseValidated);
    header_far_ahead!(TOPIC, FseValidated);

    #[test]
    fn negative_amount() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseValidated| {
                v.fse.acts[0].charged_cents = -1
            })),
        );
    }

    #[test]
    fn amount_of_i64_max_cents() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseValidated| {
                v.fse.acts[0].charged_cents = i64::MAX
            })),
        );
    }

    #[test]
    fn care_date_in_year_9999() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseValidated| {
                v.fse.care_date = date(9999, 1, 1)
            })),
        );
    }

    #[test]
    fn care_date_before_1900() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseValidated| {
                v.fse.care_date = date(1899, 1, 1)
            })),
        );
    }

    #[test]
    fn empty_fse_id() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseValidated| {
                v.fse.fse_id = String::new()
            })),
        );
    }

    #[test]
    fn beneficiary_key_of_someone_else() {
        run(
            TOPIC,
            case(
                changed(TOPIC, |v: &mut FseValidated| {
                    v.beneficiary_key = "x-someone".into()
                }),
                Expect::Rejected(vec!["unknown_beneficiary"]),
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// fse.entitled (routing)

mod fse_entitled {
    use super::*;
    const TOPIC: &str = topics::FSE_ENTITLED;
    generic!(TOPIC);

    /// Another topic's event: its header is read by the filter before its
    /// fingerprint is checked, and its offset moves the mark.
    #[test]
    fn another_topics_event() {
        run(TOPIC, class::another_topics_event(TOPIC));
    }
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);
    header_classes!(TOPIC, FseEntitled);
    header_far_ahead!(TOPIC, FseEntitled);

    #[test]
    fn negative_amount() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseEntitled| {
                v.fse.acts[0].charged_cents = -1
            })),
        );
    }

    #[test]
    fn care_date_in_year_9999() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseEntitled| {
                v.fse.care_date = date(9999, 1, 1)
            })),
        );
    }

    #[test]
    fn empty_fse_id() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseEntitled| {
                v.fse.fse_id = String::new()
            })),
        );
    }

    /// The entitlement's regime and fund are carried, not re-checked: the
    /// rules read its flags (ALD, CSS, ...), which cannot be malformed.
    #[test]
    fn garbled_regime_is_carried() {
        run(
            TOPIC,
            case(
                changed(TOPIC, |v: &mut FseEntitled| {
                    v.entitlement.regime = Some("not a regime".into())
                }),
                Expect::Accepted,
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// fse.routed (reimbursement)

mod fse_routed {
    use super::*;
    const TOPIC: &str = topics::FSE_ROUTED;
    generic!(TOPIC);

    /// Another topic's event: its header is read by the filter before its
    /// fingerprint is checked, and its offset moves the mark.
    #[test]
    fn another_topics_event() {
        run(TOPIC, class::another_topics_event(TOPIC));
    }
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);
    header_classes!(TOPIC, FseRouted);
    header_far_ahead!(TOPIC, FseRouted);

    #[test]
    fn negative_amount() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseRouted| {
                v.fse.acts[0].charged_cents = -1
            })),
        );
    }

    #[test]
    fn care_date_in_year_9999() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseRouted| {
                v.fse.care_date = date(9999, 1, 1)
            })),
        );
    }

    #[test]
    fn eu_route_without_an_institution() {
        run(
            TOPIC,
            refused(changed(TOPIC, |v: &mut FseRouted| {
                v.routing.route = clearing_pipeline::events::model::Route::Eu;
                v.routing.country = None;
                v.routing.institution_id = None;
            })),
        );
    }
}

// ---------------------------------------------------------------------------
// fse.decided (settlement)

mod fse_decided {
    use super::*;
    const TOPIC: &str = topics::FSE_DECIDED;
    generic!(TOPIC);

    /// Another topic's event: its header is read by the filter before its
    /// fingerprint is checked, and its offset moves the mark.
    #[test]
    fn another_topics_event() {
        run(TOPIC, class::another_topics_event(TOPIC));
    }
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);
    header_classes!(TOPIC, FseDecided);
    header_far_ahead!(TOPIC, FseDecided);

    fn bad(change: impl FnOnce(&mut FseDecided)) -> Case {
        refused(changed(TOPIC, change))
    }

    #[test]
    fn amounts_that_do_not_add_up() {
        run(TOPIC, bad(|v| v.decision.paid_to_professional_cents += 1));
    }

    #[test]
    fn negative_amounts() {
        run(
            TOPIC,
            bad(|v| {
                v.decision.amo_cents = -100;
                v.decision.paid_to_professional_cents -= 100 + v.decision.amo_cents.max(0);
            }),
        );
    }

    #[test]
    fn amount_of_i64_max_cents() {
        run(TOPIC, bad(|v| v.decision.amo_cents = i64::MAX));
    }

    #[test]
    fn a_rejection_on_the_paid_topic() {
        run(TOPIC, bad(|v| v.decision.status = Status::Rejected));
    }

    #[test]
    fn no_claim_context() {
        run(TOPIC, bad(|v| v.claim = None));
    }

    #[test]
    fn received_in_year_9999() {
        run(
            TOPIC,
            bad(|v| v.claim.as_mut().unwrap().received_on = date(9999, 12, 31)),
        );
    }

    #[test]
    fn received_before_1900() {
        run(
            TOPIC,
            bad(|v| v.claim.as_mut().unwrap().received_on = date(1899, 12, 31)),
        );
    }

    #[test]
    fn empty_fse_id() {
        run(TOPIC, bad(|v| v.decision.fse_id = Some(String::new())));
    }
}

// ---------------------------------------------------------------------------
// fse.rejected (returns)

mod fse_rejected {
    use super::*;
    const TOPIC: &str = topics::FSE_REJECTED;
    generic!(TOPIC);
    catalogue!(TOPIC => another_topics_event);
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);
    header_classes!(TOPIC, FseRejected);
    header_far_ahead!(TOPIC, FseRejected);

    fn bad(change: impl FnOnce(&mut FseRejected)) -> Case {
        refused(changed(TOPIC, change))
    }

    #[test]
    fn a_payment_on_the_rejection_topic() {
        run(TOPIC, bad(|v| v.decision.status = Status::Paid));
    }

    #[test]
    fn no_claim_context() {
        run(TOPIC, bad(|v| v.claim = None));
    }

    #[test]
    fn amounts_on_a_rejection_are_not_used() {
        // A rejection's amounts are not used: neither its return nor its
        // ledger outcome pays anything.
        run(
            TOPIC,
            case(
                changed(TOPIC, |v: &mut FseRejected| v.decision.amo_cents = i64::MAX),
                Expect::Accepted,
            ),
        );
    }

    /// Returned to the professional; its ledger outcome is refused by the
    /// ledger (outbound_ledger::outcome_received_in_year_9999).
    #[test]
    fn received_in_year_9999_is_returned() {
        run(
            TOPIC,
            case(
                changed(TOPIC, |v: &mut FseRejected| {
                    v.claim.as_mut().unwrap().received_on = date(9999, 12, 31)
                }),
                Expect::Accepted,
            ),
        );
    }

    #[test]
    fn a_rejection_without_reasons() {
        run(TOPIC, bad(|v| v.decision.reasons.clear()));
    }

    #[test]
    fn empty_rpps_is_returned_as_sent() {
        // Validation may reject a claim for its RPPS: the return goes out
        // with the RPPS as sent, whatever it is.
        run(
            TOPIC,
            case(
                changed(TOPIC, |v: &mut FseRejected| {
                    v.claim.as_mut().unwrap().rpps = String::new()
                }),
                Expect::Accepted,
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// outbound.ledger (ledger)

mod outbound_ledger {
    use super::*;
    const TOPIC: &str = topics::OUTBOUND_LEDGER;
    generic!(TOPIC);
    catalogue!(TOPIC => another_topics_event);
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range, invalid_boolean_byte);
    header_classes!(TOPIC, LedgerEntry);
    header_far_ahead!(TOPIC, LedgerEntry);

    fn bad(change: impl FnOnce(&mut LedgerEntry)) -> Case {
        refused(changed(TOPIC, change))
    }

    fn close(on: NaiveDate) -> Vec<u8> {
        let w = world();
        let mut close: LedgerEntry = w
            .registry
            .decode_single(&w.streams[TOPIC].follower().value)
            .unwrap();
        close.close_on = Some(on);
        w.registry.encode_single(&close)
    }

    #[test]
    fn both_an_outcome_and_a_close() {
        run(TOPIC, bad(|v| v.close_on = Some(date(2025, 3, 3))));
    }

    #[test]
    fn neither_an_outcome_nor_a_close() {
        run(TOPIC, bad(|v| v.outcome = None));
    }

    #[test]
    fn paid_outcome_amounts_that_do_not_add_up() {
        run(
            TOPIC,
            bad(|v| {
                let o = v.outcome.as_mut().unwrap();
                o.status = Status::Paid;
                o.fse_id = Some("12345678-000000001".into());
                o.amo_cents = -5;
            }),
        );
    }

    #[test]
    fn paid_outcome_of_i64_max_cents() {
        run(
            TOPIC,
            bad(|v| {
                let o = v.outcome.as_mut().unwrap();
                o.status = Status::Paid;
                o.fse_id = Some("12345678-000000001".into());
                o.paid_to_professional_cents = i64::MAX;
            }),
        );
    }

    #[test]
    fn paid_outcome_without_an_fse_id() {
        run(
            TOPIC,
            bad(|v| {
                let o = v.outcome.as_mut().unwrap();
                o.status = Status::Paid;
                o.fse_id = None;
            }),
        );
    }

    /// Taken, it would make every later close walk past its bound and fail
    /// with a store error: the ledger stage would stop at each close.
    #[test]
    fn outcome_received_before_1900() {
        run(
            TOPIC,
            bad(|v| v.outcome.as_mut().unwrap().received_on = date(1899, 12, 31)),
        );
    }

    /// Taken, it would open an accumulation no close ever reaches.
    #[test]
    fn outcome_received_in_year_9999() {
        run(
            TOPIC,
            bad(|v| v.outcome.as_mut().unwrap().received_on = date(9999, 12, 31)),
        );
    }

    #[test]
    fn rpps_of_a_kilobyte() {
        run(
            TOPIC,
            bad(|v| v.outcome.as_mut().unwrap().rpps = "1".repeat(1024)),
        );
    }

    #[test]
    fn close_outside_the_holiday_table() {
        run(TOPIC, refused(close(date(9999, 12, 31))));
    }

    #[test]
    fn close_before_1900() {
        run(TOPIC, refused(close(date(1899, 12, 31))));
    }

    /// A close for a date at or before the last close is a repeat: no
    /// output, no state change; the stage goes on.
    #[test]
    fn close_for_a_date_before_the_last_close() {
        let w = world();
        let stream = &w.streams[TOPIC];
        let start = stream.start();
        let follower = stream.follower();
        let at = |i: u64, value: Vec<u8>| record(TOPIC, start + i, &follower.key, value);
        let mut records = vec![follower.clone()];
        records[0].offset = start;
        let (alone, _, alone_writes) = batch(w, StageKind::Ledger, &stream.base, &records);
        assert!(!alone.is_empty(), "the close emits");
        records.push(at(1, close(date(2025, 1, 6))));
        records.push(at(2, follower.value.clone()));
        let (outputs, stats, writes) = batch(w, StageKind::Ledger, &stream.base, &records);
        assert_eq!(outputs, alone, "the repeats give nothing");
        assert_eq!((stats.inputs, stats.dead_letters), (3, 0));
        assert_eq!(own_writes(&writes), own_writes(&alone_writes));
    }
}

// ---------------------------------------------------------------------------
// ref.rights (entitlement, dead letters)

mod ref_rights {
    use super::*;
    const TOPIC: &str = topics::REF_RIGHTS;
    generic!(TOPIC);
    catalogue!(TOPIC => another_topics_event);
    catalogue!(TOPIC => array_claims_billions_of_items, enum_index_out_of_range);

    fn rights(change: impl FnOnce(&mut RightsRecord)) -> Vec<u8> {
        let w = world();
        let mut r = w.rights[0].clone();
        change(&mut r);
        w.registry.encode_single(&r)
    }

    #[test]
    fn garbled_nir() {
        run(TOPIC, refused(rights(|r| r.nir = "1850799999999".into())));
    }

    #[test]
    fn nir_with_a_bad_key() {
        run(
            TOPIC,
            refused(rights(|r| {
                let key: u32 = r.nir[13..].parse().unwrap();
                r.nir = format!("{}{:02}", &r.nir[..13], (key % 97) + 1);
            })),
        );
    }

    #[test]
    fn empty_nir() {
        run(TOPIC, refused(rights(|r| r.nir = String::new())));
    }

    #[test]
    fn coverage_that_ends_before_it_starts() {
        run(
            TOPIC,
            refused(rights(|r| {
                r.coverage = vec![CoverageRec {
                    from: date(2025, 1, 1),
                    to: Some(date(2024, 1, 1)),
                    regime: "01".into(),
                    fund: "751".into(),
                }];
            })),
        );
    }

    #[test]
    fn coverage_regime_garbled() {
        run(
            TOPIC,
            refused(rights(|r| r.coverage[0].regime = "XYZ".into())),
        );
    }

    #[test]
    fn too_many_periods() {
        run(
            TOPIC,
            refused(rights(|r| r.coverage = vec![r.coverage[0].clone(); 5000])),
        );
    }

    #[test]
    fn declared_gp_garbled() {
        run(
            TOPIC,
            refused(rights(|r| r.declared_gp = Some("not-an-rpps".into()))),
        );
    }

    /// `ref.rights` is the source of truth: a beneficiary not seen before is
    /// a new one, taken.
    #[test]
    fn rights_of_a_beneficiary_not_known_before() {
        let w = world();
        let known: Vec<&str> = w.rights.iter().map(|r| r.nir.as_str()).collect();
        let nir = (0..1000u64)
            .map(|i| {
                let body = format!("1850775{:06}", 100_000 + i);
                let n: u64 = body.parse().unwrap();
                format!("{body}{:02}", 97 - n % 97)
            })
            .find(|n| !known.contains(&n.as_str()))
            .unwrap();
        run(TOPIC, case(rights(|r| r.nir = nir), Expect::Accepted));
    }
}

// ---------------------------------------------------------------------------
// ref.pki (validation, counted)

mod ref_pki {
    use super::*;
    const TOPIC: &str = topics::REF_PKI;
    generic!(TOPIC);
    catalogue!(TOPIC => another_topics_event);

    fn certificate(
        change: impl FnOnce(&mut clearing_pipeline::events::model::CertificateRec),
    ) -> Vec<u8> {
        let w = world();
        let PkiEvent::Certificate(mut c) = w.pki_events[0].clone() else {
            panic!("a certificate")
        };
        c.id = "another-card".into();
        change(&mut c);
        w.registry.encode_single(&PkiEvent::Certificate(c))
    }

    #[test]
    fn revocation_of_an_unknown_certificate() {
        let bad = world()
            .registry
            .encode_single(&PkiEvent::Revocation(RevocationRec {
                cert: "no-such-card".into(),
                revoked_on: date(2025, 1, 1),
            }));
        run(TOPIC, refused(bad));
    }

    #[test]
    fn certificate_with_garbage_key_bytes() {
        run(
            TOPIC,
            refused(certificate(|c| {
                c.public_key = b"garbage key bytes".to_vec()
            })),
        );
    }

    #[test]
    fn certificate_with_an_empty_key() {
        run(TOPIC, refused(certificate(|c| c.public_key = Vec::new())));
    }

    #[test]
    fn certificate_with_an_unknown_algorithm() {
        run(
            TOPIC,
            refused(certificate(|c| c.alg = "md5WithRSAEncryption".into())),
        );
    }

    #[test]
    fn certificate_of_a_garbled_rpps() {
        run(TOPIC, refused(certificate(|c| c.rpps = "12AB".into())));
    }

    #[test]
    fn certificate_valid_until_before_it_starts() {
        run(
            TOPIC,
            refused(certificate(|c| {
                c.not_before = date(2026, 1, 1);
                c.not_after = date(2025, 1, 1);
            })),
        );
    }

    #[test]
    fn certificate_with_an_empty_id() {
        run(TOPIC, refused(certificate(|c| c.id = String::new())));
    }

    #[test]
    fn certificate_with_a_control_character_in_its_issuer() {
        run(
            TOPIC,
            refused(certificate(|c| c.issuer = "IGC\u{7}".into())),
        );
    }
}

// ---------------------------------------------------------------------------
// ref.eu.institutions (routing, counted)

mod ref_eu_institutions {
    use super::*;
    const TOPIC: &str = topics::REF_EU_INSTITUTIONS;
    generic!(TOPIC);
    catalogue!(TOPIC => another_topics_event);

    fn institution(change: impl FnOnce(&mut EuInstitutionRecord)) -> Vec<u8> {
        let w = world();
        let mut r = w.institution_records[0].clone();
        r.institution_id = "NEW-1".into();
        change(&mut r);
        w.registry.encode_single(&r)
    }

    #[test]
    fn unknown_country() {
        run(TOPIC, refused(institution(|r| r.country = "US".into())));
    }

    #[test]
    fn france_is_not_a_visiting_state() {
        run(TOPIC, refused(institution(|r| r.country = "FR".into())));
    }

    #[test]
    fn empty_institution_id() {
        run(
            TOPIC,
            refused(institution(|r| r.institution_id = String::new())),
        );
    }

    #[test]
    fn validity_that_ends_before_it_starts() {
        run(
            TOPIC,
            refused(institution(|r| r.to = Some(date(2000, 1, 1)))),
        );
    }

    #[test]
    fn empty_name() {
        run(TOPIC, refused(institution(|r| r.name = String::new())));
    }
}
