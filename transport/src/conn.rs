//! One connection: the [`ConnHandle`] through which any thread queues
//! frames for it, its queues, and (client side) its reader and writer
//! threads; a server's connections are served by its I/O threads instead
//! (the `engine` module), which drain the same queues the same way.
//!
//! # Queues
//! Reliable traffic (control, chat, file) goes through one unbounded channel
//! whose *bytes* are bounded by [`ConnConfig::max_queued_bytes`]: a peer that
//! falls that far behind is disconnected with [`CloseReason::TooSlow`] rather
//! than having anything dropped silently. Media goes through a small bounded
//! channel that drops its oldest frame when full, so a slow peer loses stale
//! media only. Media bytes count against the same per-connection and
//! server-wide byte limits: over them, queued media is dropped (oldest
//! first, then the new frame) instead of anyone being disconnected, and a
//! reliable frame that does not fit first displaces queued media. The
//! writer always drains reliable traffic first.
//!
//! Frames are encoded by the caller ([`EncodedFrame`]), so a message sent to
//! many peers is encoded once and its bytes shared.

use std::io;
use std::net::{Shutdown as SockShutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{select_biased, Receiver, Sender, TrySendError};
use lanlink_proto::{control, ErrorCode, Frame, FrameDecoder, ProtoError, TrafficClass};

use crate::socket::{ReadState, Socket};
use crate::text::display_safe;
use crate::{ConnId, TransportError};

/// Settings shared by server and client connections.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// How often to send a keepalive ping (and measure the round trip).
    pub ping_interval: Duration,
    /// Close the connection when nothing at all arrives for this long.
    pub idle_timeout: Duration,
    /// Bytes queued for a peer before it counts as too slow (reliable
    /// traffic) or loses media (media frames count too, and are dropped
    /// first).
    pub max_queued_bytes: usize,
    /// Media frames queued for a peer before the oldest is dropped.
    pub media_queue_frames: usize,
    /// Largest payload accepted from the peer.
    pub max_payload: u32,
    /// How long a closing connection waits for the peer to close its side.
    pub close_linger: Duration,
    /// What a send does when the reliable queue is full: `false` (servers)
    /// disconnects the peer as too slow, so it cannot hold anyone else up;
    /// `true` (clients) waits for room, which paces a program that sends
    /// faster than its link.
    pub block_when_full: bool,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            max_queued_bytes: 8 * 1024 * 1024,
            media_queue_frames: 8,
            max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
            close_linger: Duration::from_secs(2),
            block_when_full: false,
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer said goodbye.
    Goodbye(String),
    /// The peer closed the socket between frames.
    PeerClosed,
    /// The peer closed the socket in the middle of a frame.
    PeerClosedMidFrame {
        /// Bytes of the unfinished frame that had arrived.
        buffered: usize,
    },
    /// The peer sent bytes that are not valid lanlink.
    Malformed(ProtoError),
    /// The peer sent a valid frame that is not allowed at that point.
    Unexpected(String),
    /// The peer did not read fast enough.
    TooSlow {
        /// Reliable bytes queued when the limit was crossed.
        queued: usize,
    },
    /// Nothing arrived for the idle timeout.
    IdleTimeout(Duration),
    /// The peer did not complete the handshake in time.
    HandshakeTimeout(Duration),
    /// This side refused the peer during the handshake.
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
    /// The peer told us it is closing because of an error.
    PeerError {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The peer's explanation.
        message: String,
    },
    /// This side closed the connection.
    Local(String),
    /// The server is shutting down.
    Shutdown,
    /// A socket error.
    Io(String),
    /// The TLS layer failed (a record that does not decrypt, say).
    Tls(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The peer's own words are shown through `display_safe`: this
            // text ends up in logs and on other users' screens.
            // A goodbye that only says "quit" is shown once, not as
            // `quit: quit`.
            CloseReason::Goodbye(r) if r.is_empty() || r.trim().eq_ignore_ascii_case("quit") => {
                write!(f, "quit")
            }
            CloseReason::Goodbye(r) => write!(f, "quit: {}", display_safe(r)),
            CloseReason::PeerClosed => write!(f, "connection closed by peer"),
            CloseReason::PeerClosedMidFrame { buffered } => {
                write!(
                    f,
                    "connection lost mid-frame ({buffered} bytes of an unfinished frame)"
                )
            }
            CloseReason::Malformed(e) => write!(f, "malformed data: {e}"),
            CloseReason::Unexpected(what) => write!(f, "protocol violation: {what}"),
            CloseReason::TooSlow { queued } => {
                write!(f, "too slow: {queued} bytes waiting to be read")
            }
            CloseReason::IdleTimeout(d) => {
                write!(f, "nothing received for {:.0} s", d.as_secs_f64())
            }
            CloseReason::HandshakeTimeout(d) => {
                write!(f, "no handshake within {:.1} s", d.as_secs_f64())
            }
            CloseReason::Refused { reason, .. } => write!(f, "refused: {}", display_safe(reason)),
            CloseReason::PeerError { message, .. } => {
                write!(f, "peer reported an error: {}", display_safe(message))
            }
            CloseReason::Local(r) => write!(f, "closed: {r}"),
            CloseReason::Shutdown => write!(f, "server shutting down"),
            CloseReason::Io(e) => write!(f, "connection lost: {e}"),
            CloseReason::Tls(e) => write!(f, "TLS failure: {e}"),
        }
    }
}

/// What a connection reports to whoever consumes its events.
#[derive(Debug)]
pub enum Event {
    /// Server side: a peer sent a valid `Hello` with the right version and
    /// token. Answer with [`ConnHandle::send`] of a `Welcome`, or
    /// [`ConnHandle::refuse`].
    Hello {
        /// The new connection.
        conn: ConnHandle,
        /// What the peer said.
        hello: control::Hello,
    },
    /// A frame arrived (keepalive and goodbye are handled by the transport).
    Frame {
        /// From which connection.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// The connection ended; no more events follow for it.
    ///
    /// When the peer said goodbye, the connection waits (up to the linger
    /// time) for the application to answer with [`ConnHandle::close`], so
    /// replies to the peer's last requests still reach it.
    Closed {
        /// Which connection.
        conn: ConnId,
        /// The peer's address.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
}

/// A frame encoded once, ready to be queued on any number of connections.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub(crate) head: Bytes,
    pub(crate) tail: Option<Bytes>,
    class: TrafficClass,
}

impl EncodedFrame {
    /// Encodes `frame`. Large trailing data (file chunks, media) is shared,
    /// not copied.
    pub fn new(frame: &Frame) -> Result<EncodedFrame, ProtoError> {
        let mut head = BytesMut::new();
        let tail = frame.encode_head(&mut head)?.cloned();
        Ok(EncodedFrame {
            head: head.freeze(),
            tail,
            class: frame.kind().class(),
        })
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, Bytes::len)
    }

    /// Always false: a frame has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

pub(crate) enum Outbound {
    Data(EncodedFrame),
    /// Write this last frame (goodbye or refusal), then close our side.
    Close(EncodedFrame),
    /// Send TLS records the reader produced (nothing to do on plain TCP).
    Flush,
}

pub(crate) struct Shared {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) stream: Socket,
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    /// Server side: what all connections hold together.
    total: Option<Arc<Totals>>,
    block_when_full: bool,
    pub(crate) closing: AtomicBool,
    reason: Mutex<Option<CloseReason>>,
    pub(crate) rtt_us: AtomicU64,
    pub(crate) media_dropped: AtomicU64,
    /// Server side: how to wake the I/O thread that serves this
    /// connection when something is queued for it.
    pub(crate) wake: std::sync::OnceLock<crate::engine::Wake>,
    /// Server side: the name the peer said hello with, escaped, for the
    /// log line of its disconnection.
    pub(crate) name: std::sync::OnceLock<String>,
}

/// What a server's connections hold together, against its limit.
#[derive(Debug)]
pub(crate) struct Totals {
    pub(crate) queued: AtomicUsize,
    pub(crate) conns: AtomicUsize,
    pub(crate) max: usize,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Whatever was still queued when the connection ended no longer
        // counts against the server-wide limit.
        if let Some(t) = &self.total {
            t.queued
                .fetch_sub(*self.queued_bytes.get_mut(), Ordering::Relaxed);
            t.conns.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    /// Records why the connection ends; the first reason wins.
    pub(crate) fn set_reason(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
    }

    pub(crate) fn reason(&self) -> Option<CloseReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells the connection's I/O thread (server side) that something was
    /// queued; the client's writer thread waits on its queues instead.
    fn wake(&self) {
        if let Some(w) = self.wake.get() {
            w.wake();
        }
    }

    /// Counts `len` more bytes as queued.
    fn enqueued(&self, len: usize) {
        self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if let Some(t) = &self.total {
            t.queued.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// True if the bytes queued, plus `extra`, are within this connection's
    /// limit and, past the server-wide limit, within its fair share of it
    /// (the peers holding more than that are the ones cut, the others go
    /// on).
    fn within_limits(&self, extra: usize) -> bool {
        let queued = self.queued_bytes.load(Ordering::Relaxed) + extra;
        if queued > self.max_queued_bytes {
            return false;
        }
        self.total.as_ref().is_none_or(|t| {
            let total = t.queued.load(Ordering::Relaxed) + extra;
            total <= t.max || queued <= t.max / t.conns.load(Ordering::Relaxed).max(1)
        })
    }

    /// Counts `len` bytes as handed to the socket (or dropped).
    pub(crate) fn dequeued(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        if let Some(t) = &self.total {
            t.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Ends the connection at once: both threads wake with an error.
    pub(crate) fn abort(&self, reason: CloseReason) {
        self.set_reason(reason);
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(SockShutdown::Both);
    }
}

/// Queues frames for one connection from any thread. Cheap to clone.
#[derive(Clone)]
pub struct ConnHandle {
    pub(crate) shared: Arc<Shared>,
    reliable: Sender<Outbound>,
    media_tx: Sender<EncodedFrame>,
    media_rx: Receiver<EncodedFrame>,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .finish()
    }
}

impl ConnHandle {
    /// Server side: the (escaped) name the peer said hello with, shown in
    /// the log line of its disconnection. Set once; later calls do nothing.
    pub(crate) fn set_name(&self, name: String) {
        let _ = self.shared.name.set(name);
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.shared.peer
    }

    /// The last measured keepalive round trip, if any.
    pub fn rtt(&self) -> Option<Duration> {
        match self.shared.rtt_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Bytes queued (reliable and media) and not yet handed to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }

    /// True when the connection is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.shared.stream.is_tls()
    }

    /// Media frames dropped because this peer read too slowly.
    pub fn media_dropped(&self) -> u64 {
        self.shared.media_dropped.load(Ordering::Relaxed)
    }

    /// True once the connection is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::SeqCst)
    }

    /// Encodes and queues a frame. See [`send_encoded`](Self::send_encoded).
    pub fn send(&self, frame: &Frame) -> Result<(), TransportError> {
        self.send_encoded(EncodedFrame::new(frame)?)
    }

    /// Queues an already-encoded frame without blocking.
    ///
    /// Reliable frames are never dropped: if the peer already has more than
    /// the configured bytes waiting, the connection is closed as too slow and
    /// this returns an error. Media frames displace the oldest queued media
    /// frame when the media queue is full.
    pub fn send_encoded(&self, frame: EncodedFrame) -> Result<(), TransportError> {
        if self.is_closing() {
            return Err(self.closed_error());
        }
        if frame.class == TrafficClass::Media {
            return self.send_media(frame);
        }
        let len = frame.len();
        if self.shared.block_when_full {
            self.wait_for_room(len)?;
        }
        self.shared.enqueued(len);
        if !self.shared.within_limits(0) {
            // Stale media goes first: it may be all that is in the way.
            while self.drop_oldest_media() {}
            if !self.shared.within_limits(0) {
                let queued = self.queued_bytes();
                tracing::warn!(peer = %self.shared.peer, conn = %self.shared.id, queued,
                    "disconnecting a peer that stopped reading");
                self.shared.abort(CloseReason::TooSlow { queued });
                return Err(self.closed_error());
            }
        }
        self.reliable
            .send(Outbound::Data(frame))
            .map_err(|_| self.closed_error())?;
        self.shared.wake();
        Ok(())
    }

    /// Waits until `len` more bytes fit in the reliable queue (a frame larger
    /// than the whole limit is let through once the queue is empty).
    fn wait_for_room(&self, len: usize) -> Result<(), TransportError> {
        let max = self.shared.max_queued_bytes;
        loop {
            let queued = self.shared.queued_bytes.load(Ordering::Relaxed);
            if queued == 0 || queued + len <= max {
                return Ok(());
            }
            if self.is_closing() {
                return Err(self.closed_error());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn send_media(&self, mut frame: EncodedFrame) -> Result<(), TransportError> {
        let len = frame.len();
        // Stale media is worth less than fresh: make room by dropping the
        // oldest; if the queue is empty and it still does not fit, this
        // frame is the one dropped.
        while !self.shared.within_limits(len) {
            if !self.drop_oldest_media() {
                self.shared.media_dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.shared.enqueued(len);
        loop {
            match self.media_tx.try_send(frame) {
                Ok(()) => {
                    self.shared.wake();
                    return Ok(());
                }
                Err(TrySendError::Full(f)) => {
                    self.drop_oldest_media();
                    frame = f;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.shared.dequeued(len);
                    return Err(self.closed_error());
                }
            }
        }
    }

    /// Drops the oldest queued media frame, if there is one.
    fn drop_oldest_media(&self) -> bool {
        match self.media_rx.try_recv() {
            Ok(old) => {
                self.shared.dequeued(old.len());
                self.shared.media_dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Closes gracefully: everything already queued is sent, then a
    /// `Goodbye` with `reason`, then the connection ends.
    pub fn close(&self, reason: &str) {
        let goodbye = Frame::control(control::Goodbye {
            reason: reason.to_owned(),
        });
        self.close_with(goodbye, CloseReason::Local(reason.to_owned()));
    }

    /// Refuses a peer during the handshake: sends a `Refuse` and closes.
    pub fn refuse(&self, code: ErrorCode, reason: &str) {
        let refuse = Frame::control(control::Refuse {
            code,
            reason: reason.to_owned(),
        });
        self.close_with(
            refuse,
            CloseReason::Refused {
                code,
                reason: reason.to_owned(),
            },
        );
    }

    /// Reports a fault to the peer with an `Error` frame, then closes.
    pub fn close_with_error(&self, code: ErrorCode, message: &str, reason: CloseReason) {
        let error = Frame::control(control::Error {
            code,
            message: message.to_owned(),
        });
        self.close_with(error, reason);
    }

    fn close_with(&self, last: Frame, reason: CloseReason) {
        self.shared.set_reason(reason);
        if self.shared.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        let sent = EncodedFrame::new(&last)
            .ok()
            .map(|f| self.reliable.send(Outbound::Close(f)).is_ok());
        if sent != Some(true) {
            let _ = self.shared.stream.shutdown(SockShutdown::Both);
        }
        self.shared.wake();
    }

    /// Asks the writer to send TLS records that are waiting.
    pub(crate) fn request_flush(&self) {
        let _ = self.reliable.send(Outbound::Flush);
    }

    fn closed_error(&self) -> TransportError {
        TransportError::Closed(
            self.shared
                .reason()
                .unwrap_or_else(|| CloseReason::Local("closing".into())),
        )
    }
}

/// The receiving ends a connection's writer thread drains.
pub(crate) struct WriterQueues {
    pub(crate) reliable: Receiver<Outbound>,
    pub(crate) media: Receiver<EncodedFrame>,
    /// Disconnects when the reader is done: the writer must stop too.
    stop: Receiver<()>,
    /// Dropped when the writer exits, which tells the reader it has flushed.
    done: Sender<()>,
}

/// The reader's ends of the stop/done pair (see [`WriterQueues`]).
pub(crate) struct WriterLink {
    stop: Sender<()>,
    done: Receiver<()>,
}

/// Creates the shared state, handle and writer queues for a new connection.
pub(crate) fn new_connection(
    id: ConnId,
    peer: SocketAddr,
    stream: Socket,
    config: &ConnConfig,
    total: Option<Arc<Totals>>,
) -> (ConnHandle, WriterQueues, WriterLink) {
    if let Some(t) = &total {
        t.conns.fetch_add(1, Ordering::Relaxed);
    }
    let (reliable_tx, reliable_rx) = crossbeam_channel::unbounded();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
    let (done_tx, done_rx) = crossbeam_channel::bounded(0);
    let (media_tx, media_rx) = crossbeam_channel::bounded(config.media_queue_frames.max(1));
    let shared = Arc::new(Shared {
        id,
        peer,
        stream,
        queued_bytes: AtomicUsize::new(0),
        max_queued_bytes: config.max_queued_bytes,
        total,
        block_when_full: config.block_when_full,
        closing: AtomicBool::new(false),
        reason: Mutex::new(None),
        rtt_us: AtomicU64::new(u64::MAX),
        media_dropped: AtomicU64::new(0),
        wake: std::sync::OnceLock::new(),
        name: std::sync::OnceLock::new(),
    });
    let handle = ConnHandle {
        shared,
        reliable: reliable_tx,
        media_tx,
        media_rx: media_rx.clone(),
    };
    let queues = WriterQueues {
        reliable: reliable_rx,
        media: media_rx,
        stop: stop_rx,
        done: done_tx,
    };
    let link = WriterLink {
        stop: stop_tx,
        done: done_rx,
    };
    (handle, queues, link)
}

/// Batches up to this many bytes of small frames into one `write`.
const WRITE_BATCH: usize = 256 * 1024;
/// Trailing data at least this long is written straight from its buffer.
const DIRECT_WRITE: usize = 16 * 1024;

/// The writer thread: drains the queues into the socket until told to close
/// or the socket fails.
pub(crate) fn run_writer(handle: ConnHandle, queues: WriterQueues) {
    let shared = &handle.shared;
    // Reader and writer share one socket (one file descriptor per client).
    let stream = &shared.stream;
    let mut sealed = Vec::new();
    let mut out = Out {
        stream,
        sealed: &mut sealed,
    };
    let mut batch = BytesMut::with_capacity(64 * 1024);
    let result = (|| -> io::Result<()> {
        loop {
            let first = select_biased! {
                recv(queues.reliable) -> m => match m {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                },
                recv(queues.media) -> f => match f {
                    Ok(f) => Outbound::Data(f),
                    Err(_) => return Ok(()),
                },
                recv(queues.stop) -> _ => return Ok(()),
            };
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Outbound::Data(frame) => {
                        shared.dequeued(frame.len());
                        append(&mut out, &mut batch, frame)?;
                    }
                    Outbound::Close(last) => {
                        append(&mut out, &mut batch, last)?;
                        out.write_all(&batch)?;
                        // Half-close: the peer sees EOF after our last frame;
                        // the reader keeps draining until the peer closes too.
                        stream.close_write(out.sealed)?;
                        return Ok(());
                    }
                    Outbound::Flush => stream.flush(out.sealed)?,
                }
                if batch.len() < WRITE_BATCH {
                    next = queues
                        .reliable
                        .try_recv()
                        .ok()
                        .or_else(|| queues.media.try_recv().ok().map(Outbound::Data));
                }
            }
            if !batch.is_empty() {
                out.write_all(&batch)?;
                batch.clear();
            }
        }
    })();
    if let Err(e) = result {
        shared.abort(CloseReason::Io(e.to_string()));
    }
    drop(queues.done);
}

/// The writer's socket and its buffer for sealed TLS records.
struct Out<'a> {
    stream: &'a Socket,
    sealed: &'a mut Vec<u8>,
}

impl Out<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes, self.sealed)
    }
}

fn append(out: &mut Out<'_>, batch: &mut BytesMut, frame: EncodedFrame) -> io::Result<()> {
    batch.extend_from_slice(&frame.head);
    if let Some(tail) = frame.tail {
        if tail.len() >= DIRECT_WRITE {
            out.write_all(batch)?;
            batch.clear();
            out.write_all(&tail)?;
        } else {
            batch.extend_from_slice(&tail);
        }
    }
    Ok(())
}

/// How often a blocked read wakes up to check timers and shutdown.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// The reader side of an established connection.
pub(crate) struct Reader {
    pub(crate) handle: ConnHandle,
    pub(crate) decoder: FrameDecoder,
    pub(crate) events: Sender<Event>,
    pub(crate) config: ConnConfig,
    pub(crate) shutdown: crate::Shutdown,
    pub(crate) writer: WriterLink,
    /// TLS bytes read during the handshake and not yet decrypted.
    pub(crate) read_state: ReadState,
}

impl Reader {
    /// Reads frames until the connection ends, then reports `Closed`.
    /// Pings, pongs and goodbyes are handled here; everything else goes to
    /// the event channel, which blocks when full so a fast sender is slowed
    /// down by TCP flow control instead of filling our memory.
    pub(crate) fn run(mut self) {
        let shared = self.handle.shared.clone();
        let reason = self.read_loop();
        let peer_goodbye = matches!(reason, CloseReason::Goodbye(_)) && !self.handle.is_closing();
        shared.set_reason(reason);
        let reason = shared.reason().unwrap_or(CloseReason::PeerClosed);
        let name = shared.name.get().map_or("", String::as_str);
        match shared.media_dropped.load(Ordering::Relaxed) {
            0 => {
                tracing::info!(peer = %shared.peer, conn = %shared.id, name = %name, "disconnected: {reason}")
            }
            // Stale media dropped for a slow reader is by design, but the
            // operator should see how much of it there was.
            dropped => tracing::info!(peer = %shared.peer, conn = %shared.id, name = %name,
                "disconnected: {reason} ({dropped} media frames dropped because it read too slowly)"),
        }
        let closed = Event::Closed {
            conn: shared.id,
            peer: shared.peer,
            reason,
        };
        if peer_goodbye {
            // The peer said goodbye, but the application may still be
            // answering what it sent just before (a reply, a roster). Report
            // the close now; the application answers `close`, which queues
            // our own goodbye behind those replies, and the writer flushes.
            let _ = self.events.send(closed);
            let _ = self.writer.done.recv_timeout(self.config.close_linger);
            shared.closing.store(true, Ordering::SeqCst);
        } else {
            if shared.closing.swap(true, Ordering::SeqCst) {
                // A graceful close is under way: let the writer deliver the
                // last frame (goodbye, refusal, error) first.
                let _ = self.writer.done.recv_timeout(self.config.close_linger);
            }
            drop(self.writer.stop);
            let _ = shared.stream.shutdown(SockShutdown::Both);
            let _ = self.events.send(closed);
            return;
        }
        drop(self.writer.stop);
        let _ = shared.stream.shutdown(SockShutdown::Both);
    }

    fn read_loop(&mut self) -> CloseReason {
        let mut scratch = vec![0u8; 64 * 1024];
        let mut last_rx = Instant::now();
        let mut next_ping = Instant::now() + self.config.ping_interval;
        let mut ping_sent: Option<(u64, Instant)> = None;
        let mut pings = 0u64;
        let mut close_deadline: Option<Instant> = None;
        let shared = self.handle.shared.clone();
        let stream = &shared.stream;
        let _ = stream.set_read_timeout(Some(TICK));
        loop {
            // Decode first: the handshake may have left whole frames in the
            // decoder that arrived together with the Hello.
            loop {
                match self.decoder.decode() {
                    Ok(Some(frame)) => {
                        if let Some(reason) = self.on_frame(frame, &mut ping_sent) {
                            return reason;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.malformed(e),
                }
            }
            let read = stream.read(&mut self.read_state, &mut scratch);
            if std::mem::take(&mut self.read_state.wants_flush) {
                self.handle.request_flush();
            }
            match read {
                // A TLS peer that closes the socket without close_notify
                // ends the stream just like a plain one closing it.
                Ok(0) => return self.peer_closed(),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.peer_closed(),
                Ok(n) => {
                    last_rx = Instant::now();
                    self.decoder.push(scratch.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData && stream.is_tls() => {
                    tracing::warn!(peer = %self.handle.peer(), conn = %self.handle.id(), "{e}");
                    return CloseReason::Tls(e.to_string());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return CloseReason::Io(e.to_string()),
            }
            // Timers, checked after every read so a busy link is covered too.
            let now = Instant::now();
            if self.handle.is_closing() {
                let deadline = *close_deadline.get_or_insert(now + self.config.close_linger);
                if now >= deadline {
                    return CloseReason::Local("closed".into());
                }
                continue;
            }
            if self.shutdown.is_triggered() {
                self.handle.close("server shutting down");
                self.handle.shared.set_reason(CloseReason::Shutdown);
                continue;
            }
            if now.duration_since(last_rx) >= self.config.idle_timeout {
                let reason = CloseReason::IdleTimeout(self.config.idle_timeout);
                self.handle.close_with_error(
                    ErrorCode::TIMEOUT,
                    &reason.to_string(),
                    reason.clone(),
                );
                return reason;
            }
            if now >= next_ping {
                pings += 1;
                let nonce = pings;
                ping_sent = Some((nonce, now));
                let _ = self.handle.send(&Frame::control(control::Ping { nonce }));
                next_ping = now + self.config.ping_interval;
            }
        }
    }

    /// Handles one frame; returns a reason when the connection must end.
    fn on_frame(
        &mut self,
        frame: Frame,
        ping_sent: &mut Option<(u64, Instant)>,
    ) -> Option<CloseReason> {
        match frame.message {
            lanlink_proto::Message::Ping(control::Ping { nonce }) => {
                let _ = self.handle.send(&Frame::control(control::Pong { nonce }));
            }
            lanlink_proto::Message::Pong(control::Pong { nonce }) => {
                if let Some((sent_nonce, at)) = *ping_sent {
                    if sent_nonce == nonce {
                        let rtt = at.elapsed().as_micros() as u64;
                        self.handle.shared.rtt_us.store(rtt, Ordering::Relaxed);
                        *ping_sent = None;
                    }
                }
            }
            lanlink_proto::Message::Goodbye(control::Goodbye { reason }) => {
                return Some(CloseReason::Goodbye(reason));
            }
            _ => {
                let mut event = Event::Frame {
                    conn: self.handle.id(),
                    frame,
                };
                // Wait for room in the event channel (this is what slows a
                // fast sender down), but not past a shutdown: then nobody
                // may be reading any more.
                loop {
                    if self.shutdown.is_triggered() {
                        // Nobody may read any more: deliver if there is
                        // room, never wait.
                        if let Err(crossbeam_channel::TrySendError::Disconnected(_)) =
                            self.events.try_send(event)
                        {
                            return Some(CloseReason::Shutdown);
                        }
                        break;
                    }
                    match self.events.send_timeout(event, TICK) {
                        Ok(()) => break,
                        Err(crossbeam_channel::SendTimeoutError::Timeout(e)) => {
                            if self.shutdown.is_triggered() {
                                break;
                            }
                            event = e;
                        }
                        Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                            return Some(CloseReason::Shutdown);
                        }
                    }
                }
            }
        }
        None
    }

    fn peer_closed(&self) -> CloseReason {
        match self.decoder.buffered() {
            0 => CloseReason::PeerClosed,
            buffered => CloseReason::PeerClosedMidFrame { buffered },
        }
    }

    fn malformed(&self, e: ProtoError) -> CloseReason {
        tracing::warn!(peer = %self.handle.peer(), conn = %self.handle.id(), "malformed input: {e}");
        let code = match e {
            ProtoError::UnsupportedVersion { .. } => ErrorCode::VERSION_MISMATCH,
            ProtoError::FrameTooLarge { .. } => ErrorCode::TOO_LARGE,
            _ => ErrorCode::MALFORMED,
        };
        let reason = CloseReason::Malformed(e.clone());
        self.handle
            .close_with_error(code, &e.to_string(), reason.clone());
        reason
    }
}
