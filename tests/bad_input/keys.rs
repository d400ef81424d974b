//! Keys given twice and unknown keys, in claims and reference lines, in
//! process and through the commands that read JSON.

use clearing_pipeline::domain::Status;
use serde_json::Value;

use crate::common;
use crate::fixtures::{NIR, OTHER_NIR, adjudicator, claim, institution, rights, unknown_nir};

/// `line` with `insert` right after the first `after`: a key given twice
/// cannot be built as a `Value`, so such lines are spliced as text.
fn spliced(line: &str, after: &str, insert: &str) -> String {
    let at = line.find(after).expect("the anchor is in the line") + after.len();
    format!("{}{insert}{}", &line[..at], &line[at..])
}

/// Lines with a key given twice, or an unknown key that is a NIR, for the
/// claim, rights and institution shapes: (what, line, the path a refusal
/// names). A key given twice is named when it is a field of the schema; an
/// unknown key never is, only the record holding it. The unknown keys are
/// `unknown_nir()`, which appears nowhere else in the lines.
fn twice_or_unknown() -> Vec<(&'static str, String, &'static str)> {
    let claim = claim().to_string();
    let rights = rights(NIR, "1985-05-12", Value::Null);
    let institution = institution().to_string();
    let key = unknown_nir();
    vec![
        (
            "claim: fse_id twice",
            spliced(&claim, "{", r#""fse_id":"99999999-000000001","#),
            "fse_id",
        ),
        (
            "claim: the NIR twice",
            spliced(
                &claim,
                r#""beneficiary":{"#,
                &format!(r#""nir":"{OTHER_NIR}","#),
            ),
            "beneficiary.nir",
        ),
        (
            "claim: an amount twice on a line",
            spliced(&claim, r#""acts":[{"#, r#""charged":"99.00","#),
            "acts[0].charged",
        ),
        (
            "claim: an unknown key that is a NIR",
            spliced(&claim, "{", &format!(r#""{key}":1,"#)),
            "(document)",
        ),
        (
            "claim: ... in the beneficiary",
            spliced(&claim, r#""beneficiary":{"#, &format!(r#""{key}":1,"#)),
            "beneficiary",
        ),
        (
            "claim: ... on a line",
            spliced(&claim, r#""acts":[{"#, &format!(r#""{key}":"x","#)),
            "acts[0]",
        ),
        (
            "claim: an unknown key twice",
            spliced(&claim, "{", &format!(r#""{key}":1,"{key}":2,"#)),
            "(document)",
        ),
        (
            "claim: a key twice inside an unknown key",
            spliced(&claim, "{", &format!(r#""{key}":{{"a":1,"a":2}},"#)),
            "(document)",
        ),
        (
            "rights: rank twice",
            spliced(&rights, "{", r#""rank":2,"#),
            "rank",
        ),
        (
            "rights: a period's end twice",
            spliced(&rights, r#""coverage":[{"#, r#""to":"2016-01-01","#),
            "coverage[0].to",
        ),
        (
            "rights: an unknown key that is a NIR",
            spliced(&rights, "{", &format!(r#""{key}":1,"#)),
            "(document)",
        ),
        (
            "rights: ... in a period",
            rights_with_ald(&format!(r#"{{"from":"2020-01-01","to":null,"{key}":1}}"#)),
            "ald[0]",
        ),
        (
            "institution: name twice",
            spliced(&institution, "{", r#""name":"AOK Bayern","#),
            "name",
        ),
        (
            "institution: an unknown key that is a NIR",
            spliced(&institution, "{", &format!(r#""{key}":1,"#)),
            "(document)",
        ),
    ]
}

/// Runs `clearing ARGS` with `stdin`; returns (exit code, stdout + stderr).
fn clearing(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let out = common::with_stdin(common::clearing().args(args), stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The commands that read JSON (`submit`, `publish` of the three reference
/// topics, `adjudicate` with its reference files) refuse a key given twice,
/// and print an unknown key's name nowhere, not even a NIR sent as a key.
#[test]
fn the_commands_refuse_keys_given_twice_and_never_print_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let bus = format!("local:{}", dir.path().join("bus").display());
    let key = unknown_nir();
    let lines = twice_or_unknown();
    let of = |shape: &str| -> String {
        lines
            .iter()
            .filter(|(what, _, _)| what.starts_with(shape))
            .map(|(_, line, _)| format!("{line}\n"))
            .collect()
    };
    let revocation = r#"{"kind":"revocation","cert":"CPS-1","revoked_on":"2025-03-01"}"#;
    let pki = [
        spliced(revocation, "{", r#""cert":"CPS-2","#),
        spliced(revocation, "{", &format!(r#""{key}":1,"#)),
    ]
    .join("\n");
    let mut problems = Vec::new();
    for (args, stdin, refused) in [
        (
            vec!["submit", "--ingest-clock", "simulated", "--bus", &bus],
            of("claim"),
            8,
        ),
        (
            vec!["publish", "--bus", &bus, "--topic", "ref.rights"],
            of("rights"),
            4,
        ),
        (
            vec!["publish", "--bus", &bus, "--topic", "ref.eu.institutions"],
            of("institution"),
            2,
        ),
        (
            vec!["publish", "--bus", &bus, "--topic", "ref.pki"],
            pki.clone(),
            2,
        ),
    ] {
        let (code, text) = clearing(&args, &stdin);
        if code != Some(1) || !text.contains(&format!("; {refused} lines refused")) {
            problems.push(format!("{args:?}: exit {code:?}, {text}"));
        }
        if text.contains(&key) {
            problems.push(format!("{args:?} prints the unknown key: {text}"));
        }
    }
    // adjudicate: claims decided as malformed; a bad reference file stops it.
    let (code, text) = clearing(&["adjudicate", "--trust-unsigned"], &of("claim"));
    let malformed = text.matches(r#""code":"malformed""#).count();
    if code != Some(0) || malformed != 8 || text.contains(&key) {
        problems.push(format!(
            "adjudicate: exit {code:?}, {malformed} malformed: {text}"
        ));
    }
    for (flag, content) in [
        ("--rights", of("rights")),
        ("--institutions", of("institution")),
        ("--pki", pki),
    ] {
        for line in content.lines() {
            let file = dir.path().join("reference.jsonl");
            std::fs::write(&file, line).unwrap();
            let path = file.display().to_string();
            let mut args = vec!["adjudicate", flag, &path];
            if flag != "--pki" {
                args.push("--trust-unsigned");
            }
            let (code, text) = clearing(&args, "");
            if code == Some(0) || text.contains(&key) {
                problems.push(format!("adjudicate {flag}: exit {code:?}: {text}"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Rights of `NIR` with one long-term illness period, given as JSON text.
fn rights_with_ald(period: &str) -> String {
    let line = rights(NIR, "1985-05-12", Value::Null);
    line.replacen(r#""ald":[]"#, &format!(r#""ald":[{period}]"#), 1)
}

/// A key given twice is refused (two parsers could read two claims from
/// such a line); an unknown key is refused without its name (issue 17 item
/// 7): claims as coded `malformed` rejections naming the path, reference
/// lines as errors naming it.
#[test]
fn keys_given_twice_are_refused_and_unknown_keys_are_never_echoed() {
    let key = unknown_nir();
    let mut problems = Vec::new();
    for (what, line, path) in twice_or_unknown() {
        let mut a = adjudicator();
        let text = if what.starts_with("claim") {
            match a.decide_line(&line) {
                Ok(d) => {
                    let got: Vec<(String, Option<String>)> = d
                        .reasons
                        .iter()
                        .map(|r| (r.code.as_str().to_string(), r.field.clone()))
                        .collect();
                    if d.status != Status::Rejected
                        || got != [("malformed".to_string(), Some(path.to_string()))]
                    {
                        problems.push(format!("{what}: {:?} {got:?}", d.status));
                    }
                    let id = d.fse_id.as_deref();
                    if what.contains("fse_id") && id.is_some() {
                        problems.push(format!("{what}: an ambiguous id kept: {id:?}"));
                    }
                    serde_json::to_string(&d).unwrap()
                }
                Err(e) => {
                    problems.push(format!("{what}: an error, not a decision: {e}"));
                    e.to_string()
                }
            }
        } else {
            let loaded = if what.starts_with("rights") {
                a.load_rights_line(&line)
            } else {
                a.load_institution_line(&line)
            };
            match loaded {
                Ok(()) => {
                    problems.push(format!("{what}: accepted"));
                    String::new()
                }
                Err(e) => {
                    let text = e.to_string();
                    if !text.starts_with(&format!("{path}: ")) {
                        problems.push(format!("{what}: {text:?} does not name {path:?}"));
                    }
                    text
                }
            }
        };
        if text.contains(&key) {
            problems.push(format!("{what}: the unknown key is echoed: {text}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
