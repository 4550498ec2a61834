//! A sink that discards audio.

use crate::pacer::Pacer;
use crate::{check_frames, AudioError, AudioSink, Format};

/// Discards what it is given and counts it.
///
/// Paced (see [`NullSink::paced`]), it consumes audio at the rate a sound
/// card would, so a receiver with no speakers still drains its jitter buffer
/// at the right speed.
#[derive(Debug)]
pub struct NullSink {
    format: Format,
    frames: u64,
    pacer: Option<Pacer>,
}

impl NullSink {
    /// An unpaced null sink for `format`.
    pub fn new(format: Format) -> Self {
        NullSink {
            format,
            frames: 0,
            pacer: None,
        }
    }

    /// Paces writes to real time: each `write` returns once its audio would
    /// have been played.
    pub fn paced(mut self, paced: bool) -> Self {
        self.pacer = paced.then(|| Pacer::new(self.format.sample_rate));
        self
    }

    /// Frames (samples per channel) written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }
}

impl AudioSink for NullSink {
    fn format(&self) -> Format {
        self.format
    }

    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        let channels = check_frames(frame.len(), self.format.channels)?;
        let frames = frame.len() / channels;
        self.frames += frames as u64;
        if let Some(p) = self.pacer.as_mut() {
            p.advance(frames);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_frames() {
        let mut s = NullSink::new(Format::STEREO_48K);
        s.write(&[0.0; 1920]).unwrap();
        assert_eq!(s.frames_written(), 960);
        assert!(s.write(&[0.0; 3]).is_err());
    }
}
