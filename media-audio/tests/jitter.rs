//! Jitter buffer behaviour: ordering, loss, late and duplicate packets,
//! sequence wrap, starvation, restarts, a delay that adapts to the jitter
//! (up fast, down slowly, bounded), the playout clock, and an hour of clock
//! drift.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lanlink_audio::{
    FrameDuration, JitterBuffer, JitterConfig, JitterStats, Playout, PlayoutClock, PushOutcome,
};

const FRAME_US: u64 = 20_000;

fn payload(seq: u32) -> Bytes {
    Bytes::copy_from_slice(&seq.to_be_bytes())
}

/// A buffer, a start instant and helpers to push/pop at millisecond times.
struct Rig {
    jb: JitterBuffer,
    t0: Instant,
}

impl Rig {
    fn new() -> Self {
        Rig {
            jb: JitterBuffer::new(JitterConfig::default()),
            t0: Instant::now(),
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn push(&mut self, seq: u32, ms: u64) -> PushOutcome {
        let now = self.at(ms);
        self.jb
            .push(seq, u64::from(seq) * FRAME_US, payload(seq), now)
    }
    fn pop(&mut self, ms: u64) -> Playout {
        let now = self.at(ms);
        self.jb.pop(now)
    }
}

fn played(p: &Playout) -> Option<u32> {
    match p {
        Playout::Packet {
            seq, payload: data, ..
        } => {
            assert_eq!(data, &payload(*seq), "payload travels with its seq");
            Some(*seq)
        }
        _ => None,
    }
}

#[test]
fn reorders_within_the_window() {
    let mut r = Rig::new();
    for (i, seq) in [1, 0, 3, 2, 4, 5].into_iter().enumerate() {
        assert_eq!(r.push(seq, i as u64 * 5), PushOutcome::Accepted);
    }
    let order: Vec<_> = (0..6).map(|i| played(&r.pop(40 + i * 20))).collect();
    assert_eq!(order, (0..6).map(Some).collect::<Vec<_>>());
    let s = r.jb.stats();
    assert_eq!(
        (s.received, s.played, s.lost, s.late, s.concealed),
        (6, 6, 0, 0, 0)
    );
}

#[test]
fn starts_once_the_first_packet_is_due() {
    let mut r = Rig::new();
    r.push(0, 0);
    assert_eq!(
        r.pop(0),
        Playout::Empty,
        "due 2 ms (the headroom) after arrival"
    );
    assert_eq!(played(&r.pop(2)), Some(0));
    // Nothing measured yet but the headroom.
    assert_eq!(r.jb.stats().target, Duration::from_millis(2));
}

#[test]
fn loss_is_concealed_with_the_next_packet_for_fec() {
    let mut r = Rig::new();
    for seq in [0, 1, 3, 4] {
        r.push(seq, u64::from(seq) * 20);
    }
    assert_eq!(played(&r.pop(80)), Some(0));
    assert_eq!(played(&r.pop(100)), Some(1));
    assert_eq!(
        r.pop(120),
        Playout::Conceal {
            seq: 2,
            next: Some(payload(3))
        }
    );
    assert_eq!(played(&r.pop(140)), Some(3));
    // Packet 2 shows up after its slot was concealed: late, 110 ms after
    // its place on the grid. The delay grows by a frame at once.
    assert_eq!(r.push(2, 150), PushOutcome::Late);
    assert_eq!(r.pop(160), Playout::Conceal { seq: 4, next: None });
    assert_eq!(played(&r.pop(180)), Some(4));
    let s = r.jb.stats();
    assert_eq!((s.lost, s.concealed, s.late, s.played), (1, 1, 1, 4));
    assert_eq!(s.inserted, 1);
    assert!(s.target >= Duration::from_millis(110), "{s:?}");
}

#[test]
fn duplicates_are_dropped_whether_held_or_played() {
    let mut r = Rig::new();
    r.push(0, 0);
    r.push(1, 20);
    assert_eq!(r.push(1, 21), PushOutcome::Duplicate, "held");
    assert_eq!(played(&r.pop(40)), Some(0));
    assert_eq!(r.push(0, 41), PushOutcome::Duplicate, "already played");
    assert_eq!(r.jb.stats().duplicates, 2);
    assert_eq!(r.jb.stats().late, 0);
}

#[test]
fn sequence_numbers_wrap() {
    let mut r = Rig::new();
    let seqs = [u32::MAX - 1, u32::MAX, 0, 1];
    r.push(seqs[1], 0);
    r.push(seqs[0], 1);
    r.push(seqs[3], 2);
    r.push(seqs[2], 3);
    let order: Vec<_> = (0..4).map(|i| played(&r.pop(40 + i * 20))).collect();
    assert_eq!(order, seqs.iter().copied().map(Some).collect::<Vec<_>>());
}

#[test]
fn an_empty_buffer_stretches_then_gives_up_then_resumes() {
    let mut r = Rig::new();
    r.push(0, 0);
    r.push(1, 20);
    assert_eq!(played(&r.pop(20)), Some(0));
    assert_eq!(played(&r.pop(40)), Some(1));
    // Packet 2 is late: conceal without moving on, so it still plays.
    assert_eq!(r.pop(60), Playout::Conceal { seq: 2, next: None });
    r.push(2, 70);
    assert_eq!(played(&r.pop(80)), Some(2));
    assert_eq!(r.jb.stats().underruns, 1);
    // The sender stops: 200 ms of concealment, then Empty.
    let mut ms = 100;
    let mut conceals = 0;
    while let Playout::Conceal { .. } = r.pop(ms) {
        conceals += 1;
        ms += 20;
    }
    assert_eq!(conceals, 10);
    assert_eq!(r.pop(ms + 20), Playout::Empty);
    // It comes back (packet 3 was lost for good): buffer, then play on.
    r.push(4, ms + 40);
    r.push(5, ms + 60);
    assert_eq!(played(&r.pop(ms + 60)), Some(4));
    let s = r.jb.stats();
    assert_eq!((s.lost, s.underruns, s.concealed), (1, 11, 11));
}

#[test]
fn a_sequence_jump_restarts_and_a_flood_is_capped() {
    let mut r = Rig::new();
    r.push(10, 0);
    r.push(11, 20);
    assert_eq!(played(&r.pop(20)), Some(10));
    assert_eq!(r.push(500_000, 30), PushOutcome::Resynced);
    r.push(500_001, 40);
    assert_eq!(played(&r.pop(40)), Some(500_000));
    // 2 s ahead is beyond the 1 s window: the oldest frames make room.
    assert_eq!(r.push(500_101, 50), PushOutcome::Accepted);
    let s = r.jb.stats();
    assert_eq!(s.resyncs, 1);
    assert!(s.depth <= 50, "depth {}", s.depth);
    assert_eq!(s.dropped, 1, "500_001 pushed out");
}

/// How the simulated play loop decides when to pull.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pulls {
    /// A free-running tick every 20 ms (as paced by a sound card).
    Fixed,
    /// Following [`PlayoutClock`].
    Clock,
}

/// xorshift64: deterministic noise for the network.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..=max_us`.
    fn upto(&mut self, max_us: u64) -> u64 {
        self.next() % (max_us + 1)
    }
}

/// What one pull saw.
#[derive(Debug, Clone, Copy)]
struct Pull {
    /// When, µs from the start.
    at_us: u64,
    /// Frames buffered just before it.
    depth: usize,
    /// The packet it played: how long that packet waited in the buffer,
    /// and how long after it was sent it was played.
    waited_us: Option<u64>,
    latency_us: Option<u64>,
    target: Duration,
    /// Packets lost or late so far.
    missed: u64,
}

#[derive(Debug, Default)]
struct Run {
    stats: JitterStats,
    pulls: Vec<Pull>,
    /// Sequence numbers played from their packet, in order.
    order: Vec<u32>,
    empty_after_start: u64,
}

impl Run {
    /// The pulls from `from_s` to `to_s` seconds.
    fn between(&self, from_s: f64, to_s: f64) -> impl Iterator<Item = &Pull> {
        let (a, b) = ((from_s * 1e6) as u64, (to_s * 1e6) as u64);
        self.pulls.iter().filter(move |p| (a..b).contains(&p.at_us))
    }
    fn max_depth(&self, from_s: f64, to_s: f64) -> usize {
        self.between(from_s, to_s)
            .map(|p| p.depth)
            .max()
            .unwrap_or(0)
    }
    fn mean_depth(&self, from_s: f64, to_s: f64) -> f64 {
        let d: Vec<_> = self.between(from_s, to_s).map(|p| p.depth).collect();
        d.iter().sum::<usize>() as f64 / d.len().max(1) as f64
    }
    /// Largest wait in the buffer of a played packet, ms.
    fn max_wait_ms(&self, from_s: f64, to_s: f64) -> f64 {
        let w = self.between(from_s, to_s).filter_map(|p| p.waited_us).max();
        w.unwrap_or(0) as f64 / 1e3
    }
    fn mean_wait_ms(&self, from_s: f64, to_s: f64) -> f64 {
        let w: Vec<_> = self
            .between(from_s, to_s)
            .filter_map(|p| p.waited_us)
            .collect();
        w.iter().sum::<u64>() as f64 / w.len().max(1) as f64 / 1e3
    }
    fn max_latency_ms(&self, from_s: f64, to_s: f64) -> f64 {
        let l = self
            .between(from_s, to_s)
            .filter_map(|p| p.latency_us)
            .max();
        l.unwrap_or(0) as f64 / 1e3
    }
    /// The last pull at or before `s` seconds.
    fn at(&self, s: f64) -> Option<&Pull> {
        let t = (s * 1e6) as u64;
        self.pulls.iter().take_while(|p| p.at_us <= t).last()
    }
    fn target_at(&self, s: f64) -> Duration {
        self.at(s).map(|p| p.target).unwrap_or_default()
    }
    /// No packet lost or late, and no silence once playing.
    fn assert_nothing_missed(&self, what: &str) {
        let s = &self.stats;
        let missed = (s.lost, s.late, self.empty_after_start);
        assert_eq!(missed, (0, 0, 0), "{what}: {s:?}");
    }
}

/// Simulates `secs` of a sender whose clock runs `drift` times the
/// receiver's, over a network that delays packet `i` (sent at `send_us`) by
/// `delay(i, send_us, rng)` µs, so packets may also reorder; sequence
/// numbers start `seq0` (near the u32 wrap by default). The receiver pulls
/// one frame at a time, as `pulls` says, starting 3 ms after the sender.
fn simulate(
    secs: u64,
    drift: f64,
    pulls: Pulls,
    mut delay: impl FnMut(u64, u64, &mut Rng) -> u64,
) -> Run {
    simulate_with(JitterConfig::default(), secs, drift, pulls, &mut delay)
}

fn simulate_with(
    config: JitterConfig,
    secs: u64,
    drift: f64,
    pulls: Pulls,
    delay: &mut dyn FnMut(u64, u64, &mut Rng) -> u64,
) -> Run {
    let seq0 = u32::MAX - 500;
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    let mut jb = JitterBuffer::new(config);
    let mut clock = PlayoutClock::new(FrameDuration::Ms20, at(3_000));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut in_flight = BinaryHeap::new();
    // (sent, arrived) µs per packet index.
    let mut times: Vec<(u64, u64)> = Vec::new();
    let mut run = Run::default();
    let mut started = false;
    let mut pull_us = 3_000;
    while pull_us < secs * 1_000_000 {
        // Send everything the sender's clock has produced by now.
        loop {
            let i = times.len() as u64;
            let send_us = (i as f64 * FRAME_US as f64 / drift) as u64;
            if send_us > pull_us {
                break;
            }
            let arrive = send_us + delay(i, send_us, &mut rng);
            in_flight.push(Reverse((arrive, i)));
            times.push((send_us, arrive));
        }
        while let Some(Reverse((arrive, i))) = in_flight.peek().copied() {
            if arrive > pull_us {
                break;
            }
            in_flight.pop();
            let seq = seq0.wrapping_add(i as u32);
            jb.push(seq, i * FRAME_US, payload(seq), at(arrive));
        }
        let depth = jb.stats().depth;
        let playout = jb.pop(at(pull_us));
        let (mut waited_us, mut latency_us) = (None, None);
        if let Some(seq) = played(&playout) {
            let (sent, arrived) = times[seq.wrapping_sub(seq0) as usize];
            waited_us = Some(pull_us - arrived);
            latency_us = Some(pull_us - sent);
            run.order.push(seq);
        }
        started |= playout != Playout::Empty;
        if started && playout == Playout::Empty {
            run.empty_after_start += 1;
        }
        run.pulls.push(Pull {
            at_us: pull_us,
            depth,
            waited_us,
            latency_us,
            target: jb.stats().target,
            missed: jb.stats().lost + jb.stats().late,
        });
        pull_us = match pulls {
            Pulls::Fixed => pull_us + FRAME_US,
            Pulls::Clock => {
                clock.follow([&jb]);
                (clock.next_pull() - t0).as_micros() as u64
            }
        };
    }
    run.stats = jb.stats();
    run
}

/// 2 ms of network plus up to `ms` of random delay.
fn uniform(ms: u64) -> impl FnMut(u64, u64, &mut Rng) -> u64 {
    move |_, _, rng| 2_000 + rng.upto(ms * 1000)
}

/// 2 ms of network plus up to `first_us` of random delay for 10 s, then up
/// to `then_us`.
fn jitter_then(first_us: u64, then_us: u64) -> impl FnMut(u64, u64, &mut Rng) -> u64 {
    move |_, send_us, rng| {
        let jitter = if send_us < 10_000_000 {
            first_us
        } else {
            then_us
        };
        2_000 + rng.upto(jitter)
    }
}

fn summary(what: &str, run: &Run) {
    let s = &run.stats;
    eprintln!(
        "{what}: played {} lost {} late {} underruns {} dropped {} inserted {} target {:?}, empty after start {}",
        s.played, s.lost, s.late, s.underruns, s.dropped, s.inserted, s.target, run.empty_after_start
    );
}

#[test]
fn the_delay_adapts_up_under_jitter() {
    // 10 s of a quiet network, then 20 s of up to 30 ms of jitter.
    for pulls in [Pulls::Fixed, Pulls::Clock] {
        let run = simulate(30, 1.0, pulls, jitter_then(500, 30_000));
        summary(&format!("{pulls:?}"), &run);
        let calm = run.target_at(9.9);
        assert!(
            calm <= Duration::from_millis(4),
            "{pulls:?}: calm target {calm:?}"
        );
        // A fixed tick adds its phase (here almost a frame) to the wait.
        let tick = if pulls == Pulls::Fixed { 20.0 } else { 0.0 };
        assert!(
            run.max_wait_ms(5.0, 10.0) < 4.0 + tick,
            "{pulls:?}: waits in the calm"
        );
        // Within a second of the jitter starting, the target covers it.
        let grown = run.target_at(11.0);
        assert!(
            grown >= Duration::from_millis(28),
            "{pulls:?}: target {grown:?} after 1 s"
        );
        assert!(
            run.target_at(29.9) <= Duration::from_millis(45),
            "{pulls:?}"
        );
        // Getting there cost a few concealed frames, and no packet.
        run.assert_nothing_missed(&format!("{pulls:?}"));
        let s = &run.stats;
        assert!(s.underruns <= 10, "{pulls:?}: {s:?}");
        assert!(run.max_depth(12.0, 30.0) <= 3, "{pulls:?}");
    }
}

#[test]
fn the_delay_comes_back_down_when_calm() {
    // Up to 40 ms of jitter for 10 s, then a quiet network for 20 s.
    for pulls in [Pulls::Fixed, Pulls::Clock] {
        let run = simulate(30, 1.0, pulls, jitter_then(40_000, 500));
        summary(&format!("{pulls:?}"), &run);
        assert!(run.target_at(9.9) >= Duration::from_millis(35), "{pulls:?}");
        // Not at once: the spread of the last window still counts.
        assert!(
            run.target_at(11.0) >= Duration::from_millis(30),
            "{pulls:?}"
        );
        // Once the jitter has left the window and the margin decayed.
        let calm = run.target_at(18.0);
        assert!(
            calm <= Duration::from_millis(4),
            "{pulls:?}: target {calm:?}"
        );
        run.assert_nothing_missed(&format!("{pulls:?}"));
        let s = &run.stats;
        match pulls {
            // The clock pulls a little earlier each time: back to a few
            // milliseconds in the buffer without dropping a frame.
            Pulls::Clock => {
                assert!(run.max_wait_ms(20.0, 30.0) < 4.0, "{pulls:?}");
                assert_eq!(s.dropped, 0, "{pulls:?}: {s:?}");
            }
            // A fixed tick cannot move: the surplus frames are dropped, one
            // per adjust interval, and what is left is under a frame.
            Pulls::Fixed => {
                assert!((1..=3).contains(&s.dropped), "{pulls:?}: {s:?}");
                assert!(run.max_wait_ms(20.0, 30.0) < 20.0 + 3.0, "{pulls:?}");
                assert!(run.max_depth(20.0, 30.0) <= 2, "{pulls:?}");
            }
        }
    }
}

#[test]
fn no_loss_on_reordering_within_the_window() {
    // Every tenth packet held back behind the next two, every tenth but
    // three behind the next one: reordering by up to 50 ms.
    let reorder = |i: u64, _, rng: &mut Rng| {
        let base = 2_000 + rng.upto(1_000);
        match i % 10 {
            0 => base + 50_000,
            3 => base + 25_000,
            _ => base,
        }
    };
    for pulls in [Pulls::Fixed, Pulls::Clock] {
        let run = simulate(60, 1.0, pulls, reorder);
        summary(&format!("{pulls:?}"), &run);
        // Learning how deep the reordering goes costs at most a packet or
        // two in the first half second (the buffer starts at the least
        // delay); from then on the window holds it and nothing is missed.
        let learnt = run.at(0.5).map_or(0, |p| p.missed);
        assert!(learnt <= 3, "{pulls:?}: {learnt}");
        let s = &run.stats;
        assert_eq!(s.lost + s.late, learnt, "{pulls:?}: {s:?}");
        assert_eq!((s.dropped, s.duplicates), (0, 0), "{pulls:?}");
        // Every packet after that played, in sequence order.
        let first = run.order.iter().position(|_| true).unwrap_or(0);
        let tail = &run.order[first + 50..];
        assert!(
            tail.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "{pulls:?}: a gap in the order"
        );
        assert!(run.order.len() >= 2990, "{pulls:?}: {}", run.order.len());
        // ... with the delay the reordering needs, and not much more.
        assert!(run.max_latency_ms(5.0, 60.0) <= 53.0 + 20.0, "{pulls:?}");
    }
}

#[test]
fn the_depth_is_bounded() {
    // A sender 10 % fast for a minute (a frame too many every 200 ms, more
    // than one drop per adjust interval cuts), with a ceiling of 200 ms:
    // the overflow pushes the oldest frames out.
    let config = JitterConfig {
        max_delay: Duration::from_millis(200),
        ..JitterConfig::default()
    };
    for pulls in [Pulls::Fixed, Pulls::Clock] {
        let run = simulate_with(config, 60, 1.1, pulls, &mut uniform(5));
        summary(&format!("{pulls:?}"), &run);
        assert!(run.max_depth(0.0, 60.0) <= 10, "{pulls:?}");
        assert!(run
            .pulls
            .iter()
            .all(|p| p.target <= Duration::from_millis(180)));
        assert_eq!(run.stats.lost, 0, "{pulls:?}");
    }
    // A stall: 3 s of packets held back, then delivered in one burst, with
    // a ceiling of 200 ms. Depth and target stay under it.
    let config = JitterConfig {
        max_delay: Duration::from_millis(200),
        ..JitterConfig::default()
    };
    let run = simulate_with(config, 20, 1.0, Pulls::Clock, &mut |_, send_us, _| {
        if (5_000_000..8_000_000).contains(&send_us) {
            8_000_000 - send_us + 2_000
        } else {
            2_000
        }
    });
    summary("stall", &run);
    assert!(
        run.max_depth(0.0, 20.0) <= 10,
        "{}",
        run.max_depth(0.0, 20.0)
    );
    assert!(run
        .pulls
        .iter()
        .all(|p| p.target <= Duration::from_millis(180)));
    // Silence for the stall (after 200 ms of concealment), not after it:
    // the burst plays as soon as it is in.
    assert!(run.empty_after_start <= 145, "{}", run.empty_after_start);
    assert!(run.between(8.05, 20.0).all(|p| p.waited_us.is_some()));
    // And once the network is steady again, the delay is back down.
    assert!(run.max_wait_ms(15.0, 20.0) < 4.0);
}

#[test]
fn the_clock_pulls_shortly_after_arrival() {
    // Packets land 13 ms into the receiver's 20 ms tick (±0.5 ms): a fixed
    // tick holds each about 7 ms + a frame; the clock moves its pulls to
    // just after the arrivals.
    let fixed = simulate(10, 1.0, Pulls::Fixed, |_, _, rng| 10_000 + rng.upto(1_000));
    let clock = simulate(10, 1.0, Pulls::Clock, |_, _, rng| 10_000 + rng.upto(1_000));
    summary("fixed", &fixed);
    summary("clock", &clock);
    let (f, c) = (fixed.mean_wait_ms(2.0, 10.0), clock.mean_wait_ms(2.0, 10.0));
    eprintln!("mean wait in the buffer: fixed tick {f:.2} ms, clock {c:.2} ms");
    assert!(f > 5.0, "fixed {f}");
    // Headroom (2 ms) plus the jitter (up to 1 ms).
    assert!(c < 3.5, "clock {c}");
    assert!(clock.max_wait_ms(2.0, 10.0) < 4.0);
    let s = &clock.stats;
    assert_eq!(
        (s.lost, s.underruns, s.dropped, s.inserted),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn the_clock_follows_drift_without_corrections() {
    // ±0.5 % for five minutes: a free tick needs a correction every 4 s;
    // pulls that follow the arrivals need none. A fast sender's arrivals
    // creep earlier, and the late edge of the last 2 s lags them by up to
    // 100 frames × 0.1 ms: about 10 ms more wait than with matched clocks.
    for drift in [1.005, 0.995] {
        let run = simulate(300, drift, Pulls::Clock, uniform(2));
        summary(&format!("{drift}"), &run);
        let s = &run.stats;
        assert_eq!(
            (s.lost, s.late, s.dropped, s.inserted),
            (0, 0, 0, 0),
            "{drift}"
        );
        assert!(s.underruns <= 2, "{drift}: {s:?}");
        eprintln!(
            "{drift}: waits mean {:.2} ms, max {:.2} ms",
            run.mean_wait_ms(5.0, 600.0),
            run.max_wait_ms(5.0, 600.0)
        );
        let lag = if drift > 1.0 { 10.0 } else { 0.0 };
        assert!(run.max_wait_ms(5.0, 600.0) < 6.0 + lag, "{drift}");
    }
}

#[test]
fn the_clock_lets_several_streams_play_without_running_dry() {
    // Two buffers whose packets land 4 and 15 ms into the tick: the clock
    // settles just after the later arrivals, so neither runs dry; the
    // earlier stream waits the 11 ms between, and neither loses anything.
    struct Stream {
        jb: JitterBuffer,
        offset_us: u64,
        sent: u64,
        waits: Vec<u64>,
    }
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    let mut streams = [4_000, 15_000].map(|offset_us| Stream {
        jb: JitterBuffer::new(JitterConfig::default()),
        offset_us,
        sent: 0,
        waits: Vec::new(),
    });
    let mut clock = PlayoutClock::new(FrameDuration::Ms20, t0);
    for _ in 0..500 {
        let pull = (clock.next_pull() - t0).as_micros() as u64;
        for s in &mut streams {
            while s.sent * FRAME_US + s.offset_us <= pull {
                let (seq, sent) = (s.sent as u32, s.sent * FRAME_US);
                s.jb.push(seq, sent, payload(seq), at(sent + s.offset_us));
                s.sent += 1;
            }
            if let Some(seq) = played(&s.jb.pop(at(pull))) {
                s.waits
                    .push(pull - (u64::from(seq) * FRAME_US + s.offset_us));
            }
        }
        clock.follow(streams.iter().map(|s| &s.jb));
    }
    let tail = |s: &Stream| s.waits[s.waits.len() - 300..].iter().copied().max();
    let (a, b) = (tail(&streams[0]), tail(&streams[1]));
    eprintln!("longest waits: {a:?} µs, {b:?} µs");
    assert!(a < Some(11_000 + 3_000));
    assert!(b < Some(3_000));
    for s in streams.iter().map(|s| s.jb.stats()) {
        assert_eq!(
            (s.lost, s.late, s.dropped, s.underruns),
            (0, 0, 0, 0),
            "{s:?}"
        );
        assert!(s.played >= 495, "{s:?}");
    }
}

fn check_bounded(run: &Run, what: &str) {
    summary(what, run);
    // Depth is measured before each pop: the frame about to play, plus one
    // now and then when the jitter (up to 10 ms) brings the next one early.
    let (max, mean) = (run.max_depth(30.0, 1e9), run.mean_depth(30.0, 1e9));
    assert!(max <= 3, "{what}: grew to {max} frames");
    assert!(
        (1.0..=2.0).contains(&mean),
        "{what}: mean depth {mean} frames"
    );
    run.assert_nothing_missed(what);
    assert_eq!(run.stats.duplicates, 0, "{what}");
}

#[test]
fn sender_clock_half_a_percent_fast_for_an_hour() {
    let run = simulate(3600, 1.005, Pulls::Fixed, uniform(10));
    check_bounded(&run, "+0.5%");
    // 0.5 % of 180,000 frames is 900 extra packets to drop.
    let s = &run.stats;
    assert!((850..=950).contains(&s.dropped), "dropped {}", s.dropped);
    assert_eq!(s.inserted, 0);
    assert!(s.underruns <= 20, "{s:?}");
}

#[test]
fn sender_clock_half_a_percent_slow_for_an_hour() {
    let run = simulate(3600, 0.995, Pulls::Fixed, uniform(10));
    check_bounded(&run, "-0.5%");
    // 900 frames concealed in place of the ones the sender did not make.
    let s = &run.stats;
    let inserted = s.inserted + s.underruns;
    assert!((850..=950).contains(&inserted), "inserted {inserted}");
    assert_eq!(s.dropped, 0);
}

#[test]
fn matched_clocks_need_no_correction() {
    let run = simulate(600, 1.0, Pulls::Fixed, uniform(10));
    check_bounded(&run, "0%");
    let s = &run.stats;
    assert!(s.dropped + s.inserted + s.underruns <= 2, "{s:?}");
    assert!(
        s.jitter > Duration::from_millis(1),
        "jitter estimate {:?}",
        s.jitter
    );
    assert!(s.jitter < Duration::from_millis(10));
    // The target is the 10 ms spread plus the headroom, not a fixed 40 ms.
    assert!(s.target >= Duration::from_millis(10) && s.target <= Duration::from_millis(16));
}

#[test]
fn heavy_jitter_with_drift_stays_bounded() {
    // Delay varying by up to 35 ms, more than a frame: packets reorder and
    // some arrive after their slot. The depth must still stay bounded.
    for drift in [1.005, 0.995] {
        for pulls in [Pulls::Fixed, Pulls::Clock] {
            let run = simulate(300, drift, pulls, uniform(35));
            summary(&format!("{drift} {pulls:?}"), &run);
            let s = &run.stats;
            assert!(run.max_depth(0.0, 1e9) <= 4, "{drift} {pulls:?}");
            assert_eq!(run.empty_after_start, 0, "{drift} {pulls:?}");
            assert!(
                s.late + s.underruns < s.received / 100,
                "{drift} {pulls:?}: {s:?}"
            );
        }
    }
}
