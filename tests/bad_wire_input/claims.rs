//! `fse.submitted` (validation): claims as a front end would submit them,
//! signed with this test's cards, each rejected with its reason or refused.

use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::runtime::StageKind;
use clearing_pipeline::runtime::ingest::fse_key;
use clearing_pipeline::runtime::topics;

use crate::check::{Case, Expect, Row, assert_dead_letter, row, run_all};
use crate::world::{batch, batch_alone, date, record, sign_with, world};

const TOPIC: &str = topics::FSE_SUBMITTED;

/// The domestic claim with a new id, re-signed with this test's card.
fn fresh(change: impl FnOnce(&mut FseSubmitted)) -> FseSubmitted {
    let w = world();
    let mut f = w.domestic.clone();
    let ps = f.fse_id.split('-').next().unwrap().to_string();
    f.fse_id = format!("{ps}-987654321");
    change(&mut f);
    let cert = format!("own/{}", f.professional.rpps);
    sign_with(&w.registry, &mut f, &w.key, &cert);
    f
}

fn submission(f: &FseSubmitted) -> Case {
    let w = world();
    Case {
        bad: vec![w.registry.encode_single(f)],
        key: Some(fse_key(f, &w.pseudonyms)),
        expect: Expect::Accepted,
    }
}

fn rejected(f: &FseSubmitted, codes: &[&'static str]) -> Case {
    Case {
        expect: Expect::Rejected(codes.to_vec()),
        ..submission(f)
    }
}

fn resigned(f: &mut FseSubmitted, cert: &str) {
    let w = world();
    sign_with(&w.registry, f, &w.key, cert);
}

/// A fresh claim, changed after its signing (or re-signed), rejected with
/// these codes.
fn fresh_rejected(change: impl FnOnce(&mut FseSubmitted), codes: &[&'static str]) -> Case {
    let mut f = fresh(|_| {});
    change(&mut f);
    rejected(&f, codes)
}

/// A fresh claim changed before its signing, rejected with these codes.
fn signed_rejected(change: impl FnOnce(&mut FseSubmitted), codes: &[&'static str]) -> Case {
    rejected(&fresh(change), codes)
}

/// Re-signed with the card `cert` names (`{rpps}`: the claim's professional).
fn signed_by(cert: &'static str) -> impl FnOnce(&mut FseSubmitted) {
    move |f| {
        let cert = cert.replace("{rpps}", &f.professional.rpps);
        resigned(f, &cert)
    }
}

#[test]
fn claims() {
    let mut rows = claim_rows();
    rows.extend(signature_rows());
    run_all(TOPIC, rows);
}

/// The claim's content: a repeat, or a value validation rejects.
fn claim_rows() -> Vec<Row> {
    vec![
        row(
            "control_a_fresh_claim_signed_with_a_known_card_passes",
            || submission(&fresh(|_| {})),
        ),
        row("duplicate_fse_received_again_later", || {
            let mut f = world().domestic.clone();
            f.received_at_millis += 86_400_000;
            signed_by("own/{rpps}")(&mut f);
            rejected(&f, &["duplicate"])
        }),
        row("replayed_old_fse_bytes", || {
            let w = world();
            let original = (w.streams[TOPIC].records.iter())
                .find(|r| r.value == w.registry.encode_single(&w.domestic))
                .unwrap();
            Case {
                bad: vec![original.value.clone()],
                key: Some(original.key.clone()),
                expect: Expect::Rejected(vec!["duplicate"]),
            }
        }),
        row("future_care_date", || {
            signed_rejected(
                |f| f.care_date = f.care_date + chrono::Days::new(40),
                &["care_date_after_receipt"],
            )
        }),
        row("care_date_in_year_9999", || {
            signed_rejected(
                |f| f.care_date = date(9999, 12, 31),
                &["care_date_after_receipt"],
            )
        }),
        row("care_date_before_1900", || {
            signed_rejected(
                |f| f.care_date = date(1899, 12, 31),
                &["care_date_before_birth", "no_rules_for_date"],
            )
        }),
        row("ehic_of_a_non_member_state", || {
            let mut f = world().visitor.clone();
            let ps = f.fse_id.split('-').next().unwrap().to_string();
            f.fse_id = format!("{ps}-987654322");
            if let Some(e) = &mut f.ehic {
                e.country = "US".into();
            }
            signed_by("own/{rpps}")(&mut f);
            rejected(&f, &["invalid_ehic"])
        }),
        row("nir_with_a_bad_key", || {
            let bad_key = |f: &mut FseSubmitted| {
                if let Some(b) = &mut f.beneficiary {
                    let key: u32 = b.nir[13..].parse().unwrap();
                    b.nir = format!("{}{:02}", &b.nir[..13], (key % 97) + 1);
                }
            };
            signed_rejected(bad_key, &["invalid_nir"])
        }),
        row("negative_amount", || {
            signed_rejected(|f| f.acts[0].charged_cents = -100, &["invalid_amount"])
        }),
        row("amount_of_i64_max_cents", || {
            signed_rejected(|f| f.acts[0].charged_cents = i64::MAX, &["invalid_amount"])
        }),
        row("empty_fse_id", || {
            signed_rejected(|f| f.fse_id = String::new(), &["invalid_fse_id"])
        }),
        row("ten_thousand_act_lines", || {
            signed_rejected(
                |f| f.acts = vec![f.acts[0].clone(); 10_000],
                &["too_many_lines"],
            )
        }),
        // Dead-lettered, but validation has already taken the FSE id into
        // the beneficiary's seen set by then: the same claim correctly keyed
        // later would be rejected as a duplicate.
        row("record_key_of_another_beneficiary_changes_no_state", || {
            Case {
                key: Some(b"someone-else".to_vec()),
                expect: Expect::Refused,
                ..submission(&fresh(|_| {}))
            }
        }),
    ]
}

/// The claim's signature: of another professional, forged, on altered
/// content, by a revoked, expired or unknown card, or none.
fn signature_rows() -> Vec<Row> {
    vec![
        row("signature_of_another_professional", || {
            let other = format!("own/{}", world().other_rpps);
            fresh_rejected(|f| resigned(f, &other), &["certificate_other_professional"])
        }),
        row("forged_signature_value", || {
            let forge = |f: &mut FseSubmitted| {
                if let Some(s) = &mut f.signature {
                    let last = s.value.len() - 1;
                    s.value[last] ^= 0x55;
                }
            };
            fresh_rejected(forge, &["bad_signature"])
        }),
        row("claim_altered_after_signing", || {
            fresh_rejected(|f| f.acts[0].charged_cents += 100, &["bad_signature"])
        }),
        row("revoked_certificate", || {
            fresh_rejected(signed_by("revoked/{rpps}"), &["certificate_revoked"])
        }),
        row("expired_certificate", || {
            fresh_rejected(signed_by("expired/{rpps}"), &["certificate_not_valid"])
        }),
        row("unknown_certificate", || {
            fresh_rejected(signed_by("no-such-card"), &["unknown_certificate"])
        }),
        row("unsupported_algorithm", || {
            let md5 = |f: &mut FseSubmitted| {
                if let Some(s) = &mut f.signature {
                    s.alg = "md5WithRSAEncryption".into();
                }
            };
            fresh_rejected(md5, &["unsupported_algorithm"])
        }),
        row("missing_signature", || {
            fresh_rejected(|f| f.signature = None, &["missing_signature"])
        }),
    ]
}

#[test]
fn record_key_of_another_beneficiary() {
    let w = world();
    let f = fresh(|_| {});
    let stream = &w.streams[TOPIC];
    let bad = record(
        TOPIC,
        stream.start(),
        b"someone-else",
        w.registry.encode_single(&f),
    );
    let mut follower = stream.follower().clone();
    follower.offset = stream.start() + 1;
    let (outputs, _, _) = batch(
        w,
        StageKind::Validation,
        &stream.base,
        &[bad.clone(), follower.clone()],
    );
    let (alone, _, _) = batch_alone(w, StageKind::Validation, &stream.base, &follower);
    assert_eq!(outputs.len(), 2);
    assert_dead_letter(
        StageKind::Validation,
        TOPIC,
        bad.offset,
        &bad.value,
        &outputs[0].1,
    );
    assert_eq!(outputs[1], alone[0]);
}
