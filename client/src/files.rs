//! File transfer on a [`Session`]: list the share, download, upload, offer
//! files to a user and answer their offers.
//!
//! Each operation blocks the calling thread until it is done and runs on
//! streams of its own, so several can run at once from different threads
//! (the server allows a few per client) while chat and media go on.
//! Progress is reported to a [`Progress`]: a progress bar, a log line,
//! [`ProgressFn`] around a closure, or [`Quiet`].
//!
//! Everything is verified with BLAKE3; a partial file is kept under a
//! hidden name and renamed only once verified, and running the same
//! transfer again resumes it.

use std::path::Path;
use std::time::Duration;

use lanlink_proto::file::DirEntry;
use lanlink_services::file::FileClient;
pub use lanlink_services::file::{Progress, TransferSummary};

use crate::event::IncomingOffer;
use crate::session::RouteLink;
use crate::{ClientError, Session};

/// Progress that reports nothing.
pub use lanlink_services::file::Quiet;

/// How a transfer runs.
#[derive(Debug, Clone, Default)]
pub struct TransferOptions {
    /// Overwrite a file that exists already and differs (downloads and
    /// offers; a download skips one that is the same as the server's).
    pub force: bool,
    /// Cap the rate, in bytes per second.
    pub rate_limit: Option<u64>,
    /// The name to give an upload on the server (one file only), or to
    /// save an accepted offer under (`name (1).txt` beside a `name.txt`).
    pub as_name: Option<String>,
    /// How long to wait for the other user to accept an offer (default:
    /// two minutes); then it is withdrawn.
    pub accept_timeout: Option<Duration>,
}

/// One step of a transfer, as [`ProgressFn`] reports it.
#[derive(Debug, Clone, Copy)]
pub enum TransferProgress<'a> {
    /// A file starts: its name, size, and where it resumes from.
    Started {
        /// The file's name.
        name: &'a str,
        /// Its size in bytes.
        total: u64,
        /// Bytes already there from an earlier attempt.
        resumed_from: u64,
    },
    /// `done` of `total` bytes are through.
    Advanced {
        /// Bytes through so far.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// The file arrived, verified.
    Finished(&'a TransferSummary),
}

/// A [`Progress`] that calls a closure.
///
/// ```no_run
/// # use lanlink_client::{ProgressFn, TransferProgress};
/// let mut progress = ProgressFn::new(|p| {
///     if let TransferProgress::Advanced { done, total } = p {
///         eprint!("\r{done}/{total}");
///     }
/// });
/// ```
#[derive(Debug)]
pub struct ProgressFn<F> {
    f: F,
    total: u64,
}

impl<F: FnMut(TransferProgress<'_>)> ProgressFn<F> {
    /// Reports to `f`.
    pub fn new(f: F) -> ProgressFn<F> {
        ProgressFn { f, total: 0 }
    }
}

impl<F: FnMut(TransferProgress<'_>)> Progress for ProgressFn<F> {
    fn start(&mut self, name: &str, total: u64, resumed_from: u64) {
        self.total = total;
        (self.f)(TransferProgress::Started {
            name,
            total,
            resumed_from,
        });
    }
    fn advance(&mut self, done: u64) {
        let total = self.total;
        (self.f)(TransferProgress::Advanced { done, total });
    }
    fn finish(&mut self, summary: &TransferSummary) {
        (self.f)(TransferProgress::Finished(summary));
    }
}

/// A file client on `link`, set up as `options` say.
fn file_client<'a>(link: &'a RouteLink, options: &TransferOptions) -> FileClient<'a, RouteLink> {
    let mut files = FileClient::new(link);
    files.rate_limit = options.rate_limit;
    if let Some(t) = options.accept_timeout {
        files.accept_timeout = t;
    }
    files
}

impl Session {
    /// Lists `path` of the server's share (`""` for its root), everything
    /// below it if `recursive`.
    pub fn list(&self, path: &str, recursive: bool) -> Result<Vec<DirEntry>, ClientError> {
        let link = RouteLink::reliable(self);
        Ok(FileClient::new(&link).list(path, recursive)?)
    }

    /// Downloads `name` (a file or a whole folder) from the share into the
    /// folder `dest`, resuming an earlier interrupted download: partial
    /// files continue, complete ones the server confirms are the same are
    /// skipped ([`TransferSummary::unchanged`]).
    pub fn get(
        &self,
        name: &str,
        dest: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ClientError> {
        let link = RouteLink::reliable(self);
        Ok(file_client(&link, options).get(name, dest, options.force, progress)?)
    }

    /// Uploads `local` (a file or a folder) into the server's inbox,
    /// resuming an earlier interrupted upload (see
    /// [`FileClient::put`](lanlink_services::file::FileClient::put)).
    pub fn put(
        &self,
        local: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ClientError> {
        let link = RouteLink::reliable(self);
        Ok(file_client(&link, options).put(local, options.as_name.as_deref(), progress)?)
    }

    /// Offers `local` (a file or a folder) to the user `to`; blocks until
    /// they accept and it arrived (verified), or they decline. The server
    /// relays the bytes without storing them.
    pub fn send_file(
        &self,
        to: &str,
        local: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ClientError> {
        let link = RouteLink::reliable(self);
        Ok(file_client(&link, options).send_to(to, local, progress)?)
    }

    /// Accepts an offer ([`Event::FileOffered`](crate::Event::FileOffered)):
    /// receives the file into the folder `dest` (as `options.as_name` if
    /// given), resuming a partial one of the same name, and verifies it.
    /// Refuses to overwrite an existing file unless `options.force`.
    pub fn accept_file(
        &self,
        offer: &IncomingOffer,
        dest: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ClientError> {
        let link = RouteLink::reliable(self);
        link.adopt(offer.stream);
        let local = options.as_name.as_deref().unwrap_or(&offer.offer.name);
        Ok(file_client(&link, options).accept_as(
            offer.stream,
            &offer.offer,
            dest,
            local,
            options.force,
            progress,
        )?)
    }

    /// Declines an offer; the sender is told `reason`.
    pub fn decline_file(&self, offer: &IncomingOffer, reason: &str) -> Result<(), ClientError> {
        let link = RouteLink::reliable(self);
        Ok(FileClient::new(&link).decline(offer.stream, reason)?)
    }
}
