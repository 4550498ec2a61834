//! Camera pixel formats (YUYV, NV12) straight into JPEG.
//!
//! JPEG stores Y'CbCr, which is what cameras deliver, so no RGB step is
//! needed: the packed or semi-planar input is split into the three planes
//! libjpeg-turbo takes (`tj3CompressFromYUVPlanes8`), keeping the camera's
//! own chroma resolution, or halving it vertically for 4:2:0. Cameras send
//! "limited range" (Y 16–235) while JFIF means full range, so the split also
//! stretches the values, with integer arithmetic that vectorises.

use turbojpeg::Subsamp;

use crate::jpeg::{chroma_size, ChromaSubsampling, JpegEncoder};
use crate::VideoError;

/// An uncompressed camera pixel layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawFormat {
    /// Packed 4:2:2, `Y0 U Y1 V` per pixel pair (V4L2 `YUYV`).
    Yuyv,
    /// Planar Y then interleaved `U V` at 4:2:0 (V4L2 `NV12`).
    Nv12,
}

/// One uncompressed camera frame, borrowed from the capture buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// The pixel layout.
    pub format: RawFormat,
    /// Width in pixels; must be even.
    pub width: usize,
    /// Height in pixels; must be even for NV12.
    pub height: usize,
    /// Bytes from one row to the next (at least `2 * width` for YUYV,
    /// `width` for NV12).
    pub stride: usize,
    /// Whether samples use the video "limited" range (Y 16–235, C 16–240),
    /// as V4L2 cameras do by default for YUV formats.
    pub limited_range: bool,
    /// The bytes.
    pub data: &'a [u8],
}

impl RawFrame<'_> {
    /// Checks that the sizes and stride fit the buffer, so the conversion
    /// below cannot run past it.
    fn validate(&self) -> Result<(), VideoError> {
        let (w, h) = (self.width, self.height);
        crate::frame::jpeg_size(w, h)?;
        let (what, row, rows) = match self.format {
            RawFormat::Yuyv => ("YUYV frame", 2 * w, h),
            RawFormat::Nv12 => ("NV12 frame", w, h + h / 2),
        };
        if w % 2 != 0 || (self.format == RawFormat::Nv12 && h % 2 != 0) {
            return Err(VideoError::InvalidConfig {
                what: "size",
                reason: format!("{what} of {w}x{h}: chroma needs even dimensions"),
            });
        }
        if self.stride < row {
            return Err(VideoError::InvalidConfig {
                what: "stride",
                reason: format!(
                    "{what}: stride {} is below the row length {row}",
                    self.stride
                ),
            });
        }
        let expected = self.stride * (rows - 1) + row;
        if self.data.len() < expected {
            return Err(VideoError::BufferSize {
                what,
                width: w,
                height: h,
                expected,
                actual: self.data.len(),
            });
        }
        Ok(())
    }
}

/// Limited to full range: luma 16..=235 → 0..=255 (×255/219 ≈ ×149/128),
/// saturating outside the nominal range (sensor overshoot). Plain integer
/// arithmetic rather than a lookup table, so the loops below vectorise.
#[inline(always)]
fn luma_full(y: u8) -> u8 {
    ((u16::from(y.saturating_sub(16)) * 149 + 64) >> 7).min(255) as u8
}

/// Limited to full range: chroma 16..=240 around 128 → 0..=255
/// (×255/224 ≈ ×146/128), saturating.
#[inline(always)]
fn chroma_full(c: u8) -> u8 {
    (((i16::from(c) - 128) * 146 + 64) >> 7).clamp(-128, 127) as u8 ^ 0x80
}

#[inline(always)]
fn same(v: u8) -> u8 {
    v
}

impl JpegEncoder {
    /// Encodes a camera frame without going through RGB; the JPEG stays
    /// valid until the next call. YUYV keeps 4:2:2 unless the configured
    /// subsampling is 4:2:0 or gray; NV12 is 4:2:0 unless gray (4:4:4 cannot
    /// add colour the camera did not send). Allocates nothing once the
    /// encoder has seen this size and format.
    pub fn encode_raw(&mut self, frame: &RawFrame<'_>) -> Result<&[u8], VideoError> {
        frame.validate()?;
        let subsamp = match (frame.format, self.config().subsampling) {
            (_, ChromaSubsampling::Gray) => Subsamp::Gray,
            (RawFormat::Yuyv, ChromaSubsampling::Quarter) | (RawFormat::Nv12, _) => Subsamp::Sub2x2,
            (RawFormat::Yuyv, _) => Subsamp::Sub2x1,
        };
        let (w, h) = (frame.width, frame.height);
        let (cw, ch) = chroma_size(w, h, subsamp);
        let [yp, up, vp] = &mut self.planes;
        yp.resize(w * h, 0);
        up.resize(cw * ch, 0);
        vp.resize(cw * ch, 0);
        let planes = Planes {
            subsamp,
            cw,
            y: yp,
            u: up,
            v: vp,
        };
        // One copy of each loop per range, so the conversion inlines.
        match (frame.format, frame.limited_range) {
            (RawFormat::Yuyv, true) => split_yuyv(frame, planes, luma_full, chroma_full),
            (RawFormat::Yuyv, false) => split_yuyv(frame, planes, same, same),
            (RawFormat::Nv12, true) => split_nv12(frame, planes, luma_full, chroma_full),
            (RawFormat::Nv12, false) => split_nv12(frame, planes, same, same),
        }
        self.encode_planes(w, h, subsamp)
    }

    /// Like [`encode_raw`](Self::encode_raw), copied into one allocation of
    /// exactly the JPEG's length.
    pub fn encode_raw_to_bytes(
        &mut self,
        frame: &RawFrame<'_>,
    ) -> Result<bytes::Bytes, VideoError> {
        self.encode_raw(frame).map(bytes::Bytes::copy_from_slice)
    }
}

/// Destination planes, already sized for the frame.
struct Planes<'a> {
    subsamp: Subsamp,
    /// Chroma plane width (row length).
    cw: usize,
    y: &'a mut [u8],
    u: &'a mut [u8],
    v: &'a mut [u8],
}

/// `Y0 U Y1 V` rows into planes. For 4:2:0 the odd row's chroma is
/// averaged into the even row's.
fn split_yuyv(
    frame: &RawFrame<'_>,
    p: Planes<'_>,
    luma: impl Fn(u8) -> u8 + Copy,
    chroma: impl Fn(u8) -> u8 + Copy,
) {
    let (w, cw) = (frame.width, p.cw);
    let rows = frame.data.chunks(frame.stride).zip(p.y.chunks_exact_mut(w));
    for (r, (row, y_row)) in rows.enumerate() {
        let row = &row[..2 * w];
        if p.subsamp == Subsamp::Gray {
            for (y, px) in y_row.iter_mut().zip(row.chunks_exact(2)) {
                *y = luma(px[0]);
            }
            continue;
        }
        let cr = if p.subsamp == Subsamp::Sub2x2 {
            r / 2
        } else {
            r
        };
        let u_row = &mut p.u[cr * cw..(cr + 1) * cw];
        let v_row = &mut p.v[cr * cw..(cr + 1) * cw];
        let pixels = row.chunks_exact(4).zip(y_row.chunks_exact_mut(2));
        if p.subsamp == Subsamp::Sub2x2 && r % 2 == 1 {
            for ((quad, ys), (u, v)) in pixels.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
                (ys[0], ys[1]) = (luma(quad[0]), luma(quad[2]));
                (*u, *v) = (avg(*u, chroma(quad[1])), avg(*v, chroma(quad[3])));
            }
        } else {
            for ((quad, ys), (u, v)) in pixels.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
                (ys[0], ys[1]) = (luma(quad[0]), luma(quad[2]));
                (*u, *v) = (chroma(quad[1]), chroma(quad[3]));
            }
        }
    }
}

/// A Y plane, then interleaved `U V` rows at half height, into planes.
fn split_nv12(
    frame: &RawFrame<'_>,
    p: Planes<'_>,
    luma: impl Fn(u8) -> u8 + Copy,
    chroma: impl Fn(u8) -> u8 + Copy,
) {
    let (w, h, stride, cw) = (frame.width, frame.height, frame.stride, p.cw);
    for (row, y_row) in frame.data.chunks(stride).zip(p.y.chunks_exact_mut(w)) {
        for (y, &s) in y_row.iter_mut().zip(&row[..w]) {
            *y = luma(s);
        }
    }
    if p.subsamp == Subsamp::Gray {
        return;
    }
    // `validate` guarantees h / 2 rows of at least `w` bytes after the Y plane.
    let uv_rows = frame.data[stride * h..].chunks(stride);
    let chroma_rows = p.u.chunks_exact_mut(cw).zip(p.v.chunks_exact_mut(cw));
    for (row, (u_row, v_row)) in uv_rows.zip(chroma_rows) {
        for ((u, v), pair) in u_row
            .iter_mut()
            .zip(v_row.iter_mut())
            .zip(row[..w].chunks_exact(2))
        {
            (*u, *v) = (chroma(pair[0]), chroma(pair[1]));
        }
    }
}

fn avg(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JpegConfig, JpegDecoder, RgbImage};

    /// Full-range BT.601, as JFIF defines it.
    fn yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
        let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let u = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
        let v = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
        (y.round() as u8, u.round() as u8, v.round() as u8)
    }

    /// Colour bars as YUYV with `pad` spare bytes per row.
    fn bars_yuyv(w: usize, h: usize, pad: usize) -> (Vec<u8>, Vec<[u8; 3]>) {
        let colours = vec![
            [255, 255, 255],
            [255, 255, 0],
            [0, 255, 255],
            [0, 255, 0],
            [255, 0, 255],
            [255, 0, 0],
            [0, 0, 255],
            [0, 0, 0],
        ];
        let mut data = Vec::new();
        for _ in 0..h {
            for x in (0..w).step_by(2) {
                let [r, g, b] = colours[x * colours.len() / w];
                let (y, u, v) = yuv(r, g, b);
                data.extend_from_slice(&[y, u, y, v]);
            }
            data.extend(std::iter::repeat_n(0xAA, pad));
        }
        (data, colours)
    }

    fn check_bars(img: &RgbImage, colours: &[[u8; 3]]) {
        for (i, want) in colours.iter().enumerate() {
            let x = (2 * i + 1) * img.width() / (2 * colours.len());
            let got = img.pixel(x, img.height() / 2).unwrap();
            for c in 0..3 {
                assert!(
                    got[c].abs_diff(want[c]) <= 12,
                    "bar {i}: got {got:?}, want {want:?}"
                );
            }
        }
    }

    #[test]
    fn yuyv_becomes_a_jpeg_of_the_same_colours() {
        let (w, h) = (320, 240);
        let (data, colours) = bars_yuyv(w, h, 16);
        let mut dec = JpegDecoder::new().unwrap();
        for subsampling in [ChromaSubsampling::Half, ChromaSubsampling::Quarter] {
            let mut enc = JpegEncoder::new(JpegConfig {
                quality: 90,
                subsampling,
            })
            .unwrap();
            let frame = RawFrame {
                format: RawFormat::Yuyv,
                width: w,
                height: h,
                stride: 2 * w + 16,
                limited_range: false,
                data: &data,
            };
            let jpeg = enc.encode_raw(&frame).unwrap().to_vec();
            let img = dec.decode(&jpeg).unwrap();
            assert_eq!((img.width(), img.height()), (w, h));
            check_bars(&img, &colours);
        }
    }

    #[test]
    fn nv12_and_limited_range_decode_to_the_right_colours() {
        let (w, h) = (64, 32);
        let (y, u, v) = (81u8, 90u8, 240u8); // limited-range BT.601 red
        let mut data = vec![y; w * h];
        for _ in 0..(w * h / 4) {
            data.extend_from_slice(&[u, v]);
        }
        let mut enc = JpegEncoder::new(JpegConfig::default()).unwrap();
        let frame = RawFrame {
            format: RawFormat::Nv12,
            width: w,
            height: h,
            stride: w,
            limited_range: true,
            data: &data,
        };
        let jpeg = enc.encode_raw_to_bytes(&frame).unwrap();
        let px = JpegDecoder::new()
            .unwrap()
            .decode(&jpeg)
            .unwrap()
            .pixel(10, 10)
            .unwrap();
        assert!(px[0] > 240 && px[1] < 15 && px[2] < 15, "{px:?}");
    }

    #[test]
    fn bad_raw_frames_are_errors_not_panics() {
        let mut enc = JpegEncoder::new(JpegConfig::default()).unwrap();
        let data = vec![0u8; 100];
        let frame = |format, width, height, stride| RawFrame {
            format,
            width,
            height,
            stride,
            limited_range: true,
            data: &data,
        };
        assert!(matches!(
            enc.encode_raw(&frame(RawFormat::Yuyv, 3, 2, 6)),
            Err(VideoError::InvalidConfig { what: "size", .. })
        ));
        assert!(matches!(
            enc.encode_raw(&frame(RawFormat::Yuyv, 10, 10, 20)),
            Err(VideoError::BufferSize { .. })
        ));
        assert!(matches!(
            enc.encode_raw(&frame(RawFormat::Yuyv, 4, 2, 4)),
            Err(VideoError::InvalidConfig { what: "stride", .. })
        ));
        assert!(enc.encode_raw(&frame(RawFormat::Nv12, 8, 8, 8)).is_ok());
        assert!(enc.encode_raw(&frame(RawFormat::Nv12, 8, 9, 8)).is_err());
        assert!(enc.encode_raw(&frame(RawFormat::Yuyv, 0, 0, 0)).is_err());
    }

    #[test]
    fn gray_output_needs_no_chroma() {
        let (data, _) = bars_yuyv(32, 16, 0);
        let mut enc = JpegEncoder::new(JpegConfig {
            quality: 80,
            subsampling: ChromaSubsampling::Gray,
        })
        .unwrap();
        let frame = RawFrame {
            format: RawFormat::Yuyv,
            width: 32,
            height: 16,
            stride: 64,
            limited_range: false,
            data: &data,
        };
        let img = JpegDecoder::new()
            .unwrap()
            .decode(enc.encode_raw(&frame).unwrap())
            .unwrap();
        let [r, g, b] = img.pixel(1, 8).unwrap();
        assert!(r == g && g == b && r > 240, "{r} {g} {b}");
    }

    #[test]
    fn range_expansion_matches_the_exact_formula() {
        assert_eq!(
            (luma_full(16), luma_full(235), luma_full(0), luma_full(255)),
            (0, 255, 0, 255)
        );
        assert_eq!(
            (chroma_full(16), chroma_full(128), chroma_full(240)),
            (0, 128, 255)
        );
        assert_eq!((chroma_full(0), chroma_full(255)), (0, 255));
        for v in 0..=255u8 {
            let exact_y = ((f64::from(v) - 16.0) * 255.0 / 219.0).clamp(0.0, 255.0);
            let exact_c = ((f64::from(v) - 128.0) * 255.0 / 224.0 + 128.0).clamp(0.0, 255.0);
            assert!((f64::from(luma_full(v)) - exact_y).abs() <= 1.0, "luma {v}");
            assert!(
                (f64::from(chroma_full(v)) - exact_c).abs() <= 1.0,
                "chroma {v}"
            );
        }
    }
}
