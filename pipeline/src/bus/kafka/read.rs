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

/// What a read asks for: `[from, high)` of a partition, at most `max`
/// records (`from < high`).
pub(super) struct Span<'a> {
    /// The topic's name on the broker, and the pipeline's.
    pub(super) name: &'a str,
    pub(super) logical: &'a str,
    pub(super) partition: u32,
    pub(super) from: u64,
    pub(super) max: usize,
    /// The high watermark when the read started.
    pub(super) high: u64,
}

impl Pool {
    pub(super) fn new(bootstrap: &str) -> Pool {
        Pool {
            bootstrap: bootstrap.to_string(),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn read(&self, span: &Span<'_>) -> Result<Vec<Record>, BusError> {
        let mut reader = self.take(span)?;
        let result = reader.read(span);
        if result.is_err() {
            reader.at = None;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(reader);
        }
        result
    }

    /// The idle reader positioned at the span, else any idle one, else a
    /// new one.
    fn take(&self, span: &Span<'_>) -> Result<Reader, BusError> {
        {
            let mut idle = lock(&self.idle);
            if let Some(i) = idle.iter().position(|r| r.is_at(span)) {
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
    /// Whether the consumer's queue continues where the span starts.
    fn is_at(&self, span: &Span<'_>) -> bool {
        self.at
            .as_ref()
            .is_some_and(|(n, p, o)| n == span.name && *p == span.partition && *o == span.from)
    }

    /// The consumer's position on `name/partition`: past the markers it has
    /// skipped.
    fn position(&self, name: &str, partition: i32) -> Option<u64> {
        let positions = self.consumer.position().ok()?;
        match positions.find_partition(name, partition)?.offset() {
            Offset::Offset(o) => u64::try_from(o).ok(),
            _ => None,
        }
    }

    /// Assigns the span's partition at its start, unless the consumer's
    /// queue continues there already.
    fn position_at(&mut self, span: &Span<'_>) -> Result<(), BusError> {
        if self.is_at(span) {
            return Ok(());
        }
        self.at = None;
        let (name, partition) = (span.name, span.partition);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            name,
            partition_i32(partition)?,
            Offset::Offset(offset_i64(span.from)?),
        )
        .map_err(|e| broker(format!("read {name}/{partition}"), e))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| broker(format!("read {name}/{partition}"), e))
    }

    fn read(&mut self, span: &Span<'_>) -> Result<Vec<Record>, BusError> {
        let (name, partition, from) = (span.name, span.partition, span.from);
        let p = partition_i32(partition)?;
        self.position_at(span)?;
        // Offsets, not records: transaction markers take offsets and are
        // never delivered, so the reader's position says how far it came.
        let max = span.max;
        let end = span
            .high
            .min(from.saturating_add(u64::try_from(max).unwrap_or(u64::MAX)));
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
                        topic: span.logical.to_string(),
                        partition,
                        offset,
                        timestamp_millis: message.timestamp().to_millis().unwrap_or(0),
                        key: message.key().unwrap_or_default().to_vec(),
                        value: message.payload().unwrap_or_default().to_vec(),
                        tombstone: message.payload().is_none(),
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
                "read {name}/{partition} from {from} (high watermark {}): no record within {STALL:?}{}",
                span.high,
                last_error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
            return Err(error::failed(BrokerErrorKind::Retriable, message));
        }
        self.at = Some((name.to_string(), partition, next));
        Ok(out)
    }
}
