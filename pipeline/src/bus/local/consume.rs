//! Consumers of the local log. One process owns every partition, so a
//! group member's assignment is its fixed share of the partitions, and a
//! flush wakes the consumers of the flushed topics at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::groups::group_key;
use super::{LocalLog, lock};
use crate::bus::{Assignment, Bus, BusConsumer, BusError, Polled};

impl LocalLog {
    /// Wakes the consumers waiting on `topics` (forgetting dropped ones).
    pub(super) fn announce_flush<'t>(&self, topics: impl IntoIterator<Item = &'t str>) {
        let mut watchers = lock(&self.watchers);
        for topic in topics {
            if let Some(list) = watchers.get_mut(topic) {
                list.retain(|w| match w.upgrade() {
                    Some(signal) => {
                        signal.raise();
                        true
                    }
                    None => false,
                });
            }
        }
    }

    fn watch(&self, topic: &str, signal: &Arc<Signal>) {
        lock(&self.watchers)
            .entry(topic.to_string())
            .or_default()
            .push(Arc::downgrade(signal));
    }
}

/// A consumer of the local log: one process owns every partition, so the
/// assignment is this member's share of the subscribed topics' partitions,
/// announced once.
pub(super) struct LocalConsumer {
    log: Arc<LocalLog>,
    group: String,
    /// (index, members): this member's share of each topic's partitions.
    share: (u32, u32),
    positions: BTreeMap<(String, u32), u64>,
    announced: bool,
    /// Raised by a flush of a subscribed topic.
    signal: Arc<Signal>,
}

/// A consumer's wake-up: a count of flushes of its topics.
#[derive(Default)]
pub(super) struct Signal {
    flushes: Mutex<u64>,
    raised: Condvar,
}

impl LocalConsumer {
    pub(super) fn new(log: Arc<LocalLog>, group: &str, share: (u32, u32)) -> LocalConsumer {
        LocalConsumer {
            log,
            group: group.to_string(),
            share,
            positions: BTreeMap::new(),
            announced: false,
            signal: Arc::new(Signal::default()),
        }
    }
}

impl Signal {
    fn raise(&self) {
        *lock(&self.flushes) += 1;
        self.raised.notify_one();
    }

    fn seen(&self) -> u64 {
        *lock(&self.flushes)
    }

    /// Waits until a flush after `seen`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = lock(&self.flushes);
        // A poisoned lock only ends the wait early; the caller reads again.
        let _ = self
            .raised
            .wait_timeout_while(guard, timeout, |count| *count == seen);
    }
}

impl BusConsumer for LocalConsumer {
    fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        let committed = self.log.with_group(&self.group, |g| g.offsets.clone())?;
        for topic in topics {
            self.log.watch(topic, &self.signal);
            let (index, members) = self.share;
            for partition in (0..self.log.topic_partitions(topic)?).filter(|p| p % members == index)
            {
                let position = committed
                    .get(&group_key(topic, partition))
                    .copied()
                    .unwrap_or(0);
                self.positions
                    .insert((topic.to_string(), partition), position);
            }
        }
        self.announced = false;
        Ok(())
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Polled, BusError> {
        if !self.announced {
            self.announced = true;
            return Ok(Polled {
                records: Vec::new(),
                assignment: Some(Assignment {
                    partitions: self.positions.keys().cloned().collect(),
                }),
            });
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // Taken before reading, so a flush between the read and the
            // wait is not missed.
            let seen = self.signal.seen();
            let mut records = Vec::new();
            for ((topic, partition), position) in &mut self.positions {
                if records.len() >= max_records {
                    break;
                }
                let batch =
                    self.log
                        .read(topic, *partition, *position, max_records - records.len())?;
                if let Some(last) = batch.last() {
                    *position = last.offset + 1;
                }
                records.extend(batch);
            }
            let now = std::time::Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(Polled {
                    records,
                    assignment: None,
                });
            }
            self.signal.wait(seen, deadline - now);
        }
    }

    fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), BusError> {
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    fn commit(&mut self, offsets: &[(String, u32, u64)]) -> Result<(), BusError> {
        self.log.commit_group(&self.group, offsets, false)
    }
}

impl Drop for LocalConsumer {
    /// The group's file gets the last commits (a stop, a rebalance in tests).
    fn drop(&mut self) {
        if let Err(e) = self.log.commit_group(&self.group, &[], true) {
            eprintln!("group {}: offsets not written: {e}", self.group);
        }
    }
}
