//! Requests per client: a token bucket per client (the professional's
//! certificate when requests are signed, else the peer's IP address),
//! `rate` tokens a second up to `burst`; a request finding its bucket empty
//! is answered 429 with `Retry-After`. A hop from another instance was
//! counted at the edge and is not counted again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before the full ones (idle clients) are forgotten.
const KEPT_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every client seen.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimit {
    /// `rate` requests a second per client, `burst` at once; `None` when
    /// `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<RateLimit> {
        (rate > 0).then(|| RateLimit {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token of `client`'s bucket at `now`, or says how long until
    /// one is there.
    pub fn take(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= KEPT_BUCKETS && !buckets.contains_key(client) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_its_rate_and_others_their_own() {
        let limit = RateLimit::new(10, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limit.take("a", t0).is_ok());
        }
        let wait = limit.take("a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        // Another client is not held by a's bucket.
        assert!(limit.take("b", t0).is_ok());
        // A tenth of a second later, one more for a; then none.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limit.take("a", t1).is_ok());
        assert!(limit.take("a", t1).is_err());
        // Idle long: never more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limit.take("a", t2).is_ok());
        }
        assert!(limit.take("a", t2).is_err());
        assert!(RateLimit::new(0, 5).is_none());
    }
}
