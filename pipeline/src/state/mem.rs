//! An in-memory store: for `clearing adjudicate` and tests.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{KeyValue, StateRead, StateStore, StoreError, WriteBatch};

#[derive(Debug, Default)]
pub struct MemStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A poisoned lock only means another thread panicked mid-write of a
        // BTreeMap insert, which cannot leave it inconsistent: keep going.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

/// A snapshot: the copy shares nothing with the original afterwards.
impl Clone for MemStore {
    fn clone(&self) -> MemStore {
        MemStore {
            map: RwLock::new(self.read().clone()),
        }
    }
}

impl StateRead for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().get(key).cloned())
    }
}

impl StateStore for MemStore {
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (key, value) in batch {
            match value {
                Some(value) => map.insert(key.clone(), value.clone()),
                None => map.remove(key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        Ok(self
            .read()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
