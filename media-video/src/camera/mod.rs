//! Cameras: what they offer, which mode to pick, and (with the `camera`
//! feature, on Linux) capture through V4L2.
//!
//! Mode choice is a pure function, [`choose_mode`], so it is tested
//! without a device. The device side lives in `v4l2.rs`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[cfg(all(feature = "camera", target_os = "linux"))]
mod v4l2;
#[cfg(all(feature = "camera", target_os = "linux"))]
pub use v4l2::{list_cameras, CameraSource};

/// A pixel format this crate can capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// The camera compresses: frames pass through untouched (`MJPG`).
    Mjpeg,
    /// Packed 4:2:2 (`YUYV`), encoded here.
    Yuyv,
    /// Semi-planar 4:2:0 (`NV12`), encoded here.
    Nv12,
}

impl CaptureFormat {
    /// The V4L2 four-character code.
    pub fn fourcc(self) -> &'static str {
        match self {
            CaptureFormat::Mjpeg => "MJPG",
            CaptureFormat::Yuyv => "YUYV",
            CaptureFormat::Nv12 => "NV12",
        }
    }

    /// The format for a four-character code, if supported.
    pub fn from_fourcc(code: &str) -> Option<CaptureFormat> {
        [
            CaptureFormat::Mjpeg,
            CaptureFormat::Yuyv,
            CaptureFormat::Nv12,
        ]
        .into_iter()
        .find(|f| f.fourcc() == code)
    }

    /// Lower is better: passthrough beats encoding, and YUYV is what
    /// webcams most often do well.
    fn rank(self) -> u8 {
        self as u8
    }
}

/// One size a camera offers in one format, with the frame rates it offers
/// there.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rates, frames per second (empty when the driver does not say).
    pub fps: Vec<f64>,
}

/// One pixel format a camera offers.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraFormat {
    /// The four-character code (`MJPG`, `YUYV`, `H264`, ...).
    pub fourcc: String,
    /// The driver's description (`Motion-JPEG`).
    pub description: String,
    /// The sizes offered. Drivers with continuous ranges are listed at the
    /// range's ends and the common sizes inside it.
    pub sizes: Vec<FrameSize>,
}

/// A capture device and what it offers.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// The device node (`/dev/video0`).
    pub path: PathBuf,
    /// The card name (`HD Pro Webcam C920`).
    pub name: String,
    /// The kernel driver (`uvcvideo`).
    pub driver: String,
    /// Every pixel format, including ones this crate cannot capture.
    pub formats: Vec<CameraFormat>,
}

impl fmt::Display for CameraInfo {
    /// Several lines: the device, then one line per format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}, {})",
            self.path.display(),
            self.name,
            self.driver
        )?;
        for format in &self.formats {
            write!(f, "  {} {}:", format.fourcc, format.description)?;
            for size in &format.sizes {
                let fps: Vec<String> = size.fps.iter().map(|r| format!("{r:.0}")).collect();
                write!(f, " {}x{}@{}", size.width, size.height, fps.join("/"))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Which camera to open: an index into [`list_cameras`]'s list (not the
/// `N` of `/dev/videoN`, since one webcam often owns two nodes), or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSelector {
    /// The n-th capture device found.
    Index(usize),
    /// A device node.
    Path(PathBuf),
}

impl FromStr for CameraSelector {
    type Err = std::convert::Infallible;
    /// `"0"` is an index; anything else is a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse() {
            Ok(i) => CameraSelector::Index(i),
            Err(_) => CameraSelector::Path(PathBuf::from(s)),
        })
    }
}

impl fmt::Display for CameraSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraSelector::Index(i) => write!(f, "#{i}"),
            CameraSelector::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What the caller would like; the camera gets as close as it can.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureRequest {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
}

impl fmt::Display for CaptureRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} @ {} fps", self.width, self.height, self.fps)
    }
}

/// The mode picked for a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureMode {
    /// The pixel format.
    pub format: CaptureFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second (the request's when the driver lists none).
    pub fps: f64,
}

/// Picks the offered mode closest to `request`, or `None` when the camera
/// offers nothing this crate can capture.
///
/// In order of importance: the exact size; otherwise the nearest pixel
/// count; then reaching the requested rate (a webcam often offers 1080p
/// YUYV at 5 fps beside 1080p MJPEG at 30); then the format (MJPEG
/// passthrough, then YUYV, then NV12); then the rate nearest the request.
pub fn choose_mode(formats: &[CameraFormat], request: &CaptureRequest) -> Option<CaptureMode> {
    let want_area = u64::from(request.width) * u64::from(request.height);
    formats
        .iter()
        .filter_map(|f| Some((CaptureFormat::from_fourcc(&f.fourcc)?, f)))
        .flat_map(|(format, f)| f.sizes.iter().map(move |s| (format, s)))
        .map(|(format, size)| {
            // The offered rate nearest the request, favouring faster ones.
            let fps = size
                .fps
                .iter()
                .copied()
                .min_by(|a, b| fps_cost(*a, request.fps).total_cmp(&fps_cost(*b, request.fps)))
                .unwrap_or(request.fps);
            let area = u64::from(size.width) * u64::from(size.height);
            let key = (
                (size.width, size.height) != (request.width, request.height),
                area.abs_diff(want_area),
                fps < request.fps * 0.95,
                format.rank(),
                ((fps - request.fps).abs() * 1000.0) as u64,
            );
            let mode = CaptureMode {
                format,
                width: size.width,
                height: size.height,
                fps,
            };
            (key, mode)
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, mode)| mode)
}

/// Falling short of the requested rate costs ten times more than
/// overshooting it (a faster mode can be throttled; a slower one cannot).
fn fps_cost(offered: f64, wanted: f64) -> f64 {
    if offered < wanted {
        (wanted - offered) * 10.0
    } else {
        offered - wanted
    }
}

/// Summarises formats for error messages: `MJPG 1280x720 640x480; H264 ...`.
#[cfg_attr(not(all(feature = "camera", target_os = "linux")), allow(dead_code))]
pub(crate) fn describe_formats(formats: &[CameraFormat]) -> String {
    if formats.is_empty() {
        return "nothing".to_owned();
    }
    let parts: Vec<String> = formats
        .iter()
        .map(|f| {
            let sizes: Vec<String> = f
                .sizes
                .iter()
                .map(|s| format!("{}x{}", s.width, s.height))
                .collect();
            format!("{} {}", f.fourcc, sizes.join(" "))
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests;
