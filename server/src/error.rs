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

    /// A folder the configuration names (`file.share`, `file.inbox`) is
    /// missing or is not a folder.
    #[error("{what} {}: {reason}", path.display())]
    NotAFolder {
        /// Which folder: `share` or `inbox`.
        what: &'static str,
        /// The path as configured.
        path: std::path::PathBuf,
        /// `no such folder (create it first)` or `not a folder`.
        reason: &'static str,
    },

    /// A JetStream stream lanlink keeps its chat history or presence in
    /// exists with a setting that lets one NATS user rewrite or wipe what
    /// others stored there (made by hand, by another program, or by a
    /// hostile server before the honest ones came): it is not used.
    #[error(
        "NATS stream {stream} exists with {setting} unlike lanlink's own; not using it \
         (remove it, e.g. `nats stream rm {stream}`, and lanlink makes it again)"
    )]
    UnsafeStream {
        /// The stream's name.
        stream: String,
        /// The setting found unsafe.
        setting: &'static str,
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
