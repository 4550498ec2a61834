//! [`TestPatternSource`]: the moving test pattern as a paced JPEG source.

use crate::source::{fps_milli, Pacer};
use crate::{
    now_us, EncodedFrame, JpegConfig, JpegEncoder, RgbImage, SourceInfo, TestPattern, VideoError,
    VideoSource,
};

/// Renders [`TestPattern`] frames at a fixed rate and encodes them.
///
/// Frame `seq` carries `seq` as its stamped counter and the time it was
/// drawn as both its `capture_timestamp_us` and its stamped time, so a
/// viewer can measure end-to-end latency from the pixels alone (see
/// [`decode_pattern_stamp`](crate::decode_pattern_stamp)).
#[derive(Debug)]
pub struct TestPatternSource {
    pattern: TestPattern,
    encoder: JpegEncoder,
    image: RgbImage,
    pacer: Pacer,
    info: SourceInfo,
    seq: u32,
}

impl TestPatternSource {
    /// A `width`×`height` pattern at `fps` frames per second.
    pub fn new(
        width: usize,
        height: usize,
        fps: f64,
        jpeg: JpegConfig,
    ) -> Result<Self, VideoError> {
        let (w, h) = crate::frame::jpeg_size(width, height)?;
        Ok(TestPatternSource {
            pattern: TestPattern::new(width, height),
            encoder: JpegEncoder::new(jpeg)?,
            image: RgbImage::new(width, height),
            pacer: Pacer::new(fps)?,
            info: SourceInfo {
                name: "test-pattern".to_owned(),
                width: w,
                height: h,
                fps_milli: fps_milli(fps),
            },
            seq: 0,
        })
    }
}

impl VideoSource for TestPatternSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        self.pacer.wait();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let timestamp = now_us();
        self.pattern.render(seq, timestamp, &mut self.image);
        Ok(EncodedFrame {
            seq,
            capture_timestamp_us: timestamp,
            width: self.info.width,
            height: self.info.height,
            jpeg: self.encoder.encode_rgb_to_bytes(&self.image)?,
        })
    }
}
