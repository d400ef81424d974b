//! Deterministic expiry of a partition's state, on the insurer's clock.
//!
//! A stage that writes a key it need not keep for ever schedules its
//! deletion for a date ([`expire_on`]); every input moves the partition's
//! clock to its own insurer date ([`advance`]), and the days the clock passes
//! delete what was scheduled on them. The clock is driven by the dates in the
//! stream, never the wall clock, so a replay of the same inputs deletes the
//! same keys at the same input, and each deletion is a write of the batch
//! like any other (a tombstone on the changelog).
//!
//! State (its keys start with STX, which no stage key starts with):
//! - `\x02exp/next`: the first day not yet swept (absent before the first
//!   input); the clock never goes back, so a late input sweeps nothing;
//! - `\x02exc/<date>`: how many keys are scheduled on that day, and
//!   `\x02exc/<date>/<c>` the chunks holding them, [`CHUNK_KEYS`] to a chunk
//!   in the order scheduled, each key as a 4-byte big-endian length and its
//!   bytes. Scheduling gets and puts the day's count and last chunk (O(1)
//!   whatever the day's size, and no scan: the pure core only gets and puts),
//!   and writes a new sled key only once per chunk: the rest are rewrites of
//!   the last chunk, which the mirror coalesces (state/mirror.rs).
//! - Stores written before 2026-12-07 also hold the one-key-per-entry layout
//!   it replaced: `\x02exp/<date>` counts and `\x02exp/<date>/<i>` entries,
//!   in their stores and changelogs. Nothing is scheduled there any more;
//!   [`advance`] sweeps it under the same clock, after the day's chunks.
//!
//! Within a day keys go from the last scheduled back (the chunks' newest
//! first, then the older layout's, which was scheduled before them): the
//! order, and so the keys each input deletes, is the one-key-per-entry
//! layout's.

use chrono::NaiveDate;

use super::{StateTxn, StoreError};

const NEXT: &[u8] = b"\x02exp/next";

/// Keys to a chunk. Scheduling N keys on a day inserts about N/16 new sled
/// keys instead of N (an insert rewrites a sled leaf, about ten times the
/// cost of an overwrite). The last chunk is rewritten whole by every
/// scheduling, and a batch's changelog carries it once per batch: at 100×
/// the mean, batches of about 8 claims, chunks of 32 keys (about 2 KB of
/// duplicate keys) made validation's changelog about twice its bytes with
/// one entry per key, chunks of 16 about 1.55 times, for the same CPU per
/// claim flat out (docs/performance.md, "Kept, and what each gave"). And
/// [`KEYS_PER_INPUT`] is four chunks, so a sweep mostly deletes whole chunks.
pub const CHUNK_KEYS: i64 = 16;

/// Bytes of the length before each key in a chunk.
const LEN_BYTES: usize = 4;

fn day_key(day: NaiveDate) -> Vec<u8> {
    format!("\x02exc/{day}").into_bytes()
}

fn chunk_key(day: NaiveDate, chunk: i64) -> Vec<u8> {
    format!("\x02exc/{day}/{chunk:010}").into_bytes()
}

/// The layout before 2026-12-07: one index entry per key.
fn old_day_key(day: NaiveDate) -> Vec<u8> {
    format!("\x02exp/{day}").into_bytes()
}

fn old_item_key(day: NaiveDate, index: i64) -> Vec<u8> {
    format!("\x02exp/{day}/{index:010}").into_bytes()
}

fn corrupt(key: &[u8], what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        what: what.to_string(),
    }
}

fn next_day(state: &StateTxn<'_>) -> Result<Option<NaiveDate>, StoreError> {
    match state.get(NEXT)? {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or_else(|| corrupt(NEXT, "not a date")),
    }
}

/// A day's count of keys still scheduled; a negative one is corrupt.
fn count(state: &StateTxn<'_>, key: &[u8]) -> Result<i64, StoreError> {
    let n = state.get_i64(key)?;
    if n < 0 {
        return Err(corrupt(key, format!("a count of {n}")));
    }
    Ok(n)
}

/// Appends `key` to the bytes of the chunk under `chunk_key` (named in the
/// error, not the key: a stage key can hold a beneficiary's number).
fn push_entry(chunk_key: &[u8], chunk: &mut Vec<u8>, key: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(key.len()).map_err(|_| {
        corrupt(
            chunk_key,
            format!("a key of {} bytes, too long to index", key.len()),
        )
    })?;
    chunk.extend_from_slice(&len.to_be_bytes());
    chunk.extend_from_slice(key);
    Ok(())
}

/// A chunk's keys in the order scheduled, each with the offset its entry
/// starts at (where the chunk is cut to drop it and the keys after it).
fn entries<'v>(chunk_key: &[u8], chunk: &'v [u8]) -> Result<Vec<(usize, &'v [u8])>, StoreError> {
    let mut keys = Vec::new();
    let mut at = 0;
    while at < chunk.len() {
        let len = chunk
            .get(at..at + LEN_BYTES)
            .and_then(|bytes| <[u8; LEN_BYTES]>::try_from(bytes).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt(chunk_key, format!("a length cut short at byte {at}")))?;
        let start = at + LEN_BYTES;
        let key = usize::try_from(len)
            .ok()
            .and_then(|len| chunk.get(start..start.checked_add(len)?))
            .ok_or_else(|| {
                corrupt(
                    chunk_key,
                    format!("a key of {len} bytes at byte {at} past the chunk's end"),
                )
            })?;
        keys.push((at, key));
        at = start + key.len();
    }
    Ok(keys)
}

/// Schedules the deletion of `key` on `on`. Call it when the key is created
/// (a key is scheduled once: its date is a function of the key itself). A
/// date the clock has already passed is swept by the next input.
pub fn expire_on(state: &mut StateTxn<'_>, key: &[u8], on: NaiveDate) -> Result<(), StoreError> {
    let day = match next_day(state)? {
        Some(next) => on.max(next),
        None => on,
    };
    let count_key = day_key(day);
    let n = count(state, &count_key)?;
    let chunk_key = chunk_key(day, n / CHUNK_KEYS);
    let mut chunk = if n % CHUNK_KEYS == 0 {
        Vec::new()
    } else {
        state
            .get(&chunk_key)?
            .ok_or_else(|| corrupt(&chunk_key, "hole in the expiry index"))?
    };
    push_entry(&chunk_key, &mut chunk, key)?;
    state.put(chunk_key, chunk);
    state.put_i64(count_key, n + 1);
    Ok(())
}

/// What one move of the clock deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Days swept to the end.
    pub days: u32,
    pub keys: u64,
}

/// Most keys one input deletes. A day can hold a whole quarter's keys (the
/// time-bar runs from the quarter after the care): deleted at once, they
/// would make one batch, and its changelog, as large as a quarter of the
/// store. A bounded share per input spreads them over the inputs that
/// follow. Deleting a key later than its day never changes a decision: no
/// claim that could read it is in time any more.
pub const KEYS_PER_INPUT: u64 = 64;

/// Moves the partition's clock to `today`: keys scheduled on a day up to
/// `today` are deleted with their index entries, at most `budget` of them,
/// the rest by the next inputs. A `today` before the day the clock is at
/// deletes nothing.
pub fn advance(
    state: &mut StateTxn<'_>,
    today: NaiveDate,
    budget: u64,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    let Some(mut day) = next_day(state)? else {
        // The first input: nothing can be scheduled before it but what it
        // schedules itself, on or after today.
        put_next(state, today)?;
        return Ok(swept);
    };
    let start = day;
    while day <= today && swept.keys < budget {
        // The chunks hold the day's later schedulings: they go first.
        if !sweep_chunks(state, day, budget, &mut swept)?
            || !sweep_old_entries(state, day, budget, &mut swept)?
        {
            break;
        }
        swept.days += 1;
        day = day
            .succ_opt()
            .ok_or_else(|| corrupt(NEXT, "the clock left the calendar"))?;
    }
    if day != start {
        state.put(NEXT.to_vec(), day.to_string().into_bytes());
    }
    Ok(swept)
}

/// Deletes the keys of `day`'s chunks, from the last scheduled, while the
/// budget lasts; true once none is left.
fn sweep_chunks(
    state: &mut StateTxn<'_>,
    day: NaiveDate,
    budget: u64,
    swept: &mut Swept,
) -> Result<bool, StoreError> {
    let count_key = day_key(day);
    let held_before = count(state, &count_key)?;
    let mut left = held_before;
    while left > 0 && swept.keys < budget {
        let last = (left - 1) / CHUNK_KEYS;
        let chunk_key = chunk_key(day, last);
        let chunk = state
            .get(&chunk_key)?
            .ok_or_else(|| corrupt(&chunk_key, "hole in the expiry index"))?;
        let keys = entries(&chunk_key, &chunk)?;
        // The count says how many of the chunk's keys are left: a partly
        // swept chunk was cut to them.
        let held = left - last * CHUNK_KEYS;
        if i64::try_from(keys.len()).ok() != Some(held) {
            return Err(corrupt(
                &chunk_key,
                format!("{} keys where the count leaves {held}", keys.len()),
            ));
        }
        let room = usize::try_from(budget - swept.keys).unwrap_or(usize::MAX);
        let keep = keys.len().saturating_sub(room);
        for (_, key) in keys[keep..].iter().rev() {
            state.delete(key.to_vec());
        }
        let deleted = keys.len() - keep;
        swept.keys += deleted as u64;
        left -= deleted as i64;
        match keys.get(keep) {
            Some(&(cut, _)) if keep > 0 => state.put(chunk_key, chunk[..cut].to_vec()),
            _ => state.delete(chunk_key),
        }
    }
    finish_day(state, count_key, held_before, left)
}

/// Deletes the keys of `day` in the layout before 2026-12-07, from the last
/// scheduled, while the budget lasts; true once none is left.
fn sweep_old_entries(
    state: &mut StateTxn<'_>,
    day: NaiveDate,
    budget: u64,
    swept: &mut Swept,
) -> Result<bool, StoreError> {
    let count_key = old_day_key(day);
    // The count is what is left to delete.
    let held_before = count(state, &count_key)?;
    let mut left = held_before;
    while left > 0 && swept.keys < budget {
        let item = old_item_key(day, left - 1);
        let key = state
            .get(&item)?
            .ok_or_else(|| corrupt(&item, "hole in the expiry index"))?;
        state.delete(key);
        state.delete(item);
        left -= 1;
        swept.keys += 1;
    }
    finish_day(state, count_key, held_before, left)
}

/// Records what is left of a day's count (`held` before the sweep), or drops
/// it once nothing is; true then.
fn finish_day(
    state: &mut StateTxn<'_>,
    count_key: Vec<u8>,
    held: i64,
    left: i64,
) -> Result<bool, StoreError> {
    if left > 0 {
        if left != held {
            state.put_i64(count_key, left);
        }
        return Ok(false);
    }
    if state.get(&count_key)?.is_some() {
        state.delete(count_key);
    }
    Ok(true)
}

fn put_next(state: &mut StateTxn<'_>, today: NaiveDate) -> Result<(), StoreError> {
    let next = today
        .succ_opt()
        .ok_or_else(|| corrupt(NEXT, "the clock left the calendar"))?;
    state.put(NEXT.to_vec(), next.to_string().into_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
