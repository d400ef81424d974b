//! Which keys a store may hold: a Bloom filter, so that a read of a key
//! never written is answered in memory instead of walking sled's tree.
//!
//! Nearly every claim asks for keys that were never written: validation's
//! duplicate check for a new FSE id, reimbursement's counters of a new day
//! or year. No cache can answer those, and each cost a sled lookup
//! (docs/performance.md, "Flat out: the per-claim budget"). The filter
//! answers "absent" for certain or "maybe"; a "maybe" goes to sled as
//! before, so it changes where a value is read from, never the value.
//! Deletes leave their keys in it (a "maybe" that sled answers).

/// Bits per key at which the filter is rebuilt twice as large: with
/// [`PROBES`] probes, about 1 % of absent keys answer "maybe" there.
const BITS_PER_KEY: usize = 10;
const PROBES: u32 = 7;
/// The smallest filter, in bits (128 KiB): room for about 100,000 keys.
const MIN_BITS: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct KeyFilter {
    words: Vec<u64>,
    /// `bits - 1`; `bits` is a power of two.
    mask: u64,
    /// Inserts that set a bit: the distinct keys, short of the few that
    /// landed on bits already set. A repeat sets none, so a counter key
    /// rewritten at every claim does not fill it.
    distinct: usize,
}

impl KeyFilter {
    /// A filter with room for `keys` keys (at least [`MIN_BITS`] bits).
    pub fn with_room(keys: usize) -> KeyFilter {
        let bits = keys
            .saturating_mul(2 * BITS_PER_KEY)
            .max(MIN_BITS)
            .next_power_of_two();
        KeyFilter {
            words: vec![0; bits / 64],
            mask: bits as u64 - 1,
            distinct: 0,
        }
    }

    pub fn insert(&mut self, key: &[u8]) {
        let (mut h, step) = hashes(key);
        let mut set_one = false;
        for _ in 0..PROBES {
            let bit = h & self.mask;
            let word = &mut self.words[(bit / 64) as usize];
            set_one |= *word & (1 << (bit % 64)) == 0;
            *word |= 1 << (bit % 64);
            h = h.wrapping_add(step);
        }
        self.distinct += usize::from(set_one);
    }

    /// `false`: the key was never inserted. `true`: it may have been.
    pub fn may_hold(&self, key: &[u8]) -> bool {
        let (mut h, step) = hashes(key);
        for _ in 0..PROBES {
            let bit = h & self.mask;
            if self.words[(bit / 64) as usize] & (1 << (bit % 64)) == 0 {
                return false;
            }
            h = h.wrapping_add(step);
        }
        true
    }

    /// Whether it holds more keys than its size was meant for: its owner
    /// then rebuilds it larger from the keys themselves.
    pub fn is_full(&self) -> bool {
        self.distinct.saturating_mul(BITS_PER_KEY) > self.words.len() * 64
    }

    /// Distinct keys inserted, as counted by [`KeyFilter::insert`].
    pub fn distinct(&self) -> usize {
        self.distinct
    }

    /// Bytes it takes in memory.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// Two independent-enough 64-bit hashes of `key` (double hashing: probe
/// `i` is `h1 + i·h2`). A multiply-rotate over 8-byte words with a final
/// mix: fast on the short keys of the stores; not keyed, since a crafted
/// key can only make a lookup go to sled.
fn hashes(key: &[u8]) -> (u64, u64) {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let h1 = mix(h);
    let h2 = mix(h1 ^ K) | 1;
    (h1, h2)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn few_absent_keys_answer_maybe_at_its_intended_size() {
        let mut filter = KeyFilter::with_room(0);
        let room = filter.words.len() * 64 / BITS_PER_KEY;
        let mut inserted = 0;
        while !filter.is_full() {
            filter.insert(format!("dup/key{inserted}/12345678-{inserted:09}").as_bytes());
            inserted += 1;
        }
        // Full once its room is taken: a key whose bits were all set
        // already (about 1 % near the end) is not counted.
        assert!(
            inserted > room && inserted < room + room / 50,
            "{inserted} keys for a room of {room}"
        );
        let maybe = (0..100_000)
            .filter(|n| filter.may_hold(format!("dup/other{n}/87654321-{n:09}").as_bytes()))
            .count();
        // About 1 % at 10 bits per key and 7 probes.
        assert!(maybe < 2_000, "{maybe} false positives in 100,000");
    }

    #[test]
    fn a_key_inserted_again_does_not_fill_it() {
        let mut filter = KeyFilter::with_room(0);
        let room = filter.words.len() * 64 / BITS_PER_KEY;
        for round in 0..(2 * room / 1000 + 1) {
            for n in 0..1000 {
                filter.insert(format!("amt/day/{n:06}").as_bytes());
            }
            assert_eq!(filter.distinct(), 1000, "round {round}");
        }
        assert!(!filter.is_full());
    }

    proptest! {
        /// Never "absent" for a key inserted.
        #[test]
        fn every_inserted_key_may_be_held(
            keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 1..300),
        ) {
            let mut filter = KeyFilter::with_room(keys.len());
            for key in &keys {
                filter.insert(key);
            }
            for key in &keys {
                prop_assert!(filter.may_hold(key));
            }
        }
    }
}
