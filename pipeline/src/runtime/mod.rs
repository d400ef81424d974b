//! The streaming runtime (imperative shell): stages as consumers over a
//! [`Bus`](crate::bus::Bus), with sled stores, changelogs, offsets and
//! restore. The decisions themselves stay in [`crate::stages`].

pub mod batch;
pub mod ingest;
pub mod prefetch;
pub mod process;
pub mod refs;
pub mod topics;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use worker::{Member, RuntimeError, Shared, StageStore, StageWorker, WorkerStats};

/// The machine's cores (1 if unknown): the default number of threads that
/// verify a validation batch's signatures.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Workers per stage in a process by default. On two cores more workers
/// lowered the median latency at 100x the mean by a few ms, left the p99
/// where it was, and cost a fifth more CPU per claim (smaller batches, more
/// syncs): they are for machines with more cores than stages
/// (docs/performance.md §12).
pub const DEFAULT_WORKERS_PER_STAGE: u32 = 1;

/// The stages, in pipeline order: the four that decide, then the three
/// outbound ones (docs/outbound.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageKind {
    Validation,
    Entitlement,
    Routing,
    Reimbursement,
    /// Paid decisions: payment returns, complementary claims, ledger outcomes.
    Settlement,
    /// Rejections: rejection returns, ledger outcomes.
    Returns,
    /// Accumulations closed by close events: ARLs, payment orders, EU claims.
    Ledger,
}

impl StageKind {
    pub const ALL: [StageKind; 7] = [
        StageKind::Validation,
        StageKind::Entitlement,
        StageKind::Routing,
        StageKind::Reimbursement,
        StageKind::Settlement,
        StageKind::Returns,
        StageKind::Ledger,
    ];

    /// The stages that decide claims (what `clearing adjudicate` runs).
    pub const DECIDING: [StageKind; 4] = [
        StageKind::Validation,
        StageKind::Entitlement,
        StageKind::Routing,
        StageKind::Reimbursement,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StageKind::Validation => "validation",
            StageKind::Entitlement => "entitlement",
            StageKind::Routing => "routing",
            StageKind::Reimbursement => "reimbursement",
            StageKind::Settlement => "settlement",
            StageKind::Returns => "returns",
            StageKind::Ledger => "ledger",
        }
    }

    pub fn parse(name: &str) -> Option<StageKind> {
        StageKind::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn input_topic(self) -> &'static str {
        match self {
            StageKind::Validation => topics::FSE_SUBMITTED,
            StageKind::Entitlement => topics::FSE_VALIDATED,
            StageKind::Routing => topics::FSE_ENTITLED,
            StageKind::Reimbursement => topics::FSE_ROUTED,
            StageKind::Settlement => topics::FSE_DECIDED,
            StageKind::Returns => topics::FSE_REJECTED,
            StageKind::Ledger => topics::OUTBOUND_LEDGER,
        }
    }

    pub fn pass_topic(self) -> &'static str {
        match self {
            StageKind::Validation => topics::FSE_VALIDATED,
            StageKind::Entitlement => topics::FSE_ENTITLED,
            StageKind::Routing => topics::FSE_ROUTED,
            StageKind::Reimbursement => topics::FSE_DECIDED,
            StageKind::Settlement | StageKind::Returns => topics::RETURNS_PROFESSIONAL,
            StageKind::Ledger => topics::PAYMENTS_ORDERS,
        }
    }

    pub fn changelog_topic(self) -> &'static str {
        match self {
            StageKind::Validation => "validation.changelog",
            StageKind::Entitlement => "entitlement.changelog",
            StageKind::Routing => "routing.changelog",
            StageKind::Reimbursement => "reimbursement.changelog",
            StageKind::Settlement => "settlement.changelog",
            StageKind::Returns => "returns.changelog",
            StageKind::Ledger => "ledger.changelog",
        }
    }

    pub fn dlq_topic(self) -> &'static str {
        match self {
            StageKind::Validation => "dlq.validation",
            StageKind::Entitlement => "dlq.entitlement",
            StageKind::Routing => "dlq.routing",
            StageKind::Reimbursement => "dlq.reimbursement",
            StageKind::Settlement => "dlq.settlement",
            StageKind::Returns => "dlq.returns",
            StageKind::Ledger => "dlq.ledger",
        }
    }

    /// Every topic this stage writes outputs to (restore mode reads them back).
    pub fn output_topics(self) -> Vec<&'static str> {
        match self {
            StageKind::Settlement => vec![
                topics::RETURNS_PROFESSIONAL,
                topics::AMC_CLAIMS,
                topics::OUTBOUND_LEDGER,
                self.dlq_topic(),
            ],
            StageKind::Returns => vec![
                topics::RETURNS_PROFESSIONAL,
                topics::OUTBOUND_LEDGER,
                self.dlq_topic(),
            ],
            StageKind::Ledger => vec![
                topics::RETURNS_PROFESSIONAL,
                topics::PAYMENTS_ORDERS,
                topics::EU_CLAIMS,
                self.dlq_topic(),
            ],
            _ => vec![self.pass_topic(), topics::FSE_REJECTED, self.dlq_topic()],
        }
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

/// Runs the given stages, [`Shared::workers_per_stage`] threads each,
/// until `stop` is set, or — with `drain` — until every worker has applied
/// its input to the end and the stages upstream of it are done. `report` is
/// called about every `every`, with each stage's workers summed.
pub fn run_stages(
    shared: Arc<Shared>,
    stages: &[StageKind],
    stop: &AtomicBool,
    drain: bool,
    every: Duration,
    report: &(dyn Fn(&Progress) + Sync),
) -> Result<Progress, RuntimeError> {
    // (stage index, worker), stage by stage.
    let mut workers = Vec::new();
    let mut members = Vec::new();
    for (i, kind) in stages.iter().enumerate() {
        let partitions = shared.bus.partition_count(kind.input_topic())?;
        let of = shared.workers_per_stage.clamp(1, partitions.max(1));
        let store = StageStore::open(*kind, &shared)?;
        for index in 0..of {
            let member = Member { index, of };
            workers.push((i, StageWorker::new(*kind, shared.clone(), &store, member)?));
        }
        members.push(of as usize);
    }
    // Workers of each stage that have drained.
    let drained: Vec<AtomicUsize> = stages.iter().map(|_| AtomicUsize::new(0)).collect();
    let stats: Vec<std::sync::Mutex<WorkerStats>> = workers
        .iter()
        .map(|_| std::sync::Mutex::new(WorkerStats::default()))
        .collect();
    let failed = AtomicBool::new(false);
    let results: Vec<Result<(), RuntimeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(w, (i, mut worker))| {
                let (drained, members, stats, failed) = (&drained, &members, &stats, &failed);
                let upstream_done =
                    move || (0..i).all(|u| drained[u].load(Ordering::Acquire) == members[u]);
                let body = move || -> Result<(), RuntimeError> {
                    let result = (|| {
                        loop {
                            if stop.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
                                return worker.persist();
                            }
                            let n = worker.step(Duration::from_millis(20))?;
                            if let Ok(mut s) = stats[w].lock() {
                                *s = worker.stats.clone();
                            }
                            if drain && n == 0 && upstream_done() && worker.caught_up()? {
                                drained[i].fetch_add(1, Ordering::AcqRel);
                                return worker.persist();
                            }
                        }
                    })();
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    result
                };
                // Named by stage, so per-thread CPU (/proc/self/task/*/stat,
                // top -H, perf) is attributed to a stage; `clearing loadtest`
                // reads it, summed over the stage's workers.
                std::thread::Builder::new()
                    .name(format!("st-{}", stages[i].name()))
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
