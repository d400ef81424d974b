//! The producer: idempotent, `acks=all`, an explicit partition on every
//! record. `send` queues; `flush` returns once every queued record has its
//! delivery report, and fails if any of them failed: a record the broker did
//! not take is never passed over in silence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bus::{BrokerErrorKind, BusError, BusProducer};
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::types::RDKafkaErrorCode;

use super::error::{self, broker};
use super::{FRAME_ROOM, Inner, LogContext, MAX_RECORD_BYTES, base_config, lock, partition_i32};

/// Deliveries give up after this long (then the report says why)...
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// ...so a flush sees every report well before its own limit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `send` waits for room in a full local queue.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(90);
/// Failed deliveries quoted in the error (all are counted).
const QUOTED_FAILURES: usize = 3;

#[derive(Default)]
struct Failures {
    count: u64,
    quoted: Vec<String>,
    /// One of them is not retriable.
    fatal: bool,
}

struct DeliveryContext {
    log: LogContext,
    failures: Mutex<Failures>,
    /// Offset after the last acknowledged record, by broker topic name and
    /// partition.
    acknowledged: Mutex<HashMap<(String, i32), i64>>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let mut acknowledged = lock(&self.acknowledged);
            let end = acknowledged
                .entry((message.topic().to_string(), message.partition()))
                .or_insert(0);
            *end = (*end).max(message.offset() + 1);
        }
        if let Err((error, message)) = result {
            let mut failures = lock(&self.failures);
            failures.count += 1;
            failures.fatal |= error::kind_of(error.rdkafka_error_code()) == BrokerErrorKind::Fatal;
            if failures.quoted.len() < QUOTED_FAILURES {
                failures.quoted.push(format!(
                    "{}/{}: {error}",
                    message.topic(),
                    message.partition()
                ));
            }
        }
    }
}

pub(super) struct KafkaProducer {
    inner: Arc<Inner>,
    producer: BaseProducer<DeliveryContext>,
    /// A transactional producer's state: `Some(open)` once initialised.
    transaction: Option<bool>,
}

/// A transaction left open longer than this (its owner paused or killed)
/// is aborted by the broker, so the partitions' readers are not held at
/// its first record for long. Under the readers' stall limit (read.rs).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(20);
/// `init_transactions` and `commit_transaction`: bounded like a flush.
const TRANSACTION_CALL_TIMEOUT: Duration = FLUSH_TIMEOUT;
/// How long the delivery reports of purged records are served before an
/// abort: purging fails them at once, so this bounds a stuck broker only.
const PURGE_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaProducer {
    /// A producer whose writes are transactions under `id`: a later
    /// producer of the same id fences this one (its open transaction
    /// aborted, its later writes refused), which is how a paused owner of a
    /// partition is kept from writing after another has taken it over.
    pub(super) fn transactional(inner: Arc<Inner>, id: &str) -> Result<KafkaProducer, BusError> {
        let mut producer = KafkaProducer::create(inner, Some(id))?;
        producer
            .producer
            .init_transactions(TRANSACTION_CALL_TIMEOUT)
            .map_err(|e| broker(format!("init transactions of {id}"), e))?;
        producer.transaction = Some(false);
        Ok(producer)
    }

    pub(super) fn new(inner: Arc<Inner>) -> Result<KafkaProducer, BusError> {
        KafkaProducer::create(inner, None)
    }

    fn create(
        inner: Arc<Inner>,
        transactional_id: Option<&str>,
    ) -> Result<KafkaProducer, BusError> {
        let mut config = base_config(&inner.bootstrap, "clearing-producer");

        // Every option that matters is spelled out, not left to defaults.
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("retries", "2147483647")
            .set("retry.backoff.ms", "100")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("batch.size", "1000000")
            .set("compression.type", "none")
            .set(
                "message.max.bytes",
                (MAX_RECORD_BYTES + FRAME_ROOM).to_string(),
            )
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            )
            .set("request.timeout.ms", "30000")
            .set("queue.buffering.max.messages", "100000")
            .set("queue.buffering.max.kbytes", "1048576");
        if let Some(id) = transactional_id {
            // A delivery may not outlive its transaction.
            let timeout = TRANSACTION_TIMEOUT.as_millis().to_string();
            config
                .set("transactional.id", id)
                .set("transaction.timeout.ms", &timeout)
                .set("message.timeout.ms", &timeout);
        }
        let producer = config
            .create_with_context(DeliveryContext {
                log: super::LogContext::from_env(),
                failures: Mutex::new(Failures::default()),
                acknowledged: Mutex::new(HashMap::new()),
            })
            .map_err(|e| broker("producer", e))?;
        Ok(KafkaProducer {
            inner,
            producer,
            transaction: None,
        })
    }

    /// `error`, unless this transactional producer has been fenced. A fenced
    /// producer fails later calls with unrelated codes (a send says
    /// "Erroneous state"), so the fatal error is asked first, then an abort
    /// of the open transaction: its outputs must not be committed anyway,
    /// since the caller gives up the batch, and the abort's answer says
    /// whether a newer owner holds the id.
    fn fenced_or(&mut self, error: BusError) -> BusError {
        if self.transaction.is_none() {
            return error;
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            let message = format!("{error} (fatal: {code:?}: {reason})");
            return if error::is_fence(code) {
                BusError::Fenced(message)
            } else {
                error::failed(BrokerErrorKind::Fatal, message)
            };
        }
        if self.transaction == Some(true) {
            self.transaction = Some(false);
            // An abort waits for every outstanding record's delivery report,
            // and a BaseProducer serves those only when polled, so the
            // records are purged and their reports served first.
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            let drained_by = Instant::now() + PURGE_DRAIN_TIMEOUT;
            while self.producer.in_flight_count() > 0 && Instant::now() < drained_by {
                self.producer.poll(Duration::from_millis(20));
            }
            if let Err(e) = self.producer.abort_transaction(TRANSACTION_CALL_TIMEOUT) {
                // Fatal whatever the abort's code: this producer takes the
                // transaction as ended, and its next batch would find it open.
                return match broker("abort", e) {
                    BusError::Fenced(why) => BusError::Fenced(format!("{error} ({why})")),
                    other if matches!(error, BusError::Fenced(_)) => {
                        BusError::Fenced(format!("{error} ({other})"))
                    }
                    other => error::failed(BrokerErrorKind::Fatal, format!("{error} ({other})")),
                };
            }
        }
        error
    }

    /// Commits the open transaction (which flushes it). A failed commit is
    /// aborted where it can be; fenced, the producer is done.
    fn commit(&mut self) -> Result<(), BusError> {
        if self.transaction != Some(true) {
            return Ok(());
        }
        self.transaction = Some(false);
        let committed = self.producer.commit_transaction(TRANSACTION_CALL_TIMEOUT);
        self.producer.poll(Duration::ZERO);
        if let Err(e) = committed {
            let requires_abort = matches!(&e, KafkaError::Transaction(t) if t.txn_requires_abort());
            let error = broker("commit", e);
            if matches!(error, BusError::Fenced(_)) {
                return Err(error);
            }
            if requires_abort {
                self.transaction = Some(true);
            }
            return Err(self.fenced_or(error));
        }
        Ok(())
    }
}

impl BusProducer for KafkaProducer {
    /// Queues a record, or a tombstone (no payload: Kafka's null) if
    /// `value` is `None`.
    fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        let size = key.len() + value.map_or(0, <[u8]>::len);
        if size > MAX_RECORD_BYTES {
            return Err(BusError::TooLarge(size));
        }
        let name = self.inner.check(topic, partition)?;
        if self.transaction == Some(false) {
            self.producer
                .begin_transaction()
                .map_err(|e| broker("begin transaction", e))?;
            self.transaction = Some(true);
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&name)
            .partition(partition_i32(partition)?)
            .key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        // Kafka has no timestamp 0 or below: librdkafka stamps those with
        // the time of sending.
        if timestamp_millis > 0 {
            record = record.timestamp(timestamp_millis);
        }
        let started = Instant::now();
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < QUEUE_FULL_TIMEOUT =>
                {
                    record = back;
                    // Serving delivery reports makes room.
                    self.producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => {
                    return Err(self.fenced_or(broker(format!("send to {name}/{partition}"), e)));
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BusError> {
        if self.transaction.is_some() {
            self.commit()?;
        }
        let flushed = self.producer.flush(FLUSH_TIMEOUT);
        self.producer.poll(Duration::ZERO);
        let failures = std::mem::take(&mut *lock(&self.producer.context().failures));
        if failures.count > 0 {
            let kind = if failures.fatal {
                BrokerErrorKind::Fatal
            } else {
                BrokerErrorKind::Retriable
            };
            let message = format!(
                "{} records not delivered: {}",
                failures.count,
                failures.quoted.join("; ")
            );
            return Err(self.fenced_or(error::failed(kind, message)));
        }
        match flushed {
            Ok(()) => Ok(()),
            Err(e) => {
                let unacknowledged = self.producer.in_flight_count();
                let error = broker(
                    format!("flush: {unacknowledged} records still unacknowledged"),
                    e,
                );
                Err(self.fenced_or(error))
            }
        }
    }

    fn acknowledged_end(&self, topic: &str, partition: u32) -> Option<u64> {
        let key = (
            self.inner.names.topic(topic),
            i32::try_from(partition).ok()?,
        );
        lock(&self.producer.context().acknowledged)
            .get(&key)
            .and_then(|end| u64::try_from(*end).ok())
    }
}
