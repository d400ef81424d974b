//! The traits a topic's record, a field and an enum implement, and the
//! field impls of the primitive Avro types.

use chrono::{Datelike, NaiveDate};

use super::{CodecError, Decoder, Encoder};

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01: Avro `date`
/// counts days from the Unix epoch.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A top-level record: the value of one topic, with its schema.
pub trait AvroRecord: Sized {
    /// The `.avsc` text, embedded at compile time.
    const SCHEMA_JSON: &'static str;
    /// The topic (and schema file stem) this record is the value of.
    const TOPIC: &'static str;
    fn encode(&self, out: &mut Encoder);
    /// Reads one record; the caller checks for trailing bytes
    /// ([`decode_body`] does).
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError>;
    /// Reads one record written with the older schema `version` of this
    /// topic by hand, or `None` to leave it to the registry's generic path
    /// (apache-avro's resolution, which bounds every field at
    /// [`MAX_BYTES_LEN`](super::MAX_BYTES_LEN)): for a record with a field allowed to be larger.
    fn decode_older(version: u32, input: &mut Decoder<'_>) -> Option<Result<Self, CodecError>> {
        let _ = (version, input);
        None
    }
    /// The older version of the topic's schema this value is written in
    /// (`None`: the current one). A record carrying the FSE whose lines have
    /// no prescription is written as before prescriptions existed, so runs
    /// recorded then re-run to the same bytes; the encoder is then told to
    /// leave the field out ([`Encoder::without`]).
    fn written_as(&self) -> Option<u32> {
        None
    }
    /// Sets the encoder to write the form of history version `version` (one
    /// [`written_as`](Self::written_as) returned): by default act lines
    /// without their prescriptions.
    fn older_form(version: u32, out: &mut Encoder) {
        let _ = version;
        out.without.prescriptions = true;
    }
    /// The cache of this record's fingerprint (one static per type; generated
    /// by `avro_topic!`). Use `registry::fingerprint_of` instead.
    #[doc(hidden)]
    fn fingerprint_cache() -> &'static std::sync::OnceLock<[u8; 8]>;
}

/// A type that can be a field: the Avro binary form of one value.
pub trait AvroField: Sized {
    fn encode_field(&self, out: &mut Encoder);
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError>;
}

/// A Rust enum that is an Avro enum: symbols in declaration order.
pub trait AvroEnum: Copy + 'static {
    /// The Avro name of the enum.
    const NAME: &'static str;
    /// Every variant, in declaration (and symbol) order.
    const VARIANTS: &'static [Self];
    /// The Avro symbols, in order.
    const SYMBOLS: &'static [&'static str];
    fn index(self) -> u32;
    fn symbol(self) -> &'static str;
}

/// The Avro body of a record (no header).
pub fn encode_body<T: AvroRecord>(value: &T) -> Vec<u8> {
    let mut out = Encoder::new();
    value.encode(&mut out);
    out.into_bytes()
}

/// Decodes a whole Avro body: trailing bytes are an error.
pub fn decode_body<T: AvroRecord>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut input = Decoder::new(bytes);
    let value = T::decode(&mut input)?;
    input.finish()?;
    Ok(value)
}

/// Test only: the apache-avro `Value` of a field, for the byte-identity
/// tests. Timestamps come out as `Long` (the Rust field is an `i64`).
#[cfg(test)]
pub(crate) trait ToAvroValue {
    fn to_avro_value(&self) -> apache_avro::types::Value;
    /// The value as its topic's record, where that differs from the value as
    /// a field (`FseSubmitted`).
    fn to_avro_record_value(&self) -> apache_avro::types::Value {
        self.to_avro_value()
    }
}

impl AvroField for i32 {
    fn encode_field(&self, out: &mut Encoder) {
        out.int(*self);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.int()
    }
}

impl AvroField for i64 {
    fn encode_field(&self, out: &mut Encoder) {
        out.long(*self);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.long()
    }
}

impl AvroField for bool {
    fn encode_field(&self, out: &mut Encoder) {
        out.boolean(*self);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.boolean()
    }
}

impl AvroField for String {
    fn encode_field(&self, out: &mut Encoder) {
        out.string(self);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.string().map(str::to_owned)
    }
}

/// `bytes` (an array of `u8` is never an Avro array).
impl AvroField for Vec<u8> {
    fn encode_field(&self, out: &mut Encoder) {
        out.bytes(self);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.bytes().map(<[u8]>::to_vec)
    }
}

/// `fixed` of 32 bytes (a SHA-256 digest).
impl AvroField for [u8; 32] {
    fn encode_field(&self, out: &mut Encoder) {
        out.fixed(self);
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.fixed::<32>()
    }
}

/// `{"type": "int", "logicalType": "date"}`: days since 1970-01-01.
impl AvroField for NaiveDate {
    fn encode_field(&self, out: &mut Encoder) {
        out.int(date_to_days(*self));
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        days_to_date(input.int()?)
    }
}

/// Days since 1970-01-01. NaiveDate spans about ±262,000 years, so the
/// difference always fits an `i32`.
pub fn date_to_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

pub fn days_to_date(days: i32) -> Result<NaiveDate, CodecError> {
    days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or(CodecError::DateOutOfRange { days })
}

/// `["null", T]`.
impl<T: AvroField> AvroField for Option<T> {
    fn encode_field(&self, out: &mut Encoder) {
        match self {
            None => out.union_branch(0),
            Some(value) => {
                out.union_branch(1);
                value.encode_field(out);
            }
        }
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        match input.union_branch("[\"null\", T]", 2)? {
            0 => Ok(None),
            _ => T::decode_field(input).map(Some),
        }
    }
}

/// `{"type": "array", "items": T}`.
impl<T: AvroField> AvroField for Vec<T> {
    fn encode_field(&self, out: &mut Encoder) {
        out.array(self, |out, item| item.encode_field(out));
    }
    fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        input.array(T::decode_field)
    }
}
