//! [`ServiceError`]: everything a service refuses, with the context a person
//! needs to fix it and the [`ErrorCode`] a program needs to react to it.

use lanlink_proto::{control, ErrorCode, Frame, Kind};
use lanlink_transport::ConnId;

/// What kind of name a [`ServiceError::InvalidName`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A user's nickname.
    Nickname,
    /// A chat room's name.
    Room,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::Nickname => "nickname",
            NameKind::Room => "room name",
        })
    }
}

/// Why a service refused a request or a typed command.
///
/// Most variants are a client's fault and go back to that client as a
/// [`control::Error`] frame (see [`ServiceError::code`]). `AlreadyRegistered`
/// and `NotRegistered` are the server's misuse of a service; the `*Command`
/// and `*Argument` variants come from [`crate::chat::command::parse_line`]
/// and never leave the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A nickname or room name breaks the naming rules.
    #[error("invalid {kind} {name:?}: {reason}")]
    InvalidName {
        /// Nickname or room name.
        kind: NameKind,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Someone else already uses this nickname (compared case-insensitively).
    #[error("nickname {name:?} is already taken")]
    NameTaken {
        /// The nickname asked for.
        name: String,
    },
    /// No connected user has this nickname.
    #[error("no user named {name:?}")]
    NoSuchUser {
        /// The nickname asked for.
        name: String,
    },
    /// No room has this name.
    #[error("no room named {room:?}")]
    NoSuchRoom {
        /// The room asked for.
        room: String,
    },
    /// The request needs membership of a room the client is not in.
    #[error("you are not in room {room:?}")]
    NotInRoom {
        /// The room named in the request.
        room: String,
    },
    /// The room has a password and the join gave none or a different one.
    #[error("wrong or missing password for room {room:?}")]
    WrongPassword {
        /// The room asked for.
        room: String,
    },
    /// A message's text is longer than the configured limit.
    #[error("message of {len} bytes is longer than the limit of {max} bytes")]
    MessageTooLong {
        /// The text's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The client sends messages faster than its rate limit allows.
    #[error("sending too fast: wait {retry_after_ms} ms before the next message")]
    RateLimited {
        /// How long until the next message would be accepted.
        retry_after_ms: u64,
    },
    /// A message this service does not accept from a client (a server →
    /// client event, or another service's message).
    #[error("unexpected {kind:?} message: the chat service does not accept it from clients")]
    UnexpectedMessage {
        /// The kind received.
        kind: Kind,
    },
    /// Server misuse: `connect` for a connection that is already registered.
    #[error("connection {conn} is already registered")]
    AlreadyRegistered {
        /// The connection.
        conn: ConnId,
    },
    /// Server misuse: a message from a connection that was never registered
    /// (or was disconnected).
    #[error("connection {conn} has not joined the chat")]
    NotRegistered {
        /// The connection.
        conn: ConnId,
    },
    /// A typed line starts with a command nobody knows.
    #[error("unknown command /{command} (type /help for the list)")]
    UnknownCommand {
        /// The command word, without the slash.
        command: String,
    },
    /// A typed command lacks an argument it needs.
    #[error("/{command} needs {argument}: usage {usage}")]
    MissingArgument {
        /// The command word.
        command: &'static str,
        /// The argument missing.
        argument: &'static str,
        /// The command's usage line.
        usage: &'static str,
    },
    /// A typed command has more arguments than it takes.
    #[error("unexpected {extra:?} after /{command}: usage {usage}")]
    ExtraArgument {
        /// The command word.
        command: &'static str,
        /// The text that was not expected.
        extra: String,
        /// The command's usage line.
        usage: &'static str,
    },
}

impl ServiceError {
    /// The code sent next to the message in a [`control::Error`] or refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::InvalidName { .. } => ErrorCode::INVALID_NAME,
            ServiceError::NameTaken { .. } => ErrorCode::NAME_TAKEN,
            ServiceError::NoSuchUser { .. } | ServiceError::NoSuchRoom { .. } => {
                ErrorCode::NOT_FOUND
            }
            ServiceError::NotInRoom { .. } | ServiceError::WrongPassword { .. } => {
                ErrorCode::FORBIDDEN
            }
            ServiceError::MessageTooLong { .. } => ErrorCode::TOO_LARGE,
            ServiceError::RateLimited { .. } => ErrorCode::RATE_LIMITED,
            ServiceError::UnexpectedMessage { .. }
            | ServiceError::AlreadyRegistered { .. }
            | ServiceError::NotRegistered { .. } => ErrorCode::UNEXPECTED,
            ServiceError::UnknownCommand { .. }
            | ServiceError::MissingArgument { .. }
            | ServiceError::ExtraArgument { .. } => ErrorCode::OTHER,
        }
    }

    /// The [`control::Error`] frame that tells a client about this error.
    pub fn to_frame(&self) -> Frame {
        Frame::control(control::Error {
            code: self.code(),
            message: self.to_string(),
        })
    }
}
