//! One input record through one stage: decode, run the pure stage, encode
//! the outputs with their derived headers. Bytes that do not decode, or an
//! upstream event that no longer re-checks, become a dead-letter record with
//! the raw bytes and the error: never a panic, never a silent drop.

use sha2::{Digest, Sha256};

use super::StageKind;
use crate::bus::Record;
use crate::events::codec::{AvroField, Decoder};
use crate::events::convert;
use crate::events::model::{
    ClaimRefRec, DeadLetter, EventHeader, FseDecided, FseEntitled, FseRejected, FseRouted,
    FseSubmitted, FseValidated, LedgerEntry, RawCutRec, RefOffset, SourceRef,
};
use crate::events::registry::SchemaRegistry;
use crate::outbound::{self, Emit, OutboundError};
use crate::stages::{Context, Outcome, entitlement, reimbursement, routing, validation};
use crate::state::{StateTxn, StoreError};

/// An output to produce, to the same partition as the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub topic: &'static str,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The event time (the FSE's receipt), never the wall clock.
    pub timestamp_millis: i64,
    /// For a rejection, its first reason's code (for metrics).
    pub reason_code: Option<&'static str>,
}

/// The largest dead letter (key + value) on any bus, whatever larger
/// records the bus takes: the smallest record limit of the backends,
/// Kafka's. A letter cut to it has the same bytes on the local log and on
/// Kafka, so a Kafka run, its archive (a local log) and its replay give the
/// same letters.
pub const DEAD_LETTER_MAX_BYTES: usize = crate::bus::PORTABLE_RECORD_BYTES;
/// The longest key a dead letter keeps (an input's key is a pseudonym, far
/// shorter; a longer one would take the room of the raw bytes).
const DEAD_LETTER_KEY_MAX: usize = 1024;
/// The longest error text a dead letter keeps (ours are a line or two), so
/// that the letter's fixed part always leaves room for raw bytes.
const DEAD_LETTER_ERROR_MAX: usize = 4096;

/// The dead letter of `record` at `stage`: the input's bytes and `error`,
/// to the stage's `dlq.<stage>`, in the input's partition, with its key.
/// The letter fits `record_limit` (the bus's) and [`DEAD_LETTER_MAX_BYTES`]:
/// a letter the producer refused would stop the stage at the same input on
/// every restart. When the input's bytes do not fit whole, `raw` keeps
/// their beginning and `cut` their length and SHA-256.
pub fn dead_letter_output(
    registry: &SchemaRegistry,
    stage: StageKind,
    record: &Record,
    mut error: String,
    record_limit: usize,
) -> Output {
    let bound = record_limit.min(DEAD_LETTER_MAX_BYTES);
    if error.len() > DEAD_LETTER_ERROR_MAX {
        let mut end = DEAD_LETTER_ERROR_MAX;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    let mut key = record.key.as_slice();
    if key.len() > DEAD_LETTER_KEY_MAX {
        error.push_str(&format!(
            " (record key cut to its first {DEAD_LETTER_KEY_MAX} of {} bytes)",
            key.len()
        ));
        key = &key[..DEAD_LETTER_KEY_MAX];
    }
    let mut letter = DeadLetter {
        stage: stage.name().to_string(),
        topic: record.topic.clone(),
        partition: i32::try_from(record.partition).unwrap_or(i32::MAX),
        offset: i64::try_from(record.offset).unwrap_or(i64::MAX),
        error,
        raw: record.value.clone(),
        cut: None,
    };
    let mut value = registry.encode_single(&letter);
    if key.len() + value.len() > bound {
        let raw = std::mem::take(&mut letter.raw);
        letter.cut = Some(RawCutRec {
            length: i64::try_from(raw.len()).unwrap_or(i64::MAX),
            sha256: Sha256::digest(&raw).into(),
        });
        // Without its bytes `raw` takes one byte (its length, 0); with them,
        // a length of at most 10 bytes.
        let fixed = registry.encode_single(&letter).len() + 9;
        let kept = bound.saturating_sub(key.len() + fixed).min(raw.len());
        letter.raw = raw;
        letter.raw.truncate(kept);
        value = registry.encode_single(&letter);
    }
    Output {
        topic: stage.dlq_topic(),
        key: key.to_vec(),
        value,
        timestamp_millis: record.timestamp_millis,
        reason_code: Some("dead_letter"),
    }
}

/// What one input gave.
#[derive(Debug, Default)]
pub struct Processed {
    pub outputs: Vec<Output>,
    /// A multi-producer input dropped by its source topic's mark: a
    /// duplicate a crash or a zombie owner wrote.
    pub duplicate: bool,
}

/// The source an event carries in its header, read without decoding the
/// rest (every stage output starts with its header). `None` for
/// `fse.submitted` (no header) and for bytes that do not decode.
pub fn header_source(record: &Record) -> Option<SourceRef> {
    if record.topic == super::topics::FSE_SUBMITTED {
        return None;
    }
    decode_header(&record.value)?.source
}

/// The header every stage event begins with.
fn decode_header(value: &[u8]) -> Option<EventHeader> {
    let (_, body) = crate::events::registry::split_single(value).ok()?;
    <EventHeader as AvroField>::decode_field(&mut Decoder::new(body)).ok()
}

/// The reference watermark an output on `topic` was decided at; `None` for
/// a dead letter, which has no header (and whose input no reference data
/// could have decided otherwise).
pub fn output_watermark(topic: &str, value: &[u8]) -> Option<Vec<RefOffset>> {
    if topic.starts_with("dlq.") {
        return None;
    }
    decode_header(value).map(|h| h.ref_watermark)
}

/// The ordinal of an output among its input's outputs to the same topic
/// (restore mode checks outputs one by one: an input may have many on one
/// topic, and a crash may leave any prefix of them written). 0 for dead
/// letters, which are one per input.
pub fn output_ordinal(topic: &str, value: &[u8]) -> u32 {
    if topic.starts_with("dlq.") {
        return 0;
    }
    decode_header(value)
        .and_then(|h| h.source)
        .and_then(|s| u32::try_from(s.ordinal).ok())
        .unwrap_or(0)
}

/// Whether the input's offsets of its sources follow one sequence: `false`
/// for topics several stages write (their sources' offsets interleave),
/// whose readers keep one mark per source topic ([`fresh_upstream`]).
pub fn single_producer(topic: &str) -> bool {
    !MULTI_PRODUCER.contains(&topic)
}

/// Topics written by more than one stage (or by a command and a stage).
const MULTI_PRODUCER: [&str; 2] = [super::topics::FSE_REJECTED, super::topics::OUTBOUND_LEDGER];

/// The downstream duplicate filter for a multi-producer input: one mark per
/// source topic, kept in the stage's state (atomic with it). `false` for a
/// duplicate a crash or a zombie owner wrote (identical: dropped). Inputs
/// without a source (close events) are always fresh.
fn fresh_upstream(state: &mut StateTxn<'_>, header: &EventHeader) -> Result<bool, StoreError> {
    let Some(source) = &header.source else {
        return Ok(true);
    };
    let key = format!("\u{1}upstream/{}", source.topic).into_bytes();
    let mark = match state.get(&key)? {
        None => None,
        Some(_) => Some(state.get_i64(&key)?),
    };
    if mark.is_some_and(|m| source.offset <= m) {
        return Ok(false);
    }
    state.put_i64(key, source.offset);
    Ok(true)
}

/// The date of `received_at` in the offset it was stamped with.
fn received_on(fse: &FseSubmitted) -> chrono::NaiveDate {
    let local_millis = fse
        .received_at_millis
        .saturating_add(i64::from(fse.received_offset_minutes) * 60_000);
    let days = local_millis.div_euclid(86_400_000);
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days)))
        .unwrap_or_default()
}

/// What the outbound flows need about the claim, from its FSE and, once
/// known, its entitlement and routing.
fn claim_ref(
    fse: &FseSubmitted,
    amc: Option<&str>,
    eu: Option<(&str, &str)>,
) -> Option<ClaimRefRec> {
    Some(ClaimRefRec {
        rpps: fse.professional.rpps.clone(),
        received_on: received_on(fse),
        tiers_payant: fse.tiers_payant,
        amc: amc.map(str::to_string),
        eu_country: eu.map(|(c, _)| c.to_string()),
        eu_institution_id: eu.map(|(_, i)| i.to_string()),
    })
}

/// The id of the `ordinal`-th output of `input` at `stage`: replaying the same
/// input gives the same id.
pub fn derived_event_id(stage: StageKind, input: &Record, ordinal: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(input.topic.as_bytes());
    hasher.update(input.partition.to_be_bytes());
    hasher.update(input.offset.to_be_bytes());
    hasher.update(stage.name().as_bytes());
    hasher.update(ordinal.to_be_bytes());
    hex::encode(&hasher.finalize()[..16])
}

pub struct Inputs<'a> {
    pub stage: StageKind,
    pub record: &'a Record,
    pub registry: &'a SchemaRegistry,
    pub ref_watermark: &'a [RefOffset],
    /// The bus's record limit, which a dead letter must fit.
    pub record_limit: usize,
}

impl Inputs<'_> {
    fn header(&self, causation: Option<String>, fse_id: &str, event_time: i64) -> EventHeader {
        EventHeader {
            event_id: derived_event_id(self.stage, self.record, 0),
            causation_id: causation,
            correlation_id: fse_id.to_string(),
            event_time_millis: event_time,
            source: Some(SourceRef {
                topic: self.record.topic.clone(),
                partition: i32::try_from(self.record.partition).unwrap_or(i32::MAX),
                offset: i64::try_from(self.record.offset).unwrap_or(i64::MAX),
                ordinal: 0,
            }),
            ref_watermark: self.ref_watermark.to_vec(),
            rules_version: String::new(),
        }
    }

    pub(crate) fn dead_letter(&self, error: String) -> Processed {
        Processed {
            outputs: vec![dead_letter_output(
                self.registry,
                self.stage,
                self.record,
                error,
                self.record_limit,
            )],
            duplicate: false,
        }
    }

    fn rejected(
        &self,
        mut header: EventHeader,
        decision: &crate::domain::Decision,
        claim: Option<ClaimRefRec>,
    ) -> Output {
        header.rules_version = decision.rules_version.clone();
        Output {
            topic: super::topics::FSE_REJECTED,
            key: self.record.key.clone(),
            reason_code: decision.reasons.first().map(|r| r.code.as_str()),
            timestamp_millis: header.event_time_millis,
            value: self.registry.encode_single(&FseRejected {
                header,
                decision: convert::decision_rec(decision),
                claim,
            }),
        }
    }
}

/// Runs `inputs.record` through its stage.
pub fn process(
    inputs: &Inputs<'_>,
    state: &mut StateTxn<'_>,
    ctx: &Context<'_>,
) -> Result<Processed, StoreError> {
    let record = inputs.record;
    let registry = inputs.registry;
    let rules_version = ctx.rules.version.clone();
    match inputs.stage {
        StageKind::Validation => {
            let submitted: FseSubmitted = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode fse.submitted: {e}"))),
            };
            let causation = format!("{}/{}/{}", record.topic, record.partition, record.offset);
            let mut header = inputs.header(
                Some(causation),
                &submitted.fse_id,
                submitted.received_at_millis,
            );
            let input = convert::input_from_submitted(&submitted);
            let claim = claim_ref(&submitted, None, None);
            // On a scratch overlay: a misrouted submission must leave no
            // state (its id taken would turn the rightly keyed one away).
            let mut scratch = StateTxn::new(&*state);
            let outcome = validation::validate(&input, &mut scratch, ctx)?;
            let writes = scratch.into_writes();
            let output = match outcome {
                Outcome::Pass(v) => {
                    // The submitter keys by the same pseudonym: a record on the
                    // wrong key would escape duplicate detection.
                    if v.beneficiary.as_str().as_bytes() != record.key.as_slice() {
                        return Ok(inputs.dead_letter(
                            "record key is not the FSE's beneficiary key (misrouted submission)"
                                .into(),
                        ));
                    }
                    state.merge(writes);
                    header.rules_version = rules_version;
                    Output {
                        timestamp_millis: record.timestamp_millis,
                        reason_code: None,
                        topic: StageKind::Validation.pass_topic(),
                        key: record.key.clone(),
                        value: registry
                            .encode_single(&convert::validated_event(header, submitted, &v)),
                    }
                }
                Outcome::Reject(d) => {
                    state.merge(writes);
                    inputs.rejected(header, &d, claim)
                }
            };
            Ok(Processed {
                outputs: vec![output],
                duplicate: false,
            })
        }
        StageKind::Entitlement => {
            let event: FseValidated = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode fse.validated: {e}"))),
            };
            let validated = match convert::validated_from_event(&event) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("read back fse.validated: {e}"))),
            };
            let mut header = inputs.header(
                Some(event.header.event_id.clone()),
                &event.fse.fse_id,
                event.header.event_time_millis,
            );
            let claim = claim_ref(&event.fse, None, None);
            let output = match entitlement::entitle(validated, state, ctx)? {
                Outcome::Pass(e) => {
                    header.rules_version = rules_version;
                    Output {
                        timestamp_millis: record.timestamp_millis,
                        reason_code: None,
                        topic: StageKind::Entitlement.pass_topic(),
                        key: record.key.clone(),
                        value: registry
                            .encode_single(&convert::entitled_event(header, event.fse, &e)),
                    }
                }
                Outcome::Reject(d) => inputs.rejected(header, &d, claim),
            };
            Ok(Processed {
                outputs: vec![output],
                duplicate: false,
            })
        }
        StageKind::Routing => {
            let event: FseEntitled = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode fse.entitled: {e}"))),
            };
            let entitled = match convert::entitled_from_event(&event) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("read back fse.entitled: {e}"))),
            };
            let mut header = inputs.header(
                Some(event.header.event_id.clone()),
                &event.fse.fse_id,
                event.header.event_time_millis,
            );
            let claim = claim_ref(&event.fse, event.entitlement.amc.as_deref(), None);
            let output = match routing::route(entitled, state, ctx)? {
                Outcome::Pass(r) => {
                    header.rules_version = rules_version;
                    Output {
                        timestamp_millis: record.timestamp_millis,
                        reason_code: None,
                        topic: StageKind::Routing.pass_topic(),
                        key: record.key.clone(),
                        value: registry
                            .encode_single(&convert::routed_event(header, event.fse, &r)),
                    }
                }
                Outcome::Reject(d) => inputs.rejected(header, &d, claim),
            };
            Ok(Processed {
                outputs: vec![output],
                duplicate: false,
            })
        }
        StageKind::Reimbursement => {
            let event: FseRouted = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode fse.routed: {e}"))),
            };
            let routed = match convert::routed_from_event(&event) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("read back fse.routed: {e}"))),
            };
            let mut header = inputs.header(
                Some(event.header.event_id.clone()),
                &event.fse.fse_id,
                event.header.event_time_millis,
            );
            let eu = match (&event.routing.country, &event.routing.institution_id) {
                (Some(c), Some(i)) => Some((c.as_str(), i.as_str())),
                _ => None,
            };
            let claim = claim_ref(&event.fse, event.entitlement.amc.as_deref(), eu);
            let output = match reimbursement::reimburse(routed, state, ctx)? {
                Outcome::Pass(decision) => {
                    header.rules_version = decision.rules_version.clone();
                    Output {
                        timestamp_millis: record.timestamp_millis,
                        reason_code: None,
                        topic: StageKind::Reimbursement.pass_topic(),
                        key: record.key.clone(),
                        value: registry.encode_single(&FseDecided {
                            header,
                            decision: convert::decision_rec(&decision),
                            claim,
                        }),
                    }
                }
                Outcome::Reject(d) => inputs.rejected(header, &d, claim),
            };
            Ok(Processed {
                outputs: vec![output],
                duplicate: false,
            })
        }
        StageKind::Settlement => {
            let event: FseDecided = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode fse.decided: {e}"))),
            };
            let emits = outbound::settle(&event, ctx.rules);
            inputs.outbound(emits, &event.header, ctx)
        }
        StageKind::Returns => {
            let event: FseRejected = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode fse.rejected: {e}"))),
            };
            if !fresh_upstream(state, &event.header)? {
                return Ok(Processed {
                    outputs: Vec::new(),
                    duplicate: true,
                });
            }
            let emits = outbound::return_rejection(&event);
            inputs.outbound(emits, &event.header, ctx)
        }
        StageKind::Ledger => {
            let entry: LedgerEntry = match registry.decode_single(&record.value) {
                Ok(v) => v,
                Err(e) => return Ok(inputs.dead_letter(format!("decode outbound.ledger: {e}"))),
            };
            if !fresh_upstream(state, &entry.header)? {
                return Ok(Processed {
                    outputs: Vec::new(),
                    duplicate: true,
                });
            }
            let lctx = outbound::ledger::LedgerCtx {
                rules: ctx.rules,
                partition: record.partition,
            };
            let emits = outbound::ledger::apply(&entry, state, &lctx);
            inputs.outbound(emits, &entry.header, ctx)
        }
    }
}

impl Inputs<'_> {
    /// The outbound core's events, stamped with derived headers (ordinal by
    /// ordinal) and encoded; bad input becomes a dead letter.
    fn outbound(
        &self,
        emits: Result<Vec<Emit>, OutboundError>,
        input: &EventHeader,
        ctx: &Context<'_>,
    ) -> Result<Processed, StoreError> {
        let emits = match emits {
            Ok(emits) => emits,
            Err(OutboundError::Store(e)) => return Err(e),
            Err(e) => return Ok(self.dead_letter(e.to_string())),
        };
        let mut outputs = Vec::with_capacity(emits.len());
        for (ordinal, mut emit) in emits.into_iter().enumerate() {
            let ordinal = u32::try_from(ordinal).unwrap_or(u32::MAX);
            let correlation = emit.correlation();
            *emit.header_mut() = EventHeader {
                event_id: derived_event_id(self.stage, self.record, ordinal),
                causation_id: Some(input.event_id.clone()),
                correlation_id: correlation.clone(),
                event_time_millis: input.event_time_millis,
                source: Some(SourceRef {
                    topic: self.record.topic.clone(),
                    partition: i32::try_from(self.record.partition).unwrap_or(i32::MAX),
                    offset: i64::try_from(self.record.offset).unwrap_or(i64::MAX),
                    ordinal: i32::try_from(ordinal).unwrap_or(i32::MAX),
                }),
                ref_watermark: self.ref_watermark.to_vec(),
                rules_version: ctx.rules.version.clone(),
            };
            // Claim-path events keep the beneficiary key; the ledger's
            // aggregates are keyed by their own id.
            let key = match (&emit, self.stage) {
                (_, StageKind::Settlement | StageKind::Returns) => self.record.key.clone(),
                _ => correlation.into_bytes(),
            };
            let (topic, value) = match &emit {
                Emit::Return(e) => (
                    super::topics::RETURNS_PROFESSIONAL,
                    self.registry.encode_single(e),
                ),
                Emit::Amc(e) => (super::topics::AMC_CLAIMS, self.registry.encode_single(e)),
                Emit::Order(e) => (
                    super::topics::PAYMENTS_ORDERS,
                    self.registry.encode_single(e),
                ),
                Emit::Eu(e) => (super::topics::EU_CLAIMS, self.registry.encode_single(e)),
                Emit::Ledger(e) => (
                    super::topics::OUTBOUND_LEDGER,
                    self.registry.encode_single(e),
                ),
            };
            outputs.push(Output {
                topic,
                key,
                value,
                timestamp_millis: input.event_time_millis,
                reason_code: None,
            });
        }
        Ok(Processed {
            outputs,
            duplicate: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemStore;

    fn header(topic: &str, offset: i64) -> EventHeader {
        let mut h = crate::outbound::blank_header();
        h.source = Some(SourceRef {
            topic: topic.into(),
            partition: 0,
            offset,
            ordinal: 0,
        });
        h
    }

    fn record(key: Vec<u8>, value: Vec<u8>) -> Record {
        Record {
            topic: "fse.submitted".into(),
            partition: 3,
            offset: 7,
            timestamp_millis: 11,
            key,
            value,
        }
    }

    /// Whatever the input's size, its key's or the bus's limit, the letter
    /// fits the limit; a cut letter keeps the beginning and says the whole
    /// input's length and digest.
    #[test]
    fn a_dead_letter_always_fits_the_bus() {
        let registry = SchemaRegistry::new().unwrap();
        let decode = |o: &Output| registry.decode_single::<DeadLetter>(&o.value).unwrap();
        let small = record(b"k".to_vec(), vec![1; 100]);
        let whole = dead_letter_output(&registry, StageKind::Routing, &small, "e".into(), 1024);
        let letter = decode(&whole);
        assert_eq!((letter.raw, letter.cut), (vec![1; 100], None));
        assert_eq!(
            (whole.topic, whole.key.as_slice()),
            ("dlq.routing", &b"k"[..])
        );
        for limit in [64 * 1024, 1 << 20, DEAD_LETTER_MAX_BYTES, 16 << 20] {
            let bound = limit.min(DEAD_LETTER_MAX_BYTES);
            for (key, len) in [(8, bound - 50), (8, bound), (4096, bound), (bound, 10)] {
                let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let input = record(vec![b'k'; key], value.clone());
                let out = dead_letter_output(
                    &registry,
                    StageKind::Validation,
                    &input,
                    "x".repeat(10_000),
                    limit,
                );
                assert!(
                    out.key.len() + out.value.len() <= bound,
                    "{limit} {key} {len}"
                );
                let letter = decode(&out);
                assert_eq!(letter.raw[..], value[..letter.raw.len()]);
                assert_eq!((letter.offset, letter.partition), (7, 3));
                match letter.cut {
                    Some(cut) => {
                        assert_eq!(cut.length, len as i64);
                        assert_eq!(cut.sha256, <[u8; 32]>::from(Sha256::digest(&value)));
                        assert!(letter.raw.len() + 16 * 1024 > bound - key.min(1024));
                    }
                    None => assert_eq!(letter.raw.len(), len),
                }
                if key > 1024 {
                    assert_eq!(out.key.len(), 1024);
                    assert!(letter.error.contains(&format!("of {key} bytes")));
                }
            }
        }
    }

    #[test]
    fn multi_producer_inputs_keep_one_mark_per_source_topic() {
        let store = MemStore::default();
        let mut txn = StateTxn::new(&store);
        // Interleaved sources, each increasing: all fresh.
        for (topic, offset) in [
            ("fse.submitted", 10),
            ("fse.routed", 3),
            ("fse.submitted", 11),
        ] {
            assert!(fresh_upstream(&mut txn, &header(topic, offset)).unwrap());
        }
        // A replayed duplicate of either source: dropped.
        assert!(!fresh_upstream(&mut txn, &header("fse.submitted", 11)).unwrap());
        assert!(!fresh_upstream(&mut txn, &header("fse.routed", 2)).unwrap());
        // No source (a close event): always fresh.
        let close = crate::outbound::blank_header();
        assert!(fresh_upstream(&mut txn, &close).unwrap());
        assert!(fresh_upstream(&mut txn, &close).unwrap());
    }

    #[test]
    fn the_date_of_receipt_is_taken_in_its_own_offset() {
        let mut fse = FseSubmitted {
            fse_id: "F".into(),
            received_at_millis: 1_735_687_800_000, // 2024-12-31T23:30:00Z
            received_offset_minutes: 60,
            care_date: chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
            professional: crate::events::model::ProfessionalRec {
                rpps: "10000123454".into(),
                category: crate::domain::Category::Gp,
                sector: crate::events::model::SectorSymbol::S1,
                optam: false,
            },
            beneficiary: None,
            ehic: None,
            pathway: None,
            tiers_payant: crate::events::model::TiersPayantRec {
                amo: true,
                amc: false,
            },
            acts: Vec::new(),
            signature: None,
        };
        assert_eq!(received_on(&fse).to_string(), "2025-01-01");
        fse.received_offset_minutes = 0;
        assert_eq!(received_on(&fse).to_string(), "2024-12-31");
        let claim = claim_ref(&fse, Some("AMC1"), Some(("DE", "DE-1"))).unwrap();
        assert_eq!(claim.eu_institution_id.as_deref(), Some("DE-1"));
        assert!(claim.tiers_payant.amo);
    }
}
