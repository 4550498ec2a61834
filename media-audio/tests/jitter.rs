//! Jitter buffer behaviour: ordering, loss, late and duplicate packets,
//! sequence wrap, starvation, restarts, and an hour of clock drift.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lanlink_audio::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};

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
fn waits_for_the_target_then_plays() {
    let mut r = Rig::new();
    r.push(0, 0);
    assert_eq!(r.pop(0), Playout::Empty, "one frame < 40 ms target");
    assert_eq!(r.pop(20), Playout::Empty);
    // A single packet still starts playout once the target delay has passed.
    assert_eq!(played(&r.pop(40)), Some(0));
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
    // Packet 2 shows up after its slot was concealed: late.
    assert_eq!(r.push(2, 150), PushOutcome::Late);
    assert_eq!(played(&r.pop(160)), Some(4));
    let s = r.jb.stats();
    assert_eq!((s.lost, s.concealed, s.late, s.played), (1, 1, 1, 4));
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

#[derive(Debug)]
struct DriftRun {
    stats: JitterStats,
    min_depth: usize,
    max_depth: usize,
    mean_depth: f64,
    empty_after_start: u64,
}

/// Simulates `secs` of a sender whose clock runs `drift` times the
/// receiver's, over a network adding 2 ms plus up to `jitter_ms` of random
/// delay (so packets also reorder), starting near the u32 wrap.
fn simulate(drift: f64, secs: u64, jitter_ms: u64) -> DriftRun {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut in_flight = BinaryHeap::new();
    let mut sent = 0u64;
    let mut run = DriftRun {
        stats: JitterStats::default(),
        min_depth: usize::MAX,
        max_depth: 0,
        mean_depth: 0.0,
        empty_after_start: 0,
    };
    let (mut depth_sum, mut samples, mut started) = (0.0, 0u64, false);
    for k in 0..secs * 50 {
        let now_us = k * FRAME_US;
        // Send everything the sender's clock has produced by now.
        while (sent as f64 * FRAME_US as f64 / drift) as u64 <= now_us {
            let send_us = (sent as f64 * FRAME_US as f64 / drift) as u64;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let arrive = send_us + 2_000 + rng % (jitter_ms * 1000 + 1);
            in_flight.push(Reverse((arrive, sent)));
            sent += 1;
        }
        while let Some(Reverse((arrive, i))) = in_flight.peek().copied() {
            if arrive > now_us {
                break;
            }
            in_flight.pop();
            let seq = (u32::MAX - 500).wrapping_add(i as u32);
            let at = t0 + Duration::from_micros(arrive);
            jb.push(seq, i * FRAME_US, payload(seq), at);
        }
        let depth = jb.stats().depth;
        let playout = jb.pop(t0 + Duration::from_micros(now_us));
        started |= !matches!(playout, Playout::Empty);
        if started && matches!(playout, Playout::Empty) {
            run.empty_after_start += 1;
        }
        if now_us > 30_000_000 {
            run.min_depth = run.min_depth.min(depth);
            run.max_depth = run.max_depth.max(depth);
            depth_sum += depth as f64;
            samples += 1;
        }
    }
    run.mean_depth = depth_sum / samples as f64;
    run.stats = jb.stats();
    run
}

fn check_bounded(run: &DriftRun, what: &str) {
    eprintln!("{what}: {run:?}");
    // Target is 2 frames (40 ms). Depth is measured before each pop.
    assert!(
        run.max_depth <= 5,
        "{what}: grew to {} frames: {run:?}",
        run.max_depth
    );
    assert!(
        (1.5..=3.5).contains(&run.mean_depth),
        "{what}: mean depth {} frames: {run:?}",
        run.mean_depth
    );
    assert_eq!(run.empty_after_start, 0, "{what}: starved: {run:?}");
    let s = &run.stats;
    assert_eq!((s.lost, s.late, s.duplicates), (0, 0, 0), "{what}: {run:?}");
    assert!(
        s.underruns <= 20,
        "{what}: {} underruns in an hour: {run:?}",
        s.underruns
    );
}

#[test]
fn sender_clock_half_a_percent_fast_for_an_hour() {
    let run = simulate(1.005, 3600, 10);
    check_bounded(&run, "+0.5%");
    // 0.5 % of 180,000 frames is 900 extra packets to drop.
    let dropped = run.stats.dropped;
    assert!((850..=950).contains(&dropped), "dropped {dropped}: {run:?}");
    assert_eq!(run.stats.inserted, 0);
}

#[test]
fn sender_clock_half_a_percent_slow_for_an_hour() {
    let run = simulate(0.995, 3600, 10);
    check_bounded(&run, "-0.5%");
    let inserted = run.stats.inserted + run.stats.underruns;
    assert!(
        (850..=950).contains(&inserted),
        "inserted {inserted}: {run:?}"
    );
    assert_eq!(run.stats.dropped, 0);
}

#[test]
fn matched_clocks_need_no_correction() {
    let run = simulate(1.0, 600, 10);
    check_bounded(&run, "0%");
    assert!(run.stats.dropped + run.stats.inserted <= 2, "{run:?}");
    assert!(
        run.stats.jitter > Duration::from_millis(1),
        "jitter estimate {:?}",
        run.stats.jitter
    );
    assert!(run.stats.jitter < Duration::from_millis(10));
}

#[test]
fn heavy_jitter_with_drift_stays_bounded() {
    // Delay varying by up to 35 ms, more than a frame: packets reorder and
    // some arrive after their slot. The depth must still stay near target.
    for drift in [1.005, 0.995] {
        let run = simulate(drift, 600, 35);
        eprintln!("{drift}: {run:?}");
        let s = &run.stats;
        assert!(run.max_depth <= 6, "{drift}: {run:?}");
        assert_eq!(run.empty_after_start, 0, "{drift}: {run:?}");
        assert!(s.late + s.underruns < s.received / 100, "{drift}: {run:?}");
    }
}
