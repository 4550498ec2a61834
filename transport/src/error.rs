//! The one error type of this crate.

use std::net::SocketAddr;

use lanlink_proto::{ErrorCode, ProtoError};

/// What can go wrong connecting, handshaking or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An operating-system call failed; `context` says which and on what.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (`connect to 10.0.0.2:7878`, `accept`, …).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The address could not be resolved, or no connection could be made
    /// to any of its addresses within the timeout.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// The address as given by the caller.
        addr: String,
        /// Why the last attempt failed.
        #[source]
        source: std::io::Error,
    },

    /// The server did not complete the handshake in time.
    #[error("{peer} did not answer the handshake within {secs:.1} s")]
    HandshakeTimeout {
        /// The server.
        peer: SocketAddr,
        /// The deadline that passed.
        secs: f64,
    },

    /// The server refused us (wrong token, name taken, full, other version…).
    #[error("refused by server: {}", crate::text::display_safe(reason))]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The server's explanation.
        reason: String,
    },

    /// The peer sent bytes that are not a valid lanlink frame.
    #[error("invalid data from {peer}: {source}")]
    Protocol {
        /// The peer.
        peer: SocketAddr,
        /// What was wrong with the bytes.
        #[source]
        source: ProtoError,
    },

    /// The peer sent a valid frame that is not allowed at this point.
    #[error("unexpected {kind:?} from {peer} during {during}")]
    Unexpected {
        /// The peer.
        peer: SocketAddr,
        /// The kind received.
        kind: lanlink_proto::Kind,
        /// The phase we were in.
        during: &'static str,
    },

    /// The peer closed the connection before the handshake finished.
    #[error("{peer} closed the connection during the handshake")]
    ClosedDuringHandshake {
        /// The peer.
        peer: SocketAddr,
    },

    /// TLS could not be set up, or its handshake failed.
    #[error("TLS: {context}: {source}")]
    Tls {
        /// What was being done (`handshake with 10.0.0.2:7878`, …).
        context: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },

    /// The name given to TLS is not a valid DNS name.
    #[error("TLS: {0}")]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),

    /// A certificate or private key could not be read from its PEM text.
    #[error("TLS: cannot read the {what}: {source}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// What the PEM reader said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },

    /// A self-signed certificate could not be created.
    #[error("TLS: cannot create a certificate: {0}")]
    Certificate(#[from] rcgen::Error),

    /// The peer closed the connection in the middle of the TLS handshake
    /// (often: it is not a lanlink server, or not one speaking TLS).
    #[error("{peer} closed the connection during the TLS handshake (is it a lanlink server?)")]
    TlsClosed {
        /// The peer.
        peer: SocketAddr,
    },

    /// The server finished the handshake without presenting a certificate.
    #[error("TLS: {peer} presented no certificate")]
    NoCertificate {
        /// The server.
        peer: SocketAddr,
    },

    /// Asked for TLS, the server answered in plain lanlink with something
    /// other than a refusal: someone may be downgrading the connection.
    #[error(
        "{peer} answered the TLS handshake with plain lanlink ({kind:?}), not a refusal: \
         refusing to continue without TLS (someone may be downgrading the connection)"
    )]
    Downgrade {
        /// The server.
        peer: SocketAddr,
        /// What it sent.
        kind: lanlink_proto::Kind,
    },

    /// The server presented another certificate than the one pinned for it.
    /// Either the server was reinstalled (its data folder lost) or someone
    /// is impersonating it; nothing was sent to it.
    #[error(
        "the server at {peer} presented certificate {found}, but {expected} is pinned for it: \
         it may be an impostor; nothing was sent"
    )]
    FingerprintMismatch {
        /// The server.
        peer: SocketAddr,
        /// The pinned fingerprint.
        expected: crate::Fingerprint,
        /// What the server presented.
        found: crate::Fingerprint,
    },

    /// Caller misuse: a frame could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] ProtoError),

    /// A connection was handed to an [`Adopter`](crate::Adopter)
    /// whose server is not running (not yet, or no longer).
    #[error("the server is not running: cannot take the connection")]
    NotServing,

    /// The connection is closed; nothing more can be sent on it.
    #[error("connection closed: {0}")]
    Closed(crate::CloseReason),
}

impl TransportError {
    /// An [`TransportError::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TransportError::Io {
            context: context.into(),
            source,
        }
    }
}
