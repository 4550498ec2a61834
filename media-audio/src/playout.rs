//! When a play loop pulls its next frame: one frame period after the last
//! pull, moved towards the moment the jitter buffers say their next packet
//! will have arrived.
//!
//! A loop on a free-running 20 ms tick pulls at some phase that has nothing
//! to do with when packets arrive, so each packet waits between 0 and 20 ms
//! for the tick on top of what the jitter buffer holds it for. A loop that
//! asks [`PlayoutClock::next_pull`] instead pulls shortly after the packet
//! typically lands ([`JitterBuffer::due`]) and so adds only the measured
//! jitter and a little headroom.
//!
//! The schedule stays a steady frame period and moves by at most a quarter
//! frame per pull, either way: later when a packet is expected later,
//! earlier when the buffers hold more than they need (after a burst, or once
//! a jitter spike has left the buffer's window: the buffer decides how
//! slowly its target shrinks, the clock only how fast surplus is played
//! out). A file or null sink then simply gets its frames a little earlier;
//! a device's queue absorbs the difference. While nothing is playing the
//! schedule may jump, since there is only silence to move. Following the
//! buffers also locks the loop to the sender's clock, so drift needs no
//! dropped or inserted frames.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lanlink_audio::{FrameDuration, JitterBuffer, JitterConfig, PlayoutClock, Playout};
//!
//! let t0 = Instant::now();
//! let mut jitter = JitterBuffer::new(JitterConfig::default());
//! let mut clock = PlayoutClock::new(FrameDuration::Ms20, t0);
//! // Packets land 7 ms into each 20 ms period; the loop's tick starts at 0.
//! let mut waits = Vec::new();
//! let mut seq = 0u32;
//! for _ in 0..200 {
//!     let pull = clock.next_pull();
//!     // Everything that arrived by the pull.
//!     while t0 + Duration::from_millis(7 + 20 * u64::from(seq)) <= pull {
//!         let arrived = t0 + Duration::from_millis(7 + 20 * u64::from(seq));
//!         jitter.push(seq, u64::from(seq) * 20_000, vec![0u8; 4].into(), arrived);
//!         seq += 1;
//!     }
//!     if let Playout::Packet { seq: played, .. } = jitter.pop(pull) {
//!         let arrived = t0 + Duration::from_millis(7 + 20 * u64::from(played));
//!         waits.push(pull - arrived);
//!     }
//!     clock.follow([&jitter]);
//! }
//! // After the first second, each packet waits about the 2 ms headroom.
//! assert!(waits[50..].iter().all(|w| *w < Duration::from_millis(3)));
//! ```

use std::time::{Duration, Instant};

use crate::{FrameDuration, JitterBuffer};

/// A play loop's schedule of pulls; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PlayoutClock {
    frame: Duration,
    next: Instant,
}

impl PlayoutClock {
    /// A schedule of one pull per `frame`, the first at `start`.
    pub fn new(frame: FrameDuration, start: Instant) -> Self {
        PlayoutClock {
            frame: frame.duration(),
            next: start,
        }
    }

    /// When to pull the next frame. Until then, take in packets as they
    /// arrive (stamped with their arrival time).
    pub fn next_pull(&self) -> Instant {
        self.next
    }

    /// Schedules the pull after the one just made, following `buffers`
    /// (the jitter buffers that were just popped): towards the latest
    /// [`due`](JitterBuffer::due) of those that are playing, so that none of
    /// them runs dry, or the earliest of those about to start when none is.
    ///
    /// With several streams the schedule settles on the arrival phase of
    /// one of them; the others then wait up to a frame longer in their
    /// buffers (which each adapt on their own). A stream that stalls does
    /// not drag the schedule: its next frame is overdue, not late.
    pub fn follow<'a>(&mut self, buffers: impl IntoIterator<Item = &'a JitterBuffer>) {
        let (mut playing, mut starting) = (None::<Instant>, None::<Instant>);
        for b in buffers {
            match (b.due(), b.is_playing()) {
                (Some(due), true) => playing = Some(playing.map_or(due, |d| d.max(due))),
                (Some(due), false) => starting = Some(starting.map_or(due, |d| d.min(due))),
                (None, _) => {}
            }
        }
        self.schedule(playing.or(starting), playing.is_some());
    }

    /// Schedules the pull after the one just made: a frame after it, moved
    /// towards `due` (when the next frame is wanted), by small steps while
    /// `playing`, straight there (within a frame) otherwise.
    pub fn schedule(&mut self, due: Option<Instant>, playing: bool) {
        let regular = self.next + self.frame;
        self.next = match due {
            None => regular,
            // Only silence so far: start the schedule where it should be.
            Some(due) if !playing => due.clamp(self.next, regular),
            Some(due) if due >= regular => regular + (due - regular).min(self.frame / 4),
            Some(due) => regular - (regular - due).min(self.frame / 4),
        };
    }
}
