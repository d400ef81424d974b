//! One partition's log: its segments, the appends (buffered, into
//! preallocated space, rolling over to a new segment), the flush that makes
//! them durable and visible, and the open that scans the segments to rebuild
//! the index and cut a torn tail. Reads are in `read`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::check::{Damage, Inspected, Tail, inspect_partition};
use super::crash_image::Journal;
use super::files::{Preallocated, note_created, note_synced, preallocate, sync_dir};
use super::frame::encode_frame;
use super::{MAX_RECORD_BYTES, io};
use crate::bus::BusError;

/// A segment rolls over past this size (by default).
pub(super) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The active segment's file is extended this much at a time, ahead of the
/// appends. An `fdatasync` of a file whose size changed also writes its
/// inode; one whose appends land in space already allocated does not, which
/// cost a third less per sync on this disk (docs/performance.md, "What one fdatasync costs"). The
/// space past the last record reads as zeros, which the scan on open takes
/// for the end of the log (a frame cannot have length 0) and cuts off.
const PREALLOCATE_BYTES: u64 = 1024 * 1024;
/// One sparse index entry every this many records.
pub(super) const INDEX_EVERY: u64 = 1024;

pub(super) struct Segment {
    pub(super) base: u64,
    pub(super) path: PathBuf,
    /// The offset after its last record: a read that stops short of it in
    /// this segment met damage.
    pub(super) end: u64,
}

pub(super) struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) segments: Vec<Segment>,
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
    pub(super) visible_end: u64,
    /// Appended to since the last flush: a flush of a clean partition would
    /// still cost a device cache flush on this disk (docs/performance.md, "Machine").
    dirty: bool,
    /// Sparse index: (offset, segment index, byte position).
    pub(super) index: Vec<(u64, usize, u64)>,
    /// Where recent reads stopped: (next offset, segment index, byte
    /// position). A consumer at the tail reads from where it stopped; from
    /// the sparse index alone it would scan back up to `INDEX_EVERY` frames
    /// each time (most of the CPU of a pipeline at 100 claims/s).
    pub(super) resume: Vec<(u64, usize, u64)>,
    /// The power-loss fault mode's journal (`crash_image`), if on.
    pub(super) journal: Option<Arc<Journal>>,
    /// A compacted topic's partition: its segments may have offset gaps.
    pub(super) gaps: bool,
    pub(super) topic: String,
    pub(super) partition: u32,
    /// A segment rolls over past this size: [`SEGMENT_BYTES`], smaller in
    /// tests that need closed segments.
    pub(super) segment_bytes: u64,
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
    pub(super) fn segment_path(dir: &Path, base: u64) -> PathBuf {
        dir.join(format!("{base:020}.log"))
    }

    /// Opens a partition, scanning its segments to rebuild the index and cut
    /// a torn tail (bytes past the last complete frame of the last segment,
    /// with no valid frame among them). Damage anywhere else is an error
    /// naming it: cutting there would lose records that were acknowledged.
    pub(super) fn open(
        dir: PathBuf,
        topic: &str,
        partition: u32,
        journal: Option<Arc<Journal>>,
        gaps: bool,
    ) -> Result<PartitionLog, BusError> {
        if dir.is_dir() {
            // Its segments' entries, durable from now on: a process killed
            // between creating a segment and syncing the directory left
            // the entry in the page cache only, and records acknowledged
            // into that segment later would go with it in a power loss.
            // (The partition's own entry: `LocalLog::open_with`.)
            sync_dir(&dir, journal.as_deref())?;
        } else {
            fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
            note_created(journal.as_deref(), &dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent, journal.as_deref())?;
            }
        }
        let inspected = inspect_partition(&dir, topic, partition, gaps)?;
        if let Some(damage) = inspected.iter().find_map(|i| match &i.tail {
            Tail::Damaged(damage) => Some(damage),
            _ => None,
        }) {
            return Err(refusal(&dir, damage));
        }
        let mut log = PartitionLog {
            dir,
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
            gaps,
            topic: topic.to_string(),
            partition,
            segment_bytes: SEGMENT_BYTES,
        };
        let last = inspected.len().saturating_sub(1);
        for (i, segment) in inspected.into_iter().enumerate() {
            log.adopt(segment, i, i == last)?;
        }
        log.visible_end = log.next_offset;
        Ok(log)
    }

    /// Takes the `i`th segment the open scanned as the log's: cuts its tail
    /// if it has one to cut, or syncs it if it is the `last`, and indexes it.
    fn adopt(&mut self, segment: Inspected, i: usize, last: bool) -> Result<(), BusError> {
        let scan = segment.scan;
        let context = || scan.path.display().to_string();
        if let Tail::Cut = segment.tail {
            let file = OpenOptions::new()
                .write(true)
                .open(&scan.path)
                .map_err(|e| io(context())(e))?;
            file.set_len(scan.end).map_err(|e| io(context())(e))?;
            file.sync_all().map_err(|e| io(context())(e))?;
            note_synced(self.journal.as_deref(), &scan.path, scan.end, scan.end)?;
        } else if last {
            // Every record on disk becomes visible now, and the last
            // segment may hold some that were written and never synced
            // (a process that stopped between its appends and its
            // flush): a reader must not be handed a record a power loss
            // can still take away, once it has made what it derived
            // from it durable. A closed segment was synced at its roll.
            if scan.end > 0 {
                File::open(&scan.path)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| io(context())(e))?;
            }
            // Journaled even when empty: a segment the journal does not
            // name is left whole by a crash image, appends never synced
            // included.
            note_synced(self.journal.as_deref(), &scan.path, scan.end, scan.len)?;
        }
        self.index.extend(
            scan.index
                .iter()
                .map(|&(offset, position)| (offset, i, position)),
        );
        self.segments.push(Segment {
            base: scan.base,
            path: scan.path,
            end: scan.next,
        });
        self.next_offset = scan.next;
        self.active_len = scan.end;
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>, BusError> {
        if self.segments.is_empty() || self.active_len >= self.segment_bytes {
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

    /// Appends a record, or a tombstone if `value` is `None`.
    pub(super) fn append(
        &mut self,
        timestamp: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<u64, BusError> {
        let size = key.len() + value.map_or(0, <[u8]>::len);
        if size > MAX_RECORD_BYTES {
            return Err(BusError::TooLarge(size));
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
    pub(super) fn append_at(
        &mut self,
        offset: u64,
        timestamp: i64,
        key: &[u8],
        value: Option<&[u8]>,
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
            self.active_len = self.segment_bytes;
        }
        self.append(timestamp, key, value).map(|_| ())
    }

    pub(super) fn flush(&mut self) -> Result<(), BusError> {
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
}

/// The error that keeps a damaged partition closed, with what to run.
fn refusal(dir: &Path, damage: &Damage) -> BusError {
    let root = dir
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| dir.display().to_string(), |r| r.display().to_string());
    BusError::Corrupt(format!(
        "{damage}; `clearing log check --bus local:{root}` lists every damaged segment, \
         `clearing log repair --bus local:{root} --quarantine` moves the damaged bytes aside"
    ))
}
