//! Direct reads (`Bus::read`): group-less positions on consumers that are
//! assigned one partition at a time, never subscribed, never committing.
//!
//! A read stops at `max` records or at the high watermark known when it
//! started, so it never waits on an empty tail. Readers are pooled: a scan
//! that goes on from where the previous read stopped (changelog restore,
//! output scans) finds its reader still assigned there, with the next records
//! already prefetched.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bus::{BrokerErrorKind, BusError, Record};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::error::{self, broker};
use super::{LogContext, lock, offset_i64, partition_i32, reader_config};

/// A read that gets nothing at all for this long fails (the records exist:
/// they are below the high watermark).
const STALL: Duration = Duration::from_secs(30);
/// Idle readers kept for reuse.
const MAX_IDLE: usize = 8;
/// The group id readers carry: librdkafka's `assign` needs one. They never
/// join it and never commit.
const READER_GROUP: &str = "clearing.reader";

struct Reader {
    consumer: BaseConsumer<LogContext>,
    /// Where the consumer's queue continues: (broker topic, partition, next offset).
    at: Option<(String, u32, u64)>,
}

pub(super) struct Pool {
    bootstrap: String,
    idle: Mutex<Vec<Reader>>,
}

impl Pool {
    pub(super) fn new(bootstrap: &str) -> Pool {
        Pool {
            bootstrap: bootstrap.to_string(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Reads `[from, high)` of a partition, at most `max` records (`from < high`).
    pub(super) fn read(
        &self,
        name: &str,
        logical: &str,
        partition: u32,
        from: u64,
        max: usize,
        high: u64,
    ) -> Result<Vec<Record>, BusError> {
        let mut reader = self.take(name, partition, from)?;
        let result = reader.read(name, logical, partition, from, max, high);
        if result.is_err() {
            reader.at = None;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(reader);
        }
        result
    }

    /// The idle reader positioned at `from`, else any idle one, else a new one.
    fn take(&self, name: &str, partition: u32, from: u64) -> Result<Reader, BusError> {
        {
            let mut idle = lock(&self.idle);
            let here = idle.iter().position(|r| {
                r.at.as_ref()
                    .is_some_and(|(n, p, o)| n == name && *p == partition && *o == from)
            });
            if let Some(i) = here {
                return Ok(idle.swap_remove(i));
            }
            if let Some(reader) = idle.pop() {
                return Ok(reader);
            }
        }
        let consumer: BaseConsumer<LogContext> = reader_config(&self.bootstrap, Some(READER_GROUP))
            .create_with_context(LogContext::from_env())
            .map_err(|e| broker("reader", e))?;
        Ok(Reader { consumer, at: None })
    }
}

impl Reader {
    /// The consumer's position on `name/partition`: past the markers it has
    /// skipped.
    fn position(&self, name: &str, partition: i32) -> Option<u64> {
        let positions = self.consumer.position().ok()?;
        match positions.find_partition(name, partition)?.offset() {
            Offset::Offset(o) => u64::try_from(o).ok(),
            _ => None,
        }
    }

    fn read(
        &mut self,
        name: &str,
        logical: &str,
        partition: u32,
        from: u64,
        max: usize,
        high: u64,
    ) -> Result<Vec<Record>, BusError> {
        let p = partition_i32(partition)?;
        let positioned = self
            .at
            .as_ref()
            .is_some_and(|(n, q, o)| n == name && *q == partition && *o == from);
        if !positioned {
            self.at = None;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(name, p, Offset::Offset(offset_i64(from)?))
                .map_err(|e| broker(format!("read {name}/{partition}"), e))?;
            self.consumer
                .assign(&tpl)
                .map_err(|e| broker(format!("read {name}/{partition}"), e))?;
        }
        // Offsets, not records: transaction markers take offsets and are
        // never delivered, so the reader's position says how far it came.
        let end = high.min(from.saturating_add(u64::try_from(max).unwrap_or(u64::MAX)));
        let mut out = Vec::with_capacity(usize::try_from(end - from).unwrap_or(4096).min(4096));
        let mut next = from;
        let mut last_progress = Instant::now();
        let mut last_error = None;
        while out.len() < max && next < end {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let Ok(offset) = u64::try_from(message.offset()) else {
                        continue;
                    };
                    // Anything else is left from an earlier assignment.
                    if message.topic() != name || message.partition() != p || offset < next {
                        continue;
                    }
                    next = offset + 1;
                    last_progress = Instant::now();
                    out.push(Record {
                        topic: logical.to_string(),
                        partition,
                        offset,
                        timestamp_millis: message.timestamp().to_millis().unwrap_or(0),
                        key: message.key().unwrap_or_default().to_vec(),
                        value: message.payload().unwrap_or_default().to_vec(),
                    });
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    let message = format!("read {name}/{partition}@{next}: {code}");
                    return Err(error::failed(BrokerErrorKind::Fatal, message));
                }
                // At the end of what is readable (past the last marker, or at
                // an open transaction's first record): how far did it come?
                Some(Err(KafkaError::PartitionEOF(_))) | None => {
                    if let Some(at) = self.position(name, p)
                        && at > next
                    {
                        next = at;
                        last_progress = Instant::now();
                    }
                }
                // Transient (a reconnect, an offset reset): bounded by STALL.
                Some(Err(e)) => last_error = Some(e.to_string()),
            }
            if last_progress.elapsed() >= STALL {
                break;
            }
        }
        if out.is_empty() && next < end {
            // A timeout, as the broker's own are: retriable.
            let message = format!(
                "read {name}/{partition} from {from} (high watermark {high}): no record within {STALL:?}{}",
                last_error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
            return Err(error::failed(BrokerErrorKind::Retriable, message));
        }
        self.at = Some((name.to_string(), partition, next));
        Ok(out)
    }
}
