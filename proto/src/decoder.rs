//! The incremental, sans-IO frame decoder.

use bytes::{Buf, Bytes, BytesMut};

use crate::header::{Header, DEFAULT_MAX_PAYLOAD, HEADER_LEN};
use crate::pool::BufferPool;
use crate::{Frame, ProtoError};

/// Frames up to this payload are assembled in the decoder's shared buffer
/// (and a blob in one is copied out); a larger frame gets a buffer of its
/// own, which becomes its blob.
const SMALL_FRAME: usize = 64 * 1024;

/// A frame up to this payload gets its whole buffer once its header is in
/// (one allocation, no copy as it grows); a larger one grows with the
/// bytes that arrive, doubling, to exactly its length.
const EAGER_FRAME: usize = 1024 * 1024;

/// The shared buffer's capacity kept between frames; more is released once
/// it is empty.
const KEEP: usize = 256 * 1024;

/// A large frame of up to [`EAGER_FRAME`] is assembled so that it ends on a
/// boundary of this many bytes (a page), a few bytes of its buffer unused
/// in front: a file chunk's data, the frame's tail and a multiple of 4 KiB,
/// then starts on one. The kernel copies from a buffer that starts 8 to 24
/// bytes short of a page boundary into the page cache at a third of its
/// usual speed (writing to tmpfs: 1 GB/s against 2.6), which made uploads
/// and downloads as much as twice as slow, depending on where the
/// allocator had put the buffers.
const ALIGN: usize = 4096;

/// Turns a byte stream, arriving in pieces of any size, into [`Frame`]s.
///
/// Feed it bytes with [`push`](FrameDecoder::push) and take frames with
/// [`decode`](FrameDecoder::decode) until it returns `Ok(None)`, which means
/// "need more bytes", never an error. It does no I/O and keeps no clock, so
/// it works the same over TCP, TLS, a file or a test vector.
///
/// The header is validated as soon as its 14 bytes are in: a bad magic, an
/// unknown version or kind, reserved flags or a length above the limit are
/// reported before any payload is buffered. The memory it holds follows the
/// bytes that arrived, not what a header claims (a frame of up to 1 MiB is
/// given its whole buffer once its header is in), and is let go with each
/// frame: a large frame is assembled in a buffer of exactly its length,
/// which its blob then owns, and a small frame's blob is copied out, so a
/// frame kept by the application never keeps the decoder's buffer alive.
/// With a [`BufferPool`] ([`with_pool`](FrameDecoder::with_pool)) a large
/// frame's buffer comes from the pool and goes back to it when the frame
/// is dropped; the pool bounds what it keeps idle.
///
/// After an error the stream cannot be trusted (frames carry no delimiter to
/// resynchronise on): the decoder keeps returning that same error, and the
/// caller should close the connection.
///
/// ```
/// use lanlink_proto::{chat::Join, Frame, FrameDecoder};
///
/// let bytes = Frame::control(Join { room: "lobby".into(), password: None }).to_bytes()?;
/// let mut decoder = FrameDecoder::new();
/// let (first, second) = bytes.split_at(5);
/// decoder.push(first);
/// assert_eq!(decoder.decode()?, None); // incomplete: need more
/// decoder.push(second);
/// let frame = decoder.decode()?.expect("a whole frame");
/// assert_eq!(frame.kind(), lanlink_proto::Kind::Join);
/// # Ok::<(), lanlink_proto::ProtoError>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    /// Headers, small frames, and what follows the frame in progress.
    buf: BytesMut,
    /// The payload of the large frame in progress (header in `pending`),
    /// after `large_pad` unused bytes (see [`ALIGN`]).
    large: Vec<u8>,
    large_pad: usize,
    max_payload: u32,
    /// The header of the frame being assembled, once validated.
    pending: Option<Header>,
    /// The first error seen; once set, every call returns it.
    failed: Option<ProtoError>,
    /// Where large frames' buffers come from and go back to, if anywhere.
    pool: Option<BufferPool>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting payloads up to [`DEFAULT_MAX_PAYLOAD`] (16 MiB).
    pub fn new() -> Self {
        FrameDecoder::with_max_payload(DEFAULT_MAX_PAYLOAD)
    }

    /// A decoder accepting payloads up to `max_payload` bytes.
    pub fn with_max_payload(max_payload: u32) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            large: Vec::new(),
            large_pad: 0,
            max_payload,
            pending: None,
            pool: None,
            failed: None,
        }
    }

    /// The payload limit in force.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Changes the payload limit for frames whose header has not been read
    /// yet. A server uses a small limit until the peer has authenticated.
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload;
    }

    /// Takes large frames' buffers from `pool`, and has each given back
    /// when the frame (every `Bytes` of its blob) is dropped, instead of
    /// allocating one per frame. A connection that receives file chunks or
    /// video frames at speed wants one; see [`BufferPool`].
    pub fn with_pool(mut self, pool: BufferPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut bytes = bytes;
        if let Some(want) = self.large_wants() {
            let (now, rest) = bytes.split_at(want.min(bytes.len()));
            self.fill_large(now);
            bytes = rest;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        // A large frame's header was read out of `buf`: still counted.
        let header = if self.large_wants().is_some() {
            HEADER_LEN
        } else {
            0
        };
        self.buf.len() + self.large_len() + header
    }

    /// Payload bytes of the large frame in progress that are in.
    fn large_len(&self) -> usize {
        self.large.len().saturating_sub(self.large_pad)
    }

    /// The header of the frame in progress, once its 14 bytes are in and
    /// valid: how large the frame a peer has started says it is.
    pub fn frame_in_progress(&self) -> Option<Header> {
        self.pending
    }

    /// True when a frame has started arriving but is not complete: a peer that
    /// disconnects now does so in the middle of a frame.
    pub fn is_mid_frame(&self) -> bool {
        self.buffered() != 0
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed,
    /// or the reason the stream is invalid.
    pub fn decode(&mut self) -> Result<Option<Frame>, ProtoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.decode_next();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP {
            self.buf = BytesMut::new();
        }
        result
    }

    /// How many more payload bytes the large frame in progress wants
    /// (`None` when no large frame is in progress).
    fn large_wants(&self) -> Option<usize> {
        let h = self.pending.filter(|h| h.len as usize > SMALL_FRAME)?;
        Some((h.len as usize).saturating_sub(self.large_len()))
    }

    /// Appends to the large frame's buffer, growing it to at most its
    /// frame's length (see [`EAGER_FRAME`]).
    fn fill_large(&mut self, bytes: &[u8]) {
        let total = self.pending.map_or(0, |h| h.len as usize);
        if self.large.capacity() == 0 && total <= EAGER_FRAME {
            // The whole frame's buffer, ending on an ALIGN boundary.
            let room = total + ALIGN;
            self.large = match &self.pool {
                Some(pool) if room <= crate::pool::POOLED_MAX => pool.take(room),
                _ => Vec::with_capacity(room),
            };
            let end = (self.large.as_ptr() as usize).wrapping_add(total);
            self.large_pad = (ALIGN - end % ALIGN) % ALIGN;
            self.large.resize(self.large_pad, 0);
        }
        let needed = self.large.len() + bytes.len();
        if needed > self.large.capacity() {
            let target = if total <= EAGER_FRAME {
                total
            } else {
                total.min(needed.max(self.large.capacity().saturating_mul(2)))
            };
            // A pooled buffer only for a frame that fits one whole (a
            // larger one would grow it past what a pool keeps).
            if self.large.capacity() == 0 && total <= crate::pool::POOLED_MAX {
                if let Some(pool) = &self.pool {
                    self.large = pool.take(target.max(needed));
                }
            }
            self.large
                .reserve_exact(target.max(needed) - self.large.len());
        }
        self.large.extend_from_slice(bytes);
    }

    fn decode_next(&mut self) -> Result<Option<Frame>, ProtoError> {
        let header = match self.pending {
            Some(h) => h,
            None => match Header::decode(&self.buf, self.max_payload)? {
                Some(h) => {
                    self.pending = Some(h);
                    if h.len as usize > SMALL_FRAME {
                        // Its own buffer from here: what already arrived
                        // moves there, the rest as it comes.
                        self.buf.advance(HEADER_LEN);
                        let here = self.buf.len().min(h.len as usize);
                        let arrived = self.buf.split_to(here);
                        self.fill_large(&arrived);
                    }
                    h
                }
                None => return Ok(None),
            },
        };
        let len = header.len as usize;
        if len > SMALL_FRAME {
            if self.large_len() < len {
                return Ok(None);
            }
            self.pending = None;
            let payload = std::mem::take(&mut self.large);
            let pad = std::mem::take(&mut self.large_pad);
            if !header.kind.has_blob() {
                let decoded = crate::Message::decode_borrowed(
                    header.kind,
                    payload.get(pad..).unwrap_or_default(),
                );
                if let Some(pool) = &self.pool {
                    pool.give(payload);
                }
                return decoded.map(|message| {
                    Some(Frame {
                        stream: header.stream,
                        message,
                    })
                });
            }
            let blob = match &self.pool {
                Some(pool) => pool.blob(payload),
                None => Bytes::from(payload),
            };
            return Frame::decode(header, &blob.slice(pad..)).map(Some);
        }
        if self.buf.len() < header.frame_len() {
            return Ok(None);
        }
        self.pending = None;
        let payload = self
            .buf
            .get(HEADER_LEN..header.frame_len())
            .unwrap_or_default();
        let message = if header.kind.has_blob() {
            // A copy the frame owns: a kept blob must not keep the shared
            // buffer (and everything else that arrived with it) alive.
            crate::Message::decode(header.kind, &Bytes::copy_from_slice(payload))
        } else {
            crate::Message::decode_borrowed(header.kind, payload)
        };
        self.buf.advance(header.frame_len());
        message.map(|message| {
            Some(Frame {
                stream: header.stream,
                message,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{chat, file, Kind};

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let frames = vec![
            Frame::control(chat::Join {
                room: "lobby".into(),
                password: None,
            }),
            Frame::new(
                3,
                file::FileChunk {
                    offset: 9,
                    data: Bytes::from(vec![5u8; 1000]),
                },
            ),
            Frame::control(crate::control::Ping { nonce: 1 }),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).unwrap();
        }
        for step in [1, 2, 3, 7, 14, 15, 100, wire.len()] {
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            for piece in wire.chunks(step) {
                d.push(piece);
                while let Some(f) = d.decode().unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out, frames, "step {step}");
            assert_eq!(d.buffered(), 0);
            assert!(!d.is_mid_frame());
        }
    }

    #[test]
    fn large_frames_from_a_pool_decode_the_same_and_give_their_buffers_back() {
        let chunk = |offset: u64, fill: u8| {
            Frame::new(
                3,
                file::FileChunk {
                    offset,
                    data: Bytes::from(vec![fill; 256 * 1024]),
                },
            )
        };
        let frames = vec![
            chunk(0, 1),
            Frame::control(crate::control::Ping { nonce: 1 }),
            chunk(256 * 1024, 2),
            chunk(512 * 1024, 3),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).unwrap();
        }
        for step in [1000, 65_536, wire.len()] {
            let pool = crate::BufferPool::new(4);
            let mut d = FrameDecoder::new().with_pool(pool.clone());
            let (mut out, mut buffers) = (Vec::new(), Vec::new());
            for piece in wire.chunks(step) {
                d.push(piece);
                while let Some(f) = d.decode().unwrap() {
                    if let crate::Message::FileChunk(c) = &f.message {
                        buffers.push(c.data.as_ptr());
                    }
                    // Kept (compared below) and dropped only then: each
                    // large frame of this stream has a buffer of its own.
                    out.push(f);
                }
            }
            assert_eq!(out, frames, "step {step}");
            assert_eq!(d.buffered(), 0);
            drop(out);
            assert_eq!(pool.idle(), 3, "step {step}: every chunk's buffer back");
            // The next large frame is assembled in one of them.
            d.push(&chunk(0, 9).to_bytes().unwrap());
            let again = d.decode().unwrap().unwrap();
            let crate::Message::FileChunk(c) = &again.message else {
                panic!("a chunk")
            };
            assert!(
                buffers.contains(&c.data.as_ptr()),
                "step {step}: a new buffer"
            );
            assert_eq!(pool.idle(), 2);
        }
    }

    /// A file chunk's data, the tail of its frame, ends on a page boundary
    /// (see [`ALIGN`]), with a pool or without, however the bytes arrive.
    #[test]
    fn large_frames_end_on_a_page_boundary() {
        let sizes = [256 * 1024, 256 * 1024 - 100, 70_000, EAGER_FRAME - 20];
        let frames: Vec<Frame> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let data = Bytes::from(vec![u8::try_from(i).unwrap(); len]);
                Frame::new(3, file::FileChunk { offset: 0, data })
            })
            .collect();
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).unwrap();
        }
        for pooled in [false, true] {
            for step in [999, 65_536, wire.len()] {
                let mut d = FrameDecoder::new();
                if pooled {
                    d = d.with_pool(crate::BufferPool::new(2));
                }
                let mut out = Vec::new();
                for piece in wire.chunks(step) {
                    d.push(piece);
                    while let Some(f) = d.decode().unwrap() {
                        let crate::Message::FileChunk(c) = &f.message else {
                            panic!("a chunk")
                        };
                        let end = c.data.as_ptr() as usize + c.data.len();
                        assert_eq!(end % ALIGN, 0, "pooled {pooled}, step {step}");
                        out.push(f);
                    }
                }
                assert_eq!(out, frames, "pooled {pooled}, step {step}");
                assert_eq!(d.buffered(), 0);
            }
        }
    }

    #[test]
    fn oversized_header_is_refused_before_payload() {
        let mut d = FrameDecoder::with_max_payload(1024);
        let mut head = [0u8; HEADER_LEN];
        Header {
            kind: Kind::FileChunk,
            stream: 1,
            len: 1025,
        }
        .encode_into(&mut head);
        d.push(&head);
        assert_eq!(
            d.decode(),
            Err(ProtoError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = FrameDecoder::new();
        let mut bad = Frame::control(chat::Leave { room: "a".into() })
            .to_bytes()
            .unwrap()
            .to_vec();
        bad[HEADER_LEN + 2] = 0xFF; // invalid UTF-8: the frame is consumed…
        let good = Frame::control(crate::control::Ping { nonce: 1 })
            .to_bytes()
            .unwrap();
        d.push(&bad);
        d.push(&good);
        let first = d.decode().unwrap_err();
        // …but the stream is not trusted afterwards: the same error again.
        assert_eq!(d.decode(), Err(first));
    }
}
