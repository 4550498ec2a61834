//! What a connection reports: [`Event`], [`CloseReason`].

use std::net::SocketAddr;
use std::time::Duration;

use lanlink_proto::{control, ErrorCode, Frame, ProtoError};

use super::{ConnHandle, InboundPermit};
use crate::text::display_safe;
use crate::ConnId;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer said goodbye.
    Goodbye(String),
    /// The peer closed the socket between frames.
    PeerClosed,
    /// The peer closed the socket in the middle of a frame.
    PeerClosedMidFrame {
        /// Bytes of the unfinished frame that had arrived.
        buffered: usize,
    },
    /// The peer sent bytes that are not valid lanlink.
    Malformed(ProtoError),
    /// The peer sent a valid frame that is not allowed at that point.
    Unexpected(String),
    /// The peer did not read fast enough.
    TooSlow {
        /// Reliable bytes queued when the limit was crossed.
        queued: usize,
    },
    /// Nothing arrived for the idle timeout.
    IdleTimeout(Duration),
    /// A frame the peer started did not arrive whole in the time its
    /// length allows (see `ServerConfig::min_frame_rate`).
    FrameTooSlow {
        /// Bytes of it that had arrived.
        arrived: usize,
        /// Its length, from its header (0 if the header was not whole).
        len: u32,
        /// How long it was given.
        allowed: Duration,
    },
    /// A frame the peer had started arrived too slowly (below four times
    /// [`ServerConfig::min_frame_rate`](crate::ServerConfig::min_frame_rate))
    /// while the server's frames in progress were full and another address
    /// needed room: it was ended to make that room.
    FrameCrowdedOut {
        /// Bytes of it that had arrived.
        arrived: usize,
        /// Its length, from its header.
        len: u32,
        /// The rate it was arriving at, in bytes a second.
        rate: u64,
    },
    /// The peer did not complete the handshake in time.
    HandshakeTimeout(Duration),
    /// This side refused the peer during the handshake.
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
    /// The peer told us it is closing because of an error.
    PeerError {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The peer's explanation.
        message: String,
    },
    /// This side closed the connection.
    Local(String),
    /// The server is shutting down.
    Shutdown,
    /// A socket error.
    Io(String),
    /// The TLS layer failed (a record that does not decrypt, say).
    Tls(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The peer's own words are shown through `display_safe`: this
            // text ends up in logs and on other users' screens.
            // A goodbye that only says "quit" is shown once, not as
            // `quit: quit`.
            CloseReason::Goodbye(r) if r.is_empty() || r.trim().eq_ignore_ascii_case("quit") => {
                write!(f, "quit")
            }
            CloseReason::Goodbye(r) => write!(f, "quit: {}", display_safe(r)),
            CloseReason::PeerClosed => write!(f, "connection closed by peer"),
            CloseReason::PeerClosedMidFrame { buffered } => {
                write!(
                    f,
                    "connection lost mid-frame ({buffered} bytes of an unfinished frame)"
                )
            }
            CloseReason::Malformed(e) => write!(f, "malformed data: {e}"),
            CloseReason::Unexpected(what) => write!(f, "protocol violation: {what}"),
            CloseReason::TooSlow { queued } => {
                write!(f, "too slow: {queued} bytes waiting to be read")
            }
            CloseReason::IdleTimeout(d) => {
                write!(f, "nothing received for {:.0} s", d.as_secs_f64())
            }
            CloseReason::FrameCrowdedOut { arrived, len, rate } => write!(
                f,
                "frame too slow for a full server: {arrived} of {len} bytes at {} KiB/s",
                rate / 1024
            ),
            CloseReason::FrameTooSlow {
                arrived,
                len,
                allowed,
            } => write!(
                f,
                "frame too slow: {arrived} of {len} bytes in {:.0} s",
                allowed.as_secs_f64()
            ),
            CloseReason::HandshakeTimeout(d) => {
                write!(f, "no handshake within {:.1} s", d.as_secs_f64())
            }
            CloseReason::Refused { reason, .. } => write!(f, "refused: {}", display_safe(reason)),
            CloseReason::PeerError { message, .. } => {
                write!(f, "peer reported an error: {}", display_safe(message))
            }
            CloseReason::Local(r) => write!(f, "closed: {r}"),
            CloseReason::Shutdown => write!(f, "server shutting down"),
            CloseReason::Io(e) => write!(f, "connection lost: {e}"),
            CloseReason::Tls(e) => write!(f, "TLS failure: {e}"),
        }
    }
}

/// What a connection reports to whoever consumes its events.
#[derive(Debug)]
pub enum Event {
    /// Server side: a peer sent a valid `Hello` with the right version and
    /// token. Answer with [`ConnHandle::send`] of a `Welcome`, or
    /// [`ConnHandle::refuse`].
    Hello {
        /// The new connection.
        conn: ConnHandle,
        /// What the peer said.
        hello: control::Hello,
    },
    /// A frame arrived (keepalive and goodbye are handled by the transport).
    Frame {
        /// From which connection.
        conn: ConnId,
        /// The frame.
        frame: Frame,
        /// Keeps the frame's bytes counted against the server's inbound
        /// budget until dropped (with the event, normally).
        permit: InboundPermit,
    },
    /// The connection ended; no more events follow for it.
    ///
    /// When the peer said goodbye, the connection waits (up to the linger
    /// time) for the application to answer with [`ConnHandle::close`], so
    /// replies to the peer's last requests still reach it.
    Closed {
        /// Which connection.
        conn: ConnId,
        /// The peer's address.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
}
