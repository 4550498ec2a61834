//! Sound cards through cpal: listing devices, capture and playback.
//!
//! A device is opened at its own rate, channel count and sample format (or
//! ones you ask for); conversion to and from lanlink's 48 kHz `f32` happens
//! on the caller's side of a lock-free ring, never in the device callback.
//!
//! ```text
//! capture:  device callback --(device format -> f32)--> ring --> read(): remix + resample --> 48 kHz frames
//! playback: write(): resample + remix --> ring --(f32 -> device format)--> device callback
//! ```
//!
//! The callbacks only convert samples and move them through the ring
//! (`rtrb`): no locks, no allocation, no blocking. A playback callback that
//! finds the ring short plays silence and counts an underrun; a capture
//! callback that finds it full drops the newest samples and counts an
//! overrun ([`StreamStats`]).
//!
//! Each stream is built and owned by a dedicated thread, because
//! `cpal::Stream` is not `Send` on every platform; the handle's `Drop` tells
//! that thread to drop the stream and joins it.

mod capture;
mod playback;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};

pub use capture::CaptureStream;
pub use cpal::SampleFormat;
pub use playback::PlaybackStream;

use crate::{AudioError, Direction, Format};

/// A concrete device configuration: what the sound card runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample type on the wire to the device.
    pub sample_format: SampleFormat,
}

/// A range of configurations a device supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigRange {
    /// Interleaved channels.
    pub channels: u16,
    /// Lowest rate supported, Hz.
    pub min_sample_rate: u32,
    /// Highest rate supported, Hz.
    pub max_sample_rate: u32,
    /// Sample type.
    pub sample_format: SampleFormat,
}

/// One device as [`list_devices`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The backend's identifier (ALSA: the PCM name such as `default` or
    /// `hw:CARD=0,DEV=0`). Open the device with this.
    pub id: String,
    /// A name for people; can also be used to open the device.
    pub name: String,
    /// Whether this is the host's default capture device.
    pub is_default_input: bool,
    /// Whether this is the host's default playback device.
    pub is_default_output: bool,
    /// Capture configurations; empty if the device cannot capture.
    pub input_configs: Vec<ConfigRange>,
    /// Playback configurations; empty if the device cannot play.
    pub output_configs: Vec<ConfigRange>,
    /// What capture opens at unless told otherwise.
    pub default_input_config: Option<DeviceConfig>,
    /// What playback opens at unless told otherwise.
    pub default_output_config: Option<DeviceConfig>,
}

impl DeviceInfo {
    /// Whether the device can capture (`Input`) or play (`Output`).
    pub fn supports(&self, direction: Direction) -> bool {
        match direction {
            Direction::Input => self.default_input_config.is_some(),
            Direction::Output => self.default_output_config.is_some(),
        }
    }
}

/// How to open a capture or playback stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// What [`CaptureStream`] yields and [`PlaybackStream`] takes; 48 kHz
    /// mono by default.
    pub format: Format,
    /// Device rate to ask for instead of the device's default.
    pub sample_rate: Option<u32>,
    /// Device channel count to ask for instead of the default.
    pub channels: Option<u16>,
    /// Device sample format to ask for instead of the default.
    pub sample_format: Option<SampleFormat>,
    /// Most audio queued between caller and device. Capture: the ring holds
    /// this much; a reader further behind loses audio (counted as overruns).
    /// Playback: `write` blocks while this much is queued, which makes it
    /// the playback latency (raised to two device periods if smaller).
    pub latency: Duration,
    /// How long a blocking `read` or `write` waits for the device before
    /// giving up with [`AudioError::Stalled`] (or [`AudioError::StreamFailed`]
    /// naming the first error the backend reported before it stopped).
    pub stall_timeout: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            format: Format::MONO_48K,
            sample_rate: None,
            channels: None,
            sample_format: None,
            latency: Duration::from_millis(100),
            stall_timeout: Duration::from_secs(2),
        }
    }
}

/// Counters of a running device stream, updated by its callback with
/// relaxed atomics. Read them with `stats()` on the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Device callbacks so far.
    pub callbacks: u64,
    /// Device frames moved between callback and ring.
    pub frames: u64,
    /// Playback: callbacks that found too little audio and played silence
    /// (counted only after the first write).
    pub underruns: u64,
    /// Playback: device frames of silence played because of underruns.
    pub silent_frames: u64,
    /// Capture: callbacks that found the ring full.
    pub overruns: u64,
    /// Capture: device frames dropped because the ring was full.
    pub dropped_frames: u64,
    /// Glitches the backend itself reported (xruns).
    pub backend_xruns: u64,
    /// Other errors the backend reported and carried on after.
    pub backend_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub callbacks: AtomicU64,
    pub frames: AtomicU64,
    pub underruns: AtomicU64,
    pub silent_frames: AtomicU64,
    pub overruns: AtomicU64,
    pub dropped_frames: AtomicU64,
    pub backend_xruns: AtomicU64,
    pub backend_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StreamStats {
        StreamStats {
            callbacks: self.callbacks.load(Relaxed),
            frames: self.frames.load(Relaxed),
            underruns: self.underruns.load(Relaxed),
            silent_frames: self.silent_frames.load(Relaxed),
            overruns: self.overruns.load(Relaxed),
            dropped_frames: self.dropped_frames.load(Relaxed),
            backend_xruns: self.backend_xruns.load(Relaxed),
            backend_errors: self.backend_errors.load(Relaxed),
        }
    }
}

/// The platform's audio host (ALSA on Linux), without cpal's panic when
/// none can be initialised.
pub(crate) fn host() -> Result<cpal::Host, AudioError> {
    let mut last = None;
    for id in cpal::available_hosts() {
        match cpal::host_from_id(id) {
            Ok(host) => return Ok(host),
            Err(e) => last = Some(e),
        }
    }
    Err(AudioError::Backend {
        op: "open audio host",
        device: "host".into(),
        source: last.unwrap_or_else(|| cpal::Error::new(cpal::ErrorKind::HostUnavailable)),
    })
}

/// The name of the audio host devices are opened through (`"ALSA"` on
/// Linux), or why there is none. Cheap: it opens no device.
pub fn host_name() -> Result<&'static str, AudioError> {
    host().map(|h| h.id().name())
}

fn device_id(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.id().to_string())
        .unwrap_or_else(|_| device.to_string())
}

fn ranges(
    configs: Result<impl Iterator<Item = cpal::SupportedStreamConfigRange>, cpal::Error>,
) -> Vec<ConfigRange> {
    configs
        .map(|it| {
            it.map(|c| ConfigRange {
                channels: c.channels(),
                min_sample_rate: c.min_sample_rate(),
                max_sample_rate: c.max_sample_rate(),
                sample_format: c.sample_format(),
            })
            .collect()
        })
        .unwrap_or_default()
}

fn config(c: Result<cpal::SupportedStreamConfig, cpal::Error>) -> Option<DeviceConfig> {
    c.ok().map(|c| DeviceConfig {
        sample_rate: c.sample_rate(),
        channels: c.channels(),
        sample_format: c.sample_format(),
    })
}

/// Every capture and playback device the platform's host knows, with its
/// supported and default configurations. Probing opens each device briefly,
/// so call it from a control thread, not an audio path.
pub fn list_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    let host = host()?;
    let default_in = host.default_input_device().map(|d| device_id(&d));
    let default_out = host.default_output_device().map(|d| device_id(&d));
    let devices = host.devices().map_err(|source| AudioError::Backend {
        op: "list devices",
        device: "host".into(),
        source,
    })?;
    Ok(devices
        .map(|d| {
            let id = device_id(&d);
            DeviceInfo {
                name: d.to_string(),
                is_default_input: default_in.as_deref() == Some(id.as_str()),
                is_default_output: default_out.as_deref() == Some(id.as_str()),
                input_configs: ranges(d.supported_input_configs()),
                output_configs: ranges(d.supported_output_configs()),
                default_input_config: config(d.default_input_config()),
                default_output_config: config(d.default_output_config()),
                id,
            }
        })
        .collect())
}

/// Finds a device by id or name (exact, then ignoring case), or the
/// default one for `direction` when `name` is `None`.
pub(crate) fn find_device(
    host: &cpal::Host,
    name: Option<&str>,
    direction: Direction,
) -> Result<cpal::Device, AudioError> {
    let Some(name) = name else {
        let device = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return device.ok_or(AudioError::NoDefaultDevice { direction });
    };
    let devices: Vec<cpal::Device> = host
        .devices()
        .map_err(|source| AudioError::Backend {
            op: "list devices",
            device: name.to_string(),
            source,
        })?
        .collect();
    let exact = devices
        .iter()
        .position(|d| device_id(d) == name || d.to_string() == name);
    let loose = || {
        devices.iter().position(|d| {
            device_id(d).eq_ignore_ascii_case(name) || d.to_string().eq_ignore_ascii_case(name)
        })
    };
    if let Some(i) = exact.or_else(loose) {
        return Ok(devices[i].clone());
    }
    let available = devices
        .iter()
        .filter(|d| match direction {
            Direction::Input => d.supports_input(),
            Direction::Output => d.supports_output(),
        })
        .map(|d| format!("{} ({})", device_id(d), d))
        .collect();
    Err(AudioError::DeviceNotFound {
        direction,
        name: name.to_string(),
        available,
    })
}
