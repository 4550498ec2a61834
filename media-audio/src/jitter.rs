//! A sans-IO jitter buffer: packets in as they arrive, one playout decision
//! out per frame period. No clock and no threads inside; time is a
//! parameter, so tests can simulate an hour in milliseconds.
//!
//! # How it plays
//!
//! * Packets are held in a window indexed by sequence number (wrapping
//!   `u32` arithmetic), so reordering within the window costs nothing.
//! * Playout starts once [`JitterConfig::target_delay`] worth of audio is
//!   buffered (or that long after the first packet, if some were lost).
//! * Each [`pop`](JitterBuffer::pop) plays the next sequence number. If it
//!   is missing but later packets are here, it is declared lost and
//!   concealed, handing over the next packet so the decoder can use its FEC.
//!   If nothing at all is buffered, the frame is concealed *without*
//!   advancing (a late packet still gets played when it shows up); after
//!   [`JitterConfig::max_conceal`] of that the buffer goes back to buffering.
//! * Packets behind the playout point are late; ones already held or played
//!   are duplicates. Both are dropped and counted.
//!
//! # Clock drift: why frame drop/insert
//!
//! Sender and receiver sound cards never run at exactly the same rate; at
//! ±0.5 % the buffer would gain or lose a frame every 4 s and grow by 18 s
//! or starve within seconds over an hour. The buffer tracks its depth with
//! a moving average (about 1 s) and steers it back into a band around the
//! target: above `target + 1` frames it drops the oldest frame, below
//! `target - 0.5` it inserts a concealed frame, at most once per
//! `adjust_interval`. At 0.5 % that is one 20 ms correction every 4 s,
//! and Opus's concealment makes an inserted frame sound like a slightly
//! longer syllable.
//!
//! Time-stretching (resampling playout by the drift ratio) would hide the
//! corrections completely but needs a resampler in the playout path, costs
//! CPU on every frame and still needs the same depth controller to decide
//! the ratio; drop/insert keeps the buffer sans-IO, codec-agnostic and
//! cheap. The controller is the part a time-stretcher would reuse.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::FrameDuration;

/// Packets further than this from the playout point mean the sender
/// restarted its sequence numbers: start over rather than call everything
/// late or wait for a gap to fill.
const RESYNC_DISTANCE: u32 = 1000;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Audio per packet (the sender's frame duration).
    pub frame: FrameDuration,
    /// Audio to hold before playing, and the depth the drift controller
    /// steers towards. More absorbs more network jitter; less is lower
    /// latency.
    pub target_delay: Duration,
    /// Most audio held; a packet further ahead than this pushes the oldest
    /// frames out.
    pub max_delay: Duration,
    /// Consecutive frames concealed with nothing buffered before the buffer
    /// gives up and returns to buffering (the sender stopped or the network
    /// stalled).
    pub max_conceal: Duration,
    /// Least time between two drift corrections.
    pub adjust_interval: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            frame: FrameDuration::Ms20,
            target_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(1000),
            max_conceal: Duration::from_millis(200),
            adjust_interval: Duration::from_millis(500),
        }
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Held for playout.
    Accepted,
    /// Its playout time has passed; dropped.
    Late,
    /// Already held or already played; dropped.
    Duplicate,
    /// Far outside the window: the buffer restarted at this packet.
    Resynced,
}

/// What to play for one frame period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet {
        /// Its sequence number.
        seq: u32,
        /// Its capture timestamp (sender clock, microseconds).
        timestamp_us: u64,
        /// The encoded frame.
        payload: Bytes,
    },
    /// No packet for this frame: synthesise one. If `next` is present it is
    /// the packet that follows the missing one; decode its FEC to rebuild
    /// the missing frame (then decode it normally on the next pop).
    Conceal {
        /// The sequence number being concealed.
        seq: u32,
        /// The following packet, when it is already here.
        next: Option<Bytes>,
    },
    /// Nothing to play: not started, or given up after a long gap. Play
    /// silence (or nothing) and keep popping.
    Empty,
}

/// Counters and gauges of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets pushed, including late and duplicate ones.
    pub received: u64,
    /// Frames played from their own packet.
    pub played: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets that arrived twice.
    pub duplicates: u64,
    /// Sequence numbers whose playout time came with no packet.
    pub lost: u64,
    /// Frames concealed: lost packets plus pops that found the buffer empty.
    pub concealed: u64,
    /// Pops that found nothing buffered while playing (and concealed).
    pub underruns: u64,
    /// Packets discarded to cut delay (drift or overflow).
    pub dropped: u64,
    /// Concealed frames inserted to add delay (drift).
    pub inserted: u64,
    /// Restarts after a jump in sequence numbers.
    pub resyncs: u64,
    /// Frames buffered now, counting gaps up to the newest packet.
    pub depth: usize,
    /// Interarrival jitter (RFC 3550 estimator), from arrival times and the
    /// packets' capture timestamps.
    pub jitter: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// No packet yet.
    Idle,
    /// Filling up; `since` is when the first packet of this fill arrived.
    Buffering {
        since: Option<Instant>,
    },
    Playing,
}

#[derive(Debug)]
struct Slot {
    timestamp_us: u64,
    payload: Bytes,
}

/// Reorders packets, hides loss and follows clock drift; see the
/// [module docs](self).
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    target: f64,
    capacity: usize,
    max_conceal: u32,
    adjust_every: u32,
    state: State,
    /// `slots[0]` is `next_seq`; the last slot, if any, is always filled.
    slots: VecDeque<Option<Slot>>,
    next_seq: u32,
    /// Bit `i` set: `next_seq - 1 - i` was played from its packet.
    played: u64,
    /// Whether anything was played since the last (re)start; before that, a
    /// packet older than the first one extends the window back.
    started: bool,
    depth_avg: f64,
    since_adjust: u32,
    conceal_run: u32,
    epoch: Option<Instant>,
    last_transit: Option<i64>,
    jitter_us: f64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        let frame = config.frame.duration().as_secs_f64();
        let frames = |d: Duration| (d.as_secs_f64() / frame).round().max(1.0) as u32;
        JitterBuffer {
            target: f64::from(frames(config.target_delay)),
            capacity: frames(config.max_delay).max(frames(config.target_delay) + 2) as usize,
            max_conceal: frames(config.max_conceal),
            adjust_every: frames(config.adjust_interval),
            config,
            state: State::Idle,
            slots: VecDeque::new(),
            next_seq: 0,
            played: 0,
            started: false,
            depth_avg: 0.0,
            since_adjust: 0,
            conceal_run: 0,
            epoch: None,
            last_transit: None,
            jitter_us: 0.0,
            stats: JitterStats::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Counters, depth and jitter now.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            depth: self.slots.len(),
            jitter: Duration::from_micros(self.jitter_us as u64),
            ..self.stats
        }
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(
        &mut self,
        seq: u32,
        timestamp_us: u64,
        payload: Bytes,
        now: Instant,
    ) -> PushOutcome {
        self.stats.received += 1;
        self.track_jitter(timestamp_us, now);
        let slot = Slot {
            timestamp_us,
            payload,
        };
        if self.state == State::Idle {
            self.restart(seq, slot, now);
            return PushOutcome::Accepted;
        }
        if let State::Buffering {
            since: since @ None,
        } = &mut self.state
        {
            *since = Some(now);
        }
        let ahead = seq.wrapping_sub(self.next_seq);
        let behind = self.next_seq.wrapping_sub(seq);
        if ahead > RESYNC_DISTANCE && behind > RESYNC_DISTANCE {
            self.stats.resyncs += 1;
            self.restart(seq, slot, now);
            return PushOutcome::Resynced;
        }
        if behind <= RESYNC_DISTANCE && behind > 0 {
            if !self.started && self.slots.len() + behind as usize <= self.capacity {
                // Reordered ahead of the first packet: extend the window back.
                for _ in 1..behind {
                    self.slots.push_front(None);
                }
                self.slots.push_front(Some(slot));
                self.next_seq = seq;
                return PushOutcome::Accepted;
            }
            let bit = behind - 1;
            if bit < 64 && self.played >> bit & 1 == 1 {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        let idx = ahead as usize;
        if idx < self.slots.len() && self.slots[idx].is_some() {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        // Too far ahead for the window: make room by dropping the oldest.
        let mut idx = idx;
        while idx >= self.capacity {
            self.discard_front();
            idx -= 1;
        }
        if idx >= self.slots.len() {
            self.slots.resize_with(idx + 1, || None);
        }
        self.slots[idx] = Some(slot);
        PushOutcome::Accepted
    }

    /// Decides what to play for the frame period starting at `now`. Call it
    /// once per frame, paced by the playback device.
    pub fn pop(&mut self, now: Instant) -> Playout {
        match self.state {
            State::Idle => return Playout::Empty,
            State::Buffering { since } => {
                let waited = since
                    .is_some_and(|t| now.saturating_duration_since(t) >= self.config.target_delay);
                let enough = self.slots.len() as f64 >= self.target;
                if self.slots.is_empty() || !(enough || waited) {
                    return Playout::Empty;
                }
                // Start at the oldest packet held; anything before it is gone.
                while let Some(None) = self.slots.front() {
                    self.discard_front();
                }
                self.state = State::Playing;
                self.started = true;
                self.depth_avg = self.slots.len() as f64;
                self.since_adjust = 0;
                self.conceal_run = 0;
            }
            State::Playing => {}
        }

        if self.slots.is_empty() {
            self.conceal_run += 1;
            if self.conceal_run > self.max_conceal {
                self.state = State::Buffering { since: None };
                return Playout::Empty;
            }
            self.stats.underruns += 1;
            self.stats.concealed += 1;
            return Playout::Conceal {
                seq: self.next_seq,
                next: None,
            };
        }
        self.conceal_run = 0;

        // Drift control on the smoothed depth (about one second's average).
        self.depth_avg += (self.slots.len() as f64 - self.depth_avg) / 50.0;
        self.since_adjust = self.since_adjust.saturating_add(1);
        if self.since_adjust >= self.adjust_every {
            if self.depth_avg > self.target + 1.0 && self.slots.len() > 1 {
                self.discard_front();
                self.depth_avg -= 1.0;
                self.since_adjust = 0;
            } else if self.depth_avg < self.target - 0.5 {
                self.depth_avg += 1.0;
                self.since_adjust = 0;
                self.stats.inserted += 1;
                return Playout::Conceal {
                    seq: self.next_seq,
                    next: None,
                };
            }
        }

        let seq = self.next_seq;
        match self.advance() {
            Some(slot) => {
                self.played |= 1;
                self.stats.played += 1;
                Playout::Packet {
                    seq,
                    timestamp_us: slot.timestamp_us,
                    payload: slot.payload,
                }
            }
            None => {
                self.stats.lost += 1;
                self.stats.concealed += 1;
                let next = self
                    .slots
                    .front()
                    .and_then(|s| s.as_ref())
                    .map(|s| s.payload.clone());
                Playout::Conceal { seq, next }
            }
        }
    }

    /// Moves the playout point one frame on, returning what was there.
    fn advance(&mut self) -> Option<Slot> {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.played <<= 1;
        let slot = self.slots.pop_front().flatten();
        // Keep the invariant: no trailing gaps.
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        slot
    }

    /// Drops the oldest frame to cut delay.
    fn discard_front(&mut self) {
        match self.advance() {
            Some(_) => self.stats.dropped += 1,
            None => self.stats.lost += 1,
        }
    }

    fn restart(&mut self, seq: u32, slot: Slot, now: Instant) {
        self.slots.clear();
        self.slots.push_back(Some(slot));
        self.next_seq = seq;
        self.played = 0;
        self.started = false;
        self.state = State::Buffering { since: Some(now) };
    }

    /// RFC 3550 interarrival jitter: the smoothed change in transit time.
    fn track_jitter(&mut self, timestamp_us: u64, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.saturating_duration_since(epoch).as_micros() as i64;
        let transit = arrival.wrapping_sub(timestamp_us as i64);
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last).unsigned_abs() as f64;
            // A sender restart jumps the timestamps; do not let it poison the estimate.
            if d < 10_000_000.0 {
                self.jitter_us += (d - self.jitter_us) / 16.0;
            }
        }
        self.last_transit = Some(transit);
    }
}
