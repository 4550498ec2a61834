//! The fixed 14-byte frame header.
//!
//! ```text
//!  0      2        3      4        6           10          14
//!  +------+--------+------+--------+-----------+-----------+----------
//!  | "LL" |version | kind | flags  | stream id |  length   | payload…
//!  +------+--------+------+--------+-----------+-----------+----------
//!    u8×2    u8       u8     u16       u32         u32
//! ```
//!
//! All integers are big-endian. The header alone decides whether a frame is
//! acceptable: magic, version, kind, flags and length are all checked before a
//! single payload byte is buffered, so a peer cannot make us allocate for a
//! length it never sends.

use byteorder::{BigEndian, ByteOrder};

use crate::{Kind, ProtoError};

/// The two bytes every frame starts with: ASCII `LL`.
pub const MAGIC: [u8; 2] = *b"LL";

/// The protocol version this build speaks. Bumped on any change to the byte
/// layout; peers of different versions refuse each other during the handshake.
pub const PROTOCOL_VERSION: u8 = 1;

/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 14;

/// Default upper bound on a payload's length: 16 MiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// Identifies the transfer or media stream a frame belongs to.
///
/// Stream `0` is the connection itself: control and chat frames use it.
/// A file transfer or media stream uses a non-zero id chosen by the side that
/// starts it, so several of them interleave on one connection. The two sides
/// never collide: a client starts streams with odd ids, a server with even
/// ones (see [`is_client_stream`]).
pub type StreamId = u32;

/// The connection-level stream, used by control and chat messages.
pub const CONTROL_STREAM: StreamId = 0;

/// True for stream ids a client allocates (odd); a server allocates even ids.
pub fn is_client_stream(stream: StreamId) -> bool {
    stream % 2 == 1
}

/// A decoded, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the payload holds.
    pub kind: Kind,
    /// The stream this frame belongs to.
    pub stream: StreamId,
    /// Payload length in bytes (the header itself not included).
    pub len: u32,
}

impl Header {
    /// Decodes and validates a header from the start of `src`.
    ///
    /// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are available.
    /// Rejects a bad magic, an unsupported version, an unknown kind, reserved
    /// flags and a length above `max_payload`.
    pub fn decode(src: &[u8], max_payload: u32) -> Result<Option<Header>, ProtoError> {
        let Some(h) = src.get(..HEADER_LEN) else {
            // Even a partial header can be rejected early when its magic is
            // already wrong: a client speaking another protocol is told at once
            // instead of waiting for bytes that will never make sense.
            let seen = src.len().min(MAGIC.len());
            if src.get(..seen) != MAGIC.get(..seen) {
                let mut found = [0u8; 2];
                found[..seen].copy_from_slice(&src[..seen]);
                return Err(ProtoError::BadMagic {
                    found,
                    expected: MAGIC,
                });
            }
            return Ok(None);
        };
        let found = [h[0], h[1]];
        if found != MAGIC {
            return Err(ProtoError::BadMagic {
                found,
                expected: MAGIC,
            });
        }
        if h[2] != PROTOCOL_VERSION {
            return Err(ProtoError::UnsupportedVersion {
                found: h[2],
                supported: PROTOCOL_VERSION,
            });
        }
        let kind = Kind::from_u8(h[3]).ok_or(ProtoError::UnknownKind { kind: h[3] })?;
        let flags = BigEndian::read_u16(&h[4..6]);
        if flags != 0 {
            return Err(ProtoError::ReservedFlags { flags });
        }
        let stream = BigEndian::read_u32(&h[6..10]);
        let len = BigEndian::read_u32(&h[10..14]);
        if len > max_payload {
            return Err(ProtoError::FrameTooLarge {
                len: len.into(),
                max: max_payload,
            });
        }
        Ok(Some(Header { kind, stream, len }))
    }

    /// Writes this header into `dst`, which must be [`HEADER_LEN`] bytes long.
    pub fn encode_into(&self, dst: &mut [u8; HEADER_LEN]) {
        dst[0..2].copy_from_slice(&MAGIC);
        dst[2] = PROTOCOL_VERSION;
        dst[3] = self.kind as u8;
        BigEndian::write_u16(&mut dst[4..6], 0);
        BigEndian::write_u32(&mut dst[6..10], self.stream);
        BigEndian::write_u32(&mut dst[10..14], self.len);
    }

    /// Total frame length: header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(kind: Kind, stream: u32, len: u32) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        Header { kind, stream, len }.encode_into(&mut b);
        b
    }

    #[test]
    fn round_trip() {
        let b = header_bytes(Kind::ChatMessage, 7, 1234);
        let h = Header::decode(&b, DEFAULT_MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(
            h,
            Header {
                kind: Kind::ChatMessage,
                stream: 7,
                len: 1234
            }
        );
        assert_eq!(h.frame_len(), HEADER_LEN + 1234);
    }

    #[test]
    fn short_input_needs_more() {
        let b = header_bytes(Kind::Ping, 0, 8);
        for n in 0..HEADER_LEN {
            assert_eq!(
                Header::decode(&b[..n], DEFAULT_MAX_PAYLOAD),
                Ok(None),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn bad_magic_is_rejected_from_the_first_byte() {
        assert!(matches!(
            Header::decode(b"G", DEFAULT_MAX_PAYLOAD),
            Err(ProtoError::BadMagic {
                found: [b'G', 0],
                ..
            })
        ));
        assert!(matches!(
            Header::decode(b"GET / HTTP/1.1\r\n", DEFAULT_MAX_PAYLOAD),
            Err(ProtoError::BadMagic {
                found: [b'G', b'E'],
                ..
            })
        ));
    }

    #[test]
    fn wrong_version_names_both() {
        let mut b = header_bytes(Kind::Hello, 0, 0);
        b[2] = 9;
        assert_eq!(
            Header::decode(&b, DEFAULT_MAX_PAYLOAD),
            Err(ProtoError::UnsupportedVersion {
                found: 9,
                supported: PROTOCOL_VERSION
            })
        );
    }

    #[test]
    fn unknown_kind_and_flags() {
        let mut b = header_bytes(Kind::Hello, 0, 0);
        b[3] = 0xEE;
        assert_eq!(
            Header::decode(&b, 10),
            Err(ProtoError::UnknownKind { kind: 0xEE })
        );
        let mut b = header_bytes(Kind::Hello, 0, 0);
        b[5] = 0x01;
        assert_eq!(
            Header::decode(&b, 10),
            Err(ProtoError::ReservedFlags { flags: 1 })
        );
    }

    #[test]
    fn length_over_limit_rejected_from_header_alone() {
        let b = header_bytes(Kind::FileChunk, 3, u32::MAX);
        assert_eq!(
            Header::decode(&b, DEFAULT_MAX_PAYLOAD),
            Err(ProtoError::FrameTooLarge {
                len: u32::MAX.into(),
                max: DEFAULT_MAX_PAYLOAD
            })
        );
        let b = header_bytes(Kind::FileChunk, 3, 101);
        assert!(Header::decode(&b, 100).is_err());
        assert!(Header::decode(&b, 101).unwrap().is_some());
    }
}
