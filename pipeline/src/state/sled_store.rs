//! The durable store: one sled tree per stage partition.
//!
//! sled 0.34 writes through the page cache and flushes in the background;
//! the runtime calls [`StateStore::flush`] once per batch, never per record.
//!
//! A store is a cache of its changelog: [`SledStore::open_or_rebuild`] reads
//! every tree on open (sled checks a CRC on every log message it reads) and
//! moves a store that fails aside, so the runtime restores it from the
//! changelog, instead of failing at every start.
//!
//! In the power-loss fault mode (`CLEARING_FAULT_CRASH_IMAGE`, see
//! `bus::local`'s `crash_image`), each explicit flush copies the store's
//! directory to `<dir>.flushed`, and [`SledStore::crash_image`] puts that
//! copy back after the processes are killed: a store's crash image is its
//! state as of its last flush (sled's own fsyncs in between are left out,
//! which only makes the image older, and an older store is one the
//! changelog catch-up completes).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::sled_rewrite::{self, Baseline, RewritePolicy, Rewritten};
use super::{KeyValue, StateRead, StateStore, StoreError, WriteBatch};

pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    /// For errors: an I/O failure names the store's directory.
    dir: Arc<PathBuf>,
    /// The power-loss fault mode, if on: writes take the gate shared, a
    /// flush and its copy take it alone, so the copy holds whole batches.
    fault: Option<Arc<RwLock<()>>>,
}

/// Beside a store's directory in the fault mode: its copy as of its last
/// flush, and a mark that the store is tracked.
const FLUSHED: &str = "flushed";
pub(super) const TRACKED: &str = "crash-tracked";

pub(super) fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// Copies a directory tree (sled's: files and a `blobs` directory).
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub(super) fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Replaces `<dir>.flushed` with a copy of `dir`; a kill midway leaves the
/// previous copy (as `.flushed` or `.flushed.old`).
pub(super) fn keep_flushed_copy(dir: &Path) -> std::io::Result<()> {
    let (flushed, old, new) = (
        beside(dir, FLUSHED),
        beside(dir, "flushed.old"),
        beside(dir, "flushed.new"),
    );
    remove_tree(&new)?;
    copy_tree(dir, &new)?;
    if flushed.exists() {
        remove_tree(&old)?;
        std::fs::rename(&flushed, &old)?;
    }
    std::fs::rename(&new, &flushed)?;
    remove_tree(&old)
}

/// Marks a store for the power-loss fault mode's crash images, before its
/// engine writes a byte: a store never flushed has nothing durable, and its
/// crash image is no store at all.
pub(super) fn track_for_crash_images(dir: &Path) -> Result<(), StoreError> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            context: format!("creating {}", parent.display()),
            source,
        })?;
    }
    std::fs::write(beside(dir, TRACKED), b"").map_err(|source| StoreError::Io {
        context: format!("marking {} for crash images", dir.display()),
        source,
    })
}

/// Moves a store's directory to `<dir>.<why>.<n>`, the first `n` free,
/// kept for inspection; returns where.
pub(super) fn move_aside(dir: &Path, why: &str) -> Result<PathBuf, StoreError> {
    let aside = (1..)
        .map(|n| beside(dir, &format!("{why}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| beside(dir, why));
    std::fs::rename(dir, &aside).map_err(|source| StoreError::Io {
        context: format!("moving the store {} aside ({why})", dir.display()),
        source,
    })?;
    Ok(aside)
}

/// sled's I/O errors as ours, naming the directory (a full disk must say
/// which store it stopped); other sled errors as they are.
pub(super) fn sled_error(dir: &Path, doing: &str, error: sled::Error) -> StoreError {
    match error {
        sled::Error::Io(source) => StoreError::Io {
            context: format!("{doing} {}", dir.display()),
            source,
        },
        other => StoreError::Sled(other),
    }
}

impl SledStore {
    /// Opens (or creates) the database in `dir` and the tree `name` in it.
    pub fn open(dir: &Path, name: &str) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, name, crate::bus::local::crash_image_mode())
    }

    /// [`SledStore::open`], in the power-loss fault mode if `fault`.
    pub fn open_with(dir: &Path, name: &str, fault: bool) -> Result<SledStore, StoreError> {
        if fault {
            track_for_crash_images(dir)?;
        }
        let db = open_db(dir)?;
        let tree = db
            .open_tree(name)
            .map_err(|e| sled_error(dir, "opening", e))?;
        Ok(SledStore {
            db,
            tree,
            dir: Arc::new(dir.to_path_buf()),
            fault: fault.then(|| Arc::new(RwLock::new(()))),
        })
    }

    /// Puts back, for every store of `state_dir` opened in the power-loss
    /// fault mode, its copy as of its last flush (no store if it was never
    /// flushed), as a power loss would leave it. Run it only while no
    /// process has the stores open. Returns the stores put back and the
    /// stores removed.
    pub fn crash_image(state_dir: &Path) -> Result<(usize, usize), StoreError> {
        let io = |context: String| move |source| StoreError::Io { context, source };
        let entries = match std::fs::read_dir(state_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(io(state_dir.display().to_string())(e)),
        };
        let suffix = format!(".{TRACKED}");
        let (mut restored, mut removed) = (0, 0);
        for entry in entries {
            let name = entry
                .map_err(io(state_dir.display().to_string()))?
                .file_name();
            let Some(store) = name.to_str().and_then(|n| n.strip_suffix(&suffix)) else {
                continue;
            };
            let dir = state_dir.join(store);
            remove_tree(&dir).map_err(io(format!("crash image: {}", dir.display())))?;
            let copy = [beside(&dir, FLUSHED), beside(&dir, "flushed.old")]
                .into_iter()
                .find(|p| p.is_dir());
            match copy {
                Some(copy) => {
                    copy_tree(&copy, &dir)
                        .map_err(io(format!("crash image: {}", dir.display())))?;
                    restored += 1;
                }
                None => removed += 1,
            }
        }
        Ok((restored, removed))
    }

    /// Opens the database in `dir` and reads all of it. If sled finds it
    /// corrupt (or panics on it), the directory is moved aside to
    /// `<dir>.corrupt.<n>` (kept for inspection) and an empty store is
    /// opened in its place: the caller restores it from the changelog. Any
    /// other failure (I/O, permissions, a full disk) is returned as is: the
    /// store may be fine and must not be discarded. A sound store whose
    /// files hold far more than its keys is rewritten first
    /// ([`RewritePolicy::DEFAULT`], `state::sled_rewrite`).
    pub fn open_or_rebuild(dir: &Path, name: &str) -> Result<(SledStore, OpenNotes), StoreError> {
        SledStore::open_or_rebuild_with(dir, name, RewritePolicy::DEFAULT)
    }

    /// [`SledStore::open_or_rebuild`] with a rewrite policy of its own.
    pub fn open_or_rebuild_with(
        dir: &Path,
        name: &str,
        policy: RewritePolicy,
    ) -> Result<(SledStore, OpenNotes), StoreError> {
        sled_rewrite::recover(dir)?;
        let error = match open_checked(dir, name) {
            Ok((store, live_bytes)) => {
                let disk_bytes_before = store
                    .db
                    .size_on_disk()
                    .map_err(|e| sled_error(dir, "measuring", e))?;
                let measured = OpenNotes {
                    disk_bytes: disk_bytes_before,
                    live_bytes,
                    ..OpenNotes::default()
                };
                if !policy.wants(disk_bytes_before, live_bytes, Baseline::read(dir)) {
                    return Ok((store, measured));
                }
                drop(store);
                sled_rewrite::rewrite(dir)?;
                let store = SledStore::open(dir, name)?;
                let disk_bytes_after = store
                    .db
                    .size_on_disk()
                    .map_err(|e| sled_error(dir, "measuring", e))?;
                Baseline {
                    disk_bytes: disk_bytes_after,
                    live_bytes,
                }
                .write(dir)?;
                let rewritten = Rewritten {
                    disk_bytes_before,
                    disk_bytes_after,
                    live_bytes,
                };
                return Ok((
                    store,
                    OpenNotes {
                        rewritten: Some(rewritten),
                        ..measured
                    },
                ));
            }
            Err(Damage::Store(e)) => return Err(e),
            Err(Damage::Corrupt(error)) => error,
        };
        let aside = move_aside(dir, "corrupt")?;
        Baseline::remove(dir)?;
        let store = SledStore::open(dir, name)?;
        let rebuilt = Rebuilt {
            aside,
            error,
            other_engine: false,
        };
        Ok((
            store,
            OpenNotes {
                rebuilt: Some(rebuilt),
                ..OpenNotes::default()
            },
        ))
    }

    /// Calls `f` with every key of the tree, in order.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8])) -> Result<(), StoreError> {
        for key in self.tree.iter().keys() {
            f(&key.map_err(|e| sled_error(&self.dir, "reading", e))?);
        }
        Ok(())
    }

    /// Another handle on the same tree (for the background persister).
    pub fn clone_handle(&self) -> SledStore {
        SledStore {
            db: self.db.clone(),
            tree: self.tree.clone(),
            dir: self.dir.clone(),
            fault: self.fault.clone(),
        }
    }

    /// Another tree of the same database (one per stage partition).
    pub fn tree(&self, name: &str) -> Result<SledStore, StoreError> {
        Ok(SledStore {
            db: self.db.clone(),
            tree: self
                .db
                .open_tree(name)
                .map_err(|e| sled_error(&self.dir, "opening", e))?,
            dir: self.dir.clone(),
            fault: self.fault.clone(),
        })
    }
}

/// How long an open waits for a lock still held by a store of this process
/// being dropped: sled 0.34 releases its file lock only when its background
/// I/O threads let go of the database, a few milliseconds after the last
/// handle is dropped. Another process holding the lock is reported after it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    open_db_cached(dir, 1024 * 1024 * 1024)
}

/// [`open_db`] with a page cache of `cache_bytes`.
pub(super) fn open_db_cached(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let opened = sled::Config::new()
            .path(dir)
            // No periodic fsync: the changelog makes state durable, and sled
            // is flushed when it must be (after a catch-up, at a stop). Its
            // writes reach the page cache as it goes, which a process crash
            // keeps; after a power loss sled opens a consistent prefix and
            // the changelog catch-up completes it. Its fsyncs, big and
            // periodic, stalled the stages' log fsyncs behind them on this
            // disk (docs/performance.md, "Kept, and what each gave").
            .flush_every_ms(None)
            // The library's page cache (1 GiB for a stage's store): reads
            // are mostly served above sled (state/mirror.rs), but a smaller
            // cache made sled 0.34 slower and no leaner (docs/performance.md,
            // "Kept, and what each gave").
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other.map_err(|e| sled_error(dir, "opening", e)),
        }
    }
}

/// What opening a store found and did, for the runtime to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenNotes {
    /// sled's files and the live keys and values, as opened (a store
    /// rewritten: before the rewrite).
    pub disk_bytes: u64,
    pub live_bytes: u64,
    /// Found corrupt and replaced by an empty store.
    pub rebuilt: Option<Rebuilt>,
    /// Rewritten to give sled's dead space back.
    pub rewritten: Option<Rewritten>,
}

/// A store found corrupt and replaced by an empty one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// Where the store's files were moved.
    pub aside: PathBuf,
    /// What the engine said, or which engine wrote them.
    pub error: String,
    /// Moved because the other engine wrote them, not for damage.
    pub other_engine: bool,
}

impl fmt::Display for Rebuilt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.other_engine {
            "state store of another engine"
        } else {
            "state store corrupt"
        };
        write!(
            f,
            "{what} ({}); moved to {} and started empty",
            self.error,
            self.aside.display()
        )
    }
}

enum Damage {
    Corrupt(String),
    Store(StoreError),
}

/// Opens and reads every key of every tree: sled reads pages lazily, so
/// damage past the log's recovery point only shows when a page is read.
/// Returns the store and the bytes of its live keys and values.
fn open_checked(dir: &Path, name: &str) -> Result<(SledStore, u64), Damage> {
    let attempt = std::panic::catch_unwind(|| -> Result<(SledStore, u64), StoreError> {
        let store = SledStore::open(dir, name)?;
        let mut live_bytes = 0u64;
        for tree_name in store.db.tree_names() {
            let tree = store
                .db
                .open_tree(&tree_name)
                .map_err(|e| sled_error(dir, "reading", e))?;
            for item in tree.iter() {
                let (key, value) = item.map_err(|e| sled_error(dir, "reading", e))?;
                live_bytes += (key.len() + value.len()) as u64;
            }
        }
        Ok((store, live_bytes))
    });
    match attempt {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(StoreError::Sled(
            e @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_)),
        ))) => Err(Damage::Corrupt(e.to_string())),
        Ok(Err(e)) => Err(Damage::Store(e)),
        Err(_) => Err(Damage::Corrupt("sled panicked reading it".into())),
    }
}

impl StateRead for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(key)
            .map_err(|e| sled_error(&self.dir, "reading", e))?
            .map(|v| v.to_vec()))
    }
}

impl StateStore for SledStore {
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch {
            match value {
                Some(value) => sled_batch.insert(key.as_slice(), value.as_slice()),
                None => sled_batch.remove(key.as_slice()),
            }
        }
        let _shared = self
            .fault
            .as_ref()
            .map(|gate| gate.read().unwrap_or_else(|e| e.into_inner()));
        self.tree
            .apply_batch(sled_batch)
            .map_err(|e| sled_error(&self.dir, "writing", e))?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let _alone = self
            .fault
            .as_ref()
            .map(|gate| gate.write().unwrap_or_else(|e| e.into_inner()));
        self.tree
            .flush()
            .map_err(|e| sled_error(&self.dir, "flushing", e))?;
        if self.fault.is_some() {
            keep_flushed_copy(&self.dir).map_err(|source| StoreError::Io {
                context: format!("copying the flushed store {}", self.dir.display()),
                source,
            })?;
        }
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item.map_err(|e| sled_error(&self.dir, "reading", e))?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }
}
