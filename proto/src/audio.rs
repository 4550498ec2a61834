//! Audio messages: announcing a stream, subscribing to it, and its packets.
//!
//! A publisher picks a non-zero [`crate::StreamId`] and sends
//! [`AudioAnnounce`] on it; the server relays the announcement to every client
//! that handles audio or video
//! (under an id of its own choosing) and relays [`AudioPacket`]s to the
//! clients that sent [`AudioSubscribe`] on that id. The server never decodes
//! the audio.
//!
//! Sequence numbers and capture timestamps live in each packet, not in the
//! frame header: only media needs them, and the header stays the same for
//! every kind.

use bytes::Bytes;

use crate::wire::{Reader, Writer};
use crate::{Body, ProtoError};

/// The codec of an audio stream. Unknown values are carried through so a
/// relay can forward codecs it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioCodec(pub u8);

impl AudioCodec {
    /// Opus (RFC 6716), one Opus packet per [`AudioPacket`].
    pub const OPUS: AudioCodec = AudioCodec(1);
    /// Uncompressed signed 16-bit little-endian PCM, interleaved.
    pub const PCM_S16LE: AudioCodec = AudioCodec(2);
}

/// Announces an audio stream on this frame's stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioAnnounce {
    /// A name for people (`ada's mic`).
    pub name: String,
    /// Who publishes it (set by the server).
    pub publisher: String,
    /// How packets are encoded.
    pub codec: AudioCodec,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channel count (1 mono, 2 stereo).
    pub channels: u8,
    /// Audio per packet, in microseconds (20,000 for 20 ms).
    pub frame_duration_us: u32,
}

impl Body for AudioAnnounce {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("name", &self.name)?;
        w.string("publisher", &self.publisher)?;
        w.u8(self.codec.0);
        w.u32(self.sample_rate);
        w.u8(self.channels);
        w.u32(self.frame_duration_us);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(AudioAnnounce {
            name: r.string("name")?,
            publisher: r.string("publisher")?,
            codec: AudioCodec(r.u8("codec")?),
            sample_rate: r.u32("sample_rate")?,
            channels: r.u8("channels")?,
            frame_duration_us: r.u32("frame_duration_us")?,
        })
    }
}

/// Client → server: start sending me this stream's packets. Empty payload;
/// the stream is the frame's stream id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioSubscribe;

/// Client → server: stop sending me this stream's packets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioUnsubscribe;

/// The stream on this id has ended (publisher stopped or disconnected).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioEnd;

macro_rules! empty_body {
    ($($t:ident),*) => {$(
        impl Body for $t {
            fn encode(&self, _w: &mut Writer<'_>) -> Result<(), ProtoError> {
                Ok(())
            }
            fn decode(_r: &mut Reader<'_>) -> Result<Self, ProtoError> {
                Ok($t)
            }
        }
    )*};
}
pub(crate) use empty_body;

empty_body!(AudioSubscribe, AudioUnsubscribe, AudioEnd);

/// One encoded audio frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// Increments by one per packet; wraps. Gaps mean loss.
    pub seq: u32,
    /// When the first sample was captured, in microseconds on the publisher's
    /// clock (Unix epoch), for latency measurement and drift tracking.
    pub timestamp_us: u64,
    /// The encoded audio (the rest of the payload).
    pub data: Bytes,
}

impl Body for AudioPacket {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u32(self.seq);
        w.u64(self.timestamp_us);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(AudioPacket {
            seq: r.u32("seq")?,
            timestamp_us: r.u64("timestamp_us")?,
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
    fn audio_round_trips() {
        round_trip(AudioAnnounce {
            name: "mic".into(),
            publisher: "ada".into(),
            codec: AudioCodec::OPUS,
            sample_rate: 48_000,
            channels: 2,
            frame_duration_us: 20_000,
        });
        round_trip(AudioSubscribe);
        round_trip(AudioUnsubscribe);
        round_trip(AudioEnd);
        round_trip(AudioPacket {
            seq: u32::MAX,
            timestamp_us: 123,
            data: Bytes::from_static(&[0xFC, 1, 2]),
        });
    }
}
