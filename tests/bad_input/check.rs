//! The driver: a table of cases (a line, what deciding it must give, and
//! any further checks), each failure named after its case.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use clearing_pipeline::adjudicate::{Adjudicator, LineError};
use clearing_pipeline::domain::{Decision, Stage, Status};
use clearing_pipeline::money::Cents;
use serde_json::Value;

use crate::fixtures::{CARD, NIR, OTHER_NIR, PERSONAL_ID, lapsed_nir, unknown_nir};

/// A reason as `(code, field)`.
pub type Reason = (&'static str, Option<&'static str>);

/// What deciding a line must give.
pub enum Expect {
    /// A rejection with exactly these reasons, in order, and no money moving.
    Rejected(Vec<Reason>),
    /// Paid, without reasons.
    Paid,
    /// `LineError::NotJson`, echoing no personal data.
    NotJson,
    /// `LineError::TooLong` of this many bytes.
    TooLong(usize),
}

/// A check on a decision.
pub type Check = Box<dyn Fn(&Decision)>;

/// One line of a table.
pub struct Case {
    /// Names the case in a failure.
    pub name: String,
    pub line: String,
    pub expect: Expect,
    /// Checks on the decision beyond `expect`.
    pub then: Vec<Check>,
}

impl Case {
    /// Adds a check on the decision.
    pub fn then(mut self, check: impl Fn(&Decision) + 'static) -> Self {
        self.then.push(Box::new(check));
        self
    }
}

pub fn rejected(name: impl Into<String>, claim: Value, reasons: &[Reason]) -> Case {
    Case {
        name: name.into(),
        line: claim.to_string(),
        expect: Expect::Rejected(reasons.to_vec()),
        then: Vec::new(),
    }
}

pub fn paid(name: impl Into<String>, claim: Value) -> Case {
    paid_line(name, claim.to_string())
}

pub fn paid_line(name: impl Into<String>, line: String) -> Case {
    Case {
        name: name.into(),
        line,
        expect: Expect::Paid,
        then: Vec::new(),
    }
}

pub fn not_json(name: impl Into<String>, line: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        line: line.into(),
        expect: Expect::NotJson,
        then: Vec::new(),
    }
}

pub fn too_long(name: impl Into<String>, line: String) -> Case {
    Case {
        name: name.into(),
        expect: Expect::TooLong(line.len()),
        line,
        then: Vec::new(),
    }
}

/// One rejection per value: `fixture` with the value at `path`, each with
/// the same reasons, named `what` and the value.
pub fn each<V: Into<Value>>(
    what: &str,
    fixture: fn() -> Value,
    path: &str,
    values: impl IntoIterator<Item = V>,
    reasons: &[Reason],
) -> Vec<Case> {
    values
        .into_iter()
        .map(|value| {
            let value = value.into();
            let name = format!("{what}: {path} = {value}");
            rejected(name, crate::fixtures::set(fixture(), path, value), reasons)
        })
        .collect()
}

pub fn missing(field: &'static str) -> Reason {
    ("missing_field", Some(field))
}

pub fn malformed(field: &'static str) -> Reason {
    ("malformed", Some(field))
}

/// The first reason comes from `stage`.
pub fn stage_is(stage: Stage) -> impl Fn(&Decision) {
    move |d| assert_eq!(d.reasons[0].stage, stage)
}

/// The first reason carries this NOEMIE code.
pub fn noemie_is(code: &'static str) -> impl Fn(&Decision) {
    move |d| assert_eq!(d.reasons[0].code.noemie(), Some(code))
}

/// The first reason names this act line (from 1).
pub fn line_is(line: usize) -> impl Fn(&Decision) {
    move |d| assert_eq!(d.reasons[0].line, Some(line))
}

/// The decision echoes this id (or none).
pub fn fse_id_is(id: Option<&'static str>) -> impl Fn(&Decision) {
    move |d| assert_eq!(d.fse_id.as_deref(), id, "the id echoed")
}

/// Decides the cases in order with `a` (later cases see the claims earlier
/// ones paid); a failing case panics with its name.
pub fn check(a: &mut Adjudicator, cases: impl IntoIterator<Item = Case>) {
    for case in cases {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check_one(a, &case))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied());
            match message {
                Some(message) => panic!("case {:?}: {message}", case.name),
                None => resume_unwind(panic),
            }
        }
    }
}

/// Decides each case with a fresh adjudicator: no case sees another's claim.
pub fn check_apart(cases: impl IntoIterator<Item = Case>) {
    for case in cases {
        check(&mut crate::fixtures::adjudicator(), [case]);
    }
}

fn check_one(a: &mut Adjudicator, case: &Case) {
    let line = &case.line;
    match &case.expect {
        Expect::NotJson => assert_not_json(a, line),
        Expect::TooLong(n) => match a.decide_line(line) {
            Err(LineError::TooLong(got)) => assert_eq!(got, *n),
            other => panic!("expected TooLong, got {other:?}"),
        },
        Expect::Rejected(reasons) => {
            let d = assert_rejected(a, line, reasons);
            case.then.iter().for_each(|check| check(&d));
        }
        Expect::Paid => {
            let d = assert_paid(a, line);
            case.then.iter().for_each(|check| check(&d));
        }
    }
}

/// The personal data a line carries (from the fixtures, and from the line
/// itself when it parses): none of it may appear in a reason or warning.
fn personal_data(line: &str) -> Vec<String> {
    let mut secrets: Vec<String> = [NIR, OTHER_NIR, CARD, PERSONAL_ID, "Muster", "Erika"]
        .iter()
        .map(|s| s.to_string())
        .chain([lapsed_nir(), unknown_nir()])
        .collect();
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        for pointer in [
            "/beneficiary/nir",
            "/ehic/card_id",
            "/ehic/personal_id",
            "/ehic/surname",
            "/ehic/given_names",
        ] {
            if let Some(s) = v.pointer(pointer).and_then(Value::as_str) {
                let s = s.trim_matches(|c: char| c.is_whitespace() || c.is_control());
                if s.len() >= 4 {
                    secrets.push(s.to_string());
                }
            }
        }
    }
    secrets
}

/// No reason or warning (message or field) carries personal data.
pub fn assert_no_personal_data(line: &str, d: &Decision) {
    let secrets = personal_data(line);
    for reason in d.reasons.iter().chain(&d.warnings) {
        for secret in &secrets {
            assert!(
                !reason.message.contains(secret.as_str()),
                "reason {} echoes personal data in its message: {:?}",
                reason.code,
                reason.message
            );
            assert!(
                !reason
                    .field
                    .as_deref()
                    .unwrap_or_default()
                    .contains(secret.as_str()),
                "reason {} echoes personal data in its field",
                reason.code
            );
        }
    }
    let text = serde_json::to_string(d).unwrap();
    for secret in [NIR, OTHER_NIR, CARD, PERSONAL_ID] {
        assert!(
            !text.contains(secret),
            "the decision carries personal data: {text}"
        );
    }
}

fn decide(a: &mut Adjudicator, line: &str) -> Decision {
    match a.decide_line(line) {
        Ok(d) => {
            d.check_invariants().unwrap();
            assert_no_personal_data(line, &d);
            d
        }
        Err(e) => panic!("expected a decision, got the error {e}"),
    }
}

/// `(code, field)` of every reason, in order.
fn reasons(d: &Decision) -> Vec<(&str, Option<&str>)> {
    d.reasons
        .iter()
        .map(|r| (r.code.as_str(), r.field.as_deref()))
        .collect()
}

/// Decides `line` and asserts a rejection with exactly these reasons, no
/// money moving, and no personal data echoed.
fn assert_rejected(a: &mut Adjudicator, line: &str, expected: &[Reason]) -> Decision {
    let d = decide(a, line);
    assert_eq!(d.status, Status::Rejected, "{d:#?}");
    assert_eq!(reasons(&d), expected, "{:#?}", d.reasons);
    assert!(d.lines.is_empty());
    assert_eq!(d.route, None);
    for amount in [
        d.amo,
        d.css,
        d.participation,
        d.franchise,
        d.deferred,
        d.patient,
        d.paid_to_professional,
        d.paid_to_insured,
    ] {
        assert_eq!(amount, Cents::ZERO, "no money moves on a rejection");
    }
    d
}

pub fn assert_paid(a: &mut Adjudicator, line: &str) -> Decision {
    let d = decide(a, line);
    assert_eq!(d.status, Status::Paid, "{:#?}", d.reasons);
    assert!(d.reasons.is_empty());
    d
}

/// Asserts `decide_line` fails for a line that is not a JSON object, and
/// that the error does not echo personal data.
fn assert_not_json(a: &mut Adjudicator, line: &str) {
    match a.decide_line(line) {
        Err(e @ LineError::NotJson(_)) => {
            let text = e.to_string();
            for secret in personal_data(line) {
                assert!(!text.contains(&secret), "{text}");
            }
        }
        other => panic!("expected LineError::NotJson, got {other:?}"),
    }
}
