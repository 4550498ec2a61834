//! Field-level primitives shared by every message: a checked [`Reader`] over a
//! received payload and a [`Writer`] that appends to an output buffer.
//!
//! All integers are big-endian (network order) through `byteorder`. Every read
//! checks the remaining length first and reports the field it was reading, so
//! no peer input can index out of bounds or panic.
//!
//! Variable-length fields:
//! - text: `u16` byte length, then that many bytes of UTF-8;
//! - optional text: one byte `0` (absent) or `1` (present) then the text;
//! - lists: `u16` element count, then the elements;
//! - blobs (media data, file chunks): the rest of the payload, no prefix.

use byteorder::{BigEndian, ByteOrder};
use bytes::{Bytes, BytesMut};

use crate::{Kind, ProtoError};

/// The longest text or list a `u16` prefix can describe.
pub(crate) const MAX_U16_LEN: usize = u16::MAX as usize;

/// About what a decoded text holds on the heap besides its `String`: its
/// bytes in an allocation of at least 32 bytes, in steps of 16, with the
/// allocator's 8 bytes in front (glibc's malloc); nothing when empty.
pub(crate) fn text_memory(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        (s.len() + 8).next_multiple_of(16).max(32)
    }
}

/// About what a decoded list holds: its items, and what `heap` says each
/// holds on the heap besides (see [`text_memory`]).
pub(crate) fn list_memory<T>(items: &Vec<T>, heap: impl Fn(&T) -> usize) -> usize {
    items.capacity() * std::mem::size_of::<T>() + items.iter().map(heap).sum::<usize>()
}

/// Cursor over one frame's payload. Slices of it share the frame's buffer.
pub(crate) struct Reader<'a> {
    kind: Kind,
    buf: &'a [u8],
    /// The frame's shared buffer, when the payload has a blob to hand out
    /// without copying.
    shared: Option<&'a Bytes>,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(kind: Kind, buf: &'a Bytes) -> Self {
        Reader {
            kind,
            buf,
            shared: Some(buf),
            pos: 0,
        }
    }

    /// A reader over borrowed bytes, for payloads without a blob: nothing
    /// is split off or reference-counted.
    pub(crate) fn borrowed(kind: Kind, buf: &'a [u8]) -> Self {
        Reader {
            kind,
            buf,
            shared: None,
            pos: 0,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes, or reports which field was cut short.
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.get(..n) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(ProtoError::Truncated {
                kind: self.kind,
                field,
                needed: n,
                available: rest.len(),
            }),
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        Ok(BigEndian::read_u16(self.take(2, field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        Ok(BigEndian::read_u32(self.take(4, field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        Ok(BigEndian::read_u64(self.take(8, field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtoError> {
        Ok(BigEndian::read_i64(self.take(8, field)?))
    }

    /// A boolean is one byte, `0` or `1`; anything else is rejected so that
    /// every payload has exactly one encoding.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtoError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid(field, other.into())),
        }
    }

    pub(crate) fn array32(&mut self, field: &'static str) -> Result<[u8; 32], ProtoError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32, field)?);
        Ok(out)
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, ProtoError> {
        let len = usize::from(self.u16(field)?);
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(ProtoError::InvalidUtf8 {
                kind: self.kind,
                field,
                valid_up_to: e.valid_up_to(),
            }),
        }
    }

    pub(crate) fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, ProtoError> {
        if self.bool(field)? {
            self.string(field).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn opt_array32(
        &mut self,
        field: &'static str,
    ) -> Result<Option<[u8; 32]>, ProtoError> {
        if self.bool(field)? {
            self.array32(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a `u16` count and then that many elements with `item`.
    pub(crate) fn list<T>(
        &mut self,
        field: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<T, ProtoError>,
    ) -> Result<Vec<T>, ProtoError> {
        let count = usize::from(self.u16(field)?);
        // Every element takes at least one byte, so the bytes that actually
        // arrived bound the allocation, not the count the peer claims.
        let mut out = Vec::with_capacity(count.min(self.remaining()));
        for _ in 0..count {
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// The rest of the payload, shared with the frame buffer (no copy).
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = match self.shared {
            Some(shared) => shared.slice(self.pos..),
            None => Bytes::copy_from_slice(self.buf.get(self.pos..).unwrap_or_default()),
        };
        self.pos = self.buf.len();
        out
    }

    /// Ends decoding: any byte left over is an error.
    pub(crate) fn finish(self) -> Result<(), ProtoError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ProtoError::TrailingBytes {
                kind: self.kind,
                extra,
            }),
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, value: u64) -> ProtoError {
        ProtoError::InvalidValue {
            kind: self.kind,
            field,
            value,
        }
    }
}

/// Appends fields to an output buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut BytesMut,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Self {
        Writer { buf }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.extend_from_slice(&[v]);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        let mut b = [0u8; 2];
        BigEndian::write_u16(&mut b, v);
        self.buf.extend_from_slice(&b);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        let mut b = [0u8; 4];
        BigEndian::write_u32(&mut b, v);
        self.buf.extend_from_slice(&b);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        let mut b = [0u8; 8];
        BigEndian::write_u64(&mut b, v);
        self.buf.extend_from_slice(&b);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        let mut b = [0u8; 8];
        BigEndian::write_i64(&mut b, v);
        self.buf.extend_from_slice(&b);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    fn len16(&mut self, field: &'static str, len: usize) -> Result<(), ProtoError> {
        let len = u16::try_from(len).map_err(|_| ProtoError::FieldTooLong {
            field,
            len,
            max: MAX_U16_LEN,
        })?;
        self.u16(len);
        Ok(())
    }

    pub(crate) fn string(&mut self, field: &'static str, v: &str) -> Result<(), ProtoError> {
        self.len16(field, v.len())?;
        self.bytes(v.as_bytes());
        Ok(())
    }

    pub(crate) fn opt_string(
        &mut self,
        field: &'static str,
        v: Option<&str>,
    ) -> Result<(), ProtoError> {
        self.bool(v.is_some());
        match v {
            Some(s) => self.string(field, s),
            None => Ok(()),
        }
    }

    pub(crate) fn opt_array32(&mut self, v: Option<&[u8; 32]>) {
        self.bool(v.is_some());
        if let Some(a) = v {
            self.bytes(a);
        }
    }

    pub(crate) fn list<T>(
        &mut self,
        field: &'static str,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T) -> Result<(), ProtoError>,
    ) -> Result<(), ProtoError> {
        self.len16(field, items.len())?;
        for it in items {
            item(self, it)?;
        }
        Ok(())
    }
}
