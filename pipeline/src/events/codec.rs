//! The Avro binary encoding of the events, written out by hand for each
//! schema: no generic `Value` tree, no schema walk at run time.
//!
//! [`Encoder`] appends the Avro binary form (zig-zag varints, length-prefixed
//! strings and bytes, arrays as one block) to a `Vec<u8>`; [`Decoder`] reads it
//! back from a slice, bounds-checking every read and refusing anything past
//! the named limits below (`binary.rs`). The traits a record and a field
//! implement, and their impls for the primitive types, are in `traits.rs`.
//! Each record of `model.rs` gets its code from one `avro_record!` line
//! listing its fields in schema order (`records.rs`; the two records with a
//! hand-written codec are in `by_hand.rs`); the tests prove the bytes
//! identical to apache-avro's for the `.avsc` files (docs/schemas.md).
//!
//! The record declarations are kept by hand rather than generated from the
//! `.avsc` files by a build step: each is one line of field names, the model
//! structs carry Rust types (dates, enums, fixed digests) a generator would
//! have to be told about anyway, and the byte-identity tests already catch
//! any declaration that drifts from its schema.
//!
//! This module never panics on input: every malformed byte is a
//! [`CodecError`]. It knows nothing of single-object headers or fingerprints
//! (that is `registry.rs`).

use thiserror::Error;

mod binary;
mod by_hand;
mod records;
#[cfg(test)]
mod test_values;
mod traits;

pub use binary::{Decoder, Encoder, Without};
pub use records::{BEFORE_BILLING, BEFORE_FOREIGN, BEFORE_RENEWALS, SIGNED_FORM_VERSION};
#[cfg(test)]
pub(crate) use traits::ToAvroValue;
pub use traits::{
    AvroEnum, AvroField, AvroRecord, date_to_days, days_to_date, decode_body, encode_body,
};

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
