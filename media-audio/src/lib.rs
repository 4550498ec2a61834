//! Audio for lanlink: capture and playback through cpal, Opus encoding and
//! decoding, a jitter buffer, and hardware-free sources and sinks (tone,
//! speech-like signal, WAV file, null) behind the same two traits as real
//! devices.
//!
//! Sound cards are behind the `device` feature (on by default): with
//! `default-features = false` the crate builds without cpal and ALSA and
//! keeps everything else.
//!
//! Inside lanlink audio is 48 kHz, interleaved `f32` in `-1.0..=1.0`, mono
//! or stereo, moved in fixed frames of 10 or 20 ms ([`FrameDuration`]).
//! Devices and files at other rates or channel counts are converted at the
//! edge. The crate owns no sockets: the network relay carries the
//! [`OpusEncoder`]'s packets and feeds them to a [`JitterBuffer`] on the far
//! side.
//!
//! # Layout
//!
//! | module | what |
//! |---|---|
//! | [`AudioSource`], [`AudioSink`], [`Format`] | the two traits every backend implements |
//! | [`tone`] | [`ToneSource`], [`SpeechLikeSource`]: synthetic, optionally paced to real time |
//! | [`wav`] | [`WavSource`] (any rate/channels in, converted), [`WavSink`] |
//! | [`NullSink`] | discards audio, optionally paced like a sound card |
#![cfg_attr(
    feature = "device",
    doc = "| [`device`] | cpal capture and playback: [`list_devices`], [`CaptureStream`], [`PlaybackStream`], [`StreamOptions`] (feature `device`) |"
)]
//! | [`resample`] | [`Resampler`] (rubato), [`remix`], [`Converter`](resample::Converter) for both |
//! | [`codec`] | [`OpusEncoder`], [`OpusDecoder`], [`OpusConfig`] presets |
//! | [`jitter`] | [`JitterBuffer`]: sans-IO reordering, loss concealment, a delay that follows the measured jitter |
//! | [`playout`] | [`PlayoutClock`]: when a play loop pulls its next frame, aligned to packet arrival |
//!
//! # Example
//!
//! A tone goes through Opus, a jitter buffer that sees packets out of order
//! and one loss, and the decoder, into a WAV file. No hardware involved; a
//! real receiver gets `now` from its clock and packets from the network.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lanlink_audio::{
//!     AudioSink, AudioSource, Format, JitterBuffer, JitterConfig, OpusConfig,
//!     OpusDecoder, OpusEncoder, ToneSource, WavSink,
//! };
//!
//! # fn main() -> Result<(), lanlink_audio::AudioError> {
//! let config = OpusConfig::voice(1);
//! let frame = config.frame.samples(Format::MONO_48K);
//! let mut tone = ToneSource::new(Format::MONO_48K, 440.0, 0.5)?
//!     .with_duration(Duration::from_secs(1));
//! let mut encoder = OpusEncoder::new(config)?;
//!
//! // Sender: 50 packets of 20 ms, sequence numbers and capture timestamps.
//! let mut pcm = vec![0.0; frame];
//! let mut packets = Vec::new();
//! while tone.read(&mut pcm)? == frame {
//!     let seq = packets.len() as u32;
//!     packets.push((seq, u64::from(seq) * 20_000, encoder.encode_to_vec(&pcm)?));
//! }
//! packets.swap(10, 11); // reordered on the way
//! packets.remove(30); // and one lost
//!
//! // Receiver: push as packets arrive, pop one frame every 20 ms.
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("out.wav");
//! let mut sink = WavSink::create(&path, Format::MONO_48K)?;
//! let mut jitter = JitterBuffer::new(JitterConfig::default());
//! let mut decoder = OpusDecoder::new(1, config.frame)?;
//! let start = Instant::now();
//! for (i, (seq, ts, payload)) in packets.into_iter().enumerate() {
//!     let now = start + Duration::from_millis(20 * i as u64);
//!     jitter.push(seq, ts, payload.into(), now);
//!     let playout = jitter.pop(now);
//!     let n = decoder.play(&playout, &mut pcm)?; // 0 while buffering
//!     sink.write(&pcm[..n])?;
//! }
//! sink.finish()?;
//! assert_eq!(jitter.stats().lost, 1);
//! # Ok(())
//! # }
//! ```

pub mod codec;
#[cfg(feature = "device")]
pub mod device;
mod error;
pub mod jitter;
mod null;
mod pacer;
pub mod playout;
pub mod resample;
pub mod tone;
pub mod wav;

pub use codec::{OpusApplication, OpusConfig, OpusDecoder, OpusEncoder};
#[cfg(feature = "device")]
pub use device::{list_devices, CaptureStream, DeviceInfo, PlaybackStream, StreamOptions};
pub use error::AudioError;
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
pub use null::NullSink;
pub use pacer::Pacer;
pub use playout::PlayoutClock;
pub use resample::{remix, Resampler};
pub use tone::{SpeechLikeSource, ToneSource};
pub use wav::{WavSink, WavSource};

use std::fmt;
use std::time::Duration;

/// The sample rate of everything inside lanlink (and Opus's native rate).
pub const SAMPLE_RATE: u32 = 48_000;

/// Sample rate and channel count of interleaved `f32` audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Format {
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels per frame (1 mono, 2 stereo).
    pub channels: u16,
}

impl Format {
    /// 48 kHz mono.
    pub const MONO_48K: Format = Format::new(SAMPLE_RATE, 1);
    /// 48 kHz stereo.
    pub const STEREO_48K: Format = Format::new(SAMPLE_RATE, 2);

    /// A format of `sample_rate` Hz and `channels` channels.
    pub const fn new(sample_rate: u32, channels: u16) -> Self {
        Format {
            sample_rate,
            channels,
        }
    }

    /// Checks that rate and channel count are usable (non-zero, at most
    /// 384 kHz and 32 channels).
    pub fn validate(&self) -> Result<(), AudioError> {
        if self.sample_rate == 0 || self.sample_rate > 384_000 {
            return Err(AudioError::InvalidConfig {
                what: "format",
                detail: format!("sample rate {} Hz", self.sample_rate),
            });
        }
        if self.channels == 0 || self.channels > 32 {
            return Err(AudioError::InvalidConfig {
                what: "format",
                detail: format!("{} channels", self.channels),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz x{}", self.sample_rate, self.channels)
    }
}

/// How much audio one frame (and one Opus packet) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FrameDuration {
    /// 10 ms: lower latency, about 10% more bitrate overhead.
    Ms10,
    /// 20 ms: the usual choice for voice over IP.
    #[default]
    Ms20,
}

impl FrameDuration {
    /// The frame length as a duration.
    pub const fn duration(self) -> Duration {
        match self {
            FrameDuration::Ms10 => Duration::from_millis(10),
            FrameDuration::Ms20 => Duration::from_millis(20),
        }
    }

    /// Frames (samples per channel) in one frame at `sample_rate`.
    pub const fn frames(self, sample_rate: u32) -> usize {
        match self {
            FrameDuration::Ms10 => sample_rate as usize / 100,
            FrameDuration::Ms20 => sample_rate as usize / 50,
        }
    }

    /// Interleaved samples (all channels) in one frame of `format`.
    pub const fn samples(self, format: Format) -> usize {
        self.frames(format.sample_rate) * format.channels as usize
    }
}

/// Capture (input) or playback (output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Capture: microphones, line in.
    Input,
    /// Playback: speakers, headphones.
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// Something that yields audio: a microphone, a file, a generator.
///
/// # Contract
///
/// * [`read`](Self::read) fills `out` with interleaved samples in
///   [`format`](Self::format). `out.len()` must be a whole number of frames
///   (a multiple of the channel count); the caller picks the frame size,
///   typically [`FrameDuration::samples`].
/// * It fills `out` completely and returns `out.len()`, except at the end of
///   a finite source, where it returns the samples that were left (fewer
///   than asked, possibly 0). After that it returns `Ok(0)` forever.
/// * Pacing: live sources (a device, a source built with `.paced(true)`)
///   block until the whole frame has been captured, so a loop around `read`
///   runs at the source's clock and needs no timer of its own. Files and
///   unpaced generators return at once, as fast as the caller asks.
/// * A live source that falls silent (device stalled or unplugged) returns
///   an error rather than blocking forever.
pub trait AudioSource: Send {
    /// Rate and channel count of what `read` yields.
    fn format(&self) -> Format;

    /// Fills `out` with the next samples; see the trait docs for the
    /// blocking and end-of-stream rules.
    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError>;
}

/// Something that takes audio: a speaker, a file, nothing.
///
/// # Contract
///
/// * [`write`](Self::write) takes whole frames of interleaved samples in
///   [`format`](Self::format), of any length; frame-sized writes are usual.
/// * Pacing: a device sink blocks while its buffer is full, so a loop that
///   writes one frame at a time runs at the device's clock (which is what a
///   receiver's jitter buffer should be driven by). File sinks and unpaced
///   null sinks return at once.
/// * [`finish`](Self::finish) ends the stream (finalises a file, lets a
///   device play out). Dropping a sink without `finish` discards errors.
pub trait AudioSink: Send {
    /// Rate and channel count `write` expects.
    fn format(&self) -> Format;

    /// Takes `frame`; see the trait docs for blocking.
    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError>;

    /// Ends the stream, reporting any error that a drop would swallow.
    fn finish(&mut self) -> Result<(), AudioError> {
        Ok(())
    }
}

impl<S: AudioSource + ?Sized> AudioSource for Box<S> {
    fn format(&self) -> Format {
        (**self).format()
    }
    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        (**self).read(out)
    }
}

impl<S: AudioSink + ?Sized> AudioSink for Box<S> {
    fn format(&self) -> Format {
        (**self).format()
    }
    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        (**self).write(frame)
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        (**self).finish()
    }
}

/// Checks that `len` samples are whole frames of `channels`; returns the
/// channel count as `usize`.
pub(crate) fn check_frames(len: usize, channels: u16) -> Result<usize, AudioError> {
    let ch = usize::from(channels.max(1));
    if len % ch != 0 {
        return Err(AudioError::NotWholeFrames { len, channels });
    }
    Ok(ch)
}
