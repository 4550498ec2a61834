//! One latency histogram for every tool: [`Latency`].

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency told apart from larger ones: an hour, in µs. Longer
/// ones are counted as an hour.
const HIGHEST_US: u64 = 3_600_000_000;

/// Latencies in microseconds, from 1 µs to an hour, each kept to three
/// significant figures (an HdrHistogram: exact below 2,048 µs, within 0.1 %
/// above), in constant memory however many are recorded.
///
/// Percentiles are the smallest recorded value (to that precision) with at
/// least that share of the samples at or below it.
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency {
            histogram: Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .expect("1 µs to an hour at 3 significant figures are valid bounds"),
        }
    }

    /// Records one latency of `us` microseconds (above an hour: an hour).
    pub fn record_us(&mut self, us: u64) {
        self.histogram.saturating_record(us);
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: nothing can be out of range.
        let _ = self.histogram.add(&other.histogram);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The `p`-th percentile (`p` from 0 to 100) in milliseconds; 0 when
    /// empty.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        ms(self.histogram.value_at_percentile(p))
    }

    /// The smallest latency in milliseconds; 0 when empty.
    pub fn min_ms(&self) -> f64 {
        ms(self.histogram.min())
    }

    /// The largest latency in milliseconds; 0 when empty.
    pub fn max_ms(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        ms(self.histogram.max())
    }

    /// One line: `min 0.21 ms, p50 0.43 ms, p99 1.20 ms, p99.9 2.02 ms,
    /// max 3.40 ms (1500 samples)`, or `no samples`.
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

/// The [`Latency::summary`] line.
impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no samples");
        }
        write!(
            f,
            "min {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            self.min_ms(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.percentile_ms(99.9),
            self.max_ms(),
            self.count()
        )
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_below_two_milliseconds() {
        let mut l = Latency::new();
        for us in 1..=1000 {
            l.record_us(us);
        }
        assert_eq!(l.count(), 1000);
        assert_eq!(l.percentile_ms(50.0), 0.5);
        assert_eq!(l.percentile_ms(99.0), 0.99);
        assert_eq!(l.percentile_ms(100.0), 1.0);
        assert_eq!(l.min_ms(), 0.001);
        assert_eq!(l.max_ms(), 1.0);
    }

    #[test]
    fn larger_values_within_a_thousandth() {
        for us in [2048, 4095, 4096, 123_456, 9_999_999, HIGHEST_US] {
            let mut l = Latency::new();
            l.record(Duration::from_micros(us));
            let got = l.percentile_ms(50.0) * 1000.0;
            let err = (got - us as f64).abs() / us as f64;
            assert!(err <= 0.001, "{us} µs came back as {got}");
        }
    }

    #[test]
    fn beyond_an_hour_counts_as_an_hour() {
        let mut l = Latency::new();
        l.record(Duration::from_secs(86_400));
        assert_eq!(l.count(), 1);
        assert!((l.max_ms() / 1000.0 - 3600.0).abs() < 3.6);
    }

    #[test]
    fn merge_pools_samples() {
        let (mut a, mut b) = (Latency::new(), Latency::new());
        for us in 1..=500 {
            a.record_us(us);
        }
        for us in 501..=1000 {
            b.record_us(us);
        }
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        assert_eq!(a.percentile_ms(50.0), 0.5);
        assert_eq!(a.max_ms(), 1.0);
    }

    #[test]
    fn empty_reads_as_zero() {
        let l = Latency::default();
        assert!(l.is_empty());
        assert_eq!(l.percentile_ms(99.0), 0.0);
        assert_eq!((l.min_ms(), l.max_ms()), (0.0, 0.0));
        assert_eq!(l.summary(), "no samples");
    }

    #[test]
    fn summary_line() {
        let mut l = Latency::new();
        for us in [1500, 2500] {
            l.record_us(us);
        }
        assert_eq!(
            l.summary(),
            "min 1.50 ms, p50 1.50 ms, p99 2.50 ms, p99.9 2.50 ms, max 2.50 ms (2 samples)"
        );
    }
}
