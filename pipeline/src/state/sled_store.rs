//! The durable store: one sled tree per stage partition.
//!
//! sled 0.34 writes through the page cache and flushes in the background;
//! the runtime calls [`StateStore::flush`] once per batch, never per record.
//!
//! A store is a cache of its changelog: [`SledStore::open_or_rebuild`] reads
//! every tree on open (sled checks a CRC on every log message it reads) and
//! moves a store that fails aside, so the runtime restores it from the
//! changelog instead of failing at every start.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{KeyValue, StateRead, StateStore, StoreError, WriteBatch};

pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    /// For errors: an I/O failure names the store's directory.
    dir: Arc<PathBuf>,
}

/// sled's I/O errors as ours, naming the directory (a full disk must say
/// which store it stopped); other sled errors as they are.
fn sled_error(dir: &Path, doing: &str, error: sled::Error) -> StoreError {
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
        let db = open_db(dir)?;
        let tree = db
            .open_tree(name)
            .map_err(|e| sled_error(dir, "opening", e))?;
        Ok(SledStore {
            db,
            tree,
            dir: Arc::new(dir.to_path_buf()),
        })
    }

    /// Opens the database in `dir` and reads all of it. If sled finds it
    /// corrupt (or panics on it), the directory is moved aside to
    /// `<dir>.corrupt.<n>` (kept for inspection) and an empty store is
    /// opened in its place: the caller restores it from the changelog. Any
    /// other failure (I/O, permissions, a full disk) is returned as is: the
    /// store may be fine and must not be discarded.
    pub fn open_or_rebuild(
        dir: &Path,
        name: &str,
    ) -> Result<(SledStore, Option<Rebuilt>), StoreError> {
        let error = match open_checked(dir, name) {
            Ok(store) => return Ok((store, None)),
            Err(Damage::Store(e)) => return Err(e),
            Err(Damage::Corrupt(error)) => error,
        };
        let aside = (1..)
            .map(|n| {
                let mut name = dir.as_os_str().to_owned();
                name.push(format!(".corrupt.{n}"));
                PathBuf::from(name)
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| dir.with_extension("corrupt"));
        std::fs::rename(dir, &aside).map_err(|source| StoreError::Io {
            context: format!("moving the corrupt store {} aside", dir.display()),
            source,
        })?;
        let store = SledStore::open(dir, name)?;
        Ok((store, Some(Rebuilt { aside, error })))
    }

    /// Another handle on the same tree (for the background persister).
    pub fn clone_handle(&self) -> SledStore {
        SledStore {
            db: self.db.clone(),
            tree: self.tree.clone(),
            dir: self.dir.clone(),
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
        })
    }
}

/// How long an open waits for a lock still held by a store of this process
/// being dropped: sled 0.34 releases its file lock only when its background
/// I/O threads let go of the database, a few milliseconds after the last
/// handle is dropped. Another process holding the lock is reported after it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
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
            // The library's page cache (1 GiB): reads are mostly served
            // above sled (state/mirror.rs), but a smaller cache makes sled
            // 0.34 worse, not leaner — loading 1 M rights, 16 MiB held 3.2 GB
            // of RSS at 800 k (16 k/s); loading 10 M, 256 MiB held 20 GB at
            // 5.2 M where 1 GiB held 17 GB at 10 M (docs/performance.md, "Kept, and what each gave").
            .cache_capacity(1024 * 1024 * 1024)
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

/// A store found corrupt and replaced by an empty one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// Where the corrupt files were moved.
    pub aside: PathBuf,
    /// What sled said.
    pub error: String,
}

impl fmt::Display for Rebuilt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state store corrupt ({}); moved to {} and started empty",
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
fn open_checked(dir: &Path, name: &str) -> Result<SledStore, Damage> {
    let attempt = std::panic::catch_unwind(|| -> Result<SledStore, StoreError> {
        let store = SledStore::open(dir, name)?;
        for tree_name in store.db.tree_names() {
            let tree = store
                .db
                .open_tree(&tree_name)
                .map_err(|e| sled_error(dir, "reading", e))?;
            for item in tree.iter() {
                item.map_err(|e| sled_error(dir, "reading", e))?;
            }
        }
        Ok(store)
    });
    match attempt {
        Ok(Ok(store)) => Ok(store),
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
        self.tree
            .apply_batch(sled_batch)
            .map_err(|e| sled_error(&self.dir, "writing", e))?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.tree
            .flush()
            .map_err(|e| sled_error(&self.dir, "flushing", e))?;
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
