//! One connection: the [`ConnHandle`] through which any thread queues
//! frames for it, its queues, and (client side) its reader and writer
//! threads; a server's connections are served by its I/O threads instead
//! (the `engine` module), which drain the same queues the same way.
//!
//! # Queues
//! Reliable traffic (control, chat, file) goes through one unbounded channel
//! whose *bytes* are bounded by [`ConnConfig::max_queued_bytes`]: a peer that
//! falls that far behind is disconnected with [`CloseReason::TooSlow`] rather
//! than having anything dropped silently. Media goes through a small bounded
//! channel that drops its oldest frame when full, so a slow peer loses stale
//! media only. Media bytes count against the same per-connection and
//! server-wide byte limits: over them, queued media is dropped (oldest
//! first, then the new frame) instead of anyone being disconnected, and a
//! reliable frame that does not fit first displaces queued media. The
//! writer always drains reliable traffic first.
//!
//! Frames are encoded by the caller ([`EncodedFrame`]), so a message sent to
//! many peers is encoded once and its bytes shared.
//!
//! # Files
//! - `event`: [`Event`] and [`CloseReason`], and the one place a
//!   connection's end is logged and reported.
//! - `frame`: [`EncodedFrame`] and what the queues carry.
//! - `shared`: the state the handle, the threads and the server share,
//!   and its byte accounting.
//! - `handle`: [`ConnHandle`] and the queues behind it.
//! - `wake`: how a send wakes the server I/O thread serving the connection.
//! - `writer` and `reader`: the client's two threads.

use std::time::Duration;

mod event;
mod frame;
mod handle;
mod inbound;
mod reader;
mod shared;
mod wake;
mod writer;

pub use event::{CloseReason, Event};
pub use frame::EncodedFrame;
pub use handle::ConnHandle;
pub use inbound::InboundPermit;

pub(crate) use frame::Outbound;
pub(crate) use handle::{new_connection, WriterLink, WriterQueues};
pub(crate) use inbound::{ConnInbound, ConnRate, FrameReservation, InboundBudget};
pub(crate) use reader::{Reader, EVENT_BYTES};
pub(crate) use shared::{Shared, Totals};
pub(crate) use wake::{Doorbell, Wake};
pub(crate) use writer::run_writer;

/// Settings shared by server and client connections.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// How often to send a keepalive ping (and measure the round trip).
    pub ping_interval: Duration,
    /// Close the connection when nothing at all arrives for this long.
    pub idle_timeout: Duration,
    /// Bytes queued for a peer before it counts as too slow (reliable
    /// traffic) or loses media (media frames count too, and are dropped
    /// first). Each frame counts for its bytes and a little more, for what
    /// keeping it queued costs besides.
    pub max_queued_bytes: usize,
    /// Media frames queued for a peer before the oldest is dropped.
    pub media_queue_frames: usize,
    /// Largest payload accepted from the peer.
    pub max_payload: u32,
    /// How long a closing connection waits for the peer to close its side.
    pub close_linger: Duration,
    /// What a send does when the reliable queue is full: `false` (servers)
    /// disconnects the peer as too slow, so it cannot hold anyone else up;
    /// `true` (clients) waits for room, which paces a program that sends
    /// faster than its link.
    pub block_when_full: bool,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            max_queued_bytes: 8 * 1024 * 1024,
            media_queue_frames: 8,
            max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
            close_linger: Duration::from_secs(2),
            block_when_full: false,
        }
    }
}
