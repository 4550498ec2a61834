//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Direction, Format};

/// Everything that can go wrong in `lanlink-audio`.
///
/// Caller misuse (a buffer of the wrong size, an impossible configuration)
/// and faults of the outside world (a missing device, a broken file, a
/// stream that stopped) are different variants, so a caller can tell a bug
/// in its own code from a condition to report to a person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// Caller misuse: a buffer does not hold a whole number of frames of
    /// `channels` interleaved samples.
    #[error("buffer of {len} samples is not a whole number of {channels}-channel frames")]
    NotWholeFrames {
        /// Samples in the buffer.
        len: usize,
        /// Interleaved channels per frame.
        channels: u16,
    },

    /// Caller misuse: a codec frame has the wrong length.
    #[error("{what}: buffer of {len} samples, expected {expected}")]
    FrameLength {
        /// Which call rejected the buffer (`"opus encode"`).
        what: &'static str,
        /// Samples in the buffer.
        len: usize,
        /// Samples the call needs (all channels, interleaved).
        expected: usize,
    },

    /// Caller misuse: a configuration this crate cannot honour, such as a
    /// zero sample rate, three Opus channels or a bitrate out of range.
    #[error("invalid {what}: {detail}")]
    InvalidConfig {
        /// The setting at fault (`"format"`, `"opus bitrate"`).
        what: &'static str,
        /// What is wrong with it, with the offending value.
        detail: String,
    },

    /// A format that the component cannot handle (for example Opus at
    /// 44.1 kHz, which only takes 8/12/16/24/48 kHz).
    #[error("unsupported format {format}: {reason}")]
    UnsupportedFormat {
        /// The format that was asked for.
        format: Format,
        /// Why it cannot be used.
        reason: &'static str,
    },

    /// A WAV file could not be opened, read, written or finalised.
    #[error("WAV file {}: {source}", path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// What `hound` reported.
        #[source]
        source: hound::Error,
    },

    /// A sample-rate converter could not be built for this pair of rates.
    #[error("cannot resample {from} Hz to {to} Hz: {source}")]
    ResamplerSetup {
        /// Input rate in Hz.
        from: u32,
        /// Output rate in Hz.
        to: u32,
        /// What `rubato` reported.
        #[source]
        source: rubato::ResamplerConstructionError,
    },

    /// The sample-rate converter rejected a block (a bug in this crate's
    /// buffer bookkeeping, never bad audio).
    #[error("resampling failed: {0}")]
    Resample(#[from] rubato::ResampleError),

    /// libopus rejected a call.
    #[error("opus {op}: {source}")]
    Opus {
        /// The operation (`"encoder create"`, `"decode"`, `"set bitrate"`).
        op: &'static str,
        /// What libopus reported.
        #[source]
        source: opus::Error,
    },

    /// The audio backend (cpal) failed to list, query or open a device.
    #[cfg(feature = "device")]
    #[error("{op} on {device:?}: {source}")]
    Backend {
        /// What was being done (`"list devices"`, `"build input stream"`).
        op: &'static str,
        /// The device id, or `"host"` for host-wide calls.
        device: String,
        /// What cpal reported.
        #[source]
        source: cpal::Error,
    },

    /// No device of that name exists. `available` lists the ones that do, so
    /// a person can pick one.
    #[error(
        "no {direction} device named {name:?}; {} available: {}",
        direction,
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    DeviceNotFound {
        /// Capture or playback.
        direction: Direction,
        /// The name that was asked for.
        name: String,
        /// `id (name)` of every device of that direction that exists.
        available: Vec<String>,
    },

    /// The host has no default device for this direction.
    #[error("no default {direction} device")]
    NoDefaultDevice {
        /// Capture or playback.
        direction: Direction,
    },

    /// The device only offers a sample format this crate does not convert
    /// (DSD, for example).
    #[error("device {device:?} uses sample format {format}, which lanlink does not convert")]
    UnsupportedSampleFormat {
        /// The device id.
        device: String,
        /// The format cpal reported.
        format: String,
    },

    /// The backend reported an error on a running stream (device unplugged,
    /// server gone). The stream is unusable; open it again.
    #[error("stream on {device:?} failed: {message}")]
    StreamFailed {
        /// The device id.
        device: String,
        /// What the backend reported first.
        message: String,
    },

    /// A running stream stopped moving samples: a blocking read or write
    /// waited this long without the device callback making progress.
    #[error("stream on {device:?} stalled: no progress for {waited:?}")]
    Stalled {
        /// The device id.
        device: String,
        /// How long the call waited.
        waited: Duration,
    },

    /// The thread that owns a device stream ended before handing the stream
    /// over (it panicked or the backend aborted).
    #[error("the stream thread for {device:?} ended unexpectedly")]
    WorkerGone {
        /// The device id, or the requested name.
        device: String,
    },
}
