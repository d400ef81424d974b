//! Interactive queries (Kafka Streams' sense): the stores of the partitions
//! this process owns, readable by the online services while the stages run.
//!
//! A worker registers a partition's store when it is assigned and withdraws
//! it when the partition goes; a query reads the store as the stage left it
//! after its last committed batch (the store applies a batch's writes at
//! once, after the batch is on the bus). A partition another process owns is
//! not here: the caller forwards the query to its owner.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::stages::StageKind;
use crate::state::{Mirror, StateRead};

/// The stores open in this process, by stage and partition.
#[derive(Default)]
pub struct StateDirectory {
    stores: RwLock<BTreeMap<(StageKind, u32), Arc<Mirror>>>,
}

impl StateDirectory {
    pub fn new() -> Arc<StateDirectory> {
        Arc::new(StateDirectory::default())
    }

    pub(super) fn register(&self, kind: StageKind, partition: u32, store: Arc<Mirror>) {
        if let Ok(mut stores) = self.stores.write() {
            stores.insert((kind, partition), store);
        }
    }

    pub(super) fn withdraw(&self, kind: StageKind, partition: u32) {
        if let Ok(mut stores) = self.stores.write() {
            stores.remove(&(kind, partition));
        }
    }

    /// The partitions of `kind` this process holds.
    pub fn partitions(&self, kind: StageKind) -> Vec<u32> {
        self.stores.read().map_or_else(
            |_| Vec::new(),
            |stores| {
                stores
                    .keys()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, p)| *p)
                    .collect()
            },
        )
    }

    /// Runs `query` over the store of `kind`'s `partition`; `None` when this
    /// process does not hold it.
    pub fn read<T>(
        &self,
        kind: StageKind,
        partition: u32,
        query: impl FnOnce(&dyn StateRead) -> T,
    ) -> Option<T> {
        let store = self.stores.read().ok()?.get(&(kind, partition)).cloned()?;
        Some(query(store.as_ref()))
    }
}
