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
    DeadLetter, EventHeader, FseDecided, FseEntitled, FseRejected, FseRouted, FseSubmitted,
    FseValidated, RefOffset, SourceRef,
};
use crate::events::registry::SchemaRegistry;
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

/// What one input gave.
#[derive(Debug)]
pub struct Processed {
    pub outputs: Vec<Output>,
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

/// The upstream source offset of an input: the downstream duplicate filter's key.
pub fn upstream_offset(record: &Record) -> Option<u64> {
    header_source(record).and_then(|s| u64::try_from(s.offset).ok())
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

    fn dead_letter(&self, error: String) -> Processed {
        let letter = DeadLetter {
            stage: self.stage.name().to_string(),
            topic: self.record.topic.clone(),
            partition: i32::try_from(self.record.partition).unwrap_or(i32::MAX),
            offset: i64::try_from(self.record.offset).unwrap_or(i64::MAX),
            error,
            raw: self.record.value.clone(),
        };
        Processed {
            outputs: vec![Output {
                topic: self.stage.dlq_topic(),
                key: self.record.key.clone(),
                value: self.registry.encode_single(&letter),
                timestamp_millis: self.record.timestamp_millis,
                reason_code: Some("dead_letter"),
            }],
        }
    }

    fn rejected(&self, mut header: EventHeader, decision: &crate::domain::Decision) -> Output {
        header.rules_version = decision.rules_version.clone();
        Output {
            topic: super::topics::FSE_REJECTED,
            key: self.record.key.clone(),
            reason_code: decision.reasons.first().map(|r| r.code.as_str()),
            timestamp_millis: header.event_time_millis,
            value: self.registry.encode_single(&FseRejected {
                header,
                decision: convert::decision_rec(decision),
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
            let output = match validation::validate(&input, state, ctx)? {
                Outcome::Pass(v) => {
                    // The submitter keys by the same pseudonym: a record on the
                    // wrong key would escape duplicate detection.
                    if v.beneficiary.as_str().as_bytes() != record.key.as_slice() {
                        return Ok(inputs.dead_letter(
                            "record key is not the FSE's beneficiary key (misrouted submission)"
                                .into(),
                        ));
                    }
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
                Outcome::Reject(d) => inputs.rejected(header, &d),
            };
            Ok(Processed {
                outputs: vec![output],
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
                Outcome::Reject(d) => inputs.rejected(header, &d),
            };
            Ok(Processed {
                outputs: vec![output],
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
                Outcome::Reject(d) => inputs.rejected(header, &d),
            };
            Ok(Processed {
                outputs: vec![output],
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
                        }),
                    }
                }
                Outcome::Reject(d) => inputs.rejected(header, &d),
            };
            Ok(Processed {
                outputs: vec![output],
            })
        }
    }
}
