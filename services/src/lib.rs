//! lanlink services: chat rooms, file transfer, and audio and video relays,
//! written as sans-IO state machines on top of `lanlink-proto` (frames and a
//! clock in, frames to send out) and wired to connections by `lanlink-transport`.
//! They hold no device code and open no sockets: the server runtime that
//! wires them to connections and threads is `lanlink-server`.
//!
//! # Layout
//! - [`chat`]: rooms, messages, nicknames and presence ([`chat::ChatService`]),
//!   and the client-side command line ([`chat::command`]).
//! - [`file`](mod@file): file sharing, uploads and user-to-user offers
//!   ([`file::FileService`] on the server, [`file::FileClient`] on clients).
//! - [`media`]: the audio and video relay ([`media::MediaRelay`]).
//! - [`text`]: peer-supplied text made safe to show ([`text::display_safe`])
//!   and names compared by look-alike skeleton ([`text::name_skeleton`]).
//! - [`ServiceError`]: the one error type; its [`ServiceError::code`] is what
//!   the peer is told.

pub mod chat;
mod error;
pub mod file;
#[doc(hidden)]
#[cfg(any(fuzzing, feature = "fuzzing"))]
pub mod fuzzing;
pub mod media;
pub mod text;

pub use chat::{Now, Outgoing};

pub use error::{retry_after, NameKind, ServiceError};
