//! Faults of the stages' local stores, with real processes on the local log:
//! a corrupt store (of either engine) is detected and restored from the
//! changelog, and a
//! full disk under the stores stops the run with a clear error and no damage,
//! the run resuming once space returns. Either way the outputs are byte for
//! byte those of a run without the fault.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    assert_same_outputs, clearing, generate, ok, output_count, outputs, pipe, publish_refs,
};

const CLAIMS: usize = 3000;

fn run_to_end(bus: &Path, state: Option<&Path>) -> Output {
    run_to_end_with(bus, state, "log")
}

/// [`run_to_end`] with the stores of `engine` (`--store-engine`).
fn run_to_end_with(bus: &Path, state: Option<&Path>, engine: &str) -> Output {
    let mut command = clearing();
    command
        .args(["run", "--until-caught-up", "--batch", "97"])
        .args(["--store-engine", engine])
        .arg("--bus")
        .arg(format!("local:{}", bus.display()));
    if let Some(state) = state {
        command.arg("--state").arg(state);
    }
    run_bounded(&mut command, Duration::from_secs(300))
}

/// Runs a command to its end; a hang is a failure, not a stuck test.
fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{command:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The data set's claims split in two files: the second half arrives after
/// the fault, so its decisions depend on the restored state (duplicates
/// seen, rights, yearly counters).
fn halves(data: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(data.join("claims.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let paths = (data.join("first.jsonl"), data.join("second.jsonl"));
    std::fs::write(&paths.0, first.join("\n") + "\n").unwrap();
    std::fs::write(&paths.1, second.join("\n") + "\n").unwrap();
    paths
}

fn submit(bus: &Path, claims: &Path) {
    pipe(
        clearing().args([
            "submit",
            "--ingest-clock",
            "simulated",
            "--bus",
            &format!("local:{}", bus.display()),
        ]),
        claims,
    );
}

/// Overwrites a sled log past its first 4 KiB with garbage: the pages sled
/// must read to open the store fail their CRC. (A few scattered blocks are
/// not enough: sled's log is mostly superseded pages it never reads again.)
fn scramble(db: &Path) {
    let len = std::fs::metadata(db).unwrap().len();
    let garbage: Vec<u8> = (0..len.saturating_sub(4096))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start(4096)).unwrap();
    file.write_all(&garbage).unwrap();
}

/// Cuts a store's file to a tenth (sled's log: pages it points to are past
/// the end; a log store's segment: its later batches are gone).
fn truncate(db: &Path) {
    let len = std::fs::metadata(db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.set_len(len / 10).unwrap();
}

/// Overwrites a file's last 2 KiB.
fn overwrite_tail(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(len.saturating_sub(2048)))
        .unwrap();
    file.write_all(&[0xA5; 2048]).unwrap();
}

/// A data set split in two halves, the outputs of a clean run of both
/// (see [`clean_run`]) and the bus of the run to damage, its reference data
/// published: `(first half, second half, want, bus)`.
fn damage_setup(dir: &Path) -> (PathBuf, PathBuf, common::Outputs, PathBuf) {
    let data = dir.join("data");
    generate(&data, CLAIMS);
    let (first, second) = halves(&data);
    let want = clean_run(dir, &data, &first, &second);
    let bus = dir.join("damaged");
    publish_refs(&data, &format!("local:{}", bus.display()));
    (first, second, want, bus)
}

/// The clean reference: the same claims in the same two steps, no fault.
fn clean_run(dir: &Path, data: &Path, first: &Path, second: &Path) -> common::Outputs {
    let clean = dir.join("clean");
    publish_refs(data, &format!("local:{}", clean.display()));
    submit(&clean, first);
    assert!(run_to_end(&clean, None).status.success());
    submit(&clean, second);
    assert!(run_to_end(&clean, None).status.success());
    outputs(&clean)
}

#[test]
fn a_corrupt_sled_store_is_detected_and_restored_from_the_changelog() {
    let dir = tempfile::tempdir().unwrap();
    // The reference runs on the log store: the engines decide alike.
    let (first, second, want, bus) = damage_setup(dir.path());
    submit(&bus, &first);
    let output = run_to_end_with(&bus, None, "sled");
    assert!(output.status.success(), "{}", stderr(&output));
    // A restart with nothing to do: sled writes a snapshot of its page
    // table when it opens, so the damage below hits pages the snapshot
    // points to (what a store that has run for a while looks like). Damage
    // past the last snapshot is read as a torn tail instead: sled opens the
    // prefix before it, silently, and the changelog catch-up completes it
    // (entitlement below).
    assert!(run_to_end_with(&bus, None, "sled").status.success());
    // Three stores are damaged: validation's log scrambled,
    // reimbursement's cut short, entitlement's last 2 KiB overwritten.
    let state = bus.join("state");
    scramble(&state.join("validation/db"));
    truncate(&state.join("reimbursement/db"));
    overwrite_tail(&state.join("entitlement/db"));

    submit(&bus, &second);
    let output = run_to_end_with(&bus, None, "sled");
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    for stage in ["validation", "reimbursement"] {
        assert!(
            log.contains(&format!("{stage}: state store corrupt")),
            "{stage}'s damage not reported:\n{log}"
        );
        assert!(state.join(format!("{stage}.corrupt.1/db")).exists());
    }
    let got = outputs(&bus);
    assert!(output_count(&want) > CLAIMS, "compared too little");
    assert_same_outputs(&want, &got);
}

/// The log store's damage (state/log_store.rs): a bit flipped in the middle
/// of a segment is damage, the store moved aside and restored; a segment
/// cut short or with a torn end loses its last batches, which the
/// changelog catch-up brings back. The outputs are the clean run's.
#[test]
fn a_damaged_log_store_is_detected_and_restored_from_the_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, want, bus) = damage_setup(dir.path());
    // The first half in two runs: each ends with its store's writes, so
    // the segments hold more than one batch.
    let text = std::fs::read_to_string(&first).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (early, late) = lines.split_at(lines.len() / 2);
    for (name, part) in [("early", early), ("late", late)] {
        let file = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, part.join("\n") + "\n").unwrap();
        submit(&bus, &file);
        let output = run_to_end(&bus, None);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let state = bus.join("state");
    // A tree's files, oldest first (segments `<id>.log`, merged `<id>.merged`).
    let files = |stage: &str| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(state.join(stage).join("p0"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "merged"))
            .collect();
        files.sort();
        files
    };
    let newest = |stage: &str| files(stage).pop().unwrap();
    // Validation: one bit flipped in the body of the first batch of its
    // oldest file (frames: CRC, body length, body), which is sealed or
    // has a batch after it. Damage in the last frame of the newest
    // segment reads as a write cut short, which it cannot be told from:
    // that store loses its last batches, which the catch-up brings back
    // (reimbursement and entitlement below).
    let validation = files("validation");
    let flipped = &validation[0];
    let mut bytes = std::fs::read(flipped).unwrap();
    let first_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert!(
        validation.len() > 1 || 8 + first_len < bytes.len(),
        "a batch after the first"
    );
    bytes[12] ^= 0x10;
    std::fs::write(flipped, &bytes).unwrap();
    // Reimbursement: cut to a tenth; entitlement: its last 2 KiB garbage.
    truncate(&newest("reimbursement"));
    overwrite_tail(&newest("entitlement"));

    submit(&bus, &second);
    let output = run_to_end(&bus, None);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("validation: state store corrupt"),
        "validation's damage not reported:\n{log}"
    );
    assert!(state.join("validation.corrupt.1/p0").exists());
    let got = outputs(&bus);
    assert!(output_count(&want) > CLAIMS, "compared too little");
    assert_same_outputs(&want, &got);
}

/// A process killed while writing a batch's changelog leaves a prefix of it
/// there. Simulated by appending such a prefix — a cursor far ahead, a chain
/// of garbage, no commit marker — to every validation changelog partition,
/// then losing the stores: the catch-up must leave the cut batch out (had it
/// applied the cursor, validation would skip the second half's claims) and
/// rewrite its keys so that compaction cannot keep them.
#[test]
fn a_batch_cut_while_writing_its_changelog_is_left_out_of_the_catch_up() {
    use clearing_pipeline::bus::Bus;
    use clearing_pipeline::bus::local::LocalLog;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, CLAIMS);
    let (first, second) = halves(&data);
    let want = clean_run(dir.path(), &data, &first, &second);

    let bus = dir.path().join("cut");
    publish_refs(&data, &format!("local:{}", bus.display()));
    submit(&bus, &first);
    assert!(run_to_end(&bus, None).status.success());
    let cut_at: Vec<u64> = {
        let log = LocalLog::open(&bus).unwrap();
        let mut producer = log.producer().unwrap();
        let mut ends = Vec::new();
        for partition in 0..4 {
            ends.push(log.end_offset("validation.changelog", partition).unwrap());
            let mut ahead = vec![1];
            ahead.extend_from_slice(&1_000_000u64.to_be_bytes());
            producer
                .send("validation.changelog", partition, b"\0applied", &ahead, 0)
                .unwrap();
            producer
                .send("validation.changelog", partition, b"\0chain", &[1, 7, 7], 0)
                .unwrap();
        }
        producer.flush().unwrap();
        ends
    };
    std::fs::remove_dir_all(bus.join("state")).unwrap();

    submit(&bus, &second);
    let output = run_to_end(&bus, None);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("cut by a crash"), "not reported:\n{log}");
    assert_same_outputs(&want, &outputs(&bus));
    // Each cut batch is followed by its keys' committed values and a marker.
    let local = LocalLog::open(&bus).unwrap();
    for (partition, cut) in (0..4).zip(cut_at) {
        let after: Vec<Vec<u8>> = local
            .read("validation.changelog", partition, cut, 5)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(
            after,
            [
                &b"\0applied"[..],
                b"\0chain",
                b"\0applied",
                b"\0chain",
                b"\0commit"
            ],
            "partition {partition}"
        );
    }
}

/// A small file system for the stores, made by the test: as root, an ext4
/// on a loop device over a file of the test's temporary directory; in a user
/// and mount namespace (a run that is not root, below), a tmpfs, the only
/// disk file system such a namespace may mount. Unmounted, and its loop
/// device detached, on drop.
struct SmallDisk {
    dir: PathBuf,
    device: Option<String>,
}

/// Size of the small file system: room for a ballast file that leaves the
/// stores less than they need, which is then deleted (space returns).
const DISK_BYTES: u64 = 32 << 20;

/// Set in the namespace's environment, where the test runs again inside it.
const IN_NAMESPACE: &str = "CLEARING_DISK_FULL_IN_NAMESPACE";

/// Forces a run as root through the namespace too (to try that path).
const FORCE_NAMESPACE: &str = "CLEARING_DISK_FULL_NAMESPACE";

const DISK_FULL_TEST: &str = "a_full_disk_stops_the_run_clearly_and_it_resumes_when_space_returns";

/// Runs a command and returns its stdout; fails the test with its stderr.
fn run_checked(command: &mut Command, why: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{why}: {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{why}: {command:?}: {}",
        stderr(&output)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl SmallDisk {
    /// An ext4 of [`DISK_BYTES`] on a loop device (needs root).
    fn loop_ext4(scratch: &Path) -> SmallDisk {
        let image = scratch.join("disk.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(DISK_BYTES))
            .unwrap();
        let why = "the disk-full test makes a loop-mounted ext4 (root, losetup, mkfs.ext4)";
        // No blocks reserved for root: the test runs as root.
        run_checked(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0"])
                .arg(&image),
            why,
        );
        let device = run_checked(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&image),
            why,
        );
        let dir = scratch.join("small");
        std::fs::create_dir_all(&dir).unwrap();
        let disk = SmallDisk {
            dir,
            device: Some(device),
        };
        let device = disk.device.as_deref().unwrap_or_default();
        run_checked(
            Command::new("mount")
                .args(["-t", "ext4", device])
                .arg(&disk.dir),
            why,
        );
        disk
    }

    /// A tmpfs of [`DISK_BYTES`] (root of a user and mount namespace).
    fn tmpfs(scratch: &Path) -> SmallDisk {
        let dir = scratch.join("small");
        std::fs::create_dir_all(&dir).unwrap();
        run_checked(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={DISK_BYTES}"), "tmpfs"])
                .arg(&dir),
            "the disk-full test mounts a tmpfs in its namespace",
        );
        SmallDisk { dir, device: None }
    }

    fn available(&self) -> u64 {
        let text = run_checked(
            Command::new("df")
                .args(["-B1", "--output=avail"])
                .arg(&self.dir),
            "df",
        );
        let last = text.lines().last().unwrap_or_default().trim();
        last.parse()
            .unwrap_or_else(|_| panic!("df: not a number: {text}"))
    }

    /// Writes a ballast file leaving about `free` bytes.
    fn fill_leaving(&self, free: u64) {
        let ballast = self.dir.join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut left = self.available().saturating_sub(free);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        file.sync_all().unwrap();
        let available = self.available();
        assert!(
            available <= free + (64 << 10),
            "{available} bytes left free"
        );
    }

    /// Space returns: the ballast deleted.
    fn make_room(&self) {
        std::fs::remove_file(self.dir.join("ballast")).unwrap();
        ok(Command::new("sync").arg("-f").arg(&self.dir));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if let Some(device) = &self.device {
            let _ = Command::new("losetup").args(["-d", device]).status();
        }
    }
}

/// The effective user id, from /proc (0 in a namespace's mapped root too).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Not root: the same test again, in a user and mount namespace where this
/// user is root and may mount a tmpfs. Fails (never skips) where the kernel
/// or a container refuses such namespaces.
fn run_in_namespace() {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(&exe)
        .args([DISK_FULL_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("unshare (util-linux) is needed to run the disk-full test without root: {e}")
        });
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && out.contains("1 passed"),
        "the disk-full test needs root (a loop-mounted ext4) or a user and mount namespace \
         (a tmpfs; docs/reliability.md, \"disk full\"): `unshare --user --map-root-user \
         --mount` and the test in it gave {}:\n{out}\n{}",
        output.status,
        stderr(&output)
    );
    eprintln!("{}", stderr(&output));
}

#[test]
fn a_full_disk_stops_the_run_clearly_and_it_resumes_when_space_returns() {
    let inside = std::env::var_os(IN_NAMESPACE).is_some();
    if !inside && (effective_uid() != Some(0) || std::env::var_os(FORCE_NAMESPACE).is_some()) {
        run_in_namespace();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = if inside {
        SmallDisk::tmpfs(dir.path())
    } else {
        SmallDisk::loop_ext4(dir.path())
    };
    eprintln!(
        "disk-full test on {}",
        disk.device
            .as_deref()
            .map_or("a tmpfs in a user namespace".to_string(), |d| {
                format!("an ext4 on {d}")
            })
    );
    let data = dir.path().join("data");
    generate(&data, CLAIMS);
    let (first, second) = halves(&data);
    // The stores with 1.5 MB left (the whole run needs about 3 MB); the
    // bus on the ordinary disk.
    disk.fill_leaving(1_500_000);
    let want = clean_run(dir.path(), &data, &first, &second);
    let bus = dir.path().join("full");
    let state = disk.dir.join("state");
    publish_refs(&data, &format!("local:{}", bus.display()));
    submit(&bus, &first);
    submit(&bus, &second);

    let output = run_to_end(&bus, Some(&state));
    let log = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a failure, not a hang or a crash:\n{log}"
    );
    assert!(
        log.contains("No space left on device") && log.contains(&state.display().to_string()),
        "the error names the cause and the store:\n{log}"
    );
    for line in log.lines().filter(|l| l.contains("No space left")) {
        eprintln!("full disk: {line}");
    }
    // Retrying on a full disk fails the same way, and damages nothing.
    let output = run_to_end(&bus, Some(&state));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    disk.make_room();
    let output = run_to_end(&bus, Some(&state));
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        !log.contains("corrupt"),
        "the full disk damaged a store:\n{log}"
    );
    assert_same_outputs(&want, &outputs(&bus));
}
