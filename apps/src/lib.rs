//! The lanlink reference programs, `lanlink-server` and `lanlink`: argument
//! parsing, devices opened from flags, and printing, on top of
//! [`lanlink_client`] and the server crates. What is here is shared by the
//! two binaries.
//!
//! - [`audio`]: `lanlink talk/listen/devices` and the server's own audio.
//! - [`chat_client`]: the `lanlink chat` loop (terminal or script mode).
//! - [`connect`]: command-line flags to a session, trust messages.
//! - [`discover`]: the server found on the LAN when none is named, and
//!   `lanlink servers`.
//! - [`lanlink_client::names`]: default stream names (`ada-mic`, `ada-cam`, then `-2`…).
//! - [`files`]: `lanlink ls/get/put/send/receive`.
//! - [`progress`]: progress bars and summary lines for transfers.
//! - [`video`]: `lanlink cam/view/cameras` and the server's demo stream.
//! - [`init_logging`], [`on_signal`]: small helpers.

pub mod audio;
pub mod chat_client;
pub mod connect;
pub mod discover;
pub mod files;
pub mod progress;
pub mod video;

use lanlink_transport::Shutdown;

/// Logs to stderr, filtered by `RUST_LOG` (default: `info`); a log line
/// that cannot be written is dropped.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person watching a terminal: in a file,
        // a journal or a pipe they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr (a supervisor gone, a pipe shut) must not turn a
        // log line into a panic: its own complaint would be an eprintln!,
        // which panics on a broken pipe (and in the signal thread that
        // meant a server that ignored SIGTERM).
        .log_internal_errors(false)
        .init();
}

/// Fires `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM.
pub fn on_signal(shutdown: Shutdown) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!("signal {sig}: shutting down");
                shutdown.trigger();
            }
        })?;
    Ok(())
}
