//! One batch of one stage partition, with no I/O: the core that the live
//! worker and the audit replay share, so that replaying is running the same
//! code, not a copy of it.
//!
//! A batch takes the partition's [`Cursor`] (applied offset, downstream
//! filter mark, hash chain — all kept in the stage state, so in its changelog
//! too), the records, and the outputs reference data gave before them (dead
//! letters of `ref.rights`). It returns the outputs to emit, the checkpoint
//! to publish after them, and leaves every state write in the overlay.

use std::borrow::Cow;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::process::{
    Inputs, Output, header_source, output_ordinal, output_watermark, process, single_producer,
};
use super::{StageKind, WorkerStats, topics};
use crate::bus::Record;
use crate::events::model::{AuditCheckpoint, RefOffset, SourceRef};
use crate::events::registry::SchemaRegistry;
use crate::events::wire;
use crate::stages::Context;
use crate::state::{StateRead, StateTxn, StoreError};

use crate::state::keys::reserved::{APPLIED, APPLIED_RAW, CHAIN, UPSTREAM};

/// The hash chain over a stage partition's outputs, in emission order:
/// `H_n = SHA-256(H_{n-1} || bytes_n)`, `H_0` = 32 zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub hash: [u8; 32],
    pub count: u64,
}

impl Chain {
    pub const GENESIS: Chain = Chain {
        hash: [0; 32],
        count: 0,
    };

    pub fn push(&mut self, bytes: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.hash);
        hasher.update(bytes);
        self.hash = hasher.finalize().into();
        self.count += 1;
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.hash.to_vec();
        out.extend_from_slice(&self.count.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Chain> {
        let hash: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let count = u64::from_be_bytes(bytes.get(32..40)?.try_into().ok()?);
        (bytes.len() == 40).then_some(Chain { hash, count })
    }
}

/// Where a stage partition stands: everything the next batch depends on
/// besides the stage's own keys.
///
/// An input is known by its **position**: how many records of its partition
/// come before it. Outputs name their input by it, the chain and the
/// downstream filter follow it. It is the bus offset wherever offsets are
/// dense (the local log, topics written without transactions); where a
/// topic's offsets have gaps (Kafka transactions write a marker that takes
/// an offset, and commit points follow timing), the position keeps two runs
/// of the same records stamping the same bytes. The bus offset is kept
/// beside it, to read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Position of the next input to apply.
    pub applied: u64,
    /// Bus offset to read the next input from (`applied` when dense).
    pub raw: u64,
    /// Highest upstream source offset processed (downstream duplicate filter).
    pub upstream_mark: Option<u64>,
    pub chain: Chain,
}

pub(crate) fn get_u64(store: &dyn StateRead, key: &[u8]) -> Result<Option<u64>, StoreError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => {
            let array: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(key, "not an 8-byte offset"))?;
            Ok(Some(u64::from_be_bytes(array)))
        }
    }
}

fn corrupt(key: &[u8], what: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        what: what.into(),
    }
}

impl Cursor {
    pub const START: Cursor = Cursor {
        applied: 0,
        raw: 0,
        upstream_mark: None,
        chain: Chain::GENESIS,
    };

    pub fn load(store: &dyn StateRead) -> Result<Cursor, StoreError> {
        let chain = match store.get(CHAIN)? {
            None => Chain::GENESIS,
            Some(bytes) => {
                Chain::decode(&bytes).ok_or_else(|| corrupt(CHAIN, "not a 40-byte chain"))?
            }
        };
        let applied = get_u64(store, APPLIED)?.unwrap_or(0);
        Ok(Cursor {
            applied,
            raw: get_u64(store, APPLIED_RAW)?.unwrap_or(applied),
            upstream_mark: get_u64(store, UPSTREAM)?,
            chain,
        })
    }

    fn store(&self, txn: &mut StateTxn<'_>) {
        txn.put(APPLIED.to_vec(), self.applied.to_be_bytes().to_vec());
        // Gaps only grow, so a key once written is never stale.
        if self.raw != self.applied {
            txn.put(APPLIED_RAW.to_vec(), self.raw.to_be_bytes().to_vec());
        }
        if let Some(mark) = self.upstream_mark {
            txn.put(UPSTREAM.to_vec(), mark.to_be_bytes().to_vec());
        }
        txn.put(CHAIN.to_vec(), self.chain.encode());
    }
}

/// What an output follows from: an input offset and the output's ordinal
/// among that input's outputs to its topic (a close writes many orders to
/// one topic, and a crash may leave any prefix of them written), or a
/// reference record (a `ref.rights` dead letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Input(u64, u32),
    Ref(u64),
}

/// Restore mode after a crash: the outputs already on the bus, by (topic,
/// source), with their bytes. Outputs of one batch go to several partitions,
/// whose writes a crash can leave in any combination, so each output is
/// checked; the chain takes the bytes that are on the bus.
#[derive(Debug, Clone, Default)]
pub struct Restore {
    /// Restore mode ends once the cursor has passed this input offset.
    pub until: u64,
    pub emitted: BTreeMap<(&'static str, Source), Vec<u8>>,
    /// The reference watermark the outputs on the bus were decided at (one
    /// batch's, so one watermark). The batch is run again at it: reference
    /// data published since the crash would otherwise decide an input whose
    /// outcome is already out differently, and the suppression, keyed by
    /// topic and source, would let the second outcome through.
    pub watermark: Option<Vec<RefOffset>>,
}

impl Restore {
    /// `None` when nothing was found (no crash to recover from).
    pub fn from_emitted(emitted: BTreeMap<(&'static str, Source), Vec<u8>>) -> Option<Restore> {
        if emitted.is_empty() {
            return None;
        }
        let watermark = emitted
            .iter()
            .find_map(|((topic, _), value)| output_watermark(topic, value));
        let until = emitted
            .keys()
            .filter_map(|(_, s)| match s {
                Source::Input(o, _) => Some(*o),
                Source::Ref(_) => None,
            })
            .max()
            .unwrap_or(0);
        Some(Restore {
            until,
            emitted,
            watermark,
        })
    }
}

/// A committed batch's outputs, for the shell to publish.
#[derive(Debug)]
pub struct BatchOutput {
    /// To produce now, in this order.
    pub emit: Vec<Output>,
    /// What each of `emit` follows from.
    pub emit_sources: Vec<Source>,
    /// To produce once `emit` is acknowledged: a checkpoint present on the
    /// bus means every output of its batch is there.
    pub checkpoint: Output,
    /// Every output of the batch in chain order with its source, suppressed
    /// ones included (replay compares them).
    pub chained: Vec<(Source, Output)>,
    pub first: u64,
    pub last: u64,
    pub processed: usize,
}

/// What a batch runs with.
pub struct BatchInput<'a> {
    pub kind: StageKind,
    pub partition: u32,
    pub records: &'a [Record],
    /// Outputs reference data gave before the records, in order.
    pub prelude: Vec<(Source, Output)>,
    pub watermark: &'a [RefOffset],
    pub registry: &'a SchemaRegistry,
    /// The bus's record limit ([`Bus::max_record_bytes`]): dead letters
    /// are cut to fit it.
    ///
    /// [`Bus::max_record_bytes`]: crate::bus::Bus::max_record_bytes
    pub record_limit: usize,
}

/// Runs one batch: inputs before the cursor are skipped, upstream
/// duplicates dropped, each input through the pure stage; outputs found in
/// `restore` are suppressed but chained with the bytes on the bus. Returns
/// `None` when no input was at or after the cursor (the overlay is then to
/// be dropped).
pub fn run_batch(
    mut input: BatchInput<'_>,
    ctx: &Context<'_>,
    cursor: &mut Cursor,
    restore: &mut Option<Restore>,
    txn: &mut StateTxn<'_>,
    stats: &mut WorkerStats,
) -> Result<Option<BatchOutput>, StoreError> {
    let kind = input.kind;
    let mut next = *cursor;
    let mut chained: Vec<(Source, Output)> = std::mem::take(&mut input.prelude);
    let mut first = None;
    let mut last = None;
    let mut processed = 0;
    // The topics an input's events may name as their source: the inputs of
    // the stages that write it.
    let upstream: Vec<&str> = StageKind::ALL
        .into_iter()
        .filter(|s| s.output_topics().contains(&kind.input_topic()))
        .map(StageKind::input_topic)
        .collect();
    for raw in input.records {
        if raw.offset < next.raw {
            continue;
        }
        first.get_or_insert(raw.offset);
        last = Some(raw.offset);
        // The input's position; a copy only where it is not its offset.
        let position = next.applied;
        next.applied += 1;
        next.raw = raw.offset + 1;
        let record: Cow<'_, Record> = if raw.offset == position {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(Record {
                offset: position,
                ..raw.clone()
            })
        };
        let record = record.as_ref();
        processed += 1;
        stats.inputs += 1;
        let inputs = Inputs {
            stage: kind,
            record,
            registry: input.registry,
            ref_watermark: input.watermark,
            record_limit: input.record_limit,
        };
        let outputs = run_input(&inputs, &upstream, &mut next.upstream_mark, txn, ctx, stats)?;
        for output in outputs {
            let ordinal = output_ordinal(output.topic, &output.value);
            chained.push((Source::Input(record.offset, ordinal), output));
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(None);
    };
    let (emit, emit_sources) = chain_outputs(&chained, restore.as_ref(), &mut next.chain, stats);
    next.store(txn);
    if restore.as_ref().is_some_and(|r| next.applied > r.until) {
        *restore = None;
    }
    *cursor = next;
    let checkpoint = checkpoint(&input, ctx, (first, last), &next.chain);
    Ok(Some(BatchOutput {
        emit,
        emit_sources,
        checkpoint,
        chained,
        first,
        last,
        processed,
    }))
}

/// One input of a batch through its stage, with the checks before it: a
/// source no writer of the partition reads is refused, and an upstream
/// duplicate below `upstream_mark` dropped. Returns its outputs.
fn run_input(
    inputs: &Inputs<'_>,
    upstream: &[&str],
    upstream_mark: &mut Option<u64>,
    txn: &mut StateTxn<'_>,
    ctx: &Context<'_>,
    stats: &mut WorkerStats,
) -> Result<Vec<Output>, StoreError> {
    let (kind, record) = (inputs.stage, inputs.record);
    let source = header_source(record);
    if let Some(error) = source
        .as_ref()
        .and_then(|s| foreign_source(s, record, upstream))
    {
        stats.dead_letters += 1;
        return Ok(inputs.dead_letter(error).outputs);
    }
    // Downstream filter: an upstream output at or below the mark is a
    // duplicate a zombie owner wrote; identical, so dropped. The mark moves
    // only past an event the stage took (a record that does not decode
    // whole could carry any offset in its header).
    let sequenced = source
        .filter(|_| single_producer(&record.topic))
        .and_then(|s| u64::try_from(s.offset).ok());
    if let Some(offset) = sequenced
        && upstream_mark.is_some_and(|mark| offset <= mark)
    {
        stats.duplicates_dropped += 1;
        return Ok(Vec::new());
    }
    let result = process(inputs, txn, ctx)?;
    if result.duplicate {
        stats.duplicates_dropped += 1;
    }
    stats.keys_expired += result.expired;
    if let Some(offset) = sequenced
        && !result.outputs.iter().any(|o| o.topic == kind.dlq_topic())
    {
        *upstream_mark = Some(offset);
    }
    for output in &result.outputs {
        match output.topic {
            t if t == kind.dlq_topic() => stats.dead_letters += 1,
            t if t == topics::FSE_REJECTED => stats.rejected += 1,
            _ => stats.passed += 1,
        }
    }
    Ok(result.outputs)
}

/// Why an event's named source is refused, if it is: no writer of the
/// record's partition reads it (refused before its offset can reach the
/// duplicate filter).
fn foreign_source(source: &SourceRef, record: &Record, upstream: &[&str]) -> Option<String> {
    let ours = upstream.contains(&source.topic.as_str())
        && u64::try_from(source.partition).ok() == Some(u64::from(record.partition));
    (!ours).then(|| {
        format!(
            "the event's source {:.64}/{} is not an input of a stage writing {}/{}",
            source.topic, source.partition, record.topic, record.partition
        )
    })
}

/// Chains a batch's outputs in order and returns those to emit with their
/// sources; an output found on the bus by a restore is chained with the
/// bytes there, and not emitted again.
fn chain_outputs(
    chained: &[(Source, Output)],
    restore: Option<&Restore>,
    chain: &mut Chain,
    stats: &mut WorkerStats,
) -> (Vec<Output>, Vec<Source>) {
    let mut emit = Vec::with_capacity(chained.len());
    let mut emit_sources = Vec::with_capacity(chained.len());
    for (source, output) in chained {
        match restore.and_then(|r| r.emitted.get(&(output.topic, *source))) {
            Some(on_bus) => {
                stats.restored_outputs_suppressed += 1;
                chain.push(on_bus);
            }
            None => {
                chain.push(&output.value);
                emit.push(output.clone());
                emit_sources.push(*source);
            }
        }
    }
    (emit, emit_sources)
}

/// The batch's checkpoint on `audit.checkpoints`: its input range, the
/// chain after it, the rules and reference data it ran on.
fn checkpoint(
    input: &BatchInput<'_>,
    ctx: &Context<'_>,
    (first, last): (u64, u64),
    chain: &Chain,
) -> Output {
    let checkpoint = AuditCheckpoint {
        stage: input.kind.name().to_string(),
        partition: wire::partition(input.partition),
        input_offset_from: wire::offset(first),
        input_offset_to: wire::offset(last),
        output_count: wire::offset(chain.count),
        chain_hash: chain.hash,
        rules_version: ctx.rules.version.clone(),
        ref_watermark: input.watermark.to_vec(),
    };
    Output {
        topic: topics::AUDIT_CHECKPOINTS,
        key: format!("{}/{}", input.kind.name(), input.partition).into_bytes(),
        value: input.registry.encode_single(&checkpoint),
        timestamp_millis: input.records.last().map_or(0, |r| r.timestamp_millis),
        reason_code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_sha256_of_the_previous_hash_and_the_bytes() {
        let mut chain = Chain::GENESIS;
        chain.push(b"a");
        let mut hasher = Sha256::new();
        hasher.update([0u8; 32]);
        hasher.update(b"a");
        let expected: [u8; 32] = hasher.finalize().into();
        assert_eq!(chain.hash, expected);
        assert_eq!(chain.count, 1);
        chain.push(b"b");
        assert_ne!(chain.hash, expected);
        assert_eq!(Chain::decode(&chain.encode()), Some(chain));
        assert_eq!(Chain::decode(&chain.encode()[..39]), None);
    }

    #[test]
    fn a_cursor_round_trips_through_the_state() {
        let store = crate::state::MemStore::default();
        assert_eq!(Cursor::load(&store).ok(), Some(Cursor::START));
        let mut chain = Chain::GENESIS;
        chain.push(b"x");
        for raw in [42, 45] {
            let store = crate::state::MemStore::default();
            let cursor = Cursor {
                applied: 42,
                raw,
                upstream_mark: Some(7),
                chain,
            };
            let mut txn = StateTxn::new(&store);
            cursor.store(&mut txn);
            let writes = txn.into_writes();
            // Dense offsets write the state they wrote before positions.
            assert_eq!(writes.contains_key(APPLIED_RAW), raw != 42);
            crate::state::StateStore::apply(&store, &writes).ok();
            assert_eq!(Cursor::load(&store).ok(), Some(cursor));
        }
    }
}
