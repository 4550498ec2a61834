//! The lanlink server runtime: what turns the sans-IO services of
//! `lanlink-services` into a server.
//!
//! ```no_run
//! use std::net::TcpListener;
//! use lanlink_server::{run, ServerConfig};
//! use lanlink_transport::Shutdown;
//!
//! let listener = TcpListener::bind("0.0.0.0:7878")?;
//! run(listener, ServerConfig::default(), Shutdown::new())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - [`run`] serves every service on a bound listener until a
//!   [`Shutdown`](lanlink_transport::Shutdown) fires; [`Hub`] is the event
//!   loop behind it: one thread owns every service, so services need no
//!   locks, and whatever they want sent is queued on the recipients'
//!   connections, which never blocks it.
//! - [`workers`]: the bounded pool that does the hub's disk work (file
//!   reads, hashes, writes, syncs), fair by connection, so no request can
//!   stall the hub.
//! - [`http`]: the browser's side: a small HTTP/1.1 server with every live
//!   video stream as MJPEG, snapshots, `/state` and a page that follows it.
//! - [`nats`]: scale-out (`--nats`): room events shared with other
//!   servers through NATS, on a private async runtime in that module only.
//! - [`ServerError`]: the one error type.
//!
//! Dependencies point one way: `proto → transport → services → server`;
//! the `lanlink-server` program in `lanlink-apps` parses arguments and
//! calls [`run`].

// Peer bytes must never panic the hub or an HTTP thread.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

mod confirms;
mod error;
pub mod http;
mod hub;
mod memory;
pub mod nats;
mod remote_files;
mod remote_media;
pub mod workers;

pub use error::ServerError;
pub use hub::{run, Hub, ServerConfig, DEFAULT_PORT};
