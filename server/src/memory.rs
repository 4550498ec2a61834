//! Memory a burst left freed but mapped is given back to the system.
//!
//! After a flood of large frames (an attack, or many uploads at once) the
//! allocator keeps the freed memory for reuse: the sixth and seventh
//! outside attacks left the server at 660–980 MiB with no peer connected.
//! A thread of its own looks at the server's size every [`EVERY`] and,
//! above [`ABOVE`], asks glibc's allocator to return what is free
//! (`malloc_trim`), off the hub and the I/O threads (it holds the
//! allocator's locks while it walks the heap). Elsewhere it does nothing.

use std::time::Duration;

use lanlink_transport::Shutdown;

/// How often the size is looked at.
pub(crate) const EVERY: Duration = Duration::from_secs(15);
/// The resident size above which free memory is given back: far above
/// what a quiet server holds (tens of MiB), so it costs nothing in normal
/// operation.
pub(crate) const ABOVE: u64 = 256 * 1024 * 1024;

/// Starts the thread; it ends when `shutdown` fires.
pub(crate) fn give_back_after_bursts(shutdown: &Shutdown) -> std::io::Result<()> {
    let stop = shutdown.receiver().clone();
    std::thread::Builder::new()
        .name("lanlink-memory".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(EVERY) {
                if resident_bytes().is_some_and(|r| r > ABOVE) {
                    let before = resident_bytes();
                    trim();
                    tracing::info!(
                        before_mib = before.map(|b| b >> 20),
                        after_mib = resident_bytes().map(|b| b >> 20),
                        "gave freed memory back to the system"
                    );
                }
            }
        })
        .map(drop)
}

/// The process's resident size, from `/proc/self/statm` (in pages).
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size())
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(not(unix))]
fn page_size() -> u64 {
    4096
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only returns free pages of
    // the heap to the kernel; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_goes_back() {
        // 300 MiB in 4 KiB blocks (below the mmap threshold: from the
        // heap, which free() alone does not shrink while one block at its
        // end is live).
        let mut blocks: Vec<Vec<u8>> = (0..76_800).map(|_| vec![1u8; 4096]).collect();
        let keep = blocks.pop();
        let full = resident_bytes().expect("statm");
        drop(blocks);
        trim();
        let after = resident_bytes().expect("statm");
        drop(keep);
        assert!(
            after + 200 * 1024 * 1024 < full,
            "resident {} MiB with the blocks, {} MiB after trim",
            full >> 20,
            after >> 20
        );
    }
}
