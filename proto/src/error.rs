//! The one error type of this crate.

use crate::Kind;

/// Everything that can go wrong while encoding or decoding lanlink frames.
///
/// Variants fall into two groups. *Peer faults* come from bytes that arrived
/// from the network: the connection that produced them should be closed with
/// an error frame, and nothing else is affected. *Caller misuse* comes from a
/// value this program tried to encode: it is a bug or an input the caller must
/// validate first (a chat line longer than a string field can hold, say).
/// [`ProtoError::is_peer_fault`] tells the two apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// Peer fault: the first two bytes of a header are not the lanlink magic.
    #[error("not a lanlink frame: magic bytes {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// The two bytes that were found.
        found: [u8; 2],
        /// The magic this decoder expects ([`crate::MAGIC`]).
        expected: [u8; 2],
    },

    /// Peer fault: the header names a protocol version this build does not speak.
    #[error("unsupported protocol version {found} (this side speaks version {supported})")]
    UnsupportedVersion {
        /// The version byte the peer sent.
        found: u8,
        /// The version this build speaks ([`crate::PROTOCOL_VERSION`]).
        supported: u8,
    },

    /// Peer fault: the header's message-kind byte is not one this version defines.
    #[error("unknown message kind 0x{kind:02x}")]
    UnknownKind {
        /// The kind byte the peer sent.
        kind: u8,
    },

    /// Peer fault: the header sets flag bits that are reserved in this version.
    #[error("reserved header flags set: 0x{flags:04x}")]
    ReservedFlags {
        /// The flags field as received.
        flags: u16,
    },

    /// Peer fault: the header announces a payload longer than this decoder accepts.
    ///
    /// Raised from the header alone, before any of the payload is buffered.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The payload length the header claims.
        len: u64,
        /// The configured maximum.
        max: u32,
    },

    /// Peer fault: a payload ended in the middle of a field.
    #[error("{kind:?} payload truncated while reading `{field}`: needed {needed} bytes, {available} left")]
    Truncated {
        /// The message being decoded.
        kind: Kind,
        /// The field being decoded.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left in the payload.
        available: usize,
    },

    /// Peer fault: a text field is not valid UTF-8.
    #[error(
        "{kind:?} field `{field}` is not valid UTF-8 (first bad byte at offset {valid_up_to})"
    )]
    InvalidUtf8 {
        /// The message being decoded.
        kind: Kind,
        /// The field being decoded.
        field: &'static str,
        /// Length of the valid prefix of the field.
        valid_up_to: usize,
    },

    /// Peer fault: a field holds a value outside its defined range
    /// (a boolean that is neither 0 nor 1, an unknown enumeration value).
    #[error("{kind:?} field `{field}` has invalid value {value}")]
    InvalidValue {
        /// The message being decoded.
        kind: Kind,
        /// The field being decoded.
        field: &'static str,
        /// The value found.
        value: u64,
    },

    /// Peer fault: bytes remain after the last field of a payload.
    ///
    /// Encodings are canonical: a payload is exactly as long as its fields.
    #[error("{kind:?} payload has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The message being decoded.
        kind: Kind,
        /// How many bytes were left over.
        extra: usize,
    },

    /// Caller misuse: a value is too long for the field that must carry it.
    #[error("cannot encode `{field}`: {len} exceeds the field maximum of {max}")]
    FieldTooLong {
        /// The field being encoded.
        field: &'static str,
        /// Its length (bytes, or elements for lists).
        len: usize,
        /// The most the field can carry.
        max: usize,
    },

    /// Caller misuse: an encoded payload would exceed the length field or the
    /// limit the caller asked for.
    #[error("cannot encode a {len}-byte payload: the limit is {max} bytes")]
    PayloadTooLarge {
        /// The payload's encoded length.
        len: usize,
        /// The limit it exceeds.
        max: usize,
    },
}

impl ProtoError {
    /// True when the error was caused by bytes a peer sent (as opposed to a
    /// value this program tried to encode).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            ProtoError::FieldTooLong { .. } | ProtoError::PayloadTooLarge { .. }
        )
    }
}
