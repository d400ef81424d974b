//! The measured run: the stages, the feeder and the reader on their threads,
//! watched by the main thread until every claim has its outcome.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use anyhow::{Result, bail};
use clearing_pipeline::runtime::{self, Progress, StageKind};

use super::LoadtestArgs;
use super::feed::feed;
use super::follow::follow;
use super::live::{Live, lock};
use super::monitor::Monitor;
use super::plan::Plan;
use super::report::Sample;
use super::sample;
use super::setup::Setup;

/// What the run measured beside the live counters.
pub struct Measured {
    pub timeline: Vec<Sample>,
    pub thread_cpu: BTreeMap<String, f64>,
    /// Process CPU over the run.
    pub cpu_s: f64,
    /// RSS before and after.
    pub rss: (u64, u64),
    /// From the start to the feeder's end.
    pub feed_s: f64,
    pub complete: bool,
}

/// The run's threads and what they share.
struct Run<'a> {
    plan: &'a Plan,
    setup: &'a Setup,
    live: &'a Live,
    partitions: u32,
    /// The stages run in other processes (`--no-stages`).
    no_stages: bool,
    stop_stages: AtomicBool,
    stop_reader: AtomicBool,
    stop_feeder: AtomicBool,
}

struct Threads<'scope> {
    stages: ScopedJoinHandle<'scope, Result<Progress>>,
    reader: ScopedJoinHandle<'scope, Result<()>>,
    feeder: ScopedJoinHandle<'scope, Result<()>>,
}

pub fn run(args: &LoadtestArgs, plan: &Plan, setup: &Setup, live: &Live) -> Result<Measured> {
    let run = Run {
        plan,
        setup,
        live,
        partitions: args.partitions.count,
        no_stages: args.no_stages,
        stop_stages: AtomicBool::new(false),
        stop_reader: AtomicBool::new(false),
        stop_feeder: AtomicBool::new(false),
    };
    let (cpu_start, rss_start) = (sample::process_cpu_s(), sample::rss_bytes());
    let mut monitor = Monitor::new(
        setup.bus.as_ref(),
        live,
        &setup.state_dir,
        plan.expected(),
        cpu_start,
    );
    let drain_timeout = Duration::from_secs(args.drain_timeout);
    std::thread::scope(|scope| {
        let threads = run.spawn(scope)?;
        let watched = monitor.watch(
            || threads.stages.is_finished() || threads.reader.is_finished(),
            || threads.feeder.is_finished(),
            drain_timeout,
        );
        monitor.finish();
        run.stop_and_join(threads)?;
        if let Err(why) = watched {
            bail!("loadtest: {why}");
        }
        Ok(())
    })?;
    Ok(Measured {
        cpu_s: sample::process_cpu_s() - cpu_start,
        rss: (rss_start, sample::rss_bytes()),
        feed_s: monitor
            .feed_ended
            .map_or(0.0, |e| (e - monitor.started).as_secs_f64()),
        complete: monitor.complete,
        timeline: monitor.timeline,
        thread_cpu: monitor.thread_cpu,
    })
}

impl Run<'_> {
    fn spawn<'scope>(&'scope self, scope: &'scope Scope<'scope, '_>) -> Result<Threads<'scope>> {
        let stages = scope.spawn(|| {
            let result = self.stages();
            // Stages gone: the reader makes its last pass and stops.
            self.stop_reader.store(true, Ordering::Release);
            result
        });
        let reader = std::thread::Builder::new()
            .name("lt-reader".into())
            .spawn_scoped(scope, || {
                follow(
                    self.setup.bus.as_ref(),
                    self.live,
                    self.plan.warm_up(),
                    &self.stop_reader,
                )
            })?;
        let feeder = std::thread::Builder::new()
            .name("lt-feeder".into())
            .spawn_scoped(scope, || {
                let result = feed(
                    self.setup.bus.as_ref(),
                    &self.setup.corpus,
                    self.plan,
                    self.partitions,
                    self.live,
                    &self.stop_feeder,
                );
                self.live.feeding_done.store(true, Ordering::Release);
                result
            })?;
        Ok(Threads {
            stages,
            reader,
            feeder,
        })
    }

    /// The four deciding stages until stopped, their progress in the live
    /// counters.
    fn stages(&self) -> Result<Progress> {
        if self.no_stages {
            // The stages run in other processes; nothing to do but wait.
            while !self.stop_stages.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(Progress::default());
        }
        let report = |p: &Progress| *lock(&self.live.progress) = p.clone();
        Ok(runtime::run_stages(
            self.setup.shared.clone(),
            &StageKind::DECIDING,
            &self.stop_stages,
            false,
            Duration::from_millis(250),
            &report,
        )?)
    }

    /// Stops the feeder and the stages, then the reader once the stages are
    /// gone (so that it reads their last decisions), and returns the first
    /// failure among them.
    fn stop_and_join(&self, threads: Threads<'_>) -> Result<()> {
        self.stop_feeder.store(true, Ordering::Release);
        self.stop_stages.store(true, Ordering::Release);
        let fed = join(threads.feeder);
        let staged = join(threads.stages);
        self.stop_reader.store(true, Ordering::Release);
        let read = join(threads.reader);
        fed?;
        *lock(&self.live.progress) = staged?;
        read
    }
}

fn join<T>(thread: ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
