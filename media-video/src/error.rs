//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `lanlink-video`.
///
/// Variants carry the context a person needs to act on them: which device or
/// file, which operation, what was asked for and what exists. Caller misuse
/// (bad sizes, bad settings) is kept apart from device, file and codec
/// failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VideoError {
    /// No V4L2 capture device exists on this machine.
    #[error("no video devices found ({searched} absent)")]
    NoDevices {
        /// What was looked for, e.g. `/dev/video*`.
        searched: String,
    },

    /// A camera was asked for by index or path and is not among those found.
    #[error("no camera {requested}; available: {}", list_or_none(available))]
    CameraNotFound {
        /// The index or path asked for.
        requested: String,
        /// The capture devices that do exist, as `path (name)`.
        available: Vec<String>,
    },

    /// A V4L2 call on a device failed.
    #[error("{path}: {op}: {source}")]
    Device {
        /// The device node, e.g. `/dev/video0`.
        path: PathBuf,
        /// What was being done (`open`, `set format`, `dequeue buffer`, ...).
        op: &'static str,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The camera offers no pixel format this crate can capture.
    #[error("{path}: no usable format for {requested}; the camera offers: {offered}")]
    UnsupportedFormat {
        /// The device node.
        path: PathBuf,
        /// What was asked for (`1280x720 @ 30 fps`).
        requested: String,
        /// What the device offers, as FourCC codes with sizes.
        offered: String,
    },

    /// libjpeg-turbo refused to encode or decode.
    #[error("JPEG {op} failed: {source}")]
    Jpeg {
        /// `encode`, `decode`, `read header`, `configure`.
        op: &'static str,
        /// The error TurboJPEG reported.
        #[source]
        source: turbojpeg::Error,
    },

    /// A pixel buffer handed in does not match its stated size (caller misuse).
    #[error("{what}: expected {expected} bytes for {width}x{height}, got {actual}")]
    BufferSize {
        /// Which buffer (`YUYV frame`, `NV12 frame`, `RGB image`).
        what: &'static str,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The length the size implies.
        expected: usize,
        /// The length given.
        actual: usize,
    },

    /// A JPEG claims more pixels than the decoder takes (its header may say
    /// anything: a few hundred bytes can claim 65535×65535).
    #[error("a {width}x{height} JPEG is larger than the {max_pixels} pixels this decoder takes")]
    TooLarge {
        /// Width the JPEG claims.
        width: usize,
        /// Height the JPEG claims.
        height: usize,
        /// The decoder's limit.
        max_pixels: usize,
    },

    /// A setting or size is out of range (caller misuse).
    #[error("invalid {what}: {reason}")]
    InvalidConfig {
        /// Which setting (`quality`, `fps`, `size`).
        what: &'static str,
        /// Why it was rejected, with the value.
        reason: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done (`read`, `write`, `list folder`).
        op: &'static str,
        /// The error from the OS.
        #[source]
        source: io::Error,
    },

    /// A file source found no JPEG images to play.
    #[error("{path}: no JPEG frames found ({detail})")]
    NoFrames {
        /// The folder or MJPEG file.
        path: PathBuf,
        /// What was there instead.
        detail: String,
    },

    /// The window could not be opened or updated.
    #[error("display {op} failed: {message}")]
    Display {
        /// `open window`, `update window`.
        op: &'static str,
        /// What the windowing layer said, plus a hint (is `DISPLAY` set?).
        message: String,
    },

    /// A source running on its own thread has stopped, so no more frames
    /// will come.
    #[error("video source {name:?} stopped{}", if *.panicked { " (its thread panicked)" } else { "" })]
    SourceStopped {
        /// The source's name.
        name: String,
        /// Whether its thread ended by panicking.
        panicked: bool,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

impl VideoError {
    pub(crate) fn jpeg(op: &'static str) -> impl FnOnce(turbojpeg::Error) -> VideoError {
        move |source| VideoError::Jpeg { op, source }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| VideoError::Io { path, op, source }
    }
}
