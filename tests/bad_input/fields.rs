//! One field's value out of bounds: identifiers, timestamps and dates, the
//! EHIC of a visitor, the professional and the pathway, act lines.

use clearing_pipeline::domain::{Route, SignatureCheck, Stage};
use serde_json::{Value, json};

use crate::check::{
    Case, Reason, check_apart, each, fse_id_is, line_is, malformed, noemie_is, paid, rejected,
    stage_is,
};
use crate::fixtures::{claim, nurse, pharmacy, remove, set, visitor};

/// A claim with these edits, in order.
fn edited(fixture: fn() -> Value, edits: &[(&str, Value)]) -> Value {
    edits
        .iter()
        .fold(fixture(), |v, (path, value)| set(v, path, value.clone()))
}

fn route_is(route: Route) -> impl Fn(&clearing_pipeline::domain::Decision) {
    move |d| assert_eq!(d.route, Some(route))
}

#[test]
fn identifiers_timestamps_and_dates_are_checked() {
    let mut cases: Vec<Case> = each(
        "a bad fse_id shape",
        claim,
        "fse_id",
        [
            "1234-42",
            "12345678000000042",
            "12345678-00000004",
            "12345678-0000000420",
            "abcdefgh-000000042",
            "12345678-00000004X",
            "",
        ],
        &[("invalid_fse_id", Some("fse_id"))],
    )
    .into_iter()
    .map(|c| c.then(fse_id_is(None)))
    .collect();
    // Uppercase letters are allowed in the billing number.
    cases.push(paid(
        "an uppercase billing number",
        set(claim(), "fse_id", json!("AB345678-000000042")),
    ));
    cases.extend(each(
        "received_at not RFC 3339",
        claim,
        "received_at",
        [
            "2025-01-20 09:14:03",
            "2025-01-20",
            "2025-01-20T09:14:03",
            "20/01/2025",
            "2025-01-32T09:14:03Z",
        ],
        &[("invalid_timestamp", Some("received_at"))],
    ));
    let impossible = [
        "2025-02-30",
        "2025-13-01",
        "2025-1-5",
        "2025-01-5",
        "2025-00-10",
        "20250120",
        "2025-01-20T00:00:00Z",
        " 2025-01-20",
    ];
    for (path, field) in [
        ("care_date", "care_date"),
        ("beneficiary.birth_date", "beneficiary.birth_date"),
    ] {
        let reasons = [("invalid_date", Some(field))];
        cases.extend(each(
            "an impossible date",
            claim,
            path,
            impossible,
            &reasons,
        ));
    }
    // 29 February only in a leap year.
    cases.extend(each(
        "an impossible date",
        claim,
        "beneficiary.birth_date",
        ["1985-02-29"],
        &[("invalid_date", Some("beneficiary.birth_date"))],
    ));
    cases.extend(care_dates());
    cases.extend(nirs());
    check_apart(cases);
}

/// The date of care against the receipt, the birth, the time bar and the
/// rule tables.
fn care_dates() -> Vec<Case> {
    let after_receipt = &[("care_date_after_receipt", Some("care_date"))];
    let before_birth = &[("care_date_before_birth", Some("care_date"))];
    let at = |care: &str, received: &str, id: &str| {
        edited(
            claim,
            &[
                ("care_date", json!(care)),
                ("received_at", json!(received)),
                ("fse_id", json!(id)),
            ],
        )
    };
    vec![
        rejected(
            "a care date after receipt",
            set(claim(), "care_date", json!("2025-01-21")),
            after_receipt,
        ),
        // The reimbursement date is the date in received_at's own offset:
        // 2025-01-20T23:30 at -05:00 is still the 20th there.
        paid(
            "received late in the day at -05:00",
            edited(
                claim,
                &[
                    ("received_at", json!("2025-01-20T23:30:00-05:00")),
                    ("fse_id", json!("12345678-000000043")),
                ],
            ),
        ),
        rejected(
            "received early in the day at +09:00",
            edited(
                claim,
                &[
                    ("received_at", json!("2025-01-20T01:00:00+09:00")),
                    ("care_date", json!("2025-01-21")),
                ],
            ),
            after_receipt,
        ),
        rejected(
            "a care date before birth",
            set(claim(), "beneficiary.birth_date", json!("2025-01-21")),
            before_birth,
        ),
        rejected(
            "a care date before a visitor's birth",
            set(visitor(), "ehic.birth_date", json!("2025-08-01")),
            before_birth,
        ),
        // Art. L.332-1 CSS: barred two years from the first day of the
        // quarter after the care. Care in Q1 2023: in time up to 2025-03-31.
        paid(
            "received on the last day in time",
            at("2023-01-20", "2025-03-31T10:00:00Z", "12345678-000000001"),
        )
        .then(|d| assert_eq!(d.lines[0].tariff, "G@2017-05-01")),
        rejected(
            "received on the first day barred",
            at("2023-01-20", "2025-04-01T10:00:00Z", "12345678-000000002"),
            &[("claim_time_barred", Some("care_date"))],
        ),
        // 731 days after the care: barred under the 730-day reading of the
        // rule sets before 2026-12-05, in time under the article.
        paid(
            "received 731 days after care, in time",
            at("2023-01-20", "2025-01-20T10:00:00Z", "12345678-000000003"),
        ),
        // The last day of a quarter starts the count at the next one.
        paid(
            "care on a quarter's last day, received two years later",
            at("2023-03-31", "2025-03-31T10:00:00Z", "12345678-000000004"),
        ),
        rejected(
            "care on a quarter's last day, received the next day two years later",
            at("2023-03-31", "2025-04-01T10:00:00Z", "12345678-000000005"),
            &[("claim_time_barred", Some("care_date"))],
        ),
        paid(
            "care on a quarter's first day, received at that quarter's end two years later",
            at("2023-04-01", "2025-06-30T10:00:00Z", "12345678-000000006"),
        ),
        // Leap day: care on 2024-02-29 (Q1) is in time until 2026-03-31.
        paid(
            "care on a leap day, last day in time",
            at("2024-02-29", "2026-03-31T10:00:00Z", "12345678-000000007"),
        ),
        rejected(
            "care on a leap day, first day barred",
            at("2024-02-29", "2026-04-01T10:00:00Z", "12345678-000000008"),
            &[("claim_time_barred", Some("care_date"))],
        ),
        // The insurer's date is the date in Paris: 23:30 UTC on 2025-03-31
        // is 01:30 on 2025-04-01 in summer time, barred.
        rejected(
            "received late in the evening UTC, the next day in Paris",
            at("2023-01-20", "2025-03-31T23:30:00Z", "12345678-000000009"),
            &[("claim_time_barred", Some("care_date"))],
        ),
        rejected(
            "a care date before any rule table",
            edited(
                claim,
                &[
                    ("care_date", json!("1990-03-01")),
                    ("received_at", json!("1990-03-02T10:00:00+01:00")),
                ],
            ),
            &[("no_rules_for_date", Some("care_date"))],
        ),
    ]
}

/// The NIR, the rank, and a patient given as both or neither.
fn nirs() -> Vec<Case> {
    let invalid_nir = &[("invalid_nir", Some("beneficiary.nir"))];
    let ambiguous = &[("patient_ambiguous", Some("beneficiary"))];
    let mut cases = each(
        "a NIR with a bad key",
        claim,
        "beneficiary.nir",
        ["185057800604831"],
        invalid_nir,
    );
    cases.extend(each(
        "a NIR of the wrong length or shape",
        claim,
        "beneficiary.nir",
        [
            "18505780060483",
            "1850578006048300",
            "",
            "985057800604830",
            "185137800604830",
            "1850578006048\u{0}0",
        ],
        invalid_nir,
    ));
    cases.extend(each(
        "a rank out of range",
        claim,
        "beneficiary.rank",
        [0, 10],
        &[("invalid_beneficiary", Some("beneficiary.rank"))],
    ));
    cases.extend([
        rejected(
            "both a beneficiary and an EHIC",
            set(claim(), "ehic", visitor()["ehic"].clone()),
            ambiguous,
        ),
        rejected(
            "neither a beneficiary nor an EHIC",
            remove(claim(), "beneficiary"),
            ambiguous,
        ),
    ]);
    cases
}

#[test]
fn an_ehic_is_checked() {
    let invalid = |field: &'static str| -> [Reason; 1] { [("invalid_ehic", Some(field))] };
    let mut cases = each(
        "a bad card id",
        visitor,
        "ehic.card_id",
        ["1234", "8027600123456789012X", "802760012345678901234", ""],
        &invalid("ehic.card_id"),
    );
    for (what, path, value) in [
        ("a bad institution id", "ehic.institution_id", json!("aok")),
        (
            "a long personal id",
            "ehic.personal_id",
            json!("X".repeat(21)),
        ),
        ("an absurdly far expiry", "ehic.expiry", json!("2099-12-31")),
    ] {
        cases.extend(each(what, visitor, path, [value], &invalid(path)));
    }
    cases.extend(each(
        "an unknown country",
        visitor,
        "ehic.country",
        ["ZZ", "US", "DEU", "", "D"],
        &invalid("ehic.country"),
    ));
    cases.extend(each(
        "a NUL or control character in a name",
        visitor,
        "ehic.surname",
        [
            "Mu\u{0}ster",
            "Mus\nter",
            "Mu\u{7f}ster",
            "Mu\u{9b}ster",
            "   ",
            "",
        ],
        &invalid("ehic.surname"),
    ));
    for (path, value) in [
        ("ehic.given_names", json!("E\u{1b}[31mrika")),
        ("ehic.given_names", json!("é".repeat(65))),
        ("ehic.personal_id", json!("X12\u{0}3")),
    ] {
        cases.extend(each("a bad name", visitor, path, [value], &invalid(path)));
    }
    // Non-ASCII letters are fine in names.
    cases.push(paid(
        "non-ASCII letters in a name",
        set(visitor(), "ehic.surname", json!("Müller-Łukasz")),
    ));
    cases.extend(ehic_at_routing());
    check_apart(cases);
}

/// What routing checks of an EHIC: the card's state and expiry, its
/// institution.
fn ehic_at_routing() -> Vec<Case> {
    let unknown = &[("eu_institution_unknown", Some("ehic.institution_id"))];
    let croatian = |care: &str, id: &str| {
        edited(
            visitor,
            &[
                ("ehic.country", json!("HR")),
                ("ehic.institution_id", json!("HZZO")),
                ("ehic.expiry", json!("2014-12-31")),
                ("care_date", json!(care)),
                ("received_at", json!(format!("{care}T12:00:00+02:00"))),
                ("acts.0.code", json!("C")),
                ("acts.0.charged", json!("23.00")),
                ("fse_id", json!(id)),
            ],
        )
    };
    vec![
        rejected(
            "a French EHIC",
            set(visitor(), "ehic.country", json!("FR")),
            &[("ehic_french_card", Some("ehic.country"))],
        )
        .then(stage_is(Stage::Routing))
        .then(|d| assert_eq!(d.signature_check, Some(SignatureCheck::NotChecked))),
        rejected(
            "an expired EHIC",
            set(visitor(), "ehic.expiry", json!("2025-07-13")),
            &[("ehic_expired", Some("ehic.expiry"))],
        )
        .then(stage_is(Stage::Routing)),
        // Valid through its expiry day. (Another invoice number: the
        // rejected claim's id was recorded by validation before routing
        // rejected it.)
        paid(
            "an EHIC on its expiry day",
            edited(
                visitor,
                &[
                    ("ehic.expiry", json!("2025-07-14")),
                    ("fse_id", json!("45678901-000000101")),
                ],
            ),
        )
        .then(route_is(Route::Eu)),
        rejected(
            "an institution not in the directory",
            set(visitor(), "ehic.institution_id", json!("999999")),
            unknown,
        )
        .then(stage_is(Stage::Routing)),
        // Known, but under another country.
        rejected(
            "an institution of another country",
            set(visitor(), "ehic.country", json!("AT")),
            unknown,
        ),
        rejected(
            "a state not accepted on the date of care",
            croatian("2013-06-30", "45678901-000000001"),
            &[("ehic_state_not_accepted", Some("ehic.country"))],
        )
        .then(stage_is(Stage::Routing)),
        // From the accession day, the same card is accepted.
        paid(
            "a state accepted from its accession day",
            croatian("2013-07-01", "45678901-000000002"),
        )
        .then(route_is(Route::Eu)),
    ]
}

#[test]
fn the_professional_and_the_pathway_are_checked() {
    let mut cases = each(
        "an RPPS of 10 digits",
        claim,
        "professional.rpps",
        [
            "1000012345",
            "100001234540",
            "1000012345A",
            "",
            "１0000123454",
        ],
        &[("invalid_rpps", Some("professional.rpps"))],
    );
    cases.push(
        paid(
            "an RPPS failing Luhn is only a warning",
            set(claim(), "professional.rpps", json!("10000123455")),
        )
        .then(|d| {
            let warnings: Vec<&str> = d.warnings.iter().map(|w| w.code.as_str()).collect();
            assert!(warnings.contains(&"rpps_key_warning"), "{warnings:?}");
        }),
    );
    cases.extend(each(
        "an unknown category",
        claim,
        "professional.category",
        ["surgeon", "GP", "", "Gp"],
        &[("invalid_category", Some("professional.category"))],
    ));
    cases.extend(each(
        "not a sector",
        claim,
        "professional.sector",
        ["4", "0", "1 ", "", "one"],
        &[("invalid_sector", Some("professional.sector"))],
    ));
    cases.extend(each(
        "a number for the sector",
        claim,
        "professional.sector",
        [1],
        &[malformed("professional.sector")],
    ));
    cases.extend(each(
        "an unknown pathway",
        claim,
        "pathway",
        ["somewhere", "MT", ""],
        &[("invalid_pathway", Some("pathway"))],
    ));
    check_apart(cases);
}

#[test]
fn act_lines_are_checked() {
    let g = json!({"code": "G", "charged": "30.00"});
    let mut cases = vec![
        rejected(
            "zero act lines",
            set(claim(), "acts", json!([])),
            &[("no_act_lines", Some("acts"))],
        ),
        rejected(
            "a hundred act lines",
            set(claim(), "acts", Value::Array(vec![g.clone(); 100])),
            &[("too_many_lines", Some("acts"))],
        ),
        // 99 is the bound, and is decided.
        paid(
            "99 act lines",
            set(claim(), "acts", Value::Array(vec![g; 99])),
        )
        .then(|d| assert_eq!(d.lines.len(), 99)),
        rejected(
            "an unknown act code",
            set(claim(), "acts.0.code", json!("ZZZ")),
            &[("unknown_act_code", Some("acts[0].code"))],
        )
        .then(line_is(1)),
        rejected(
            "the reason names the right line",
            set(
                claim(),
                "acts",
                json!([{"code": "G", "charged": "30.00"}, {"code": "MCG", "charged": "3.00"},
                       {"code": "ZZZ", "charged": "1.00"}]),
            ),
            &[("unknown_act_code", Some("acts[2].code"))],
        )
        .then(line_is(3)),
    ];
    // Not even of an act code's shape.
    cases.extend(each(
        "not an act code",
        claim,
        "acts.0.code",
        ["g", "G1", "", "ABCDEFGH", "ph7", "PH77"],
        &[("invalid_act_code", Some("acts[0].code"))],
    ));
    cases.extend(acts_on_the_date_and_for_the_category());
    cases.extend(each(
        "a quantity of 0 or 100",
        claim,
        "acts.0.quantity",
        [0, 100, 4_000_000_000u32],
        &[("invalid_quantity", Some("acts[0].quantity"))],
    ));
    cases.extend(each(
        "a bad coefficient",
        claim,
        "acts.0.coefficient",
        [
            "0", "-1", "1.234", "0.00", "1e3", "1000.01", "", "one", "1,5",
        ],
        &[("invalid_coefficient", Some("acts[0].coefficient"))],
    ));
    // A unit-priced act takes no coefficient but 1.
    cases.extend(each(
        "a coefficient on a unit-priced act",
        nurse,
        "acts.1",
        [json!({"code": "IFD", "coefficient": "2", "charged": "5.00"})],
        &[("invalid_coefficient", Some("acts[1].coefficient"))],
    ));
    cases.extend(amounts());
    cases.extend(products_and_complements());
    cases.push(rejected(
        "several problems are all reported",
        edited(
            claim,
            &[
                ("professional.sector", json!("4")),
                ("pathway", json!("somewhere")),
                ("acts.0.quantity", json!(0)),
                ("acts.0.charged", json!("-1")),
            ],
        ),
        &[
            ("invalid_sector", Some("professional.sector")),
            ("invalid_pathway", Some("pathway")),
            ("invalid_quantity", Some("acts[0].quantity")),
            ("invalid_amount", Some("acts[0].charged")),
        ],
    ));
    check_apart(cases);
}

/// Acts the professional's category may not bill, or not on the date of care.
fn acts_on_the_date_and_for_the_category() -> Vec<Case> {
    let not_allowed = &[("act_not_allowed_for_category", Some("acts[0].code"))];
    let not_billable = &[("act_not_billable_on_date", Some("acts[0].code"))];
    let on = |care: &str, code: &str, id: &str| {
        edited(
            claim,
            &[
                ("care_date", json!(care)),
                ("received_at", json!(format!("{care}T18:00:00+02:00"))),
                ("acts.0.code", json!(code)),
                ("acts.0.charged", json!("25.00")),
                ("fse_id", json!(id)),
            ],
        )
    };
    vec![
        rejected(
            "a nurse's act on a GP's claim",
            set(
                claim(),
                "acts.0",
                json!({"code": "AMI", "coefficient": "2", "charged": "6.30"}),
            ),
            not_allowed,
        )
        .then(noemie_is("0317051")),
        // A pharmacist cannot bill a GP consultation.
        rejected(
            "a GP consultation billed by a pharmacist",
            set(
                pharmacy(),
                "acts.0",
                json!({"code": "G", "charged": "30.00"}),
            ),
            not_allowed,
        ),
        rejected(
            "G before its rate exists",
            on("2017-04-30", "G", "12345678-000000001"),
            not_billable,
        )
        .then(noemie_is("0470049")),
        rejected(
            "C after G replaced it",
            on("2017-05-01", "C", "12345678-000000002"),
            not_billable,
        ),
        // Either side of the switch, the other key is billable.
        paid(
            "C before the switch",
            on("2017-04-30", "C", "12345678-000000003"),
        ),
        paid(
            "G after the switch",
            on("2017-05-01", "G", "12345678-000000004"),
        ),
        // A pharmacy code before its rate exists (PH2, 15 Apr 2010).
        rejected(
            "PH2 before its rate exists",
            edited(
                pharmacy,
                &[
                    ("acts.0.code", json!("PH2")),
                    ("care_date", json!("2010-04-14")),
                    ("received_at", json!("2010-04-14T10:00:00+02:00")),
                ],
            ),
            not_billable,
        ),
    ]
}

fn amounts() -> Vec<Case> {
    let mut cases = each(
        "a bad amount",
        claim,
        "acts.0.charged",
        [
            "-3",
            "-0.01",
            "10000000.01",
            "99999999999999999999",
            "1e3",
            "30.001",
            "30,00",
            " 30.00",
            "+30",
            "",
            "NaN",
        ],
        &[("invalid_amount", Some("acts[0].charged"))],
    );
    cases.extend(each(
        "a bad base",
        claim,
        "acts.0.base",
        ["abc"],
        &[("invalid_amount", Some("acts[0].base"))],
    ));
    cases.extend(each(
        "a negative unit price",
        pharmacy,
        "acts.0.unit_price",
        ["-7.50"],
        &[("invalid_amount", Some("acts[0].unit_price"))],
    ));
    // The bound itself is accepted: the base stays the tariff.
    cases.push(
        paid(
            "the bound of an amount",
            set(claim(), "acts.0.charged", json!("10000000.00")),
        )
        .then(|d| {
            assert_eq!(d.lines[0].base.to_string(), "30.00");
            assert_eq!(d.patient.to_string(), "9999981.00");
        }),
    );
    cases
}

fn products_and_complements() -> Vec<Case> {
    let invalid_product = &[("invalid_product", Some("acts[0].product"))];
    let invalid_complement = &[("invalid_complement", Some("acts[0].complement"))];
    let mut cases = vec![
        rejected(
            "a pharmacy line without a product",
            remove(pharmacy(), "acts.0.product"),
            invalid_product,
        ),
        rejected(
            "a pharmacy line without a unit price",
            remove(pharmacy(), "acts.0.unit_price"),
            invalid_product,
        ),
    ];
    cases.extend(each(
        "a bad CIP13",
        pharmacy,
        "acts.0.product",
        [
            "3400935955839",
            "340093595583",
            "1234567890128",
            "34009359558AB",
        ],
        invalid_product,
    ));
    cases.extend(each(
        "an unknown complement",
        claim,
        "acts.0.complement",
        ["midnight"],
        invalid_complement,
    ));
    cases.extend(each(
        "a complement the act does not have",
        pharmacy,
        "acts.0.complement",
        ["night"],
        invalid_complement,
    ));
    // Auxiliaries have night and Sunday complements, but no urgency one.
    cases.extend(each(
        "an urgency complement on a nurse's act",
        nurse,
        "acts.0.complement",
        ["urgency"],
        invalid_complement,
    ));
    cases
}
