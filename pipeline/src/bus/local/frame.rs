//! The segment files' format: each record one frame, `len | crc32c |
//! payload`, the payload `offset | timestamp | key length | key | value
//! length | value`, all big endian (`len` counts the CRC and the payload);
//! and the frames read back, or why the bytes at a position are not one.
//!
//! A tombstone (a null value, which compaction drops in time) has the value
//! length [`TOMBSTONE`] and no value bytes, as Kafka's null is a length of
//! -1. Logs written before tombstones (2026-12-05) have no such length: a
//! value can be 16 MiB at most. A binary of before that date reads a
//! tombstone's frame as damage and refuses the partition, never as a value.

use std::io::Read;

use super::MAX_RECORD_BYTES;

/// Frame header: len (4) + crc (4); payload header: offset (8) + timestamp (8) + 2 lengths (8).
pub(super) const FRAME_HEADER: usize = 8;
pub(super) const PAYLOAD_FIXED: usize = 24;
/// The value length of a tombstone's frame (no value bytes follow).
const TOMBSTONE: u32 = u32::MAX;

/// A frame of `value`, or of a tombstone if `None`.
pub(super) fn encode_frame(
    offset: u64,
    timestamp: i64,
    key: &[u8],
    value: Option<&[u8]>,
) -> Vec<u8> {
    let value_bytes = value.unwrap_or_default();
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED + key.len() + value_bytes.len());
    payload.extend_from_slice(&offset.to_be_bytes());
    payload.extend_from_slice(&timestamp.to_be_bytes());
    payload.extend_from_slice(&(key.len() as u32).to_be_bytes());
    payload.extend_from_slice(key);
    let value_len = value.map_or(TOMBSTONE, |v| v.len() as u32);
    payload.extend_from_slice(&value_len.to_be_bytes());
    payload.extend_from_slice(value_bytes);
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// A frame read back: offset, timestamp, key, value (`None`: a tombstone),
/// and its size on disk.
pub(super) type Frame = (u64, i64, Vec<u8>, Option<Vec<u8>>, u64);

/// Why the bytes at a position are not the frame expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadFrame {
    /// Zeros where a frame's length should be: preallocated space.
    Zero,
    /// The file ends inside the frame.
    Short,
    /// A length no frame has.
    Length(u32),
    /// The payload does not match its CRC.
    Crc,
    /// The key and value lengths do not add up to the payload's.
    Layout,
    /// A valid frame, of another record than the one expected.
    Offset(u64),
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::Zero => f.write_str("zeros where a frame should start"),
            BadFrame::Short => f.write_str("the file ends inside the frame"),
            BadFrame::Length(len) => write!(f, "a frame length of {len} bytes, out of bounds"),
            BadFrame::Crc => f.write_str("the frame fails its CRC"),
            BadFrame::Layout => f.write_str("the frame's key and value lengths do not add up"),
            BadFrame::Offset(offset) => write!(f, "a valid frame of record {offset}"),
        }
    }
}

/// One read of [`read_frame`].
pub(super) enum FrameRead {
    Frame(Frame),
    /// The file ends exactly here.
    End,
    Bad(BadFrame),
}

/// Where the key and the value lie in a payload; the value `None` for a
/// tombstone.
type Layout = (
    u64,
    i64,
    std::ops::Range<usize>,
    Option<std::ops::Range<usize>>,
);

/// The payload's fields: offset, timestamp, and where the key and the value
/// lie in it; `None` if the lengths do not add up.
fn payload_layout(payload: &[u8]) -> Option<Layout> {
    let u64_at = |i: usize| Some(u64::from_be_bytes(payload.get(i..i + 8)?.try_into().ok()?));
    let u32_at =
        |i: usize| Some(u32::from_be_bytes(payload.get(i..i + 4)?.try_into().ok()?) as usize);
    let offset = u64_at(0)?;
    let timestamp = u64_at(8)? as i64;
    let key_len = u32_at(16)?;
    let value_len_at = 20usize
        .checked_add(key_len)
        .filter(|&v| v + 4 <= payload.len())?;
    let value_len = u32_at(value_len_at)?;
    if value_len == TOMBSTONE as usize {
        return (value_len_at + 4 == payload.len()).then_some((
            offset,
            timestamp,
            20..value_len_at,
            None,
        ));
    }
    (value_len_at + 4 + value_len == payload.len()).then_some((
        offset,
        timestamp,
        20..value_len_at,
        Some(value_len_at + 4..payload.len()),
    ))
}

/// Whether a frame's length field is one a frame can have.
pub(super) fn plausible_length(len: usize) -> bool {
    (4 + PAYLOAD_FIXED..=4 + PAYLOAD_FIXED + MAX_RECORD_BYTES).contains(&len)
}

/// Reads one frame, or says why the bytes there are not one.
pub(super) fn read_frame(reader: &mut impl Read) -> Result<FrameRead, std::io::Error> {
    let mut header = [0u8; FRAME_HEADER];
    match fill(reader, &mut header)? {
        0 => return Ok(FrameRead::End),
        FRAME_HEADER => {}
        _ => return Ok(FrameRead::Bad(BadFrame::Short)),
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Ok(FrameRead::Bad(BadFrame::Zero));
    }
    if !plausible_length(len as usize) {
        return Ok(FrameRead::Bad(BadFrame::Length(len)));
    }
    let mut payload = vec![0u8; len as usize - 4];
    if fill(reader, &mut payload)? < payload.len() {
        return Ok(FrameRead::Bad(BadFrame::Short));
    }
    if crc32c::crc32c(&payload) != crc {
        return Ok(FrameRead::Bad(BadFrame::Crc));
    }
    let Some((offset, timestamp, key, value)) = payload_layout(&payload) else {
        return Ok(FrameRead::Bad(BadFrame::Layout));
    };
    Ok(FrameRead::Frame((
        offset,
        timestamp,
        payload[key].to_vec(),
        value.map(|v| payload[v].to_vec()),
        (FRAME_HEADER + len as usize - 4) as u64,
    )))
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The valid frames in `tail` (bytes past the last record read in order)
/// of records at or after `next`, as (position in `tail`, offset). A torn
/// tail holds none: what a crash leaves past the last sync is a frame cut
/// short, zeros, or both. Any position may start one, since the damage may
/// have hit a length field; a candidate is checked cheaply (length, offset
/// in reach) before its CRC is computed.
pub(super) fn frames_in(tail: &[u8], next: u64) -> Vec<(usize, u64)> {
    let reach = (tail.len() / (FRAME_HEADER + PAYLOAD_FIXED)) as u64;
    let mut found = Vec::new();
    let mut at = 0;
    while at + FRAME_HEADER + PAYLOAD_FIXED <= tail.len() {
        let frame = &tail[at..];
        let be32 =
            |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        let len = be32(0) as usize;
        let offset = u64::from_be_bytes(
            frame[FRAME_HEADER..FRAME_HEADER + 8]
                .try_into()
                .unwrap_or([0xff; 8]),
        );
        let candidate = plausible_length(len)
            && 4 + len <= frame.len()
            && offset >= next
            && offset - next <= reach;
        if candidate {
            let payload = &frame[FRAME_HEADER..4 + len];
            if crc32c::crc32c(payload) == be32(4) && payload_layout(payload).is_some() {
                found.push((at, offset));
                at += 4 + len;
                continue;
            }
        }
        at += 1;
    }
    found
}
