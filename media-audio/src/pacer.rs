//! Real-time pacing: for hardware-free sources and sinks, and for any loop
//! that must move audio no faster than a sound card would (the client's
//! publish loop sends files and tones in real time with it).

use std::time::{Duration, Instant};

/// Sleeps so that audio moves no faster than real time, the way a sound
/// card's clock would pace it.
///
/// The schedule is absolute (start instant + frames / rate), so sleep
/// overshoot does not accumulate: a late wake-up is made up on the next call.
#[derive(Debug)]
pub struct Pacer {
    rate: u32,
    start: Option<Instant>,
    frames: u64,
}

impl Pacer {
    /// A pacer for audio at `rate` frames (samples per channel) a second;
    /// its clock starts at the first [`advance`](Pacer::advance).
    pub fn new(rate: u32) -> Self {
        Pacer {
            rate,
            start: None,
            frames: 0,
        }
    }

    /// Accounts for `frames` more frames and sleeps until the moment the last
    /// of them is due (a microphone hands over a frame once its last sample
    /// has been captured). The clock starts at the first call.
    pub fn advance(&mut self, frames: usize) {
        let start = *self.start.get_or_insert_with(Instant::now);
        self.frames += frames as u64;
        let due = start + frames_to_duration(self.frames, self.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// `frames` at `rate` Hz as a duration, without float rounding drift.
pub(crate) fn frames_to_duration(frames: u64, rate: u32) -> Duration {
    let rate = u64::from(rate.max(1));
    let secs = frames / rate;
    let rem = frames % rate;
    Duration::from_secs(secs) + Duration::from_nanos(rem * 1_000_000_000 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_real_time() {
        let mut p = Pacer::new(48_000);
        let t0 = Instant::now();
        for _ in 0..5 {
            p.advance(480); // 10 ms each
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn duration_is_exact() {
        assert_eq!(frames_to_duration(48_000, 48_000), Duration::from_secs(1));
        assert_eq!(frames_to_duration(960, 48_000), Duration::from_millis(20));
        assert_eq!(frames_to_duration(441, 44_100), Duration::from_millis(10));
    }
}
