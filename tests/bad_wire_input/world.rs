//! The world the cases run in: a small `synth::generate` data set run
//! through the seven stages in process, which gives real records for every
//! input topic, and the batches a case runs.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::NaiveDate;
use clearing_pipeline::bus::Record;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::{
    EuInstitutionRecord, EventHeader, FseSubmitted, LedgerEntry, PkiEvent, RightsRecord,
    SignatureRec,
};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pki::{Pki, PkiRecord, SignatureAlg, SigningKey, certificate_for};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{EuInstitutionInput, InstitutionDirectory, RefView};
use clearing_pipeline::rights::RightsInput;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::batch::{BatchInput, Cursor, Source, run_batch};
use clearing_pipeline::runtime::ingest::fse_key;
use clearing_pipeline::runtime::process::Output;
use clearing_pipeline::runtime::{StageKind, WorkerStats, topics};
use clearing_pipeline::signatures::{PkiVerifier, canonical_bytes};
use clearing_pipeline::stages::{Context, entitlement};
use clearing_pipeline::state::{MemStore, StateStore, StateTxn, WriteBatch};
use clearing_pipeline::synth::{self, GenConfig};

/// The day the ledger stream's close event closes.
const CLOSE_ON: (i32, u32, u32) = (2025, 6, 30);

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A stage topic's records and the stage's state before the last two.
pub struct Stream {
    pub records: Vec<Record>,
    /// The stage's state (cursor included) after `records[..n-2]`.
    pub base: MemStore,
}

impl Stream {
    pub fn template(&self) -> &Record {
        &self.records[self.records.len() - 2]
    }
    pub fn follower(&self) -> &Record {
        &self.records[self.records.len() - 1]
    }
    /// The offset of the template: where a test's bad records start.
    pub fn start(&self) -> u64 {
        (self.records.len() - 2) as u64
    }
}

pub struct World {
    pub registry: SchemaRegistry,
    pub rules: Rules,
    pub pseudonyms: PseudonymKey,
    /// The data set's PKI plus this test's own cards (below).
    pub pki: Pki,
    pub institutions: InstitutionDirectory,
    pub rights: Vec<RightsRecord>,
    pub pki_events: Vec<PkiEvent>,
    pub institution_records: Vec<EuInstitutionRecord>,
    pub streams: BTreeMap<&'static str, Stream>,
    /// A domestic claim validation passed, in the base state (its id is taken).
    pub domestic: FseSubmitted,
    /// A visitor's (EHIC) claim validation passed.
    pub visitor: FseSubmitted,
    /// A professional other than the domestic claim's.
    pub other_rpps: String,
    /// This test's signing key; certificates `own/<rpps>` (every RPPS of
    /// the data set), `revoked/<rpps>`, `expired/<rpps>` carry it.
    pub key: SigningKey,
    /// Every NIR, EHIC card and personal id, surname and given name of the data set.
    pub personal: Vec<String>,
    pub _dir: tempfile::TempDir,
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
pub fn batch(
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
pub fn batch_alone(
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

pub fn record(topic: &str, offset: u64, key: &[u8], value: Vec<u8>) -> Record {
    Record {
        topic: topic.to_string(),
        partition: 0,
        offset,
        timestamp_millis: 0,
        key: key.to_vec(),
        value,
        tombstone: false,
    }
}

pub fn sign_with(
    w_registry: &SchemaRegistry,
    fse: &mut FseSubmitted,
    key: &SigningKey,
    cert: &str,
) {
    fse.signature = None;
    let message = canonical_bytes(w_registry, fse);
    fse.signature = Some(SignatureRec {
        alg: key.alg().as_str().to_string(),
        cert: cert.to_string(),
        value: key.sign(&message),
    });
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build_world)
}

fn build_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let rules = Rules::embedded().unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let pseudonyms = PseudonymKey::development();
    let data = DataSet::generate(dir.path(), &rules, &registry);
    // This test's own card, certified for every professional of the data set.
    let key = SigningKey::generate(
        SignatureAlg::EcdsaP256Sha256,
        *b"bad-wire-input-test-signing-key!",
    );
    let mut rpps_all: Vec<String> = (data.claims.iter())
        .map(|c| c.professional.rpps.clone())
        .collect();
    rpps_all.sort();
    rpps_all.dedup();
    let mut institutions = InstitutionDirectory::default();
    for input in &data.institutions {
        institutions.upsert(input.clone()).unwrap();
    }
    let mut w = World {
        registry,
        rules,
        pki: own_pki(&data.pki, &rpps_all, &key),
        institutions,
        rights: data.rights.iter().map(convert::rights_record).collect(),
        pki_events: (data.pki.iter())
            .map(|r| convert::pki_event(r).unwrap())
            .collect(),
        institution_records: data.institutions.iter().map(institution_record).collect(),
        streams: BTreeMap::new(),
        domestic: data.claims[0].clone(),
        visitor: data.claims[0].clone(),
        other_rpps: String::new(),
        key,
        personal: data.personal(),
        pseudonyms,
        _dir: dir,
    };
    run_stages(&mut w, &data, &rpps_all);
    w
}

/// The generated data set's files, read back.
struct DataSet {
    rights: Vec<RightsInput>,
    pki: Vec<PkiRecord>,
    institutions: Vec<EuInstitutionInput>,
    claims: Vec<FseSubmitted>,
}

impl DataSet {
    fn generate(dir: &std::path::Path, rules: &Rules, registry: &SchemaRegistry) -> DataSet {
        let mut config = GenConfig::for_claims(23, 160);
        config.rsa_per_mille = 0;
        config.bad_per_mille = 100;
        config.visitors_per_mille = 150;
        config.beneficiaries = 60;
        config.first_care_date = date(2024, 11, 15);
        config.last_care_date = date(2025, 2, 15);
        synth::generate(&config, rules, registry, dir).unwrap();
        let json_lines = |name: &str| lines(&dir.join(name));
        DataSet {
            rights: (json_lines("rights.jsonl").iter())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            pki: (json_lines("pki.jsonl").iter())
                .map(|l| PkiRecord::from_json(l).unwrap())
                .collect(),
            institutions: (json_lines("eu_institutions.jsonl").iter())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            claims: json_lines("claims.jsonl")
                .iter()
                .map(|l| claim(l))
                .collect(),
        }
    }

    /// Every NIR, EHIC card and personal id, surname and given name.
    fn personal(&self) -> Vec<String> {
        let mut personal: Vec<String> = self.rights.iter().map(|r| r.nir.clone()).collect();
        for c in &self.claims {
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
        personal
    }
}

fn claim(line: &str) -> FseSubmitted {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    let input: FseInput = clearing_pipeline::domain::json::from_value(
        &value,
        clearing_pipeline::adjudicate::FSE_OBJECTS,
    )
    .unwrap();
    convert::submitted_from_input(&input).unwrap()
}

fn institution_record(i: &EuInstitutionInput) -> EuInstitutionRecord {
    EuInstitutionRecord {
        country: i.country.clone(),
        institution_id: i.institution_id.clone(),
        name: i.name.clone(),
        acronym: i.acronym.clone(),
        from: i.from,
        to: i.to,
    }
}

/// The data set's PKI plus this test's cards for each professional:
/// `own/<rpps>`, `revoked/<rpps>` and `expired/<rpps>`.
fn own_pki(records: &[PkiRecord], rpps_all: &[String], key: &SigningKey) -> Pki {
    let mut pki = Pki::default();
    for record in records {
        pki.apply(record.clone()).unwrap();
    }
    for rpps in rpps_all {
        let cert = |id: String, from, to| {
            PkiRecord::from(&certificate_for(key, &id, rpps, "IGC-SANTE-TEST", from, to))
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
    pki
}

/// The claim path, stage by stage, in process: each stage's outputs are
/// the next topics' records, in order, on partition 0. Keeps each input
/// topic's stream and picks the claims the cases start from.
fn run_stages(w: &mut World, data: &DataSet, rpps_all: &[String]) {
    let rights_store = MemStore::default();
    {
        let mut txn = StateTxn::new(&rights_store);
        for input in &data.rights {
            entitlement::apply_rights(input.clone(), &mut txn, &w.pseudonyms).unwrap();
        }
        rights_store.apply(&txn.into_writes()).unwrap();
    }
    let mut topics_records: BTreeMap<&'static str, Vec<Record>> = BTreeMap::new();
    topics_records.insert(
        topics::FSE_SUBMITTED,
        (data.claims.iter().enumerate())
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
            let ledger = topics_records.entry(topics::OUTBOUND_LEDGER).or_default();
            ledger.push(ledger_close(w, ledger.len() as u64));
        }
        let input = topics_records[kind.input_topic()].clone();
        assert!(input.len() >= 3, "{}: {} records", kind.name(), input.len());
        let initial = match kind {
            StageKind::Entitlement => rights_store.clone(),
            _ => MemStore::default(),
        };
        let (outputs, _, _) = batch(w, kind, &initial, &input);
        if kind == StageKind::Validation {
            pick_claims(w, &data.claims, &outputs, rpps_all);
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
        let (_, _, writes) = batch(w, kind, &base, &input[..n - 2]);
        base.apply(&writes).unwrap();
        w.streams.insert(
            kind.input_topic(),
            Stream {
                records: input,
                base: std::mem::take(&mut base),
            },
        );
    }
}

/// The close event that ends the ledger's stream, at `offset`.
fn ledger_close(w: &World, offset: u64) -> Record {
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
    record(
        topics::OUTBOUND_LEDGER,
        offset,
        format!("close-{on}").as_bytes(),
        w.registry.encode_single(&close),
    )
}

/// The domestic and the visitor's claim validation passed, and a
/// professional other than the domestic claim's.
fn pick_claims(
    w: &mut World,
    claims: &[FseSubmitted],
    outputs: &[(Source, Output)],
    rpps_all: &[String],
) {
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

pub fn stage_of(topic: &str) -> StageKind {
    StageKind::ALL
        .into_iter()
        .find(|k| k.input_topic() == topic)
        .unwrap_or_else(|| panic!("no stage reads {topic}"))
}
