//! Crash soak on Apache Kafka, multi-process: one `clearing run --stages S`
//! process per stage, all seven (two for validation and reimbursement, which
//! then split their partitions), each with its own store directory. A
//! controller SIGKILLs a random process at random moments and restarts it
//! after a random pause, so kills land mid-batch, during restores of stale or
//! missing stores, and during the rebalances each death and restart causes.
//! The broker is faulted too:
//! - one broker (default): restarted half way through;
//! - `CRASH_SOAK_CLUSTER=1`, three brokers (replication factor 3,
//!   `min.insync.replicas=2`): half way through, the broker leading the most
//!   partitions is SIGKILLed and restarted 5 s later; at two thirds, the
//!   whole cluster is stopped and started again;
//! - `CRASH_SOAK_PAUSE=1`: at a third, a member is SIGSTOPped past the
//!   group's session timeout, then resumed (a zombie).
//!
//! At the end, after the same closes on both sides, the outputs on Kafka are
//! byte for byte those of a clean run of the same input on the local log
//! (claim path and dead letters per partition; outbound events as a
//! multiset of bodies), every FSE has exactly one outcome, and that outcome
//! is the one `clearing adjudicate` decides for it in process
//! (`common::assert_outcomes_match_adjudicate`).
//!
//! Batch sizes are drawn per start from 1, 50, 500 and 2,000 records, so
//! kills land on every batch shape. Once the kills stop, a member left on a
//! batch of one record is stopped cleanly and restarted on 500 (at one
//! record per batch each claim costs three broker round trips in sequence,
//! and the drain would be slow).
//!
//! Runs its own broker (ops/broker.sh on free ports, in a temporary
//! directory), so it never touches a shared one. `#[ignore]`d (it takes
//! minutes): `scripts/crash-soak.sh kafka [CLAIMS] [KILLS]`, or
//! `cargo test --test crash_soak_kafka -- --ignored --nocapture`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clearing_pipeline::bus::Bus;
use clearing_pipeline::bus::kafka::KafkaBus;

use clearing_pipeline::bus::local::LocalLog;
use common::{
    CLOSES, Outputs, Rng, assert_same_outputs, bus_outputs, clearing, outbound_bodies,
    output_count, outputs, pipe, prepare,
};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An Apache Kafka of this test's own (one node or three), stopped on drop.
struct Broker {
    dir: PathBuf,
    ports: Vec<u16>,
}

impl Broker {
    fn script(&self, verb: &str) {
        let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/broker.sh"))
            .args(verb.split(' '))
            .env("CLEARING_BROKER_DIR", &self.dir)
            .env("CLEARING_BROKER_PORTS", join(&self.ports))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ops/broker.sh {verb}");
    }

    fn start(dir: &Path, nodes: usize) -> Broker {
        // Listeners bound together so no two of the ports are the same.
        let listeners: Vec<_> = (0..2 * nodes)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(listeners);
        let broker = Broker {
            dir: dir.to_path_buf(),
            ports: ports[..nodes].to_vec(),
        };
        let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/broker.sh"))
            .args(if nodes == 1 {
                vec!["start"]
            } else {
                vec!["cluster", "start"]
            })
            .env("CLEARING_BROKER_DIR", &broker.dir)
            .env("CLEARING_BROKER_PORTS", join(&ports[..nodes]))
            .env("CLEARING_CONTROLLER_PORTS", join(&ports[nodes..]))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ops/broker.sh start");
        broker
    }

    fn bootstrap(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node (1-based, its `node.id`) leading the most partitions of the
    /// soak's topics.
    fn busiest(&self, namespace: &str) -> usize {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        let metadata = client
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        let mut leading = vec![0usize; self.ports.len() + 1];
        for topic in metadata.topics() {
            if topic.name().starts_with(namespace) {
                for p in topic.partitions() {
                    if let Ok(id) = usize::try_from(p.leader())
                        && id < leading.len()
                    {
                        leading[id] += 1;
                    }
                }
            }
        }
        (1..leading.len())
            .max_by_key(|id| leading[*id])
            .unwrap_or(1)
    }
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/broker.sh"))
            .arg("stop")
            .env("CLEARING_BROKER_DIR", &self.dir)
            .stdout(Stdio::null())
            .status();
    }
}

/// One stage process: what it runs, and the process while it lives.
struct Member {
    name: String,
    stage: &'static str,
    state: PathBuf,
    child: Option<Child>,
    batch: usize,
    /// What `clearing run` must be told to accept on this broker: all of it
    /// on one (`--simulation`); on three, topics are replicated as a
    /// production run requires, so only the connection in clear and the
    /// development pseudonym secret (this proves the replication check
    /// passes a cluster that meets it).
    accept: &'static [&'static str],
}

impl Member {
    fn start(&mut self, url: &str, batch: usize, log: &std::fs::File) {
        self.start_with(url, batch, log, &[]);
    }

    /// [`Member::start`], with variables in the process's environment (a fault mode).
    fn start_with(&mut self, url: &str, batch: usize, log: &std::fs::File, envs: &[(&str, &str)]) {
        let child = clearing()
            .envs(envs.iter().copied())
            .args(["run", "--stages", self.stage, "--group", "soak"])
            .args(self.accept)
            .args(["--batch", &batch.to_string(), "--bus", url])
            .arg("--state")
            .arg(&self.state)
            .stdout(Stdio::null())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.batch = batch;
    }

    /// SIGKILLs the process. One that had already exited is judged as
    /// [`Member::supervise`] judges it: status 2 is a reported error (it is
    /// started again after the kill like any killed member); anything else
    /// fails the soak.
    fn kill(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            if let Some(status) = child.try_wait().unwrap()
                && status.code() != Some(2)
            {
                return Err(format!("{} exited by itself ({status})", self.name));
            }
            let _ = child.kill();
            child.wait().unwrap();
        }
        Ok(())
    }

    /// What a supervisor (systemd's `Restart=on-failure`, docs/operations.md)
    /// does: a process that stopped itself on an error it reported (exit
    /// status 2, e.g. no broker within 10 s at start while the broker
    /// restarts) is started again. Anything else (a panic, a signal not
    /// ours, exit 0 while the run goes on) fails the soak.
    fn supervise(&mut self, url: &str, log: &std::fs::File) -> Result<bool, String> {
        let Some(child) = self.child.as_mut() else {
            return Ok(false);
        };
        match child.try_wait().unwrap() {
            None => Ok(false),
            Some(status) if status.code() == Some(2) => {
                writeln!(
                    &*log,
                    "== soak: {} stopped on an error ({status}); restarted",
                    self.name
                )
                .unwrap();
                let batch = self.batch;
                self.start(url, batch, log);
                Ok(true)
            }
            Some(status) => Err(format!("{} exited by itself ({status})", self.name)),
        }
    }

    /// Restarts the process so that it stops itself (SIGSTOP) before its
    /// third commit, a batch sent and not committed, leaves it stopped for
    /// `pause`, then SIGCONTs it: past the session timeout the group has
    /// given its partitions to another member, whose transactional ids
    /// fence this one. A member with nothing to commit within 30 s is
    /// SIGSTOPped from outside instead. Says which it was.
    fn pause_in_flight(
        &mut self,
        url: &str,
        batch: usize,
        log: &std::fs::File,
        pause: Duration,
    ) -> Result<&'static str, String> {
        self.kill()?;
        self.start_with(
            url,
            batch,
            log,
            &[("CLEARING_FAULT_STOP_BEFORE_COMMIT", "3")],
        );
        let pid = self.child.as_ref().map(Child::id).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !common::is_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let how = if common::is_stopped(pid) {
            "before a commit, its batch in flight"
        } else {
            ok_status(
                Command::new("kill").args(["-STOP", &pid.to_string()]),
                &self.name,
            );
            "from outside, nothing to commit"
        };
        std::thread::sleep(pause);
        ok_status(
            Command::new("kill").args(["-CONT", &pid.to_string()]),
            &self.name,
        );
        Ok(how)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            ok_status(
                Command::new("kill").args(["-TERM", &child.id().to_string()]),
                &self.name,
            );
            assert!(
                child.wait().unwrap().success(),
                "{} stops cleanly",
                self.name
            );
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ok_status(command: &mut Command, what: &str) {
    assert!(command.status().unwrap().success(), "{what}");
}

/// Publishes the closes; on the local log runs the ledger to the end, on
/// Kafka (`live`) waits until the running ledger member has written what
/// they release (its output ends stop moving).
fn close_all(url: &str, live: Option<&KafkaBus>) {
    for on in CLOSES {
        ok_status(
            clearing().args(["close", "--bus", url, "--on", on]),
            "close",
        );
    }
    match live {
        None => ok_status(
            clearing()
                .args([
                    "run",
                    "--stages",
                    "ledger",
                    "--until-caught-up",
                    "--bus",
                    url,
                ])
                .stderr(Stdio::null()),
            "ledger run",
        ),
        Some(bus) => await_caught_up(bus, &["ledger"]),
    }
}

/// Waits until each stage's group has committed the end of its input (the
/// soak's stage processes commit after every batch).
fn await_caught_up(bus: &KafkaBus, stages: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(300);
    for stage in stages {
        let input = match *stage {
            "settlement" => "fse.decided",
            "returns" => "fse.rejected",
            "ledger" => "outbound.ledger",
            other => panic!("{other}: not an outbound stage"),
        };
        let group = format!("soak.{stage}");
        loop {
            let behind = (0..bus.partition_count(input).unwrap()).any(|p| {
                // Settled first: until the upstream commit's markers are
                // written, the end hides its records.
                let settled = bus.settled(input, p).unwrap();
                let end = bus.end_offset(input, p).unwrap();
                !settled || (end > 0 && bus.committed(&group, input, p).unwrap() != Some(end))
            });
            if !behind {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{stage} did not catch up in 5 minutes"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Outcomes on the bus so far. While the cluster restarts the broker may not
/// answer for a while: that counts as nothing new (0), and the caller polls
/// again.
fn terminal_count(bus: &dyn Bus) -> u64 {
    common::record_count(
        bus,
        &[
            "fse.decided",
            "fse.rejected",
            "dlq.validation",
            "dlq.entitlement",
            "dlq.routing",
            "dlq.reimbursement",
        ],
    )
    .unwrap_or(0)
}

/// Fails the soak, keeping its directory (stores, broker, the members' log)
/// and quoting the end of the members' log.
fn fail_keeping(dir: tempfile::TempDir, why: &str) -> ! {
    let log = std::fs::read_to_string(dir.path().join("members.log")).unwrap_or_default();
    let tail: Vec<&str> = log
        .lines()
        .filter(|line| !line.starts_with("librdkafka"))
        .rev()
        .take(60)
        .collect();
    let kept = dir.keep();
    panic!(
        "{why}; kept {}; the members' log ends:\n{}",
        kept.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// The soak's size and faults, from the environment.
struct Settings {
    claims: usize,
    kills: usize,
    seed: u64,
    cluster: bool,
    pause: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let settings = Settings {
            claims: env_or("CRASH_SOAK_CLAIMS", 6000) as usize,
            kills: env_or("CRASH_SOAK_KILLS", 24) as usize,
            seed: env_or(
                "CRASH_SOAK_SEED",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64,
            ),
            cluster: env_or("CRASH_SOAK_CLUSTER", 0) == 1,
            pause: env_or("CRASH_SOAK_PAUSE", 0) == 1,
        };
        eprintln!(
            "kafka crash soak: {} claims, {} kills, seed {}, {}{}",
            settings.claims,
            settings.kills,
            settings.seed,
            if settings.cluster {
                "three brokers"
            } else {
                "one broker"
            },
            if settings.pause {
                ", a member paused"
            } else {
                ""
            }
        );
        settings
    }
}

/// What a clean run of the same input on the local log wrote: what the soak
/// must end with.
struct Clean {
    outputs: Outputs,
    outbound: Vec<String>,
    outbound_letters: Vec<(String, String, Vec<u8>)>,
    /// Its outcomes: decisions, rejections and dead letters.
    total: u64,
}

/// Generates the data set into `data` and runs it to the end on the local
/// log in `clean`, the closes included.
fn clean_run(data: &Path, clean: &Path, claims: usize) -> Clean {
    prepare(data, clean, claims);
    ok_status(
        clearing()
            .args(["run", "--until-caught-up", "--bus"])
            .arg(format!("local:{}", clean.display()))
            .stderr(Stdio::null()),
        "clean run",
    );
    close_all(&format!("local:{}", clean.display()), None);
    let outputs = outputs(clean);
    let log = LocalLog::open(clean).unwrap();
    Clean {
        outputs,
        outbound: outbound_bodies(&log),
        outbound_letters: common::outbound_dead_letters(&log),
        total: terminal_count(&log),
    }
}

/// The reference data, then the claims, onto the soak's bus.
fn publish_and_submit(data: &Path, url: &str) {
    for (topic, file) in [
        ("ref.rights", "rights.jsonl"),
        ("ref.pki", "pki.jsonl"),
        ("ref.eu.institutions", "eu_institutions.jsonl"),
    ] {
        pipe(
            clearing().args(["publish", "--bus", url, "--topic", topic]),
            &data.join(file),
        );
    }
    pipe(
        clearing().args(["submit", "--ingest-clock", "simulated", "--bus", url]),
        &data.join("claims.jsonl"),
    );
}

/// The nine stage processes, none started yet: two for validation and
/// reimbursement, one for each other stage.
fn stage_members(dir: &Path, cluster: bool) -> Vec<Member> {
    [
        ("validation", "a"),
        ("validation", "b"),
        ("entitlement", "a"),
        ("routing", "a"),
        ("reimbursement", "a"),
        ("reimbursement", "b"),
        ("settlement", "a"),
        ("returns", "a"),
        ("ledger", "a"),
    ]
    .iter()
    .map(|(stage, id)| Member {
        name: format!("{stage}-{id}"),
        stage,
        state: dir.join(format!("state-{stage}-{id}")),
        child: None,
        batch: 0,
        accept: if cluster {
            &["--allow-plaintext", "--allow-development-secret"]
        } else {
            &["--simulation"]
        },
    })
    .collect()
}

/// The batch sizes a member is started on, drawn at random.
const BATCHES: [usize; 4] = [1, 50, 500, 2000];

/// The members while the soak runs, the log they share, and the random
/// draws of what happens to them.
struct Soak {
    members: Vec<Member>,
    url: String,
    log: std::fs::File,
    rng: Rng,
    started: Instant,
    restarts_on_error: usize,
}

impl Soak {
    /// Starts every member on a random batch size.
    fn start(mut members: Vec<Member>, url: String, log: std::fs::File, seed: u64) -> Soak {
        let mut rng = Rng(seed | 1);
        for m in &mut members {
            m.start(&url, BATCHES[rng.below(4) as usize], &log);
        }
        Soak {
            members,
            url,
            log,
            rng,
            started: Instant::now(),
            restarts_on_error: 0,
        }
    }

    /// Writes to the members' log what the soak did, and when.
    fn note(&self, what: &str) {
        writeln!(&self.log, "== soak: {what} at {:?}", self.started.elapsed()).unwrap();
    }

    /// [`Member::supervise`] over every member, counting the restarts.
    fn supervise(&mut self) -> Result<(), String> {
        for m in &mut self.members {
            self.restarts_on_error += usize::from(m.supervise(&self.url, &self.log)?);
        }
        Ok(())
    }

    /// The `kill`th round of faults: after a random wait, a member paused
    /// (at a third, with `CRASH_SOAK_PAUSE`), one killed, and the broker
    /// faulted (half way; the whole cluster also at two thirds).
    fn round(&mut self, kill: usize, settings: &Settings, broker: &Broker) -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(300 + self.rng.below(2500)));
        self.supervise()?;
        if settings.pause && kill == settings.kills / 3 {
            self.pause_one()?;
        }
        self.kill_one()?;
        if kill == settings.kills / 2 {
            self.fault_broker(broker, settings.cluster);
        }
        if settings.cluster && kill == 2 * settings.kills / 3 {
            self.restart_cluster(broker);
        }
        Ok(())
    }

    /// A random member paused with a batch in flight, past the session
    /// timeout ([`Member::pause_in_flight`]).
    fn pause_one(&mut self) -> Result<(), String> {
        let n = self.members.len() as u64;
        let i = self.rng.below(n) as usize;
        self.note(&format!("pausing {}", self.members[i].name));
        let m = &mut self.members[i];
        let how = m.pause_in_flight(&self.url, 50, &self.log, Duration::from_secs(20))?;
        writeln!(
            &self.log,
            "== soak: resumed {} at {:?} (paused {how})",
            m.name,
            self.started.elapsed()
        )
        .unwrap();
        eprintln!("paused {} {how}", m.name);
        Ok(())
    }

    /// A random member SIGKILLed, then started again on a random batch size.
    fn kill_one(&mut self) -> Result<(), String> {
        let n = self.members.len() as u64;
        let i = self.rng.below(n) as usize;
        self.members[i].kill()?;
        self.note(&format!("killed {}", self.members[i].name));
        // Back at once (its old member still holds the partitions until the
        // session times out), or after the group has moved on.
        std::thread::sleep(Duration::from_millis(
            [0, 200, 3000][self.rng.below(3) as usize],
        ));
        let batch = BATCHES[self.rng.below(4) as usize];
        self.members[i].start(&self.url, batch, &self.log);
        Ok(())
    }

    /// The broker leading the most partitions SIGKILLed and restarted 5 s
    /// later (three brokers), or the one broker restarted.
    fn fault_broker(&self, broker: &Broker, cluster: bool) {
        if cluster {
            let node = broker.busiest("soak.");
            self.note(&format!("SIGKILL of broker {node}"));
            broker.script(&format!("kill {node}"));
            std::thread::sleep(Duration::from_secs(5));
            broker.script(&format!("restart {node}"));
        } else {
            self.note("broker restart");
            broker.script("restart 1");
        }
        self.note("broker back");
    }

    fn restart_cluster(&self, broker: &Broker) {
        self.note("cluster stop");
        broker.script("stop");
        std::thread::sleep(Duration::from_secs(3));
        broker.script("cluster start");
        self.note("cluster back");
    }

    /// Runs the members until `total` outcomes are on the bus, within 10
    /// minutes.
    fn drain(&mut self, bus: &KafkaBus, total: u64) -> Result<(), String> {
        // The drain runs on workable batches; the clean stop and restart is
        // one more path under load (SIGTERM: the batch in flight, then exit
        // 0). (After a pause: the last kill's restart has installed its
        // signal handler by then.)
        std::thread::sleep(Duration::from_secs(2));
        for m in self.members.iter_mut().filter(|m| m.batch == 1) {
            m.stop();
            writeln!(
                &self.log,
                "== soak: {} restarted on batch 500 for the drain",
                m.name
            )
            .unwrap();
            m.start(&self.url, 500, &self.log);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while terminal_count(bus) < total {
            self.supervise()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "{} of {total} outcomes after 10 minutes",
                    terminal_count(bus)
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }
}

/// The outputs on Kafka are byte for byte the clean run's, and every
/// outcome is adjudicate's. Returns how many output records and outbound
/// events were compared.
fn assert_same_as_the_clean_run(bus: &KafkaBus, clean: &Clean, data: &Path) -> (usize, usize) {
    assert_eq!(terminal_count(bus), clean.total, "one outcome per FSE");
    let got = bus_outputs(bus);
    assert_same_outputs(&clean.outputs, &got);
    let got_outbound = outbound_bodies(bus);
    assert_eq!(
        got_outbound.len(),
        clean.outbound.len(),
        "outbound events: {} on Kafka, {} in the clean run",
        got_outbound.len(),
        clean.outbound.len()
    );
    assert!(got_outbound == clean.outbound, "outbound events differ");
    assert_eq!(
        common::outbound_dead_letters(bus),
        clean.outbound_letters,
        "outbound dead letters"
    );
    let checked = common::assert_outcomes_match_adjudicate(data, bus);
    eprintln!("{checked} FSEs' outcomes on Kafka are adjudicate's");
    (output_count(&got), got_outbound.len())
}

#[test]
#[ignore = "takes minutes, runs its own Apache Kafka: scripts/crash-soak.sh kafka"]
fn crash_soak_kafka() {
    let settings = Settings::from_env();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clean = clean_run(&data, &dir.path().join("clean"), settings.claims);

    let nodes = if settings.cluster { 3 } else { 1 };
    let broker = Broker::start(&dir.path().join("broker"), nodes);
    let url = format!("kafka://{}/soak", broker.bootstrap());
    publish_and_submit(&data, &url);
    let bus = KafkaBus::connect(&url).unwrap();

    let log = std::fs::File::create(dir.path().join("members.log")).unwrap();
    let members = stage_members(dir.path(), settings.cluster);
    let mut soak = Soak::start(members, url, log, settings.seed);
    for kill in 0..settings.kills {
        if let Err(error) = soak.round(kill, &settings, &broker) {
            fail_keeping(dir, &error);
        }
    }
    eprintln!(
        "{} kills and the broker faults in {:?}; {} of {} outcomes so far",
        settings.kills,
        soak.started.elapsed(),
        terminal_count(&bus),
        clean.total
    );
    if let Err(error) = soak.drain(&bus, clean.total) {
        fail_keeping(dir, &error);
    }
    // Nothing more (no duplicate) arrives; the closes go to the running
    // ledger; then every member stops cleanly.
    std::thread::sleep(Duration::from_secs(5));
    await_caught_up(&bus, &["settlement", "returns", "ledger"]);
    close_all(&soak.url, Some(&bus));
    for m in &mut soak.members {
        m.stop();
    }
    let (records, events) = assert_same_as_the_clean_run(&bus, &clean, &data);
    eprintln!(
        "identical to the clean local run: {records} output records and {events} outbound events, {:?} in all; \
         {} restarts of a member that stopped on an error",
        soak.started.elapsed(),
        soak.restarts_on_error
    );
    if soak.restarts_on_error > 0 {
        let log = std::fs::read_to_string(dir.path().join("members.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.starts_with("clearing: ")) {
            eprintln!("  {line}");
        }
    }
}
