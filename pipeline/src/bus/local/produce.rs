//! Producers of the local log: appends go to the partitions' buffers, and
//! `flush` makes the partitions written since the last one durable and
//! visible, and wakes their consumers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::partition::PartitionLog;
use super::{LocalLog, lock};
use crate::bus::{BusError, BusProducer};

pub(super) struct LocalProducer {
    log: Arc<LocalLog>,
    touched: BTreeMap<(String, u32), Arc<Mutex<PartitionLog>>>,
    /// Offset after the last record appended, per partition; acknowledged
    /// once flushed.
    appended: BTreeMap<(String, u32), u64>,
    acknowledged: BTreeMap<(String, u32), u64>,
}

impl LocalProducer {
    pub(super) fn new(log: Arc<LocalLog>) -> LocalProducer {
        LocalProducer {
            log,
            touched: BTreeMap::new(),
            appended: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
        }
    }
}

impl BusProducer for LocalProducer {
    /// Appends a record, or a tombstone if `value` is `None`.
    fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        let log = match self.touched.get(&(topic.to_string(), partition)) {
            Some(log) => log.clone(),
            None => {
                let log = self.log.partition(topic, partition)?;
                self.touched
                    .insert((topic.to_string(), partition), log.clone());
                log
            }
        };
        let offset = lock(&log).append(timestamp_millis, key, value)?;
        self.appended
            .insert((topic.to_string(), partition), offset + 1);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BusError> {
        // The partitions written since the last flush, and only those.
        for key in self.appended.keys() {
            if let Some(log) = self.touched.get(key) {
                lock(log).flush()?;
            }
        }
        let mut topics: Vec<&str> = self.appended.keys().map(|(t, _)| t.as_str()).collect();
        topics.dedup();
        self.log.announce_flush(topics);
        self.acknowledged.extend(std::mem::take(&mut self.appended));
        Ok(())
    }

    fn acknowledged_end(&self, topic: &str, partition: u32) -> Option<u64> {
        self.acknowledged
            .get(&(topic.to_string(), partition))
            .copied()
    }
}
