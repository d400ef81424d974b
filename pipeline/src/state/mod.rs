//! Stage state: one store shape (ordered key-value with batch writes), a write
//! overlay per batch, and its implementations: in memory, and two durable
//! engines behind one tree type ([`StoreTree`]): our log store (the
//! default) and sled.
//!
//! A stage's pure function reads and writes through a [`StateTxn`]: reads see
//! the batch's earlier writes, nothing reaches the store until the runtime
//! applies the whole overlay in one batch. This module never decides anything
//! about claims; [`keys`] says how each stage lays out its keys.

pub mod expiry;
mod filter;
pub mod keys;
mod log_store;
mod mem;
mod mirror;
mod sled_rewrite;
mod sled_store;
mod tree;

use std::collections::BTreeMap;

pub use log_store::LogTree;
pub use mem::MemStore;
pub use mirror::{MemoryParts, Mirror, Persister};
pub use sled_rewrite::{RewritePolicy, Rewritten};
pub use sled_store::{OpenNotes, Rebuilt, SledStore};
pub use tree::{Engine, StoreTree};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state store: value under key {key} is corrupt: {what}")]
    Corrupt { key: String, what: String },
    #[error("state store: writing behind the stage: {0}")]
    Persist(String),
    #[error("state store: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// A batch of writes: `None` deletes the key. Ordered, so applying it is
/// deterministic and its changelog is too.
pub type WriteBatch = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Read access to a store.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A durable (or in-memory) store with atomic batch writes.
pub trait StateStore: StateRead {
    /// Applies every write of the batch atomically.
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Every key-value pair with the prefix, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
}

/// An overlay reads as a store: a scratch overlay on top of it can be
/// dropped or merged.
impl StateRead for StateTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        StateTxn::get(self, key)
    }
}

/// A write overlay over a store for one batch of inputs.
pub struct StateTxn<'a> {
    base: &'a dyn StateRead,
    writes: WriteBatch,
}

impl<'a> StateTxn<'a> {
    pub fn new(base: &'a dyn StateRead) -> StateTxn<'a> {
        StateTxn {
            base,
            writes: WriteBatch::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// An 8-byte big-endian counter (cents, counts); absent reads as 0.
    pub fn get_i64(&self, key: &[u8]) -> Result<i64, StoreError> {
        match self.get(key)? {
            None => Ok(0),
            Some(bytes) => {
                let array: [u8; 8] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            key: String::from_utf8_lossy(key).into_owned(),
                            what: format!("{} bytes where a counter has 8", bytes.len()),
                        })?;
                Ok(i64::from_be_bytes(array))
            }
        }
    }

    pub fn put_i64(&mut self, key: Vec<u8>, value: i64) {
        self.put(key, value.to_be_bytes().to_vec());
    }

    /// Takes over the writes of an overlay made on top of this one.
    pub fn merge(&mut self, writes: WriteBatch) {
        self.writes.extend(writes);
    }

    pub fn writes(&self) -> &WriteBatch {
        &self.writes
    }

    pub fn into_writes(self) -> WriteBatch {
        self.writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same behaviour, whichever store is underneath.
    pub(super) fn exercise(store: &dyn StateStore) {
        let mut txn = StateTxn::new(store);
        assert_eq!(txn.get(b"a").unwrap(), None);
        txn.put(b"a".to_vec(), b"1".to_vec());
        txn.put_i64(b"n/x".to_vec(), 42);
        txn.put_i64(b"n/y".to_vec(), 7);
        assert_eq!(
            txn.get(b"a").unwrap(),
            Some(b"1".to_vec()),
            "reads see the overlay"
        );
        assert_eq!(
            store.get(b"a").unwrap(),
            None,
            "nothing reaches the store early"
        );
        let batch = txn.into_writes();
        store.apply(&batch).unwrap();
        store.flush().unwrap();
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        let mut txn = StateTxn::new(store);
        assert_eq!(txn.get_i64(b"n/x").unwrap(), 42);
        assert_eq!(txn.get_i64(b"n/none").unwrap(), 0);
        txn.delete(b"a".to_vec());
        assert_eq!(
            txn.get(b"a").unwrap(),
            None,
            "a delete hides the stored value"
        );
        store.apply(&txn.into_writes()).unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        let scanned: Vec<Vec<u8>> = store
            .scan_prefix(b"n/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(scanned, vec![b"n/x".to_vec(), b"n/y".to_vec()]);
        let mut txn = StateTxn::new(store);
        txn.put(b"bad".to_vec(), vec![1, 2, 3]);
        assert!(
            txn.get_i64(b"bad").is_err(),
            "a short counter is corrupt, not zero"
        );
    }

    #[test]
    fn mem_store_behaves() {
        exercise(&MemStore::default());
    }

    fn filled(dir: &std::path::Path) {
        let store = SledStore::open(dir, "meta").unwrap();
        for p in 0..4 {
            let tree = store.tree(&format!("p{p}")).unwrap();
            let mut batch = WriteBatch::new();
            for i in 0..2000u32 {
                batch.insert(format!("k{i}").into_bytes(), Some(vec![p as u8; 64]));
            }
            tree.apply(&batch).unwrap();
            tree.flush().unwrap();
        }
    }

    #[test]
    fn a_sound_store_opens_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validation");
        filled(&path);
        let (store, notes) = SledStore::open_or_rebuild(&path, "meta").unwrap();
        assert_eq!((notes.rebuilt, notes.rewritten), (None, None));
        assert_eq!(
            store.tree("p3").unwrap().scan_prefix(b"k").unwrap().len(),
            2000
        );
    }

    #[test]
    fn a_corrupt_store_is_moved_aside_and_started_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validation");
        filled(&path);
        // Zero blocks in the first half of the log: sled fails its CRC check
        // (or panics) on open. Damage near the end is different: sled takes it
        // for a torn write and silently opens the prefix before it, which
        // the runtime's changelog catch-up completes (tests/store_faults.rs).
        let db = path.join("db");
        let len = std::fs::metadata(&db).unwrap().len();
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
            for tenth in 1..=5 {
                file.seek(SeekFrom::Start(len * tenth / 10)).unwrap();
                file.write_all(&[0; 4096]).unwrap();
            }
        }
        let (store, notes) = SledStore::open_or_rebuild(&path, "meta").unwrap();
        let rebuilt = notes.rebuilt.expect("detected");
        assert_eq!(rebuilt.aside, dir.path().join("validation.corrupt.1"));
        assert!(rebuilt.aside.join("db").exists(), "kept for inspection");
        assert!(
            store
                .tree("p3")
                .unwrap()
                .scan_prefix(b"")
                .unwrap()
                .is_empty()
        );
        assert!(rebuilt.to_string().contains("corrupt"));
        drop(store);
        // Reopened: the new store is sound, nothing more is moved.
        let (_, again) = SledStore::open_or_rebuild(&path, "meta").unwrap();
        assert_eq!(again.rebuilt, None);
    }

    #[test]
    fn a_store_that_cannot_be_opened_for_another_reason_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the store's directory should be: an I/O error, not
        // damage; discarding it could throw away a sound store.
        let path = dir.path().join("validation");
        std::fs::write(&path, b"not a directory").unwrap();
        assert!(matches!(
            SledStore::open_or_rebuild(&path, "meta"),
            Err(StoreError::Io { .. })
        ));
        assert!(path.is_file());
    }

    #[test]
    fn a_stores_crash_image_is_its_last_flush_and_a_store_never_flushed_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let (flushed, never) = (dir.path().join("entitlement"), dir.path().join("routing"));
        let batch = |key: &str| {
            let mut batch = WriteBatch::new();
            batch.insert(key.as_bytes().to_vec(), Some(b"v".to_vec()));
            batch
        };
        {
            let store = SledStore::open_with(&flushed, "p0", true).unwrap();
            store.apply(&batch("synced")).unwrap();
            store.flush().unwrap();
            store.apply(&batch("applied after the flush")).unwrap();
            let other = SledStore::open_with(&never, "p0", true).unwrap();
            other.apply(&batch("never flushed")).unwrap();
        }
        // Dropped: sled wrote everything to its files, as a SIGKILL keeps it.
        let keys = |path: &std::path::Path| -> Vec<Vec<u8>> {
            let store = SledStore::open_with(path, "p0", false).unwrap();
            store
                .scan_prefix(b"")
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(&flushed).len(), 2);
        assert_eq!(SledStore::crash_image(dir.path()).unwrap(), (1, 1));
        assert_eq!(keys(&flushed), [b"synced".to_vec()]);
        assert!(!never.exists(), "a store never flushed has nothing durable");
        // The copy stays: a second power loss finds the same flush.
        assert_eq!(SledStore::crash_image(dir.path()).unwrap(), (1, 1));
        assert_eq!(keys(&flushed), [b"synced".to_vec()]);
    }

    #[test]
    fn sled_store_behaves_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), "validation-0").unwrap();
            exercise(&store);
        }
        let reopened = SledStore::open(dir.path(), "validation-0").unwrap();
        assert_eq!(reopened.scan_prefix(b"n/").unwrap().len(), 2);
        let other = reopened.tree("validation-1").unwrap();
        assert!(
            other.scan_prefix(b"").unwrap().is_empty(),
            "trees are separate"
        );
    }
}
