//! The lanlink wire format: every byte two lanlink peers exchange, and nothing
//! else — no sockets, no threads, no clock.
//!
//! A connection carries *frames*. Each frame is a fixed 14-byte [`Header`]
//! (magic, version, kind, flags, stream id, payload length; see
//! `docs/PROTOCOL.md`) followed by a payload whose layout the kind selects.
//!
//! # Layout
//! - [`header`]: the fixed header and its limits.
//! - [`Frame`], [`Message`], [`Kind`]: the message table and frame encoding.
//! - [`FrameDecoder`]: bytes in, in any split, whole frames out.
//! - One module per message family: [`control`] (handshake, keepalive, errors),
//!   [`chat`], [`file`](mod@file), [`audio`], [`video`].
//! - [`ProtoError`]: the one error type; peer faults and caller misuse are
//!   separate variants.
//!
//! # Example
//! ```
//! use bytes::BytesMut;
//! use lanlink_proto::{chat::ChatMessage, Frame, FrameDecoder, Message};
//!
//! // Encode into a buffer…
//! let mut wire = BytesMut::new();
//! let said = ChatMessage {
//!     room: "lobby".into(),
//!     from: String::new(),
//!     text: "hello, LAN".into(),
//!     action: false,
//!     timestamp_ms: 0,
//! };
//! Frame::control(said.clone()).encode(&mut wire)?;
//!
//! // …and decode from whatever bytes have arrived.
//! let mut decoder = FrameDecoder::new();
//! decoder.push(&wire);
//! let frame = decoder.decode()?.expect("complete frame");
//! assert_eq!(frame.message, Message::ChatMessage(said));
//! assert_eq!(decoder.decode()?, None); // nothing more yet
//! # Ok::<(), lanlink_proto::ProtoError>(())
//! ```
//!
//! # Guarantees
//! - Decoding never panics, whatever the input; incomplete input is `Ok(None)`.
//! - A header is rejected before its payload is buffered.
//! - Encodings are canonical: a frame that decodes re-encodes to the same bytes.
//! - Media and file data are [`bytes::Bytes`] slices of the received buffer.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod audio;
pub mod chat;
pub mod control;
mod decoder;
mod error;
pub mod file;
mod frame;
pub mod header;
mod pool;
pub mod video;
mod wire;

pub use control::{Capabilities, ErrorCode};
pub use decoder::FrameDecoder;
pub use error::ProtoError;
pub(crate) use frame::Body;
pub use frame::{Frame, Kind, Message, Service, TrafficClass};
pub use header::{
    is_client_stream, Header, StreamId, CONTROL_STREAM, DEFAULT_MAX_PAYLOAD, HEADER_LEN, MAGIC,
    PROTOCOL_VERSION,
};
pub use pool::{BufferPool, POOLED_MAX};

#[cfg(test)]
mod test_util {
    use crate::{Frame, FrameDecoder, Message};

    /// Encodes `m` as a frame, decodes it back, and checks both that the
    /// message survived and that re-encoding gives the same bytes.
    pub(crate) fn round_trip(m: impl Into<Message>) {
        let frame = Frame::new(7, m);
        let bytes = frame.to_bytes().expect("encodes");
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        let back = d.decode().expect("decodes").expect("complete");
        assert_eq!(back, frame);
        assert_eq!(back.to_bytes().expect("re-encodes"), bytes);
        // Every strict prefix is "need more", never an error.
        for n in 0..bytes.len() {
            let mut d = FrameDecoder::new();
            d.push(&bytes[..n]);
            assert_eq!(d.decode(), Ok(None), "prefix of {n} bytes");
        }
    }
}
