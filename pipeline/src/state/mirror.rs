//! A stage partition's state held in memory, persisted to sled behind the
//! stage.
//!
//! sled cost a third of the pipeline's CPU when every read went to it and
//! every batch was applied and flushed in the stage's thread (a process-wide
//! lock made the stages wait on each other too: docs/performance.md §4). The
//! changelog, written and acknowledged before a batch commits, is what makes
//! state durable (design.md §3); sled is the local copy that spares a restart
//! from reading the whole changelog. So reads are served from memory, and
//! writes reach sled in coalesced batches on a background thread, a little
//! behind. After a crash sled is behind by at most those batches, and the
//! changelog catch-up at assignment brings it forward (it records how far
//! it has applied the changelog in the same atomic sled batch).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{KeyValue, MemStore, SledStore, StateRead, StateStore, StoreError, WriteBatch};

/// Writes held back before they are handed to the persister, whichever
/// comes first: coalescing turns a cursor or accumulator rewritten by every
/// batch into one sled write.
const PERSIST_KEYS: usize = 20_000;
const PERSIST_EVERY: Duration = Duration::from_millis(500);

enum Job {
    Apply(SledStore, WriteBatch),
    Sync(SyncSender<()>),
}

/// The background writer of one stage's sled database, shared by its
/// partitions. Batches are applied in the order handed over.
pub struct Persister {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The first failure (a full disk): every later call reports it.
    failed: Arc<Mutex<Option<String>>>,
}

impl Persister {
    pub fn start(name: &str) -> Result<Persister, StoreError> {
        // A few batches in flight: a stage that outruns the disk waits.
        let (tx, rx) = sync_channel(4);
        let failed = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new()
            .name(format!("persist-{name}"))
            .spawn({
                let failed = failed.clone();
                move || persist_loop(&rx, &failed)
            })
            .map_err(|source| StoreError::Io {
                context: format!("starting the persister of {name}"),
                source,
            })?;
        Ok(Persister {
            tx: Some(tx),
            thread: Some(thread),
            failed,
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        match self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            None => Ok(()),
            Some(error) => Err(StoreError::Persist(error.clone())),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.check()?;
        match &self.tx {
            Some(tx) if tx.send(job).is_ok() => Ok(()),
            _ => Err(StoreError::Persist("the persister has stopped".into())),
        }
    }

    /// Waits until every batch handed over is applied and flushed.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (done_tx, done_rx) = sync_channel(1);
        self.send(Job::Sync(done_tx))?;
        done_rx
            .recv()
            .map_err(|_| StoreError::Persist("the persister has stopped".into()))?;
        self.check()
    }
}

fn persist_loop(rx: &Receiver<Job>, failed: &Mutex<Option<String>>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Apply(tree, batch) => {
                // Not under the lock: the stage checks it at every batch.
                if failed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    continue;
                }
                if let Err(e) = tree.apply(&batch).and_then(|()| tree.flush()) {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                }
            }
            Job::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Drop for Persister {
    /// Lets the queued batches land: a clean stop leaves sled current.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One partition's state: every key in memory, sled behind it.
pub struct Mirror {
    memory: MemStore,
    tree: SledStore,
    persister: Arc<Persister>,
    pending: Mutex<Pending>,
}

struct Pending {
    writes: WriteBatch,
    since: Instant,
}

impl Mirror {
    /// Loads the whole tree into memory (call after the changelog catch-up).
    pub fn load(tree: SledStore, persister: Arc<Persister>) -> Result<Mirror, StoreError> {
        persister.sync()?;
        let memory = MemStore::default();
        let all: WriteBatch = tree
            .scan_prefix(b"")?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        memory.apply(&all)?;
        Ok(Mirror {
            memory,
            tree,
            persister,
            pending: Mutex::new(Pending {
                writes: WriteBatch::new(),
                since: Instant::now(),
            }),
        })
    }

    pub fn len(&self) -> usize {
        self.memory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the held-back writes to the persister once there are enough of
    /// them or they are old enough; reports an earlier persist failure.
    pub fn persist_behind(&self) -> Result<(), StoreError> {
        self.persister.check()?;
        let mut pending = self.pending();
        if pending.writes.len() >= PERSIST_KEYS || pending.since.elapsed() >= PERSIST_EVERY {
            self.hand_over(&mut pending)?;
        }
        Ok(())
    }

    fn hand_over(&self, pending: &mut Pending) -> Result<(), StoreError> {
        pending.since = Instant::now();
        if pending.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut pending.writes);
        self.persister
            .send(Job::Apply(self.tree.clone_handle(), writes))
    }
}

impl StateRead for Mirror {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.memory.get(key)
    }
}

impl StateStore for Mirror {
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.memory.apply(batch)?;
        let mut pending = self.pending();
        for (key, value) in batch {
            pending.writes.insert(key.clone(), value.clone());
        }
        Ok(())
    }

    /// Durable in sled: hands everything over and waits for it.
    fn flush(&self) -> Result<(), StoreError> {
        let mut pending = self.pending();
        self.hand_over(&mut pending)?;
        drop(pending);
        self.persister.sync()
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.memory.scan_prefix(prefix)
    }
}

impl Drop for Mirror {
    /// A partition given up (or a clean stop) leaves its writes to sled.
    fn drop(&mut self) {
        let mut pending = self.pending();
        let _ = self.hand_over(&mut pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pairs: &[(&str, Option<&str>)]) -> WriteBatch {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn reads_see_every_write_at_once_and_sled_gets_them_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = SledStore::open(&dir.path().join("s"), "meta").unwrap();
        let persister = Arc::new(Persister::start("test").unwrap());
        let tree = db.tree("p0").unwrap();
        tree.apply(&batch(&[("old", Some("1"))])).unwrap();
        let mirror = Mirror::load(db.tree("p0").unwrap(), persister.clone()).unwrap();
        assert_eq!(mirror.get(b"old").unwrap(), Some(b"1".to_vec()), "loaded");
        mirror
            .apply(&batch(&[("a", Some("x")), ("old", None)]))
            .unwrap();
        assert_eq!(mirror.get(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(mirror.get(b"old").unwrap(), None);
        assert_eq!(tree.get(b"a").unwrap(), None, "not yet in sled");
        mirror.flush().unwrap();
        assert_eq!(tree.get(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(tree.get(b"old").unwrap(), None);
        // Coalesced: the last write of a key wins.
        mirror.apply(&batch(&[("a", Some("y"))])).unwrap();
        mirror.apply(&batch(&[("a", Some("z"))])).unwrap();
        drop(mirror);
        persister.sync().unwrap();
        assert_eq!(
            tree.get(b"a").unwrap(),
            Some(b"z".to_vec()),
            "drop hands over"
        );
    }

    #[test]
    fn a_persist_failure_is_reported_by_every_later_call() {
        let failed = Persister::start("test").unwrap();
        *failed.failed.lock().unwrap() = Some("disk full".into());
        assert!(matches!(failed.sync(), Err(StoreError::Persist(e)) if e == "disk full"));
    }
}
