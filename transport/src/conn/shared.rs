//! The state a connection's handle, its threads (or I/O thread) and the
//! server share, and its byte accounting against the limits.

use std::net::{Shutdown as SockShutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{CloseReason, Event, Wake};
use crate::socket::Socket;
use crate::ConnId;

pub(crate) struct Shared {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) stream: Socket,
    pub(super) queued_bytes: AtomicUsize,
    pub(super) max_queued_bytes: usize,
    /// Server side: what all connections hold together.
    pub(super) total: Option<Arc<Totals>>,
    pub(super) block_when_full: bool,
    pub(crate) closing: AtomicBool,
    /// This side decided to end the connection (see
    /// [`ConnHandle::closed_here`](super::ConnHandle::closed_here)).
    pub(crate) closed_here: AtomicBool,
    pub(super) reason: Mutex<Option<CloseReason>>,
    pub(crate) rtt_us: AtomicU64,
    pub(crate) media_dropped: AtomicU64,
    /// Server side: how to wake the I/O thread that serves this
    /// connection when something is queued for it.
    pub(crate) wake: std::sync::OnceLock<Wake>,
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
    pub(super) fn wake(&self) {
        if let Some(w) = self.wake.get() {
            w.wake();
        }
    }

    /// Counts `len` more bytes as queued.
    pub(super) fn enqueued(&self, len: usize) {
        self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if let Some(t) = &self.total {
            t.queued.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// True if the bytes queued, plus `extra`, are within this connection's
    /// limit and, past the server-wide limit, within its fair share of it
    /// (the peers holding more than that are the ones cut, the others go
    /// on).
    pub(super) fn within_limits(&self, extra: usize) -> bool {
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

    /// The connection's end: records `reason` (unless an earlier reason
    /// was recorded), logs the disconnection, and returns the
    /// [`Event::Closed`] to report. Shared by the client's reader thread and
    /// the server's I/O threads.
    pub(crate) fn closed(&self, reason: CloseReason) -> Event {
        self.set_reason(reason);
        let reason = self.reason().unwrap_or(CloseReason::PeerClosed);
        let name = self.name.get().map_or("", String::as_str);
        match self.media_dropped.load(Ordering::Relaxed) {
            0 => {
                tracing::info!(peer = %self.peer, conn = %self.id, name = %name, "disconnected: {reason}")
            }
            // Stale media dropped for a slow reader is by design, but the
            // operator should see how much of it there was.
            dropped => tracing::info!(peer = %self.peer, conn = %self.id, name = %name,
                "disconnected: {reason} ({dropped} media frames dropped because it read too slowly)"),
        }
        Event::Closed {
            conn: self.id,
            peer: self.peer,
            reason,
        }
    }

    /// Ends the connection at once: both threads wake with an error.
    pub(crate) fn abort(&self, reason: CloseReason) {
        self.set_reason(reason);
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(SockShutdown::Both);
    }
}
