//! `clearing replay`: re-run recorded inputs through the live stage code and
//! compare with the recorded outputs and checkpoints (docs/audit.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::StageKind;
use clearing_replay::run::{Report, replay};
use clearing_replay::verify::{Divergence, REFERENCE_COMPACTED, Setup};

use super::args::RecordedRun;
use super::stream::parse_stages;
use super::{load_rules, open_bus, progress_line, pseudonym_key};

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub recorded: RecordedRun,
    /// `all` or a comma list of stages.
    #[arg(long, default_value = "all")]
    pub stages: String,
    /// Comma list of partitions (default: every partition).
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<u32>,
    /// Start from the stores of a stopped run (`DATA/state`) instead of empty state.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Replay threads (stage partitions run in parallel).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Rule tables of the recorded run (default: the embedded tables; for
    /// a what-if, the one set the record's checkpoints name).
    #[arg(long)]
    pub recorded_rules: Option<PathBuf>,
    /// What-if: replay the recorded inputs under these rule tables (a
    /// directory like pipeline/rules/) beside a baseline under the recorded
    /// ones, into --out, and summarise what changes.
    #[arg(long, requires = "out")]
    pub rules: Option<PathBuf>,
    /// What-if: where the baseline and what-if runs are written (local logs).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let damage = match &args.recorded.archive {
        Some(dir) => {
            clearing_replay::archive::check(dir)
                .with_context(|| format!("archive {}", dir.display()))?
                .damage
        }
        None => Vec::new(),
    };
    for d in &damage {
        eprintln!("archive damage: {d}");
    }
    let bus = open_bus(&args.recorded.url())?;
    if let (Some(rules), Some(out)) = (&args.rules, &args.out) {
        return what_if(&args, bus.as_ref(), rules, out);
    }
    let setup = Setup {
        bus: bus.clone(),
        rules: Arc::new(load_rules(args.recorded_rules.as_deref())?),
        registry: Arc::new(SchemaRegistry::new()?),
        pseudonyms: pseudonym_key()?,
        trust_unsigned: false,
    };
    let stages = parse_stages(&args.stages)?;
    let jobs = jobs(bus.as_ref(), &stages, &args.partitions)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let started = Instant::now();
    let quiet = args.quiet;
    let report = replay(
        &setup,
        &jobs,
        args.snapshot.as_deref(),
        threads,
        &|done, total| {
            if !quiet {
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                progress_line("replay", done, total, rate);
            }
        },
    )?;
    if !quiet {
        eprintln!();
    }
    print_summary(&report, &damage);
    if let Some(path) = &args.report {
        let mut value = serde_json::to_value(&report)?;
        value["archive_damage"] = serde_json::json!(damage);
        std::fs::write(path, serde_json::to_vec_pretty(&value)?)
            .with_context(|| path.display().to_string())?;
    }
    Ok(if report.identical && damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every (stage, partition) to replay.
pub fn jobs(
    bus: &dyn clearing_pipeline::bus::Bus,
    stages: &[StageKind],
    only: &[u32],
) -> Result<Vec<(StageKind, u32)>> {
    let mut jobs = Vec::new();
    for kind in stages {
        let count = bus
            .partition_count(kind.input_topic())
            .with_context(|| format!("{} is not on this bus", kind.input_topic()))?;
        for partition in 0..count {
            if only.is_empty() || only.contains(&partition) {
                jobs.push((*kind, partition));
            }
        }
    }
    Ok(jobs)
}

fn print_summary(report: &Report, damage: &[String]) {
    let mut out = std::io::stdout().lock();
    print_counts(&mut out, report);
    for p in &report.partitions {
        let _ = writeln!(
            out,
            "  {:<13} p{:<2} {:>8} inputs  chain {}…  {}",
            p.stage,
            p.partition,
            p.inputs,
            p.chain_hash.get(..16).unwrap_or(""),
            match &p.divergence {
                None => "identical",
                Some(d) if d.kind == REFERENCE_COMPACTED => "reference data gone",
                Some(_) => "DIVERGES",
            }
        );
    }
    match &report.first_divergence {
        None if damage.is_empty() => {
            let _ = writeln!(out, "IDENTICAL: the replay gives the recorded outputs");
        }
        None => {
            let _ = writeln!(out, "ARCHIVE DAMAGED: see above");
        }
        Some(d) => print_divergence(&mut out, d),
    }
}

/// What was replayed and compared, and what could not be.
fn print_counts(out: &mut impl Write, report: &Report) {
    let _ = writeln!(
        out,
        "replayed {} inputs of {} stage partitions from {} in {:.1} s ({:.0} inputs/s, {} threads)",
        report.inputs,
        report.stage_partitions,
        report.source,
        report.seconds,
        report.inputs_per_second,
        report.threads
    );
    let _ = writeln!(
        out,
        "{} outputs compared byte for byte, {} checkpoints verified, {} batch(es) re-run after a crash",
        report.outputs_compared, report.checkpoints, report.crash_reruns
    );
    if report.uncommitted_inputs > 0 || report.uncovered_outputs > 0 {
        let _ = writeln!(
            out,
            "not yet committed when recorded: {} input(s), {} output(s) (not compared)",
            report.uncommitted_inputs, report.uncovered_outputs
        );
    }
    if report.unchecked_signature_batches > 0 {
        let _ = writeln!(
            out,
            "signatures NOT checked when recorded (--trust-unsigned): {} validation batch(es), {} input(s): {}",
            report.unchecked_signature_batches,
            report.unchecked_signature_inputs,
            unchecked_ranges(report)
        );
    }
}

/// The verdict, where the first divergence is, and its fields.
fn print_divergence(out: &mut impl Write, d: &Divergence) {
    // Not a divergence of the stage code: the record lacks what the
    // batch read, so the replay cannot decide either way.
    let verdict = if d.kind == REFERENCE_COMPACTED {
        "CANNOT REPLAY"
    } else {
        "DIVERGENT"
    };
    let _ = writeln!(out, "{verdict}: {} — {}", d.kind, d.message);
    let _ = writeln!(
        out,
        "  first divergent event: stage {} partition {} input offset {} topic {} recorded at offset {} fse {}",
        d.stage,
        d.partition,
        d.input_offset.map_or("-".into(), |o| o.to_string()),
        d.topic.as_deref().unwrap_or("-"),
        d.recorded_offset.map_or("-".into(), |o| o.to_string()),
        d.fse_id.as_deref().unwrap_or("-"),
    );
    let _ = writeln!(
        out,
        "  rules: recorded {} / replayed {}",
        d.recorded_rules_version.as_deref().unwrap_or("-"),
        d.replayed_rules_version.as_deref().unwrap_or("-")
    );
    let watermark =
        |w: &Option<serde_json::Value>| w.as_ref().map_or("-".into(), |v| v.to_string());
    let _ = writeln!(
        out,
        "  reference watermark: recorded {} / replayed {}",
        watermark(&d.recorded_ref_watermark),
        watermark(&d.replayed_ref_watermark)
    );
    for f in d.fields.iter().take(20) {
        let _ = writeln!(
            out,
            "  {}: recorded {} / replayed {}",
            f.path, f.recorded, f.replayed
        );
    }
}

/// `p0 0..=99 (3 batches)`, …: the first twelve unchecked ranges (the JSON
/// report has them all).
fn unchecked_ranges(report: &Report) -> String {
    const SHOWN: usize = 12;
    let all: Vec<String> = report
        .partitions
        .iter()
        .flat_map(|p| {
            p.unchecked_signatures.iter().map(move |r| {
                format!(
                    "{} p{} {}..={} ({} batch(es))",
                    p.stage, p.partition, r.from, r.to, r.batches
                )
            })
        })
        .collect();
    let mut text = all
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > SHOWN {
        text.push_str(&format!(", and {} more range(s)", all.len() - SHOWN));
    }
    text
}

/// Whether the recorded run checked signatures: its validation checkpoints
/// name `ref.pki` in their watermark when it did.
fn recorded_trust_unsigned(bus: &dyn clearing_pipeline::bus::Bus) -> Result<bool> {
    let registry = SchemaRegistry::new()?;
    let records = bus.read(
        clearing_pipeline::runtime::topics::AUDIT_CHECKPOINTS,
        0,
        0,
        64,
    )?;
    for r in records {
        let c: clearing_pipeline::events::model::AuditCheckpoint =
            registry.decode_single(&r.value)?;
        if c.stage == StageKind::Validation.name() {
            return Ok(!c
                .ref_watermark
                .iter()
                .any(|w| w.topic == clearing_pipeline::runtime::topics::REF_PKI));
        }
    }
    Ok(false)
}

/// The rule set the recorded run ran under, as the what-if's baseline.
fn recorded_baseline(bus: &dyn clearing_pipeline::bus::Bus) -> Result<Rules> {
    let versions = clearing_replay::whatif::recorded_rules_versions(bus)?;
    if versions.is_empty() {
        // Nothing recorded under any set yet: the embedded one.
        return load_rules(None);
    }
    match clearing_replay::whatif::recorded_baseline(&versions, load_rules(None)?)? {
        Some(rules) => Ok(rules),
        None => anyhow::bail!(
            "the recorded run names {} rule set(s) ({}), not one this binary has alone: \
             give the baseline with --recorded-rules DIR",
            versions.len(),
            versions.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn what_if(
    args: &ReplayArgs,
    bus: &dyn clearing_pipeline::bus::Bus,
    rules: &std::path::Path,
    out: &std::path::Path,
) -> Result<ExitCode> {
    let baseline = match &args.recorded_rules {
        Some(dir) => load_rules(Some(dir))?,
        None => recorded_baseline(bus)?,
    };
    let alternative = load_rules(Some(rules))?;
    let trust_unsigned = recorded_trust_unsigned(bus)?;
    if !args.quiet {
        eprintln!(
            "what-if: replaying the recorded inputs under {} and, as a baseline, {} into {}",
            alternative.version,
            baseline.version,
            out.display()
        );
    }
    let report = clearing_replay::whatif::what_if(
        bus,
        out,
        baseline,
        alternative,
        &pseudonym_key()?,
        trust_unsigned,
    )?;
    let euros = |c: i64| {
        let sign = if c < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{:02}",
            c.unsigned_abs() / 100,
            c.unsigned_abs() % 100
        )
    };
    println!(
        "what-if: {} of {} claims change; paid (AMO+CSS) {} -> {} EUR ({} EUR) in {:.1} s",
        report.changed,
        report.claims,
        euros(report.total.baseline_cents),
        euros(report.total.what_if_cents),
        euros(report.total.difference_cents),
        report.seconds
    );
    let (b, a) = (&report.total.baseline_payees, &report.total.what_if_payees);
    println!(
        "  paid to professionals {} -> {} EUR, to the insured {} -> {} EUR; deferred {} -> {} EUR",
        euros(b.to_professional_cents),
        euros(a.to_professional_cents),
        euros(b.to_insured_cents),
        euros(a.to_insured_cents),
        euros(b.deferred_cents),
        euros(a.deferred_cents)
    );
    for (title, groups) in [
        ("route", &report.by_route),
        ("category", &report.by_category),
        ("month of care", &report.by_month),
    ] {
        println!("  by {title}:");
        for (name, m) in groups {
            println!(
                "    {name:<14} {:>7} claims {:>6} changed  {:>14} -> {:>14}  ({} EUR)",
                m.claims,
                m.changed,
                euros(m.baseline_cents),
                euros(m.what_if_cents),
                euros(m.difference_cents)
            );
        }
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| path.display().to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
