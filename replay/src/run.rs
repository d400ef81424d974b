//! Replays many stage partitions at once and gathers one report.
//!
//! Stage partitions are independent (each has its own inputs, state,
//! reference position and chain), so they run on a pool of threads; a
//! stage replays its recorded inputs, which are the upstream stage's
//! recorded outputs, themselves verified by the upstream stage's replay.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clearing_pipeline::runtime::StageKind;
use clearing_pipeline::state::{Engine, MemStore, StateStore, StoreTree, WriteBatch};
use serde::Serialize;

use crate::verify::{Divergence, PartitionReport, ReplayError, Setup, verify_partition};

/// The report of a replay (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub rules_version: String,
    pub identical: bool,
    pub stage_partitions: usize,
    pub inputs: u64,
    pub outputs_compared: u64,
    pub checkpoints: u64,
    pub crash_reruns: u64,
    pub uncommitted_inputs: u64,
    pub uncovered_outputs: u64,
    /// Validation batches the recorded run decided without checking
    /// signatures (`--trust-unsigned`), and their input offsets; each
    /// partition lists its ranges (`unchecked_signatures`).
    pub unchecked_signature_batches: u64,
    pub unchecked_signature_inputs: u64,
    pub seconds: f64,
    pub inputs_per_second: f64,
    pub threads: usize,
    /// The most upstream divergence (the others may follow from it).
    pub first_divergence: Option<Divergence>,
    pub partitions: Vec<PartitionReport>,
}

/// Loads a stage partition's store from a stopped run's state directory
/// (`DATA/state`): replay then starts where that store stood.
pub fn load_snapshot(
    state_dir: &Path,
    kind: StageKind,
    partition: u32,
) -> Result<MemStore, ReplayError> {
    let dir = state_dir.join(kind.name());
    if !dir.exists() {
        return Err(ReplayError::Other(format!(
            "no snapshot of {} under {}",
            kind.name(),
            state_dir.display()
        )));
    }
    let db = StoreTree::open(Engine::of_store(&dir), &dir, "meta")?;
    let tree = db.tree(&format!("p{partition}"))?;
    let mut batch = WriteBatch::new();
    for (key, value) in tree.scan_prefix(b"")? {
        batch.insert(key, Some(value));
    }
    let store = MemStore::default();
    store.apply(&batch)?;
    Ok(store)
}

/// Replays `jobs` on `threads` threads; `progress(done, total)` is called
/// from the calling thread about every 200 ms.
pub fn replay(
    setup: &Setup,
    jobs: &[(StageKind, u32)],
    snapshot: Option<&Path>,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Report, ReplayError> {
    let started = Instant::now();
    let mut total = 0;
    for (kind, partition) in jobs {
        total += setup.bus.end_offset(kind.input_topic(), *partition)?;
    }
    // Snapshots first, one stage store at a time (each engine locks its files).
    let mut starts: BTreeMap<(StageKind, u32), MemStore> = BTreeMap::new();
    if let Some(dir) = snapshot {
        for (kind, partition) in jobs {
            starts.insert((*kind, *partition), load_snapshot(dir, *kind, *partition)?);
        }
    }
    let threads = threads.clamp(1, jobs.len().max(1));
    let pool = Pool {
        setup,
        jobs,
        starts: Mutex::new(starts),
        done: AtomicU64::new(0),
        next: AtomicUsize::new(0),
        results: Mutex::new(Vec::new()),
    };
    pool.run(threads, &|done| progress(done, total));
    let mut partitions = Vec::new();
    for result in pool.results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        partitions.push(result?);
    }
    let order = |r: &PartitionReport| {
        (
            StageKind::parse(&r.stage).map_or(usize::MAX, |k| k as usize),
            r.partition,
        )
    };
    partitions.sort_by_key(order);
    Ok(Report::of(
        setup,
        partitions,
        started.elapsed().as_secs_f64(),
        threads,
    ))
}

/// The replay's threads, each taking the next job until none is left.
struct Pool<'a> {
    setup: &'a Setup,
    jobs: &'a [(StageKind, u32)],
    /// Each job's starting store, when a snapshot gives one.
    starts: Mutex<BTreeMap<(StageKind, u32), MemStore>>,
    /// Inputs replayed so far.
    done: AtomicU64,
    next: AtomicUsize,
    results: Mutex<Vec<Result<PartitionReport, ReplayError>>>,
}

impl Pool<'_> {
    /// Runs every job on `threads` threads, calling `progress(done)` about
    /// every 200 ms and once at the end.
    fn run(&self, threads: usize, progress: &dyn Fn(u64)) {
        // Each thread holds a sender until it returns: the wait below ends as
        // soon as the last one drops it, not at the next 200 ms tick (a small
        // replay takes far less than a tick).
        let (running, finished) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let running = running.clone();
                scope.spawn(move || {
                    let _running = running;
                    self.work();
                });
            }
            drop(running);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(Duration::from_millis(200))
            {
                progress(self.done.load(Ordering::Relaxed));
            }
        });
        progress(self.done.load(Ordering::Relaxed));
    }

    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some((kind, partition)) = self.jobs.get(i).copied() else {
                return;
            };
            let start = self
                .starts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(kind, partition))
                .unwrap_or_default();
            let result = verify_partition(self.setup, kind, partition, start, &self.done);
            self.results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(result);
        }
    }
}

impl Report {
    /// The partitions' reports, summed.
    fn of(setup: &Setup, partitions: Vec<PartitionReport>, seconds: f64, threads: usize) -> Report {
        let inputs: u64 = partitions.iter().map(|p| p.inputs).sum();
        let first_divergence = partitions.iter().find_map(|p| p.divergence.clone());
        Report {
            source: setup.bus.describe(),
            rules_version: setup.rules.version.clone(),
            identical: first_divergence.is_none(),
            stage_partitions: partitions.len(),
            inputs,
            outputs_compared: partitions.iter().map(|p| p.outputs_compared).sum(),
            checkpoints: partitions.iter().map(|p| p.checkpoints).sum(),
            crash_reruns: partitions.iter().map(|p| p.crash_reruns).sum(),
            uncommitted_inputs: partitions.iter().map(|p| p.uncommitted_inputs).sum(),
            uncovered_outputs: partitions.iter().map(|p| p.uncovered_outputs).sum(),
            unchecked_signature_batches: partitions
                .iter()
                .flat_map(|p| &p.unchecked_signatures)
                .map(|r| r.batches)
                .sum(),
            unchecked_signature_inputs: partitions.iter().map(|p| p.unchecked_inputs()).sum(),
            seconds,
            inputs_per_second: if seconds > 0.0 {
                inputs as f64 / seconds
            } else {
                0.0
            },
            threads,
            first_divergence,
            partitions,
        }
    }
}
