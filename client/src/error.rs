//! [`ClientError`], the one error type of this crate.

use std::path::PathBuf;

use lanlink_proto::{ErrorCode, ProtoError};
use lanlink_services::text::display_safe;
use lanlink_services::ServiceError;
use lanlink_transport::{CloseReason, Fingerprint, TransportError};

/// What can go wrong talking to a lanlink server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, the handshake, or the connection itself failed.
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// A chat or file operation failed (refused by the server, a file
    /// that could not be written, a hash that did not match…).
    #[error(transparent)]
    Service(#[from] ServiceError),

    /// A frame could not be encoded (caller misuse: a name too long…).
    #[error(transparent)]
    Proto(#[from] ProtoError),

    /// Audio capture, coding or playback failed.
    #[cfg(feature = "audio")]
    #[error(transparent)]
    Audio(#[from] lanlink_audio::AudioError),

    /// Video capture, coding or display failed.
    #[cfg(feature = "video")]
    #[error(transparent)]
    Video(#[from] lanlink_video::VideoError),

    /// The server presented another certificate than the one pinned for
    /// it. Either it was reinstalled (its data folder lost) or someone is
    /// impersonating it. Nothing was sent to it.
    #[error(
        "the server at {addr} presented certificate {found}, but {expected} is pinned for it: \
         it may be an impostor; nothing was sent"
    )]
    CertificateChanged {
        /// The address as given.
        addr: String,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// What the server presented.
        found: Fingerprint,
        /// The pin store the expected fingerprint came from (`None`: it
        /// was given explicitly).
        pins: Option<PathBuf>,
    },

    /// The known-servers file could not be read or written.
    #[error("{context} {path}: {source}")]
    PinStore {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A line of the known-servers file is not `HOST:PORT SHA256:…`.
    #[error("{path}:{line}: not `HOST:PORT SHA256:…`: {text:?}")]
    BadPinLine {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// The line.
        text: String,
    },

    /// An address that cannot be pinned (empty, or with white space).
    #[error("cannot pin {addr:?}: not a HOST:PORT")]
    BadAddress {
        /// The address as given.
        addr: String,
    },

    /// The server refused a request (a stream name already taken, a rate
    /// limit…).
    #[error("refused by server: {}", display_safe(reason))]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The server's explanation.
        reason: String,
    },

    /// No stream with that name (or none at all) was published in time.
    #[error("{}", no_stream_text(*kind, wanted.as_deref(), available))]
    NoSuchStream {
        /// Audio or video.
        kind: crate::MediaKind,
        /// The name asked for (`None`: any).
        wanted: Option<String>,
        /// The streams of the right kind that were published meanwhile.
        available: Vec<String>,
    },

    /// A stream cannot be played here (another codec, channel count or
    /// frame length); it is skipped.
    #[error("cannot play {name:?}: {detail}")]
    Unplayable {
        /// The stream's name.
        name: String,
        /// What about it.
        detail: String,
    },

    /// Browsing for servers or announcing one failed (no multicast, no
    /// usable interface).
    #[cfg(feature = "discovery")]
    #[error("mDNS discovery: {0}")]
    Discovery(#[from] mdns_sd::Error),

    /// No server was named, and none could be chosen from those announced
    /// on the LAN: none was, or several were and nobody chose.
    #[cfg(feature = "discovery")]
    #[error("{}", no_server_text(found, unusable, *ignored))]
    NoServer {
        /// The usable servers found (none, or several).
        found: Vec<crate::discovery::FoundServer>,
        /// Servers found but not usable by this client (another protocol
        /// version, plain TCP when TLS was asked for, another certificate
        /// than the one asked for, or the other way round).
        unusable: Vec<crate::discovery::FoundServer>,
        /// Malformed announcements ignored.
        ignored: usize,
    },

    /// The connection is gone.
    #[error("disconnected: {0}")]
    Disconnected(CloseReason),

    /// The server did not confirm a message in time
    /// ([`Session::send_confirmed`](crate::Session::send_confirmed)); it
    /// may still have handled it.
    #[error("the server did not confirm the message within {} ms", waited.as_millis())]
    Unconfirmed {
        /// How long it was waited for.
        waited: std::time::Duration,
    },

    /// The session did not ask for the service this needs
    /// ([`SessionBuilder::capabilities`](crate::SessionBuilder::capabilities)).
    #[error("this session did not ask for {what}: connect with {needs}")]
    NotAsked {
        /// What it would have received.
        what: &'static str,
        /// The capabilities that bring it.
        needs: &'static str,
    },

    /// A worker thread (publisher, listener) could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),

    /// An error with what the user can do about it (which flag to use),
    /// added by the program that reports it.
    #[error("{}; {hint}", error.to_string().trim_end_matches('.'))]
    Hinted {
        /// What went wrong.
        #[source]
        error: Box<ClientError>,
        /// What to do about it.
        hint: String,
    },
}

impl ClientError {
    /// How long a refusal for sending too fast asks to wait before sending
    /// again (see [`retry_after`](crate::retry_after)); `None` for any
    /// other error.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ClientError::Refused { code, reason } => {
                crate::retry_after(&lanlink_proto::control::Error {
                    code: *code,
                    message: reason.clone(),
                })
            }
            ClientError::Hinted { error, .. } => error.retry_after(),
            _ => None,
        }
    }

    /// The protocol's code for what went wrong, when the server refused
    /// something or a transfer ended on a known condition: one check for
    /// "already exists" ([`ErrorCode::ALREADY_EXISTS`]), whether the
    /// download found a different local file or the server refused the
    /// upload. `None` for local and connection failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { code, .. }
            | ClientError::Transport(TransportError::Refused { code, .. }) => Some(*code),
            ClientError::Disconnected(
                CloseReason::PeerError { code, .. } | CloseReason::Refused { code, .. },
            ) => Some(*code),
            ClientError::Service(
                ServiceError::Io { .. }
                | ServiceError::Connection(_)
                | ServiceError::NoAnswer { .. },
            ) => None,
            ClientError::Service(e) => Some(e.code()),
            ClientError::Hinted { error, .. } => error.code(),
            _ => None,
        }
    }

    /// Why the connection ended, when that is what this error is: a
    /// connection found gone by a send ([`ClientError::Disconnected`]),
    /// by a transfer (inside [`ClientError::Service`]) or by the transport.
    /// One check for "the connection is lost", whichever call found it.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            ClientError::Disconnected(reason)
            | ClientError::Transport(TransportError::Closed(reason))
            | ClientError::Service(ServiceError::Connection(TransportError::Closed(reason))) => {
                Some(reason)
            }
            ClientError::Hinted { error, .. } => error.close_reason(),
            _ => None,
        }
    }

    /// This error with `hint` (what the user can do about it) after it.
    pub fn with_hint(self, hint: impl Into<String>) -> ClientError {
        ClientError::Hinted {
            error: Box::new(self),
            hint: hint.into(),
        }
    }
}

fn no_stream_text(kind: crate::MediaKind, wanted: Option<&str>, available: &[String]) -> String {
    match (wanted, available.is_empty()) {
        (Some(w), false) => {
            let names: Vec<_> = available.iter().map(|n| display_safe(n)).collect();
            format!(
                "no {kind} stream named {w:?}; streams: {}",
                names.join(", ")
            )
        }
        (Some(w), true) => format!("no {kind} stream named {w:?}, and none is being published"),
        (None, _) => format!("no {kind} stream is being published"),
    }
}

#[cfg(feature = "discovery")]
fn no_server_text(
    found: &[crate::discovery::FoundServer],
    unusable: &[crate::discovery::FoundServer],
    ignored: usize,
) -> String {
    let mut text = if !found.is_empty() {
        let list: Vec<String> = found.iter().map(ToString::to_string).collect();
        format!(
            "several lanlink servers announce themselves on the LAN: {}",
            list.join("; ")
        )
    } else if unusable.is_empty() {
        "no lanlink server announced itself on the LAN".into()
    } else {
        let list: Vec<String> = unusable
            .iter()
            .map(|s| {
                let what = if !s.is_compatible() {
                    format!("speaks protocol version {}", s.version)
                } else {
                    match s.fingerprint {
                        None => "is plain TCP".into(),
                        Some(fp) => format!("has certificate {}", fp.grouped()),
                    }
                };
                format!("{s} {what}")
            })
            .collect();
        format!(
            "no usable lanlink server on the LAN (not the plain TCP, TLS or \
             certificate asked for, or another protocol version): {}",
            list.join("; ")
        )
    };
    if ignored > 0 {
        text.push_str(&format!(
            " ({ignored} announcement(s) ignored: malformed, or past the first {})",
            crate::discovery::MAX_SERVERS
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_code_and_one_close_reason_whatever_the_shape() {
        let exists_here = ClientError::Service(ServiceError::AlreadyExists { name: "a".into() });
        let exists_there = ClientError::Service(ServiceError::Refused {
            name: "a".into(),
            code: ErrorCode::ALREADY_EXISTS,
            reason: "taken".into(),
        });
        for e in [&exists_here, &exists_there] {
            assert_eq!(e.code(), Some(ErrorCode::ALREADY_EXISTS), "{e:?}");
        }
        let hinted = exists_here.with_hint("use --force");
        assert_eq!(hinted.code(), Some(ErrorCode::ALREADY_EXISTS));
        assert_eq!(hinted.close_reason(), None);

        let gone = CloseReason::PeerClosed;
        let shapes = [
            ClientError::Disconnected(gone.clone()),
            ClientError::Transport(TransportError::Closed(gone.clone())),
            ClientError::Service(ServiceError::Connection(TransportError::Closed(
                gone.clone(),
            ))),
        ];
        for e in &shapes {
            assert_eq!(e.close_reason(), Some(&gone), "{e:?}");
            assert_eq!(e.code(), None, "{e:?}");
        }
    }
}
