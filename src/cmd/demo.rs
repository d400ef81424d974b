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

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use clap::Args;
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::bus::{Bus, BusError};
use clearing_pipeline::domain::json;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::domain::{FseInput, Route, Status};
use clearing_pipeline::events::convert::decision_rec;
use clearing_pipeline::events::model::{
    AmcClaim, DecisionRec, EuClaim, FseDecided, FseRejected, LedgerEntry, PaymentOrder,
    ProfessionalReturn, ReturnKind,
};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::money::Cents;
use clearing_pipeline::outbound::calendar::{HalfYear, is_working_day};
use clearing_pipeline::pki::PkiRecord;
use clearing_pipeline::refdata::EuInstitutionInput;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Progress, Shared, StageKind, topics};

use super::adjudicate::{AdjudicateArgs, adjudicator};
use super::args::{Partitions, RulesArgs, Signatures};
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

/// The bus URL a demo runs on: the local log under `--data` (emptied), or
/// `--bus` with a fresh namespace added to a Kafka URL that names none. A
/// demo's checks (every decision on the bus against the claims it generated,
/// the reconciliation, the replay) only hold on a bus that carries that run
/// alone; a fresh namespace gives one without deleting anybody's topics.
fn demo_bus_url(args: &DemoArgs) -> Result<String> {
    match &args.bus {
        None => {
            let dir = args.data.join("bus");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
            }
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
    let bus_url = demo_bus_url(&args)?;
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
        rules: RulesArgs::default(),
    };
    eprintln!(
        "1/5 generating a world and {} signed claims (seed {})",
        args.claims, args.seed
    );
    let (manifest, _) = generate(&gen_args)?;

    let state = args.data.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| state.display().to_string())?;
    }
    runtime::ensure_topics(bus.as_ref(), args.partitions.count)?;
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

    eprintln!(
        "3/5 running validation → entitlement → routing → reimbursement → settlement, returns, ledger"
    );
    let shared_rules = clearing_pipeline::rules::Rules::embedded()?;
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        rules: Arc::new(shared_rules.clone()),
        registry: Arc::new(SchemaRegistry::new()?),
        pseudonyms: pseudonyms.clone(),
        trust_unsigned: false,
        state_dir: state.clone(),
        group: "demo".into(),
        batch_max: 2000,
        verify_threads: clearing_pipeline::runtime::cores(),
        workers_per_stage: clearing_pipeline::runtime::default_workers_per_stage(
            clearing_pipeline::runtime::DEFAULT_LAYOUT,
        ),
        layout: clearing_pipeline::runtime::DEFAULT_LAYOUT,
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
        shared.clone(),
        &StageKind::ALL,
        &stop,
        true,
        Duration::from_millis(250),
        &report,
    )?;
    let run_seconds = run_started.elapsed().as_secs_f64();
    eprintln!();
    // Close the books: once the day after the last receipt (batches, the
    // payment run, half-years already over), once after the last half-year
    // ends (its EU claims). Dated from the data, never from the clock.
    let closes = outbound_closes(bus.as_ref(), &registry, &shared_rules)?;
    {
        let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms)?;
        for on in &closes {
            ingest.close(*on, &shared_rules)?;
        }
        ingest.flush()?;
    }
    if let (Some(first), Some(last)) = (closes.first(), closes.last()) {
        eprintln!(
            "   closing the outbound books: {} closes (payment runs) from {first} to {last}",
            closes.len()
        );
    }
    let ledger_progress = runtime::run_stages(
        shared.clone(),
        &[StageKind::Ledger],
        &stop,
        true,
        Duration::from_millis(250),
        &|_| {},
    )?;

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
    let dead_letters: u64 = progress
        .stats
        .iter()
        .chain(&ledger_progress.stats)
        .map(|(_, s)| s.dead_letters)
        .sum();
    let outbound = read_outbound(bus.as_ref(), &registry)?;
    let reconciliation = outbound.reconcile(&tally.decisions);

    eprintln!(
        "5/5 verifying: the same claims adjudicated in process, and the recorded run replayed, must give the same decisions"
    );
    let mut reference = adjudicator(&AdjudicateArgs {
        rights: Some(gen_dir.join("rights.jsonl")),
        pki: Some(gen_dir.join("pki.jsonl")),
        institutions: Some(gen_dir.join("eu_institutions.jsonl")),
        rules: RulesArgs::default(),
        signatures: Signatures::default(),
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
        "  pipeline: {:.1} s for {} claims through 7 stages = {:.0} claims/s ({:.0}x the billion-a-year mean of 31.7/s)",
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
    outbound.print();
    println!(
        "  reconciliation: every FSE one final return, orders = paid amounts, EU claims = visitors' payments, batches count every FSE: {}",
        if reconciliation.is_empty() {
            "ok"
        } else {
            "FAILED"
        }
    );
    for problem in reconciliation.iter().take(5) {
        println!("    {problem}");
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
    println!("  replay it again: clearing replay --bus {bus_url}");
    Ok(
        if differing.is_empty() && reconciliation.is_empty() && replayed.identical {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// The close dates of the demo's books: a payment run on every working day
/// from the first receipt to the last (each day's receipts are paid by that
/// day's run), then one close after the last receipt and after the end of its
/// half-year (its EU claims). Dated from the data, never from the clock.
fn outbound_closes(
    bus: &dyn clearing_pipeline::bus::Bus,
    registry: &SchemaRegistry,
    rules: &clearing_pipeline::rules::Rules,
) -> Result<Vec<NaiveDate>> {
    let mut range: Option<(NaiveDate, NaiveDate)> = None;
    read_all(bus, topics::OUTBOUND_LEDGER, |bytes| {
        let entry: LedgerEntry = registry.decode_single(bytes)?;
        if let Some(o) = entry.outcome {
            let d = o.received_on;
            range = Some(range.map_or((d, d), |(lo, hi)| (lo.min(d), hi.max(d))));
        }
        Ok(())
    })?;
    let Some((first, last)) = range else {
        return Ok(Vec::new());
    };
    let mut closes = Vec::new();
    let mut day = first;
    while day <= last {
        if is_working_day(&rules.calendar, day)? {
            closes.push(day);
        }
        day = day.succ_opt().context("date overflow")?;
    }
    let after = last.succ_opt().context("date overflow")?;
    let half_over = HalfYear::of(last)
        .end()
        .succ_opt()
        .context("date overflow")?;
    closes.push(after);
    if half_over > after {
        closes.push(half_over);
    }
    Ok(closes)
}

/// What left the insurer, read back from the outbound topics.
#[derive(Default)]
struct Outbound {
    /// (FSE id, kind) of every RSP.
    rsp: Vec<(String, ReturnKind)>,
    arl_positive: u64,
    arl_negative: u64,
    arl_fses: u64,
    orders: u64,
    ordered: Cents,
    imputed: Cents,
    ordered_fses: BTreeMap<String, u64>,
    guaranteed: u64,
    late: u64,
    penalties: Cents,
    amc_claims: u64,
    amc_total: Cents,
    eu_claims: u64,
    eu_not_receivable: u64,
    eu_total: Cents,
}

fn read_all(
    bus: &dyn clearing_pipeline::bus::Bus,
    topic: &str,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for partition in 0..bus.partition_count(topic)? {
        let mut from = 0;
        loop {
            let records = bus.read(topic, partition, from, 8192)?;
            let Some(tail) = records.last() else { break };
            from = tail.offset + 1;
            for record in &records {
                each(&record.value)?;
            }
        }
    }
    Ok(())
}

fn read_outbound(
    bus: &dyn clearing_pipeline::bus::Bus,
    registry: &SchemaRegistry,
) -> Result<Outbound> {
    let mut out = Outbound::default();
    read_all(bus, topics::RETURNS_PROFESSIONAL, |bytes| {
        let r: ProfessionalReturn = registry.decode_single(bytes)?;
        match r.kind {
            ReturnKind::ArlPositive | ReturnKind::ArlNegative => {
                if r.kind == ReturnKind::ArlPositive {
                    out.arl_positive += 1;
                } else {
                    out.arl_negative += 1;
                }
                out.arl_fses += u64::try_from(r.fse_count.unwrap_or(0)).unwrap_or(0);
            }
            kind => out.rsp.push((r.fse_id.unwrap_or_default(), kind)),
        }
        Ok(())
    })?;
    read_all(bus, topics::PAYMENTS_ORDERS, |bytes| {
        let o: PaymentOrder = registry.decode_single(bytes)?;
        out.orders += 1;
        out.ordered += Cents::new(o.amount_cents);
        out.imputed += Cents::new(o.imputed_cents);
        for id in o.fse_ids {
            *out.ordered_fses.entry(id).or_default() += 1;
        }
        out.guaranteed += o.guarantees.len() as u64;
        out.late += o.guarantees.iter().filter(|g| g.late).count() as u64;
        out.penalties += Cents::new(o.late_penalty_cents);
        Ok(())
    })?;
    read_all(bus, topics::AMC_CLAIMS, |bytes| {
        let c: AmcClaim = registry.decode_single(bytes)?;
        out.amc_claims += 1;
        out.amc_total += Cents::new(c.amount_cents);
        Ok(())
    })?;
    read_all(bus, topics::EU_CLAIMS, |bytes| {
        let c: EuClaim = registry.decode_single(bytes)?;
        out.eu_claims += 1;
        out.eu_not_receivable += u64::from(!c.receivable);
        out.eu_total += Cents::new(c.amount_cents);
        Ok(())
    })?;
    Ok(out)
}

impl Outbound {
    /// Every problem found between the decisions and what left: empty when
    /// every FSE has exactly one final return of its kind, the orders add up
    /// to the paid amounts, the EU claims to the visitors' payments, and the
    /// batches count every FSE.
    fn reconcile(&self, decisions: &BTreeMap<String, Vec<DecisionRec>>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut want: BTreeMap<(String, bool), u64> = BTreeMap::new();
        let mut paid = Cents::ZERO;
        let mut imputed = Cents::ZERO;
        let mut eu = Cents::ZERO;
        let mut count = 0u64;
        for d in decisions.values().flatten() {
            count += 1;
            let is_paid = d.status == Status::Paid;
            *want
                .entry((d.fse_id.clone().unwrap_or_default(), is_paid))
                .or_default() += 1;
            if is_paid {
                imputed += Cents::new(d.imputed_cents);
                let amount = Cents::new(d.paid_to_professional_cents + d.paid_to_insured_cents);
                paid += amount;
                if d.route == Some(Route::Eu) {
                    eu += amount;
                }
            }
        }
        let mut got: BTreeMap<(String, bool), u64> = BTreeMap::new();
        for (id, kind) in &self.rsp {
            *got.entry((id.clone(), *kind == ReturnKind::RspPayment))
                .or_default() += 1;
        }
        if got != want {
            let missing = want.iter().find(|(k, n)| got.get(*k) != Some(n));
            problems.push(format!(
                "final returns differ from decisions ({} returns, {count} decisions; first: {:?})",
                self.rsp.len(),
                missing.map(|(k, _)| k)
            ));
        }
        if self.ordered != paid {
            problems.push(format!(
                "payment orders total {} EUR, decisions paid {} EUR",
                self.ordered, paid
            ));
        }
        if self.imputed != imputed {
            problems.push(format!(
                "payment orders impute {} EUR, decisions imputed {} EUR",
                self.imputed, imputed
            ));
        }
        if self.ordered_fses.values().any(|n| *n > 2) {
            problems.push("an FSE appears in more than two orders".into());
        }
        if self.eu_total != eu {
            problems.push(format!(
                "EU claims total {} EUR, visitors were paid {} EUR",
                self.eu_total, eu
            ));
        }
        if self.arl_fses != count {
            problems.push(format!(
                "batch acknowledgements count {} FSEs, {count} were decided",
                self.arl_fses
            ));
        }
        problems
    }

    fn print(&self) {
        let rsp_paid = self
            .rsp
            .iter()
            .filter(|(_, k)| *k == ReturnKind::RspPayment)
            .count();
        println!("  outbound:");
        println!(
            "    returns      {:>9} RSP ({} payment, {} rejection), {} ARL ({} positive, {} negative)",
            self.rsp.len(),
            rsp_paid,
            self.rsp.len() - rsp_paid,
            self.arl_positive + self.arl_negative,
            self.arl_positive,
            self.arl_negative
        );
        println!(
            "    payments     {:>9} orders {:>15} EUR; {} tiers-payant FSEs guaranteed, {} late, penalties {} EUR",
            self.orders,
            self.ordered.to_string(),
            self.guaranteed,
            self.late,
            self.penalties
        );
        println!(
            "    amc claims   {:>9}        {:>15} EUR",
            self.amc_claims,
            self.amc_total.to_string()
        );
        println!(
            "    eu claims    {:>9}        {:>15} EUR ({} not receivable: introduced late)",
            self.eu_claims,
            self.eu_total.to_string(),
            self.eu_not_receivable
        );
    }
}
