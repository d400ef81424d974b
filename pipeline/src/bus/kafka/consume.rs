//! Group consumers: the assignment is handed to the caller before any record
//! of it, and fetching starts only once the caller has positioned it.
//!
//! librdkafka runs the rebalance callback inside `poll`. On an assignment the
//! callback ([`GroupContext::rebalance`]) does *not* assign: it records the
//! partitions, and [`KafkaConsumer::poll`] returns them in
//! `Polled::assignment` with no records. The caller restores state and
//! `seek`s each new partition to its store's applied offset — positions this
//! consumer keeps. The next `poll` assigns every partition at once with its
//! explicit start offset (the committed one for a partition never sought),
//! so no record is fetched from a position the caller did not choose, and no
//! seek races a fetch that has not started (librdkafka refuses to seek a
//! partition it is not yet fetching). Partitions kept across a rebalance
//! carry their position (the offset after the last record returned).
//!
//! The protocol is the eager `range` assignor: a revocation unassigns at
//! once (in the callback); a lost assignment (the member was evicted) is
//! reported as an empty assignment first, so the caller drops the state of
//! partitions someone else may have processed since.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bus::{Assignment, BrokerErrorKind, BusConsumer, BusError, Polled, Record};
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use super::error::{self, broker};
use super::{Inner, LogContext, base_config, fetch_settings, lock, offset_i64, partition_i32};

/// A member that stops heartbeating (killed, or paused) is evicted after
/// this long and its partitions move to the survivors: a third of Apache
/// Kafka's default of 45 s, so a failover takes seconds, and well above a
/// batch's commit (a few hundred ms) so a busy member is never evicted.
/// This per-member setting is one reason the group runs the classic
/// protocol: under KIP-848 (`group.protocol=consumer`) the session timeout
/// is the broker's (`group.consumer.session.timeout.ms`, 45 s by default),
/// and the eager assign-at-poll below would have to become incremental.
const SESSION_TIMEOUT_MS: u32 = 15000;
const HEARTBEAT_INTERVAL_MS: u32 = 1000;
/// Transient consumer errors are printed at most this often.
const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// A rebalance, as the callback saw it.
enum Event {
    Assigned { partitions: Vec<(String, i32)> },
    Revoked { lost: bool },
}

struct GroupContext {
    log: LogContext,
    events: Mutex<Vec<Event>>,
    /// Set while the consumer closes: assignments are then applied at once
    /// (librdkafka treats them as unassignments), so the close completes.
    closing: std::sync::atomic::AtomicBool,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = consumer.assign(tpl);
                return;
            }
            let partitions = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            lock(&self.events).push(Event::Assigned { partitions });
        } else {
            // A revocation, or a rebalance error: stop fetching now.
            let lost = err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                || consumer.assignment_lost();
            if let Err(e) = consumer.unassign() {
                self.log.error(e, "unassign on revocation");
            }
            lock(&self.events).push(Event::Revoked { lost });
        }
    }
}

pub(super) struct KafkaConsumer {
    inner: Arc<Inner>,
    group: String,
    consumer: BaseConsumer<GroupContext>,
    /// The assignment last handed to the caller: broker (topic, partition)
    /// → next offset to return (`None`: the committed offset).
    owned: BTreeMap<(String, i32), Option<i64>>,
    /// Assignments not yet handed to the caller, oldest first.
    reports: VecDeque<Vec<(String, i32)>>,
    /// librdkafka waits for `assign` of the latest assignment.
    awaiting_assign: bool,
    /// librdkafka fetches `owned`.
    fetching: bool,
    /// A `seek` moved a partition that is being fetched: assign again.
    reposition: bool,
    last_error_report: Option<Instant>,
    /// Broker names of the subscribed topics.
    subscribed: Vec<String>,
}

/// A group member's client: `close` (on drop) leaves the group.
fn create(inner: &Inner, group: &str) -> Result<BaseConsumer<GroupContext>, BusError> {
    let mut config = base_config(&inner.bootstrap, "clearing-consumer");
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Classic protocol, eager `range` assignor: co-partitioned topics
        // (same count, same key) get the same partitions on one member.
        .set("group.protocol", "classic")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS.to_string())
        .set("max.poll.interval.ms", "300000")
        // Stages write in transactions: an aborted one (a fenced owner's)
        // is never read, and markers are skipped.
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    fetch_settings(&mut config);
    config
        .create_with_context(GroupContext {
            log: LogContext::from_env(),
            events: Mutex::new(Vec::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
        })
        .map_err(|e| broker(format!("consumer of group {group}"), e))
}

impl KafkaConsumer {
    pub(super) fn new(inner: Arc<Inner>, group: &str) -> Result<KafkaConsumer, BusError> {
        let group = inner.names.group(group);
        let consumer = create(&inner, &group)?;
        Ok(KafkaConsumer {
            inner,
            group,
            consumer,
            owned: BTreeMap::new(),
            reports: VecDeque::new(),
            awaiting_assign: false,
            fetching: false,
            reposition: false,
            last_error_report: None,
            subscribed: Vec::new(),
        })
    }

    /// Moves the rebalances the callback saw into `reports`; true if any.
    fn drain_events(&mut self) -> bool {
        let events = std::mem::take(&mut *lock(&self.consumer.context().events));
        let mut reported = false;
        for event in events {
            match event {
                Event::Assigned { partitions } => {
                    self.reports.push_back(partitions);
                    self.awaiting_assign = true;
                    reported = true;
                }
                Event::Revoked { lost } => {
                    self.awaiting_assign = false;
                    self.fetching = false;
                    if lost {
                        self.reports.push_back(Vec::new());
                        reported = true;
                    }
                }
            }
        }
        reported
    }

    /// Hands the oldest pending assignment to the caller.
    fn next_report(&mut self) -> Option<Assignment> {
        let partitions = self.reports.pop_front()?;
        let owned = partitions
            .into_iter()
            .map(|key| {
                let position = self.owned.get(&key).copied().flatten();
                (key, position)
            })
            .collect();
        self.owned = owned;
        // One line per rebalance: operators (and tests) see who owns what.
        let list: Vec<String> = self
            .owned
            .keys()
            .map(|(topic, p)| format!("{}/{p}", self.inner.names.logical(topic)))
            .collect();
        eprintln!("kafka: group {} assigned [{}]", self.group, list.join(" "));
        Some(Assignment {
            partitions: self
                .owned
                .keys()
                .map(|(topic, p)| {
                    (
                        self.inner.names.logical(topic).to_string(),
                        u32::try_from(*p).unwrap_or(0),
                    )
                })
                .collect(),
        })
    }

    /// Assigns `owned` with its positions (librdkafka starts fetching).
    fn assign(&mut self) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::with_capacity(self.owned.len());
        for ((topic, partition), position) in &self.owned {
            let offset = position.map_or(Offset::Stored, Offset::Offset);
            tpl.add_partition_offset(topic, *partition, offset)
                .map_err(|e| broker(format!("assign {topic}/{partition}"), e))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| broker(format!("assign in group {}", self.group), e))?;
        self.awaiting_assign = false;
        self.fetching = true;
        self.reposition = false;
        Ok(())
    }

    fn report_error(&mut self, error: &KafkaError) {
        if self
            .last_error_report
            .is_none_or(|t| t.elapsed() >= ERROR_REPORT_INTERVAL)
        {
            self.last_error_report = Some(Instant::now());
            eprintln!("kafka consumer of group {}: {error} (retrying)", self.group);
        }
    }
}

impl BusConsumer for KafkaConsumer {
    fn subscribe(&mut self, topics: &[&str]) -> Result<(), BusError> {
        let mut names = Vec::with_capacity(topics.len());
        for topic in topics {
            self.inner.partition_count(topic)?;
            names.push(self.inner.names.topic(topic));
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&refs)
            .map_err(|e| broker(format!("subscribe group {}", self.group), e))?;
        self.subscribed = names;
        Ok(())
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Polled, BusError> {
        self.drain_events();
        if let Some(assignment) = self.next_report() {
            return Ok(Polled {
                records: Vec::new(),
                assignment: Some(assignment),
            });
        }
        if self.awaiting_assign || (self.fetching && self.reposition) {
            self.assign()?;
        }
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            let wait = if records.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let mut got_message = false;
            match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    got_message = true;
                    let key = (message.topic().to_string(), message.partition());
                    let offset = message.offset();
                    // Only records of the assignment the caller knows, in order.
                    if self.fetching
                        && let Some(position) = self.owned.get_mut(&key)
                        && position.is_none_or(|p| offset >= p)
                    {
                        *position = Some(offset + 1);
                        records.push(Record {
                            topic: self.inner.names.logical(&key.0).to_string(),
                            partition: u32::try_from(key.1).unwrap_or(0),
                            offset: u64::try_from(offset).unwrap_or(0),
                            timestamp_millis: message.timestamp().to_millis().unwrap_or(0),
                            key: message.key().unwrap_or_default().to_vec(),
                            value: message.payload().unwrap_or_default().to_vec(),
                            tombstone: message.payload().is_none(),
                        });
                    }
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    let message = format!("consumer of group {}: {code}", self.group);
                    return Err(error::failed(BrokerErrorKind::Fatal, message));
                }
                Some(Err(e)) => self.report_error(&e),
                None => {}
            }
            if self.drain_events() {
                // A rebalance: hand it over with what came before it.
                let assignment = self.next_report();
                return Ok(Polled {
                    records,
                    assignment,
                });
            }
            if records.len() >= max_records
                || (!got_message && (!records.is_empty() || Instant::now() >= deadline))
            {
                return Ok(Polled {
                    records,
                    assignment: None,
                });
            }
        }
    }

    fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), BusError> {
        let key = (self.inner.names.topic(topic), partition_i32(partition)?);
        let Some(position) = self.owned.get_mut(&key) else {
            return Err(BusError::Config(format!(
                "seek {topic}/{partition}: not assigned to this consumer (group {})",
                self.group
            )));
        };
        *position = Some(offset_i64(offset)?);
        if self.fetching {
            self.reposition = true;
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(String, u32, u64)]) -> Result<(), BusError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (topic, partition, offset) in offsets {
            tpl.add_partition_offset(
                &self.inner.names.topic(topic),
                partition_i32(*partition)?,
                Offset::Offset(offset_i64(*offset)?),
            )
            .map_err(|e| broker("commit", e))?;
        }
        // Async: informational, so no batch waits a round trip for it.
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => Ok(()),
            // The commit is informational (positions come from the stores):
            // one refused because the group is rebalancing is not a failure.
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::State,
            )) => Ok(()),
            Err(e) => Err(broker(format!("commit of group {}", self.group), e)),
        }
    }

    fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.app_position(topic, partition)
    }
}

impl KafkaConsumer {
    fn app_position(&self, topic: &str, partition: u32) -> Option<u64> {
        let name = self.inner.names.topic(topic);
        let p = i32::try_from(partition).ok()?;
        let positions = self.consumer.position().ok()?;
        match positions.find_partition(&name, p)?.offset() {
            Offset::Offset(o) => u64::try_from(o).ok(),
            _ => None,
        }
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.consumer
            .context()
            .closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
