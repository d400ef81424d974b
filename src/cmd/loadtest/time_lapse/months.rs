//! The time-lapse's run, month by simulated month: the month's claims onto
//! `fse.submitted`, the four stages until each has applied its input to the
//! end, then the measures of that moment.
//!
//! The stages run in drain mode and stop at the end of every month, because
//! a sled store is locked by the process that has it open: counting its keys
//! needs it closed. Memory is therefore that of a process restarted monthly
//! (as a monthly deployment would): the peak RSS while the month is applied,
//! and the stages' own state in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{Datelike, Months, NaiveDate};
use clearing_pipeline::bus::{Bus, BusProducer};
use clearing_pipeline::clock::insurer_date;
use clearing_pipeline::runtime::{self, Progress, Shared, StageKind};
use serde::Serialize;

use super::super::corpus::{WireReader, WireRecord};
use super::super::{inventory, sample};

/// One stage at the end of a month.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: &'static str,
    /// Bytes of the files of its sled store.
    pub disk_bytes: u64,
    /// Bytes of its live keys and values (what sled's files hold, less
    /// their own overhead and the space not yet reclaimed).
    pub content_bytes: u64,
    /// Live keys, and by kind (the prefix before the first '/').
    pub keys: u64,
    pub keys_by_kind: BTreeMap<String, u64>,
    /// Inputs applied since the start.
    pub inputs: u64,
    pub dead_letters: u64,
}

/// The measures at the end of a simulated month.
#[derive(Debug, Clone, Serialize)]
pub struct MonthRow {
    /// `YYYY-MM`.
    pub month: String,
    /// Claims fed this month and since the start.
    pub fed: u64,
    pub claims_so_far: u64,
    /// Peak resident memory of the process while the month was applied.
    pub rss_peak_bytes: u64,
    /// Resident memory once the stages stopped.
    pub rss_after_bytes: u64,
    /// The stages' state held in memory over sled at their last batch.
    pub stage_memory_bytes: u64,
    pub stages: Vec<StageRow>,
    /// Wall seconds the month took to feed and apply.
    pub seconds: f64,
}

/// The first day of the month after `day`'s.
fn next_month(day: NaiveDate) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(day.year(), day.month(), 1)?.checked_add_months(Months::new(1))
}

/// The months of the period, by their first day.
pub fn months(start: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut month = NaiveDate::from_ymd_opt(start.year(), start.month(), 1);
    while let Some(m) = month.filter(|m| *m < end) {
        out.push(m);
        month = next_month(m);
    }
    out
}

/// The run's loop: feeds the corpus month by month, a row each.
pub struct Lapse {
    pub shared: std::sync::Arc<Shared>,
    pub wire: WireReader,
    pub partitions: u32,
    pub state_dir: std::path::PathBuf,
    producer: Box<dyn BusProducer>,
    /// The first record of the next month, read ahead.
    ahead: Option<WireRecord>,
    fed: u64,
    /// Inputs and dead letters by stage since the start (each month's run
    /// counts from zero).
    totals: Vec<(u64, u64)>,
}

impl Lapse {
    pub fn new(
        bus: &dyn Bus,
        shared: std::sync::Arc<Shared>,
        wire: WireReader,
        partitions: u32,
        state_dir: std::path::PathBuf,
    ) -> Result<Lapse> {
        Ok(Lapse {
            producer: bus.producer()?,
            shared,
            wire,
            partitions,
            state_dir,
            ahead: None,
            fed: 0,
            totals: vec![(0, 0); StageKind::DECIDING.len()],
        })
    }

    /// Feeds the month starting on `month`, applies it, measures.
    pub fn month(&mut self, month: NaiveDate) -> Result<MonthRow> {
        let started = Instant::now();
        let until = next_month(month).unwrap_or(NaiveDate::MAX);
        let fed = self.feed_until(until)?;
        // The kernel's high-water mark when it can be reset, else the
        // highest of the samples taken while the month is applied.
        let exact_peak = sample::reset_peak_rss();
        let peak = AtomicU64::new(sample::rss_bytes());
        let progress = self.apply(&peak)?;
        if exact_peak && let Some(hwm) = sample::peak_rss_bytes() {
            peak.fetch_max(hwm, Ordering::Relaxed);
        }
        let stage_memory_bytes = progress
            .stats
            .iter()
            .map(|(_, s)| s.state_memory_bytes)
            .sum();
        for ((_, stats), total) in progress.stats.iter().zip(self.totals.iter_mut()) {
            total.0 += stats.inputs;
            total.1 += stats.dead_letters;
        }
        let stages = inventory::inventory(&self.state_dir, self.partitions)
            .into_iter()
            .zip(&self.totals)
            .map(|(state, &(inputs, dead_letters))| StageRow {
                stage: state.stage,
                disk_bytes: state.disk_bytes,
                content_bytes: state.key_value_bytes,
                keys: state.keys,
                keys_by_kind: state.keys_by_kind.into_iter().collect(),
                inputs,
                dead_letters,
            })
            .collect();
        Ok(MonthRow {
            month: month.format("%Y-%m").to_string(),
            fed,
            claims_so_far: self.fed,
            rss_peak_bytes: peak.load(Ordering::Relaxed),
            rss_after_bytes: sample::rss_bytes(),
            stage_memory_bytes,
            stages,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Sends the records stamped before `until` (insurer's date).
    fn feed_until(&mut self, until: NaiveDate) -> Result<u64> {
        let mut sent = 0;
        loop {
            let record = match self.ahead.take() {
                Some(record) => record,
                None => match self.wire.next_record()? {
                    Some(record) => record,
                    None => break,
                },
            };
            if insurer_date(record.timestamp).is_none_or(|d| d >= until) {
                self.ahead = Some(record);
                break;
            }
            record.send(self.producer.as_mut(), self.partitions)?;
            sent += 1;
        }
        self.producer.flush()?;
        self.fed += sent;
        Ok(sent)
    }

    /// The four deciding stages until each has applied its input to the
    /// end; the peak RSS meanwhile into `peak`.
    fn apply(&self, peak: &AtomicU64) -> Result<Progress> {
        let report = |_: &Progress| {
            peak.fetch_max(sample::rss_bytes(), Ordering::Relaxed);
        };
        let progress = runtime::run_stages(
            self.shared.clone(),
            &StageKind::DECIDING,
            &AtomicBool::new(false),
            true,
            Duration::from_millis(100),
            &report,
        )?;
        Ok(progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_months_of_a_period_start_on_their_first_day() {
        let m = months(d(2024, 1, 1), d(2025, 1, 1));
        assert_eq!(m.len(), 12);
        assert_eq!(m[0], d(2024, 1, 1));
        assert_eq!(m[11], d(2024, 12, 1));
        // A start mid-month: its month first.
        let m = months(d(2024, 1, 15), d(2024, 3, 15));
        assert_eq!(m, vec![d(2024, 1, 1), d(2024, 2, 1), d(2024, 3, 1)]);
    }
}
