//! WAV files as a source and a sink (`hound`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use crate::resample::Converter;
use crate::{check_frames, AudioError, AudioSink, AudioSource, Format};

/// Source frames decoded per refill; about 20 ms at 48 kHz.
const READ_FRAMES: usize = 1024;

/// Reads a WAV file and yields it in a chosen format, converting channel
/// count and sample rate on the way.
///
/// Takes 8/16/24/32-bit integer and 32-bit float files. Not paced: reads
/// return as fast as the file decodes. At the end of the file the
/// resampler's tail is flushed, so a 1 s file at 44.1 kHz yields 1 s at
/// 48 kHz.
pub struct WavSource {
    path: PathBuf,
    reader: WavReader<BufReader<File>>,
    spec: WavSpec,
    format: Format,
    converter: Converter,
    /// Raw samples of the current refill, in the file's format.
    raw: Vec<f32>,
    /// Converted samples not yet handed out.
    ready: Vec<f32>,
    /// Start of the unread part of `ready`.
    cursor: usize,
    eof: bool,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WavSource {
    /// Opens `path` and yields its audio in `format` (usually
    /// [`Format::MONO_48K`] or [`Format::STEREO_48K`]).
    pub fn open(path: impl AsRef<Path>, format: Format) -> Result<Self, AudioError> {
        let path = path.as_ref().to_path_buf();
        let wav_err = |source| AudioError::Wav {
            path: path.clone(),
            source,
        };
        let reader = WavReader::open(&path).map_err(wav_err)?;
        let spec = reader.spec();
        if spec.sample_format == SampleFormat::Float && spec.bits_per_sample != 32 {
            return Err(wav_err(hound::Error::Unsupported));
        }
        let file_format = Format::new(spec.sample_rate, spec.channels);
        let converter = Converter::new(file_format, format)?;
        Ok(WavSource {
            path,
            reader,
            spec,
            format,
            converter,
            raw: Vec::new(),
            ready: Vec::new(),
            cursor: 0,
            eof: false,
        })
    }

    /// The file's own rate and channel count.
    pub fn file_format(&self) -> Format {
        Format::new(self.spec.sample_rate, self.spec.channels)
    }

    /// Decodes the next block of the file into `ready`.
    fn refill(&mut self) -> Result<(), AudioError> {
        self.ready.drain(..self.cursor);
        self.cursor = 0;
        self.raw.clear();
        let want = READ_FRAMES * usize::from(self.spec.channels);
        let wav_err = |source| AudioError::Wav {
            path: self.path.clone(),
            source,
        };
        match self.spec.sample_format {
            SampleFormat::Float => {
                for s in self.reader.samples::<f32>().take(want) {
                    self.raw.push(s.map_err(wav_err)?);
                }
            }
            SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (self.spec.bits_per_sample - 1)) as f32;
                for s in self.reader.samples::<i32>().take(want) {
                    self.raw.push(s.map_err(wav_err)? as f32 * scale);
                }
            }
        }
        // A truncated last frame (a damaged file) is dropped, not misaligned.
        let whole = self.raw.len() - self.raw.len() % usize::from(self.spec.channels);
        self.raw.truncate(whole);
        if self.raw.is_empty() {
            self.eof = true;
            self.converter.flush(&mut self.ready)
        } else {
            self.converter.process(&self.raw, &mut self.ready)
        }
    }
}

impl AudioSource for WavSource {
    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        check_frames(out.len(), self.format.channels)?;
        while self.ready.len() - self.cursor < out.len() && !self.eof {
            self.refill()?;
        }
        let n = out.len().min(self.ready.len() - self.cursor);
        out[..n].copy_from_slice(&self.ready[self.cursor..self.cursor + n]);
        self.cursor += n;
        Ok(n)
    }
}

/// Writes audio to a WAV file, 16-bit integer or 32-bit float.
///
/// Not paced. [`finish`](AudioSink::finish) writes the final header;
/// dropping the sink does the same but cannot report an error.
pub struct WavSink {
    path: PathBuf,
    format: Format,
    float: bool,
    writer: Option<WavWriter<std::io::BufWriter<File>>>,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("float", &self.float)
            .finish_non_exhaustive()
    }
}

impl WavSink {
    /// Creates (or truncates) `path` as a 16-bit PCM WAV file; samples are
    /// clipped to `-1.0..=1.0`.
    pub fn create(path: impl AsRef<Path>, format: Format) -> Result<Self, AudioError> {
        Self::create_with(path.as_ref(), format, false)
    }

    /// Creates `path` as a 32-bit float WAV file (lossless for `f32`).
    pub fn create_float(path: impl AsRef<Path>, format: Format) -> Result<Self, AudioError> {
        Self::create_with(path.as_ref(), format, true)
    }

    fn create_with(path: &Path, format: Format, float: bool) -> Result<Self, AudioError> {
        format.validate()?;
        let spec = WavSpec {
            channels: format.channels,
            sample_rate: format.sample_rate,
            bits_per_sample: if float { 32 } else { 16 },
            sample_format: if float {
                SampleFormat::Float
            } else {
                SampleFormat::Int
            },
        };
        let writer = WavWriter::create(path, spec).map_err(|source| AudioError::Wav {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(WavSink {
            path: path.to_path_buf(),
            format,
            float,
            writer: Some(writer),
        })
    }
}

impl AudioSink for WavSink {
    fn format(&self) -> Format {
        self.format
    }

    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        check_frames(frame.len(), self.format.channels)?;
        let Some(writer) = self.writer.as_mut() else {
            return Err(AudioError::Wav {
                path: self.path.clone(),
                source: hound::Error::IoError(std::io::ErrorKind::BrokenPipe.into()),
            });
        };
        let result = if self.float {
            frame.iter().try_for_each(|s| writer.write_sample(*s))
        } else {
            frame.iter().try_for_each(|s| {
                let v = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
                writer.write_sample(v)
            })
        };
        result.map_err(|source| AudioError::Wav {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|source| AudioError::Wav {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let data: Vec<f32> = (0..960).map(|i| (i as f32 / 960.0) - 0.5).collect();
        let mut sink = WavSink::create_float(&path, Format::STEREO_48K).unwrap();
        sink.write(&data).unwrap();
        sink.finish().unwrap();
        let mut src = WavSource::open(&path, Format::STEREO_48K).unwrap();
        let mut back = vec![0.0; 2000];
        assert_eq!(src.read(&mut back).unwrap(), 960);
        assert_eq!(&back[..960], &data[..]);
        assert_eq!(src.read(&mut back).unwrap(), 0);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = WavSource::open("/nonexistent/x.wav", Format::MONO_48K).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.wav"), "{err}");
    }
}
