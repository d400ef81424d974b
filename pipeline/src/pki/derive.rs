//! Deterministic derivation of key material from a 32-byte seed: the byte
//! stream (a SHA-256 counter construction), the RSA prime search and private
//! exponent, and the ECDSA P-256 secret scalar.
//!
//! This file owns the promise "same seed, same key, same bytes, forever": it
//! depends on no crate's random-number or prime-generation internals, only on
//! SHA-256 and on plain big-integer arithmetic, so a dependency upgrade cannot
//! change a derived key. The golden vectors in `keys.rs` pin the result; the
//! algorithm is written out in `docs/signatures.md`.

use p256::NonZeroScalar;
use p256::elliptic_curve::PrimeField;
use rsa::BigUint;
use sha2::{Digest, Sha256};

/// Domain separation of the stream; change it (never the code below it) to
/// define a new derivation version.
const DOMAIN: &[u8] = b"clearing/pki/keygen/v1";

/// The RSA public exponent.
pub(crate) const RSA_E: u32 = 65_537;

/// Miller–Rabin rounds for a candidate that passed trial division. The
/// candidates are pseudo-random, not adversarial: the average-case error for
/// 1024-bit candidates is far below 2^-100 after a handful of rounds.
const MR_ROUNDS: usize = 16;

/// Odd primes below this bound are used for trial division.
const SIEVE_BOUND: u32 = 2_000;

/// The derivation's byte stream: block `i` is
/// `SHA-256(DOMAIN || 0x00 || label || 0x00 || seed || i as u64 big-endian)`,
/// and the stream is blocks 0, 1, 2, ... concatenated, served in order.
pub(crate) struct Stream {
    label: &'static [u8],
    seed: [u8; 32],
    counter: u64,
    buffer: [u8; 32],
    used: usize,
}

impl Stream {
    pub(crate) fn new(label: &'static [u8], seed: [u8; 32]) -> Stream {
        Stream {
            label,
            seed,
            counter: 0,
            buffer: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update([0u8]);
        h.update(self.label);
        h.update([0u8]);
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        self.buffer = h.finalize().into();
        self.counter += 1;
        self.used = 0;
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for byte in out.iter_mut() {
            if self.used == self.buffer.len() {
                self.refill();
            }
            *byte = self.buffer[self.used];
            self.used += 1;
        }
    }
}

/// The ECDSA P-256 secret scalar: the first 32-byte chunk of the stream
/// (label `ecdsa-p256`) that, read big-endian, lies in [1, n-1].
pub(crate) fn p256_scalar(seed: [u8; 32]) -> NonZeroScalar {
    let mut stream = Stream::new(b"ecdsa-p256", seed);
    loop {
        let mut bytes = [0u8; 32];
        stream.fill(&mut bytes);
        let scalar = Option::<p256::Scalar>::from(p256::Scalar::from_repr(bytes.into()));
        if let Some(nz) = scalar.and_then(|s| Option::<NonZeroScalar>::from(NonZeroScalar::new(s)))
        {
            return nz;
        }
    }
}

/// The two primes and private exponent of a derived RSA key, `p > q`.
pub(crate) struct RsaParts {
    pub(crate) n: BigUint,
    pub(crate) e: BigUint,
    pub(crate) d: BigUint,
    pub(crate) p: BigUint,
    pub(crate) q: BigUint,
}

/// An RSA key of `bits` bits (a multiple of 16, at least 512) from the
/// stream labelled `rsa-<bits>`: p, then q, each the first candidate that
/// passes [`is_probable_prime`] with `candidate mod e != 1`; q is drawn again
/// while |p - q| <= 2^(bits/2 - 100) or d <= 2^(bits/2) (FIPS 186-5 A.1.3
/// and B.3.1 conditions, astronomically rare).
pub(crate) fn rsa_parts(seed: [u8; 32], bits: usize) -> RsaParts {
    debug_assert!(bits >= 512 && bits.trailing_zeros() >= 4);
    let label: &'static [u8] = match bits {
        2048 => b"rsa-2048",
        1024 => b"rsa-1024",
        _ => b"rsa-other",
    };
    let mut stream = Stream::new(label, seed);
    let half = bits / 2;
    let small = small_primes();
    let e = BigUint::from(RSA_E);
    let one = BigUint::from(1u32);
    let p = random_prime(&mut stream, half, &small);
    loop {
        let q = random_prime(&mut stream, half, &small);
        let (p, q) = if p > q {
            (p.clone(), q)
        } else {
            (q, p.clone())
        };
        let diff = &p - &q;
        if diff.bits() <= half - 100 {
            continue;
        }
        let p1 = &p - &one;
        let q1 = &q - &one;
        let lambda = (&p1 * &q1) / gcd(p1, q1);
        let d = private_exponent(&lambda);
        if d.bits() <= half {
            continue;
        }
        let n = &p * &q;
        return RsaParts { n, e, d, p, q };
    }
}

/// d = e^-1 mod lambda, the least positive one. With e prime and
/// L = lambda mod e != 0: k = -L^-1 mod e, then d = (1 + k·lambda) / e.
fn private_exponent(lambda: &BigUint) -> BigUint {
    let e = u64::from(RSA_E);
    let l = mod_small(&lambda.to_bytes_be(), RSA_E);
    // e is prime: the inverse is l^(e-2) mod e. l != 0 because no prime
    // was kept with p = 1 mod e.
    let inv = pow_mod_u64(u64::from(l), e - 2, e);
    let k = (e - inv) % e;
    (BigUint::from(1u32) + lambda * BigUint::from(k)) / BigUint::from(RSA_E)
}

fn pow_mod_u64(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut acc = 1u64;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * base % m;
        }
        base = base * base % m;
        exp >>= 1;
    }
    acc
}

fn gcd(mut a: BigUint, mut b: BigUint) -> BigUint {
    let zero = BigUint::from(0u32);
    while b != zero {
        let r = &a % &b;
        a = b;
        b = r;
    }
    a
}

/// `bytes` (big-endian) mod `m`.
fn mod_small(bytes: &[u8], m: u32) -> u32 {
    let m = u64::from(m);
    let mut r = 0u64;
    for &b in bytes {
        r = ((r << 8) | u64::from(b)) % m;
    }
    // r < m <= u32::MAX
    r as u32
}

/// The odd primes below [`SIEVE_BOUND`], ascending.
fn small_primes() -> Vec<u32> {
    let bound = SIEVE_BOUND as usize;
    let mut composite = vec![false; bound];
    let mut primes = Vec::new();
    for i in 2..bound {
        if !composite[i] {
            if i > 2 {
                primes.push(i as u32);
            }
            let mut j = i * i;
            while j < bound {
                composite[j] = true;
                j += i;
            }
        }
    }
    primes
}

/// Draws `bits/8` bytes per candidate, sets the two top bits (so a product of
/// two such primes has exactly `2·bits` bits) and the low bit, and keeps the
/// first candidate that survives trial division, `c mod e != 1` and
/// Miller–Rabin.
fn random_prime(stream: &mut Stream, bits: usize, small: &[u32]) -> BigUint {
    let len = bits / 8;
    let mut bytes = vec![0u8; len];
    loop {
        stream.fill(&mut bytes);
        bytes[0] |= 0xC0;
        bytes[len - 1] |= 1;
        if small.iter().any(|&sp| mod_small(&bytes, sp) == 0) {
            continue;
        }
        if mod_small(&bytes, RSA_E) == 1 {
            continue;
        }
        let candidate = BigUint::from_bytes_be(&bytes);
        if is_probable_prime(&candidate, stream) {
            return candidate;
        }
    }
}

/// Miller–Rabin with [`MR_ROUNDS`] bases, each `2 + (x mod (c - 3))` for
/// `x` read big-endian from `len(c) + 8` stream bytes. `c` is odd and > 3.
fn is_probable_prime(c: &BigUint, stream: &mut Stream) -> bool {
    let one = BigUint::from(1u32);
    let two = BigUint::from(2u32);
    let c1 = c - &one;
    let mut s = 0usize;
    let mut r = c1.clone();
    let zero = BigUint::from(0u32);
    while &r % &two == zero {
        r >>= 1;
        s += 1;
    }
    let range = c - BigUint::from(3u32);
    let mut buf = vec![0u8; c.bits().div_ceil(8) + 8];
    'rounds: for _ in 0..MR_ROUNDS {
        stream.fill(&mut buf);
        let a = BigUint::from_bytes_be(&buf) % &range + &two;
        let mut x = a.modpow(&r, c);
        if x == one || x == c1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, c);
            if x == c1 {
                continue 'rounds;
            }
            if x == one {
                return false;
            }
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_the_documented_sha256_counter_construction() {
        let seed = [7u8; 32];
        let mut s = Stream::new(b"test", seed);
        let mut got = [0u8; 40];
        s.fill(&mut got[..10]);
        s.fill(&mut got[10..]);
        let block = |i: u64| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(b"clearing/pki/keygen/v1\0test\0");
            h.update(seed);
            h.update(i.to_be_bytes());
            h.finalize().into()
        };
        assert_eq!(&got[..32], &block(0));
        assert_eq!(&got[32..], &block(1)[..8]);
    }

    #[test]
    fn miller_rabin_agrees_with_the_sieve_on_small_odd_numbers() {
        let small = small_primes();
        let mut stream = Stream::new(b"test", [1; 32]);
        for n in (5u32..2_000).step_by(2) {
            let prime = small.contains(&n);
            assert_eq!(
                is_probable_prime(&BigUint::from(n), &mut stream),
                prime,
                "{n}"
            );
        }
        // Carmichael numbers fool Fermat, not Miller–Rabin.
        for n in [561u32, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 825_265] {
            assert!(!is_probable_prime(&BigUint::from(n), &mut stream), "{n}");
        }
    }

    #[test]
    fn private_exponent_inverts_e() {
        let parts = rsa_parts([3; 32], 512);
        let one = BigUint::from(1u32);
        let p1 = &parts.p - &one;
        let q1 = &parts.q - &one;
        let lambda = (&p1 * &q1) / gcd(p1, q1);
        assert_eq!((&parts.d * &parts.e) % &lambda, one);
        assert!(parts.d < lambda);
        assert_eq!(parts.n.bits(), 512);
        assert!(parts.p > parts.q);
    }

    #[test]
    fn p256_scalar_is_stable() {
        assert_eq!(
            p256_scalar([9; 32]).to_repr(),
            p256_scalar([9; 32]).to_repr()
        );
        assert_ne!(
            p256_scalar([9; 32]).to_repr(),
            p256_scalar([10; 32]).to_repr()
        );
    }
}
