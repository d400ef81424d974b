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

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{Assignment, Bus, BusConsumer, BusError, BusProducer, Polled, Record, TopicSpec};

mod crash_image;
use crash_image::Journal;
pub use crash_image::{CRASH_IMAGE_ENV, CrashImage, crash_image_mode};

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
    /// The offset after its last record: a read that stops short of it in
    /// this segment met damage.
    end: u64,
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
    /// The power-loss fault mode's journal ([`crash_image`]), if on.
    journal: Option<Arc<Journal>>,
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

/// Why the bytes at a position are not the frame expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadFrame {
    /// Zeros where a frame's length should be: preallocated space.
    Zero,
    /// The file ends inside the frame.
    Short,
    /// A length no frame has.
    Length(u32),
    /// The payload does not match its CRC.
    Crc,
    /// The key and value lengths do not add up to the payload's.
    Layout,
    /// A valid frame, of another record than the one expected.
    Offset(u64),
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::Zero => f.write_str("zeros where a frame should start"),
            BadFrame::Short => f.write_str("the file ends inside the frame"),
            BadFrame::Length(len) => write!(f, "a frame length of {len} bytes, out of bounds"),
            BadFrame::Crc => f.write_str("the frame fails its CRC"),
            BadFrame::Layout => f.write_str("the frame's key and value lengths do not add up"),
            BadFrame::Offset(offset) => write!(f, "a valid frame of record {offset}"),
        }
    }
}

/// One read of [`read_frame`].
enum FrameRead {
    Frame(Frame),
    /// The file ends exactly here.
    End,
    Bad(BadFrame),
}

/// The payload's fields: offset, timestamp, and where the key and the value
/// lie in it; `None` if the lengths do not add up.
fn payload_layout(
    payload: &[u8],
) -> Option<(u64, i64, std::ops::Range<usize>, std::ops::Range<usize>)> {
    let u64_at = |i: usize| Some(u64::from_be_bytes(payload.get(i..i + 8)?.try_into().ok()?));
    let u32_at =
        |i: usize| Some(u32::from_be_bytes(payload.get(i..i + 4)?.try_into().ok()?) as usize);
    let offset = u64_at(0)?;
    let timestamp = u64_at(8)? as i64;
    let key_len = u32_at(16)?;
    let value_len_at = 20usize
        .checked_add(key_len)
        .filter(|&v| v + 4 <= payload.len())?;
    let value_len = u32_at(value_len_at)?;
    (value_len_at + 4 + value_len == payload.len()).then_some((
        offset,
        timestamp,
        20..value_len_at,
        value_len_at + 4..payload.len(),
    ))
}

/// Whether a frame's length field is one a frame can have.
fn plausible_length(len: usize) -> bool {
    (4 + PAYLOAD_FIXED..=4 + PAYLOAD_FIXED + MAX_RECORD_BYTES).contains(&len)
}

/// Reads one frame, or says why the bytes there are not one.
fn read_frame(reader: &mut impl Read) -> Result<FrameRead, std::io::Error> {
    let mut header = [0u8; FRAME_HEADER];
    match fill(reader, &mut header)? {
        0 => return Ok(FrameRead::End),
        FRAME_HEADER => {}
        _ => return Ok(FrameRead::Bad(BadFrame::Short)),
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Ok(FrameRead::Bad(BadFrame::Zero));
    }
    if !plausible_length(len as usize) {
        return Ok(FrameRead::Bad(BadFrame::Length(len)));
    }
    let mut payload = vec![0u8; len as usize - 4];
    if fill(reader, &mut payload)? < payload.len() {
        return Ok(FrameRead::Bad(BadFrame::Short));
    }
    if crc32c::crc32c(&payload) != crc {
        return Ok(FrameRead::Bad(BadFrame::Crc));
    }
    let Some((offset, timestamp, key, value)) = payload_layout(&payload) else {
        return Ok(FrameRead::Bad(BadFrame::Layout));
    };
    Ok(FrameRead::Frame((
        offset,
        timestamp,
        payload[key].to_vec(),
        payload[value].to_vec(),
        (FRAME_HEADER + len as usize - 4) as u64,
    )))
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The valid frames in `tail` (bytes past the last record read in order)
/// of records at or after `next`, as (position in `tail`, offset). A torn
/// tail holds none: what a crash leaves past the last sync is a frame cut
/// short, zeros, or both. Any position may start one, since the damage may
/// have hit a length field; a candidate is checked cheaply (length, offset
/// in reach) before its CRC is computed.
fn frames_in(tail: &[u8], next: u64) -> Vec<(usize, u64)> {
    let reach = (tail.len() / (FRAME_HEADER + PAYLOAD_FIXED)) as u64;
    let mut found = Vec::new();
    let mut at = 0;
    while at + FRAME_HEADER + PAYLOAD_FIXED <= tail.len() {
        let frame = &tail[at..];
        let be32 =
            |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        let len = be32(0) as usize;
        let offset = u64::from_be_bytes(
            frame[FRAME_HEADER..FRAME_HEADER + 8]
                .try_into()
                .unwrap_or([0xff; 8]),
        );
        let candidate = plausible_length(len)
            && 4 + len <= frame.len()
            && offset >= next
            && offset - next <= reach;
        if candidate {
            let payload = &frame[FRAME_HEADER..4 + len];
            if crc32c::crc32c(payload) == be32(4) && payload_layout(payload).is_some() {
                found.push((at, offset));
                at += 4 + len;
                continue;
            }
        }
        at += 1;
    }
    found
}

/// Damage in a segment of the local log: bytes past the last record that
/// reads in order which are not a torn tail, because valid records follow
/// them or the segment is closed (it was synced whole when the next one
/// started). Cutting them could lose acknowledged records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub topic: String,
    pub partition: u32,
    pub segment: PathBuf,
    /// Where the first frame that does not read starts.
    pub position: u64,
    /// The record that should start there.
    pub offset: u64,
    /// Bytes from `position` to the end of the segment's file.
    pub bytes: u64,
    /// What is wrong at `position`.
    pub reason: String,
    /// The offsets of the valid records found past `position`.
    pub records_after: Vec<u64>,
    /// A later segment exists.
    pub closed: bool,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "topic {} partition {}: segment {} is damaged at byte {}, where record {} should start ({}); ",
            self.topic,
            self.partition,
            self.segment.display(),
            self.position,
            self.offset,
            self.reason
        )?;
        match (self.records_after.first(), self.records_after.last()) {
            (Some(first), Some(last)) => write!(
                f,
                "{} valid record(s) follow it (offsets {first} to {last}), so it is not a torn tail",
                self.records_after.len()
            ),
            _ if self.closed => f.write_str(
                "the segment is closed (synced whole when the next one started), so it is not a torn tail",
            ),
            _ => f.write_str(
                "a crash leaves a frame cut short or zeros past the last sync, not this, so it is not a torn tail",
            ),
        }
    }
}

/// Bytes past the last complete frame of a partition's last segment with
/// no valid frame among them: what a crash leaves past the last sync (a
/// frame cut short, preallocated zeros). The next open cuts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub topic: String,
    pub partition: u32,
    pub segment: PathBuf,
    pub position: u64,
    pub bytes: u64,
    /// The offset the next record will take.
    pub offset: u64,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "topic {} partition {}: segment {} has {} byte(s) past its last record at byte {} \
             (a torn tail or preallocated space; the next open cuts them, and the next record is {})",
            self.topic,
            self.partition,
            self.segment.display(),
            self.bytes,
            self.position,
            self.offset
        )
    }
}

/// What [`LocalLog::check`] found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Partitions and segments scanned.
    pub partitions: usize,
    pub segments: usize,
    /// Records that read in order (up to any damage).
    pub records: u64,
    pub damage: Vec<Damage>,
    pub torn_tails: Vec<TornTail>,
}

/// Damaged bytes that [`LocalLog::quarantine_damage`] moved aside.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub damage: Damage,
    /// The file that holds them now, next to the segment.
    pub file: PathBuf,
    /// The empty segment started past the valid records among them, so
    /// that new records do not take their offsets.
    pub next_segment: Option<PathBuf>,
}

impl std::fmt::Display for Quarantined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.damage;
        write!(
            f,
            "topic {} partition {}: moved bytes {} to {} of {} (record {} on, {} valid record(s) among them",
            d.topic,
            d.partition,
            d.position,
            d.position + d.bytes,
            d.segment.display(),
            d.offset,
            d.records_after.len()
        )?;
        if let (Some(first), Some(last)) = (d.records_after.first(), d.records_after.last()) {
            write!(f, ", offsets {first} to {last}")?;
        }
        write!(f, ") to {}; ", self.file.display())?;
        match &self.next_segment {
            Some(next) => write!(
                f,
                "the segment now ends before record {}, and new records go to {} so that none takes a quarantined record's offset",
                d.offset,
                next.display()
            ),
            None if d.closed => write!(
                f,
                "the segment now ends before record {}; the partition goes on at its next segment",
                d.offset
            ),
            None => write!(f, "the partition now ends before record {}", d.offset),
        }
    }
}

/// What the scan of one segment found: its records in order up to the
/// first frame that does not read.
struct SegmentScan {
    base: u64,
    path: PathBuf,
    /// Byte position after the last record read in order.
    end: u64,
    /// The offset after that record's.
    next: u64,
    /// The file's size.
    len: u64,
    /// Index points: (offset, byte position).
    index: Vec<(u64, u64)>,
    /// Why the scan stopped before `len`, if it did.
    stop: Option<BadFrame>,
}

/// What the bytes of a segment past its records are.
enum Tail {
    /// None: the file ends with its last record.
    Clean,
    /// A torn tail, or preallocated zeros: cut at open.
    Cut,
    Damaged(Damage),
}

struct Inspected {
    scan: SegmentScan,
    tail: Tail,
}

/// Reads a segment's records in order from its start.
fn scan_segment(path: PathBuf, base: u64) -> Result<SegmentScan, BusError> {
    let context = || path.display().to_string();
    let file = File::open(&path).map_err(|e| io(context())(e))?;
    let len = file.metadata().map_err(|e| io(context())(e))?.len();
    let mut reader = BufReader::new(file);
    let (mut end, mut next, mut index) = (0u64, base, Vec::new());
    let stop = loop {
        match read_frame(&mut reader).map_err(|e| io(context())(e))? {
            FrameRead::End => break None,
            FrameRead::Bad(bad) => break Some(bad),
            FrameRead::Frame((offset, .., size)) if offset == next => {
                if offset.is_multiple_of(INDEX_EVERY) {
                    index.push((offset, end));
                }
                end += size;
                next += 1;
            }
            FrameRead::Frame((offset, ..)) => break Some(BadFrame::Offset(offset)),
        }
    };
    Ok(SegmentScan {
        base,
        path,
        end,
        next,
        len,
        index,
        stop,
    })
}

/// Scans every segment of a partition and tells, for each, what lies past
/// its records. Only the last segment can have a torn tail: the others were
/// synced whole when the next one started. A closed segment ending in zeros
/// only, followed by the segment its next record starts, is preallocated
/// space whose cut at a clean close had not reached the disk: cut too.
fn inspect_partition(dir: &Path, topic: &str, partition: u32) -> Result<Vec<Inspected>, BusError> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .map_err(io(dir.display().to_string()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let mut inspected = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let scan = scan_segment(PartitionLog::segment_path(dir, base), base)?;
        let following = bases.get(i + 1).copied();
        let tail = if scan.end >= scan.len {
            Tail::Clean
        } else {
            let context = || scan.path.display().to_string();
            let mut file = File::open(&scan.path).map_err(|e| io(context())(e))?;
            file.seek(SeekFrom::Start(scan.end))
                .map_err(|e| io(context())(e))?;
            let mut rest = Vec::new();
            file.read_to_end(&mut rest).map_err(|e| io(context())(e))?;
            let after = frames_in(&rest, scan.next);
            let written = rest.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            let cut = after.is_empty()
                && match following {
                    None => torn(scan.stop, &rest, written),
                    Some(next_base) => written == 0 && next_base == scan.next,
                };
            if cut {
                Tail::Cut
            } else {
                Tail::Damaged(Damage {
                    topic: topic.to_string(),
                    partition,
                    segment: scan.path.clone(),
                    position: scan.end,
                    offset: scan.next,
                    bytes: scan.len - scan.end,
                    reason: scan
                        .stop
                        .map_or_else(|| "unreadable bytes".to_string(), |bad| bad.to_string()),
                    records_after: after.iter().map(|&(_, offset)| offset).collect(),
                    closed: following.is_some(),
                })
            }
        };
        inspected.push(Inspected { scan, tail });
    }
    Ok(inspected)
}

/// Whether the bytes past the last record of the last segment can be what a
/// crash leaves past the last sync, given why the scan stopped there and how
/// many of them (`written`) are up to the last nonzero byte. Appends write a
/// prefix of the frames: a crash leaves the file ending inside a frame, or a
/// frame whose unwritten rest reads as the zeros preallocated for it. A
/// frame whose bytes run, nonzero, to its declared end was written whole, so
/// a CRC that fails there is damage; so are a length no frame has and a
/// valid frame of another record.
fn torn(stop: Option<BadFrame>, rest: &[u8], written: usize) -> bool {
    match stop {
        None | Some(BadFrame::Short | BadFrame::Zero) => true,
        Some(BadFrame::Crc | BadFrame::Layout) => {
            let declared = rest
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, |b| 4 + u32::from_be_bytes(b) as usize);
            declared > written
        }
        Some(BadFrame::Length(_) | BadFrame::Offset(_)) => false,
    }
}

/// Makes a directory's entries (a file created, renamed or removed in it)
/// durable.
fn sync_dir(dir: &Path, journal: Option<&Journal>) -> Result<(), BusError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("{}: fsync of the directory", dir.display())))?;
    journal.map_or(Ok(()), |j| j.dir_synced(dir))
}

/// Records in the fault mode's journal, if on, that `path` was created.
fn note_created(journal: Option<&Journal>, path: &Path) -> Result<(), BusError> {
    journal.map_or(Ok(()), |j| j.created(path))
}

/// Records in the fault mode's journal, if on, that `path` was synced.
fn note_synced(
    journal: Option<&Journal>,
    path: &Path,
    data: u64,
    size: u64,
) -> Result<(), BusError> {
    journal.map_or(Ok(()), |j| j.synced(path, data, size))
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never a part: a temporary file, synced, renamed over it, and the
/// directory synced.
fn write_atomically(path: &Path, bytes: &[u8], journal: Option<&Journal>) -> Result<(), BusError> {
    let tmp = path.with_extension("json.tmp");
    let context = || tmp.display().to_string();
    let mut file = File::create(&tmp).map_err(|e| io(context())(e))?;
    file.write_all(bytes).map_err(|e| io(context())(e))?;
    file.sync_all().map_err(|e| io(context())(e))?;
    fs::rename(&tmp, path).map_err(io(path.display().to_string()))?;
    note_created(journal, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent, journal)?;
    }
    note_synced(journal, path, bytes.len() as u64, bytes.len() as u64)
}

/// Moves a damaged segment's bytes from the damage on into a file next to
/// it, and cuts the segment there. The copy is durable before the cut.
fn quarantine(damage: Damage) -> Result<Quarantined, BusError> {
    let segment = &damage.segment;
    let context = |p: &Path| p.display().to_string();
    let mut source = File::open(segment).map_err(io(context(segment)))?;
    source
        .seek(SeekFrom::Start(damage.position))
        .map_err(io(context(segment)))?;
    let mut bytes = Vec::new();
    source
        .read_to_end(&mut bytes)
        .map_err(io(context(segment)))?;
    let name = segment
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let dir = segment.parent().unwrap_or(Path::new("."));
    let mut n = 0u32;
    let (file, mut out) = loop {
        let candidate = dir.join(match n {
            0 => format!("{name}.quarantine"),
            _ => format!("{name}.quarantine.{n}"),
        });
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(out) => break (candidate, out),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(e) => return Err(io(context(&candidate))(e)),
        }
    };
    out.write_all(&bytes).map_err(io(context(&file)))?;
    out.sync_all().map_err(io(context(&file)))?;
    sync_dir(dir, None)?;
    let target = OpenOptions::new()
        .write(true)
        .open(segment)
        .map_err(io(context(segment)))?;
    target
        .set_len(damage.position)
        .map_err(io(context(segment)))?;
    target.sync_all().map_err(io(context(segment)))?;
    // The last segment would give the quarantined records' offsets to new
    // records; an empty segment past them starts the partition there.
    let past = damage.records_after.iter().max().map(|m| m + 1);
    let next_segment = match past {
        Some(base) if !damage.closed && base > damage.offset => {
            let path = PartitionLog::segment_path(dir, base);
            File::create(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(context(&path)))?;
            Some(path)
        }
        _ => None,
    };
    sync_dir(dir, None)?;
    Ok(Quarantined {
        damage,
        file,
        next_segment,
    })
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
    /// a torn tail (bytes past the last complete frame of the last segment,
    /// with no valid frame among them). Damage anywhere else is an error
    /// naming it: cutting there would lose records that were acknowledged.
    fn open(
        dir: PathBuf,
        topic: &str,
        partition: u32,
        journal: Option<Arc<Journal>>,
    ) -> Result<PartitionLog, BusError> {
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
            note_created(journal.as_deref(), &dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent, journal.as_deref())?;
            }
        }
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
            journal,
        };
        let inspected = inspect_partition(&dir, topic, partition)?;
        if let Some(damage) = inspected.iter().find_map(|i| match &i.tail {
            Tail::Damaged(damage) => Some(damage),
            _ => None,
        }) {
            let root = dir
                .parent()
                .and_then(Path::parent)
                .map_or_else(|| dir.display().to_string(), |r| r.display().to_string());
            return Err(BusError::Corrupt(format!(
                "{damage}; `clearing log check --bus local:{root}` lists every damaged segment, \
                 `clearing log repair --bus local:{root} --quarantine` moves the damaged bytes aside"
            )));
        }
        let last = inspected.len().saturating_sub(1);
        for (i, segment) in inspected.into_iter().enumerate() {
            let scan = segment.scan;
            let context = || scan.path.display().to_string();
            if let Tail::Cut = segment.tail {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&scan.path)
                    .map_err(|e| io(context())(e))?;
                file.set_len(scan.end).map_err(|e| io(context())(e))?;
                file.sync_all().map_err(|e| io(context())(e))?;
                note_synced(log.journal.as_deref(), &scan.path, scan.end, scan.end)?;
            } else if i == last && scan.end > 0 {
                // Every record on disk becomes visible now, and the last
                // segment may hold some that were written and never synced
                // (a process that stopped between its appends and its
                // flush): a reader must not be handed a record a power loss
                // can still take away, once it has made what it derived
                // from it durable. A closed segment was synced at its roll.
                File::open(&scan.path)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| io(context())(e))?;
                note_synced(log.journal.as_deref(), &scan.path, scan.end, scan.len)?;
            }
            log.index.extend(
                scan.index
                    .iter()
                    .map(|&(offset, position)| (offset, i, position)),
            );
            log.segments.push(Segment {
                base: scan.base,
                path: scan.path,
                end: scan.next,
            });
            log.next_offset = scan.next;
            log.active_len = scan.end;
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
                end: self.next_offset,
            });
            self.active_len = 0;
        }
        if self.writer.is_none() {
            let segment = self
                .segments
                .last()
                .ok_or_else(|| BusError::Corrupt("no segment".into()))?;
            let context = || segment.path.display().to_string();
            let created = !segment.path.exists();
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&segment.path)
                .map_err(|e| io(context())(e))?;
            if created {
                // The new segment's name must survive a power loss with the
                // records a flush makes durable in it.
                note_created(self.journal.as_deref(), &segment.path)?;
                sync_dir(&self.dir, self.journal.as_deref())?;
            }
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
                if let Some(segment) = self.segments.last() {
                    note_synced(
                        self.journal.as_deref(),
                        &segment.path,
                        self.active_len,
                        self.active_len,
                    )?;
                }
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
        if let Some(segment) = self.segments.last_mut() {
            segment.end = self.next_offset;
        }
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
            if let Some(segment) = self.segments.last() {
                note_synced(
                    self.journal.as_deref(),
                    &segment.path,
                    self.active_len,
                    self.allocated.max(self.active_len),
                )?;
            }
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
        // `expected`: the offset of the record at `position`.
        let (mut segment, mut position, mut expected) =
            match self.resume.iter().find(|(o, _, _)| *o == from) {
                Some((_, s, p)) => (*s, *p, from),
                None => match self
                    .index
                    .iter()
                    .rev()
                    .find(|(o, s, _)| *o <= from && *s == seg)
                {
                    Some((o, _, p)) => (seg, *p, *o),
                    None => (seg, 0, self.segments.get(seg).map_or(0, |s| s.base)),
                },
            };
        let mut out = Vec::new();
        'segments: while segment < self.segments.len() && out.len() < max {
            let path = &self.segments[segment].path;
            let segment_end = self.segments[segment].end.min(end);
            let context = || path.display().to_string();
            // Open scanned every frame, so a frame that does not read now, or
            // reads as another record, was damaged since: skipping it would
            // hand the reader a log with records missing.
            let damaged = |bad: BadFrame, expected: u64, position: u64| {
                BusError::Corrupt(format!(
                    "topic {topic} partition {partition}: segment {}: record {expected} at byte {position} \
                     does not read ({bad}); the segment was damaged after the partition was opened",
                    path.display()
                ))
            };
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
                let (offset, timestamp, key, value, size) =
                    match read_frame(&mut reader).map_err(|e| io(context())(e))? {
                        FrameRead::Frame(frame) if frame.0 == expected => frame,
                        FrameRead::Frame((offset, ..)) => {
                            return Err(damaged(BadFrame::Offset(offset), expected, position));
                        }
                        FrameRead::Bad(bad) if expected < segment_end => {
                            return Err(damaged(bad, expected, position));
                        }
                        FrameRead::End if expected < segment_end => {
                            return Err(damaged(BadFrame::Short, expected, position));
                        }
                        FrameRead::End | FrameRead::Bad(_) => break,
                    };
                if offset >= end {
                    break 'segments;
                }
                position += size;
                expected += 1;
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
            expected = self.segments[segment].base;
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
    /// The power-loss fault mode's journal ([`crash_image`]), if on.
    journal: Option<Arc<Journal>>,
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
    lock.try_lock()
        .map_err(|_| BusError::Busy(format!("{} is used by another process", dir.display())))?;
    Ok(lock)
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
        Ok(Arc::new(LocalLog {
            dir: dir.to_path_buf(),
            journal,
            _lock: lock,
            topics: Mutex::new(topics),
            partitions: Mutex::new(BTreeMap::new()),
            watchers: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(BTreeMap::new()),
        }))
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
        for (topic, partition, dir) in self.partition_dirs() {
            report.partitions += 1;
            for inspected in inspect_partition(&dir, &topic, partition)? {
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
        for (topic, partition, dir) in self.partition_dirs() {
            for inspected in inspect_partition(&dir, &topic, partition)? {
                if let Tail::Damaged(damage) = inspected.tail {
                    moved.push(quarantine(damage)?);
                }
            }
        }
        Ok(moved)
    }

    /// Each partition directory that exists: (topic, partition, directory).
    fn partition_dirs(&self) -> Vec<(String, u32, PathBuf)> {
        lock(&self.topics)
            .iter()
            .flat_map(|(topic, meta)| {
                (0..meta.partitions)
                    .map(move |p| (topic.clone(), p, self.dir.join(topic).join(p.to_string())))
            })
            .filter(|(_, _, dir)| dir.is_dir())
            .collect()
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
            topic,
            partition,
            self.journal.clone(),
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
        note_created(self.journal.as_deref(), &path)
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
