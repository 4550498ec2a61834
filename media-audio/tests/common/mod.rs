//! Signal measurements shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::f64::consts::TAU;

/// Frequency from the count of rising zero crossings of one channel.
pub fn zero_crossing_hz(samples: &[f32], rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, _)| i)
        .collect();
    let (Some(first), Some(last)) = (crossings.first(), crossings.last()) else {
        return 0.0;
    };
    if first == last {
        return 0.0;
    }
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
}

/// Amplitude of the `freq` component (a single DFT bin via Goertzel),
/// scaled so a sine of peak `a` reads `a`.
pub fn tone_amplitude(samples: &[f32], rate: u32, freq: f64) -> f64 {
    let w = TAU * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len() as f64
}

/// The strongest frequency between `lo` and `hi` Hz, scanned in `step` Hz.
pub fn dominant_hz(samples: &[f32], rate: u32, lo: f64, hi: f64, step: f64) -> f64 {
    let mut best = (0.0, lo);
    let mut f = lo;
    while f <= hi {
        let a = tone_amplitude(samples, rate, f);
        if a > best.0 {
            best = (a, f);
        }
        f += step;
    }
    best.1
}

/// Root mean square.
pub fn rms(samples: &[f32]) -> f64 {
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// One channel of interleaved audio.
pub fn channel(samples: &[f32], channels: usize, which: usize) -> Vec<f32> {
    samples
        .iter()
        .skip(which)
        .step_by(channels)
        .copied()
        .collect()
}
