//! [`ServerError`], the one error type of this crate.

use lanlink_transport::TransportError;

/// What can stop a server from serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The transport failed: the listener, TLS set-up.
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// An operating-system call failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (`spawn hub thread`, `http listener address`…).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// A [`ServerError::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ServerError {
        ServerError::Io {
            context: context.into(),
            source,
        }
    }
}
