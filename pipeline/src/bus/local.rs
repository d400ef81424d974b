//! The embedded backend (`local:DIR`): a segmented append-only log on disk.
//!
//! One directory per topic-partition, segments named by their first offset,
//! each record framed as `len | crc32c | offset | timestamp | key | value`.
//! Appends go through a buffer and become visible to readers and durable
//! (fsync) at [`BusProducer::flush`], i.e. at commit. On open, a torn tail
//! (a crash mid-append) is detected by length and CRC and cut off, as is the
//! space preallocated past the last record (zeros). Consumer
//! offsets per group live in `_groups/`. The same files are the archive
//! format replay reads. One process owns a directory at a time (a lock file).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{Assignment, Bus, BusConsumer, BusError, BusProducer, Polled, Record, TopicSpec};

/// A segment rolls over past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The active segment's file is extended this much at a time, ahead of the
/// appends. An `fdatasync` of a file whose size changed also writes its
/// inode; one whose appends land in space already allocated does not, which
/// cost a third less per sync on this disk (docs/performance.md, "What one fdatasync costs"). The
/// space past the last record reads as zeros, which the scan on open takes
/// for the end of the log (a frame cannot have length 0) and cuts off.
const PREALLOCATE_BYTES: u64 = 1024 * 1024;
/// Bound on one record's key + value.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// One sparse index entry every this many records.
const INDEX_EVERY: u64 = 1024;
/// Frame header: len (4) + crc (4); payload header: offset (8) + timestamp (8) + 2 lengths (8).
const FRAME_HEADER: usize = 8;
const PAYLOAD_FIXED: usize = 24;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BusError {
    let context = context.into();
    move |source| BusError::Io { context, source }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the log as the next open would
    // find it after a crash; carry on rather than poison every caller.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct Segment {
    base: u64,
    path: PathBuf,
}

struct PartitionLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    writer: Option<BufWriter<File>>,
    /// Bytes in the active segment, including buffered ones.
    active_len: u64,
    /// Size of the active segment's file: `active_len` and the space
    /// preallocated past it.
    allocated: u64,
    /// False once the active segment's file system refused to preallocate.
    preallocating: bool,
    /// Next offset to assign.
    next_offset: u64,
    /// Records below this offset are flushed: visible to readers.
    visible_end: u64,
    /// Appended to since the last flush: a flush of a clean partition would
    /// still cost a device cache flush on this disk (docs/performance.md, "Machine").
    dirty: bool,
    /// Sparse index: (offset, segment index, byte position).
    index: Vec<(u64, usize, u64)>,
    /// Where recent reads stopped: (next offset, segment index, byte
    /// position). A consumer at the tail reads from where it stopped; from
    /// the sparse index alone it would scan back up to `INDEX_EVERY` frames
    /// each time (most of the CPU of a pipeline at 100 claims/s).
    resume: Vec<(u64, usize, u64)>,
}

/// A record's size on disk, near enough, for sizing a read's buffer: FSE
/// events are about 1 KiB with their frame.
const READ_BYTES_PER_RECORD: usize = 2 * 1024;

/// Read positions remembered per partition (one per recent reader).
const RESUME_POINTS: usize = 16;

fn encode_frame(offset: u64, timestamp: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED + key.len() + value.len());
    payload.extend_from_slice(&offset.to_be_bytes());
    payload.extend_from_slice(&timestamp.to_be_bytes());
    payload.extend_from_slice(&(key.len() as u32).to_be_bytes());
    payload.extend_from_slice(key);
    payload.extend_from_slice(&(value.len() as u32).to_be_bytes());
    payload.extend_from_slice(value);
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// A frame read back: offset, timestamp, key, value, and its size on disk.
type Frame = (u64, i64, Vec<u8>, Vec<u8>, u64);

/// Open partition logs by (topic, partition).
type PartitionMap = BTreeMap<(String, u32), Arc<Mutex<PartitionLog>>>;

/// Reads one frame; `Ok(None)` at a clean end or a torn tail.
fn read_frame(reader: &mut impl Read) -> Result<Option<Frame>, std::io::Error> {
    let mut header = [0u8; FRAME_HEADER];
    if !read_exact_or_eof(reader, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if !(4 + PAYLOAD_FIXED..=4 + PAYLOAD_FIXED + MAX_RECORD_BYTES).contains(&len) {
        return Ok(None);
    }
    let mut payload = vec![0u8; len - 4];
    if !read_exact_or_eof(reader, &mut payload)? || crc32c::crc32c(&payload) != crc {
        return Ok(None);
    }
    let u64_at = |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at =
        |i: usize| u32::from_be_bytes(payload[i..i + 4].try_into().unwrap_or([0; 4])) as usize;
    let offset = u64_at(0);
    let timestamp = u64_at(8) as i64;
    let key_len = u32_at(16);
    let Some(value_len_at) = 20usize
        .checked_add(key_len)
        .filter(|&v| v + 4 <= payload.len())
    else {
        return Ok(None);
    };
    let value_len = u32_at(value_len_at);
    if value_len_at + 4 + value_len != payload.len() {
        return Ok(None);
    }
    let key = payload[20..20 + key_len].to_vec();
    let value = payload[value_len_at + 4..].to_vec();
    Ok(Some((
        offset,
        timestamp,
        key,
        value,
        (FRAME_HEADER + len - 4) as u64,
    )))
}

fn read_exact_or_eof(reader: &mut impl Read, buf: &mut [u8]) -> Result<bool, std::io::Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What a preallocation did.
enum Preallocated {
    Done,
    /// The file system cannot preallocate: appends grow the file.
    Unsupported,
    /// It failed otherwise (a full disk, say): the append goes ahead and
    /// fails or not as it would have, and the next one tries again.
    Failed,
}

/// Allocates `length` bytes of `file` from `from` (reading as zeros),
/// extending its size.
fn preallocate(file: &File, from: u64, length: u64) -> Preallocated {
    use std::os::fd::AsRawFd;
    let (Ok(from), Ok(length)) = (libc::off_t::try_from(from), libc::off_t::try_from(length))
    else {
        return Preallocated::Unsupported;
    };
    // SAFETY: the descriptor is open for writing for the whole call (it is
    // borrowed from `file`); fallocate takes no pointers.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, from, length) } == 0 {
        return Preallocated::Done;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS) => Preallocated::Unsupported,
        _ => Preallocated::Failed,
    }
}

impl Drop for PartitionLog {
    /// A log closed cleanly leaves no preallocated space behind (a crash
    /// does; the next open cuts it). Not synced: what a flush made durable
    /// already is.
    fn drop(&mut self) {
        let _ = self.close_active("close", false);
    }
}

impl PartitionLog {
    fn segment_path(dir: &Path, base: u64) -> PathBuf {
        dir.join(format!("{base:020}.log"))
    }

    /// Opens a partition, scanning its segments to rebuild the index and cut
    /// a torn tail.
    fn open(dir: PathBuf) -> Result<PartitionLog, BusError> {
        fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
        let mut bases: Vec<u64> = fs::read_dir(&dir)
            .map_err(io(dir.display().to_string()))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut log = PartitionLog {
            dir: dir.clone(),
            segments: Vec::new(),
            writer: None,
            active_len: 0,
            allocated: 0,
            preallocating: true,
            next_offset: 0,
            visible_end: 0,
            dirty: false,
            index: Vec::new(),
            resume: Vec::new(),
        };
        for (i, base) in bases.iter().enumerate() {
            let path = Self::segment_path(&dir, *base);
            let file = File::open(&path).map_err(io(path.display().to_string()))?;
            let mut reader = BufReader::new(file);
            let mut position = 0u64;
            let mut expected = *base;
            while let Some((offset, _, _, _, size)) =
                read_frame(&mut reader).map_err(io(path.display().to_string()))?
            {
                if offset != expected {
                    break;
                }
                if offset.is_multiple_of(INDEX_EVERY) {
                    log.index.push((offset, i, position));
                }
                position += size;
                expected += 1;
            }
            let on_disk = fs::metadata(&path)
                .map_err(io(path.display().to_string()))?
                .len();
            if position < on_disk {
                // A torn or corrupt tail: everything after the last good record goes.
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(path.display().to_string()))?;
                file.set_len(position)
                    .map_err(io(path.display().to_string()))?;
                file.sync_all().map_err(io(path.display().to_string()))?;
            }
            log.segments.push(Segment { base: *base, path });
            log.next_offset = expected;
            log.active_len = position;
        }
        log.visible_end = log.next_offset;
        Ok(log)
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>, BusError> {
        if self.segments.is_empty() || self.active_len >= SEGMENT_BYTES {
            self.close_active("segment roll", true)?;
            let path = Self::segment_path(&self.dir, self.next_offset);
            self.segments.push(Segment {
                base: self.next_offset,
                path,
            });
            self.active_len = 0;
        }
        if self.writer.is_none() {
            let segment = self
                .segments
                .last()
                .ok_or_else(|| BusError::Corrupt("no segment".into()))?;
            let context = || segment.path.display().to_string();
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&segment.path)
                .map_err(|e| io(context())(e))?;
            // Written at the end of the records, not of the file: the open
            // scan cut any tail, but a segment may be preallocated.
            file.seek(SeekFrom::Start(self.active_len))
                .map_err(|e| io(context())(e))?;
            self.allocated = file.metadata().map_err(|e| io(context())(e))?.len();
            self.preallocating = true;
            self.writer = Some(BufWriter::with_capacity(256 * 1024, file));
        }
        self.writer
            .as_mut()
            .ok_or_else(|| BusError::Corrupt("no writer".into()))
    }

    /// Makes room for `bytes` more in the active segment's file, extending
    /// it by [`PREALLOCATE_BYTES`] when they would pass its end. Where the
    /// file system cannot preallocate, appends extend the file as they go.
    fn reserve(&mut self, bytes: u64) {
        let needed = self.active_len + bytes;
        if !self.preallocating || needed <= self.allocated {
            return;
        }
        let Some(file) = self.writer.as_ref().map(BufWriter::get_ref) else {
            return;
        };
        let length = (needed - self.allocated).max(PREALLOCATE_BYTES);
        match preallocate(file, self.allocated, length) {
            Preallocated::Done => self.allocated += length,
            Preallocated::Unsupported => self.preallocating = false,
            Preallocated::Failed => {}
        }
    }

    /// Writes out, cuts the preallocated space past the last record and
    /// closes the active segment's file, if open; syncs it if asked.
    fn close_active(&mut self, context: &str, sync: bool) -> Result<(), BusError> {
        if let Some(mut w) = self.writer.take() {
            w.flush().map_err(io(context))?;
            if self.allocated > self.active_len {
                w.get_ref().set_len(self.active_len).map_err(io(context))?;
            }
            if sync {
                w.get_ref().sync_data().map_err(io(context))?;
            }
        }
        self.allocated = 0;
        Ok(())
    }

    fn append(&mut self, timestamp: i64, key: &[u8], value: &[u8]) -> Result<u64, BusError> {
        if key.len() + value.len() > MAX_RECORD_BYTES {
            return Err(BusError::TooLarge(key.len() + value.len()));
        }
        let offset = self.next_offset;
        let frame = encode_frame(offset, timestamp, key, value);
        let position = self.active_len;
        let segment_index = {
            self.writer()?;
            self.segments.len() - 1
        };
        self.reserve(frame.len() as u64);
        self.writer()?.write_all(&frame).map_err(io("append"))?;
        if offset.is_multiple_of(INDEX_EVERY) {
            self.index.push((offset, segment_index, position));
        }
        self.active_len += frame.len() as u64;
        self.next_offset += 1;
        self.dirty = true;
        Ok(offset)
    }

    /// Appends at a given offset. Past the end it leaves a gap, which starts
    /// a new segment based at the offset: an archive of a compacted topic
    /// keeps the broker's offsets, which watermarks and checkpoints name.
    fn append_at(
        &mut self,
        offset: u64,
        timestamp: i64,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), BusError> {
        if offset < self.next_offset {
            return Err(BusError::Config(format!(
                "offset {offset} is below the partition's end {}",
                self.next_offset
            )));
        }
        if offset > self.next_offset {
            self.close_active("gap", true)?;
            self.next_offset = offset;
            // Makes the next write roll into a segment based at `offset`.
            self.active_len = SEGMENT_BYTES;
        }
        self.append(timestamp, key, value).map(|_| ())
    }

    fn flush(&mut self) -> Result<(), BusError> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(w) = &mut self.writer {
            w.flush().map_err(io("flush"))?;
            w.get_ref().sync_data().map_err(io("fsync"))?;
        }
        self.visible_end = self.next_offset;
        self.dirty = false;
        Ok(())
    }

    /// Records from `from`, at most `max`, up to the visible end.
    fn read(
        &mut self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, BusError> {
        let end = self.visible_end;
        if from >= end || max == 0 {
            return Ok(Vec::new());
        }
        // Where a read stopped at `from`, else the last index entry at or
        // before it, else the segment start.
        let seg = self
            .segments
            .partition_point(|s| s.base <= from)
            .saturating_sub(1);
        let (mut segment, mut position) = match self.resume.iter().find(|(o, _, _)| *o == from) {
            Some((_, s, p)) => (*s, *p),
            None => (
                seg,
                self.index
                    .iter()
                    .rev()
                    .find(|(o, s, _)| *o <= from && *s == seg)
                    .map_or(0, |(_, _, p)| *p),
            ),
        };
        let mut out = Vec::new();
        'segments: while segment < self.segments.len() && out.len() < max {
            let path = &self.segments[segment].path;
            let context = || path.display().to_string();
            let mut file = File::open(path).map_err(|e| io(context())(e))?;
            file.seek(SeekFrom::Start(position)).map_err(io("seek"))?;
            // Sized for what is asked: a read of one or two records (a
            // consumer at the tail at a low rate, a replayed checkpoint)
            // would otherwise copy 64 KiB from the page cache for 2.
            let capacity = max
                .saturating_mul(READ_BYTES_PER_RECORD)
                .clamp(4 * 1024, 64 * 1024);
            let mut reader = BufReader::with_capacity(capacity, file);
            while out.len() < max {
                let Some((offset, timestamp, key, value, size)) =
                    read_frame(&mut reader).map_err(|e| io(context())(e))?
                else {
                    break;
                };
                if offset >= end {
                    break 'segments;
                }
                position += size;
                if offset >= from {
                    out.push(Record {
                        topic: topic.to_string(),
                        partition,
                        offset,
                        timestamp_millis: timestamp,
                        key,
                        value,
                    });
                }
            }
            // At the end of a segment: the next one, if any (the last one
            // is kept, so that a resume point stays in it for what comes).
            if out.len() >= max || segment + 1 >= self.segments.len() {
                break;
            }
            segment += 1;
            position = 0;
        }
        if let Some(last) = out.last() {
            if self.resume.len() >= RESUME_POINTS {
                self.resume.remove(0);
            }
            self.resume.retain(|(o, _, _)| *o != last.offset + 1);
            self.resume.push((last.offset + 1, segment, position));
        }
        Ok(out)
    }
}

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
    /// once instead of after a fixed sleep (up to 5 ms saved per hop). Only
    /// those: a changelog or checkpoint flush wakes nobody, where a
    /// broadcast woke every consumer to read its partitions for nothing
    /// (docs/performance.md, "Kept, and what each gave").
    watchers: Mutex<BTreeMap<String, Vec<Weak<Signal>>>>,
    /// Each group's committed offsets, read from its file once and written
    /// back at most every [`GROUP_WRITE_EVERY`] and when a consumer is
    /// dropped. A group's members (a stage's workers) share the entry.
    groups: Mutex<BTreeMap<String, GroupOffsets>>,
}

/// How often a group's offsets file is rewritten while its consumers
/// commit. The offsets are informational (a stage seeks to the cursor in
/// its own state); rewriting the file at every batch (create, write,
/// rename) cost 6 % of the pipeline's CPU at 100x the mean
/// (docs/performance.md, "Kept, and what each gave").
const GROUP_WRITE_EVERY: Duration = Duration::from_secs(1);

struct GroupOffsets {
    offsets: BTreeMap<String, u64>,
    /// When the file was last written, if it has been by this process.
    written: Option<Instant>,
    /// Commits not yet in the file.
    dirty: bool,
}

impl LocalLog {
    pub fn open(dir: &Path) -> Result<Arc<LocalLog>, BusError> {
        fs::create_dir_all(dir.join("_groups")).map_err(io(dir.display().to_string()))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(lock_path.display().to_string()))?;
        lock.try_lock()
            .map_err(|_| BusError::Busy(format!("{} is used by another process", dir.display())))?;
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
        Ok(Arc::new(LocalLog {
            dir: dir.to_path_buf(),
            _lock: lock,
            topics: Mutex::new(topics),
            partitions: Mutex::new(BTreeMap::new()),
            watchers: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Wakes the consumers waiting on `topics` (forgetting dropped ones).
    fn announce_flush<'t>(&self, topics: impl IntoIterator<Item = &'t str>) {
        let mut watchers = lock(&self.watchers);
        for topic in topics {
            if let Some(list) = watchers.get_mut(topic) {
                list.retain(|w| match w.upgrade() {
                    Some(signal) => {
                        signal.raise();
                        true
                    }
                    None => false,
                });
            }
        }
    }

    fn watch(&self, topic: &str, signal: &Arc<Signal>) {
        lock(&self.watchers)
            .entry(topic.to_string())
            .or_default()
            .push(Arc::downgrade(signal));
    }

    fn topic_partitions(&self, topic: &str) -> Result<u32, BusError> {
        lock(&self.topics)
            .get(topic)
            .map(|m| m.partitions)
            .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Mutex<PartitionLog>>, BusError> {
        let count = self.topic_partitions(topic)?;
        if partition >= count {
            return Err(BusError::UnknownPartition(topic.to_string(), partition));
        }
        let mut partitions = lock(&self.partitions);
        if let Some(log) = partitions.get(&(topic.to_string(), partition)) {
            return Ok(log.clone());
        }
        let log = Arc::new(Mutex::new(PartitionLog::open(
            self.dir.join(topic).join(partition.to_string()),
        )?));
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
        guard.append_at(offset, timestamp_millis, key, value)
    }

    /// Makes a partition's appends durable and visible.
    pub fn flush_partition(&self, topic: &str, partition: u32) -> Result<(), BusError> {
        let log = self.partition(topic, partition)?;
        lock(&log).flush()?;
        self.announce_flush([topic]);
        Ok(())
    }

    fn group_path(&self, group: &str) -> PathBuf {
        self.dir.join("_groups").join(format!("{group}.json"))
    }

    /// Calls `with` on a group's offsets, read from its file on first use.
    /// They are informational (a stage seeks to the cursor in its own
    /// state), so they are written without an fsync and a file a power loss
    /// left empty reads as no offsets.
    fn with_group<T>(
        &self,
        group: &str,
        with: impl FnOnce(&mut GroupOffsets) -> T,
    ) -> Result<T, BusError> {
        let mut groups = lock(&self.groups);
        if !groups.contains_key(group) {
            let offsets = match fs::read_to_string(self.group_path(group)) {
                Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(io(format!("group {group}"))(e)),
            };
            groups.insert(
                group.to_string(),
                GroupOffsets {
                    offsets,
                    written: None,
                    dirty: false,
                },
            );
        }
        let entry = groups
            .get_mut(group)
            .ok_or_else(|| BusError::Corrupt(format!("group {group}")))?;
        Ok(with(entry))
    }

    /// Records commits; the file follows every [`GROUP_WRITE_EVERY`], or
    /// now with `write_now`.
    fn commit_group(
        &self,
        group: &str,
        offsets: &[(String, u32, u64)],
        write_now: bool,
    ) -> Result<(), BusError> {
        // Written under the lock: a later snapshot never lands first.
        self.with_group(group, |g| {
            for (topic, partition, offset) in offsets {
                g.offsets.insert(group_key(topic, *partition), *offset);
            }
            g.dirty |= !offsets.is_empty();
            if g.dirty
                && (write_now || g.written.is_none_or(|at| at.elapsed() >= GROUP_WRITE_EVERY))
            {
                self.write_group(group, &g.offsets)?;
                g.written = Some(Instant::now());
                g.dirty = false;
            }
            Ok(())
        })?
    }

    fn write_group(&self, group: &str, offsets: &BTreeMap<String, u64>) -> Result<(), BusError> {
        let path = self.group_path(group);
        let tmp = path.with_extension("tmp");
        let text =
            serde_json::to_vec_pretty(offsets).map_err(|e| BusError::Corrupt(e.to_string()))?;
        let mut file = File::create(&tmp).map_err(io(tmp.display().to_string()))?;
        file.write_all(&text)
            .map_err(io(tmp.display().to_string()))?;
        fs::rename(&tmp, &path).map_err(io(path.display().to_string()))?;
        Ok(())
    }
}

fn group_key(topic: &str, partition: u32) -> String {
    format!("{topic}/{partition}")
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
        fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
        let meta = TopicMeta {
            partitions: spec.partitions,
            compacted: spec.compacted,
        };
        let text = serde_json::to_vec(&meta).map_err(|e| BusError::Corrupt(e.to_string()))?;
        fs::write(dir.join("topic.json"), text).map_err(io(dir.display().to_string()))?;
        topics.insert(spec.name.clone(), meta);
        Ok(())
    }

    fn partition_count(&self, topic: &str) -> Result<u32, BusError> {
        self.topic_partitions(topic)
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
        Ok(Box::new(LocalProducer {
            log: self.clone(),
            touched: BTreeMap::new(),
            appended: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
        }))
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
        Ok(Box::new(LocalConsumer {
            log: self.clone(),
            group: group.to_string(),
            share: (index, members),
            positions: BTreeMap::new(),
            announced: false,
            signal: Arc::new(Signal::default()),
        }))
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, BusError> {
        self.with_group(group, |g| {
            g.offsets.get(&group_key(topic, partition)).copied()
        })
    }
}

struct LocalProducer {
    log: Arc<LocalLog>,
    touched: BTreeMap<(String, u32), Arc<Mutex<PartitionLog>>>,
    /// Offset after the last record appended, per partition; acknowledged
    /// once flushed.
    appended: BTreeMap<(String, u32), u64>,
    acknowledged: BTreeMap<(String, u32), u64>,
}

impl BusProducer for LocalProducer {
    fn send(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: &[u8],
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        let log = match self.touched.get(&(topic.to_string(), partition)) {
            Some(log) => log.clone(),
            None => {
                let log = self.log.partition(topic, partition)?;
                self.touched
                    .insert((topic.to_string(), partition), log.clone());
                log
            }
        };
        let offset = lock(&log).append(timestamp_millis, key, value)?;
        self.appended
            .insert((topic.to_string(), partition), offset + 1);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BusError> {
        // The partitions written since the last flush, and only those.
        for key in self.appended.keys() {
            if let Some(log) = self.touched.get(key) {
                lock(log).flush()?;
            }
        }
        let mut topics: Vec<&str> = self.appended.keys().map(|(t, _)| t.as_str()).collect();
        topics.dedup();
        self.log.announce_flush(topics);
        self.acknowledged.extend(std::mem::take(&mut self.appended));
        Ok(())
    }

    fn acknowledged_end(&self, topic: &str, partition: u32) -> Option<u64> {
        self.acknowledged
            .get(&(topic.to_string(), partition))
            .copied()
    }
}

/// A consumer of the local log: one process owns every partition, so the
/// assignment is this member's share of the subscribed topics' partitions,
/// announced once.
struct LocalConsumer {
    log: Arc<LocalLog>,
    group: String,
    /// (index, members): this member's share of each topic's partitions.
    share: (u32, u32),
    positions: BTreeMap<(String, u32), u64>,
    announced: bool,
    /// Raised by a flush of a subscribed topic.
    signal: Arc<Signal>,
}

/// A consumer's wake-up: a count of flushes of its topics.
#[derive(Default)]
struct Signal {
    flushes: Mutex<u64>,
    raised: Condvar,
}

impl Signal {
    fn raise(&self) {
        *lock(&self.flushes) += 1;
        self.raised.notify_one();
    }

    fn seen(&self) -> u64 {
        *lock(&self.flushes)
    }

    /// Waits until a flush after `seen`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = lock(&self.flushes);
        // A poisoned lock only ends the wait early; the caller reads again.
        let _ = self
            .raised
            .wait_timeout_while(guard, timeout, |count| *count == seen);
    }
}

impl BusConsumer for LocalConsumer {
    fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        let committed = self.log.with_group(&self.group, |g| g.offsets.clone())?;
        for topic in topics {
            self.log.watch(topic, &self.signal);
            let (index, members) = self.share;
            for partition in (0..self.log.topic_partitions(topic)?).filter(|p| p % members == index)
            {
                let position = committed
                    .get(&group_key(topic, partition))
                    .copied()
                    .unwrap_or(0);
                self.positions
                    .insert((topic.to_string(), partition), position);
            }
        }
        self.announced = false;
        Ok(())
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Polled, BusError> {
        if !self.announced {
            self.announced = true;
            return Ok(Polled {
                records: Vec::new(),
                assignment: Some(Assignment {
                    partitions: self.positions.keys().cloned().collect(),
                }),
            });
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // Taken before reading, so a flush between the read and the
            // wait is not missed.
            let seen = self.signal.seen();
            let mut records = Vec::new();
            for ((topic, partition), position) in &mut self.positions {
                if records.len() >= max_records {
                    break;
                }
                let batch =
                    self.log
                        .read(topic, *partition, *position, max_records - records.len())?;
                if let Some(last) = batch.last() {
                    *position = last.offset + 1;
                }
                records.extend(batch);
            }
            let now = std::time::Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(Polled {
                    records,
                    assignment: None,
                });
            }
            self.signal.wait(seen, deadline - now);
        }
    }

    fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), BusError> {
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    fn commit(&mut self, offsets: &[(String, u32, u64)]) -> Result<(), BusError> {
        self.log.commit_group(&self.group, offsets, false)
    }
}

impl Drop for LocalConsumer {
    /// The group's file gets the last commits (a stop, a rebalance in tests).
    fn drop(&mut self) {
        if let Err(e) = self.log.commit_group(&self.group, &[], true) {
            eprintln!("group {}: offsets not written: {e}", self.group);
        }
    }
}
