//! Crash soak on the local log: a controller starts `clearing run` with a
//! random set of stages and a random batch size, SIGKILLs it at a random
//! moment, and starts it again, many times over one run; then lets it finish.
//! Kill points land everywhere a process can be: opening and restoring its
//! stores (a fifth of the delays are shorter than a start), reading,
//! deciding, producing, between the bus flush and the sled flush, and with
//! some stages far behind others (runs of a subset of the stages).
//!
//! At the end: the outputs are byte for byte those of a clean run of the same
//! input (every output partition, in order), every submitted FSE has exactly
//! one final outcome (decided, rejected or dead-lettered), and every decision's
//! payments add up (professional + insured + imputed = AMO + CSS + deferred),
//! with the same totals as the clean run. Then the closes are published on
//! both runs and the killed one is SIGKILLed a quarter as many times more
//! while the ledger emits: outbound events and the outbound stages' dead
//! letters equal the clean run's (multisets). Last, every FSE's outcome is
//! the one `clearing adjudicate` decides for it in process
//! (`common::assert_outcomes_match_adjudicate`). The subsets are drawn from
//! all seven stages.
//!
//! The local log has one owner process at a time (a lock file), so the
//! stages run in one process here; the multi-process variant is Kafka's.
//!
//! - `cargo test --test crash_soak` runs the bounded variant (CI);
//! - `scripts/crash-soak.sh CLAIMS KILLS` the long one (release build, the
//!   `#[ignore]`d test, CRASH_SOAK_CLAIMS / CRASH_SOAK_KILLS / CRASH_SOAK_SEED).

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::local::{CRASH_IMAGE_ENV, LocalLog};
use clearing_pipeline::events::model::{DecisionRec, FseDecided};
use clearing_pipeline::events::registry::SchemaRegistry;

use clearing_pipeline::state::SledStore;

use common::{
    Rng, assert_same_outputs, clearing, output_count, outputs, pipe, prepare, publish_refs,
};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_to_end(bus: &Path) -> Duration {
    let started = Instant::now();
    let output = clearing()
        .args(["run", "--until-caught-up"])
        .arg("--bus")
        .arg(format!("local:{}", bus.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// The stages that decide: each FSE's outcome is on their outputs.
const STAGES: [&str; 4] = ["validation", "entitlement", "routing", "reimbursement"];

/// Every stage `clearing run` has, the outbound ones after the deciding
/// ones: the random subsets are drawn from these.
const ALL_STAGES: [&str; 7] = [
    "validation",
    "entitlement",
    "routing",
    "reimbursement",
    "settlement",
    "returns",
    "ledger",
];

fn start(bus: &Path, rng: &mut Rng, log: &std::fs::File) -> (Child, String, usize) {
    start_with(bus, rng, log, &[])
}

/// [`start`], with variables in the process's environment (a fault mode).
fn start_with(
    bus: &Path,
    rng: &mut Rng,
    log: &std::fs::File,
    envs: &[(&str, &str)],
) -> (Child, String, usize) {
    // Mostly every stage; sometimes a random subset, leaving the others
    // behind to catch up later.
    let stages = if rng.below(3) == 0 {
        let mask = 1 + rng.below((1 << ALL_STAGES.len()) - 1);
        ALL_STAGES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
            .join(",")
    } else {
        "all".to_string()
    };
    let batch = [1, 7, 53, 97, 500, 2000][rng.below(6) as usize];
    // The partitions change hands between restarts as the split changes.
    let workers = [1, 2, 4][rng.below(3) as usize];
    let child = clearing()
        .args(["run", "--stages", &stages, "--batch", &batch.to_string()])
        .args(["--workers-per-stage", &workers.to_string()])
        .arg("--bus")
        .arg(format!("local:{}", bus.display()))
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap();
    (child, stages, batch)
}

/// Lets a started run work for a random delay (a fifth of the time a short
/// one, landing in its start: opening and restoring), then SIGKILLs it; a run
/// that ended by itself fails the soak with the runs' log. Says whether the
/// delay was short.
fn kill_while_running(
    (mut child, stages, batch): (Child, String, usize),
    rng: &mut Rng,
    mean_ms: u64,
    runs_log: &Path,
) -> bool {
    let short = rng.below(5) == 0;
    let delay = if short {
        10 + rng.below(250)
    } else {
        mean_ms / 2 + rng.below(mean_ms)
    };
    std::thread::sleep(Duration::from_millis(delay));
    if let Some(status) = child.try_wait().unwrap() {
        let text = std::fs::read_to_string(runs_log).unwrap();
        panic!("run --stages {stages} --batch {batch} exited by itself ({status}):\n{text}");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    short
}

/// Every record of a topic, all partitions.
fn records(log: &impl Bus, topic: &str) -> Vec<Vec<u8>> {
    (0..log.partition_count(topic).unwrap())
        .flat_map(|p| log.read(topic, p, 0, usize::MAX).unwrap())
        .map(|r| r.value)
        .collect()
}

/// (decisions paid, AMO total, professional + insured total), checking every
/// decision's payments add up.
fn payments(bus: &Path) -> (usize, i64, i64) {
    let log = LocalLog::open(bus).unwrap();
    let registry = SchemaRegistry::new().unwrap();
    let decided: Vec<DecisionRec> = records(&log, "fse.decided")
        .iter()
        .map(|v| registry.decode_single::<FseDecided>(v).unwrap().decision)
        .collect();
    for d in &decided {
        assert_eq!(
            d.paid_to_professional_cents + d.paid_to_insured_cents + d.imputed_cents,
            d.amo_cents + d.css_cents + d.deferred_cents,
            "{:?}: payments do not add up",
            d.fse_id
        );
    }
    (
        decided.len(),
        decided.iter().map(|d| d.amo_cents).sum(),
        decided
            .iter()
            .map(|d| d.paid_to_professional_cents + d.paid_to_insured_cents)
            .sum(),
    )
}

/// Every submitted FSE has exactly one final outcome.
fn assert_one_outcome_each(bus: &Path) {
    let log = LocalLog::open(bus).unwrap();
    let count = |topic: &str| records(&log, topic).len();
    let submitted = count("fse.submitted");
    let outcomes = count("fse.decided")
        + count("fse.rejected")
        + STAGES
            .iter()
            .map(|s| count(&format!("dlq.{s}")))
            .sum::<usize>();
    assert_eq!(outcomes, submitted, "final outcomes for {submitted} FSEs");
}

/// The soak's directory, kept at the end when `CRASH_SOAK_KEEP` is set.
fn soak_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("CRASH_SOAK_KEEP").is_some() {
        eprintln!("keeping {}", dir.path().display());
    }
    dir
}

/// The crashed run wrote the clean run's outputs byte for byte, one final
/// outcome per FSE, and the same payments, each adding up. Returns (output
/// records, decisions paid, AMO total, professional + insured total).
fn assert_same_as_the_clean_run(clean: &Path, crashed: &Path) -> (usize, usize, i64, i64) {
    let (want, got) = (outputs(clean), outputs(crashed));
    assert_same_outputs(&want, &got);
    assert_one_outcome_each(crashed);
    let (paid, amo, payments_total) = payments(crashed);
    assert_eq!((paid, amo, payments_total), payments(clean));
    (output_count(&got), paid, amo, payments_total)
}

fn soak(claims: usize, kills: usize, seed: u64) {
    eprintln!("crash soak: {claims} claims, {kills} kills, seed {seed}");
    let dir = soak_dir();
    let data = dir.path().join("data");
    let (clean, crashed) = (dir.path().join("clean"), dir.path().join("crashed"));
    prepare(&data, &clean, claims);
    prepare(&data, &crashed, claims);
    let clean_time = run_to_end(&clean);
    eprintln!("clean run: {clean_time:?}");

    // Kills spread over about the time a clean run takes (restores make
    // the crashed run longer, so the last kills still land mid-run).
    let mean_ms = (clean_time.as_millis() as u64 / kills as u64).max(60);
    let mut rng = Rng(seed | 1);
    let log = std::fs::File::create(dir.path().join("runs.log")).unwrap();
    let (mut landed, mut early) = (0, 0);
    let started = Instant::now();
    while landed < kills {
        let run = start(&crashed, &mut rng, &log);
        let short = kill_while_running(run, &mut rng, mean_ms, &dir.path().join("runs.log"));
        landed += 1;
        early += usize::from(short);
    }
    let crashed_time = started.elapsed() + run_to_end(&crashed);
    eprintln!(
        "crashed run: {landed} kills ({early} within 260 ms of a start, {} after {mean_ms} ms on average), {crashed_time:?} in all",
        landed - early
    );

    let root = dir.path().to_path_buf();
    if std::env::var_os("CRASH_SOAK_KEEP").is_some() {
        let _ = dir.keep();
    }
    let (written, paid, amo, payments_total) =
        with_runs_log(&root, || assert_same_as_the_clean_run(&clean, &crashed));
    eprintln!(
        "identical: {written} output records; {paid} paid, AMO {amo} cents, paid out {payments_total} cents"
    );
    let kills_at_close = (kills / 4).max(1);
    let outbound = close_and_compare_outbound(&clean, &crashed, kills_at_close, &mut rng, &log);
    let log = LocalLog::open(&crashed).unwrap();
    let checked = common::assert_outcomes_match_adjudicate(&data, &log);
    eprintln!(
        "outbound: {outbound} events identical after {kills_at_close} kills while the closes ran; \
         {checked} FSEs' outcomes are adjudicate's"
    );
}

/// Runs the soak's comparisons; if one fails, prints what the killed runs
/// said (their restores and catch-ups) before failing, since a soak's
/// directory is gone by the time anyone reads the failure.
fn with_runs_log<T>(dir: &Path, compare: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    match std::panic::catch_unwind(compare) {
        Ok(result) => result,
        Err(failure) => {
            let said = std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default();
            let lines: Vec<&str> = said.lines().collect();
            eprintln!("the killed runs said (last 200 of {} lines):", lines.len());
            for line in &lines[lines.len().saturating_sub(200)..] {
                eprintln!("  {line}");
            }
            std::panic::resume_unwind(failure)
        }
    }
}

/// The closes on both runs (after their claims, as on Kafka: an outbound
/// event depends on which outcomes precede a close). On the killed run,
/// `clearing run` with random stage subsets is SIGKILLed `kills` times while
/// the ledger emits what they release. Then the outbound events (returns,
/// complementary claims, payment orders, EU claims) and the outbound
/// stages' dead letters must be the clean run's, as multisets (the order
/// of `outbound.ledger`'s two producers is timing). Returns the events.
fn close_and_compare_outbound(
    clean: &Path,
    crashed: &Path,
    kills: usize,
    rng: &mut Rng,
    log: &std::fs::File,
) -> usize {
    for bus in [clean, crashed] {
        for on in common::CLOSES {
            common::ok(
                clearing()
                    .args(["close", "--bus", &format!("local:{}", bus.display())])
                    .args(["--on", on]),
            );
        }
    }
    run_to_end(clean);
    for _ in 0..kills {
        let (mut child, stages, batch) = start(crashed, rng, log);
        std::thread::sleep(Duration::from_millis(10 + rng.below(400)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run --stages {stages} --batch {batch} exited by itself ({status})");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    run_to_end(crashed);
    let (clean, crashed) = (
        LocalLog::open(clean).unwrap(),
        LocalLog::open(crashed).unwrap(),
    );
    let want = common::outbound_bodies(&clean);
    let got = common::outbound_bodies(&crashed);
    assert_eq!(got.len(), want.len(), "outbound events");
    assert!(got == want, "outbound events differ");
    assert!(!want.is_empty(), "the closes released nothing");
    assert_eq!(
        common::outbound_dead_letters(&crashed),
        common::outbound_dead_letters(&clean),
        "outbound dead letters"
    );
    want.len()
}

fn seed() -> u64 {
    env_or(
        "CRASH_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    )
}

/// The bounded variant, for CI: 20 kills over a few thousand claims.
#[test]
fn sigkill_twenty_times_over_a_run_changes_no_output_byte() {
    soak(4000, 20, seed());
}

/// The long soak (scripts/crash-soak.sh): 200,000 claims, 25 kills by default.
#[test]
#[ignore = "long: scripts/crash-soak.sh CLAIMS KILLS"]
fn crash_soak_long() {
    soak(
        env_or("CRASH_SOAK_CLAIMS", 200_000) as usize,
        env_or("CRASH_SOAK_KILLS", 25) as usize,
        seed(),
    );
}

/// The power-loss fault mode's variable, set on every process of the
/// power-loss soak's killed run.
const FAULT: [(&str, &str); 1] = [(CRASH_IMAGE_ENV, "1")];

/// What the power losses of a soak did, summed.
#[derive(Default)]
struct Losses {
    power: usize,
    files_cut: usize,
    bytes_cut: u64,
    entries_removed: usize,
    stores_put_back: usize,
    stores_removed: usize,
}

/// A power loss, the processes already killed: the log and the stores
/// become their crash images (half of the time with a random prefix of
/// each file's unsynced bytes kept, as a file system may have written them).
fn lose_power(bus: &Path, rng: &mut Rng, losses: &mut Losses) {
    let seed = (rng.below(2) == 0).then(|| rng.next());
    let image = LocalLog::crash_image(bus, seed).unwrap();
    let (put_back, removed) = SledStore::crash_image(&bus.join("state")).unwrap();
    losses.power += 1;
    losses.files_cut += image.files_cut;
    losses.bytes_cut += image.bytes_cut;
    losses.entries_removed += image.entries_removed;
    losses.stores_put_back += put_back;
    losses.stores_removed += removed;
}

/// `fse.submitted`, every partition, from a log opened in the fault mode
/// (its open's syncs must reach the journal, as a stage's would).
fn submitted(bus: &Path) -> Vec<Vec<u8>> {
    records(&LocalLog::open_with(bus, true).unwrap(), "fse.submitted")
}

/// Splits the data set's claims into `parts` files of consecutive lines.
fn claim_parts(data: &Path, parts: usize) -> Vec<(std::path::PathBuf, usize)> {
    let text = std::fs::read_to_string(data.join("claims.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let per = lines.len().div_ceil(parts);
    lines
        .chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let path = data.join(format!("claims.part{i}.jsonl"));
            std::fs::write(&path, chunk.join("\n") + "\n").unwrap();
            (path, chunk.len())
        })
        .collect()
}

/// Submits one part of the claims in the fault mode, loses power as soon
/// as `clearing submit` has said they were acknowledged, and checks that
/// every claim submitted so far is still on the log.
fn submit_part(bus: &Path, part: &Path, expected: usize, rng: &mut Rng, losses: &mut Losses) {
    pipe(
        clearing().envs(FAULT).args([
            "submit",
            "--ingest-clock",
            "simulated",
            "--bus",
            &format!("local:{}", bus.display()),
        ]),
        part,
    );
    lose_power(bus, rng, losses);
    assert_eq!(
        submitted(bus).len(),
        expected,
        "claims acknowledged by `clearing submit` lost by a power loss"
    );
}

/// The power-loss soak: as [`soak`], but the claims are submitted in four
/// parts between the kills, each followed by a power loss, and half of the
/// kills are power losses (the log and the stores turned into their crash
/// images before the restart); the other half are plain SIGKILLs, whose
/// restart reads what the page cache kept, which a later power loss may
/// take away. At the end: the same outputs byte for byte as a clean run,
/// `fse.submitted` the same, one outcome per FSE, payments that add up.
fn power_loss_soak(claims: usize, kills: usize, seed: u64) {
    eprintln!("power-loss soak: {claims} claims, {kills} kills, seed {seed}");
    let dir = soak_dir();
    let data = dir.path().join("data");
    let (clean, crashed) = (dir.path().join("clean"), dir.path().join("crashed"));
    prepare(&data, &clean, claims);
    let clean_time = run_to_end(&clean);
    eprintln!("clean run: {clean_time:?}");
    publish_refs(&data, &format!("local:{}", crashed.display()));
    let parts = claim_parts(&data, 4);

    // Longer than the SIGKILL soak's: each run starts by reading what the
    // last power loss left (stores put back or removed, changelogs read
    // again), and the kills must land in the work, not only in that.
    let mean_ms = (3 * clean_time.as_millis() as u64 / kills as u64).max(400);
    let mut rng = Rng(seed | 1);
    let mut losses = Losses::default();
    let log = std::fs::File::create(dir.path().join("runs.log")).unwrap();
    let started = Instant::now();
    let (mut submitted_so_far, mut next_part) = (0, 0);
    for landed in 0..kills {
        // The parts go in at even intervals of the kills, the first before any.
        while next_part < parts.len() && next_part * kills <= landed * parts.len() {
            let (part, lines) = &parts[next_part];
            submitted_so_far += lines;
            submit_part(&crashed, part, submitted_so_far, &mut rng, &mut losses);
            next_part += 1;
        }
        let run = start_with(&crashed, &mut rng, &log, &FAULT);
        kill_while_running(run, &mut rng, mean_ms, &dir.path().join("runs.log"));
        if rng.below(2) == 0 {
            lose_power(&crashed, &mut rng, &mut losses);
        }
    }
    // How far the killed runs got (the last run does the rest).
    let written = output_count(&common::bus_outputs(
        &LocalLog::open_with(&crashed, true).unwrap(),
    ));
    for (part, lines) in &parts[next_part..] {
        submitted_so_far += lines;
        submit_part(&crashed, part, submitted_so_far, &mut rng, &mut losses);
    }
    let crashed_time = started.elapsed() + run_to_end(&crashed);
    eprintln!(
        "crashed run: {kills} kills, {} of them power losses with the submits'; {} files cut \
         ({} bytes written past their last sync), {} entries removed, {} stores put back as of \
         their last flush, {} removed; {written} output records written before the last run; \
         {crashed_time:?} in all",
        losses.power,
        losses.files_cut,
        losses.bytes_cut,
        losses.entries_removed,
        losses.stores_put_back,
        losses.stores_removed
    );
    let root = dir.path().to_path_buf();
    if std::env::var_os("CRASH_SOAK_KEEP").is_some() {
        let _ = dir.keep();
    }
    assert_eq!(
        records(&LocalLog::open(&crashed).unwrap(), "fse.submitted"),
        records(&LocalLog::open(&clean).unwrap(), "fse.submitted"),
        "fse.submitted differs from the clean run's"
    );
    let (written, paid, amo, payments_total) =
        with_runs_log(&root, || assert_same_as_the_clean_run(&clean, &crashed));
    eprintln!(
        "identical: {written} output records and {submitted_so_far} submitted; {paid} paid, AMO {amo} cents, paid out {payments_total} cents"
    );
}

/// The bounded power-loss variant, for CI.
#[test]
fn power_losses_over_a_run_lose_nothing_acknowledged_and_change_no_output_byte() {
    power_loss_soak(3000, 16, seed());
}

/// The long power-loss soak (`scripts/crash-soak.sh power CLAIMS KILLS`).
#[test]
#[ignore = "long: scripts/crash-soak.sh power CLAIMS KILLS"]
fn power_loss_soak_long() {
    power_loss_soak(
        env_or("CRASH_SOAK_CLAIMS", 100_000) as usize,
        env_or("CRASH_SOAK_KILLS", 30) as usize,
        seed(),
    );
}

/// The adjudicate check can fail: on a clean run it agrees, and it names the
/// one FSE whose outcome was changed by a cent, given another rejection
/// code, lost, duplicated or dead-lettered, and a record written twice to
/// `fse.decided` fails the whole check.
#[test]
fn the_adjudicate_check_catches_one_changed_outcome() {
    use common::{FseOutcome, adjudicated_outcomes, bus_outcomes, outcome_differences};
    let dir = tempfile::tempdir().unwrap();
    let (data, bus) = (dir.path().join("data"), dir.path().join("bus"));
    prepare(&data, &bus, 400);
    run_to_end(&bus);
    let want = adjudicated_outcomes(&data);
    let (got, submitted) = bus_outcomes(&LocalLog::open(&bus).unwrap());
    assert_eq!(submitted, 400);
    assert_eq!(outcome_differences(&want, &got), Vec::<String>::new());
    let first = |status: clearing_pipeline::domain::Status| -> String {
        got.iter()
            .find(|(_, list)| {
                matches!(&list[..], [FseOutcome::Decision { decision, .. }] if decision.status == status)
            })
            .map(|(key, _)| key.clone())
            .expect("a decision of that status")
    };
    let (paid, rejected) = (
        first(clearing_pipeline::domain::Status::Paid),
        first(clearing_pipeline::domain::Status::Rejected),
    );
    let changed = |key: &str, change: &dyn Fn(&mut Vec<FseOutcome>)| -> Vec<String> {
        let mut got = got.clone();
        change(got.get_mut(key).unwrap());
        outcome_differences(&want, &got)
    };
    type Change<'a> = &'a dyn Fn(&mut Vec<FseOutcome>);
    let cases: [(&str, &str, Change); 5] = [
        ("a cent more AMO", &paid, &|list| {
            if let FseOutcome::Decision { decision, .. } = &mut list[0] {
                decision.amo_cents += 1;
            }
        }),
        ("another rejection code", &rejected, &|list| {
            if let FseOutcome::Decision { decision, .. } = &mut list[0] {
                decision.reasons[0].code = "not_entitled".into();
            }
        }),
        ("lost", &paid, &|list| list.clear()),
        ("duplicated", &rejected, &|list| list.push(list[0].clone())),
        ("dead-lettered", &paid, &|list| {
            list[0] = FseOutcome::DeadLetter {
                topic: "dlq.validation".into(),
                error: "undecodable".into(),
            }
        }),
    ];
    for (what, key, change) in cases {
        let differences = changed(key, change);
        assert_eq!(differences.len(), 1, "{what}: {differences:?}");
        assert!(differences[0].starts_with(key), "{what}: {differences:?}");
        eprintln!("{what}: {}", differences[0]);
    }
    a_decision_written_twice_fails_the_check(&data, &bus);
}

/// On the bus: one decision written twice.
fn a_decision_written_twice_fails_the_check(data: &Path, bus: &Path) {
    {
        use clearing_pipeline::bus::Bus;
        let log = LocalLog::open(bus).unwrap();
        let record = log.read("fse.decided", 0, 0, 1).unwrap().remove(0);
        let mut producer = log.producer().unwrap();
        producer
            .send("fse.decided", 0, &record.key, &record.value, 0)
            .unwrap();
        producer.flush().unwrap();
    }
    let log = LocalLog::open(bus).unwrap();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        common::assert_outcomes_match_adjudicate(data, &log)
    }));
    let message = failed.expect_err("a duplicated decision passed the check");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        text.contains("1 FSE(s) whose outcome is not adjudicate's")
            && text.contains("2 outcome(s) in the run, 1 adjudicated"),
        "{text}"
    );
}
