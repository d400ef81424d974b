//! A store that appends: each tree a log of batches in segment files, an
//! ordered index of its live keys in memory, and merges that give the dead
//! bytes back as it goes.
//!
//! sled 0.34 rewrites a tree node to insert a new key (about 25 µs a key on
//! the persister threads, a third of a claim's CPU beside the signatures)
//! and its files grow in steps it gives back only when a whole store is
//! rewritten (docs/performance.md, "Five years with retention"). Every
//! claim adds new keys (its duplicate-check key, its day counters) and the
//! retention deletes as many, so the engine that fits is a log: a write is
//! an append, a delete is a tombstone, and the bytes the index no longer
//! points to are reclaimed by merging the sealed segments into one file of
//! the live entries once the files hold [`Tuning::growth_pct`] more than
//! the live entries.
//!
//! On disk, in the tree's directory:
//! - `<id>.log`: a segment, a sequence of frames, each one batch:
//!   `crc32c(u32 LE) | body length (u32 LE) | body`, the body a sequence of
//!   entries `kind (u8: 1 put, 0 delete) | key length (u32 LE) | value
//!   length (u32 LE) | key | value`. A batch is applied whole or not at all.
//! - `<id>.merged`: the live entries of every file with an id up to `<id>`,
//!   in the same framing, in the order they were written, without
//!   tombstones. It is written under a
//!   temporary name, synced and renamed: once it exists, every file with a
//!   lower or equal id is stale and an open deletes it.
//!
//! Opening reads every file in id order (the merged file first) and checks
//! every frame. A frame cut short at the end of the newest segment is a
//! write a crash interrupted: it is cut off, as sled's recovery does. A bad
//! frame anywhere else is damage, reported as [`LogOpenError::Corrupt`] for
//! the caller to move the store aside and restore it from its changelog.
//! A segment is synced before the next one starts, so after a power loss
//! the files hold a prefix of the batches.
//!
//! Values stay on disk and are read with `pread`; the index holds each
//! key and where its value is (the mirror above caches what is read).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{KeyValue, StateRead, StateStore, StoreError, WriteBatch};

const FRAME_HEADER: usize = 8;
const ENTRY_HEADER: usize = 9;
const PUT: u8 = 1;
const DELETE: u8 = 0;
/// A merge writes its output in frames of about this size, and files are
/// read through a buffer of it. Small: a merge or an open holds two of
/// them at once (sequential reads and writes need no more), and several
/// trees can merge at the same moment (a quarter's expiry deletes in every
/// partition; 1 MiB made merges a tenth of the monthly time-lapse's peak
/// RSS, docs/performance.md).
const IO_CHUNK_BYTES: usize = 64 * 1024;

/// When segments roll and merges run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// A segment is sealed once it holds a sixteenth of the live entries'
    /// bytes, within these bounds: a small tree merges in small steps, a
    /// large one keeps its files few.
    pub min_segment_bytes: u64,
    pub max_segment_bytes: u64,
    /// The sealed files are merged once all files hold this many percent
    /// more than the live entries (and a segment more).
    pub growth_pct: u64,
}

impl Tuning {
    /// Files within 10 % and a segment of the live entries, so that a
    /// store's size on disk follows what it holds (the time-lapse asks
    /// ±10 % month to month; 15 % left reimbursement's at ±12.4 %); each
    /// live byte is then rewritten about ten times over its life by
    /// merges, which read and write sequentially (docs/performance.md,
    /// "Five years with retention").
    pub const DEFAULT: Tuning = Tuning {
        min_segment_bytes: 16 * 1024,
        max_segment_bytes: 64 * 1024 * 1024,
        growth_pct: 10,
    };
}

/// Where a live value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    file: u64,
    offset: u64,
    len: u32,
}

/// A live value a merge copied: its place in an input, and its offset in
/// the merged file.
struct Moved {
    file: u64,
    offset: u64,
    to: u64,
}

impl Moved {
    fn place(&self) -> (u64, u64) {
        (self.file, self.offset)
    }
}

/// One file of the tree: a segment or the merged file, by its id.
struct Segment {
    file: File,
    merged: bool,
    bytes: u64,
}

struct TreeState {
    index: BTreeMap<Vec<u8>, Loc>,
    files: BTreeMap<u64, Segment>,
    /// The segment being appended to (the highest id).
    active: u64,
    /// Bytes of the live keys and values (what sled's `live_bytes` counts).
    live_bytes: u64,
    /// Files written since the last directory sync.
    dir_dirty: bool,
    buffer: Vec<u8>,
    /// Held open with an exclusive lock: two handles on one directory that
    /// did not share this state would write over each other.
    _lock: File,
}

/// A tree of the log store: see the module's documentation.
#[derive(Clone)]
pub struct LogTree {
    dir: Arc<PathBuf>,
    tuning: Tuning,
    state: Arc<RwLock<TreeState>>,
}

/// Why a tree did not open.
#[derive(Debug, thiserror::Error)]
pub enum LogOpenError {
    /// Frames that fail their check where no crash leaves them.
    #[error("log store {dir}: {what}")]
    Corrupt { dir: String, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) fn io_error(dir: &Path, doing: &str) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = format!("{doing} {}", dir.display());
    move |source| StoreError::Io { context, source }
}

fn file_name(id: u64, merged: bool) -> String {
    format!("{id:016}.{}", if merged { "merged" } else { "log" })
}

/// The id and kind of a file of the tree, from its name.
fn parse_name(name: &str) -> Option<(u64, bool)> {
    let (stem, ext) = name.split_once('.')?;
    let merged = match ext {
        "log" => false,
        "merged" => true,
        _ => return None,
    };
    Some((stem.parse().ok()?, merged))
}

/// Appends one entry to a frame's body.
fn push_entry(body: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    body.push(if value.is_some() { PUT } else { DELETE });
    body.extend_from_slice(&(key.len() as u32).to_le_bytes());
    body.extend_from_slice(&(value.map_or(0, <[u8]>::len) as u32).to_le_bytes());
    body.extend_from_slice(key);
    if let Some(value) = value {
        body.extend_from_slice(value);
    }
}

/// Frames `buffer[FRAME_HEADER..]` in place: the header's room is reserved.
fn seal_frame(buffer: &mut [u8]) {
    let body_len = (buffer.len() - FRAME_HEADER) as u32;
    let crc = crc32c::crc32c(&buffer[FRAME_HEADER..]);
    buffer[0..4].copy_from_slice(&crc.to_le_bytes());
    buffer[4..8].copy_from_slice(&body_len.to_le_bytes());
}

/// Takes the tree's lock file, or says who holds it.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(io_error(dir, "locking"))?;
    crate::bus::local::try_lock_waiting(&file).map_err(|e| {
        io_error(dir, "locking (is another process using the store?)")(std::io::Error::other(e))
    })?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "syncing the directory"))
}

impl LogTree {
    /// Opens (or creates) the tree in `dir` with the default tuning.
    pub fn open(dir: &Path) -> Result<LogTree, LogOpenError> {
        LogTree::open_with(dir, Tuning::DEFAULT)
    }

    /// Opens (or creates) the tree in `dir`.
    pub fn open_with(dir: &Path, tuning: Tuning) -> Result<LogTree, LogOpenError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir, "creating"))?;
        let lock = lock(dir)?;
        let mut found: Vec<(u64, bool, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir, "listing"))? {
            let entry = entry.map_err(io_error(dir, "listing"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                // A merge a crash interrupted: its inputs are all still there.
                std::fs::remove_file(entry.path())
                    .map_err(io_error(dir, "removing a partial merge in"))?;
                continue;
            }
            if let Some((id, merged)) = parse_name(name) {
                found.push((id, merged, entry.path()));
            }
        }
        // The newest merged file makes every file up to its id stale.
        let merged_upto = found.iter().filter(|f| f.1).map(|f| f.0).max();
        if let Some(upto) = merged_upto {
            for (id, merged, path) in &found {
                if *id <= upto && !(*merged && *id == upto) {
                    std::fs::remove_file(path)
                        .map_err(io_error(dir, "removing a merged file's input in"))?;
                }
            }
            found.retain(|(id, merged, _)| *id > upto || (*merged && *id == upto));
        }
        found.sort_by_key(|f| (f.0, !f.1));
        let mut state = TreeState {
            index: BTreeMap::new(),
            files: BTreeMap::new(),
            active: 0,
            live_bytes: 0,
            dir_dirty: false,
            buffer: Vec::new(),
            _lock: lock,
        };
        let last = found.len().saturating_sub(1);
        for (n, (id, merged, path)) in found.iter().enumerate() {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .map_err(io_error(path, "opening"))?;
            let bytes = load(&mut state, dir, (*id, *merged), &file, n == last && !merged)?;
            state.files.insert(
                *id,
                Segment {
                    file,
                    merged: *merged,
                    bytes,
                },
            );
        }
        let next = found.last().map_or(1, |f| f.0 + 1);
        match found.last() {
            Some((id, false, _)) => state.active = *id,
            _ => start_segment(&mut state, dir, next)?,
        }
        sync_dir(dir)?;
        Ok(LogTree {
            dir: Arc::new(dir.to_path_buf()),
            tuning,
            state: Arc::new(RwLock::new(state)),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, TreeState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, TreeState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of the tree's files.
    pub fn disk_bytes(&self) -> u64 {
        self.read().files.values().map(|s| s.bytes).sum()
    }

    /// The bytes of the live keys and values.
    pub fn live_bytes(&self) -> u64 {
        self.read().live_bytes
    }

    /// Calls `f` with every key of the tree, in order.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8])) {
        for key in self.read().index.keys() {
            f(key);
        }
    }

    fn value_at(&self, state: &TreeState, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let segment = state
            .files
            .get(&loc.file)
            .ok_or_else(|| StoreError::Corrupt {
                key: self.dir.display().to_string(),
                what: format!("the index points into file {} which is gone", loc.file),
            })?;
        let mut value = vec![0; loc.len as usize];
        segment
            .file
            .read_exact_at(&mut value, loc.offset)
            .map_err(io_error(&self.dir, "reading"))?;
        Ok(value)
    }

    /// Rewrites every sealed file's live entries into one merged file and
    /// removes them; the active segment is left as it is. Each input is
    /// read once, in order; an entry is kept when the index points at it.
    /// What moved is kept as (old place, new offset), no key: the index is
    /// then walked once, and each of its places in the inputs found there
    /// (the inputs are read in order, so the list is sorted).
    fn merge(&self, state: &mut TreeState) -> Result<(), StoreError> {
        let upto = state.active - 1;
        let inputs: Vec<(u64, bool)> = state
            .files
            .range(..=upto)
            .map(|(id, segment)| (*id, segment.merged))
            .collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let dir = self.dir.as_path();
        let tmp = dir.join(format!("{}.tmp", file_name(upto, true)));
        let mut out = File::create(&tmp).map_err(io_error(dir, "merging in"))?;
        let live_in_inputs = state.index.values().filter(|loc| loc.file <= upto).count();
        let mut moved: Vec<Moved> = Vec::with_capacity(live_in_inputs);
        let mut frame = Vec::with_capacity(IO_CHUNK_BYTES);
        frame.resize(FRAME_HEADER, 0);
        let mut written = 0u64;
        let mut emit = |frame: &mut Vec<u8>, written: &mut u64| -> Result<(), StoreError> {
            if frame.len() > FRAME_HEADER {
                seal_frame(frame);
                out.write_all(frame).map_err(io_error(dir, "merging in"))?;
                *written += frame.len() as u64;
                frame.truncate(FRAME_HEADER);
            }
            Ok(())
        };
        for (id, merged) in &inputs {
            let path = dir.join(file_name(*id, *merged));
            let input = File::open(&path).map_err(io_error(dir, "merging in"))?;
            let mut live = Ok(());
            let (_, stop) = for_each_frame(&input, |key, value, value_offset| {
                let here = Loc {
                    file: *id,
                    offset: value_offset,
                    len: value.map_or(0, <[u8]>::len) as u32,
                };
                if value.is_none() || state.index.get(key) != Some(&here) || live.is_err() {
                    return;
                }
                if frame.len() + ENTRY_HEADER + key.len() + here.len as usize > IO_CHUNK_BYTES {
                    live = emit(&mut frame, &mut written);
                }
                let offset = written + (frame.len() + ENTRY_HEADER + key.len()) as u64;
                push_entry(&mut frame, key, value);
                moved.push(Moved {
                    file: here.file,
                    offset: here.offset,
                    to: offset,
                });
            })
            .map_err(io_error(dir, "merging in"))?;
            if let Some((at, stop)) = stop {
                return Err(StoreError::Corrupt {
                    key: path.display().to_string(),
                    what: format!("at byte {at}: {}", stop.describe()),
                });
            }
            live?;
        }
        emit(&mut frame, &mut written)?;
        drop(frame);
        out.sync_all()
            .map_err(io_error(dir, "syncing a merge in"))?;
        drop(out);
        let merged_path = dir.join(file_name(upto, true));
        std::fs::rename(&tmp, &merged_path).map_err(io_error(dir, "merging in"))?;
        sync_dir(dir)?;
        // From here the merged file is the tree's past: the inputs go.
        for (id, merged) in inputs {
            state.files.remove(&id);
            let path = dir.join(file_name(id, merged));
            if path != merged_path {
                std::fs::remove_file(&path).map_err(io_error(dir, "removing a merged input in"))?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&merged_path)
            .map_err(io_error(dir, "opening"))?;
        state.files.insert(
            upto,
            Segment {
                file,
                merged: true,
                bytes: written,
            },
        );
        // Every place in the inputs was live, so it is in `moved`.
        for slot in state.index.values_mut().filter(|loc| loc.file <= upto) {
            if let Ok(at) = moved.binary_search_by_key(&(slot.file, slot.offset), Moved::place) {
                *slot = Loc {
                    file: upto,
                    offset: moved[at].to,
                    len: slot.len,
                };
            }
        }
        Ok(())
    }

    /// Bytes the live entries take in a file (headers included).
    fn live_entry_bytes(state: &TreeState) -> u64 {
        state.live_bytes + (ENTRY_HEADER * state.index.len()) as u64
    }

    /// Where the active segment is sealed, for the tree's present size.
    fn segment_bytes(&self, state: &TreeState) -> u64 {
        (Self::live_entry_bytes(state) / 16)
            .clamp(self.tuning.min_segment_bytes, self.tuning.max_segment_bytes)
    }

    fn wants_merge(&self, state: &TreeState) -> bool {
        let disk: u64 = state.files.values().map(|s| s.bytes).sum();
        let sealed = state.files.range(..state.active).count();
        let bound = Self::live_entry_bytes(state) * (100 + self.tuning.growth_pct) / 100
            + self.segment_bytes(state);
        sealed >= 2 && disk > bound
    }
}

/// Creates segment `id` as the active one.
fn start_segment(state: &mut TreeState, dir: &Path, id: u64) -> Result<(), StoreError> {
    let path = dir.join(file_name(id, false));
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(dir, "creating a segment in"))?;
    state.files.insert(
        id,
        Segment {
            file,
            merged: false,
            bytes: 0,
        },
    );
    state.active = id;
    state.dir_dirty = true;
    Ok(())
}

/// Why a file's frames stop before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The last frame is shorter than its header says (or than a header).
    CutShort,
    /// A frame fails its CRC; `last` if it is the file's last.
    Checksum { last: bool },
    /// A frame whose CRC holds does not parse: not a torn write.
    Entry,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::CutShort => "a frame cut short",
            Stop::Checksum { .. } => "a frame fails its checksum",
            Stop::Entry => "an entry that does not parse",
        }
    }
}

/// One entry of a frame: key, value (`None`: a delete), and the value's
/// offset in the frame's body.
type Entry<'a> = (&'a [u8], Option<&'a [u8]>, usize);

/// The entries of one frame's body, all of them or none.
fn frame_entries(body: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    let mut p = 0usize;
    while p < body.len() {
        let h = body.get(p..p + ENTRY_HEADER)?;
        let kind = h[0];
        let klen = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let vlen = u32::from_le_bytes([h[5], h[6], h[7], h[8]]) as usize;
        let value_start = p + ENTRY_HEADER + klen;
        let key = body.get(p + ENTRY_HEADER..value_start)?;
        let value = body.get(value_start..value_start + vlen)?;
        let value = match kind {
            PUT => Some(value),
            DELETE if vlen == 0 => None,
            _ => return None,
        };
        entries.push((key, value, value_start));
        p = value_start + vlen;
    }
    Some(entries)
}

/// Calls `on_entry(key, value, value's offset in the file)` for every
/// entry of every whole frame of `file` (read from its start, a frame at a
/// time: a merged file can be as large as the tree), in order; returns the
/// length of the whole frames and, if they end before the file does, where
/// and why.
fn for_each_frame(
    file: &File,
    mut on_entry: impl FnMut(&[u8], Option<&[u8]>, u64),
) -> std::io::Result<(u64, Option<(u64, Stop)>)> {
    let len = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(IO_CHUNK_BYTES, file);
    let (mut at, mut header, mut body) = (0u64, [0u8; FRAME_HEADER], Vec::new());
    while at < len {
        if len - at < FRAME_HEADER as u64 {
            return Ok((at, Some((at, Stop::CutShort))));
        }
        reader.read_exact(&mut header)?;
        let body_len = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let body_start = at + FRAME_HEADER as u64;
        if len - body_start < body_len {
            return Ok((at, Some((at, Stop::CutShort))));
        }
        body.resize(body_len as usize, 0);
        reader.read_exact(&mut body)?;
        let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if crc32c::crc32c(&body) != crc {
            let last = body_start + body_len == len;
            return Ok((at, Some((at, Stop::Checksum { last }))));
        }
        let Some(entries) = frame_entries(&body) else {
            return Ok((at, Some((at, Stop::Entry))));
        };
        for (key, value, offset) in entries {
            on_entry(key, value, body_start + offset as u64);
        }
        at = body_start + body_len;
    }
    Ok((at, None))
}

/// Reads one file's frames into the index; returns its length. A write cut
/// short at the end of the newest segment (`torn_tail_ok`) is cut off: the
/// last frame shorter than its header says, or failing its CRC.
fn load(
    state: &mut TreeState,
    dir: &Path,
    (id, merged): (u64, bool),
    file: &File,
    torn_tail_ok: bool,
) -> Result<u64, LogOpenError> {
    let (whole, stop) = for_each_frame(file, |key, value, offset| {
        let loc = value.map(|v| Loc {
            file: id,
            offset,
            len: v.len() as u32,
        });
        index_write(state, key, loc);
    })
    .map_err(|e| LogOpenError::Store(io_error(dir, "reading")(e)))?;
    match stop {
        None => {}
        Some((_, Stop::CutShort | Stop::Checksum { last: true })) if torn_tail_ok => {
            file.set_len(whole)
                .map_err(|e| LogOpenError::Store(io_error(dir, "cutting a torn write off")(e)))?;
            file.sync_all()
                .map_err(|e| LogOpenError::Store(io_error(dir, "cutting a torn write off")(e)))?;
        }
        Some((at, stop)) => {
            return Err(LogOpenError::Corrupt {
                dir: dir.display().to_string(),
                what: format!(
                    "{} at byte {at}: {}",
                    file_name(id, merged),
                    stop.describe()
                ),
            });
        }
    }
    Ok(whole)
}

/// Points `key` at its new value (or removes it), keeping the live count.
fn index_write(state: &mut TreeState, key: &[u8], loc: Option<Loc>) {
    let old = match loc {
        Some(loc) => {
            state.live_bytes += (key.len() + loc.len as usize) as u64;
            match state.index.get_mut(key) {
                Some(slot) => Some(std::mem::replace(slot, loc)),
                None => {
                    state.index.insert(key.to_vec(), loc);
                    None
                }
            }
        }
        None => state.index.remove(key),
    };
    if let Some(old) = old {
        state.live_bytes -= (key.len() + old.len as usize) as u64;
    }
}

impl StateRead for LogTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.read();
        match state.index.get(key) {
            Some(loc) => self.value_at(&state, *loc).map(Some),
            None => Ok(None),
        }
    }
}

impl StateStore for LogTree {
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut guard = self.write();
        let state = &mut *guard;
        let mut buffer = std::mem::take(&mut state.buffer);
        buffer.clear();
        buffer.resize(FRAME_HEADER, 0);
        for (key, value) in batch {
            push_entry(&mut buffer, key, value.as_deref());
        }
        seal_frame(&mut buffer);
        let active = state.active;
        let Some(segment) = state.files.get_mut(&active) else {
            return Err(StoreError::Corrupt {
                key: self.dir.display().to_string(),
                what: "no active segment".into(),
            });
        };
        let frame_start = segment.bytes;
        if let Err(e) = segment.file.write_all(&buffer) {
            // A frame written in part (a full disk) is cut off, so that
            // the next batch follows the last whole one.
            let _ = segment.file.set_len(frame_start);
            return Err(io_error(&self.dir, "writing")(e));
        }
        segment.bytes += buffer.len() as u64;
        let segment_bytes = segment.bytes;
        // The index follows the frame just written, entry by entry.
        let mut offset = frame_start + FRAME_HEADER as u64;
        for (key, value) in batch {
            offset += (ENTRY_HEADER + key.len()) as u64;
            let loc = value.as_ref().map(|v| Loc {
                file: active,
                offset,
                len: v.len() as u32,
            });
            offset += value.as_ref().map_or(0, Vec::len) as u64;
            index_write(state, key, loc);
        }
        state.buffer = buffer;
        if segment_bytes >= self.segment_bytes(state) {
            // Synced before the next starts: after a power loss the files
            // hold a prefix of the batches, never a gap.
            if let Some(segment) = state.files.get(&active) {
                segment
                    .file
                    .sync_data()
                    .map_err(io_error(&self.dir, "syncing"))?;
            }
            start_segment(state, &self.dir, active + 1)?;
            if self.wants_merge(state)
                && let Err(e) = self.merge(state)
            {
                // The batch is in and the tree as it was; a merge cut
                // short (a full disk) leaves no partial file behind.
                let upto = state.active - 1;
                let _ =
                    std::fs::remove_file(self.dir.join(format!("{}.tmp", file_name(upto, true))));
                return Err(e);
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.write();
        if let Some(segment) = state.files.get(&state.active) {
            segment
                .file
                .sync_data()
                .map_err(io_error(&self.dir, "syncing"))?;
        }
        if state.dir_dirty {
            sync_dir(&self.dir)?;
            state.dir_dirty = false;
        }
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let state = self.read();
        state
            .index
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, loc)| Ok((key.clone(), self.value_at(&state, *loc)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL: Tuning = Tuning {
        min_segment_bytes: 512,
        max_segment_bytes: 512,
        growth_pct: 15,
    };

    /// What the files may hold: the merge's bound, a segment being
    /// written, a batch past the roll, frame headers.
    fn bound(tree: &LogTree) -> u64 {
        let state = tree.read();
        LogTree::live_entry_bytes(&state) * (100 + SMALL.growth_pct) / 100 + 3 * 512 + 2048
    }

    fn batch(writes: &[(&str, Option<&str>)]) -> WriteBatch {
        writes
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    fn contents(tree: &LogTree) -> BTreeMap<Vec<u8>, Vec<u8>> {
        tree.scan_prefix(b"").unwrap().into_iter().collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "LOCK")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn behaves_as_a_store_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        {
            let tree = LogTree::open(&path).unwrap();
            super::super::tests::exercise(&tree);
            tree.apply(&batch(&[("kept", Some("1")), ("gone", Some("2"))]))
                .unwrap();
            tree.apply(&batch(&[("gone", None)])).unwrap();
            tree.flush().unwrap();
        }
        let tree = LogTree::open(&path).unwrap();
        assert_eq!(tree.get(b"kept").unwrap(), Some(b"1".to_vec()));
        assert_eq!(tree.get(b"gone").unwrap(), None);
        assert_eq!(
            tree.live_bytes(),
            contents(&tree)
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum::<u64>()
        );
    }

    #[test]
    fn a_second_handle_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = LogTree::open(dir.path()).unwrap();
        assert!(LogTree::open(dir.path()).is_err());
        drop(first);
        LogTree::open(dir.path()).unwrap();
    }

    #[test]
    fn a_write_cut_short_at_the_end_is_cut_off_and_the_batches_before_it_stay() {
        for cut in [1usize, FRAME_HEADER, FRAME_HEADER + 5] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            {
                let tree = LogTree::open(&path).unwrap();
                tree.apply(&batch(&[("a", Some("1"))])).unwrap();
                tree.apply(&batch(&[("b", Some("2")), ("a", None)]))
                    .unwrap();
                tree.flush().unwrap();
            }
            let segment = path.join(file_name(1, false));
            let whole = std::fs::read(&segment).unwrap();
            // A third batch, written in part.
            let mut frame = vec![0; FRAME_HEADER];
            push_entry(&mut frame, b"c", Some(b"3"));
            seal_frame(&mut frame);
            let mut torn = whole.clone();
            torn.extend_from_slice(&frame[..cut]);
            std::fs::write(&segment, &torn).unwrap();
            let tree = LogTree::open(&path).unwrap();
            assert_eq!(
                contents(&tree),
                BTreeMap::from([(b"b".to_vec(), b"2".to_vec())]),
                "cut at {cut}"
            );
            assert_eq!(
                std::fs::read(&segment).unwrap(),
                whole,
                "the torn write is cut off"
            );
            tree.apply(&batch(&[("c", Some("3"))])).unwrap();
            drop(tree);
            assert_eq!(contents(&LogTree::open(&path).unwrap()).len(), 2);
        }
    }

    #[test]
    fn a_bad_frame_before_the_end_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        {
            let tree = LogTree::open_with(&path, SMALL).unwrap();
            for n in 0..40 {
                tree.apply(&batch(&[(
                    &format!("k{n}"),
                    Some("a value of some length"),
                )]))
                .unwrap();
            }
            tree.flush().unwrap();
        }
        let first = path.join(file_name(1, false));
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[FRAME_HEADER + 3] ^= 0x40;
        std::fs::write(&first, &bytes).unwrap();
        match LogTree::open_with(&path, SMALL) {
            Err(LogOpenError::Corrupt { what, .. }) => assert!(what.contains("checksum"), "{what}"),
            Err(other) => panic!("not reported as damage: {other}"),
            Ok(_) => panic!("a flipped bit in a sealed segment was not noticed"),
        }
    }

    #[test]
    fn churn_is_merged_away_and_the_files_stay_within_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let tree = LogTree::open_with(dir.path(), SMALL).unwrap();
        let mut model = BTreeMap::new();
        for round in 0..3000u32 {
            // 50 live keys at most, each rewritten or deleted again and again.
            let key = format!("key-{:02}", round * 7 % 50).into_bytes();
            let write = (round % 5 != 0).then(|| format!("value-{round}").into_bytes());
            match &write {
                Some(v) => model.insert(key.clone(), v.clone()),
                None => model.remove(&key),
            };
            tree.apply(&WriteBatch::from([(key, write)])).unwrap();
            let bound = bound(&tree);
            assert!(
                tree.disk_bytes() <= bound,
                "round {round}: {} bytes on disk",
                tree.disk_bytes()
            );
        }
        assert_eq!(contents(&tree), model);
        assert!(
            files(dir.path()).iter().any(|n| n.ends_with(".merged")),
            "{:?}",
            files(dir.path())
        );
        drop(tree);
        assert_eq!(
            contents(&LogTree::open_with(dir.path(), SMALL).unwrap()),
            model
        );
    }

    #[test]
    fn a_merge_larger_than_its_frames_keeps_every_value_in_place() {
        // About 5 MiB live: the merged file spans many frames, and values
        // larger than a frame sit beside small ones.
        let dir = tempfile::tempdir().unwrap();
        let tuning = Tuning {
            min_segment_bytes: 256 * 1024,
            max_segment_bytes: 256 * 1024,
            growth_pct: 10,
        };
        let tree = LogTree::open_with(dir.path(), tuning).unwrap();
        let mut model = BTreeMap::new();
        for round in 0..6u32 {
            let batch: WriteBatch = (0..2000u32)
                .map(|k| {
                    let len = if k % 500 == 0 {
                        IO_CHUNK_BYTES + 100
                    } else {
                        2000
                    };
                    let value = vec![(round * 31 + k) as u8; len];
                    (format!("k{k:05}").into_bytes(), Some(value))
                })
                .collect();
            for (k, v) in &batch {
                model.insert(k.clone(), v.clone().unwrap());
            }
            tree.apply(&batch).unwrap();
        }
        assert!(
            files(dir.path()).iter().any(|n| n.ends_with(".merged")),
            "{:?}",
            files(dir.path())
        );
        assert_eq!(contents(&tree), model);
        drop(tree);
        assert_eq!(
            contents(&LogTree::open_with(dir.path(), tuning).unwrap()),
            model
        );
    }

    fn copy_files(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for name in files(from) {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }

    #[test]
    fn a_merge_cut_short_by_a_crash_leaves_the_tree_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let before = dir.path().join("before");
        let tree = LogTree::open_with(&path, SMALL).unwrap();
        let mut model = BTreeMap::new();
        let mut model_before = model.clone();
        // Churn, keeping the files as they were before each batch, until a
        // batch ends in a merge.
        for round in 0u32.. {
            assert!(round < 10_000, "no merge after {round} batches");
            std::fs::remove_dir_all(&before).ok();
            copy_files(&path, &before);
            model_before.clone_from(&model);
            let key = format!("key-{:02}", round % 20).into_bytes();
            let value = (round % 3 != 0).then(|| format!("v{round}").into_bytes());
            match &value {
                Some(v) => model.insert(key.clone(), v.clone()),
                None => model.remove(&key),
            };
            tree.apply(&WriteBatch::from([(key, value)])).unwrap();
            if files(&path).iter().any(|n| n.ends_with(".merged")) {
                break;
            }
        }
        tree.flush().unwrap();
        drop(tree);

        // A crash after the merged file's rename, before its inputs were
        // removed: they are still there, stale.
        let after_rename = dir.path().join("after-rename");
        copy_files(&path, &after_rename);
        for name in files(&before) {
            if !after_rename.join(&name).exists() {
                std::fs::copy(before.join(&name), after_rename.join(&name)).unwrap();
            }
        }
        let reopened = LogTree::open_with(&after_rename, SMALL).unwrap();
        assert_eq!(contents(&reopened), model);
        let left = files(&after_rename);
        assert_eq!(
            left.iter().filter(|n| n.ends_with(".merged")).count(),
            1,
            "{left:?}"
        );
        assert_eq!(
            left.len(),
            2,
            "the merged file and the active segment: {left:?}"
        );
        drop(reopened);

        // A crash while the merged file was written: its inputs hold it all.
        std::fs::write(
            before.join(format!("{}.tmp", file_name(7, true))),
            b"partial",
        )
        .unwrap();
        let reopened = LogTree::open_with(&before, SMALL).unwrap();
        assert_eq!(contents(&reopened), model_before);
        assert!(!files(&before).iter().any(|n| n.ends_with(".tmp")));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, Vec<u8>),
        Delete(u8),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..40, proptest::collection::vec(any::<u8>(), 0..90)).prop_map(|(k, v)| Op::Put(k, v)),
            3 => (0u8..40).prop_map(Op::Delete),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the writes, merges and reopens, the tree reads as the
        /// map of its writes, and its files stay within their bound.
        #[test]
        fn the_tree_reads_as_its_writes(batches in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..120)) {
            let dir = tempfile::tempdir().unwrap();
            let mut tree = LogTree::open_with(dir.path(), SMALL).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for ops in batches {
                let mut writes = WriteBatch::new();
                for op in ops {
                    match op {
                        Op::Put(k, v) => { writes.insert(vec![b'k', k], Some(v)); }
                        Op::Delete(k) => { writes.insert(vec![b'k', k], None); }
                        Op::Reopen => {
                            drop(tree);
                            tree = LogTree::open_with(dir.path(), SMALL).unwrap();
                        }
                    }
                }
                for (k, v) in &writes {
                    match v {
                        Some(v) => { model.insert(k.clone(), v.clone()); }
                        None => { model.remove(k); }
                    }
                }
                tree.apply(&writes).unwrap();
                prop_assert!(tree.disk_bytes() <= bound(&tree));
            }
            prop_assert_eq!(contents(&tree), model.clone());
            for (k, v) in &model {
                prop_assert_eq!(tree.get(k).unwrap(), Some(v.clone()));
            }
            drop(tree);
            prop_assert_eq!(contents(&LogTree::open_with(dir.path(), SMALL).unwrap()), model);
        }
    }
}
