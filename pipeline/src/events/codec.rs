//! The Avro binary encoding of the events, written out by hand for each
//! schema: no generic `Value` tree, no schema walk at run time.
//!
//! [`Encoder`] appends the Avro binary form (zig-zag varints, length-prefixed
//! strings and bytes, arrays as one block) to a `Vec<u8>`; [`Decoder`] reads it
//! back from a slice, bounds-checking every read and refusing anything past
//! the named limits below. Each record of `model.rs` gets its code from one
//! `avro_record!` line listing its fields in schema order; the tests prove the
//! bytes identical to apache-avro's for the `.avsc` files (docs/schemas.md).
//!
//! This module never panics on input: every malformed byte is a
//! [`CodecError`]. It knows nothing of single-object headers or fingerprints
//! (that is `registry.rs`).

use chrono::{Datelike, NaiveDate};
use thiserror::Error;

use super::model::{
    ActLineRec, AmcClaim, AuditCheckpoint, BeneficiaryRec, Category, CertificateRec, ClaimRefRec,
    Complement, CoverageRec, DeadLetter, DecisionLineRec, DecisionRec, EhicRec, EntitlementRec,
    EuClaim, EuInstitutionRecord, EventHeader, FseDecided, FseEntitled, FseRejected, FseRouted,
    FseSubmitted, FseValidated, GuaranteeRec, LedgerEntry, LedgerOutcomeRec, LocalRegimeSymbol,
    Pathway, PayeeKind, PaymentOrder, PeriodRec, PkiEvent, ProfessionalRec, ProfessionalReturn,
    RawCutRec, ReasonRec, RefOffset, ReturnKind, RevocationRec, RightsRecord, Route, RoutingRec,
    SectorSymbol, SignatureCheck, SignatureRec, SourceRef, Stage, Status, TiersPayantRec,
};

/// Longest string or bytes value a decoder accepts (1 MiB): far above any
/// field of ours (a DER public key is a few hundred bytes), low enough that a
/// corrupt length cannot make us allocate much.
pub const MAX_BYTES_LEN: usize = 1 << 20;
/// Longest raw record a dead letter carries (16 MiB, the local log's record
/// bound): a dead letter quotes its input whole, and an input may be refused
/// precisely for exceeding [`MAX_BYTES_LEN`], so its letter must still decode.
pub const MAX_DEAD_LETTER_RAW_LEN: usize = 16 << 20;
/// Most items a decoder accepts in one array (all blocks together).
pub const MAX_ARRAY_ITEMS: usize = 10_000;
/// Deepest nesting of records a decoder accepts. Our schemas are not
/// recursive and nest at most 5 deep; the bound guards hand-written decoders.
pub const MAX_DEPTH: u32 = 32;
/// An Avro `long` takes at most 10 bytes as a varint.
pub const MAX_VARINT_BYTES: usize = 10;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01: Avro `date`
/// counts days from the Unix epoch.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// What is wrong with an Avro body. Never carries the bytes themselves (they
/// may hold personal data).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("truncated input: needed {needed} more bytes at offset {offset}, {remaining} left")]
    Truncated {
        offset: usize,
        needed: usize,
        remaining: usize,
    },
    #[error(
        "varint at offset {offset} is longer than {MAX_VARINT_BYTES} bytes or overflows 64 bits"
    )]
    VarintTooLong { offset: usize },
    #[error("int out of range at offset {offset}: {value} does not fit 32 bits")]
    IntOutOfRange { offset: usize, value: i64 },
    #[error("invalid boolean byte {byte:#04x} at offset {offset}")]
    InvalidBool { offset: usize, byte: u8 },
    #[error("negative length {length} at offset {offset}")]
    NegativeLength { offset: usize, length: i64 },
    #[error("string or bytes of {length} bytes at offset {offset} exceeds the limit of {limit}")]
    TooLong {
        offset: usize,
        length: i64,
        limit: usize,
    },
    #[error("array at offset {offset} has more than {MAX_ARRAY_ITEMS} items ({count})")]
    TooManyItems { offset: usize, count: u64 },
    #[error("invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("enum {name}: index {index} at offset {offset} is out of range")]
    EnumIndex {
        name: &'static str,
        offset: usize,
        index: i64,
    },
    #[error("union {name}: branch {index} at offset {offset} is out of range")]
    UnionIndex {
        name: &'static str,
        offset: usize,
        index: i64,
    },
    #[error("date out of range: {days} days from 1970-01-01")]
    DateOutOfRange { days: i32 },
    #[error("records nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("{count} trailing bytes after the record")]
    TrailingBytes { count: usize },
}

// ---------------------------------------------------------------------------
// Encoder

/// Appends the Avro binary encoding of values to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends to `out` (e.g. after a single-object header already in it).
    pub fn from_vec(out: Vec<u8>) -> Self {
        Self { out }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }

    /// `long`: zig-zag, then a little-endian base-128 varint.
    pub fn long(&mut self, value: i64) {
        let mut n = ((value << 1) ^ (value >> 63)) as u64;
        while n >= 0x80 {
            self.out.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.out.push(n as u8);
    }

    /// `int`: encoded exactly as a `long`.
    pub fn int(&mut self, value: i32) {
        self.long(i64::from(value));
    }

    pub fn boolean(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }

    /// `bytes`: length, then the bytes.
    pub fn bytes(&mut self, value: &[u8]) {
        self.len(value.len());
        self.out.extend_from_slice(value);
    }

    /// `string`: length, then the UTF-8 bytes.
    pub fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// `fixed`: the bytes alone, no length.
    pub fn fixed(&mut self, value: &[u8]) {
        self.out.extend_from_slice(value);
    }

    /// The 0-based branch of a union, written before the branch's value.
    pub fn union_branch(&mut self, index: u32) {
        self.long(i64::from(index));
    }

    /// The 0-based index of an enum symbol.
    pub fn enum_index(&mut self, index: u32) {
        self.long(i64::from(index));
    }

    /// An array as one block: item count, the items, then the empty block
    /// that ends the array (an empty array is the end block alone).
    pub fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        if !items.is_empty() {
            self.len(items.len());
            for value in items {
                item(self, value);
            }
        }
        self.out.push(0);
    }

    fn len(&mut self, len: usize) {
        // A Vec never holds more than isize::MAX bytes, so this never saturates.
        self.long(i64::try_from(len).unwrap_or(i64::MAX));
    }
}

// ---------------------------------------------------------------------------
// Decoder

/// Reads Avro binary values from a byte slice, bounds-checking every read.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    depth: u32,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            depth: 0,
        }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Ends decoding: every byte must have been read.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes { count }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(CodecError::Truncated {
                offset: self.pos,
                needed: n,
                remaining,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.input[start..self.pos])
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn long(&mut self) -> Result<i64, CodecError> {
        let offset = self.pos;
        let mut n: u64 = 0;
        for i in 0..MAX_VARINT_BYTES {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            // The 10th byte may only carry the 64th bit.
            if i == MAX_VARINT_BYTES - 1 && byte > 1 {
                return Err(CodecError::VarintTooLong { offset });
            }
            n |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
            }
        }
        Err(CodecError::VarintTooLong { offset })
    }

    pub fn int(&mut self) -> Result<i32, CodecError> {
        let offset = self.pos;
        let value = self.long()?;
        i32::try_from(value).map_err(|_| CodecError::IntOutOfRange { offset, value })
    }

    pub fn boolean(&mut self) -> Result<bool, CodecError> {
        let offset = self.pos;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(CodecError::InvalidBool { offset, byte }),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        self.bytes_up_to(MAX_BYTES_LEN)
    }

    /// `bytes` of at most `max` bytes (a dead letter's raw record).
    pub fn bytes_up_to(&mut self, max: usize) -> Result<&'a [u8], CodecError> {
        let offset = self.pos;
        let length = self.long()?;
        let len =
            usize::try_from(length).map_err(|_| CodecError::NegativeLength { offset, length })?;
        if len > max {
            return Err(CodecError::TooLong {
                offset,
                length,
                limit: max,
            });
        }
        self.take(len)
    }

    pub fn string(&mut self) -> Result<&'a str, CodecError> {
        let offset = self.pos;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::InvalidUtf8 { offset })
    }

    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A union branch index, checked against the number of branches.
    pub fn union_branch(&mut self, name: &'static str, branches: u32) -> Result<u32, CodecError> {
        let offset = self.pos;
        let index = self.long()?;
        match u32::try_from(index) {
            Ok(i) if i < branches => Ok(i),
            _ => Err(CodecError::UnionIndex {
                name,
                offset,
                index,
            }),
        }
    }

    /// An array in any number of blocks; a negative block count (followed by
    /// the block's size in bytes) is accepted as other writers produce it.
    pub fn array<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, CodecError> {
        let mut items = Vec::new();
        loop {
            let offset = self.pos;
            let count = self.long()?;
            if count == 0 {
                return Ok(items);
            }
            if count < 0 {
                let size_offset = self.pos;
                let size = self.long()?;
                if size < 0 {
                    return Err(CodecError::NegativeLength {
                        offset: size_offset,
                        length: size,
                    });
                }
            }
            let count = count.unsigned_abs();
            let total = (items.len() as u64).saturating_add(count);
            if total > MAX_ARRAY_ITEMS as u64 {
                return Err(CodecError::TooManyItems {
                    offset,
                    count: total,
                });
            }
            // Every item of ours takes at least one byte: never reserve more
            // than the input could hold.
            let count = count as usize;
            items.reserve(count.min(self.remaining()));
            for _ in 0..count {
                items.push(item(self)?);
            }
        }
    }

    /// An enum symbol, by index.
    pub fn enum_value<E: AvroEnum>(&mut self) -> Result<E, CodecError> {
        let offset = self.pos;
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| E::VARIANTS.get(i))
            .copied()
            .ok_or(CodecError::EnumIndex {
                name: E::NAME,
                offset,
                index,
            })
    }

    /// Entering a record: counts nesting against [`MAX_DEPTH`].
    pub fn enter(&mut self) -> Result<(), CodecError> {
        if self.depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

// ---------------------------------------------------------------------------
// Traits

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
    /// [`MAX_BYTES_LEN`]): for a record with a field allowed to be larger.
    fn decode_older(version: u32, input: &mut Decoder<'_>) -> Option<Result<Self, CodecError>> {
        let _ = (version, input);
        None
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
}

// ---------------------------------------------------------------------------
// Field types

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

// ---------------------------------------------------------------------------
// Enums and records

/// An Avro enum: the variants listed in declaration order with their symbols.
/// `symbol` is an exhaustive match, so a variant missing here does not compile;
/// a test checks that the list order is the declaration order.
macro_rules! avro_enum {
    ($ty:ident, $name:literal, [$($variant:ident = $symbol:literal),+ $(,)?]) => {
        impl AvroEnum for $ty {
            const NAME: &'static str = $name;
            const VARIANTS: &'static [Self] = &[$($ty::$variant),+];
            const SYMBOLS: &'static [&'static str] = &[$($symbol),+];
            fn index(self) -> u32 {
                self as u32
            }
            fn symbol(self) -> &'static str {
                match self {
                    $($ty::$variant => $symbol),+
                }
            }
        }

        impl AvroField for $ty {
            fn encode_field(&self, out: &mut Encoder) {
                out.enum_index(self.index());
            }
            fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                input.enum_value::<$ty>()
            }
        }

        #[cfg(test)]
        impl ToAvroValue for $ty {
            fn to_avro_value(&self) -> apache_avro::types::Value {
                test_values::enum_value(*self)
            }
        }
    };
}

/// An Avro record: its fields in schema order. The decoder builds the struct
/// with every field named, so a field missing here does not compile.
macro_rules! avro_record {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl AvroField for $ty {
            fn encode_field(&self, out: &mut Encoder) {
                $(self.$field.encode_field(out);)+
            }
            fn decode_field(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                input.enter()?;
                // Struct expression fields are evaluated in the order written.
                let value = $ty {
                    $($field: AvroField::decode_field(input)?,)+
                };
                input.leave();
                Ok(value)
            }
        }

        #[cfg(test)]
        impl ToAvroValue for $ty {
            fn to_avro_value(&self) -> apache_avro::types::Value {
                apache_avro::types::Value::Record(vec![
                    $((stringify!($field).to_owned(), self.$field.to_avro_value()),)+
                ])
            }
        }
    };
}

/// A record that is a topic's value: its schema file is `schemas/<topic>.avsc`.
macro_rules! avro_topic {
    ($ty:ident, $topic:literal) => {
        impl AvroRecord for $ty {
            const SCHEMA_JSON: &'static str =
                include_str!(concat!("../../../schemas/", $topic, ".avsc"));
            const TOPIC: &'static str = $topic;
            fn encode(&self, out: &mut Encoder) {
                self.encode_field(out);
            }
            fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                Self::decode_field(input)
            }
            fn fingerprint_cache() -> &'static std::sync::OnceLock<[u8; 8]> {
                static CACHE: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
                &CACHE
            }
        }
    };
}

avro_enum!(
    Category,
    "Category",
    [
        Gp = "GP",
        Specialist = "SPECIALIST",
        Dentist = "DENTIST",
        Midwife = "MIDWIFE",
        Nurse = "NURSE",
        Physiotherapist = "PHYSIOTHERAPIST",
        Pharmacist = "PHARMACIST",
        Laboratory = "LABORATORY",
        Radiology = "RADIOLOGY",
        Transport = "TRANSPORT",
        Hospital = "HOSPITAL",
    ]
);
avro_enum!(SectorSymbol, "Sector", [S1 = "S1", S2 = "S2", S3 = "S3"]);
avro_enum!(
    Pathway,
    "Pathway",
    [
        Mt = "MT",
        Referred = "REFERRED",
        DirectAccess = "DIRECT_ACCESS",
        Emergency = "EMERGENCY",
        Outside = "OUTSIDE",
    ]
);
avro_enum!(
    Complement,
    "Complement",
    [Night = "NIGHT", Sunday = "SUNDAY", Urgency = "URGENCY"]
);
avro_enum!(
    Stage,
    "Stage",
    [
        Validation = "VALIDATION",
        Entitlement = "ENTITLEMENT",
        Routing = "ROUTING",
        Reimbursement = "REIMBURSEMENT",
    ]
);
avro_enum!(
    SignatureCheck,
    "SignatureCheck",
    [Verified = "VERIFIED", NotChecked = "NOT_CHECKED"]
);
avro_enum!(
    LocalRegimeSymbol,
    "LocalRegime",
    [AlsaceMoselle = "ALSACE_MOSELLE"]
);
avro_enum!(Route, "Route", [Domestic = "DOMESTIC", Eu = "EU"]);
avro_enum!(Status, "Status", [Paid = "PAID", Rejected = "REJECTED"]);
avro_enum!(
    PayeeKind,
    "PayeeKind",
    [Professional = "PROFESSIONAL", Insured = "INSURED"]
);
avro_enum!(
    ReturnKind,
    "ReturnKind",
    [
        ArlPositive = "ARL_POSITIVE",
        ArlNegative = "ARL_NEGATIVE",
        RspPayment = "RSP_PAYMENT",
        RspRejection = "RSP_REJECTION",
    ]
);

avro_record!(SourceRef {
    topic,
    partition,
    offset,
    ordinal
});
avro_record!(RefOffset {
    topic,
    partition,
    offset
});
avro_record!(EventHeader {
    event_id,
    causation_id,
    correlation_id,
    event_time_millis,
    source,
    ref_watermark,
    rules_version,
});
avro_record!(ProfessionalRec {
    rpps,
    category,
    sector,
    optam
});
avro_record!(BeneficiaryRec {
    nir,
    birth_date,
    rank
});
avro_record!(EhicRec {
    country,
    institution_id,
    card_id,
    personal_id,
    surname,
    given_names,
    birth_date,
    expiry,
});
avro_record!(TiersPayantRec { amo, amc });
avro_record!(ActLineRec {
    code,
    quantity,
    coefficient_hundredths,
    charged_cents,
    complement,
    ald_related,
    base_cents,
    product,
    unit_price_cents,
    leg,
});
avro_record!(SignatureRec { alg, cert, value });
avro_record!(FseSubmitted {
    fse_id,
    received_at_millis,
    received_offset_minutes,
    care_date,
    professional,
    beneficiary,
    ehic,
    pathway,
    tiers_payant,
    acts,
    signature,
});
avro_record!(ReasonRec {
    code,
    stage,
    message,
    field,
    line
});
avro_record!(FseValidated {
    header,
    fse,
    beneficiary_key,
    signature_check,
    warnings
});
avro_record!(EntitlementRec {
    regime,
    fund,
    ald,
    css,
    ame,
    maternity,
    minor,
    pathway_free,
    local_regime,
    declared_gp,
    amc,
    rights_digest,
});
avro_record!(FseEntitled {
    header,
    fse,
    beneficiary_key,
    signature_check,
    warnings,
    entitlement,
});
avro_record!(RoutingRec {
    route,
    country,
    institution_id
});
avro_record!(FseRouted {
    header,
    fse,
    beneficiary_key,
    signature_check,
    warnings,
    entitlement,
    routing,
});
avro_record!(DecisionLineRec {
    code,
    charged_cents,
    base_cents,
    rate_percent,
    amo_cents,
    css_cents,
    participation_cents,
    franchise_cents,
    tariff,
});
avro_record!(DecisionRec {
    fse_id,
    status,
    route,
    reasons,
    warnings,
    lines,
    amo_cents,
    css_cents,
    participation_cents,
    franchise_cents,
    flat_fee_cents,
    deferred_cents,
    imputed_cents,
    patient_cents,
    paid_to_professional_cents,
    paid_to_insured_cents,
    rules_version,
    signature_check,
    beneficiary_key,
    care_date,
    reimbursement_date,
});
avro_record!(ClaimRefRec {
    rpps,
    received_on,
    tiers_payant,
    amc,
    eu_country,
    eu_institution_id,
});
avro_record!(FseDecided {
    header,
    decision,
    claim
});
avro_record!(FseRejected {
    header,
    decision,
    claim
});
avro_record!(PaymentOrder {
    header,
    order_id,
    payee_kind,
    payee,
    value_date,
    amount_cents,
    imputed_cents,
    fse_ids,
    guarantee_due,
    late_penalty_cents,
    guarantees,
});
avro_record!(GuaranteeRec {
    fse_id,
    received_on,
    due,
    paid_working_day,
    late,
    penalty_cents,
});
avro_record!(ProfessionalReturn {
    header,
    kind,
    rpps,
    batch_id,
    fse_id,
    amount_cents,
    reasons,
    fse_count,
});
avro_record!(LedgerOutcomeRec {
    fse_id,
    beneficiary_key,
    rpps,
    received_on,
    status,
    validation_rejected,
    reason_codes,
    tiers_payant_amo,
    amo_cents,
    paid_to_professional_cents,
    paid_to_insured_cents,
    imputed_cents,
    eu_country,
    eu_institution_id,
});
avro_record!(LedgerEntry {
    header,
    close_on,
    outcome
});
avro_record!(EuClaim {
    header,
    claim_id,
    country,
    institution_id,
    half_year,
    introduced_on,
    introduction_deadline,
    payment_due,
    dispute_deadline,
    receivable,
    amount_cents,
    currency,
    fse_ids,
});
avro_record!(AmcClaim {
    header,
    amc,
    fse_id,
    beneficiary_key,
    ticket_cents,
    depassement_cents,
    amount_cents,
});
avro_record!(AuditCheckpoint {
    stage,
    partition,
    input_offset_from,
    input_offset_to,
    output_count,
    chain_hash,
    rules_version,
    ref_watermark,
});
avro_record!(PeriodRec { from, to });
avro_record!(CoverageRec {
    from,
    to,
    regime,
    fund
});
avro_record!(RightsRecord {
    nir,
    birth_date,
    rank,
    coverage,
    ald,
    css,
    ame,
    maternity,
    local_regime,
    declared_gp,
    amc,
});
avro_record!(CertificateRec {
    id,
    rpps,
    alg,
    public_key,
    issuer,
    not_before,
    not_after
});
avro_record!(RevocationRec { cert, revoked_on });
avro_record!(EuInstitutionRecord {
    country,
    institution_id,
    name,
    acronym,
    from,
    to
});
avro_record!(RawCutRec { length, sha256 });
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
/// versions would refuse past [`MAX_BYTES_LEN`].
impl AvroRecord for DeadLetter {
    const SCHEMA_JSON: &'static str = include_str!("../../../schemas/dlq.avsc");
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

avro_topic!(FseSubmitted, "fse.submitted");
avro_topic!(FseValidated, "fse.validated");
avro_topic!(FseEntitled, "fse.entitled");
avro_topic!(FseRouted, "fse.routed");
avro_topic!(FseDecided, "fse.decided");
avro_topic!(FseRejected, "fse.rejected");
avro_topic!(PaymentOrder, "payments.orders");
avro_topic!(ProfessionalReturn, "returns.professional");
avro_topic!(EuClaim, "eu.claims");
avro_topic!(AmcClaim, "amc.claims");
avro_topic!(LedgerEntry, "outbound.ledger");
avro_topic!(AuditCheckpoint, "audit.checkpoints");
avro_topic!(RightsRecord, "ref.rights");
avro_topic!(PkiEvent, "ref.pki");
avro_topic!(EuInstitutionRecord, "ref.eu.institutions");

#[cfg(test)]
mod test_values {
    use apache_avro::types::Value;
    use chrono::NaiveDate;

    use super::{AvroEnum, ToAvroValue, date_to_days};

    impl ToAvroValue for i32 {
        fn to_avro_value(&self) -> Value {
            Value::Int(*self)
        }
    }
    impl ToAvroValue for i64 {
        fn to_avro_value(&self) -> Value {
            Value::Long(*self)
        }
    }
    impl ToAvroValue for bool {
        fn to_avro_value(&self) -> Value {
            Value::Boolean(*self)
        }
    }
    impl ToAvroValue for String {
        fn to_avro_value(&self) -> Value {
            Value::String(self.clone())
        }
    }
    impl ToAvroValue for Vec<u8> {
        fn to_avro_value(&self) -> Value {
            Value::Bytes(self.clone())
        }
    }
    impl ToAvroValue for [u8; 32] {
        fn to_avro_value(&self) -> Value {
            Value::Fixed(32, self.to_vec())
        }
    }
    impl ToAvroValue for NaiveDate {
        fn to_avro_value(&self) -> Value {
            Value::Date(date_to_days(*self))
        }
    }
    impl<T: ToAvroValue> ToAvroValue for Option<T> {
        fn to_avro_value(&self) -> Value {
            match self {
                None => Value::Union(0, Box::new(Value::Null)),
                Some(v) => Value::Union(1, Box::new(v.to_avro_value())),
            }
        }
    }
    impl<T: ToAvroValue> ToAvroValue for Vec<T> {
        fn to_avro_value(&self) -> Value {
            Value::Array(self.iter().map(ToAvroValue::to_avro_value).collect())
        }
    }

    pub(crate) fn enum_value<E: AvroEnum>(e: E) -> Value {
        Value::Enum(e.index(), e.symbol().to_owned())
    }
}
