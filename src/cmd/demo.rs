//! `clearing demo`: the main job on the embedded default. Generates a world
//! and signed claims, runs the whole pipeline on the local log, prints a
//! summary, and verifies every decision against the same claims adjudicated
//! in process (same pure code, no bus): they must be identical.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::domain::json;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::domain::{FseInput, Route, Status};
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{DecisionRec, FseDecided, FseRejected};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::money::Cents;
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Progress, Shared, StageKind, topics};

use super::adjudicate::{AdjudicateArgs, adjudicator};
use super::gen_data::{GenArgs, generate};
use super::{for_each_line, open_bus, progress_line, pseudonym_key};

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 100_000)]
    pub claims: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Working directory (emptied of a previous demo's bus and state).
    #[arg(long, default_value = "./data/demo")]
    pub data: PathBuf,
    /// Run on Kafka instead of the local log (`kafka://HOST:PORT`).
    #[arg(long)]
    pub bus: Option<String>,
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
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

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let gen_dir = args.data.join("gen");
    let gen_args = GenArgs {
        seed: args.seed,
        claims: args.claims,
        out: gen_dir.clone(),
        professionals: None,
        beneficiaries: None,
        bad_per_mille: 20,
        rsa_per_mille: 100,
        threads: None,
        rules: None,
    };
    eprintln!(
        "1/5 generating a world and {} signed claims (seed {})",
        args.claims, args.seed
    );
    let (manifest, _) = generate(&gen_args)?;

    let bus_url = match &args.bus {
        Some(url) => url.clone(),
        None => {
            let dir = args.data.join("bus");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
            }
            format!("local:{}", dir.display())
        }
    };
    let state = args.data.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| state.display().to_string())?;
    }
    let bus = open_bus(&bus_url)?;
    runtime::ensure_topics(bus.as_ref(), args.partitions)?;
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;

    eprintln!(
        "2/5 publishing reference data and submitting claims to {}",
        bus.describe()
    );
    let started = Instant::now();
    {
        let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms)?;
        for_each_line(&gen_dir.join("rights.jsonl"), |_, line| {
            let rights: RightsInput = serde_json::from_str(line)?;
            ingest.rights(&rights)?;
            Ok(())
        })?;
        for_each_line(&gen_dir.join("pki.jsonl"), |_, line| {
            ingest.pki(&PkiRecord::from_json(line)?)?;
            Ok(())
        })?;
        for_each_line(&gen_dir.join("eu_institutions.jsonl"), |_, line| {
            let input: EuInstitutionInput = serde_json::from_str(line)?;
            ingest.institution(&input)?;
            Ok(())
        })?;
        let mut submitted = 0u64;
        for_each_line(&gen_dir.join("claims.jsonl"), |_, line| {
            let input: FseInput = json::from_value(&serde_json::from_str(line)?, FSE_OBJECTS)?;
            ingest.submit(&input)?;
            submitted += 1;
            if submitted.is_multiple_of(10_000) {
                progress_line(
                    "submit",
                    submitted,
                    args.claims as u64,
                    submitted as f64 / started.elapsed().as_secs_f64(),
                );
            }
            Ok(())
        })?;
        ingest.flush()?;
        progress_line(
            "submit",
            submitted,
            args.claims as u64,
            submitted as f64 / started.elapsed().as_secs_f64(),
        );
        eprintln!();
    }

    eprintln!("3/5 running validation → entitlement → routing → reimbursement");
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        rules: Arc::new(clearing_pipeline::rules::Rules::embedded()?),
        registry: Arc::new(SchemaRegistry::new()?),
        pseudonyms: pseudonyms.clone(),
        trust_unsigned: false,
        state_dir: state.clone(),
        group: "demo".into(),
        batch_max: 2000,
    });
    let total = args.claims as u64;
    let run_started = Instant::now();
    let report = |p: &Progress| {
        let decided = p
            .stats
            .iter()
            .map(|(kind, s)| match kind {
                StageKind::Reimbursement => s.passed + s.rejected + s.dead_letters,
                _ => s.rejected + s.dead_letters,
            })
            .sum::<u64>();
        progress_line(
            "decide",
            decided,
            total,
            decided as f64 / run_started.elapsed().as_secs_f64().max(1e-9),
        );
    };
    let stop = AtomicBool::new(false);
    let progress = runtime::run_stages(
        shared,
        &StageKind::ALL,
        &stop,
        true,
        Duration::from_millis(250),
        &report,
    )?;
    let run_seconds = run_started.elapsed().as_secs_f64();
    eprintln!();

    eprintln!("4/5 reading the decisions");
    let mut tally = Tally::default();
    for topic in [topics::FSE_DECIDED, topics::FSE_REJECTED] {
        for partition in 0..bus.partition_count(topic)? {
            let mut from = 0;
            loop {
                let records = bus.read(topic, partition, from, 8192)?;
                let Some(last) = records.last() else { break };
                from = last.offset + 1;
                for record in &records {
                    let decision = if topic == topics::FSE_DECIDED {
                        registry
                            .decode_single::<FseDecided>(&record.value)?
                            .decision
                    } else {
                        registry
                            .decode_single::<FseRejected>(&record.value)?
                            .decision
                    };
                    match decision.status {
                        Status::Paid => {
                            tally.paid += 1;
                            let route = route_name(decision.route);
                            *tally.amo_by_route.entry(route).or_default() +=
                                Cents::new(decision.amo_cents);
                            *tally.paid_by_route.entry(route).or_default() += 1;
                        }
                        Status::Rejected => {
                            tally.rejected += 1;
                            for reason in &decision.reasons {
                                *tally.by_code.entry(reason.code.clone()).or_default() += 1;
                            }
                        }
                    }
                    let key = format!(
                        "{}/{}",
                        decision.fse_id.clone().unwrap_or_default(),
                        decision.beneficiary_key.clone().unwrap_or_default()
                    );
                    tally.decisions.entry(key).or_default().push(decision);
                }
            }
        }
    }
    let dead_letters: u64 = progress.stats.iter().map(|(_, s)| s.dead_letters).sum();

    eprintln!(
        "5/5 verifying: the same claims adjudicated in process, and the recorded run replayed, must give the same decisions"
    );
    let mut reference = adjudicator(&AdjudicateArgs {
        rights: Some(gen_dir.join("rights.jsonl")),
        pki: Some(gen_dir.join("pki.jsonl")),
        institutions: Some(gen_dir.join("eu_institutions.jsonl")),
        rules: None,
        trust_unsigned: false,
        strict: false,
    })?;
    let mut compared = 0u64;
    let mut differing = Vec::new();
    let mut expected: BTreeMap<String, Vec<DecisionRec>> = BTreeMap::new();
    for_each_line(&gen_dir.join("claims.jsonl"), |_, line| {
        let decision = reference.decide_line(line)?;
        let key = format!(
            "{}/{}",
            decision.fse_id.clone().unwrap_or_default(),
            decision.beneficiary_key.clone().unwrap_or_default()
        );
        expected
            .entry(key)
            .or_default()
            .push(decision_rec(&decision));
        Ok(())
    })?;
    // Topics are read topic by topic, the file in order: compare each key's
    // decisions as a multiset.
    let canonical = |list: &[DecisionRec]| {
        let mut list: Vec<String> = list.iter().map(|d| format!("{d:?}")).collect();
        list.sort();
        list
    };
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

    println!();
    println!(
        "clearing demo — {} claims, seed {}, bus {}",
        args.claims,
        args.seed,
        bus.describe()
    );
    println!("  paid      {:>9}", tally.paid);
    println!("  rejected  {:>9}", tally.rejected);
    println!("  dead letters {:>6}", dead_letters);
    println!("  rejections by code:");
    for (code, n) in &tally.by_code {
        let planted = manifest.bad_claims.get(code).copied().unwrap_or(0);
        println!("    {code:<32} {n:>7}   (planted by the generator: {planted})");
    }
    if tally
        .by_code
        .get("not_covered_on_care_date")
        .copied()
        .unwrap_or(0)
        > 0
    {
        println!("    (beyond the planted ones, not_covered_on_care_date also falls on claims of");
        println!("     beneficiaries whose coverage the generator ended mid-period)");
    }
    println!("  AMO paid by route:");
    for (route, amount) in &tally.amo_by_route {
        println!(
            "    {route:<10} {:>9} claims  {:>15} EUR",
            tally.paid_by_route.get(route).copied().unwrap_or(0),
            amount.to_string()
        );
    }
    println!(
        "  pipeline: {:.1} s for {} claims through 4 stages = {:.0} claims/s ({:.0}x the billion-a-year mean of 31.7/s)",
        run_seconds,
        args.claims,
        args.claims as f64 / run_seconds.max(1e-9),
        args.claims as f64 / run_seconds.max(1e-9) / 31.7
    );
    println!(
        "  verification: {compared} decisions compared with in-process adjudication, {} differ",
        differing.len()
    );
    for key in differing.iter().take(5) {
        println!("    differs: {key}");
    }
    // Verify by replay (design.md §5): every stage partition re-run from its
    // recorded inputs must give its recorded outputs and checkpoint chains.
    let setup = clearing_replay::verify::Setup {
        bus: bus.clone(),
        rules: Arc::new(clearing_pipeline::rules::Rules::embedded()?),
        registry: Arc::new(SchemaRegistry::new()?),
        pseudonyms: pseudonyms.clone(),
        trust_unsigned: false,
    };
    let jobs = super::replay::jobs(bus.as_ref(), &StageKind::ALL, &[])?;
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
    Ok(if differing.is_empty() && replayed.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
