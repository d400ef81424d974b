//! Reference data as stages apply it: global topics (`ref.pki` for
//! validation, `ref.eu.institutions` for routing) into memory, and
//! `ref.rights` (co-partitioned) into entitlement's state. The live worker
//! applies to the end of each topic before a batch and records the position
//! as the batch's watermark; replay applies to the recorded watermark.

use std::collections::BTreeMap;

use super::batch::Source;
use super::process::{Output, dead_letter_output};
use super::{StageKind, WorkerStats, topics};
use crate::bus::{Bus, BusError, read_until};
use crate::events::convert;
use crate::events::model::{EuInstitutionRecord, PkiEvent, RefOffset, RightsRecord};
use crate::events::registry::SchemaRegistry;
use crate::events::wire;
use crate::pki::{Pki, PkiRecord};
use crate::pseudonym::PseudonymKey;
use crate::refdata::InstitutionDirectory;
use crate::stages::entitlement;
use crate::state::{StateTxn, StoreError};

use crate::state::keys::reserved::REF_POSITION;

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
        partition: wire::partition(partition),
        offset: wire::offset(position),
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
    /// they are written, and every instance reads them. A revocation whose
    /// certificate the topic has not given by the end of the advance is held
    /// (it applies once the certificate comes) and counted the same way.
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
            // Revocations taken by this advance, by offset: one whose
            // certificate is still unknown at its end is reported then, not
            // when read, since a compacted topic puts a certificate
            // republished after its revocation behind it.
            let mut revocations = Vec::new();
            read_until(bus, topic, partition, &mut position, limit, |r| {
                let applied = match kind {
                    StageKind::Validation => registry
                        .decode_single::<PkiEvent>(&r.value)
                        .map_err(|e| e.to_string())
                        .and_then(|event| convert::pki_record(&event).map_err(|e| e.to_string()))
                        .and_then(|record| {
                            let revoked = match &record {
                                PkiRecord::Revocation { cert, .. } => Some(cert.clone()),
                                PkiRecord::Certificate { .. } => None,
                            };
                            pki.apply(record).map_err(|e| e.to_string())?;
                            revocations.extend(revoked.map(|cert| (r.offset, cert)));
                            Ok(())
                        }),
                    _ => registry
                        .decode_single::<EuInstitutionRecord>(&r.value)
                        .map_err(|e| e.to_string())
                        .and_then(|rec| {
                            institutions
                                .upsert(convert::institution_input(rec))
                                .map_err(|e| e.to_string())
                        }),
                };
                if let Err(error) = applied {
                    stats.ref_errors += 1;
                    eprintln!("{}: {topic}/{partition}@{}: {error}", kind.name(), r.offset);
                }
            })?;
            for (offset, cert) in revocations {
                if let Some(error) = self.pki.unmatched_revocation(&cert) {
                    stats.ref_errors += 1;
                    eprintln!(
                        "{}: {topic}/{partition}@{offset}: {error} (held: it applies once the certificate is published)",
                        kind.name()
                    );
                }
            }
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
    let record_limit = bus.max_record_bytes();
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
            dead_letters.push((
                Source::Ref(r.offset),
                dead_letter_output(registry, StageKind::Entitlement, &r, error, record_limit),
            ));
        }
    })?;
    txn.put(key.into_bytes(), position.to_be_bytes().to_vec());
    Ok((ref_offset(topic, partition, position), dead_letters))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use chrono::NaiveDate;

    use super::*;
    use crate::adjudicate::{Adjudicator, FSE_OBJECTS};
    use crate::bus::local::LocalLog;
    use crate::clock::IngestClock;
    use crate::domain::fse::SignatureInput;
    use crate::domain::{FseInput, json};
    use crate::pki::{SignatureAlg, SigningKey, certificate_for};
    use crate::rules::Rules;
    use crate::runtime::ingest::Ingest;
    use crate::signatures::{OwnedPkiVerifier, canonical_bytes};

    const RPPS: &str = "10000123454";
    const CARD: &str = "CPS-REVOKED";

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::generate(SignatureAlg::EcdsaP256Sha256, [17; 32])
    }

    fn bus(dir: &std::path::Path) -> Arc<LocalLog> {
        let bus = LocalLog::open(dir).unwrap();
        crate::runtime::ensure_topics(&bus, 2).unwrap();
        bus
    }

    /// `records` through `clearing publish`'s path (its keys included).
    fn published(dir: &std::path::Path, records: &[PkiRecord]) -> Arc<LocalLog> {
        let bus = bus(dir);
        let registry = SchemaRegistry::new().unwrap();
        let pseudonyms = PseudonymKey::development();
        let mut ingest = Ingest::new(&bus, &registry, &pseudonyms, IngestClock::Simulated).unwrap();
        for record in records {
            ingest.pki(record).unwrap();
        }
        ingest.flush().unwrap();
        drop(ingest);
        bus
    }

    /// What compaction leaves of `ref.pki`: the latest record of each key,
    /// at its offset, in offset order (the local log does not compact).
    fn compacted(from: &Arc<LocalLog>, dir: &std::path::Path) -> Arc<LocalLog> {
        let mut latest = BTreeMap::new();
        for r in from.read(topics::REF_PKI, 0, 0, usize::MAX).unwrap() {
            latest.insert(r.key.clone(), r);
        }
        let mut kept: Vec<_> = latest.into_values().collect();
        kept.sort_by_key(|r| r.offset);
        let bus = bus(dir);
        for r in &kept {
            bus.append_at(
                topics::REF_PKI,
                0,
                r.offset,
                r.timestamp_millis,
                &r.key,
                &r.value,
            )
            .unwrap();
        }
        bus.flush_partition(topics::REF_PKI, 0).unwrap();
        bus
    }

    /// A validation instance starting from nothing: the PKI it builds from
    /// the topic, and what it decides on the example claims of [`RPPS`],
    /// signed with [`CARD`] on their date of care.
    fn fresh_instance(bus: &Arc<LocalLog>) -> Vec<(NaiveDate, String)> {
        let registry = SchemaRegistry::new().unwrap();
        let mut refs = GlobalRefs::default();
        refs.advance(
            bus,
            &registry,
            StageKind::Validation,
            false,
            None,
            &mut WorkerStats::default(),
        )
        .unwrap();
        let verifier = OwnedPkiVerifier::new(refs.pki.clone()).unwrap();
        let mut adjudicator = Adjudicator::new(
            Rules::embedded().unwrap(),
            PseudonymKey::development(),
            Box::new(verifier),
        );
        for line in include_str!("../../../examples/rights.jsonl").lines() {
            adjudicator.load_rights_line(line).unwrap();
        }
        let key = key();
        let mut decisions = Vec::new();
        for line in include_str!("../../../examples/claims.jsonl").lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let Ok(mut input) = json::from_value::<FseInput>(&value, FSE_OBJECTS) else {
                continue;
            };
            let care_date = input.care_date.as_deref().and_then(|d| d.parse().ok());
            let (Some(care_date), Some(RPPS)) = (
                care_date,
                input.professional.as_ref().and_then(|p| p.rpps.as_deref()),
            ) else {
                continue;
            };
            let wire = convert::submitted_from_input(&input).unwrap();
            let signature = key.sign(&canonical_bytes(&registry, &wire));
            input.signature = Some(SignatureInput {
                alg: Some(key.alg().as_str().into()),
                cert: Some(CARD.into()),
                value: Some(BASE64.encode(signature)),
            });
            let decision = adjudicator.decide(&input).unwrap();
            decisions.push((care_date, serde_json::to_string(&decision).unwrap()));
        }
        decisions
    }

    fn certificate() -> PkiRecord {
        PkiRecord::from(&certificate_for(
            &key(),
            CARD,
            RPPS,
            "IGC-SANTE-TEST",
            date(2020, 1, 1),
            date(2027, 12, 31),
        ))
    }

    fn revocation(on: NaiveDate) -> PkiRecord {
        PkiRecord::Revocation {
            cert: CARD.into(),
            revoked_on: on,
        }
    }

    /// Checks that an instance reading the compacted topic decides as one
    /// reading it whole, and rejects exactly the claims signed on or after
    /// `revoked_on` as revoked.
    fn compaction_changes_nothing(records: &[PkiRecord], revoked_on: NaiveDate) {
        let dirs: [tempfile::TempDir; 2] = std::array::from_fn(|_| tempfile::tempdir().unwrap());
        let whole = published(dirs[0].path(), records);
        let compacted = compacted(&whole, dirs[1].path());
        let compacted_len = compacted.read(topics::REF_PKI, 0, 0, 100).unwrap().len();
        assert!(compacted_len < records.len(), "compaction dropped a record");
        let (read_whole, read_compacted) = (fresh_instance(&whole), fresh_instance(&compacted));
        assert!(
            read_whole.len() >= 4,
            "example claims of {RPPS}: {read_whole:?}"
        );
        for ((on, whole), (_, compacted)) in read_whole.iter().zip(&read_compacted) {
            assert_eq!(compacted, whole, "claim of {on}: compacted vs whole topic");
            assert_eq!(
                whole.contains("certificate_revoked"),
                *on >= revoked_on,
                "claim of {on}: {whole}"
            );
        }
        assert_eq!(read_whole.len(), read_compacted.len());
    }

    /// Issue 17 item 5: certificate, revocation, the certificate again.
    /// Compaction keeps the revocation and the republished certificate,
    /// the revocation first.
    #[test]
    fn a_revocation_holds_on_a_compacted_topic_after_its_certificate_is_republished() {
        let revoked_on = date(2025, 2, 1);
        compaction_changes_nothing(
            &[certificate(), revocation(revoked_on), certificate()],
            revoked_on,
        );
    }

    /// Two revocations of one certificate keep the earliest date; compaction
    /// must not keep only the later one.
    #[test]
    fn the_earliest_revocation_survives_compaction() {
        let revoked_on = date(2025, 2, 1);
        compaction_changes_nothing(
            &[
                certificate(),
                revocation(revoked_on),
                revocation(date(2025, 6, 1)),
                certificate(),
            ],
            revoked_on,
        );
    }
}
