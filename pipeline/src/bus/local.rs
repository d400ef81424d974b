//! The embedded backend (`local:DIR`): a segmented append-only log on disk.
//!
//! One directory per topic-partition, segments named by their first offset,
//! each record framed as `len | crc32c | offset | timestamp | key | value`.
//! Appends go through a buffer and become visible to readers and durable
//! (fsync) at [`BusProducer::flush`], i.e. at commit. On open, a torn tail
//! (a crash mid-append: bytes past the last complete frame of the last
//! segment, among which no valid frame lies) is detected by length and CRC
//! and cut off, as is the space preallocated past the last record (zeros).
//! Damage anywhere else (a closed segment, or a frame that valid frames
//! follow) holds records that were acknowledged: the partition does not
//! open, and [`LocalLog::check`] and [`LocalLog::quarantine_damage`]
//! (`clearing log`) let an operator see and move it aside. Consumer
//! offsets per group live in `_groups/`. The same files are the archive
//! format replay reads. One process owns a directory at a time (a lock file).
//! A test fault mode journals what each fsync made durable, so that a
//! harness can make the crash image a power loss would leave
//! ([`LocalLog::crash_image`], `local/crash_image.rs`).
//!
//! Here: the log, a directory of topics, and its `Bus` implementation.
//! Beside it, a module per concern: the frame format (`frame`), a
//! partition's segments and appends (`partition`) and its reads (`read`),
//! what lies past a segment's records and its repair (`check`), durable
//! file operations (`files`), group offsets (`groups`), producers
//! (`produce`) and consumers (`consume`).

mod check;
mod compact;
mod consume;
mod crash_image;
mod files;
mod frame;
mod groups;
mod partition;
mod produce;
mod read;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{Bus, BusConsumer, BusError, BusProducer, Record, TopicSpec};
pub use check::{CheckReport, Damage, Quarantined, TornTail};
use check::{Tail, inspect_partition, quarantine};
pub use compact::{CompactSettings, Compacted, DEFAULT_TOMBSTONE_RETENTION};
use consume::{LocalConsumer, Signal};
use crash_image::Journal;
pub use crash_image::{CRASH_IMAGE_ENV, CrashImage, crash_image_mode};
use files::{note_created, sync_dir, write_atomically};
use groups::{GroupOffsets, group_key};
use partition::PartitionLog;
use produce::LocalProducer;

/// Bound on one record's key + value.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BusError {
    let context = context.into();
    move |source| BusError::Io { context, source }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the log as the next open would
    // find it after a crash; carry on rather than poison every caller.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open partition logs by (topic, partition).
type PartitionMap = BTreeMap<(String, u32), Arc<Mutex<PartitionLog>>>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TopicMeta {
    partitions: u32,
    compacted: bool,
}

/// The local log: a directory of topics.
pub struct LocalLog {
    dir: PathBuf,
    _lock: File,
    topics: Mutex<BTreeMap<String, TopicMeta>>,
    partitions: Mutex<PartitionMap>,
    /// The consumers waiting for records, by topic. One process owns the
    /// log (the lock file), so every writer is in this process, and a flush
    /// that makes records visible wakes the consumers of those topics at
    /// once instead of after a fixed sleep. Only
    /// those: a changelog or checkpoint flush wakes nobody, where a
    /// broadcast woke every consumer to read its partitions for nothing
    /// (docs/performance.md, "Kept, and what each gave").
    watchers: Mutex<BTreeMap<String, Vec<Weak<Signal>>>>,
    /// Each group's committed offsets, read from its file once and written
    /// back at most every `groups::GROUP_WRITE_EVERY` and when a consumer is
    /// dropped. A group's members (a stage's workers) share the entry.
    groups: Mutex<BTreeMap<String, GroupOffsets>>,
    /// The power-loss fault mode's journal ([`crash_image`]), if on.
    journal: Option<Arc<Journal>>,
    /// The size past which a segment rolls over.
    segment_bytes: u64,
}

/// The log directory's lock file, held exclusively: one process owns a local
/// log at a time (its opens and its crash images alike).
fn lock_exclusively(dir: &Path) -> Result<File, BusError> {
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(lock_path.display().to_string()))?;
    try_lock_waiting(&lock)
        .map_err(|_| BusError::Busy(format!("{} is used by another process", dir.display())))?;
    Ok(lock)
}

/// How long an open waits for a lock file's lock before it says the file is
/// in use: a process that has just let go of it may not have yet (a child
/// spawned by any thread of it holds a copy of its descriptors until it
/// executes its program, and the lock lasts while one copy is open).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Takes `file`'s exclusive lock, retrying for up to [`LOCK_WAIT`].
pub(crate) fn try_lock_waiting(file: &File) -> Result<(), std::fs::TryLockError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl LocalLog {
    /// Opens the log in `dir`, in the power-loss fault mode if
    /// [`CRASH_IMAGE_ENV`] is set.
    pub fn open(dir: &Path) -> Result<Arc<LocalLog>, BusError> {
        LocalLog::open_with(dir, crash_image_mode())
    }

    /// Opens the log, recording what each fsync makes durable in its
    /// journal if `fault_mode` ([`crash_image`]): a harness that opens a
    /// log between crash images must, or what its open syncs would be
    /// taken for unsynced by the next image.
    pub fn open_with(dir: &Path, fault_mode: bool) -> Result<Arc<LocalLog>, BusError> {
        fs::create_dir_all(dir.join("_groups")).map_err(io(dir.display().to_string()))?;
        let lock = lock_exclusively(dir)?;
        let mut topics = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io(dir.display().to_string()))? {
            let entry = entry.map_err(io(dir.display().to_string()))?;
            let meta_path = entry.path().join("topic.json");
            if let Ok(text) = fs::read_to_string(&meta_path) {
                let meta: TopicMeta = serde_json::from_str(&text)
                    .map_err(|e| BusError::Corrupt(format!("{}: {e}", meta_path.display())))?;
                topics.insert(entry.file_name().to_string_lossy().into_owned(), meta);
            }
        }
        let journal = if fault_mode {
            Some(Arc::new(Journal::open(dir)?))
        } else {
            None
        };
        // The entries a killed process created and never synced, durable
        // from now on (records acknowledged into them later would go with
        // them in a power loss): the topics' in the root, each topic's
        // partitions and `topic.json` in its directory, once per open; the
        // segments' as their partition opens.
        sync_dir(dir, journal.as_deref())?;
        for topic in topics.keys() {
            sync_dir(&dir.join(topic), journal.as_deref())?;
        }
        Ok(Arc::new(LocalLog {
            dir: dir.to_path_buf(),
            journal,
            segment_bytes: partition::SEGMENT_BYTES,
            _lock: lock,
            topics: Mutex::new(topics),
            partitions: Mutex::new(BTreeMap::new()),
            watchers: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Opens the log with segments that roll over past `segment_bytes`
    /// (64 MiB otherwise): tests of compaction, which cleans closed
    /// segments only, need some.
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<Arc<LocalLog>, BusError> {
        let mut log = LocalLog::open_with(dir, crash_image_mode())?;
        if let Some(log) = Arc::get_mut(&mut log) {
            log.segment_bytes = segment_bytes.max(1);
        }
        Ok(log)
    }

    /// Turns the log directory `dir`, whose processes were killed in the
    /// power-loss fault mode ([`CRASH_IMAGE_ENV`]), into what a power loss
    /// would have left: see [`crash_image`]. `seed` keeps random prefixes
    /// of the unsynced bytes instead of none. Refused while a process has
    /// the log open.
    pub fn crash_image(dir: &Path, seed: Option<u64>) -> Result<CrashImage, BusError> {
        let _lock = lock_exclusively(dir)?;
        crash_image::apply(dir, seed)
    }

    /// Scans every segment of every partition, changing nothing, and
    /// reports each damaged segment (which stops the partition's open) and
    /// each torn tail (which the next open cuts).
    pub fn check(&self) -> Result<CheckReport, BusError> {
        let mut report = CheckReport::default();
        for (topic, partition, dir, gaps) in self.partition_dirs() {
            report.partitions += 1;
            for inspected in inspect_partition(&dir, &topic, partition, gaps)? {
                let scan = &inspected.scan;
                report.segments += 1;
                report.records += scan.next - scan.base;
                match inspected.tail {
                    Tail::Clean => {}
                    Tail::Cut => report.torn_tails.push(TornTail {
                        topic: topic.clone(),
                        partition,
                        segment: scan.path.clone(),
                        position: scan.end,
                        bytes: scan.len - scan.end,
                        offset: scan.next,
                    }),
                    Tail::Damaged(damage) => report.damage.push(damage),
                }
            }
        }
        Ok(report)
    }

    /// Moves the bytes of every damaged segment from the damage on into a
    /// quarantine file next to the segment (`<segment>.quarantine`), cuts the
    /// segment there, and says what it moved: an operator then decides what
    /// becomes of the records among them. Refused once a partition was
    /// opened by this process, whose view of it the cut would falsify.
    pub fn quarantine_damage(&self) -> Result<Vec<Quarantined>, BusError> {
        if !lock(&self.partitions).is_empty() {
            return Err(BusError::Config(
                "quarantine runs on a log whose partitions this process has not opened".into(),
            ));
        }
        let mut moved = Vec::new();
        for (topic, partition, dir, gaps) in self.partition_dirs() {
            for inspected in inspect_partition(&dir, &topic, partition, gaps)? {
                if let Tail::Damaged(damage) = inspected.tail {
                    moved.push(quarantine(damage)?);
                }
            }
        }
        Ok(moved)
    }

    /// Each partition directory that exists: (topic, partition, directory,
    /// whether the topic is compacted).
    fn partition_dirs(&self) -> Vec<(String, u32, PathBuf, bool)> {
        lock(&self.topics)
            .iter()
            .flat_map(|(topic, meta)| {
                (0..meta.partitions).map(move |p| {
                    let dir = self.dir.join(topic).join(p.to_string());
                    (topic.clone(), p, dir, meta.compacted)
                })
            })
            .filter(|(_, _, dir, _)| dir.is_dir())
            .collect()
    }

    fn topic_partitions(&self, topic: &str) -> Result<u32, BusError> {
        lock(&self.topics)
            .get(topic)
            .map(|m| m.partitions)
            .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Mutex<PartitionLog>>, BusError> {
        let (count, gaps) = lock(&self.topics)
            .get(topic)
            .map(|m| (m.partitions, m.compacted))
            .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))?;
        if partition >= count {
            return Err(BusError::UnknownPartition(topic.to_string(), partition));
        }
        let mut partitions = lock(&self.partitions);
        if let Some(log) = partitions.get(&(topic.to_string(), partition)) {
            return Ok(log.clone());
        }
        let mut opened = PartitionLog::open(
            self.dir.join(topic).join(partition.to_string()),
            topic,
            partition,
            self.journal.clone(),
            gaps,
        )?;
        opened.segment_bytes = self.segment_bytes;
        let log = Arc::new(Mutex::new(opened));
        partitions.insert((topic.to_string(), partition), log.clone());
        Ok(log)
    }

    /// Appends a record at its original offset (archives); see
    /// [`PartitionLog::append_at`]. Visible after [`LocalLog::flush_partition`].
    pub fn append_at(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timestamp_millis: i64,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), BusError> {
        let log = self.partition(topic, partition)?;
        let mut guard = lock(&log);
        guard.append_at(offset, timestamp_millis, key, Some(value))
    }

    /// Appends a copy of `record` to `topic/partition` at its offset, a
    /// tombstone as a tombstone (archives); see [`LocalLog::append_at`].
    pub fn append_copy(
        &self,
        topic: &str,
        partition: u32,
        record: &Record,
    ) -> Result<(), BusError> {
        let log = self.partition(topic, partition)?;
        let value = (!record.tombstone).then_some(record.value.as_slice());
        let mut guard = lock(&log);
        guard.append_at(record.offset, record.timestamp_millis, &record.key, value)
    }

    /// Compacts every partition of a compacted topic (`compact.rs`): the
    /// latest record per key of its closed segments, tombstones dropped
    /// after their retention. Refused for a topic that is not compacted.
    pub fn compact_topic(
        &self,
        topic: &str,
        settings: &CompactSettings,
    ) -> Result<Vec<Compacted>, BusError> {
        let compacted = lock(&self.topics)
            .get(topic)
            .map(|m| m.compacted)
            .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))?;
        if !compacted {
            return Err(BusError::Config(format!("topic {topic} is not compacted")));
        }
        (0..self.topic_partitions(topic)?)
            .map(|p| {
                let log = self.partition(topic, p)?;
                let mut guard = lock(&log);
                guard.compact(settings)
            })
            .collect()
    }

    /// The topics of the log, and whether each is compacted.
    pub fn topics(&self) -> Vec<(String, bool)> {
        lock(&self.topics)
            .iter()
            .map(|(name, meta)| (name.clone(), meta.compacted))
            .collect()
    }

    /// Makes a partition's appends durable and visible.
    pub fn flush_partition(&self, topic: &str, partition: u32) -> Result<(), BusError> {
        let log = self.partition(topic, partition)?;
        lock(&log).flush()?;
        self.announce_flush([topic]);
        Ok(())
    }
}

impl Bus for Arc<LocalLog> {
    fn describe(&self) -> String {
        format!("local:{}", self.dir.display())
    }

    fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        let mut topics = lock(&self.topics);
        if let Some(existing) = topics.get(&spec.name) {
            if existing.partitions != spec.partitions {
                return Err(BusError::Config(format!(
                    "topic {} has {} partitions, {} wanted",
                    spec.name, existing.partitions, spec.partitions
                )));
            }
            return Ok(());
        }
        let dir = self.dir.join(&spec.name);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
            note_created(self.journal.as_deref(), &dir)?;
            sync_dir(&self.dir, self.journal.as_deref())?;
        }
        let meta = TopicMeta {
            partitions: spec.partitions,
            compacted: spec.compacted,
        };
        let text = serde_json::to_vec(&meta).map_err(|e| BusError::Corrupt(e.to_string()))?;
        // A topic.json cut by a crash would stop every later open.
        write_atomically(&dir.join("topic.json"), &text, self.journal.as_deref())?;
        topics.insert(spec.name.clone(), meta);
        Ok(())
    }

    fn partition_count(&self, topic: &str) -> Result<u32, BusError> {
        self.topic_partitions(topic)
    }

    fn max_record_bytes(&self) -> usize {
        MAX_RECORD_BYTES
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, BusError> {
        let log = self.partition(topic, partition)?;
        let end = lock(&log).visible_end;
        Ok(end)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, BusError> {
        let log = self.partition(topic, partition)?;
        let mut guard = lock(&log);
        guard.read(topic, partition, from, max)
    }

    fn producer(&self) -> Result<Box<dyn BusProducer>, BusError> {
        Ok(Box::new(LocalProducer::new(self.clone())))
    }

    fn consumer(&self, group: &str) -> Result<Box<dyn BusConsumer>, BusError> {
        self.member(group, 0, 1)
    }

    /// One process owns the log, so there is no group protocol to ask:
    /// member `index` takes the partitions `p` with `p % members == index`.
    fn member(
        &self,
        group: &str,
        index: u32,
        members: u32,
    ) -> Result<Box<dyn BusConsumer>, BusError> {
        if index >= members {
            return Err(BusError::Config(format!(
                "member {index} of {members} in group {group}"
            )));
        }
        Ok(Box::new(LocalConsumer::new(
            self.clone(),
            group,
            (index, members),
        )))
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, BusError> {
        self.with_group(group, |g| {
            g.offsets.get(&group_key(topic, partition)).copied()
        })
    }
}
