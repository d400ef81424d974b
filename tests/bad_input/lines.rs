//! Lines that are not a JSON object (the only errors), objects of the wrong
//! shape (`malformed`, naming the field, never the value) and missing fields.

use clearing_pipeline::adjudicate::MAX_LINE_BYTES;
use clearing_pipeline::domain::Stage;
use serde_json::{Value, json};

use crate::check::{
    check_apart, each, fse_id_is, malformed, missing, not_json, paid, paid_line, rejected, too_long,
};
use crate::fixtures::{GP, NIR, claim, nurse, pharmacy, remove, set, visitor};

#[test]
fn not_a_json_object_is_an_error() {
    let mut trailing = claim().to_string();
    trailing.push_str(" {}");
    let mut big = claim();
    big["padding"] = json!("x".repeat(MAX_LINE_BYTES));
    let mut exact = claim().to_string();
    // JSON whitespace pads the object to exactly MAX_LINE_BYTES.
    exact.insert_str(1, &" ".repeat(MAX_LINE_BYTES - exact.len()));
    assert_eq!(exact.len(), MAX_LINE_BYTES);
    // Deep enough to blow a naive recursive parser, short enough to be parsed.
    let depth = 20_000;
    let mut cases = vec![
        paid("the valid claim", claim()),
        paid("the valid visitor", visitor()),
        paid("the valid pharmacy claim", pharmacy()),
        paid("the valid nurse claim", nurse()),
        not_json("hello", "hello"),
        not_json("a truncated object", "{\"fse_id\": "),
        not_json("an empty line", ""),
        not_json("blanks", "   "),
        not_json("single quotes", "{'fse_id': 'x'}"),
        not_json("an object and trailing text", trailing),
    ];
    for line in ["[1, 2]", "[]", "null", "42", "\"fse\"", "true"] {
        cases.push(not_json(format!("JSON but not an object: {line}"), line));
    }
    cases.extend([
        not_json(
            "an array of claims",
            Value::Array(vec![claim()]).to_string(),
        ),
        not_json(
            "a raw control character in a string",
            claim()
                .to_string()
                .replace("12345678-000000042", "12345678-\u{1}00000042"),
        ),
        too_long("an oversized line", big.to_string()),
        // Not even parsed: garbage of the same size is the same error.
        too_long("oversized garbage", "{".repeat(MAX_LINE_BYTES + 1)),
        paid_line("a line of exactly the bound is decided", exact),
        not_json(
            "deeply nested arrays",
            format!("{{\"fse_id\": {}{}}}", "[".repeat(depth), "]".repeat(depth)),
        ),
        not_json(
            "deeply nested objects",
            format!(
                "{{\"acts\": {}{}}}",
                "{\"a\":".repeat(depth),
                "}".repeat(depth)
            ),
        ),
    ]);
    check_apart(cases);
}

#[test]
fn a_wrong_shape_is_malformed() {
    let nested: Value = serde_json::from_str(&format!("{}{}", "[".repeat(50), "]".repeat(50)))
        .expect("within serde_json's depth limit");
    let mut cases = vec![
        // The first act line is not an object.
        rejected(
            "moderately nested JSON in a field",
            set(claim(), "acts", nested),
            &[malformed("acts[0]")],
        )
        .then(fse_id_is(Some("12345678-000000042"))),
        rejected(
            "an empty object lists every missing field",
            json!({}),
            &[
                missing("fse_id"),
                missing("received_at"),
                missing("care_date"),
                missing("professional"),
                ("patient_ambiguous", Some("beneficiary")),
                missing("acts"),
            ],
        )
        .then(fse_id_is(None))
        .then(|d| assert!(d.reasons.iter().all(|r| r.stage == Stage::Validation))),
        rejected(
            "a number for the rpps",
            set(claim(), "professional.rpps", json!(10000123454u64)),
            &[malformed("professional.rpps")],
        )
        .then(fse_id_is(Some("12345678-000000042"))),
        rejected(
            "a number for the NIR",
            set(claim(), "beneficiary.nir", json!(185057800604830u64)),
            &[malformed("beneficiary.nir")],
        ),
        rejected(
            "a number for an amount",
            set(claim(), "acts.0.charged", json!(30.0)),
            &[malformed("acts[0].charged")],
        ),
        // A number for the id: the id is not echoed back either.
        rejected(
            "a number for the id",
            set(claim(), "fse_id", json!(42)),
            &[malformed("fse_id")],
        )
        .then(fse_id_is(None)),
    ];
    cases.extend(each(
        "not a quantity",
        claim,
        "acts.0.quantity",
        [json!("1"), json!(-1), json!(1.5), json!(u64::MAX)],
        &[malformed("acts[0].quantity")],
    ));
    for (path, value, field) in [
        // An object for the acts, or a string for an act line.
        ("acts", json!({"code": "G", "charged": "30.00"}), "acts"),
        ("acts", json!(["G"]), "acts[0]"),
        // Wrong types for flags and the rank.
        ("professional.optam", json!("yes"), "professional.optam"),
        ("tiers_payant.amo", json!(1), "tiers_payant.amo"),
        ("acts.0.ald_related", json!(null), "acts[0].ald_related"),
        ("beneficiary.rank", json!(300), "beneficiary.rank"),
        // An unknown field is named by the record that holds it, never by
        // its own name: a name may be personal data (a NIR sent as a key).
        ("comment", json!("hello"), "(document)"),
        ("beneficiary.name", json!("Jean"), "beneficiary"),
        ("acts.0.price", json!("30.00"), "acts[0]"),
        // An array in place of an object.
        (
            "professional",
            json!([GP, "gp", "1", false]),
            "professional",
        ),
        ("beneficiary", json!([NIR, "1985-05-12", 1]), "beneficiary"),
        ("tiers_payant", json!([true, false]), "tiers_payant"),
        (
            "acts",
            json!([["G", 1, "1", "30.00", null, false, null, null, null, null]]),
            "acts[0]",
        ),
    ] {
        cases.extend(each(
            "the wrong type",
            claim,
            path,
            [value],
            &[malformed(field)],
        ));
    }
    check_apart(cases);
}

#[test]
fn missing_fields_are_reported() {
    let cases = vec![
        rejected("no fse_id", remove(claim(), "fse_id"), &[missing("fse_id")])
            .then(fse_id_is(None)),
        rejected(
            "no received_at",
            remove(claim(), "received_at"),
            &[missing("received_at")],
        )
        .then(fse_id_is(Some("12345678-000000042"))),
        rejected(
            "no care_date",
            remove(claim(), "care_date"),
            &[missing("care_date")],
        ),
        rejected(
            "no professional",
            remove(claim(), "professional"),
            &[missing("professional")],
        ),
        rejected(
            "an empty professional",
            set(claim(), "professional", json!({})),
            &[
                missing("professional.rpps"),
                missing("professional.category"),
                missing("professional.sector"),
            ],
        ),
        rejected("no acts", remove(claim(), "acts"), &[missing("acts")]),
        rejected(
            "null acts",
            set(claim(), "acts", Value::Null),
            &[missing("acts")],
        ),
        rejected(
            "an empty beneficiary",
            set(claim(), "beneficiary", json!({})),
            &[
                missing("beneficiary.nir"),
                missing("beneficiary.birth_date"),
                missing("beneficiary.rank"),
            ],
        ),
        rejected(
            "an empty act line",
            set(claim(), "acts.0", json!({})),
            &[missing("acts[0].code"), missing("acts[0].charged")],
        ),
        rejected(
            "an act line without an amount",
            remove(claim(), "acts.0.charged"),
            &[missing("acts[0].charged")],
        ),
        rejected(
            "an empty EHIC",
            set(visitor(), "ehic", json!({})),
            &[
                missing("ehic.country"),
                missing("ehic.institution_id"),
                missing("ehic.card_id"),
                missing("ehic.personal_id"),
                missing("ehic.surname"),
                missing("ehic.given_names"),
                missing("ehic.birth_date"),
                missing("ehic.expiry"),
            ],
        ),
    ];
    check_apart(cases);
}
