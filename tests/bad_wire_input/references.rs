//! The reference topics: `ref.rights` (entitlement, dead letters), `ref.pki`
//! (validation, counted) and `ref.eu.institutions` (routing, counted).

use clearing_pipeline::events::model::{
    CertificateRec, CoverageRec, EuInstitutionRecord, PkiEvent, RevocationRec, RightsRecord,
};
use clearing_pipeline::runtime::topics;

use crate::check::{Case, Expect, case, refused, row, run_all};
use crate::world::{date, world};

/// The first rights record of the data set, changed.
fn rights(change: impl FnOnce(&mut RightsRecord)) -> Vec<u8> {
    let w = world();
    let mut r = w.rights[0].clone();
    change(&mut r);
    w.registry.encode_single(&r)
}

/// The first certificate of the data set under another id, changed.
fn certificate(change: impl FnOnce(&mut CertificateRec)) -> Vec<u8> {
    let w = world();
    let PkiEvent::Certificate(mut c) = w.pki_events[0].clone() else {
        panic!("a certificate")
    };
    c.id = "another-card".into();
    change(&mut c);
    w.registry.encode_single(&PkiEvent::Certificate(c))
}

/// The first institution of the data set under another id, changed.
fn institution(change: impl FnOnce(&mut EuInstitutionRecord)) -> Vec<u8> {
    let w = world();
    let mut r = w.institution_records[0].clone();
    r.institution_id = "NEW-1".into();
    change(&mut r);
    w.registry.encode_single(&r)
}

/// A refusal of the bytes `make` gives, as a row.
fn refusing(make: impl FnOnce() -> Vec<u8> + 'static) -> impl FnOnce() -> Case {
    move || refused(make())
}

#[test]
fn ref_rights() {
    run_all(
        topics::REF_RIGHTS,
        vec![
            row(
                "garbled_nir",
                refusing(|| rights(|r| r.nir = "1850799999999".into())),
            ),
            row(
                "nir_with_a_bad_key",
                refusing(|| {
                    rights(|r| {
                        let key: u32 = r.nir[13..].parse().unwrap();
                        r.nir = format!("{}{:02}", &r.nir[..13], (key % 97) + 1);
                    })
                }),
            ),
            row("empty_nir", refusing(|| rights(|r| r.nir = String::new()))),
            row(
                "coverage_that_ends_before_it_starts",
                refusing(|| {
                    rights(|r| {
                        r.coverage = vec![CoverageRec {
                            from: date(2025, 1, 1),
                            to: Some(date(2024, 1, 1)),
                            regime: "01".into(),
                            fund: "751".into(),
                        }];
                    })
                }),
            ),
            row(
                "coverage_regime_garbled",
                refusing(|| rights(|r| r.coverage[0].regime = "XYZ".into())),
            ),
            row(
                "too_many_periods",
                refusing(|| rights(|r| r.coverage = vec![r.coverage[0].clone(); 5000])),
            ),
            row(
                "declared_gp_garbled",
                refusing(|| rights(|r| r.declared_gp = Some("not-an-rpps".into()))),
            ),
            // `ref.rights` is the source of truth: a beneficiary not seen
            // before is a new one, taken.
            row("rights_of_a_beneficiary_not_known_before", || {
                let nir = unknown_nir();
                case(rights(|r| r.nir = nir), Expect::Accepted)
            }),
        ],
    );
}

/// A valid NIR no rights record of the data set has.
fn unknown_nir() -> String {
    let w = world();
    let known: Vec<&str> = w.rights.iter().map(|r| r.nir.as_str()).collect();
    (0..1000u64)
        .map(|i| {
            let body = format!("1850775{:06}", 100_000 + i);
            let n: u64 = body.parse().unwrap();
            format!("{body}{:02}", 97 - n % 97)
        })
        .find(|n| !known.contains(&n.as_str()))
        .unwrap()
}

#[test]
fn ref_pki() {
    run_all(
        topics::REF_PKI,
        vec![
            row(
                "revocation_of_an_unknown_certificate",
                refusing(|| {
                    world()
                        .registry
                        .encode_single(&PkiEvent::Revocation(RevocationRec {
                            cert: "no-such-card".into(),
                            revoked_on: date(2025, 1, 1),
                        }))
                }),
            ),
            row(
                "certificate_with_garbage_key_bytes",
                refusing(|| certificate(|c| c.public_key = b"garbage key bytes".to_vec())),
            ),
            row(
                "certificate_with_an_empty_key",
                refusing(|| certificate(|c| c.public_key = Vec::new())),
            ),
            row(
                "certificate_with_an_unknown_algorithm",
                refusing(|| certificate(|c| c.alg = "md5WithRSAEncryption".into())),
            ),
            row(
                "certificate_of_a_garbled_rpps",
                refusing(|| certificate(|c| c.rpps = "12AB".into())),
            ),
            row(
                "certificate_valid_until_before_it_starts",
                refusing(|| {
                    certificate(|c| {
                        c.not_before = date(2026, 1, 1);
                        c.not_after = date(2025, 1, 1);
                    })
                }),
            ),
            row(
                "certificate_with_an_empty_id",
                refusing(|| certificate(|c| c.id = String::new())),
            ),
            row(
                "certificate_with_a_control_character_in_its_issuer",
                refusing(|| certificate(|c| c.issuer = "IGC\u{7}".into())),
            ),
        ],
    );
}

#[test]
fn ref_eu_institutions() {
    run_all(
        topics::REF_EU_INSTITUTIONS,
        vec![
            row(
                "unknown_country",
                refusing(|| institution(|r| r.country = "US".into())),
            ),
            row(
                "france_is_not_a_visiting_state",
                refusing(|| institution(|r| r.country = "FR".into())),
            ),
            row(
                "empty_institution_id",
                refusing(|| institution(|r| r.institution_id = String::new())),
            ),
            row(
                "validity_that_ends_before_it_starts",
                refusing(|| institution(|r| r.to = Some(date(2000, 1, 1)))),
            ),
            row(
                "empty_name",
                refusing(|| institution(|r| r.name = String::new())),
            ),
        ],
    );
}
