//! A chat session that outlives its connection: [`Reconnecting`].
//!
//! A bot or a chat window should not die with its Wi-Fi. [`Reconnecting`]
//! holds a [`Session`] and, when the connection is lost in a way that
//! connecting again may mend ([`worth_reconnecting_after`]), says so at
//! once ([`Event::Reconnecting`]), connects again after a [`Backoff`]
//! (under the name it had last, a nickname change included), and joins
//! again the rooms it was in, with the passwords they were joined with.
//! Its [`Events`] go on over every connection; [`Event::Disconnected`]
//! comes only when it gives up (banned, kicked, a changed certificate, a
//! wrong token) or is closed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lanlink_proto::chat::PresenceChange;
use lanlink_proto::ErrorCode;
use lanlink_services::chat::names::fold;
use lanlink_transport::CloseReason;

use crate::resume::{worth_connecting_again, worth_reconnecting_after};
use crate::session::lock;
use crate::{Backoff, ClientError, Event, Events, Session, SessionBuilder};

/// Events waiting for the application, as many as a session holds.
const EVENT_CAPACITY: usize = 4096;
/// A connection that lasted this long was a good one: the waits before
/// connecting again start over from the first. One lost sooner (a server
/// that takes connections and drops them) goes on waiting longer.
const STABLE: Duration = Duration::from_secs(30);

/// A chat session that connects again when its connection is lost, and
/// joins its rooms again.
///
/// Cheap to clone, usable from any thread. Send through it what should
/// survive a reconnect ([`join`](Self::join) remembers the password), or
/// through [`session`](Self::session) for the rest (files, media), which
/// end with the connection they started on.
///
/// ```no_run
/// use lanlink_client::{Backoff, Event, Reconnecting, Session};
///
/// # fn main() -> Result<(), lanlink_client::ClientError> {
/// let builder = Session::builder("192.168.1.20").name("timebot");
/// let (link, events) = Reconnecting::connect(builder, Backoff::default())?;
/// link.join("ops", Some("secret"))?;
/// for event in events {
///     match event {
///         Event::Message(m) if m.text == "!ping" => {
///             // Lost meanwhile: this line is lost too, and says so.
///             let _ = link.say(&m.room, "pong");
///         }
///         Event::Reconnecting { reason, retry_in, .. } => {
///             eprintln!("lost ({reason}); again in {retry_in:?}");
///         }
///         Event::Disconnected(reason) => eprintln!("gave up: {reason}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Reconnecting {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting")
            .field("session", &*lock(&self.inner.session))
            .field("rooms", &self.rooms())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `None` between a lost connection and the next.
    session: Mutex<Option<Session>>,
    rooms: Mutex<Rooms>,
    /// Why the last connection ended, while there is none.
    lost: Mutex<Option<CloseReason>>,
    /// Dropped by [`Reconnecting::close`]: wakes a reconnect that waits.
    stop_tx: Mutex<Option<Sender<()>>>,
    stop: Receiver<()>,
    follower: Mutex<Option<JoinHandle<()>>>,
}

/// The rooms this session is in, and the joins it asked for.
#[derive(Debug, Default)]
struct Rooms {
    /// Folded name → (name as the server spells it, password).
    joined: BTreeMap<String, (String, Option<String>)>,
    /// Folded name → password of a join asked for and not yet answered.
    asked: BTreeMap<String, Option<String>>,
    /// The room the server puts everyone in (its history comes first):
    /// not joined again, the server does that.
    default: Option<String>,
}

impl Rooms {
    /// Learns from `event` which rooms we are in; `me` is our name now.
    fn learn(&mut self, event: &Event, me: &str) {
        match event {
            // A history comes on entering a room (the default one first);
            // a roster answers a join (a member joining again gets no
            // history).
            Event::History(h) => {
                self.default.get_or_insert_with(|| fold(&h.room));
                self.entered(&h.room, false);
            }
            Event::Roster(r) => self.entered(&r.room, true),
            Event::Presence(p) if p.change == PresenceChange::Left && fold(&p.name) == fold(me) => {
                self.joined.remove(&fold(&p.room));
            }
            // A refused join (a wrong password, a bad name) is not a room
            // we are in; refusals of chat lines are not about joins.
            Event::ServerError(e)
                if e.code != ErrorCode::RATE_LIMITED && e.code != ErrorCode::TOO_LARGE =>
            {
                self.asked.clear();
            }
            _ => {}
        }
    }

    fn entered(&mut self, room: &str, only_if_asked: bool) {
        let key = fold(room);
        let asked = self.asked.remove(&key);
        if only_if_asked && asked.is_none() {
            return;
        }
        let password = asked.flatten();
        let entry = self
            .joined
            .entry(key)
            .or_insert_with(|| (room.to_owned(), None));
        room.clone_into(&mut entry.0);
        if password.is_some() {
            entry.1 = password;
        }
    }

    /// The rooms to join again on a new connection.
    fn to_rejoin(&self) -> Vec<(String, Option<String>)> {
        self.joined
            .iter()
            .filter(|(key, _)| Some(*key) != self.default.as_ref())
            .map(|(_, (name, password))| (name.clone(), password.clone()))
            .collect()
    }
}

impl Reconnecting {
    /// Connects with `builder` (a failure the first time is returned at
    /// once: a wrong address is not waited on), and connects again with
    /// it, `backoff` apart, whenever the connection is lost.
    pub fn connect(
        builder: SessionBuilder,
        backoff: Backoff,
    ) -> Result<(Reconnecting, Events), ClientError> {
        let (session, events) = builder.clone().connect()?;
        let (stop_tx, stop) = crossbeam_channel::bounded(0);
        let inner = Arc::new(Inner {
            session: Mutex::new(Some(session)),
            rooms: Mutex::new(Rooms::default()),
            lost: Mutex::new(None),
            stop_tx: Mutex::new(Some(stop_tx)),
            stop,
            follower: Mutex::new(None),
        });
        let (tx, rx) = crossbeam_channel::bounded(EVENT_CAPACITY);
        let follower = {
            let inner = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("lanlink-reconnect".into())
                .spawn(move || follow(&inner, events, &builder, backoff, &tx))
                .map_err(|e| {
                    lanlink_transport::TransportError::io("starting the reconnecting thread", e)
                })?
        };
        *lock(&inner.follower) = Some(follower);
        Ok((Reconnecting { inner }, Events { rx }))
    }

    /// The session now; `None` while connecting again.
    pub fn session(&self) -> Option<Session> {
        lock(&self.inner.session).clone()
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.session().is_some_and(|s| s.is_connected())
    }

    /// The session, or why there is none.
    fn current(&self) -> Result<Session, ClientError> {
        self.session().ok_or_else(|| {
            ClientError::Disconnected(
                lock(&self.inner.lost)
                    .clone()
                    .unwrap_or(CloseReason::PeerClosed),
            )
        })
    }

    /// Joins `room` (see [`Session::join`]); once the server has let us
    /// in, it is joined again, with `password`, after every reconnect.
    /// While connecting again this fails with [`ClientError::Disconnected`].
    pub fn join(&self, room: &str, password: Option<&str>) -> Result<(), ClientError> {
        let session = self.current()?;
        lock(&self.inner.rooms)
            .asked
            .insert(fold(room), password.map(str::to_owned));
        session.join(room, password)
    }

    /// Leaves `room` (not joined again after a reconnect once the server
    /// has said we left).
    pub fn leave(&self, room: &str) -> Result<(), ClientError> {
        self.current()?.leave(room)
    }

    /// Says `text` in `room` (see [`Session::say`]). A line said while the
    /// connection is down fails with [`ClientError::Disconnected`]; one
    /// queued just before a loss may be lost with it.
    pub fn say(&self, room: &str, text: &str) -> Result<(), ClientError> {
        self.current()?.say(room, text)
    }

    /// Sends a private message (see [`Session::private_message`]).
    pub fn private_message(&self, to: &str, text: &str) -> Result<(), ClientError> {
        self.current()?.private_message(to, text)
    }

    /// The rooms we are in (as the server spells them), the default room
    /// included.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.inner.rooms)
            .joined
            .values()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Stops connecting again and closes the session (see
    /// [`Session::close`]); the events end with [`Event::Disconnected`].
    pub fn close(&self, reason: &str) {
        drop(lock(&self.inner.stop_tx).take());
        if let Some(session) = lock(&self.inner.session).take() {
            session.close(reason);
        }
        let follower = lock(&self.inner.follower).take();
        if let Some(follower) = follower {
            if follower.thread().id() != std::thread::current().id() {
                let _ = follower.join();
            }
        }
    }
}

/// Follows the sessions' events, connecting again whenever one is lost,
/// until giving up, a [`Reconnecting::close`], or every handle is dropped.
fn follow(
    inner: &std::sync::Weak<Inner>,
    mut events: Events,
    builder: &SessionBuilder,
    mut backoff: Backoff,
    tx: &Sender<Event>,
) {
    let mut connected_at = Instant::now();
    loop {
        let reason = loop {
            let Some(event) = events.recv() else {
                break CloseReason::PeerClosed;
            };
            let Some(inner) = inner.upgrade() else { return };
            if let Event::Disconnected(reason) = event {
                break reason;
            }
            let me = lock(&inner.session)
                .as_ref()
                .map(Session::name)
                .unwrap_or_default();
            lock(&inner.rooms).learn(&event, &me);
            let stop = inner.stop.clone();
            drop(inner);
            if !emit(tx, &stop, event) {
                return;
            }
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let me = lock(&strong.session).take().map(|s| s.name());
        *lock(&strong.lost) = Some(reason.clone());
        lock(&strong.rooms).asked.clear();
        let closed = matches!(
            strong.stop.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        );
        let stop = strong.stop.clone();
        drop(strong);
        if closed || !worth_reconnecting_after(&reason) {
            emit(tx, &stop, Event::Disconnected(reason));
            return;
        }
        let builder = match &me {
            Some(name) => builder.clone().name(name.clone()),
            None => builder.clone(),
        };
        if connected_at.elapsed() >= STABLE {
            backoff.reset();
        }
        match connect_again(inner, &builder, &mut backoff, &reason, tx) {
            Some(next) => {
                events = next;
                connected_at = Instant::now();
            }
            None => {
                emit(tx, &stop, Event::Disconnected(reason));
                return;
            }
        }
    }
}

/// Hands `event` to the application; false once nobody reads. An
/// application that holds its events but stopped reading does not keep a
/// [`Reconnecting::close`] waiting: once closing, what finds no room is
/// dropped.
fn emit(tx: &Sender<Event>, stop: &Receiver<()>, mut event: Event) -> bool {
    loop {
        match tx.send_timeout(event, Duration::from_millis(100)) {
            Ok(()) => return true,
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
            Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                if matches!(
                    stop.try_recv(),
                    Err(crossbeam_channel::TryRecvError::Disconnected)
                ) {
                    return true;
                }
                event = back;
            }
        }
    }
}

/// Connects again, `backoff` apart, telling `tx` of each wait and
/// failure; on success joins the rooms again. `None`: it gave up, or
/// was told to stop.
fn connect_again(
    inner: &std::sync::Weak<Inner>,
    builder: &SessionBuilder,
    backoff: &mut Backoff,
    reason: &CloseReason,
    tx: &Sender<Event>,
) -> Option<Events> {
    let stop = inner.upgrade()?.stop.clone();
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let retry_in = backoff.next().unwrap_or(Duration::from_secs(30));
        let waiting = Event::Reconnecting {
            reason: reason.clone(),
            attempt,
            retry_in,
        };
        if !emit(tx, &stop, waiting)
            || !matches!(stop.recv_timeout(retry_in), Err(RecvTimeoutError::Timeout))
        {
            return None;
        }
        match builder.clone().connect() {
            Ok((session, events)) => {
                let inner = inner.upgrade()?;
                let rooms = lock(&inner.rooms).to_rejoin();
                let name = session.name();
                *lock(&inner.lost) = None;
                *lock(&inner.session) = Some(session.clone());
                if !emit(tx, &stop, Event::Reconnected { name }) {
                    return None;
                }
                for (room, password) in rooms {
                    lock(&inner.rooms)
                        .asked
                        .insert(fold(&room), password.clone());
                    let _ = session.join(&room, password.as_deref());
                }
                return Some(events);
            }
            Err(e) => {
                let again = worth_connecting_again(&e);
                if !emit(tx, &stop, Event::ConnectFailed(Arc::new(e))) || !again {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::chat::{History, Presence, Roster};

    fn history(room: &str) -> Event {
        Event::History(History {
            room: room.into(),
            messages: Vec::new(),
        })
    }

    fn roster(room: &str) -> Event {
        Event::Roster(Roster {
            room: room.into(),
            members: vec!["ada".into()],
        })
    }

    #[test]
    fn rooms_are_learnt_from_the_server_and_joined_again_with_their_passwords() {
        let mut rooms = Rooms::default();
        // The default room's history comes first.
        rooms.learn(&history("Lobby"), "ada");
        rooms.asked.insert(fold("ops"), Some("pw".into()));
        rooms.learn(&history("OPS"), "ada");
        // A roster of a room not asked for (a /who) joins nothing.
        rooms.learn(&roster("elsewhere"), "ada");
        // A join refused (a wrong password) is forgotten.
        rooms.asked.insert(fold("vault"), Some("wrong".into()));
        rooms.learn(
            &Event::ServerError(lanlink_proto::control::Error {
                code: ErrorCode::FORBIDDEN,
                message: "wrong password".into(),
            }),
            "ada",
        );
        rooms.learn(&roster("vault"), "ada");
        // Joining again a room we are in: the roster answers.
        rooms.asked.insert(fold("dev"), None);
        rooms.learn(&roster("dev"), "ada");
        assert_eq!(
            rooms.to_rejoin(),
            [
                ("dev".to_owned(), None),
                ("OPS".to_owned(), Some("pw".to_owned()))
            ]
        );
        // Leaving (or being kicked) is not joined again; others leaving
        // change nothing.
        let left = |name: &str| {
            Event::Presence(Presence {
                room: "dev".into(),
                name: name.into(),
                change: PresenceChange::Left,
                reason: String::new(),
            })
        };
        rooms.learn(&left("bob"), "Ada");
        assert_eq!(rooms.to_rejoin().len(), 2);
        rooms.learn(&left("ADA"), "Ada");
        assert_eq!(
            rooms.to_rejoin(),
            [("OPS".to_owned(), Some("pw".to_owned()))]
        );
    }
}
