//! Sample-rate and channel-count conversion for streams of interleaved `f32`.
//!
//! Everything inside lanlink runs at 48 kHz; devices and files do not always.
//! [`Resampler`] wraps `rubato`'s FFT resampler (fixed ratio, high quality,
//! cheap) behind a streaming interface that takes any amount of input and
//! appends whatever output is ready, so callers never deal with rubato's
//! chunk sizes. Clock drift between devices is not this module's job: the
//! jitter buffer absorbs it.

use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

use crate::{AudioError, Format};

/// Converts interleaved audio from one channel count to another, appending
/// to `out`.
///
/// To mono: the average of all channels. From mono: the one channel copied
/// into every output channel. Otherwise output channel `i` takes input
/// channel `i`, wrapping around when the input has fewer channels (stereo
/// from 5.1 keeps front left and right).
pub fn remix(input: &[f32], from: u16, to: u16, out: &mut Vec<f32>) {
    let (from, to) = (usize::from(from.max(1)), usize::from(to.max(1)));
    if from == to {
        out.extend_from_slice(input);
        return;
    }
    let frames = input.chunks_exact(from);
    out.reserve(frames.len() * to);
    for frame in frames {
        if to == 1 {
            out.push(frame.iter().sum::<f32>() / from as f32);
        } else {
            out.extend((0..to).map(|i| frame[i % from]));
        }
    }
}

/// A streaming fixed-ratio sample-rate converter over interleaved `f32`.
///
/// Input of any length goes in through [`process`](Self::process); output
/// frames are appended as soon as a block is complete. The filter's start-up
/// delay is trimmed, so output sample `n` lines up with input time
/// `n / to_rate`. At the end of a stream, [`flush`](Self::flush) pushes out
/// the tail so the total length is the input length times the ratio.
/// When both rates are equal it is a plain copy.
///
/// After the first blocks it does not allocate as long as the caller reuses
/// its output `Vec`.
pub struct Resampler {
    from: u32,
    to: u32,
    channels: usize,
    /// `None` when `from == to`.
    inner: Option<Fft<f32>>,
    /// Interleaved input not yet consumed by a block.
    pending: Vec<f32>,
    /// One block of interleaved output.
    scratch: Vec<f32>,
    /// Output frames of start-up delay still to drop.
    trim: usize,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz for `channels` interleaved
    /// channels. Blocks are about 10 ms of input.
    pub fn new(from: u32, to: u32, channels: u16) -> Result<Self, AudioError> {
        if from == 0 || to == 0 || channels == 0 {
            return Err(AudioError::InvalidConfig {
                what: "resampler",
                detail: format!("{from} Hz -> {to} Hz, {channels} channels"),
            });
        }
        let channels = usize::from(channels);
        let inner = if from == to {
            None
        } else {
            let chunk = (from as usize / 100).max(1);
            let fft = Fft::new(
                from as usize,
                to as usize,
                chunk,
                channels,
                FixedSync::Input,
            )
            .map_err(|source| AudioError::ResamplerSetup { from, to, source })?;
            Some(fft)
        };
        let (trim, scratch_frames) = match &inner {
            Some(r) => (r.output_delay(), r.output_frames_max()),
            None => (0, 0),
        };
        Ok(Resampler {
            from,
            to,
            channels,
            inner,
            pending: Vec::new(),
            scratch: vec![0.0; scratch_frames * channels],
            trim,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Output rate over input rate.
    pub fn ratio(&self) -> f64 {
        f64::from(self.to) / f64::from(self.from)
    }

    /// Audio that goes in but has not yet come out: the filter's look-ahead
    /// plus up to one block of buffered input.
    pub fn latency(&self) -> Duration {
        match &self.inner {
            None => Duration::ZERO,
            Some(r) => {
                let frames =
                    r.input_frames_max() + r.output_delay() * self.from as usize / self.to as usize;
                Duration::from_secs_f64(frames as f64 / f64::from(self.from))
            }
        }
    }

    /// Feeds interleaved `input` (whole frames) and appends every output
    /// frame that is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        let channels = crate::check_frames(input.len(), self.channels as u16)?;
        self.frames_in += (input.len() / channels) as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.frames_out += (input.len() / channels) as u64;
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        loop {
            let need = self.inner.as_ref().map_or(0, |r| r.input_frames_next());
            if self.pending.len() < need * channels {
                return Ok(());
            }
            let used = self.block(need, None, out)?;
            self.pending.drain(..used * channels);
        }
    }

    /// Ends the stream: resamples what is still buffered, padded with
    /// silence, and appends output until it totals the input length times
    /// the ratio. The converter can then be reused for a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let expected = (self.frames_in as f64 * self.ratio()).round() as u64;
        if self.inner.is_some() {
            let start = out.len();
            let frames = self.pending.len() / self.channels;
            self.block(frames, Some(frames), out)?;
            self.pending.clear();
            while self.frames_out < expected {
                self.block(0, Some(0), out)?;
            }
            // The last block overshoots; cut back to the exact length.
            let extra = (self.frames_out - expected) as usize;
            let keep = (out.len() - start).saturating_sub(extra * self.channels);
            out.truncate(start + keep);
        }
        self.reset();
        Ok(())
    }

    /// Forgets all buffered audio and filter state.
    pub fn reset(&mut self) {
        if let Some(r) = self.inner.as_mut() {
            r.reset();
            self.trim = r.output_delay();
        }
        self.pending.clear();
        self.frames_in = 0;
        self.frames_out = 0;
    }

    /// Runs one rubato block over the first `frames` pending frames
    /// (`partial`: fewer than a block, rest is silence) and appends its
    /// output minus any start-up delay still to trim. Returns input frames
    /// consumed.
    fn block(
        &mut self,
        frames: usize,
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<usize, AudioError> {
        let Some(r) = self.inner.as_mut() else {
            return Ok(0);
        };
        let ch = self.channels;
        let input =
            InterleavedSlice::new(&self.pending[..frames * ch], ch, frames).map_err(|_| {
                AudioError::NotWholeFrames {
                    len: frames * ch,
                    channels: ch as u16,
                }
            })?;
        let out_frames = self.scratch.len() / ch;
        let mut output =
            InterleavedSlice::new_mut(&mut self.scratch, ch, out_frames).map_err(|_| {
                AudioError::NotWholeFrames {
                    len: out_frames * ch,
                    channels: ch as u16,
                }
            })?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (used, produced) = r.process_into_buffer(&input, &mut output, indexing.as_ref())?;
        let skip = self.trim.min(produced);
        self.trim -= skip;
        out.extend_from_slice(&self.scratch[skip * ch..produced * ch]);
        self.frames_out += (produced - skip) as u64;
        Ok(used)
    }
}

/// Converts interleaved audio from one [`Format`] to another: channel count
/// with [`remix`], rate with a [`Resampler`].
///
/// It resamples at the smaller channel count (downmix first, upmix last),
/// which does the same job for less work.
#[derive(Debug)]
pub struct Converter {
    from: Format,
    to: Format,
    resampler: Resampler,
    /// Remix output waiting for the resampler, or resampler output waiting
    /// for the upmix.
    scratch: Vec<f32>,
}

impl Converter {
    /// A converter from `from` to `to`.
    pub fn new(from: Format, to: Format) -> Result<Self, AudioError> {
        from.validate()?;
        to.validate()?;
        let channels = from.channels.min(to.channels);
        Ok(Converter {
            from,
            to,
            resampler: Resampler::new(from.sample_rate, to.sample_rate, channels)?,
            scratch: Vec::new(),
        })
    }

    /// The input format.
    pub fn from(&self) -> Format {
        self.from
    }

    /// The output format.
    pub fn to(&self) -> Format {
        self.to
    }

    /// Converts `input` (whole frames of the input format), appending the
    /// output that is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        crate::check_frames(input.len(), self.from.channels)?;
        self.scratch.clear();
        if self.to.channels <= self.from.channels {
            remix(
                input,
                self.from.channels,
                self.to.channels,
                &mut self.scratch,
            );
            self.resampler.process(&self.scratch, out)
        } else {
            self.resampler.process(input, &mut self.scratch)?;
            remix(&self.scratch, self.from.channels, self.to.channels, out);
            Ok(())
        }
    }

    /// Ends the stream; see [`Resampler::flush`].
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.scratch.clear();
        if self.to.channels <= self.from.channels {
            self.resampler.flush(out)
        } else {
            self.resampler.flush(&mut self.scratch)?;
            remix(&self.scratch, self.from.channels, self.to.channels, out);
            Ok(())
        }
    }

    /// Audio held inside the converter; see [`Resampler::latency`].
    pub fn latency(&self) -> Duration {
        self.resampler.latency()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|n| (std::f32::consts::TAU * freq * n as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn remix_rules() {
        let mut out = Vec::new();
        remix(&[0.25, 0.5, 0.5, 1.0], 2, 1, &mut out);
        assert_eq!(out, vec![0.375, 0.75]);
        out.clear();
        remix(&[0.1, 0.2], 1, 2, &mut out);
        assert_eq!(out, vec![0.1, 0.1, 0.2, 0.2]);
        out.clear();
        remix(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 6, 2, &mut out);
        assert_eq!(out, vec![1.0, 2.0]);
    }

    #[test]
    fn length_and_alignment_survive_odd_chunks() {
        let input = sine(44_100, 1000.0, 44_100);
        let mut r = Resampler::new(44_100, 48_000, 1).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(333) {
            r.process(chunk, &mut out).unwrap();
        }
        r.flush(&mut out).unwrap();
        assert_eq!(out.len(), 48_000);
        // The start-up delay is trimmed: the output follows the ideal 48 kHz
        // sine to within half a sample (rubato's FFT delay is a whole number
        // of output frames, the true one is not).
        let best = [-1.0, -0.5, 0.0, 0.5, 1.0]
            .iter()
            .map(|shift| {
                (1000..47_000)
                    .map(|n| {
                        let t = (n as f64 - shift) / 48_000.0;
                        let ideal = (std::f64::consts::TAU * 1000.0 * t).sin() * 0.5;
                        (f64::from(out[n]) - ideal).abs()
                    })
                    .fold(0.0, f64::max)
            })
            .fold(f64::MAX, f64::min);
        assert!(best < 0.01, "max error {best}");
    }

    #[test]
    fn equal_rates_copy() {
        let mut r = Resampler::new(48_000, 48_000, 2).unwrap();
        let mut out = Vec::new();
        r.process(&[0.1, 0.2, 0.3, 0.4], &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(r.latency(), Duration::ZERO);
    }
}
