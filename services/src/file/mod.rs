//! File transfer: a server-side [`FileService`] (share, inbox, relay) and a
//! client-side [`FileClient`] (`ls`, `get`, `put`, `send`, `receive`).
//!
//! Every transfer streams in chunks with a bounded window of unacknowledged
//! bytes, is hashed with BLAKE3 while it is sent and verified on receipt,
//! lands in a partial file that is renamed only once verified, and resumes
//! from the verified prefix when run again. Every name from the network goes
//! through [`path::validate`] and the symlink checks in [`path`].

pub mod client;
pub mod incoming;
mod jobs;
pub mod known;
pub mod ledger;
pub mod listing;
pub mod outgoing;
pub mod path;
mod service;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::{FileClient, FileLink, Progress, Quiet, TransferSummary};
pub use jobs::{FileDone, FileJob, ENTRY_COST, PREFIX_SLICE};
pub use known::KnownHashes;
pub use ledger::{DirectUpload, UploadLedger};
pub use service::{
    is_other_server, FileService, TransferInfo, FIRST_OTHER_SERVER, TRANSFERS_PER_OTHER_SERVER,
};

use crate::ServiceError;
use lanlink_transport::Rate;

/// The receiver acknowledges after every this many bytes.
pub const ACK_EVERY: u64 = 1024 * 1024;

/// Settings of a server's [`FileService`].
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// The folder clients may list and download from (read-only).
    pub share: Option<PathBuf>,
    /// The folder uploads land in.
    pub inbox: Option<PathBuf>,
    /// The largest upload accepted, in bytes.
    pub max_upload_size: u64,
    /// Disk space an upload must leave free, in bytes.
    pub min_free_space: u64,
    /// Inodes (files and folders) an upload must leave free on the inbox's
    /// filesystem: tiny files can exhaust them long before the bytes (a
    /// filesystem that counts none, as btrfs, is not checked).
    pub min_free_inodes: u64,
    /// Let uploads replace existing files in the inbox.
    pub allow_overwrite: bool,
    /// Unacknowledged bytes a download may have in flight.
    pub window: u64,
    /// Bytes per chunk.
    pub chunk_size: usize,
    /// Concurrent transfers per client.
    pub max_transfers_per_client: usize,
    /// Bytes one client may upload in all while the server runs (counted
    /// per client address when the server gives one, see
    /// [`FileService::set_peer`]); each file and folder an upload creates
    /// costs [`ENTRY_COST`] bytes of it too. `None`: no quota.
    pub upload_quota: Option<u64>,
    /// Files and folders one client (address) may create in the inbox
    /// while the server runs (partial files included); `None`: no limit.
    pub upload_entry_quota: Option<u64>,
    /// Folders deep an upload's name may go.
    pub max_upload_depth: usize,
    /// Partial files of uploads that nobody has written to for this long
    /// are deleted (checked periodically); `None`: kept until resumed.
    pub partial_max_age: Option<Duration>,
    /// File jobs (disk work on the server's worker threads) one client may
    /// have waiting or running; a request beyond it is refused as busy.
    /// Each transfer has at most one job at a time, so this only bites a
    /// client that piles up listings or restarts transfers faster than the
    /// disk keeps up.
    pub max_jobs_per_client: usize,
    /// Offers to another user that end unanswered (withdrawn, declined, or
    /// the sender gone before an answer), are refused because the user's
    /// places are full, or are accepted and ended by their sender before
    /// they moved (or ended as stalled), one sender address may make: a
    /// burst, then this pace. An offer that is accepted and moves costs
    /// nothing, so sending a folder to someone who takes it is never
    /// slowed; offering and withdrawing over and over on someone's screen,
    /// or to keep a full receiver's place, is.
    pub unanswered_offer_rate: Rate,
    /// What uploads have used of the quotas and been promised of the free
    /// space. Clones of this config share it: give the same config (or a
    /// clone) to every way into the inbox (the browser server's uploads)
    /// and they all count against the same limits.
    pub ledger: UploadLedger,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            share: None,
            inbox: None,
            max_upload_size: 64 * 1024 * 1024 * 1024,
            min_free_space: 64 * 1024 * 1024,
            min_free_inodes: 4096,
            allow_overwrite: false,
            window: outgoing::DEFAULT_WINDOW,
            chunk_size: outgoing::DEFAULT_CHUNK,
            // With the default 4 MiB window, three transfers keep at most
            // 12 MiB in flight: under the server's 16 MiB queue limit, so a
            // slow client is paced, not disconnected.
            max_transfers_per_client: 3,
            upload_quota: None,
            upload_entry_quota: Some(100_000),
            max_upload_depth: 32,
            partial_max_age: Some(Duration::from_secs(24 * 3600)),
            max_jobs_per_client: 5,
            // Five at once, then one every 30 s.
            unanswered_offer_rate: Rate {
                burst: 5,
                per_second: 1.0 / 30.0,
            },
            ledger: UploadLedger::default(),
        }
    }
}

/// A local path for the log: its peer-chosen part (an upload's name) may
/// hold bidi controls or anything else [`crate::text::display_safe`]
/// escapes, so one path is always one harmless line.
fn shown(path: &Path) -> String {
    crate::text::display_safe(&path.to_string_lossy()).into_owned()
}

/// A zeroed buffer of `len` bytes that starts on a page boundary, to read
/// files into. The kernel copies from the page cache (tmpfs, or any file
/// already read once) about four times faster into such a buffer than
/// into one 8 or 16 bytes past a boundary, which is where the system
/// allocator starts a large allocation: 9 GB/s against 2.4 GB/s on the
/// machine of docs/PERFORMANCE.md, and the copy was a third of a server's
/// CPU serving a download from tmpfs. The buffer keeps its start when a
/// frozen [`Bytes`](bytes::Bytes) of it is taken back with
/// `try_into_mut`, as [`outgoing::OutgoingFile`] does.
///
/// ```
/// let buf = lanlink_services::file::page_aligned(256 * 1024);
/// assert_eq!((buf.len(), buf.as_ptr() as usize % 4096), (256 * 1024, 0));
/// ```
pub fn page_aligned(len: usize) -> bytes::BytesMut {
    const PAGE: usize = 4096;
    let mut buf = bytes::BytesMut::zeroed(len.saturating_add(PAGE));
    let skip = buf.as_ptr().align_offset(PAGE).min(PAGE);
    bytes::Buf::advance(&mut buf, skip);
    buf.truncate(len);
    buf
}

/// What [`hash_from`] did.
struct Hashed {
    /// Bytes read and hashed.
    read: u64,
    /// The file ended before `most` bytes.
    at_end: bool,
}

/// Reads up to `most` bytes of `file`, from where it stands, into
/// `hasher`: one slice of a long hash (see
/// [`PREFIX_SLICE`](jobs::PREFIX_SLICE)). Stops with an error once
/// `cancel` is set; `path` names the file in errors.
fn hash_from(
    file: &mut std::fs::File,
    hasher: &mut blake3::Hasher,
    most: u64,
    cancel: &std::sync::atomic::AtomicBool,
    path: &Path,
) -> Result<Hashed, ServiceError> {
    const READ: u64 = 256 * 1024;
    let mut buf = page_aligned(usize::try_from(most.min(READ)).unwrap_or(0));
    let mut read = 0;
    while read < most {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(cancelled(path));
        }
        let want = usize::try_from((most - read).min(READ)).unwrap_or(buf.len());
        let n = std::io::Read::read(file, buf.get_mut(..want).unwrap_or_default())
            .map_err(|e| ServiceError::io("read", path, e))?;
        if n == 0 {
            return Ok(Hashed { read, at_end: true });
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        read += n as u64;
    }
    Ok(Hashed {
        read,
        at_end: false,
    })
}

/// The error of a job stopped because its result was no longer wanted.
fn cancelled(path: &Path) -> ServiceError {
    ServiceError::Io {
        op: "finish with",
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"),
    }
}
