//! What the feeder is asked to send, from the flags.

use std::time::Duration;

use anyhow::{Result, bail};

use super::LoadtestArgs;

/// Corpus size of a flat-out run bounded by duration only.
const FLAT_OUT_CORPUS: u64 = 100_000;

pub struct Plan {
    pub claims: Option<u64>,
    pub duration: Option<Duration>,
    /// Claims/s; 0 = flat out.
    pub rate: f64,
    /// Claims the corpus should hold: past them, claims are sent again.
    pub needed: u64,
}

impl Plan {
    pub fn new(args: &LoadtestArgs) -> Result<Plan> {
        if args.rate < 0.0 || !args.rate.is_finite() {
            bail!("--rate must be 0 (flat out) or a positive number of claims/s");
        }
        if args.claims.is_some() && args.duration.is_some() {
            bail!("give --claims or --duration, not both");
        }
        let claims = match (args.claims, args.duration) {
            (Some(n), _) => Some(n),
            (None, None) => Some(20_000),
            (None, Some(_)) => None,
        };
        let needed = match (claims, args.duration) {
            (Some(n), _) => n,
            (None, Some(d)) if args.rate > 0.0 => (d * args.rate).ceil() as u64,
            _ => FLAT_OUT_CORPUS,
        }
        .max(1);
        Ok(Plan {
            claims,
            duration: args.duration.map(Duration::from_secs_f64),
            rate: args.rate,
            needed,
        })
    }

    /// The outcomes the progress bar counts towards.
    pub fn expected(&self) -> u64 {
        self.claims.unwrap_or(self.needed)
    }

    /// The start of a run left out of the steady-state latency: a tenth of
    /// its planned length, between 1 and 10 s. The stages have just opened
    /// their stores, and each partition's first batch applies the reference
    /// data published before the run (entitlement: every beneficiary's
    /// rights), which a pipeline that runs all day does as the data comes.
    pub fn warm_up(&self) -> Duration {
        let planned = match (self.duration, self.claims) {
            (Some(d), _) => d.as_secs_f64(),
            (None, Some(n)) if self.rate > 0.0 => n as f64 / self.rate,
            _ => 0.0,
        };
        Duration::from_secs_f64((planned / 10.0).clamp(1.0, 10.0))
    }
}
