//! A sans-IO jitter buffer: packets in as they arrive, one playout decision
//! out per frame period. No clock and no threads inside; time is a
//! parameter, so tests can simulate an hour in milliseconds.
//!
//! # How it plays
//!
//! * Packets are held in a window indexed by sequence number (wrapping
//!   `u32` arithmetic), so reordering within the window costs nothing.
//! * Each [`pop`](JitterBuffer::pop) plays the next sequence number. If it
//!   is missing but later packets are here, it is declared lost and
//!   concealed, handing over the next packet so the decoder can use its FEC.
//!   If nothing at all is buffered, the frame is concealed *without*
//!   advancing (a late packet still gets played when it shows up), which
//!   adds a frame of delay on the spot; after [`JitterConfig::max_conceal`]
//!   of that the buffer goes back to buffering.
//! * Packets behind the playout point are late; ones already held or played
//!   are duplicates. Both are dropped and counted.
//!
//! # How much it holds: the target follows the measured jitter
//!
//! Every packet's arrival is put on the sender's frame grid: its *arrival
//! offset* is the arrival time minus `sequence number × frame duration`
//! (local clock, any origin). On a perfect network every offset is the
//! same; jitter spreads them. Over the last [`JitterConfig::window`] of
//! arrivals the buffer keeps the offset that [`JitterConfig::coverage`] of
//! them did not exceed (the *late edge*). A frame is due for playout at its
//! grid time plus the late edge plus [`JitterConfig::headroom`] plus an
//! *extra* margin that each underrun or late packet raises by a quarter
//! frame and that decays over about one window. [`due`](JitterBuffer::due)
//! says when that is for the next frame, and the [target](JitterStats::target)
//! is how long after the earliest arrivals of the window that comes.
//!
//! A stall (of the sender, the network or the receiver) delivers what it
//! held back in one burst, each packet a frame less late than the one
//! before; only the first of a burst is measured, so one stall is one
//! outlier, not the top of the window.
//!
//! * **Grows fast.** A packet later than the schedule finds the buffer
//!   empty: the frame is concealed without advancing, one frame of delay at
//!   once, and the extra margin rises. A packet that arrives after its
//!   frame was already concealed (it was overtaken) adds a concealed frame
//!   at the next pop if the schedule is still short of it.
//! * **Shrinks slowly.** A spike leaves the late edge only when it leaves
//!   the window, and the extra margin decays over about a window. A play
//!   loop that follows [`due`](JitterBuffer::due) with a
//!   [`PlayoutClock`](crate::PlayoutClock) then pulls its frames a little
//!   earlier each time, which removes surplus delay without dropping audio.
//!   Only when a full frame of surplus stays put for
//!   [`JitterConfig::adjust_interval`] (nobody moves the pulls, as with a
//!   loop paced by a sound card) does the buffer drop its oldest frame, at
//!   most once per interval.
//! * **Bounded.** [`JitterConfig::max_delay`] caps the audio held (a
//!   packet further ahead pushes the oldest frames out) and, less a frame,
//!   the target.
//!
//! The floor is one frame of buffer: the frame being played is always one
//! that has arrived. On a quiet LAN the target is then the headroom plus the
//! little jitter there is, a few milliseconds instead of a fixed 40.
//!
//! # Clock drift
//!
//! Sender and receiver clocks never run at exactly the same rate; at ±0.5 %
//! the arrival offsets walk by a frame every 4 s. The late edge walks with
//! them, so a loop following [`due`](JitterBuffer::due) stays locked to the
//! sender. A loop on its own clock sees the surplus grow (sender fast: one
//! frame dropped every 4 s at 0.5 %) or the buffer run dry (sender slow: one
//! frame concealed without advancing every 4 s), and Opus's concealment
//! makes an inserted frame sound like a slightly longer syllable.
//!
//! Time-stretching (resampling playout by the drift ratio) would hide the
//! corrections completely but needs a resampler in the playout path and
//! costs CPU on every frame; following the arrivals keeps the buffer
//! sans-IO, codec-agnostic and cheap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::FrameDuration;

/// Packets further than this from the playout point mean the sender
/// restarted its sequence numbers: start over rather than call everything
/// late or wait for a gap to fill.
const RESYNC_DISTANCE: u32 = 1000;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Audio per packet (the sender's frame duration).
    pub frame: FrameDuration,
    /// Time kept between the measured late edge of arrivals and a frame's
    /// playout: the least delay added on a network without jitter.
    pub headroom: Duration,
    /// How much recent history (in audio time, one arrival per frame) the
    /// late edge is measured over. Longer holds the delay a jitter spike
    /// needed for longer.
    pub window: Duration,
    /// Share of the arrivals in the window that the delay is set to catch
    /// (`0.5..=1.0`); the latest rest are left to concealment and to the
    /// extra margin an underrun adds. `1.0` covers the latest of all.
    pub coverage: f64,
    /// Most audio held, and (less a frame) the ceiling of the target; a
    /// packet further ahead than this pushes the oldest frames out.
    pub max_delay: Duration,
    /// Consecutive frames concealed with nothing buffered before the buffer
    /// gives up and returns to buffering (the sender stopped or the network
    /// stalled).
    pub max_conceal: Duration,
    /// How long a frame of surplus delay must last before the buffer drops
    /// a frame to cut it, and the least time between two drops.
    pub adjust_interval: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            frame: FrameDuration::Ms20,
            headroom: Duration::from_millis(2),
            window: Duration::from_secs(2),
            coverage: 0.98,
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
    /// Packets discarded to cut delay (surplus or overflow).
    pub dropped: u64,
    /// Concealed frames inserted to add delay after a late packet.
    pub inserted: u64,
    /// Restarts after a jump in sequence numbers.
    pub resyncs: u64,
    /// Frames buffered now, counting gaps up to the newest packet.
    pub depth: usize,
    /// Interarrival jitter (RFC 3550 estimator), from arrival times and the
    /// packets' capture timestamps.
    pub jitter: Duration,
    /// The playout delay aimed at now: how long after the earliest arrivals
    /// of the window a frame is due (spread of the arrivals up to the late
    /// edge, plus headroom and extra margin), at most a frame less than
    /// [`JitterConfig::max_delay`].
    pub target: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// No packet yet.
    Idle,
    /// Filling up: playout starts at the first pop at or after the oldest
    /// held packet is due.
    Buffering,
    Playing,
}

#[derive(Debug)]
struct Slot {
    timestamp_us: u64,
    payload: Bytes,
}

/// Arrival offsets (arrival time minus grid time, microseconds) of the last
/// few packets, with their late edge and earliest value.
///
/// A stall (of the sender, the network or the receiver) delivers the
/// packets it held back in one burst, each a frame less late than the one
/// before. That is one late event, not several: only the burst's first
/// packet is kept, so that a single stall stays one outlier that the edge
/// may ignore instead of filling the top of the window.
#[derive(Debug)]
struct Arrivals {
    offsets: VecDeque<i64>,
    len: usize,
    /// The share of the latest offsets the edge ignores.
    skip: f64,
    /// Packets arriving closer than this after the last one kept, and less
    /// late than it, belong to its burst.
    burst_gap: i64,
    /// Arrival time and offset of the last packet kept.
    last: Option<(i64, i64)>,
    edge: i64,
    earliest: i64,
    /// The same offsets, in order.
    sorted: Vec<i64>,
}

impl Arrivals {
    fn new(len: usize, coverage: f64, burst_gap: i64) -> Self {
        Arrivals {
            offsets: VecDeque::with_capacity(len),
            len,
            skip: 1.0 - coverage.clamp(0.5, 1.0),
            burst_gap,
            last: None,
            edge: 0,
            earliest: 0,
            sorted: Vec::with_capacity(len),
        }
    }

    fn clear(&mut self) {
        self.offsets.clear();
        self.sorted.clear();
        self.last = None;
    }

    fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    fn record(&mut self, arrival: i64, offset: i64) {
        if let Some((at, late)) = self.last {
            if arrival - at < self.burst_gap && offset < late {
                return;
            }
        }
        self.last = Some((arrival, offset));
        if self.offsets.len() == self.len {
            if let Some(old) = self.offsets.pop_front() {
                if let Ok(i) = self.sorted.binary_search(&old) {
                    self.sorted.remove(i);
                }
            }
        }
        self.offsets.push_back(offset);
        let i = self.sorted.partition_point(|&o| o < offset);
        self.sorted.insert(i, offset);
        let n = self.sorted.len();
        let ignored = ((n as f64 * self.skip) as usize).min(n - 1);
        self.edge = self.sorted[n - 1 - ignored];
        self.earliest = self.sorted[0];
    }
}

/// Reorders packets, hides loss, and adapts its delay to the jitter it
/// measures; see the [module docs](self).
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    frame_us: i64,
    capacity: usize,
    max_conceal: u32,
    adjust_every: u32,
    window_frames: f64,
    state: State,
    /// `slots[0]` is `next_seq`; the last slot, if any, is always filled.
    slots: VecDeque<Option<Slot>>,
    next_seq: u32,
    /// Bit `i` set: `next_seq - 1 - i` was played from its packet.
    played: u64,
    /// Whether anything was played since the last (re)start; before that, a
    /// packet older than the first one extends the window back.
    started: bool,
    conceal_run: u32,
    /// Origin of the local time line, in microseconds from here.
    epoch: Option<Instant>,
    /// A recent sequence number and its position on the unwrapped grid.
    grid_seq: u32,
    grid_index: i64,
    arrivals: Arrivals,
    /// Extra margin (µs) raised by underruns and late packets.
    extra_us: f64,
    /// A packet arrived after its frame had been concealed.
    late_since_pop: bool,
    /// When the last pop was (µs from the epoch).
    last_pop: i64,
    /// Pops in a row with a frame or more of surplus, and the surplus at
    /// the first of them.
    surplus_run: u32,
    surplus_at_start: i64,
    last_transit: Option<i64>,
    jitter_us: f64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        let frame = config.frame.duration();
        let frames = |d: Duration| (d.as_secs_f64() / frame.as_secs_f64()).round().max(1.0) as u32;
        let window = frames(config.window);
        JitterBuffer {
            frame_us: frame.as_micros() as i64,
            capacity: frames(config.max_delay).max(2) as usize,
            max_conceal: frames(config.max_conceal),
            adjust_every: frames(config.adjust_interval),
            window_frames: f64::from(window),
            arrivals: Arrivals::new(
                window as usize,
                config.coverage,
                frame.as_micros() as i64 / 4,
            ),
            config,
            state: State::Idle,
            slots: VecDeque::new(),
            next_seq: 0,
            played: 0,
            started: false,
            conceal_run: 0,
            epoch: None,
            grid_seq: 0,
            grid_index: 0,
            extra_us: 0.0,
            late_since_pop: false,
            last_pop: 0,
            surplus_run: 0,
            surplus_at_start: 0,
            last_transit: None,
            jitter_us: 0.0,
            stats: JitterStats::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Counters, depth, jitter and target now.
    pub fn stats(&self) -> JitterStats {
        let target = if self.arrivals.is_empty() {
            self.config.headroom.as_micros() as i64
        } else {
            self.delay_us() - self.arrivals.earliest
        };
        JitterStats {
            depth: self.slots.len(),
            jitter: Duration::from_micros(self.jitter_us as u64),
            target: Duration::from_micros(target.max(0) as u64),
            ..self.stats
        }
    }

    /// Whether frames are being played (not idle, not buffering).
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// When the next frame should be popped: when its packet has most
    /// likely arrived (late edge of recent arrivals, plus headroom and extra
    /// margin). `None` while there is nothing to play, and while the next
    /// packet is overdue (it was due at the last pop and has not come: when
    /// it will is anyone's guess). A play loop that pulls at this moment
    /// plays with the least delay the measured jitter allows;
    /// [`PlayoutClock`](crate::PlayoutClock) turns it into a steady
    /// schedule.
    pub fn due(&self) -> Option<Instant> {
        let seq = match self.state {
            State::Idle => return None,
            State::Buffering => self.first_held()?,
            State::Playing => self.next_seq,
        };
        let due = self.due_us(seq);
        let overdue = self.state == State::Playing && self.slots.is_empty() && due <= self.last_pop;
        let epoch = self.epoch?;
        (!overdue).then(|| at(epoch, due))
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
        let outcome = self.place(
            seq,
            Slot {
                timestamp_us,
                payload,
            },
        );
        match outcome {
            PushOutcome::Duplicate => {}
            PushOutcome::Late => {
                self.late_since_pop = true;
                self.raise_extra();
                self.record_arrival(seq, now);
            }
            PushOutcome::Accepted | PushOutcome::Resynced => self.record_arrival(seq, now),
        }
        outcome
    }

    /// Decides what to play for the frame period starting at `now`. Call it
    /// once per frame, paced by the playback device or by
    /// [`PlayoutClock`](crate::PlayoutClock).
    pub fn pop(&mut self, now: Instant) -> Playout {
        self.last_pop = self.us(now);
        match self.state {
            State::Idle => return Playout::Empty,
            State::Buffering => {
                let Some(first) = self.first_held() else {
                    return Playout::Empty;
                };
                let full = self.slots.len() >= self.capacity;
                if self.us(now) < self.due_us(first) && !full {
                    return Playout::Empty;
                }
                // Start at the oldest packet held; anything before it is gone.
                while let Some(None) = self.slots.front() {
                    self.discard_front();
                }
                self.state = State::Playing;
                self.started = true;
                self.conceal_run = 0;
                self.surplus_run = 0;
                self.late_since_pop = false;
            }
            State::Playing => {}
        }
        self.extra_us -= self.extra_us / self.window_frames;

        if self.slots.is_empty() {
            self.conceal_run += 1;
            if self.conceal_run > self.max_conceal {
                // The timing of a stream that stalled this long says nothing
                // about the next talk spurt.
                self.state = State::Buffering;
                self.arrivals.clear();
                return Playout::Empty;
            }
            self.stats.underruns += 1;
            self.stats.concealed += 1;
            if self.conceal_run == 1 {
                // One stall, one raise, however long it lasts.
                self.raise_extra();
            }
            return Playout::Conceal {
                seq: self.next_seq,
                next: None,
            };
        }
        self.conceal_run = 0;

        // Positive: the next frame is here earlier than it needs to be.
        let surplus = self.us(now) - self.due_us(self.next_seq);
        if std::mem::take(&mut self.late_since_pop) && surplus < 0 {
            // A packet came after its frame was concealed and the schedule
            // is still short of it: one frame more, now.
            self.stats.inserted += 1;
            return Playout::Conceal {
                seq: self.next_seq,
                next: None,
            };
        }
        if surplus >= self.frame_us && self.slots.len() > 1 {
            if self.surplus_run == 0 {
                self.surplus_at_start = surplus;
            }
            self.surplus_run += 1;
            if self.surplus_run >= self.adjust_every {
                // Nobody is moving the pulls earlier (a clock would have cut
                // a quarter frame by now): drop a frame of the surplus.
                if surplus > self.surplus_at_start - self.frame_us / 4 {
                    self.discard_front();
                }
                self.surplus_run = 0;
            }
        } else {
            self.surplus_run = 0;
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

    /// Files a packet by sequence number.
    fn place(&mut self, seq: u32, slot: Slot) -> PushOutcome {
        if self.state == State::Idle {
            self.restart(seq, slot);
            return PushOutcome::Accepted;
        }
        let ahead = seq.wrapping_sub(self.next_seq);
        let behind = self.next_seq.wrapping_sub(seq);
        if ahead > RESYNC_DISTANCE && behind > RESYNC_DISTANCE {
            self.stats.resyncs += 1;
            self.restart(seq, slot);
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

    /// Starts over at this packet: a new stream, as far as timing goes.
    fn restart(&mut self, seq: u32, slot: Slot) {
        self.slots.clear();
        self.slots.push_back(Some(slot));
        self.next_seq = seq;
        self.played = 0;
        self.started = false;
        self.state = State::Buffering;
        self.grid_seq = seq;
        self.grid_index = 0;
        self.arrivals.clear();
        self.extra_us = 0.0;
        self.late_since_pop = false;
        self.surplus_run = 0;
    }

    /// The sequence number of the oldest packet held.
    fn first_held(&self) -> Option<u32> {
        let i = self.slots.iter().position(Option::is_some)?;
        Some(self.next_seq.wrapping_add(i as u32))
    }

    /// `seq`'s place on the sender's frame grid, unwrapped.
    fn grid(&self, seq: u32) -> i64 {
        self.grid_index + i64::from(seq.wrapping_sub(self.grid_seq) as i32)
    }

    fn record_arrival(&mut self, seq: u32, now: Instant) {
        let index = self.grid(seq);
        if index > self.grid_index {
            (self.grid_seq, self.grid_index) = (seq, index);
        }
        let arrival = self.us(now);
        self.arrivals
            .record(arrival, arrival - index * self.frame_us);
    }

    fn raise_extra(&mut self) {
        let step = (self.frame_us / 4) as f64;
        self.extra_us = (self.extra_us + step).min((2 * self.frame_us) as f64);
    }

    /// How long after its grid time a frame is due, capped a frame short
    /// of `max_delay` (what the buffer can hold), so that a full buffer's
    /// oldest frame is due.
    fn delay_us(&self) -> i64 {
        let wanted =
            self.arrivals.edge + self.config.headroom.as_micros() as i64 + self.extra_us as i64;
        let ceiling = self.capacity as i64 * self.frame_us - self.frame_us;
        wanted.min(self.arrivals.earliest + ceiling)
    }

    fn due_us(&self, seq: u32) -> i64 {
        self.grid(seq) * self.frame_us + self.delay_us()
    }

    /// Microseconds from the epoch to `t` (negative before it).
    fn us(&self, t: Instant) -> i64 {
        let Some(epoch) = self.epoch else { return 0 };
        match t.checked_duration_since(epoch) {
            Some(d) => d.as_micros() as i64,
            None => -(epoch.saturating_duration_since(t).as_micros() as i64),
        }
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

/// `us` microseconds after `epoch` (before it, if negative).
fn at(epoch: Instant, us: i64) -> Instant {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        epoch + d
    } else {
        epoch.checked_sub(d).unwrap_or(epoch)
    }
}
