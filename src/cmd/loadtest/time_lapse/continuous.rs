//! `clearing loadtest --time-lapse YEARS --rate R`: the time-lapse's corpus
//! through ONE process that never stops, at a constant real rate, so that
//! retention deletes while claims keep coming; memory judged by the live
//! report's slope rule over the part of the run after the time-bar window
//! (docs/performance.md, "Memory over 30 minutes").
//!
//! It is the live load test (feeder, stages, reader, monitor, report.json
//! and report.html) fed with the time-lapse's corpus: the claims go in stamp
//! order with their recorded simulated `received_at`, and the stages run all
//! along. The stores stay open, so their keys are counted only once the run
//! has ended; while it runs, the monitor reads the bytes of their files
//! every second, and the last claim's stamp says which simulated month each
//! sample belongs to.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use chrono::{Datelike as _, NaiveDate};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::clock::insurer_date;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::{Shared, StageKind};
use serde::Serialize;

use super::super::assemble::{Assembly, assemble, slope_per_min};
use super::super::live::{Live, lock};
use super::super::plan::Plan as LivePlan;
use super::super::report::{RawLimits, Sample};
use super::super::setup::Setup;
use super::super::targets::{MEMORY_FLAT_RULE, memory_flat};
use super::super::{LoadtestArgs, corpus as live_corpus, inventory, pipeline, sample};
use super::verdict::{self, SeriesVerdict};
use super::{Config, Window, corpus};

/// What the time-lapse has set up, handed to the continuous run.
pub struct Prepared<'a> {
    pub args: &'a LoadtestArgs,
    pub corpus: corpus::Corpus,
    pub rules: Arc<Rules>,
    pub bus: Arc<dyn Bus>,
    pub bus_url: String,
    pub shared: Arc<Shared>,
    pub state_dir: PathBuf,
    pub window: Window,
    pub config: Config,
}

/// The last sample taken while a simulated month was being fed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MonthPoint {
    /// `YYYY-MM` of the last claim fed.
    pub month: String,
    pub t_s: f64,
    pub fed: u64,
    pub rss_mb: f64,
    pub state_memory_mb: f64,
    pub state_filter_mb: f64,
    pub state_cache_mb: f64,
    /// Bytes of each stage's store files, pipeline order.
    pub store_bytes: Vec<u64>,
}

/// The memory verdict after the window, by the live report's rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryVerdict {
    pub rule: &'static str,
    /// Real seconds into the run when the first claim of the first month
    /// judged was fed, and when the feeder ended.
    pub from_s: Option<f64>,
    pub to_s: f64,
    pub samples: usize,
    pub rss_first_mb: f64,
    pub rss_last_mb: f64,
    pub rss_max_mb: f64,
    pub rss_slope_mb_per_min: f64,
    pub state_memory_slope_mb_per_min: f64,
    /// Of which the key filters' and the caches'.
    pub state_filter_slope_mb_per_min: f64,
    pub state_cache_slope_mb_per_min: f64,
    /// `None`: fewer than 2 samples after the window.
    pub flat: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContinuousReport {
    pub config: Config,
    pub rate: f64,
    pub duration_s: Option<f64>,
    pub window: Window,
    /// RSS at each whole minute of the run (the sample nearest after it).
    pub rss_by_minute: Vec<(u32, f64)>,
    pub months: Vec<MonthPoint>,
    pub memory: MemoryVerdict,
    /// Each stage's bytes on disk over the months after the window, by the
    /// time-lapse's band rule.
    pub stores: Vec<SeriesVerdict>,
    pub stores_rule: &'static str,
    /// Keys each stage's retention deleted during the run.
    pub keys_expired: BTreeMap<&'static str, u64>,
    /// Keys in each stage's store once the run ended.
    pub keys_after: BTreeMap<&'static str, u64>,
    pub fed: u64,
    pub complete: bool,
    pub bus: String,
}

pub fn run(p: Prepared<'_>) -> Result<ExitCode> {
    let args = p.args;
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_before = sample::load_avg();
    let in_period = p.corpus.manifest.in_period;
    // Never round the corpus: a claim sent again would carry a stamp years
    // old.
    let claims = args.claims.map_or(in_period, |n| n.min(in_period));
    let plan = LivePlan {
        claims: Some(claims),
        duration: args.duration.map(Duration::from_secs_f64),
        rate: args.rate,
        needed: claims,
    };
    let setup = Setup {
        corpus: live_corpus::Corpus {
            dir: p.corpus.dir.clone(),
            claims: in_period,
            reused: p.corpus.reused,
            generate_seconds: p.corpus.generate_seconds,
        },
        bus: p.bus,
        rules: p.rules,
        shared: p.shared,
        state_dir: p.state_dir,
        started_unix_s,
        load_before,
    };
    eprintln!(
        "time-lapse, continuous: {claims} claims of {} simulated years at {:.1}/s{}, one process, the stages never stopped",
        p.config.years,
        args.rate,
        args.duration
            .map_or(String::new(), |d| format!(" for at most {d:.0} s"))
    );
    let live = Live::new(false)?;
    let measured = pipeline::run(args, &plan, &setup, &live)?;
    let state = inventory::inventory(&setup.state_dir, args.partitions.count);
    let keys_after = state.iter().map(|s| (s.stage, s.keys)).collect();
    let keys_expired = lock(&live.progress)
        .stats
        .iter()
        .map(|(kind, s)| (kind.name(), s.keys_expired))
        .collect();
    let report = assemble(Assembly {
        args,
        plan: &plan,
        setup: &setup,
        live: &live,
        measured,
        state,
        raw: RawLimits {
            verification: None,
            bus_passthrough: None,
        },
    });
    super::super::write_reports(args, &report)?;
    let steady_from = p
        .window
        .steady_from
        .as_deref()
        .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok());
    let fed_until_s = report.run.feed_s;
    let months = month_points(&report.timeline);
    let continuous = ContinuousReport {
        memory: memory_after(&report.timeline, steady_from, fed_until_s),
        stores: stores_after(
            &months,
            p.window.steady_from.as_deref(),
            &inventory::file_slack_bytes(&setup.state_dir, args.partitions.count),
        ),
        stores_rule: verdict::RULE,
        rss_by_minute: by_minute(&report.timeline),
        months,
        config: p.config,
        rate: args.rate,
        duration_s: args.duration,
        window: p.window,
        keys_expired,
        keys_after,
        fed: report.run.submitted,
        complete: report.run.complete,
        bus: p.bus_url,
    };
    let path = args.out.join("continuous.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&continuous)?)
        .with_context(|| path.display().to_string())?;
    summary(&continuous);
    println!("  continuous report: {}", path.display());
    Ok(if report.run.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The simulated month of a sample (of the last claim fed before it).
fn month_of(s: &Sample) -> Option<NaiveDate> {
    if s.fed == 0 {
        return None;
    }
    let day = insurer_date(s.fed_stamp_ms)?;
    day.with_day0(0)
}

/// The last sample of each simulated month, in order.
pub fn month_points(timeline: &[Sample]) -> Vec<MonthPoint> {
    let mut out: Vec<MonthPoint> = Vec::new();
    for s in timeline {
        let Some(month) = month_of(s) else { continue };
        let point = MonthPoint {
            month: month.format("%Y-%m").to_string(),
            t_s: s.t_s,
            fed: s.fed,
            rss_mb: s.rss_mb,
            state_memory_mb: s.state_memory_mb,
            state_filter_mb: s.state_filter_mb,
            state_cache_mb: s.state_cache_mb,
            store_bytes: s.store_bytes.clone(),
        };
        match out.last_mut() {
            Some(last) if last.month == point.month => *last = point,
            _ => out.push(point),
        }
    }
    out
}

/// RSS over the samples taken while the months after the window were fed
/// (from the first claim of the first month judged to the feeder's end),
/// by the live report's slope rule.
pub fn memory_after(
    timeline: &[Sample],
    steady_from: Option<NaiveDate>,
    fed_until_s: f64,
) -> MemoryVerdict {
    let after: Vec<&Sample> = match steady_from {
        Some(from) => timeline
            .iter()
            .filter(|s| s.t_s <= fed_until_s && month_of(s).is_some_and(|m| m >= from))
            .collect(),
        None => Vec::new(),
    };
    let rss: Vec<(f64, f64)> = after.iter().map(|s| (s.t_s, s.rss_mb)).collect();
    let series = |part: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        after.iter().map(|s| (s.t_s, part(s))).collect()
    };
    let rss_max_mb = rss.iter().map(|p| p.1).fold(0.0, f64::max);
    let rss_slope_mb_per_min = slope_per_min(&rss);
    MemoryVerdict {
        rule: MEMORY_FLAT_RULE,
        from_s: rss.first().map(|p| p.0),
        to_s: fed_until_s,
        samples: rss.len(),
        rss_first_mb: rss.first().map_or(0.0, |p| p.1),
        rss_last_mb: rss.last().map_or(0.0, |p| p.1),
        rss_max_mb,
        rss_slope_mb_per_min,
        state_memory_slope_mb_per_min: slope_per_min(&series(|s| s.state_memory_mb)),
        state_filter_slope_mb_per_min: slope_per_min(&series(|s| s.state_filter_mb)),
        state_cache_slope_mb_per_min: slope_per_min(&series(|s| s.state_cache_mb)),
        flat: (rss.len() >= 2).then(|| memory_flat(rss_slope_mb_per_min, rss_max_mb)),
    }
}

/// Each stage's store bytes, and their sum, over the months from
/// `steady_from` (`YYYY-MM`), each allowed its engine's file `slack`.
pub fn stores_after(
    months: &[MonthPoint],
    steady_from: Option<&str>,
    slack: &[f64],
) -> Vec<SeriesVerdict> {
    let after: Vec<&MonthPoint> = match steady_from {
        Some(from) => months.iter().filter(|m| m.month.as_str() >= from).collect(),
        None => Vec::new(),
    };
    let stages: Vec<&str> = StageKind::DECIDING.iter().map(|k| k.name()).collect();
    let by_stage: Vec<Vec<f64>> = (0..stages.len())
        .map(|i| {
            after
                .iter()
                .map(|m| m.store_bytes.get(i).copied().unwrap_or(0) as f64)
                .collect()
        })
        .collect();
    verdict::files(&stages, &by_stage, slack)
}

/// RSS at each whole minute: the first sample at or after it.
pub fn by_minute(timeline: &[Sample]) -> Vec<(u32, f64)> {
    let mut out = Vec::new();
    let mut next = 1u32;
    for s in timeline {
        if s.t_s >= f64::from(next) * 60.0 {
            out.push((next, s.rss_mb));
            next = (s.t_s / 60.0).floor() as u32 + 1;
        }
    }
    out
}

fn summary(r: &ContinuousReport) {
    println!(
        "time-lapse, continuous: {} claims fed at {:.1}/s, months {}..{}; window: judged from {}",
        r.fed,
        r.rate,
        r.months.first().map_or("-", |m| m.month.as_str()),
        r.months.last().map_or("-", |m| m.month.as_str()),
        r.window
            .steady_from
            .as_deref()
            .unwrap_or("(none in the period)")
    );
    let m = &r.memory;
    println!(
        "  rss after the window ({} samples from {} s to {:.0} s): {:.0} → {:.0} MB (max {:.0}), slope {:+.3} MB/min, state in memory {:+.3} MB/min (key filters {:+.3}, caches {:+.3}): {}",
        m.samples,
        m.from_s.map_or("-".to_string(), |t| format!("{t:.0}")),
        m.to_s,
        m.rss_first_mb,
        m.rss_last_mb,
        m.rss_max_mb,
        m.rss_slope_mb_per_min,
        m.state_memory_slope_mb_per_min,
        m.state_filter_slope_mb_per_min,
        m.state_cache_slope_mb_per_min,
        match m.flat {
            Some(true) => "FLAT",
            Some(false) => "NOT FLAT",
            None => "not judged",
        }
    );
    for s in &r.stores {
        println!(
            "  {:<24} {:<9} mean {:>12.0}  max dev {:>6.1} % (band ±{:.1} %)  slope {:>+7.2} %/month",
            s.series,
            match s.flat {
                Some(true) => "flat",
                Some(false) => "NOT flat",
                None => "n/a",
            },
            s.mean,
            s.max_deviation_pct,
            s.band_pct,
            s.slope_pct_per_month
        );
    }
    println!(
        "  keys expired {:?}; keys after the run {:?}",
        r.keys_expired, r.keys_after
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn stamp(y: i32, m: u32, d: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_time(NaiveTime::from_hms_opt(10, 0, 0).unwrap())
            .and_utc()
            .timestamp_millis()
    }

    fn s(t_s: f64, fed: u64, stamp_ms: i64, rss_mb: f64, store: u64) -> Sample {
        Sample {
            t_s,
            fed,
            outcomes: fed,
            fed_per_s: 0.0,
            outcomes_per_s: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            cpu_percent: 0.0,
            rss_mb,
            state_memory_mb: 1.0,
            state_filter_mb: 0.5,
            state_cache_mb: 0.25,
            stage_inputs: vec![],
            lag: vec![],
            store_bytes: vec![store, 2 * store, 0, 0],
            fed_stamp_ms: stamp_ms,
        }
    }

    fn timeline() -> Vec<Sample> {
        vec![
            s(0.0, 0, 0, 50.0, 0),
            s(30.0, 10, stamp(2024, 1, 20), 60.0, 100),
            s(60.0, 20, stamp(2024, 1, 31), 70.0, 200),
            s(90.0, 30, stamp(2024, 2, 10), 80.0, 300),
            s(120.0, 40, stamp(2024, 3, 5), 80.0, 300),
            s(150.0, 50, stamp(2024, 3, 25), 80.0, 300),
            // After the feeder's end.
            s(180.0, 50, stamp(2024, 3, 25), 500.0, 300),
        ]
    }

    #[test]
    fn a_month_is_the_last_sample_fed_in_it() {
        let m = month_points(&timeline());
        let names: Vec<&str> = m.iter().map(|p| p.month.as_str()).collect();
        assert_eq!(names, ["2024-01", "2024-02", "2024-03"]);
        assert_eq!(m[0].t_s, 60.0);
        assert_eq!(m[0].store_bytes, vec![200, 400, 0, 0]);
        assert_eq!(m[2].t_s, 180.0);
    }

    #[test]
    fn memory_is_judged_after_the_window_and_before_the_feeders_end() {
        let from = NaiveDate::from_ymd_opt(2024, 3, 1);
        let v = memory_after(&timeline(), from, 160.0);
        assert_eq!(v.samples, 2, "March, without the drain's sample");
        assert_eq!(v.from_s, Some(120.0));
        assert_eq!(v.rss_slope_mb_per_min, 0.0);
        assert_eq!(v.flat, Some(true));
        // From February the 80s are flat too; from January it climbs.
        let climbing = memory_after(&timeline(), NaiveDate::from_ymd_opt(2024, 1, 1), 160.0);
        assert!(climbing.rss_slope_mb_per_min > 0.0);
        assert_eq!(climbing.flat, Some(false));
        assert_eq!(memory_after(&timeline(), None, 160.0).flat, None);
    }

    #[test]
    fn stores_are_judged_by_month_after_the_window() {
        let months = month_points(&timeline());
        let v = stores_after(&months, Some("2024-02"), &[]);
        assert_eq!(v.len(), 5);
        assert_eq!(v[0].months, 2);
        assert_eq!(v[0].flat, Some(true));
        assert_eq!(v[4].mean, 900.0);
        let all = stores_after(&months, Some("2024-01"), &[]);
        assert_eq!(all[0].flat, Some(false));
    }

    #[test]
    fn rss_by_minute_takes_the_first_sample_at_or_after_each() {
        assert_eq!(
            by_minute(&timeline()),
            vec![(1, 70.0), (2, 80.0), (3, 500.0)]
        );
    }
}
