//! The client side of file transfer over any [`FileLink`] (a connected
//! [`Client`], or one route of a `lanlink-client` session): list the share,
//! download files and folders, upload, and send to or receive from another
//! user through the server.
//!
//! Transfers run one at a time per [`FileClient`]; frames for other streams
//! (chat, notices) are ignored while one runs. Run several `FileClient`s on
//! links of their own to transfer in parallel.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lanlink_proto::file::{
    ContentHash, DirEntry, FileAccept, FileCancel, FileComplete, FileOffer, FileReject,
    FileRequest, ListRequest,
};
use lanlink_proto::{ErrorCode, Frame, Message, StreamId};
use lanlink_transport::{Client, TransportError};

use super::incoming::IncomingFile;
use super::outgoing::{chunk_for, OutgoingFile, DEFAULT_WINDOW, SMALL_CHUNK};
use super::{listing, path, ACK_EVERY};
use crate::ServiceError;

/// What a finished transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSummary {
    /// The name on the wire.
    pub name: String,
    /// The local file (written or read).
    pub path: PathBuf,
    /// The file's size.
    pub size: u64,
    /// Where this run started (non-zero when it resumed).
    pub resumed_from: u64,
    /// The verified BLAKE3 hash of the whole file.
    pub hash: ContentHash,
    /// How long this run took.
    pub elapsed: Duration,
    /// The file was there already, identical (checked by its hash): nothing
    /// was sent.
    pub unchanged: bool,
}

/// Told about a transfer's progress (a progress bar, a log line, nothing).
pub trait Progress {
    /// A transfer of `total` bytes starts at `resumed_from`.
    fn start(&mut self, name: &str, total: u64, resumed_from: u64);
    /// `done` bytes of it are through.
    fn advance(&mut self, done: u64);
    /// It finished.
    fn finish(&mut self, summary: &TransferSummary);
    /// The connection was lost (`why`); the transfer goes on over a new
    /// one in `retry_in`, resuming where it stopped (see
    /// `lanlink_client::Resuming`). Nothing by default.
    fn interrupted(&mut self, why: &str, retry_in: std::time::Duration) {
        let _ = (why, retry_in);
    }
}

/// Progress that reports nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self, _: &TransferSummary) {}
}

/// What the file client needs of a connection: fresh stream ids, a way to
/// send, and the frames that arrive for its streams.
pub trait FileLink {
    /// A stream id no other request on this connection uses (client-chosen
    /// ids are odd); frames the server sends on it arrive through
    /// [`recv_timeout`](FileLink::recv_timeout) from now on.
    fn open_stream(&self) -> StreamId;
    /// Queues a frame for sending.
    fn send(&self, frame: &Frame) -> Result<(), TransportError>;
    /// The next frame for this link, waiting up to `timeout`: `Ok(None)`
    /// when none came, an error once the connection is gone. Frames of
    /// other streams may be returned too (the file client skips them).
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, TransportError>;
}

impl FileLink for Client {
    fn open_stream(&self) -> StreamId {
        Client::open_stream(self)
    }
    fn send(&self, frame: &Frame) -> Result<(), TransportError> {
        Client::send(self, frame)
    }
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, TransportError> {
        Client::recv_timeout(self, timeout)
    }
}

/// File operations over one connection.
pub struct FileClient<'a, L: FileLink + ?Sized = Client> {
    client: &'a L,
    /// How long to wait for the next frame of a transfer.
    pub timeout: Duration,
    /// How long to wait for another user to accept an offer (default two
    /// minutes); then the offer is withdrawn.
    pub accept_timeout: Duration,
    /// Caps the transfer rate, in bytes per second (like rsync's
    /// `--bwlimit`), to leave bandwidth for others.
    pub rate_limit: Option<u64>,
}

/// Sleeps as long as needed for `moved` bytes since `since` to stay under
/// `limit` bytes per second.
fn pace(limit: Option<u64>, since: Instant, moved: u64) {
    if let Some(limit) = limit.filter(|l| *l > 0) {
        let due = Duration::from_secs_f64(moved as f64 / limit as f64);
        if let Some(wait) = due.checked_sub(since.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// The BLAKE3 hash of a whole file.
fn hash_file(path: &Path) -> Result<ContentHash, ServiceError> {
    let mut file = std::fs::File::open(path).map_err(|e| ServiceError::io("open", path, e))?;
    let mut hasher = blake3::Hasher::new();
    let never = std::sync::atomic::AtomicBool::new(false);
    super::hash_from(&mut file, &mut hasher, u64::MAX, &never, path)?;
    Ok(*hasher.finalize().as_bytes())
}

/// The error a refusal or a cancel of the transfer of `name` (`message`,
/// a `FileReject` or `FileCancel`) stands for.
pub fn refused(name: &str, message: Message) -> ServiceError {
    match message {
        Message::FileReject(FileReject { code, reason })
        | Message::FileCancel(FileCancel { code, reason }) => ServiceError::Refused {
            name: name.to_owned(),
            reason,
            code,
        },
        other => ServiceError::UnexpectedMessage { kind: other.kind() },
    }
}

impl<'a, L: FileLink + ?Sized> FileClient<'a, L> {
    /// File operations on `client`.
    pub fn new(client: &'a L) -> FileClient<'a, L> {
        FileClient {
            client,
            timeout: Duration::from_secs(30),
            accept_timeout: Duration::from_secs(120),
            rate_limit: None,
        }
    }

    fn new_stream(&mut self) -> StreamId {
        self.client.open_stream()
    }

    fn send(&self, stream: StreamId, message: impl Into<Message>) -> Result<(), ServiceError> {
        Ok(self.client.send(&Frame::new(stream, message))?)
    }

    /// Tells the sender on `stream` why its file is refused, and returns
    /// that reason as the error.
    fn refuse<T>(&self, stream: StreamId, e: ServiceError) -> Result<T, ServiceError> {
        let reject = FileReject {
            code: e.code(),
            reason: e.to_string(),
        };
        self.send(stream, reject)?;
        Err(e)
    }

    /// The next message on `stream` (other streams are skipped).
    fn next_on(&self, stream: StreamId, patience: Duration) -> Result<Message, ServiceError> {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ServiceError::NoAnswer {
                    secs: patience.as_secs(),
                });
            }
            match self.client.recv_timeout(left)? {
                Some(f) if f.stream == stream => return Ok(f.message),
                _ => {}
            }
        }
    }

    /// The next message on `stream` while `progress` still has patience
    /// (see [`Progressing`]).
    fn next_progressing(
        &self,
        stream: StreamId,
        progress: &Progressing,
    ) -> Result<Message, ServiceError> {
        self.next_on(stream, progress.left())
            .map_err(|e| progress.no_answer(e))
    }

    /// A message on `stream` that already arrived, if any (others
    /// skipped), without waiting.
    fn next_now(&self, stream: StreamId) -> Result<Option<Message>, ServiceError> {
        while let Some(f) = self.client.recv_timeout(Duration::ZERO)? {
            if f.stream == stream {
                return Ok(Some(f.message));
            }
        }
        Ok(None)
    }

    /// Lists `path` of the server's share (`""` for its root).
    pub fn list(&mut self, path: &str, recursive: bool) -> Result<Vec<DirEntry>, ServiceError> {
        let stream = self.new_stream();
        self.send(
            stream,
            ListRequest {
                path: path.to_owned(),
                recursive,
            },
        )?;
        let mut entries = Vec::new();
        let (mut bytes, mut waiting) = (0, Progressing::new(self.timeout, 0));
        loop {
            match self.next_progressing(stream, &waiting)? {
                Message::Listing(l) => {
                    // No more than a server lists (a hostile one sent ten
                    // million entries, 800 MB).
                    bytes += l.entries.iter().map(|e| e.name.len() + 32).sum::<usize>();
                    waiting.reached(bytes as u64);
                    if entries.len() + l.entries.len() > listing::MAX_ENTRIES
                        || bytes > listing::MAX_BYTES
                    {
                        return Err(ServiceError::ListingTooBig {
                            path: path.to_owned(),
                            max_entries: listing::MAX_ENTRIES,
                            max_bytes: listing::MAX_BYTES,
                        });
                    }
                    entries.extend(l.entries);
                    if l.done {
                        return Ok(entries);
                    }
                }
                other => return Err(refused(path, other)),
            }
        }
    }

    /// Downloads `name` (a file or a whole folder) into `dest`, resuming
    /// any earlier partial download. A file already there that is the same
    /// as the server's (its hash checked by the server) is skipped, so
    /// running an interrupted download again finishes it; one that differs
    /// is an error unless `force` (then it is replaced).
    pub fn get(
        &mut self,
        name: &str,
        dest: &Path,
        force: bool,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ServiceError> {
        let entries = self.list(name, true)?;
        let base = name.rsplit('/').next().unwrap_or(name).to_owned();
        let mut done = Vec::new();
        if let [only] = entries.as_slice() {
            if only.name.is_empty() {
                let local = path::validate_target(&base)?;
                done.push(self.download(name, only.size, dest, &local, force, progress)?);
                return Ok(done);
            }
        }
        for e in entries.iter().filter(|e| !e.is_dir) {
            // Names come from the server: validate them like any other input.
            let remote = format!("{name}/{}", e.name);
            let local = path::validate_target(&format!("{base}/{}", e.name))?;
            done.push(self.download(&remote, e.size, dest, &local, force, progress)?);
        }
        Ok(done)
    }

    fn download(
        &mut self,
        remote: &str,
        size: u64,
        dest: &Path,
        local: &Path,
        force: bool,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ServiceError> {
        let started = Instant::now();
        let shown = local.to_string_lossy().into_owned();
        let target = path::prepare_new(dest, local, &shown)?;
        if !force && target.is_file() {
            return self.check_existing(remote, size, &target, &shown, started, progress);
        }
        let mut file = IncomingFile::open(&shown, target, size, force)?;
        let stream = self.new_stream();
        self.send(
            stream,
            FileRequest {
                name: remote.to_owned(),
                offset: file.received(),
                prefix_hash: file.prefix_hash(),
            },
        )?;
        let offer = match self.next_on(stream, self.timeout)? {
            Message::FileOffer(o) => o,
            other => return Err(refused(remote, other)),
        };
        if offer.offset != file.received() {
            file.restart()?;
        }
        let resumed_from = file.received();
        progress.start(&shown, offer.size, resumed_from);
        match self.receive_chunks(stream, &mut file, started, progress)? {
            Message::FileComplete(FileComplete { size, hash }) => {
                // The sender may have started again from byte 0.
                let resumed_from = if file.restarted() { 0 } else { resumed_from };
                let path = file.finish(size, &hash)?;
                let summary = TransferSummary {
                    name: remote.to_owned(),
                    path,
                    size,
                    resumed_from,
                    hash,
                    elapsed: started.elapsed(),
                    unchanged: false,
                };
                progress.finish(&summary);
                Ok(summary)
            }
            other => Err(refused(remote, other)),
        }
    }

    /// `target` exists already (a run that finished it before being
    /// interrupted in a later file). Asks the server to resume after its
    /// last byte, with its hash as the prefix hash: the server checks it and,
    /// if the content is the same, offers from that offset and confirms its
    /// whole-file hash at once; otherwise it starts from byte 0, and we
    /// cancel, since the file here is not ours to replace.
    fn check_existing(
        &mut self,
        remote: &str,
        size: u64,
        target: &Path,
        shown: &str,
        started: Instant,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ServiceError> {
        let exists = || ServiceError::AlreadyExists {
            name: shown.to_owned(),
        };
        let len = std::fs::metadata(target)
            .map_err(|e| ServiceError::io("inspect", target, e))?
            .len();
        if len != size {
            return Err(exists());
        }
        let hash = hash_file(target)?;
        let stream = self.new_stream();
        self.send(
            stream,
            FileRequest {
                name: remote.to_owned(),
                offset: len,
                prefix_hash: Some(hash),
            },
        )?;
        let offer = match self.next_on(stream, self.timeout)? {
            Message::FileOffer(o) => o,
            other => return Err(refused(remote, other)),
        };
        if offer.offset != len || offer.size != len {
            let cancel = FileCancel {
                code: ErrorCode::ALREADY_EXISTS,
                reason: "the receiver has another file of that name".into(),
            };
            let _ = self.send(stream, cancel);
            return Err(exists());
        }
        match self.next_on(stream, self.timeout)? {
            Message::FileComplete(c) if c.size == len && c.hash == hash => {
                progress.start(shown, len, len);
                let summary = TransferSummary {
                    name: remote.to_owned(),
                    path: target.to_owned(),
                    size: len,
                    resumed_from: len,
                    hash,
                    elapsed: started.elapsed(),
                    unchanged: true,
                };
                progress.finish(&summary);
                Ok(summary)
            }
            Message::FileComplete(_) => Err(exists()),
            other => Err(refused(remote, other)),
        }
    }

    /// Writes the chunks arriving on `stream` into `file`, acknowledging
    /// every [`ACK_EVERY`] bytes (held back to honour the rate limit), until
    /// a message that is not a chunk arrives, which it returns. A chunk at
    /// offset 0 after a held prefix means the sender did not recognise the
    /// prefix: the file starts over.
    fn receive_chunks(
        &self,
        stream: StreamId,
        file: &mut IncomingFile,
        started: Instant,
        progress: &mut dyn Progress,
    ) -> Result<Message, ServiceError> {
        let resumed_from = file.received();
        let mut acked = resumed_from;
        let mut waiting = Progressing::new(self.timeout, resumed_from);
        let mut restarted = false;
        loop {
            let c = match self.next_progressing(stream, &waiting)? {
                Message::FileChunk(c) => c,
                other => return Ok(other),
            };
            if c.offset == 0 && file.received() > 0 {
                file.restart()?;
                acked = 0;
                // A sender that did not recognise our partial file starts
                // over once; starting over again is no progress.
                if !std::mem::replace(&mut restarted, true) {
                    waiting.rebase(0);
                }
            }
            if let Err(e) = file.write_chunk(c.offset, &c.data) {
                let cancel = FileCancel {
                    code: e.code(),
                    reason: e.to_string(),
                };
                let _ = self.send(stream, cancel);
                return Err(e);
            }
            waiting.reached(file.received());
            progress.advance(file.received());
            if file.received() >= acked + ACK_EVERY {
                // Holding acknowledgements back is what slows the sender
                // down to the rate limit.
                pace(
                    self.rate_limit,
                    started,
                    file.received().saturating_sub(resumed_from),
                );
                acked = file.received();
                let ack = FileAccept {
                    offset: acked,
                    prefix_hash: None,
                };
                // An acknowledgement that cannot go (the sender closed
                // the connection right behind its last frames) does not
                // end the download: what already arrived may finish the
                // file, and the next receive says when nothing more will.
                let _ = self.send(stream, ack);
            }
        }
    }

    /// Uploads `local` (a file or a folder) to the server's inbox, as
    /// `as_name` if given. Resumes an earlier interrupted upload: a partial
    /// file on the server is continued, and a file the server already holds
    /// is offered again with its hash, so that a server that can compare
    /// hashes confirms it is the same and nothing is sent. A file of the
    /// same name that the server keeps (another file, or a server that
    /// cannot compare) does not stop the other files of a folder; the
    /// error names it at the end.
    pub fn put(
        &mut self,
        local: &Path,
        as_name: Option<&str>,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ServiceError> {
        let mut kept = Vec::new();
        let done = self.each_file(local, as_name, |me, file, name| {
            match me.upload(file, &name, None, progress) {
                Err(ServiceError::Refused {
                    code: ErrorCode::ALREADY_EXISTS,
                    name,
                    reason,
                }) => {
                    kept.push((name, reason));
                    Ok(None)
                }
                other => other.map(Some),
            }
        })?;
        match kept.split_first() {
            None => Ok(done),
            Some(((name, reason), rest)) => Err(ServiceError::Refused {
                name: name.clone(),
                reason: match rest.len() {
                    0 => reason.clone(),
                    n => format!("{reason} (and {n} more of this upload)"),
                },
                code: ErrorCode::ALREADY_EXISTS,
            }),
        }
    }

    /// Offers `local` (a file or folder) to the user `to` through the server;
    /// waits for them to accept. Nothing is stored on the server.
    pub fn send_to(
        &mut self,
        to: &str,
        local: &Path,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ServiceError> {
        self.each_file(local, None, |me, file, name| {
            me.upload(file, &name, Some(to), progress).map(Some)
        })
    }

    /// Runs `one` for `local` itself or, for a folder, every file below it,
    /// with `/`-separated names starting at the folder's (or `as_name`);
    /// collects what it returns.
    fn each_file(
        &mut self,
        local: &Path,
        as_name: Option<&str>,
        mut one: impl FnMut(&mut Self, &Path, String) -> Result<Option<TransferSummary>, ServiceError>,
    ) -> Result<Vec<TransferSummary>, ServiceError> {
        let base = match as_name {
            Some(n) => n.to_owned(),
            None => local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| ServiceError::BadPath {
                    name: local.display().to_string(),
                    reason: "it has no file name",
                })?,
        };
        path::validate(&base, false)?;
        let meta = std::fs::metadata(local).map_err(|e| ServiceError::io("open", local, e))?;
        if !meta.is_dir() {
            return Ok(one(self, local, base)?.into_iter().collect());
        }
        let mut files = Vec::new();
        collect_files(local, &base, &mut files)?;
        files.sort();
        let mut done = Vec::new();
        for (name, file) in files {
            done.extend(one(self, &file, name)?);
        }
        Ok(done)
    }

    fn upload(
        &mut self,
        local: &Path,
        name: &str,
        to: Option<&str>,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ServiceError> {
        path::validate(name, false)?;
        let started = Instant::now();
        let size = std::fs::metadata(local)
            .map_err(|e| ServiceError::io("open", local, e))?
            .len();
        // The whole file's hash goes with an offer only once the server said
        // it has a file of that name: with it, the server can tell whether
        // it is this one.
        let mut hash = None;
        // Another attempt happens when the server's partial file does not
        // match ours (we cancel, it discards it, we start over), and to
        // offer again with the hash.
        for _attempt in 0..3 {
            let stream = self.new_stream();
            let offer = FileOffer {
                name: name.to_owned(),
                size,
                hash,
                offset: 0,
                to: to.map(str::to_owned),
                from: None,
            };
            self.send(stream, offer)?;
            let patience = if to.is_some() {
                self.accept_timeout
            } else {
                self.timeout
            };
            let answer = match (self.next_on(stream, patience), to) {
                (Err(ServiceError::NoAnswer { secs }), Some(to)) => {
                    // Withdraw it, so it does not wait on the other side.
                    let cancel = FileCancel {
                        code: ErrorCode::TIMEOUT,
                        reason: format!("not accepted within {secs} s"),
                    };
                    let _ = self.send(stream, cancel);
                    return Err(ServiceError::NotAnswered {
                        name: name.to_owned(),
                        to: to.to_owned(),
                        secs,
                    });
                }
                (answer, _) => answer?,
            };
            let accept = match answer {
                Message::FileAccept(a) => a,
                Message::FileReject(r)
                    if r.code == ErrorCode::ALREADY_EXISTS && to.is_none() && hash.is_none() =>
                {
                    hash = Some(hash_file(local)?);
                    continue;
                }
                // The server holds this very file already.
                Message::FileComplete(c) if Some(c.hash) == hash && c.size == size => {
                    progress.start(name, size, size);
                    let summary = TransferSummary {
                        name: name.to_owned(),
                        path: local.to_owned(),
                        size,
                        resumed_from: size,
                        hash: c.hash,
                        elapsed: started.elapsed(),
                        unchanged: true,
                    };
                    progress.finish(&summary);
                    return Ok(summary);
                }
                other => return Err(refused(name, other)),
            };
            let mut file = OutgoingFile::open(local, accept.offset, accept.prefix_hash.as_ref())?;
            if file.start() != accept.offset {
                self.send(
                    stream,
                    FileCancel {
                        code: ErrorCode::HASH_MISMATCH,
                        reason: "resume prefix differs; starting over".into(),
                    },
                )?;
                continue;
            }
            progress.start(name, size, file.start());
            let mut completed = false;
            // Small chunks until acknowledgements show a quick link.
            let sending_since = Instant::now();
            let mut chunk = SMALL_CHUNK;
            let mut waiting = Progressing::new(self.timeout, file.start());
            // An acknowledgement: the window moves on, and chunks grow
            // with a quick link.
            let ack = |a: FileAccept,
                       file: &mut OutgoingFile,
                       waiting: &mut Progressing,
                       progress: &mut dyn Progress,
                       chunk: &mut usize| {
                // Acknowledging more than was sent is no progress.
                waiting.reached(a.offset.min(file.sent()));
                file.ack(a.offset);
                progress.advance(a.offset);
                let acked = a.offset.saturating_sub(file.start());
                *chunk = chunk_for(acked, sending_since.elapsed());
            };
            loop {
                while !completed && file.can_send(DEFAULT_WINDOW) {
                    match file.next_chunk(chunk)? {
                        Some(c) => {
                            self.send(stream, c)?;
                            pace(self.rate_limit, started, file.sent() - file.start());
                        }
                        None => {
                            self.send(stream, file.complete())?;
                            completed = true;
                        }
                    }
                    // A paced window takes long to send: the receiver's
                    // cancel is heard between its chunks, not after it.
                    if self.rate_limit.is_some() {
                        match self.next_now(stream)? {
                            Some(Message::FileAccept(a)) => {
                                ack(a, &mut file, &mut waiting, progress, &mut chunk)
                            }
                            Some(other) => return Err(refused(name, other)),
                            None => {}
                        }
                    }
                }
                match self.next_progressing(stream, &waiting)? {
                    Message::FileAccept(a) => ack(a, &mut file, &mut waiting, progress, &mut chunk),
                    Message::FileComplete(c) if completed => {
                        let ours = file.complete();
                        if c != ours {
                            return Err(ServiceError::HashMismatch {
                                name: name.to_owned(),
                                detail: "the receiver confirmed a different hash".into(),
                            });
                        }
                        let summary = TransferSummary {
                            name: name.to_owned(),
                            path: local.to_owned(),
                            size: c.size,
                            resumed_from: file.start(),
                            hash: c.hash,
                            elapsed: started.elapsed(),
                            unchanged: false,
                        };
                        // Acknowledgements come a megabyte apart: the last
                        // one may be short of the end.
                        progress.advance(c.size);
                        progress.finish(&summary);
                        return Ok(summary);
                    }
                    other => return Err(refused(name, other)),
                }
            }
        }
        Err(ServiceError::HashMismatch {
            name: name.to_owned(),
            detail: "the receiver's partial file kept differing".into(),
        })
    }

    /// Waits up to `patience` for another user's offer; `decide` accepts or
    /// declines it. An accepted file is received into `dest` (resuming a
    /// partial one) and verified. `Ok(None)`: no offer came, or it was
    /// declined.
    pub fn receive(
        &mut self,
        dest: &Path,
        force: bool,
        patience: Duration,
        decide: &mut dyn FnMut(&FileOffer) -> bool,
        progress: &mut dyn Progress,
    ) -> Result<Option<TransferSummary>, ServiceError> {
        let deadline = Instant::now() + patience;
        let (stream, offer) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.client.recv_timeout(left)? {
                Some(Frame {
                    stream,
                    message: Message::FileOffer(o),
                }) if o.from.is_some() => break (stream, o),
                _ => {}
            }
        };
        if !decide(&offer) {
            self.decline(stream, "declined by the receiver")?;
            return Ok(None);
        }
        self.accept(stream, &offer, dest, force, progress).map(Some)
    }

    /// Declines the offer that arrived on `stream`, telling the sender why.
    pub fn decline(&self, stream: StreamId, reason: &str) -> Result<(), ServiceError> {
        self.send(
            stream,
            FileReject {
                code: ErrorCode::FORBIDDEN,
                reason: reason.to_owned(),
            },
        )
    }

    /// Accepts `offer`, which arrived on `stream`: receives the file into
    /// `dest` (resuming a partial one of the same name) and verifies it.
    /// Refuses to overwrite an existing file unless `force`.
    pub fn accept(
        &mut self,
        stream: StreamId,
        offer: &FileOffer,
        dest: &Path,
        force: bool,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ServiceError> {
        self.accept_as(stream, offer, dest, &offer.name, force, progress)
    }

    /// [`accept`](Self::accept), saving the file as `local` (a `/`-separated
    /// name under `dest`, checked like a name from the network) instead of
    /// the offered name.
    pub fn accept_as(
        &mut self,
        stream: StreamId,
        offer: &FileOffer,
        dest: &Path,
        local: &str,
        force: bool,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ServiceError> {
        let started = Instant::now();
        let prepared = path::validate_target(local).and_then(|rel| {
            let target = path::prepare_new(dest, &rel, local)?;
            IncomingFile::open(local, target, offer.size, force)
        });
        let mut file = match prepared {
            Ok(f) => f,
            Err(e) => {
                return self.refuse(stream, e);
            }
        };
        let resumed_from = file.received();
        self.send(
            stream,
            FileAccept {
                offset: resumed_from,
                prefix_hash: file.prefix_hash(),
            },
        )?;
        progress.start(&offer.name, offer.size, resumed_from);
        // A file that ends before its first byte leaves no empty partial
        // behind (a sender offering and ending over and over left one a
        // cycle); one with bytes stays, to be resumed.
        let ended = match self.receive_chunks(stream, &mut file, started, progress) {
            Ok(ended) => ended,
            Err(e) => {
                discard_if_empty(file);
                return Err(e);
            }
        };
        match ended {
            Message::FileCancel(c) if c.code == ErrorCode::HASH_MISMATCH => {
                // The sender does not recognise our partial file: drop it,
                // so its next offer starts from the beginning.
                file.discard();
                Err(refused(&offer.name, Message::FileCancel(c)))
            }
            Message::FileComplete(c) => match (file.restarted(), file.finish(c.size, &c.hash)) {
                (restarted, Ok(path)) => {
                    let resumed_from = if restarted { 0 } else { resumed_from };
                    self.send(stream, c.clone())?;
                    let summary = TransferSummary {
                        name: offer.name.clone(),
                        path,
                        size: c.size,
                        resumed_from,
                        hash: c.hash,
                        elapsed: started.elapsed(),
                        unchanged: false,
                    };
                    progress.finish(&summary);
                    Ok(summary)
                }
                (_, Err(e)) => self.refuse(stream, e),
            },
            other => {
                discard_if_empty(file);
                Err(refused(&offer.name, other))
            }
        }
    }
}

/// Bytes a transfer (or a listing) must move past its last mark for its
/// patience to start over: at least 4 KiB every 30 s (about 140 B/s).
const PROGRESS_FLOOR: u64 = 4 * 1024;

/// How long a transfer or a listing waits for progress: frames that carry
/// nothing new or nearly nothing (an empty chunk, a byte, an
/// acknowledgement of what was acknowledged, a page of one entry, a start
/// over) do not make it wait longer, so a peer that sends them a little
/// under every `patience` cannot hold it for ever.
struct Progressing {
    patience: Duration,
    since: Instant,
    /// Where it stood when the patience last started over.
    mark: u64,
}

impl Progressing {
    fn new(patience: Duration, at: u64) -> Progressing {
        Progressing {
            patience,
            since: Instant::now(),
            mark: at,
        }
    }

    /// It stands at `at` now (bytes moved, or listed): the patience starts
    /// over once that is [`PROGRESS_FLOOR`] past the last mark.
    fn reached(&mut self, at: u64) {
        if at >= self.mark.saturating_add(PROGRESS_FLOOR) {
            self.mark = at;
            self.since = Instant::now();
        }
    }

    /// Counts from `at` from now on (a transfer that starts over once),
    /// without starting the patience over.
    fn rebase(&mut self, at: u64) {
        self.mark = at;
    }

    /// `e`, with this patience if it is a timeout.
    fn no_answer(&self, e: ServiceError) -> ServiceError {
        match e {
            ServiceError::NoAnswer { .. } => ServiceError::NoAnswer {
                secs: self.patience.as_secs(),
            },
            e => e,
        }
    }

    fn left(&self) -> Duration {
        (self.since + self.patience).saturating_duration_since(Instant::now())
    }
}

/// Deletes `file`'s partial file if it holds nothing.
fn discard_if_empty(file: IncomingFile) {
    if file.received() == 0 {
        file.discard();
    }
}

fn collect_files(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), ServiceError> {
    let rd = std::fs::read_dir(dir).map_err(|e| ServiceError::io("list", dir, e))?;
    for item in rd {
        let item = item.map_err(|e| ServiceError::io("list", dir, e))?;
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = item.path();
        let meta = std::fs::metadata(&path).map_err(|e| ServiceError::io("inspect", &path, e))?;
        let rel = format!("{prefix}/{name}");
        if meta.is_dir() {
            collect_files(&path, &rel, out)?;
        } else {
            out.push((rel, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::file::Listing;
    use std::sync::Mutex;

    /// A hostile server: answers every request at once, then every 20 ms
    /// with what `next` makes of the last request (frames that carry
    /// nothing new, or too much).
    struct Drip {
        asked: Mutex<Option<Frame>>,
        sent: Mutex<u64>,
        next: fn(&Frame, u64) -> Message,
    }

    impl FileLink for Drip {
        fn open_stream(&self) -> StreamId {
            1
        }
        fn send(&self, frame: &Frame) -> Result<(), TransportError> {
            *self.asked.lock().unwrap() = Some(frame.clone());
            Ok(())
        }
        fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, TransportError> {
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            let Some(asked) = self.asked.lock().unwrap().clone() else {
                return Ok(None);
            };
            let mut n = self.sent.lock().unwrap();
            *n += 1;
            Ok(Some(Frame::new(asked.stream, (self.next)(&asked, *n))))
        }
    }

    fn client(next: fn(&Frame, u64) -> Message) -> Drip {
        Drip {
            asked: Mutex::new(None),
            sent: Mutex::new(0),
            next,
        }
    }

    fn page(entries: Vec<DirEntry>) -> Message {
        Message::Listing(Listing {
            path: String::new(),
            entries,
            done: false,
        })
    }

    /// A relayed file whose sender ends it before its first byte leaves no
    /// empty partial file (helper-85: a sender offering and ending over and
    /// over left one a cycle, without end); one with bytes keeps its
    /// partial, to be resumed.
    #[test]
    fn a_file_ended_before_its_first_byte_leaves_no_partial() {
        struct Scripted(Mutex<std::collections::VecDeque<Message>>);
        impl FileLink for Scripted {
            fn open_stream(&self) -> StreamId {
                1
            }
            fn send(&self, _: &Frame) -> Result<(), TransportError> {
                Ok(())
            }
            fn recv_timeout(&self, _: Duration) -> Result<Option<Frame>, TransportError> {
                Ok(self.0.lock().unwrap().pop_front().map(|m| Frame::new(2, m)))
            }
        }
        let dest = std::env::temp_dir().join(format!("lanlink-empty-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest).unwrap();
        let offer = FileOffer {
            name: "x.bin".into(),
            size: 1 << 20,
            hash: None,
            offset: 0,
            to: None,
            from: Some("ada".into()),
        };
        let cancel = || {
            Message::FileCancel(lanlink_proto::file::FileCancel {
                code: ErrorCode::OTHER,
                reason: "changed my mind".into(),
            })
        };
        let part = super::super::incoming::part_path(&dest.join("x.bin"));
        let run = |script: Vec<Message>| {
            let link = Scripted(Mutex::new(script.into()));
            FileClient::new(&link).accept(2, &offer, &dest, false, &mut Quiet)
        };
        assert!(run(vec![cancel()]).is_err());
        assert!(!part.exists(), "no empty partial");
        let chunk = Message::FileChunk(lanlink_proto::file::FileChunk {
            offset: 0,
            data: bytes::Bytes::from_static(b"some bytes"),
        });
        assert!(run(vec![chunk, cancel()]).is_err());
        assert_eq!(
            std::fs::metadata(&part).unwrap().len(),
            10,
            "kept to resume"
        );
        std::fs::remove_dir_all(&dest).unwrap();
    }

    /// Empty pages, or empty chunks, a little more often than the
    /// patience, no longer keep a listing or a download waiting for ever
    /// (an outside attack held `lanlink ls` and `get` for 180 s).
    #[test]
    fn frames_that_carry_nothing_new_do_not_extend_the_patience() {
        let link = client(|_, _| page(Vec::new()));
        let mut files = FileClient::new(&link);
        files.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let err = files.list("", true).unwrap_err();
        assert!(matches!(err, ServiceError::NoAnswer { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));

        // A get whose chunks are empty, or one byte each, or one byte
        // that starts the file over each time (the second outside attack).
        let chunks: [Chunker; 3] = [|_| (0, b""), |n| (n - 3, b"x"), |_| (0, b"x")];
        for (i, chunk) in chunks.into_iter().enumerate() {
            CHUNK.with(|c| c.set(Some(chunk)));
            let dir = std::env::temp_dir().join(format!("lanlink-drip-{}-{i}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let link = client(|asked, n| match &asked.message {
                Message::ListRequest(_) => Message::Listing(Listing {
                    path: String::new(),
                    entries: vec![DirEntry {
                        name: String::new(),
                        is_dir: false,
                        size: 1_000_000,
                        modified: 0,
                    }],
                    done: true,
                }),
                Message::FileRequest(_) if n < 3 => Message::FileOffer(FileOffer {
                    name: "f.bin".into(),
                    size: 1_000_000,
                    hash: None,
                    offset: 0,
                    to: None,
                    from: None,
                }),
                _ => {
                    let (offset, data) = CHUNK.with(|c| c.get().unwrap())(n);
                    Message::FileChunk(lanlink_proto::file::FileChunk {
                        offset,
                        data: bytes::Bytes::from_static(data),
                    })
                }
            });
            let mut files = FileClient::new(&link);
            files.timeout = Duration::from_millis(300);
            let started = Instant::now();
            let err = files.get("f.bin", &dir, false, &mut Quiet).unwrap_err();
            assert!(matches!(err, ServiceError::NoAnswer { .. }), "{i}: {err}");
            assert!(started.elapsed() < Duration::from_secs(2), "{i}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    /// The offset and data of the scripted server's `n`th frame.
    type Chunker = fn(u64) -> (u64, &'static [u8]);

    thread_local! {
        /// The chunk the scripted server sends as its `n`th frame.
        static CHUNK: std::cell::Cell<Option<Chunker>> =
            const { std::cell::Cell::new(None) };
    }

    /// A listing longer than any server sends is refused, not kept.
    #[test]
    fn a_listing_past_what_a_server_sends_is_refused() {
        let link = client(|_, _| {
            page(
                (0..10_000)
                    .map(|i| DirEntry {
                        name: format!("f{i}"),
                        is_dir: false,
                        size: 1,
                        modified: 0,
                    })
                    .collect(),
            )
        });
        let mut files = FileClient::new(&link);
        let err = files.list("", true).unwrap_err();
        assert!(matches!(err, ServiceError::ListingTooBig { .. }), "{err}");
    }

    /// A server that sends a whole file and closes at once: the client's
    /// acknowledgements can no longer go, but what arrived finishes the
    /// file (an outside attack, helper-66: a 3 MB download sent whole with
    /// close_notify right behind it was reported lost, 3 times of 3).
    #[test]
    fn a_file_sent_whole_before_the_connection_closed_is_kept() {
        struct SentAndGone {
            queue: Mutex<std::collections::VecDeque<Message>>,
            data: Vec<u8>,
        }
        impl FileLink for SentAndGone {
            fn open_stream(&self) -> StreamId {
                1
            }
            fn send(&self, frame: &Frame) -> Result<(), TransportError> {
                let mut queue = self.queue.lock().unwrap();
                let size = self.data.len() as u64;
                match &frame.message {
                    Message::ListRequest(_) => queue.push_back(Message::Listing(Listing {
                        path: String::new(),
                        entries: vec![DirEntry {
                            name: String::new(),
                            is_dir: false,
                            size,
                            modified: 0,
                        }],
                        done: true,
                    })),
                    Message::FileRequest(_) => {
                        queue.push_back(Message::FileOffer(FileOffer {
                            name: "f.bin".into(),
                            size,
                            hash: None,
                            offset: 0,
                            to: None,
                            from: None,
                        }));
                        for (i, part) in self.data.chunks(256 * 1024).enumerate() {
                            queue.push_back(Message::FileChunk(lanlink_proto::file::FileChunk {
                                offset: (i * 256 * 1024) as u64,
                                data: bytes::Bytes::copy_from_slice(part),
                            }));
                        }
                        queue.push_back(Message::FileComplete(FileComplete {
                            size,
                            hash: *blake3::hash(&self.data).as_bytes(),
                        }));
                    }
                    // Everything is sent and the connection closed.
                    _ => {
                        return Err(TransportError::Closed(
                            lanlink_transport::CloseReason::PeerClosed,
                        ))
                    }
                }
                Ok(())
            }
            fn recv_timeout(&self, _: Duration) -> Result<Option<Frame>, TransportError> {
                match self.queue.lock().unwrap().pop_front() {
                    Some(message) => Ok(Some(Frame::new(1, message))),
                    None => Err(TransportError::Closed(
                        lanlink_transport::CloseReason::PeerClosed,
                    )),
                }
            }
        }
        let data: Vec<u8> = (0..3 * ACK_EVERY as usize + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let link = SentAndGone {
            queue: Mutex::default(),
            data,
        };
        let dir = std::env::temp_dir().join(format!("lanlink-gone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = FileClient::new(&link);
        files.get("f.bin", &dir, false, &mut Quiet).unwrap();
        assert_eq!(std::fs::read(dir.join("f.bin")).unwrap(), link.data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
