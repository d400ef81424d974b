//! Faults of the stages' local stores, with real processes on the local log:
//! a corrupt sled store is detected and restored from the changelog, and a
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
    let mut command = clearing();
    command
        .args(["run", "--until-caught-up", "--batch", "97"])
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
        clearing().args(["submit", "--bus", &format!("local:{}", bus.display())]),
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

/// Cuts a sled log to a tenth: pages it points to are past the end.
fn truncate(db: &Path) {
    let len = std::fs::metadata(db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.set_len(len / 10).unwrap();
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
fn a_corrupt_store_is_detected_and_restored_from_the_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, CLAIMS);
    let (first, second) = halves(&data);
    let want = clean_run(dir.path(), &data, &first, &second);

    let bus = dir.path().join("damaged");
    publish_refs(&data, &format!("local:{}", bus.display()));
    submit(&bus, &first);
    let output = run_to_end(&bus, None);
    assert!(output.status.success(), "{}", stderr(&output));
    // A restart with nothing to do: sled writes a snapshot of its page
    // table when it opens, so the damage below hits pages the snapshot
    // points to (what a store that has run for a while looks like). Damage
    // past the last snapshot is read as a torn tail instead: sled opens the
    // prefix before it, silently, and the changelog catch-up completes it
    // (entitlement below).
    assert!(run_to_end(&bus, None).status.success());
    // Three stores are damaged: validation's log scrambled,
    // reimbursement's cut short, entitlement's last 2 KiB overwritten.
    let state = bus.join("state");
    scramble(&state.join("validation/db"));
    truncate(&state.join("reimbursement/db"));
    let tail = state.join("entitlement/db");
    let len = std::fs::metadata(&tail).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
    file.seek(SeekFrom::Start(len.saturating_sub(2048)))
        .unwrap();
    file.write_all(&[0xA5; 2048]).unwrap();
    drop(file);

    submit(&bus, &second);
    let output = run_to_end(&bus, None);
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

/// A tmpfs of `size` mounted on `dir` (the test runs as root in CI), and
/// unmounted on drop. `None` where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        ok(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_run_clearly_and_it_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, CLAIMS);
    let (first, second) = halves(&data);
    // The stores on a filesystem far too small for them (the whole run
    // needs about 3 MB); the bus on the ordinary disk.
    let Some(disk) = Tmpfs::mount(&dir.path().join("small"), "1500k") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    };
    let want = clean_run(dir.path(), &data, &first, &second);
    let bus = dir.path().join("full");
    let state = disk.0.join("state");
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
    // Retrying on a full disk fails the same way, and damages nothing.
    let output = run_to_end(&bus, Some(&state));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    disk.resize("64m");
    let output = run_to_end(&bus, Some(&state));
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        !log.contains("corrupt"),
        "the full disk damaged a store:\n{log}"
    );
    assert_same_outputs(&want, &outputs(&bus));
}
