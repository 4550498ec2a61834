//! Frame types shared by every source, codec and sink.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::VideoError;

/// An 8-bit RGB image, rows top to bottom, no padding between rows.
///
/// Buffers are meant to be reused: [`RgbImage::resize`] keeps the
/// allocation when the size does not grow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RgbImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl RgbImage {
    /// A black image.
    pub fn new(width: usize, height: usize) -> RgbImage {
        RgbImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// Wraps existing pixels; `data` must hold exactly `width * height * 3` bytes.
    pub fn from_vec(width: usize, height: usize, data: Vec<u8>) -> Result<RgbImage, VideoError> {
        let expected = width * height * 3;
        if data.len() != expected {
            return Err(VideoError::BufferSize {
                what: "RGB image",
                width,
                height,
                expected,
                actual: data.len(),
            });
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// Changes the size, reusing the allocation; pixel contents are
    /// unspecified afterwards.
    pub fn resize(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width * height * 3, 0);
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, `[r, g, b]` per pixel, row by row.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The pixels, mutable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives up the pixel buffer.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }

    /// The pixel at (`x`, `y`), or `None` outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y * self.width + x) * 3;
        let p = self.data.get(i..i + 3)?;
        Some([p[0], p[1], p[2]])
    }

    /// Peak signal-to-noise ratio in dB against `other` over all channels;
    /// `None` when the sizes differ, infinity when identical.
    pub fn psnr(&self, other: &RgbImage) -> Option<f64> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let sum: u64 = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| {
                let d = u64::from(a.abs_diff(b));
                d * d
            })
            .sum();
        if sum == 0 {
            return Some(f64::INFINITY);
        }
        let mse = sum as f64 / self.data.len() as f64;
        Some(10.0 * (255.0 * 255.0 / mse).log10())
    }
}

/// One JPEG-encoded frame, as sources produce it and the relay forwards it.
///
/// Cloning is cheap: the JPEG bytes are reference counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Increments by one per captured frame and wraps; gaps mean frames
    /// were dropped before this point.
    pub seq: u32,
    /// When the frame was captured, in microseconds since the Unix epoch on
    /// the capturing machine's clock (see [`now_us`]).
    pub capture_timestamp_us: u64,
    /// Width in pixels (JPEG caps both dimensions at 65,535).
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// A complete baseline JPEG image (SOI to EOI).
    pub jpeg: Bytes,
}

/// What a source produces: its name, frame size and nominal rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// A name for people and stream announcements (`test-pattern`,
    /// `/dev/video0 (HD Webcam)`).
    pub name: String,
    /// Frame width in pixels.
    pub width: u16,
    /// Frame height in pixels.
    pub height: u16,
    /// Nominal frames per second in thousandths (30,000 for 30 fps), as in
    /// the wire protocol's `VideoAnnounce`.
    pub fps_milli: u32,
}

/// Microseconds since the Unix epoch: the clock `capture_timestamp_us` uses.
///
/// A wall clock, so that a viewer on another machine with a synchronised
/// clock can compute end-to-end latency. A clock before 1970 reads as 0.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Checks a frame size for JPEG: both sides in `1..=65535`.
pub(crate) fn jpeg_size(width: usize, height: usize) -> Result<(u16, u16), VideoError> {
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(VideoError::InvalidConfig {
            what: "size",
            reason: format!("{width}x{height}: JPEG needs both sides in 1..=65535"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_is_bounds_checked() {
        let mut img = RgbImage::new(2, 2);
        img.as_bytes_mut()[9..12].copy_from_slice(&[1, 2, 3]);
        assert_eq!(img.pixel(1, 1), Some([1, 2, 3]));
        assert_eq!(img.pixel(2, 0), None);
        assert_eq!(img.pixel(0, 2), None);
    }

    #[test]
    fn psnr_of_identical_images_is_infinite() {
        let a = RgbImage::new(4, 4);
        assert_eq!(a.psnr(&a), Some(f64::INFINITY));
        assert_eq!(a.psnr(&RgbImage::new(4, 3)), None);
        let mut b = a.clone();
        b.as_bytes_mut()[0] = 255;
        let p = a.psnr(&b).unwrap();
        assert!(p > 10.0 && p < 30.0, "{p}");
    }

    #[test]
    fn from_vec_checks_length() {
        assert!(RgbImage::from_vec(2, 2, vec![0; 12]).is_ok());
        assert!(matches!(
            RgbImage::from_vec(2, 2, vec![0; 11]),
            Err(VideoError::BufferSize { expected: 12, .. })
        ));
        assert!(jpeg_size(0, 5).is_err());
        assert!(jpeg_size(70_000, 5).is_err());
        assert_eq!(jpeg_size(640, 480).unwrap(), (640, 480));
    }
}
