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

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use lanlink_proto::chat::PresenceChange;
use lanlink_services::chat::names::fold;
use lanlink_transport::CloseReason;

use crate::resume::{worth_connecting_again, worth_reconnecting_after};
use crate::session::{lock, EventsOut};
use crate::{Backoff, ClientError, Event, Events, Session, SessionBuilder};

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
        let rooms = self.rooms();
        f.debug_struct("Reconnecting")
            .field("session", &self.session())
            .field("rooms", &rooms)
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

/// The most rooms remembered to join again (a server lets a client into
/// 32 by default): a server cannot make the client remember, and join,
/// rooms without end.
const MAX_ROOMS: usize = 64;

/// A join unanswered this long was refused (a wrong password): it is not
/// asked again on the next connection. One younger was in flight.
const ASK_PATIENCE: Duration = Duration::from_secs(10);

/// The rooms this session is in, and the joins it asked for.
#[derive(Debug, Default)]
struct Rooms {
    /// Our name, as the events in order say (a nickname change included).
    me: String,
    /// Folded name → (name as the server spells it, password).
    joined: BTreeMap<String, (String, Option<String>)>,
    /// Folded name → (name as asked, password, when) of a join asked for,
    /// until the room's history (which comes only on entering it) or
    /// roster answers it. One still unanswered when the connection is lost
    /// (asked within [`ASK_PATIENCE`]) is asked again on the next.
    asked: BTreeMap<String, (String, Option<String>, Instant)>,
    /// Rooms we were in before a reconnect, joined again and not yet
    /// entered (kept over another loss; a room refused now stays here).
    rejoining: BTreeMap<String, (String, Option<String>)>,
    /// The room the server puts everyone in (its history comes first on
    /// every connection): not joined again, the server does that.
    default: Option<String>,
    /// Whether this connection's first history (the default room's) came.
    first_history_seen: bool,
}

impl Rooms {
    /// Learns from `event` which rooms we are in.
    fn learn(&mut self, event: &Event) {
        match event {
            // A history comes only on entering a room: the default room
            // first, then those we asked to join. Any other (a hostile
            // server's) makes us remember nothing.
            Event::History(h) => {
                let key = fold(&h.room);
                let first = !std::mem::replace(&mut self.first_history_seen, true);
                if first {
                    self.default = Some(key.clone());
                }
                let password = match (self.asked.remove(&key), self.rejoining.remove(&key)) {
                    (Some((_, password, _)), _) => password,
                    (None, Some((_, password))) => password,
                    (None, None) if first => None,
                    // Entered already (a confirmed join): the server's
                    // spelling of its name.
                    (None, None) => {
                        if let Some((name, _)) = self.joined.get_mut(&key) {
                            h.room.clone_into(name);
                        }
                        return;
                    }
                };
                if self.joined.len() < MAX_ROOMS || self.joined.contains_key(&key) {
                    self.joined.insert(key, (h.room.clone(), password));
                }
            }
            // A member joining again gets only the roster.
            Event::Roster(r) => {
                self.asked.remove(&fold(&r.room));
            }
            Event::Presence(p)
                if p.change == PresenceChange::Left && fold(&p.name) == fold(&self.me) =>
            {
                self.joined.remove(&fold(&p.room));
            }
            Event::NickChanged(n) if fold(&n.old) == fold(&self.me) => {
                n.new.clone_into(&mut self.me);
            }
            _ => {}
        }
    }

    /// The server confirmed a join of `room`: in it now, even before
    /// its history has come through the events (spelled as asked until
    /// then).
    fn confirmed(&mut self, room: &str) {
        let key = fold(room);
        if let Some((name, password, _)) = self.asked.remove(&key) {
            if self.joined.len() < MAX_ROOMS || self.joined.contains_key(&key) {
                self.joined.insert(key, (name, password));
            }
        }
    }

    /// A join is asked for.
    fn asking(&mut self, room: &str, password: Option<&str>) {
        if self.asked.len() >= MAX_ROOMS {
            // Joins never answered (refused): forget them.
            self.asked.clear();
        }
        let asked = (room.to_owned(), password.map(str::to_owned), Instant::now());
        self.asked.insert(fold(room), asked);
    }

    /// The connection is lost: joins in flight are asked again on the
    /// next one; older unanswered ones were refused.
    fn lost(&mut self) {
        for (key, (room, password, at)) in std::mem::take(&mut self.asked) {
            if at.elapsed() < ASK_PATIENCE && self.rejoining.len() < MAX_ROOMS {
                self.rejoining.insert(key, (room, password));
            }
        }
    }

    /// A join asked for while connecting again: joined once connected.
    fn wanted(&mut self, room: &str, password: Option<&str>) {
        let key = fold(room);
        if self.rejoining.len() < MAX_ROOMS || self.rejoining.contains_key(&key) {
            let wanted = (room.to_owned(), password.map(str::to_owned));
            self.rejoining.insert(key, wanted);
        }
    }

    /// A new connection, as `me`: the rooms to join again on it.
    fn connected(&mut self, me: String) -> Vec<(String, Option<String>)> {
        self.me = me;
        self.asked.clear();
        self.first_history_seen = false;
        let default = self.default.clone();
        let was_in = std::mem::take(&mut self.joined);
        self.rejoining.extend(
            was_in
                .into_iter()
                .filter(|(key, _)| Some(key) != default.as_ref()),
        );
        while self.rejoining.len() > MAX_ROOMS {
            self.rejoining.pop_last();
        }
        self.rejoining.values().cloned().collect()
    }
}

impl Reconnecting {
    /// Connects with `builder` (a failure the first time is returned at
    /// once: a wrong address is not waited on), and connects again with
    /// it, `backoff` apart, whenever the connection is lost. The waits
    /// start over from the first once a connection has lasted 30 s; after
    /// one that did not (a server that takes connections and drops them)
    /// they go on growing.
    pub fn connect(
        builder: SessionBuilder,
        backoff: Backoff,
    ) -> Result<(Reconnecting, Events), ClientError> {
        let (session, events) = builder.clone().connect()?;
        let mut rooms = Rooms::default();
        rooms.connected(session.name());
        let (stop_tx, stop) = crossbeam_channel::bounded(0);
        let inner = Arc::new(Inner {
            session: Mutex::new(Some(session)),
            rooms: Mutex::new(rooms),
            lost: Mutex::new(None),
            stop_tx: Mutex::new(Some(stop_tx)),
            stop,
            follower: Mutex::new(None),
        });
        let (mut out, events_out) = Events::channel();
        let follower = {
            let inner = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("lanlink-reconnect".into())
                .spawn(move || {
                    follow(&inner, events, &builder, backoff, &mut out);
                })
                .map_err(|e| {
                    lanlink_transport::TransportError::io("starting the reconnecting thread", e)
                })?
        };
        *lock(&inner.follower) = Some(follower);
        Ok((Reconnecting { inner }, events_out))
    }

    /// The session now; `None` while connecting again. Transfers and
    /// streams started on it end with it.
    pub fn session(&self) -> Option<Session> {
        lock(&self.inner.session).clone()
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.session().is_some_and(|s| s.is_connected())
    }

    /// Our name, as the events read so far say (the server may have
    /// changed it on a reconnect: see [`Event::Reconnected`]).
    pub fn name(&self) -> String {
        lock(&self.inner.rooms).me.clone()
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
    /// Asked while connecting again, or sent just as the connection went
    /// (unanswered for less than 10 s), it is asked on the next
    /// connection. Fails with [`ClientError::Disconnected`] only once
    /// this has given up or was closed.
    pub fn join(&self, room: &str, password: Option<&str>) -> Result<(), ClientError> {
        // Under the rooms' lock, which a reconnect holds while it takes
        // the rooms to join again and stores its session: a join is either
        // among those or sent on that session.
        let mut rooms = lock(&self.inner.rooms);
        let Some(session) = self.session() else {
            if self.gave_up() {
                return Err(self
                    .current()
                    .err()
                    .unwrap_or(ClientError::Disconnected(CloseReason::PeerClosed)));
            }
            rooms.wanted(room, password);
            return Ok(());
        };
        rooms.asking(room, password);
        drop(rooms);
        match session.join(room, password) {
            // The connection is going: asked again on the next one.
            Err(ClientError::Disconnected(_)) if !self.gave_up() => Ok(()),
            sent => sent,
        }
    }

    /// Joins `room` and waits until the server has handled it (see
    /// [`Session::join_confirmed`]): `Ok` once in the room, which is then
    /// joined again, with `password`, after every reconnect; the server's
    /// refusal (a wrong password) otherwise.
    ///
    /// # Errors
    /// As [`Session::join_confirmed`]; [`ClientError::Disconnected`] while
    /// the connection is down (nothing is asked), or when it is lost
    /// before the answer came: then, as with [`join`](Self::join), the
    /// join is asked again on the next connection.
    pub fn join_confirmed(
        &self,
        room: &str,
        password: Option<&str>,
        patience: Duration,
    ) -> Result<(), ClientError> {
        // As in `join`: either among the rooms a reconnect joins again, or
        // sent on the session it stored.
        let mut rooms = lock(&self.inner.rooms);
        let session = self.current()?;
        rooms.asking(room, password);
        drop(rooms);
        let joined = session.join_confirmed(room, password, patience);
        if joined.is_ok() {
            // `rooms` lists it at once, not once the history has come.
            lock(&self.inner.rooms).confirmed(room);
        }
        if let Err(ClientError::Refused { .. }) = joined {
            // Not asked again on the next connection: a wrong password
            // would spend the server's guesses for the address. (A loss
            // that came meanwhile moved it among the rooms to join again.)
            let mut rooms = lock(&self.inner.rooms);
            let key = fold(room);
            rooms.asked.remove(&key);
            if rooms
                .rejoining
                .get(&key)
                .is_some_and(|(_, p)| p.as_deref() == password)
            {
                rooms.rejoining.remove(&key);
            }
        }
        joined
    }

    /// Whether it gave up or was closed: no connection will come again.
    fn gave_up(&self) -> bool {
        closing(&self.inner.stop)
            || lock(&self.inner.follower)
                .as_ref()
                .is_none_or(JoinHandle::is_finished)
    }

    /// Leaves `room`: not joined again after a reconnect once the server
    /// has said we left.
    pub fn leave(&self, room: &str) -> Result<(), ClientError> {
        self.current()?.leave(room)
    }

    /// Says `text` in `room` (see [`Session::say`]). A line said while the
    /// connection is down fails with [`ClientError::Disconnected`]; one
    /// queued just before a loss may be lost with it.
    pub fn say(&self, room: &str, text: &str) -> Result<(), ClientError> {
        self.current()?.say(room, text)
    }

    /// Says `text` in `room` and waits until the server has handled it
    /// (see [`Session::say_confirmed`]); fails with
    /// [`ClientError::Disconnected`] while the connection is down, or when
    /// it is lost before the answer came (the line may have been said).
    pub fn say_confirmed(
        &self,
        room: &str,
        text: &str,
        patience: Duration,
    ) -> Result<(), ClientError> {
        self.current()?.say_confirmed(room, text, patience)
    }

    /// Sends `message` and waits until the server has handled it (see
    /// [`Session::send_confirmed`] and [`say_confirmed`](Self::say_confirmed)).
    pub fn send_confirmed(
        &self,
        message: impl Into<lanlink_proto::Message>,
        patience: Duration,
    ) -> Result<(), ClientError> {
        self.current()?.send_confirmed(message, patience)
    }

    /// Sends a private message (see [`Session::private_message`]).
    pub fn private_message(&self, to: &str, text: &str) -> Result<(), ClientError> {
        self.current()?.private_message(to, text)
    }

    /// The rooms we are in (as the server spells them), the default room
    /// included; after a reconnect, those entered again so far.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.inner.rooms)
            .joined
            .values()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Stops connecting again and closes the session (see
    /// [`Session::close`]). The events end, with [`Event::Disconnected`]
    /// unless the application had stopped reading them (what finds no
    /// room once closing is dropped, so a full queue cannot hold the close
    /// up).
    pub fn close(&self, reason: &str) {
        // `stop` first, then the session: a reconnect that succeeds
        // meanwhile sees one or the other (see `connect_again`).
        drop(lock(&self.inner.stop_tx).take());
        let session = lock(&self.inner.session).take();
        if let Some(session) = session {
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

/// Whether [`Reconnecting::close`] was called.
fn closing(stop: &Receiver<()>) -> bool {
    matches!(stop.try_recv(), Err(TryRecvError::Disconnected))
}

/// Follows the sessions' events, connecting again whenever one is lost,
/// until giving up, a [`Reconnecting::close`], or every handle is dropped.
fn follow(
    inner: &std::sync::Weak<Inner>,
    mut events: Events,
    builder: &SessionBuilder,
    mut backoff: Backoff,
    out: &mut EventsOut,
) {
    let Some(stop) = inner.upgrade().map(|i| i.stop.clone()) else {
        return;
    };
    let mut connected_at = Instant::now();
    loop {
        let reason = loop {
            let Some(event) = events.recv() else {
                break CloseReason::PeerClosed;
            };
            if let Event::Disconnected(reason) = event {
                break reason;
            }
            let Some(inner) = inner.upgrade() else { return };
            lock(&inner.rooms).learn(&event);
            drop(inner);
            emit(out, &stop, event);
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        // Locks in the order `Reconnecting::join` takes them: rooms, then
        // the session.
        let me = {
            let mut rooms = lock(&strong.rooms);
            rooms.lost();
            let had = lock(&strong.session).take().is_some();
            had.then(|| rooms.me.clone())
        };
        *lock(&strong.lost) = Some(reason.clone());
        drop(strong);
        if closing(&stop) || !worth_reconnecting_after(&reason) {
            emit(out, &stop, Event::Disconnected(reason));
            return;
        }
        let builder = match me {
            Some(name) => builder.clone().name(name),
            None => builder.clone(),
        };
        if connected_at.elapsed() >= STABLE {
            backoff.reset();
        }
        match connect_again(inner, &stop, &builder, &mut backoff, &reason, out) {
            Some(next) => {
                events = next;
                connected_at = Instant::now();
            }
            None => {
                emit(out, &stop, Event::Disconnected(reason));
                return;
            }
        }
    }
}

/// Hands `event` to the application (see [`EventsOut::emit`]): one that
/// dropped its [`Events`] (it reads none) still has its session connect
/// again and join its rooms again, only the events are dropped; one that
/// holds them but stopped reading does not keep a
/// [`Reconnecting::close`] waiting.
fn emit(out: &mut EventsOut, stop: &Receiver<()>, event: Event) {
    out.emit(event, || closing(stop));
}

/// Connects again, `backoff` apart, telling `tx` of each wait and
/// failure; on success joins the rooms again. `None`: it gave up, or
/// was told to stop.
fn connect_again(
    inner: &std::sync::Weak<Inner>,
    stop: &Receiver<()>,
    builder: &SessionBuilder,
    backoff: &mut Backoff,
    reason: &CloseReason,
    out: &mut EventsOut,
) -> Option<Events> {
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let retry_in = backoff.next().unwrap_or(Duration::from_secs(30));
        let waiting = Event::Reconnecting {
            reason: reason.clone(),
            attempt,
            retry_in,
        };
        if closing(stop) {
            return None;
        }
        emit(out, stop, waiting);
        if !matches!(stop.recv_timeout(retry_in), Err(RecvTimeoutError::Timeout)) {
            return None;
        }
        match builder.clone().connect() {
            Ok((session, events)) => {
                let inner = inner.upgrade()?;
                // The rooms' lock is held until the session is stored (see
                // `Reconnecting::join`).
                let rooms = {
                    let mut rooms = lock(&inner.rooms);
                    let again = rooms.connected(session.name());
                    *lock(&inner.lost) = None;
                    *lock(&inner.session) = Some(session.clone());
                    again
                };
                // A close that came while connecting found no session to
                // close: this one is closed here.
                if closing(stop) {
                    if let Some(session) = lock(&inner.session).take() {
                        session.close("closed");
                    }
                    return None;
                }
                drop(inner);
                let name = session.name();
                emit(out, stop, Event::Reconnected { name });
                rejoin(&session, rooms, stop);
                return Some(events);
            }
            Err(e) => {
                let again = worth_connecting_again(&e) && !closing(stop);
                emit(out, stop, Event::ConnectFailed(Arc::new(e)));
                if !again {
                    return None;
                }
            }
        }
    }
}

/// Joins at once as many rooms as the server takes in a burst of requests.
const REJOIN_BURST: usize = 10;
/// Then one room this often, below the server's default request rate.
const REJOIN_PACE: Duration = Duration::from_millis(600);

/// Joins `rooms` again on `session`: the first at once, the rest at a pace
/// the server's request limit lets through (on a thread of their own, so
/// the events go on meanwhile).
fn rejoin(session: &Session, mut rooms: Vec<(String, Option<String>)>, stop: &Receiver<()>) {
    let later = rooms.split_off(rooms.len().min(REJOIN_BURST));
    for (room, password) in rooms {
        let _ = session.join(&room, password.as_deref());
    }
    if later.is_empty() {
        return;
    }
    let (paced_session, stop) = (session.clone(), stop.clone());
    let rest = later.clone();
    let paced = move || {
        for (room, password) in rest {
            if !matches!(
                stop.recv_timeout(REJOIN_PACE),
                Err(RecvTimeoutError::Timeout)
            ) || paced_session.join(&room, password.as_deref()).is_err()
            {
                return;
            }
        }
    };
    if std::thread::Builder::new()
        .name("lanlink-rejoin".into())
        .spawn(paced)
        .is_err()
    {
        // No thread to pace them: all at once, as many as the server takes.
        for (room, password) in later {
            let _ = session.join(&room, password.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::chat::{History, NickChanged, Presence};
    use lanlink_proto::control::Error as ServerError;
    use lanlink_proto::ErrorCode;

    fn history(room: &str) -> Event {
        Event::History(History {
            room: room.into(),
            messages: Vec::new(),
        })
    }

    fn roster(room: &str) -> Event {
        Event::Roster(lanlink_proto::chat::Roster {
            room: room.into(),
            members: vec!["ada".into()],
        })
    }

    fn left(room: &str, name: &str) -> Event {
        Event::Presence(Presence {
            room: room.into(),
            name: name.into(),
            change: PresenceChange::Left,
            reason: String::new(),
        })
    }

    #[test]
    fn rooms_are_learnt_from_the_server_and_joined_again_with_their_passwords() {
        let mut rooms = Rooms::default();
        assert!(rooms.connected("ada".into()).is_empty());
        // The default room's history comes first.
        rooms.learn(&history("Lobby"));
        rooms.asking("ops", Some("pw"));
        // A refusal of something else does not lose the join's password.
        rooms.learn(&Event::ServerError(ServerError {
            code: ErrorCode::NOT_FOUND,
            message: "no user named nobody".into(),
        }));
        rooms.learn(&history("OPS"));
        // A roster (a /who) or a history of a room not asked for (a
        // hostile server) joins nothing.
        rooms.learn(&roster("elsewhere"));
        rooms.learn(&history("trap"));
        // A join refused (a wrong password) joins nothing either.
        rooms.asking("vault", Some("wrong"));
        rooms.learn(&Event::ServerError(ServerError {
            code: ErrorCode::FORBIDDEN,
            message: "wrong password".into(),
        }));
        rooms.learn(&roster("vault"));
        rooms.asking("dev", None);
        rooms.learn(&history("dev"));
        // Others leaving change nothing; we leaving does, under the name
        // the events gave us last.
        rooms.learn(&left("dev", "bob"));
        rooms.learn(&Event::NickChanged(NickChanged {
            old: "ada".into(),
            new: "Ada2".into(),
        }));
        rooms.learn(&left("dev", "ada"));
        assert_eq!(rooms.joined.len(), 3, "{rooms:?}");
        rooms.learn(&left("dev", "ADA2"));
        let again = rooms.connected("Ada2".into());
        assert_eq!(again, [("OPS".to_owned(), Some("pw".to_owned()))]);
        // Lost again before the room's history came: still to join.
        assert_eq!(rooms.connected("Ada2".into()), again);
        rooms.learn(&history("Lobby"));
        rooms.learn(&history("ops"));
        assert_eq!(rooms.joined.len(), 2);
        assert_eq!(
            rooms.connected("Ada2".into()),
            [("ops".to_owned(), Some("pw".to_owned()))]
        );
    }

    #[test]
    fn a_hostile_server_cannot_make_it_remember_rooms_without_end() {
        let mut rooms = Rooms::default();
        rooms.connected("ada".into());
        rooms.learn(&history("lobby"));
        for i in 0..1000 {
            let room = format!("r{i}");
            rooms.asking(&room, None);
            rooms.learn(&history(&room));
            rooms.asking(&format!("never{i}"), Some("x"));
        }
        assert!(rooms.joined.len() <= MAX_ROOMS && rooms.asked.len() <= MAX_ROOMS);
        assert!(rooms.connected("ada".into()).len() <= MAX_ROOMS);
    }
}
