//! A stage partition's state served from memory, persisted to its durable
//! store (the log store, or sled: `state::tree`) behind the stage. What
//! follows was measured with sled, the engine until 2026-12-07.
//!
//! sled cost a third of the pipeline's CPU when every read went to it and
//! every batch was applied and flushed in the stage's thread (a process-wide
//! lock made the stages wait on each other too: docs/performance.md, "Kept, and what each gave"). The
//! changelog, written and acknowledged before a batch commits, is what makes
//! state durable (design.md §3); sled is the local copy that spares a restart
//! from reading the whole changelog. So writes reach sled in coalesced
//! batches on a background thread, a little behind, and reads are served by
//! the writes not yet in sled and a bounded cache of what is, before sled.
//! After a crash sled is behind by at most those batches, and the changelog
//! catch-up at assignment brings it forward (it records how far it has
//! applied the changelog in the same atomic sled batch).
//!
//! Memory is bounded: the cache by [`CACHE_BYTES`], the writes on their way
//! by [`PERSIST_KEYS`] and the persister's queue. State larger than that
//! (68 M beneficiaries' rights) stays in sled. Beside them, a Bloom filter of
//! the partition's keys (state/filter.rs, about 2.5 bytes a key) answers the
//! reads of keys never written, most of a claim's, without sled.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::filter::KeyFilter;
use super::{KeyValue, StateRead, StateStore, StoreError, StoreTree, WriteBatch};

/// Writes held back before they are handed to the persister, whichever
/// comes first: coalescing turns a cursor or accumulator rewritten by every
/// batch into one sled write.
const PERSIST_KEYS: usize = 20_000;
const PERSIST_EVERY: Duration = Duration::from_millis(500);
/// Bytes of keys and values a partition keeps cached from its store (absent
/// keys included: a duplicate check mostly asks for a key that is not
/// there). 4 MiB until 2026-12-07, when sled's reads cost a tree walk: with
/// the log store a miss is an index look-up and a `pread` from the page
/// cache, and 512 KiB cost no CPU per claim measurable flat out, while a
/// cache of a day's keys (each claim's day counters) fills to its bound
/// within a long run's first half instead of growing through all of it
/// (docs/performance.md, "Memory over 30 minutes").
pub const CACHE_BYTES: usize = 512 * 1024;

enum Job {
    Apply {
        tree: StoreTree,
        writes: Arc<WriteBatch>,
        seq: u64,
        done: Arc<AtomicU64>,
    },
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
                move || {
                    yield_to_the_stages();
                    persist_loop(&rx, &failed)
                }
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

/// The persister runs behind the stages by design: on a contended core the
/// scheduler should run a stage (a claim waiting) before it. Nice 10 below
/// the stage that starts it (10 under `clearing run`, `--stages-nice` + 10
/// under `clearing serve`: crate::priority) leaves it the idle time and
/// about a tenth of a contended core; the bounded queue to it still makes a
/// stage that outruns it wait. It lowered the p99 (docs/performance.md,
/// "Kept, and what each gave"). Best effort: a refusal leaves the priority
/// it started with.
fn yield_to_the_stages() {
    crate::priority::fall_behind_the_stages();
}

fn persist_loop(rx: &Receiver<Job>, failed: &Mutex<Option<String>>) {
    let mut collector = crate::allocator::Pacer::new();
    while let Ok(job) = rx.recv() {
        collector.tick();
        match job {
            Job::Apply {
                tree,
                writes,
                seq,
                done,
            } => {
                // Not under the lock: the stage checks it at every batch.
                if failed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    continue;
                }
                // Not flushed: see `SledStore::open`; `Mirror::flush` does.
                match tree.apply(&writes) {
                    Ok(()) => {
                        done.store(seq, Ordering::Release);
                        collect_garbage(writes.len());
                    }
                    Err(e) => {
                        *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    }
                }
            }
            Job::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Frees the pages sled replaced while applying `writes` keys. sled 0.34
/// defers their release to the epoch collector, which frees a few bags of
/// them (64 each) at a pin, every 128 pins of a thread; a batch is applied
/// under one pin. Once the stages stopped reading sled for keys never
/// written (the key filter) nothing pinned often enough: the garbage
/// piled up (RSS 290 -> 515 MB over 30,000 claims) and the kernel zeroed
/// the fresh pages the heap grew by. So the persister collects behind its
/// own writes, about a bag per key written (a few replaced nodes per key,
/// eight bags a round).
fn collect_garbage(keys: usize) {
    for _ in 0..keys / 8 + 8 {
        crossbeam_epoch::pin().flush();
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

/// Values read from sled, bounded in bytes: two generations, the older
/// dropped whole when the younger fills (an approximation of LRU that costs
/// one hash lookup or two). Which entries it holds never changes a value
/// read, only where it is read from.
///
/// The bound is on what the entries hold on the heap: their buffers'
/// capacities and the map's slot, both generations. Until 2026-12-07 it
/// counted lengths, and the old generation at 64 bytes an entry, so a full
/// cache could hold about 2.5 times its bound, and values taken from
/// persisted writes kept their spare room uncounted.
struct Cache {
    young: HashMap<Vec<u8>, Option<Vec<u8>>>,
    old: HashMap<Vec<u8>, Option<Vec<u8>>>,
    young_bytes: usize,
    old_bytes: usize,
    limit: usize,
}

/// A map slot (a key's and a value's `Vec` headers, its control byte, the
/// free slots of a map 7/8 full) and the allocator's rounding of the two
/// buffers.
const ENTRY_OVERHEAD: usize = 64;

/// The heap bytes an entry of the cache holds.
fn entry_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::capacity) + ENTRY_OVERHEAD
}

impl Cache {
    fn new(limit: usize) -> Cache {
        Cache {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            old_bytes: 0,
            limit,
        }
    }

    fn get(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(value) = self.young.get(key) {
            return Some(value.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        self.old_bytes = self.old_bytes.saturating_sub(entry_bytes(&key, &value));
        self.put(key, value.clone());
        Some(value)
    }

    /// `key` must not be held (its value was just read from sled, or taken
    /// out of the old generation).
    fn put(&mut self, mut key: Vec<u8>, mut value: Option<Vec<u8>>) {
        // Buffers kept as long as the cache keeps them hold no slack.
        key.shrink_to_fit();
        if let Some(v) = &mut value {
            v.shrink_to_fit();
        }
        let size = entry_bytes(&key, &value);
        if self.young_bytes + size > self.limit / 2 {
            self.old = std::mem::take(&mut self.young);
            self.old_bytes = std::mem::take(&mut self.young_bytes);
        }
        self.young_bytes += size;
        if let Some(value) = self.old.remove(&key) {
            self.old_bytes = self.old_bytes.saturating_sub(entry_bytes(&key, &value));
        }
        let key_len = key.len();
        if let Some(replaced) = self.young.insert(key, value) {
            self.young_bytes = self.young_bytes.saturating_sub(
                key_len + replaced.as_ref().map_or(0, Vec::capacity) + ENTRY_OVERHEAD,
            );
        }
    }

    /// Whether `key` is held (read lately).
    fn holds(&self, key: &[u8]) -> bool {
        self.young.contains_key(key) || self.old.contains_key(key)
    }

    /// The value sled now holds for `key`, kept only where `key` is held
    /// already. A key written and not read since (a duplicate-check key, an
    /// expired one's delete) stays out: a cache of every write filled to its
    /// bound in a long run, with keys nobody reads again.
    fn refresh(&mut self, key: Vec<u8>, mut value: Option<Vec<u8>>) {
        let capacity = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::capacity);
        if let Some(slot) = self.young.get_mut(&key) {
            // A value built by appends (an expiry chunk) has room to spare.
            if let Some(v) = &mut value {
                v.shrink_to_fit();
            }
            self.young_bytes = (self.young_bytes + capacity(&value)).saturating_sub(capacity(slot));
            *slot = value;
        } else if let Some(held) = self.old.remove(&key) {
            self.old_bytes = self.old_bytes.saturating_sub(entry_bytes(&key, &held));
            self.put(key, value);
        }
    }

    fn bytes(&self) -> usize {
        self.young_bytes + self.old_bytes
    }
}

/// One partition's state: writes not yet in sled, a cache of sled, sled.
pub struct Mirror {
    tree: StoreTree,
    persister: Arc<Persister>,
    /// The last batch the persister has applied (by `seq`).
    persisted: Arc<AtomicU64>,
    inner: Mutex<Inner>,
}

/// What a partition's state holds in memory over sled, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryParts {
    /// Writes on their way to sled, keys and values.
    pub writes: usize,
    /// Values read lately, refreshed as they are written (bounded by the
    /// cache's size).
    pub cache: usize,
    /// The key filter.
    pub filter: usize,
}

impl MemoryParts {
    pub fn total(&self) -> usize {
        self.writes + self.cache + self.filter
    }
}

struct Inner {
    /// Applied, not yet handed to the persister.
    pending: WriteBatch,
    since: Instant,
    /// Handed over, not yet known applied: still served from here.
    in_flight: VecDeque<(u64, Arc<WriteBatch>)>,
    next_seq: u64,
    cache: Cache,
    /// Every key sled may hold: those it held at open and every key written
    /// since. A read of a key it has never seen is answered without sled.
    filter: KeyFilter,
    /// Keys found live when the filter was last built: the next build's
    /// size. Not the keys inserted since, which include those deleted
    /// meanwhile (retention's churn), or the filter would double at every
    /// build while the store stays the same size.
    live_at_build: usize,
}

impl Mirror {
    /// The partition's state over its sled tree (call after the changelog
    /// catch-up).
    pub fn open(tree: StoreTree, persister: Arc<Persister>) -> Result<Mirror, StoreError> {
        Mirror::with_cache(tree, persister, CACHE_BYTES)
    }

    pub fn with_cache(
        tree: StoreTree,
        persister: Arc<Persister>,
        cache_bytes: usize,
    ) -> Result<Mirror, StoreError> {
        persister.sync()?;
        let (filter, live_at_build) = filter_of(&tree, 0, [])?;
        Ok(Mirror {
            tree,
            persister,
            persisted: Arc::new(AtomicU64::new(0)),
            inner: Mutex::new(Inner {
                pending: WriteBatch::new(),
                since: Instant::now(),
                in_flight: VecDeque::new(),
                next_seq: 1,
                cache: Cache::new(cache_bytes),
                filter,
                live_at_build,
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held in memory for this partition, by part.
    pub fn memory(&self) -> MemoryParts {
        let mut inner = self.inner();
        self.settle(&mut inner);
        let writes = |w: &WriteBatch| -> usize {
            w.iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum()
        };
        MemoryParts {
            writes: writes(&inner.pending)
                + inner
                    .in_flight
                    .iter()
                    .map(|(_, w)| writes(w))
                    .sum::<usize>(),
            cache: inner.cache.bytes(),
            filter: inner.filter.bytes(),
        }
    }

    /// Hands the held-back writes to the persister once there are enough of
    /// them or they are old enough; reports an earlier persist failure.
    pub fn persist_behind(&self) -> Result<(), StoreError> {
        self.persister.check()?;
        let mut inner = self.inner();
        // A stage that reads nothing (routing) settles here, or the list
        // of batches on their way would only grow.
        self.settle(&mut inner);
        if inner.pending.len() >= PERSIST_KEYS || inner.since.elapsed() >= PERSIST_EVERY {
            self.hand_over(&mut inner)?;
        }
        Ok(())
    }

    fn hand_over(&self, inner: &mut Inner) -> Result<(), StoreError> {
        inner.since = Instant::now();
        if inner.pending.is_empty() {
            return Ok(());
        }
        let writes = Arc::new(std::mem::take(&mut inner.pending));
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.in_flight.push_back((seq, writes.clone()));
        self.persister.send(Job::Apply {
            tree: self.tree.clone_handle(),
            writes,
            seq,
            done: self.persisted.clone(),
        })
    }

    /// Batches sled now holds leave the in-flight list; the values of the
    /// keys the cache holds are refreshed there, the others read from sled
    /// when next asked.
    fn settle(&self, inner: &mut Inner) {
        let persisted = self.persisted.load(Ordering::Acquire);
        while inner
            .in_flight
            .front()
            .is_some_and(|(seq, _)| *seq <= persisted)
        {
            if let Some((_, writes)) = inner.in_flight.pop_front() {
                // The persister has let go of its batch once applied: the
                // keys the cache holds take their values, uncopied.
                match Arc::try_unwrap(writes) {
                    Ok(writes) => {
                        for (key, value) in writes {
                            inner.cache.refresh(key, value);
                        }
                    }
                    Err(writes) => {
                        for (key, value) in writes.iter() {
                            if inner.cache.holds(key) {
                                inner.cache.refresh(key.clone(), value.clone());
                            }
                        }
                    }
                }
            }
        }
    }
}

impl StateRead for Mirror {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut inner = self.inner();
        if let Some(value) = inner.pending.get(key) {
            return Ok(value.clone());
        }
        // Never written: not in sled, nor on its way there.
        if !inner.filter.may_hold(key) {
            return Ok(None);
        }
        self.settle(&mut inner);
        for (_, writes) in inner.in_flight.iter().rev() {
            if let Some(value) = writes.get(key) {
                return Ok(value.clone());
            }
        }
        if let Some(value) = inner.cache.get(key) {
            return Ok(value);
        }
        let value = self.tree.get(key)?;
        inner.cache.put(key.to_vec(), value.clone());
        Ok(value)
    }
}

impl Mirror {
    /// [`StateStore::apply`] of a batch the caller gives up: its keys and
    /// values move in, uncopied (the runtime's commit step).
    pub fn apply_owned(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut inner = self.inner();
        // A delete needs no mark: the key reads as absent either way.
        for (key, _) in batch.iter().filter(|(_, value)| value.is_some()) {
            inner.filter.insert(key);
        }
        if inner.filter.is_full() {
            let inner = &mut *inner;
            let later = inner
                .in_flight
                .iter()
                .map(|(_, w)| w.as_ref())
                .chain([&inner.pending, &batch]);
            (inner.filter, inner.live_at_build) =
                filter_of(&self.tree, inner.live_at_build, later)?;
        }
        if inner.pending.is_empty() {
            inner.pending = batch;
        } else {
            inner.pending.extend(batch);
        }
        Ok(())
    }
}

/// A filter of the keys in `tree` and in the writes on their way to it,
/// with room for twice `live` keys (the count at the last build) or, when
/// more are found, twice those found; and the count found. Under the
/// mirror's lock (or before it exists): a batch the persister lands in
/// sled meanwhile is among `writes`.
fn filter_of<'w>(
    tree: &StoreTree,
    live: usize,
    writes: impl IntoIterator<Item = &'w WriteBatch> + Clone,
) -> Result<(KeyFilter, usize), StoreError> {
    let fill = |filter: &mut KeyFilter| -> Result<(), StoreError> {
        tree.for_each_key(|key| filter.insert(key))?;
        for batch in writes.clone() {
            for (key, _) in batch.iter().filter(|(_, value)| value.is_some()) {
                filter.insert(key);
            }
        }
        Ok(())
    };
    let mut filter = KeyFilter::with_room(2 * live);
    fill(&mut filter)?;
    if filter.is_full() {
        // Larger than guessed: once more, at its size.
        filter = KeyFilter::with_room(2 * filter.distinct());
        fill(&mut filter)?;
    }
    let found = filter.distinct();
    Ok((filter, found))
}

impl StateStore for Mirror {
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.apply_owned(batch.clone())
    }

    /// Durable in sled: hands everything over, waits for it, flushes sled.
    fn flush(&self) -> Result<(), StoreError> {
        let mut inner = self.inner();
        self.hand_over(&mut inner)?;
        drop(inner);
        self.persister.sync()?;
        self.tree.flush()?;
        let mut inner = self.inner();
        self.settle(&mut inner);
        Ok(())
    }

    /// Every key with the prefix, as the stage sees them (sled overlaid with
    /// the writes on their way).
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        // Under the lock, so no write is added or leaves the in-flight list
        // between the sled scan and the overlay: a batch the persister
        // applies meanwhile is overlaid again, with the same values.
        let mut inner = self.inner();
        self.settle(&mut inner);
        let mut merged: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .tree
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let later = inner
            .in_flight
            .iter()
            .map(|(_, w)| w.as_ref())
            .chain(std::iter::once(&inner.pending));
        for writes in later {
            for (key, value) in writes.range(prefix.to_vec()..) {
                if !key.starts_with(prefix) {
                    break;
                }
                merged.insert(key.clone(), value.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }
}

impl Drop for Mirror {
    /// A partition given up (or a clean stop) leaves its writes to sled.
    fn drop(&mut self) {
        let mut inner = self.inner();
        let _ = self.hand_over(&mut inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemStore;
    use proptest::prelude::*;

    /// A store of the default engine in a temporary directory (kept while
    /// the first part lives) and a persister behind it.
    fn sled_and_persister() -> (tempfile::TempDir, StoreTree, Arc<Persister>) {
        let dir = tempfile::tempdir().unwrap();
        let db = StoreTree::open(
            super::super::Engine::default(),
            &dir.path().join("s"),
            "meta",
        )
        .unwrap();
        (dir, db, Arc::new(Persister::start("test").unwrap()))
    }

    /// Hands the mirror's writes to the persister, waits until sled holds
    /// them, and lets the mirror learn it.
    fn persist_now(mirror: &Mirror, persister: &Persister) {
        mirror.hand_over(&mut mirror.inner()).unwrap();
        persister.sync().unwrap();
        mirror.persist_behind().unwrap();
    }

    fn batch(pairs: &[(&str, Option<&str>)]) -> WriteBatch {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    /// What a cache's entries hold on the heap, both generations.
    fn held(cache: &Cache) -> usize {
        cache
            .young
            .iter()
            .chain(&cache.old)
            .map(|(k, v)| k.capacity() + v.as_ref().map_or(0, Vec::capacity) + ENTRY_OVERHEAD)
            .sum()
    }

    /// A value built by appends, as an expiry chunk is: room to spare.
    fn appended(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..len {
            v.push(i as u8);
        }
        v
    }

    /// The cache's count is what its entries hold, both generations, and
    /// stays under its bound however values come in: read from sled, taken
    /// back from the old generation, refreshed by a write built by appends.
    /// Counted by lengths with the old generation at 64 bytes an entry (the
    /// count before 2026-12-07), the same entries held about 2.5 times it.
    #[test]
    fn the_cache_counts_what_both_generations_hold_and_stays_under_its_bound() {
        let limit = 64 * 1024;
        let mut cache = Cache::new(limit);
        for round in 0..4 {
            for n in 0..400 {
                let key = format!("\x02exc/2027-01-{:02}/{n:010}", round + 1).into_bytes();
                if cache.get(&key).is_none() {
                    cache.put(key.clone(), Some(appended(100 + n % 600)));
                }
                if n % 3 == 0 {
                    cache.refresh(key, Some(appended(120 + n % 600)));
                }
                assert_eq!(cache.bytes(), held(&cache), "round {round}, key {n}");
                assert!(
                    cache.bytes() <= limit,
                    "round {round}, key {n}: {}",
                    cache.bytes()
                );
            }
        }
        assert!(!cache.old.is_empty() && !cache.young.is_empty());
        let by_lengths: usize = cache
            .young
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 64)
            .sum::<usize>()
            + cache.old.len() * 64;
        eprintln!(
            "held {} bytes, {by_lengths} by the count before 2026-12-07",
            held(&cache)
        );
        assert!(by_lengths * 2 < held(&cache));
        // Taken back from the old generation: moved, still counted once.
        let back = cache.old.keys().next().cloned().unwrap();
        assert!(cache.get(&back).is_some());
        assert!(cache.young.contains_key(&back) && !cache.old.contains_key(&back));
        assert_eq!(cache.bytes(), held(&cache));
    }

    #[test]
    fn reads_see_every_write_at_once_and_sled_gets_them_behind() {
        let (_dir, db, persister) = sled_and_persister();
        let tree = db.tree("p0").unwrap();
        tree.apply(&batch(&[("old", Some("1"))])).unwrap();
        let mirror = Mirror::open(db.tree("p0").unwrap(), persister.clone()).unwrap();
        assert_eq!(
            mirror.get(b"old").unwrap(),
            Some(b"1".to_vec()),
            "from sled"
        );
        mirror
            .apply(&batch(&[("a", Some("x")), ("old", None)]))
            .unwrap();
        assert_eq!(mirror.get(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(
            mirror.get(b"old").unwrap(),
            None,
            "a delete hides the cached value"
        );
        assert_eq!(tree.get(b"a").unwrap(), None, "not yet in sled");
        mirror.flush().unwrap();
        assert_eq!(tree.get(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(tree.get(b"old").unwrap(), None);
        assert_eq!(mirror.get(b"old").unwrap(), None);
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
    fn batches_sled_holds_leave_the_in_flight_list_without_reads() {
        let (_dir, db, persister) = sled_and_persister();
        let mirror = Mirror::open(db.tree("p0").unwrap(), persister.clone()).unwrap();
        for n in 0..50u8 {
            mirror.apply(&batch(&[("k", Some("v"))])).unwrap();
            persist_now(&mirror, &persister);
            assert!(mirror.inner().in_flight.is_empty(), "batch {n} stayed");
        }
    }

    /// A persisted write refreshes a key the cache holds and leaves the
    /// others out: keys written once (duplicate checks) no longer fill it.
    #[test]
    fn the_cache_keeps_what_was_read_not_what_was_written() {
        let (_dir, db, persister) = sled_and_persister();
        let mirror = Mirror::open(db.tree("p0").unwrap(), persister.clone()).unwrap();
        mirror.apply(&batch(&[("counter", Some("1"))])).unwrap();
        persist_now(&mirror, &persister);
        assert_eq!(mirror.get(b"counter").unwrap(), Some(b"1".to_vec()));
        let held = mirror.memory().cache;
        assert!(held > 0, "a key read from sled is held");
        for n in 0..1000 {
            let key = format!("dup/{n}");
            mirror.apply(&batch(&[(key.as_str(), Some("x"))])).unwrap();
        }
        mirror.apply(&batch(&[("counter", Some("2"))])).unwrap();
        persist_now(&mirror, &persister);
        assert_eq!(mirror.memory().cache, held, "written once: not cached");
        // The held key took its new value: read from the cache, not sled.
        db.tree("p0")
            .unwrap()
            .apply(&batch(&[("counter", Some("stale"))]))
            .unwrap();
        assert_eq!(mirror.get(b"counter").unwrap(), Some(b"2".to_vec()));
        assert_eq!(
            mirror.get(b"dup/7").unwrap(),
            Some(b"x".to_vec()),
            "from sled"
        );
    }

    #[test]
    fn a_key_filter_that_fills_is_rebuilt_larger_and_knows_every_key() {
        let (_dir, db, persister) = sled_and_persister();
        let key = |n: u32| format!("dup/{n:08}").into_bytes();
        let stored: WriteBatch = (0..1000).map(|n| (key(n), Some(vec![1]))).collect();
        db.tree("p0").unwrap().apply(&stored).unwrap();
        let mirror = Mirror::open(db.tree("p0").unwrap(), persister.clone()).unwrap();
        let first = mirror.inner().filter.bytes();
        // Past the room of the smallest filter, some of it on its way to
        // sled when the filter is rebuilt.
        for chunk in (1000..150_000).collect::<Vec<u32>>().chunks(10_000) {
            let batch: WriteBatch = chunk.iter().map(|n| (key(*n), Some(vec![2]))).collect();
            mirror.apply_owned(batch).unwrap();
            mirror.hand_over(&mut mirror.inner()).unwrap();
        }
        assert!(mirror.inner().filter.bytes() > first, "rebuilt larger");
        persister.sync().unwrap();
        for n in (0..150_000).step_by(97) {
            let expected = if n < 1000 { vec![1] } else { vec![2] };
            assert_eq!(mirror.get(&key(n)).unwrap(), Some(expected), "key {n}");
        }
        for n in (150_000..160_000).step_by(7) {
            assert_eq!(mirror.get(&key(n)).unwrap(), None);
        }
    }

    /// Retention's churn: keys come and go while the store keeps the same
    /// size, and counters are rewritten at every claim. The filter is
    /// rebuilt when new keys fill it, at the size of the keys still live.
    #[test]
    fn a_key_filter_under_churn_stays_the_size_of_the_live_keys() {
        let (_dir, db, persister) = sled_and_persister();
        let mirror = Mirror::open(db.tree("p0").unwrap(), persister.clone()).unwrap();
        let first = mirror.inner().filter.bytes();
        let key = |n: u32| format!("dup/{n:08}").into_bytes();
        // 20 windows of 30,000 keys: each written, its counter rewritten
        // 5 times, then deleted when the next window is written.
        for window in 0..20u32 {
            let keys = window * 30_000..(window + 1) * 30_000;
            for _ in 0..5 {
                let counters: WriteBatch = (0..1000u32)
                    .map(|n| (format!("amt/{n}").into_bytes(), Some(vec![window as u8])))
                    .collect();
                mirror.apply_owned(counters).unwrap();
            }
            let mut batch: WriteBatch = keys.clone().map(|n| (key(n), Some(vec![1]))).collect();
            if let Some(last) = window.checked_sub(1) {
                batch.extend((last * 30_000..window * 30_000).map(|n| (key(n), None)));
            }
            mirror.apply_owned(batch).unwrap();
            mirror.hand_over(&mut mirror.inner()).unwrap();
            persister.sync().unwrap();
            // As the stage's every batch does: batches landed leave the
            // list of those on their way.
            mirror.persist_behind().unwrap();
        }
        // 600,000 keys written, never more than about 61,000 live (two
        // windows and the counters): the filter was rebuilt once new keys
        // filled it (its first size holds about 100,000), each time with
        // room for twice the keys live. Sized from the keys inserted
        // (repeats and deleted keys included), it grew at every rebuild.
        let bytes = mirror.inner().filter.bytes();
        assert!(
            bytes > first && bytes <= 4 * first,
            "{bytes} bytes against {first} at open"
        );
        for n in (570_000..600_000).step_by(13) {
            assert_eq!(mirror.get(&key(n)).unwrap(), Some(vec![1]), "key {n}");
        }
        for n in (0..570_000).step_by(101) {
            assert_eq!(mirror.get(&key(n)).unwrap(), None, "key {n}");
        }
    }

    #[test]
    fn a_persist_failure_is_reported_by_every_later_call() {
        let failed = Persister::start("test").unwrap();
        *failed.failed.lock().unwrap() = Some("disk full".into());
        assert!(matches!(failed.sync(), Err(StoreError::Persist(e)) if e == "disk full"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the cache size and however far sled lags, the mirror
        /// reads and scans as a plain in-memory store given the same writes.
        #[test]
        fn it_reads_as_a_plain_store(
            batches in prop::collection::vec(
                prop::collection::btree_map(0u8..40, prop::option::of(0u8..5), 1..12), 1..40),
            cache in 0usize..2000,
            flush_every in 1usize..6,
            stored in prop::collection::btree_map(0u8..40, 0u8..5, 0..20),
        ) {
            let (_dir, db, persister) = sled_and_persister();
            // What sled holds before the mirror opens (its key filter
            // starts from it).
            let before: WriteBatch = stored
                .iter()
                .map(|(k, v)| (vec![b'k', *k], Some(vec![*v])))
                .collect();
            db.tree("p").unwrap().apply(&before).unwrap();
            let mirror = Mirror::with_cache(db.tree("p").unwrap(), persister, cache).unwrap();
            let plain = MemStore::default();
            plain.apply(&before).unwrap();
            for (n, writes) in batches.iter().enumerate() {
                let writes: WriteBatch = writes
                    .iter()
                    .map(|(k, v)| (vec![b'k', *k], v.map(|v| vec![v])))
                    .collect();
                mirror.apply(&writes).unwrap();
                plain.apply(&writes).unwrap();
                if n % flush_every == 0 {
                    mirror.hand_over(&mut mirror.inner()).unwrap();
                }
                for k in 0u8..40 {
                    prop_assert_eq!(mirror.get(&[b'k', k]).unwrap(), plain.get(&[b'k', k]).unwrap());
                }
            }
            prop_assert_eq!(mirror.scan_prefix(b"k").unwrap(), plain.scan_prefix(b"k").unwrap());
            mirror.flush().unwrap();
            prop_assert_eq!(mirror.scan_prefix(b"k").unwrap(), plain.scan_prefix(b"k").unwrap());
        }
    }
}
