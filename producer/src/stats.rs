//! Latency percentiles for the reports of `send` (ack latency) and `tail` (end-to-end latency).

use serde::Serialize;

/// Latency samples in milliseconds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    samples_ms: Vec<f64>,
}

/// p50, p99 and max of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Latencies {
    /// Adds one sample.
    pub(crate) fn record(&mut self, ms: f64) {
        self.samples_ms.push(ms);
    }

    /// The summary, or `None` without samples.
    pub(crate) fn summary(&self) -> Option<LatencySummary> {
        let mut sorted = self.samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        Some(LatencySummary {
            p50: percentile(&sorted, 50.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// Nearest-rank percentile of ascending `sorted`: the smallest sample with at least `p` % of the
/// samples at or below it. `None` when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )] // rank is in 1..=len, and len is far below 2^52
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Records per second over `elapsed_s`, 0 when nothing was timed.
pub(crate) fn per_second(count: u64, elapsed_s: f64) -> f64 {
    if elapsed_s > 0.0 {
        #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
        let count = count as f64;
        count / elapsed_s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
    }

    #[test]
    fn small_sets_round_up_to_a_real_sample() {
        // n = 3: p50 -> rank ceil(1.5) = 2; p99 -> rank ceil(2.97) = 3.
        assert_eq!(percentile(&[1.0, 2.0, 10.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 10.0], 99.0), Some(10.0));
        assert_eq!(percentile(&[4.0], 99.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_sorts_unordered_samples() {
        let mut l = Latencies::default();
        assert_eq!(l.summary(), None);
        for ms in [9.0, 1.0, 5.0, 3.0, 7.0] {
            l.record(ms);
        }
        assert_eq!(
            l.summary(),
            Some(LatencySummary {
                p50: 5.0,
                p99: 9.0,
                max: 9.0
            })
        );
    }

    #[test]
    fn rate_over_zero_time_is_zero() {
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(per_second(10, 2.0), 5.0);
    }
}
