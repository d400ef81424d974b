//! The main thread during the run: a sample of rates, latency, CPU, memory,
//! stage counters and consumer lag every second, and the progress bar.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::runtime::{StageKind, WorkerStats};

use super::live::{Live, lock};
use super::report::{BILLION_A_YEAR_PER_S, Sample};
use super::{GROUP, sample};

pub struct Monitor<'a> {
    bus: &'a dyn Bus,
    live: &'a Live,
    /// Where the stages' stores are (`<dir>/<stage>`).
    state_dir: &'a Path,
    /// Outcomes the progress bar counts towards.
    expected: u64,
    pub started: Instant,
    interactive: bool,
    pub timeline: Vec<Sample>,
    /// CPU seconds by thread name, the last reading of each (ended threads
    /// vanish from /proc).
    pub thread_cpu: BTreeMap<String, f64>,
    pub feed_ended: Option<Instant>,
    /// Every claim fed reached an outcome.
    pub complete: bool,
    last_sample: Instant,
    last_line: Instant,
    /// Claims fed, outcomes and process CPU seconds at the last sample.
    prev: (u64, u64, f64),
}

impl<'a> Monitor<'a> {
    pub fn new(
        bus: &'a dyn Bus,
        live: &'a Live,
        state_dir: &'a Path,
        expected: u64,
        cpu_start: f64,
    ) -> Monitor<'a> {
        // The origin, so every chart starts at zero.
        let origin = Sample {
            t_s: 0.0,
            fed: 0,
            outcomes: 0,
            fed_per_s: 0.0,
            outcomes_per_s: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            cpu_percent: 0.0,
            rss_mb: sample::rss_bytes() as f64 / 1e6,
            state_memory_mb: 0.0,
            state_filter_mb: 0.0,
            state_cache_mb: 0.0,
            stage_inputs: vec![0; StageKind::DECIDING.len()],
            lag: vec![0; StageKind::DECIDING.len()],
            store_bytes: store_bytes(state_dir),
            fed_stamp_ms: 0,
        };
        Monitor {
            bus,
            live,
            state_dir,
            expected,
            started: Instant::now(),
            interactive: std::io::stderr().is_terminal(),
            timeline: vec![origin],
            thread_cpu: BTreeMap::new(),
            feed_ended: None,
            complete: false,
            last_sample: Instant::now(),
            last_line: Instant::now(),
            prev: (0, 0, cpu_start),
        }
    }

    /// Samples and draws until every claim fed has its outcome, or the
    /// drain timeout has passed since the feeder ended; `Err` says why the
    /// run cannot go on (`stopped` names a pipeline thread that ended early).
    pub fn watch(
        &mut self,
        stopped: impl Fn() -> bool,
        feeder_ended: impl Fn() -> bool,
        drain_timeout: Duration,
    ) -> Result<(), &'static str> {
        self.last_sample = Instant::now();
        self.last_line = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if stopped() {
                return Err("a pipeline thread stopped early");
            }
            if self.feed_ended.is_none() && self.live.feeding_done.load(Ordering::Acquire) {
                self.feed_ended = Some(Instant::now());
                if feeder_ended() && self.live.fed() == 0 {
                    return Err("the feeder sent nothing");
                }
            }
            if self.last_sample.elapsed() >= Duration::from_secs(1) {
                self.sample();
            }
            let (fed, outcomes) = (self.live.fed(), self.live.outcomes());
            let every = Duration::from_millis(if self.interactive { 250 } else { 5000 });
            if self.last_line.elapsed() >= every {
                self.last_line = Instant::now();
                self.progress_bar(fed, outcomes);
            }
            if let Some(ended) = self.feed_ended {
                if outcomes >= fed {
                    self.complete = true;
                    return Ok(());
                }
                if ended.elapsed() > drain_timeout {
                    return Ok(());
                }
            }
        }
    }

    /// The threads' last CPU readings and the last progress line.
    pub fn finish(&mut self) {
        self.read_thread_cpu();
        self.progress_bar(self.live.fed(), self.live.outcomes());
        eprintln!();
    }

    fn read_thread_cpu(&mut self) {
        for (name, cpu) in sample::threads_cpu_s() {
            self.thread_cpu.insert(name, cpu);
        }
    }

    fn sample(&mut self) {
        let dt = self.last_sample.elapsed().as_secs_f64();
        self.last_sample = Instant::now();
        let s = take_sample(
            self.bus,
            self.live,
            self.state_dir,
            self.started,
            dt,
            self.prev,
        );
        self.prev = (s.fed, s.outcomes, sample::process_cpu_s());
        self.read_thread_cpu();
        self.timeline.push(s);
    }

    fn progress_bar(&self, fed: u64, outcomes: u64) {
        let last = self.timeline.last();
        let expected = self.expected;
        let width = 24usize;
        let filled =
            ((outcomes.min(expected) as f64 / expected.max(1) as f64) * width as f64) as usize;
        let rate = last.map_or(0.0, |s| s.outcomes_per_s);
        let p99 = {
            let h = lock(&self.live.latency);
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(0.99) as f64 / 1000.0
            }
        };
        let lag: u64 = last.map_or(0, |s| s.lag.iter().sum());
        let line = format!(
            "[{}{}] {outcomes:>9}/{expected} decided  fed {fed:>9}  {rate:>7.0}/s ({:>5.0}×)  p99 {p99:>7.1} ms  lag {lag:>7}  rss {:>5.0} MB  {:>5.0} s",
            "#".repeat(filled.min(width)),
            ".".repeat(width - filled.min(width)),
            rate / BILLION_A_YEAR_PER_S,
            last.map_or(0.0, |s| s.rss_mb),
            self.started.elapsed().as_secs_f64()
        );
        if self.interactive {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The figures of the `dt` seconds since the last sample, which saw
/// `prev_fed` claims fed, `prev_out` outcomes and `prev_cpu` CPU seconds.
fn take_sample(
    bus: &dyn Bus,
    live: &Live,
    state_dir: &Path,
    run_started: Instant,
    dt: f64,
    (prev_fed, prev_out, prev_cpu): (u64, u64, f64),
) -> Sample {
    let fed = live.fed();
    let outcomes = live.outcomes();
    let (p50, p99) = {
        let mut interval = lock(&live.interval);
        let figures = if interval.is_empty() {
            (0.0, 0.0)
        } else {
            (
                interval.value_at_quantile(0.5) as f64 / 1000.0,
                interval.value_at_quantile(0.99) as f64 / 1000.0,
            )
        };
        interval.reset();
        figures
    };
    let ([state_memory_mb, state_filter_mb, state_cache_mb], stage_inputs) = {
        let progress = lock(&live.progress);
        let mb = |part: fn(&WorkerStats) -> u64| -> f64 {
            progress
                .stats
                .iter()
                .map(|(_, s)| part(s) as f64 / 1e6)
                .sum()
        };
        let memory = [
            mb(|s| s.state_memory_bytes),
            mb(|s| s.state_filter_bytes),
            mb(|s| s.state_cache_bytes),
        ];
        let inputs = StageKind::DECIDING
            .iter()
            .map(|k| {
                progress
                    .stats
                    .iter()
                    .find(|(kind, _)| kind == k)
                    .map_or(0, |(_, s)| s.inputs)
            })
            .collect();
        (memory, inputs)
    };
    let dt = dt.max(1e-9);
    Sample {
        t_s: run_started.elapsed().as_secs_f64(),
        fed,
        outcomes,
        fed_per_s: fed.saturating_sub(prev_fed) as f64 / dt,
        outcomes_per_s: outcomes.saturating_sub(prev_out) as f64 / dt,
        p50_ms: p50,
        p99_ms: p99,
        cpu_percent: 100.0 * (sample::process_cpu_s() - prev_cpu) / dt,
        rss_mb: sample::rss_bytes() as f64 / 1e6,
        state_memory_mb,
        state_filter_mb,
        state_cache_mb,
        stage_inputs,
        lag: lags(bus),
        store_bytes: store_bytes(state_dir),
        fed_stamp_ms: live.last_stamp.load(Ordering::Relaxed),
    }
}

/// Bytes of each stage's store files, pipeline order.
fn store_bytes(state_dir: &Path) -> Vec<u64> {
    StageKind::DECIDING
        .iter()
        .map(|kind| sample::dir_bytes(&state_dir.join(kind.name())))
        .collect()
}

/// Records on each stage's input not yet committed by its group.
fn lags(bus: &dyn Bus) -> Vec<u64> {
    StageKind::DECIDING
        .iter()
        .map(|kind| {
            let topic = kind.input_topic();
            let group = format!("{GROUP}.{}", kind.name());
            let partitions = bus.partition_count(topic).unwrap_or(0);
            (0..partitions)
                .map(|p| {
                    let end = bus.end_offset(topic, p).unwrap_or(0);
                    let committed = bus.committed(&group, topic, p).ok().flatten().unwrap_or(0);
                    end.saturating_sub(committed)
                })
                .sum()
        })
        .collect()
}
