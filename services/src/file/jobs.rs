//! The disk work of the file service, as jobs that run off the hub.
//!
//! The [`FileService`](super::FileService) decides *what* to read, hash,
//! write or delete and hands it out as a [`FileJob`]; whoever drives the
//! service runs the job ([`FileJob::run`], on a worker thread, see
//! [`crate::workers`]) and gives the [`FileDone`] back to
//! [`FileService::job_done`](super::FileService::job_done). A job owns what
//! it works on (the open file travels with it and comes back in the
//! result), so the service keeps no locks and the hub never waits for a
//! disk: a multi-GiB resume hash, a 100k-entry listing or a slow `fsync`
//! holds up one worker, never a chat line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lanlink_proto::file::{ContentHash, DirEntry, FileChunk};
use lanlink_transport::ConnId;

use super::incoming::{is_part_name, owned_part_path, IncomingFile};
use super::known::KnownHashes;
use super::outgoing::OutgoingFile;
use super::{listing, path};
use crate::ServiceError;

/// Bytes of a download's resume prefix (or of an upload's partial file, or
/// of a file already at an upload's target) one job hashes (a few tens of
/// milliseconds of a worker). A longer prefix comes back to the service
/// unfinished and goes on as a new job behind the owner's turn, so a peer
/// resuming at the end of a multi-GiB file holds a worker for a slice at
/// a time, and everyone else's jobs get the workers in between.
pub const PREFIX_SLICE: u64 = 32 * 1024 * 1024;

/// Identifies the transfer (or listing) a job is for.
pub(super) type Ticket = u64;

/// Each file or folder an upload creates costs this many bytes of the
/// upload quota, on top of its content: a full quota is full for empty
/// files too.
pub const ENTRY_COST: u64 = 4096;

/// Disk work the [`FileService`](super::FileService) wants done off the
/// thread that drives it: run it anywhere with [`FileJob::run`] and hand
/// the result to [`FileService::job_done`](super::FileService::job_done).
pub struct FileJob {
    pub(super) owner: ConnId,
    pub(super) ticket: Ticket,
    pub(super) work: Work,
}

/// What a [`FileJob`] came to.
pub struct FileDone {
    pub(super) owner: ConnId,
    pub(super) ticket: Ticket,
    pub(super) outcome: Outcome,
}

impl std::fmt::Debug for FileJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileJob")
            .field("owner", &self.owner)
            .field("work", &self.work.what())
            .finish()
    }
}

impl std::fmt::Debug for FileDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDone")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

pub(super) enum Work {
    List {
        share: PathBuf,
        path: String,
        recursive: bool,
        cancel: Arc<AtomicBool>,
    },
    OpenDownload {
        share: PathBuf,
        name: String,
        offset: u64,
        prefix_hash: Option<ContentHash>,
        known: KnownHashes,
        cancel: Arc<AtomicBool>,
    },
    /// Hash another slice of the prefix a download's receiver holds.
    CheckPrefix {
        file: Box<OutgoingFile>,
        cancel: Arc<AtomicBool>,
    },
    /// Read chunks while the window allows.
    Read {
        file: Box<OutgoingFile>,
        window: u64,
        chunk: usize,
    },
    OpenUpload(Box<UploadRequest>),
    /// Hash another slice for an upload being opened.
    ContinueUpload {
        opening: Box<Opening>,
        cancel: Arc<AtomicBool>,
    },
    Write {
        file: Box<IncomingFile>,
        chunks: Vec<FileChunk>,
        /// Free space the write must leave.
        min_free_space: u64,
    },
    Finish {
        file: Box<IncomingFile>,
        size: u64,
        hash: ContentHash,
    },
    Discard {
        file: Box<IncomingFile>,
    },
    /// Delete partial files not written for `older_than`, except `keep`.
    Sweep {
        inbox: PathBuf,
        older_than: Duration,
        keep: HashSet<PathBuf>,
    },
}

/// Everything opening an upload needs to know, decided on the hub.
pub(super) struct UploadRequest {
    pub(super) inbox: PathBuf,
    pub(super) rel: PathBuf,
    pub(super) name: String,
    pub(super) owner: String,
    pub(super) size: u64,
    pub(super) overwrite: bool,
    /// The offer's hash of the whole file, if it gave one: a target that
    /// exists and matches it is already there (nothing to send).
    pub(super) hash: Option<ContentHash>,
    pub(super) min_free_space: u64,
    pub(super) min_free_inodes: u64,
    /// Space promised to other uploads, not yet written.
    pub(super) reserved_elsewhere: u64,
    /// Bytes left of the owner's upload quota, if it has one.
    pub(super) quota_left: Option<u64>,
    /// Files and folders left of the owner's quota, if it has one.
    pub(super) entries_left: Option<u64>,
    pub(super) cancel: Arc<AtomicBool>,
}

/// An upload that is open and accepted.
pub(super) struct Opened {
    pub(super) file: Box<IncomingFile>,
    /// Files and folders it created (the partial file and its parents).
    pub(super) entries: u64,
}

pub(super) enum Outcome {
    Listed(Result<Vec<DirEntry>, ServiceError>),
    DownloadOpened(Result<Box<OutgoingFile>, ServiceError>),
    Read {
        file: Box<OutgoingFile>,
        chunks: Vec<FileChunk>,
        /// `Ok(true)` at the end of the file.
        result: Result<bool, ServiceError>,
    },
    UploadOpened(Result<Opened, ServiceError>),
    /// Not opened yet: hashing goes on in another job.
    UploadOpening(Box<Opening>),
    Written {
        file: Box<IncomingFile>,
        written: u64,
        result: Result<(), ServiceError>,
    },
    Finished(Result<PathBuf, ServiceError>),
    Discarded,
    Swept {
        removed: usize,
    },
}

impl Work {
    fn what(&self) -> &'static str {
        match self {
            Work::List { .. } => "list",
            Work::OpenDownload { .. } => "open download",
            Work::CheckPrefix { .. } => "check prefix",
            Work::Read { .. } => "read",
            Work::OpenUpload(_) => "open upload",
            Work::ContinueUpload { .. } => "open upload (hashing)",
            Work::Write { .. } => "write",
            Work::Finish { .. } => "finish",
            Work::Discard { .. } => "discard",
            Work::Sweep { .. } => "sweep",
        }
    }
}

impl FileJob {
    /// The connection the job is for (the server's own housekeeping is
    /// filed under `ConnId(0)`): workers take turns by owner.
    pub fn owner(&self) -> ConnId {
        self.owner
    }

    /// False for a job only its client could use (reading for it, opening
    /// a transfer): once that client has left, a waiting one can be
    /// dropped. Writes, publishing a finished upload and deletions still
    /// run, so what a client sent before leaving is kept (and resumable).
    pub fn outlives_its_client(&self) -> bool {
        matches!(
            self.work,
            Work::Write { .. } | Work::Finish { .. } | Work::Discard { .. } | Work::Sweep { .. }
        )
    }

    /// Does the work (reads, hashes, writes, deletes): call on a worker
    /// thread, or inline where blocking does not matter.
    pub fn run(self) -> FileDone {
        let outcome = match self.work {
            Work::List {
                share,
                path,
                recursive,
                cancel,
            } => Outcome::Listed(list(&share, &path, recursive, &cancel)),
            Work::OpenDownload {
                share,
                name,
                offset,
                prefix_hash,
                known,
                cancel,
            } => Outcome::DownloadOpened(
                open_download(&share, &name, offset, prefix_hash.as_ref(), &cancel).map(|mut f| {
                    f.use_known(&known);
                    Box::new(f)
                }),
            ),
            Work::CheckPrefix { mut file, cancel } => {
                Outcome::DownloadOpened(file.check_prefix(PREFIX_SLICE, &cancel).map(|()| file))
            }
            Work::Read {
                mut file,
                window,
                chunk,
            } => {
                let mut chunks = Vec::new();
                let result = loop {
                    if !file.can_send(window) {
                        break Ok(false);
                    }
                    match file.next_chunk(chunk) {
                        Ok(Some(c)) => chunks.push(c),
                        Ok(None) => break Ok(true),
                        Err(e) => break Err(e),
                    }
                };
                Outcome::Read {
                    file,
                    chunks,
                    result,
                }
            }
            Work::OpenUpload(request) => match start_upload(&request) {
                Ok(opening) => opening.go_on(PREFIX_SLICE, &request.cancel).outcome(),
                Err(e) => Outcome::UploadOpened(Err(e)),
            },
            Work::ContinueUpload { opening, cancel } => {
                opening.go_on(PREFIX_SLICE, &cancel).outcome()
            }
            Work::Write {
                mut file,
                chunks,
                min_free_space,
            } => {
                let before = file.received();
                let result = room_for(&file, &chunks, min_free_space).and_then(|()| {
                    chunks
                        .iter()
                        .try_for_each(|c| file.write_chunk(c.offset, &c.data))
                });
                Outcome::Written {
                    written: file.received() - before,
                    file,
                    result,
                }
            }
            Work::Finish { file, size, hash } => Outcome::Finished(file.finish(size, &hash)),
            Work::Discard { file } => {
                file.discard();
                Outcome::Discarded
            }
            Work::Sweep {
                inbox,
                older_than,
                keep,
            } => Outcome::Swept {
                removed: sweep(&inbox, older_than, &keep),
            },
        };
        FileDone {
            owner: self.owner,
            ticket: self.ticket,
            outcome,
        }
    }
}

impl FileDone {
    /// The connection the job was for.
    pub fn owner(&self) -> ConnId {
        self.owner
    }
}

fn list(
    share: &Path,
    name: &str,
    recursive: bool,
    cancel: &AtomicBool,
) -> Result<Vec<DirEntry>, ServiceError> {
    let rel = path::validate(name, true)?;
    let full = path::resolve_existing(share, &rel, name)?;
    listing::list(share, &full, recursive, cancel)
}

fn open_download(
    share: &Path,
    name: &str,
    offset: u64,
    prefix_hash: Option<&ContentHash>,
    cancel: &AtomicBool,
) -> Result<OutgoingFile, ServiceError> {
    let rel = path::validate_existing(name)?;
    let full = path::resolve_existing(share, &rel, name)?;
    if full.is_dir() {
        return Err(ServiceError::BadPath {
            name: name.to_owned(),
            reason: "it is a folder (list it and get its files)",
        });
    }
    if !full.is_file() {
        // A FIFO or a device: opening it could hold a worker for ever.
        return Err(ServiceError::BadPath {
            name: name.to_owned(),
            reason: "it is not a plain file",
        });
    }
    let mut file = OutgoingFile::begin(&full, offset, prefix_hash)?;
    file.check_prefix(PREFIX_SLICE, cancel)?;
    Ok(file)
}

/// The file already at an upload's target, being hashed to tell whether
/// it is the very file offered (then the upload is "already held").
pub(super) struct HoldCheck {
    name: String,
    target: PathBuf,
    file: std::fs::File,
    size: u64,
    want: ContentHash,
    hasher: blake3::Hasher,
    hashed: u64,
}

impl HoldCheck {
    /// `None` unless `target` is a regular file (not a link) of `size`
    /// bytes: then it cannot be the file offered.
    fn open(target: &Path, size: u64, want: ContentHash, name: &str) -> Option<HoldCheck> {
        let is_it = std::fs::symlink_metadata(target)
            .is_ok_and(|m| m.file_type().is_file() && m.len() == size);
        let file = std::fs::File::open(target).ok().filter(|_| is_it)?;
        Some(HoldCheck {
            name: name.to_owned(),
            target: target.to_owned(),
            file,
            size,
            want,
            hasher: blake3::Hasher::new(),
            hashed: 0,
        })
    }

    /// Hashes up to `budget` more bytes: `None` while there is more, else
    /// whether the file is the one offered.
    fn hash_some(&mut self, budget: u64, cancel: &AtomicBool) -> Option<bool> {
        let most = self.size.saturating_sub(self.hashed).min(budget);
        match super::hash_from(&mut self.file, &mut self.hasher, most, cancel, &self.target) {
            Err(_) => Some(false),
            Ok(hashed) => {
                self.hashed += hashed.read;
                (hashed.at_end || self.hashed >= self.size).then(|| self.ends_as_offered())
            }
        }
    }

    fn ends_as_offered(&self) -> bool {
        let same = std::fs::symlink_metadata(&self.target)
            .is_ok_and(|m| m.file_type().is_file() && m.len() == self.size);
        same && self.hashed == self.size && self.hasher.finalize().as_bytes() == &self.want
    }
}

/// An upload being opened whose hashing goes on over several jobs, a
/// slice ([`PREFIX_SLICE`]) each, so that one peer's multi-GiB file does
/// not hold a worker while others wait.
pub(super) enum Opening {
    /// Is the file already at the target the one offered?
    Holds(Box<HoldCheck>),
    /// Opened; hashing what an earlier attempt left.
    Held(Opened),
}

/// How far opening an upload got.
enum Step {
    Done(Result<Opened, ServiceError>),
    More(Opening),
}

impl Opening {
    fn go_on(self, budget: u64, cancel: &AtomicBool) -> Step {
        match self {
            Opening::Holds(mut check) => match check.hash_some(budget, cancel) {
                None => Step::More(Opening::Holds(check)),
                Some(true) => Step::Done(Err(ServiceError::AlreadyHeld {
                    name: check.name,
                    size: check.size,
                    hash: check.want,
                })),
                Some(false) => Step::Done(Err(ServiceError::AlreadyExists { name: check.name })),
            },
            Opening::Held(mut opened) => match opened.file.hash_held(budget, cancel) {
                Err(e) => Step::Done(Err(e)),
                Ok(()) if opened.file.hashing_held() => Step::More(Opening::Held(opened)),
                Ok(()) => Step::Done(Ok(opened)),
            },
        }
    }
}

impl Step {
    fn outcome(self) -> Outcome {
        match self {
            Step::Done(result) => Outcome::UploadOpened(result),
            Step::More(opening) => Outcome::UploadOpening(Box::new(opening)),
        }
    }
}

/// Refuses a write that would leave less than `min_free` bytes free where
/// `file` is: whatever was promised to uploads (a promise grows only with
/// what an upload has sent, see `FileService`), the free-space reserve is
/// never written into. The name in the error is the file's own; the
/// service shows the peer its name for it.
fn room_for(file: &IncomingFile, chunks: &[FileChunk], min_free: u64) -> Result<(), ServiceError> {
    let needed: u64 = chunks.iter().map(|c| c.data.len() as u64).sum();
    let dir = file.target().parent().unwrap_or(Path::new("."));
    let available = fs4::available_space(dir).unwrap_or(u64::MAX);
    if available < needed.saturating_add(min_free) {
        return Err(ServiceError::NoSpace {
            name: file
                .target()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            needed,
            available: available.saturating_sub(min_free),
        });
    }
    Ok(())
}

/// Checks quota and space, creates the missing folders and opens (or
/// resumes) the owner's partial file. Refused, it leaves nothing behind.
pub(super) fn open_upload(r: &UploadRequest) -> Result<Opened, ServiceError> {
    let mut step = start_upload(r).map_or_else(|e| Step::Done(Err(e)), Step::More);
    loop {
        match step {
            Step::Done(result) => return result,
            Step::More(opening) => step = opening.go_on(u64::MAX, &r.cancel),
        }
    }
}

/// [`open_upload`] up to the hashing, which goes on with
/// [`Opening::go_on`].
fn start_upload(r: &UploadRequest) -> Result<Opening, ServiceError> {
    // Symlinks and folders in the way first: a refusal must not tell
    // whether something exists through a symlink.
    let plan = path::plan_new(&r.inbox, &r.rel, &r.name)?;
    let part = owned_part_path(&plan.target, &r.owner);
    // A partial file from an earlier attempt holds part of what is needed.
    let held = std::fs::symlink_metadata(&part).ok().map(|m| m.len());
    let new_file = u64::from(held.is_none());
    // One longer than the offer is started again from nothing.
    let needed = r.size - held.filter(|h| *h <= r.size).unwrap_or(0);
    if plan.target.exists() && !r.overwrite {
        return r
            .hash
            .and_then(|h| HoldCheck::open(&plan.target, r.size, h, &r.name))
            .map(|check| Opening::Holds(Box::new(check)))
            .ok_or_else(|| ServiceError::AlreadyExists {
                name: r.name.clone(),
            });
    }
    // Files and folders count against the quota: check how many would be
    // created before creating any.
    let new_entries = new_file + plan.missing.len() as u64;
    if let Some(left) = r.entries_left {
        if new_entries > left {
            return Err(ServiceError::EntryQuotaExceeded {
                name: r.name.clone(),
                needed: new_entries,
                left,
            });
        }
    }
    if let Some(left) = r.quota_left {
        let cost = needed + ENTRY_COST * new_entries;
        if cost > left {
            return Err(ServiceError::QuotaExceeded {
                name: r.name.clone(),
                needed: cost,
                left,
            });
        }
    }
    let available = fs4::available_space(&r.inbox).unwrap_or(u64::MAX);
    let usable = available
        .saturating_sub(r.min_free_space)
        .saturating_sub(r.reserved_elsewhere);
    if needed > usable {
        return Err(ServiceError::NoSpace {
            name: r.name.clone(),
            needed,
            available: usable,
        });
    }
    if let Some(free) = free_inodes(&r.inbox) {
        if free < new_entries.saturating_add(r.min_free_inodes) {
            return Err(ServiceError::NoInodes {
                name: r.name.clone(),
            });
        }
    }
    let prepared = plan.create(usize::MAX)?;
    match IncomingFile::begin_part(&r.name, prepared.target.clone(), part, r.size, r.overwrite) {
        Ok(file) => Ok(Opening::Held(Opened {
            file: Box::new(file),
            entries: new_entries,
        })),
        Err(e) => {
            prepared.undo();
            Err(e)
        }
    }
}

/// Files and folders that may still be made on the filesystem of `dir`
/// (by an unprivileged user); `None` if it does not count them.
fn free_inodes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    (s.f_files > 0).then_some(s.f_favail)
}

/// Entries a sweep looks at, at most: a huge inbox is swept in parts, a
/// bit more each time.
const SWEEP_MAX_ENTRIES: usize = 1_000_000;

/// Deletes partial files under `inbox` last written more than
/// `older_than` ago, except those in `keep` (uploads in progress). Does not
/// follow symlinks. Returns how many were deleted.
fn sweep(inbox: &Path, older_than: Duration, keep: &HashSet<PathBuf>) -> usize {
    let mut removed = 0;
    let mut seen = 0;
    let mut dirs = vec![inbox.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for item in list.flatten() {
            seen += 1;
            if seen > SWEEP_MAX_ENTRIES {
                return removed;
            }
            let Ok(kind) = item.file_type() else { continue };
            let path = item.path();
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            let is_part = item.file_name().to_str().is_some_and(is_part_name);
            if !kind.is_file() || !is_part || keep.contains(&path) {
                continue;
            }
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= older_than);
            if old && std::fs::remove_file(&path).is_ok() {
                tracing::info!(
                    "removed the abandoned partial upload {}",
                    super::shown(&path)
                );
                removed += 1;
            }
        }
    }
    removed
}

/// Tells a running job its result is no longer wanted.
pub(super) fn cancel(flag: &AtomicBool) {
    flag.store(true, Ordering::Relaxed);
}
