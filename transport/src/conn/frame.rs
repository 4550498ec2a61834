//! Frames encoded once, and what a connection's queues carry.

use bytes::{Bytes, BytesMut};
use lanlink_proto::{Frame, ProtoError, TrafficClass};

/// About what one queued frame costs in memory besides its bytes (its
/// queue slot, its buffers' bookkeeping and allocation): measured as 126 MB
/// held for 16 MiB of queued 22-byte frames, about 165 bytes each.
pub(crate) const QUEUED_FRAME_COST: usize = 144;

/// A frame encoded once, ready to be queued on any number of connections.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub(crate) head: Bytes,
    pub(crate) tail: Option<Bytes>,
    pub(super) class: TrafficClass,
}

impl EncodedFrame {
    /// Encodes `frame`. Large trailing data (file chunks, media) is shared,
    /// not copied.
    pub fn new(frame: &Frame) -> Result<EncodedFrame, ProtoError> {
        let mut head = BytesMut::new();
        let tail = frame.encode_head(&mut head)?.cloned();
        Ok(EncodedFrame {
            head: head.freeze(),
            tail,
            class: frame.kind().class(),
        })
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, Bytes::len)
    }

    /// What it counts for against a peer's queue limit: its bytes, plus
    /// what keeping it queued costs besides ([`QUEUED_FRAME_COST`]), so
    /// that a peer sent many tiny frames (pongs, confirmations) it does not
    /// read is cut at about the memory the limit says, not eight times it.
    pub(crate) fn cost(&self) -> usize {
        self.len() + QUEUED_FRAME_COST
    }

    /// Always false: a frame has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

pub(crate) enum Outbound {
    Data(EncodedFrame),
    /// Write this last frame (goodbye or refusal), then close our side.
    Close(EncodedFrame),
    /// Send TLS records the reader produced (nothing to do on plain TCP).
    Flush,
}
