//! Video for lanlink: camera capture (V4L2), JPEG encoding and decoding
//! (libjpeg-turbo), hardware-free sources, and display.
//!
//! Everything here speaks [`EncodedFrame`]: a complete JPEG plus its
//! sequence number, capture time (Unix µs) and size. Its fields map one to
//! one onto the wire protocol's `VideoFrame` (`seq`, `timestamp_us`,
//! `keyframe: true`, `data`) and `VideoAnnounce` (from [`SourceInfo`]), so
//! a relay forwards frames without touching the pixels. This crate owns no
//! sockets and does not depend on the protocol crate.
//!
//! # Layout
//!
//! | module | what |
//! |---|---|
//! | `source.rs` | the [`VideoSource`] trait; [`SourceHandle`] runs a source on its own thread (bounded queue that drops the oldest frame, errors through the same channel, `Drop` stops and joins) |
//! | `camera/` | [`CameraInfo`] and friends, [`choose_mode`] (pure, tested without a device); with the `camera` feature on Linux, [`list_cameras`] and [`CameraSource`] |
//! | `pattern.rs`, `font.rs` | [`TestPattern`]: colour bars, a moving square, the frame counter and capture time in a 5×7 font and as a block code read back by [`decode_pattern_stamp`] |
//! | `pattern_source.rs`, `file_source.rs` | [`TestPatternSource`]; [`JpegFileSource`] plays a folder of JPEGs or an MJPEG file, looping |
//! | `jpeg.rs`, `yuv.rs` | [`JpegEncoder`] / [`JpegDecoder`] over libjpeg-turbo with reused buffers; YUYV and NV12 straight to JPEG ([`RawFrame`]) |
//! | `display.rs` | [`Viewer`], a minifb window on X11 (`display` feature) |
//! | `sink.rs` | [`save_jpeg`] for `--save DIR` |
//!
//! # Features
//!
//! - `camera` (default): V4L2 capture through the `v4l` crate, Linux only.
//!   We use v4l directly rather than `nokhwa`: on Linux nokhwa is a layer
//!   over the same v4l 0.14, and its default path decodes MJPEG to RGB
//!   (mozjpeg, `image`), which is the opposite of what a relay wants. v4l
//!   hands over the camera's own JPEG bytes, which [`CameraSource`] passes
//!   through untouched; YUYV and NV12 are encoded here without an RGB step.
//!   On a machine without a camera everything builds, and opening fails
//!   with "no video devices found (/dev/video* absent)".
//! - `display` (default): [`Viewer`] on minifb's X11 backend, which loads
//!   libX11 and libXcursor at run time, so building needs no X headers.
//!
//! libjpeg-turbo 3 is built from source by `turbojpeg-sys` (needs `cmake`
//! and `nasm`; Debian 12's libturbojpeg is too old for its API).
//!
//! # Allocation
//!
//! Per frame, in the steady state: [`TestPattern::render`],
//! [`JpegEncoder::encode_rgb`], [`JpegEncoder::encode_raw`] and
//! [`JpegDecoder::decode_into`] allocate nothing; handing a frame out as
//! `Bytes` (`encode_*_to_bytes`, every source) costs exactly one
//! allocation of the JPEG's size, because the frame must outlive the
//! encoder's buffer. `tests/alloc.rs` counts this with a global allocator.
//!
//! # Example
//!
//! A test-pattern frame, encoded, decoded, and its stamp read back:
//!
//! ```
//! use lanlink_video::{decode_pattern_stamp, JpegConfig, JpegDecoder, TestPatternSource, VideoSource};
//!
//! let mut source = TestPatternSource::new(640, 480, 30.0, JpegConfig::default())?;
//! let frame = source.next_frame()?;
//! assert_eq!((frame.width, frame.height, frame.seq), (640, 480, 0));
//!
//! let image = JpegDecoder::new()?.decode(&frame.jpeg)?;
//! let (counter, timestamp_us) = decode_pattern_stamp(&image).expect("a stamped frame");
//! assert_eq!((counter, timestamp_us), (0, frame.capture_timestamp_us));
//! # Ok::<(), lanlink_video::VideoError>(())
//! ```
//!
//! A camera (or, without one, the test pattern) on its own thread, shown
//! in a window:
//!
//! ```no_run
//! # #[cfg(all(feature = "camera", feature = "display", target_os = "linux"))]
//! # fn main() -> Result<(), lanlink_video::VideoError> {
//! use lanlink_video::{
//!     CameraSelector, CameraSource, CaptureRequest, JpegConfig, JpegDecoder, RgbImage,
//!     SourceHandle, TestPatternSource, Viewer, VideoSource,
//! };
//!
//! let request = CaptureRequest { width: 1280, height: 720, fps: 30.0 };
//! let mut source = match SourceHandle::spawn("camera", move || {
//!     CameraSource::open(&CameraSelector::Index(0), &request, JpegConfig::default())
//! }) {
//!     Ok(camera) => camera,
//!     Err(e) => {
//!         eprintln!("{e}; showing the test pattern instead");
//!         SourceHandle::spawn("pattern", || TestPatternSource::new(1280, 720, 30.0, JpegConfig::default()))?
//!     }
//! };
//! let info = source.info();
//! let mut viewer = Viewer::open(&info.name, info.width.into(), info.height.into())?;
//! let (mut decoder, mut image) = (JpegDecoder::new()?, RgbImage::default());
//! while viewer.is_open() {
//!     let frame = source.next_frame()?;
//!     decoder.decode_into(&frame.jpeg, &mut image)?;
//!     viewer.show(&image, Some(frame.capture_timestamp_us))?;
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "camera", feature = "display", target_os = "linux")))]
//! # fn main() {}
//! ```
#![forbid(unsafe_code)]

mod camera;
#[cfg(feature = "display")]
mod display;
mod error;
mod file_source;
mod font;
mod frame;
mod jpeg;
mod pattern;
mod pattern_source;
mod sink;
mod source;
mod yuv;

pub use camera::{
    choose_mode, CameraFormat, CameraInfo, CameraSelector, CaptureFormat, CaptureMode,
    CaptureRequest, FrameSize,
};
#[cfg(all(feature = "camera", target_os = "linux"))]
pub use camera::{list_cameras, CameraSource};
#[cfg(feature = "display")]
pub use display::{viewer_title, Viewer};
pub use error::VideoError;
pub use file_source::{split_mjpeg, JpegFileSource};
pub use frame::{now_us, EncodedFrame, RgbImage, SourceInfo};
pub use jpeg::{ChromaSubsampling, JpegConfig, JpegDecoder, JpegEncoder, MAX_DECODE_PIXELS};
pub use pattern::{decode_pattern_stamp, PatternLayout, TestPattern, BAR_COLOURS};
pub use pattern_source::TestPatternSource;
pub use sink::save_jpeg;
pub use source::{SourceHandle, VideoSource};
pub use yuv::{RawFormat, RawFrame};
