//! The front door: claims and reference data onto the bus, Avro-encoded and
//! keyed by the pseudonymous beneficiary key (`clearing submit`, `publish`).

use crate::bus::{Bus, BusProducer};
use crate::clock::IngestClock;
use crate::domain::FseInput;
use crate::domain::rights::RightsInput;
use crate::events::convert::{self, ConvertError};
use crate::events::model::{EuInstitutionRecord, EventHeader, FseSubmitted, LedgerEntry, PkiEvent};
use crate::events::registry::SchemaRegistry;
use crate::ids::{EhicCardId, EhicInstitutionId, Nir};
use crate::pki::PkiRecord;
use crate::pseudonym::{BeneficiaryKey, PseudonymKey};
use crate::refdata::{EuInstitutionInput, InstitutionDirectory};
use crate::runtime::RuntimeError;

use super::topics;

/// Why a line cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Shape(#[from] ConvertError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<crate::bus::BusError> for IngestError {
    fn from(e: crate::bus::BusError) -> IngestError {
        IngestError::Runtime(RuntimeError::Bus(e))
    }
}

/// The key an FSE is partitioned by. An FSE whose identity does not parse
/// still needs a partition (validation rejects it there): it is keyed by its
/// id, under a prefix no pseudonym has.
pub fn fse_key(fse: &FseSubmitted, pseudonyms: &PseudonymKey) -> Vec<u8> {
    let key: Option<BeneficiaryKey> = match (&fse.beneficiary, &fse.ehic) {
        (Some(b), None) => Nir::parse(&b.nir).ok().and_then(|nir| {
            let rank = u8::try_from(b.rank).ok()?;
            Some(pseudonyms.insured(&nir, b.birth_date, rank))
        }),
        (None, Some(e)) => {
            match (
                EhicInstitutionId::parse(&e.institution_id),
                EhicCardId::parse(&e.card_id),
            ) {
                (Ok(institution), Ok(card)) => Some(pseudonyms.visitor(&institution, &card)),
                _ => None,
            }
        }
        _ => None,
    };
    match key {
        Some(key) => key.as_str().as_bytes().to_vec(),
        None => format!("unkeyed-{}", fse.fse_id).into_bytes(),
    }
}

/// The partition of a key among `partitions`: the same function for every
/// producer (a pseudonym's hash prefix; other keys by FNV-1a).
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let text = String::from_utf8_lossy(key);
    if !text.starts_with("unkeyed-") && text.contains('-') {
        return BeneficiaryKey::from_stored(&text).partition(partitions);
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

pub struct Ingest<'a> {
    pub bus: &'a dyn Bus,
    pub producer: Box<dyn BusProducer>,
    pub registry: &'a SchemaRegistry,
    pub pseudonyms: &'a PseudonymKey,
    partitions: u32,
    /// Stamps each FSE's receipt: the insurer's clock (crate::clock).
    clock: IngestClock,
}

/// Sends one FSE to `fse.submitted` (of `partitions` partitions) under its
/// beneficiary's key: every front door's last step (`submit`, the online
/// intake). Returns the partition.
pub fn send_submitted(
    producer: &mut dyn BusProducer,
    registry: &SchemaRegistry,
    pseudonyms: &PseudonymKey,
    partitions: u32,
    fse: &FseSubmitted,
) -> Result<u32, IngestError> {
    let key = fse_key(fse, pseudonyms);
    let partition = partition_of(&key, partitions);
    let value = registry.encode_single(fse);
    producer.send(
        topics::FSE_SUBMITTED,
        partition,
        &key,
        &value,
        fse.ingested_at_millis.unwrap_or(fse.received_at_millis),
    )?;
    Ok(partition)
}

impl<'a> Ingest<'a> {
    pub fn new(
        bus: &'a dyn Bus,
        registry: &'a SchemaRegistry,
        pseudonyms: &'a PseudonymKey,
        clock: IngestClock,
    ) -> Result<Ingest<'a>, IngestError> {
        Ok(Ingest {
            producer: bus.producer()?,
            partitions: bus.partition_count(topics::FSE_SUBMITTED)?,
            bus,
            registry,
            pseudonyms,
            clock,
        })
    }

    /// Publishes one FSE (JSON form) to `fse.submitted`, stamped with the
    /// insurer's receipt time.
    pub fn submit(&mut self, input: &FseInput) -> Result<u32, IngestError> {
        let mut fse = convert::submitted_from_input(input)?;
        fse.ingested_at_millis = Some(self.clock.stamp(&fse));
        self.submit_wire(&fse)
    }

    /// Publishes a wire FSE as it is: its stamp (or its lack of one) is
    /// the caller's.
    pub fn submit_wire(&mut self, fse: &FseSubmitted) -> Result<u32, IngestError> {
        send_submitted(
            self.producer.as_mut(),
            self.registry,
            self.pseudonyms,
            self.partitions,
            fse,
        )
    }

    /// Publishes one rights record to `ref.rights`, checked first.
    pub fn rights(&mut self, input: &RightsInput) -> Result<u32, IngestError> {
        let (nir, _) = input
            .clone()
            .check()
            .map_err(|e| IngestError::Invalid(e.to_string()))?;
        let key = self.pseudonyms.insured(&nir, input.birth_date, input.rank);
        let key = key.as_str().as_bytes().to_vec();
        let partition = partition_of(&key, self.bus.partition_count(topics::REF_RIGHTS)?);
        let value = self.registry.encode_single(&convert::rights_record(input));
        self.producer
            .send(topics::REF_RIGHTS, partition, &key, &value, 0)?;
        Ok(partition)
    }

    /// Publishes one PKI record to `ref.pki`, checked first.
    pub fn pki(&mut self, record: &PkiRecord) -> Result<(), IngestError> {
        let event: PkiEvent = convert::pki_event(record)?;
        // Distinct keys: `ref.pki` is compacted, and a revocation keyed by
        // its certificate's id would replace the certificate itself (a reader
        // restoring from the start would then meet a revocation of an
        // unknown certificate). A revocation's key carries its date too: the
        // registry keeps the earliest of a certificate's revocations, and
        // compaction keeping only the latest would move the date later.
        let key = match record {
            PkiRecord::Certificate { id, .. } => format!("certificate/{id}"),
            PkiRecord::Revocation { cert, revoked_on } => {
                format!("revocation/{cert}/{revoked_on}")
            }
        };
        let value = self.registry.encode_single(&event);
        self.producer
            .send(topics::REF_PKI, 0, key.as_bytes(), &value, 0)?;
        Ok(())
    }

    /// Publishes one institution to `ref.eu.institutions`, checked first.
    pub fn institution(&mut self, input: &EuInstitutionInput) -> Result<(), IngestError> {
        InstitutionDirectory::default()
            .upsert(input.clone())
            .map_err(|e| IngestError::Invalid(e.to_string()))?;
        let record = EuInstitutionRecord {
            country: input.country.clone(),
            institution_id: input.institution_id.clone(),
            name: input.name.clone(),
            acronym: input.acronym.clone(),
            from: input.from,
            to: input.to,
        };
        let key = format!("{}/{}", input.country, input.institution_id);
        let value = self.registry.encode_single(&record);
        self.producer
            .send(topics::REF_EU_INSTITUTIONS, 0, key.as_bytes(), &value, 0)?;
        Ok(())
    }

    /// Publishes a close event dated `on` to every partition of
    /// `outbound.ledger`: the ledger stage then acknowledges every batch
    /// received by `on`, pays every payment received by then (a payment run)
    /// and introduces the EU claims of every half-year over before `on`
    /// (docs/outbound.md). Deterministic: the same date gives the same
    /// events; a repeated close is ignored by the stage. Refused when the
    /// holiday table does not cover `on`.
    pub fn close(
        &mut self,
        on: chrono::NaiveDate,
        rules: &crate::rules::Rules,
    ) -> Result<u32, IngestError> {
        crate::outbound::calendar::is_working_day(&rules.calendar, on)
            .map_err(|e| IngestError::Invalid(e.to_string()))?;
        let partitions = self.bus.partition_count(topics::OUTBOUND_LEDGER)?;
        let millis = on
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis());
        for partition in 0..partitions {
            let id = format!("close-{on}");
            let entry = LedgerEntry {
                header: EventHeader {
                    event_id: format!("{id}-p{partition}"),
                    causation_id: None,
                    correlation_id: id.clone(),
                    event_time_millis: millis,
                    source: None,
                    ref_watermark: Vec::new(),
                    rules_version: rules.version.clone(),
                },
                close_on: Some(on),
                outcome: None,
            };
            let value = self.registry.encode_single(&entry);
            self.producer.send(
                topics::OUTBOUND_LEDGER,
                partition,
                id.as_bytes(),
                &value,
                millis,
            )?;
        }
        Ok(partitions)
    }

    /// Waits for every record sent to be acknowledged.
    pub fn flush(&mut self) -> Result<(), IngestError> {
        self.producer.flush()?;
        Ok(())
    }
}
