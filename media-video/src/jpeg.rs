//! JPEG encoding and decoding through libjpeg-turbo, with reused buffers.
//!
//! Both codecs keep their working memory between frames. [`JpegEncoder`]
//! compresses into its own buffer, sized once per resolution to
//! libjpeg-turbo's worst case, and lends the result out as `&[u8]`; the
//! `*_to_bytes` variants copy it into one exactly-sized [`Bytes`] so that
//! the frame can outlive the encoder and be shared. (libjpeg's own
//! per-image bookkeeping is allocated and freed with `malloc` inside each
//! call; it is small, and Rust's allocator never sees it.)

use bytes::Bytes;
use turbojpeg::{Compressor, Decompressor, Image, OutputBuf, PixelFormat, Subsamp, YuvPlanesImage};

use crate::{RgbImage, VideoError};

/// How chroma is subsampled in the JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChromaSubsampling {
    /// 4:4:4, full-resolution colour: largest files, sharpest colour edges.
    Full,
    /// 4:2:2, half horizontal colour resolution (what most webcams send).
    Half,
    /// 4:2:0, quarter colour resolution: the usual choice for video.
    #[default]
    Quarter,
    /// Luma only.
    Gray,
}

impl ChromaSubsampling {
    fn turbo(self) -> Subsamp {
        match self {
            ChromaSubsampling::Full => Subsamp::None,
            ChromaSubsampling::Half => Subsamp::Sub2x1,
            ChromaSubsampling::Quarter => Subsamp::Sub2x2,
            ChromaSubsampling::Gray => Subsamp::Gray,
        }
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JpegConfig {
    /// 1 (smallest) to 100 (best).
    pub quality: u8,
    /// Chroma subsampling for RGB input; YUV input keeps its own (see
    /// [`JpegEncoder::encode_raw`]).
    pub subsampling: ChromaSubsampling,
}

impl Default for JpegConfig {
    /// Quality 80 with 4:2:0, the point `tjbench` is usually quoted at.
    fn default() -> Self {
        JpegConfig {
            quality: 80,
            subsampling: ChromaSubsampling::Quarter,
        }
    }
}

/// Turns RGB or camera YUV frames into baseline JPEGs.
pub struct JpegEncoder {
    compressor: Compressor,
    config: JpegConfig,
    /// Worst-case output buffer for the current size and subsampling; only
    /// grows. libjpeg-turbo writes into it without reallocating.
    out: Vec<u8>,
    /// Planar Y, U, V scratch for camera formats (see `yuv.rs`).
    pub(crate) planes: [Vec<u8>; 3],
}

impl std::fmt::Debug for JpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JpegEncoder")
            .field("config", &self.config)
            .finish()
    }
}

impl JpegEncoder {
    /// An encoder with these settings.
    pub fn new(config: JpegConfig) -> Result<JpegEncoder, VideoError> {
        let compressor = Compressor::new().map_err(VideoError::jpeg("create encoder"))?;
        let mut encoder = JpegEncoder {
            compressor,
            config,
            out: Vec::new(),
            planes: Default::default(),
        };
        encoder.set_config(config)?;
        Ok(encoder)
    }

    /// The current settings.
    pub fn config(&self) -> JpegConfig {
        self.config
    }

    /// Changes quality and subsampling for the following frames.
    pub fn set_config(&mut self, config: JpegConfig) -> Result<(), VideoError> {
        if !(1..=100).contains(&config.quality) {
            return Err(VideoError::InvalidConfig {
                what: "quality",
                reason: format!("{} is outside 1..=100", config.quality),
            });
        }
        self.compressor
            .set_quality(i32::from(config.quality))
            .map_err(VideoError::jpeg("configure"))?;
        self.config = config;
        Ok(())
    }

    /// Encodes `image`; the JPEG stays valid until the next call. Allocates
    /// nothing once the encoder has seen this size.
    pub fn encode_rgb(&mut self, image: &RgbImage) -> Result<&[u8], VideoError> {
        let (width, height) = (image.width(), image.height());
        crate::frame::jpeg_size(width, height)?;
        let subsamp = self.config.subsampling.turbo();
        self.compressor
            .set_subsamp(subsamp)
            .map_err(VideoError::jpeg("configure"))?;
        self.reserve(width, height, subsamp)?;
        let pixels = Image {
            pixels: image.as_bytes(),
            width,
            pitch: width * 3,
            height,
            format: PixelFormat::RGB,
        };
        compress_in_place(&mut self.out, |out| self.compressor.compress(pixels, out))
    }

    /// Like [`encode_rgb`](Self::encode_rgb), copied into one allocation of
    /// exactly the JPEG's length.
    pub fn encode_rgb_to_bytes(&mut self, image: &RgbImage) -> Result<Bytes, VideoError> {
        self.encode_rgb(image).map(Bytes::copy_from_slice)
    }

    /// Compresses the planes in `self.planes` (filled by `yuv.rs`).
    pub(crate) fn encode_planes(
        &mut self,
        width: usize,
        height: usize,
        subsamp: Subsamp,
    ) -> Result<&[u8], VideoError> {
        self.reserve(width, height, subsamp)?;
        let (cw, _) = chroma_size(width, height, subsamp);
        let [y, u, v] = &self.planes;
        if subsamp == Subsamp::Gray {
            // The planes API wants chroma planes even for gray; a one-channel
            // image says the same thing.
            self.compressor
                .set_subsamp(subsamp)
                .map_err(VideoError::jpeg("configure"))?;
            let luma = Image {
                pixels: &y[..],
                width,
                pitch: width,
                height,
                format: PixelFormat::GRAY,
            };
            return compress_in_place(&mut self.out, |out| self.compressor.compress(luma, out));
        }
        let image = YuvPlanesImage {
            y_plane: &y[..],
            u_plane: &u[..],
            v_plane: &v[..],
            width,
            height,
            y_stride: width,
            u_stride: cw,
            v_stride: cw,
            subsamp,
        };
        compress_in_place(&mut self.out, |out| {
            self.compressor.compress_yuv_planes(&image, out)
        })
    }

    fn reserve(&mut self, width: usize, height: usize, subsamp: Subsamp) -> Result<(), VideoError> {
        let need = turbojpeg::compressed_buf_len(width, height, subsamp)
            .map_err(VideoError::jpeg("size output buffer"))?;
        if self.out.len() < need {
            self.out.resize(need, 0);
        }
        Ok(())
    }
}

/// Runs one compression straight into `buf` and returns the JPEG in it. A
/// borrowed `OutputBuf` sets `TJPARAM_NOREALLOC`: libjpeg-turbo writes in
/// place (the buffer is already its worst-case size) and would fail rather
/// than allocate.
fn compress_in_place(
    buf: &mut [u8],
    compress: impl FnOnce(&mut OutputBuf<'_>) -> turbojpeg::Result<()>,
) -> Result<&[u8], VideoError> {
    let len = {
        let mut out = OutputBuf::borrowed(buf);
        compress(&mut out).map_err(VideoError::jpeg("encode"))?;
        out.len()
    };
    Ok(&buf[..len])
}

/// Width and height of each chroma plane for `subsamp` (0 for gray).
pub(crate) fn chroma_size(width: usize, height: usize, subsamp: Subsamp) -> (usize, usize) {
    match subsamp {
        Subsamp::Sub2x1 => (width.div_ceil(2), height),
        Subsamp::Sub2x2 => (width.div_ceil(2), height.div_ceil(2)),
        Subsamp::Gray => (0, 0),
        _ => (width, height),
    }
}

/// A decompressor that gives up on a progressive JPEG of more than 500
/// scans (a few hundred bytes can ask libjpeg for thousands, each a pass
/// over the whole picture).
fn new_decompressor() -> Result<Decompressor, VideoError> {
    let mut d = Decompressor::new().map_err(VideoError::jpeg("create decoder"))?;
    d.set_scan_limit(500)
        .map_err(VideoError::jpeg("configure decoder"))?;
    Ok(d)
}

/// The most pixels [`JpegDecoder`] decodes by default: 8K UHD
/// (7680×4320, about 100 MB as RGB).
pub const MAX_DECODE_PIXELS: usize = 7680 * 4320;

/// Turns JPEGs back into RGB, reusing the output image.
///
/// A JPEG's header may claim any size up to 65535×65535 in a few hundred
/// bytes; decoding that would take about 13 GB. So a JPEG larger than the
/// decoder's limit ([`MAX_DECODE_PIXELS`] unless set with
/// [`with_max_pixels`](Self::with_max_pixels)) is refused before anything
/// is allocated ([`VideoError::TooLarge`]).
pub struct JpegDecoder {
    decompressor: Decompressor,
    max_pixels: usize,
}

impl std::fmt::Debug for JpegDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JpegDecoder")
    }
}

impl JpegDecoder {
    /// A decoder.
    pub fn new() -> Result<JpegDecoder, VideoError> {
        Ok(JpegDecoder {
            decompressor: new_decompressor()?,
            max_pixels: MAX_DECODE_PIXELS,
        })
    }

    /// Refuses JPEGs of more than `max_pixels` pixels (width × height).
    pub fn with_max_pixels(mut self, max_pixels: usize) -> JpegDecoder {
        self.max_pixels = max_pixels;
        self
    }

    /// Width and height from the JPEG's header, without decoding it.
    pub fn read_size(&mut self, jpeg: &[u8]) -> Result<(usize, usize), VideoError> {
        match self.decompressor.read_header(jpeg) {
            Ok(header) => Ok((header.width, header.height)),
            Err(e) => {
                self.reset()?;
                Err(VideoError::jpeg("read header")(e))
            }
        }
    }

    /// A fresh decompressor after a failure: libjpeg-turbo 3.1 leaves one
    /// whose header failed half way through a marker (two SOIs, an
    /// unknown marker, a scan before the frame header), and every later
    /// JPEG then failed too: one such frame froze a viewer for good.
    fn reset(&mut self) -> Result<(), VideoError> {
        self.decompressor = new_decompressor()?;
        Ok(())
    }

    /// Decodes `jpeg` into `out`, resizing it to the JPEG's size. Allocates
    /// nothing when `out` already has room. A JPEG over the decoder's pixel
    /// limit is refused and leaves `out` as it was; one that fails to decode
    /// may leave it resized and partly written. After any failure the
    /// decoder decodes the next JPEG as a new one would.
    pub fn decode_into(&mut self, jpeg: &[u8], out: &mut RgbImage) -> Result<(), VideoError> {
        let (width, height) = self.read_size(jpeg)?;
        if width.saturating_mul(height) > self.max_pixels {
            self.reset()?;
            return Err(VideoError::TooLarge {
                width,
                height,
                max_pixels: self.max_pixels,
            });
        }
        out.resize(width, height);
        let image = Image {
            pixels: out.as_bytes_mut(),
            width,
            pitch: width * 3,
            height,
            format: PixelFormat::RGB,
        };
        if let Err(e) = self.decompressor.decompress(jpeg, image) {
            self.reset()?;
            return Err(VideoError::jpeg("decode")(e));
        }
        Ok(())
    }

    /// Decodes `jpeg` into a new image.
    pub fn decode(&mut self, jpeg: &[u8]) -> Result<RgbImage, VideoError> {
        let mut out = RgbImage::default();
        self.decode_into(jpeg, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> RgbImage {
        let mut img = RgbImage::new(width, height);
        for (i, px) in img.as_bytes_mut().chunks_exact_mut(3).enumerate() {
            let (x, y) = (i % width, i / width);
            px.copy_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 128]);
        }
        img
    }

    #[test]
    fn round_trip_keeps_size_and_quality() {
        let img = gradient(320, 240);
        let mut enc = JpegEncoder::new(JpegConfig::default()).unwrap();
        let jpeg = enc.encode_rgb_to_bytes(&img).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9]);
        let back = JpegDecoder::new().unwrap().decode(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (320, 240));
        let psnr = img.psnr(&back).unwrap();
        assert!(psnr > 35.0, "PSNR {psnr:.1} dB");
    }

    #[test]
    fn quality_and_subsampling_change_the_output() {
        let img = gradient(256, 256);
        let mut sizes = Vec::new();
        for (quality, subsampling) in [
            (95, ChromaSubsampling::Full),
            (50, ChromaSubsampling::Quarter),
            (50, ChromaSubsampling::Gray),
        ] {
            let mut enc = JpegEncoder::new(JpegConfig {
                quality,
                subsampling,
            })
            .unwrap();
            let len = enc.encode_rgb(&img).unwrap().len();
            sizes.push(len);
        }
        assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
    }

    #[test]
    fn bad_settings_and_garbage_are_errors() {
        let bad = JpegConfig {
            quality: 0,
            ..JpegConfig::default()
        };
        assert!(matches!(
            JpegEncoder::new(bad),
            Err(VideoError::InvalidConfig {
                what: "quality",
                ..
            })
        ));
        let mut enc = JpegEncoder::new(JpegConfig::default()).unwrap();
        assert!(enc.encode_rgb(&RgbImage::new(0, 0)).is_err());
        let mut dec = JpegDecoder::new().unwrap();
        assert!(matches!(
            dec.decode(b"not a jpeg"),
            Err(VideoError::Jpeg { .. })
        ));
    }

    /// A valid small JPEG whose header says `w`×`h`.
    fn claiming(w: u16, h: u16) -> Vec<u8> {
        let mut enc = JpegEncoder::new(JpegConfig::default()).unwrap();
        let mut jpeg = enc.encode_rgb_to_bytes(&gradient(16, 16)).unwrap().to_vec();
        let sof = jpeg.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        jpeg
    }

    #[test]
    fn a_header_claiming_a_huge_picture_is_refused_before_allocating() {
        // 30000x30000 used to take 2.6 GB and 3.3 s; 65500x65500 (the
        // most libjpeg-turbo reads) would take 12.9 GB. Now it is refused
        // at once and `out` keeps its size.
        let jpeg = claiming(65500, 65500);
        assert!(jpeg.len() < 1024);
        let mut decoder = JpegDecoder::new().unwrap();
        let mut out = RgbImage::new(16, 16);
        let err = decoder.decode_into(&jpeg, &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                VideoError::TooLarge {
                    width: 65500,
                    height: 65500,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!((out.width(), out.height()), (16, 16));
        assert_eq!(out.as_bytes().len(), 16 * 16 * 3);
        // A lower limit of its own: a 32x32 picture passes at 1024 pixels,
        // not at 1023; 8K UHD passes the default.
        let jpeg = JpegEncoder::new(JpegConfig::default())
            .unwrap()
            .encode_rgb_to_bytes(&gradient(32, 32))
            .unwrap();
        let mut small = JpegDecoder::new().unwrap().with_max_pixels(1024);
        small.decode_into(&jpeg, &mut out).unwrap();
        let mut smaller = JpegDecoder::new().unwrap().with_max_pixels(1023);
        assert!(smaller.decode_into(&jpeg, &mut out).is_err());
        let uhd = claiming(7680, 4320);
        assert!(!matches!(
            decoder.decode_into(&uhd, &mut RgbImage::default()),
            Err(VideoError::TooLarge { .. })
        ));
    }

    /// A bad frame costs that frame only: libjpeg-turbo 3.1 kept a
    /// decompressor whose header failed half way, and every later JPEG
    /// failed too (found by a review: one frame froze a viewer for good).
    #[test]
    fn after_a_bad_jpeg_the_next_good_one_decodes() {
        let good = JpegEncoder::new(JpegConfig::default())
            .unwrap()
            .encode_rgb_to_bytes(&gradient(32, 24))
            .unwrap();
        let mut sos_first = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 0x3F, 0];
        sos_first.extend_from_slice(&[0xFF, 0xD9]);
        let bad: [Vec<u8>; 5] = [
            [&[0xFF, 0xD8, 0xFF, 0xD8][..], &good[2..]].concat(),
            vec![0xFF, 0xD8, 0xFF, 0x02, 0x00, 0x04, 0, 0, 0xFF, 0xD9],
            sos_first,
            claiming(65500, 65500),
            b"\xFF\xD8 not a picture".to_vec(),
        ];
        let mut decoder = JpegDecoder::new().unwrap();
        let mut out = RgbImage::default();
        for b in &bad {
            decoder.decode_into(&good, &mut out).unwrap();
            assert!(decoder.decode_into(b, &mut out).is_err());
            decoder.decode_into(&good, &mut out).unwrap();
            assert_eq!((out.width(), out.height()), (32, 24));
            assert_eq!(decoder.read_size(&good).unwrap(), (32, 24));
        }
    }
}
