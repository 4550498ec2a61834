//! [`TokenBucket`]: a per-client rate limit driven by the caller's clock.

use std::time::Instant;

/// Allows bursts of up to `burst` messages, refilled at `per_second` tokens a
/// second. It starts full, so a newcomer can say a few things at once.
///
/// Time only comes in through [`TokenBucket::try_take`]; an instant earlier
/// than the last one seen counts as no time passing.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `per_second` that is zero, negative or NaN means no
    /// refill: the client gets its burst and nothing more. An infinite one
    /// means no limit (as long as `burst` is at least 1).
    pub(crate) fn new(burst: u32, per_second: f64, now: Instant) -> TokenBucket {
        let per_second = if per_second > 0.0 { per_second } else { 0.0 };
        TokenBucket {
            burst: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token, or says in how many milliseconds one will be there.
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        // With an infinite rate, 0 s × ∞ is NaN, and `min` then picks the
        // burst: a full bucket, which is what an unlimited rate means.
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // Float-to-int `as` saturates (and maps NaN to 0), so a zero
            // refill rate gives u64::MAX rather than a panic.
            let wait_ms = ((1.0 - self.tokens) / self.per_second * 1000.0).ceil();
            Err(wait_ms as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill_then_cap() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 2.0, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        assert_eq!(b.try_take(t0), Err(500));
        // Half a second buys one token at 2 per second.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.try_take(t1), Ok(()));
        assert_eq!(b.try_take(t1), Err(500));
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.try_take(t2), Ok(()));
        }
        assert!(b.try_take(t2).is_err());
    }

    #[test]
    fn partial_refill_reports_remaining_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, 1.0, t0);
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0 + Duration::from_millis(250)), Err(750));
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1, 1.0, t0);
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0 - Duration::from_secs(5)), Err(1000));
        assert_eq!(b.try_take(t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn degenerate_rates_do_not_panic() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN] {
            let mut b = TokenBucket::new(1, rate, t0);
            assert_eq!(b.try_take(t0), Ok(()));
            assert_eq!(b.try_take(t0 + Duration::from_secs(3600)), Err(u64::MAX));
        }
        let mut unlimited = TokenBucket::new(1, f64::INFINITY, t0);
        for _ in 0..100 {
            assert_eq!(unlimited.try_take(t0), Ok(()));
        }
        let mut none = TokenBucket::new(0, 1.0, t0);
        assert_eq!(none.try_take(t0), Err(1000));
    }
}
