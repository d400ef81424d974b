//! The transport: one [`Bus`] trait, two backends (design.md §4).
//!
//! - `local:DIR` ([`local`]): the embedded default, a segmented log on disk.
//! - `kafka://HOST:PORT[/NAMESPACE]` (`kafka`, with the crate's `kafka`
//!   feature): Apache Kafka, through rdkafka.
//!
//! [`open`] picks one by its URL. The trait is what the stage runtime needs
//! and no more: create topics, produce to an explicit partition and wait for
//! acks, consume with a group and manual offsets, and read a partition
//! directly (restore, replay). tests/bus_contract.rs holds both backends to
//! it.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod local;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("topic {0} has no partition {1}")]
    UnknownPartition(String, u32),
    #[error("record of {0} bytes exceeds the bound")]
    TooLarge(usize),
    #[error("bus configuration: {0}")]
    Config(String),
    #[error("bus busy: {0}")]
    Busy(String),
    #[error("bus data corrupt: {0}")]
    Corrupt(String),
    /// The broker refused a request or did not answer it; `kind` says
    /// whether the same request can succeed later by itself.
    #[error("broker: {message}")]
    Broker {
        kind: BrokerErrorKind,
        message: String,
    },
    /// Another owner took over (a fenced producer's writes are refused):
    /// this process's membership is stale.
    #[error("fenced: {0}")]
    Fenced(String),
}

/// What a broker's error says of the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerErrorKind {
    /// The request met a cluster in motion (a partition's leadership
    /// moving, a broker restarting, a request timing out): the same request
    /// can succeed in a moment.
    Retriable,
    /// It will fail the same way until someone acts.
    Fatal,
}

impl BusError {
    /// Whether the same call can succeed later with nobody acting: a
    /// broker's error of the [`BrokerErrorKind::Retriable`] kind. A fence,
    /// a configuration, a bound or damaged data is never.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            BusError::Broker {
                kind: BrokerErrorKind::Retriable,
                ..
            }
        )
    }
}

/// Opens the bus of a URL: `local:DIR`, or `kafka://HOST:PORT[,HOST:PORT…][/NAMESPACE]`
/// (which checks that the broker answers, so a wrong address fails here).
pub fn open(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    if let Some(dir) = url.strip_prefix("local:") {
        return Ok(Arc::new(local::LocalLog::open(Path::new(dir))?));
    }
    if url.starts_with("kafka://") {
        return open_kafka(url);
    }
    Err(BusError::Config(
        "expected local:DIR or kafka://HOST:PORT".to_string(),
    ))
}

#[cfg(feature = "kafka")]
fn open_kafka(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    Ok(Arc::new(kafka::KafkaBus::connect(url)?))
}

#[cfg(not(feature = "kafka"))]
fn open_kafka(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    Err(BusError::Config(format!(
        "{url}: this build has no Kafka backend (clearing-pipeline's `kafka` feature is off)"
    )))
}

/// The largest record (key + value) every backend takes: Kafka's bound
/// (`kafka::MAX_RECORD_BYTES`), the smaller of the two. A record that must
/// be the same bytes on every bus (a dead letter) is cut to it.
pub const PORTABLE_RECORD_BYTES: usize = 4 * 1024 * 1024;
const _: () = assert!(PORTABLE_RECORD_BYTES <= local::MAX_RECORD_BYTES);

/// A topic to create: partitions, and whether it is compacted (`ref.*`, changelogs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub compacted: bool,
    /// Retention in milliseconds; `None` keeps forever.
    pub retention_ms: Option<i64>,
}

impl TopicSpec {
    /// A topic that keeps every record: not compacted, no retention.
    pub fn new(name: &str, partitions: u32) -> TopicSpec {
        TopicSpec {
            name: name.to_string(),
            partitions,
            compacted: false,
            retention_ms: None,
        }
    }
}

/// One record read from a topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_millis: i64,
    pub key: Vec<u8>,
    /// Empty for a tombstone.
    pub value: Vec<u8>,
    /// A null value ([`BusProducer::send_tombstone`]): the key's delete,
    /// which a compacted topic drops in time with the key's earlier records.
    pub tombstone: bool,
}

/// The partitions a consumer owns after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub partitions: Vec<(String, u32)>,
}

/// What a poll returns: records, or first a new assignment to act on.
#[derive(Debug, Default)]
pub struct Polled {
    pub records: Vec<Record>,
    /// Set when the assignment changed: the caller hands state over (restore
    /// and seek for new partitions, drop revoked ones) before the records.
    pub assignment: Option<Assignment>,
}

/// Reads `topic/partition` from `from` in offset order, calling `each` per
/// record until it returns `false` or the partition's end is reached.
pub fn scan<E: From<BusError>>(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    from: u64,
    mut each: impl FnMut(Record) -> Result<bool, E>,
) -> Result<(), E> {
    let mut position = from;
    loop {
        let records = bus.read(topic, partition, position, READ_CHUNK as usize)?;
        let Some(last) = records.last() else {
            return Ok(());
        };
        position = last.offset + 1;
        for r in records {
            if !each(r)? {
                return Ok(());
            }
        }
    }
}

/// Records read at most per bus read of [`scan`] and [`read_until`].
const READ_CHUNK: u64 = 4096;

/// Reads `topic/partition` from `*position` up to `until` (exclusive) or
/// the end, handing each record to `apply`, in reads no larger than what is
/// left: a short range (a reference watermark, a replayed batch of two
/// claims) reads only its records. `*position` ends past the last record
/// handed over.
pub fn read_until(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    position: &mut u64,
    until: Option<u64>,
    mut apply: impl FnMut(Record),
) -> Result<(), BusError> {
    loop {
        let max = until.map_or(READ_CHUNK, |u| u.saturating_sub(*position).min(READ_CHUNK));
        if max == 0 {
            return Ok(());
        }
        let records = bus.read(topic, partition, *position, max as usize)?;
        let Some(last) = records.last() else {
            return Ok(());
        };
        // Past a compaction gap the chunk may run beyond `until`: those
        // records wait for a later watermark.
        *position = until.map_or(last.offset + 1, |u| u.min(last.offset + 1));
        for r in records
            .into_iter()
            .filter(|r| until.is_none_or(|u| r.offset < u))
        {
            apply(r);
        }
    }
}

/// Waits, up to `timeout`, until every partition of `topics` is
/// [`Bus::settled`]; returns those still not settled then. A topic that
/// does not exist has nothing to wait for.
pub fn await_settled(
    bus: &dyn Bus,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, u32)>, BusError> {
    let deadline = Instant::now() + timeout;
    let mut waiting = Vec::new();
    for topic in topics {
        let partitions = match bus.partition_count(topic) {
            Err(BusError::UnknownTopic(_)) => 0,
            other => other?,
        };
        for partition in 0..partitions {
            waiting.push((topic.to_string(), partition));
        }
    }
    loop {
        let mut still = Vec::new();
        for (topic, partition) in waiting {
            if !bus.settled(&topic, partition)? {
                still.push((topic, partition));
            }
        }
        if still.is_empty() || Instant::now() >= deadline {
            return Ok(still);
        }
        waiting = still;
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub trait Bus: Send + Sync {
    /// `local:DIR` or `kafka://HOST:PORT`, for logs and reports.
    fn describe(&self) -> String;
    fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError>;
    fn partition_count(&self, topic: &str) -> Result<u32, BusError>;
    /// The end of what a reader can read: the offset after the last
    /// committed record (on Kafka the last stable offset, which a
    /// transaction still open holds back).
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, BusError>;
    /// Whether everything written to the partition so far is readable: no
    /// transaction writing to it is open or waiting for its markers. Kafka
    /// answers a transaction's commit before it writes the commit markers,
    /// so just after an upstream commit a reader at [`Bus::end_offset`] may
    /// still have records to come. A bus whose commits are readable when
    /// they return (the local log) is always settled.
    fn settled(&self, topic: &str, partition: u32) -> Result<bool, BusError> {
        let _ = (topic, partition);
        Ok(true)
    }
    /// Up to `max` records from `from`, directly (no group).
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, BusError>;
    fn producer(&self) -> Result<Box<dyn BusProducer>, BusError>;
    fn consumer(&self, group: &str) -> Result<Box<dyn BusConsumer>, BusError>;
    /// A consumer that is member `index` of the `members` this process runs
    /// in `group` (a stage's workers). By default the group protocol shares
    /// the partitions out, as it does between processes (Kafka).
    fn member(
        &self,
        group: &str,
        index: u32,
        members: u32,
    ) -> Result<Box<dyn BusConsumer>, BusError> {
        let _ = (index, members);
        self.consumer(group)
    }
    /// The offset a group committed for a partition, if any.
    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, BusError>;
    /// The largest record (key + value) this bus's producers take; a larger
    /// one is refused with [`BusError::TooLarge`]. A stage that writes an
    /// input's bytes back (a dead letter) cuts them to fit, or the refused
    /// letter would stop the stage at the same input on every restart.
    fn max_record_bytes(&self) -> usize;
    /// A producer fenced by `owner`: records sent through it are held until
    /// `flush` commits them all at once, and a later producer of the same
    /// owner fences this one (its writes are refused, its open commit
    /// aborted) before taking over. `None` where one owner at a time is the
    /// bus's own guarantee (the local log's lock).
    fn fenced_producer(&self, owner: &str) -> Result<Option<Box<dyn BusProducer>>, BusError> {
        let _ = owner;
        Ok(None)
    }
}

pub trait BusProducer: Send {
    /// Queues a record for an explicit partition, or a tombstone if `value`
    /// is `None` (Kafka's null value, or the local log's frame without
    /// value): a compacted topic drops the key's earlier records, then in
    /// time the tombstone itself.
    fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp_millis: i64,
    ) -> Result<(), BusError>;
    fn send(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: &[u8],
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        self.produce(topic, partition, key, Some(value), timestamp_millis)
    }
    fn send_tombstone(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        self.produce(topic, partition, key, None, timestamp_millis)
    }
    /// Returns once every queued record is acknowledged (durable).
    fn flush(&mut self) -> Result<(), BusError>;
    /// The offset after the last record this producer has had acknowledged
    /// on `topic/partition` (`None` before any): the partition's end when it
    /// is the only writer, and never past it otherwise. Known without asking
    /// the broker, which costs a round trip per call on Kafka.
    fn acknowledged_end(&self, topic: &str, partition: u32) -> Option<u64>;
}

pub trait BusConsumer: Send {
    fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError>;
    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Polled, BusError>;
    fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), BusError>;
    /// Commits next-offsets (informational: the seek position is the store's).
    fn commit(&mut self, offsets: &[(String, u32, u64)]) -> Result<(), BusError>;
    /// The offset this consumer reads next on an assigned partition, when it
    /// can be past the last record it delivered (Kafka's transaction markers
    /// take offsets and are never delivered). `None` otherwise.
    fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        let _ = (topic, partition);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_takes_a_local_or_a_kafka_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("local:{}", dir.path().display());
        assert_eq!(open(&url).unwrap().describe(), url);
        let _owner = open(&url).unwrap();
        assert!(matches!(open(&url), Err(BusError::Busy(_))), "one owner");
        // Refused before any connection.
        for bad in ["file:/tmp/x", "kafka://", "kafka://host", "kafka://h:1/a b"] {
            assert!(matches!(open(bad), Err(BusError::Config(_))), "{bad}");
        }
        #[cfg(not(feature = "kafka"))]
        assert!(
            matches!(open("kafka://127.0.0.1:9092"), Err(BusError::Config(e)) if e.contains("`kafka` feature"))
        );
    }
}
