//! The streaming runtime (imperative shell): stages as consumers over a
//! [`Bus`](crate::bus::Bus), with sled stores, changelogs, offsets and
//! restore. The decisions themselves stay in [`crate::stages`].

pub mod batch;
pub mod ingest;
pub mod prefetch;
pub mod process;
pub mod refs;
pub mod worker;

pub use crate::stages::StageKind;
pub use crate::topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use worker::{Member, RuntimeError, Shared, StageStore, StageWorker, WorkerStats};

/// The machine's cores (1 if unknown): the default number of threads that
/// verify a validation batch's signatures.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Workers per stage in a process by default, for a layout. A thread per
/// stage: one worker each; more lowered the median latency at 100x the mean
/// on two cores by a few ms, left the p99 where it was, and cost a fifth
/// more CPU per claim (smaller batches, more syncs), so they are for
/// machines with more cores than stages (docs/performance.md, "Tried, and not kept"). Chained:
/// a chain per core, since a chain waits on its syncs one after the other
/// (docs/performance.md, "Tried, and not kept").
pub fn default_workers_per_stage(layout: Layout) -> u32 {
    match layout {
        Layout::PerStage => 1,
        Layout::Chained => u32::try_from(cores()).unwrap_or(1),
    }
}

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

/// How a process's stage workers share its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A thread per worker: the stages overlap, each waking when its input
    /// is published. For machines with a core per stage.
    PerStage,
    /// A thread per chain: a worker of each stage over the same share of
    /// the partitions, stepped in pipeline order, so a claim crosses every
    /// stage in one pass instead of waiting for four threads in turn, and
    /// the chain's checkpoints and changelogs go out in one flush. Each
    /// stage still reads its input from the bus and keeps its own batches,
    /// state, checkpoints and changelog: only the scheduling changes
    /// (docs/performance.md, "Tried, and not kept").
    Chained,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::PerStage => "per-stage",
            Layout::Chained => "chained",
        }
    }

    pub fn parse(text: &str) -> Option<Layout> {
        [Layout::PerStage, Layout::Chained]
            .into_iter()
            .find(|l| l.name() == text)
    }
}

/// The layout by default: a thread per stage. On two cores, chained (two
/// chains) measured the same within the host's noise, at 100x the mean,
/// flat out and on Kafka; one chain used a tenth less CPU but waited on its
/// syncs one after the other (docs/performance.md, "Tried, and not kept").
pub const DEFAULT_LAYOUT: Layout = Layout::PerStage;

/// How long an idle thread waits for its first stage's input before it
/// looks at the others again (and at `stop`).
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

/// A worker in a thread: its stage's index in `stages`, its slot in the
/// stats, and whether it has drained.
struct Slot {
    stage: usize,
    stats: usize,
    worker: StageWorker,
    drained: bool,
}

/// Runs the given stages, [`Shared::workers_per_stage`] workers each laid
/// out on threads by [`Shared::layout`], until `stop` is set, or — with
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
    // Workers per stage: at most one per partition; chained, as many for
    // every stage, so that chain `index` serves the same partitions in each.
    let mut partitions = Vec::new();
    for kind in stages {
        partitions.push(shared.bus.partition_count(kind.input_topic())?.max(1));
    }
    let of_chained = shared
        .workers_per_stage
        .clamp(1, partitions.iter().copied().min().unwrap_or(1));
    let members: Vec<u32> = partitions
        .iter()
        .map(|&p| match shared.layout {
            Layout::PerStage => shared.workers_per_stage.clamp(1, p),
            Layout::Chained => of_chained,
        })
        .collect();
    // The threads, each with its workers in pipeline order; the stats
    // slots stage by stage, as `snapshot` reads them.
    let mut threads: Vec<(String, Vec<Slot>)> = Vec::new();
    let mut slot = 0;
    for (i, kind) in stages.iter().enumerate() {
        let store = StageStore::open(*kind, &shared)?;
        for index in 0..members[i] {
            let member = Member {
                index,
                of: members[i],
            };
            let worker = Slot {
                stage: i,
                stats: slot,
                worker: StageWorker::new(*kind, shared.clone(), &store, member)?,
                drained: false,
            };
            slot += 1;
            match shared.layout {
                Layout::PerStage => threads.push((format!("st-{}", kind.name()), vec![worker])),
                Layout::Chained => match threads.get_mut(index as usize) {
                    Some((_, chain)) => chain.push(worker),
                    None => threads.push((format!("st-chain-{index}"), vec![worker])),
                },
            }
        }
    }
    let members: Vec<usize> = members.into_iter().map(|m| m as usize).collect();
    // Workers of each stage that have drained.
    let drained: Vec<AtomicUsize> = stages.iter().map(|_| AtomicUsize::new(0)).collect();
    let stats: Vec<std::sync::Mutex<WorkerStats>> = (0..slot)
        .map(|_| std::sync::Mutex::new(WorkerStats::default()))
        .collect();
    let failed = AtomicBool::new(false);
    let results: Vec<Result<(), RuntimeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .into_iter()
            .map(|(name, mut slots)| {
                let (drained, members, stats, failed) = (&drained, &members, &stats, &failed);
                let upstream_done = move |i: usize| {
                    (0..i).all(|u| drained[u].load(Ordering::Acquire) == members[u])
                };
                let bus = shared.bus.clone();
                let body = move || -> Result<(), RuntimeError> {
                    let result = (|| {
                        // A chain's checkpoints and changelogs go out in one
                        // flush of its own producer; a lone worker uses its own.
                        let mut commits = if slots.len() > 1 {
                            Some(bus.producer()?)
                        } else {
                            None
                        };
                        // Whether the last pass found nothing to do.
                        let mut idle = true;
                        loop {
                            if stop.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
                                for s in &slots {
                                    s.worker.persist()?;
                                }
                                return Ok(());
                            }
                            let mut processed = Vec::with_capacity(slots.len());
                            let mut first = true;
                            for s in slots.iter_mut() {
                                if s.drained {
                                    processed.push(0);
                                    continue;
                                }
                                // The first stage waits for input when the
                                // last pass found none; the others take what
                                // it just published, without waiting.
                                let wait = if first && idle {
                                    IDLE_WAIT
                                } else {
                                    Duration::ZERO
                                };
                                first = false;
                                let cpu = thread_cpu_ns();
                                processed.push(s.worker.run(wait)?);
                                s.worker.stats.cpu_ns += thread_cpu_ns().saturating_sub(cpu);
                            }
                            // Every stage's outputs are acknowledged: now
                            // their checkpoints and changelogs, then the state
                            // (an idle pass has none, and flushes nothing).
                            let mut share = 0;
                            if slots.iter().any(|s| s.worker.has_pending()) {
                                let cpu = thread_cpu_ns();
                                for s in slots.iter_mut() {
                                    s.worker.send_commits(commits.as_mut())?;
                                }
                                match commits.as_mut() {
                                    Some(producer) => producer.flush()?,
                                    None => {
                                        for s in slots.iter_mut().filter(|s| s.worker.has_pending())
                                        {
                                            s.worker.flush()?;
                                        }
                                    }
                                }
                                for s in slots.iter_mut() {
                                    s.worker.finish_commits(commits.as_deref())?;
                                }
                                // The commit's CPU, shared out evenly.
                                share = thread_cpu_ns().saturating_sub(cpu) / slots.len() as u64;
                            }
                            for (s, &n) in slots.iter_mut().zip(&processed) {
                                if s.drained {
                                    continue;
                                }
                                s.worker.stats.cpu_ns += share;
                                if let Ok(mut st) = stats[s.stats].lock() {
                                    *st = s.worker.stats.clone();
                                }
                                if drain
                                    && n == 0
                                    && upstream_done(s.stage)
                                    && s.worker.caught_up()?
                                {
                                    s.worker.persist()?;
                                    s.drained = true;
                                    drained[s.stage].fetch_add(1, Ordering::AcqRel);
                                }
                            }
                            if slots.iter().all(|s| s.drained) {
                                return Ok(());
                            }
                            idle = processed.iter().all(|&n| n == 0);
                        }
                    })();
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    result
                };
                // Named by stage (`st-<stage>`) or chain (`st-chain-<n>`),
                // so per-thread CPU (top -H, perf) is attributed; per-stage
                // CPU is in each worker's `cpu_ns` whatever the layout.
                std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, body)
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
                report(&snapshot(stages, &members, &stats));
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
    for result in results {
        result?;
    }
    let progress = snapshot(stages, &members, &stats);
    report(&progress);
    Ok(progress)
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

/// Each stage's counters: the sum over its workers (`members[i]` of them,
/// in stage order in `stats`).
fn snapshot(
    stages: &[StageKind],
    members: &[usize],
    stats: &[std::sync::Mutex<WorkerStats>],
) -> Progress {
    let mut workers = stats.iter();
    Progress {
        stats: stages
            .iter()
            .zip(members)
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
