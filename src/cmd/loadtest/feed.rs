//! The feeder (`lt-feeder`): the corpus onto `fse.submitted`, paced by the
//! plan, each claim's start time in the side table before it can be read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clearing_pipeline::bus::{Bus, BusProducer};

use super::corpus::{Corpus, WireReader, WireRecord};
use super::live::{Live, lock};
use super::plan::Plan;

/// Flat out, and the most a fixed-rate feeder holds before a flush.
const FEED_CHUNK: usize = 1000;
/// A fixed-rate feeder flushes at least this often.
const FEED_FLUSH_EVERY: Duration = Duration::from_millis(5);

pub fn feed(
    bus: &dyn Bus,
    corpus: &Corpus,
    plan: &Plan,
    partitions: u32,
    live: &Live,
    stop: &AtomicBool,
) -> Result<()> {
    let mut feeder = Feeder {
        producer: bus.producer()?,
        wire: corpus.wire()?,
        corpus,
        plan,
        partitions,
        live,
        started: Instant::now(),
        sent: 0,
        unflushed: 0,
        last_flush: Instant::now(),
        batch: Vec::with_capacity(FEED_CHUNK),
    };
    *lock(&live.first_sent) = Some(feeder.started);
    while !stop.load(Ordering::Relaxed) {
        let elapsed = feeder.started.elapsed();
        if !feeder.more_to_send(elapsed) {
            break;
        }
        feeder.take(feeder.due(elapsed))?;
        feeder.send()?;
        feeder.flush_when_due()?;
        feeder.pace();
    }
    feeder.flush()
}

struct Feeder<'a> {
    producer: Box<dyn BusProducer>,
    wire: WireReader,
    corpus: &'a Corpus,
    plan: &'a Plan,
    partitions: u32,
    live: &'a Live,
    started: Instant,
    /// Claims handed to the producer.
    sent: u64,
    /// Of which not yet flushed (and not yet counted in `live.fed`).
    unflushed: usize,
    last_flush: Instant,
    /// The claims of this turn and their start times.
    batch: Vec<(WireRecord, Instant)>,
}

impl Feeder<'_> {
    fn limit(&self) -> u64 {
        self.plan.claims.unwrap_or(u64::MAX)
    }

    fn more_to_send(&self, elapsed: Duration) -> bool {
        let within_time = self.plan.duration.is_none_or(|d| elapsed < d);
        within_time && self.sent < self.limit()
    }

    /// How many claims should have been sent `elapsed` into the run, at most
    /// a chunk more than were.
    fn due(&self, elapsed: Duration) -> u64 {
        let limit = self.limit();
        let due = if self.plan.rate > 0.0 {
            ((elapsed.as_secs_f64() * self.plan.rate) as u64 + 1).min(limit)
        } else {
            (self.sent + FEED_CHUNK as u64).min(limit)
        };
        due.min(self.sent + FEED_CHUNK as u64)
    }

    /// The next claims up to `due`, going round the corpus again at its end.
    fn take(&mut self, due: u64) -> Result<()> {
        self.batch.clear();
        while self.sent + (self.batch.len() as u64) < due {
            let record = match self.wire.next_record()? {
                Some(record) => record,
                None => {
                    self.live.wraps.fetch_add(1, Ordering::Relaxed);
                    self.wire = self.corpus.wire()?;
                    self.wire.next_record()?.context("the corpus is empty")?
                }
            };
            let index = self.sent + self.batch.len() as u64;
            let start = if self.plan.rate > 0.0 {
                self.started + Duration::from_secs_f64(index as f64 / self.plan.rate)
            } else {
                Instant::now()
            };
            self.batch.push((record, start));
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // Into the side table before the records can be read.
        {
            let mut table = lock(&self.live.sent);
            for (record, start) in &self.batch {
                table
                    .entry(record.fse_id.clone())
                    .or_default()
                    .push_back(*start);
            }
        }
        for (record, _) in &self.batch {
            record.send(self.producer.as_mut(), self.partitions)?;
        }
        if let Some((last, _)) = self.batch.last() {
            self.live
                .last_stamp
                .store(last.timestamp, Ordering::Relaxed);
        }
        self.sent += self.batch.len() as u64;
        self.unflushed += self.batch.len();
        Ok(())
    }

    /// Flat out after every chunk; at a rate, once a chunk is held or
    /// [`FEED_FLUSH_EVERY`] has passed.
    fn flush_when_due(&mut self) -> Result<()> {
        if self.unflushed > 0
            && (self.plan.rate <= 0.0
                || self.unflushed >= FEED_CHUNK
                || self.last_flush.elapsed() >= FEED_FLUSH_EVERY)
        {
            self.flush()?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.unflushed > 0 {
            self.producer.flush()?;
            self.live
                .fed
                .fetch_add(self.unflushed as u64, Ordering::Relaxed);
            self.unflushed = 0;
        }
        Ok(())
    }

    /// At a rate, sleeps until the next claim is due (at most
    /// [`FEED_FLUSH_EVERY`], so that held claims are flushed in time).
    fn pace(&self) {
        if self.plan.rate > 0.0 {
            let next = self.started + Duration::from_secs_f64(self.sent as f64 / self.plan.rate);
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(FEED_FLUSH_EVERY);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}
