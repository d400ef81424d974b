//! Replay of one stage partition over its recorded inputs, compared with
//! its recorded outputs and checkpoints.
//!
//! The replay follows the stage's checkpoints: each one names a committed
//! batch (its input range and the reference watermark it ran with), so the
//! batch is re-run with the live code ([`run_batch`]) over the same inputs
//! and reference data, from empty state or a snapshot. Two checks per batch:
//! every output the replay emits equals, byte for byte, the next recorded
//! output of its topic (so a changed, missing or extra event is named), and
//! the chain equals the checkpoint's (so the checkpoints themselves hold).
//!
//! A batch whose checkpoint is followed by one starting inside it was cut by
//! a crash before its state was committed: the live stage re-ran it from the
//! committed state with its outputs suppressed, and the replay does the same.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clearing_pipeline::bus::{Bus, BusError, Record, read_until, scan};
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::{AuditCheckpoint, RefOffset};

use clearing_pipeline::events::render::render_full;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{RefView, TrustUnsigned};
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::batch::{
    BatchInput, BatchOutput, Cursor, Restore, Source, run_batch,
};
use clearing_pipeline::runtime::process::Output;
use clearing_pipeline::runtime::refs::{GlobalRefs, apply_rights, watermark_position};
use clearing_pipeline::runtime::worker::output_source;
use clearing_pipeline::runtime::{StageKind, WorkerStats, topics};
use clearing_pipeline::signatures::PkiVerifier;
use clearing_pipeline::stages::Context;
use clearing_pipeline::state::{MemStore, StateStore, StateTxn, StoreError, WriteBatch};
use serde::Serialize;
use serde_json::Value;

use crate::diff::{FieldDiff, diff};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

impl From<clearing_pipeline::runtime::refs::RefError> for ReplayError {
    fn from(e: clearing_pipeline::runtime::refs::RefError) -> ReplayError {
        match e {
            clearing_pipeline::runtime::refs::RefError::Bus(e) => ReplayError::Bus(e),
            clearing_pipeline::runtime::refs::RefError::Store(e) => ReplayError::Store(e),
        }
    }
}

/// What every replay job shares.
pub struct Setup {
    pub bus: Arc<dyn Bus>,
    pub rules: Arc<Rules>,
    pub registry: Arc<SchemaRegistry>,
    pub pseudonyms: PseudonymKey,
    /// The recorded run checked no signatures (simulation mode).
    pub trust_unsigned: bool,
}

impl Setup {
    /// The rules a batch ran under: the set its checkpoint names, when this
    /// binary has it (`rules` itself, the current set or an earlier published
    /// one, `Rules::published`); otherwise `rules`, and any output they change
    /// is a divergence naming both versions.
    pub fn rules_for(&self, version: &str) -> Result<Arc<Rules>, ReplayError> {
        if self.rules.version == version {
            return Ok(self.rules.clone());
        }
        match Rules::published(version) {
            Ok(Some(rules)) => Ok(rules),
            Ok(None) => Ok(self.rules.clone()),
            Err(e) => Err(ReplayError::Other(e.to_string())),
        }
    }
}

/// The first place a replay and the record part.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    /// `output_differs` (the recorded event is not the replay's),
    /// `output_not_recorded` (the replay emits an event the record lacks),
    /// `inputs_missing` (a checkpoint covers inputs that are not there),
    /// `chain_differs` (outputs as recorded, checkpoint chain not theirs),
    /// `reference_compacted` (an output differs, and reference records the
    /// batch read below its watermark are gone from the bus: see
    /// `missing_reference`).
    pub kind: String,
    pub stage: String,
    pub partition: u32,
    /// The committed batch (input offsets, inclusive) it was found in.
    pub batch: (u64, u64),
    /// The input the divergent output follows from.
    pub input_offset: Option<u64>,
    pub topic: Option<String>,
    /// Where the recorded event is (its offset in `topic`).
    pub recorded_offset: Option<u64>,
    pub fse_id: Option<String>,
    pub fields: Vec<FieldDiff>,
    pub recorded: Option<Value>,
    pub replayed: Option<Value>,
    pub recorded_rules_version: Option<String>,
    pub replayed_rules_version: Option<String>,
    pub recorded_ref_watermark: Option<Value>,
    pub replayed_ref_watermark: Option<Value>,
    /// Reference partitions that no longer hold every record below the
    /// batch's watermark (empty unless `kind` is `reference_compacted`).
    pub missing_reference: Vec<MissingReference>,
    pub message: String,
}

/// The divergence kind of a batch whose reference records are gone from the
/// bus: the replay cannot re-derive its outputs, which is not to say they differ.
pub const REFERENCE_COMPACTED: &str = "reference_compacted";

/// A reference partition that lacks records a batch read: offsets below the
/// batch's watermark with no record on the bus.
#[derive(Debug, Clone, Serialize)]
pub struct MissingReference {
    pub topic: String,
    pub partition: u32,
    /// The first offset the replay rebuilds this partition from (0, or a
    /// snapshot's `ref.rights` position).
    pub from: u64,
    /// The batch read the partition up to this offset (exclusive).
    pub watermark: u64,
    /// Offsets in `from..watermark` that hold no record.
    pub missing: u64,
}

/// One stage partition's replay.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PartitionReport {
    pub stage: String,
    pub partition: u32,
    pub checkpoints: u64,
    /// Checkpointed batches re-run after a crash (as the live stage did).
    pub crash_reruns: u64,
    pub inputs: u64,
    pub outputs_compared: u64,
    pub first_input: Option<u64>,
    pub last_input: Option<u64>,
    /// The chain after the last verified checkpoint.
    pub chain_hash: String,
    pub chain_length: u64,
    /// Inputs on the bus after the last checkpoint (not yet committed by
    /// the live stage when recorded): not replayed.
    pub uncommitted_inputs: u64,
    /// Recorded outputs after the last checkpoint's (a batch cut by a
    /// crash and not yet re-run): not compared.
    pub uncovered_outputs: u64,
    pub divergence: Option<Divergence>,
    pub seconds: f64,
    /// Validation batches whose recorded run checked no signature
    /// (`--trust-unsigned`: the checkpoint's watermark names no `ref.pki`),
    /// as input ranges, adjacent batches merged. Empty for other stages.
    pub unchecked_signatures: Vec<UncheckedRange>,
}

/// Consecutive validation batches that ran without signature checks.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct UncheckedRange {
    /// Input offsets, inclusive.
    pub from: u64,
    pub to: u64,
    pub batches: u64,
}

impl PartitionReport {
    /// Adds a batch to [`Self::unchecked_signatures`], merged with the last
    /// range when it follows or overlaps it (a batch re-run after a crash).
    fn unchecked(&mut self, from: u64, to: u64) {
        match self.unchecked_signatures.last_mut() {
            Some(last) if from <= last.to.saturating_add(1) && to >= last.from => {
                last.to = last.to.max(to);
                last.batches += 1;
            }
            _ => self.unchecked_signatures.push(UncheckedRange {
                from,
                to,
                batches: 1,
            }),
        }
    }

    /// Input offsets in the unchecked ranges.
    pub fn unchecked_inputs(&self) -> u64 {
        self.unchecked_signatures
            .iter()
            .map(|r| r.to - r.from + 1)
            .sum()
    }
}

/// The recorded outputs of one stage partition in one topic, in bus order.
struct Recorded {
    topic: &'static str,
    partition: u32,
    kind: StageKind,
    position: u64,
    buffer: VecDeque<(Source, Record)>,
    skip_before: u64,
    skip_refs_before: u64,
}

impl Recorded {
    fn next(
        &mut self,
        bus: &dyn Bus,
        registry: &SchemaRegistry,
    ) -> Result<Option<(Source, Record)>, BusError> {
        loop {
            if let Some(next) = self.buffer.pop_front() {
                return Ok(Some(next));
            }
            let records = bus.read(self.topic, self.partition, self.position, 2048)?;
            let Some(last) = records.last() else {
                return Ok(None);
            };
            self.position = last.offset + 1;
            for r in records {
                match output_source(registry, &r, self.kind) {
                    Some(Source::Input(o, _)) if o < self.skip_before => {}
                    Some(Source::Ref(o)) if o < self.skip_refs_before => {}
                    Some(source) => self.buffer.push_back((source, r)),
                    None => {}
                }
            }
        }
    }
}

/// A batch run but not yet known to be committed.
struct Pending {
    checkpoint: AuditCheckpoint,
    writes: WriteBatch,
    cursor: Cursor,
    restore: Option<Restore>,
    /// Every output of the batch as it is on the bus, by (topic, source).
    on_bus: BTreeMap<(&'static str, Source), Vec<u8>>,
}

/// Reads a stage partition's checkpoints, in order.
pub fn checkpoints(
    setup: &Setup,
    kind: StageKind,
    partition: u32,
) -> Result<Vec<(u64, AuditCheckpoint)>, ReplayError> {
    let mut out = Vec::new();
    let key = format!("{}/{}", kind.name(), partition);
    scan(
        setup.bus.as_ref(),
        topics::AUDIT_CHECKPOINTS,
        partition,
        0,
        |r| {
            if r.key == key.as_bytes() {
                let checkpoint: AuditCheckpoint =
                    setup.registry.decode_single(&r.value).map_err(|e| {
                        ReplayError::Other(format!(
                            "{}/{partition}@{}: checkpoint does not decode: {e}",
                            topics::AUDIT_CHECKPOINTS,
                            r.offset
                        ))
                    })?;
                out.push((r.offset, checkpoint));
            }
            Ok::<_, ReplayError>(true)
        },
    )?;
    Ok(out)
}

fn offset(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The records of `topic/partition` with offsets `from..=to`. A checkpoint
/// covers one live batch, which at a low rate holds one or two claims:
/// reading a bus read's worth (4,096 records) past it for each, as a scan
/// did, made replay of a run at 3x the mean cost 3.6 ms of CPU a claim
/// (docs/performance.md, "Kept, and what each gave").
fn read_range(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    from: u64,
    to: u64,
) -> Result<Vec<Record>, BusError> {
    let mut out = Vec::new();
    let mut position = from;
    read_until(
        bus,
        topic,
        partition,
        &mut position,
        Some(to.saturating_add(1)),
        |r| {
            out.push(r);
        },
    )?;
    Ok(out)
}

fn watermark_json(w: &[RefOffset]) -> Value {
    Value::Array(
        w.iter()
            .map(|r| serde_json::json!({"topic": r.topic, "partition": r.partition, "offset": r.offset}))
            .collect(),
    )
}

/// The FSE an event is about, from its rendering.
pub fn fse_id_of(v: &Value) -> Option<String> {
    [
        v.pointer("/decision/fse_id"),
        v.pointer("/fse_id"),
        v.pointer("/fse/fse_id"),
        v.pointer("/header/correlation_id"),
    ]
    .into_iter()
    .flatten()
    .find_map(|x| x.as_str().map(str::to_owned))
}

/// Replays one stage partition from `start` (empty state, or a snapshot's
/// store) and compares. `progress` counts inputs replayed.
pub fn verify_partition(
    setup: &Setup,
    kind: StageKind,
    partition: u32,
    start: MemStore,
    progress: &AtomicU64,
) -> Result<PartitionReport, ReplayError> {
    let started = std::time::Instant::now();
    let mut replay = PartitionReplay::new(setup, kind, partition, &start)?;
    for (_, checkpoint) in checkpoints(setup, kind, partition)? {
        if let Some(d) = replay.checkpoint(checkpoint, progress)? {
            replay.report.divergence = Some(d);
            break;
        }
    }
    if replay.report.divergence.is_none() {
        replay.finish()?;
    }
    let mut report = replay.report;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs `f` with the stage context a batch ran with: `rules`, the reference
/// data of `refs`, signatures checked against its PKI unless `trust_unsigned`.
pub(crate) fn with_context<R>(
    setup: &Setup,
    rules: &Rules,
    refs: &GlobalRefs,
    trust_unsigned: bool,
    f: impl FnOnce(&Context<'_>) -> R,
) -> R {
    let verifier = PkiVerifier {
        pki: &refs.pki,
        registry: &setup.registry,
    };
    let trust = TrustUnsigned;
    let view = RefView {
        signatures: if trust_unsigned { &trust } else { &verifier },
        institutions: &refs.institutions,
    };
    f(&Context {
        rules,
        refs: &view,
        pseudonyms: &setup.pseudonyms,
    })
}

/// One stage partition's replay as it goes: the state of the batches known
/// committed, the batch run but not yet known to be, the recorded outputs
/// still to compare, and the report.
struct PartitionReplay<'a> {
    setup: &'a Setup,
    kind: StageKind,
    partition: u32,
    store: &'a MemStore,
    cursor: Cursor,
    /// Where the starting store's `ref.rights` stood (a snapshot's position).
    snapshot_refs: u64,
    recorded: Vec<Recorded>,
    refs: GlobalRefs,
    restore: Option<Restore>,
    pending: Option<Pending>,
    stats: WorkerStats,
    report: PartitionReport,
}

/// The reference data a batch ran with: its watermark, and the outputs
/// reference data gave before the batch's records (entitlement's rights
/// dead letters).
struct BatchReference {
    watermark: Vec<RefOffset>,
    prelude: Vec<(Source, Output)>,
}

/// A checkpointed batch run again: its outputs (none when its inputs are
/// missing), and the cursor and restore state before and after it.
struct Rerun {
    output: Option<BatchOutput>,
    next: Cursor,
    restore_before: Option<Restore>,
    restore_after: Option<Restore>,
}

impl<'a> PartitionReplay<'a> {
    fn new(
        setup: &'a Setup,
        kind: StageKind,
        partition: u32,
        store: &'a MemStore,
    ) -> Result<PartitionReplay<'a>, ReplayError> {
        let cursor = Cursor::load(store)?;
        let snapshot_refs = {
            let txn = StateTxn::new(store);
            clearing_pipeline::runtime::refs::rights_position(&txn)?
        };
        let recorded = kind
            .output_topics()
            .into_iter()
            .map(|topic| Recorded {
                topic,
                partition,
                kind,
                position: 0,
                buffer: VecDeque::new(),
                skip_before: cursor.applied,
                skip_refs_before: snapshot_refs,
            })
            .collect();
        let report = PartitionReport {
            stage: kind.name().to_string(),
            partition,
            chain_hash: hex::encode(cursor.chain.hash),
            chain_length: cursor.chain.count,
            ..PartitionReport::default()
        };
        Ok(PartitionReplay {
            setup,
            kind,
            partition,
            store,
            cursor,
            snapshot_refs,
            recorded,
            refs: GlobalRefs::default(),
            restore: None,
            pending: None,
            stats: WorkerStats::default(),
            report,
        })
    }

    /// Re-runs the batch `checkpoint` names and compares its outputs and
    /// chain with the record; a divergence ends the replay.
    fn checkpoint(
        &mut self,
        checkpoint: AuditCheckpoint,
        progress: &AtomicU64,
    ) -> Result<Option<Divergence>, ReplayError> {
        let batch = (
            offset(checkpoint.input_offset_from),
            offset(checkpoint.input_offset_to),
        );
        let (from, to) = batch;
        self.settle_pending(from)?;
        if to < self.cursor.raw {
            return Ok(None);
        }
        self.report.checkpoints += 1;
        let mut txn = StateTxn::new(self.store);
        let rerun = self.rerun(&checkpoint, batch, &mut txn)?;
        let Some(output) = rerun.output else {
            return Ok(Some(Divergence {
                kind: "inputs_missing".into(),
                message: format!(
                    "checkpoint covers inputs {from}..={to} but none of them is on the bus"
                ),
                ..divergence(self.kind, self.partition, batch)
            }));
        };
        progress.fetch_add(output.processed as u64, Ordering::Relaxed);
        self.report.inputs += output.processed as u64;
        self.report.first_input.get_or_insert(output.first);
        self.report.last_input = Some(output.last);
        // Each emitted output against the next recorded one of its topic.
        if let Some(mut d) = self.compare_outputs(&checkpoint, batch, &output)? {
            // An output that differs may follow from reference records the
            // compaction removed: then that is the reason, not the stage.
            let missing = missing_reference(
                self.setup.bus.as_ref(),
                &checkpoint.ref_watermark,
                self.snapshot_refs,
            )?;
            if !missing.is_empty() {
                explain_missing_reference(&mut d, missing);
            }
            return Ok(Some(d));
        }
        if let Some(d) = self.chain_differs(&checkpoint, batch, &rerun.next) {
            return Ok(Some(d));
        }
        self.report.chain_hash = hex::encode(rerun.next.chain.hash);
        self.report.chain_length = rerun.next.chain.count;
        self.pending = Some(Pending {
            on_bus: on_bus(&output, rerun.restore_before.as_ref()),
            checkpoint,
            writes: txn.into_writes(),
            cursor: rerun.next,
            restore: rerun.restore_after,
        });
        Ok(None)
    }

    /// The batch run before the one starting at `from`: committed if this
    /// one starts after it; cut by a crash before its commit otherwise, and
    /// then the live stage re-ran from the committed state, its outputs
    /// found on the bus.
    fn settle_pending(&mut self, from: u64) -> Result<(), ReplayError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        if from > offset(p.checkpoint.input_offset_to) {
            self.store.apply(&p.writes)?;
            self.cursor = p.cursor;
            self.restore = p.restore;
        } else {
            self.report.crash_reruns += 1;
            let mut emitted = self.restore.take().map(|r| r.emitted).unwrap_or_default();
            emitted.extend(p.on_bus);
            self.restore = Restore::from_emitted(emitted);
        }
        Ok(())
    }

    /// Runs the batch again over its recorded inputs, with the reference
    /// data as the live batch saw it.
    fn rerun(
        &mut self,
        checkpoint: &AuditCheckpoint,
        (from, to): (u64, u64),
        txn: &mut StateTxn<'_>,
    ) -> Result<Rerun, ReplayError> {
        // A validation batch that read no PKI ran in simulation mode.
        let unchecked = self.kind == StageKind::Validation
            && !checkpoint
                .ref_watermark
                .iter()
                .any(|r| r.topic == topics::REF_PKI);
        if unchecked {
            self.report.unchecked(from, to);
        }
        let trust_unsigned = self.setup.trust_unsigned || unchecked;
        let BatchReference { watermark, prelude } =
            self.reference(checkpoint, trust_unsigned, txn)?;
        let bus = self.setup.bus.as_ref();
        let records = read_range(bus, self.kind.input_topic(), self.partition, from, to)?;
        let mut next = self.cursor;
        let restore_before = self.restore.clone();
        let mut restore_after = self.restore.clone();
        let input = BatchInput {
            kind: self.kind,
            partition: self.partition,
            records: &records,
            prelude,
            watermark: &watermark,
            registry: &self.setup.registry,
            record_limit: bus.max_record_bytes(),
        };
        let stats = &mut self.stats;
        let rules = self.setup.rules_for(&checkpoint.rules_version)?;
        let output = with_context(self.setup, &rules, &self.refs, trust_unsigned, |ctx| {
            run_batch(input, ctx, &mut next, &mut restore_after, txn, stats)
        })?;
        Ok(Rerun {
            output,
            next,
            restore_before,
            restore_after,
        })
    }

    /// The reference data up to the checkpoint's watermark; for entitlement,
    /// the rights applied to the batch's state, and the dead letters they
    /// gave, which precede the batch's outputs.
    fn reference(
        &mut self,
        checkpoint: &AuditCheckpoint,
        trust_unsigned: bool,
        txn: &mut StateTxn<'_>,
    ) -> Result<BatchReference, ReplayError> {
        let (bus, registry) = (self.setup.bus.as_ref(), self.setup.registry.as_ref());
        let mut watermark = self.refs.advance(
            bus,
            registry,
            self.kind,
            trust_unsigned,
            Some(&checkpoint.ref_watermark),
            &mut self.stats,
        )?;
        let mut prelude = Vec::new();
        if self.kind == StageKind::Entitlement {
            let until = watermark_position(
                &checkpoint.ref_watermark,
                topics::REF_RIGHTS,
                self.partition,
            );
            let (applied_to, dead_letters) = apply_rights(
                bus,
                registry,
                &self.setup.pseudonyms,
                self.partition,
                Some(until.unwrap_or(0)),
                txn,
                &mut self.stats,
            )?;
            watermark.push(applied_to);
            prelude = dead_letters;
        }
        Ok(BatchReference { watermark, prelude })
    }

    /// Each output the replay emits against the next recorded one of its
    /// topic: the first that differs, or that the record lacks.
    fn compare_outputs(
        &mut self,
        checkpoint: &AuditCheckpoint,
        batch: (u64, u64),
        output: &BatchOutput,
    ) -> Result<Option<Divergence>, ReplayError> {
        for (emitted, source) in output.emit.iter().zip(&output.emit_sources) {
            let Some(stream) = self.recorded.iter_mut().find(|r| r.topic == emitted.topic) else {
                return Err(ReplayError::Other(format!(
                    "{} wrote to {}, not one of its output topics",
                    self.kind.name(),
                    emitted.topic
                )));
            };
            let found = stream.next(self.setup.bus.as_ref(), &self.setup.registry)?;
            self.report.outputs_compared += 1;
            if let Some((_, record)) = &found
                && record.value == emitted.value
            {
                continue;
            }
            return Ok(Some(self.output_divergence(
                checkpoint,
                batch,
                emitted,
                source,
                found.as_ref(),
            )));
        }
        Ok(None)
    }

    /// An emitted output that differs from the recorded one `found` (or
    /// that has none), both rendered, their fields compared, with the rules
    /// and reference versions each ran with.
    fn output_divergence(
        &self,
        checkpoint: &AuditCheckpoint,
        batch: (u64, u64),
        output: &Output,
        source: &Source,
        found: Option<&(Source, Record)>,
    ) -> Divergence {
        let registry = self.setup.registry.as_ref();
        let replayed = render_full(registry, output.topic, &output.value).ok();
        let recorded_value = found.map(|(_, r)| {
            render_full(registry, output.topic, &r.value)
                .unwrap_or_else(|e| serde_json::json!({"undecodable": e.to_string()}))
        });
        let header = |v: &Option<Value>, field: &str| {
            v.as_ref()
                .and_then(|v| v.pointer(&format!("/header/{field}")))
                .cloned()
        };
        let mut d = Divergence {
            kind: if found.is_some() {
                "output_differs".into()
            } else {
                "output_not_recorded".into()
            },
            input_offset: match source {
                Source::Input(o, _) => Some(*o),
                Source::Ref(_) => None,
            },
            topic: Some(output.topic.to_string()),
            recorded_offset: found.map(|(_, r)| r.offset),
            fse_id: replayed
                .as_ref()
                .and_then(fse_id_of)
                .or_else(|| recorded_value.as_ref().and_then(fse_id_of)),
            fields: match (&recorded_value, &replayed) {
                (Some(a), Some(b)) => diff(a, b),
                _ => Vec::new(),
            },
            recorded_rules_version: header(&recorded_value, "rules_version")
                .and_then(|v| v.as_str().map(str::to_owned))
                .or_else(|| Some(checkpoint.rules_version.clone())),
            replayed_rules_version: header(&replayed, "rules_version")
                .and_then(|v| v.as_str().map(str::to_owned))
                .or_else(|| {
                    self.setup
                        .rules_for(&checkpoint.rules_version)
                        .ok()
                        .map(|r| r.version.clone())
                }),
            recorded_ref_watermark: header(&recorded_value, "ref_watermark")
                .or_else(|| Some(watermark_json(&checkpoint.ref_watermark))),
            replayed_ref_watermark: header(&replayed, "ref_watermark"),
            recorded: recorded_value,
            replayed,
            ..divergence(self.kind, self.partition, batch)
        };
        d.message = self.output_message(output, source, found, d.fields.len());
        d
    }

    /// What differs between an emitted output and the recorded one.
    fn output_message(
        &self,
        output: &Output,
        source: &Source,
        found: Option<&(Source, Record)>,
        fields: usize,
    ) -> String {
        match found {
            None => format!(
                "the replay emits an event to {} that is not on the bus",
                output.topic
            ),
            Some((recorded_source, r)) if recorded_source == source => format!(
                "{}/{}@{} differs from the replay ({fields} field(s))",
                output.topic, self.partition, r.offset,
            ),
            Some((recorded_source, r)) => format!(
                "the replay emits to {} for {:?} where the record has {}/{}@{} for {:?}",
                output.topic, source, output.topic, self.partition, r.offset, recorded_source
            ),
        }
    }

    /// Outputs as recorded, but the checkpoint's chain is not theirs.
    fn chain_differs(
        &self,
        checkpoint: &AuditCheckpoint,
        (from, to): (u64, u64),
        next: &Cursor,
    ) -> Option<Divergence> {
        if next.chain.hash == checkpoint.chain_hash
            && i64::try_from(next.chain.count).ok() == Some(checkpoint.output_count)
        {
            return None;
        }
        Some(Divergence {
            kind: "chain_differs".into(),
            message: format!(
                "every output of inputs {from}..={to} is as recorded, but the checkpoint's chain ({} after {} outputs) is not the chain of those outputs ({} after {})",
                hex::encode(checkpoint.chain_hash),
                checkpoint.output_count,
                hex::encode(next.chain.hash),
                next.chain.count
            ),
            recorded_rules_version: Some(checkpoint.rules_version.clone()),
            replayed_rules_version: self
                .setup
                .rules_for(&checkpoint.rules_version)
                .ok()
                .map(|r| r.version.clone()),
            ..divergence(self.kind, self.partition, (from, to))
        })
    }

    /// After the last checkpoint: its batch taken as committed, and what
    /// the bus holds beyond it (not compared).
    fn finish(&mut self) -> Result<(), ReplayError> {
        if let Some(p) = self.pending.take() {
            self.store.apply(&p.writes)?;
            self.cursor = p.cursor;
        }
        let bus = self.setup.bus.as_ref();
        self.report.uncommitted_inputs = bus
            .end_offset(self.kind.input_topic(), self.partition)?
            .saturating_sub(self.cursor.raw);
        for r in &mut self.recorded {
            while r.next(bus, &self.setup.registry)?.is_some() {
                self.report.uncovered_outputs += 1;
            }
        }
        Ok(())
    }
}

/// Every output of a batch as it is on the bus, by (topic, source): a
/// suppressed output (re-run after a crash) as the live run emitted it.
fn on_bus(
    output: &BatchOutput,
    restore_before: Option<&Restore>,
) -> BTreeMap<(&'static str, Source), Vec<u8>> {
    output
        .chained
        .iter()
        .map(|(source, output)| {
            let bytes = restore_before
                .and_then(|r| r.emitted.get(&(output.topic, *source)))
                .cloned()
                .unwrap_or_else(|| output.value.clone());
            ((output.topic, *source), bytes)
        })
        .collect()
}

fn divergence(kind: StageKind, partition: u32, batch: (u64, u64)) -> Divergence {
    Divergence {
        kind: String::new(),
        stage: kind.name().to_string(),
        partition,
        batch,
        input_offset: None,
        topic: None,
        recorded_offset: None,
        fse_id: None,
        fields: Vec::new(),
        recorded: None,
        replayed: None,
        recorded_rules_version: None,
        replayed_rules_version: None,
        recorded_ref_watermark: None,
        replayed_ref_watermark: None,
        missing_reference: Vec::new(),
        message: String::new(),
    }
}

/// The partitions of a batch's reference watermark that no longer hold every
/// record below it. The reference topics are compacted: the broker keeps only
/// each key's latest record, so once the same keys are written again (a later
/// run publishing the same reference data, a rights record changed) its
/// cleaner removes the records the batch read, and the reference data the
/// batch decided with can no longer be rebuilt from the bus. `rights_from` is
/// where the replay's `ref.rights` state starts (a snapshot's position).
pub fn missing_reference(
    bus: &dyn Bus,
    watermark: &[RefOffset],
    rights_from: u64,
) -> Result<Vec<MissingReference>, BusError> {
    let mut out = Vec::new();
    for w in watermark {
        let (Ok(partition), Ok(until)) = (u32::try_from(w.partition), u64::try_from(w.offset))
        else {
            continue;
        };
        let from = if w.topic == topics::REF_RIGHTS {
            rights_from
        } else {
            0
        };
        if until <= from {
            continue;
        }
        let mut position = from;
        let mut present = 0u64;
        read_until(bus, &w.topic, partition, &mut position, Some(until), |_| {
            present += 1;
        })?;
        let missing = (until - from).saturating_sub(present);
        if missing > 0 {
            out.push(MissingReference {
                topic: w.topic.clone(),
                partition,
                from,
                watermark: until,
                missing,
            });
        }
    }
    Ok(out)
}

/// Names, in an output divergence, the reference records the batch read that
/// are gone: the replay decided without them, so the difference it found is no
/// evidence against the stage or the record.
fn explain_missing_reference(d: &mut Divergence, missing: Vec<MissingReference>) {
    let gaps: Vec<String> = missing
        .iter()
        .map(|m| {
            format!(
                "{}/{}: {} of the offsets {}..{} hold no record",
                m.topic, m.partition, m.missing, m.from, m.watermark
            )
        })
        .collect();
    d.kind = REFERENCE_COMPACTED.into();
    d.message = format!(
        "the reference data this batch decided with is no longer on the bus ({}): the \
         reference topics are compacted, so once the same keys were written again (a later run \
         publishing the same reference data, or a changed record) the broker removed the records \
         this batch read, and its outputs cannot be re-derived from this bus (replay an archive \
         taken before the compaction, docs/audit.md); without them the replay finds: {}",
        gaps.join("; "),
        d.message
    );
    d.missing_reference = missing;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_batches_merge_when_adjacent_or_rerun() {
        let mut p = PartitionReport::default();
        p.unchecked(0, 9);
        p.unchecked(10, 19);
        // Re-run after a crash: starts inside the last batch.
        p.unchecked(15, 24);
        p.unchecked(40, 49);
        let range = |from, to, batches| UncheckedRange { from, to, batches };
        assert_eq!(p.unchecked_signatures, [range(0, 24, 3), range(40, 49, 1)]);
        assert_eq!(p.unchecked_inputs(), 35);
    }
}
