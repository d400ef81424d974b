//! Durable file operations of the local log: directory syncs, files
//! replaced whole, preallocated space; each noted in the power-loss fault
//! mode's journal when it is on.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::crash_image::Journal;
use super::io;
use crate::bus::BusError;

/// Makes a directory's entries (a file created, renamed or removed in it)
/// durable.
pub(super) fn sync_dir(dir: &Path, journal: Option<&Journal>) -> Result<(), BusError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("{}: fsync of the directory", dir.display())))?;
    journal.map_or(Ok(()), |j| j.dir_synced(dir))
}

/// Records in the fault mode's journal, if on, that `path` was created.
pub(super) fn note_created(journal: Option<&Journal>, path: &Path) -> Result<(), BusError> {
    journal.map_or(Ok(()), |j| j.created(path))
}

/// Records in the fault mode's journal, if on, that `path` was synced.
pub(super) fn note_synced(
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
pub(super) fn write_atomically(
    path: &Path,
    bytes: &[u8],
    journal: Option<&Journal>,
) -> Result<(), BusError> {
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

/// What a preallocation did.
pub(super) enum Preallocated {
    Done,
    /// The file system cannot preallocate: appends grow the file.
    Unsupported,
    /// It failed otherwise (a full disk, say): the append goes ahead and
    /// fails or not as it would have, and the next one tries again.
    Failed,
}

/// Allocates `length` bytes of `file` from `from` (reading as zeros),
/// extending its size.
pub(super) fn preallocate(file: &File, from: u64, length: u64) -> Preallocated {
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
