//! File messages: listing a share, downloading, uploading, and offering a file
//! to another user through the server.
//!
//! Each transfer has its own [`crate::StreamId`], chosen by the side that
//! starts it, so several transfers and the chat share one connection.
//!
//! ```text
//! download:  C→S FileRequest   S→C FileOffer   S→C FileChunk…  S→C FileComplete
//! upload:    C→S FileOffer     S→C FileAccept  C→S FileChunk…  C→S FileComplete
//! send:      A→S FileOffer{to} S→B FileOffer{from}  B→S FileAccept  S→A FileAccept
//!            A→S FileChunk…  S→B FileChunk…  (relayed, never stored)
//! ```
//!
//! Resume: the receiver names the length of the prefix it already holds
//! (`offset`) and, where it can, that prefix's hash, and the sender continues
//! from there. [`FileComplete`] always carries the hash of the *whole* file.
//!
//! Flow control: after the first [`FileAccept`], the receiver keeps sending
//! `FileAccept { offset, prefix_hash: None }` as a cumulative acknowledgement
//! ("I have written everything before `offset`"), and the sender keeps at most
//! a window of unacknowledged bytes in flight. A download needs no first
//! accept: the [`FileOffer`] answering a [`FileRequest`] starts the flow at
//! its `offset`. Acknowledgements are what lets a relay pace a sender to the
//! slowest receiver without buffering.
//!
//! The receiver of an upload answers the sender's [`FileComplete`] with its
//! own `FileComplete` once the file is verified and published, or with a
//! [`FileReject`] (`HASH_MISMATCH`, …) when nothing was published.

use bytes::Bytes;

use crate::wire::{list_memory, text_memory, Reader, Writer};
use crate::{Body, ProtoError};

/// A 32-byte content hash (BLAKE3).
pub type ContentHash = [u8; 32];

/// Client → server: list a folder of the share (`""` is its root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Folder path relative to the share root, `/`-separated.
    pub path: String,
    /// List every file below the folder, not only its direct entries.
    pub recursive: bool,
}

impl Body for ListRequest {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("path", &self.path)?;
        w.bool(self.recursive);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(ListRequest {
            path: r.string("path")?,
            recursive: r.bool("recursive")?,
        })
    }
}

/// One entry of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Path relative to the listed folder, `/`-separated.
    pub name: String,
    /// A folder rather than a file.
    pub is_dir: bool,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified: i64,
}

impl DirEntry {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("entries.name", &self.name)?;
        w.bool(self.is_dir);
        w.u64(self.size);
        w.i64(self.modified);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(DirEntry {
            name: r.string("entries.name")?,
            is_dir: r.bool("entries.is_dir")?,
            size: r.u64("entries.size")?,
            modified: r.i64("entries.modified")?,
        })
    }
}

/// Server → client: the entries of a folder.
///
/// Listing a path that is a file gives one entry with an empty `name`
/// describing the file itself.
///
/// A folder with more entries than one list holds (65,535) is sent as several
/// `Listing` frames on the same stream, the last with `done` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The folder listed.
    pub path: String,
    /// Its entries.
    pub entries: Vec<DirEntry>,
    /// This is the last `Listing` of the answer.
    pub done: bool,
}

impl Listing {
    /// About how many bytes it holds in memory (see
    /// [`Message::memory_size`](crate::Message::memory_size)).
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Listing>()
            + text_memory(&self.path)
            + list_memory(&self.entries, |e| text_memory(&e.name))
    }
}

impl Body for Listing {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("path", &self.path)?;
        w.list("entries", &self.entries, |w, e| e.encode(w))?;
        w.bool(self.done);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Listing {
            path: r.string("path")?,
            entries: r.list("entries", DirEntry::decode)?,
            done: r.bool("done")?,
        })
    }
}

/// Client → server: download a file of the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    /// Path relative to the share root, `/`-separated.
    pub name: String,
    /// Bytes the client already holds (resume); 0 for a fresh download.
    pub offset: u64,
    /// Hash of those `offset` bytes, so the server can check they still match
    /// its file before continuing; if they do not, it starts again from 0.
    pub prefix_hash: Option<ContentHash>,
}

impl Body for FileRequest {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("name", &self.name)?;
        w.u64(self.offset);
        w.opt_array32(self.prefix_hash.as_ref());
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileRequest {
            name: r.string("name")?,
            offset: r.u64("offset")?,
            prefix_hash: r.opt_array32("prefix_hash")?,
        })
    }
}

/// Announces a file about to be sent: the server's answer to a
/// [`FileRequest`], a client's upload, or a client's offer to another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOffer {
    /// File name (a relative `/`-separated path for folder transfers).
    pub name: String,
    /// Total size in bytes.
    pub size: u64,
    /// Hash of the whole file, when the sender knows it up front.
    pub hash: Option<ContentHash>,
    /// The first byte that will be sent (non-zero when resuming).
    pub offset: u64,
    /// For an offer to another user: their nickname (client → server).
    pub to: Option<String>,
    /// For an offer from another user: their nickname (server → client).
    pub from: Option<String>,
}

impl Body for FileOffer {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("name", &self.name)?;
        w.u64(self.size);
        w.opt_array32(self.hash.as_ref());
        w.u64(self.offset);
        w.opt_string("to", self.to.as_deref())?;
        w.opt_string("from", self.from.as_deref())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileOffer {
            name: r.string("name")?,
            size: r.u64("size")?,
            hash: r.opt_array32("hash")?,
            offset: r.u64("offset")?,
            to: r.opt_string("to")?,
            from: r.opt_string("from")?,
        })
    }
}

/// The receiver takes the offered file, starting at `offset` (what it already
/// holds of it; 0 for all of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAccept {
    /// The first byte the receiver wants.
    pub offset: u64,
    /// Hash of the `offset` bytes it already holds, if any.
    pub prefix_hash: Option<ContentHash>,
}

impl Body for FileAccept {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.offset);
        w.opt_array32(self.prefix_hash.as_ref());
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileAccept {
            offset: r.u64("offset")?,
            prefix_hash: r.opt_array32("prefix_hash")?,
        })
    }
}

/// The receiver declines an offer or a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReject {
    /// Why, for programs.
    pub code: crate::ErrorCode,
    /// Why, for people; names the offending file.
    pub reason: String,
}

impl Body for FileReject {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u16(self.code.0);
        w.string("reason", &self.reason)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileReject {
            code: crate::ErrorCode(r.u16("code")?),
            reason: r.string("reason")?,
        })
    }
}

/// A piece of file content. `data` is the rest of the payload, shared with the
/// received frame rather than copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// Where `data` starts in the file.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

impl Body for FileChunk {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.offset);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileChunk {
            offset: r.u64("offset")?,
            data: r.rest(),
        })
    }
    fn tail(&self) -> Option<&Bytes> {
        Some(&self.data)
    }
}

/// The sender has sent every byte; the receiver verifies size and hash and
/// only then publishes the file under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileComplete {
    /// Total size in bytes.
    pub size: u64,
    /// Hash of the whole file.
    pub hash: ContentHash,
}

impl Body for FileComplete {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.size);
        w.bytes(&self.hash);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileComplete {
            size: r.u64("size")?,
            hash: r.array32("hash")?,
        })
    }
}

/// Either side abandons the transfer on this stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCancel {
    /// Why, for programs.
    pub code: crate::ErrorCode,
    /// Why, for people.
    pub reason: String,
}

impl Body for FileCancel {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u16(self.code.0);
        w.string("reason", &self.reason)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(FileCancel {
            code: crate::ErrorCode(r.u16("code")?),
            reason: r.string("reason")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::round_trip;
    use crate::ErrorCode;

    use super::*;

    #[test]
    fn listing_round_trips() {
        round_trip(ListRequest {
            path: "music/2024".into(),
            recursive: true,
        });
        round_trip(Listing {
            path: "".into(),
            entries: vec![
                DirEntry {
                    name: "a.txt".into(),
                    is_dir: false,
                    size: 3,
                    modified: -1,
                },
                DirEntry {
                    name: "sub".into(),
                    is_dir: true,
                    size: 0,
                    modified: 1_700_000_000,
                },
            ],
            done: true,
        });
    }

    #[test]
    fn transfer_round_trips() {
        round_trip(FileRequest {
            name: "a.txt".into(),
            offset: 0,
            prefix_hash: None,
        });
        round_trip(FileRequest {
            name: "a.txt".into(),
            offset: 10,
            prefix_hash: Some([7; 32]),
        });
        round_trip(FileOffer {
            name: "dir/b.bin".into(),
            size: u64::MAX,
            hash: Some([1; 32]),
            offset: 5,
            to: Some("bob".into()),
            from: None,
        });
        round_trip(FileAccept {
            offset: 1 << 40,
            prefix_hash: None,
        });
        round_trip(FileReject {
            code: ErrorCode::ALREADY_EXISTS,
            reason: "b.bin exists".into(),
        });
        round_trip(FileChunk {
            offset: 65536,
            data: Bytes::from_static(b"chunk"),
        });
        round_trip(FileChunk {
            offset: 0,
            data: Bytes::new(),
        });
        round_trip(FileComplete {
            size: 9,
            hash: [9; 32],
        });
        round_trip(FileCancel {
            code: ErrorCode::OTHER,
            reason: "user cancelled".into(),
        });
    }
}
