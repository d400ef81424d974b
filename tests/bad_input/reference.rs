//! Bad reference data: rights and EU institution lines are errors naming
//! the field, never quoting personal data.

use clearing_pipeline::adjudicate::{Adjudicator, LineError, MAX_LINE_BYTES};
use serde_json::{Value, json};

use crate::fixtures::{NIR, adjudicator, remove, rights, set};

/// A reference line and what its error must name.
struct Bad {
    kind: Kind,
    line: String,
    names: String,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Rights,
    Institution,
}

/// Loads each line with `a`: an error naming what it must, never a NIR.
fn check(a: &mut Adjudicator, cases: &[Bad]) {
    for Bad { kind, line, names } in cases {
        let loaded = match kind {
            Kind::Rights => a.load_rights_line(line),
            Kind::Institution => a.load_institution_line(line),
        };
        let Err(err) = loaded else {
            panic!("{kind:?} {line}: accepted")
        };
        let text = err.to_string();
        assert!(
            text.contains(names.as_str()),
            "{kind:?} {line}: {text:?} should name {names:?}"
        );
        for secret in [NIR, "185057800604831"] {
            assert!(!text.contains(secret), "{kind:?} {line}: {text}");
        }
    }
}

fn bad(kind: Kind, line: impl ToString, names: &str) -> Bad {
    Bad {
        kind,
        line: line.to_string(),
        names: names.to_string(),
    }
}

fn good_rights() -> Value {
    serde_json::from_str(&rights(NIR, "1985-05-12", Value::Null)).unwrap()
}

fn good_institution() -> Value {
    json!({"country": "IT", "institution_id": "120201", "name": "ASL Roma 1",
           "from": "2004-06-01", "to": null})
}

#[test]
fn bad_rights_lines_are_errors_without_personal_data() {
    let good = good_rights();
    let mut cases = vec![
        bad(Kind::Rights, "not json", "not a JSON object"),
        bad(Kind::Rights, "[]", "not a JSON object"),
    ];
    for (path, value, names) in [
        ("nir", json!("185057800604831"), "nir"),
        ("birth_date", json!("1985-02-30"), "birth_date"),
        ("unknown", json!(1), "unknown"),
        ("declared_gp", json!("1234"), "declared_gp"),
        (
            "ald",
            json!([{"from": "2020-01-01", "to": "2019-01-01"}]),
            "ald",
        ),
        ("coverage.0.fund", json!("75"), "coverage"),
        ("local_regime", json!("bretagne"), "local_regime"),
    ] {
        cases.push(bad(Kind::Rights, set(good.clone(), path, value), names));
    }
    // A missing required field is named.
    for field in ["nir", "birth_date", "rank"] {
        cases.push(bad(Kind::Rights, remove(good.clone(), field), field));
    }
    let mut a = adjudicator();
    check(&mut a, &cases);
    let too_long = format!("{{\"nir\": \"{}\"}}", "1".repeat(MAX_LINE_BYTES));
    assert!(matches!(
        a.load_rights_line(&too_long),
        Err(LineError::TooLong(_))
    ));
}

#[test]
fn bad_institution_lines_are_errors() {
    let good = good_institution();
    let mut cases = vec![bad(Kind::Institution, "{", "not a JSON object")];
    for (path, value, names) in [
        ("country", json!("ZZ"), "country"),
        ("institution_id", json!("asl roma"), "institution_id"),
        ("to", json!("2000-01-01"), "validity"),
        // Named by its record, never by its own name (it may be personal data).
        ("extra", json!(1), "(document): has an unknown field"),
    ] {
        cases.push(bad(
            Kind::Institution,
            set(good.clone(), path, value),
            names,
        ));
    }
    // A missing required field is named.
    for field in ["country", "institution_id", "name", "from"] {
        cases.push(bad(Kind::Institution, remove(good.clone(), field), field));
    }
    let mut a = adjudicator();
    a.load_institution_line(&good.to_string()).unwrap();
    check(&mut a, &cases);
}
