//! What a stage's outputs are made of: the input they follow from
//! ([`Inputs`]), their derived headers and ids, rejections, and dead letters
//! that always fit the bus. Pure: the same input gives the same bytes.

use sha2::{Digest, Sha256};

use super::StageKind;
use crate::bus::Record;
use crate::events::codec::AvroRecord;
use crate::events::convert;
use crate::events::model::{
    BillingKind, BillingRec, ClaimRefRec, DeadLetter, EventHeader, FseRejected, FseSubmitted,
    RawCutRec, RefOffset, SourceRef,
};
use crate::events::registry::SchemaRegistry;
use crate::events::wire;
use crate::ids::{AmNumber, Finess};
use crate::outbound::{Emit, OutboundError};
use crate::topics;

use super::contract::Decided;
use super::{Context, Outcome};
use crate::state::StoreError;

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
        partition: wire::partition(record.partition),
        offset: wire::offset(record.offset),
        error,
        raw: record.value.clone(),
        cut: None,
    };
    let mut value = registry.encode_single(&letter);
    if key.len() + value.len() > bound {
        let raw = std::mem::take(&mut letter.raw);
        letter.cut = Some(RawCutRec {
            length: wire::offset(raw.len()),
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
    /// State keys the input's move of the partition's clock deleted
    /// ([`crate::state::expiry`]).
    pub expired: u64,
}

/// The date of `received_at` in the offset it was stamped with.
pub(crate) fn received_on(fse: &FseSubmitted) -> chrono::NaiveDate {
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
pub(crate) fn claim_ref(
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
        payee: fse.professional.billing.as_ref().map(payee),
    })
}

/// The billing identifier as validation checked it (trimmed, uppercase), or
/// as sent when it does not check (the claim is then refused: nothing is
/// paid to it).
fn payee(billing: &BillingRec) -> String {
    let checked = match billing.kind {
        BillingKind::Am => AmNumber::parse(&billing.id).map(|a| a.as_str().to_string()),
        BillingKind::Finess => Finess::parse(&billing.id).map(|f| f.as_str().to_string()),
    };
    checked.unwrap_or_else(|_| billing.id.clone())
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
    /// The header of the input's one output.
    pub(crate) fn header(
        &self,
        causation: Option<String>,
        fse_id: &str,
        event_time: i64,
    ) -> EventHeader {
        self.stamp(0, causation, fse_id.to_string(), event_time, String::new())
    }

    /// The derived header of the input's `ordinal`-th output: its id and
    /// source follow from the input's position, so a replay stamps the same.
    fn stamp(
        &self,
        ordinal: usize,
        causation: Option<String>,
        correlation: String,
        event_time: i64,
        rules_version: String,
    ) -> EventHeader {
        // An input's outputs are a handful, or a close's orders: far below
        // the wire's int.
        let (ordinal, wire_ordinal) = match (u32::try_from(ordinal), i32::try_from(ordinal)) {
            (Ok(o), Ok(w)) => (o, w),
            _ => panic!("output ordinal {ordinal} is past the wire's int"),
        };
        EventHeader {
            event_id: derived_event_id(self.stage, self.record, ordinal),
            causation_id: causation,
            correlation_id: correlation,
            event_time_millis: event_time,
            source: Some(SourceRef {
                topic: self.record.topic.clone(),
                partition: wire::partition(self.record.partition),
                offset: wire::offset(self.record.offset),
                ordinal: wire_ordinal,
            }),
            ref_watermark: self.ref_watermark.to_vec(),
            rules_version,
        }
    }

    pub(crate) fn dead_letter(&self, error: String) -> Processed {
        Processed {
            expired: 0,
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

    /// The input's output on `topic`: its key, its time.
    pub(crate) fn output(&self, topic: &'static str, value: Vec<u8>) -> Output {
        Output {
            topic,
            key: self.record.key.clone(),
            value,
            timestamp_millis: self.record.timestamp_millis,
            reason_code: None,
        }
    }

    /// The input's pass event, encoded, on `topic`.
    pub(crate) fn pass<T: AvroRecord>(&self, topic: &'static str, event: &T) -> Decided {
        Decided::one(self.output(topic, self.registry.encode_single(event)))
    }

    /// A deciding stage downstream of validation: its input read back into
    /// the domain (a dead letter if it no longer checks), decided, and its
    /// outcome encoded — `pass` makes the pass event from its stamped
    /// header; a rejection goes to `fse.rejected` with `carried`'s claim.
    pub(crate) fn decide_downstream<In, Out, E: std::fmt::Display>(
        &self,
        carried: Carried<'_>,
        read_back: Result<In, E>,
        decide: impl FnOnce(In) -> Result<Outcome<Out>, StoreError>,
        pass: impl FnOnce(EventHeader, Out) -> Decided,
    ) -> Result<Decided, StoreError> {
        let input = match read_back {
            Ok(input) => input,
            Err(e) => {
                let topic = self.stage.input_topic();
                return Ok(Decided::DeadLetter(format!("read back {topic}: {e}")));
            }
        };
        let header = self.header(
            Some(carried.header.event_id.clone()),
            &carried.fse_id,
            carried.header.event_time_millis,
        );
        Ok(match decide(input)? {
            Outcome::Pass(out) => pass(header, out),
            Outcome::Reject(d) => self.rejected(header, &d, carried.claim),
        })
    }

    /// The input's rejection, on `fse.rejected`.
    pub(crate) fn rejected(
        &self,
        mut header: EventHeader,
        decision: &crate::domain::Decision,
        claim: Option<ClaimRefRec>,
    ) -> Decided {
        header.rules_version = decision.rules_version.clone();
        Decided::one(Output {
            topic: topics::FSE_REJECTED,
            key: self.record.key.clone(),
            reason_code: decision.reasons.first().map(|r| r.code.as_str()),
            timestamp_millis: header.event_time_millis,
            value: self.registry.encode_single(&FseRejected {
                header,
                decision: convert::decision_rec(decision),
                claim,
            }),
        })
    }
}

impl Inputs<'_> {
    /// The outbound core's events, stamped with derived headers (ordinal by
    /// ordinal) and encoded; bad input becomes a dead letter.
    /// `key` is the input's key for claim-path events, `None` for events
    /// keyed by their own id (the ledger's aggregates).
    pub(crate) fn outbound(
        &self,
        emits: Result<Vec<Emit>, OutboundError>,
        input: &EventHeader,
        ctx: &Context<'_>,
        key: EmitKey,
    ) -> Result<Decided, StoreError> {
        let emits = match emits {
            Ok(emits) => emits,
            Err(OutboundError::Store(e)) => return Err(e),
            Err(e) => return Ok(Decided::DeadLetter(e.to_string())),
        };
        let mut outputs = Vec::with_capacity(emits.len());
        for (ordinal, mut emit) in emits.into_iter().enumerate() {
            let correlation = emit.correlation();
            *emit.header_mut() = self.stamp(
                ordinal,
                Some(input.event_id.clone()),
                correlation.clone(),
                input.event_time_millis,
                ctx.rules.version.clone(),
            );
            let key = match key {
                EmitKey::Input => self.record.key.clone(),
                EmitKey::Correlation => correlation.into_bytes(),
            };
            let (topic, value) = match &emit {
                Emit::Return(e) => (topics::RETURNS_PROFESSIONAL, self.registry.encode_single(e)),
                Emit::Amc(e) => (topics::AMC_CLAIMS, self.registry.encode_single(e)),
                Emit::Order(e) => (topics::PAYMENTS_ORDERS, self.registry.encode_single(e)),
                Emit::Eu(e) => (topics::EU_CLAIMS, self.registry.encode_single(e)),
                Emit::Ledger(e) => (topics::OUTBOUND_LEDGER, self.registry.encode_single(e)),
            };
            outputs.push(Output {
                topic,
                key,
                value,
                timestamp_millis: input.event_time_millis,
                reason_code: None,
            });
        }
        Ok(Decided::Outputs(outputs))
    }
}

/// What a downstream event carries into its outputs: its header (the
/// causation and the event time), its FSE id and its claim context.
pub(crate) struct Carried<'e> {
    pub header: &'e EventHeader,
    pub fse_id: String,
    pub claim: Option<ClaimRefRec>,
}

/// How outbound events are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmitKey {
    /// The input's key: claim-path events keep the beneficiary's.
    Input,
    /// The event's correlation id: the ledger's aggregates.
    Correlation,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Vec<u8>, value: Vec<u8>) -> Record {
        Record {
            topic: "fse.submitted".into(),
            partition: 3,
            offset: 7,
            timestamp_millis: 11,
            key,
            value,
            tombstone: false,
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
                billing: None,
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
            ingested_at_millis: None,
        };
        assert_eq!(received_on(&fse).to_string(), "2025-01-01");
        fse.received_offset_minutes = 0;
        assert_eq!(received_on(&fse).to_string(), "2024-12-31");
        let claim = claim_ref(&fse, Some("AMC1"), Some(("DE", "DE-1"))).unwrap();
        assert_eq!(claim.eu_institution_id.as_deref(), Some("DE-1"));
        assert!(claim.tiers_payant.amo);
        assert_eq!(claim.payee, None, "the RPPS is paid");
        // The payee is the billing identifier as validation checked it.
        for (kind, id, payee) in [
            (BillingKind::Am, " 2a1123456", "2A1123456"),
            (BillingKind::Finess, "750000010", "750000010"),
            (BillingKind::Finess, "75000001", "75000001"),
        ] {
            fse.professional.billing = Some(BillingRec {
                kind,
                id: id.into(),
            });
            let claim = claim_ref(&fse, None, None).unwrap();
            assert_eq!(claim.payee.as_deref(), Some(payee), "{id}");
        }
    }
}
