//! The imperative shell around a stage: a worker serves its share of the
//! stage's partitions ([`Member`]; one worker, all of them, by default) with
//! stores, offsets, reference data and restore (design.md §3). The batch itself — cursor, pure
//! stage, hash chain, checkpoint — is [`super::batch`], shared with replay.
//!
//! Per assigned partition and batch:
//! 1. apply reference data to its end (the batch's watermark) and run the
//!    batch into one state overlay (outputs already on the bus after a crash
//!    are suppressed, and chained with the bytes found there);
//! 2. produce the outputs and wait for the acks; then the checkpoint
//!    (`audit.checkpoints`) and the changelog (ended by a commit marker),
//!    acknowledged: after every partition's outputs of the poll, and in a
//!    chain after every stage's, so that one flush carries them all
//!    ([`StageWorker::run`], [`StageWorker::send_commits`]);
//! 3. apply the overlay (cursor and output ends included) to the in-memory
//!    state; sled receives it behind the stage, coalesced (state/mirror.rs);
//! 4. commit the consumer offset (informational).
//!
//! A partition arriving is caught up from the stage's changelog, whole
//! batches only, from where its sled copy stopped (from the start with no
//! local store); outputs already emitted are found by reading the output
//! partitions from the ends recorded at the last commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::StageKind;
use super::batch::{BatchInput, BatchOutput, Cursor, Restore, Source, get_u64, run_batch};
use super::changelog;
use super::commit::{Acknowledged, Pending, Ran};
use super::prefetch::Prefetched;
use super::process::{Output, header_source};
use super::refs::{GlobalRefs, RefError, apply_rights, watermark_position};
use crate::bus::{Bus, BusConsumer, BusError, BusProducer, Record, read_until};
use crate::events::model::{DeadLetter, RefOffset};
use crate::events::registry::SchemaRegistry;
use crate::pseudonym::PseudonymKey;
use crate::refdata::{RefView, SignatureVerifier, TrustUnsigned};
use crate::rules::Rules;
use crate::signatures::PkiVerifier;
use crate::stages::Context;
use crate::state::{
    Engine, MemoryParts, Mirror, Persister, RewritePolicy, StateStore, StateTxn, StoreError,
    StoreTree, WriteBatch,
};

use crate::state::keys::reserved::{CHANGELOG_END, OUT_END};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Corrupt(String),
}

impl From<RefError> for RuntimeError {
    fn from(e: RefError) -> RuntimeError {
        match e {
            RefError::Bus(e) => RuntimeError::Bus(e),
            RefError::Store(e) => RuntimeError::Store(e),
        }
    }
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
    /// Threads that verify a validation batch's signatures (the stage's
    /// own included): the machine's cores by default.
    pub verify_threads: usize,
    /// Workers each stage runs in this process (at most one per partition
    /// of its input), each in its own thread over its share of the
    /// partitions: for machines with more cores than stages
    /// (docs/performance.md, "Tried, and not kept").
    pub workers_per_stage: u32,
    /// Where the online services find the stores this process holds
    /// (`clearing serve`); `None` when nothing queries them.
    pub queries: Option<Arc<super::queries::StateDirectory>>,
    /// When a stage's store is rewritten at open to give back sled's dead
    /// space (`state::sled_rewrite`; sled only).
    pub store_rewrite: RewritePolicy,
    /// The engine of the stages' stores (`state::tree`).
    pub store_engine: Engine,
}

pub(super) struct PartitionState {
    /// This partition's fenced producer, where the bus has them: its
    /// batches commit outputs, checkpoint and changelog at once, and a
    /// paused owner's writes are refused once another has taken over.
    pub(super) fenced: Option<Box<dyn BusProducer>>,
    store: Arc<Mirror>,
    cursor: Cursor,
    restore: Option<Restore>,
    /// When the partition ends were last asked of the bus (see [`PROBE_EVERY`]).
    probed: Option<std::time::Instant>,
    /// The consumer position last committed past the cursor (markers).
    committed_past_markers: Option<u64>,
}

/// How often a partition asks the bus for the true ends of its output
/// topics (other stages write to `fse.rejected` too) and of its input (the
/// lag metric). Each is a broker round trip on Kafka; in between, the ends
/// come from the producer's own acknowledgements.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Counters a worker keeps (exported as metrics by the caller).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub inputs: u64,
    pub passed: u64,
    pub rejected: u64,
    pub dead_letters: u64,
    pub duplicates_dropped: u64,
    /// State keys deleted by the insurer's clock (retention).
    pub keys_expired: u64,
    pub restored_outputs_suppressed: u64,
    pub ref_errors: u64,
    pub batches: u64,
    /// State held in memory over sled (writes on their way, the cache, the
    /// key filter) at the last sample, all partitions.
    pub state_memory_bytes: u64,
    /// Of which the key filters and the caches.
    pub state_filter_bytes: u64,
    pub state_cache_bytes: u64,
    /// CPU time of the worker's steps on its thread and of the threads it
    /// verified signatures on, nanoseconds: per-stage CPU whatever the layout.
    pub cpu_ns: u64,
}

/// What the workers of one stage share in a process: its sled database
/// (one file lock, a tree per partition) and the persister that writes it
/// behind them, so a partition handed from one worker to another finds its
/// earlier writes landed ([`Persister::sync`]).
pub struct StageStore {
    db: StoreTree,
    persister: Arc<Persister>,
}

impl StageStore {
    pub fn open(kind: StageKind, shared: &Shared) -> Result<StageStore, RuntimeError> {
        // A corrupt store is moved aside and restored from the changelogs;
        // one bloated by sled's dead space is rewritten.
        let (db, notes) = StoreTree::open_or_rebuild(
            shared.store_engine,
            &shared.state_dir.join(kind.name()),
            "meta",
            shared.store_rewrite,
        )?;
        if let Some(rebuilt) = notes.rebuilt {
            eprintln!("{}: {rebuilt}; restoring from the changelog", kind.name());
        }
        if let Some(rewritten) = notes.rewritten {
            eprintln!("{}: {rewritten}", kind.name());
        }
        let persister = Arc::new(Persister::start(kind.name())?);
        Ok(StageStore { db, persister })
    }
}

/// Which of a stage's workers in this process: `index` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub index: u32,
    pub of: u32,
}

impl WorkerStats {
    /// Adds another worker's counters (a stage's workers summed). Every
    /// worker reads the global reference topics, so a record of them that
    /// does not apply counts once per worker, as it does once per process.
    pub fn add(&mut self, other: &WorkerStats) {
        self.inputs += other.inputs;
        self.passed += other.passed;
        self.rejected += other.rejected;
        self.dead_letters += other.dead_letters;
        self.duplicates_dropped += other.duplicates_dropped;
        self.keys_expired += other.keys_expired;
        self.restored_outputs_suppressed += other.restored_outputs_suppressed;
        self.ref_errors += other.ref_errors;
        self.batches += other.batches;
        self.state_memory_bytes += other.state_memory_bytes;
        self.state_filter_bytes += other.state_filter_bytes;
        self.state_cache_bytes += other.state_cache_bytes;
        self.cpu_ns += other.cpu_ns;
    }
}

pub struct StageWorker {
    kind: StageKind,
    shared: Arc<Shared>,
    db: StoreTree,
    persister: Arc<Persister>,
    consumer: Box<dyn BusConsumer>,
    producer: Box<dyn BusProducer>,
    partitions: BTreeMap<u32, PartitionState>,
    refs: GlobalRefs,
    pub stats: WorkerStats,
    /// When `stats.state_memory_bytes` was last measured.
    memory_sampled: Option<std::time::Instant>,
}

/// What an output record of `kind` on `partition` follows from, if it is
/// one of the stage's: an input (header-first events and dead letters of the
/// input) or a `ref.rights` record (entitlement's reference dead letters).
pub fn output_source(
    registry: &SchemaRegistry,
    record: &Record,
    kind: StageKind,
) -> Option<Source> {
    let input_topic = kind.input_topic();
    if record.topic.starts_with("dlq.") {
        let letter: DeadLetter = registry.decode_single(&record.value).ok()?;
        let offset = u64::try_from(letter.offset).ok()?;
        return if letter.topic == input_topic {
            Some(Source::Input(offset, 0))
        } else if kind == StageKind::Entitlement && letter.topic == super::topics::REF_RIGHTS {
            Some(Source::Ref(offset))
        } else {
            None
        };
    }
    let source = header_source(record)?;
    (source.topic == input_topic
        && u64::try_from(source.partition).ok() == Some(u64::from(record.partition)))
    .then(|| {
        let ordinal = u32::try_from(source.ordinal).ok()?;
        u64::try_from(source.offset)
            .ok()
            .map(|o| Source::Input(o, ordinal))
    })?
}

/// A worker that stops withdraws its stores from the queries: they are no
/// longer kept up to date.
impl Drop for StageWorker {
    fn drop(&mut self) {
        if let Some(queries) = &self.shared.queries {
            for partition in self.partitions.keys() {
                queries.withdraw(self.kind, *partition);
            }
        }
    }
}

impl StageWorker {
    /// A worker of `kind`, member `member` of the stage's group in this
    /// process, over the stage's store.
    pub fn new(
        kind: StageKind,
        shared: Arc<Shared>,
        store: &StageStore,
        member: Member,
    ) -> Result<StageWorker, RuntimeError> {
        let mut consumer = shared.bus.member(
            &format!("{}.{}", shared.group, kind.name()),
            member.index,
            member.of,
        )?;
        consumer.subscribe(&[kind.input_topic()])?;
        let producer = shared.bus.producer()?;
        Ok(StageWorker {
            kind,
            shared,
            db: store.db.clone_handle(),
            persister: store.persister.clone(),
            consumer,
            producer,
            partitions: BTreeMap::new(),
            refs: GlobalRefs::default(),
            stats: WorkerStats::default(),
            memory_sampled: None,
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
        // First fence the partition's earlier owner, so that what is read
        // below is all it will ever have written (its open commit aborted).
        let fenced = self.shared.bus.fenced_producer(&format!(
            "{}.{}.{partition}",
            self.shared.group,
            self.kind.name()
        ))?;
        // Writes of an earlier ownership of this partition land first.
        self.persister.sync()?;
        let tree = self.db.tree(&format!("p{partition}"))?;
        changelog::catch_up(
            self.shared.bus.as_ref(),
            self.producer.as_mut(),
            self.kind,
            &tree,
            partition,
        )?;
        let store = Arc::new(Mirror::open(tree, self.persister.clone())?);
        let cursor = Cursor::load(store.as_ref())?;
        // Restore mode: which outputs are already on the bus past the ends
        // recorded at the last commit (written before a crash).
        let mut emitted = BTreeMap::new();
        for topic in self.kind.output_topics() {
            let key = format!("{OUT_END}{topic}");
            let mut position = get_u64(store.as_ref(), key.as_bytes())?.unwrap_or(0);
            let registry = &self.shared.registry;
            read_until(
                self.shared.bus.as_ref(),
                topic,
                partition,
                &mut position,
                None,
                |r| match output_source(registry, &r, self.kind) {
                    Some(Source::Input(o, _)) if o < cursor.applied => {}
                    Some(source) => {
                        emitted.insert((topic, source), r.value);
                    }
                    None => {}
                },
            )?;
        }
        self.consumer
            .seek(self.kind.input_topic(), partition, cursor.raw)?;
        if let Some(queries) = &self.shared.queries {
            queries.register(self.kind, partition, store.clone());
        }
        self.partitions.insert(
            partition,
            PartitionState {
                fenced,
                store,
                cursor,
                restore: Restore::from_emitted(emitted),
                probed: None,
                committed_past_markers: None,
            },
        );
        Ok(())
    }

    /// One step: polls once, runs what came, and commits it ([`run`] then
    /// [`commit`]). Returns the inputs processed.
    ///
    /// [`run`]: Self::run
    /// [`commit`]: Self::commit
    pub fn step(&mut self, timeout: Duration) -> Result<usize, RuntimeError> {
        let ran = self.run(timeout)?;
        let inputs = ran.inputs();
        if ran.has_batches() {
            self.commit(ran)?;
        }
        Ok(inputs)
    }

    /// Polls once and runs what came, each partition's batch to its outputs
    /// sent; the commit follows in [`commit`](Self::commit).
    pub fn run(&mut self, timeout: Duration) -> Result<Ran, RuntimeError> {
        let polled = self.consumer.poll(self.shared.batch_max, timeout)?;
        if let Some(assignment) = polled.assignment {
            self.reassign(&assignment.partitions)?;
        }
        if polled.records.is_empty() {
            self.commit_read_past_markers()?;
            return Ok(Ran::new(Vec::new()));
        }
        let watermark = self.refs.advance(
            self.shared.bus.as_ref(),
            &self.shared.registry,
            self.kind,
            self.shared.trust_unsigned,
            None,
            &mut self.stats,
        )?;
        let mut by_partition: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
        for record in polled.records {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        let mut batches = Vec::new();
        for (partition, records) in by_partition {
            batches.extend(self.run_partition(partition, &records, &watermark)?);
        }
        self.sample_memory();
        Ok(Ran::new(batches))
    }

    /// Keeps the partitions still assigned and opens the new ones.
    fn reassign(&mut self, assignment: &[(String, u32)]) -> Result<(), RuntimeError> {
        let wanted: Vec<u32> = assignment
            .iter()
            .filter(|(t, _)| t == self.kind.input_topic())
            .map(|(_, p)| *p)
            .collect();
        let (kind, queries) = (self.kind, self.shared.queries.as_deref());
        self.partitions.retain(|p, _| {
            let kept = wanted.contains(p);
            if let (false, Some(queries)) = (kept, queries) {
                queries.withdraw(kind, *p);
            }
            kept
        });
        for partition in wanted {
            if !self.partitions.contains_key(&partition) {
                self.assign(partition)?;
            }
        }
        Ok(())
    }

    /// The state-memory gauge: sampled every [`PROBE_EVERY`], not summed
    /// over every pending write at every poll.
    fn sample_memory(&mut self) {
        if self
            .memory_sampled
            .is_none_or(|at| at.elapsed() >= PROBE_EVERY)
        {
            self.memory_sampled = Some(std::time::Instant::now());
            let parts: Vec<MemoryParts> =
                self.partitions.values().map(|p| p.store.memory()).collect();
            let sum = |part: fn(&MemoryParts) -> usize| parts.iter().map(|p| part(p) as u64).sum();
            self.stats.state_memory_bytes = sum(MemoryParts::total);
            self.stats.state_filter_bytes = sum(|p| p.filter);
            self.stats.state_cache_bytes = sum(|p| p.cache);
        }
    }

    /// The reference data a partition's batch runs on: the worker's, or, for
    /// a batch cut by a crash, the data as of the watermark its outputs on
    /// the bus record (issue 17 item 1).
    fn batch_refs(
        &self,
        partition: u32,
        current: &[RefOffset],
    ) -> Result<(Option<GlobalRefs>, Vec<RefOffset>), RuntimeError> {
        let recorded = self
            .partitions
            .get(&partition)
            .and_then(|ps| ps.restore.as_ref())
            .and_then(|r| r.watermark.as_ref());
        let Some(recorded) = recorded else {
            return Ok((None, current.to_vec()));
        };
        let mut refs = GlobalRefs::default();
        // Counted once already, when first read.
        let mut uncounted = WorkerStats::default();
        let watermark = refs.advance(
            self.shared.bus.as_ref(),
            &self.shared.registry,
            self.kind,
            self.shared.trust_unsigned,
            Some(recorded),
            &mut uncounted,
        )?;
        Ok((Some(refs), watermark))
    }

    /// Runs one partition's records as a batch and sends its outputs.
    /// `None` when nothing was at or after its cursor, or when the
    /// partition was revoked while the batch was in flight.
    fn run_partition(
        &mut self,
        partition: u32,
        records: &[Record],
        current_watermark: &[RefOffset],
    ) -> Result<Option<Pending>, RuntimeError> {
        let kind = self.kind;
        let shared = self.shared.clone();
        let restoring_at = self
            .partitions
            .get(&partition)
            .and_then(|ps| ps.restore.as_ref())
            .and_then(|r| r.watermark.clone());
        let (restore_refs, mut watermark) = self.batch_refs(partition, current_watermark)?;
        let global_refs = restore_refs.as_ref().unwrap_or(&self.refs);
        let pki = PkiVerifier {
            pki: &global_refs.pki,
            registry: &shared.registry,
        };
        let prefetched;
        let verifier: &dyn SignatureVerifier = if shared.trust_unsigned {
            &TrustUnsigned
        } else if kind == StageKind::Validation {
            // Validation's signatures, checked on every core before the batch.
            prefetched = Prefetched::verify(&pki, &shared.registry, records, shared.verify_threads);
            self.stats.cpu_ns += prefetched.helper_cpu_ns;
            &prefetched
        } else {
            &pki
        };
        let refs = RefView {
            signatures: verifier,
            institutions: &global_refs.institutions,
        };
        let ctx = Context {
            rules: &shared.rules,
            refs: &refs,
            pseudonyms: &shared.pseudonyms,
        };
        let Some(ps) = self.partitions.get_mut(&partition) else {
            // Revoked while the batch was in flight: the new owner processes it.
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let mut txn = StateTxn::new(ps.store.as_ref());
        let prelude = if kind == StageKind::Entitlement {
            let (applied_to, dead_letters) =
                rights_prelude(&shared, partition, restoring_at, &mut txn, &mut self.stats)?;
            watermark.push(applied_to);
            dead_letters
        } else {
            Vec::new()
        };
        let input = BatchInput {
            kind,
            partition,
            records,
            prelude,
            watermark: &watermark,
            registry: &shared.registry,
            record_limit: shared.bus.max_record_bytes(),
        };
        let mut cursor = ps.cursor;
        let mut restore = ps.restore.clone();
        let Some(batch) = run_batch(
            input,
            &ctx,
            &mut cursor,
            &mut restore,
            &mut txn,
            &mut self.stats,
        )?
        else {
            return Ok(None);
        };
        let sending = Sending {
            bus: shared.bus.as_ref(),
            acknowledge: ps.fenced.is_none(),
            probe: ps.probed.is_none_or(|at| at.elapsed() >= PROBE_EVERY),
            kind,
            partition,
        };
        let producer = match ps.fenced.as_mut() {
            Some(fenced) => fenced.as_mut(),
            None => self.producer.as_mut(),
        };
        let writes = sending.send(producer, &batch, &restore, txn)?;
        Ok(Some(Pending {
            partition,
            writes: writes.0,
            cursor,
            restore,
            checkpoint: batch.checkpoint,
            processed: batch.processed,
            emit: batch.emit,
            started,
            probe: writes.1,
        }))
    }

    /// Commits the batches `ran`: checkpoints and changelogs, acknowledged,
    /// then the state and the informational consumer offsets
    /// (runtime/commit.rs gives the order).
    pub fn commit(&mut self, ran: Ran) -> Result<(), RuntimeError> {
        let changelog = self.kind.changelog_topic();
        let sent = ran.send_commits(&mut self.partitions, self.producer.as_mut(), changelog)?;
        let acknowledged = sent.flush(self.producer.as_mut())?;
        self.apply(acknowledged)
    }

    /// The last step of each acknowledged batch: the state, in memory now
    /// and in sled behind the stage, and the informational consumer offset.
    fn apply(&mut self, acknowledged: Acknowledged) -> Result<(), RuntimeError> {
        let kind = self.kind;
        let changelog = kind.changelog_topic();
        for mut p in acknowledged.into_batches() {
            let acknowledged_end = match self
                .partitions
                .get(&p.partition)
                .and_then(|ps| ps.fenced.as_deref())
            {
                Some(fenced) => fenced.acknowledged_end(changelog, p.partition),
                None => self.producer.acknowledged_end(changelog, p.partition),
            };
            let changelog_end = match acknowledged_end {
                Some(end) => end,
                None => self.shared.bus.end_offset(changelog, p.partition)?,
            };
            p.writes.insert(
                CHANGELOG_END.to_vec(),
                Some(changelog_end.to_be_bytes().to_vec()),
            );
            // Always there: nothing polls, so nothing revokes, between `run`
            // and here. Were it gone, its new owner would catch up from the
            // changelog this commit has just written.
            let Some(ps) = self.partitions.get_mut(&p.partition) else {
                continue;
            };
            ps.store.apply_owned(std::mem::take(&mut p.writes))?;
            ps.store.persist_behind()?;
            ps.cursor = p.cursor;
            ps.restore = p.restore;
            self.consumer
                .commit(&[(kind.input_topic().to_string(), p.partition, p.cursor.raw)])?;
            self.stats.batches += 1;
            let lag = if p.probe {
                ps.probed = Some(std::time::Instant::now());
                let end = self
                    .shared
                    .bus
                    .end_offset(kind.input_topic(), p.partition)?;
                Some(end.saturating_sub(p.cursor.raw))
            } else {
                None
            };
            record_batch_metrics(&BatchMetrics {
                stage: kind,
                partition: p.partition,
                inputs: p.processed,
                outputs: &p.emit,
                seconds: p.started.elapsed().as_secs_f64(),
                lag,
            });
        }
        Ok(())
    }

    /// Waits until sled holds every batch committed so far, and reports a
    /// write that failed behind the stage (a full disk): a clean stop says
    /// so rather than leave it to the next start's changelog catch-up.
    pub fn persist(&self) -> Result<(), RuntimeError> {
        for ps in self.partitions.values() {
            ps.store.flush()?;
        }
        Ok(())
    }

    /// Idle, the consumer may have read past transaction markers after the
    /// last batch: its informational commit follows, so that a group's lag
    /// (end less commit) comes to zero at the end of the input.
    fn commit_read_past_markers(&mut self) -> Result<(), RuntimeError> {
        let topic = self.kind.input_topic();
        for (partition, ps) in &mut self.partitions {
            let Some(read) = self.consumer.position(topic, *partition) else {
                continue;
            };
            if read > ps.cursor.raw && ps.committed_past_markers != Some(read) {
                self.consumer
                    .commit(&[(topic.to_string(), *partition, read)])?;
                ps.committed_past_markers = Some(read);
            }
        }
        Ok(())
    }

    /// Whether every assigned partition has applied its input to the end.
    pub fn caught_up(&self) -> Result<bool, RuntimeError> {
        for (partition, ps) in &self.partitions {
            // Past transaction markers the consumer has read beyond its
            // last record.
            let read = self
                .consumer
                .position(self.kind.input_topic(), *partition)
                .map_or(ps.cursor.raw, |p| p.max(ps.cursor.raw));
            let input = self.kind.input_topic();
            // Settled too: an upstream commit returns before Kafka writes
            // its markers, and until then the end hides its records.
            if read < self.shared.bus.end_offset(input, *partition)?
                || !self.shared.bus.settled(input, *partition)?
            {
                return Ok(false);
            }
        }
        Ok(!self.partitions.is_empty())
    }
}

/// Entitlement's prelude to a batch: `ref.rights` applied to the
/// partition's state up to its end (or, restoring, to the watermark the
/// cut batch ran at). Returns the rights watermark and the dead letters of
/// rights records that do not apply.
fn rights_prelude(
    shared: &Shared,
    partition: u32,
    restoring_at: Option<Vec<RefOffset>>,
    txn: &mut StateTxn<'_>,
    stats: &mut WorkerStats,
) -> Result<(RefOffset, Vec<(Source, Output)>), RuntimeError> {
    let until = restoring_at
        .as_deref()
        .and_then(|w| watermark_position(w, crate::topics::REF_RIGHTS, partition));
    Ok(apply_rights(
        shared.bus.as_ref(),
        &shared.registry,
        &shared.pseudonyms,
        partition,
        until,
        txn,
        stats,
    )?)
}

/// How a batch's outputs are sent.
struct Sending<'a> {
    bus: &'a dyn Bus,
    /// Whether to wait for the acks now: not through a fenced producer,
    /// whose transaction commits the outputs with the checkpoint.
    acknowledge: bool,
    /// Whether the output ends are asked of the bus ([`PROBE_EVERY`]).
    probe: bool,
    kind: StageKind,
    partition: u32,
}

impl Sending<'_> {
    /// Sends a batch's outputs, and records the output ends in its state
    /// once no restore is under way. Returns the batch's writes and whether
    /// the ends were asked of the bus.
    fn send(
        &self,
        producer: &mut dyn BusProducer,
        batch: &BatchOutput,
        restore: &Option<Restore>,
        mut txn: StateTxn<'_>,
    ) -> Result<(WriteBatch, bool), RuntimeError> {
        send_outputs(producer, self.partition, &batch.emit, self.acknowledge)?;
        // While restoring, the output partitions already hold outputs of
        // inputs after this batch (written before the crash): recording their
        // ends now would leave those outputs below the position the next
        // restore scans from, and a second crash would emit them again. The
        // ends are recorded once the restore is over.
        if restore.is_none() {
            record_output_ends(
                self.bus,
                producer,
                self.kind,
                self.partition,
                self.probe,
                &mut txn,
            )?;
        }
        Ok((txn.into_writes(), self.probe))
    }
}

/// A batch's outputs, in order; acknowledged now unless the producer is
/// fenced (its transaction commits them with the checkpoint).
fn send_outputs(
    producer: &mut dyn BusProducer,
    partition: u32,
    outputs: &[Output],
    acknowledge: bool,
) -> Result<(), RuntimeError> {
    for output in outputs {
        producer.send(
            output.topic,
            partition,
            &output.key,
            &output.value,
            output.timestamp_millis,
        )?;
    }
    if acknowledge {
        producer.flush()?;
    }
    Ok(())
}

/// Records each output topic's end in the batch's state, where a restore
/// scans from: the producer's acknowledged end (never past the true end),
/// or, every [`PROBE_EVERY`], the bus's own, so that a topic this partition
/// seldom writes is not scanned from far back.
fn record_output_ends(
    bus: &dyn Bus,
    producer: &dyn BusProducer,
    kind: StageKind,
    partition: u32,
    probe: bool,
    txn: &mut StateTxn<'_>,
) -> Result<(), RuntimeError> {
    for topic in kind.output_topics() {
        let end = if probe {
            Some(bus.end_offset(topic, partition)?)
        } else {
            producer.acknowledged_end(topic, partition)
        };
        if let Some(end) = end {
            txn.put(
                format!("{OUT_END}{topic}").into_bytes(),
                end.to_be_bytes().to_vec(),
            );
        }
    }
    Ok(())
}

struct BatchMetrics<'a> {
    stage: StageKind,
    partition: u32,
    inputs: usize,
    outputs: &'a [Output],
    seconds: f64,
    /// Asked of the bus every [`PROBE_EVERY`] only.
    lag: Option<u64>,
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
    if let Some(lag) = m.lag {
        metrics::gauge!("clearing_consumer_lag", "stage" => stage, "partition" => partition.clone())
            .set(lag as f64);
    }
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

/// Where a stage's stores live under a data directory.
pub fn state_dir(data: &Path) -> PathBuf {
    data.join("state")
}
