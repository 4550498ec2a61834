//! What uploads into the inbox have used and been promised, shared by every
//! way into it: the protocol's uploads (run by [`FileService`] on the hub)
//! and direct ones ([`DirectUpload`], a browser's `POST /upload/NAME` on an
//! HTTP thread). Both count against the same per-address quota and the
//! same free-space promises, so a browser is no way around `lanlink put`'s
//! limits.
//!
//! The state is a small map behind a mutex, held only to read or change
//! numbers, never across disk work. A [`FileConfig`] carries an
//! [`UploadLedger`]; clones of the config share it, which is how the server
//! hands the browser server the very ledger its file service uses.
//!
//! [`FileService`]: super::FileService

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use super::incoming::{owned_part_path, IncomingFile};
use super::jobs::{open_upload, UploadRequest};
use super::service::hold;
use super::{path, FileConfig, ENTRY_COST};
use crate::ServiceError;

/// What one quota key has used.
#[derive(Default, Clone, Copy)]
pub(super) struct Usage {
    /// Upload bytes received, plus [`ENTRY_COST`] per entry created.
    pub(super) bytes: u64,
    /// Files and folders created.
    pub(super) entries: u64,
    /// Entries held by uploads still opening (their maximum).
    pub(super) entries_held: u64,
}

/// The numbers behind an [`UploadLedger`].
#[derive(Default)]
pub(super) struct Ledger {
    /// Quota use, per quota key (an address).
    pub(super) usage: HashMap<String, Usage>,
    /// Free space promised to running uploads and not yet written, in all.
    pub(super) reserved: u64,
    /// Direct uploads running, per quota key.
    direct: HashMap<String, usize>,
    /// The partial files direct uploads are writing.
    writing: HashSet<PathBuf>,
}

impl Ledger {
    pub(super) fn usage_of(&self, key: &str) -> Usage {
        self.usage.get(key).copied().unwrap_or_default()
    }
}

/// Upload quota and free-space promises, shared by every way into the
/// inbox (see the [module docs](self)). Cloning shares it.
#[derive(Clone, Default)]
pub struct UploadLedger {
    inner: Arc<Mutex<Ledger>>,
}

impl std::fmt::Debug for UploadLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ledger = self.lock();
        f.debug_struct("UploadLedger")
            .field("keys", &ledger.usage.len())
            .field("reserved", &ledger.reserved)
            .finish_non_exhaustive()
    }
}

impl UploadLedger {
    pub(super) fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Upload quota `ip` has used so far, by every way in: bytes received
    /// plus [`ENTRY_COST`] for each file and folder created.
    pub fn uploaded(&self, ip: IpAddr) -> u64 {
        self.lock().usage_of(&quota_key(ip)).bytes
    }

    /// Free space promised to running uploads and not yet written.
    pub fn reserved(&self) -> u64 {
        self.lock().reserved
    }

    /// Starts an upload of `name` (`size` bytes, announced up front) from
    /// `ip` into `config`'s inbox that does not go through the protocol
    /// (a browser's). It is checked as an offer from `lanlink put` is: the
    /// name, depth and size, the address's transfers, byte and entry
    /// quota, an existing target, and the free space left above
    /// `min_free_space` and the other uploads' promises. Refused, it
    /// leaves nothing behind.
    ///
    /// Does disk work (creates folders, opens the partial file): call it
    /// where blocking is fine.
    pub fn begin(
        &self,
        config: &FileConfig,
        ip: IpAddr,
        name: &str,
        size: u64,
    ) -> Result<DirectUpload, ServiceError> {
        let inbox = config
            .inbox
            .clone()
            .ok_or(ServiceError::NotEnabled { what: "uploads" })?;
        let rel = path::validate_target(name)?;
        if rel.components().count() > config.max_upload_depth {
            return Err(ServiceError::BadPath {
                name: name.to_owned(),
                reason: "it is nested too deep",
            });
        }
        if size > config.max_upload_size {
            return Err(ServiceError::FileTooLarge {
                name: name.to_owned(),
                size,
                max: config.max_upload_size,
            });
        }
        let key = quota_key(ip);
        // Its own partial file: never one a protocol upload resumes, and
        // never resumed itself (a browser sends the whole body each time).
        let part = owned_part_path(&inbox.join(&rel), &format!("{key} browser"));
        let entries_held = rel.components().count() as u64;
        let request = {
            let mut ledger = self.lock();
            let ledger = &mut *ledger;
            let running = ledger.direct.get(&key).copied().unwrap_or(0);
            if running >= config.max_transfers_per_client {
                return Err(ServiceError::TooManyTransfers {
                    max: config.max_transfers_per_client,
                });
            }
            if ledger.writing.contains(&part) {
                return Err(ServiceError::UploadInProgress {
                    name: name.to_owned(),
                });
            }
            let usage = ledger.usage_of(&key);
            let quota_left = config.upload_quota.map(|q| q.saturating_sub(usage.bytes));
            let entries_left = config
                .upload_entry_quota
                .map(|q| q.saturating_sub(usage.entries + usage.entries_held));
            if quota_left == Some(0) {
                return Err(ServiceError::QuotaExceeded {
                    name: name.to_owned(),
                    needed: size.max(ENTRY_COST),
                    left: 0,
                });
            }
            let request = UploadRequest {
                inbox,
                rel,
                name: name.to_owned(),
                owner: format!("{key} browser"),
                size,
                overwrite: config.allow_overwrite,
                hash: None,
                min_free_space: config.min_free_space,
                min_free_inodes: config.min_free_inodes,
                reserved_elsewhere: ledger.reserved,
                quota_left,
                entries_left,
                cancel: Arc::new(AtomicBool::new(false)),
            };
            *ledger.direct.entry(key.clone()).or_insert(0) += 1;
            ledger.writing.insert(part.clone());
            ledger.usage.entry(key.clone()).or_default().entries_held += entries_held;
            ledger.reserved += hold(size, 0);
            request
        };
        let mut upload = DirectUpload {
            ledger: self.clone(),
            key,
            part,
            size,
            file: None,
            reserve: hold(size, 0),
            entries_held,
            min_free_space: config.min_free_space,
            quota: config.upload_quota,
            charged: 0,
        };
        // On any error from here, dropping `upload` gives everything back.
        let opened = open_upload(&request);
        {
            let mut ledger = self.lock();
            let usage = ledger.usage.entry(upload.key.clone()).or_default();
            usage.entries_held = usage.entries_held.saturating_sub(upload.entries_held);
            upload.entries_held = 0;
            if let Ok(o) = &opened {
                usage.entries += o.entries;
                usage.bytes = usage.bytes.saturating_add(o.entries * ENTRY_COST);
            }
        }
        let mut file = opened?.file;
        if file.received() > 0 {
            file.restart()?;
        }
        upload.file = Some(*file);
        Ok(upload)
    }
}

/// The quota key of an address (as [`FileService`](super::FileService)
/// keys it).
fn quota_key(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// One upload into the inbox that does not go through the protocol (a
/// browser's), started by [`UploadLedger::begin`]: [`write`](Self::write)
/// its bytes in order, then [`finish`](Self::finish). Its bytes count
/// against its address's quota as they arrive, and each write keeps the
/// free-space reserve. Dropped unfinished (the browser went away, a
/// refusal), its partial file is deleted and its promises given back, and
/// so is the quota its bytes took: a browser upload cannot be resumed, so
/// bytes thrown away were never kept.
pub struct DirectUpload {
    ledger: UploadLedger,
    key: String,
    part: PathBuf,
    size: u64,
    /// `None` once finished or discarded.
    file: Option<IncomingFile>,
    /// Free space promised to it and not yet written.
    reserve: u64,
    entries_held: u64,
    min_free_space: u64,
    quota: Option<u64>,
    /// Quota bytes its writes took, given back unless it is published.
    charged: u64,
}

impl DirectUpload {
    /// Bytes written so far.
    pub fn received(&self) -> u64 {
        self.file.as_ref().map_or(0, IncomingFile::received)
    }

    /// Appends `data`; refused beyond the announced size, the quota, or
    /// the free-space reserve.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ServiceError> {
        let Some(file) = self.file.as_mut() else {
            return Err(ServiceError::UnknownTransfer { stream: 0 });
        };
        let len = data.len() as u64;
        let received = file.received();
        if received.saturating_add(len) > self.size {
            return Err(ServiceError::FileTooLarge {
                name: file_name(file),
                size: received.saturating_add(len),
                max: self.size,
            });
        }
        {
            let mut ledger = self.ledger.lock();
            if let Some(quota) = self.quota {
                let used = &mut ledger.usage.entry(self.key.clone()).or_default().bytes;
                if used.saturating_add(len) > quota {
                    return Err(ServiceError::QuotaExceeded {
                        name: file_name(file),
                        needed: len,
                        left: quota.saturating_sub(*used),
                    });
                }
                *used += len;
                self.charged += len;
            }
        }
        let dir = file
            .target()
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let available = fs4::available_space(&dir).unwrap_or(u64::MAX);
        if available < len.saturating_add(self.min_free_space) {
            return Err(ServiceError::NoSpace {
                name: file_name(file),
                needed: len,
                available: available.saturating_sub(self.min_free_space),
            });
        }
        file.write_chunk(received, data)?;
        // The promise shrinks by what was written, and grows with what it
        // has proven it sends (as for protocol uploads).
        let mut ledger = self.ledger.lock();
        let written = len.min(self.reserve);
        self.reserve -= written;
        ledger.reserved = ledger.reserved.saturating_sub(written);
        let want = hold(self.size, file.received());
        if want > self.reserve {
            ledger.reserved += want - self.reserve;
            self.reserve = want;
        }
        Ok(())
    }

    /// Publishes the file under its name once all the announced bytes are
    /// there; returns where it went.
    pub fn finish(mut self) -> Result<PathBuf, ServiceError> {
        let Some(file) = self.file.take() else {
            return Err(ServiceError::UnknownTransfer { stream: 0 });
        };
        // No sender's hash to check against: the file's own (it guards
        // nothing here; the size does).
        let hash = file
            .prefix_hash()
            .unwrap_or_else(|| *blake3::hash(b"").as_bytes());
        // `finish` deletes the partial file if the size differs; a target
        // that appeared meanwhile leaves it: nothing stays behind either way.
        let result = file.finish(self.size, &hash);
        match &result {
            Ok(_) => self.charged = 0, // kept: its bytes stay on the quota
            Err(_) => {
                let _ = std::fs::remove_file(&self.part);
            }
        }
        result
    }
}

fn file_name(file: &IncomingFile) -> String {
    file.target()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Drop for DirectUpload {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            file.discard();
        }
        let mut ledger = self.ledger.lock();
        ledger.reserved = ledger.reserved.saturating_sub(self.reserve);
        if self.charged > 0 {
            let usage = ledger.usage.entry(self.key.clone()).or_default();
            usage.bytes = usage.bytes.saturating_sub(self.charged);
        }
        if self.entries_held > 0 {
            let usage = ledger.usage.entry(self.key.clone()).or_default();
            usage.entries_held = usage.entries_held.saturating_sub(self.entries_held);
        }
        ledger.writing.remove(&self.part);
        if let Some(n) = ledger.direct.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                ledger.direct.remove(&self.key);
            }
        }
    }
}
