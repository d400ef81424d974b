//! The `clearing` binary from the outside: the README's command on the
//! examples, exit codes (0 success, 1 a checked condition failed, 2 usage or
//! configuration), error messages naming the file and line, and the
//! `--trust-unsigned` and `--rules DIR` options.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_clearing");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

/// Runs `clearing ARGS` in the repository root with `stdin` piped in. The
/// pseudonym secret is removed from the environment: the development key.
fn clearing(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .env_remove("CLEARING_PSEUDONYM_SECRET")
        .env_remove("CLEARING_PSEUDONYM_EPOCH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the clearing binary runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    // Write from another thread: a large input must not dead-lock on a full pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn decisions(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect()
}

fn claims_text() -> String {
    std::fs::read_to_string(examples("claims.jsonl")).unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn rights_arg() -> String {
    examples("rights.jsonl").display().to_string()
}

fn institutions_arg() -> String {
    examples("eu_institutions.jsonl").display().to_string()
}

/// The README's command, with `extra` arguments.
fn adjudicate(extra: &[&str], stdin: &str) -> Output {
    let rights = rights_arg();
    let institutions = institutions_arg();
    let mut args = vec![
        "adjudicate",
        "--rights",
        &rights,
        "--institutions",
        &institutions,
    ];
    args.extend_from_slice(extra);
    clearing(&args, stdin)
}

/// The first example claim: paid (G at EUR 30, in the pathway).
fn paid_claim() -> String {
    claims_text().lines().next().unwrap().to_string()
}

fn is_amount(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let Some((units, cents)) = s.strip_prefix('-').unwrap_or(s).split_once('.') else {
        return false;
    };
    !units.is_empty()
        && units.bytes().all(|b| b.is_ascii_digit())
        && cents.len() == 2
        && cents.bytes().all(|b| b.is_ascii_digit())
}

const AMOUNTS: [&str; 9] = [
    "amo",
    "css",
    "participation",
    "franchise",
    "deferred",
    "patient",
    "paid_to_professional",
    "paid_to_insured",
    "flat_fee",
];

/// Every field of the contract's decision, with its type.
fn assert_contract_shape(d: &Value) {
    let obj = d.as_object().expect("a decision is an object");
    for field in [
        "fse_id",
        "status",
        "route",
        "reasons",
        "lines",
        "amo",
        "css",
        "participation",
        "franchise",
        "deferred",
        "patient",
        "paid_to_professional",
        "paid_to_insured",
        "rules_version",
        "signature_check",
    ] {
        assert!(obj.contains_key(field), "{field} missing from {d}");
    }
    assert!(d["fse_id"].is_string() || d["fse_id"].is_null(), "{d}");
    let status = d["status"].as_str().unwrap();
    assert!(["paid", "rejected"].contains(&status), "{d}");
    let route = &d["route"];
    assert!(
        route.is_null() || ["domestic", "eu"].contains(&route.as_str().unwrap_or("?")),
        "{d}"
    );
    for field in AMOUNTS {
        assert!(is_amount(&d[field]), "{field} = {} in {d}", d[field]);
    }
    for line in d["lines"].as_array().unwrap() {
        assert!(line["code"].is_string());
        assert!(line["rate"].is_u64(), "{line}");
        for field in ["charged", "base", "amo"] {
            assert!(is_amount(&line[field]), "line {field} in {line}");
        }
    }
    for reason in d["reasons"].as_array().unwrap() {
        for field in ["code", "stage", "message"] {
            assert!(reason[field].is_string(), "reason {field} in {reason}");
        }
    }
    assert!(
        d["rules_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:") && v.len() == 7 + 64),
        "{d}"
    );
    if status == "paid" {
        assert!(d["reasons"].as_array().unwrap().is_empty());
        assert!(!route.is_null());
    } else {
        assert!(!d["reasons"].as_array().unwrap().is_empty());
    }
}

fn statuses(ds: &[Value]) -> Vec<&str> {
    ds.iter().map(|d| d["status"].as_str().unwrap()).collect()
}

#[test]
fn the_readme_command_decides_every_example_line() {
    let input = claims_text();
    let out = adjudicate(&["--trust-unsigned"], &input);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let ds = decisions(&out);
    let non_empty = input.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(ds.len(), non_empty, "one decision per non-empty line");
    for d in &ds {
        assert_contract_shape(d);
    }
    // The decisions follow the input order.
    let input_ids: Vec<Value> = input
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["fse_id"].clone())
        .collect();
    for (d, id) in ds.iter().zip(&input_ids) {
        if !d["fse_id"].is_null() {
            assert_eq!(&d["fse_id"], id);
        }
    }
    // E8, the first example: the contract's own figures.
    let first = &ds[0];
    assert_eq!(first["status"], "paid");
    assert_eq!(first["route"], "domestic");
    assert_eq!(first["amo"], "19.00");
    assert_eq!(first["participation"], "2.00");
    assert_eq!(first["patient"], "11.00");
    assert_eq!(first["paid_to_insured"], "19.00");
    assert_eq!(first["lines"][0]["base"], "30.00");
    assert_eq!(first["lines"][0]["rate"], 70);
    // The visitor's claim goes to its institution; the repeated id is a duplicate.
    assert!(ds.iter().any(|d| d["route"] == "eu"));
    assert!(
        ds.iter()
            .any(|d| d["reasons"][0]["code"] == "duplicate" && d["fse_id"] == first["fse_id"])
    );
    // No NIR or card number in the output.
    let text = stdout(&out);
    for secret in [
        "185057800604830",
        "295109912611193",
        "253072B07300470",
        "80276001234567890123",
    ] {
        assert!(!text.contains(secret), "{secret} in the output");
    }
}

#[test]
fn the_same_input_gives_the_same_output() {
    let a = adjudicate(&["--trust-unsigned"], &claims_text());
    let b = adjudicate(&["--trust-unsigned"], &claims_text());
    assert_eq!(stdout(&a), stdout(&b));
}

#[test]
fn strict_mode_exits_1_when_a_claim_is_rejected() {
    let out = adjudicate(&["--trust-unsigned", "--strict"], &claims_text());
    assert_eq!(code(&out), 1);
    // Every decision is still written.
    assert_eq!(decisions(&out).len(), claims_text().lines().count());
}

#[test]
fn strict_mode_exits_0_when_no_claim_is_rejected() {
    let out = adjudicate(
        &["--trust-unsigned", "--strict"],
        &format!("{}\n", paid_claim()),
    );
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(statuses(&decisions(&out)), vec!["paid"]);
    // Empty input: nothing rejected either.
    let out = adjudicate(&["--trust-unsigned", "--strict"], "");
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).is_empty());
}

#[test]
fn strict_mode_exits_1_on_an_unreadable_line() {
    let out = adjudicate(
        &["--trust-unsigned", "--strict"],
        &format!("not json\n{}\n", paid_claim()),
    );
    assert_eq!(code(&out), 1);
    assert_eq!(statuses(&decisions(&out)), vec!["paid"]);
}

#[test]
fn without_strict_a_rejection_still_exits_0() {
    let out = adjudicate(&["--trust-unsigned"], &claims_text());
    assert_eq!(code(&out), 0);
    assert!(statuses(&decisions(&out)).contains(&"rejected"));
}

#[test]
fn a_missing_rights_file_exits_2_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-rights.jsonl");
    let out = clearing(
        &[
            "adjudicate",
            "--rights",
            path_str(&missing),
            "--trust-unsigned",
        ],
        &paid_claim(),
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no-such-rights.jsonl"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).is_empty(),
        "no decision before the configuration is read"
    );
}

#[test]
fn a_rights_file_with_a_bad_line_exits_2_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let rights = dir.path().join("rights.jsonl");
    let good = std::fs::read_to_string(examples("rights.jsonl")).unwrap();
    let good_line = good.lines().next().unwrap();
    // Line 1 good, line 2 empty (skipped, still counted), line 3 bad.
    let bad = json!({"nir": "185057800604831", "birth_date": "1985-05-12", "rank": 1});
    std::fs::write(&rights, format!("{good_line}\n\n{bad}\n")).unwrap();
    let out = clearing(
        &[
            "adjudicate",
            "--rights",
            path_str(&rights),
            "--trust-unsigned",
        ],
        &paid_claim(),
    );
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("rights.jsonl"), "{err}");
    assert!(err.contains("nir"), "the field is named: {err}");
    assert!(
        !err.contains("185057800604831"),
        "the NIR is not echoed: {err}"
    );
    // Not JSON at all.
    std::fs::write(&rights, "{\n").unwrap();
    let out = clearing(
        &["adjudicate", "--rights", path_str(&rights)],
        &paid_claim(),
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

#[test]
fn an_institutions_file_with_a_bad_line_exits_2_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let institutions = dir.path().join("institutions.jsonl");
    let good = std::fs::read_to_string(examples("eu_institutions.jsonl")).unwrap();
    std::fs::write(
        &institutions,
        format!(
            "{good}{}\n",
            json!({"country": "ZZ", "institution_id": "1", "name": "x", "from": "2004-06-01"})
        ),
    )
    .unwrap();
    let out = clearing(
        &[
            "adjudicate",
            "--institutions",
            path_str(&institutions),
            "--trust-unsigned",
        ],
        &paid_claim(),
    );
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("line 3") && err.contains("country"), "{err}");
}

#[test]
fn a_non_json_line_is_reported_with_its_number_and_the_stream_goes_on() {
    let claims = claims_text();
    let mut lines: Vec<&str> = claims.lines().collect();
    let first = lines.remove(0);
    // Line 1 valid, line 2 not JSON, line 3 blank, line 4 an array, then the rest.
    let input = format!(
        "{first}\nthis is not json\n\n[1, 2]\n{}\n",
        lines.join("\n")
    );
    let out = adjudicate(&["--trust-unsigned"], &input);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(!err.contains("line 3"), "a blank line is skipped: {err}");
    let ds = decisions(&out);
    assert_eq!(
        ds.len(),
        1 + lines.len(),
        "every JSON object is still decided"
    );
    assert_eq!(ds[0]["status"], "paid");
    assert_eq!(ds[1]["fse_id"], "12345678-000000043");
}

#[test]
fn an_oversized_stdin_line_is_reported_and_the_stream_goes_on() {
    let big = format!("{{\"fse_id\": \"{}\"}}", "x".repeat(300 * 1024));
    let input = format!("{big}\n{}\n", paid_claim());
    let out = adjudicate(&["--trust-unsigned"], &input);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
    assert_eq!(statuses(&decisions(&out)), vec!["paid"]);
}

#[test]
fn without_trust_unsigned_every_claim_is_rejected() {
    // Signed claims: no PKI is loaded, so no certificate is known.
    let signed: Vec<String> = claims_text()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["signature"] =
                json!({"alg": "rsa-pkcs1-sha256", "cert": "CPS-000123", "value": "AAAA"});
            v.to_string()
        })
        .collect();
    let out = adjudicate(&[], &(signed.join("\n") + "\n"));
    assert_eq!(code(&out), 0);
    let ds = decisions(&out);
    assert_eq!(ds.len(), signed.len());
    assert!(statuses(&ds).iter().all(|s| *s == "rejected"));
    // Those that are otherwise valid fail on the certificate; the others on
    // their own validation reasons (checked before the signature).
    let codes: Vec<&str> = ds
        .iter()
        .map(|d| d["reasons"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "unknown_certificate")
            .count(),
        6,
        "{codes:?}"
    );
    for d in &ds {
        assert_contract_shape(d);
        if d["reasons"][0]["code"] == "unknown_certificate" {
            assert_eq!(d["reasons"][0]["stage"], "validation");
        }
    }
    // Unsigned claims without the option: missing_signature.
    let out = adjudicate(&[], &format!("{}\n", paid_claim()));
    assert_eq!(
        decisions(&out)[0]["reasons"][0]["code"],
        "missing_signature"
    );
    // Strict mode turns that into exit 1.
    let out = adjudicate(&["--strict"], &format!("{}\n", paid_claim()));
    assert_eq!(code(&out), 1);
}

#[test]
fn with_trust_unsigned_decisions_say_not_checked() {
    let out = adjudicate(&["--trust-unsigned"], &claims_text());
    let ds = decisions(&out);
    // Every decision that got as far as the signature says it was not checked.
    for d in ds.iter().filter(|d| d["status"] == "paid") {
        assert_eq!(d["signature_check"], "not_checked", "{d}");
    }
    assert!(ds.iter().filter(|d| d["status"] == "paid").count() >= 4);
}

#[test]
fn with_trust_unsigned_every_decision_says_not_checked() {
    let out = adjudicate(&["--trust-unsigned"], &claims_text());
    for d in decisions(&out) {
        assert_eq!(d["signature_check"], "not_checked", "{d}");
    }
}

/// A copy of pipeline/rules/ (its tables, not the history of earlier sets)
/// in a temporary directory.
fn rules_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("pipeline/rules")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            continue;
        }
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn rules_dir_with_a_copy_of_the_tables_gives_the_same_decisions() {
    let dir = rules_copy();
    let embedded = adjudicate(&["--trust-unsigned"], &claims_text());
    let copied = adjudicate(
        &["--trust-unsigned", "--rules", path_str(dir.path())],
        &claims_text(),
    );
    assert_eq!(code(&copied), 0, "stderr: {}", stderr(&copied));
    assert_eq!(stdout(&copied), stdout(&embedded));
    let versions: Vec<Value> = decisions(&copied)
        .iter()
        .map(|d| d["rules_version"].clone())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn rules_dir_with_an_edited_tariff_gives_another_version_and_amount() {
    let dir = rules_copy();
    let acts = dir.path().join("acts.toml");
    let text = std::fs::read_to_string(&acts).unwrap();
    let from = "{ from = \"2024-12-22\", amount = \"30.00\"";
    assert_eq!(text.matches(from).count(), 4, "G, GS, VG and V at EUR 30");
    assert!(
        text.find(from) < text.find("code = \"GS\""),
        "G's comes first"
    );
    let edited = text.replacen(from, "{ from = \"2024-12-22\", amount = \"32.00\"", 1);
    std::fs::write(&acts, edited).unwrap();

    let input = format!("{}\n", paid_claim().replace("\"30.00\"", "\"35.00\""));
    let embedded = decisions(&adjudicate(&["--trust-unsigned"], &input));
    let out = adjudicate(
        &["--trust-unsigned", "--rules", path_str(dir.path())],
        &input,
    );
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let edited = decisions(&out);
    assert_ne!(edited[0]["rules_version"], embedded[0]["rules_version"]);
    assert_eq!(embedded[0]["lines"][0]["base"], "30.00");
    assert_eq!(edited[0]["lines"][0]["base"], "32.00");
    assert_eq!(embedded[0]["amo"], "19.00");
    assert_eq!(edited[0]["amo"], "20.40");
}

#[test]
fn a_rules_dir_missing_a_table_exits_2_and_names_it() {
    let dir = rules_copy();
    std::fs::remove_file(dir.path().join("eu.toml")).unwrap();
    let out = adjudicate(
        &["--trust-unsigned", "--rules", path_str(dir.path())],
        &paid_claim(),
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("eu.toml"), "{}", stderr(&out));
}

#[test]
fn a_rules_dir_with_a_broken_table_exits_2_and_names_it() {
    let dir = rules_copy();
    std::fs::write(dir.path().join("rates.toml"), "this is = not [toml").unwrap();
    let out = adjudicate(
        &["--trust-unsigned", "--rules", path_str(dir.path())],
        &paid_claim(),
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("rates.toml"), "{}", stderr(&out));
}

#[test]
fn help_exits_0() {
    for args in [&["--help"][..], &["adjudicate", "--help"], &["--version"]] {
        let out = clearing(args, "");
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(!stdout(&out).is_empty());
    }
    assert!(stdout(&clearing(&["--help"], "")).contains("adjudicate"));
}

#[test]
fn an_unknown_verb_exits_2() {
    let out = clearing(&["frobnicate"], "");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("frobnicate"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["adjudicate", "--no-such-option"],
        &["adjudicate", "--rights"],
    ] {
        let out = clearing(args, "");
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}
