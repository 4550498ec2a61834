//! Chat: rooms, room and private messages, nicknames, presence and history,
//! as a sans-IO state machine.
//!
//! [`ChatService`] owns no socket, thread or clock. The server calls
//! [`ChatService::connect`] once a client's `Hello` is accepted, passes each
//! chat frame it receives to [`ChatService::handle`] together with the time
//! ([`Now`]), and calls [`ChatService::disconnect`] when the connection ends.
//! Every call appends the frames to send to an `out` vector of [`Outgoing`];
//! how and when they are written is the server's business. So every rule here
//! is testable with plain function calls.
//!
//! A client's mistake becomes a [`lanlink_proto::control::Error`] frame to
//! that client alone, and a refused request changes nothing. Nicknames and
//! room names are compared case-insensitively. Rooms exist while they have
//! members; the history of a room goes with its last member.
//!
//! [`command`] is the client side: typed lines to messages, received messages
//! to printable lines.
//!
//! # Example
//! ```
//! use std::time::Instant;
//! use lanlink_proto::{chat::ChatMessage, Message};
//! use lanlink_services::chat::{ChatConfig, ChatService, Now};
//! use lanlink_transport::ConnId;
//!
//! let mut chat = ChatService::new(ChatConfig::default());
//! let now = Now { instant: Instant::now(), unix_ms: 1_700_000_000_000 };
//! let mut out = Vec::new();
//! let lan = [192, 168, 1, 10].into();
//! chat.connect(ConnId(1), lan, "ada", &now, &mut out).unwrap();
//! chat.connect(ConnId(2), [192, 168, 1, 11].into(), "bob", &now, &mut out).unwrap();
//! out.clear();
//!
//! let hello = ChatMessage {
//!     room: "lobby".into(),
//!     from: String::new(),
//!     text: "hi bob".into(),
//!     action: false,
//!     timestamp_ms: 0,
//! };
//! chat.handle(ConnId(1), hello.into(), &now, &mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].to, ConnId(2));
//! let Message::ChatMessage(m) = &out[0].frame.message else { panic!() };
//! assert_eq!((m.from.as_str(), m.timestamp_ms), ("ada", now.unix_ms));
//! ```

pub mod command;
mod format;
pub mod names;
mod remote;
mod requests;
mod room;
mod service;
#[cfg(test)]
mod tests;
mod whisper;

use std::sync::Arc;
use std::time::Instant;

use lanlink_proto::Frame;
use lanlink_transport::{ConnId, Rate};

pub use remote::{RoomEvent, MAX_HELD_LINES, MAX_REMOTE_REASON};
pub use service::ChatService;
pub use whisper::{RemoteWhisper, MAX_PENDING_WHISPERS};

/// The time, as the caller's clock sees it: the service reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for rate limits.
    pub instant: Instant,
    /// Wall-clock time in milliseconds since the Unix epoch, for message
    /// timestamps.
    pub unix_ms: u64,
}

/// A frame the service wants sent to one connection.
///
/// The frame is shared: a broadcast ([`Outgoing::to_each`]) is one frame
/// for every recipient, which the server encodes once, not a copy (and its
/// strings) per recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The connection to send it on.
    pub to: ConnId,
    /// The frame; chat frames always use the control stream.
    pub frame: Arc<Frame>,
}

/// Limits and settings of a [`ChatService`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChatConfig {
    /// The room every client is put in on connect. It never takes a password.
    pub default_room: String,
    /// How many recent messages each room keeps and replays on join.
    pub history_len: usize,
    /// The longest message text accepted, in bytes. Keep it under 65 535, the
    /// wire format's string limit.
    pub max_message_len: usize,
    /// The longest nickname or room name accepted, in bytes.
    pub max_name_len: usize,
    /// How many room or private messages a client may send at once.
    pub rate_burst: u32,
    /// How many messages a second a client may keep sending after its burst.
    /// Zero means none after the burst; infinity means no limit.
    pub rate_per_second: f64,
    /// Requests other than messages, per connection: joining a room (which
    /// may create it), leaving one, changing nickname, asking for a roster
    /// or a history. Each is seen by others or costs the server work; one
    /// bucket covers them all, and refused requests cost a token too.
    pub request_rate: Rate,
    /// The same requests from all connections of one address together.
    pub address_request_rate: Rate,
    /// Room and private messages from all connections of one address
    /// together (each connection also has `rate_burst`/`rate_per_second`).
    pub address_message_rate: Rate,
    /// Wrong room passwords one address may give. Once spent, every join
    /// that needs a password is refused from that address, right password
    /// or not, until the bucket refills.
    pub password_guesses: Rate,
    /// Wrong room passwords all addresses together may give. Once spent,
    /// joins that need a password are refused unchecked from addresses
    /// that guessed wrong within the hour; others are still checked (see
    /// [`lanlink_transport::GuessLimit`]).
    pub password_guesses_in_all: Rate,
    /// Arrivals in the default room, by connecting, that are told to its
    /// members: per address. A connection beyond it joins quietly: no
    /// `Joined` for it, and no `Left` when it goes, unless it speaks or
    /// changes its nickname first (then its `Joined` is told). Rosters
    /// list it either way. Connections that come and go by the thousand
    /// cannot fill honest screens with presence lines.
    pub told_arrivals: Rate,
    /// The same arrivals from all addresses together.
    pub told_arrivals_in_all: Rate,
    /// Rooms one connection may be in at once, the default room not
    /// counted (it is always open).
    pub max_rooms_per_client: usize,
    /// Rooms that may exist at once, the default room not counted: a room
    /// exists while it has members, so this bounds what all clients
    /// together make the server keep (names, members, history).
    pub max_rooms: usize,
    /// Rooms the clients of one address may have opened that still exist:
    /// a few addresses cannot take every room of [`max_rooms`](Self::max_rooms).
    pub max_rooms_per_address: usize,
    /// Sent as a notice to every client on connect.
    pub motd: Option<String>,
}

impl Default for ChatConfig {
    /// `lobby`, 50 messages of history, 4 KiB messages, 32-byte names; per
    /// connection a burst of 10 messages refilled at 2 a second and 20
    /// other requests refilled at 2 a second; per address 40 messages at
    /// 8 a second, 40 requests at 4 a second and 5 wrong room passwords a
    /// minute (30 from all addresses); arrivals told 20 a minute per
    /// address and 100 then 5 a second in all; 32 rooms per connection and 1024 in all besides the lobby;
    /// no message of the day.
    fn default() -> ChatConfig {
        ChatConfig {
            default_room: "lobby".into(),
            history_len: 50,
            max_message_len: 4096,
            max_name_len: 32,
            rate_burst: 10,
            rate_per_second: 2.0,
            request_rate: Rate {
                burst: 20,
                per_second: 2.0,
            },
            address_request_rate: Rate {
                burst: 40,
                per_second: 4.0,
            },
            address_message_rate: Rate {
                burst: 40,
                per_second: 8.0,
            },
            password_guesses: Rate::per_minute(5),
            password_guesses_in_all: Rate::per_minute(30),
            told_arrivals: Rate::per_minute(20),
            told_arrivals_in_all: Rate {
                burst: 100,
                per_second: 5.0,
            },
            max_rooms_per_client: 32,
            max_rooms: 1024,
            max_rooms_per_address: 64,
            motd: None,
        }
    }
}

impl Outgoing {
    /// `frame` for `to`.
    pub fn new(to: ConnId, frame: Frame) -> Outgoing {
        Outgoing {
            to,
            frame: Arc::new(frame),
        }
    }

    /// A frame on the control stream for `to`.
    pub fn control(to: ConnId, message: impl Into<lanlink_proto::Message>) -> Outgoing {
        Outgoing::new(to, Frame::control(message))
    }

    /// One frame on the control stream for each of `to`, shared.
    pub fn to_each(
        to: impl IntoIterator<Item = ConnId>,
        message: impl Into<lanlink_proto::Message>,
        out: &mut Vec<Outgoing>,
    ) {
        Outgoing::shared(to, Frame::control(message), out);
    }

    /// `frame` for each of `to`, shared.
    pub fn shared(to: impl IntoIterator<Item = ConnId>, frame: Frame, out: &mut Vec<Outgoing>) {
        let frame = Arc::new(frame);
        out.extend(to.into_iter().map(|to| Outgoing {
            to,
            frame: frame.clone(),
        }));
    }
}
