//! For every topic's record: arbitrary values round-trip through our codec,
//! our bytes are exactly apache-avro's for the `.avsc`, apache-avro reads our
//! bytes back to the same `Value`, and the single-object framing holds.
//! Hostile bytes are errors, never panics.

use std::fmt::Debug;

use apache_avro::types::Value;
use proptest::collection::vec;
use proptest::prelude::*;

use super::registry;
use super::strategies::*;
use crate::events::codec::{AvroRecord, CodecError, ToAvroValue, decode_body, encode_body};
use crate::events::model::*;
use crate::events::registry::{DecodeError, HEADER_LEN, MAGIC, fingerprint_of};

/// apache-avro reads `timestamp-millis` as `TimestampMillis`; our field is a
/// plain `i64` and its `Value` a `Long`. Nothing else differs.
fn normalize(value: Value) -> Value {
    match value {
        Value::TimestampMillis(ms) => Value::Long(ms),
        Value::Union(i, inner) => Value::Union(i, Box::new(normalize(*inner))),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .map(|(name, v)| (name, normalize(v)))
                .collect(),
        ),
        other => other,
    }
}

fn check<T: AvroRecord + ToAvroValue + PartialEq + Debug>(value: &T) -> Result<(), TestCaseError> {
    // (a) round trip through our codec.
    let body = encode_body(value);
    let back: T = decode_body(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);

    // (b) byte-identical with apache-avro, both ways.
    let schema = &registry()
        .current(T::TOPIC)
        .expect("registered topic")
        .schema;
    let avro_value = value.to_avro_record_value();
    let theirs = apache_avro::to_avro_datum(schema, avro_value.clone())
        .map_err(|e| TestCaseError::fail(format!("apache-avro encode: {e}")))?;
    prop_assert_eq!(&theirs, &body, "our bytes differ from apache-avro's");
    let mut input = &body[..];
    let read = apache_avro::from_avro_datum(schema, &mut input, None)
        .map_err(|e| TestCaseError::fail(format!("apache-avro decode: {e}")))?;
    prop_assert!(input.is_empty(), "apache-avro left bytes");
    prop_assert_eq!(normalize(read), avro_value);

    // (c) single-object: magic, fingerprint, body; and back.
    let message = registry().encode_single(value);
    prop_assert_eq!(&message[..2], &MAGIC[..]);
    // A stage record without prescriptions is written in its version from
    // before them (evolution.rs checks those bytes): only the current one here.
    if value.written_as().is_none() {
        prop_assert_eq!(&message[2..HEADER_LEN], &fingerprint_of::<T>()[..]);
        prop_assert_eq!(&message[HEADER_LEN..], &body[..]);
    }
    let back: T = registry()
        .decode_single(&message)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);

    // Truncated anywhere: an error naming what went wrong. (A record's
    // encoding is prefix-free, so no strict prefix decodes.)
    let cuts = [
        0,
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + body.len() / 2,
        message.len() - 1,
    ];
    for cut in cuts {
        if cut >= message.len() {
            continue;
        }
        let result = registry().decode_single::<T>(&message[..cut]);
        match (cut, result) {
            (c, Err(DecodeError::TooShort { len })) if c < HEADER_LEN => prop_assert_eq!(len, c),
            (
                c,
                Err(DecodeError::Body {
                    source: CodecError::Truncated { .. },
                    ..
                }),
            ) if c >= HEADER_LEN => {}
            (c, other) => prop_assert!(false, "cut at {}: {:?}", c, other.map(|_| ())),
        }
    }
    // A trailing byte.
    let mut longer = message.clone();
    longer.push(0);
    let trailing = matches!(
        registry().decode_single::<T>(&longer),
        Err(DecodeError::Body {
            source: CodecError::TrailingBytes { count: 1 },
            ..
        })
    );
    prop_assert!(trailing, "a trailing byte is refused");
    // An unknown fingerprint.
    let mut unknown = message;
    unknown[2] ^= 0xff;
    let unknown = matches!(
        registry().decode_single::<T>(&unknown),
        Err(DecodeError::UnknownFingerprint { .. })
    );
    prop_assert!(unknown, "an unknown fingerprint is refused");
    Ok(())
}

/// Random bytes, alone or after a valid header, and single-byte corruptions
/// of a valid message: `Ok` or `Err`, never a panic.
fn hostile<T: AvroRecord>(value: &T, garbage: &[u8], at: usize, byte: u8) {
    let _ = registry().decode_single::<T>(garbage);
    let _ = decode_body::<T>(garbage);
    let mut framed = Vec::with_capacity(HEADER_LEN + garbage.len());
    framed.extend_from_slice(&MAGIC);
    framed.extend_from_slice(&fingerprint_of::<T>());
    framed.extend_from_slice(garbage);
    let _ = registry().decode_single::<T>(&framed);
    let mut corrupt = registry().encode_single(value);
    let i = HEADER_LEN + at % (corrupt.len() - HEADER_LEN).max(1);
    if let Some(b) = corrupt.get_mut(i) {
        *b = byte;
    }
    let _ = registry().decode_single::<T>(&corrupt);
}

macro_rules! record_tests {
    ($($roundtrip:ident, $garbage:ident: $ty:ty = $strategy:expr;)+) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            $(
                #[test]
                fn $roundtrip(value in $strategy) {
                    check::<$ty>(&value)?;
                }

                #[test]
                fn $garbage(
                    value in $strategy,
                    garbage in vec(any::<u8>(), 0..300),
                    at in any::<usize>(),
                    byte in any::<u8>(),
                ) {
                    hostile::<$ty>(&value, &garbage, at, byte);
                }
            )+
        }
    };
}

record_tests! {
    fse_submitted_round_trips, fse_submitted_survives_garbage: FseSubmitted = fse_submitted();
    fse_validated_round_trips, fse_validated_survives_garbage: FseValidated = fse_validated();
    fse_entitled_round_trips, fse_entitled_survives_garbage: FseEntitled = fse_entitled();
    fse_routed_round_trips, fse_routed_survives_garbage: FseRouted = fse_routed();
    fse_decided_round_trips, fse_decided_survives_garbage: FseDecided = fse_decided();
    fse_rejected_round_trips, fse_rejected_survives_garbage: FseRejected = fse_rejected();
    payment_order_round_trips, payment_order_survives_garbage: PaymentOrder = payment_order();
    professional_return_round_trips, professional_return_survives_garbage:
        ProfessionalReturn = professional_return();
    eu_claim_round_trips, eu_claim_survives_garbage: EuClaim = eu_claim();
    amc_claim_round_trips, amc_claim_survives_garbage: AmcClaim = amc_claim();
    ledger_entry_round_trips, ledger_entry_survives_garbage: LedgerEntry = ledger_entry();
    audit_checkpoint_round_trips, audit_checkpoint_survives_garbage:
        AuditCheckpoint = audit_checkpoint();
    rights_record_round_trips, rights_record_survives_garbage: RightsRecord = rights_record();
    pki_event_round_trips, pki_event_survives_garbage: PkiEvent = pki_event();
    eu_institution_round_trips, eu_institution_survives_garbage:
        EuInstitutionRecord = eu_institution();
    dead_letter_round_trips, dead_letter_survives_garbage: DeadLetter = dead_letter();
}

proptest! {
    /// Bytes that are not even framed: errors, never panics.
    #[test]
    fn random_messages_are_errors(bytes in vec(any::<u8>(), 0..64)) {
        let result = registry().decode_single::<FseSubmitted>(&bytes);
        if bytes.len() < HEADER_LEN {
            prop_assert!(
                matches!(result, Err(DecodeError::TooShort { len }) if len == bytes.len()),
                "short message"
            );
        } else if bytes[..2] != MAGIC {
            prop_assert!(matches!(result, Err(DecodeError::BadMagic { .. })), "bad magic");
        } else {
            let ours = bytes[2..HEADER_LEN] == fingerprint_of::<FseSubmitted>();
            prop_assert!(result.is_err() || ours, "random bytes decoded");
        }
    }
}

#[test]
fn a_message_of_another_topic_is_refused_by_name() {
    let revocation = PkiEvent::Revocation(RevocationRec {
        cert: "CPS-1".to_owned(),
        revoked_on: chrono::NaiveDate::from_ymd_opt(2025, 3, 1).expect("date"),
    });
    let message = registry().encode_single(&revocation);
    match registry().decode_single::<FseSubmitted>(&message) {
        Err(DecodeError::WrongTopic {
            expected, found, ..
        }) => {
            assert_eq!(expected, "fse.submitted");
            assert_eq!(found, "ref.pki");
        }
        other => panic!("expected WrongTopic, got {:?}", other.map(|_| ())),
    }
    let err = registry()
        .decode_single::<FseSubmitted>(&message)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("fse.submitted") && err.contains("ref.pki"),
        "{err}"
    );
}

#[test]
fn the_fingerprint_is_the_registered_one() {
    fn same<T: AvroRecord>() {
        let current = registry().current(T::TOPIC).expect("registered");
        assert_eq!(fingerprint_of::<T>(), current.fingerprint, "{}", T::TOPIC);
    }
    same::<FseSubmitted>();
    same::<FseValidated>();
    same::<FseEntitled>();
    same::<FseRouted>();
    same::<FseDecided>();
    same::<FseRejected>();
    same::<PaymentOrder>();
    same::<ProfessionalReturn>();
    same::<EuClaim>();
    same::<AmcClaim>();
    same::<LedgerEntry>();
    same::<AuditCheckpoint>();
    same::<RightsRecord>();
    same::<PkiEvent>();
    same::<EuInstitutionRecord>();
    same::<DeadLetter>();
}
