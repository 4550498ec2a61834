//! The lanlink server runtime: what turns the sans-IO services of
//! `lanlink-services` into a server.
//!
//! ```no_run
//! use std::net::TcpListener;
//! use lanlink_server::{run, ServerConfig, ServerIdentity, Shutdown};
//!
//! let mut config = ServerConfig::default();
//! config.transport.tls = Some(ServerIdentity::generate()?);
//! let listener = TcpListener::bind("0.0.0.0:7878")?;
//! run(listener, config, Shutdown::new())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/serve.rs` is a whole one: TLS with a certificate kept across
//! runs, a shared folder, an inbox, and a clean stop.
//!
//! **Scale-out (`nats`) in a program of your own:** lanlink's workspace
//! builds `async-nats` with one fix (`vendor/async-nats/LANLINK-PATCH.md`:
//! a message with a malformed header block cost the whole NATS connection,
//! so one NATS user could cut every server off). A `[patch.crates-io]`
//! applies only in the workspace that declares it: a program depending on
//! `lanlink-server` gets the crates.io `async-nats` unless its own
//! workspace adds the same `[patch.crates-io] async-nats = { path = … }`.
//!
//! # Layout
//! - [`run`] serves every service on a bound listener until a
//!   [`Shutdown`] fires; [`Hub`] is the event
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
/// The server's TLS certificate and key, and the signal that stops [`run`]:
/// re-exported so that a program needs this crate alone to serve.
pub use lanlink_transport::{ServerIdentity, Shutdown};
