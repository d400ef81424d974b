//! What the fuzz targets share: a small world (rules, the seed data set's
//! rights, PKI and EU institutions) and the checks run on every input.
//!
//! Beyond "no panic, no abort, no overflow", each target asserts properties
//! that must hold for any bytes:
//! - a decoded event re-encodes to bytes that decode to the same value;
//! - a stage is a pure function: the same record twice gives the same outputs
//!   and the same state writes;
//! - every output decodes with its topic's schema; a dead letter carries the
//!   exact raw bytes; a passed event re-checks at the next stage (the next
//!   stage would otherwise dead-letter what this one let through);
//! - an FSE decided from its JSON and from its Avro form (the streaming path)
//!   gets the same decision;
//! - no error or reason quotes a personal identifier of the input.

use std::fmt::Debug;
use std::sync::OnceLock;

use clearing_pipeline::adjudicate::{Adjudicator, FSE_OBJECTS};
use clearing_pipeline::bus::Record;
use clearing_pipeline::domain::json;
use clearing_pipeline::domain::{Decision, FseInput};
use clearing_pipeline::events::codec::AvroRecord;
use clearing_pipeline::events::convert;
use clearing_pipeline::events::model::{
    AmcClaim, DeadLetter, EuClaim, EuInstitutionRecord, FseDecided, FseEntitled, FseRejected,
    FseRouted, FseSubmitted, FseValidated, LedgerEntry, PaymentOrder, PkiEvent, ProfessionalReturn,
    RightsRecord,
};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{
    EuInstitutionInput, InstitutionDirectory, RefView, SignatureVerifier, TrustUnsigned,
};
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::StageKind;
use clearing_pipeline::runtime::process::{Inputs, Processed, process};
use clearing_pipeline::signatures::PkiVerifier;
use clearing_pipeline::stages::{Context, entitlement, validation};
use clearing_pipeline::state::{MemStore, StateStore, StateTxn, WriteBatch};

const RIGHTS: &str = include_str!("../seeds/ref/rights.jsonl");
const INSTITUTIONS: &str = include_str!("../seeds/ref/eu_institutions.jsonl");
const PKI: &str = include_str!("../seeds/ref/pki.jsonl");

/// Built once per fuzzing process; never written after.
pub struct World {
    pub registry: SchemaRegistry,
    pub rules: Rules,
    pub pseudonyms: PseudonymKey,
    pub pki: Pki,
    pub institutions: InstitutionDirectory,
    /// Entitlement's state: the seed data set's rights.
    pub rights: MemStore,
    pub empty: MemStore,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pseudonyms = PseudonymKey::development();
        let mut pki = Pki::default();
        for line in PKI.lines() {
            pki.apply(PkiRecord::from_json(line).expect("seed PKI record"))
                .expect("seed PKI record applies");
        }
        let mut institutions = InstitutionDirectory::default();
        for line in INSTITUTIONS.lines() {
            institutions
                .upsert(serde_json::from_str(line).expect("seed institution"))
                .expect("seed institution applies");
        }
        let rights = MemStore::default();
        let mut txn = StateTxn::new(&rights);
        for line in RIGHTS.lines() {
            entitlement::apply_rights(
                serde_json::from_str(line).expect("seed rights"),
                &mut txn,
                &pseudonyms,
            )
            .expect("seed rights apply");
        }
        let writes = txn.into_writes();
        rights.apply(&writes).expect("memory store");
        World {
            registry: SchemaRegistry::new().expect("embedded schemas"),
            rules: Rules::embedded().expect("embedded rules"),
            pseudonyms,
            pki,
            institutions,
            rights,
            empty: MemStore::default(),
        }
    })
}

/// Decodes `data` as `T`; when it decodes, checks that the value survives an
/// encode / decode round trip.
pub fn roundtrip<T: AvroRecord + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    let registry = &world().registry;
    let value = registry.decode_single::<T>(data).ok()?;
    let again = registry.encode_single(&value);
    let back = registry
        .decode_single::<T>(&again)
        .expect("a re-encoded event decodes");
    assert_eq!(back, value, "encode/decode round trip");
    Some(value)
}

/// True when `needle` is an identifier-like string (at least 6 digits, only
/// ASCII alphanumerics) that `text` quotes. Plain words are left out: an
/// error message may legitimately contain the word a fuzzer put in a name.
fn quotes_identifier(text: &str, needle: &str) -> bool {
    needle.len() >= 8
        && needle.bytes().all(|b| b.is_ascii_alphanumeric())
        && needle.bytes().filter(u8::is_ascii_digit).count() >= 6
        && text.contains(needle)
}

fn run_stage(
    kind: StageKind,
    record: &Record,
    signatures: &dyn SignatureVerifier,
) -> (Processed, WriteBatch) {
    let w = world();
    let refs = RefView {
        signatures,
        institutions: &w.institutions,
    };
    let ctx = Context {
        rules: &w.rules,
        refs: &refs,
        pseudonyms: &w.pseudonyms,
    };
    let store = if kind == StageKind::Entitlement {
        &w.rights
    } else {
        &w.empty
    };
    let mut txn = StateTxn::new(store);
    let inputs = Inputs {
        stage: kind,
        record,
        registry: &w.registry,
        ref_watermark: &[],
        record_limit: clearing_pipeline::bus::local::MAX_RECORD_BYTES,
    };
    let processed = process(&inputs, &mut txn, &ctx).expect("a memory store never fails");
    (processed, txn.into_writes())
}

/// The record key the submitter would have used (the beneficiary's
/// pseudonym), so that a valid submission is not dead-lettered as misrouted.
fn submission_key(data: &[u8]) -> Vec<u8> {
    let w = world();
    let Ok(submitted) = w.registry.decode_single::<FseSubmitted>(data) else {
        return b"undecodable".to_vec();
    };
    let Some(fse) = validation::reparse(&convert::input_from_submitted(&submitted)) else {
        return b"unparsable".to_vec();
    };
    let refs = RefView {
        signatures: &TrustUnsigned,
        institutions: &w.institutions,
    };
    let ctx = Context {
        rules: &w.rules,
        refs: &refs,
        pseudonyms: &w.pseudonyms,
    };
    validation::beneficiary_key(&fse, &ctx)
        .as_str()
        .as_bytes()
        .to_vec()
}

/// One record of `kind`'s input topic through the stage, with every check.
pub fn stage(kind: StageKind, data: &[u8]) {
    let w = world();
    let key = match kind {
        StageKind::Validation => submission_key(data),
        _ => b"fuzz".to_vec(),
    };
    let record = Record {
        topic: kind.input_topic().to_string(),
        partition: 1,
        offset: 7,
        timestamp_millis: 1_700_000_000_000,
        key,
        value: data.to_vec(),
        tombstone: false,
    };
    let pki = PkiVerifier {
        pki: &w.pki,
        registry: &w.registry,
    };
    let verifiers: &[&dyn SignatureVerifier] = match kind {
        StageKind::Validation => &[&TrustUnsigned, &pki],
        _ => &[&TrustUnsigned],
    };
    for verifier in verifiers {
        let (first, writes) = run_stage(kind, &record, *verifier);
        let (second, writes_again) = run_stage(kind, &record, *verifier);
        assert_eq!(first.outputs, second.outputs, "a stage is deterministic");
        assert_eq!(
            writes, writes_again,
            "a stage's state writes are deterministic"
        );
        check_output_count(kind, data, &first.outputs);
        for output in &first.outputs {
            check_output(kind, data, output.topic, &output.value);
        }
    }
}

/// How many outputs an input gives: one for a deciding stage or a dead
/// letter; a paid decision its return, complementary claim if any, and
/// ledger outcome; a rejection its return and outcome; a ledger entry none
/// (an outcome) or what a close emits. A duplicate (multi-producer topics)
/// gives none, and never here: the state is empty.
fn check_output_count(
    kind: StageKind,
    data: &[u8],
    outputs: &[clearing_pipeline::runtime::process::Output],
) {
    let dead = outputs.iter().any(|o| o.topic == kind.dlq_topic());
    let n = outputs.len();
    let ok = match kind {
        _ if dead => n == 1,
        StageKind::Settlement => n == 2 || n == 3,
        StageKind::Returns => n == 2,
        StageKind::Ledger => {
            let entry: Option<LedgerEntry> = world().registry.decode_single(data).ok();
            entry.is_some_and(|e| e.close_on.is_some() || n == 0)
        }
        _ => n == 1,
    };
    assert!(ok, "{} outputs from {}", n, kind.name());
}

fn check_output(kind: StageKind, input: &[u8], topic: &str, value: &[u8]) {
    let registry = &world().registry;
    if topic == kind.dlq_topic() {
        let letter: DeadLetter = registry.decode_single(value).expect("dead letter decodes");
        assert_eq!(letter.raw, input, "a dead letter keeps the raw bytes");
        assert!(!letter.error.is_empty());
        return;
    }
    if topic == "fse.rejected" {
        let rejected: FseRejected = registry.decode_single(value).expect("rejection decodes");
        assert_eq!(
            rejected.decision.status,
            clearing_pipeline::domain::Status::Rejected
        );
        return;
    }
    assert!(
        topic == kind.pass_topic() || kind.output_topics().contains(&topic),
        "an output goes to a known topic"
    );
    match kind {
        StageKind::Validation => {
            let e: FseValidated = registry.decode_single(value).expect("fse.validated");
            convert::validated_from_event(&e).expect("what validation passed re-checks");
        }
        StageKind::Entitlement => {
            let e: FseEntitled = registry.decode_single(value).expect("fse.entitled");
            convert::entitled_from_event(&e).expect("what entitlement passed re-checks");
        }
        StageKind::Routing => {
            let e: FseRouted = registry.decode_single(value).expect("fse.routed");
            convert::routed_from_event(&e).expect("what routing passed re-checks");
        }
        StageKind::Reimbursement => {
            let _: FseDecided = registry.decode_single(value).expect("fse.decided");
        }
        // The outbound stages: every output decodes as its topic's event.
        StageKind::Settlement | StageKind::Returns | StageKind::Ledger => {
            let decodes = match topic {
                "returns.professional" => {
                    registry.decode_single::<ProfessionalReturn>(value).is_ok()
                }
                "amc.claims" => registry.decode_single::<AmcClaim>(value).is_ok(),
                "outbound.ledger" => registry.decode_single::<LedgerEntry>(value).is_ok(),
                "payments.orders" => registry.decode_single::<PaymentOrder>(value).is_ok(),
                "eu.claims" => registry.decode_single::<EuClaim>(value).is_ok(),
                _ => false,
            };
            assert!(decodes, "{topic}: an outbound output decodes");
        }
    }
}

/// `ref.rights`: decode, convert, check and store.
pub fn ref_rights(data: &[u8]) {
    let w = world();
    let Some(record) = roundtrip::<RightsRecord>(data) else {
        return;
    };
    let mut txn = StateTxn::new(&w.empty);
    if let Err(e) =
        entitlement::apply_rights(convert::rights_input(&record), &mut txn, &w.pseudonyms)
    {
        assert!(
            !quotes_identifier(&e.to_string(), &record.nir),
            "a rights error quotes the NIR"
        );
    }
}

/// `ref.pki`: decode, convert, apply to the seed PKI.
pub fn ref_pki(data: &[u8]) {
    let Some(event) = roundtrip::<PkiEvent>(data) else {
        return;
    };
    if let Ok(record) = convert::pki_record(&event) {
        let mut pki = world().pki.clone();
        let _ = pki.apply(record);
    }
}

/// `ref.eu.institutions`: decode, apply to the seed directory.
pub fn ref_eu_institutions(data: &[u8]) {
    let Some(r) = roundtrip::<EuInstitutionRecord>(data) else {
        return;
    };
    let mut directory = world().institutions.clone();
    let _ = directory.upsert(EuInstitutionInput {
        country: r.country,
        institution_id: r.institution_id,
        name: r.name,
        acronym: r.acronym,
        from: r.from,
        to: r.to,
    });
}

/// A fresh adjudicator over the seed world (trusting signatures: a fuzzed
/// claim is never signed, and the signature check is fuzzed by the
/// fse.submitted target with the real PKI). A copy of one loaded once.
pub fn adjudicator() -> Adjudicator {
    static TEMPLATE: OnceLock<Adjudicator> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let mut a = Adjudicator::new(
                world().rules.clone(),
                PseudonymKey::development(),
                Box::new(TrustUnsigned),
            );
            for line in RIGHTS.lines() {
                a.load_rights_line(line).expect("seed rights");
            }
            for line in INSTITUTIONS.lines() {
                a.load_institution_line(line).expect("seed institution");
            }
            a
        })
        .clone()
}

/// The personal identifiers a JSON claim carries (NIR, card, personal id).
fn personal_ids(value: &serde_json::Value) -> Vec<String> {
    ["/beneficiary/nir", "/ehic/card_id", "/ehic/personal_id"]
        .iter()
        .filter_map(|p| {
            value
                .pointer(p)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .collect()
}

fn assert_no_identifier(decision: &Decision, ids: &[String]) {
    for reason in decision.reasons.iter().chain(&decision.warnings) {
        let text = format!("{} {:?}", reason.message, reason.field);
        for id in ids {
            assert!(
                !quotes_identifier(&text, id),
                "a reason quotes a personal identifier"
            );
        }
    }
}

/// A JSON line as `clearing adjudicate` and `clearing submit` read it.
pub fn json_fse(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let decision = match adjudicator().decide_line(line) {
        Ok(d) => d,
        Err(_) => return,
    };
    let Ok(document) = json::parse(line) else {
        return;
    };
    assert_no_identifier(&decision, &personal_ids(document.value()));
    // The streaming path: `clearing submit` reads the line as `adjudicate`
    // does (a key given twice refused), converts it to Avro, the stages
    // read it back. Same claim, same decision.
    let Ok(input) = json::from_document::<FseInput>(&document, FSE_OBJECTS) else {
        return;
    };
    let Ok(submitted) = convert::submitted_from_input(&input) else {
        return;
    };
    let w = world();
    let bytes = w.registry.encode_single(&submitted);
    let decoded: FseSubmitted = w.registry.decode_single(&bytes).expect("submitted decodes");
    assert_eq!(decoded, submitted, "submitted round trip");
    let streamed = adjudicator()
        .decide(&convert::input_from_submitted(&decoded))
        .expect("memory store");
    assert_eq!(
        streamed, decision,
        "the Avro form of a claim is decided as its JSON is"
    );
}

/// Reference JSON lines: the first byte picks rights (`r`), EU institution
/// (`i`) or PKI (`p`).
pub fn json_ref(data: &[u8]) {
    let Some((tag, rest)) = data.split_first() else {
        return;
    };
    let Ok(line) = std::str::from_utf8(rest) else {
        return;
    };
    match tag {
        b'r' => {
            if let Err(e) = adjudicator().load_rights_line(line) {
                let nir = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("nir").and_then(|n| n.as_str()).map(str::to_string));
                if let Some(nir) = nir {
                    assert!(
                        !quotes_identifier(&e.to_string(), &nir),
                        "error quotes the NIR"
                    );
                }
            }
        }
        b'i' => {
            let _ = adjudicator().load_institution_line(line);
        }
        b'p' => {
            // As `clearing publish` and `clearing adjudicate --pki` read it.
            let record = json::parse(line)
                .ok()
                .and_then(|d| json::from_document::<PkiRecord>(&d, &[]).ok());
            if let Some(record) = record {
                let mut pki = world().pki.clone();
                let _ = pki.apply(record);
            }
        }
        _ => {}
    }
}

/// Parses `s` with `parse`; when it parses, its normal form parses to the
/// same value (normalisation is idempotent) and no error quotes the input.
fn normal_form<T: PartialEq + Debug>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, clearing_pipeline::ids::IdError>,
    text: impl Fn(&T) -> String,
) {
    match parse(s) {
        Ok(value) => {
            let normal = text(&value);
            assert_eq!(parse(&normal).as_ref(), Ok(&value), "normal form re-parses");
        }
        Err(e) => assert!(!quotes_identifier(&e.to_string(), s.trim())),
    }
}

/// Every identifier checker, and the money and coefficient parsers, on one string.
pub fn ids(data: &[u8]) {
    use clearing_pipeline::ids::{
        CcamCode, Cip13, Country, EhicCardId, EhicInstitutionId, EhicPersonalId, Finess, NgapKey,
        Nir, Rpps, cip13, luhn,
    };
    use clearing_pipeline::money::{Cents, Hundredths};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    normal_form(s, Nir::parse, |n| n.expose().to_string());
    normal_form(s, Rpps::parse, |r| r.as_str().to_string());
    normal_form(s, Finess::parse, |f| f.as_str().to_string());
    normal_form(s, Cip13::parse, |c| c.as_str().to_string());
    normal_form(s, CcamCode::parse, |c| c.as_str().to_string());
    normal_form(s, NgapKey::parse, |k| k.as_str().to_string());
    normal_form(s, Country::parse, |c| c.as_str().to_string());
    normal_form(s, EhicCardId::parse, |c| c.expose().to_string());
    normal_form(s, EhicInstitutionId::parse, |i| i.as_str().to_string());
    normal_form(s, EhicPersonalId::parse, |p| p.expose().to_string());
    // A NIR built from a body carries the key computed for it, and parses.
    if let Ok(nir) = Nir::from_body(s) {
        assert_eq!(Nir::key_for(s), Ok(nir.key()));
        assert_eq!(Nir::parse(nir.expose()).as_ref(), Ok(&nir));
    }
    if let Ok(r) = Rpps::from_body(s) {
        assert!(r.luhn_ok(), "an RPPS built from a body passes Luhn");
        assert_eq!(Rpps::parse(r.as_str()).as_ref(), Ok(&r));
    }
    if let Ok(f) = Finess::from_body(s) {
        assert_eq!(Finess::parse(f.as_str()).as_ref(), Ok(&f));
    }
    if let Ok(c) = Cip13::from_body(s) {
        assert!(cip13::ean13_valid(c.as_str()));
    }
    if let Some(digit) = luhn::luhn_check_digit(s) {
        assert!(
            luhn::luhn_valid(&format!("{s}{digit}")),
            "Luhn key completes its body"
        );
    }
    if let Some(digit) = cip13::ean13_check_digit(s) {
        assert!(cip13::ean13_valid(&format!("{s}{digit}")));
    }
    // Money: whatever parses prints as a two-decimal amount that parses back.
    if let Ok(cents) = Cents::parse_euros(s) {
        assert!(!cents.is_negative());
        assert_eq!(Cents::parse_euros(&cents.to_string()), Ok(cents));
    }
    if let Some(h) = Hundredths::parse(s) {
        assert_eq!(Hundredths::parse(&h.to_string()), Some(h));
    }
}
