//! Confirmed sends ([`Session::send_confirmed`]): a [`Confirm`], the
//! message, then another [`Confirm`]. The server answers each with
//! [`Confirmed`] only once it has handled everything the connection sent
//! before it, in order, so the refusals that arrive between the two
//! answers are the message's: not those of lines sent before it without a
//! confirmation, which the first answer comes behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use lanlink_proto::control::{Confirm, Confirmed, Error as ServerError};
use lanlink_proto::Message;

use crate::session::lock;
use crate::{ClientError, Session};

/// The most confirmations waiting at once on one session (each a thread
/// blocked in [`Session::send_confirmed`]); more wait for room.
const MAX_WAITING: usize = 64;

/// One confirmation waiting for its answer.
struct Probe {
    /// Whether the answer to the confirmation sent before the message (its
    /// token is one less) came: refusals before it are of earlier messages.
    armed: AtomicBool,
    /// The first refusal that came once armed.
    refusal: Mutex<Option<ServerError>>,
    /// Told when the answer came.
    answered: Sender<()>,
}

/// The confirmations a session's dispatcher answers, by token.
#[derive(Default)]
pub(crate) struct Probes {
    waiting: Mutex<HashMap<u64, Arc<Probe>>>,
    next: AtomicU64,
}

impl Probes {
    /// Takes note of a refusal on the control stream: every waiting
    /// confirmation may be concerned (the server does not say which
    /// message it refuses).
    pub(crate) fn refused(&self, e: &ServerError) {
        for probe in lock(&self.waiting).values() {
            if probe.armed.load(Ordering::Relaxed) {
                lock(&probe.refusal).get_or_insert_with(|| e.clone());
            }
        }
    }

    /// The server's answer to the confirmation `token`: the end of a wait,
    /// or the start of one (the answer to the confirmation sent before a
    /// message). One that gave up waiting, or one the server made up, is
    /// nobody's.
    pub(crate) fn confirmed(&self, s: &Confirmed) {
        let mut waiting = lock(&self.waiting);
        if let Some(probe) = waiting.remove(&s.token) {
            let _ = probe.answered.try_send(());
        }
        if let Some(probe) = s.token.checked_add(1).and_then(|t| waiting.get(&t)) {
            probe.armed.store(true, Ordering::Relaxed);
        }
    }

    /// A new confirmation: the tokens of the confirmations to send before
    /// and after the message, and where the answer comes. `None` while
    /// [`MAX_WAITING`] wait.
    fn add(&self) -> Option<(u64, u64, Arc<Probe>, Receiver<()>)> {
        let mut waiting = lock(&self.waiting);
        if waiting.len() >= MAX_WAITING {
            return None;
        }
        // Two tokens in a row; the first is never waited for itself.
        let before = self.next.fetch_add(2, Ordering::Relaxed);
        let token = before.wrapping_add(1);
        let (answered, answer) = crossbeam_channel::bounded(1);
        let probe = Arc::new(Probe {
            armed: AtomicBool::new(false),
            refusal: Mutex::new(None),
            answered,
        });
        waiting.insert(token, probe.clone());
        Some((before, token, probe, answer))
    }

    fn remove(&self, token: u64) {
        lock(&self.waiting).remove(&token);
    }
}

impl Session {
    /// Sends `message` (on the control stream) and waits, at most
    /// `patience`, until the server has handled it: `Ok` once it has,
    /// without refusing it.
    ///
    /// The server answers a `Confirm` sent after the message only once it has
    /// handled everything before it (see the protocol's `Confirm`),
    /// including a private message to a user on another server
    /// (scale-out): the answer waits for that server's, at most 5 s. What
    /// the server handles later is not covered: a file request's reading
    /// and hashing.
    ///
    /// The dispatcher recognises the answer as it hands the session's
    /// [`Events`](crate::Events) on: read them (or drop them), or the
    /// answer waits behind thousands of unread events.
    ///
    /// # Errors
    /// - [`ClientError::Refused`] with the server's refusal: for sending
    ///   too fast (`RATE_LIMITED`: [`ClientError::retry_after`] says when
    ///   to send it again), a line too long, a room not joined… The
    ///   refusal also comes as an [`Event::ServerError`](crate::Event::ServerError).
    /// - [`ClientError::Unconfirmed`] when no answer came within
    ///   `patience` (the message may still have been handled).
    /// - [`ClientError::Disconnected`] as soon as the connection ends.
    ///
    /// The server does not say which message a refusal is about. A
    /// confirmation sent just before the message marks where its answers
    /// start, so the refusals of lines sent earlier without waiting (a
    /// burst of [`say`](Self::say)s refused as too fast) are not blamed on
    /// it. Lines other threads send on this session at the same time may
    /// be refused in between, and reported here too; so may a private
    /// message to another server's user sent before the marking
    /// confirmation, if that server takes more than the 5 s its answer is
    /// waited for.
    pub fn send_confirmed(
        &self,
        message: impl Into<Message>,
        patience: Duration,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + patience;
        let shared = &self.inner.shared;
        let gone = || ClientError::Disconnected(shared.close_reason());
        let (before, token, probe, answer) = loop {
            if shared.closed().is_some() {
                return Err(gone());
            }
            if let Some(added) = shared.probes.add() {
                break added;
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Unconfirmed { waited: patience });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let sent = self
            .send(Confirm { token: before })
            .and_then(|()| self.send(message))
            .and_then(|()| self.send(Confirm { token }));
        if let Err(e) = sent {
            shared.probes.remove(token);
            return Err(e);
        }
        let timeout = crossbeam_channel::at(deadline);
        // The answer wins over an end or a timeout that came with it.
        let answered = crossbeam_channel::select! {
            recv(answer) -> got => got.is_ok(),
            // Never carries anything: disconnected once the dispatcher
            // has ended.
            recv(shared.gone) -> _ => answer.try_recv().is_ok(),
            recv(timeout) -> _ => answer.try_recv().is_ok(),
        };
        if !answered {
            shared.probes.remove(token);
            return Err(match shared.closed() {
                Some(_) => gone(),
                None => ClientError::Unconfirmed { waited: patience },
            });
        }
        let refusal = lock(&probe.refusal).take();
        match refusal {
            None => Ok(()),
            Some(e) => Err(ClientError::Refused {
                code: e.code,
                reason: e.message,
            }),
        }
    }

    /// Joins `room` (with its password, if it has one) and waits until the
    /// server has handled it (see [`send_confirmed`](Self::send_confirmed)):
    /// `Ok` once in the room, its refusal otherwise (a wrong password, too
    /// many rooms). A plain [`join`](Self::join) is not answered when it
    /// succeeds, and its refusal would come as an event, or be blamed on
    /// the next confirmed line.
    pub fn join_confirmed(
        &self,
        room: &str,
        password: Option<&str>,
        patience: Duration,
    ) -> Result<(), ClientError> {
        self.send_confirmed(
            lanlink_proto::chat::Join {
                room: room.to_owned(),
                password: password.map(str::to_owned),
            },
            patience,
        )
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

/// Sends one message after another, each confirmed
/// ([`Session::send_confirmed`]), at the pace the server allows: for
/// scripts and bots that must know every line was delivered (`lanlink
/// chat` fed from a pipe).
///
/// A message refused as too fast is sent again after the wait the server
/// named (or, if it named none, after a [`Backoff`](crate::Backoff) from
/// 250 ms to 8 s), until [`give_up_after`](Self::give_up_after) has passed
/// since it was first sent. After such a refusal the following messages are spaced as far
/// apart as the server asked (and further, when they are still refused),
/// so that few are refused at all.
///
/// ```no_run
/// use lanlink_client::{Paced, Session};
///
/// // Refusals come back from `say`; the events are not read, so they are
/// // dropped (`_`): held unread they would fill and stop the session.
/// let (session, _) = Session::builder("192.168.1.10").name("logbot").connect()?;
/// let mut paced = Paced::new();
/// for line in std::io::stdin().lines() {
///     paced.say(&session, "lobby", &line?)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Paced {
    patience: Duration,
    give_up: Duration,
    /// The least time between two messages: the longest wait the server
    /// asked for, lengthened by each wait it asks for although the
    /// messages were that far apart.
    gap: Duration,
    last: Option<Instant>,
}

impl Default for Paced {
    fn default() -> Paced {
        Paced {
            patience: Duration::from_secs(10),
            give_up: Duration::from_secs(60),
            gap: Duration::ZERO,
            last: None,
        }
    }
}

impl Paced {
    /// Confirmations waited for 10 s each; a message given up after 60 s
    /// of refusals as too fast.
    pub fn new() -> Paced {
        Paced::default()
    }

    /// How long each confirmation is waited for (10 s).
    pub fn patience(mut self, patience: Duration) -> Paced {
        self.patience = patience;
        self
    }

    /// How long after its first send a message still refused as too fast
    /// is given up (60 s). With the gap before its first send (at most
    /// this long too) and one confirmation's patience, a message takes at
    /// most twice this plus the patience, whatever the server does.
    pub fn give_up_after(mut self, limit: Duration) -> Paced {
        self.give_up = limit;
        self
    }

    /// The spacing learnt from the server's refusals so far.
    pub fn gap(&self) -> Duration {
        self.gap
    }

    /// Sends `message` on `session` once its turn has come and waits until
    /// the server has handled it, sending it again while it is refused as
    /// too fast.
    ///
    /// # Errors
    /// - [`ClientError::Refused`] with the server's refusal: for another
    ///   reason than the rate (it also comes as an
    ///   [`Event::ServerError`](crate::Event::ServerError)), or as too
    ///   fast for longer than [`give_up_after`](Self::give_up_after) (the
    ///   last refusal). The next message may go.
    /// - [`ClientError::Unconfirmed`] when the server did not answer
    ///   within the patience, [`ClientError::Disconnected`] when the
    ///   connection is gone: the next message would fare no better.
    pub fn send(
        &mut self,
        session: &Session,
        message: impl Into<Message>,
    ) -> Result<(), ClientError> {
        let message = message.into();
        let mut first_sent: Option<Instant> = None;
        let mut backoff = crate::Backoff::new(Duration::from_millis(250), Duration::from_secs(8));
        loop {
            let due = self.last.map(|last| last + self.gap);
            if let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
                std::thread::sleep(wait);
            }
            let first = *first_sent.get_or_insert_with(Instant::now);
            let confirmed = session.send_confirmed(message.clone(), self.patience);
            self.last = Some(Instant::now());
            let refusal = match confirmed {
                Err(e @ ClientError::Refused { code, .. })
                    if code == lanlink_proto::ErrorCode::RATE_LIMITED =>
                {
                    e
                }
                other => return other,
            };
            let asked = refusal.retry_after();
            // A little past the wait, so the bucket has really refilled.
            let wait = asked.map_or_else(
                || backoff.next().unwrap_or(Duration::from_secs(1)),
                |d| d + Duration::from_millis(20),
            );
            // All the time since the first send counts, confirmations the
            // server was slow to give and the gap between sends too: a
            // server that answers each try slowly, or asks for no wait at
            // all, cannot keep a line going for ever.
            if first.elapsed() + wait > self.give_up {
                return Err(refusal);
            }
            if let Some(asked) = asked {
                self.learn(asked);
            }
            std::thread::sleep(wait);
        }
    }

    /// A refusal asked to wait `asked`. Refused although spaced by the gap,
    /// the gap was short by about that much. Never more than a message may
    /// wait in all: a server cannot make a script sleep for ever between
    /// lines.
    fn learn(&mut self, asked: Duration) {
        let gap = if asked >= self.gap {
            asked
        } else {
            self.gap + asked
        };
        self.gap = gap.min(self.give_up);
    }

    /// Says `text` in `room` as [`send`](Self::send) does.
    pub fn say(&mut self, session: &Session, room: &str, text: &str) -> Result<(), ClientError> {
        self.send(session, crate::session::chat_message(room, text, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_follows_the_waits_asked_and_stays_bounded() {
        let mut paced = Paced::new();
        paced.learn(Duration::from_millis(190));
        assert_eq!(paced.gap(), Duration::from_millis(190));
        // Refused again although 190 ms apart: 10 ms short.
        paced.learn(Duration::from_millis(10));
        assert_eq!(paced.gap(), Duration::from_millis(200));
        paced.learn(Duration::from_millis(500));
        assert_eq!(paced.gap(), Duration::from_millis(500));
        // A server refusing every line with small waits cannot stretch the
        // gap past what one message may wait in all.
        for _ in 0..10_000 {
            paced.learn(Duration::from_millis(400));
        }
        assert_eq!(paced.gap(), Duration::from_secs(60));
    }
}
