//! A batch's commit, in the order the state-and-offset protocol needs
//! (design.md §3), enforced by types: each step consumes the one before and
//! only it makes the next, so no caller can write the state before the
//! changelog is acknowledged, nor the changelog before the outputs.
//!
//! 1. [`Ran`]: the batches' outputs are sent (and acknowledged, unless the
//!    partition writes through a fenced producer, whose transaction takes
//!    them all at once);
//! 2. [`Ran::send_commits`] → [`CommitsSent`]: each batch's checkpoint and
//!    changelog, ended by its commit marker (a fenced producer commits its
//!    transaction here);
//! 3. [`CommitsSent::flush`] → [`Acknowledged`]: the worker's producer
//!    flushed;
//! 4. [`Acknowledged::into_batches`]: only now may the state be applied
//!    (`StageWorker::apply`).

use std::collections::BTreeMap;

use super::batch::{Cursor, Restore};
use super::changelog::send_change;
use super::process::Output;
use super::worker::{PartitionState, RuntimeError};
use crate::bus::BusProducer;
use crate::state::WriteBatch;
use crate::state::keys::reserved::CHANGELOG_COMMIT;

/// One partition's batch, outputs sent: what its checkpoint, changelog and
/// state still need.
pub(super) struct Pending {
    pub partition: u32,
    pub writes: WriteBatch,
    pub cursor: Cursor,
    pub restore: Option<Restore>,
    pub checkpoint: Output,
    pub processed: usize,
    pub emit: Vec<Output>,
    pub started: std::time::Instant,
    /// Whether the partition's ends were asked of the bus for this batch
    /// (the lag metric follows).
    pub probe: bool,
}

/// Step 1: the batches of one poll, their outputs sent. Dropping it is a
/// crash before the commit: nothing of the batches is kept, and a restart
/// finds their outputs on the bus (restore mode).
#[must_use = "a batch whose commit is dropped is run again after a restart"]
pub struct Ran {
    batches: Vec<Pending>,
    inputs: usize,
}

impl Ran {
    pub(super) fn new(batches: Vec<Pending>) -> Ran {
        let inputs = batches.iter().map(|b| b.processed).sum();
        Ran { batches, inputs }
    }

    /// The inputs the batches processed.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Whether any batch waits for its commit.
    pub fn has_batches(&self) -> bool {
        !self.batches.is_empty()
    }

    /// Step 2: each batch's checkpoint and changelog, through its
    /// partition's fenced producer (committing its transaction) or `shared`.
    pub(super) fn send_commits(
        self,
        partitions: &mut BTreeMap<u32, PartitionState>,
        shared: &mut (dyn BusProducer + 'static),
        changelog: &'static str,
    ) -> Result<CommitsSent, RuntimeError> {
        if !self.batches.is_empty() {
            stop_before_commit_fault();
        }
        for p in &self.batches {
            let fenced = partitions
                .get_mut(&p.partition)
                .and_then(|ps| ps.fenced.as_mut());
            let is_fenced = fenced.is_some();
            let producer = match fenced {
                Some(fenced) => fenced.as_mut(),
                None => &mut *shared,
            };
            let checkpoint = &p.checkpoint;
            producer.send(
                checkpoint.topic,
                p.partition,
                &checkpoint.key,
                &checkpoint.value,
                checkpoint.timestamp_millis,
            )?;
            for (key, value) in &p.writes {
                send_change(producer, changelog, p.partition, key, value)?;
            }
            producer.send(changelog, p.partition, CHANGELOG_COMMIT, &[1], 0)?;
            // The batch's commit: outputs, checkpoint and changelog at once.
            if is_fenced {
                producer.flush()?;
            }
        }
        Ok(CommitsSent(self.batches))
    }
}

/// Step 2 done: checkpoints and changelogs sent.
#[must_use = "commits sent must be flushed before the state is applied"]
pub(super) struct CommitsSent(Vec<Pending>);

impl CommitsSent {
    /// Step 3: the shared producer's sends acknowledged.
    pub(super) fn flush(self, shared: &mut dyn BusProducer) -> Result<Acknowledged, RuntimeError> {
        if !self.0.is_empty() {
            shared.flush()?;
        }
        Ok(Acknowledged(self.0))
    }
}

/// Step 3 done: everything of the batches is on the bus.
#[must_use = "acknowledged batches must be applied to the state"]
pub(super) struct Acknowledged(Vec<Pending>);

impl Acknowledged {
    /// Step 4's input: the batches whose state may now be applied.
    pub(super) fn into_batches(self) -> Vec<Pending> {
        self.0
    }
}

/// Fault injection for the zombie tests: `CLEARING_FAULT_STOP_BEFORE_COMMIT=N`
/// stops the process (SIGSTOP) before the N-th batch commit of the process,
/// that batch's outputs sent and not committed: a pause at the worst moment,
/// which a SIGSTOP from outside hits only by chance. Unset, a load and a
/// comparison per commit.
fn stop_before_commit_fault() {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static COMMITS: AtomicU64 = AtomicU64::new(0);
    let at = *AT.get_or_init(|| {
        std::env::var("CLEARING_FAULT_STOP_BEFORE_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(at) = at
        && COMMITS.fetch_add(1, Ordering::Relaxed) + 1 == at
    {
        eprintln!("fault: stopping before commit {at}");
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &std::process::id().to_string()])
            .status();
    }
}
