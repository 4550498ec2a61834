//! The client's reader thread: frames in, keepalive, timeouts, and the
//! `Closed` event at the end.

use std::io;
use std::net::Shutdown as SockShutdown;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::Sender;
use lanlink_proto::{control, ErrorCode, Frame, FrameDecoder, ProtoError};

use super::{CloseReason, ConnConfig, ConnHandle, Event, WriterLink};
use crate::socket::{ReadState, TICK};
use crate::QueuedBytes;

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
    /// The last frame, when it was an error: a peer that then closes
    /// closed because of it ([`CloseReason::PeerError`]).
    pub(crate) last_error: Option<control::Error>,
    /// The bytes of the frames handed over and not yet taken from
    /// `events` (see [`EVENT_BYTES`]).
    pub(crate) queued: QueuedBytes,
}

/// The most bytes of frames waiting in a client's event channel: past
/// them the reader stops reading until the application catches up (4,096
/// frames of up to 16 MiB would otherwise be 64 GiB from a hostile server).
pub(crate) const EVENT_BYTES: usize = 64 << 20;

impl Reader {
    /// Reads frames until the connection ends, then reports `Closed`.
    /// Pings, pongs and goodbyes are handled here; everything else goes to
    /// the event channel, which blocks when full so a fast sender is slowed
    /// down by TCP flow control instead of filling our memory.
    pub(crate) fn run(mut self) {
        let shared = self.handle.shared.clone();
        let reason = self.read_loop();
        let peer_goodbye = matches!(reason, CloseReason::Goodbye(_)) && !self.handle.is_closing();
        let closed = shared.closed(reason);
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
                let before = self.decoder.buffered();
                match self.decoder.decode() {
                    Ok(Some(frame)) => {
                        let wire = before.saturating_sub(self.decoder.buffered());
                        let size = frame.message.memory_size(wire);
                        if let Some(reason) = self.on_frame(frame, size, &mut ping_sent) {
                            return reason;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.malformed(e),
                }
            }
            let decoder = &mut self.decoder;
            let read = stream.read_with(&mut self.read_state, &mut scratch, &mut |bytes| {
                decoder.push(bytes)
            });
            if std::mem::take(&mut self.read_state.wants_flush) {
                self.handle.request_flush();
            }
            match read {
                // A TLS peer that closes the socket without close_notify
                // ends the stream just like a plain one closing it.
                Ok(0) => return self.peer_closed(),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.peer_closed(),
                Ok(_) => last_rx = Instant::now(),
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
                Err(e) => return self.said_why(CloseReason::Io(e.to_string())),
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
        size: usize,
        ping_sent: &mut Option<(u64, Instant)>,
    ) -> Option<CloseReason> {
        self.last_error = match &frame.message {
            lanlink_proto::Message::Error(e) => Some(e.clone()),
            _ => None,
        };
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
                    permit: super::InboundPermit::none(),
                };
                // Room in bytes first. Once this side is closing (or shutting
                // down), a frame that finds none is dropped: the application
                // is done, and a peer that keeps sending while we close must
                // not fill the channel with thousands of frames of any size
                // (an outside attack grew a client that refused a transfer
                // to 885 MB in the two seconds of its close). A peer's own
                // close is not ours: its last frames wait for room as any.
                let (shutdown, handle) = (&self.shutdown, &self.handle);
                if !self.queued.wait_for_room(&self.events, size, || {
                    shutdown.is_triggered() || handle.closed_here()
                }) {
                    return None;
                }
                // Wait for room in the event channel (this is what slows a
                // fast sender down), but not past a shutdown: then nobody
                // may be reading any more.
                loop {
                    if self.shutdown.is_triggered() {
                        // Nobody may read any more: deliver if there is
                        // room, never wait.
                        match self.events.try_send(event) {
                            Ok(()) => self.queued.sent(size),
                            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                                return Some(CloseReason::Shutdown);
                            }
                            Err(crossbeam_channel::TrySendError::Full(_)) => {}
                        }
                        break;
                    }
                    match self.events.send_timeout(event, TICK) {
                        Ok(()) => {
                            self.queued.sent(size);
                            break;
                        }
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

    fn peer_closed(&mut self) -> CloseReason {
        let reason = match self.decoder.buffered() {
            0 => CloseReason::PeerClosed,
            buffered => CloseReason::PeerClosedMidFrame { buffered },
        };
        self.said_why(reason)
    }

    /// The peer's error, when that was the last thing it sent before the
    /// connection ended (the reference server sends one before closing a
    /// connection it ends, and its reset can come first); else `reason`.
    fn said_why(&mut self, reason: CloseReason) -> CloseReason {
        match self.last_error.take() {
            Some(control::Error { code, message }) => CloseReason::PeerError { code, message },
            None => reason,
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
