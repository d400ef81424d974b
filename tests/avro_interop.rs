//! Interoperability outside Rust: messages written by our hand-written codec
//! are read by Python's fastavro with nothing but the `.avsc` files
//! (`tests/interop/decode.py`), fingerprint and all.
//!
//! Needs `python3`; installs `fastavro` with pip when it is missing, and
//! fails (never skips) when either cannot be had.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use chrono::NaiveDate;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::events::model::*;
use serde_json::Value;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn header(fse_id: &str) -> EventHeader {
    EventHeader {
        event_id: "9f2c".to_owned(),
        causation_id: Some("1a0b".to_owned()),
        correlation_id: fse_id.to_owned(),
        event_time_millis: 1_737_364_443_000,
        source: Some(SourceRef {
            topic: "fse.routed".to_owned(),
            partition: 3,
            offset: 41,
            ordinal: 0,
        }),
        ref_watermark: vec![RefOffset {
            topic: "ref.rights".to_owned(),
            partition: 3,
            offset: 7,
        }],
        rules_version: "sha256:abc".to_owned(),
    }
}

fn submitted() -> FseSubmitted {
    FseSubmitted {
        fse_id: "12345678-000000042".to_owned(),
        received_at_millis: 1_737_364_443_000,
        received_offset_minutes: 60,
        care_date: date(2025, 1, 20),
        professional: ProfessionalRec {
            rpps: "10000123454".to_owned(),
            category: Category::Gp,
            sector: SectorSymbol::S2,
            optam: true,
            // A health centre's FINESS: written with the fields since
            // billing identifiers, billing and all.
            billing: Some(BillingRec {
                kind: BillingKind::Finess,
                id: "750000010".to_owned(),
            }),
        },
        beneficiary: Some(BeneficiaryRec {
            nir: "185057800604830".to_owned(),
            birth_date: date(1985, 5, 12),
            rank: 1,
        }),
        ehic: Some(EhicRec {
            country: "DE".to_owned(),
            institution_id: "101575519".to_owned(),
            card_id: "80276001234567890123".to_owned(),
            personal_id: "X123456789".to_owned(),
            surname: "Müller".to_owned(),
            given_names: "Jürgen Élodie".to_owned(),
            birth_date: date(1979, 2, 28),
            expiry: date(2027, 12, 31),
        }),
        pathway: Some(Pathway::DirectAccess),
        tiers_payant: TiersPayantRec {
            amo: true,
            amc: false,
        },
        acts: vec![
            ActLineRec {
                code: "G".to_owned(),
                quantity: 1,
                coefficient_hundredths: 100,
                charged_cents: 3_000,
                complement: Some(Complement::Sunday),
                ald_related: false,
                base_cents: Some(3_000),
                product: None,
                unit_price_cents: None,
                leg: None,
                prescription: None,
            },
            ActLineRec {
                code: "VSL".to_owned(),
                quantity: 2,
                coefficient_hundredths: 100,
                charged_cents: i64::MAX,
                complement: None,
                ald_related: true,
                base_cents: None,
                product: Some("3400930000000".to_owned()),
                unit_price_cents: Some(-1),
                leg: Some(2),
                // A foreign ePrescription, renewable: the FSE is written
                // with the current schema (without renewals, in
                // fse.submitted.v5).
                prescription: Some(PrescriptionRec {
                    prescriber_kind: PrescriberKind::Rpps,
                    prescriber_id: String::new(),
                    date: date(2025, 1, 18),
                    number: None,
                    quantity: Some(3),
                    non_substitution: None,
                    foreign: Some(ForeignPrescriptionRec {
                        country: "DE".to_owned(),
                        id: "DE-RX-1".to_owned(),
                        atc: "N02BE01".to_owned(),
                    }),
                    renewals: Some(2),
                }),
            },
        ],
        signature: Some(SignatureRec {
            alg: "ecdsa-p256-sha256".to_owned(),
            cert: "CPS-000123".to_owned(),
            value: vec![0xde, 0xad, 0xbe, 0xef],
        }),
        ingested_at_millis: Some(1_737_364_500_000),
    }
}

fn decided() -> FseDecided {
    FseDecided {
        header: header("12345678-000000042"),
        decision: DecisionRec {
            fse_id: Some("12345678-000000042".to_owned()),
            status: Status::Paid,
            route: Some(Route::Domestic),
            reasons: Vec::new(),
            warnings: vec![ReasonRec {
                code: "RPPS_LUHN".to_owned(),
                stage: Stage::Validation,
                message: "check digit".to_owned(),
                field: Some("professional.rpps".to_owned()),
                line: None,
            }],
            lines: vec![DecisionLineRec {
                code: "G".to_owned(),
                charged_cents: 3_000,
                base_cents: 3_000,
                rate_percent: 70,
                amo_cents: 1_900,
                css_cents: 0,
                participation_cents: 200,
                franchise_cents: 0,
                tariff: "ngap-2024-12-22".to_owned(),
            }],
            amo_cents: 1_900,
            css_cents: 0,
            participation_cents: 200,
            franchise_cents: 0,
            flat_fee_cents: 0,
            deferred_cents: 0,
            imputed_cents: 0,
            patient_cents: 1_100,
            paid_to_professional_cents: 0,
            paid_to_insured_cents: 1_900,
            rules_version: "sha256:abc".to_owned(),
            signature_check: Some(SignatureCheck::NotChecked),
            beneficiary_key: Some("bk-1".to_owned()),
            care_date: Some(date(2025, 1, 20)),
            reimbursement_date: None,
        },
        claim: Some(ClaimRefRec {
            rpps: "10000123454".to_owned(),
            received_on: date(2025, 1, 21),
            tiers_payant: TiersPayantRec {
                amo: true,
                amc: false,
            },
            amc: Some("AMC000042".to_owned()),
            eu_country: None,
            eu_institution_id: None,
            payee: Some("750000010".to_owned()),
        }),
    }
}

fn python() -> &'static str {
    let found = Command::new("python3").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "python3 is required for the Avro interoperability test"
    );
    "python3"
}

/// fastavro, installed with pip when missing: a failure, never a skip.
fn ensure_fastavro(_python: &str) {
    common::ensure_python_modules(&[("fastavro", "fastavro")]);
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write message");
}

fn revocation() -> PkiEvent {
    PkiEvent::Revocation(RevocationRec {
        cert: "CPS-000123".to_owned(),
        revoked_on: date(2025, 3, 1),
    })
}

fn certificate() -> PkiEvent {
    PkiEvent::Certificate(CertificateRec {
        id: "CPS-000124".to_owned(),
        rpps: "10000123454".to_owned(),
        alg: "rsa-pkcs1-sha256".to_owned(),
        public_key: vec![0x30, 0x82],
        issuer: "ANS".to_owned(),
        not_before: date(1900, 1, 1),
        not_after: date(2100, 12, 31),
    })
}

fn checkpoint() -> AuditCheckpoint {
    AuditCheckpoint {
        stage: "reimbursement".to_owned(),
        partition: 2,
        input_offset_from: 0,
        input_offset_to: 999,
        output_count: 1_000,
        chain_hash: [0xab; 32],
        rules_version: "sha256:abc".to_owned(),
        ref_watermark: vec![RefOffset {
            topic: "ref.rights".to_owned(),
            partition: 2,
            offset: 41,
        }],
    }
}

#[test]
fn fastavro_reads_our_messages_with_the_avsc_alone() {
    let python = python();
    ensure_fastavro(python);

    let registry = SchemaRegistry::new().expect("registry");
    let dir = tempfile::tempdir().expect("temp dir");
    let messages = [
        ("1-submitted.bin", registry.encode_single(&submitted())),
        ("2-decided.bin", registry.encode_single(&decided())),
        ("3-revocation.bin", registry.encode_single(&revocation())),
        ("4-certificate.bin", registry.encode_single(&certificate())),
        ("5-checkpoint.bin", registry.encode_single(&checkpoint())),
    ];
    for (name, bytes) in &messages {
        write(dir.path(), name, bytes);
    }

    let lines = decode_with_the_avsc(python, dir.path());
    submitted_reads_back(&lines[0]["record"]);
    decided_reads_back(&lines[1]["record"]);
    pki_union_reads_back_by_branch_name(&lines[2]["record"], &lines[3]["record"]);
    checkpoint_reads_back(&lines[4]["record"]);
}

/// decode.py's JSON lines for the messages in `dir`, one per message, in
/// the order of their names, each with the topic its fingerprint names.
fn decode_with_the_avsc(python: &str, dir: &Path) -> Vec<Value> {
    let out = Command::new(python)
        .arg(repo().join("tests/interop/decode.py"))
        .arg(dir)
        .arg(repo().join("schemas"))
        .output()
        .expect("run decode.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "decode.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let topics: Vec<&str> = lines
        .iter()
        .map(|l| l["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        topics,
        [
            "fse.submitted",
            "fse.decided",
            "ref.pki",
            "ref.pki",
            "audit.checkpoints"
        ]
    );
    lines
}

fn submitted_reads_back(fse: &Value) {
    assert_eq!(fse["fse_id"], "12345678-000000042");
    assert_eq!(fse["received_at_millis"], "2025-01-20T09:14:03+00:00");
    assert_eq!(fse["ingested_at_millis"], "2025-01-20T09:15:00+00:00");
    assert_eq!(fse["care_date"], "2025-01-20");
    assert_eq!(fse["professional"]["category"], "GP");
    assert_eq!(fse["professional"]["sector"], "S2");
    assert_eq!(fse["professional"]["billing"]["kind"], "FINESS");
    assert_eq!(fse["professional"]["billing"]["id"], "750000010");
    assert_eq!(fse["beneficiary"]["birth_date"], "1985-05-12");
    assert_eq!(fse["ehic"]["country"], "DE");
    assert_eq!(fse["ehic"]["surname"], "Müller");
    assert_eq!(fse["ehic"]["given_names"], "Jürgen Élodie");
    assert_eq!(fse["ehic"]["expiry"], "2027-12-31");
    assert_eq!(fse["pathway"], "DIRECT_ACCESS");
    assert_eq!(fse["acts"][0]["charged_cents"], 3_000);
    assert_eq!(fse["acts"][0]["complement"], "SUNDAY");
    assert_eq!(fse["acts"][0]["leg"], Value::Null);
    assert_eq!(fse["acts"][1]["charged_cents"], i64::MAX);
    assert_eq!(fse["acts"][1]["unit_price_cents"], -1);
    assert_eq!(fse["acts"][1]["leg"], 2);
    assert_eq!(fse["acts"][0]["prescription"], Value::Null);
    let prescription = &fse["acts"][1]["prescription"];
    assert_eq!(prescription["date"], "2025-01-18");
    assert_eq!(prescription["quantity"], 3);
    assert_eq!(prescription["foreign"]["country"], "DE");
    assert_eq!(prescription["foreign"]["atc"], "N02BE01");
    assert_eq!(prescription["renewals"], 2);
    assert_eq!(fse["signature"]["value"], "deadbeef");
}

fn decided_reads_back(record: &Value) {
    let decision = &record["decision"];
    assert_eq!(record["header"]["source"]["offset"], 41);
    assert_eq!(decision["status"], "PAID");
    assert_eq!(decision["route"], "DOMESTIC");
    assert_eq!(decision["amo_cents"], 1_900);
    assert_eq!(decision["patient_cents"], 1_100);
    assert_eq!(decision["lines"][0]["rate_percent"], 70);
    assert_eq!(decision["warnings"][0]["stage"], "VALIDATION");
    assert_eq!(decision["signature_check"], "NOT_CHECKED");
    assert_eq!(decision["care_date"], "2025-01-20");
    assert_eq!(decision["reimbursement_date"], Value::Null);
    let claim = &record["claim"];
    assert_eq!(claim["received_on"], "2025-01-21");
    assert_eq!(claim["tiers_payant"]["amo"], true);
    assert_eq!(claim["amc"], "AMC000042");
    assert_eq!(claim["eu_country"], Value::Null);
    assert_eq!(claim["payee"], "750000010");
}

/// The union [Certificate, Revocation]: the branch by name.
fn pki_union_reads_back_by_branch_name(revocation: &Value, certificate: &Value) {
    assert_eq!(revocation["record"][0], "fr.clearing.v1.Revocation");
    assert_eq!(revocation["record"][1]["revoked_on"], "2025-03-01");
    assert_eq!(certificate["record"][0], "fr.clearing.v1.Certificate");
    assert_eq!(certificate["record"][1]["not_before"], "1900-01-01");
    assert_eq!(certificate["record"][1]["not_after"], "2100-12-31");
    assert_eq!(certificate["record"][1]["public_key"], "3082");
}

fn checkpoint_reads_back(checkpoint: &Value) {
    assert_eq!(checkpoint["stage"], "reimbursement");
    assert_eq!(checkpoint["ref_watermark"][0]["offset"], 41);
    assert_eq!(checkpoint["output_count"], 1_000);
    assert_eq!(checkpoint["chain_hash"], "ab".repeat(32));
}

/// A message whose fingerprint no `.avsc` has: decode.py refuses it.
#[test]
fn fastavro_reader_refuses_an_unknown_fingerprint() {
    let python = python();
    ensure_fastavro(python);
    let registry = SchemaRegistry::new().expect("registry");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut message = registry.encode_single(&submitted());
    message[2] ^= 0xff;
    write(dir.path(), "bad.bin", &message);
    let out = Command::new(python)
        .arg(repo().join("tests/interop/decode.py"))
        .arg(dir.path())
        .output()
        .expect("run decode.py");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown fingerprint"));
}
