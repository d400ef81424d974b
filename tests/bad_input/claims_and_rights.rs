//! What the claims decided before, the beneficiaries' rights and the
//! signatures decide: duplicates, unknown or uncovered beneficiaries,
//! exonerations, missing signatures.

use clearing_pipeline::domain::Stage;
use serde_json::json;

use crate::check::{check, check_apart, fse_id_is, line_is, noemie_is, paid, rejected, stage_is};
use crate::fixtures::{
    OTHER_NIR, adjudicator, claim, lapsed_nir, new_adjudicator, set, unknown_nir,
};

#[test]
fn a_second_fse_with_the_same_id_for_the_same_beneficiary_is_a_duplicate() {
    let duplicate = &[("duplicate", Some("fse_id"))];
    // The same id for another beneficiary is another claim.
    let other = set(
        claim(),
        "beneficiary",
        json!({"nir": OTHER_NIR, "birth_date": "1995-10-03", "rank": 1}),
    );
    check(
        &mut adjudicator(),
        [
            paid("the first", claim()),
            rejected("the same again", claim(), duplicate)
                .then(noemie_is("2900005"))
                .then(fse_id_is(Some("12345678-000000042"))),
            // Even with other content.
            rejected(
                "the same id with another amount",
                set(claim(), "acts.0.charged", json!("31.00")),
                duplicate,
            ),
            paid("the same id for another beneficiary", other.clone()),
            rejected("that one again", other, duplicate),
        ],
    );
}

#[test]
fn a_rejected_claim_does_not_take_its_id() {
    check(
        &mut adjudicator(),
        [
            rejected(
                "rejected",
                set(claim(), "acts.0.code", json!("ZZZ")),
                &[("unknown_act_code", Some("acts[0].code"))],
            ),
            paid("the same id, valid", claim()),
        ],
    );
}

#[test]
fn the_rights_are_checked() {
    let unknown = &[("unknown_beneficiary", None)];
    let lapsed = json!({"nir": lapsed_nir(), "birth_date": "1975-01-15", "rank": 1});
    let entitlement = || stage_is(Stage::Entitlement);
    check_apart([
        rejected(
            "an unknown beneficiary",
            set(claim(), "beneficiary.nir", json!(unknown_nir())),
            unknown,
        )
        .then(entitlement())
        .then(noemie_is("0250050"))
        .then(|d| assert!(d.beneficiary_key.is_some())),
        // Same NIR, other rank or birth date: another beneficiary, unknown too.
        rejected(
            "a known NIR of another rank",
            set(claim(), "beneficiary.rank", json!(2)),
            unknown,
        ),
        rejected(
            "not covered on the date of care",
            set(claim(), "beneficiary", lapsed.clone()),
            &[("not_covered_on_care_date", None)],
        )
        .then(entitlement()),
        // Covered through the last day of the period.
        paid(
            "the last day of the coverage",
            set(
                set(
                    set(claim(), "beneficiary", lapsed),
                    "care_date",
                    json!("2024-12-31"),
                ),
                "fse_id",
                json!("12345678-000000099"),
            ),
        ),
        rejected(
            "an ALD-related line without ALD",
            set(
                claim(),
                "acts",
                json!([{"code": "G", "charged": "30.00"}, {"code": "MCG", "charged": "3.00", "ald_related": true}]),
            ),
            &[("exoneration_not_found", Some("acts[1].ald_related"))],
        )
        .then(entitlement())
        .then(line_is(2))
        .then(noemie_is("0450072")),
    ]);
}

#[test]
fn without_a_pki_an_unsigned_claim_is_rejected() {
    let signed = set(
        claim(),
        "signature",
        json!({"alg": "rsa-pkcs1-sha256", "cert": "CPS-000123", "value": "AAAA"}),
    );
    check(
        &mut new_adjudicator(false),
        [
            rejected(
                "unsigned",
                claim(),
                &[("missing_signature", Some("signature"))],
            ),
            rejected(
                "signed by an unknown card",
                signed,
                &[("unknown_certificate", Some("signature"))],
            ),
        ],
    );
}
