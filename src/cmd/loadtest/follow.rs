//! The reader (`lt-reader`): every decision on `fse.decided` and
//! `fse.rejected`, its latency from the feeder's side table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clearing_pipeline::bus::{Bus, Record};
use clearing_pipeline::events::codec::{AvroField, Decoder};
use clearing_pipeline::events::model::EventHeader;
use clearing_pipeline::events::registry::split_single;
use clearing_pipeline::runtime::topics;

use super::live::{LATENCY_MAX_US, Live, lock};

/// Follows the decisions from the topics' current ends until `stop`, then
/// makes one last pass.
pub fn follow(bus: &dyn Bus, live: &Live, warm_up: Duration, stop: &AtomicBool) -> Result<()> {
    let mut positions: Vec<(&'static str, u32, u64)> = Vec::new();
    for topic in [topics::FSE_DECIDED, topics::FSE_REJECTED] {
        for partition in 0..bus.partition_count(topic)? {
            positions.push((topic, partition, bus.end_offset(topic, partition)?));
        }
    }
    loop {
        // Read the stop flag first: a pass after it saw every decision written.
        let last_pass = stop.load(Ordering::Acquire);
        let mut any = false;
        for (topic, partition, position) in positions.iter_mut() {
            loop {
                let records = bus.read(topic, *partition, *position, 4096)?;
                let Some(last) = records.last() else { break };
                *position = last.offset + 1;
                any = true;
                count(live, topic, &records, warm_up);
            }
        }
        if last_pass {
            return Ok(());
        }
        if !any {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Counts decisions read from `topic` and records their latencies.
fn count(live: &Live, topic: &str, records: &[Record], warm_up: Duration) {
    let now = Instant::now();
    let steady_from = lock(&live.first_sent).map(|first| first + warm_up);
    let latencies = latencies(live, records, now, steady_from);
    {
        let (mut all, mut interval) = (lock(&live.latency), lock(&live.interval));
        let mut steady = lock(&live.latency_steady);
        for (us, after_warm_up) in latencies {
            let _ = all.record(us);
            let _ = interval.record(us);
            if after_warm_up {
                let _ = steady.record(us);
            }
        }
    }
    let counter = if topic == topics::FSE_DECIDED {
        &live.paid
    } else {
        &live.rejected
    };
    counter.fetch_add(records.len() as u64, Ordering::Relaxed);
    *lock(&live.last_outcome) = Some(now);
    if let Some(times) = &live.read_times {
        lock(times).push((live.decided(), now));
    }
}

/// Each decision's latency (µs) and whether its claim started after the
/// warm-up, its start taken from the side table; a decision the feeder
/// never sent is counted as unmatched.
fn latencies(
    live: &Live,
    records: &[Record],
    now: Instant,
    steady_from: Option<Instant>,
) -> Vec<(u64, bool)> {
    let mut latencies = Vec::with_capacity(records.len());
    let mut table = lock(&live.sent);
    for record in records {
        let start = correlation_id(&record.value).and_then(|id| {
            let queue = table.get_mut(&id)?;
            let start = queue.pop_front();
            if queue.is_empty() {
                table.remove(&id);
            }
            start
        });
        match start {
            Some(start) => latencies.push((
                u64::try_from(now.saturating_duration_since(start).as_micros())
                    .unwrap_or(u64::MAX)
                    .clamp(1, LATENCY_MAX_US),
                steady_from.is_some_and(|from| start >= from),
            )),
            None => {
                live.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    latencies
}

/// The FSE id (correlation id) of a decision, from its header alone.
fn correlation_id(value: &[u8]) -> Option<String> {
    let (_, body) = split_single(value).ok()?;
    <EventHeader as AvroField>::decode_field(&mut Decoder::new(body))
        .ok()
        .map(|h| h.correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_no_event_give_no_fse_id() {
        // The real headers are covered end to end (tests/loadtest.rs: every
        // decision matched, none unmatched).
        assert_eq!(correlation_id(b""), None);
        assert_eq!(
            correlation_id(&[0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]),
            None
        );
    }
}
