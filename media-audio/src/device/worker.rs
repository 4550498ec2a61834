//! The thread that builds and owns a cpal stream.
//!
//! `cpal::Stream` is not `Send` on every platform, so the stream is created,
//! played and dropped on one dedicated thread. The handle that the caller
//! holds is `Send`; its `Drop` closes the stop channel, which wakes the
//! thread to drop the stream (stopping the device), and then joins it.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};

use super::{device_id, find_device, host, Counters, DeviceConfig, StreamOptions};
use crate::{AudioError, Direction};

/// State shared between a stream's callbacks and its handle: lock-free
/// counters, a primed flag, the first fatal error and the first error the
/// backend recovered from.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub counters: Counters,
    /// Playback: set by the first `write`, so the silence before it does not
    /// count as underruns.
    pub primed: AtomicBool,
    /// The first fatal error the backend reported.
    pub failure: OnceLock<String>,
    /// The first error the backend reported and carried on after.
    pub first_glitch: OnceLock<String>,
}

impl Shared {
    /// The backend's error callback. An xrun is counted. An error that
    /// means the device is gone marks the stream failed, so the next read
    /// or write reports it. Anything else is counted and the stream goes
    /// on: cpal's ALSA worker keeps polling after such errors, and some
    /// PCMs (the PulseAudio plugin while its server stream starts) report
    /// a passing `EIO` and then play on. A stream that really stopped is
    /// caught by the stall timeout, which then names the first such error.
    ///
    /// Only the first of each message is formatted (one allocation per
    /// stream), since cpal calls this on its audio thread.
    pub(crate) fn error_callback(self: &Arc<Self>) -> impl FnMut(cpal::Error) + Send + 'static {
        let shared = Arc::clone(self);
        move |e: cpal::Error| match e.kind() {
            cpal::ErrorKind::Xrun => {
                shared.counters.backend_xruns.fetch_add(1, Relaxed);
            }
            cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied => {}
            cpal::ErrorKind::DeviceNotAvailable
            | cpal::ErrorKind::HostUnavailable
            | cpal::ErrorKind::PermissionDenied
            | cpal::ErrorKind::StreamInvalidated => {
                let _ = shared.failure.set(e.to_string());
            }
            _ => {
                shared.counters.backend_errors.fetch_add(1, Relaxed);
                if shared.first_glitch.get().is_none() {
                    let _ = shared.first_glitch.set(e.to_string());
                }
            }
        }
    }

    /// The failure as an error, if the stream has failed.
    pub(crate) fn check(&self, device: &str) -> Result<(), AudioError> {
        match self.failure.get() {
            Some(message) => Err(AudioError::StreamFailed {
                device: device.to_string(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The error for a stream that made no progress for `waited`: a failure
    /// naming the backend's first error if it reported one, else a stall.
    pub(crate) fn stalled(&self, device: &str, waited: Duration) -> AudioError {
        match self.first_glitch.get() {
            Some(message) => AudioError::StreamFailed {
                device: device.to_string(),
                message: format!("no progress for {waited:?} after: {message}"),
            },
            None => AudioError::Stalled {
                device: device.to_string(),
                waited,
            },
        }
    }
}

/// What the stream thread hands back once the stream is playing.
pub(crate) struct Opened<T> {
    /// The device id.
    pub device: String,
    /// What the device runs at.
    pub config: DeviceConfig,
    /// Frames per callback, if the backend knows.
    pub period: Option<u32>,
    /// Whatever the build step produced for the caller (a ring end).
    pub value: T,
}

/// Handle to the thread that owns a stream; dropping it stops the stream.
#[derive(Debug)]
pub(crate) struct StreamThread {
    stop: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Builds the stream for a device and config, returning it with the value
/// for the caller. Runs on the stream thread.
pub(crate) type Build<T> = Box<
    dyn FnOnce(
            &cpal::Device,
            &str,
            &cpal::StreamConfig,
            DeviceConfig,
        ) -> Result<(cpal::Stream, T), AudioError>
        + Send,
>;

impl StreamThread {
    /// Opens the device on a new thread, builds and plays the stream there,
    /// and returns once it is playing (or failed to).
    pub(crate) fn spawn<T: Send + 'static>(
        name: Option<&str>,
        direction: Direction,
        options: &StreamOptions,
        build: Build<T>,
    ) -> Result<(Self, Opened<T>), AudioError> {
        let (result_tx, result_rx) = mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(0);
        let name = name.map(str::to_string);
        let label = name
            .clone()
            .unwrap_or_else(|| format!("default {direction}"));
        let options = *options;
        let thread = std::thread::Builder::new()
            .name(format!("lanlink-audio-{direction}"))
            .spawn(
                move || match open(name.as_deref(), direction, &options, build) {
                    Ok((stream, opened)) => {
                        if result_tx.send(Ok(opened)).is_ok() {
                            // Blocks until the handle drops its sender.
                            let _ = stop_rx.recv();
                        }
                        drop(stream);
                    }
                    Err(e) => {
                        let _ = result_tx.send(Err(e));
                    }
                },
            )
            .map_err(|_| AudioError::WorkerGone {
                device: label.clone(),
            })?;
        let handle = StreamThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match result_rx.recv() {
            Ok(Ok(opened)) => Ok((handle, opened)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AudioError::WorkerGone { device: label }),
        }
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open<T>(
    name: Option<&str>,
    direction: Direction,
    options: &StreamOptions,
    build: Build<T>,
) -> Result<(cpal::Stream, Opened<T>), AudioError> {
    let host = host()?;
    let device = find_device(&host, name, direction)?;
    let id = device_id(&device);
    let backend = |op| {
        let id = id.clone();
        move |source| AudioError::Backend {
            op,
            device: id,
            source,
        }
    };
    let default = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(backend("query default config"))?;
    let config = DeviceConfig {
        sample_rate: options.sample_rate.unwrap_or(default.sample_rate()),
        channels: options.channels.unwrap_or(default.channels()),
        sample_format: options.sample_format.unwrap_or(default.sample_format()),
    };
    // Ask for ~10 ms callbacks when the device says it can: short periods
    // keep latency low, and some backends default to very long ones.
    let period = config.sample_rate / 100;
    let buffer_size = match default.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } if (*min..=*max).contains(&period) => {
            cpal::BufferSize::Fixed(period)
        }
        _ => cpal::BufferSize::Default,
    };
    let stream_config = cpal::StreamConfig {
        channels: config.channels,
        sample_rate: config.sample_rate,
        buffer_size,
    };
    let (stream, value) = build(&device, &id, &stream_config, config)?;
    stream.play().map_err(backend("start stream"))?;
    let period = stream.buffer_size().ok();
    Ok((
        stream,
        Opened {
            device: id,
            config,
            period,
            value,
        },
    ))
}

/// Runs `$body` with `$T` bound to the Rust sample type of `$format`, or
/// returns [`AudioError::UnsupportedSampleFormat`].
macro_rules! with_sample_type {
    ($format:expr, $device:expr, $T:ident => $body:expr) => {{
        use cpal::SampleFormat as F;
        match $format {
            F::I8 => {
                type $T = i8;
                $body
            }
            F::I16 => {
                type $T = i16;
                $body
            }
            F::I24 => {
                type $T = cpal::I24;
                $body
            }
            F::I32 => {
                type $T = i32;
                $body
            }
            F::I64 => {
                type $T = i64;
                $body
            }
            F::U8 => {
                type $T = u8;
                $body
            }
            F::U16 => {
                type $T = u16;
                $body
            }
            F::U24 => {
                type $T = cpal::U24;
                $body
            }
            F::U32 => {
                type $T = u32;
                $body
            }
            F::U64 => {
                type $T = u64;
                $body
            }
            F::F32 => {
                type $T = f32;
                $body
            }
            F::F64 => {
                type $T = f64;
                $body
            }
            other => Err(AudioError::UnsupportedSampleFormat {
                device: $device.to_string(),
                format: other.to_string(),
            }),
        }
    }};
}
pub(crate) use with_sample_type;

/// How long blocking calls sleep between looks at the ring. Short against a
/// 10–20 ms frame, long enough not to spin a core.
pub(crate) const POLL: Duration = Duration::from_millis(1);
