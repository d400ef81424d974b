//! The records whose codec is written out by hand: `DeadLetter` (a larger
//! bound on its raw bytes, and its older version) and `PkiEvent` (a union of
//! records as its one field).

#[cfg(test)]
use super::ToAvroValue;
use super::{AvroField, AvroRecord, CodecError, Decoder, Encoder, MAX_DEAD_LETTER_RAW_LEN};
use crate::events::model::{CertificateRec, DeadLetter, PkiEvent, RevocationRec};

/// `DeadLetter` by hand: its `raw` bytes take the larger
/// [`MAX_DEAD_LETTER_RAW_LEN`] bound.
impl AvroField for DeadLetter {
    fn encode_field(&self, out: &mut Encoder) {
        self.stage.encode_field(out);
        self.topic.encode_field(out);
        self.partition.encode_field(out);
        self.offset.encode_field(out);
        self.error.encode_field(out);
        self.raw.encode_field(out);
        self.cut.encode_field(out);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.enter()?;
        let mut value = dead_letter_v0(input)?;
        value.cut = AvroField::decode_field(input)?;
        input.leave();
        Ok(value)
    }
}

/// The fields of `dlq.v0` (every field of today's letter but `cut`), which
/// open today's record too.
fn dead_letter_v0(input: &mut Decoder<'_>) -> Result<DeadLetter, CodecError> {
    Ok(DeadLetter {
        stage: AvroField::decode_field(input)?,
        topic: AvroField::decode_field(input)?,
        partition: AvroField::decode_field(input)?,
        offset: AvroField::decode_field(input)?,
        error: AvroField::decode_field(input)?,
        raw: input.bytes_up_to(MAX_DEAD_LETTER_RAW_LEN)?.to_vec(),
        cut: None,
    })
}

/// `dlq` by hand, for its older version: a `dlq.v0` letter may quote up to
/// [`MAX_DEAD_LETTER_RAW_LEN`] bytes, which the generic path for older
/// versions would refuse past [`MAX_BYTES_LEN`](super::MAX_BYTES_LEN).
impl AvroRecord for DeadLetter {
    const SCHEMA_JSON: &'static str = include_str!("../../../../schemas/dlq.avsc");
    const TOPIC: &'static str = "dlq";
    fn encode(&self, out: &mut Encoder) {
        self.encode_field(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        Self::decode_field(input)
    }
    fn decode_older(version: u32, input: &mut Decoder<'_>) -> Option<Result<Self, CodecError>> {
        (version == 0).then(|| {
            input.enter()?;
            let value = dead_letter_v0(input)?;
            input.leave();
            Ok(value)
        })
    }
    fn fingerprint_cache() -> &'static std::sync::OnceLock<[u8; 8]> {
        static CACHE: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
        &CACHE
    }
}

#[cfg(test)]
impl ToAvroValue for DeadLetter {
    fn to_avro_value(&self) -> apache_avro::types::Value {
        apache_avro::types::Value::Record(vec![
            ("stage".to_owned(), self.stage.to_avro_value()),
            ("topic".to_owned(), self.topic.to_avro_value()),
            ("partition".to_owned(), self.partition.to_avro_value()),
            ("offset".to_owned(), self.offset.to_avro_value()),
            ("error".to_owned(), self.error.to_avro_value()),
            ("raw".to_owned(), self.raw.to_avro_value()),
            ("cut".to_owned(), self.cut.to_avro_value()),
        ])
    }
}

/// `PkiEvent`: a record whose one field `record` is the union
/// `[Certificate, Revocation]`.
impl AvroField for PkiEvent {
    fn encode_field(&self, out: &mut Encoder) {
        match self {
            PkiEvent::Certificate(certificate) => {
                out.union_branch(0);
                certificate.encode_field(out);
            }
            PkiEvent::Revocation(revocation) => {
                out.union_branch(1);
                revocation.encode_field(out);
            }
        }
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.enter()?;
        let value = match input.union_branch("PkiEvent.record", 2)? {
            0 => PkiEvent::Certificate(CertificateRec::decode_field(input)?),
            _ => PkiEvent::Revocation(RevocationRec::decode_field(input)?),
        };
        input.leave();
        Ok(value)
    }
}

#[cfg(test)]
impl ToAvroValue for PkiEvent {
    fn to_avro_value(&self) -> apache_avro::types::Value {
        use apache_avro::types::Value;
        let (branch, record) = match self {
            PkiEvent::Certificate(c) => (0, c.to_avro_value()),
            PkiEvent::Revocation(r) => (1, r.to_avro_value()),
        };
        Value::Record(vec![(
            "record".to_owned(),
            Value::Union(branch, Box::new(record)),
        )])
    }
}
