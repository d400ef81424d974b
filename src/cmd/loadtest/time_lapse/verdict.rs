//! The flatness verdict: over the months after the time-bar window, is a
//! series within ±10 % of its mean, and how steep is it.

use serde::Serialize;

/// How far from its mean a flat series may go, as a share of the mean.
pub const TOLERANCE: f64 = 0.10;

pub const RULE: &str = "over the months after the time-bar window (at least 2), a series is \
     within the band when every monthly value is within ±10 % of the mean of those values \
     (max |x − mean| ≤ 0.10 × mean); its slope is the least-squares line through them, per \
     month and as a share of the mean; it is flat when within the band and its slope over 12 \
     months is at most 10 % of the mean (a short window can hold a growing series inside the \
     band). A stage's bytes on disk are allowed the engine's file slack instead of 10 % when \
     that is larger: for the log store an open and a sealed segment of the smallest size \
     (16 KiB) per tree, by which a store of a few KB swings between merges; none for sled. \
     The overall verdict covers each stage's bytes on disk, content and live keys, all stores' \
     bytes on disk, and the process's peak RSS; the key kinds are reported alone.";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesVerdict {
    pub series: String,
    pub months: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// max |x − mean| / mean, percent.
    pub max_deviation_pct: f64,
    /// How far from the mean the band reaches, percent: 10, or the
    /// series' slack where that is more.
    pub band_pct: f64,
    /// Least-squares slope, units per month.
    pub slope_per_month: f64,
    /// The slope as a share of the mean, percent per month.
    pub slope_pct_per_month: f64,
    /// Every value within ±10 % of the mean (`None` with fewer than 2 months).
    pub within_band: Option<bool>,
    /// Within the band, and the slope over a year within 10 % of the mean.
    pub flat: Option<bool>,
}

/// The verdict on `values` (the months after the window, in order).
pub fn judge(series: &str, values: &[f64]) -> SeriesVerdict {
    judge_with_slack(series, values, 0.0)
}

/// As [`judge`], the band and the year's drift allowed `slack` (in the
/// series' unit) where that is more than 10 % of the mean.
pub fn judge_with_slack(series: &str, values: &[f64], slack: f64) -> SeriesVerdict {
    let n = values.len();
    let mean = if n == 0 {
        0.0
    } else {
        values.iter().sum::<f64>() / n as f64
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let deviation = values.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
    let share = |x: f64| if mean > 0.0 { 100.0 * x / mean } else { 0.0 };
    let slope = slope(values);
    let allowed = (TOLERANCE * mean.abs()).max(slack);
    let within_band = (n >= 2).then_some(deviation <= allowed);
    let steady = (12.0 * slope).abs() <= allowed;
    SeriesVerdict {
        series: series.to_string(),
        months: n,
        mean,
        min: if n == 0 { 0.0 } else { min },
        max: if n == 0 { 0.0 } else { max },
        max_deviation_pct: share(deviation),
        band_pct: if mean > 0.0 {
            100.0 * allowed / mean.abs()
        } else {
            100.0 * TOLERANCE
        },
        slope_per_month: slope,
        slope_pct_per_month: share(slope),
        within_band,
        flat: within_band.map(|band| band && steady),
    }
}

/// Each stage's bytes on disk over the months (`by_stage[i]`, the stage
/// named `stages[i]`), each allowed its engine's file `slack[i]`, then all
/// stores' together: the same verdict for the monthly and the continuous
/// time-lapse.
pub fn files(stages: &[&str], by_stage: &[Vec<f64>], slack: &[f64]) -> Vec<SeriesVerdict> {
    let slack_of = |i: usize| slack.get(i).copied().unwrap_or(0.0);
    let mut out: Vec<SeriesVerdict> = stages
        .iter()
        .zip(by_stage)
        .enumerate()
        .map(|(i, (stage, values))| {
            judge_with_slack(&format!("{stage} disk bytes"), values, slack_of(i))
        })
        .collect();
    let months = by_stage.iter().map(Vec::len).min().unwrap_or(0);
    let total: Vec<f64> = (0..months)
        .map(|m| by_stage.iter().map(|values| values[m]).sum())
        .collect();
    out.push(judge_with_slack(
        "all stores disk bytes",
        &total,
        (0..stages.len()).map(slack_of).sum(),
    ));
    out
}

/// The least-squares slope of `values` against their index.
fn slope(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if values.len() < 2 {
        return 0.0;
    }
    let x_mean = (n - 1.0) / 2.0;
    let y_mean = values.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - x_mean;
        num += dx * (y - y_mean);
        den += dx * dx;
    }
    num / den
}

/// Every series flat: `None` when one cannot be judged.
pub fn overall(verdicts: &[SeriesVerdict]) -> Option<bool> {
    verdicts
        .iter()
        .map(|v| v.flat)
        .try_fold(true, |all, flat| flat.map(|f| all && f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_within_ten_percent_of_its_mean_is_flat() {
        let v = judge("x", &[100.0, 109.0, 91.0, 91.0, 109.0, 100.0]);
        assert_eq!(v.flat, Some(true));
        assert!((v.mean - 100.0).abs() < 1e-9);
        assert!((v.max_deviation_pct - 9.0).abs() < 1e-9);
    }

    #[test]
    fn a_growing_series_is_not_flat_and_has_its_slope() {
        let v = judge("x", &[100.0, 110.0, 120.0, 130.0, 140.0]);
        assert_eq!(v.flat, Some(false));
        assert_eq!(v.within_band, Some(false));
        assert!((v.slope_per_month - 10.0).abs() < 1e-9);
        assert!((v.slope_pct_per_month - 100.0 * 10.0 / 120.0).abs() < 1e-9);
        assert!((v.max_deviation_pct - 100.0 * 20.0 / 120.0).abs() < 1e-9);
    }

    #[test]
    fn a_slow_climb_inside_the_band_is_not_flat() {
        // +1 % a month for 5 months stays within ±10 % but is 12 % a year.
        let v = judge("x", &[100.0, 101.0, 102.0, 103.0, 104.0]);
        assert_eq!(v.within_band, Some(true));
        assert_eq!(v.flat, Some(false));
        let noisy = judge("x", &[100.0, 104.0, 97.0, 103.0, 98.0, 101.0]);
        assert_eq!(noisy.flat, Some(true));
    }

    #[test]
    fn a_small_series_is_allowed_its_slack_and_no_more() {
        // 50 KB swinging by a 16 KiB segment: out of ±10 %, within 32 KiB.
        let files = [40_000.0, 56_000.0, 60_000.0, 44_000.0];
        assert_eq!(judge("x", &files).flat, Some(false));
        assert_eq!(judge_with_slack("x", &files, 32_768.0).flat, Some(true));
        // A large series gains nothing from it.
        let grows = [1e6, 1.1e6, 1.2e6, 1.3e6];
        assert_eq!(judge_with_slack("x", &grows, 32_768.0).flat, Some(false));
    }

    #[test]
    fn one_month_cannot_be_judged() {
        assert_eq!(judge("x", &[5.0]).flat, None);
        assert_eq!(judge("x", &[]).flat, None);
        let flat = judge("a", &[1.0, 1.0]);
        assert_eq!(overall(&[flat.clone(), judge("b", &[1.0])]), None);
        assert_eq!(overall(std::slice::from_ref(&flat)), Some(true));
        assert_eq!(
            overall(&[flat, judge("c", &[1.0, 3.0])]),
            Some(false),
            "one growing series fails the verdict"
        );
    }
}
