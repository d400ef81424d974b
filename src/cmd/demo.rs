//! `clearing demo`: the main job on the embedded default. Generates a world
//! and signed claims, runs the whole pipeline on the local log, prints a
//! summary, and verifies every decision against the same claims adjudicated
//! in process (same pure code, no bus): they must be identical.

mod outbound;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::bus::{Bus, BusError};
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::{FseInput, Route, Status, json};
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{DecisionRec, FseDecided, FseRejected};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::money::Cents;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Progress, StageKind, topics};
use clearing_pipeline::synth::Manifest;

use self::outbound::{Outbound, outbound_closes, read_all, read_outbound};
use super::adjudicate::{AdjudicateArgs, adjudicator};
use super::args::{Partitions, RulesArgs, Signatures, StageSetup, WorkerArgs};
use super::gen_data::{GenArgs, generate};
use super::{for_each_line, open_bus, progress_line, pseudonym_key, publish_reference, remove_dir};

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 100_000)]
    pub claims: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Working directory (emptied of a previous demo's bus and state).
    #[arg(long, default_value = "./data/demo")]
    pub data: PathBuf,
    /// Run on Kafka instead of the local log (`kafka://HOST:PORT`), in a
    /// fresh namespace the demo names and prints unless the URL gives one
    /// (`kafka://HOST:PORT/NAMESPACE`, which must hold no topic of an earlier
    /// run); or on a local log of your own (`local:DIR`, empty).
    #[arg(long)]
    pub bus: Option<String>,
    #[command(flatten)]
    pub partitions: Partitions,
}

#[derive(Default)]
struct Tally {
    paid: u64,
    rejected: u64,
    by_code: BTreeMap<String, u64>,
    amo_by_route: BTreeMap<&'static str, Cents>,
    paid_by_route: BTreeMap<&'static str, u64>,
    /// Every decision by (FSE id, beneficiary key): a duplicate shares its
    /// original's key, so a key can hold two.
    decisions: BTreeMap<String, Vec<DecisionRec>>,
}

fn route_name(route: Option<Route>) -> &'static str {
    match route {
        Some(Route::Domestic) => "domestic",
        Some(Route::Eu) => "eu",
        None => "-",
    }
}

impl Tally {
    fn count(&mut self, decision: DecisionRec) {
        match decision.status {
            Status::Paid => {
                self.paid += 1;
                let route = route_name(decision.route);
                *self.amo_by_route.entry(route).or_default() += Cents::new(decision.amo_cents);
                *self.paid_by_route.entry(route).or_default() += 1;
            }
            Status::Rejected => {
                self.rejected += 1;
                for reason in &decision.reasons {
                    *self.by_code.entry(reason.code.clone()).or_default() += 1;
                }
            }
        }
        let key = decision_key(&decision.fse_id, &decision.beneficiary_key);
        self.decisions.entry(key).or_default().push(decision);
    }

    /// The counts, rejections by code beside what the generator planted,
    /// and the AMO paid by route.
    fn print(&self, manifest: &Manifest, dead_letters: u64) {
        println!("  paid      {:>9}", self.paid);
        println!("  rejected  {:>9}", self.rejected);
        println!("  dead letters {:>6}", dead_letters);
        println!("  rejections by code:");
        for (code, n) in &self.by_code {
            let planted = manifest.bad_claims.get(code).copied().unwrap_or(0);
            println!("    {code:<32} {n:>7}   (planted by the generator: {planted})");
        }
        if self
            .by_code
            .get("not_covered_on_care_date")
            .copied()
            .unwrap_or(0)
            > 0
        {
            println!(
                "    (beyond the planted ones, not_covered_on_care_date also falls on claims of"
            );
            println!("     beneficiaries whose coverage the generator ended mid-period)");
        }
        println!("  AMO paid by route:");
        for (route, amount) in &self.amo_by_route {
            println!(
                "    {route:<10} {:>9} claims  {:>15} EUR",
                self.paid_by_route.get(route).copied().unwrap_or(0),
                amount.to_string()
            );
        }
    }
}

/// The bus URL a demo runs on: the local log under `--data` (emptied), or
/// `--bus` with a fresh namespace added to a Kafka URL that names none. A
/// demo's checks (every decision on the bus against the claims it generated,
/// the reconciliation, the replay) only hold on a bus that carries that run
/// alone; a fresh namespace gives one without deleting anybody's topics.
fn demo_bus_url(args: &DemoArgs) -> Result<String> {
    match &args.bus {
        None => {
            let dir = args.data.join("bus");
            remove_dir(&dir)?;
            Ok(format!("local:{}", dir.display()))
        }
        Some(url) => Ok(match url.strip_prefix("kafka://") {
            Some(rest)
                if rest
                    .split_once('/')
                    .is_none_or(|(_, ns)| ns.trim_matches('/').is_empty()) =>
            {
                // The clock only names the namespace, and no decision sees
                // it; the process id separates two demos started in one second.
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let stamp = i64::try_from(seconds)
                    .ok()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map_or_else(
                        || seconds.to_string(),
                        |t| t.format("%Y%m%d-%H%M%S").to_string(),
                    );
                let namespace = format!("demo-{stamp}-{}", std::process::id());
                format!("kafka://{}/{namespace}", rest.trim_end_matches('/'))
            }
            _ => url.clone(),
        }),
    }
}

/// Refuses a bus that already holds records in any pipeline topic: a second
/// demo there would read the first one's topics (its claims come back as
/// duplicates, and the checks compare both runs with one run's claims).
fn refuse_used_bus(bus: &dyn Bus, partitions: u32) -> Result<()> {
    let mut held = 0u64;
    let mut example = None;
    for spec in topics::all(partitions) {
        let count = match bus.partition_count(&spec.name) {
            Ok(count) => count,
            Err(BusError::UnknownTopic(_)) => continue,
            Err(e) => return Err(e).with_context(|| bus.describe()),
        };
        for partition in 0..count {
            let end = bus.end_offset(&spec.name, partition)?;
            if end > 0 && example.is_none() {
                example = Some(format!("{}/{partition} ends at offset {end}", spec.name));
            }
            held += end;
        }
    }
    if let Some(example) = example {
        let advice = if bus.describe().starts_with("kafka://") {
            "name another namespace (kafka://HOST:PORT/NAMESPACE), or none and the demo makes a fresh one"
        } else {
            "give an empty directory, or leave --bus out (the demo then empties DATA/bus)"
        };
        bail!(
            "{} already holds an earlier run ({held} records; {example}): the demo checks every \
             decision on its bus against the claims it generates, so it needs a bus of its own: \
             {advice}",
            bus.describe()
        );
    }
    Ok(())
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    // The bus first: a used one is refused before minutes of generation.
    let (bus_url, bus) = open_demo_bus(&args)?;
    eprintln!(
        "1/5 generating a world and {} signed claims (seed {})",
        args.claims, args.seed
    );
    let gen_dir = args.data.join("gen");
    let (manifest, _) = generate(&gen_args(&args, &gen_dir))?;
    let demo = Demo::new(&args, bus_url, bus, gen_dir)?;
    demo.submit()?;
    let ran = demo.run_pipeline()?;
    eprintln!("4/5 reading the decisions");
    let tally = demo.read_decisions()?;
    let outbound = read_outbound(demo.bus.as_ref(), &demo.registry)?;
    let reconciliation = outbound.reconcile(&tally.decisions);
    let (compared, differing) = demo.verify(&tally)?;
    let checks = Checks {
        compared,
        differing,
        outbound,
        reconciliation,
    };
    demo.print_summary(&manifest, &tally, &ran, &checks);
    let replayed = demo.replay()?;
    Ok(
        if checks.differing.is_empty() && checks.reconciliation.is_empty() && replayed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// The demo's bus, refused if an earlier run used it.
fn open_demo_bus(args: &DemoArgs) -> Result<(String, Arc<dyn Bus>)> {
    let bus_url = demo_bus_url(args)?;
    let bus = open_bus(&bus_url)?;
    refuse_used_bus(bus.as_ref(), args.partitions.count)?;
    if bus_url.starts_with("kafka://") {
        eprintln!("the demo runs on {bus_url}: replay it with `clearing replay --bus {bus_url}`");
        // A demo is a simulation whatever its bus: it makes its own claims,
        // PKI and people, so `clearing run`'s refusals of unsafe settings
        // (cmd::settings) do not apply; it says so rather than pass in silence.
        eprintln!(
            "the demo is a simulation on synthetic data: the unsafe settings `clearing run` \
             refuses on Kafka without --simulation (a connection in clear, the development \
             pseudonym secret, topics under 3 replicas) are accepted here"
        );
    }
    Ok((bus_url, bus))
}

/// `clearing gen` with the generator's default mix, into `out`.
fn gen_args(args: &DemoArgs, out: &Path) -> GenArgs {
    GenArgs {
        seed: args.seed,
        claims: args.claims,
        out: out.to_path_buf(),
        professionals: None,
        beneficiaries: None,
        bad_per_mille: 20,
        rsa_per_mille: 100,
        threads: None,
        rules: RulesArgs::default(),
    }
}

/// What the demo's steps share once the claims are generated.
struct Demo<'a> {
    args: &'a DemoArgs,
    bus_url: String,
    bus: Arc<dyn Bus>,
    /// The generated data set.
    gen_dir: PathBuf,
    /// The stages' stores.
    state: PathBuf,
    registry: SchemaRegistry,
    pseudonyms: PseudonymKey,
}

/// What the pipeline run measured.
struct Ran {
    seconds: f64,
    dead_letters: u64,
}

/// The decisions against in-process adjudication and against what left.
struct Checks {
    compared: u64,
    /// Keys (FSE id/beneficiary) whose decisions differ, or a count that does.
    differing: Vec<String>,
    outbound: Outbound,
    reconciliation: Vec<String>,
}

impl<'a> Demo<'a> {
    /// No state left from an earlier demo, and the topics made.
    fn new(
        args: &'a DemoArgs,
        bus_url: String,
        bus: Arc<dyn Bus>,
        gen_dir: PathBuf,
    ) -> Result<Demo<'a>> {
        let state = args.data.join("state");
        remove_dir(&state)?;
        runtime::ensure_topics(bus.as_ref(), args.partitions.count)?;
        Ok(Demo {
            args,
            bus_url,
            bus,
            gen_dir,
            state,
            registry: SchemaRegistry::new()?,
            pseudonyms: pseudonym_key()?,
        })
    }

    /// Step 2: the reference data, then the claims.
    fn submit(&self) -> Result<()> {
        eprintln!(
            "2/5 publishing reference data and submitting claims to {}",
            self.bus.describe()
        );
        let started = Instant::now();
        let mut ingest = Ingest::new(
            self.bus.as_ref(),
            &self.registry,
            &self.pseudonyms,
            IngestClock::Simulated,
        )?;
        publish_reference(&mut ingest, &self.gen_dir)?;
        let total = self.args.claims as u64;
        let progress = |n: u64| {
            progress_line(
                "submit",
                n,
                total,
                n as f64 / started.elapsed().as_secs_f64(),
            )
        };
        let mut submitted = 0u64;
        for_each_line(&self.gen_dir.join("claims.jsonl"), |_, line| {
            let input: FseInput = json::from_value(&serde_json::from_str(line)?, FSE_OBJECTS)?;
            ingest.submit(&input)?;
            submitted += 1;
            if submitted.is_multiple_of(10_000) {
                progress(submitted);
            }
            Ok(())
        })?;
        ingest.flush()?;
        progress(submitted);
        eprintln!();
        Ok(())
    }

    /// Step 3: every stage to the end of its input, the books closed, and
    /// the ledger run over the closes.
    fn run_pipeline(&self) -> Result<Ran> {
        eprintln!(
            "3/5 running validation → entitlement → routing → reimbursement → settlement, returns, ledger"
        );
        let rules = Rules::embedded()?;
        let stages = StageSetup {
            rules: Arc::new(rules.clone()),
            trust_unsigned: false,
            state_dir: self.state.clone(),
            group: "demo".into(),
        };
        let shared = WorkerArgs::default().shared(self.bus.clone(), stages)?;
        let run_started = Instant::now();
        let total = self.args.claims as u64;
        let report = |p: &Progress| {
            let decided = decided(p);
            let rate = decided as f64 / run_started.elapsed().as_secs_f64().max(1e-9);
            progress_line("decide", decided, total, rate);
        };
        let stop = AtomicBool::new(false);
        let every = Duration::from_millis(250);
        let progress =
            runtime::run_stages(shared.clone(), &StageKind::ALL, &stop, true, every, &report)?;
        let seconds = run_started.elapsed().as_secs_f64();
        eprintln!();
        self.close_books(&rules)?;
        let ledger =
            runtime::run_stages(shared, &[StageKind::Ledger], &stop, true, every, &|_| {})?;
        let dead_letters = progress
            .stats
            .iter()
            .chain(&ledger.stats)
            .map(|(_, s)| s.dead_letters)
            .sum();
        Ok(Ran {
            seconds,
            dead_letters,
        })
    }

    /// Closes the books: once the day after the last receipt (batches, the
    /// payment run, half-years already over), once after the last half-year
    /// ends (its EU claims). Dated from the data, never from the clock.
    fn close_books(&self, rules: &Rules) -> Result<()> {
        let closes = outbound_closes(self.bus.as_ref(), &self.registry, rules)?;
        let mut ingest = Ingest::new(
            self.bus.as_ref(),
            &self.registry,
            &self.pseudonyms,
            IngestClock::Simulated,
        )?;
        for on in &closes {
            ingest.close(*on, rules)?;
        }
        ingest.flush()?;
        if let (Some(first), Some(last)) = (closes.first(), closes.last()) {
            eprintln!(
                "   closing the outbound books: {} closes (payment runs) from {first} to {last}",
                closes.len()
            );
        }
        Ok(())
    }

    /// Step 4: every decision on the bus, counted.
    fn read_decisions(&self) -> Result<Tally> {
        let mut tally = Tally::default();
        for topic in [topics::FSE_DECIDED, topics::FSE_REJECTED] {
            read_all(self.bus.as_ref(), topic, |bytes| {
                let decision = if topic == topics::FSE_DECIDED {
                    self.registry.decode_single::<FseDecided>(bytes)?.decision
                } else {
                    self.registry.decode_single::<FseRejected>(bytes)?.decision
                };
                tally.count(decision);
                Ok(())
            })?;
        }
        Ok(tally)
    }

    /// Step 5: the same claims adjudicated in process must give the same
    /// decisions; returns the decisions compared and the keys that differ.
    fn verify(&self, tally: &Tally) -> Result<(u64, Vec<String>)> {
        eprintln!(
            "5/5 verifying: the same claims adjudicated in process, and the recorded run replayed, must give the same decisions"
        );
        let expected = self.adjudicated()?;
        // Topics are read topic by topic, the file in order: compare each
        // key's decisions as a multiset.
        let canonical = |list: &[DecisionRec]| {
            let mut list: Vec<String> = list.iter().map(|d| format!("{d:?}")).collect();
            list.sort();
            list
        };
        let mut compared = 0u64;
        let mut differing = Vec::new();
        for (key, want) in &expected {
            compared += want.len() as u64;
            match tally.decisions.get(key) {
                Some(got) if canonical(got) == canonical(want) => {}
                _ => differing.push(key.clone()),
            }
        }
        if tally.decisions.len() != expected.len() {
            differing.push(format!(
                "{} keys on the bus, {} adjudicated",
                tally.decisions.len(),
                expected.len()
            ));
        }
        Ok((compared, differing))
    }

    /// The generated claims' decisions by `clearing adjudicate`'s code.
    fn adjudicated(&self) -> Result<BTreeMap<String, Vec<DecisionRec>>> {
        let mut reference = adjudicator(&AdjudicateArgs {
            rights: Some(self.gen_dir.join("rights.jsonl")),
            pki: Some(self.gen_dir.join("pki.jsonl")),
            institutions: Some(self.gen_dir.join("eu_institutions.jsonl")),
            rules: RulesArgs::default(),
            signatures: Signatures::default(),
            strict: false,
        })?;
        let mut expected: BTreeMap<String, Vec<DecisionRec>> = BTreeMap::new();
        for_each_line(&self.gen_dir.join("claims.jsonl"), |_, line| {
            let decision = reference.decide_line(line)?;
            let key = decision_key(&decision.fse_id, &decision.beneficiary_key);
            expected
                .entry(key)
                .or_default()
                .push(decision_rec(&decision));
            Ok(())
        })?;
        Ok(expected)
    }

    fn print_summary(&self, manifest: &Manifest, tally: &Tally, ran: &Ran, checks: &Checks) {
        let args = self.args;
        println!();
        println!(
            "clearing demo — {} claims, seed {}, bus {}",
            args.claims,
            args.seed,
            self.bus.describe()
        );
        tally.print(manifest, ran.dead_letters);
        println!(
            "  pipeline: {:.1} s for {} claims through 7 stages = {:.0} claims/s ({:.0}x the billion-a-year mean of 31.7/s)",
            ran.seconds,
            args.claims,
            args.claims as f64 / ran.seconds.max(1e-9),
            args.claims as f64 / ran.seconds.max(1e-9) / 31.7
        );
        println!(
            "  verification: {} decisions compared with in-process adjudication, {} differ",
            checks.compared,
            checks.differing.len()
        );
        for key in checks.differing.iter().take(5) {
            println!("    differs: {key}");
        }
        checks.outbound.print();
        println!(
            "  reconciliation: every FSE one final return, orders = paid amounts, EU claims = visitors' AMO shares, batches count every FSE: {}",
            if checks.reconciliation.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        );
        for problem in checks.reconciliation.iter().take(5) {
            println!("    {problem}");
        }
    }

    /// Verifies by replay (design.md §5): every stage partition re-run from
    /// its recorded inputs must give its recorded outputs and checkpoint
    /// chains. Prints the verdict and returns whether it is identical.
    fn replay(&self) -> Result<bool> {
        let setup = clearing_replay::verify::Setup {
            bus: self.bus.clone(),
            rules: Arc::new(Rules::embedded()?),
            registry: Arc::new(SchemaRegistry::new()?),
            pseudonyms: self.pseudonyms.clone(),
            trust_unsigned: false,
        };
        let jobs = super::replay::jobs(self.bus.as_ref(), &StageKind::ALL, &[])?;
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let replayed = clearing_replay::run::replay(&setup, &jobs, None, threads, &|_, _| {})?;
        println!(
            "  replay: {} stage inputs re-run in {:.1} s, {} outputs identical byte for byte, {} checkpoint chains verified: {}",
            replayed.inputs,
            replayed.seconds,
            replayed.outputs_compared,
            replayed.checkpoints,
            if replayed.identical {
                "IDENTICAL".to_string()
            } else {
                format!(
                    "DIVERGENT ({})",
                    replayed
                        .first_divergence
                        .as_ref()
                        .map_or(String::new(), |d| d.message.clone())
                )
            }
        );
        println!("  replay it again: clearing replay --bus {}", self.bus_url);
        Ok(replayed.identical)
    }
}

/// Claims with a decision so far: the reimbursement stage decides every
/// claim that reaches it, the others the ones they reject or dead-letter.
fn decided(p: &Progress) -> u64 {
    p.stats
        .iter()
        .map(|(kind, s)| match kind {
            StageKind::Reimbursement => s.passed + s.rejected + s.dead_letters,
            _ => s.rejected + s.dead_letters,
        })
        .sum()
}

/// The key decisions are compared under: FSE id and beneficiary key.
fn decision_key(fse_id: &Option<String>, beneficiary_key: &Option<String>) -> String {
    format!(
        "{}/{}",
        fse_id.clone().unwrap_or_default(),
        beneficiary_key.clone().unwrap_or_default()
    )
}
