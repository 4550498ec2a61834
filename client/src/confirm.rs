//! Confirmed sends ([`Session::send_confirmed`]): a message, then a request
//! for the history of a room nobody is in, named for this one confirmation.
//! The server handles a connection's messages in order, so its refusal of
//! that request (or of the request itself for coming too fast) comes only
//! after it has handled the message: the refusals that arrive before it
//! are the message's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use lanlink_proto::chat::HistoryRequest;
use lanlink_proto::control::Error as ServerError;
use lanlink_proto::{ErrorCode, Message};
use lanlink_services::ServiceError;

use crate::session::lock;
use crate::{ClientError, Session};

/// The most confirmations waiting at once on one session (each a thread
/// blocked in [`Session::send_confirmed`]); more wait for room.
const MAX_WAITING: usize = 64;

/// The most refusals kept for one confirmation (a hostile server may send
/// any number): the first ones are what the caller is told.
const MAX_REFUSALS: usize = 16;

/// One confirmation waiting for its answer.
struct Probe {
    /// The text of the refusal that answers it.
    answer: String,
    /// The refusals that came while it waited.
    refusals: Mutex<Vec<ServerError>>,
    /// Told when the answer came; dropped (disconnected) when the
    /// connection ended first.
    answered: Sender<()>,
}

/// The confirmations a session's dispatcher answers, oldest first.
#[derive(Default)]
pub(crate) struct Probes {
    waiting: Mutex<VecDeque<Arc<Probe>>>,
    next: AtomicU64,
}

impl Probes {
    /// Takes note of a refusal on the control stream. Returns true when it
    /// answers a confirmation (it is the library's, not the
    /// application's). Other refusals may concern every waiting
    /// confirmation (the server does not say which message it refuses).
    pub(crate) fn refused(&self, e: &ServerError) -> bool {
        let mut waiting = lock(&self.waiting);
        if waiting.is_empty() {
            return false;
        }
        if e.code == ErrorCode::FORBIDDEN {
            if let Some(at) = waiting.iter().position(|p| p.answer == e.message) {
                if let Some(probe) = waiting.remove(at) {
                    let _ = probe.answered.try_send(());
                }
                return true;
            }
        }
        if e.code == ErrorCode::RATE_LIMITED
            && lanlink_services::refuses_history_requests(&e.message)
        {
            // The oldest one's request came too fast: that refusal, too,
            // comes after what was sent before it, which is answered with
            // what came so far.
            if let Some(probe) = waiting.pop_front() {
                let _ = probe.answered.try_send(());
            }
            return true;
        }
        for probe in waiting.iter() {
            let mut refusals = lock(&probe.refusals);
            if refusals.len() < MAX_REFUSALS {
                refusals.push(e.clone());
            }
        }
        false
    }

    /// The connection ended: every waiting confirmation is told so.
    pub(crate) fn clear(&self) {
        lock(&self.waiting).clear();
    }

    /// A new confirmation: the room its request names, and where its
    /// answer comes. `None` while [`MAX_WAITING`] wait.
    fn add(&self) -> Option<(Arc<Probe>, String, Receiver<()>)> {
        let mut waiting = lock(&self.waiting);
        if waiting.len() >= MAX_WAITING {
            return None;
        }
        let room = format!("~confirm-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (answered, answer) = crossbeam_channel::bounded(1);
        let probe = Arc::new(Probe {
            answer: ServiceError::NotInRoom { room: room.clone() }.to_string(),
            refusals: Mutex::new(Vec::new()),
            answered,
        });
        waiting.push_back(probe.clone());
        Some((probe, room, answer))
    }

    fn remove(&self, probe: &Arc<Probe>) {
        lock(&self.waiting).retain(|p| !Arc::ptr_eq(p, probe));
    }
}

impl Session {
    /// Sends `message` (on the control stream) and waits, at most
    /// `patience`, until the server has handled it: `Ok` once it has,
    /// without refusing it. (The confirmation is a request the server
    /// answers only after everything sent before it; it costs one of the
    /// server's requests, of which it allows 20 at once and 2 a second.)
    ///
    /// # Errors
    /// - [`ClientError::Refused`] with the server's refusal: for sending
    ///   too fast (`RATE_LIMITED`: [`ClientError::retry_after`] says when
    ///   to send it again), a line too long, a room not joined…
    /// - [`ClientError::Unconfirmed`] when no answer came within
    ///   `patience` (the message may still have been handled).
    /// - [`ClientError::Disconnected`] when the connection ended first.
    ///
    /// The server does not say which message a refusal is about: while
    /// other threads send on this session at the same time, their
    /// refusals may be reported here too.
    pub fn send_confirmed(
        &self,
        message: impl Into<Message>,
        patience: Duration,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + patience;
        let probes = &self.inner.shared.probes;
        let (probe, room, answer) = loop {
            if let Some(added) = probes.add() {
                break added;
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Unconfirmed { waited: patience });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let sent = self
            .send(message)
            .and_then(|()| self.send(HistoryRequest { room, limit: 0 }));
        if let Err(e) = sent {
            probes.remove(&probe);
            return Err(e);
        }
        match answer.recv_deadline(deadline) {
            Ok(()) => match lock(&probe.refusals).first() {
                None => Ok(()),
                Some(e) => Err(ClientError::Refused {
                    code: e.code,
                    reason: e.message.clone(),
                }),
            },
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                probes.remove(&probe);
                Err(ClientError::Unconfirmed { waited: patience })
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(ClientError::Disconnected(self.inner.shared.close_reason()))
            }
        }
    }

    /// Says `text` in `room` and waits until the server has handled it
    /// (see [`send_confirmed`](Self::send_confirmed)).
    pub fn say_confirmed(
        &self,
        room: &str,
        text: &str,
        patience: Duration,
    ) -> Result<(), ClientError> {
        self.send_confirmed(crate::session::chat_message(room, text, false), patience)
    }
}
