//! Archives: a recorded run copied to a local-log directory, offsets kept,
//! with a manifest an auditor can check years later (offset ranges, schema
//! fingerprints, rule-table versions, a digest per partition and of the
//! whole). `clearing replay --archive DIR` checks the manifest, then replays.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{Bus, BusError, Record, TopicSpec};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::AuditCheckpoint;
use clearing_pipeline::events::registry::split_single;
use clearing_pipeline::runtime::topics;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "MANIFEST.json";
const FORMAT: &str = "clearing-archive/1";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("manifest: {0}")]
    Manifest(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub partition: u32,
    /// First offset present (`None` when empty).
    pub first_offset: Option<u64>,
    /// The partition's end when archived (next offset).
    pub end_offset: u64,
    pub records: u64,
    /// SHA-256 over every record: offset, timestamp, key and value, each
    /// length-prefixed, in offset order.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicEntry {
    pub name: String,
    pub compacted: bool,
    /// Avro single-object fingerprints found in the topic (hex).
    pub schema_fingerprints: BTreeSet<String>,
    pub partitions: Vec<PartitionEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub source: String,
    /// Rule-table set versions (content hashes) the checkpoints name.
    pub rules_versions: BTreeSet<String>,
    pub topics: Vec<TopicEntry>,
    /// SHA-256 over every partition digest, in manifest order.
    pub digest: String,
}

/// What checking an archive found.
#[derive(Debug, Clone)]
pub struct Check {
    pub manifest: Manifest,
    /// Each partition (or the manifest) whose content is not as recorded.
    pub damage: Vec<String>,
}

fn record_digest(hasher: &mut Sha256, r: &Record) {
    hasher.update(r.offset.to_be_bytes());
    hasher.update(r.timestamp_millis.to_be_bytes());
    hasher.update((r.key.len() as u64).to_be_bytes());
    hasher.update(&r.key);
    // A tombstone's length is one no value has (archives recorded before
    // tombstones, 2026-12-05, have none, and keep their digests).
    let value_len = if r.tombstone {
        u64::MAX
    } else {
        r.value.len() as u64
    };
    hasher.update(value_len.to_be_bytes());
    hasher.update(&r.value);
}

fn whole_digest(topics: &[TopicEntry]) -> String {
    let mut hasher = Sha256::new();
    for t in topics {
        for p in &t.partitions {
            hasher.update(t.name.as_bytes());
            hasher.update(p.partition.to_be_bytes());
            hasher.update(p.end_offset.to_be_bytes());
            hasher.update(p.digest.as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

/// Appends a copy of `record`, read from `topic/partition`, to the same
/// partition of `log`, at its offset.
pub(crate) fn append_copy(
    log: &LocalLog,
    topic: &str,
    partition: u32,
    record: &Record,
) -> Result<(), BusError> {
    log.append_copy(topic, partition, record)
}

/// Every record of a partition below `end`, in offset order.
fn scan(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    end: u64,
    mut each: impl FnMut(&Record) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    clearing_pipeline::bus::scan(bus, topic, partition, 0, |r| {
        if r.offset >= end {
            return Ok(false);
        }
        each(&r)?;
        Ok(true)
    })
}

/// The topics an archive takes: every pipeline topic present on the bus
/// (changelogs only when asked: replay starts from empty state or a
/// snapshot, not from them).
fn archived_specs(bus: &dyn Bus, with_changelogs: bool) -> Vec<TopicSpec> {
    let partitions = bus.partition_count(topics::FSE_SUBMITTED).unwrap_or(4);
    topics::all(partitions)
        .into_iter()
        .filter(|s| with_changelogs || !s.name.ends_with(".changelog"))
        .filter(|s| bus.partition_count(&s.name).is_ok())
        .collect()
}

/// Copies a recorded run into `out` (a new local-log directory) and writes
/// its manifest. The checkpoints' ends are taken first, so everything they
/// cover is in the archive even while the pipeline runs.
pub fn export(bus: &dyn Bus, out: &Path, with_changelogs: bool) -> Result<Manifest, ArchiveError> {
    if out.join(MANIFEST).exists() {
        return Err(ArchiveError::Manifest(format!(
            "{} already holds an archive",
            out.display()
        )));
    }
    let registry = SchemaRegistry::new().map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    let mut specs = archived_specs(bus, with_changelogs);
    // Checkpoints first: their ends bound what the archive must cover.
    specs.sort_by_key(|s| s.name != topics::AUDIT_CHECKPOINTS);
    let mut export = Export {
        bus,
        log: LocalLog::open(out)?,
        registry,
        rules_versions: BTreeSet::new(),
    };
    let mut entries = Vec::new();
    for spec in &specs {
        entries.push(export.topic(spec)?);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        source: bus.describe(),
        rules_versions: export.rules_versions,
        digest: whole_digest(&entries),
        topics: entries,
    };
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    std::fs::write(out.join(MANIFEST), text)?;
    Ok(manifest)
}

/// A copy under way, and the rule-table versions its checkpoints named.
struct Export<'a> {
    bus: &'a dyn Bus,
    log: std::sync::Arc<LocalLog>,
    registry: SchemaRegistry,
    rules_versions: BTreeSet<String>,
}

impl Export<'_> {
    fn topic(&mut self, spec: &TopicSpec) -> Result<TopicEntry, ArchiveError> {
        self.log.ensure_topic(spec)?;
        let mut entry = TopicEntry {
            name: spec.name.clone(),
            compacted: spec.compacted,
            schema_fingerprints: BTreeSet::new(),
            partitions: Vec::new(),
        };
        for partition in 0..spec.partitions {
            let copied = self.partition(&spec.name, partition, &mut entry.schema_fingerprints)?;
            entry.partitions.push(copied);
        }
        Ok(entry)
    }

    /// Copies a partition up to its current end, offsets kept, and digests
    /// it; the schema fingerprints its records carry go to `fingerprints`.
    fn partition(
        &mut self,
        topic: &str,
        partition: u32,
        fingerprints: &mut BTreeSet<String>,
    ) -> Result<PartitionEntry, ArchiveError> {
        let end = self.bus.end_offset(topic, partition)?;
        let mut hasher = Sha256::new();
        let mut first = None;
        let mut records = 0;
        let (log, registry) = (&self.log, &self.registry);
        let rules_versions = &mut self.rules_versions;
        scan(self.bus, topic, partition, end, |r| {
            append_copy(log, topic, partition, r)?;
            record_digest(&mut hasher, r);
            first.get_or_insert(r.offset);
            records += 1;
            if let Ok((fingerprint, _)) = split_single(&r.value) {
                fingerprints.insert(hex::encode(fingerprint));
            }
            if topic == topics::AUDIT_CHECKPOINTS
                && let Ok(c) = registry.decode_single::<AuditCheckpoint>(&r.value)
            {
                rules_versions.insert(c.rules_version);
            }
            Ok(())
        })?;
        self.log.flush_partition(topic, partition)?;
        Ok(PartitionEntry {
            partition,
            first_offset: first,
            end_offset: end,
            records,
            digest: hex::encode(hasher.finalize()),
        })
    }
}

/// Reads an archive's manifest and recomputes every digest.
pub fn check(dir: &Path) -> Result<Check, ArchiveError> {
    let text = std::fs::read(dir.join(MANIFEST))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(ArchiveError::Manifest(format!(
            "format {} (expected {FORMAT})",
            manifest.format
        )));
    }
    let mut damage = Vec::new();
    if whole_digest(&manifest.topics) != manifest.digest {
        damage.push("the manifest's digest does not match its entries".to_string());
    }
    let log = LocalLog::open(dir)?;
    let mut found: BTreeMap<(String, u32), (u64, String)> = BTreeMap::new();
    for topic in &manifest.topics {
        for p in &topic.partitions {
            let mut hasher = Sha256::new();
            let mut records = 0;
            let end = log.end_offset(&topic.name, p.partition).unwrap_or(0);
            scan(&log, &topic.name, p.partition, end, |r| {
                record_digest(&mut hasher, r);
                records += 1;
                Ok(())
            })?;
            found.insert(
                (topic.name.clone(), p.partition),
                (records, hex::encode(hasher.finalize())),
            );
            let (records, digest) = &found[&(topic.name.clone(), p.partition)];
            if *digest != p.digest || *records != p.records {
                damage.push(format!(
                    "{}/{}: {} record(s) whose digest is {}, the manifest says {} record(s) with {}",
                    topic.name, p.partition, records, digest, p.records, p.digest
                ));
            }
        }
    }
    Ok(Check { manifest, damage })
}
