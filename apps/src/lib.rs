//! The lanlink reference programs, `lanlink-server` and `lanlink`: argument
//! parsing and wiring of the library crates, nothing more. What is here is
//! shared by the two binaries.
//!
//! - [`audio`]: `lanlink talk/listen/devices` and the server's own audio.
//! - [`chat_client`]: the `lanlink chat` loop (terminal or script mode).
//! - [`connect`]: TLS or plain, certificate pinning, where pins and the
//!   server's certificate live.
//! - [`files`]: `lanlink ls/get/put/send/receive`.
//! - [`progress`]: progress bars and summary lines for transfers.
//! - [`video`]: `lanlink cam/view/cameras` and the server's demo stream.
//! - [`host_with_port`], [`init_logging`], [`on_signal`]: small helpers.

pub mod audio;
pub mod chat_client;
pub mod connect;
pub mod files;
pub mod progress;
pub mod video;

use lanlink_services::server::DEFAULT_PORT;
use lanlink_transport::Shutdown;

/// Adds the default port to `HOST` when the user gave none
/// (`host`, `10.0.0.2`, `[::1]`, `::1`), leaves `HOST:PORT` alone.
pub fn host_with_port(host: &str) -> String {
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

/// Logs to stderr, filtered by `RUST_LOG` (default: `info`); a log line
/// that cannot be written is dropped.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(host_with_port("pi"), "pi:7878");
        assert_eq!(host_with_port("10.0.0.2:9000"), "10.0.0.2:9000");
        assert_eq!(host_with_port("::1"), "[::1]:7878");
        assert_eq!(host_with_port("[::1]"), "[::1]:7878");
        assert_eq!(host_with_port("[::1]:9"), "[::1]:9");
    }
}
