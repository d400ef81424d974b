//! The producer: idempotent, `acks=all`, an explicit partition on every
//! record. `send` queues; `flush` returns once every queued record has its
//! delivery report, and fails if any of them failed: a record the broker did
//! not take is never passed over in silence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clearing_pipeline::bus::{BusError, BusProducer};
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::{
    FRAME_ROOM, Inner, LogContext, MAX_RECORD_BYTES, base_config, broker, lock, partition_i32,
};

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
}

impl KafkaProducer {
    pub(super) fn new(inner: Arc<Inner>) -> Result<KafkaProducer, BusError> {
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
        let producer = config
            .create_with_context(DeliveryContext {
                log: super::LogContext::from_env(),
                failures: Mutex::new(Failures::default()),
                acknowledged: Mutex::new(HashMap::new()),
            })
            .map_err(|e| broker("producer", e))?;
        Ok(KafkaProducer { inner, producer })
    }
}

impl BusProducer for KafkaProducer {
    fn send(
        &mut self,
        topic: &str,
        partition: u32,
        key: &[u8],
        value: &[u8],
        timestamp_millis: i64,
    ) -> Result<(), BusError> {
        if key.len() + value.len() > MAX_RECORD_BYTES {
            return Err(BusError::TooLarge(key.len() + value.len()));
        }
        let name = self.inner.check(topic, partition)?;
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&name)
            .partition(partition_i32(partition)?)
            .key(key)
            .payload(value);
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
                Err((e, _)) => return Err(broker(format!("send to {name}/{partition}"), e)),
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BusError> {
        let flushed = self.producer.flush(FLUSH_TIMEOUT);
        self.producer.poll(Duration::ZERO);
        let failures = std::mem::take(&mut *lock(&self.producer.context().failures));
        if failures.count > 0 {
            return Err(BusError::Broker(format!(
                "{} records not delivered: {}",
                failures.count,
                failures.quoted.join("; ")
            )));
        }
        flushed.map_err(|e| {
            broker(
                format!(
                    "flush: {} records still unacknowledged",
                    self.producer.in_flight_count()
                ),
                e,
            )
        })
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
