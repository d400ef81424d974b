//! Reference data as stages apply it: global topics (`ref.pki` for
//! validation, `ref.eu.institutions` for routing) into memory, and
//! `ref.rights` (co-partitioned) into entitlement's state. The live worker
//! applies to the end of each topic before a batch and records the position
//! as the batch's watermark; replay applies to the recorded watermark.

use std::collections::BTreeMap;

use super::batch::Source;
use super::process::Output;
use super::{StageKind, WorkerStats, topics};
use crate::bus::{Bus, BusError, read_until};
use crate::events::convert;
use crate::events::model::{DeadLetter, EuInstitutionRecord, PkiEvent, RefOffset, RightsRecord};
use crate::events::registry::SchemaRegistry;
use crate::pki::Pki;
use crate::pseudonym::PseudonymKey;
use crate::refdata::{EuInstitutionInput, InstitutionDirectory};
use crate::stages::entitlement;
use crate::state::{StateTxn, StoreError};

/// Reserved state key prefix: the next `ref.rights` offset to apply.
const REF_POSITION: &str = "\0ref/";

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn ref_offset(topic: &str, partition: u32, position: u64) -> RefOffset {
    RefOffset {
        topic: topic.to_string(),
        partition: i32::try_from(partition).unwrap_or(i32::MAX),
        offset: i64::try_from(position).unwrap_or(i64::MAX),
    }
}

/// The position a watermark records for `topic/partition`, if any.
pub fn watermark_position(watermark: &[RefOffset], topic: &str, partition: u32) -> Option<u64> {
    watermark
        .iter()
        .find(|r| r.topic == topic && u64::try_from(r.partition).ok() == Some(u64::from(partition)))
        .and_then(|r| u64::try_from(r.offset).ok())
}

/// The global reference data a stage holds in memory.
#[derive(Default)]
pub struct GlobalRefs {
    pub pki: Pki,
    pub institutions: InstitutionDirectory,
    /// Next offset to read of each global reference partition.
    positions: BTreeMap<(String, u32), u64>,
}

impl GlobalRefs {
    /// The global reference topic `kind` reads, if any.
    pub fn topic(kind: StageKind, trust_unsigned: bool) -> Option<&'static str> {
        match kind {
            StageKind::Validation if !trust_unsigned => Some(topics::REF_PKI),
            StageKind::Routing => Some(topics::REF_EU_INSTITUTIONS),
            _ => None,
        }
    }

    /// Applies the stage's global reference topic to its end (`until` =
    /// `None`) or to the positions `until` records, and returns the
    /// watermark. A record that does not apply is counted and logged by
    /// position, never by content: the publisher refuses such records before
    /// they are written, and every instance reads them.
    pub fn advance(
        &mut self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
        kind: StageKind,
        trust_unsigned: bool,
        until: Option<&[RefOffset]>,
        stats: &mut WorkerStats,
    ) -> Result<Vec<RefOffset>, BusError> {
        let Some(topic) = Self::topic(kind, trust_unsigned) else {
            return Ok(Vec::new());
        };
        let mut watermark = Vec::new();
        for partition in 0..bus.partition_count(topic)? {
            let limit = until.map(|w| watermark_position(w, topic, partition).unwrap_or(0));
            let mut position = self
                .positions
                .get(&(topic.to_string(), partition))
                .copied()
                .unwrap_or(0);
            let (pki, institutions) = (&mut self.pki, &mut self.institutions);
            read_until(bus, topic, partition, &mut position, limit, |r| {
                let applied = match kind {
                    StageKind::Validation => registry
                        .decode_single::<PkiEvent>(&r.value)
                        .map_err(|e| e.to_string())
                        .and_then(|event| convert::pki_record(&event).map_err(|e| e.to_string()))
                        .and_then(|record| pki.apply(record).map_err(|e| e.to_string())),
                    _ => registry
                        .decode_single::<EuInstitutionRecord>(&r.value)
                        .map_err(|e| e.to_string())
                        .and_then(|rec| {
                            institutions
                                .upsert(EuInstitutionInput {
                                    country: rec.country,
                                    institution_id: rec.institution_id,
                                    name: rec.name,
                                    acronym: rec.acronym,
                                    from: rec.from,
                                    to: rec.to,
                                })
                                .map_err(|e| e.to_string())
                        }),
                };
                if let Err(error) = applied {
                    stats.ref_errors += 1;
                    eprintln!("{}: {topic}/{partition}@{}: {error}", kind.name(), r.offset);
                }
            })?;
            self.positions
                .insert((topic.to_string(), partition), position);
            watermark.push(ref_offset(topic, partition, position));
        }
        Ok(watermark)
    }
}

/// The next `ref.rights` offset entitlement's state has yet to apply.
pub fn rights_position(state: &StateTxn<'_>) -> Result<u64, StoreError> {
    let key = format!("{REF_POSITION}{}", topics::REF_RIGHTS);
    match state.get(key.as_bytes())? {
        None => Ok(0),
        Some(bytes) => Ok(u64::from_be_bytes(bytes.as_slice().try_into().map_err(
            |_| StoreError::Corrupt {
                key,
                what: "not an 8-byte offset".into(),
            },
        )?)),
    }
}

/// Entitlement: applies `ref.rights` of the partition into the overlay, from
/// the position its state records to the end (`until` = `None`) or to
/// `until`; returns the watermark, and a dead letter (with the raw bytes)
/// for each record that does not decode or check. `ref.rights` is
/// co-partitioned, so exactly one owner writes each dead letter.
pub fn apply_rights(
    bus: &dyn Bus,
    registry: &SchemaRegistry,
    pseudonyms: &PseudonymKey,
    partition: u32,
    until: Option<u64>,
    txn: &mut StateTxn<'_>,
    stats: &mut WorkerStats,
) -> Result<(RefOffset, Vec<(Source, Output)>), RefError> {
    let topic = topics::REF_RIGHTS;
    let key = format!("{REF_POSITION}{topic}");
    let mut position = rights_position(txn)?;
    let mut dead_letters = Vec::new();
    read_until(bus, topic, partition, &mut position, until, |r| {
        let applied = registry
            .decode_single::<RightsRecord>(&r.value)
            .map_err(|e| e.to_string())
            .and_then(|rec| {
                entitlement::apply_rights(convert::rights_input(&rec), txn, pseudonyms)
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = applied {
            stats.ref_errors += 1;
            stats.dead_letters += 1;
            let letter = DeadLetter {
                stage: StageKind::Entitlement.name().to_string(),
                topic: topic.to_string(),
                partition: i32::try_from(partition).unwrap_or(i32::MAX),
                offset: i64::try_from(r.offset).unwrap_or(i64::MAX),
                error,
                raw: r.value.clone(),
            };
            dead_letters.push((
                Source::Ref(r.offset),
                Output {
                    topic: StageKind::Entitlement.dlq_topic(),
                    key: r.key.clone(),
                    value: registry.encode_single(&letter),
                    timestamp_millis: r.timestamp_millis,
                    reason_code: Some("dead_letter"),
                },
            ));
        }
    })?;
    txn.put(key.into_bytes(), position.to_be_bytes().to_vec());
    Ok((ref_offset(topic, partition, position), dead_letters))
}
