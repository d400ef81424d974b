//! What lies past the records of each segment: nothing, a torn tail (cut
//! at open), or damage (the partition does not open). Found by the scan of a
//! partition's open and by `clearing log check`; damage is moved aside by
//! `clearing log repair --quarantine`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::files::sync_dir;
use super::frame::{BadFrame, FrameRead, frames_in, read_frame};
use super::io;
use super::partition::{INDEX_EVERY, PartitionLog};
use crate::bus::BusError;

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

/// What [`LocalLog::check`](super::LocalLog::check) found.
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

/// Damaged bytes that [`LocalLog::quarantine_damage`](super::LocalLog::quarantine_damage) moved aside.
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
pub(super) struct SegmentScan {
    pub(super) base: u64,
    pub(super) path: PathBuf,
    /// Byte position after the last record read in order.
    pub(super) end: u64,
    /// The offset after that record's.
    pub(super) next: u64,
    /// The file's size.
    pub(super) len: u64,
    /// Index points: (offset, byte position).
    pub(super) index: Vec<(u64, u64)>,
    /// Why the scan stopped before `len`, if it did.
    stop: Option<BadFrame>,
}

/// What the bytes of a segment past its records are.
pub(super) enum Tail {
    /// None: the file ends with its last record.
    Clean,
    /// A torn tail, or preallocated zeros: cut at open.
    Cut,
    Damaged(Damage),
}

pub(super) struct Inspected {
    pub(super) scan: SegmentScan,
    pub(super) tail: Tail,
}

/// Reads a segment's records in order from its start. With `gaps` (a
/// compacted topic's segment, which compaction leaves with offset gaps)
/// offsets need only increase; otherwise each is the one before plus one.
fn scan_segment(path: PathBuf, base: u64, gaps: bool) -> Result<SegmentScan, BusError> {
    let context = || path.display().to_string();
    let file = File::open(&path).map_err(|e| io(context())(e))?;
    let len = file.metadata().map_err(|e| io(context())(e))?.len();
    let mut reader = BufReader::new(file);
    let (mut end, mut next, mut index) = (0u64, base, Vec::new());
    // The next offset to index: multiples of INDEX_EVERY, or past a gap the
    // first record beyond one.
    let mut index_from = base.next_multiple_of(INDEX_EVERY);
    let stop = loop {
        match read_frame(&mut reader).map_err(|e| io(context())(e))? {
            FrameRead::End => break None,
            FrameRead::Bad(bad) => break Some(bad),
            FrameRead::Frame((offset, .., size)) if offset == next || (gaps && offset > next) => {
                if offset >= index_from {
                    index.push((offset, end));
                    index_from = (offset + 1).next_multiple_of(INDEX_EVERY);
                }
                end += size;
                next = offset + 1;
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
pub(super) fn inspect_partition(
    dir: &Path,
    topic: &str,
    partition: u32,
    gaps: bool,
) -> Result<Vec<Inspected>, BusError> {
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
        let scan = scan_segment(PartitionLog::segment_path(dir, base), base, gaps)?;
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

/// Moves a damaged segment's bytes from the damage on into a file next to
/// it, and cuts the segment there. The copy is durable before the cut.
pub(super) fn quarantine(damage: Damage) -> Result<Quarantined, BusError> {
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
