//! `clearing loadtest --time-lapse YEARS`: claims spread over simulated
//! years at a constant daily volume through the four stages on a local log,
//! month by simulated month, with the stores' size on disk, their live keys
//! by kind and the process's memory after each month; then whether they are
//! flat once the time-bar window has passed (docs/performance.md,
//! "Time-lapse"). With `--rate`, the same corpus through one process that
//! never stops, at that real rate (`continuous`).

mod continuous;
mod corpus;
mod html;
mod months;
mod verdict;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chrono::{Datelike, Days, NaiveDate};
use clap::Args;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime;
use clearing_pipeline::runtime::ingest::Ingest;
use serde::Serialize;

use self::corpus::Plan;
use self::months::{Lapse, MonthRow};
use self::verdict::SeriesVerdict;
use super::{GROUP, LoadtestArgs};
use crate::cmd::args::StageSetup;
use crate::cmd::{load_rules, open_bus, pseudonym_key, publish_reference, remove_dir};

#[derive(Args, Clone, Debug)]
pub struct TimeLapseArgs {
    /// Time-lapse: claims received each simulated day. (With --rate, the
    /// time-lapse runs continuously: one process, the stages never stopped,
    /// the claims sent at that real rate for at most --duration seconds.)
    #[arg(long, default_value_t = 40)]
    pub per_day: u32,
    /// Time-lapse: the first simulated day (YYYY-MM-DD).
    #[arg(long, default_value = "2024-01-01")]
    pub start: NaiveDate,
    /// Time-lapse: days after the time-bar of the first day's care before
    /// the months judged for flatness begin. Default: the retention margin
    /// of the rules (general.toml), from when the first day's state expires.
    #[arg(long)]
    pub margin_days: Option<u64>,
}

/// When the months judged for flatness begin, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Care on the first simulated year's last day is time-barred from this
    /// day (the rule in force on that day): the first year's caps are kept
    /// until then, plus the margin.
    pub barred_from: NaiveDate,
    pub margin_days: u64,
    /// The first month judged: the first that starts on or after
    /// `barred_from` + `margin_days`.
    pub steady_from: Option<String>,
    pub rule: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rule: &'static str,
    /// Every series of the overall verdict flat (`None`: too few months).
    pub flat: Option<bool>,
    pub series: Vec<SeriesVerdict>,
    /// The stores' key kinds, each alone (small counts are noisy).
    pub key_kinds: Vec<SeriesVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub years: u32,
    pub per_day: u32,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub seed: u64,
    pub partitions: u32,
    pub beneficiaries: usize,
    pub professionals: usize,
    pub claims_made: u64,
    pub claims_in_period: u64,
    pub bad_claims: std::collections::BTreeMap<String, u64>,
    pub corpus: String,
    pub corpus_reused: bool,
    pub generate_seconds: Option<f64>,
    pub rules_version: String,
    /// When a stage's store is rewritten at open (`--store-rewrite-*`).
    pub store_rewrite_amplification: u64,
    pub store_rewrite_growth_pct: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeLapseReport {
    pub config: Config,
    pub window: Window,
    pub months: Vec<MonthRow>,
    pub verdict: Verdict,
    pub run_seconds: f64,
    pub bus: String,
}

pub fn run(args: &LoadtestArgs, years: u32) -> Result<ExitCode> {
    if years == 0 || args.time_lapse_args.per_day == 0 {
        bail!("--time-lapse and --per-day must be at least 1");
    }
    if args.bus.is_some() {
        bail!("--time-lapse runs on its own local log, <out>/bus: drop --bus");
    }
    let t = &args.time_lapse_args;
    let rules = Arc::new(load_rules(None)?);
    let plan = Plan::new(args.seed, t.start, years, t.per_day)?;
    corpus::check_period(&plan, &rules)?;
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;
    let corpus = corpus::prepare(
        args.corpus.as_deref(),
        &plan,
        &rules,
        &registry,
        &pseudonyms,
    )?;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let (bus_dir, state_dir) = (args.out.join("bus"), args.out.join("state"));
    remove_dir(&bus_dir)?;
    remove_dir(&state_dir)?;
    let bus_url = format!("local:{}", bus_dir.display());
    let bus = open_bus(&bus_url)?;
    runtime::ensure_topics(bus.as_ref(), args.partitions.count)?;
    {
        let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms, IngestClock::Simulated)?;
        publish_reference(&mut ingest, &corpus.dir)?;
        ingest.flush()?;
    }
    let shared = args.workers.shared(
        bus.clone(),
        StageSetup {
            rules: rules.clone(),
            trust_unsigned: args.signatures.trust_unsigned,
            state_dir: state_dir.clone(),
            group: GROUP.into(),
        },
    )?;
    let window = window(&plan, &rules, t.margin_days)?;
    if args.rate > 0.0 {
        return continuous::run(continuous::Prepared {
            args,
            config: config(args, years, &plan, &corpus, &rules),
            corpus,
            rules,
            bus,
            bus_url,
            shared,
            state_dir,
            window,
        });
    }
    let started = Instant::now();
    let rows = run_months(
        bus.as_ref(),
        shared,
        &corpus,
        &plan,
        args.partitions.count,
        &state_dir,
    )?;
    let slack = super::inventory::file_slack_bytes(&state_dir, args.partitions.count);
    let verdict = judge(&rows, &window, &slack);
    let report = TimeLapseReport {
        config: config(args, years, &plan, &corpus, &rules),
        window,
        months: rows,
        verdict,
        run_seconds: started.elapsed().as_secs_f64(),
        bus: bus_url,
    };
    write(&args.out, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// What the run was, for the report.
fn config(
    args: &LoadtestArgs,
    years: u32,
    plan: &Plan,
    corpus: &corpus::Corpus,
    rules: &Rules,
) -> Config {
    Config {
        years,
        per_day: plan.per_day,
        start: plan.start,
        end: plan.end,
        seed: plan.seed,
        partitions: args.partitions.count,
        beneficiaries: plan.beneficiaries,
        professionals: plan.professionals,
        claims_made: corpus.manifest.claims,
        claims_in_period: corpus.manifest.in_period,
        bad_claims: corpus.manifest.bad_claims.clone(),
        corpus: corpus.dir.display().to_string(),
        corpus_reused: corpus.reused,
        generate_seconds: corpus.generate_seconds,
        rules_version: rules.version.clone(),
        store_rewrite_amplification: args.workers.store_rewrite().amplification,
        store_rewrite_growth_pct: args.workers.store_rewrite().growth_pct,
    }
}

fn run_months(
    bus: &dyn clearing_pipeline::bus::Bus,
    shared: Arc<runtime::Shared>,
    corpus: &corpus::Corpus,
    plan: &Plan,
    partitions: u32,
    state_dir: &Path,
) -> Result<Vec<MonthRow>> {
    let mut lapse = Lapse::new(
        bus,
        shared,
        corpus.wire()?,
        partitions,
        state_dir.to_path_buf(),
    )?;
    let months = months::months(plan.start, plan.end);
    let mut rows = Vec::with_capacity(months.len());
    for (i, month) in months.iter().enumerate() {
        let row = lapse.month(*month)?;
        eprintln!(
            "time-lapse {}/{} {}: {:>7} claims so far  stores {:>8.1} MB  keys {:>8}  rss peak {:>6.0} MB  ({:.1} s)",
            i + 1,
            months.len(),
            row.month,
            row.claims_so_far,
            row.stages.iter().map(|s| s.disk_bytes).sum::<u64>() as f64 / 1e6,
            row.stages.iter().map(|s| s.keys).sum::<u64>(),
            row.rss_peak_bytes as f64 / 1e6,
            row.seconds
        );
        rows.push(row);
    }
    Ok(rows)
}

/// The window from the time-bar rule and the retention's margin (or
/// `margin_days`): the state kept longest is the first year's caps, kept
/// while a claim counted in that year can be in time (care on its last day,
/// docs/rules.md "Retention"); from then on every kind of state is deleted
/// as fast as it comes, so the stores can be flat.
fn window(plan: &Plan, rules: &Rules, margin_days: Option<u64>) -> Result<Window> {
    let first_year_end = NaiveDate::from_ymd_opt(plan.start.year(), 12, 31)
        .context("--start out of the calendar")?;
    let limit = rules
        .general
        .limitation
        .at(first_year_end)
        .context("no time-bar rule in force in the first year")?;
    let barred_from = limit
        .value
        .barred_from(first_year_end)
        .context("the time-bar of the first year is out of range")?;
    let settled = match margin_days {
        Some(days) => barred_from + Days::new(days),
        // What the stages keep longest: the first year's caps.
        None => rules
            .general
            .year_kept_until(plan.start.year())
            .unwrap_or(barred_from),
    };
    let margin_days = u64::try_from((settled - barred_from).num_days()).unwrap_or(0);
    let steady_from = months::months(plan.start, plan.end)
        .into_iter()
        .find(|m| *m >= settled)
        .map(|m| m.format("%Y-%m").to_string());
    Ok(Window {
        barred_from,
        margin_days,
        steady_from,
        rule: limit.source.clone(),
    })
}

/// The verdict over the months from the window's end; `slack`: each stage's
/// file slack (inventory::file_slack_bytes).
fn judge(rows: &[MonthRow], window: &Window, slack: &[f64]) -> Verdict {
    let after: Vec<&MonthRow> = match &window.steady_from {
        Some(from) => rows.iter().filter(|r| r.month >= *from).collect(),
        None => Vec::new(),
    };
    let series_of = |f: &dyn Fn(&MonthRow) -> f64| after.iter().map(|r| f(r)).collect::<Vec<_>>();
    let mut series = Vec::new();
    let stages: Vec<&'static str> = rows
        .first()
        .map(|r| r.stages.iter().map(|s| s.stage).collect())
        .unwrap_or_default();
    let disk: Vec<Vec<f64>> = (0..stages.len())
        .map(|i| series_of(&|r| r.stages[i].disk_bytes as f64))
        .collect();
    series.extend(verdict::files(&stages, &disk, slack));
    for (i, stage) in stages.iter().enumerate() {
        let content = series_of(&|r| r.stages[i].content_bytes as f64);
        series.push(verdict::judge(&format!("{stage} content bytes"), &content));
        let keys = series_of(&|r| r.stages[i].keys as f64);
        series.push(verdict::judge(&format!("{stage} keys"), &keys));
    }
    series.push(verdict::judge(
        "rss peak bytes",
        &series_of(&|r| r.rss_peak_bytes as f64),
    ));
    let mut key_kinds = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let kinds: std::collections::BTreeSet<&String> = rows
            .iter()
            .flat_map(|r| r.stages[i].keys_by_kind.keys())
            .collect();
        for kind in kinds {
            let values =
                series_of(&|r| r.stages[i].keys_by_kind.get(kind).copied().unwrap_or(0) as f64);
            key_kinds.push(verdict::judge(&format!("{stage} {kind}"), &values));
        }
    }
    Verdict {
        rule: verdict::RULE,
        flat: verdict::overall(&series),
        series,
        key_kinds,
    }
}

/// time-lapse.json and time-lapse.html under `out`, and the summary.
fn write(out: &Path, report: &TimeLapseReport) -> Result<()> {
    let json_path = out.join("time-lapse.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(report)?)
        .with_context(|| json_path.display().to_string())?;
    let html_path = out.join("time-lapse.html");
    std::fs::write(&html_path, html::render(report))
        .with_context(|| html_path.display().to_string())?;
    summary(report);
    println!(
        "  report: {} and {}",
        json_path.display(),
        html_path.display()
    );
    Ok(())
}

fn summary(r: &TimeLapseReport) {
    let c = &r.config;
    println!(
        "time-lapse: {} years from {}, {} claims a day: {} claims through the four stages in {:.0} s",
        c.years, c.start, c.per_day, c.claims_in_period, r.run_seconds
    );
    if let (Some(first), Some(last)) = (r.months.first(), r.months.last()) {
        let mb = |row: &MonthRow| row.stages.iter().map(|s| s.disk_bytes).sum::<u64>() as f64 / 1e6;
        let keys = |row: &MonthRow| row.stages.iter().map(|s| s.keys).sum::<u64>();
        println!(
            "  stores: {:.1} MB, {} keys after {}; {:.1} MB, {} keys after {}; rss peak {:.0} MB → {:.0} MB",
            mb(first),
            keys(first),
            first.month,
            mb(last),
            keys(last),
            last.month,
            first.rss_peak_bytes as f64 / 1e6,
            last.rss_peak_bytes as f64 / 1e6
        );
    }
    println!(
        "  window: care of {} time-barred from {} + {} days: months judged from {}",
        c.start,
        r.window.barred_from,
        r.window.margin_days,
        r.window
            .steady_from
            .as_deref()
            .unwrap_or("(none in the period)")
    );
    for s in &r.verdict.series {
        println!(
            "  {:<28} {:<9} mean {:>14.0}  max dev {:>6.1} % ({} ±{:.1} %)  slope {:>+7.2} %/month",
            s.series,
            flat_word(s.flat),
            s.mean,
            s.max_deviation_pct,
            match s.within_band {
                Some(true) => "in band",
                Some(false) => "OUT of band",
                None => "n/a",
            },
            s.band_pct,
            s.slope_pct_per_month
        );
    }
    println!(
        "  verdict: {} (±{:.0} % of the mean after the window, and at most that much drift a year; the rule is in time-lapse.json)",
        match r.verdict.flat {
            Some(true) => "FLAT",
            Some(false) => "NOT FLAT",
            None => "not judged (fewer than 2 months after the window)",
        },
        verdict::TOLERANCE * 100.0
    );
}

fn flat_word(flat: Option<bool>) -> &'static str {
    match flat {
        Some(true) => "flat",
        Some(false) => "NOT flat",
        None => "n/a",
    }
}
