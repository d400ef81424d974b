//! Schema evolution: every older version in `schemas/history/` and the
//! current schema are mutually readable, and a message written with an older
//! version decodes into the current struct.

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use chrono::NaiveDate;
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::{fse_submitted, signed_fse};
use super::{registry, schemas_dir};
use crate::events::codec::{AvroRecord, ToAvroValue};
use crate::events::model::*;
use crate::events::registry::{
    DecodeError, EMBEDDED_SCHEMAS, EmbeddedSchema, MAGIC, RegistryError, SchemaRegistry,
    SchemaVersion, fingerprint_json,
};

/// `schemas/history/<topic>.v<N>.avsc`, by (topic, N), with their text.
fn history_files() -> BTreeMap<(String, u32), String> {
    let mut out = BTreeMap::new();
    let dir = schemas_dir().join("history");
    for entry in std::fs::read_dir(&dir).expect("schemas/history exists") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let stem = name
            .strip_suffix(".avsc")
            .unwrap_or_else(|| panic!("{name}: only .avsc files belong in schemas/history"));
        let (topic, version) = stem
            .rsplit_once(".v")
            .unwrap_or_else(|| panic!("{name}: expected <topic>.v<N>.avsc"));
        let version: u32 = version
            .parse()
            .unwrap_or_else(|_| panic!("{name}: expected <topic>.v<N>.avsc"));
        let text = std::fs::read_to_string(&path).expect("readable");
        out.insert((topic.to_owned(), version), text);
    }
    out
}

#[test]
fn every_older_version_and_the_current_one_are_mutually_readable() {
    let files = history_files();
    assert!(!files.is_empty(), "the committed example v0 is there");
    for ((topic, version), text) in &files {
        let old = Schema::parse_str(text).expect("history schema parses");
        let current = &registry()
            .current(topic)
            .unwrap_or_else(|| panic!("{topic}.v{version}: no current schema of that topic"))
            .schema;
        if let Err(e) = SchemaCompatibility::mutual_read(&old, current) {
            panic!("{topic}.v{version} and the current schema are not mutually readable: {e}");
        }
        // Every history file is embedded (so the binary can read it), unchanged.
        let embedded = EMBEDDED_SCHEMAS
            .iter()
            .find(|e| e.topic == topic && e.version == SchemaVersion::History(*version))
            .unwrap_or_else(|| panic!("{topic}.v{version} is not in EMBEDDED_SCHEMAS"));
        assert_eq!(
            embedded.json, text,
            "{topic}.v{version}: embedded text differs"
        );
    }
    let embedded_history = EMBEDDED_SCHEMAS
        .iter()
        .filter(|e| e.version != SchemaVersion::Current)
        .count();
    assert_eq!(
        embedded_history,
        files.len(),
        "an embedded history schema has no file"
    );
}

/// A message written with `fse.submitted.v0` (ActLine without `leg`), as
/// an older producer would write it: apache-avro, the v0 schema, its
/// fingerprint.
fn v0_message(value: &FseSubmitted) -> Vec<u8> {
    let v0 = registry()
        .schemas()
        .find(|s| s.topic == "fse.submitted" && s.version == SchemaVersion::History(0))
        .expect("v0 registered");
    let mut record = value.to_avro_value();
    strip_billing(&mut record);
    if let Value::Record(fields) = &mut record {
        for (name, field) in fields.iter_mut() {
            if let (true, Value::Array(acts)) = (name == "acts", field) {
                for act in acts.iter_mut() {
                    if let Value::Record(act_fields) = act {
                        act_fields.retain(|(n, _)| n != "leg" && n != "prescription");
                    }
                }
            }
        }
    }
    let body = apache_avro::to_avro_datum(&v0.schema, record).expect("v0 encodes");
    [&MAGIC[..], &v0.fingerprint[..], &body[..]].concat()
}

fn without_legs(value: &FseSubmitted) -> FseSubmitted {
    let mut expected = without_billing(&without_prescriptions(value));
    for act in &mut expected.acts {
        act.leg = None;
    }
    expected
}

/// The FSE as a schema from before 2026-12-06 holds it: no prescriptions.
fn without_prescriptions(value: &FseSubmitted) -> FseSubmitted {
    let mut expected = value.clone();
    for act in &mut expected.acts {
        act.prescription = None;
    }
    expected
}

/// An apache-avro value with every record field named `later` left out,
/// for a schema from before that field.
fn strip_field(value: &mut Value, later: &str) {
    match value {
        Value::Record(fields) => {
            fields.retain(|(name, _)| name != later);
            for (_, field) in fields.iter_mut() {
                strip_field(field, later);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_field(v, later)),
        Value::Union(_, inner) => strip_field(inner, later),
        _ => {}
    }
}

/// An apache-avro value with every act line's `prescription` left out, for
/// a schema from before 2026-12-06.
fn strip_prescriptions(value: &mut Value) {
    strip_field(value, "prescription");
}

/// `value` with every prescription's `foreign` left out (none).
fn without_foreign(value: &FseSubmitted) -> FseSubmitted {
    let mut expected = value.clone();
    for p in expected
        .acts
        .iter_mut()
        .filter_map(|a| a.prescription.as_mut())
    {
        p.foreign = None;
    }
    expected
}

/// An apache-avro value with every prescription's `foreign` left out, for a
/// schema from before foreign ePrescriptions (2026-12-06).
fn strip_foreign(value: &mut Value) {
    strip_field(value, "foreign");
}

/// `value` with the professional's `billing` left out (none).
fn without_billing(value: &FseSubmitted) -> FseSubmitted {
    let mut expected = value.clone();
    expected.professional.billing = None;
    expected
}

/// An apache-avro value with the professional's `billing` left out, for a
/// schema from before billing identifiers (2026-12-06).
fn strip_billing(value: &mut Value) {
    strip_field(value, "billing");
}

/// `value` with every prescription's `renewals` left out (none).
fn without_renewals(value: &FseSubmitted) -> FseSubmitted {
    let mut expected = value.clone();
    for p in expected
        .acts
        .iter_mut()
        .filter_map(|a| a.prescription.as_mut())
    {
        p.renewals = None;
    }
    expected
}

/// An apache-avro value with every prescription's `renewals` left out, for
/// a schema from before renewable prescriptions (2026-12-07).
fn strip_renewals(value: &mut Value) {
    strip_field(value, "renewals");
}

fn has_foreign(acts: &[ActLineRec]) -> bool {
    acts.iter()
        .any(|a| a.prescription.as_ref().is_some_and(|p| p.foreign.is_some()))
}

fn has_renewals(acts: &[ActLineRec]) -> bool {
    acts.iter().any(|a| {
        a.prescription
            .as_ref()
            .is_some_and(|p| p.renewals.is_some())
    })
}

#[test]
fn a_v0_message_decodes_into_the_current_struct_with_leg_none() {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
    let act = |code: &str, leg| ActLineRec {
        code: code.to_owned(),
        quantity: 1,
        coefficient_hundredths: 100,
        charged_cents: 4_250,
        complement: None,
        ald_related: false,
        base_cents: Some(4_250),
        product: None,
        unit_price_cents: None,
        leg,
        prescription: None,
    };
    let value = FseSubmitted {
        fse_id: "12345678-000000042".to_owned(),
        received_at_millis: 1_737_364_443_000,
        received_offset_minutes: 60,
        care_date: date(2025, 1, 20),
        professional: ProfessionalRec {
            rpps: "10000123454".to_owned(),
            category: Category::Transport,
            sector: SectorSymbol::S1,
            optam: false,
            billing: None,
        },
        beneficiary: Some(BeneficiaryRec {
            nir: "185057800604830".to_owned(),
            birth_date: date(1985, 5, 12),
            rank: 1,
        }),
        ehic: None,
        pathway: None,
        tiers_payant: TiersPayantRec {
            amo: true,
            amc: false,
        },
        acts: vec![act("VSL", Some(1)), act("VSL", Some(2))],
        signature: None,
        ingested_at_millis: None,
    };
    let message = v0_message(&value);
    assert_ne!(
        &message[2..10],
        &crate::events::registry::fingerprint_of::<FseSubmitted>()[..],
        "v0 has its own fingerprint"
    );
    let decoded: FseSubmitted = registry().decode_single(&message).expect("v0 decodes");
    assert_eq!(decoded, without_legs(&value));
    assert!(decoded.acts.iter().all(|a| a.leg.is_none()));
    assert_eq!(decoded.acts[0].charged_cents, 4_250);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_v0_message_decodes_with_leg_none(value in signed_fse()) {
        let decoded: FseSubmitted = registry()
            .decode_single(&v0_message(&value))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded, without_legs(&value));
    }

    /// The apache-avro path over hostile bodies: errors, never panics.
    #[test]
    fn a_v0_fingerprint_with_garbage_is_an_error(body in vec(any::<u8>(), 0..200)) {
        let v0 = fingerprint_json(EMBEDDED_SCHEMAS
            .iter()
            .find(|e| e.version == SchemaVersion::History(0))
            .expect("v0")
            .json)
            .expect("fingerprint");
        let message = [&MAGIC[..], &v0[..], &body[..]].concat();
        let _ = registry().decode_single::<FseSubmitted>(&message);
    }
}

#[test]
fn a_v0_message_with_trailing_bytes_is_refused() {
    let mut message = v0_message(&FseSubmitted {
        fse_id: String::new(),
        received_at_millis: 0,
        received_offset_minutes: 0,
        care_date: NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
        professional: ProfessionalRec {
            rpps: String::new(),
            category: Category::Gp,
            sector: SectorSymbol::S1,
            optam: false,
            billing: None,
        },
        beneficiary: None,
        ehic: None,
        pathway: None,
        tiers_payant: TiersPayantRec {
            amo: false,
            amc: false,
        },
        acts: Vec::new(),
        signature: None,
        ingested_at_millis: None,
    });
    message.push(0);
    assert!(matches!(
        registry().decode_single::<FseSubmitted>(&message),
        Err(DecodeError::Body {
            version: SchemaVersion::History(0),
            ..
        })
    ));
}

/// A letter written with `dlq.v0` (before `cut`) by an older producer
/// (apache-avro, the v0 schema, its fingerprint) reads into today's struct
/// with `cut` unset, also when it quotes more than the 1 MiB per field that
/// the generic path for older versions takes; bytes after it are refused.
#[test]
fn a_v0_dead_letter_of_any_size_decodes_with_cut_none() {
    let v0 = registry()
        .schemas()
        .find(|s| s.topic == "dlq" && s.version == SchemaVersion::History(0))
        .expect("dlq.v0 registered");
    for len in [0, 100, 2 << 20] {
        let letter = DeadLetter {
            stage: "validation".to_owned(),
            topic: "fse.submitted".to_owned(),
            partition: 2,
            offset: 40,
            error: "decode fse.submitted: bad magic".to_owned(),
            raw: (0..len).map(|i| (i % 253) as u8).collect(),
            cut: None,
        };
        let mut record = letter.to_avro_value();
        if let Value::Record(fields) = &mut record {
            fields.retain(|(name, _)| name != "cut");
        }
        let body = apache_avro::to_avro_datum(&v0.schema, record).expect("v0 encodes");
        let mut message = [&MAGIC[..], &v0.fingerprint[..], &body[..]].concat();
        let read: DeadLetter = registry().decode_single(&message).expect("v0 decodes");
        assert_eq!(read, letter, "{len} bytes");
        message.push(0);
        assert!(matches!(
            registry().decode_single::<DeadLetter>(&message),
            Err(DecodeError::Body {
                version: SchemaVersion::History(0),
                ..
            })
        ));
    }
}

#[test]
fn an_incompatible_older_version_is_refused_at_start() {
    // fse_id as an int: not readable as a string.
    let broken = FseSubmitted::SCHEMA_JSON.replacen(
        "\"name\": \"fse_id\",\n      \"doc\": \"FSE id, unique per professional.\",\n      \"type\": \"string\"",
        "\"name\": \"fse_id\",\n      \"doc\": \"FSE id, unique per professional.\",\n      \"type\": \"int\"",
        1,
    );
    assert_ne!(broken, FseSubmitted::SCHEMA_JSON, "the replacement applied");
    let broken: &'static str = Box::leak(broken.into_boxed_str());
    let schemas = [
        EMBEDDED_SCHEMAS[0],
        EmbeddedSchema {
            topic: "fse.submitted",
            version: SchemaVersion::History(9),
            json: broken,
        },
    ];
    assert_eq!(schemas[0].topic, "fse.submitted");
    assert!(matches!(
        SchemaRegistry::from_schemas(&schemas),
        Err(RegistryError::Incompatible { .. })
    ));
}

/// `fse.submitted.v1`, the FSE's signed form (before the insurer's stamp).
fn v1() -> crate::events::registry::RegisteredSchema {
    registry()
        .schemas()
        .find(|s| s.topic == "fse.submitted" && s.version == SchemaVersion::History(1))
        .expect("v1 registered")
        .clone()
}

/// A `ref.rights` message written with v0 (no dated values), as a producer
/// from before them wrote it: apache-avro, the v0 schema, its fingerprint.
fn rights_v0_message(value: &RightsRecord) -> Vec<u8> {
    let v0 = registry()
        .schemas()
        .find(|s| s.topic == "ref.rights" && s.version == SchemaVersion::History(0))
        .expect("ref.rights.v0 registered");
    let mut record = value.to_avro_value();
    if let Value::Record(fields) = &mut record {
        fields.retain(|(name, _)| !name.ends_with("_periods"));
    }
    let body = apache_avro::to_avro_datum(&v0.schema, record).expect("v0 encodes");
    [&MAGIC[..], &v0.fingerprint[..], &body[..]].concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Old rights records read with no periods, their scalars unchanged:
    /// they then hold on every date, as before periods existed.
    #[test]
    fn any_rights_v0_message_decodes_with_no_periods(
        value in super::strategies::rights_record()
    ) {
        let decoded: RightsRecord = registry()
            .decode_single(&rights_v0_message(&value))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = RightsRecord {
            declared_gp_periods: Vec::new(),
            local_regime_periods: Vec::new(),
            amc_periods: Vec::new(),
            ..value
        };
        prop_assert_eq!(decoded, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The signed form is exactly what apache-avro writes with the v1
    /// schema and its fingerprint: signatures made before the stamp existed
    /// keep verifying, and any Avro library can rebuild the signed bytes.
    #[test]
    fn the_signed_form_is_the_v1_encoding(value in fse_submitted()) {
        let v1 = v1();
        let ours = registry().encode_signed_form(&value);
        let mut record = value.to_avro_value();
        strip_prescriptions(&mut record);
        strip_billing(&mut record);
        let theirs = apache_avro::to_avro_datum(&v1.schema, record)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&ours[2..10], &v1.fingerprint[..]);
        prop_assert_eq!(&ours[10..], &theirs[..]);
    }

    /// A v1 record (every `fse.submitted` written before 2026-12-05) reads
    /// by the fast path with no stamp; a stamped record round-trips it.
    #[test]
    fn a_v1_message_decodes_unstamped(value in signed_fse(), stamp in any::<i64>()) {
        let v1_message = registry().encode_signed_form(&value);
        let decoded: FseSubmitted = registry()
            .decode_single(&v1_message)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &without_billing(&without_prescriptions(&value)));
        let stamped = FseSubmitted { ingested_at_millis: Some(stamp), ..value };
        let back: FseSubmitted = registry()
            .decode_single(&registry().encode_single(&stamped))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, stamped);
    }
}

#[test]
fn the_stamp_is_outside_the_signed_bytes() {
    let registry = registry();
    let mut value = FseSubmitted {
        fse_id: "12345678-000000042".to_owned(),
        received_at_millis: 1_737_364_443_000,
        received_offset_minutes: 60,
        care_date: NaiveDate::from_ymd_opt(2025, 1, 20).expect("date"),
        professional: ProfessionalRec {
            rpps: "10000123454".to_owned(),
            category: Category::Gp,
            sector: SectorSymbol::S1,
            optam: false,
            billing: None,
        },
        beneficiary: None,
        ehic: None,
        pathway: None,
        tiers_payant: TiersPayantRec {
            amo: false,
            amc: false,
        },
        acts: Vec::new(),
        signature: None,
        ingested_at_millis: None,
    };
    let unstamped = crate::signatures::canonical_bytes(registry, &value);
    value.ingested_at_millis = Some(1_737_400_000_000);
    assert_eq!(
        crate::signatures::canonical_bytes(registry, &value),
        unstamped
    );
    assert_ne!(registry.encode_single(&value), unstamped);
}

/// The history version `version` of `topic`.
fn history(topic: &str, version: u32) -> crate::events::registry::RegisteredSchema {
    registry()
        .schemas()
        .find(|s| s.topic == topic && s.version == SchemaVersion::History(version))
        .expect("history version registered")
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A stage record whose FSE has no prescription is written exactly as
    /// before prescriptions existed (the v0 schema and fingerprint, the
    /// bytes apache-avro writes with it), one whose prescriptions are all
    /// French exactly as before foreign ePrescriptions (v1), one with a
    /// foreign ePrescription as before billing identifiers (v2), one whose
    /// professional names a billing identifier as before renewals (v3), so
    /// runs recorded before re-run to the same bytes; one with a renewable
    /// prescription under the current schema. All read back to the same
    /// value.
    #[test]
    fn a_validated_fse_without_prescriptions_is_written_as_before(
        value in super::strategies::fse_validated()
    ) {
        let registry = registry();
        let bytes = registry.encode_single(&value);
        let has_prescription = value.fse.acts.iter().any(|a| a.prescription.is_some());
        if has_renewals(&value.fse.acts) {
            prop_assert_eq!(&bytes[2..10], &crate::events::fingerprint_of::<FseValidated>()[..]);
        } else {
            let version = if value.fse.professional.billing.is_some() {
                3
            } else if has_foreign(&value.fse.acts) {
                2
            } else {
                u32::from(has_prescription)
            };
            let older = history("fse.validated", version);
            let mut record = value.to_avro_value();
            strip_renewals(&mut record);
            if version < 3 {
                strip_billing(&mut record);
            }
            match version {
                0 => strip_prescriptions(&mut record),
                1 => strip_foreign(&mut record),
                _ => {}
            }
            let theirs = apache_avro::to_avro_datum(&older.schema, record)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&bytes[2..10], &older.fingerprint[..]);
            prop_assert_eq!(&bytes[10..], &theirs[..]);
        }
        let back: FseValidated = registry
            .decode_single(&bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, value);
    }

    /// An `fse.submitted` without a foreign ePrescription, a billing
    /// identifier or renewals is written in v3, as before those fields, one
    /// with a foreign ePrescription only in v4, one with a billing
    /// identifier but no renewals in v5, and one with renewals in the current
    /// schema; a v3, v4 or v5 message written by apache-avro reads by the
    /// fast path without the fields its version lacks.
    #[test]
    fn an_fse_without_foreign_eprescription_is_written_in_v3(value in fse_submitted()) {
        let registry = registry();
        let v3 = history("fse.submitted", 3);
        let v4 = history("fse.submitted", 4);
        let v5 = history("fse.submitted", 5);
        let bytes = registry.encode_single(&value);
        if has_renewals(&value.acts) {
            prop_assert_eq!(&bytes[2..10], &crate::events::fingerprint_of::<FseSubmitted>()[..]);
        } else if value.professional.billing.is_some() {
            prop_assert_eq!(&bytes[2..10], &v5.fingerprint[..]);
        } else if has_foreign(&value.acts) {
            prop_assert_eq!(&bytes[2..10], &v4.fingerprint[..]);
        } else {
            prop_assert_eq!(&bytes[2..10], &v3.fingerprint[..]);
        }
        let back: FseSubmitted = registry
            .decode_single(&bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &value);
        let mut record = value.to_avro_record_value();
        strip_renewals(&mut record);
        let body = apache_avro::to_avro_datum(&v5.schema, record.clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let message = [&MAGIC[..], &v5.fingerprint[..], &body[..]].concat();
        let decoded: FseSubmitted = registry
            .decode_single(&message)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let value = without_renewals(&value);
        prop_assert_eq!(&decoded, &value);
        strip_billing(&mut record);
        let body = apache_avro::to_avro_datum(&v4.schema, record.clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let message = [&MAGIC[..], &v4.fingerprint[..], &body[..]].concat();
        let decoded: FseSubmitted = registry
            .decode_single(&message)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded, without_billing(&value));
        strip_foreign(&mut record);
        let body = apache_avro::to_avro_datum(&v3.schema, record)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let message = [&MAGIC[..], &v3.fingerprint[..], &body[..]].concat();
        let decoded: FseSubmitted = registry
            .decode_single(&message)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded, without_billing(&without_foreign(&value)));
    }

    /// A foreign ePrescription is inside the signed bytes: removing it
    /// changes them; an FSE without one signs the bytes it did before the
    /// field (its prescriptions as v3 writes them, after the signed form).
    #[test]
    fn a_foreign_eprescription_is_signed(value in signed_fse()) {
        let registry = registry();
        let bare = without_foreign(&value);
        let signed = crate::signatures::canonical_bytes(registry, &value);
        let bare_signed = crate::signatures::canonical_bytes(registry, &bare);
        prop_assert_eq!(signed != bare_signed, has_foreign(&value.acts));
        let bare = without_renewals(&without_billing(&bare));
        let bare_signed = crate::signatures::canonical_bytes(registry, &bare);
        if bare.acts.iter().any(|a| a.prescription.is_some()) {
            let v3 = history("fse.submitted", 3);
            let Schema::Record(fse) = &v3.schema else {
                return Err(TestCaseError::fail("v3 is a record"));
            };
            let acts = &fse.fields[fse.lookup["acts"]].schema;
            let Schema::Array(line) = acts else {
                return Err(TestCaseError::fail("acts is an array"));
            };
            let Schema::Record(line) = line.items.as_ref() else {
                return Err(TestCaseError::fail("a line is a record"));
            };
            let field = &line.fields[line.lookup["prescription"]].schema;
            let unsigned = FseSubmitted { signature: None, ..bare.clone() };
            let mut expected = registry.encode_signed_form(&unsigned);
            for act in &bare.acts {
                let mut value = act.prescription.to_avro_value();
                strip_foreign(&mut value);
                strip_renewals(&mut value);
                let bytes = apache_avro::to_avro_datum(field, value)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                expected.extend_from_slice(&bytes);
            }
            prop_assert_eq!(bare_signed, expected);
        }
    }

    /// A `fse.submitted` written before prescriptions (v2, stamped) reads
    /// by the fast path with none.
    #[test]
    fn a_v2_message_decodes_without_prescriptions(value in fse_submitted()) {
        let v2 = history("fse.submitted", 2);
        let mut record = value.to_avro_record_value();
        strip_prescriptions(&mut record);
        strip_billing(&mut record);
        let body = apache_avro::to_avro_datum(&v2.schema, record)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let message = [&MAGIC[..], &v2.fingerprint[..], &body[..]].concat();
        let decoded: FseSubmitted = registry()
            .decode_single(&message)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded, without_billing(&without_prescriptions(&value)));
    }

    /// A prescription is inside the signed bytes: removing it changes them,
    /// and an FSE without one signs its `fse.submitted.v1` bytes.
    #[test]
    fn a_prescription_is_signed(value in signed_fse()) {
        let registry = registry();
        let value = without_billing(&value);
        let bare = without_prescriptions(&value);
        let signed = crate::signatures::canonical_bytes(registry, &value);
        let bare_signed = crate::signatures::canonical_bytes(registry, &bare);
        let unsigned = FseSubmitted { signature: None, ..bare.clone() };
        prop_assert_eq!(&bare_signed, &registry.encode_signed_form(&unsigned));
        let has_prescription = value.acts.iter().any(|a| a.prescription.is_some());
        prop_assert_eq!(signed != bare_signed, has_prescription);
    }

    /// A billing identifier is inside the signed bytes: it is the last part
    /// of them, the professional's `billing` field as the current schema
    /// writes it, so that who is paid cannot change unnoticed; an FSE
    /// without one signs the bytes it did before the field.
    #[test]
    fn a_billing_identifier_is_signed(value in signed_fse()) {
        let registry = registry();
        let value = without_renewals(&value);
        let bare = without_billing(&value);
        let signed = crate::signatures::canonical_bytes(registry, &value);
        let bare_signed = crate::signatures::canonical_bytes(registry, &bare);
        let Some(billing) = &value.professional.billing else {
            prop_assert_eq!(signed, bare_signed);
            return Ok(());
        };
        let Schema::Record(fse) = &registry.current("fse.submitted").expect("current").schema else {
            return Err(TestCaseError::fail("fse.submitted is a record"));
        };
        let Schema::Record(professional) = &fse.fields[fse.lookup["professional"]].schema else {
            return Err(TestCaseError::fail("professional is a record"));
        };
        let field = &professional.fields[professional.lookup["billing"]].schema;
        let tail = apache_avro::to_avro_datum(field, Some(billing.clone()).to_avro_value())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&signed, &[&bare_signed[..], &tail[..]].concat());
        let mut other = value.clone();
        if let Some(b) = other.professional.billing.as_mut() {
            b.id.push('0');
        }
        prop_assert_ne!(crate::signatures::canonical_bytes(registry, &other), signed);
    }

    /// Renewals are inside the signed bytes: every line's `renewals` (null
    /// without a prescription or renewals) as the current schema writes it
    /// is the last part of them when some prescription has renewals, so that
    /// the treatment a prescription covers cannot be lengthened unnoticed;
    /// an FSE without renewals signs the bytes it did before the field.
    #[test]
    fn renewals_are_signed(value in signed_fse()) {
        let registry = registry();
        let bare = without_renewals(&value);
        let signed = crate::signatures::canonical_bytes(registry, &value);
        let bare_signed = crate::signatures::canonical_bytes(registry, &bare);
        if !has_renewals(&value.acts) {
            prop_assert_eq!(signed, bare_signed);
            return Ok(());
        }
        let field = Schema::Union(
            apache_avro::schema::UnionSchema::new(vec![Schema::Null, Schema::Int])
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        let mut tail = Vec::new();
        for act in &value.acts {
            let renewals = act.prescription.as_ref().and_then(|p| p.renewals);
            tail.extend(
                apache_avro::to_avro_datum(&field, renewals.to_avro_value())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            );
        }
        prop_assert_eq!(&signed, &[&bare_signed[..], &tail[..]].concat());
        let mut other = value.clone();
        if let Some(p) = other.acts.iter_mut().find_map(|a| {
            a.prescription.as_mut().filter(|p| p.renewals.is_some())
        }) {
            p.renewals = p.renewals.map(|r| r.wrapping_add(1));
        }
        prop_assert_ne!(crate::signatures::canonical_bytes(registry, &other), signed);
    }
}

/// An apache-avro value with every field named `payee` that is a union
/// (the claim's, the ledger outcome's, the return's; a payment order's
/// `payee` is a plain string, always there) left out.
fn strip_optional_payee(value: &mut Value) {
    match value {
        Value::Record(fields) => {
            fields.retain(|(name, v)| !(name == "payee" && matches!(v, Value::Union(..))));
            for (_, field) in fields.iter_mut() {
                strip_optional_payee(field);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_optional_payee),
        Value::Union(_, inner) => strip_optional_payee(inner),
        _ => {}
    }
}

/// `value`, encoded by the registry: without a payee it must be exactly
/// what apache-avro writes with the topic's history version `before` and its
/// fingerprint (as recorded before the field), with one the current schema;
/// either way it reads back to `value`.
fn written_before_payee<T>(value: &T, has_payee: bool, before: u32) -> Result<(), TestCaseError>
where
    T: AvroRecord + ToAvroValue + PartialEq + std::fmt::Debug,
{
    let registry = registry();
    let bytes = registry.encode_single(value);
    if has_payee {
        prop_assert_eq!(&bytes[2..10], &crate::events::fingerprint_of::<T>()[..]);
    } else {
        let older = history(T::TOPIC, before);
        let mut record = value.to_avro_value();
        strip_optional_payee(&mut record);
        let theirs = apache_avro::to_avro_datum(&older.schema, record)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&bytes[2..10], &older.fingerprint[..]);
        prop_assert_eq!(&bytes[10..], &theirs[..]);
    }
    let back: T = registry
        .decode_single(&bytes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A decision, ledger entry or return that pays no billing identifier
    /// is written in the version from before `payee` (2026-12-06), so runs
    /// recorded before re-run to the same bytes.
    #[test]
    fn a_record_without_payee_is_written_as_before(
        decided in super::strategies::fse_decided(),
        rejected in super::strategies::fse_rejected(),
        entry in super::strategies::ledger_entry(),
        ret in super::strategies::professional_return(),
    ) {
        let claim_payee = |c: &Option<ClaimRefRec>| c.as_ref().is_some_and(|c| c.payee.is_some());
        written_before_payee(&decided, claim_payee(&decided.claim), 1)?;
        written_before_payee(&rejected, claim_payee(&rejected.claim), 1)?;
        let outcome_payee = entry.outcome.as_ref().is_some_and(|o| o.payee.is_some());
        written_before_payee(&entry, outcome_payee, 0)?;
        written_before_payee(&ret, ret.payee.is_some(), 1)?;
    }
}
