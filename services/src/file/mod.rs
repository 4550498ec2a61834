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
mod listing;
pub mod outgoing;
pub mod path;
mod service;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use client::{FileClient, FileLink, Progress, Quiet, TransferSummary};
pub use service::FileService;

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
    /// [`FileService::set_peer`]); `None`: no quota.
    pub upload_quota: Option<u64>,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            share: None,
            inbox: None,
            max_upload_size: 64 * 1024 * 1024 * 1024,
            min_free_space: 64 * 1024 * 1024,
            allow_overwrite: false,
            window: outgoing::DEFAULT_WINDOW,
            chunk_size: outgoing::DEFAULT_CHUNK,
            // With the default 4 MiB window, three transfers keep at most
            // 12 MiB in flight: under the server's 16 MiB queue limit, so a
            // slow client is paced, not disconnected.
            max_transfers_per_client: 3,
            upload_quota: None,
        }
    }
}
