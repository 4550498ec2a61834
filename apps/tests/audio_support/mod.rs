//! Shared by the audio end-to-end tests: judging received audio by the
//! signal itself (WAV files in and out, the DFT magnitude at one frequency,
//! the dominant frequency, audible time, level and gaps on 20 ms windows),
//! and child processes whose output lines are awaited with a deadline.
//! (`common` holds the server and client fixtures all apps tests share.)

#![allow(dead_code)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

// Child-process helpers every apps test shares.
pub use crate::common::{lines_of, wait_timeout as wait_exit};

use lanlink_audio::{AudioSink, AudioSource, Format, ToneSource, WavSink, WavSource};

/// The rate everything here is at.
pub const RATE: f64 = 48_000.0;

/// Samples in one 20 ms window.
pub const WINDOW: usize = 960;

/// A window is audible above this RMS (a 0.5 sine is 0.354).
pub const AUDIBLE_RMS: f64 = 0.05;

/// Writes `secs` of a 0.5-amplitude sine at `hz` as a 48 kHz mono WAV file.
pub fn write_tone(path: &Path, hz: f32, secs: f64) {
    let mut tone = ToneSource::new(Format::MONO_48K, hz, 0.5)
        .unwrap()
        .with_duration(std::time::Duration::from_secs_f64(secs));
    let mut sink = WavSink::create(path, Format::MONO_48K).unwrap();
    let mut buf = vec![0.0; WINDOW];
    loop {
        let n = tone.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sink.write(&buf[..n]).unwrap();
    }
    sink.finish().unwrap();
}

/// Every sample of a WAV file, as 48 kHz mono.
pub fn read_wav(path: &Path) -> Vec<f32> {
    let mut src = WavSource::open(path, Format::MONO_48K).unwrap();
    let (mut all, mut buf) = (Vec::new(), vec![0.0; 4800]);
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// Root mean square.
pub fn rms(w: &[f32]) -> f64 {
    (w.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / w.len().max(1) as f64).sqrt()
}

/// Magnitude of the DFT of `x` at `hz`.
pub fn magnitude(x: &[f32], hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / RATE;
    let (mut re, mut im) = (0.0, 0.0);
    for (n, v) in x.iter().enumerate() {
        let a = w * n as f64;
        re += f64::from(*v) * a.cos();
        im -= f64::from(*v) * a.sin();
    }
    (re * re + im * im).sqrt() / x.len() as f64
}

/// What the received signal looks like, judged on 20 ms windows.
#[derive(Debug)]
pub struct Analysis {
    /// Seconds of signal above the noise floor.
    pub audible_secs: f64,
    /// The longest silence between the first and last audible window, ms.
    pub longest_gap_ms: f64,
    /// RMS of the audible windows.
    pub level: f64,
    /// The audible part, for spectra.
    pub audible: Vec<f32>,
}

/// Audible time, gaps and level of `x`.
pub fn analyse(x: &[f32]) -> Analysis {
    let windows: Vec<&[f32]> = x.chunks(WINDOW).collect();
    let loud: Vec<bool> = windows.iter().map(|w| rms(w) > AUDIBLE_RMS).collect();
    let first = loud.iter().position(|l| *l).unwrap_or(0);
    let last = loud.iter().rposition(|l| *l).unwrap_or(0);
    let (mut gap, mut longest) = (0, 0);
    for l in loud.get(first..=last).unwrap_or_default() {
        gap = if *l { 0 } else { gap + 1 };
        longest = longest.max(gap);
    }
    let audible: Vec<f32> = windows
        .iter()
        .zip(&loud)
        .filter(|(_, l)| **l)
        .flat_map(|(w, _)| w.iter().copied())
        .collect();
    Analysis {
        audible_secs: loud.iter().filter(|l| **l).count() as f64 * 0.02,
        longest_gap_ms: longest as f64 * 20.0,
        level: rms(&audible),
        audible,
    }
}

/// The strongest frequency between 100 Hz and 4 kHz, on a 10 Hz grid,
/// over (at most) one second of the middle of the signal.
pub fn dominant_hz(x: &[f32]) -> f64 {
    let mid = x.len() / 2;
    let slice = &x[mid.saturating_sub(24_000)..(mid + 24_000).min(x.len())];
    (10..=400)
        .map(|k| f64::from(k) * 10.0)
        .max_by(|a, b| magnitude(slice, *a).total_cmp(&magnitude(slice, *b)))
        .unwrap()
}

/// The number after `"{name}: received "` in a `lanlink listen` report.
pub fn received(report: &str, name: &str) -> u32 {
    report
        .split(&format!("{name}: received "))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits up to `patience` for a line containing `needle`; returns it, or
/// every line seen instead.
pub fn await_line(
    lines: &Receiver<String>,
    needle: &str,
    patience: Duration,
) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + patience;
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_deadline(deadline) {
        if line.contains(needle) {
            return Ok(line);
        }
        seen.push(line);
    }
    Err(seen)
}

/// Kills a child (SIGKILL) and reaps it; for `Drop` guards.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
