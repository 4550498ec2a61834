//! [`Kind`], [`Message`] and [`Frame`]: the table of every message this
//! version defines, and how a whole frame is encoded and decoded.

use bytes::{Bytes, BytesMut};

use crate::header::{Header, StreamId, CONTROL_STREAM, HEADER_LEN};
use crate::wire::{Reader, Writer};
use crate::{audio, chat, control, file, video, ProtoError};

/// How one message type writes and reads its payload.
///
/// A message whose payload ends in a blob (file chunk, media data) writes its
/// fixed fields in `encode` and returns the blob from `tail`, so a transport
/// can hand the blob to the socket without copying it into the frame buffer.
pub(crate) trait Body: Sized {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError>;
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError>;
    fn tail(&self) -> Option<&Bytes> {
        None
    }
}

/// Which service a message belongs to: the high nibble of its kind byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// 0x0_: handshake, keepalive, errors, goodbye.
    Control,
    /// 0x1_: chat.
    Chat,
    /// 0x2_: file transfer.
    File,
    /// 0x3_: audio streams.
    Audio,
    /// 0x4_: video streams.
    Video,
}

/// How a transport should queue a message when the peer reads slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrafficClass {
    /// Handshake, keepalive, errors, and media stream set-up (announce,
    /// subscribe, end): never dropped.
    Control,
    /// Chat: never dropped; a peer too far behind is disconnected instead.
    Chat,
    /// File transfer: never dropped; paced by the sender instead.
    File,
    /// Audio packets and video frames: stale data may be dropped.
    Media,
}

macro_rules! messages {
    ($( $code:literal => $module:ident :: $name:ident, $class:ident; )*) => {
        /// The message-kind byte of the header: one value per message type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Kind {
            $(
                #[doc = concat!("[`", stringify!($module), "::", stringify!($name), "`]")]
                $name = $code,
            )*
        }

        impl Kind {
            /// Every kind, in wire-value order.
            pub const ALL: &'static [Kind] = &[$(Kind::$name),*];

            /// The kind with this wire value, if this version defines one.
            pub fn from_u8(byte: u8) -> Option<Kind> {
                match byte {
                    $($code => Some(Kind::$name),)*
                    _ => None,
                }
            }

            /// True for the kinds whose payload ends in a blob (file and
            /// media data) that decoding shares instead of copying.
            pub fn has_blob(self) -> bool {
                matches!(self, Kind::FileChunk | Kind::AudioPacket | Kind::VideoFrame)
            }

            /// The service this kind belongs to.
            pub fn service(self) -> Service {
                match (self as u8) >> 4 {
                    0x1 => Service::Chat,
                    0x2 => Service::File,
                    0x3 => Service::Audio,
                    0x4 => Service::Video,
                    _ => Service::Control,
                }
            }

            /// How a transport queues this kind.
            pub fn class(self) -> TrafficClass {
                match self {
                    $(Kind::$name => TrafficClass::$class,)*
                }
            }
        }

        /// Any lanlink message. The frame header's kind byte selects the variant.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $(
                #[doc = concat!("See [`", stringify!($module), "::", stringify!($name), "`].")]
                $name($module::$name),
            )*
        }

        impl Message {
            /// The kind byte this message is sent with.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Message::$name(_) => Kind::$name,)*
                }
            }

            fn encode_fixed(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
                match self {
                    $(Message::$name(m) => m.encode(w),)*
                }
            }

            /// The trailing blob (file or media data), if this message has one.
            pub fn tail(&self) -> Option<&Bytes> {
                match self {
                    $(Message::$name(m) => m.tail(),)*
                }
            }

            /// Decodes a complete payload of the given kind. Slices of
            /// `payload` (media and file data) are shared, not copied.
            pub fn decode(kind: Kind, payload: &Bytes) -> Result<Message, ProtoError> {
                Message::decode_from(kind, Reader::new(kind, payload))
            }

            /// Decodes a payload of a kind without a trailing blob straight
            /// from borrowed bytes (see [`Kind::has_blob`]).
            pub(crate) fn decode_borrowed(kind: Kind, payload: &[u8]) -> Result<Message, ProtoError> {
                Message::decode_from(kind, Reader::borrowed(kind, payload))
            }

            fn decode_from(kind: Kind, mut r: Reader<'_>) -> Result<Message, ProtoError> {
                let message = match kind {
                    $(Kind::$name => Message::$name(<$module::$name as Body>::decode(&mut r)?),)*
                };
                r.finish()?;
                Ok(message)
            }
        }

        $(
            impl From<$module::$name> for Message {
                fn from(m: $module::$name) -> Message {
                    Message::$name(m)
                }
            }
        )*
    };
}

messages! {
    0x01 => control::Hello, Control;
    0x02 => control::Welcome, Control;
    0x03 => control::Refuse, Control;
    0x04 => control::Ping, Control;
    0x05 => control::Pong, Control;
    0x06 => control::Error, Control;
    0x07 => control::Goodbye, Control;
    0x08 => control::Admin, Control;
    0x09 => control::AdminReply, Control;
    0x0A => control::Confirm, Control;
    0x0B => control::Confirmed, Control;

    0x10 => chat::Join, Chat;
    0x11 => chat::Leave, Chat;
    0x12 => chat::ChatMessage, Chat;
    0x13 => chat::PrivateMessage, Chat;
    0x14 => chat::SetNick, Chat;
    0x15 => chat::NickChanged, Chat;
    0x16 => chat::RosterRequest, Chat;
    0x17 => chat::Roster, Chat;
    0x18 => chat::Presence, Chat;
    0x19 => chat::Notice, Chat;
    0x1A => chat::HistoryRequest, Chat;
    0x1B => chat::History, Chat;

    0x20 => file::ListRequest, File;
    0x21 => file::Listing, File;
    0x22 => file::FileRequest, File;
    0x23 => file::FileOffer, File;
    0x24 => file::FileAccept, File;
    0x25 => file::FileReject, File;
    0x26 => file::FileChunk, File;
    0x27 => file::FileComplete, File;
    0x28 => file::FileCancel, File;

    0x30 => audio::AudioAnnounce, Control;
    0x31 => audio::AudioSubscribe, Control;
    0x32 => audio::AudioUnsubscribe, Control;
    0x33 => audio::AudioPacket, Media;
    0x34 => audio::AudioEnd, Control;

    0x40 => video::VideoAnnounce, Control;
    0x41 => video::VideoSubscribe, Control;
    0x42 => video::VideoUnsubscribe, Control;
    0x43 => video::VideoFrame, Media;
    0x44 => video::VideoEnd, Control;
}

impl Message {
    /// About how many bytes this message holds in memory once decoded,
    /// `wire_len` being its size on the wire: what a queue of decoded
    /// messages that is bounded in bytes should count. Mostly the wire
    /// size; but the items of a list cost more in memory than on the wire
    /// (a [`Roster`](chat::Roster) member of one byte is 3 bytes there and
    /// about 56 here), and a peer sending lists of tiny items would
    /// otherwise make a 64 MiB bound hold over a GiB.
    pub fn memory_size(&self, wire_len: usize) -> usize {
        let decoded = match self {
            Message::Roster(r) => r.memory_size(),
            Message::History(h) => h.memory_size(),
            Message::Listing(l) => l.memory_size(),
            _ => 0,
        };
        wire_len.max(decoded)
    }
}

/// A message together with the stream it belongs to: one unit on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The transfer or media stream; [`CONTROL_STREAM`] for control and chat.
    pub stream: StreamId,
    /// The message.
    pub message: Message,
}

impl Frame {
    /// A frame on the given stream.
    pub fn new(stream: StreamId, message: impl Into<Message>) -> Frame {
        Frame {
            stream,
            message: message.into(),
        }
    }

    /// A frame on the connection-level stream (control and chat).
    pub fn control(message: impl Into<Message>) -> Frame {
        Frame::new(CONTROL_STREAM, message)
    }

    /// The message's kind.
    pub fn kind(&self) -> Kind {
        self.message.kind()
    }

    /// Appends the whole frame, header and payload, to `dst`, and returns the
    /// number of bytes written.
    ///
    /// Fails only on caller misuse (a field too long for its length prefix, a
    /// payload over 4 GiB); `dst` is then left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<usize, ProtoError> {
        let start = dst.len();
        let tail = self.encode_head(dst)?;
        if let Some(tail) = tail {
            dst.extend_from_slice(tail);
        }
        Ok(dst.len() - start)
    }

    /// Appends the header and every field except the trailing blob to `dst`
    /// and returns the blob, which the caller must write right after (a
    /// vectored write avoids copying large media and file payloads).
    ///
    /// The header's length already counts the blob.
    pub fn encode_head(&self, dst: &mut BytesMut) -> Result<Option<&Bytes>, ProtoError> {
        let start = dst.len();
        dst.extend_from_slice(&[0u8; HEADER_LEN]);
        if let Err(e) = self.message.encode_fixed(&mut Writer::new(dst)) {
            dst.truncate(start);
            return Err(e);
        }
        let tail = self.message.tail();
        let len = dst.len() - start - HEADER_LEN + tail.map_or(0, Bytes::len);
        let Ok(len32) = u32::try_from(len) else {
            dst.truncate(start);
            return Err(ProtoError::PayloadTooLarge {
                len,
                max: u32::MAX as usize,
            });
        };
        let header = Header {
            kind: self.kind(),
            stream: self.stream,
            len: len32,
        };
        let mut head = [0u8; HEADER_LEN];
        header.encode_into(&mut head);
        dst[start..start + HEADER_LEN].copy_from_slice(&head);
        Ok(tail)
    }

    /// Encodes the frame into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, ProtoError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Decodes a frame from an already-validated header and its complete
    /// payload.
    pub fn decode(header: Header, payload: &Bytes) -> Result<Frame, ProtoError> {
        Ok(Frame {
            stream: header.stream,
            message: Message::decode(header.kind, payload)?,
        })
    }
}
