//! [`ConnHandle`]: queues frames for a connection from any thread.

use std::net::{Shutdown as SockShutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use lanlink_proto::{control, ErrorCode, Frame, TrafficClass};

use super::{CloseReason, ConnConfig, EncodedFrame, Outbound, Shared, Totals};
use crate::socket::Socket;
use crate::{ConnId, TransportError};

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

    /// Bytes queued (reliable and media) and not yet handed to the socket,
    /// each frame counted with what keeping it queued costs besides its
    /// bytes (see [`ConnConfig::max_queued_bytes`](crate::ConnConfig::max_queued_bytes)).
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

    /// True once this side has decided to end the connection: the
    /// application closed it ([`close`](Self::close),
    /// [`close_with_error`](Self::close_with_error)) or the transport cut
    /// the peer (too slow to read, a frame too slow, idle, shutdown).
    /// Unlike [`is_closing`](Self::is_closing), not set when the peer ends
    /// it: frames a peer sent just before closing its side (without a
    /// goodbye) are as good as any, while those still queued from a peer
    /// the server has condemned need not be carried out.
    pub fn closed_here(&self) -> bool {
        self.shared.closed_here.load(Ordering::SeqCst)
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
        let len = frame.cost();
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
                self.shared.closed_here.store(true, Ordering::SeqCst);
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
        let len = frame.cost();
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
                self.shared.dequeued(old.cost());
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
        self.shared.closed_here.store(true, Ordering::SeqCst);
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
    pub(super) stop: Receiver<()>,
    /// Dropped when the writer exits, which tells the reader it has flushed.
    pub(super) done: Sender<()>,
}

/// The reader's ends of the stop/done pair (see [`WriterQueues`]).
pub(crate) struct WriterLink {
    pub(super) stop: Sender<()>,
    pub(super) done: Receiver<()>,
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
        closed_here: AtomicBool::new(false),
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
