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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// Someone else already uses this nickname, or one that looks like it
    /// (compared by [`crate::text::name_skeleton`]).
    #[error("nickname {name:?} is already taken")]
    NameTaken {
        /// The nickname asked for.
        name: String,
    },
    /// The nickname, or one that looks like it, is banned by the operator.
    #[error("the name {name:?} is banned")]
    NameBanned {
        /// The nickname asked for.
        name: String,
    },
    /// No connected user has this nickname.
    #[error("no user named {name:?}")]
    NoSuchUser {
        /// The nickname asked for.
        name: String,
    },
    /// Users of this name are on several other servers (scale-out).
    #[error("{name:?} is a user on several servers ({servers}); write name@server")]
    AmbiguousUser {
        /// The nickname asked for.
        name: String,
        /// The servers, comma-separated.
        servers: String,
    },
    /// A listing would not fit what a client may have waiting for it.
    #[error(
        "{} holds more than {max_entries} entries or {} MiB of names: list a folder inside it, or without -r",
        crate::text::display_safe(path),
        max_bytes >> 20
    )]
    ListingTooBig {
        /// The folder asked for.
        path: String,
        /// The most entries a listing holds.
        max_entries: usize,
        /// The most bytes of names a listing holds.
        max_bytes: usize,
    },
    /// A user on another server could not be reached (scale-out).
    #[error("{} cannot be reached: {reason}", crate::text::display_safe(name))]
    Unreachable {
        /// The user, `name@server`.
        name: String,
        /// Why, in this server's words (never another server's).
        reason: &'static str,
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
    /// A client, or all connections from its address together, made more
    /// requests of some kind than its rate limit allows.
    #[error("too many {what} from {from}: wait {retry_after_ms} ms before trying again")]
    TooManyRequests {
        /// What was limited (`nickname changes`, `wrong room passwords`, …).
        what: &'static str,
        /// Whose limit: `this connection` or `your address`.
        from: &'static str,
        /// How long until the next one would be accepted.
        retry_after_ms: u64,
    },
    /// Joining would put the client in more rooms than it may be in, or
    /// create more rooms than the server keeps.
    #[error("too many rooms: {whose} at most {max} at once (the default room aside)")]
    TooManyRooms {
        /// The limit.
        max: usize,
        /// Whose limit: `you may be in` or `this server keeps`.
        whose: &'static str,
    },
    /// A message this service does not accept from a client (a server →
    /// client event, or another service's message).
    #[error("unexpected {kind:?} message: the server does not accept it from clients here")]
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
    /// A file name from the network (or the command line) is unsafe.
    #[error("refusing file name {name:?}: {reason}")]
    BadPath {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No such file or folder in the share.
    #[error("no file or folder named {name:?} is shared here")]
    NoSuchFile {
        /// The name asked for.
        name: String,
    },
    /// The server has no share, or accepts no uploads.
    #[error("{what} is not enabled on this server")]
    NotEnabled {
        /// `file sharing` or `uploads`.
        what: &'static str,
    },
    /// Another connection is uploading the same file right now (a killed
    /// upload the server has not noticed yet, say).
    #[error("{name:?} is being uploaded by another connection right now; try again in a moment")]
    UploadInProgress {
        /// The file.
        name: String,
    },
    /// A file already exists under the target name (and it is not the same
    /// file). Which flag overwrites it, if any, is for the program that
    /// reports it to say: the client's and the server's differ.
    #[error("{name:?} already exists")]
    AlreadyExists {
        /// The target name.
        name: String,
    },
    /// The upload's target exists and is the very file offered (same size
    /// and BLAKE3 hash): nothing needs sending; the server answers with a
    /// `FileComplete`, not a refusal.
    #[error("{name:?} is already there, unchanged")]
    AlreadyHeld {
        /// The target name.
        name: String,
        /// Its size.
        size: u64,
        /// Its hash (the one offered).
        hash: lanlink_proto::file::ContentHash,
    },
    /// Nobody accepted (or declined) a file offered to another user in
    /// time; the offer was withdrawn.
    #[error("{to} did not answer the offer of {name:?} within {secs} s; it was withdrawn")]
    NotAnswered {
        /// The file.
        name: String,
        /// Whom it was offered to.
        to: String,
        /// How long the sender waited.
        secs: u64,
    },
    /// A file is larger than allowed.
    #[error("{name:?} is {size} bytes, more than the limit of {max} bytes")]
    FileTooLarge {
        /// The file.
        name: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Not enough free disk space for the file.
    #[error("not enough disk space for {name:?}: {needed} bytes needed, {available} available")]
    NoSpace {
        /// The file.
        name: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The inbox's filesystem is short of inodes (room for new files and
    /// folders), whatever the free bytes.
    #[error("no room for {name:?}: the server's disk is low on file entries (inodes)")]
    NoInodes {
        /// The file.
        name: String,
    },
    /// An upload would exceed the client's upload quota.
    #[error("{name:?}: upload quota exceeded ({needed} bytes needed, {left} left)")]
    QuotaExceeded {
        /// The file.
        name: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes of the quota left.
        left: u64,
    },
    /// An upload would create more files and folders than the client's
    /// quota has left.
    #[error("{name:?}: upload quota exceeded ({needed} files and folders needed, {left} left)")]
    EntryQuotaExceeded {
        /// The file.
        name: String,
        /// Files and folders the upload would create.
        needed: u64,
        /// Files and folders of the quota left.
        left: u64,
    },
    /// The received content does not match the sender's hash or size:
    /// nothing was published.
    #[error("{name:?} arrived corrupted ({detail}); nothing was saved")]
    HashMismatch {
        /// The file.
        name: String,
        /// What differed.
        detail: String,
    },
    /// A chunk does not continue the file where the previous one ended.
    #[error("chunk for {name:?} at offset {got}, expected {expected}")]
    OutOfOrder {
        /// The file.
        name: String,
        /// The offset received.
        got: u64,
        /// The offset expected.
        expected: u64,
    },
    /// A file message names a transfer that does not exist.
    #[error("no transfer on stream {stream}")]
    UnknownTransfer {
        /// The stream id.
        stream: u32,
    },
    /// The other side cancelled or refused the transfer.
    #[error("transfer of {name:?} refused: {}", crate::text::display_safe(reason))]
    Refused {
        /// The file.
        name: String,
        /// The peer's reason.
        reason: String,
        /// The peer's code.
        code: ErrorCode,
    },
    /// Reading or writing a local file failed.
    #[error("cannot {op} {}: {source}", crate::text::display_safe(path))]
    Io {
        /// What was being done (`open`, `write`, `rename`, …).
        op: &'static str,
        /// The local path.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A client already runs as many transfers as it may.
    #[error("too many transfers at once (at most {max} per client); wait for one to finish")]
    TooManyTransfers {
        /// The limit.
        max: usize,
    },
    /// The server is still busy with the client's earlier requests, or
    /// the client sends faster than the server can take it.
    #[error("server busy: {reason}")]
    Busy {
        /// What the client should know.
        reason: &'static str,
    },
    /// A transfer was started on a stream id that is not the client's to
    /// choose (0 or even) or is already in use.
    #[error("stream {stream} cannot start a transfer: {reason}")]
    BadStream {
        /// The stream id.
        stream: u32,
        /// Why.
        reason: &'static str,
    },
    /// The connection to the peer failed or closed mid-transfer.
    #[error(transparent)]
    Connection(#[from] lanlink_transport::TransportError),
    /// The peer did not answer a request in time.
    #[error("no answer within {secs} s")]
    NoAnswer {
        /// How long we waited.
        secs: u64,
    },
}

/// The wait a rate-limit refusal names in its text
/// ([`ServiceError::RateLimited`], [`ServiceError::TooManyRequests`]:
/// "… wait 480 ms before …"), for a client that got it as an `Error` with
/// code `RATE_LIMITED`. `None` for any other text.
pub fn retry_after(message: &str) -> Option<std::time::Duration> {
    let (_, rest) = message.split_once(": wait ")?;
    let (ms, rest) = rest.split_once(" ms before ")?;
    if rest.is_empty() || ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ms.parse().ok().map(std::time::Duration::from_millis)
}

/// A wait in whole milliseconds, for the `retry_after_ms` of rate limits.
pub(crate) fn millis(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

impl ServiceError {
    /// An [`ServiceError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: &std::path::Path, e: std::io::Error) -> ServiceError {
        ServiceError::Io {
            op,
            path: path.display().to_string(),
            source: e,
        }
    }

    /// The code sent next to the message in a [`control::Error`] or refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::InvalidName { .. } => ErrorCode::INVALID_NAME,
            ServiceError::NameTaken { .. } => ErrorCode::NAME_TAKEN,
            ServiceError::NameBanned { .. } => ErrorCode::BANNED,
            ServiceError::NoSuchUser { .. }
            | ServiceError::NoSuchRoom { .. }
            | ServiceError::AmbiguousUser { .. } => ErrorCode::NOT_FOUND,
            ServiceError::Unreachable { .. } => ErrorCode::TIMEOUT,
            ServiceError::ListingTooBig { .. } => ErrorCode::TOO_LARGE,
            ServiceError::NotInRoom { .. } | ServiceError::WrongPassword { .. } => {
                ErrorCode::FORBIDDEN
            }
            ServiceError::MessageTooLong { .. } => ErrorCode::TOO_LARGE,
            ServiceError::RateLimited { .. } | ServiceError::TooManyRequests { .. } => {
                ErrorCode::RATE_LIMITED
            }
            ServiceError::TooManyRooms { .. } => ErrorCode::SERVER_FULL,
            ServiceError::UnexpectedMessage { .. }
            | ServiceError::AlreadyRegistered { .. }
            | ServiceError::NotRegistered { .. } => ErrorCode::UNEXPECTED,
            ServiceError::UnknownCommand { .. }
            | ServiceError::MissingArgument { .. }
            | ServiceError::ExtraArgument { .. } => ErrorCode::OTHER,
            ServiceError::BadPath { .. } => ErrorCode::INVALID_NAME,
            ServiceError::NoSuchFile { .. } | ServiceError::UnknownTransfer { .. } => {
                ErrorCode::NOT_FOUND
            }
            ServiceError::NotEnabled { .. } => ErrorCode::FORBIDDEN,
            ServiceError::AlreadyExists { .. } | ServiceError::AlreadyHeld { .. } => {
                ErrorCode::ALREADY_EXISTS
            }
            ServiceError::UploadInProgress { .. } => ErrorCode::RATE_LIMITED,
            ServiceError::FileTooLarge { .. } => ErrorCode::TOO_LARGE,
            ServiceError::NoSpace { .. }
            | ServiceError::NoInodes { .. }
            | ServiceError::QuotaExceeded { .. }
            | ServiceError::EntryQuotaExceeded { .. } => ErrorCode::NO_SPACE,
            ServiceError::HashMismatch { .. } => ErrorCode::HASH_MISMATCH,
            ServiceError::OutOfOrder { .. } => ErrorCode::MALFORMED,
            ServiceError::Refused { code, .. } => *code,
            ServiceError::Io { .. } | ServiceError::Connection(_) => ErrorCode::OTHER,
            ServiceError::NoAnswer { .. } => ErrorCode::OTHER,
            ServiceError::NotAnswered { .. } => ErrorCode::TIMEOUT,
            ServiceError::TooManyTransfers { .. } => ErrorCode::RATE_LIMITED,
            ServiceError::Busy { .. } => ErrorCode::BUSY,
            ServiceError::BadStream { .. } => ErrorCode::MALFORMED,
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

#[cfg(test)]
mod tests {
    use super::{retry_after, ServiceError};
    use std::time::Duration;

    #[test]
    fn the_wait_a_rate_limit_names_reads_back_from_its_text() {
        let limited = ServiceError::RateLimited {
            retry_after_ms: 481,
        };
        assert_eq!(
            retry_after(&limited.to_string()),
            Some(Duration::from_millis(481))
        );
        let requests = ServiceError::TooManyRequests {
            what: "history requests",
            from: "your address",
            retry_after_ms: 0,
        };
        assert_eq!(retry_after(&requests.to_string()), Some(Duration::ZERO));
        for other in [
            "slow down",
            "sending too fast: wait  ms before the next message",
            "sending too fast: wait -1 ms before the next message",
            "sending too fast: wait 99999999999999999999999 ms before the next message",
            "wait 5 ms before",
        ] {
            assert_eq!(retry_after(other), None, "{other}");
        }
    }
}
