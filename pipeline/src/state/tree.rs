//! A stage's durable store, whichever engine writes it: a directory per
//! stage, a tree per partition (and `meta`) in it.
//!
//! Two engines: the log store (state/log_store.rs, the default since
//! 2026-12-07) and sled 0.34. Both are caches of the stage's changelog
//! (design.md §3): a store written by the other engine, like a corrupt one,
//! is moved aside and the changelog restores it, so switching engines is a
//! restore, never a migration by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use super::log_store::{LogOpenError, LogTree, io_error};
use super::sled_store::{self, OpenNotes, Rebuilt, SledStore};
use super::{KeyValue, RewritePolicy, StateRead, StateStore, StoreError, WriteBatch};

/// Which engine writes the stages' stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Appends with an in-memory index of the keys, merged as it goes.
    #[default]
    Log,
    /// sled 0.34's tree (the engine until 2026-12-07).
    Sled,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Log => "log",
            Engine::Sled => "sled",
        }
    }

    /// Bytes a tree's files may hold beyond its content whatever its size:
    /// for the log, an open and a sealed segment of the smallest size (a
    /// tree of a few KB swings by them before a merge); none known for
    /// sled, whose files are judged without it.
    pub fn file_slack_bytes(self) -> u64 {
        match self {
            Engine::Log => 2 * super::log_store::Tuning::DEFAULT.min_segment_bytes,
            Engine::Sled => 0,
        }
    }

    /// The engine that wrote the store in `dir` (sled's if it holds no
    /// log store's mark).
    pub fn of_store(dir: &Path) -> Engine {
        if dir.join(LOG_MARK).exists() {
            Engine::Log
        } else {
            Engine::Sled
        }
    }

    /// Whether `dir` holds a store this engine did not write: sled keeps
    /// its `conf` file at the top, the log store a directory per tree with
    /// [`LOG_MARK`] beside them.
    fn foreign(self, dir: &Path) -> bool {
        match self {
            Engine::Log => dir.join("conf").exists() || dir.join("db").exists(),
            Engine::Sled => dir.join(LOG_MARK).exists(),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Engine, String> {
        match s {
            "log" => Ok(Engine::Log),
            "sled" => Ok(Engine::Sled),
            other => Err(format!("no store engine {other:?} (log or sled)")),
        }
    }
}

/// In a log store's directory: marks it as one.
const LOG_MARK: &str = "log-store";

/// The log store's trees of one directory, opened once each: a partition
/// handed from one worker to another in the process finds its tree open.
pub struct LogDb {
    dir: PathBuf,
    trees: Mutex<BTreeMap<String, LogTree>>,
    /// The power-loss fault mode, if on: writes take the gate shared, a
    /// flush and its copy take it alone, so the copy holds whole batches.
    fault: Option<RwLock<()>>,
}

impl LogDb {
    fn tree(&self, name: &str) -> Result<LogTree, StoreError> {
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tree) = trees.get(name) {
            return Ok(tree.clone());
        }
        let tree = LogTree::open(&self.dir.join(name)).map_err(|e| match e {
            LogOpenError::Store(e) => e,
            corrupt @ LogOpenError::Corrupt { .. } => StoreError::Corrupt {
                key: name.to_string(),
                what: corrupt.to_string(),
            },
        })?;
        trees.insert(name.to_string(), tree.clone());
        Ok(tree)
    }
}

/// One tree of a stage's store.
pub enum StoreTree {
    Sled(SledStore),
    Log { db: Arc<LogDb>, tree: LogTree },
}

impl StoreTree {
    /// Opens the store in `dir` with `engine`, checking all of it, and its
    /// tree `name`. A store that is corrupt, or written by the other
    /// engine, is moved aside and an empty one opened in its place: the
    /// caller restores it from the changelog. sled's stores are rewritten
    /// at open by `policy`; the log store gives its dead bytes back as it
    /// goes.
    pub fn open_or_rebuild(
        engine: Engine,
        dir: &Path,
        name: &str,
        policy: RewritePolicy,
    ) -> Result<(StoreTree, OpenNotes), StoreError> {
        let other = match engine {
            Engine::Log => Engine::Sled,
            Engine::Sled => Engine::Log,
        };
        let switched = if dir.exists() && engine.foreign(dir) {
            Some(sled_store::move_aside(dir, other.name())?)
        } else {
            None
        };
        let (tree, mut notes) = match engine {
            Engine::Sled => {
                let (store, notes) = SledStore::open_or_rebuild_with(dir, name, policy)?;
                (StoreTree::Sled(store), notes)
            }
            Engine::Log => open_log(dir, name)?,
        };
        if let Some(aside) = switched {
            notes.rebuilt.get_or_insert(Rebuilt {
                aside,
                error: format!("written by the {other} engine, opened with the {engine} engine"),
                other_engine: true,
            });
        }
        Ok((tree, notes))
    }

    /// Opens the store in `dir` as it is (no checks, no rewrite): the load
    /// test's inventory after a run.
    pub fn open(engine: Engine, dir: &Path, name: &str) -> Result<StoreTree, StoreError> {
        match engine {
            Engine::Sled => SledStore::open(dir, name).map(StoreTree::Sled),
            Engine::Log => {
                let db = Arc::new(LogDb {
                    dir: dir.to_path_buf(),
                    trees: Mutex::new(BTreeMap::new()),
                    fault: None,
                });
                let tree = db.tree(name)?;
                Ok(StoreTree::Log { db, tree })
            }
        }
    }

    /// Another tree of the same store (one per stage partition).
    pub fn tree(&self, name: &str) -> Result<StoreTree, StoreError> {
        match self {
            StoreTree::Sled(store) => store.tree(name).map(StoreTree::Sled),
            StoreTree::Log { db, .. } => Ok(StoreTree::Log {
                db: db.clone(),
                tree: db.tree(name)?,
            }),
        }
    }

    /// Another handle on the same tree (for the background persister).
    pub fn clone_handle(&self) -> StoreTree {
        match self {
            StoreTree::Sled(store) => StoreTree::Sled(store.clone_handle()),
            StoreTree::Log { db, tree } => StoreTree::Log {
                db: db.clone(),
                tree: tree.clone(),
            },
        }
    }

    /// Calls `f` with every key of the tree, in order.
    pub fn for_each_key(&self, f: impl FnMut(&[u8])) -> Result<(), StoreError> {
        match self {
            StoreTree::Sled(store) => store.for_each_key(f),
            StoreTree::Log { tree, .. } => {
                tree.for_each_key(f);
                Ok(())
            }
        }
    }
}

/// Opens every tree of a log store, so that damage anywhere shows now,
/// not when a partition is assigned; moves a damaged store aside.
fn open_log(dir: &Path, name: &str) -> Result<(StoreTree, OpenNotes), StoreError> {
    let fault = crate::bus::local::crash_image_mode();
    let open_all = || -> Result<(Arc<LogDb>, OpenNotes), StoreError> {
        if fault {
            sled_store::track_for_crash_images(dir)?;
        }
        std::fs::create_dir_all(dir).map_err(io_error(dir, "creating"))?;
        std::fs::write(dir.join(LOG_MARK), b"").map_err(io_error(dir, "marking"))?;
        let db = Arc::new(LogDb {
            dir: dir.to_path_buf(),
            trees: Mutex::new(BTreeMap::new()),
            fault: fault.then(|| RwLock::new(())),
        });
        let mut notes = OpenNotes::default();
        let entries = std::fs::read_dir(dir).map_err(io_error(dir, "listing"))?;
        for entry in entries {
            let entry = entry.map_err(io_error(dir, "listing"))?;
            if !entry.path().is_dir() {
                continue;
            }
            if let Some(tree_name) = entry.file_name().to_str() {
                let tree = db.tree(tree_name)?;
                notes.disk_bytes += tree.disk_bytes();
                notes.live_bytes += tree.live_bytes();
            }
        }
        Ok((db, notes))
    };
    let (db, notes) = match open_all() {
        Ok(opened) => opened,
        Err(StoreError::Corrupt { key, what }) => {
            let aside = sled_store::move_aside(dir, "corrupt")?;
            let (db, mut notes) = open_all()?;
            notes.rebuilt = Some(Rebuilt {
                aside,
                error: format!("tree {key}: {what}"),
                other_engine: false,
            });
            (db, notes)
        }
        Err(e) => return Err(e),
    };
    let tree = db.tree(name)?;
    Ok((StoreTree::Log { db, tree }, notes))
}

impl Clone for StoreTree {
    fn clone(&self) -> StoreTree {
        self.clone_handle()
    }
}

impl StateRead for StoreTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            StoreTree::Sled(store) => store.get(key),
            StoreTree::Log { tree, .. } => tree.get(key),
        }
    }
}

impl StateStore for StoreTree {
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        match self {
            StoreTree::Sled(store) => store.apply(batch),
            StoreTree::Log { db, tree } => {
                let _shared = db
                    .fault
                    .as_ref()
                    .map(|gate| gate.read().unwrap_or_else(|e| e.into_inner()));
                tree.apply(batch)
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        match self {
            StoreTree::Sled(store) => store.flush(),
            StoreTree::Log { db, tree } => {
                let _alone = db
                    .fault
                    .as_ref()
                    .map(|gate| gate.write().unwrap_or_else(|e| e.into_inner()));
                tree.flush()?;
                if db.fault.is_some() {
                    sled_store::keep_flushed_copy(&db.dir).map_err(|source| StoreError::Io {
                        context: format!("copying the flushed store {}", db.dir.display()),
                        source,
                    })?;
                }
                Ok(())
            }
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        match self {
            StoreTree::Sled(store) => store.scan_prefix(prefix),
            StoreTree::Log { tree, .. } => tree.scan_prefix(prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(tree: &StoreTree, key: &str, value: &str) {
        let batch = WriteBatch::from([(key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))]);
        tree.apply(&batch).unwrap();
        tree.flush().unwrap();
    }

    #[test]
    fn each_engine_behaves_as_a_store_and_reopens_what_it_wrote() {
        for engine in [Engine::Log, Engine::Sled] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("validation");
            {
                let (meta, notes) =
                    StoreTree::open_or_rebuild(engine, &path, "meta", RewritePolicy::DEFAULT)
                        .unwrap();
                assert_eq!(notes.rebuilt, None);
                super::super::tests::exercise(&meta);
                write(&meta.tree("p1").unwrap(), "k", "v");
                // The same tree twice in one process is one tree.
                write(&meta.tree("p1").unwrap(), "k2", "v2");
            }
            let (meta, notes) =
                StoreTree::open_or_rebuild(engine, &path, "meta", RewritePolicy::DEFAULT).unwrap();
            assert_eq!(notes.rebuilt, None, "{engine}");
            let p1 = meta.tree("p1").unwrap();
            assert_eq!(p1.get(b"k").unwrap(), Some(b"v".to_vec()), "{engine}");
            let mut keys = Vec::new();
            p1.for_each_key(|k| keys.push(k.to_vec())).unwrap();
            assert_eq!(keys, vec![b"k".to_vec(), b"k2".to_vec()], "{engine}");
        }
    }

    #[test]
    fn a_store_of_the_other_engine_is_moved_aside_and_restored_empty() {
        for (first, then) in [(Engine::Sled, Engine::Log), (Engine::Log, Engine::Sled)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("reimbursement");
            {
                let (meta, _) =
                    StoreTree::open_or_rebuild(first, &path, "meta", RewritePolicy::DEFAULT)
                        .unwrap();
                write(&meta.tree("p0").unwrap(), "k", "v");
            }
            let (meta, notes) =
                StoreTree::open_or_rebuild(then, &path, "meta", RewritePolicy::DEFAULT).unwrap();
            let rebuilt = notes.rebuilt.expect("moved aside");
            assert!(rebuilt.aside.exists(), "{first} then {then}");
            assert!(rebuilt.error.contains(first.name()), "{}", rebuilt.error);
            assert_eq!(meta.tree("p0").unwrap().get(b"k").unwrap(), None);
        }
    }

    #[test]
    fn a_damaged_log_store_is_moved_aside_and_started_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routing");
        {
            let (meta, _) =
                StoreTree::open_or_rebuild(Engine::Log, &path, "meta", RewritePolicy::DEFAULT)
                    .unwrap();
            let p0 = meta.tree("p0").unwrap();
            write(&p0, "a", "1");
            write(&p0, "b", "2");
        }
        // The second segment of p0 never existed, so its first is sealed
        // only if another follows: make one, then damage the first.
        let p0 = path.join("p0");
        let first = p0.join("0000000000000001.log");
        std::fs::write(p0.join("0000000000000002.log"), b"").unwrap();
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&first, &bytes).unwrap();
        let (meta, notes) =
            StoreTree::open_or_rebuild(Engine::Log, &path, "meta", RewritePolicy::DEFAULT).unwrap();
        let rebuilt = notes.rebuilt.expect("moved aside");
        assert!(rebuilt.error.contains("checksum"), "{}", rebuilt.error);
        assert_eq!(meta.tree("p0").unwrap().get(b"a").unwrap(), None);
    }
}
