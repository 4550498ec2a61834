//! [`Backoff`]: how long to wait before trying again.

use std::time::Duration;

/// Delays that double from `first` up to `max`: for reconnecting to a
/// server that went away (1 s, 2 s, 4 s … 30 s by default), or for sending
/// again what the server refused as too fast.
///
/// ```
/// use std::time::Duration;
/// use lanlink_client::Backoff;
///
/// let delays: Vec<u64> = Backoff::default().take(7).map(|d| d.as_secs()).collect();
/// assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// Starts at `first` and never waits longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            next: first.min(max),
            max,
            attempts: 0,
        }
    }

    /// How many delays were handed out since the start (or the last
    /// [`reset`](Backoff::reset)): the number of the attempt that follows
    /// the last delay.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over from the first delay (after a success).
    pub fn reset(&mut self) {
        *self = Backoff::new(self.first, self.max);
    }
}

impl Default for Backoff {
    /// 1 s, doubling, at most 30 s.
    fn default() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// The next delay; never ends.
    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let ms: Vec<u128> = b.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 1000, 1000]);
        assert_eq!(b.attempts(), 5);
        b.reset();
        assert_eq!(
            (b.attempts(), b.next()),
            (0, Some(Duration::from_millis(250)))
        );
        // A first delay above the cap is capped too.
        let mut odd = Backoff::new(Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(odd.next(), Some(Duration::from_secs(30)));
    }
}
