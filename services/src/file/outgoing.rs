//! The sending end of a transfer: reads a file in chunks, hashing as it goes,
//! and keeps at most a window of unacknowledged bytes in flight.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use bytes::{Bytes, BytesMut};
use lanlink_proto::file::{ContentHash, FileChunk, FileComplete};

use super::known::{Identity, KnownHashes};
use crate::ServiceError;
use std::time::SystemTime;

/// Bytes a sender may have in flight beyond the receiver's last
/// acknowledgement. Large enough to keep loopback busy, small enough that a
/// chat line queued behind it waits a few milliseconds at most.
pub const DEFAULT_WINDOW: u64 = 4 * 1024 * 1024;
/// Size of each chunk's data.
pub const DEFAULT_CHUNK: usize = 256 * 1024;
/// Size of each chunk's data while an upload has not shown a quick link
/// ([`QUICK_LINK`]): small enough, with its frame header, to stay under
/// the size from which a server counts a frame still arriving and may end
/// it to make room for others (64 KiB: a server full of senders faster
/// than this one ends the slowest large frame), so a slow upload always
/// gets its chunks through, and each one keeps (resumes from) what came.
pub const SMALL_CHUNK: usize = 56 * 1024;
/// Acknowledged bytes a second from which an upload sends
/// [`DEFAULT_CHUNK`]s.
pub const QUICK_LINK: u64 = 2 * 1024 * 1024;

/// The chunk size for an upload that had `acked` bytes acknowledged
/// `elapsed` after it began sending.
pub fn chunk_for(acked: u64, elapsed: std::time::Duration) -> usize {
    let quick = u128::from(acked) * 1000 >= u128::from(QUICK_LINK) * elapsed.as_millis().max(1);
    if quick {
        DEFAULT_CHUNK
    } else {
        SMALL_CHUNK
    }
}

/// A file being sent.
#[derive(Debug)]
pub struct OutgoingFile {
    path: PathBuf,
    file: File,
    size: u64,
    sent: u64,
    acked: u64,
    start: u64,
    hasher: blake3::Hasher,
    done: bool,
    /// Chunks already handed out, oldest first. Once the transport has
    /// written one and dropped its copy, its buffer is ours again: reusing
    /// it saves the allocator a 256 KiB allocation, the page faults and the
    /// zeroing per chunk (a large share of a transfer's CPU).
    recycle: VecDeque<Bytes>,
    /// The receiver's prefix while it is being hashed.
    prefix: Option<Prefix>,
    /// The file as opened (see [`KnownHashes`]) and when.
    identity: Option<Identity>,
    opened: SystemTime,
    /// Where the whole file's hash is remembered, if anywhere, and the
    /// hash found there: then the chunks are not hashed.
    known: Option<KnownHashes>,
    cached: Option<ContentHash>,
}

/// What is left to check of the prefix a receiver says it holds.
#[derive(Debug)]
struct Prefix {
    len: u64,
    hashed: u64,
    /// The receiver's hash of it; without one the prefix is trusted.
    want: Option<ContentHash>,
}

/// Chunks kept for reuse; more than a window's worth would never come back.
const RECYCLE: usize = 32;

impl OutgoingFile {
    /// Opens `path` to send from `offset`, the length of the prefix the
    /// receiver holds. The prefix is hashed (the whole-file hash needs it);
    /// if the receiver's `prefix_hash` does not match, or `offset` is past
    /// the end, sending restarts from 0. [`start`](Self::start) tells which.
    pub fn open(
        path: &Path,
        offset: u64,
        prefix_hash: Option<&ContentHash>,
    ) -> Result<OutgoingFile, ServiceError> {
        OutgoingFile::open_cancellable(path, offset, prefix_hash, &AtomicBool::new(false))
    }

    /// [`open`](Self::open), but hashing the prefix (up to the whole file)
    /// stops early, with an error, once `cancel` is set.
    pub fn open_cancellable(
        path: &Path,
        offset: u64,
        prefix_hash: Option<&ContentHash>,
        cancel: &AtomicBool,
    ) -> Result<OutgoingFile, ServiceError> {
        let mut file = OutgoingFile::begin(path, offset, prefix_hash)?;
        file.check_prefix(u64::MAX, cancel)?;
        Ok(file)
    }

    /// Opens `path` to send from `offset` like [`open`](Self::open), but
    /// hashes none of the prefix yet: call
    /// [`check_prefix`](Self::check_prefix) until
    /// [`checking_prefix`](Self::checking_prefix) is false. A server
    /// hashes a multi-GiB prefix a slice per turn, so one peer's resume
    /// does not hold a worker for seconds while others wait.
    pub fn begin(
        path: &Path,
        offset: u64,
        prefix_hash: Option<&ContentHash>,
    ) -> Result<OutgoingFile, ServiceError> {
        let file = File::open(path).map_err(|e| ServiceError::io("open", path, e))?;
        let opened = SystemTime::now();
        let metadata = file
            .metadata()
            .map_err(|e| ServiceError::io("inspect", path, e))?;
        let size = metadata.len();
        let prefix = (offset > 0 && offset <= size).then(|| Prefix {
            len: offset,
            hashed: 0,
            want: prefix_hash.copied(),
        });
        Ok(OutgoingFile {
            path: path.to_owned(),
            file,
            size,
            sent: 0,
            acked: 0,
            start: 0,
            hasher: blake3::Hasher::new(),
            done: false,
            recycle: VecDeque::new(),
            prefix,
            identity: Identity::of(&metadata),
            opened,
            known: None,
            cached: None,
        })
    }

    /// Takes the whole file's hash from `known` if it is there (then the
    /// chunks are not hashed as they are read), and remembers it there
    /// once the whole file has been read unchanged. A server shares one
    /// [`KnownHashes`] between its downloads.
    pub fn use_known(&mut self, known: &KnownHashes) {
        self.cached = self.identity.and_then(|id| known.get(&id));
        self.known = Some(known.clone());
    }

    /// At the end of the file: the hash is remembered if the file is the
    /// one opened, whole, and settled; a remembered one is forgotten if
    /// the file changed meanwhile.
    fn remember(&self) {
        let (Some(known), Some(id)) = (&self.known, self.identity) else {
            return;
        };
        let now = self.file.metadata().ok().and_then(|m| Identity::of(&m));
        let unchanged = now == Some(id) && self.sent == self.size;
        if !unchanged {
            known.forget(&id);
        } else if self.cached.is_none() && id.settled_at(self.opened) {
            known.learn(id, *self.hasher.finalize().as_bytes());
        }
    }

    /// True while the receiver's prefix is still being checked: nothing
    /// can be sent yet and [`start`](Self::start) is not known.
    pub fn checking_prefix(&self) -> bool {
        self.prefix.is_some()
    }

    /// Hashes up to `budget` more bytes of the receiver's prefix. Once all
    /// of it is hashed, sending starts after it if the hashes match, else
    /// from 0 (see [`start`](Self::start)). Stops with an error once
    /// `cancel` is set.
    pub fn check_prefix(&mut self, budget: u64, cancel: &AtomicBool) -> Result<(), ServiceError> {
        let Some(prefix) = self.prefix.as_mut() else {
            return Ok(());
        };
        let most = (prefix.len - prefix.hashed).min(budget);
        let hashed = super::hash_from(&mut self.file, &mut self.hasher, most, cancel, &self.path)?;
        prefix.hashed += hashed.read;
        // A file that shrank under us cannot hold the receiver's prefix.
        let short = hashed.at_end;
        if prefix.hashed < prefix.len && !short {
            return Ok(());
        }
        let matches = !short
            && prefix
                .want
                .is_none_or(|h| self.hasher.finalize().as_bytes() == &h);
        let start = if matches { prefix.len } else { 0 };
        if !matches {
            self.hasher = blake3::Hasher::new();
        }
        self.prefix = None;
        self.file
            .seek(SeekFrom::Start(start))
            .map_err(|e| ServiceError::io("seek", &self.path, e))?;
        (self.start, self.sent, self.acked) = (start, start, start);
        Ok(())
    }

    /// The size when the transfer started.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where sending (re)started: the receiver's offset, or 0.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Bytes sent so far (counting the resumed prefix).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Records the receiver's cumulative acknowledgement.
    pub fn ack(&mut self, offset: u64) {
        self.acked = self.acked.max(offset.min(self.sent));
    }

    /// True while the window allows another chunk and the file has more.
    pub fn can_send(&self, window: u64) -> bool {
        self.prefix.is_none() && !self.done && self.sent < self.acked + window
    }

    /// Reads the next chunk, or `None` at end of file (then call
    /// [`complete`](Self::complete)).
    pub fn next_chunk(&mut self, chunk: usize) -> Result<Option<FileChunk>, ServiceError> {
        if self.prefix.is_some() {
            self.check_prefix(u64::MAX, &AtomicBool::new(false))?;
        }
        if self.done {
            return Ok(None);
        }
        let mut buf = self.reusable_buffer(chunk);
        let mut filled = 0;
        while filled < chunk {
            let n = self
                .file
                .read(buf.get_mut(filled..).unwrap_or_default())
                .map_err(|e| ServiceError::io("read", &self.path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            self.done = true;
            self.remember();
            return Ok(None);
        }
        buf.truncate(filled);
        let data: Bytes = buf.freeze();
        if self.recycle.len() >= RECYCLE {
            self.recycle.pop_front();
        }
        self.recycle.push_back(data.clone());
        if self.cached.is_none() {
            self.hasher.update(&data);
        }
        let offset = self.sent;
        self.sent += filled as u64;
        Ok(Some(FileChunk { offset, data }))
    }

    /// A `chunk`-byte buffer: the oldest handed-out chunk if nobody else
    /// holds it any more, else a fresh one.
    fn reusable_buffer(&mut self, chunk: usize) -> BytesMut {
        if let Some(oldest) = self.recycle.pop_front() {
            match oldest.try_into_mut() {
                Ok(mut buf) if buf.capacity() >= chunk => {
                    // Its old bytes are overwritten by the read (and cut
                    // off after it): zero only what it never held.
                    if buf.len() >= chunk {
                        buf.truncate(chunk);
                    } else {
                        buf.resize(chunk, 0);
                    }
                    return buf;
                }
                Ok(_) => {}
                // Still queued or being written: keep it for later.
                Err(still_shared) => self.recycle.push_front(still_shared),
            }
        }
        super::page_aligned(chunk)
    }

    /// The closing message: total size and whole-file hash.
    pub fn complete(&self) -> FileComplete {
        FileComplete {
            size: self.sent,
            hash: self
                .cached
                .unwrap_or_else(|| *self.hasher.finalize().as_bytes()),
        }
    }

    /// True once every byte is sent and acknowledged.
    pub fn fully_acked(&self) -> bool {
        self.done && self.acked >= self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_sends_small_chunks_until_its_link_shows_it_is_quick() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        assert_eq!(chunk_for(0, ms(0)), SMALL_CHUNK, "nothing known yet");
        // 1 MiB acknowledged after 5 s: a 200 KiB/s link.
        assert_eq!(chunk_for(1 << 20, ms(5000)), SMALL_CHUNK);
        // 1 MiB after 1 ms: loopback.
        assert_eq!(chunk_for(1 << 20, ms(1)), DEFAULT_CHUNK);
        assert_eq!(chunk_for(4 << 20, ms(2000)), DEFAULT_CHUNK, "2 MiB/s");
        assert_eq!(chunk_for(4 << 20, ms(2001)), SMALL_CHUNK);
        // With its header, a small chunk's frame is not a "large" one
        // (transport counts frames over 64 KiB).
        const { assert!(SMALL_CHUNK + 1024 <= 64 * 1024) };
    }

    /// Chunks are read into page-aligned buffers (see
    /// [`page_aligned`](super::super::page_aligned)), fresh and recycled
    /// alike, and the bytes are the file's.
    #[test]
    fn chunks_are_read_into_page_aligned_buffers_fresh_and_recycled() {
        let path = std::env::temp_dir().join(format!("lanlink-outgoing-{}", std::process::id()));
        let data: Vec<u8> = (0..5 * DEFAULT_CHUNK + 99)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let mut file = OutgoingFile::open(&path, 0, None).unwrap();
        let mut got = Vec::new();
        let mut starts = Vec::new();
        while let Some(chunk) = file.next_chunk(DEFAULT_CHUNK).unwrap() {
            assert_eq!(
                chunk.data.as_ptr() as usize % 4096,
                0,
                "chunk at {}",
                chunk.offset
            );
            starts.push(chunk.data.as_ptr() as usize);
            got.extend_from_slice(&chunk.data);
            // Sent and dropped, as the transport does: its buffer comes back.
        }
        assert_eq!(got, data);
        assert!(
            starts.windows(2).any(|w| w[0] == w[1]),
            "a buffer was reused: {starts:x?}"
        );
        assert_eq!(file.complete().hash, *blake3::hash(&data).as_bytes());
        std::fs::remove_file(&path).unwrap();
    }

    fn send_all(path: &Path, known: &KnownHashes) -> (ContentHash, bool) {
        let mut file = OutgoingFile::open(path, 0, None).unwrap();
        file.use_known(known);
        let cached = file.cached.is_some();
        while file.next_chunk(DEFAULT_CHUNK).unwrap().is_some() {}
        (file.complete().hash, cached)
    }

    /// A settled file's hash is learnt by sending it whole and not worked
    /// out again for the next download; a file changed since is hashed
    /// afresh (and, changed just now, not remembered).
    #[test]
    fn a_whole_files_hash_is_learnt_once_and_forgotten_when_it_changes() {
        let path = std::env::temp_dir().join(format!("lanlink-known-{}", std::process::id()));
        let old: Vec<u8> = (0..DEFAULT_CHUNK * 2 + 5)
            .map(|i| (i % 249) as u8)
            .collect();
        std::fs::write(&path, &old).unwrap();
        let known = KnownHashes::default();
        // Changed just now: sent with its hash, not remembered.
        assert_eq!(
            send_all(&path, &known),
            (*blake3::hash(&old).as_bytes(), false)
        );
        assert!(known.is_empty(), "not settled");
        std::thread::sleep(super::super::known::SETTLED + std::time::Duration::from_millis(100));
        assert_eq!(
            send_all(&path, &known),
            (*blake3::hash(&old).as_bytes(), false)
        );
        assert_eq!(known.len(), 1, "learnt");
        assert_eq!(
            send_all(&path, &known),
            (*blake3::hash(&old).as_bytes(), true)
        );
        // Resuming from a prefix, the known hash still closes it.
        let mut resumed =
            OutgoingFile::open(&path, 1000, Some(blake3::hash(&old[..1000]).as_bytes())).unwrap();
        resumed.use_known(&known);
        assert_eq!(resumed.start(), 1000);
        while resumed.next_chunk(DEFAULT_CHUNK).unwrap().is_some() {}
        assert_eq!(resumed.complete().hash, *blake3::hash(&old).as_bytes());
        // The same size, other bytes, written while a download sends it
        // with the known hash: the receiver's check fails (the hash is the
        // old bytes'), and the hash is forgotten.
        let new: Vec<u8> = old.iter().map(|b| b ^ 0x5a).collect();
        let mut during = OutgoingFile::open(&path, 0, None).unwrap();
        during.use_known(&known);
        std::fs::write(&path, &new).unwrap();
        while during.next_chunk(DEFAULT_CHUNK).unwrap().is_some() {}
        assert_eq!(during.complete().hash, *blake3::hash(&old).as_bytes());
        assert!(known.is_empty(), "forgotten");
        // The next download hashes the new bytes as it sends them.
        assert_eq!(
            send_all(&path, &known),
            (*blake3::hash(&new).as_bytes(), false)
        );
        std::fs::remove_file(&path).unwrap();
    }
}
