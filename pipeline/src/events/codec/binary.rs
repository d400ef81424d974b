//! [`Encoder`] and [`Decoder`]: the Avro binary primitives, every read
//! bounds-checked against the limits of the parent module.

use super::{AvroEnum, CodecError, MAX_ARRAY_ITEMS, MAX_BYTES_LEN, MAX_DEPTH, MAX_VARINT_BYTES};

/// The fields that came later than their records, which an older form of
/// a record leaves out when written and when read (each `true`: as before
/// the field). One set for the encoder and the decoder: the form a version
/// is written in is the form it is read in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Without {
    /// Act lines' `prescription`: the FSE's signed form of
    /// `fse.submitted.v1`, and the versions of `fse.validated`,
    /// `fse.entitled` and `fse.routed` from before 2026-12-06.
    pub prescriptions: bool,
    /// Prescriptions' `foreign`: the versions of the FSE's topics from before
    /// foreign ePrescriptions (2026-12-06), and the prescriptions' part of
    /// the signed bytes.
    pub foreign: bool,
    /// The professional's `billing`: the versions of the FSE's topics from
    /// before billing identifiers (2026-12-06), and the FSE's signed form.
    pub billing: bool,
    /// The claim reference's, the ledger outcome's and the professional
    /// return's `payee`: their versions from before billing identifiers
    /// (2026-12-06).
    pub payee: bool,
    /// Prescriptions' `renewals`: the versions of the FSE's topics from
    /// before renewable prescriptions (2026-12-07), and the prescriptions'
    /// part of the signed bytes.
    pub renewals: bool,
}

/// Appends the Avro binary encoding of values to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    out: Vec<u8>,
    /// The later fields this encoder leaves out (an older form).
    pub without: Without,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends to `out` (e.g. after a single-object header already in it).
    pub fn from_vec(out: Vec<u8>) -> Self {
        Self {
            out,
            without: Without::default(),
        }
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
    /// The later fields this decoder reads as absent (an older form).
    pub without: Without,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            depth: 0,
            without: Without::default(),
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
