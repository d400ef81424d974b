//! The imperative shell around one stage: partitions, stores, offsets,
//! reference data, restore (design.md §3).
//!
//! Per assigned partition and batch:
//! 1. run the pure stage over the batch into one state overlay and an output
//!    list (inputs at or below the restore mark `L` keep their state effects
//!    but their outputs are suppressed: they were emitted before a crash);
//! 2. produce outputs and changelog records, wait for the acks;
//! 3. apply the overlay, `applied_offset`, the output ends and the upstream
//!    mark to sled in one batch, then flush;
//! 4. commit the consumer offset (informational).
//!
//! A partition arriving with no local store is restored from the stage's
//! changelog. The restore mark `L` is found by reading the output partitions
//! from the ends recorded at the last commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::StageKind;
use super::process::{Inputs, Output, header_source, process, upstream_offset};
use crate::bus::{Bus, BusConsumer, BusError, BusProducer, Record};
use crate::events::convert;
use crate::events::model::{DeadLetter, EuInstitutionRecord, PkiEvent, RefOffset, RightsRecord};
use crate::events::registry::SchemaRegistry;
use crate::pki::Pki;
use crate::pseudonym::PseudonymKey;
use crate::refdata::{EuInstitutionInput, InstitutionDirectory, RefView, TrustUnsigned};
use crate::rules::Rules;
use crate::signatures::PkiVerifier;
use crate::stages::{Context, entitlement};
use crate::state::{SledStore, StateRead, StateStore, StateTxn, StoreError, WriteBatch};

/// Reserved state keys (a leading NUL never starts a stage's own key).
const APPLIED: &[u8] = b"\0applied";
const UPSTREAM: &[u8] = b"\0upstream";
const OUT_END: &str = "\0out_end/";
const REF_POSITION: &str = "\0ref/";
/// Local only (never in the changelog): how far the store has applied its
/// changelog, so a stale store catches up from there.
const CHANGELOG_END: &[u8] = b"\0changelog_end";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Corrupt(String),
}

/// Everything a worker shares with the others.
pub struct Shared {
    pub bus: Arc<dyn Bus>,
    pub rules: Arc<Rules>,
    pub registry: Arc<SchemaRegistry>,
    pub pseudonyms: PseudonymKey,
    /// Simulation mode: no signature checks.
    pub trust_unsigned: bool,
    pub state_dir: PathBuf,
    pub group: String,
    pub batch_max: usize,
}

struct PartitionState {
    store: SledStore,
    /// Next input offset to apply.
    applied: u64,
    /// Restore mode after a crash: the outputs already on the bus, by
    /// (topic, source offset), and the highest such source offset. Outputs
    /// of one batch go to several partitions, whose writes a crash can leave
    /// in any combination: one mark "everything up to L was emitted" would
    /// lose the outputs a partition did not get, so each is checked.
    restore: Option<Restore>,
    /// Highest upstream source offset processed (downstream filter).
    upstream_mark: Option<u64>,
}

struct Restore {
    until: u64,
    emitted: std::collections::BTreeSet<(&'static str, u64)>,
}

/// Counters a worker keeps (exported as metrics by the caller).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub inputs: u64,
    pub passed: u64,
    pub rejected: u64,
    pub dead_letters: u64,
    pub duplicates_dropped: u64,
    pub restored_outputs_suppressed: u64,
    pub ref_errors: u64,
    pub batches: u64,
}

pub struct StageWorker {
    kind: StageKind,
    shared: Arc<Shared>,
    db: SledStore,
    consumer: Box<dyn BusConsumer>,
    producer: Box<dyn BusProducer>,
    partitions: BTreeMap<u32, PartitionState>,
    pki: Pki,
    institutions: InstitutionDirectory,
    /// Next offset to read of each global reference partition.
    ref_positions: BTreeMap<(String, u32), u64>,
    pub stats: WorkerStats,
}

fn get_u64(store: &dyn StateRead, key: &[u8]) -> Result<Option<u64>, StoreError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => {
            let array: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    what: "not an 8-byte offset".into(),
                })?;
            Ok(Some(u64::from_be_bytes(array)))
        }
    }
}

/// The changelog value of a write: `1 || value`, or `0` for a delete.
fn changelog_value(value: &Option<Vec<u8>>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v);
            out
        }
        None => vec![0],
    }
}

/// The source `(offset)` of an output of `kind`'s input partition, if the
/// record is one (header-first events, and dead letters).
fn output_source(registry: &SchemaRegistry, record: &Record, input_topic: &str) -> Option<u64> {
    if record.topic.starts_with("dlq.") {
        let letter: DeadLetter = registry.decode_single(&record.value).ok()?;
        return (letter.topic == input_topic).then(|| u64::try_from(letter.offset).ok())?;
    }
    let source = header_source(record)?;
    (source.topic == input_topic
        && u64::try_from(source.partition).ok() == Some(u64::from(record.partition)))
    .then(|| u64::try_from(source.offset).ok())?
}

impl StageWorker {
    pub fn new(kind: StageKind, shared: Arc<Shared>) -> Result<StageWorker, RuntimeError> {
        // A corrupt store is moved aside and restored from the changelogs.
        let (db, rebuilt) =
            SledStore::open_or_rebuild(&shared.state_dir.join(kind.name()), "meta")?;
        if let Some(rebuilt) = rebuilt {
            eprintln!("{}: {rebuilt}; restoring from the changelog", kind.name());
        }
        let mut consumer = shared
            .bus
            .consumer(&format!("{}.{}", shared.group, kind.name()))?;
        consumer.subscribe(&[kind.input_topic()])?;
        let producer = shared.bus.producer()?;
        Ok(StageWorker {
            kind,
            shared,
            db,
            consumer,
            producer,
            partitions: BTreeMap::new(),
            pki: Pki::default(),
            institutions: InstitutionDirectory::default(),
            ref_positions: BTreeMap::new(),
            stats: WorkerStats::default(),
        })
    }

    pub fn kind(&self) -> StageKind {
        self.kind
    }

    pub fn assigned(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    /// Opens (or restores) a partition's store and positions the consumer.
    fn assign(&mut self, partition: u32) -> Result<(), RuntimeError> {
        let store = self.db.tree(&format!("p{partition}"))?;
        let changelog = self.kind.changelog_topic();
        // Catch the local store up from the changelog: from the start when
        // there is no store (a new machine, a lost disk), from the position it
        // recorded when it is stale (the partition was owned elsewhere since).
        let recorded = get_u64(&store, CHANGELOG_END)?.unwrap_or(0);
        let end = self.shared.bus.end_offset(changelog, partition)?;
        if recorded < end {
            let mut from = recorded;
            loop {
                let records = self.shared.bus.read(changelog, partition, from, 4096)?;
                let Some(last) = records.last() else { break };
                from = last.offset + 1;
                let mut batch = WriteBatch::new();
                for r in &records {
                    let value = match r.value.split_first() {
                        Some((1, v)) => Some(v.to_vec()),
                        Some((0, _)) => None,
                        _ => {
                            return Err(RuntimeError::Corrupt(format!(
                                "{changelog}/{partition}@{}",
                                r.offset
                            )));
                        }
                    };
                    batch.insert(r.key.clone(), value);
                }
                batch.insert(CHANGELOG_END.to_vec(), Some(from.to_be_bytes().to_vec()));
                store.apply(&batch)?;
            }
            store.flush()?;
        }
        let applied = get_u64(&store, APPLIED)?.unwrap_or(0);
        let upstream_mark = get_u64(&store, UPSTREAM)?;
        // Restore mode: which outputs of inputs at or after `applied` are
        // already on the bus (written before a crash, not yet in the store).
        let mut emitted = std::collections::BTreeSet::new();
        for topic in self.kind.output_topics() {
            let key = format!("{OUT_END}{topic}");
            let mut position = get_u64(&store, key.as_bytes())?.unwrap_or(0);
            loop {
                let records = self.shared.bus.read(topic, partition, position, 4096)?;
                let Some(last) = records.last() else { break };
                position = last.offset + 1;
                for r in &records {
                    if let Some(source) =
                        output_source(&self.shared.registry, r, self.kind.input_topic())
                        && source >= applied
                    {
                        emitted.insert((topic, source));
                    }
                }
            }
        }
        let restore = emitted
            .iter()
            .map(|(_, source)| *source)
            .max()
            .map(|until| Restore { until, emitted });
        self.consumer
            .seek(self.kind.input_topic(), partition, applied)?;
        self.partitions.insert(
            partition,
            PartitionState {
                store,
                applied,
                restore,
                upstream_mark,
            },
        );
        Ok(())
    }

    /// Reads global reference topics to their end (validation: PKI; routing:
    /// EU institutions) and returns the watermark.
    fn refresh_global_refs(&mut self) -> Result<Vec<RefOffset>, RuntimeError> {
        let topic = match self.kind {
            StageKind::Validation if !self.shared.trust_unsigned => super::topics::REF_PKI,
            StageKind::Routing => super::topics::REF_EU_INSTITUTIONS,
            _ => return Ok(Vec::new()),
        };
        let mut watermark = Vec::new();
        for partition in 0..self.shared.bus.partition_count(topic)? {
            let position = self
                .ref_positions
                .entry((topic.to_string(), partition))
                .or_insert(0);
            loop {
                let records = self.shared.bus.read(topic, partition, *position, 4096)?;
                let Some(last) = records.last() else { break };
                *position = last.offset + 1;
                for r in &records {
                    let applied = match self.kind {
                        StageKind::Validation => self
                            .shared
                            .registry
                            .decode_single::<PkiEvent>(&r.value)
                            .map_err(|e| e.to_string())
                            .and_then(|event| {
                                convert::pki_record(&event).map_err(|e| e.to_string())
                            })
                            .and_then(|record| self.pki.apply(record).map_err(|e| e.to_string())),
                        _ => self
                            .shared
                            .registry
                            .decode_single::<EuInstitutionRecord>(&r.value)
                            .map_err(|e| e.to_string())
                            .and_then(|rec| {
                                self.institutions
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
                        // Global reference data is read by every instance: counted
                        // and logged here (by position, never by content); the
                        // publisher refuses such records before they are written.
                        self.stats.ref_errors += 1;
                        eprintln!(
                            "{}: {topic}/{partition}@{}: {error}",
                            self.kind.name(),
                            r.offset
                        );
                    }
                }
            }
            watermark.push(RefOffset {
                topic: topic.to_string(),
                partition: i32::try_from(partition).unwrap_or(i32::MAX),
                offset: i64::try_from(*position).unwrap_or(i64::MAX),
            });
        }
        Ok(watermark)
    }

    /// Polls once and processes what came. Returns the inputs processed.
    pub fn step(&mut self, timeout: Duration) -> Result<usize, RuntimeError> {
        let polled = self.consumer.poll(self.shared.batch_max, timeout)?;
        if let Some(assignment) = polled.assignment {
            let wanted: Vec<u32> = assignment
                .partitions
                .iter()
                .filter(|(t, _)| t == self.kind.input_topic())
                .map(|(_, p)| *p)
                .collect();
            self.partitions.retain(|p, _| wanted.contains(p));
            for partition in wanted {
                if !self.partitions.contains_key(&partition) {
                    self.assign(partition)?;
                }
            }
        }
        if polled.records.is_empty() {
            return Ok(0);
        }
        let watermark = self.refresh_global_refs()?;
        let mut by_partition: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
        for record in polled.records {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        let mut count = 0;
        for (partition, records) in by_partition {
            count += self.process_partition(partition, &records, &watermark)?;
        }
        Ok(count)
    }

    fn process_partition(
        &mut self,
        partition: u32,
        records: &[Record],
        global_watermark: &[RefOffset],
    ) -> Result<usize, RuntimeError> {
        let kind = self.kind;
        let shared = self.shared.clone();
        let verifier_pki = PkiVerifier {
            pki: &self.pki,
            registry: &shared.registry,
        };
        let trust = TrustUnsigned;
        let refs = RefView {
            signatures: if shared.trust_unsigned {
                &trust
            } else {
                &verifier_pki
            },
            institutions: &self.institutions,
        };
        let ctx = Context {
            rules: &shared.rules,
            refs: &refs,
            pseudonyms: &shared.pseudonyms,
        };
        let Some(ps) = self.partitions.get_mut(&partition) else {
            // Revoked while the batch was in flight: the new owner processes it.
            return Ok(0);
        };
        let batch_started = std::time::Instant::now();
        let mut txn = StateTxn::new(&ps.store);
        let mut watermark = global_watermark.to_vec();
        let mut outputs: Vec<Output> = Vec::new();
        if kind == StageKind::Entitlement {
            let (applied_to, dead_letters) =
                apply_rights(&shared, partition, &mut txn, &mut self.stats)?;
            watermark.push(applied_to);
            outputs.extend(dead_letters);
        }
        let mut processed = 0;
        let mut last = None;
        for record in records {
            if record.offset < ps.applied {
                continue;
            }
            last = Some(record.offset);
            processed += 1;
            self.stats.inputs += 1;
            let inputs = Inputs {
                stage: kind,
                record,
                registry: &shared.registry,
                ref_watermark: &watermark,
            };
            // Downstream filter: an upstream output at or below the mark is a
            // duplicate a crash or a zombie owner wrote; identical, so dropped.
            if let Some(source) = upstream_offset(record) {
                if ps.upstream_mark.is_some_and(|mark| source <= mark) {
                    self.stats.duplicates_dropped += 1;
                    continue;
                }
                ps.upstream_mark = Some(source);
            }
            let result = process(&inputs, &mut txn, &ctx)?;
            for output in &result.outputs {
                match output.topic {
                    t if t == kind.pass_topic() => self.stats.passed += 1,
                    t if t == super::topics::FSE_REJECTED => self.stats.rejected += 1,
                    _ => self.stats.dead_letters += 1,
                }
            }
            for output in result.outputs {
                let already = ps
                    .restore
                    .as_ref()
                    .is_some_and(|r| r.emitted.contains(&(output.topic, record.offset)));
                if already {
                    self.stats.restored_outputs_suppressed += 1;
                } else {
                    outputs.push(output);
                }
            }
        }
        let Some(last) = last else { return Ok(0) };
        let applied = last + 1;
        txn.put(APPLIED.to_vec(), applied.to_be_bytes().to_vec());
        if let Some(mark) = ps.upstream_mark {
            txn.put(UPSTREAM.to_vec(), mark.to_be_bytes().to_vec());
        }
        // 2. outputs and changelog, acknowledged.
        for output in &outputs {
            self.producer.send(
                output.topic,
                partition,
                &output.key,
                &output.value,
                output.timestamp_millis,
            )?;
        }
        self.producer.flush()?;
        // While restoring, the output partitions already hold outputs of
        // inputs after this batch (written before the crash): recording their
        // ends now would leave those outputs below the position the next
        // restore scans from, and a second crash would emit them again. The
        // ends are recorded once the restore is over.
        let restoring = ps.restore.as_ref().is_some_and(|r| applied <= r.until);
        if !restoring {
            for topic in kind.output_topics() {
                let end = shared.bus.end_offset(topic, partition)?;
                txn.put(
                    format!("{OUT_END}{topic}").into_bytes(),
                    end.to_be_bytes().to_vec(),
                );
            }
        }
        let mut writes = txn.into_writes();
        for (key, value) in &writes {
            self.producer.send(
                kind.changelog_topic(),
                partition,
                key,
                &changelog_value(value),
                0,
            )?;
        }
        self.producer.flush()?;
        let changelog_end = shared.bus.end_offset(kind.changelog_topic(), partition)?;
        writes.insert(
            CHANGELOG_END.to_vec(),
            Some(changelog_end.to_be_bytes().to_vec()),
        );
        // 3. one sled batch, flushed.
        ps.store.apply(&writes)?;
        ps.store.flush()?;
        ps.applied = applied;
        if ps.restore.as_ref().is_some_and(|r| applied > r.until) {
            ps.restore = None;
        }
        // 4. informational commit.
        self.consumer
            .commit(&[(kind.input_topic().to_string(), partition, applied)])?;
        self.stats.batches += 1;
        record_batch_metrics(&BatchMetrics {
            stage: kind,
            partition,
            inputs: processed,
            outputs: &outputs,
            seconds: batch_started.elapsed().as_secs_f64(),
            lag: shared
                .bus
                .end_offset(kind.input_topic(), partition)?
                .saturating_sub(applied),
        });
        Ok(processed)
    }

    /// Whether every assigned partition has applied its input to the end.
    pub fn caught_up(&self) -> Result<bool, RuntimeError> {
        for (partition, ps) in &self.partitions {
            if ps.applied
                < self
                    .shared
                    .bus
                    .end_offset(self.kind.input_topic(), *partition)?
            {
                return Ok(false);
            }
        }
        Ok(!self.partitions.is_empty())
    }
}

struct BatchMetrics<'a> {
    stage: StageKind,
    partition: u32,
    inputs: usize,
    outputs: &'a [Output],
    seconds: f64,
    lag: u64,
}

/// Prometheus metrics of one committed batch (the `metrics` facade: a no-op
/// unless the binary installs an exporter). Labels carry stage, partition,
/// topic and reason code, never personal data.
fn record_batch_metrics(m: &BatchMetrics<'_>) {
    let stage = m.stage.name();
    let partition = m.partition.to_string();
    metrics::counter!("clearing_inputs_total", "stage" => stage, "partition" => partition.clone())
        .increment(m.inputs as u64);
    metrics::histogram!("clearing_batch_seconds", "stage" => stage).record(m.seconds);
    metrics::gauge!("clearing_consumer_lag", "stage" => stage, "partition" => partition.clone())
        .set(m.lag as f64);
    let now_millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for output in m.outputs {
        metrics::counter!("clearing_outputs_total", "stage" => stage, "partition" => partition.clone(), "topic" => output.topic)
            .increment(1);
        if let Some(code) = output.reason_code {
            metrics::counter!("clearing_rejections_total", "stage" => stage, "code" => code)
                .increment(1);
        }
        if m.stage == StageKind::Reimbursement {
            // From receipt to decision: the wall clock is read here, in the
            // shell, for a metric only; no decision ever sees it.
            let seconds = (now_millis - output.timestamp_millis).max(0) as f64 / 1000.0;
            metrics::histogram!("clearing_end_to_end_seconds").record(seconds);
        }
    }
}

/// Entitlement: applies `ref.rights` of the partition up to its end into the
/// overlay; returns the watermark, and a dead letter (with the raw bytes) for
/// each record that does not decode or check. `ref.rights` is co-partitioned,
/// so exactly one owner writes each dead letter.
fn apply_rights(
    shared: &Shared,
    partition: u32,
    txn: &mut StateTxn<'_>,
    stats: &mut WorkerStats,
) -> Result<(RefOffset, Vec<Output>), RuntimeError> {
    let topic = super::topics::REF_RIGHTS;
    let key = format!("{REF_POSITION}{topic}");
    let mut position = match txn.get(key.as_bytes())? {
        None => 0,
        Some(bytes) => u64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| RuntimeError::Corrupt(format!("{key}: not an 8-byte offset")))?,
        ),
    };
    let mut dead_letters = Vec::new();
    loop {
        let records = shared.bus.read(topic, partition, position, 4096)?;
        let Some(last) = records.last() else { break };
        position = last.offset + 1;
        for r in &records {
            let applied = shared
                .registry
                .decode_single::<RightsRecord>(&r.value)
                .map_err(|e| e.to_string())
                .and_then(|rec| {
                    entitlement::apply_rights(convert::rights_input(&rec), txn, &shared.pseudonyms)
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
                dead_letters.push(Output {
                    topic: StageKind::Entitlement.dlq_topic(),
                    key: r.key.clone(),
                    value: shared.registry.encode_single(&letter),
                    timestamp_millis: r.timestamp_millis,
                    reason_code: Some("dead_letter"),
                });
            }
        }
    }
    txn.put(key.into_bytes(), position.to_be_bytes().to_vec());
    let watermark = RefOffset {
        topic: topic.to_string(),
        partition: i32::try_from(partition).unwrap_or(i32::MAX),
        offset: i64::try_from(position).unwrap_or(i64::MAX),
    };
    Ok((watermark, dead_letters))
}

/// Where a stage's stores live under a data directory.
pub fn state_dir(data: &Path) -> PathBuf {
    data.join("state")
}
