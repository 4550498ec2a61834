//! Playback to a sound card.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, SizedSample};
use rtrb::{Consumer, Producer, RingBuffer};

use super::worker::{with_sample_type, Build, Shared, StreamThread, POLL};
use super::{DeviceConfig, StreamOptions, StreamStats};
use crate::resample::Converter;
use crate::{check_frames, AudioError, AudioSink, Direction, Format};

/// A playback device as an [`AudioSink`] of 48 kHz frames.
///
/// `write` converts on the caller's thread and blocks while the queue holds
/// [`StreamOptions::latency`] of audio, so a loop writing one frame at a
/// time runs at the device's clock. When the queue runs dry the callback
/// plays silence and counts an underrun. Dropping the stream stops it at
/// once; [`finish`](AudioSink::finish) first lets the queue play out.
pub struct PlaybackStream {
    // Declared first so it drops first: the stream stops before the ring
    // end it drains goes away.
    _thread: StreamThread,
    device: String,
    config: DeviceConfig,
    format: Format,
    producer: Producer<f32>,
    /// Samples the queue may hold before `write` blocks.
    limit: usize,
    converter: Converter,
    /// Converted device samples not yet in the ring.
    staged: Vec<f32>,
    shared: Arc<Shared>,
    options: StreamOptions,
}

impl std::fmt::Debug for PlaybackStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackStream")
            .field("device", &self.device)
            .field("config", &self.config)
            .field("format", &self.format)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl PlaybackStream {
    /// Opens the playback device with id or name `name` (or the default
    /// device for `None`) and starts it, playing silence until the first
    /// write.
    ///
    /// A missing device is [`AudioError::DeviceNotFound`], which lists the
    /// playback devices that do exist.
    pub fn open(name: Option<&str>, options: StreamOptions) -> Result<Self, AudioError> {
        options.format.validate()?;
        let shared = Arc::new(Shared::default());
        let cb_shared = Arc::clone(&shared);
        let latency = options.latency;
        let build: Build<Producer<f32>> = Box::new(move |device, id, stream_config, config| {
            let channels = usize::from(config.channels);
            let rate = f64::from(config.sample_rate);
            // Room for the latency or 200 ms, whichever is more; `limit`
            // below decides how much of it is used.
            let frames = (latency.as_secs_f64() * rate).max(rate / 5.0).ceil() as usize;
            let (producer, consumer) = RingBuffer::new(frames * channels);
            let stream = with_sample_type!(config.sample_format, id, T => device
            .build_output_stream::<T, _, _>(
                *stream_config,
                callback::<T>(consumer, channels, Arc::clone(&cb_shared)),
                cb_shared.error_callback(),
                None,
            )
            .map_err(|source| AudioError::Backend {
                op: "build output stream",
                device: id.to_string(),
                source,
            }))?;
            Ok((stream, producer))
        });
        let (thread, opened) = StreamThread::spawn(name, Direction::Output, &options, build)?;
        let config = opened.config;
        let channels = usize::from(config.channels);
        let latency_frames =
            (options.latency.as_secs_f64() * f64::from(config.sample_rate)) as usize;
        let period = opened.period.unwrap_or(config.sample_rate / 100) as usize;
        let capacity = opened.value.buffer().capacity();
        let limit = (latency_frames.max(2 * period) * channels).min(capacity);
        Ok(PlaybackStream {
            _thread: thread,
            device: opened.device,
            config,
            format: options.format,
            producer: opened.value,
            limit,
            converter: Converter::new(
                options.format,
                Format::new(config.sample_rate, config.channels),
            )?,
            staged: Vec::new(),
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

    /// Callback counters: frames played, underruns.
    pub fn stats(&self) -> StreamStats {
        self.shared.counters.snapshot()
    }

    /// Device samples queued and not yet taken by the callback.
    fn queued(&self) -> usize {
        self.producer.buffer().capacity() - self.producer.slots()
    }

    /// Pushes all staged samples into the ring, blocking while it is at the
    /// limit.
    fn drain_staged(&mut self) -> Result<(), AudioError> {
        let channels = usize::from(self.config.channels);
        let mut done = 0;
        let mut last_progress = Instant::now();
        while done < self.staged.len() {
            let room = self.limit.saturating_sub(self.queued());
            let n = (room - room % channels).min(self.staged.len() - done);
            if n > 0 {
                if let Ok(chunk) = self.producer.write_chunk_uninit(n) {
                    chunk.fill_from_iter(self.staged[done..done + n].iter().copied());
                }
                done += n;
                last_progress = Instant::now();
                self.shared.primed.store(true, Relaxed);
                continue;
            }
            self.wait(last_progress)?;
        }
        self.staged.clear();
        Ok(())
    }

    /// One poll interval of waiting for the callback, or the reason to stop.
    fn wait(&self, last_progress: Instant) -> Result<(), AudioError> {
        self.shared.check(&self.device)?;
        let waited = last_progress.elapsed();
        if waited > self.options.stall_timeout {
            return Err(self.shared.stalled(&self.device, waited));
        }
        std::thread::sleep(POLL);
        Ok(())
    }
}

impl AudioSink for PlaybackStream {
    fn format(&self) -> Format {
        self.format
    }

    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        check_frames(frame.len(), self.format.channels)?;
        self.shared.check(&self.device)?;
        self.converter.process(frame, &mut self.staged)?;
        self.drain_staged()
    }

    /// Flushes the converter and waits until the device has taken
    /// everything queued.
    fn finish(&mut self) -> Result<(), AudioError> {
        self.converter.flush(&mut self.staged)?;
        self.drain_staged()?;
        let mut last = (Instant::now(), self.queued());
        while self.queued() > 0 {
            if self.queued() < last.1 {
                last = (Instant::now(), self.queued());
            }
            self.wait(last.0)?;
        }
        Ok(())
    }
}

/// The realtime playback callback: pops whole frames from the ring into the
/// device buffer and fills the rest with silence, counting an underrun once
/// playback has begun. No locks, no allocation, no blocking.
fn callback<T>(
    mut consumer: Consumer<f32>,
    channels: usize,
    shared: Arc<Shared>,
) -> impl FnMut(&mut [T], &cpal::OutputCallbackInfo) + Send + 'static
where
    T: SizedSample + FromSample<f32>,
{
    move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
        let c = &shared.counters;
        c.callbacks.fetch_add(1, Relaxed);
        let available = consumer.slots();
        let n = data.len().min(available - available % channels);
        if let Ok(chunk) = consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            for (d, s) in data.iter_mut().zip(a.iter().chain(b)) {
                *d = T::from_sample(*s);
            }
            chunk.commit_all();
        }
        data[n..].fill(T::EQUILIBRIUM);
        c.frames.fetch_add((n / channels) as u64, Relaxed);
        if n < data.len() && shared.primed.load(Relaxed) {
            c.underruns.fetch_add(1, Relaxed);
            c.silent_frames
                .fetch_add(((data.len() - n) / channels) as u64, Relaxed);
        }
    }
}
