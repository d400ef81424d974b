//! The streaming runtime (imperative shell): stages as consumers over a
//! [`Bus`](crate::bus::Bus), with sled stores, changelogs, offsets and
//! restore. The decisions themselves stay in [`crate::stages`].

pub mod batch;
mod changelog;
pub mod commit;
pub mod ingest;
pub mod prefetch;
pub mod process;
pub mod queries;
pub mod refs;
pub mod worker;

pub use crate::stages::StageKind;
pub use crate::topics;

use crate::allocator;
use crate::bus::Bus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use changelog::compact_changelogs;
pub use worker::{Member, RuntimeError, Shared, StageStore, StageWorker, WorkerStats};

/// The machine's cores (1 if unknown): the default number of threads that
/// verify a validation batch's signatures.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Workers per stage in a process by default: one. More lowered the median
/// latency on two cores by a few ms, left the p99 where it was and cost a
/// fifth more CPU per claim; they are for machines with more cores than
/// stages (docs/performance.md, "Tried, and not kept").
pub const DEFAULT_WORKERS_PER_STAGE: u32 = 1;

/// Creates every topic the pipeline uses.
pub fn ensure_topics(bus: &dyn crate::bus::Bus, partitions: u32) -> Result<(), RuntimeError> {
    for spec in topics::all(partitions) {
        bus.ensure_topic(&spec)?;
    }
    Ok(())
}

/// Progress of a run, for a progress bar or metrics.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub stats: Vec<(StageKind, WorkerStats)>,
}

/// How long an idle worker waits for input before it looks at `stop` again.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// CPU time of the calling thread, nanoseconds (0 if the clock is missing).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// What the threads of a run share: which stages' workers have drained,
/// each worker's latest counters, and whether one has failed.
struct RunState {
    /// Workers of each stage (in `stages` order).
    members: Vec<usize>,
    /// Workers of each stage that have drained.
    drained: Vec<AtomicUsize>,
    /// Each worker's counters, stage by stage, as [`RunState::snapshot`] reads them.
    stats: Vec<Mutex<WorkerStats>>,
    failed: AtomicBool,
}

impl RunState {
    /// Whether every worker of the stages before `stage` has drained.
    fn upstream_done(&self, stage: usize) -> bool {
        (0..stage).all(|u| self.drained[u].load(Ordering::Acquire) == self.members[u])
    }

    /// Each stage's counters: the sum over its workers.
    fn snapshot(&self, stages: &[StageKind]) -> Progress {
        let mut workers = self.stats.iter();
        Progress {
            stats: stages
                .iter()
                .zip(&self.members)
                .map(|(kind, &n)| {
                    let mut sum = WorkerStats::default();
                    for s in workers.by_ref().take(n) {
                        sum.add(&s.lock().map(|s| s.clone()).unwrap_or_default());
                    }
                    (*kind, sum)
                })
                .collect(),
        }
    }
}

/// One worker on its own thread (named `st-<stage>`, so that per-thread CPU
/// in top -H or perf is attributed).
struct StageThread {
    worker: StageWorker,
    /// The worker's stage, as an index into the run's stages.
    stage: usize,
    /// The worker's slot in [`RunState::stats`].
    slot: usize,
    drain: bool,
    /// Whether the last step found nothing to do.
    idle: bool,
    /// Hands the thread's freed memory back now and then.
    collector: allocator::Pacer,
}

impl StageThread {
    /// One poll, its batches and their commit; `Ok(true)` once the worker
    /// has drained (with `drain`: its input applied to the end and the
    /// stages upstream drained).
    fn step(&mut self, run: &RunState) -> Result<bool, RuntimeError> {
        let wait = if self.idle { IDLE_WAIT } else { Duration::ZERO };
        let cpu = thread_cpu_ns();
        let processed = self.worker.step(wait)?;
        self.worker.stats.cpu_ns += thread_cpu_ns().saturating_sub(cpu);
        if let Ok(mut stats) = run.stats[self.slot].lock() {
            *stats = self.worker.stats.clone();
        }
        self.idle = processed == 0;
        self.collector.tick();
        if self.drain
            && processed == 0
            && run.upstream_done(self.stage)
            && self.worker.caught_up()?
        {
            self.worker.persist()?;
            run.drained[self.stage].fetch_add(1, Ordering::AcqRel);
            return Ok(true);
        }
        Ok(false)
    }

    /// Steps until drained, or until `stop` is set or another thread fails
    /// (then waits for sled to hold what was committed).
    fn run(mut self, run: &RunState, stop: &AtomicBool) -> Result<(), RuntimeError> {
        let result = loop {
            if stop.load(Ordering::Relaxed) || run.failed.load(Ordering::Relaxed) {
                break self.worker.persist();
            }
            match self.step(run) {
                Ok(false) => {}
                Ok(true) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if result.is_err() {
            run.failed.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// Runs the given stages, [`Shared::workers_per_stage`] workers each (at
/// most one per partition), a thread each, until `stop` is set, or — with
/// `drain` — until every worker has applied its input to the end and the
/// stages upstream of it are done. `report` is called about every `every`,
/// with each stage's workers summed.
pub fn run_stages(
    shared: Arc<Shared>,
    stages: &[StageKind],
    stop: &AtomicBool,
    drain: bool,
    every: Duration,
    report: &(dyn Fn(&Progress) + Sync),
) -> Result<Progress, RuntimeError> {
    let mut threads = Vec::new();
    let mut members = Vec::new();
    for (stage, kind) in stages.iter().enumerate() {
        let partitions = shared.bus.partition_count(kind.input_topic())?.max(1);
        let of = shared.workers_per_stage.clamp(1, partitions);
        let store = StageStore::open(*kind, &shared)?;
        for index in 0..of {
            let worker = StageWorker::new(*kind, shared.clone(), &store, Member { index, of })?;
            let slot = threads.len();
            threads.push(StageThread {
                worker,
                stage,
                slot,
                drain,
                idle: true,
                collector: allocator::Pacer::new(),
            });
        }
        members.push(of as usize);
    }
    let run = RunState {
        drained: stages.iter().map(|_| AtomicUsize::new(0)).collect(),
        stats: (0..threads.len())
            .map(|_| Mutex::new(WorkerStats::default()))
            .collect(),
        members,
        failed: AtomicBool::new(false),
    };
    let results: Vec<Result<(), RuntimeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .into_iter()
            .map(|thread| {
                let run = &run;
                std::thread::Builder::new()
                    .name(format!("st-{}", thread.worker.kind().name()))
                    .spawn_scoped(scope, move || thread.run(run, stop))
                    // As `scope.spawn` does: a thread that cannot start is fatal.
                    .unwrap_or_else(|e| panic!("failed to spawn a stage thread: {e}"))
            })
            .collect();
        // The reporter: the calling thread.
        let mut last = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            if last.elapsed() >= every {
                last = Instant::now();
                report(&run.snapshot(stages));
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    // The stopped threads' memory back to the system: what a restarted
    // process would start from.
    allocator::collect(true);
    for result in results {
        result?;
    }
    if drain && !stop.load(Ordering::Relaxed) {
        await_outputs_readable(shared.bus.as_ref(), stages)?;
    }
    let progress = run.snapshot(stages);
    report(&progress);
    Ok(progress)
}

/// How long a drained run waits for Kafka to write its last commits'
/// markers (milliseconds, on a healthy broker).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until what the drained stages wrote is readable, so that a reader
/// started when the run returns (a script after `clearing run
/// --until-caught-up`, a test) sees all of it: Kafka answers a commit
/// before it writes the markers that make its records readable.
fn await_outputs_readable(bus: &dyn Bus, stages: &[StageKind]) -> Result<(), RuntimeError> {
    let mut topics: Vec<&str> = stages
        .iter()
        .flat_map(|kind| {
            let mut topics = kind.output_topics();
            topics.push(kind.changelog_topic());
            topics
        })
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let unsettled = crate::bus::await_settled(bus, &topics, SETTLE_TIMEOUT)?;
    if !unsettled.is_empty() {
        // Another writer's transaction may still be open on a shared
        // topic: what this run committed is durable all the same.
        eprintln!(
            "clearing run: {} partitions still had a transaction open or unmarked {SETTLE_TIMEOUT:?} after the run's last commit (first: {}/{})",
            unsettled.len(),
            unsettled[0].0,
            unsettled[0].1
        );
    }
    Ok(())
}

/// Runs every stage until each has applied its input to the end, reporting
/// nothing (what-if runs, tests).
pub fn run_to_end(shared: Arc<Shared>) -> Result<Progress, RuntimeError> {
    run_stages(
        shared,
        &StageKind::ALL,
        &AtomicBool::new(false),
        true,
        Duration::from_secs(3600),
        &|_| {},
    )
}
