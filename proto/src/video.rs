//! Video messages: announcing a stream, subscribing to it, and its frames.
//!
//! The flow mirrors [`crate::audio`]: announce on a non-zero stream id,
//! subscribe by that id, frames are relayed without decoding. Frames are
//! media traffic: a viewer that reads slowly has its oldest queued frames
//! dropped, so it skips frames instead of delaying anyone.

use bytes::Bytes;

use crate::audio::empty_body;
use crate::wire::{Reader, Writer};
use crate::{Body, ProtoError};

/// The codec of a video stream. Unknown values are carried through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoCodec(pub u8);

impl VideoCodec {
    /// Motion JPEG: every frame is a complete baseline JPEG image.
    pub const MJPEG: VideoCodec = VideoCodec(1);
}

/// Announces a video stream on this frame's stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoAnnounce {
    /// A name for people and URLs (`door-cam`).
    pub name: String,
    /// Who publishes it (set by the server).
    pub publisher: String,
    /// How frames are encoded.
    pub codec: VideoCodec,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Nominal frames per second, in thousandths (30,000 for 30 fps;
    /// 29,970 for NTSC).
    pub fps_milli: u32,
}

impl VideoAnnounce {
    /// The most pixels a frame of this stream may claim in its own header:
    /// what the stream announced, but at least Full HD (a camera may change
    /// its mind) and at most 8K UHD. A JPEG of a few hundred bytes can
    /// claim 65500×65500, which a decoder (a viewer's, a browser's) would
    /// make room for; viewers and the server's browser side skip frames
    /// past this.
    pub fn max_frame_pixels(&self) -> usize {
        max_frame_pixels(self.width, self.height)
    }
}

/// [`VideoAnnounce::max_frame_pixels`] of a stream announced as
/// `width`×`height`.
pub fn max_frame_pixels(width: u16, height: u16) -> usize {
    (usize::from(width) * usize::from(height)).clamp(1920 * 1080, 7680 * 4320)
}

impl Body for VideoAnnounce {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("name", &self.name)?;
        w.string("publisher", &self.publisher)?;
        w.u8(self.codec.0);
        w.u16(self.width);
        w.u16(self.height);
        w.u32(self.fps_milli);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(VideoAnnounce {
            name: r.string("name")?,
            publisher: r.string("publisher")?,
            codec: VideoCodec(r.u8("codec")?),
            width: r.u16("width")?,
            height: r.u16("height")?,
            fps_milli: r.u32("fps_milli")?,
        })
    }
}

/// Client → server: start sending me this stream's frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoSubscribe;

/// Client → server: stop sending me this stream's frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoUnsubscribe;

/// The stream on this id has ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoEnd;

empty_body!(VideoSubscribe, VideoUnsubscribe, VideoEnd);

/// One encoded video frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Increments by one per captured frame; wraps. Gaps mean skipped frames.
    pub seq: u32,
    /// Capture time in microseconds on the publisher's clock (Unix epoch).
    pub timestamp_us: u64,
    /// The frame decodes on its own (always true for MJPEG).
    pub keyframe: bool,
    /// The encoded image (the rest of the payload).
    pub data: Bytes,
}

impl Body for VideoFrame {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u32(self.seq);
        w.u64(self.timestamp_us);
        w.bool(self.keyframe);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(VideoFrame {
            seq: r.u32("seq")?,
            timestamp_us: r.u64("timestamp_us")?,
            keyframe: r.bool("keyframe")?,
            data: r.rest(),
        })
    }
    fn tail(&self) -> Option<&Bytes> {
        Some(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::round_trip;

    use super::*;

    #[test]
    fn video_round_trips() {
        round_trip(VideoAnnounce {
            name: "cam".into(),
            publisher: "ada".into(),
            codec: VideoCodec::MJPEG,
            width: 1280,
            height: 720,
            fps_milli: 29_970,
        });
        round_trip(VideoSubscribe);
        round_trip(VideoUnsubscribe);
        round_trip(VideoEnd);
        round_trip(VideoFrame {
            seq: 1,
            timestamp_us: 2,
            keyframe: true,
            data: Bytes::from_static(&[0xFF, 0xD8, 0xFF, 0xD9]),
        });
    }
}
