//! Talk to a lanlink server from a Rust program: chat rooms, file
//! transfer, live audio and live video over one [`Session`].
//!
//! A chat bot that answers `!time` in the lobby:
//!
//! ```no_run
//! use lanlink_client::{Event, Session};
//!
//! let (session, events) = Session::builder("192.168.1.10").name("timebot").connect()?;
//! for event in events {
//!     match event {
//!         Event::Message(m) if m.text == "!time" => {
//!             let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
//!             session.say(&m.room, &format!("{}: {} s since 1970", m.from, now.as_secs()))?;
//!         }
//!         Event::Disconnected(reason) => eprintln!("gone: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The shape
//! - [`Session::builder`] connects: address (the default port 7878 is
//!   added), name, token, and how to trust the server's certificate
//!   ([`Trust`]: pinned on first use in a [`PinStore`] such as
//!   [`KnownServers`] by default, a fixed fingerprint, or plain TCP). It
//!   prints nothing: how trust was decided comes back as a
//!   [`TrustOutcome`], a changed certificate as
//!   [`ClientError::CertificateChanged`].
//! - A [`Session`] (cheap to clone, usable from any thread) sends: chat
//!   ([`Session::say`], [`Session::join`], [`Session::private_message`]…),
//!   files ([`Session::list`], [`Session::get`], [`Session::put`],
//!   [`Session::send_file`], [`Session::accept_file`], or a whole
//!   receiving loop with [`Session::receive_files`]), audio
//!   ([`Session::publish_audio`], [`Session::listen`]) and video
//!   ([`Session::publish_video`], [`Session::watch`]).
//! - [`Events`] is everything the server says, in order, as [`Event`]s,
//!   ending with [`Event::Disconnected`] the moment the connection is gone.
//!   A session with [`Capabilities::CHAT`] (the default) starts in the
//!   server's default room (`lobby` unless its operator chose another):
//!   that room's [`Event::History`] and [`Event::Roster`] come first. Read
//!   the events or drop them: held unread they stop the session once
//!   thousands wait (see [`Events`]).
//! - Sends return once queued. [`Session::say_confirmed`] and
//!   [`Session::send_confirmed`] wait until the server has handled the
//!   message, and return its refusal if it refused it (sending too fast:
//!   [`ClientError::retry_after`] says how long to wait): for scripts that
//!   must know each line was delivered; [`Session::join_confirmed`] says
//!   whether a join worked (a wrong password). [`Paced`] sends line after line
//!   that way, at the pace the server allows, sending again what it
//!   refused as too fast.
//! - [`Reconnecting`] is a chat session that outlives its connection: it
//!   says at once when the connection is lost, connects again after a
//!   [`Backoff`] and joins its rooms again, passwords included, until
//!   connecting again cannot help (banned, a changed certificate).
//!   [`Resuming`] does the same for transfers, which resume where they
//!   stopped.
//! - [`ChatModel`] is what a chat UI knows, learnt from those events: the
//!   rooms it is in, who is in them, the files offered, and which messages
//!   were shown, so that a room's history after a reconnect shows only
//!   what was missed. `lanlink chat` is built on it.
//!
//! An offered file whose name is taken in the destination folder is
//! overwritten, saved beside it as `name (1).ext` or skipped, as
//! [`TransferOptions::on_conflict`] is told ([`OnConflict`]).
//!
//! Without an address, [`discovery::choose`] finds the server announced
//! on the LAN: the only usable one, or the one a callback picks among
//! several (ask the user; none picked is [`ClientError::NoServer`] with
//! the list), trusted by the certificate it announced unless an older pin
//! says otherwise. [`discovery::browse`] lists what is announced, and
//! [`discovery::Announcer`] is the server's side.
//!
//! File operations block their caller until done; publishing and
//! listening run on threads of their own behind a handle ([`Publisher`],
//! [`audio::Listener`]) that stops them when dropped. No async runtime:
//! threads and channels, like the rest of lanlink.
//!
//! [`names`] gives streams names nobody has to think about (`ada-mic`,
//! then `ada-mic-2` when that is taken) and publishes under the first free
//! one.
//!
//! # Features
//! - `audio` (default): [`audio`], on `lanlink-audio` without its sound
//!   card backends (turn on `lanlink-audio/device` for cpal/ALSA).
//! - `video` (default): [`video`], on `lanlink-video` without cameras or
//!   windows (its `camera` and `display` features add them).
//!
//! - `discovery` (default): [`discovery`], finding servers on the LAN
//!   (mDNS/DNS-SD) and announcing one, on `mdns-sd`.
//!
//! Without `audio` and `video`, a chat bot or file tool builds no audio or
//! JPEG code; without `discovery`, no mDNS.
//!
//! # Examples
//! `client/examples/`: `chat_bot`, `announce`, `send_file`, `backup`,
//! `record_wav`, `publish_frames`, each runnable against a real server.

// The media plumbing (publishers, watchers, media routes) serves the
// `audio` and `video` features; without them parts of it are unused.
#![cfg_attr(not(all(feature = "audio", feature = "video")), allow(dead_code))]
// What a server sends is peer input: no unwrap, expect or panic outside
// tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

#[cfg(feature = "audio")]
pub mod audio;
mod backoff;
pub mod chat;
mod confirm;
#[cfg(feature = "discovery")]
pub mod discovery;
mod error;
mod event;
pub mod files;
pub mod media;
pub mod names;
mod reconnect;
mod resume;
mod session;
mod trust;
#[cfg(feature = "video")]
pub mod video;

pub use backoff::Backoff;
pub use chat::ChatModel;
pub use confirm::Paced;
pub use error::ClientError;
pub use event::{retry_after, Event, IncomingOffer};
pub use files::{
    OfferAnswer, OnConflict, Progress, ProgressFn, Quiet, TransferOptions, TransferProgress,
    TransferSummary,
};
pub use media::{MediaKind, Publisher, StreamInfo};
pub use reconnect::Reconnecting;
pub use resume::{
    worth_connecting_again, worth_reconnecting_after, Connect, Resume, Resuming, PROGRESS_STEP,
};
#[doc(hidden)]
#[cfg(any(fuzzing, feature = "fuzzing"))]
pub use session::fuzz_route;
pub use session::{default_name, Events, Session, SessionBuilder};
pub use trust::{default_server_data_dir, KnownServers, PinStore, Trust, TrustOutcome};

/// Text from a peer made safe to print: control characters and the
/// invisible ones that reorder or hide text escaped (`\u{1b}`), as
/// everywhere else in lanlink. A bot that logs names or lines to a
/// terminal prints them through [`display_safe`](text::display_safe).
pub mod text {
    pub use lanlink_transport::text::{display_cut, display_safe};
}

/// The audio crate the [`audio`] calls take sources and sinks from (WAV
/// files, tones, sound cards with its `device` feature), so a program
/// needs no dependency of its own on it.
#[cfg(feature = "audio")]
pub use lanlink_audio;
// The README's example is compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use lanlink_proto as proto;
pub use lanlink_proto::Capabilities;
pub use lanlink_proto::ErrorCode;
pub use lanlink_services::ServiceError;
pub use lanlink_transport::TransportError;
pub use lanlink_transport::{CloseReason, Fingerprint, Shutdown};
/// The video crate the [`video`] calls take sources from (JPEG encoding,
/// the test pattern, cameras with its `camera` feature).
#[cfg(feature = "video")]
pub use lanlink_video;

/// The port a lanlink server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = lanlink_transport::DEFAULT_PORT;

/// Adds the default port to `HOST` when none is given (`host`, `10.0.0.2`,
/// `[::1]`, `::1`); leaves `HOST:PORT` alone. A URL pasted for it
/// (`https://host:port/…`) is taken as its host and port.
pub fn with_default_port(host: &str) -> String {
    let host = match host.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?', '#']).next().unwrap_or(rest),
        None => host,
    };
    if host.starts_with('[') {
        if host.contains("]:") {
            host.to_owned()
        } else {
            format!("{host}:{DEFAULT_PORT}")
        }
    } else if host.matches(':').count() > 1 {
        // A bare IPv6 address.
        format!("[{host}]:{DEFAULT_PORT}")
    } else if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{DEFAULT_PORT}")
    }
}

/// Microseconds since the Unix epoch (capture timestamps on the wire).
pub(crate) fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("pi"), "pi:7878");
        assert_eq!(with_default_port("10.0.0.2:9000"), "10.0.0.2:9000");
        assert_eq!(with_default_port("::1"), "[::1]:7878");
        assert_eq!(with_default_port("[::1]"), "[::1]:7878");
        assert_eq!(with_default_port("[::1]:9"), "[::1]:9");
        assert_eq!(with_default_port("https://10.0.0.2:7879/"), "10.0.0.2:7879");
        assert_eq!(with_default_port("lanlink://pi"), "pi:7878");
        assert_eq!(with_default_port("http://[::1]:80/x?y"), "[::1]:80");
    }
}
