//! Starting the transport's threads.

use std::thread::JoinHandle;

/// Starts a named thread with a small stack (connection threads need
/// little); if the process is out of threads, logs it and returns a
/// thread that does nothing.
pub fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap_or_else(|e| {
            // Thread creation only fails when the process is out of resources;
            // nothing sensible can continue without the thread.
            tracing::error!("cannot spawn thread {name}: {e}");
            std::thread::spawn(|| {})
        })
}
