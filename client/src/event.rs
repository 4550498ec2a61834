//! [`Event`]: everything the server tells a session, in order.

use lanlink_proto::chat::{
    ChatMessage, History, NickChanged, Notice, Presence, PrivateMessage, Roster,
};
use lanlink_proto::control::{AdminReply, Error as ServerError};
use lanlink_proto::file::FileOffer;
use lanlink_proto::{Frame, StreamId};
use lanlink_transport::CloseReason;

use std::sync::Arc;
use std::time::Duration;

use crate::media::StreamInfo;
use crate::ClientError;

/// How long the server asked to wait before sending again, when `error`
/// refuses something as too fast (code `RATE_LIMITED`: a chat line over
/// the rate limit, too many joins or history requests…); `None` for any
/// other error.
///
/// ```
/// use lanlink_client::proto::{control::Error, ErrorCode};
/// use std::time::Duration;
///
/// let refused = Error {
///     code: ErrorCode::RATE_LIMITED,
///     message: "sending too fast: wait 480 ms before the next message".into(),
/// };
/// assert_eq!(lanlink_client::retry_after(&refused), Some(Duration::from_millis(480)));
/// ```
pub fn retry_after(error: &ServerError) -> Option<Duration> {
    if error.code != lanlink_proto::ErrorCode::RATE_LIMITED {
        return None;
    }
    lanlink_services::retry_after(&error.message)
}

/// One thing the server said, or the end of the session.
///
/// Read them from [`Events`](crate::Events); the last one is always
/// [`Event::Disconnected`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Someone said something in a room (`action`: `/me`).
    Message(ChatMessage),
    /// A private message to (or, echoed, from) this session.
    Private(PrivateMessage),
    /// Someone joined or left a room.
    Presence(Presence),
    /// Someone changed their nickname (maybe this session).
    NickChanged(NickChanged),
    /// Who is in a room (on joining, and in answer to
    /// [`Session::roster`](crate::Session::roster)).
    Roster(Roster),
    /// A room's recent messages (on joining, and in answer to
    /// [`Session::history`](crate::Session::history)).
    History(History),
    /// A line from the server (message of the day, kicks…).
    Notice(Notice),
    /// Another user offers a file: accept it with
    /// [`Session::accept_file`](crate::Session::accept_file) (on a thread
    /// of its own, see there) or decline it;
    /// [`Session::receive_files`](crate::Session::receive_files) answers a
    /// run of offers.
    FileOffered(IncomingOffer),
    /// An audio or video stream was announced (also those already live
    /// when the session started).
    StreamStarted(StreamInfo),
    /// A stream ended.
    StreamEnded(StreamInfo),
    /// The server refused something this session asked for, outside any
    /// transfer or stream (a chat line over the rate limit, a wrong room
    /// password…).
    ServerError(ServerError),
    /// The answer to an admin request.
    AdminReply(AdminReply),
    /// A frame this crate has no use for (newer servers may send more).
    Other(Frame),
    /// (From [`Reconnecting`](crate::Reconnecting) only.) The connection
    /// was lost for `reason`: attempt number `attempt` to connect again
    /// follows in `retry_in`. Said at once on a loss, then before each
    /// attempt.
    Reconnecting {
        /// Why the connection ended.
        reason: CloseReason,
        /// The attempt that follows (from 1).
        attempt: u32,
        /// How long until it.
        retry_in: Duration,
    },
    /// (From [`Reconnecting`](crate::Reconnecting) only.) An attempt to
    /// connect again failed; another follows unless connecting again
    /// cannot mend it (then [`Event::Disconnected`] follows).
    ConnectFailed(Arc<ClientError>),
    /// (From [`Reconnecting`](crate::Reconnecting) only.) Connected again,
    /// as `name`; the rooms are being joined again (their rosters and
    /// histories follow).
    Reconnected {
        /// The name the server gave this session.
        name: String,
    },
    /// The connection is gone, and why. Always the last event (from a
    /// [`Reconnecting`](crate::Reconnecting): once it gives up, with the
    /// reason the connection was lost, the [`Event::ConnectFailed`] that
    /// made it give up just before; none when every handle was dropped).
    Disconnected(CloseReason),
}

impl Event {
    /// About how many bytes it holds (its strings and data, plus a little
    /// for the rest): what a queue of events is bounded by besides their
    /// number (see [`lanlink_transport::QueuedBytes`]).
    pub(crate) fn weight(&self) -> usize {
        const FIXED: usize = 64;
        let chat = |m: &ChatMessage| m.room.len() + m.from.len() + m.text.len() + FIXED;
        FIXED
            + match self {
                Event::Message(m) => chat(m),
                Event::Private(m) => m.to.len() + m.from.len() + m.text.len(),
                Event::Presence(p) => p.room.len() + p.name.len() + p.reason.len(),
                Event::NickChanged(n) => n.old.len() + n.new.len(),
                Event::Roster(r) => r.memory_size(),
                Event::History(h) => h.memory_size(),
                Event::Notice(n) => n.text.len() + n.room.as_ref().map_or(0, String::len),
                Event::FileOffered(o) => o.name().len() + o.from().len(),
                Event::ServerError(e) => e.message.len(),
                Event::AdminReply(r) => r.text.len(),
                // Rare: measured by encoding it again.
                Event::Other(f) => crate::session::frame_size(f),
                Event::StreamStarted(_)
                | Event::StreamEnded(_)
                | Event::Reconnecting { .. }
                | Event::ConnectFailed(_)
                | Event::Reconnected { .. }
                | Event::Disconnected(_) => 0,
            }
    }
}

/// A file another user offers this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingOffer {
    pub(crate) stream: StreamId,
    /// The offer as the server relayed it; `from` is the sender's name as
    /// the server knows it.
    pub offer: FileOffer,
}

impl IncomingOffer {
    /// Who offers it (the name the server knows the sender by).
    pub fn from(&self) -> &str {
        self.offer.from.as_deref().unwrap_or("")
    }

    /// The file's name (may include `/`-separated folders).
    pub fn name(&self) -> &str {
        &self.offer.name
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.offer.size
    }
}
