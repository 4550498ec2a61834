//! Hashes of shared files, learnt by sending them whole, so that the next
//! download of the same unchanged file does not hash it again.
//!
//! A download's closing [`FileComplete`](lanlink_proto::file::FileComplete)
//! carries the BLAKE3 hash of the whole file. Without this the server
//! hashed every byte of every download it served: a fifth of its CPU
//! serving a 1 GiB file, paid again for each client fetching the same one.
//! The hash is work done once per file, not per download.
//!
//! A file is known by its device, inode, size, modification time and
//! status-change time, as `fstat` gives them on the open file: any write
//! changes the status-change time, which no program can set back. What a
//! download learns is kept only if the file's identity was the same when
//! it was opened and when its last byte was read, and its status last
//! changed at least [`SETTLED`] before it was opened (two writes within
//! one tick of the kernel's clock may leave the same time). The receiver checks the
//! hash whatever happens: a file changed under a download sent with a
//! known hash fails its check (and is fetched again, then hashed afresh),
//! where one hashed as it was sent would have arrived half old, half new.

use std::collections::{HashMap, VecDeque};
use std::fs::Metadata;
use std::sync::{Arc, Mutex, PoisonError};

use lanlink_proto::file::ContentHash;

/// How many files' hashes are kept (the oldest learnt goes first).
pub const KNOWN_FILES: usize = 4096;

/// A file whose status changed less than this before a download opened it
/// is not remembered.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

/// A file's identity: it is the same file with the same content while
/// none of these change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Identity {
    /// The identity `metadata` (of an open file) gives, where the platform
    /// tells inodes and status-change times (Unix); elsewhere none, and
    /// nothing is remembered.
    pub(super) fn of(metadata: &Metadata) -> Option<Identity> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(Identity {
                dev: metadata.dev(),
                ino: metadata.ino(),
                size: metadata.size(),
                modified: (metadata.mtime(), metadata.mtime_nsec()),
                changed: (metadata.ctime(), metadata.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            None
        }
    }

    /// Whether the file's status last changed at least [`SETTLED`] before
    /// `opened`.
    pub(super) fn settled_at(&self, opened: std::time::SystemTime) -> bool {
        let (secs, nanos) = self.changed;
        let changed = u64::try_from(secs).ok().and_then(|secs| {
            let nanos = u32::try_from(nanos).ok()?;
            std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
        });
        changed
            .and_then(|c| c.checked_add(SETTLED))
            .is_some_and(|settled| settled <= opened)
    }
}

/// Hashes of whole files, shared by every download of a server (cloning
/// shares it); bounded by [`KNOWN_FILES`].
#[derive(Clone, Default)]
pub struct KnownHashes {
    inner: Arc<Mutex<Known>>,
}

#[derive(Default)]
struct Known {
    hashes: HashMap<Identity, ContentHash>,
    /// Identities in the order they were learnt.
    order: VecDeque<Identity>,
}

impl std::fmt::Debug for KnownHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownHashes")
            .field("files", &self.len())
            .finish()
    }
}

impl KnownHashes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many files' hashes are known.
    pub fn len(&self) -> usize {
        self.lock().hashes.len()
    }

    /// True when no hash is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn get(&self, id: &Identity) -> Option<ContentHash> {
        self.lock().hashes.get(id).copied()
    }

    pub(super) fn learn(&self, id: Identity, hash: ContentHash) {
        let mut known = self.lock();
        if known.hashes.insert(id, hash).is_none() {
            known.order.push_back(id);
        }
        while known.hashes.len() > KNOWN_FILES {
            let Some(oldest) = known.order.pop_front() else {
                break;
            };
            known.hashes.remove(&oldest);
        }
    }

    pub(super) fn forget(&self, id: &Identity) {
        let mut known = self.lock();
        if known.hashes.remove(id).is_some() {
            known.order.retain(|o| o != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64) -> Identity {
        Identity {
            dev: 1,
            ino,
            size: 10,
            modified: (0, 0),
            changed: (0, 0),
        }
    }

    #[test]
    fn the_oldest_learnt_goes_first_and_forgotten_ones_are_gone() {
        let known = KnownHashes::default();
        for ino in 0..KNOWN_FILES as u64 + 2 {
            known.learn(id(ino), [ino as u8; 32]);
        }
        assert_eq!(known.len(), KNOWN_FILES);
        assert_eq!(known.get(&id(0)), None);
        assert_eq!(known.get(&id(1)), None);
        assert_eq!(known.get(&id(2)), Some([2; 32]));
        known.learn(id(2), [7; 32]);
        assert_eq!(known.get(&id(2)), Some([7; 32]), "learnt again");
        known.forget(&id(2));
        assert_eq!(known.get(&id(2)), None);
        assert_eq!(known.len(), KNOWN_FILES - 1);
    }
}
