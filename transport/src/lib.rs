//! lanlink over TCP: the handshake, framed reads and writes, bounded
//! per-connection queues, keepalive, timeouts and shutdown, on `std::net`
//! and plain threads.
//!
//! # Design
//! On the **server**, a handful of I/O threads (one per core, at most
//! eight) serve every established connection over epoll (`mio`): each
//! owns many non-blocking sockets, feeds what arrives to the connection's
//! [`lanlink_proto::FrameDecoder`], answers pings, enforces the idle
//! timeout, hands every other frame to one event channel, and drains the
//! connection's queues into its socket (reliable first, then media; a
//! broadcast's bytes are shared, never copied per recipient on plain TCP).
//! A send wakes the connection's I/O thread. Only the handshake (TLS and
//! `Hello`, bounded in time) runs on a short-lived thread of its own, at
//! most [`ServerConfig::max_handshakes`] at once: the server's thread count
//! does not grow with its clients.
//!
//! The **client** (one connection) keeps a reader thread and a writer
//! thread: blocking code, straight-line.
//!
//! The application — chat rooms, file transfers, media relays — lives in
//! `lanlink-services` and consumes [`Event`]s from one channel, answering
//! through each connection's [`ConnHandle`]. Sending never blocks: reliable
//! frames are queued up to a byte limit beyond which the peer is
//! disconnected as too slow, and media frames displace older media.
//!
//! # Layout
//! - [`server`]: [`serve`] — the accept loop and the server handshake.
//! - [`client`]: [`Client::connect`] — the client handshake and handle.
//! - [`conn`]: [`ConnHandle`], [`Event`], [`CloseReason`], queues, the
//!   client's threads.
//! - [`tls`]: TLS with a self-signed server certificate pinned by its
//!   fingerprint ([`ServerIdentity`], [`ClientTls`], [`Fingerprint`]).
//! - [`limits`]: the [`TokenBucket`] behind every rate limit, a bucket per
//!   address ([`KeyedBuckets`]), bans and the refusal log.
//! - [`text`]: peer text made safe for terminals and logs
//!   ([`text::display_safe`]).
//! - [`Shutdown`]: a signal every thread can wait on.
//!
//! The modules form layers; each uses only those below it (no cycles):
//!
//! | layer | modules |
//! |---|---|
//! | 6 | `server`, `client` (neither uses the other); the fuzzing entry points |
//! | 5 | `engine`: the server's I/O threads |
//! | 4 | [`conn`]: handles, queues, events, the client's threads |
//! | 3 | [`tls`]: certificates, pinning, the TLS handshakes |
//! | 2 | `handshake`: the first frame, read under a deadline |
//! | 1 | `socket`: one connection's byte stream, plain or TLS |
//! | 0 | [`ConnId`], [`TransportError`], [`text`], [`limits`], [`Shutdown`], [`spawn_named`] |
//!
//! # Example
//! ```no_run
//! use std::net::TcpListener;
//! use lanlink_transport::{serve, Event, ServerConfig, Shutdown};
//! use lanlink_proto::{control::Welcome, Capabilities, Frame};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let shutdown = Shutdown::new();
//! let (events_tx, events) = crossbeam_channel::bounded(1024);
//! let server = {
//!     let shutdown = shutdown.clone();
//!     std::thread::spawn(move || serve(listener, ServerConfig::default(), shutdown, events_tx))
//! };
//! // The application loop: admit everyone, print what they send.
//! for event in events {
//!     match event {
//!         Event::Hello { conn, hello } => conn.send(&Frame::control(Welcome {
//!             server_name: "demo".into(),
//!             client_id: conn.id().0 as u32,
//!             name: hello.name,
//!             capabilities: Capabilities::CHAT,
//!             max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
//!             motd: String::new(),
//!         }))?,
//!         Event::Frame { conn, frame, .. } => println!("{conn}: {:?}", frame.message),
//!         Event::Closed { conn, reason, .. } => println!("{conn} left: {reason}"),
//!     }
//! }
//! shutdown.trigger();
//! server.join().expect("server thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Peer bytes must never panic a connection thread: no unwrap, expect or
// panic outside tests.
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

pub mod client;
pub mod conn;
mod engine;
mod error;
#[cfg(any(fuzzing, feature = "fuzzing"))]
mod fuzzing;
mod handshake;
pub mod limits;
mod queued;
pub mod server;
mod shutdown;
mod socket;
mod spawn;
pub mod text;
pub mod tls;

pub use client::{Client, ClientConfig};
pub use conn::{CloseReason, ConnConfig, ConnHandle, EncodedFrame, Event, InboundPermit};
pub use error::TransportError;
#[doc(hidden)]
#[cfg(any(fuzzing, feature = "fuzzing"))]
pub use fuzzing::fuzz_tls_server_read;
pub use limits::{BanList, GuessLimit, KeyedBuckets, Rate, RefusalLog, TokenBucket};
pub use queued::QueuedBytes;
pub use server::{serve, Adopter, ServerConfig, DEFAULT_SERVER_MAX_PAYLOAD};
pub use shutdown::Shutdown;
pub use spawn::spawn_named;
pub use tls::{ClientTls, Fingerprint, ServerIdentity};

/// The TCP port a lanlink server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;

/// Identifies one connection for the lifetime of a server; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}
