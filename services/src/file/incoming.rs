//! The receiving end of a transfer: a partial file beside the target that is
//! hashed as it grows and renamed to the final name only once the whole
//! content's hash matches the sender's.
//!
//! The partial file is named `.NAME.lanlink-part` in the target's folder, so
//! the rename is atomic and an interrupted transfer never leaves anything
//! under the final name. It is kept after an interruption: opening the same
//! target again resumes from its length, after the sender has checked the
//! prefix hash.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use lanlink_proto::file::ContentHash;

use crate::ServiceError;

/// A file being received.
#[derive(Debug)]
pub struct IncomingFile {
    name: String,
    target: PathBuf,
    part: PathBuf,
    file: File,
    hasher: blake3::Hasher,
    received: u64,
    /// The size offered: no chunk may take the file past it.
    size: u64,
    /// Whether it started again from byte 0 after what an earlier attempt
    /// left was taken ([`restart`](Self::restart)).
    restarted: bool,
    overwrite: bool,
    /// Bytes an earlier attempt left that are not hashed yet (see
    /// [`IncomingFile::hash_held`]).
    unhashed: u64,
}

/// The path of the partial file for `target`.
pub fn part_path(target: &Path) -> PathBuf {
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{file_name}{PART_SUFFIX}"))
}

/// The path of `owner`'s partial file for `target` on a server:
/// `.NAME.TAG.lanlink-part`, where `TAG` is derived from the owner and the
/// name. Each uploader resumes only its own partial file: another client
/// offering the same name gets a fresh one, and can neither learn the first
/// one's prefix hash nor make the server discard it. `NAME` is cut short
/// (on a character boundary) so the whole stays a legal file name; the tag
/// keeps names that share a long prefix apart.
pub fn owned_part_path(target: &Path, owner: &str) -> PathBuf {
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(owner.as_bytes());
    hasher.update(b"\0");
    hasher.update(file_name.as_bytes());
    let tag = hasher.finalize().to_hex();
    let mut short = file_name.as_str();
    while short.len() > MAX_SHOWN_NAME {
        let mut cut = MAX_SHOWN_NAME.min(short.len() - 1);
        while !short.is_char_boundary(cut) {
            cut -= 1;
        }
        short = short.get(..cut).unwrap_or_default();
    }
    target.with_file_name(format!(
        ".{short}.{}{PART_SUFFIX}",
        tag.get(..16).unwrap_or_default()
    ))
}

/// Bytes of the target's name kept in an owned partial file's name: with
/// the dot, the tag and the suffix the whole stays under 255 bytes.
const MAX_SHOWN_NAME: usize = 200;

const PART_SUFFIX: &str = ".lanlink-part";

/// True if `path` names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Moves `part` to `target`. Without `overwrite`, an existing target is
/// never replaced, even by a second upload finishing at the same moment:
/// a hard link fails if the name exists (where links are not supported,
/// a checked rename is the fallback).
fn publish(part: &Path, target: &Path, overwrite: bool, name: &str) -> Result<(), ServiceError> {
    let exists = || ServiceError::AlreadyExists {
        name: name.to_owned(),
    };
    if !overwrite {
        match std::fs::hard_link(part, target) {
            Ok(()) => {
                let _ = std::fs::remove_file(part);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
            Err(_) if target.exists() => return Err(exists()),
            Err(_) => {}
        }
    }
    std::fs::rename(part, target).map_err(|e| ServiceError::io("rename", target, e))
}

/// True if a file called `file_name` could be the partial file of another
/// target (`.NAME.lanlink-part`). A receiver must refuse such names: a file
/// published under one would be taken for a partial, resumed from, and
/// deleted or overwritten by a later transfer of `NAME`.
pub fn is_part_name(file_name: &str) -> bool {
    file_name.len() > 1 + PART_SUFFIX.len()
        && file_name.starts_with('.')
        && file_name.ends_with(PART_SUFFIX)
}

impl IncomingFile {
    /// Opens (or resumes) the partial file for `target`, whose parents exist.
    ///
    /// `name` is the name shown in errors. Fails if `target` exists and
    /// `overwrite` is not set. A partial file longer than `size` is discarded.
    pub fn open(
        name: &str,
        target: PathBuf,
        size: u64,
        overwrite: bool,
    ) -> Result<IncomingFile, ServiceError> {
        let part = part_path(&target);
        // Locked before anything is truncated or read: two transfers
        // writing one partial file (two offers whose names differ only in
        // how they are composed) would each verify only their own bytes of
        // a mixed file, and a refused second one would still have cut the
        // first one's file short.
        let mut file = IncomingFile::begin(name, target, part, size, overwrite, true)?;
        file.hash_held(u64::MAX, &AtomicBool::new(false))?;
        Ok(file)
    }

    /// [`open`](Self::open) with the partial file at `part` (a server
    /// names it after its owner, see [`owned_part_path`]). Hashing what an
    /// earlier attempt left stops early, with an error, once `cancel` is
    /// set.
    pub fn open_part(
        name: &str,
        target: PathBuf,
        part: PathBuf,
        size: u64,
        overwrite: bool,
        cancel: &AtomicBool,
    ) -> Result<IncomingFile, ServiceError> {
        let mut file = IncomingFile::begin_part(name, target, part, size, overwrite)?;
        file.hash_held(u64::MAX, cancel)?;
        Ok(file)
    }

    /// [`open_part`](Self::open_part), but what an earlier attempt left is
    /// not hashed yet: call [`hash_held`](Self::hash_held) until
    /// [`hashing_held`](Self::hashing_held) is false (a server hashes a
    /// long partial file a slice per turn).
    pub fn begin_part(
        name: &str,
        target: PathBuf,
        part: PathBuf,
        size: u64,
        overwrite: bool,
    ) -> Result<IncomingFile, ServiceError> {
        IncomingFile::begin(name, target, part, size, overwrite, false)
    }

    /// [`begin_part`](Self::begin_part), locking the partial file first
    /// when `lock` is set (a client's: one writer per file).
    fn begin(
        name: &str,
        target: PathBuf,
        part: PathBuf,
        size: u64,
        overwrite: bool,
        lock: bool,
    ) -> Result<IncomingFile, ServiceError> {
        if target.exists() && !overwrite {
            return Err(ServiceError::AlreadyExists {
                name: name.to_owned(),
            });
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        // A link planted at the partial file's name is not followed (it
        // would have a file outside the folder truncated or appended to).
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        }
        let file = options
            .open(&part)
            .map_err(|e| ServiceError::io("create", &part, e))?;
        let refuse = |why: &'static str| ServiceError::Io {
            op: "open",
            path: part.display().to_string(),
            source: std::io::Error::other(why),
        };
        if lock && fs4::FileExt::try_lock(&file).is_err() {
            return Err(refuse("another transfer is writing this partial file"));
        }
        let meta = file
            .metadata()
            .map_err(|e| ServiceError::io("inspect", &part, e))?;
        // Not a link to a file elsewhere (a hard link planted under the
        // partial file's name), nor a pipe or a device.
        #[cfg(unix)]
        if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(refuse("the partial file has other names (a hard link)"));
        }
        if !meta.is_file() {
            return Err(refuse("the partial file is not a regular file"));
        }
        let len = meta.len();
        if len > size {
            file.set_len(0)
                .map_err(|e| ServiceError::io("truncate", &part, e))?;
        }
        Ok(IncomingFile {
            name: name.to_owned(),
            target,
            part,
            file,
            hasher: blake3::Hasher::new(),
            received: 0,
            size,
            restarted: false,
            overwrite,
            unhashed: if len > size { 0 } else { len },
        })
    }

    /// True while part of what an earlier attempt left is not hashed yet:
    /// the resume offset is not known and nothing may be written.
    pub fn hashing_held(&self) -> bool {
        self.unhashed > 0
    }

    /// Hashes up to `budget` more bytes of what an earlier attempt left, so
    /// the sender can check it. Stops with an error once `cancel` is set.
    pub fn hash_held(&mut self, budget: u64, cancel: &AtomicBool) -> Result<(), ServiceError> {
        let most = self.unhashed.min(budget);
        let hashed = super::hash_from(&mut self.file, &mut self.hasher, most, cancel, &self.part)?;
        self.received += hashed.read;
        // Shorter than it was: what was read is what is held.
        self.unhashed = if hashed.at_end {
            0
        } else {
            self.unhashed - hashed.read
        };
        if self.unhashed == 0 {
            // Appends go after what was hashed, however long the file is.
            self.file
                .set_len(self.received)
                .map_err(|e| ServiceError::io("truncate", &self.part, e))?;
        }
        Ok(())
    }

    /// Whether it started again from byte 0 since it was opened.
    pub fn restarted(&self) -> bool {
        self.restarted
    }

    /// Bytes already held (the resume offset).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Hash of the bytes already held, if any.
    pub fn prefix_hash(&self) -> Option<ContentHash> {
        (self.received > 0).then(|| *self.hasher.finalize().as_bytes())
    }

    /// Where the file will be published.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Throws away what was held and starts again from byte 0 (the sender
    /// did not recognise the prefix).
    pub fn restart(&mut self) -> Result<(), ServiceError> {
        self.file
            .set_len(0)
            .map_err(|e| ServiceError::io("truncate", &self.part, e))?;
        self.hasher = blake3::Hasher::new();
        self.received = 0;
        self.restarted = true;
        Ok(())
    }

    /// Appends a chunk, which must start where the previous one ended.
    pub fn write_chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), ServiceError> {
        if self.unhashed > 0 {
            self.hash_held(u64::MAX, &AtomicBool::new(false))?;
        }
        if offset != self.received {
            return Err(ServiceError::OutOfOrder {
                name: self.name.clone(),
                got: offset,
                expected: self.received,
            });
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > self.size {
            return Err(ServiceError::FileTooLarge {
                name: self.name.clone(),
                size: end,
                max: self.size,
            });
        }
        self.file
            .write_all(data)
            .map_err(|e| ServiceError::io("write", &self.part, e))?;
        self.hasher.update(data);
        self.received += data.len() as u64;
        Ok(())
    }

    /// Checks size (the one offered, and the one the sender says it sent)
    /// and hash; on a match publishes the file under its final name and
    /// returns that path, otherwise deletes the partial file.
    pub fn finish(self, size: u64, hash: &ContentHash) -> Result<PathBuf, ServiceError> {
        let ours = *self.hasher.finalize().as_bytes();
        if self.received != size || size != self.size || ours != *hash {
            let detail = if size != self.size {
                format!("{size} bytes sent of a file offered as {} bytes", self.size)
            } else if self.received != size {
                format!("{} bytes received, sender sent {size}", self.received)
            } else {
                "content hash differs".to_owned()
            };
            drop(self.file);
            let _ = std::fs::remove_file(&self.part);
            return Err(ServiceError::HashMismatch {
                name: self.name,
                detail,
            });
        }
        self.file
            .sync_all()
            .map_err(|e| ServiceError::io("sync", &self.part, e))?;
        // What is on disk must be what was hashed (nothing cut it short or
        // added to it behind this transfer's back).
        let on_disk = self
            .file
            .metadata()
            .map_err(|e| ServiceError::io("inspect", &self.part, e))?
            .len();
        if on_disk != self.received {
            drop(self.file);
            let _ = std::fs::remove_file(&self.part);
            return Err(ServiceError::HashMismatch {
                name: self.name,
                detail: format!(
                    "the partial file holds {on_disk} bytes, {} were received",
                    self.received
                ),
            });
        }
        // The partial file may have been removed (an abandoned-partial
        // sweep) and even replaced since it was opened: publish only the
        // very file this transfer wrote and hashed.
        if !same_file(&self.file, &self.part) {
            return Err(ServiceError::Io {
                op: "publish",
                path: self.part.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the partial file was removed meanwhile",
                ),
            });
        }
        drop(self.file);
        publish(&self.part, &self.target, self.overwrite, &self.name)?;
        Ok(self.target)
    }

    /// Gives up and deletes the partial file (the sender cancelled a fresh
    /// transfer, or the content cannot be trusted).
    pub fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lanlink-incoming-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn publishes_only_after_the_hash_matches_and_resumes() {
        let d = dir("ok");
        let target = d.join("f.bin");
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let hash = *blake3::hash(&data).as_bytes();

        let mut f = IncomingFile::open("f.bin", target.clone(), data.len() as u64, false).unwrap();
        f.write_chunk(0, &data[..40_000]).unwrap();
        assert!(
            !target.exists(),
            "nothing under the final name mid-transfer"
        );
        drop(f); // interrupted

        let mut f = IncomingFile::open("f.bin", target.clone(), data.len() as u64, false).unwrap();
        assert_eq!(f.received(), 40_000);
        assert_eq!(
            f.prefix_hash(),
            Some(*blake3::hash(&data[..40_000]).as_bytes())
        );
        assert!(matches!(
            f.write_chunk(0, b"x"),
            Err(ServiceError::OutOfOrder {
                expected: 40_000,
                ..
            })
        ));
        f.write_chunk(40_000, &data[40_000..]).unwrap();
        assert_eq!(f.finish(data.len() as u64, &hash).unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), data);
        assert!(!part_path(&target).exists());

        // The same name again is refused unless overwriting.
        assert!(matches!(
            IncomingFile::open("f.bin", target.clone(), 1, false),
            Err(ServiceError::AlreadyExists { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corruption_publishes_nothing() {
        let d = dir("bad");
        let target = d.join("f.bin");
        let mut f = IncomingFile::open("f.bin", target.clone(), 4, false).unwrap();
        f.write_chunk(0, b"abcX").unwrap();
        let err = f.finish(4, blake3::hash(b"abcd").as_bytes()).unwrap_err();
        assert!(matches!(err, ServiceError::HashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("nothing was saved"));
        assert!(!target.exists() && !part_path(&target).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A sender may not write more than it offered (a 10-byte offer that
    /// sent 64 MiB was published whole), nor say at the end that it sent
    /// another size.
    #[test]
    fn no_more_than_the_offered_size_is_written_or_published() {
        let d = dir("size");
        let target = d.join("f.bin");
        let mut f = IncomingFile::open("f.bin", target.clone(), 10, false).unwrap();
        f.write_chunk(0, b"0123456789").unwrap();
        assert!(matches!(
            f.write_chunk(10, b"more"),
            Err(ServiceError::FileTooLarge {
                size: 14,
                max: 10,
                ..
            })
        ));
        assert_eq!(std::fs::metadata(part_path(&target)).unwrap().len(), 10);
        drop(f);
        let mut f = IncomingFile::open("f.bin", target.clone(), 20, false).unwrap();
        f.write_chunk(10, b"0123456789").unwrap();
        let all = b"01234567890123456789";
        let err = f.finish(21, blake3::hash(all).as_bytes()).unwrap_err();
        assert!(matches!(err, ServiceError::HashMismatch { .. }), "{err}");
        assert!(!target.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A link planted at the partial file's name is not followed, and one
    /// partial file is not written by two transfers of one process.
    #[test]
    fn a_planted_link_is_not_followed_and_a_partial_has_one_writer() {
        let d = dir("link");
        let victim = d.join("victim.txt");
        std::fs::write(&victim, b"precious data outside the folder").unwrap();
        let inbox = d.join("in");
        std::fs::create_dir_all(&inbox).unwrap();
        let target = inbox.join("f.bin");
        std::os::unix::fs::symlink(&victim, part_path(&target)).unwrap();
        assert!(IncomingFile::open("f.bin", target.clone(), 3, false).is_err());
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"precious data outside the folder"
        );
        std::fs::remove_file(part_path(&target)).unwrap();

        let mut first = IncomingFile::open("f.bin", target.clone(), 3, false).unwrap();
        first.write_chunk(0, b"ab").unwrap();
        // Offered as 1 byte, it would cut the first one's 2 bytes short
        // before being refused (found by the second outside attack).
        let second = IncomingFile::open("f.bin", target.clone(), 1, false);
        assert!(
            matches!(&second, Err(ServiceError::Io { op: "open", .. })),
            "{second:?}"
        );
        assert_eq!(std::fs::read(part_path(&target)).unwrap(), b"ab");
        first.write_chunk(2, b"c").unwrap();
        first.finish(3, blake3::hash(b"abc").as_bytes()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"abc");
        std::fs::remove_file(&target).unwrap();

        // A hard link under the partial file's name is refused too.
        std::fs::hard_link(&victim, part_path(&target)).unwrap();
        assert!(IncomingFile::open("f.bin", target.clone(), 100, false).is_err());
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"precious data outside the folder"
        );
        std::fs::remove_file(part_path(&target)).unwrap();
        IncomingFile::open("f.bin", target, 3, false).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
