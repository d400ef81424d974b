//! The counters the feeder, the reader, the stages' reporter and the
//! sampler share while the run goes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clearing_pipeline::runtime::Progress;
use hdrhistogram::Histogram;

/// The highest latency the histograms hold: an hour.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

pub struct Live {
    pub fed: AtomicU64,
    pub paid: AtomicU64,
    pub rejected: AtomicU64,
    pub unmatched: AtomicU64,
    pub feeding_done: AtomicBool,
    pub wraps: AtomicU64,
    /// The `received_at` stamp (ms) of the last claim fed: where a corpus
    /// of simulated time (the continuous time-lapse) has got to.
    pub last_stamp: AtomicI64,
    /// Start times by FSE id, oldest first (a duplicate shares its id).
    pub sent: Mutex<HashMap<String, VecDeque<Instant>>>,
    pub latency: Mutex<Histogram<u64>>,
    /// Claims started after the warm-up ([`super::plan::Plan::warm_up`]) only.
    pub latency_steady: Mutex<Histogram<u64>>,
    /// Since the last sample (per-second percentiles).
    pub interval: Mutex<Histogram<u64>>,
    pub progress: Mutex<Progress>,
    pub first_sent: Mutex<Option<Instant>>,
    pub last_outcome: Mutex<Option<Instant>>,
    /// After each read of decisions, how many were read so far and when:
    /// kept for a run of a set number of claims only (a list no longer than
    /// its claims), whose steady throughput is then timed read by read, as
    /// the peer's driver times it, rather than by the once-a-second samples
    /// (which, in a run of a few seconds, moved it by half).
    pub read_times: Option<Mutex<Vec<(u64, Instant)>>>,
}

/// A lock that survives a panicked holder: the counters stay readable for
/// the report.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).context("latency histogram")
}

impl Live {
    pub fn new(keep_read_times: bool) -> Result<Live> {
        Ok(Live {
            fed: AtomicU64::new(0),
            paid: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            feeding_done: AtomicBool::new(false),
            wraps: AtomicU64::new(0),
            last_stamp: AtomicI64::new(0),
            sent: Mutex::new(HashMap::new()),
            latency: Mutex::new(histogram()?),
            latency_steady: Mutex::new(histogram()?),
            interval: Mutex::new(histogram()?),
            progress: Mutex::new(Progress::default()),
            first_sent: Mutex::new(None),
            last_outcome: Mutex::new(None),
            read_times: keep_read_times.then(|| Mutex::new(Vec::new())),
        })
    }

    pub fn fed(&self) -> u64 {
        self.fed.load(Ordering::Relaxed)
    }

    pub fn decided(&self) -> u64 {
        self.paid.load(Ordering::Relaxed) + self.rejected.load(Ordering::Relaxed)
    }

    /// Claims dead-lettered by a stage (reference-data errors excluded).
    pub fn claim_dead_letters(&self) -> u64 {
        lock(&self.progress)
            .stats
            .iter()
            .map(|(_, s)| s.dead_letters.saturating_sub(s.ref_errors))
            .sum()
    }

    pub fn outcomes(&self) -> u64 {
        self.decided() + self.claim_dead_letters()
    }
}
