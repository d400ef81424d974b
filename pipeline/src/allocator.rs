//! When freed memory goes back to the system. The binary picks the
//! allocator and registers its collection call here; the runtime says when:
//! a stage thread and a store's persister every [`COLLECT_EVERY`]
//! ([`Pacer`]), and a run of stages once they have stopped.
//!
//! Why: a thread-caching allocator keeps what a thread freed for that
//! thread's next allocations, and a block freed by another thread (a
//! record's buffer read on one stage thread and dropped on another) waits
//! until its owner allocates from that page again. Over a long run that
//! kept RSS climbing while the live heap stayed flat
//! (docs/performance.md, "Memory over 30 minutes").

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often a running stage thread collects: rarely enough to cost
/// nothing measurable, often enough that what it keeps is a few seconds'
/// churn.
pub const COLLECT_EVERY: Duration = Duration::from_secs(1);

static COLLECTOR: OnceLock<fn(bool)> = OnceLock::new();

/// Registers the allocator's collection call (`force`: also return free
/// pages to the system at once, process-wide where the allocator can).
/// The first registration holds.
pub fn set_collector(collect: fn(bool)) {
    let _ = COLLECTOR.set(collect);
}

/// Collects the calling thread's freed memory; nothing without a collector.
pub fn collect(force: bool) {
    if let Some(collect) = COLLECTOR.get() {
        collect(force);
    }
}

/// Collects on the calling thread at most every [`COLLECT_EVERY`].
pub struct Pacer {
    last: Instant,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            last: Instant::now(),
        }
    }

    /// Called between units of work: collects when it is time.
    pub fn tick(&mut self) {
        if self.last.elapsed() >= COLLECT_EVERY {
            collect(true);
            self.last = Instant::now();
        }
    }
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new()
    }
}
