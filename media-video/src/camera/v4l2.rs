//! V4L2 capture through the `v4l` crate.
//!
//! Why `v4l` and not `nokhwa`: nokhwa wraps this same crate (v4l 0.14) for
//! Linux, and its default features decode MJPEG to RGB through mozjpeg and
//! `image`, the opposite of what a relay wants. Used directly, v4l hands
//! over the camera's own JPEG bytes untouched, lets us pick the format, and
//! adds no threads or locks of its own; the cost is Linux only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use v4l::buffer::{Flags, Type};
use v4l::format::Quantization;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

use super::{
    choose_mode, describe_formats, CameraFormat, CameraInfo, CameraSelector, CaptureFormat,
    CaptureRequest, FrameSize,
};
use crate::source::fps_milli;
use crate::{
    now_us, EncodedFrame, JpegConfig, JpegEncoder, RawFormat, RawFrame, SourceInfo, VideoError,
    VideoSource,
};

const SEARCHED: &str = "/dev/video*";
/// Sizes tried inside a driver's continuous range.
const COMMON_SIZES: [(u32, u32); 4] = [(640, 480), (1280, 720), (1920, 1080), (320, 240)];
/// A camera silent this long is treated as gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

/// The capture devices on this machine, in `/dev/videoN` order. Nodes that
/// capture no video (a webcam's metadata node) are left out.
pub fn list_cameras() -> Result<Vec<CameraInfo>, VideoError> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map_err(VideoError::io("list folder", "/dev"))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, Path::new("/dev").join(name)))
        })
        .collect();
    if nodes.is_empty() {
        return Err(VideoError::NoDevices {
            searched: SEARCHED.to_owned(),
        });
    }
    nodes.sort();
    let cameras: Vec<CameraInfo> = nodes
        .into_iter()
        .filter_map(|(_, path)| match describe(&path) {
            Ok(info) if !info.formats.is_empty() => Some(info),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("skipping {}: {e}", path.display());
                None
            }
        })
        .collect();
    if cameras.is_empty() {
        return Err(VideoError::NoDevices {
            searched: format!("{SEARCHED} that capture video"),
        });
    }
    Ok(cameras)
}

fn device_err(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> VideoError {
    let path = path.to_owned();
    move |source| VideoError::Device { path, op, source }
}

fn describe(path: &Path) -> Result<CameraInfo, VideoError> {
    let dev = Device::with_path(path).map_err(device_err(path, "open"))?;
    let caps = dev
        .query_caps()
        .map_err(device_err(path, "query capabilities"))?;
    let mut formats = Vec::new();
    for desc in dev
        .enum_formats()
        .map_err(device_err(path, "list formats"))?
    {
        let mut sizes = Vec::new();
        for size in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
            for (width, height) in discrete_sizes(&size.size) {
                let fps = dev
                    .enum_frameintervals(desc.fourcc, width, height)
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|i| match &i.interval {
                        FrameIntervalEnum::Discrete(f) => vec![rate(f)],
                        FrameIntervalEnum::Stepwise(s) => vec![rate(&s.min), rate(&s.max)],
                    })
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .collect();
                sizes.push(FrameSize { width, height, fps });
            }
        }
        formats.push(CameraFormat {
            fourcc: desc.fourcc.str().unwrap_or("????").to_owned(),
            description: desc.description.clone(),
            sizes,
        });
    }
    Ok(CameraInfo {
        path: path.to_owned(),
        name: caps.card,
        driver: caps.driver,
        formats,
    })
}

/// Discrete sizes as they are; a range as its ends plus the common sizes
/// that fall on its grid (listing every step could be millions).
fn discrete_sizes(size: &FrameSizeEnum) -> Vec<(u32, u32)> {
    match size {
        FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
        FrameSizeEnum::Stepwise(s) => {
            let on_grid = |v: u32, min: u32, max: u32, step: u32| {
                (min..=max).contains(&v) && (v - min) % step.max(1) == 0
            };
            let inside = COMMON_SIZES.iter().copied().filter(|&(w, h)| {
                on_grid(w, s.min_width, s.max_width, s.step_width)
                    && on_grid(h, s.min_height, s.max_height, s.step_height)
            });
            let mut out = Vec::new();
            for size in std::iter::once((s.min_width, s.min_height))
                .chain(inside)
                .chain([(s.max_width, s.max_height)])
            {
                if !out.contains(&size) {
                    out.push(size);
                }
            }
            out
        }
    }
}

/// Frames per second from a frame interval in seconds.
fn rate(interval: &Fraction) -> f64 {
    f64::from(interval.denominator) / f64::from(interval.numerator)
}

/// A V4L2 camera as a [`VideoSource`]: MJPEG frames pass through, YUYV
/// and NV12 frames are encoded with the given settings.
///
/// Open it on the thread that reads it, e.g. inside
/// [`SourceHandle::spawn`](crate::SourceHandle::spawn).
pub struct CameraSource {
    stream: Stream<'static>,
    path: PathBuf,
    format: CaptureFormat,
    width: u16,
    height: u16,
    stride: usize,
    limited_range: bool,
    encoder: JpegEncoder,
    info: SourceInfo,
    seq: u32,
}

impl std::fmt::Debug for CameraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraSource")
            .field("info", &self.info)
            .field("format", &self.format)
            .finish()
    }
}

impl CameraSource {
    /// Opens a camera in the mode nearest `request` (see
    /// [`choose_mode`](super::choose_mode)). Fails with
    /// [`VideoError::NoDevices`] when the machine has no camera, and with
    /// [`VideoError::CameraNotFound`] listing the cameras when `selector`
    /// matches none.
    pub fn open(
        selector: &CameraSelector,
        request: &CaptureRequest,
        jpeg: JpegConfig,
    ) -> Result<CameraSource, VideoError> {
        let cameras = list_cameras()?;
        let found = match selector {
            CameraSelector::Index(i) => cameras.get(*i),
            CameraSelector::Path(p) => cameras.iter().find(|c| &c.path == p),
        };
        let Some(camera) = found else {
            return Err(VideoError::CameraNotFound {
                requested: selector.to_string(),
                available: cameras
                    .iter()
                    .map(|c| format!("{} ({})", c.path.display(), c.name))
                    .collect(),
            });
        };
        let path = camera.path.as_path();
        let unsupported = |offered: String| VideoError::UnsupportedFormat {
            path: path.to_owned(),
            requested: request.to_string(),
            offered,
        };
        let mode = choose_mode(&camera.formats, request)
            .ok_or_else(|| unsupported(describe_formats(&camera.formats)))?;
        let dev = Device::with_path(path).map_err(device_err(path, "open"))?;
        let fourcc = FourCC::new(
            mode.format
                .fourcc()
                .as_bytes()
                .try_into()
                .unwrap_or(b"MJPG"),
        );
        let got = dev
            .set_format(&Format::new(mode.width, mode.height, fourcc))
            .map_err(device_err(path, "set format"))?;
        if got.fourcc != fourcc {
            return Err(unsupported(format!(
                "{} instead of {}",
                got.fourcc,
                mode.format.fourcc()
            )));
        }
        let (width, height) = crate::frame::jpeg_size(got.width as usize, got.height as usize)?;
        // Not every driver lets the rate be set; capture at whatever it gives.
        let interval = Fraction::new(1000, fps_milli(mode.fps).max(1));
        let fps = match dev.set_params(&v4l::video::capture::Parameters::new(interval)) {
            Ok(p) => rate(&p.interval),
            Err(e) => {
                tracing::warn!(
                    "{}: cannot set frame rate {:.2}: {e}",
                    path.display(),
                    mode.fps
                );
                mode.fps
            }
        };
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, 4)
            .map_err(device_err(path, "map buffers"))?;
        stream.set_timeout(FRAME_TIMEOUT);
        tracing::info!(
            "{}: {} {}x{} @ {fps:.2} fps",
            path.display(),
            mode.format.fourcc(),
            width,
            height
        );
        Ok(CameraSource {
            stream,
            path: path.to_owned(),
            format: mode.format,
            width,
            height,
            stride: got.stride as usize,
            limited_range: !matches!(got.quantization, Quantization::FullRange),
            encoder: JpegEncoder::new(jpeg)?,
            info: SourceInfo {
                name: format!("{} ({})", path.display(), camera.name),
                width,
                height,
                fps_milli: fps_milli(fps),
            },
            seq: 0,
        })
    }

    /// The format being captured.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }
}

impl VideoSource for CameraSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        loop {
            let (buf, meta) = self
                .stream
                .next()
                .map_err(device_err(&self.path, "capture frame"))?;
            // A corrupted or empty buffer is skipped, not fatal: USB
            // cameras drop the odd frame.
            let data = buf.get(..meta.bytesused as usize).unwrap_or(buf);
            if meta.flags.contains(Flags::ERROR) || data.is_empty() {
                continue;
            }
            let capture_timestamp_us = now_us();
            let jpeg = match self.format {
                CaptureFormat::Mjpeg if data.starts_with(&[0xFF, 0xD8]) => {
                    Bytes::copy_from_slice(data)
                }
                CaptureFormat::Mjpeg => continue,
                CaptureFormat::Yuyv | CaptureFormat::Nv12 => {
                    let format = if self.format == CaptureFormat::Yuyv {
                        RawFormat::Yuyv
                    } else {
                        RawFormat::Nv12
                    };
                    let raw = RawFrame {
                        format,
                        width: usize::from(self.width),
                        height: usize::from(self.height),
                        stride: self.stride,
                        limited_range: self.limited_range,
                        data,
                    };
                    match self.encoder.encode_raw_to_bytes(&raw) {
                        Ok(jpeg) => jpeg,
                        // A short buffer is a damaged frame: skip it.
                        Err(VideoError::BufferSize {
                            actual, expected, ..
                        }) => {
                            tracing::debug!(
                                "{}: short frame ({actual} of {expected} bytes)",
                                self.path.display()
                            );
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            return Ok(EncodedFrame {
                seq,
                capture_timestamp_us,
                width: self.width,
                height: self.height,
                jpeg,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_camera_the_error_says_what_exists() {
        let has_nodes = std::fs::read_dir("/dev")
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with("video"))
            })
            .unwrap_or(false);
        if has_nodes {
            eprintln!("skipped: this machine has /dev/video* nodes");
            return;
        }
        let err = list_cameras().unwrap_err();
        assert_eq!(
            err.to_string(),
            "no video devices found (/dev/video* absent)"
        );
        let req = CaptureRequest {
            width: 640,
            height: 480,
            fps: 30.0,
        };
        let err =
            CameraSource::open(&CameraSelector::Index(0), &req, JpegConfig::default()).unwrap_err();
        assert!(matches!(err, VideoError::NoDevices { .. }), "{err}");
    }

    #[test]
    fn ranges_list_their_ends_and_common_sizes_on_the_grid() {
        let s = FrameSizeEnum::Stepwise(v4l::framesize::Stepwise {
            min_width: 160,
            max_width: 1920,
            step_width: 16,
            min_height: 120,
            max_height: 1080,
            step_height: 8,
        });
        // 1080 - 120 = 960 is on the 8-line grid; 720 - 120 = 600 too.
        assert_eq!(
            discrete_sizes(&s),
            vec![
                (160, 120),
                (640, 480),
                (1280, 720),
                (1920, 1080),
                (320, 240)
            ]
        );
        assert_eq!(rate(&Fraction::new(1001, 30000)).round(), 30.0);
    }
}
