//! `clearing submit`, `publish`, `run`, `read`: the pipeline on a bus.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clearing_pipeline::adjudicate::{FSE_OBJECTS, RIGHTS_OBJECTS};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::domain::json;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::events::render;
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Progress, Shared, StageKind, topics};

use super::args::{BusArgs, RulesArgs, Signatures, StageSetup, WorkerArgs};
use super::{open_bus, pseudonym_key};

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// How each FSE's receipt is stamped: `wall` (this machine's clock, for
    /// real claims) or `simulated` (each FSE as received at its own
    /// `received_at`: synthetic claims dated in the past).
    #[arg(long, default_value = "wall", value_parser = parse_ingest_clock)]
    pub ingest_clock: IngestClock,
}

fn parse_ingest_clock(text: &str) -> Result<IngestClock, String> {
    IngestClock::parse(text).ok_or_else(|| format!("{text}: expected wall or simulated"))
}

/// Reads stdin lines, calling `each`; bad lines are reported and counted.
fn each_stdin_line(mut each: impl FnMut(&str) -> Result<()>) -> Result<(usize, usize)> {
    let (mut ok, mut failed) = (0, 0);
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.with_context(|| format!("stdin: line {}", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match each(&line) {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                eprintln!("stdin: line {}: {e:#}", index + 1);
            }
        }
    }
    Ok((ok, failed))
}

/// One JSON line; a key given twice is refused later, by the shape's
/// reader, which names it only if it is one of the shape's fields.
fn object(line: &str) -> Result<json::Document> {
    json::parse(line).map_err(|e| anyhow::anyhow!("not JSON ({e})"))
}

pub fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let bus = args.bus.open()?;
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;
    let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms, args.ingest_clock)?;
    let (ok, failed) = each_stdin_line(|line| {
        let input: FseInput = json::from_document(&object(line)?, FSE_OBJECTS)?;
        ingest.submit(&input)?;
        Ok(())
    })?;
    ingest.flush()?;
    eprintln!(
        "submitted {ok} FSEs to {}; {failed} lines refused",
        bus.describe()
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// The closing date (YYYY-MM-DD): batches received by then are
    /// acknowledged, payments received by then are ordered, half-years over
    /// before it are claimed. From the books' calendar, never today's clock.
    #[arg(long)]
    pub on: chrono::NaiveDate,
    // The holiday calendar comes from the rule tables.
    #[command(flatten)]
    pub rules: RulesArgs,
}

/// `clearing close --on DATE`: one close event per partition of outbound.ledger.
pub fn close(args: CloseArgs) -> Result<ExitCode> {
    let bus = args.bus.open()?;
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;
    let rules = args.rules.load()?;
    let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms, IngestClock::Wall)?;
    let partitions = ingest.close(args.on, &rules)?;
    ingest.flush()?;
    eprintln!(
        "close {}: {partitions} partition(s) of {}",
        args.on,
        topics::OUTBOUND_LEDGER
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// ref.rights, ref.pki or ref.eu.institutions.
    #[arg(long)]
    pub topic: String,
}

pub fn publish(args: PublishArgs) -> Result<ExitCode> {
    let bus = args.bus.open()?;
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;
    let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms, IngestClock::Wall)?;
    let topic = args.topic.as_str();
    if ![
        topics::REF_RIGHTS,
        topics::REF_PKI,
        topics::REF_EU_INSTITUTIONS,
    ]
    .contains(&topic)
    {
        bail!("--topic must be ref.rights, ref.pki or ref.eu.institutions");
    }
    let (ok, failed) = each_stdin_line(|line| {
        let document = object(line)?;
        match topic {
            topics::REF_RIGHTS => {
                let input: RightsInput = json::from_document(&document, RIGHTS_OBJECTS)?;
                ingest.rights(&input)?;
            }
            topics::REF_PKI => {
                let record: PkiRecord = json::from_document(&document, &[])?;
                clearing_pipeline::pki::Pki::default()
                    .apply(record.clone())
                    .or_else(|e| {
                        // A revocation alone cannot be checked against an empty registry.
                        if matches!(record, PkiRecord::Revocation { .. }) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })?;
                ingest.pki(&record)?;
            }
            _ => {
                let input: EuInstitutionInput = json::from_document(&document, &[])?;
                ingest.institution(&input)?;
            }
        }
        Ok(())
    })?;
    ingest.flush()?;
    eprintln!(
        "published {ok} records to {topic} on {}; {failed} lines refused",
        bus.describe()
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// `all` or a comma list of validation, entitlement, routing, reimbursement.
    #[arg(long, default_value = "all")]
    pub stages: String,
    /// Consumer group (each stage uses `<group>.<stage>`).
    #[arg(long, default_value = "clearing")]
    pub group: String,
    /// Where the stages' sled stores live (default: `<DIR>/state` for local:DIR, `./data/state` otherwise).
    #[arg(long)]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub signatures: Signatures,
    #[command(flatten)]
    pub unsafe_settings: super::settings::UnsafeArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Serve Prometheus metrics: `PORT` (on 127.0.0.1, the default host),
    /// or `IP:PORT` to expose them further. None unless given.
    #[arg(long, value_parser = crate::metrics::parse_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Exit once every stage has applied its input to the end (batch jobs, tests).
    #[arg(long)]
    pub until_caught_up: bool,
}

pub fn parse_stages(text: &str) -> Result<Vec<StageKind>> {
    if text == "all" {
        return Ok(StageKind::ALL.to_vec());
    }
    let mut stages: Vec<StageKind> = text
        .split(',')
        .map(|s| StageKind::parse(s.trim()).with_context(|| format!("unknown stage {s}")))
        .collect::<Result<_>>()?;
    stages.sort();
    stages.dedup();
    Ok(stages)
}

pub fn state_dir(bus_url: &str, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| match bus_url.strip_prefix("local:") {
        Some(dir) => PathBuf::from(dir).join("state"),
        None => PathBuf::from("./data/state"),
    })
}

pub fn shared(args: &RunArgs, bus: Arc<dyn Bus>) -> Result<Arc<Shared>> {
    let stages = StageSetup {
        rules: Arc::new(args.rules.load()?),
        trust_unsigned: args.signatures.trust_unsigned,
        state_dir: state_dir(&args.bus.bus, args.state.clone()),
        group: args.group.clone(),
    };
    args.workers.shared(bus, stages)
}

/// The run's bus, its topics made: on Kafka, only once the settings are
/// checked (`settings::check_kafka`), so a refused run writes nothing.
pub fn open_run_bus(args: &RunArgs) -> Result<Arc<dyn Bus>> {
    if !args.bus.bus.starts_with("kafka://") {
        return args.bus.open();
    }
    let kafka = clearing_pipeline::bus::kafka::KafkaBus::connect(&args.bus.bus)?;
    super::settings::check_kafka(
        &kafka,
        &args.unsafe_settings,
        args.signatures.trust_unsigned,
        &pseudonym_key()?,
        args.bus.partitions.count,
    )?;
    let bus: Arc<dyn Bus> = Arc::new(kafka);
    runtime::ensure_topics(bus.as_ref(), args.bus.partitions.count)?;
    Ok(bus)
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let stages = parse_stages(&args.stages)?;
    let bus = open_run_bus(&args)?;
    let shared = shared(&args, bus.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    if let Some(addr) = args.metrics_addr {
        crate::metrics::install(addr)?;
    }
    eprintln!(
        "clearing run: stages {:?} on {} (group {}); SIGINT or SIGTERM stops after the batch in flight",
        stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
        bus.describe(),
        args.group
    );
    let report = |_: &Progress| {};
    let progress = runtime::run_stages(
        shared,
        &stages,
        &stop,
        args.until_caught_up,
        Duration::from_secs(1),
        &report,
    )?;
    for (stage, s) in &progress.stats {
        eprintln!(
            "  {:<14} inputs {:>8}  passed {:>8}  rejected {:>6}  dead letters {:>4}  duplicates dropped {:>4}  restored {:>4}",
            stage.name(),
            s.inputs,
            s.passed,
            s.rejected,
            s.dead_letters,
            s.duplicates_dropped,
            s.restored_outputs_suppressed
        );
    }
    eprintln!("clearing run: stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    #[arg(long)]
    pub topic: String,
    /// First offset to print, in every partition.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Keep reading new records.
    #[arg(long)]
    pub follow: bool,
}

pub fn read(args: ReadArgs) -> Result<ExitCode> {
    let bus = open_bus(&args.bus.bus)?;
    let registry = SchemaRegistry::new()?;
    let partitions = bus.partition_count(&args.topic)?;
    let mut positions: Vec<u64> = vec![args.from; partitions as usize];
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let mut any = false;
        for partition in 0..partitions {
            let records = bus.read(&args.topic, partition, positions[partition as usize], 4096)?;
            for record in &records {
                any = true;
                positions[partition as usize] = record.offset + 1;
                match render::render(&registry, &args.topic, &record.value) {
                    Ok(value) => serde_json::to_writer(&mut out, &value)?,
                    Err(e) => serde_json::to_writer(
                        &mut out,
                        &serde_json::json!({"partition": partition, "offset": record.offset, "error": e.to_string()}),
                    )?,
                }
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        if !any {
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
