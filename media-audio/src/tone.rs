//! Synthetic sources: a sine tone and a speech-like test signal.
//!
//! Both are deterministic, need no hardware, and can run as fast as the
//! caller reads (files, tests, benches) or be paced to real time like a
//! microphone (a test publisher without a sound card).

use std::f64::consts::TAU;
use std::time::Duration;

use crate::pacer::Pacer;
use crate::{check_frames, AudioError, AudioSource, Format};

/// A sine tone, the same in every channel.
#[derive(Debug)]
pub struct ToneSource {
    format: Format,
    amplitude: f32,
    /// Phase advance per frame, radians.
    step: f64,
    /// Current phase, kept in `[0, TAU)` so precision never degrades.
    phase: f64,
    pacer: Option<Pacer>,
    /// Frames left before the end, if the tone has a duration.
    remaining: Option<u64>,
}

impl ToneSource {
    /// A tone of `frequency_hz` at peak `amplitude` (0.0..=1.0 of full
    /// scale), unpaced and endless.
    pub fn new(format: Format, frequency_hz: f32, amplitude: f32) -> Result<Self, AudioError> {
        format.validate()?;
        let nyquist = format.sample_rate as f32 / 2.0;
        if !(frequency_hz > 0.0 && frequency_hz < nyquist) {
            return Err(AudioError::InvalidConfig {
                what: "tone frequency",
                detail: format!("{frequency_hz} Hz is outside (0, {nyquist}) Hz"),
            });
        }
        if !(0.0..=1.0).contains(&amplitude) {
            return Err(AudioError::InvalidConfig {
                what: "tone amplitude",
                detail: format!("{amplitude} is outside 0.0..=1.0"),
            });
        }
        Ok(ToneSource {
            format,
            amplitude,
            step: TAU * f64::from(frequency_hz) / f64::from(format.sample_rate),
            phase: 0.0,
            pacer: None,
            remaining: None,
        })
    }

    /// Paces reads to real time: each `read` returns when the last sample it
    /// yields would have been captured by a microphone.
    pub fn paced(mut self, paced: bool) -> Self {
        self.pacer = paced.then(|| Pacer::new(self.format.sample_rate));
        self
    }

    /// Ends the tone after `duration` (rounded to whole frames).
    pub fn with_duration(mut self, duration: Duration) -> Self {
        let frames = duration.as_secs_f64() * f64::from(self.format.sample_rate);
        self.remaining = Some(frames.round() as u64);
        self
    }
}

impl AudioSource for ToneSource {
    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        let channels = check_frames(out.len(), self.format.channels)?;
        let mut frames = out.len() / channels;
        if let Some(left) = self.remaining.as_mut() {
            frames = frames.min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= frames as u64;
        }
        for frame in out[..frames * channels].chunks_exact_mut(channels) {
            let v = self.amplitude * self.phase.sin() as f32;
            frame.fill(v);
            self.phase = (self.phase + self.step) % TAU;
        }
        if let Some(p) = self.pacer.as_mut() {
            p.advance(frames);
        }
        Ok(frames * channels)
    }
}

/// A deterministic speech-like signal: a voiced harmonic series with a
/// wandering pitch (about 110–190 Hz), vowel-like formants, four syllables a
/// second, and a pause every three seconds.
///
/// It exercises a voice codec the way speech does (pitch changes, onsets,
/// silences), which a pure tone does not; benches and the opus-tools
/// comparison use it so that their numbers mean something for voice.
#[derive(Debug)]
pub struct SpeechLikeSource {
    format: Format,
    amplitude: f32,
    /// Frames produced so far (the signal is a function of time).
    t: u64,
    /// Phase of the fundamental, radians in `[0, TAU)`.
    phase: f64,
    noise: u32,
    pacer: Option<Pacer>,
    remaining: Option<u64>,
}

impl SpeechLikeSource {
    /// A speech-like signal peaking near `amplitude` (0.0..=1.0).
    pub fn new(format: Format, amplitude: f32) -> Result<Self, AudioError> {
        format.validate()?;
        Ok(SpeechLikeSource {
            format,
            amplitude: amplitude.clamp(0.0, 1.0),
            t: 0,
            phase: 0.0,
            noise: 0x1234_5678,
            pacer: None,
            remaining: None,
        })
    }

    /// Paces reads to real time, like [`ToneSource::paced`].
    pub fn paced(mut self, paced: bool) -> Self {
        self.pacer = paced.then(|| Pacer::new(self.format.sample_rate));
        self
    }

    /// Ends the signal after `duration`.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        let frames = duration.as_secs_f64() * f64::from(self.format.sample_rate);
        self.remaining = Some(frames.round() as u64);
        self
    }

    fn next_sample(&mut self) -> f32 {
        let rate = f64::from(self.format.sample_rate);
        let secs = self.t as f64 / rate;
        self.t += 1;
        let f0 = 150.0 + 30.0 * (TAU * 0.7 * secs).sin() + 10.0 * (TAU * 2.3 * secs).sin();
        self.phase = (self.phase + TAU * f0 / rate) % TAU;

        // Syllables at 4 Hz; the last 0.6 s of every 3 s is silence.
        let syllable = (TAU * 4.0 * secs).sin().max(0.0).powi(2);
        let gate = if secs % 3.0 < 2.4 { 1.0 } else { 0.0 };
        let envelope = syllable * gate;
        if envelope == 0.0 {
            return 0.0;
        }
        // First two formants glide with the syllable, like changing vowels.
        let f1 = 500.0 + 200.0 * (TAU * 1.1 * secs).sin();
        let f2 = 1500.0 + 500.0 * (TAU * 0.9 * secs).cos();
        let mut voiced = 0.0;
        let mut k = 1.0;
        while k * f0 < 4000.0 {
            let f = k * f0;
            let formant = (-((f - f1) / 150.0).powi(2)).exp()
                + 0.6 * (-((f - f2) / 250.0).powi(2)).exp()
                + 0.05;
            voiced += formant / k * (k * self.phase).sin();
            k += 1.0;
        }
        // A little breath noise (xorshift), strongest at syllable onsets.
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 17;
        self.noise ^= self.noise << 5;
        let noise = (f64::from(self.noise) / f64::from(u32::MAX) - 0.5) * 0.1;
        self.amplitude * (envelope * (0.8 * voiced + noise)).clamp(-1.0, 1.0) as f32
    }
}

impl AudioSource for SpeechLikeSource {
    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        let channels = check_frames(out.len(), self.format.channels)?;
        let mut frames = out.len() / channels;
        if let Some(left) = self.remaining.as_mut() {
            frames = frames.min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= frames as u64;
        }
        for frame in out[..frames * channels].chunks_exact_mut(channels) {
            let v = self.next_sample();
            frame.fill(v);
        }
        if let Some(p) = self.pacer.as_mut() {
            p.advance(frames);
        }
        Ok(frames * channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_ends_after_its_duration() {
        let mut t = ToneSource::new(Format::MONO_48K, 440.0, 0.5)
            .unwrap()
            .with_duration(Duration::from_millis(50));
        let mut buf = [0.0; 960];
        assert_eq!(t.read(&mut buf).unwrap(), 960);
        assert_eq!(t.read(&mut buf).unwrap(), 960);
        assert_eq!(t.read(&mut buf).unwrap(), 480);
        assert_eq!(t.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn tone_rejects_bad_settings_and_buffers() {
        assert!(ToneSource::new(Format::MONO_48K, 30_000.0, 0.5).is_err());
        assert!(ToneSource::new(Format::MONO_48K, 440.0, 1.5).is_err());
        let mut t = ToneSource::new(Format::STEREO_48K, 440.0, 0.5).unwrap();
        assert!(matches!(
            t.read(&mut [0.0; 3]),
            Err(AudioError::NotWholeFrames {
                len: 3,
                channels: 2
            })
        ));
    }

    #[test]
    fn speech_is_bounded_and_has_pauses() {
        let mut s = SpeechLikeSource::new(Format::MONO_48K, 0.8).unwrap();
        let mut buf = vec![0.0; 48_000 * 3];
        s.read(&mut buf).unwrap();
        assert!(buf.iter().all(|v| v.abs() <= 0.8));
        let peak = buf.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.2, "peak {peak}");
        // 2.4 s .. 3.0 s is a pause.
        assert!(buf[48_000 * 5 / 2..48_000 * 3].iter().all(|v| *v == 0.0));
    }
}
