//! Capture from a sound card.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, Sample, SizedSample};
use rtrb::{Consumer, Producer, RingBuffer};

use super::worker::{with_sample_type, Build, Shared, StreamThread, POLL};
use super::{DeviceConfig, StreamOptions, StreamStats};
use crate::resample::Converter;
use crate::{check_frames, AudioError, AudioSource, Direction, Format};

/// A capture device as an [`AudioSource`] of 48 kHz frames.
///
/// `read` blocks until a whole frame has been captured, so the device's
/// clock paces the caller. The callback pushes device samples into a ring;
/// `read` pulls them, remixes and resamples on the caller's thread.
pub struct CaptureStream {
    // Declared first so it drops first: the stream stops before the ring
    // end it feeds goes away.
    _thread: StreamThread,
    device: String,
    config: DeviceConfig,
    format: Format,
    consumer: Consumer<f32>,
    converter: Converter,
    /// Device samples taken from the ring, before conversion.
    raw: Vec<f32>,
    /// Converted samples not yet handed out, from `cursor` on.
    ready: Vec<f32>,
    cursor: usize,
    shared: Arc<Shared>,
    options: StreamOptions,
}

impl std::fmt::Debug for CaptureStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureStream")
            .field("device", &self.device)
            .field("config", &self.config)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl CaptureStream {
    /// Opens the capture device with id or name `name` (or the default
    /// device for `None`) and starts it.
    ///
    /// A missing device is [`AudioError::DeviceNotFound`], which lists the
    /// capture devices that do exist.
    pub fn open(name: Option<&str>, options: StreamOptions) -> Result<Self, AudioError> {
        options.format.validate()?;
        let shared = Arc::new(Shared::default());
        let cb_shared = Arc::clone(&shared);
        let latency = options.latency;
        let build: Build<Consumer<f32>> = Box::new(move |device, id, stream_config, config| {
            let channels = usize::from(config.channels);
            let frames = (latency.as_secs_f64() * f64::from(config.sample_rate)).ceil() as usize;
            let (producer, consumer) = RingBuffer::new(frames.max(64) * channels);
            let stream = with_sample_type!(config.sample_format, id, T => device
            .build_input_stream::<T, _, _>(
                *stream_config,
                callback::<T>(producer, channels, Arc::clone(&cb_shared)),
                cb_shared.error_callback(),
                None,
            )
            .map_err(|source| AudioError::Backend {
                op: "build input stream",
                device: id.to_string(),
                source,
            }))?;
            Ok((stream, consumer))
        });
        let (thread, opened) = StreamThread::spawn(name, Direction::Input, &options, build)?;
        let device_format = Format::new(opened.config.sample_rate, opened.config.channels);
        Ok(CaptureStream {
            _thread: thread,
            device: opened.device,
            config: opened.config,
            format: options.format,
            consumer: opened.value,
            converter: Converter::new(device_format, options.format)?,
            raw: Vec::new(),
            ready: Vec::new(),
            cursor: 0,
            shared,
            options,
        })
    }

    /// The device id it was opened with.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// What the device runs at.
    pub fn device_config(&self) -> DeviceConfig {
        self.config
    }

    /// Callback counters: frames moved, overruns.
    pub fn stats(&self) -> StreamStats {
        self.shared.counters.snapshot()
    }

    /// Moves whatever whole device frames the ring holds through the
    /// converter. Returns whether anything was taken.
    fn pull(&mut self) -> Result<bool, AudioError> {
        let channels = usize::from(self.config.channels);
        let available = self.consumer.slots();
        let n = available - available % channels;
        if n == 0 {
            return Ok(false);
        }
        self.raw.clear();
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            self.raw.extend_from_slice(a);
            self.raw.extend_from_slice(b);
            chunk.commit_all();
        }
        if self.cursor > 0 {
            self.ready.drain(..self.cursor);
            self.cursor = 0;
        }
        self.converter.process(&self.raw, &mut self.ready)?;
        Ok(true)
    }
}

impl AudioSource for CaptureStream {
    fn format(&self) -> Format {
        self.format
    }

    /// Blocks until `out` can be filled; errors if the stream failed or made
    /// no progress for the stall timeout.
    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        check_frames(out.len(), self.format.channels)?;
        let mut last_progress = Instant::now();
        while self.ready.len() - self.cursor < out.len() {
            if self.pull()? {
                last_progress = Instant::now();
                continue;
            }
            self.shared.check(&self.device)?;
            let waited = last_progress.elapsed();
            if waited > self.options.stall_timeout {
                return Err(self.shared.stalled(&self.device, waited));
            }
            std::thread::sleep(POLL);
        }
        out.copy_from_slice(&self.ready[self.cursor..self.cursor + out.len()]);
        self.cursor += out.len();
        Ok(out.len())
    }
}

/// The realtime capture callback: converts to `f32` and pushes whole frames
/// into the ring; what does not fit is dropped and counted. No locks, no
/// allocation, no blocking.
fn callback<T>(
    mut producer: Producer<f32>,
    channels: usize,
    shared: Arc<Shared>,
) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static
where
    T: SizedSample,
    f32: FromSample<T>,
{
    move |data: &[T], _: &cpal::InputCallbackInfo| {
        let c = &shared.counters;
        c.callbacks.fetch_add(1, Relaxed);
        let free = producer.slots();
        let n = data.len().min(free - free % channels);
        if n > 0 {
            if let Ok(chunk) = producer.write_chunk_uninit(n) {
                chunk.fill_from_iter(data[..n].iter().map(|s| f32::from_sample(*s)));
            }
            c.frames.fetch_add((n / channels) as u64, Relaxed);
        }
        if n < data.len() {
            c.overruns.fetch_add(1, Relaxed);
            c.dropped_frames
                .fetch_add(((data.len() - n) / channels) as u64, Relaxed);
        }
    }
}
