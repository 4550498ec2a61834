//! The server side of file transfer: listing and serving the share, taking
//! uploads into the inbox, and relaying offers between users.
//!
//! Sans-IO: frames come in, [`Outgoing`] frames and [`FileJob`]s go out.
//! Every read, hash, write, `fsync` and deletion is a job (see
//! [`super::jobs`]) that the caller runs elsewhere and reports back with
//! [`FileService::job_done`], so a multi-GiB resume hash never holds up the
//! thread that drives the service. A transfer has at most one job at a time
//! (its open file travels with it); what arrives meanwhile waits in the
//! transfer, bounded: acknowledgements are remembered, upload chunks are
//! queued up to twice the window. Downloads are pumped as the receiver's
//! acknowledgements open the window, so memory stays bounded by the window
//! whatever the file size.
//!
//! Uploads are refused up front when what they need does not fit the free
//! space left above [`FileConfig::min_free_space`] and the space promised
//! to uploads already running; no write ever goes into that reserve (each
//! write job checks). What an upload is promised grows with what it has
//! sent (as much again as it has written, at least [`MIN_HOLD`]), so
//! offers that send nothing cannot hold the disk's free space for
//! themselves and keep everyone else's uploads out. Uploads count
//! their bytes, files and folders against their address's quota; write to a
//! partial file named after their owner (another client offering the same
//! name gets its own); and leave partial files that a periodic sweep deletes
//! once abandoned ([`FileConfig::partial_max_age`]).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanlink_proto::file::{
    FileAccept, FileCancel, FileChunk, FileComplete, FileOffer, FileReject, FileRequest,
    ListRequest, Listing,
};
use lanlink_proto::{ErrorCode, Frame, Message, StreamId};
use lanlink_transport::limits::DEFAULT_MAX_KEYS;
use lanlink_transport::{ConnId, KeyedBuckets, RefusalLog};

use super::incoming::{owned_part_path, IncomingFile};
use super::jobs::{
    self, FileDone, FileJob, Opened, Outcome, Ticket, UploadRequest, Work, ENTRY_COST,
};
use super::known::KnownHashes;
use super::ledger::{UploadLedger, Usage};
use super::outgoing::OutgoingFile;
use super::{path, shown, FileConfig, ACK_EVERY};
use crate::text::display_safe;
use crate::{Outgoing, ServiceError};

type Key = (ConnId, StreamId);

/// Offers from one address that may wait for one user's answer at once,
/// and from everyone together: beyond them an offer is refused, so a
/// sender cannot bury a user in offers.
pub const MAX_OFFERS_WAITING_PER_SENDER: usize = 2;
/// See [`MAX_OFFERS_WAITING_PER_SENDER`].
pub const MAX_OFFERS_WAITING: usize = 16;
/// Offers relayed from one other server (scale-out) that may wait for one
/// user at once: its users together hold at most half of the user's
/// [`MAX_OFFERS_WAITING`], so one hostile server parking offers cannot
/// take them all.
pub const MAX_OFFERS_WAITING_PER_SERVER: usize = MAX_OFFERS_WAITING / 2;

/// A relayed file whose receiver acknowledged less than this in
/// [`RELAY_STALLED_AFTER`] has stalled: when all of its receiver's
/// [`MAX_OFFERS_WAITING`] are taken, the longest-stalled one makes room
/// for a new offer. Sixteen senders from eight addresses dripping a few
/// KiB now and then used to keep every other sender out for as long as
/// they dripped. (Receivers acknowledge every [`ACK_EVERY`]: a file
/// holds its place when full at about 100 KB/s.)
pub const RELAY_STALL_STEP: u64 = 256 * 1024;
/// See [`RELAY_STALL_STEP`].
pub const RELAY_STALLED_AFTER: Duration = Duration::from_secs(10);
/// A file just accepted has this much longer for its first step: its
/// sender may first hash what the receiver already has (a resume). Short:
/// a sender that ends its file within the grace and offers it again holds
/// a place for the grace, for a strike each time (helper-85: with 20 s,
/// sixteen such senders held a receiver at 0 B/s).
pub const RELAY_FIRST_GRACE: Duration = Duration::from_secs(10);

/// The free space an upload is promised before it has sent anything; from
/// then on it may hold as much as it has already written, up to what it
/// still needs (see [`hold`]).
pub const MIN_HOLD: u64 = ACK_EVERY;

/// What an upload of `size` bytes that has `received` of them may hold
/// promised: what it still needs, but no more than it has proven it sends
/// (its bytes so far, or [`MIN_HOLD`]). Offers that send nothing cannot
/// reserve the disk for themselves.
pub(super) fn hold(size: u64, received: u64) -> u64 {
    size.saturating_sub(received).min(received.max(MIN_HOLD))
}

/// The owner of the server's own jobs (the partial-file sweep).
const HOUSEKEEPING: ConnId = ConnId(0);

/// Upload bytes received and not yet written, from one address's uploads
/// together: an honest sender has at most its window (4 MiB) per upload
/// in flight; beyond this a chunk is refused and its upload ends.
pub const MAX_PENDING_PER_ADDRESS: u64 = 32 * 1024 * 1024;

/// The same from every upload together.
pub const MAX_PENDING_IN_ALL: u64 = 256 * 1024 * 1024;

/// The longest name of a file offered to another user, in bytes: the
/// receiver writes it under a folder of its own, within the system's
/// path limit (4,096 bytes on Linux).
pub const MAX_OFFERED_NAME_LEN: usize = 1024;

/// Uploads from one address that have sent less than [`MIN_HOLD`] (or
/// their whole file, if smaller): each holds that much of the free space
/// while it has proven less. (Found by the fifth attack: counting an
/// upload as sending after its first chunk, even an empty one, let four
/// addresses hold 190 MiB with 190 one-byte uploads.)
pub const MAX_SILENT_UPLOADS_PER_ADDRESS: usize = 4;

/// Connection ids from here up stand for other servers (scale-out): a
/// file offered to `user@server` is relayed to that server's id as if to
/// a connection, and what that server sends back comes from it. The
/// transport counts its connections up from 1 and never gets near.
pub const FIRST_OTHER_SERVER: u64 = u64::MAX / 4;

/// Relayed transfers one other server may have here at once (its users'
/// offers to users here, and answers to ours).
pub const TRANSFERS_PER_OTHER_SERVER: usize = 64;

/// Whether `conn` stands for another server ([`FIRST_OTHER_SERVER`]).
pub fn is_other_server(conn: ConnId) -> bool {
    (FIRST_OTHER_SERVER..u64::MAX / 2).contains(&conn.0)
}

enum Transfer {
    /// We send a shared file to the client.
    Download(Download),
    /// The client sends us a file for the inbox.
    Upload(Box<Upload>),
    /// The client offers a file to `peer`'s user; we forward its frames:
    /// chunks only once the receiver accepted (`acked`: its latest
    /// acknowledgement), and within twice the window past it.
    RelayFrom { peer: Key, acked: Option<Acked> },
    /// Another client's file goes to this client; we forward its answers.
    RelayTo { peer: Key },
}

/// A relayed file its receiver accepted, and how far the receiver has
/// acknowledged it: what arrived and was written there, not what a sender
/// pushed (a sender trickling into a receiver that has stopped for a while
/// must not look better than the honest file waiting on it).
#[derive(Clone, Copy)]
struct Acked {
    /// The latest acknowledged offset.
    offset: u64,
    /// Where the receiver accepted it from.
    start: u64,
    /// The acknowledged offset when it last moved on by
    /// [`RELAY_STALL_STEP`], and when (at first, later than the acceptance
    /// by [`RELAY_FIRST_GRACE`]).
    mark: u64,
    moved: Instant,
}

impl Acked {
    fn new(offset: u64, now: Instant) -> Acked {
        Acked {
            offset,
            start: offset,
            mark: offset,
            moved: now + RELAY_FIRST_GRACE,
        }
    }

    /// The receiver acknowledged up to `offset`.
    fn acknowledged(&mut self, offset: u64, now: Instant) {
        self.offset = self.offset.max(offset);
        if self.offset >= self.mark.saturating_add(RELAY_STALL_STEP) {
            self.mark = self.offset;
            self.moved = now;
        }
    }

    /// Whether it ended without having moved [`RELAY_STALL_STEP`].
    fn unmoved(&self) -> bool {
        self.offset < self.start.saturating_add(RELAY_STALL_STEP)
    }

    /// Since when it has moved less than [`RELAY_STALL_STEP`], if for
    /// [`RELAY_STALLED_AFTER`] or longer.
    fn stalled_since(&self, now: Instant) -> Option<Instant> {
        (now.saturating_duration_since(self.moved) >= RELAY_STALLED_AFTER).then_some(self.moved)
    }
}

struct Download {
    ticket: Ticket,
    /// The name the client asked for.
    name: String,
    /// `None` while a job has it (opening, reading).
    file: Option<Box<OutgoingFile>>,
    /// The receiver's latest acknowledgement (kept while the file is away).
    acked: u64,
    cancel: Arc<AtomicBool>,
}

struct Upload {
    ticket: Ticket,
    /// The name the client gave (shown in refusals: never a server path).
    name: String,
    /// The owner's partial file: one upload at a time may write it.
    part: PathBuf,
    /// The size the offer announced; no byte beyond it is accepted.
    size: u64,
    /// `None` while a job has it (opening, writing, finishing).
    file: Option<Box<IncomingFile>>,
    /// `FileAccept` sent: chunks may come.
    accepted: bool,
    /// Where the next chunk must start.
    next_offset: u64,
    /// The offset last acknowledged to the sender.
    acked: u64,
    /// Chunks received and not yet written.
    pending: Vec<FileChunk>,
    pending_bytes: u64,
    /// Its address's quota key (its pending bytes count there).
    owner: String,
    /// Whether any chunk came yet.
    sent: bool,
    /// The sender's `FileComplete`, once it came.
    complete: Option<FileComplete>,
    /// Free space promised to this upload and not yet written.
    reserve: u64,
    /// Quota entries held for it until its open job says how many it used.
    entries_held: u64,
    cancel: Arc<AtomicBool>,
}

/// A listing being prepared.
struct PendingList {
    key: Key,
    path: String,
    cancel: Arc<AtomicBool>,
}

/// One transfer in progress, as [`FileService::transfers_of`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferInfo {
    /// A shared file going to the client, by the name it asked for.
    Download(String),
    /// A file coming from the client into the inbox, by the name it gave.
    Upload(String),
    /// The client's file relayed to another connection's user.
    SendingTo(ConnId),
    /// Another connection's file relayed to the client.
    ReceivingFrom(ConnId),
}

/// File sharing, uploads and relays for every connection of a server.
pub struct FileService {
    config: FileConfig,
    transfers: HashMap<Key, Transfer>,
    /// The transfer each upload or download ticket belongs to.
    tickets: HashMap<Ticket, Key>,
    listings: HashMap<Ticket, PendingList>,
    next_ticket: Ticket,
    next_relay_stream: u32,
    /// Each connection's address: its uploads count against that
    /// address's quota, and its refusals are logged under it.
    peers: HashMap<ConnId, IpAddr>,
    refusals: RefusalLog,
    /// Quota use per quota key and free space promised to running
    /// uploads, shared with the other ways into the inbox.
    ledger: UploadLedger,
    /// Jobs handed out and not yet done, per connection.
    outstanding: HashMap<ConnId, usize>,
    /// Upload bytes received and not yet handed to a write, per address
    /// (quota key) and in all.
    pending: HashMap<String, u64>,
    pending_in_all: u64,
    /// Tickets of ended uploads whose partial file is to be deleted when
    /// their job brings it back.
    discard_on_return: HashSet<Ticket>,
    jobs: Vec<FileJob>,
    /// When the next sweep of abandoned partial files is due, and whether
    /// one is running.
    next_sweep: Option<Instant>,
    sweeping: bool,
    /// Senders' sides of relayed offers the receiver has not accepted yet.
    unanswered: HashSet<Key>,
    /// Per quota key: offers that ended unanswered (see
    /// [`FileConfig::unanswered_offer_rate`]).
    offer_strikes: KeyedBuckets<String>,
    /// The latest time the service was given (by `handle` or `tick`).
    now: Option<Instant>,
    /// Hashes of shared files learnt by sending them whole.
    known: KnownHashes,
}

impl FileService {
    /// A service with no transfers.
    pub fn new(mut config: FileConfig) -> FileService {
        // Receivers acknowledge every ACK_EVERY bytes: a smaller window
        // would wait forever for an acknowledgement.
        config.window = config.window.max(2 * ACK_EVERY);
        config.max_jobs_per_client = config.max_jobs_per_client.max(1);
        let offer_strikes = KeyedBuckets::new(config.unanswered_offer_rate, DEFAULT_MAX_KEYS);
        FileService {
            transfers: HashMap::new(),
            tickets: HashMap::new(),
            listings: HashMap::new(),
            next_ticket: 1,
            next_relay_stream: 2,
            peers: HashMap::new(),
            refusals: RefusalLog::new(),
            ledger: config.ledger.clone(),
            outstanding: HashMap::new(),
            pending: HashMap::new(),
            pending_in_all: 0,
            discard_on_return: HashSet::new(),
            jobs: Vec::new(),
            next_sweep: None,
            sweeping: false,
            unanswered: HashSet::new(),
            offer_strikes,
            now: None,
            known: KnownHashes::default(),
            config,
        }
    }

    /// Tells the service where `conn` connects from: its uploads count
    /// against that address's quota (reconnecting under another name does
    /// not reset it) and belong to that address (its partial files are
    /// resumed by it alone), and its refusals are logged once per address.
    /// A connection without an address has a quota and partial files of
    /// its own and its refusals are logged at debug level only.
    pub fn set_peer(&mut self, conn: ConnId, ip: IpAddr) {
        self.peers.insert(conn, ip);
    }

    /// Logs refusals through `log` (the server shares the transport's).
    pub fn set_refusal_log(&mut self, log: RefusalLog) {
        self.refusals = log;
    }

    /// Upload quota used so far by `ip`: bytes received plus
    /// [`ENTRY_COST`] for each file and folder created.
    pub fn uploaded(&self, ip: IpAddr) -> u64 {
        self.usage_of(&ip.to_canonical().to_string()).bytes
    }

    /// Files and folders `ip`'s uploads created so far.
    pub fn uploaded_entries(&self, ip: IpAddr) -> u64 {
        self.usage_of(&ip.to_canonical().to_string()).entries
    }

    /// Free space promised to running uploads and not yet written.
    pub fn reserved_space(&self) -> u64 {
        self.ledger.reserved()
    }

    /// Changes the free space to keep, as if the disk had filled up.
    #[cfg(test)]
    pub(super) fn set_min_free_space_for_tests(&mut self, bytes: u64) {
        self.config.min_free_space = bytes;
    }

    fn usage_of(&self, key: &str) -> Usage {
        self.ledger.lock().usage_of(key)
    }

    /// Whose quota `conn`'s uploads count against, and who owns its partial
    /// files: its address, or (with none given) the connection itself.
    fn quota_key(&self, conn: ConnId) -> String {
        self.peers
            .get(&conn)
            .map_or_else(|| conn.to_string(), |ip| ip.to_canonical().to_string())
    }

    /// Transfers in progress (all connections).
    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    /// The transfers `conn` has in progress, for an operator: downloads
    /// and uploads by the name the client gave, relays by the other end.
    pub fn transfers_of(&self, conn: ConnId) -> Vec<TransferInfo> {
        let mut mine: Vec<(StreamId, TransferInfo)> = self
            .transfers
            .iter()
            .filter(|((c, _), _)| *c == conn)
            .map(|((_, stream), t)| {
                let info = match t {
                    Transfer::Download(d) => TransferInfo::Download(d.name.clone()),
                    Transfer::Upload(u) => TransferInfo::Upload(u.name.clone()),
                    Transfer::RelayFrom { peer, .. } => TransferInfo::SendingTo(peer.0),
                    Transfer::RelayTo { peer } => TransferInfo::ReceivingFrom(peer.0),
                };
                (*stream, info)
            })
            .collect();
        mine.sort_by_key(|(stream, _)| *stream);
        mine.into_iter().map(|(_, info)| info).collect()
    }

    /// The jobs the service wants run, oldest first. Run each (anywhere)
    /// and hand its result to [`job_done`](Self::job_done).
    pub fn take_jobs(&mut self) -> Vec<FileJob> {
        std::mem::take(&mut self.jobs)
    }

    /// Runs every job on this thread, and the jobs their results lead to,
    /// until none is left: for tests and for callers that do not mind
    /// blocking.
    pub fn work_inline(&mut self, out: &mut Vec<Outgoing>) {
        loop {
            let jobs = self.take_jobs();
            if jobs.is_empty() {
                return;
            }
            for job in jobs {
                self.job_done(job.run(), out);
            }
        }
    }

    /// Timers: starts a sweep of abandoned partial files when one is due.
    pub fn tick(&mut self, now: Instant) {
        self.now = Some(now);
        let (Some(inbox), Some(age)) = (&self.config.inbox, self.config.partial_max_age) else {
            return;
        };
        if self.sweeping || self.next_sweep.is_some_and(|due| now < due) {
            return;
        }
        // Often enough that a partial goes soon after its age, rarely
        // enough that a big inbox is not walked all the time.
        let every = (age / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        self.next_sweep = Some(now + every);
        self.sweeping = true;
        let keep = self
            .transfers
            .values()
            .filter_map(|t| match t {
                Transfer::Upload(u) => Some(u.part.clone()),
                _ => None,
            })
            .collect();
        let work = Work::Sweep {
            inbox: inbox.clone(),
            older_than: age,
            keep,
        };
        self.jobs.push(FileJob {
            owner: HOUSEKEEPING,
            ticket: 0,
            work,
        });
    }

    /// Handles one file-class message from `conn`, whose user is called
    /// `from`, at time `now`. `lookup` finds the connection of a user by
    /// nickname (for offers to another user).
    #[allow(clippy::too_many_arguments)]
    pub fn handle(
        &mut self,
        conn: ConnId,
        from: &str,
        stream: StreamId,
        message: Message,
        now: Instant,
        lookup: &dyn Fn(&str) -> Option<ConnId>,
        out: &mut Vec<Outgoing>,
    ) {
        self.now = Some(now);
        let key = (conn, stream);
        if is_other_server(conn) {
            // Another server only relays its users' offers and answers:
            // it neither lists, downloads nor uploads here.
            let relayed = match &message {
                Message::FileOffer(o) => o.to.is_some(),
                Message::ListRequest(_) | Message::FileRequest(_) => false,
                _ => true,
            };
            if !relayed {
                let e = ServiceError::UnexpectedMessage {
                    kind: message.kind(),
                };
                return self.refuse(out, key, &e);
            }
        }
        let result = match message {
            Message::ListRequest(r) => self.list(key, r),
            Message::FileRequest(r) => self.download(key, r),
            Message::FileOffer(o) => match o.to.clone() {
                None => self.upload(key, o),
                Some(to) => self.relay_offer(key, from, &to, o, lookup, out),
            },
            Message::FileAccept(a) => {
                self.on_accept(key, a, now, out);
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
            if matches!(e, ServiceError::BadStream { .. }) {
                // The transfer already on that stream (if any) is not at fault.
                return self.refuse(out, key, &e);
            }
            // A broken upload keeps its partial file only when the content
            // so far is sound (resume will recheck it).
            let discard = matches!(e, ServiceError::OutOfOrder { .. });
            self.end_transfer(key, discard);
            self.refuse(out, key, &e);
        }
    }

    /// Takes back a job's result (see [`take_jobs`](Self::take_jobs)).
    pub fn job_done(&mut self, done: FileDone, out: &mut Vec<Outgoing>) {
        let FileDone {
            owner,
            ticket,
            outcome,
        } = done;
        if let Some(n) = self.outstanding.get_mut(&owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.outstanding.remove(&owner);
            }
        }
        if let Outcome::Swept { removed } = outcome {
            self.sweeping = false;
            if removed > 0 {
                tracing::info!("removed {removed} abandoned partial upload(s)");
            }
            return;
        }
        if let Outcome::Listed(result) = outcome {
            if let Some(l) = self.listings.remove(&ticket) {
                match result {
                    Ok(entries) => send_listing(out, l.key, &l.path, entries),
                    Err(e) => self.refuse(out, l.key, &e.for_peer(&l.path)),
                }
            }
            return;
        }
        let key = self.tickets.get(&ticket).copied();
        let Some(key) = key.filter(|k| self.transfers.contains_key(k)) else {
            return self.orphaned(owner, ticket, outcome);
        };
        match outcome {
            Outcome::DownloadOpened(r) => self.download_opened(key, r, out),
            Outcome::Read {
                file,
                chunks,
                result,
            } => self.download_read(key, file, chunks, result, out),
            Outcome::UploadOpened(r) => self.upload_opened(key, r, out),
            Outcome::UploadOpening(opening) => {
                // Another slice of hashing, after everyone else's turn.
                if let Some(Transfer::Upload(u)) = self.transfers.get(&key) {
                    let cancel = u.cancel.clone();
                    self.push_job(key.0, ticket, Work::ContinueUpload { opening, cancel });
                }
            }
            Outcome::Written {
                file,
                written,
                result,
            } => self.upload_written(key, file, written, result, out),
            Outcome::Finished(r) => self.upload_finished(key, r, out),
            Outcome::Listed(_) | Outcome::Swept { .. } | Outcome::Discarded => {}
        }
    }

    /// `conn` is gone: forget its transfers and cancel the relays it was in.
    /// Partial uploads stay on disk for a later resume (until the sweep).
    pub fn disconnect(&mut self, conn: ConnId, out: &mut Vec<Outgoing>) {
        let keys: Vec<Key> = self
            .transfers
            .keys()
            .filter(|k| k.0 == conn)
            .copied()
            .collect();
        for key in keys {
            match self.transfers.get(&key) {
                Some(Transfer::RelayFrom { peer, .. }) | Some(Transfer::RelayTo { peer }) => {
                    let peer = *peer;
                    self.strike_if_unmoved(key);
                    self.cancel_relay(
                        key,
                        peer,
                        ErrorCode::OTHER,
                        "the other side disconnected",
                        out,
                    );
                }
                _ => self.end_transfer(key, false),
            }
        }
        self.listings.retain(|_, l| {
            if l.key.0 == conn {
                jobs::cancel(&l.cancel);
            }
            l.key.0 != conn
        });
        self.peers.remove(&conn);
        self.outstanding.remove(&conn);
    }

    /// A name to write (an upload's, or one offered to a user), checked,
    /// and no deeper than [`FileConfig::max_upload_depth`].
    fn checked_target(&self, name: &str) -> Result<PathBuf, ServiceError> {
        let rel = path::validate_target(name)?;
        if rel.components().count() > self.config.max_upload_depth {
            return Err(ServiceError::BadPath {
                name: name.to_owned(),
                reason: "it is nested too deep",
            });
        }
        Ok(rel)
    }

    fn share(&self) -> Result<&PathBuf, ServiceError> {
        self.config.share.as_ref().ok_or(ServiceError::NotEnabled {
            what: "file sharing",
        })
    }

    fn new_ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn push_job(&mut self, owner: ConnId, ticket: Ticket, work: Work) {
        *self.outstanding.entry(owner).or_insert(0) += 1;
        self.jobs.push(FileJob {
            owner,
            ticket,
            work,
        });
    }

    /// A client may not pile up disk work: its jobs wait their turn on
    /// the workers, and beyond its share new requests are refused.
    fn check_not_busy(&self, conn: ConnId) -> Result<(), ServiceError> {
        if self.outstanding.get(&conn).copied().unwrap_or(0) >= self.config.max_jobs_per_client {
            return Err(ServiceError::Busy {
                reason: "still working on your earlier file requests; try again when they finish",
            });
        }
        Ok(())
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
        // Offers relayed *to* this client are the senders' transfers, not
        // its own: they do not take its slots.
        let max = if is_other_server(key.0) {
            TRANSFERS_PER_OTHER_SERVER
        } else {
            self.config.max_transfers_per_client
        };
        let mine = self
            .transfers
            .iter()
            .filter(|(k, t)| k.0 == key.0 && !matches!(t, Transfer::RelayTo { .. }))
            .count();
        if mine >= max {
            return Err(ServiceError::TooManyTransfers { max });
        }
        self.check_not_busy(key.0)
    }

    fn list(&mut self, key: Key, r: ListRequest) -> Result<(), ServiceError> {
        let share = self.share()?.clone();
        path::validate(&r.path, true)?;
        self.check_not_busy(key.0)?;
        let ticket = self.new_ticket();
        let cancel = Arc::new(AtomicBool::new(false));
        self.listings.insert(
            ticket,
            PendingList {
                key,
                path: r.path.clone(),
                cancel: cancel.clone(),
            },
        );
        let work = Work::List {
            share,
            path: r.path,
            recursive: r.recursive,
            cancel,
        };
        self.push_job(key.0, ticket, work);
        Ok(())
    }

    fn download(&mut self, key: Key, r: FileRequest) -> Result<(), ServiceError> {
        self.check_room_for_another(key)?;
        let share = self.share()?.clone();
        // Never a partial file (another address's, when the share is the
        // inbox: fifth attack), nor anything through one.
        path::validate_existing(&r.name)?;
        let ticket = self.new_ticket();
        let cancel = Arc::new(AtomicBool::new(false));
        let work = Work::OpenDownload {
            share,
            name: r.name.clone(),
            offset: r.offset,
            prefix_hash: r.prefix_hash,
            known: self.known.clone(),
            cancel: cancel.clone(),
        };
        self.push_job(key.0, ticket, work);
        self.tickets.insert(ticket, key);
        self.transfers.insert(
            key,
            Transfer::Download(Download {
                ticket,
                name: r.name,
                file: None,
                acked: 0,
                cancel,
            }),
        );
        Ok(())
    }

    fn download_opened(
        &mut self,
        key: Key,
        result: Result<Box<OutgoingFile>, ServiceError>,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(Transfer::Download(d)) = self.transfers.get_mut(&key) else {
            return;
        };
        match result {
            Ok(file) if file.checking_prefix() => {
                // Another slice of the prefix, after everyone else's turn.
                let (ticket, cancel) = (d.ticket, d.cancel.clone());
                self.push_job(key.0, ticket, Work::CheckPrefix { file, cancel });
            }
            Ok(mut file) => {
                let offer = FileOffer {
                    name: d.name.clone(),
                    size: file.size(),
                    hash: None,
                    offset: file.start(),
                    to: None,
                    from: None,
                };
                file.ack(d.acked);
                d.file = Some(file);
                send(out, key, offer);
                self.pump(key);
            }
            Err(e) => {
                let e = e.for_peer(&d.name);
                self.end_transfer(key, false);
                self.refuse(out, key, &e);
            }
        }
    }

    /// Starts reading download chunks if the window allows and the file is
    /// not away.
    fn pump(&mut self, key: Key) {
        let (window, chunk) = (self.config.window, self.config.chunk_size);
        let Some(Transfer::Download(d)) = self.transfers.get_mut(&key) else {
            return;
        };
        let Some(file) = d.file.take_if(|f| f.can_send(window)) else {
            return;
        };
        let ticket = d.ticket;
        self.push_job(
            key.0,
            ticket,
            Work::Read {
                file,
                window,
                chunk,
            },
        );
    }

    fn download_read(
        &mut self,
        key: Key,
        mut file: Box<OutgoingFile>,
        chunks: Vec<FileChunk>,
        result: Result<bool, ServiceError>,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(Transfer::Download(d)) = self.transfers.get_mut(&key) else {
            return;
        };
        for c in chunks {
            out.push(Outgoing {
                to: key.0,
                frame: Frame::new(key.1, c).into(),
            });
        }
        match result {
            Ok(true) => {
                send(out, key, file.complete());
                self.end_transfer(key, false);
            }
            Ok(false) => {
                file.ack(d.acked);
                d.file = Some(file);
                self.pump(key);
            }
            Err(e) => {
                tracing::warn!(conn = %key.0, "download failed: {}", display_safe(&e.to_string()));
                let e = e.for_peer(&d.name);
                self.end_transfer(key, false);
                self.refuse(out, key, &e);
            }
        }
    }

    fn upload(&mut self, key: Key, o: FileOffer) -> Result<(), ServiceError> {
        self.check_room_for_another(key)?;
        let inbox = self
            .config
            .inbox
            .clone()
            .ok_or(ServiceError::NotEnabled { what: "uploads" })?;
        let rel = self.checked_target(&o.name)?;
        if o.size > self.config.max_upload_size {
            return Err(ServiceError::FileTooLarge {
                name: o.name,
                size: o.size,
                max: self.config.max_upload_size,
            });
        }
        let owner = self.quota_key(key.0);
        let part = owned_part_path(&inbox.join(&rel), &owner);
        let busy = self
            .transfers
            .values()
            .any(|t| matches!(t, Transfer::Upload(u) if u.part == part));
        if busy {
            return Err(ServiceError::UploadInProgress { name: o.name });
        }
        let silent = self
            .transfers
            .values()
            .filter(|t| matches!(t, Transfer::Upload(u) if u.owner == owner && !u.sent))
            .count();
        if silent >= MAX_SILENT_UPLOADS_PER_ADDRESS {
            return Err(ServiceError::Busy {
                reason: "your address has uploads that have not sent enough yet; send those first",
            });
        }
        // Bytes are charged as they arrive (see `on_chunk`), entries once
        // created: a refused or abandoned offer costs nothing, a resumed
        // one only what it still sends. Until the open job says how many
        // entries it created, the most it could create is held.
        let usage = self.usage_of(&owner);
        let quota_left = self
            .config
            .upload_quota
            .map(|q| q.saturating_sub(usage.bytes));
        let entries_left = self
            .config
            .upload_entry_quota
            .map(|q| q.saturating_sub(usage.entries + usage.entries_held));
        if quota_left == Some(0) {
            return Err(ServiceError::QuotaExceeded {
                name: o.name,
                needed: o.size.max(ENTRY_COST),
                left: 0,
            });
        }
        let entries_held = rel.components().count() as u64;
        let ticket = self.new_ticket();
        let cancel = Arc::new(AtomicBool::new(false));
        let request = UploadRequest {
            inbox,
            rel,
            name: o.name.clone(),
            owner: owner.clone(),
            size: o.size,
            overwrite: self.config.allow_overwrite,
            hash: o.hash,
            min_free_space: self.config.min_free_space,
            min_free_inodes: self.config.min_free_inodes,
            reserved_elsewhere: self.ledger.reserved(),
            quota_left,
            entries_left,
            cancel: cancel.clone(),
        };
        self.push_job(key.0, ticket, Work::OpenUpload(Box::new(request)));
        // Promised: a first share, until the upload shows it sends.
        let promised = hold(o.size, 0);
        {
            let mut ledger = self.ledger.lock();
            ledger.reserved += promised;
            ledger.usage.entry(owner).or_default().entries_held += entries_held;
        }
        self.tickets.insert(ticket, key);
        let owner_key = self.quota_key(key.0);
        self.transfers.insert(
            key,
            Transfer::Upload(Box::new(Upload {
                ticket,
                name: o.name,
                part,
                size: o.size,
                file: None,
                accepted: false,
                next_offset: 0,
                acked: 0,
                pending: Vec::new(),
                pending_bytes: 0,
                owner: owner_key,
                sent: false,
                complete: None,
                reserve: promised,
                entries_held,
                cancel,
            })),
        );
        Ok(())
    }

    fn upload_opened(
        &mut self,
        key: Key,
        result: Result<Opened, ServiceError>,
        out: &mut Vec<Outgoing>,
    ) {
        let owner = self.quota_key(key.0);
        let Some(Transfer::Upload(u)) = self.transfers.get_mut(&key) else {
            return;
        };
        let mut guard = self.ledger.lock();
        let ledger = &mut *guard;
        let usage = ledger.usage.entry(owner).or_default();
        usage.entries_held = usage.entries_held.saturating_sub(u.entries_held);
        u.entries_held = 0;
        if let Ok(Opened { file, entries }) = &result {
            usage.entries += entries;
            usage.bytes = usage.bytes.saturating_add(entries * ENTRY_COST);
            let still = hold(u.size, file.received());
            ledger.reserved = ledger.reserved.saturating_sub(u.reserve) + still;
            u.reserve = still;
        }
        drop(guard);
        match result {
            Ok(Opened { file, .. }) => {
                u.accepted = true;
                u.next_offset = file.received();
                u.acked = file.received();
                let accept = FileAccept {
                    offset: file.received(),
                    prefix_hash: file.prefix_hash(),
                };
                u.file = Some(file);
                send(out, key, accept);
            }
            // The very file is there already: say so, as a finished upload.
            Err(ServiceError::AlreadyHeld { size, hash, .. }) => {
                self.end_transfer(key, false);
                send(out, key, FileComplete { size, hash });
            }
            Err(e) => {
                let e = e.for_peer(&u.name);
                self.end_transfer(key, false);
                self.refuse(out, key, &e);
            }
        }
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
        // Written at the receiver: the same rules as any written name.
        // What the receiver will write: the same rules as an upload here,
        // and short enough to fit under the receiver's folder (fifth
        // attack: a 3,987-byte name 17 folders deep ended `receive`).
        self.checked_target(&o.name)?;
        if o.name.len() > MAX_OFFERED_NAME_LEN {
            return Err(ServiceError::BadPath {
                name: o.name,
                reason: "it is too long to be written on the receiver's side",
            });
        }
        let peer_conn = lookup(to).ok_or_else(|| ServiceError::NoSuchUser {
            name: to.to_owned(),
        })?;
        if peer_conn == key.0 {
            return Err(ServiceError::BadPath {
                name: o.name,
                reason: "you cannot send a file to yourself",
            });
        }
        // Offers withdrawn, declined or refused over and over would fill
        // the receiver's screen, or cost the server a scan each: after a
        // few, the sender waits (checked first: a flood of refused offers
        // is refused cheaply).
        let strikes = self.quota_key(key.0);
        if let Some(now) = self.now {
            if let Err(wait) = self.offer_strikes.check(&strikes, now) {
                return Err(ServiceError::TooManyRequests {
                    what: "file offers that ended unanswered or were refused",
                    from: "your address",
                    retry_after_ms: crate::error::millis(wait),
                });
            }
        }
        // Offers waiting for this user (relayed, not yet finished), in all
        // and from the sender's address.
        // The longest-stalled of them, as (since when, the receiver's side).
        let sender = self.peers.get(&key.0);
        let (mut waiting, mut from_sender, mut from_server) = (0, 0, 0);
        let mut stalled: Option<(Instant, Key)> = None;
        for (k, t) in &self.transfers {
            if let (true, Transfer::RelayTo { peer }) = (k.0 == peer_conn, t) {
                waiting += 1;
                if sender.is_some() && self.peers.get(&peer.0) == sender {
                    from_sender += 1;
                }
                if peer.0 == key.0 {
                    from_server += 1;
                }
                let since = match (self.transfers.get(peer), self.now) {
                    (Some(Transfer::RelayFrom { acked: Some(a), .. }), Some(now)) => {
                        a.stalled_since(now)
                    }
                    _ => None,
                };
                if let Some(since) = since.filter(|&s| stalled.is_none_or(|(t, _)| s < t)) {
                    stalled = Some((since, *k));
                }
            }
        }
        // Another server's users have no address here: they count
        // together, against a larger share (its own server counts each
        // one's offers by address).
        let sender_busy = from_sender >= MAX_OFFERS_WAITING_PER_SENDER
            || (is_other_server(key.0) && from_server >= MAX_OFFERS_WAITING_PER_SERVER);
        // A receiver whose every place is taken makes room by ending the
        // longest-stalled file (offers not yet accepted are its own to
        // answer, and files that move are never ended).
        let full = waiting >= MAX_OFFERS_WAITING;
        let make_room = stalled.filter(|_| full && !sender_busy).map(|(_, k)| k);
        let busy = sender_busy || (full && make_room.is_none());
        if busy && !is_other_server(peer_conn) {
            // A local sender's refusal costs its address a token (another
            // server's users share one bucket: not theirs to spend).
            if let (Some(now), false) = (self.now, is_other_server(key.0)) {
                let _ = self.offer_strikes.try_take(&strikes, now);
            }
            return Err(ServiceError::Busy {
                reason:
                    "that user has too many files offered or arriving; try again once some are done",
            });
        }
        if let Some(receiving) = make_room.filter(|_| !is_other_server(peer_conn)) {
            self.end_stalled(receiving, out);
        }
        // Server-chosen streams are even; skip any still in use.
        let mut stream = self.next_relay_stream;
        while self.transfers.contains_key(&(peer_conn, stream)) {
            stream = stream.wrapping_add(2).max(2);
        }
        self.next_relay_stream = stream.wrapping_add(2).max(2);
        let peer = (peer_conn, stream);
        // Another server gets the user it is for (the part before `@`)
        // and the sender's bare name; it names the sender `from@here`.
        let forwarded = FileOffer {
            to: is_other_server(peer_conn)
                .then(|| to.rsplit_once('@').map_or(to, |(user, _)| user).to_owned()),
            from: Some(from.to_owned()),
            ..o
        };
        out.push(Outgoing {
            to: peer.0,
            frame: Frame::new(peer.1, forwarded).into(),
        });
        self.transfers
            .insert(key, Transfer::RelayFrom { peer, acked: None });
        self.transfers.insert(peer, Transfer::RelayTo { peer: key });
        self.unanswered.insert(key);
        Ok(())
    }

    fn on_accept(&mut self, key: Key, a: FileAccept, now: Instant, out: &mut Vec<Outgoing>) {
        match self.transfers.get_mut(&key) {
            Some(Transfer::Download(d)) => {
                d.acked = d.acked.max(a.offset);
                if let Some(file) = &mut d.file {
                    file.ack(a.offset);
                    self.pump(key);
                }
            }
            Some(Transfer::RelayTo { peer }) => {
                let peer = *peer;
                self.unanswered.remove(&peer);
                if let Some(Transfer::RelayFrom { acked, .. }) = self.transfers.get_mut(&peer) {
                    match acked {
                        Some(was) => was.acknowledged(a.offset, now),
                        None => *acked = Some(Acked::new(a.offset, now)),
                    }
                }
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, a).into(),
                });
            }
            // Late acknowledgements of finished transfers are harmless.
            _ => {}
        }
    }

    fn on_chunk(
        &mut self,
        key: Key,
        c: FileChunk,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let quota_key = self.quota_key(key.0);
        // Beyond the window twice over, the sender is not waiting for our
        // acknowledgements: it would make us hold its data in memory.
        let max_pending = 2 * self.config.window;
        match self.transfers.get_mut(&key) {
            Some(Transfer::Upload(u)) => {
                if !u.accepted || u.complete.is_some() {
                    return Err(ServiceError::UnexpectedMessage {
                        kind: lanlink_proto::Kind::FileChunk,
                    });
                }
                let len = c.data.len() as u64;
                let end = c.offset.saturating_add(len);
                if end > u.size {
                    return Err(ServiceError::FileTooLarge {
                        name: u.name.clone(),
                        size: end,
                        max: u.size,
                    });
                }
                if c.offset != u.next_offset {
                    return Err(ServiceError::OutOfOrder {
                        name: u.name.clone(),
                        got: c.offset,
                        expected: u.next_offset,
                    });
                }
                let owner_pending = self.pending.get(&u.owner).copied().unwrap_or(0);
                if u.pending_bytes + len > max_pending
                    || owner_pending + len > MAX_PENDING_PER_ADDRESS
                    || self.pending_in_all + len > MAX_PENDING_IN_ALL
                {
                    return Err(ServiceError::Busy {
                        reason: "data sent faster than acknowledged",
                    });
                }
                if let Some(quota) = self.config.upload_quota {
                    // Several uploads at once each passed the offer check.
                    let mut ledger = self.ledger.lock();
                    let used = &mut ledger.usage.entry(quota_key).or_default().bytes;
                    if used.saturating_add(len) > quota {
                        return Err(ServiceError::QuotaExceeded {
                            name: u.name.clone(),
                            needed: len,
                            left: quota.saturating_sub(*used),
                        });
                    }
                    *used += len;
                }
                u.next_offset = end;
                u.pending_bytes += len;
                u.sent = u.next_offset >= MIN_HOLD.min(u.size);
                *self.pending.entry(u.owner.clone()).or_default() += len;
                self.pending_in_all += len;
                u.pending.push(c);
                self.write_pending(key);
                Ok(())
            }
            Some(Transfer::RelayFrom { peer, acked }) => {
                let (peer, end) = (*peer, c.offset.saturating_add(c.data.len() as u64));
                match acked {
                    // Not accepted yet: nothing to forward (an honest
                    // sender waits for the acceptance's offset).
                    None => Ok(()),
                    // A sender that does not wait for the receiver's
                    // acknowledgements would fill the receiver's
                    // connection until the server cut the receiver off as
                    // too slow (helper-77: 7.2 GiB in 15 s, the receiver
                    // disconnected, a 2 GB partial file): the transfer
                    // ends, on both sides, the sender at fault.
                    Some(acked) if end > acked.offset.saturating_add(max_pending) => {
                        let why = "the sender did not wait for acknowledgements";
                        self.strike_if_unmoved(key);
                        self.cancel_relay(key, peer, ErrorCode::TOO_SLOW, why, out);
                        Err(ServiceError::Busy {
                            reason: "data sent faster than acknowledged",
                        })
                    }
                    Some(_) => {
                        out.push(Outgoing {
                            to: peer.0,
                            frame: Frame::new(peer.1, c).into(),
                        });
                        Ok(())
                    }
                }
            }
            // Chunks already in flight when a transfer was refused.
            _ => Ok(()),
        }
    }

    /// Hands an upload's waiting chunks (or, once they are written and the
    /// sender has finished, the whole file) to a job, unless one has it.
    fn write_pending(&mut self, key: Key) {
        let Some(Transfer::Upload(u)) = self.transfers.get_mut(&key) else {
            return;
        };
        let ticket = u.ticket;
        let Some(file) = u.file.take() else {
            return;
        };
        let work = if !u.pending.is_empty() {
            let written = std::mem::take(&mut u.pending_bytes);
            release_pending(
                &mut self.pending,
                &mut self.pending_in_all,
                &u.owner,
                written,
            );
            Work::Write {
                file,
                chunks: std::mem::take(&mut u.pending),
                min_free_space: self.config.min_free_space,
            }
        } else if let Some(c) = &u.complete {
            Work::Finish {
                file,
                size: c.size,
                hash: c.hash,
            }
        } else {
            u.file = Some(file);
            return;
        };
        self.push_job(key.0, ticket, work);
    }

    fn upload_written(
        &mut self,
        key: Key,
        file: Box<IncomingFile>,
        written: u64,
        result: Result<(), ServiceError>,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(Transfer::Upload(u)) = self.transfers.get_mut(&key) else {
            return;
        };
        let written = written.min(u.reserve);
        u.reserve -= written;
        {
            let mut ledger = self.ledger.lock();
            ledger.reserved = ledger.reserved.saturating_sub(written);
            // The promise grows with what it has sent.
            let want = hold(u.size, file.received());
            if want > u.reserve {
                ledger.reserved += want - u.reserve;
                u.reserve = want;
            }
        }
        if let Err(e) = result {
            let e = e.for_peer(&u.name);
            u.file = Some(file);
            self.end_transfer(key, false);
            return self.refuse(out, key, &e);
        }
        if file.received() >= u.acked + ACK_EVERY {
            u.acked = file.received();
            send(
                out,
                key,
                FileAccept {
                    offset: file.received(),
                    prefix_hash: None,
                },
            );
        }
        u.file = Some(file);
        self.write_pending(key);
    }

    fn on_complete(
        &mut self,
        key: Key,
        c: FileComplete,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        match self.transfers.get_mut(&key) {
            Some(Transfer::Upload(u)) => {
                if !u.accepted || u.complete.is_some() {
                    return Err(ServiceError::UnexpectedMessage {
                        kind: lanlink_proto::Kind::FileComplete,
                    });
                }
                u.complete = Some(c);
                self.write_pending(key);
                Ok(())
            }
            Some(Transfer::RelayFrom { peer, .. }) => {
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, c).into(),
                });
                Ok(())
            }
            Some(Transfer::RelayTo { peer }) => {
                // The receiver confirms it published the file.
                let peer = *peer;
                self.end_relay(key, peer);
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame::new(peer.1, c).into(),
                });
                Ok(())
            }
            Some(Transfer::Download(_)) => Err(ServiceError::UnexpectedMessage {
                kind: lanlink_proto::Kind::FileComplete,
            }),
            None => Err(ServiceError::UnknownTransfer { stream: key.1 }),
        }
    }

    fn upload_finished(
        &mut self,
        key: Key,
        result: Result<PathBuf, ServiceError>,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(Transfer::Upload(u)) = self.transfers.get_mut(&key) else {
            return;
        };
        let complete = u.complete.take();
        let name = u.name.clone();
        // The partial file is gone either way (published or deleted).
        self.end_transfer(key, false);
        match (result, complete) {
            (Ok(target), Some(c)) => {
                tracing::info!(conn = %key.0, "received upload {}", shown(&target));
                send(out, key, c);
            }
            (Ok(_), None) => {}
            (Err(e), _) => self.refuse(out, key, &e.for_peer(&name)),
        }
    }

    /// A reject or cancel from `key`'s side ends the transfer (and its relay
    /// partner's).
    fn on_end(&mut self, key: Key, message: Message, out: &mut Vec<Outgoing>) {
        match self.transfers.get(&key) {
            Some(Transfer::RelayFrom { peer, .. }) | Some(Transfer::RelayTo { peer }) => {
                let peer = *peer;
                self.strike_if_unmoved(key);
                self.end_relay(key, peer);
                out.push(Outgoing {
                    to: peer.0,
                    frame: Frame {
                        stream: peer.1,
                        message,
                    }
                    .into(),
                });
            }
            Some(Transfer::Upload(u)) => {
                // The sender saw our resume prefix differs from its file:
                // drop the partial so the next offer starts clean (its
                // bytes go back to the quota). Not once the sender has
                // said it is complete: the file may be being published,
                // and a refund then let one address store 72 MiB under a
                // 16 MiB quota (fifth attack).
                let mismatch = matches!(&message, Message::FileCancel(c) if c.code == ErrorCode::HASH_MISMATCH);
                let discard = mismatch && u.complete.is_none();
                self.end_transfer(key, discard);
            }
            Some(Transfer::Download(_)) => self.end_transfer(key, false),
            None => {}
        }
    }

    /// Forgets an upload or download: its space promise is released, a job
    /// still working for it is told to stop, and its partial file is
    /// deleted if `discard` (now, or when its job brings it back).
    fn end_transfer(&mut self, key: Key, discard: bool) {
        let Some(transfer) = self.transfers.remove(&key) else {
            return;
        };
        match transfer {
            Transfer::Download(d) => {
                jobs::cancel(&d.cancel);
                self.tickets.remove(&d.ticket);
            }
            Transfer::Upload(u) => {
                jobs::cancel(&u.cancel);
                self.tickets.remove(&u.ticket);
                release_pending(
                    &mut self.pending,
                    &mut self.pending_in_all,
                    &u.owner,
                    u.pending_bytes,
                );
                let owner = self.quota_key(key.0);
                let mut ledger = self.ledger.lock();
                ledger.reserved = ledger.reserved.saturating_sub(u.reserve);
                if discard {
                    // Its bytes leave the disk with it: they leave the
                    // quota too (those received and those resumed from).
                    let usage = ledger.usage.entry(owner.clone()).or_default();
                    usage.bytes = usage.bytes.saturating_sub(u.next_offset);
                }
                if u.entries_held > 0 {
                    let usage = ledger.usage.entry(owner).or_default();
                    usage.entries_held = usage.entries_held.saturating_sub(u.entries_held);
                }
                drop(ledger);
                match u.file {
                    Some(file) if discard => self.push_job(key.0, u.ticket, Work::Discard { file }),
                    Some(_) => {}
                    None if discard => {
                        self.discard_on_return.insert(u.ticket);
                    }
                    None => {}
                }
            }
            Transfer::RelayFrom { .. } | Transfer::RelayTo { .. } => self.strike_if_unanswered(key),
        }
    }

    /// Ends a relayed offer on both sides, telling `peer` why.
    fn cancel_relay(
        &mut self,
        key: Key,
        peer: Key,
        code: ErrorCode,
        reason: &str,
        out: &mut Vec<Outgoing>,
    ) {
        self.end_relay(key, peer);
        let cancel = FileCancel {
            code,
            reason: reason.into(),
        };
        out.push(Outgoing {
            to: peer.0,
            frame: Frame::new(peer.1, cancel).into(),
        });
    }

    /// Ends the stalled relayed file `receiving` (the receiver's side) to
    /// make room for another offer, and tells both sides why.
    fn end_stalled(&mut self, receiving: Key, out: &mut Vec<Outgoing>) {
        let Some(Transfer::RelayTo { peer: sending }) = self.transfers.get(&receiving) else {
            return;
        };
        let sending = *sending;
        tracing::info!(
            receiver = %receiving.0,
            sender = %sending.0,
            "ended a stalled relayed file to make room for another offer"
        );
        let stalled = format!(
            "stalled (less than {} KiB in {} s)",
            RELAY_STALL_STEP / 1024,
            RELAY_STALLED_AFTER.as_secs()
        );
        let why = format!("the file {stalled} and made room for another offer");
        self.cancel_relay(sending, receiving, ErrorCode::TOO_SLOW, &why, out);
        let cancel = FileCancel {
            code: ErrorCode::TOO_SLOW,
            reason: format!("your file {stalled} and its receiver's place went to another offer"),
        };
        // Stalled, whoever's fault: as for an offer left unanswered (a
        // receiver that stops costs an honest sender one token of five).
        if !is_other_server(sending.0) {
            self.strike(sending.0);
        }
        out.push(Outgoing {
            to: sending.0,
            frame: Frame::new(sending.1, cancel).into(),
        });
    }

    /// Ends a relayed offer on both sides (`key` and its `peer`).
    fn end_relay(&mut self, key: Key, peer: Key) {
        self.transfers.remove(&key);
        self.transfers.remove(&peer);
        self.strike_if_unanswered(key);
        self.strike_if_unanswered(peer);
    }

    /// `key` was the sender's side of a relayed offer that ended before
    /// the receiver accepted it: that costs the sender's address a token.
    fn strike_if_unanswered(&mut self, key: Key) {
        if self.unanswered.remove(&key) {
            self.strike(key.0);
        }
    }

    /// `key` is a relayed file its sender ends (a cancel, an overrun, a
    /// disconnect): if it was accepted and had not moved
    /// [`RELAY_STALL_STEP`], that costs its sender's address a token, as
    /// an offer left unanswered does. Offering and ending over and over
    /// would otherwise keep a place fresh for free. (Another server's users
    /// share one bucket: not charged.)
    fn strike_if_unmoved(&mut self, key: Key) {
        let unmoved = matches!(
            self.transfers.get(&key),
            Some(Transfer::RelayFrom { acked: Some(a), .. }) if a.unmoved()
        );
        if unmoved && !is_other_server(key.0) {
            self.strike(key.0);
        }
    }

    /// Costs the address of `conn`, a sender of offers, a token.
    fn strike(&mut self, conn: ConnId) {
        let sender = self.quota_key(conn);
        if let Some(now) = self.now {
            let _ = self.offer_strikes.try_take(&sender, now);
        }
    }

    /// The result of a job whose transfer has ended meanwhile.
    fn orphaned(&mut self, owner: ConnId, ticket: Ticket, outcome: Outcome) {
        let discard = self.discard_on_return.remove(&ticket);
        let outcome = match outcome {
            Outcome::UploadOpening(opening) => match *opening {
                jobs::Opening::Held(opened) => Outcome::UploadOpened(Ok(opened)),
                jobs::Opening::Holds(_) => return,
            },
            other => other,
        };
        let file = match outcome {
            Outcome::UploadOpened(Ok(Opened { file, entries })) => {
                // Created all the same: it counts.
                if let Some(ip) = self.peers.get(&owner) {
                    let mut ledger = self.ledger.lock();
                    let usage = ledger
                        .usage
                        .entry(ip.to_canonical().to_string())
                        .or_default();
                    usage.entries += entries;
                    usage.bytes = usage.bytes.saturating_add(entries * ENTRY_COST);
                }
                Some(file)
            }
            Outcome::Written { file, .. } => Some(file),
            Outcome::Finished(Ok(target)) => {
                tracing::info!(conn = %owner, "received upload {}", shown(&target));
                None
            }
            _ => None,
        };
        if let (Some(file), true) = (file, discard) {
            self.push_job(owner, ticket, Work::Discard { file });
        }
    }

    /// Refuses `key`'s request or transfer with `e`, logging it once per
    /// address.
    fn refuse(&self, out: &mut Vec<Outgoing>, key: Key, e: &ServiceError) {
        match self.peers.get(&key.0) {
            Some(ip) => {
                self.refusals.refused(*ip, "file request", &e.to_string());
            }
            None => {
                tracing::debug!(conn = %key.0, "file request refused: {}", display_safe(&e.to_string()))
            }
        }
        send(
            out,
            key,
            FileReject {
                code: e.code(),
                reason: e.to_string(),
            },
        );
    }
}

impl ServiceError {
    /// This error as a peer may see it: a local path (in an I/O error) is
    /// replaced by the name the peer gave, so refusals never show where
    /// the server keeps its files.
    fn for_peer(self, name: &str) -> ServiceError {
        match self {
            ServiceError::Io { op, source, .. } => ServiceError::Io {
                op,
                path: format!("{name:?}"),
                source,
            },
            ServiceError::NoSpace {
                needed, available, ..
            } => ServiceError::NoSpace {
                name: name.to_owned(),
                needed,
                available,
            },
            other => other,
        }
    }
}

/// Sends a listing, split so that no `Listing` comes near the frame limit:
/// at most 65,535 entries (the list's count field) or ~1 MiB each.
fn send_listing(
    out: &mut Vec<Outgoing>,
    key: Key,
    path: &str,
    entries: Vec<lanlink_proto::file::DirEntry>,
) {
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
                path: path.to_owned(),
                entries,
                done: i == last,
            },
        );
    }
}

fn send(out: &mut Vec<Outgoing>, key: Key, message: impl Into<Message>) {
    out.push(Outgoing {
        to: key.0,
        frame: Frame::new(key.1, message).into(),
    });
}

/// Takes `bytes` an upload of `owner` had waiting off the counts.
fn release_pending(pending: &mut HashMap<String, u64>, in_all: &mut u64, owner: &str, bytes: u64) {
    *in_all = in_all.saturating_sub(bytes);
    if let Some(n) = pending.get_mut(owner) {
        *n = n.saturating_sub(bytes);
        if *n == 0 {
            pending.remove(owner);
        }
    }
}
