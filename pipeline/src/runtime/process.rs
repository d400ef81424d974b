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
    FseSubmitted, FseValidated, LedgerEntry, RefOffset, SourceRef,
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

/// The most of an input's bytes a dead letter keeps: the bus's record limit
/// less room for the letter's other fields and the key.
const DEAD_LETTER_RAW_MAX: usize = crate::bus::local::MAX_RECORD_BYTES - 64 * 1024;

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
    let (_, body) = crate::events::registry::split_single(&record.value).ok()?;
    <EventHeader as AvroField>::decode_field(&mut Decoder::new(body))
        .ok()?
        .source
}

/// The ordinal of an output among its input's outputs to the same topic
/// (restore mode checks outputs one by one: an input may have many on one
/// topic, and a crash may leave any prefix of them written). 0 for dead
/// letters, which are one per input.
pub fn output_ordinal(topic: &str, value: &[u8]) -> u32 {
    if topic.starts_with("dlq.") {
        return 0;
    }
    crate::events::registry::split_single(value)
        .ok()
        .and_then(|(_, body)| {
            <EventHeader as AvroField>::decode_field(&mut Decoder::new(body)).ok()
        })
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

    pub(crate) fn dead_letter(&self, mut error: String) -> Processed {
        // The letter must fit on the bus where its input did: the raw bytes
        // are cut to leave room for the rest, and the error says so.
        let raw = &self.record.value;
        let kept = raw.len().min(DEAD_LETTER_RAW_MAX);
        if kept < raw.len() {
            error.push_str(&format!(
                " (raw bytes cut to the first {kept} of {})",
                raw.len()
            ));
        }
        let letter = DeadLetter {
            stage: self.stage.name().to_string(),
            topic: self.record.topic.clone(),
            partition: i32::try_from(self.record.partition).unwrap_or(i32::MAX),
            offset: i64::try_from(self.record.offset).unwrap_or(i64::MAX),
            error,
            raw: raw[..kept].to_vec(),
        };
        Processed {
            outputs: vec![Output {
                topic: self.stage.dlq_topic(),
                key: self.record.key.clone(),
                value: self.registry.encode_single(&letter),
                timestamp_millis: self.record.timestamp_millis,
                reason_code: Some("dead_letter"),
            }],
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
