//! The durable store: one sled tree per stage partition.
//!
//! sled 0.34 writes through the page cache and flushes in the background;
//! the runtime calls [`StateStore::flush`] once per batch, never per record.

use std::path::Path;

use super::{KeyValue, StateRead, StateStore, StoreError, WriteBatch};

pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the database in `dir` and the tree `name` in it.
    pub fn open(dir: &Path, name: &str) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Explicit, not the library default: the runtime flushes per batch.
            .flush_every_ms(Some(500))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = db.open_tree(name)?;
        Ok(SledStore { db, tree })
    }

    /// Another tree of the same database (one per stage partition).
    pub fn tree(&self, name: &str) -> Result<SledStore, StoreError> {
        Ok(SledStore {
            db: self.db.clone(),
            tree: self.db.open_tree(name)?,
        })
    }
}

impl StateRead for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
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
        self.tree.apply_batch(sled_batch)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }
}
