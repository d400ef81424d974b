//! Robustness: random mutations of valid claims never panic nor break a
//! decision's invariants, and a stream goes on after bad lines.

use clearing_pipeline::adjudicate::{Adjudicator, LineError, MAX_LINE_BYTES};
use clearing_pipeline::domain::Status;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::check::{assert_no_personal_data, assert_paid};
use crate::fixtures::{adjudicator, claim, nurse, pharmacy, set, unknown_nir, visitor};

#[derive(Debug, Clone)]
enum Mutation {
    /// Delete the object member or array element at the chosen path.
    Delete(usize),
    /// Replace the value at the chosen path by a scalar.
    Replace(usize, Value),
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every path below the root, depth first.
fn paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                prefix.push(Seg::Key(k.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn parent_mut<'v>(v: &'v mut Value, path: &[Seg]) -> &'v mut Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

fn mutate(mut v: Value, mutation: &Mutation) -> Value {
    let mut all = Vec::new();
    paths(&v, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return v;
    }
    let (pick, replacement) = match mutation {
        Mutation::Delete(i) => (*i, None),
        Mutation::Replace(i, value) => (*i, Some(value.clone())),
    };
    let path = &all[pick % all.len()];
    let (last, parent_path) = path.split_last().unwrap();
    let parent = parent_mut(&mut v, parent_path);
    match (last, replacement) {
        (Seg::Key(k), None) => {
            parent.as_object_mut().unwrap().remove(k);
        }
        (Seg::Index(i), None) => {
            parent.as_array_mut().unwrap().remove(*i);
        }
        (Seg::Key(k), Some(value)) => parent[k.as_str()] = value,
        (Seg::Index(i), Some(value)) => parent[*i] = value,
    }
    v
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "-1",
            "99",
            "100",
            "1e3",
            "1.234",
            "30.00",
            "-30.00",
            "10000000.01",
            "2025-02-30",
            "2025-01-20",
            "1990-01-01",
            "2099-12-31",
            "2025-01-20T09:14:03Z",
            "FR",
            "HR",
            "XX",
            "G",
            "C",
            "ZZZ",
            "PH7",
            "AMI",
            "night",
            "midnight",
            "outside",
            "mt",
            "3",
            "4",
            "gp",
            "nurse",
            "\u{0}",
            " ",
            "é",
            "185057800604831",
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), scalar()).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

fn fixtures() -> Vec<Value> {
    vec![claim(), visitor(), pharmacy(), nurse()]
}

/// The outcome of any line: an error for non-objects, otherwise a decision
/// that keeps its invariants and echoes no personal data.
fn check_any_line(a: &mut Adjudicator, line: &str) -> Result<(), TestCaseError> {
    match a.decide_line(line) {
        Err(LineError::Store(e)) => Err(TestCaseError::fail(format!("store error {e}"))),
        Err(LineError::Invalid(e)) => Err(TestCaseError::fail(format!(
            "decide_line never answers Invalid: {e}"
        ))),
        Err(LineError::NotJson(_) | LineError::TooLong(_)) => {
            prop_assert!(
                serde_json::from_str::<Value>(line).map_or(true, |v| !v.is_object())
                    || line.len() > MAX_LINE_BYTES
            );
            Ok(())
        }
        Ok(d) => {
            d.check_invariants().map_err(TestCaseError::fail)?;
            assert_no_personal_data(line, &d);
            match d.status {
                Status::Rejected => {
                    prop_assert!(!d.reasons.is_empty());
                    prop_assert!(d.lines.is_empty());
                }
                Status::Paid => {
                    prop_assert!(d.reasons.is_empty());
                    prop_assert!(d.route.is_some());
                    prop_assert!(!d.lines.is_empty());
                }
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_claims_never_panic_and_keep_their_invariants(
        which in 0..4usize,
        mutations in prop::collection::vec(mutation(), 0..5),
        truncate in prop::option::weighted(0.3, any::<usize>()),
    ) {
        let mut v = fixtures()[which].clone();
        for m in &mutations {
            v = mutate(v, m);
        }
        let mut line = v.to_string();
        if let Some(at) = truncate {
            let mut at = at % (line.len() + 1);
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            line.truncate(at);
        }
        let mut a = adjudicator();
        check_any_line(&mut a, &line)?;
        // The adjudicator is still usable afterwards, for another claim.
        let mut other = claim();
        other["fse_id"] = json!("99999999-000000001");
        let d = a.decide_line(&other.to_string()).unwrap();
        prop_assert_eq!(d.status, Status::Paid, "{:?}", d.reasons);
    }

    #[test]
    fn arbitrary_text_never_panics(line in ".{0,200}") {
        let mut a = adjudicator();
        check_any_line(&mut a, &line)?;
    }
}

#[test]
fn a_stream_keeps_going_after_bad_lines() {
    let mut a = adjudicator();
    let mut bad: Vec<String> = vec![
        "hello".into(),
        "[]".into(),
        "{}".into(),
        "".into(),
        "{".repeat(MAX_LINE_BYTES + 1),
        set(claim(), "acts", json!([])).to_string(),
        set(claim(), "beneficiary.nir", json!("185057800604831")).to_string(),
        set(claim(), "acts.0.code", json!("ZZZ")).to_string(),
        set(claim(), "acts.0.charged", json!("-3")).to_string(),
        set(claim(), "professional.rpps", json!(10000123454u64)).to_string(),
        set(visitor(), "ehic.country", json!("FR")).to_string(),
        set(claim(), "beneficiary.nir", json!(unknown_nir())).to_string(),
    ];
    let mut n = 0;
    while bad.len() < 50 {
        let mut line = claim().to_string();
        line.truncate(n * 7 % line.len());
        bad.push(line);
        n += 1;
    }
    let mut rejected = 0;
    let mut errors = 0;
    for line in &bad {
        match a.decide_line(line) {
            Ok(d) => {
                assert_eq!(d.status, Status::Rejected, "{line}");
                rejected += 1;
            }
            Err(LineError::Store(e)) => panic!("{e}"),
            Err(_) => errors += 1,
        }
    }
    assert_eq!(rejected + errors, 50);
    assert!(rejected > 0 && errors > 0);
    // The claim with the same id as many bad lines is still paid: no bad line
    // took its id.
    let d = assert_paid(&mut a, &claim().to_string());
    assert_eq!(d.amo.to_string(), "19.00");
    assert_eq!(d.paid_to_insured.to_string(), "19.00");
}
