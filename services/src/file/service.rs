//! The server side of file transfer: listing and serving the share, taking
//! uploads into the inbox, and relaying offers between users.
//!
//! Sans-IO towards the network (frames in, [`Outgoing`] frames out) but it
//! reads and writes files: downloads are pumped chunk by chunk as the
//! receiver's acknowledgements open the window, so the hub never blocks on
//! a slow peer and memory stays bounded by the window whatever the file size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use lanlink_proto::file::{
    FileAccept, FileCancel, FileComplete, FileOffer, FileReject, FileRequest, ListRequest, Listing,
};
use lanlink_proto::{ErrorCode, Frame, Message, StreamId};
use lanlink_transport::{ConnId, RefusalLog};

use super::incoming::IncomingFile;
use super::outgoing::OutgoingFile;
use super::{listing, path, FileConfig, ACK_EVERY};
use crate::{Outgoing, ServiceError};

type Key = (ConnId, StreamId);

enum Transfer {
    /// We send a shared file to the client.
    Download { file: OutgoingFile },
    /// The client sends us a file for the inbox.
    Upload {
        file: IncomingFile,
        acked: u64,
        /// The size the offer announced; no byte beyond it is accepted.
        size: u64,
    },
    /// The client offers a file to `peer`'s user; we forward its frames.
    RelayFrom { peer: Key },
    /// Another client's file goes to this client; we forward its answers.
    RelayTo { peer: Key },
}

/// File sharing, uploads and relays for every connection of a server.
pub struct FileService {
    config: FileConfig,
    transfers: HashMap<Key, Transfer>,
    next_relay_stream: u32,
    /// Each connection's address: its uploads count against that
    /// address's quota, and its refusals are logged under it.
    peers: HashMap<ConnId, IpAddr>,
    refusals: RefusalLog,
    /// Upload bytes accepted so far, per quota key.
    uploaded: HashMap<String, u64>,
}

impl FileService {
    /// A service with no transfers.
    pub fn new(mut config: FileConfig) -> FileService {
        // Receivers acknowledge every ACK_EVERY bytes: a smaller window
        // would wait forever for an acknowledgement.
        config.window = config.window.max(2 * ACK_EVERY);
        FileService {
            config,
            transfers: HashMap::new(),
            next_relay_stream: 2,
            peers: HashMap::new(),
            refusals: RefusalLog::new(),
            uploaded: HashMap::new(),
        }
    }

    /// Tells the service where `conn` connects from: its uploads count
    /// against that address's quota (reconnecting under another name does
    /// not reset it) and its refusals are logged once per address. A
    /// connection without an address has a quota of its own and its
    /// refusals are logged at debug level only.
    pub fn set_peer(&mut self, conn: ConnId, ip: IpAddr) {
        self.peers.insert(conn, ip);
    }

    /// Logs refusals through `log` (the server shares the transport's).
    pub fn set_refusal_log(&mut self, log: RefusalLog) {
        self.refusals = log;
    }

    /// Upload bytes received so far from `ip`.
    pub fn uploaded(&self, ip: IpAddr) -> u64 {
        self.uploaded
            .get(&ip.to_canonical().to_string())
            .copied()
            .unwrap_or(0)
    }

    /// Whose quota `conn`'s uploads count against: its address, or (with
    /// none given) the connection itself.
    fn quota_key(&self, conn: ConnId) -> String {
        self.peers
            .get(&conn)
            .map_or_else(|| conn.to_string(), |ip| ip.to_canonical().to_string())
    }

    /// Transfers in progress (all connections).
    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    /// Handles one file-class message from `conn`, whose user is called
    /// `from`. `lookup` finds the connection of a user by nickname (for
    /// offers to another user).
    pub fn handle(
        &mut self,
        conn: ConnId,
        from: &str,
        stream: StreamId,
        message: Message,
        lookup: &dyn Fn(&str) -> Option<ConnId>,
        out: &mut Vec<Outgoing>,
    ) {
        let key = (conn, stream);
        let result = match message {
            Message::ListRequest(r) => self.list(key, r, out),
            Message::FileRequest(r) => self.download(key, r, out),
            Message::FileOffer(o) => match o.to.clone() {
                None => self.upload(key, o, out),
                Some(to) => self.relay_offer(key, from, &to, o, lookup, out),
            },
            Message::FileAccept(a) => {
                self.on_accept(key, a, out);
                Ok(())
            }
            Message::FileChunk(c) => self.on_chunk(key, c, out),
            Message::FileComplete(c) => self.on_complete(key, c, out),
            Message::FileReject(r) => {
                self.on_end(key, Message::FileReject(r), out);
                Ok(())
            }
            Message::FileCancel(c) => {
                self.on_end(key, Message::FileCancel(c), out);
                Ok(())
            }
            other => Err(ServiceError::UnexpectedMessage { kind: other.kind() }),
        };
        if let Err(e) = result {
            match self.peers.get(&conn) {
                Some(ip) => {
                    self.refusals.refused(*ip, "file request", &e.to_string());
                }
                None => tracing::debug!(conn = %conn, "file request refused: {e}"),
            }
            if matches!(e, ServiceError::BadStream { .. }) {
                // The transfer already on that stream (if any) is not at fault.
                return reject(out, key, &e);
            }
            if let Some(Transfer::Upload { file, .. }) = self.transfers.remove(&key) {
                // A broken upload keeps its partial file only when the
                // content so far is sound (resume will recheck it).
                if matches!(e, ServiceError::OutOfOrder { .. }) {
                    file.discard();
                }
            }
            reject(out, key, &e);
        }
    }

    /// `conn` is gone: forget its transfers and cancel the relays it was in.
    /// Partial uploads stay on disk for a later resume.
    pub fn disconnect(&mut self, conn: ConnId, out: &mut Vec<Outgoing>) {
        self.peers.remove(&conn);
        let keys: Vec<Key> = self
            .transfers
            .keys()
            .filter(|k| k.0 == conn)
            .copied()
            .collect();
        for key in keys {
            match self.transfers.remove(&key) {
                Some(Transfer::RelayFrom { peer }) | Some(Transfer::RelayTo { peer }) => {
                    self.transfers.remove(&peer);
                    let cancel = FileCancel {
                        code: ErrorCode::OTHER,
                        reason: "the other side disconnected".into(),
                    };
                    out.push(Outgoing {
                        to: peer.0,
                        frame: Frame::new(peer.1, cancel),
                    });
                }
                _ => {}
            }
        }
    }

    fn share(&self) -> Result<&PathBuf, ServiceError> {
        self.config.share.as_ref().ok_or(ServiceError::NotEnabled {
            what: "file sharing",
        })
    }

    /// A new transfer needs a fresh client stream id and a free slot.
    fn check_room_for_another(&self, key: Key) -> Result<(), ServiceError> {
        if !lanlink_proto::is_client_stream(key.1) {
            return Err(ServiceError::BadStream {
                stream: key.1,
                reason: "clients start transfers on odd stream ids",
            });
        }
        if self.transfers.contains_key(&key) {
            return Err(ServiceError::BadStream {
                stream: key.1,
                reason: "a transfer is already running on it",
            });
        }
        let max = self.config.max_transfers_per_client;
        if self.transfers.keys().filter(|k| k.0 == key.0).count() >= max {
            return Err(ServiceError::TooManyTransfers { max });
        }
        Ok(())
    }

    fn list(
        &mut self,
        key: Key,
        r: ListRequest,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let share = self.share()?;
        let rel = path::validate(&r.path, true)?;
        let full = path::resolve_existing(share, &rel, &r.path)?;
        let entries = listing::list(share, &full, r.recursive)?;
        // Split long answers so that no Listing comes near the frame limit:
        // at most 65,535 entries (the list's count field) or ~1 MiB each.
        let mut batches: Vec<Vec<lanlink_proto::file::DirEntry>> = vec![Vec::new()];
        let mut bytes = 0;
        for e in entries {
            let cost = e.name.len() + 32;
            let full = batches
                .last()
                .is_some_and(|b| b.len() == u16::MAX as usize || bytes + cost > 1 << 20);
            if full {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += cost;
            if let Some(b) = batches.last_mut() {
                b.push(e);
            }
        }
        let last = batches.len() - 1;
        for (i, entries) in batches.into_iter().enumerate() {
            send(
                out,
                key,
                Listing {
                    path: r.path.clone(),
                    entries,
                    done: i == last,
                },
            );
        }
        Ok(())
    }

    fn download(
        &mut self,
        key: Key,
        r: FileRequest,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        self.check_room_for_another(key)?;
        let share = self.share()?;
        let rel = path::validate(&r.name, false)?;
        let full = path::resolve_existing(share, &rel, &r.name)?;
        if full.is_dir() {
            return Err(ServiceError::BadPath {
                name: r.name,
                reason: "it is a folder (list it and get its files)",
            });
        }
        let file = OutgoingFile::open(&full, r.offset, r.prefix_hash.as_ref())?;
        let offer = FileOffer {
            name: r.name,
            size: file.size(),
            hash: None,
            offset: file.start(),
            to: None,
            from: None,
        };
        send(out, key, offer);
        self.transfers.insert(key, Transfer::Download { file });
        self.pump(key, out)
    }

    /// Sends download chunks while the window allows.
    fn pump(&mut self, key: Key, out: &mut Vec<Outgoing>) -> Result<(), ServiceError> {
        let (window, chunk) = (self.config.window, self.config.chunk_size);
        let Some(Transfer::Download { file }) = self.transfers.get_mut(&key) else {
            return Ok(());
        };
        while file.can_send(window) {
            match file.next_chunk(chunk)? {
                Some(c) => out.push(Outgoing {
                    to: key.0,
                    frame: Frame::new(key.1, c),
                }),
                None => {
                    send(out, key, file.complete());
                    self.transfers.remove(&key);
                    break;
                }
            }
        }
        Ok(())
    }

    fn upload(
        &mut self,
        key: Key,
        o: FileOffer,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        self.check_room_for_another(key)?;
        let inbox = self
            .config
            .inbox
            .as_ref()
            .ok_or(ServiceError::NotEnabled { what: "uploads" })?;
        let rel = path::validate_target(&o.name)?;
        if o.size > self.config.max_upload_size {
            return Err(ServiceError::FileTooLarge {
                name: o.name,
                size: o.size,
                max: self.config.max_upload_size,
            });
        }
        // Space first, so a refusal leaves nothing behind. A partial file
        // from an earlier attempt already holds part of what is needed.
        let partial = super::incoming::part_path(&inbox.join(&rel));
        let held = std::fs::metadata(&partial)
            .map_or(0, |m| m.len())
            .min(o.size);
        let needed = o.size - held;
        if let Some(quota) = self.config.upload_quota {
            // Bytes are charged as they arrive (see `on_chunk`): a refused
            // or abandoned offer costs nothing, a resumed one only what it
            // still sends.
            let used = self
                .uploaded
                .get(&self.quota_key(key.0))
                .copied()
                .unwrap_or(0);
            if used.saturating_add(needed) > quota {
                return Err(ServiceError::QuotaExceeded {
                    name: o.name,
                    needed,
                    left: quota.saturating_sub(used),
                });
            }
        }
        let available = fs4::available_space(inbox).unwrap_or(u64::MAX);
        if needed > available.saturating_sub(self.config.min_free_space) {
            return Err(ServiceError::NoSpace {
                name: o.name,
                needed,
                available,
            });
        }
        let target = path::prepare_new(inbox, &rel, &o.name)?;
        let busy = self
            .transfers
            .values()
            .any(|t| matches!(t, Transfer::Upload { file, .. } if file.target() == target));
        if busy {
            return Err(ServiceError::UploadInProgress { name: o.name });
        }
        let file = IncomingFile::open(&o.name, target, o.size, self.config.allow_overwrite)?;
        let accept = FileAccept {
            offset: file.received(),
            prefix_hash: file.prefix_hash(),
        };
        send(out, key, accept);
        let acked = file.received();
        self.transfers.insert(
            key,
            Transfer::Upload {
                file,
                acked,
                size: o.size,
            },
        );
        Ok(())
    }

    fn relay_offer(
        &mut self,
        key: Key,
        from: &str,
        to: &str,
        o: FileOffer,
        lookup: &dyn Fn(&str) -> Option<ConnId>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        self.check_room_for_another(key)?;
        path::validate(&o.name, false)?;
        let peer_conn = lookup(to).ok_or_else(|| ServiceError::NoSuchUser {
            name: to.to_owned(),
        })?;
        if peer_conn == key.0 {
            return Err(ServiceError::BadPath {
                name: o.name,
                reason: "you cannot send a file to yourself",
            });
        }
        // Server-chosen streams are even; skip any still in use.
        let mut stream = self.next_relay_stream;
        while self.transfers.contains_key(&(peer_conn, stream)) {
            stream = stream.wrapping_add(2).max(2);
        }
        self.next_relay_stream = stream.wrapping_add(2).max(2);
        let peer = (peer_conn, stream);
        let forwarded = FileOffer {
            to: None,
            from: Some(from.to_owned()),
            ..o
        };
        out.push(Outgoing {
            to: peer.0,
            frame: Frame::new(peer.1, forwarded),
        });
        self.transfers.insert(key, Transfer::RelayFrom { peer });
        self.transfers.insert(peer, Transfer::RelayTo { peer: key });
        Ok(())
    }

    fn on_accept(&mut self, key: Key, a: FileAccept, out: &mut Vec<Outgoing>) {
        match self.transfers.get_mut(&key) {
            Some(Transfer::Download { file }) => {
                file.ack(a.offset);
                if let Err(e) = self.pump(key, out) {
                    tracing::warn!(conn = %key.0, "download failed: {e}");
                    self.transfers.remove(&key);
                    reject(out, key, &e);
                }
            }
            Some(Transfer::RelayTo { peer }) => {
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, a),
                });
            }
            // Late acknowledgements of finished transfers are harmless.
            _ => {}
        }
    }

    fn on_chunk(
        &mut self,
        key: Key,
        c: lanlink_proto::file::FileChunk,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let quota_key = self.quota_key(key.0);
        match self.transfers.get_mut(&key) {
            Some(Transfer::Upload { file, acked, size }) => {
                let end = c.offset.saturating_add(c.data.len() as u64);
                if end > *size {
                    return Err(ServiceError::FileTooLarge {
                        name: file.target().display().to_string(),
                        size: end,
                        max: *size,
                    });
                }
                if let Some(quota) = self.config.upload_quota {
                    // Several uploads at once each passed the offer check.
                    let used = self.uploaded.entry(quota_key).or_insert(0);
                    let len = c.data.len() as u64;
                    if used.saturating_add(len) > quota {
                        return Err(ServiceError::QuotaExceeded {
                            name: file.target().display().to_string(),
                            needed: len,
                            left: quota.saturating_sub(*used),
                        });
                    }
                    *used += len;
                }
                file.write_chunk(c.offset, &c.data)?;
                if file.received() >= *acked + ACK_EVERY {
                    *acked = file.received();
                    send(
                        out,
                        key,
                        FileAccept {
                            offset: file.received(),
                            prefix_hash: None,
                        },
                    );
                }
                Ok(())
            }
            Some(Transfer::RelayFrom { peer }) => {
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, c),
                });
                Ok(())
            }
            // Chunks already in flight when a transfer was refused.
            _ => Ok(()),
        }
    }

    fn on_complete(
        &mut self,
        key: Key,
        c: FileComplete,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        match self.transfers.remove(&key) {
            Some(Transfer::Upload { file, .. }) => {
                let target = file.finish(c.size, &c.hash)?;
                tracing::info!(conn = %key.0, "received upload {}", target.display());
                send(out, key, c);
                Ok(())
            }
            Some(Transfer::RelayFrom { peer }) => {
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, c),
                });
                self.transfers.insert(key, Transfer::RelayFrom { peer });
                Ok(())
            }
            Some(Transfer::RelayTo { peer }) => {
                // The receiver confirms it published the file.
                self.transfers.remove(&peer);
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, c),
                });
                Ok(())
            }
            Some(other) => {
                self.transfers.insert(key, other);
                Err(ServiceError::UnexpectedMessage {
                    kind: lanlink_proto::Kind::FileComplete,
                })
            }
            None => Err(ServiceError::UnknownTransfer { stream: key.1 }),
        }
    }

    /// A reject or cancel from `key`'s side ends the transfer (and its relay
    /// partner's).
    fn on_end(&mut self, key: Key, message: Message, out: &mut Vec<Outgoing>) {
        match self.transfers.remove(&key) {
            Some(Transfer::RelayFrom { peer }) | Some(Transfer::RelayTo { peer }) => {
                self.transfers.remove(&peer);
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame {
                        stream: peer.1,
                        message,
                    },
                });
            }
            Some(Transfer::Upload { file, .. }) => {
                // The sender saw our resume prefix differs from its file:
                // drop the partial so the next offer starts clean.
                if matches!(&message, Message::FileCancel(c) if c.code == ErrorCode::HASH_MISMATCH)
                {
                    file.discard();
                }
            }
            _ => {}
        }
    }
}

fn send(out: &mut Vec<Outgoing>, key: Key, message: impl Into<Message>) {
    out.push(Outgoing {
        to: key.0,
        frame: Frame::new(key.1, message),
    });
}

fn reject(out: &mut Vec<Outgoing>, key: Key, e: &ServiceError) {
    send(
        out,
        key,
        FileReject {
            code: e.code(),
            reason: e.to_string(),
        },
    );
}
