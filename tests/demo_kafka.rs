//! `clearing demo --bus kafka://HOST:PORT` twice on one broker (issue 23
//! item 9): each run gets a namespace of its own, printed for the replay, and
//! passes its checks; a namespace that already holds a run is refused.

mod common;

use std::path::Path;
use std::process::Output;

use common::clearing;

fn demo(bus: &str, data: &Path) -> Output {
    clearing()
        .args([
            "demo", "--claims", "40", "--seed", "21", "--bus", bus, "--data",
        ])
        .arg(data)
        .output()
        .unwrap()
}

/// The URL a demo printed for its replay.
fn printed_url(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("replay it again: clearing replay --bus ")
        })
        .unwrap_or_else(|| panic!("no replay line in {stdout}"))
        .to_string()
}

#[test]
fn kafka_demos_run_in_fresh_namespaces_and_a_used_namespace_is_refused() {
    let bootstrap = common::kafka_bootstrap();
    let base = format!("kafka://{bootstrap}");
    let dir = tempfile::tempdir().unwrap();
    let mut urls = Vec::new();
    for run in ["first", "second"] {
        let output = demo(&base, &dir.path().join(run));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The second run sees none of the first: the same decisions as its
        // claims adjudicated in process (no claim a duplicate of the first
        // run's), the books reconcile, the replay holds.
        assert!(stdout.contains(", 0 differ"), "{stdout}");
        assert!(stdout.contains("batches count every FSE: ok"), "{stdout}");
        assert!(stdout.contains("IDENTICAL"), "{stdout}");
        let url = printed_url(&output);
        assert!(
            url.starts_with(&format!("{base}/demo-")),
            "{url} is not a fresh namespace of {base}"
        );
        urls.push(url);
    }
    assert_ne!(urls[0], urls[1]);

    // A namespace named on the command line that holds a run is refused:
    // the printed URL names the first run's.
    let output = demo(&urls[0], &dir.path().join("third"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already holds an earlier run"), "{stderr}");
    assert!(!dir.path().join("third").join("gen").exists());
}
