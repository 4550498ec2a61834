//! Criterion benchmarks for lanlink's hot paths, and the fixtures they share.
//!
//! # Layout
//! - `benches/header.rs`: [`lanlink_proto::Header`] encode and decode alone.
//! - `benches/frame.rs`: whole-frame encode, `encode_head` and
//!   `FrameDecoder` decode at the payload sizes of [`CASES`], each beside a
//!   plain memcpy of the same length measured in the same run; and a 64-byte
//!   chat frame encoded and decoded together.
//! - `benches/audio.rs`, `benches/video.rs`: the media paths (each says what
//!   it measures in its own `//!`).
//! - This library: the frames those benches use ([`Case`]) and an
//!   [`AlignedBuf`] for the memcpy baseline.
//!
//! Run everything with `cargo bench -p lanlink-benches`; the figures and the
//! machine they came from are in `docs/PERFORMANCE.md`.
//!
//! # Example
//! ```
//! use lanlink_benches::CASES;
//!
//! for case in CASES {
//!     let frame = case.frame();
//!     let wire = frame.to_bytes().unwrap();
//!     // Every fixture has exactly the payload length it is named after.
//!     assert_eq!(wire.len(), lanlink_proto::HEADER_LEN + case.payload_len);
//! }
//! ```

use bytes::Bytes;
use lanlink_proto::{chat::ChatMessage, file::FileChunk, video::VideoFrame, Frame, HEADER_LEN};

/// Which message a [`Case`] carries, picked to match what really travels at
/// that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A [`ChatMessage`] whose text pads the payload to the wanted length.
    Chat,
    /// A [`FileChunk`] on stream 3.
    FileChunk,
    /// A [`VideoFrame`] (a keyframe) on stream 5.
    VideoFrame,
}

/// One payload size the frame benches run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Short label used in benchmark ids (`64B`, `64KiB`, …).
    pub label: &'static str,
    /// Payload length in bytes, the 14-byte header not included.
    pub payload_len: usize,
    /// The message that fills it.
    pub shape: Shape,
}

/// The sizes the wire-format benches cover: a chat line, an Ethernet-MTU-sized
/// file chunk, a typical file chunk and a 720p MJPEG frame.
pub const CASES: [Case; 4] = [
    Case {
        label: "64B",
        payload_len: 64,
        shape: Shape::Chat,
    },
    Case {
        label: "1.5KiB",
        payload_len: 1536,
        shape: Shape::FileChunk,
    },
    Case {
        label: "64KiB",
        payload_len: 64 * 1024,
        shape: Shape::FileChunk,
    },
    Case {
        label: "256KiB",
        payload_len: 256 * 1024,
        shape: Shape::VideoFrame,
    },
];

/// Fixed bytes of a [`ChatMessage`] payload besides its text: three `u16`
/// length prefixes, the room `lobby`, the sender `ada`, the action flag and
/// the `u64` timestamp.
const CHAT_FIXED: usize = 2 + 5 + 2 + 3 + 2 + 1 + 8;
/// [`FileChunk`]'s fixed fields: the `u64` offset.
const FILE_CHUNK_FIXED: usize = 8;
/// [`VideoFrame`]'s fixed fields: `u32` seq, `u64` timestamp, keyframe flag.
const VIDEO_FRAME_FIXED: usize = 4 + 8 + 1;

impl Case {
    /// Whole frame length on the wire: header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Builds the frame, with a payload of exactly
    /// [`payload_len`](Case::payload_len) bytes.
    ///
    /// # Panics
    /// If `payload_len` is too small for the shape's fixed fields.
    pub fn frame(&self) -> Frame {
        match self.shape {
            Shape::Chat => chat_line(self.payload_len),
            Shape::FileChunk => Frame::new(
                3,
                FileChunk {
                    offset: 1 << 20,
                    data: pattern(self.payload_len - FILE_CHUNK_FIXED),
                },
            ),
            Shape::VideoFrame => Frame::new(
                5,
                VideoFrame {
                    seq: 42,
                    timestamp_us: 1_700_000_000_000_000,
                    keyframe: true,
                    data: pattern(self.payload_len - VIDEO_FRAME_FIXED),
                },
            ),
        }
    }
}

/// A chat line said in `lobby` by `ada`, on the control stream, whose payload
/// is exactly `payload_len` bytes (64 gives a 41-character line).
///
/// # Panics
/// If `payload_len` is below the message's 23 fixed bytes.
pub fn chat_line(payload_len: usize) -> Frame {
    const WORDS: &str = "the quick brown fox jumps over the lazy dog ";
    let text: String = WORDS
        .chars()
        .cycle()
        .take(payload_len - CHAT_FIXED)
        .collect();
    Frame::control(ChatMessage {
        room: "lobby".into(),
        from: "ada".into(),
        text,
        action: false,
        timestamp_ms: 1_700_000_000_000,
    })
}

/// `len` bytes of a non-constant pattern (so nothing can special-case zeros).
fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The page size the memcpy baseline aligns to.
pub const PAGE: usize = 4096;

/// A byte buffer that starts on a page boundary, in an allocation of its own.
///
/// A memcpy baseline between two heap buffers that sit next to each other
/// measures 4K aliasing instead of copying: when the destination starts a few
/// bytes past the source modulo 4096, loads falsely wait on earlier stores and
/// a 64 KiB copy drops from ~35 GB/s to ~3 GB/s (see `shared/BASELINES.md`).
/// Giving each buffer its own allocation, over-sized by a page and sliced from
/// the first page boundary, puts source and destination at the same offset
/// modulo 4096, which is the fast case.
#[derive(Debug)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed, page-aligned buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        let storage = vec![0u8; len + PAGE];
        let start = storage.as_ptr().align_offset(PAGE);
        assert!(start + len <= storage.len(), "alignment slack too small");
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    /// A page-aligned copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Self {
        let mut buf = AlignedBuf::zeroed(bytes.len());
        buf.as_mut_slice().copy_from_slice(bytes);
        buf
    }

    /// The buffer's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The buffer's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use lanlink_proto::FrameDecoder;

    use super::*;

    #[test]
    fn fixtures_have_the_named_payload_length_and_round_trip() {
        for case in CASES {
            let frame = case.frame();
            let wire = frame.to_bytes().unwrap();
            assert_eq!(wire.len(), case.frame_len(), "{}", case.label);
            let mut d = FrameDecoder::new();
            d.push(&wire);
            assert_eq!(d.decode().unwrap(), Some(frame), "{}", case.label);
        }
    }

    #[test]
    fn aligned_buffers_start_on_a_page() {
        for len in [1, 64, 4096, 65_536] {
            let buf = AlignedBuf::copy_of(&vec![7u8; len]);
            assert_eq!(buf.as_slice().as_ptr() as usize % PAGE, 0);
            assert_eq!(buf.as_slice().len(), len);
        }
    }
}
