//! [`Session`]: one connection to a server carrying every service, and
//! [`Events`], what the server says on it.
//!
//! # How frames find their way
//! The transport's reader thread hands every frame to one *dispatcher*
//! thread per session. Frames on a stream that an operation of this
//! session opened (a download, an upload, a publisher, a subscription) go
//! to that operation's channel; announcements and ends of media streams go
//! to every listener and viewer; everything else becomes an [`Event`].
//! File operations therefore run side by side with chat and media, each on
//! its own stream, and an application that only chats never sees a chunk.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use lanlink_proto::chat::{
    ChatMessage, HistoryRequest, Join, Leave, PrivateMessage, RosterRequest, SetNick,
};
use lanlink_proto::control::{Hello, Welcome};
use lanlink_proto::{Capabilities, Frame, Message, StreamId};
use lanlink_transport::{
    Client, ClientConfig, ClientTls, CloseReason, ConnHandle, Fingerprint, QueuedBytes,
    TransportError,
};

use crate::event::{Event, IncomingOffer};
use crate::media::StreamInfo;
use crate::trust::{KnownServers, PinStore, Trust, TrustOutcome};
use crate::{with_default_port, ClientError};

/// How many events wait for the application before the session waits for
/// it (and, through TCP, the server for us).
const EVENT_CAPACITY: usize = 4096;
/// And how many bytes of them, about ([`Event::weight`]).
pub(crate) const EVENT_BYTES: usize = 64 << 20;
/// Media frames buffered per subscription; older ones are dropped first.
const MEDIA_ROUTE_CAPACITY: usize = 64;
/// Streams a session keeps track of. A server carries a few hundred at most
/// (its own limit); beyond this a hostile one is ignored rather than held.
const MAX_STREAMS: usize = 4096;
/// Announcements and ends waiting for one listener or viewer; a flood
/// beyond this is dropped for that watcher rather than held.
const WATCH_CAPACITY: usize = 1024;

/// Settings for a new [`Session`]; [`Session::builder`] starts one.
#[derive(Debug, Clone)]
pub struct SessionBuilder {
    addr: String,
    name: String,
    token: Option<String>,
    trust: Trust,
    capabilities: Capabilities,
    config: ClientConfig,
}

impl SessionBuilder {
    /// The name to ask for (default: [`default_name`]). The server may
    /// refuse a name that is taken or invalid.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The server's access token, if it requires one.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same, optional.
    pub fn token_opt(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Speak plain TCP (only to a server run with `--plain`).
    pub fn plain(self) -> Self {
        self.trust(Trust::Plain)
    }

    /// Accept only a server whose certificate has this fingerprint.
    pub fn server_fingerprint(self, fingerprint: Fingerprint) -> Self {
        self.trust(Trust::Fingerprint(fingerprint))
    }

    /// Pin the certificate on first use in `store` (the default is
    /// [`KnownServers::default_location`]).
    pub fn pin_store(self, store: impl PinStore + 'static) -> Self {
        self.trust(Trust::FirstUse(Arc::new(store)))
    }

    /// How to trust the server's certificate.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Which services to take part in (default: [`Capabilities::ALL`]). A
    /// session without [`Capabilities::CHAT`] is not in any room and needs
    /// no unique name (a file tool wants [`Capabilities::FILE`] alone: two
    /// copies of it can run at once, and no room's lines wait in its
    /// events); one without audio or video hears of no streams.
    ///
    /// Files other users offer by name ([`Session::receive_files`],
    /// [`Event::FileOffered`](crate::Event::FileOffered)) reach a session
    /// with `CHAT`, or with [`Capabilities::OFFERS`]: a receiver without
    /// chat asks for `FILE | OFFERS` (its name must then be a valid
    /// nickname that nobody at another address holds).
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Transport settings: timeouts, queue limits (the TLS part is set from
    /// [`trust`](Self::trust)).
    pub fn transport_config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Connects, checks the server's certificate as [`Trust`] says, and
    /// says hello. Returns the session (clone it to use it from several
    /// threads) and its events (read them, or drop them: a session whose
    /// events are held but never read stalls once they fill up).
    pub fn connect(self) -> Result<(Session, Events), ClientError> {
        let asked = self.capabilities;
        let (client, trust) = self.connect_transport()?;
        Session::start(client, trust, asked)
    }

    /// Connects as [`connect`](Self::connect) does, but hands over the
    /// bare transport connection: frames in, frames out, nothing routed.
    /// For tools that speak the protocol themselves (load generators,
    /// tests of the server).
    pub fn connect_transport(self) -> Result<(Client, TrustOutcome), ClientError> {
        let hello = Hello {
            name: self.name,
            token: self.token,
            capabilities: self.capabilities,
        };
        let mut config = self.config;
        let addr = self.addr;
        // `pinned`: what the store holds; `pin`: what the certificate must be.
        let (pinned, pin, store) = match &self.trust {
            Trust::Plain | Trust::AnyCertificate => (None, None, None),
            Trust::Fingerprint(fp) => (None, Some(*fp), None),
            Trust::FirstUse(store) => {
                let pinned = store.lookup(&addr)?;
                (pinned, pinned, Some(store.clone()))
            }
            Trust::FirstUseExpecting { store, expected } => {
                let pinned = store.lookup(&addr)?;
                (pinned, pinned.or(Some(*expected)), Some(store.clone()))
            }
        };
        config.tls = match self.trust {
            Trust::Plain => None,
            _ => Some(ClientTls { pin }),
        };
        let client = match Client::connect(&addr, hello, config) {
            Ok(client) => client,
            Err(TransportError::FingerprintMismatch {
                expected, found, ..
            }) => {
                return Err(ClientError::CertificateChanged {
                    addr,
                    expected,
                    found,
                    // Only a pin from the store is a *changed* certificate.
                    pins: store
                        .filter(|_| pinned.is_some())
                        .and_then(|s| s.location().map(Into::into)),
                });
            }
            // An HTTP server answered (`HT…`): most likely the browser
            // page's port, given where the lanlink port was meant.
            Err(
                e @ TransportError::Protocol {
                    source: lanlink_proto::ProtoError::BadMagic { found, .. },
                    ..
                },
            ) if found.starts_with(b"HT") => {
                return Err(ClientError::from(e).with_hint(
                    "that is a web server (the browser page's port?), not a lanlink server; \
                     clients use the port lanlink-server prints as its address (7878 by default)",
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let trust = match (client.server_fingerprint(), &self.trust, pinned) {
            (None, ..) => TrustOutcome::Plain,
            (Some(found), Trust::Fingerprint(_), _) => TrustOutcome::Matched(found),
            (Some(found), Trust::FirstUse(_) | Trust::FirstUseExpecting { .. }, Some(_)) => {
                TrustOutcome::Known(found)
            }
            (Some(found), Trust::FirstUse(store), None) => {
                store.remember(&addr, found)?;
                TrustOutcome::PinnedOnFirstUse {
                    fingerprint: found,
                    store: store.location().map(Into::into),
                }
            }
            (Some(found), Trust::FirstUseExpecting { store, .. }, None) => {
                store.remember(&addr, found)?;
                TrustOutcome::PinnedAsExpected {
                    fingerprint: found,
                    store: store.location().map(Into::into),
                }
            }
            (Some(found), ..) => TrustOutcome::Unchecked(found),
        };
        Ok((client, trust))
    }
}

/// The name a session asks for unless told otherwise: `$USER`, else the
/// host's name, else `lanlink`.
pub fn default_name() -> String {
    let from_env = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    let from_host = || {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
    };
    from_env
        .or_else(from_host)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "lanlink".into())
}

/// One connection to a lanlink server, carrying chat, files, audio and
/// video at once.
///
/// Cheap to clone; every clone talks on the same connection, from any
/// thread. The connection closes (gracefully) when the last clone is
/// dropped, or at [`close`](Session::close).
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.inner.handle.peer())
            .field("name", &self.name())
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) handle: ConnHandle,
    pub(crate) shared: Arc<Shared>,
    welcome: Welcome,
    /// The services asked for in the `Hello`.
    asked: Capabilities,
    trust: TrustOutcome,
    client: Mutex<Option<Client>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

/// What the session's handles and its dispatcher thread share.
pub(crate) struct Shared {
    next_stream: AtomicU32,
    routes: Mutex<HashMap<StreamId, Route>>,
    watchers: Mutex<Vec<Sender<Frame>>>,
    streams: Mutex<BTreeMap<StreamId, StreamInfo>>,
    closed: Mutex<Option<CloseReason>>,
    /// Never carries anything: it disconnects when the dispatcher ends,
    /// which wakes every operation waiting on the connection.
    pub(crate) gone: Receiver<()>,
    name: Mutex<String>,
    stopping: AtomicBool,
    /// Confirmations waiting for their answers.
    pub(crate) probes: crate::confirm::Probes,
    /// Whether the dispatcher is handing an event on now, which takes long
    /// only while the application does not read them: meanwhile nothing
    /// else is routed, transfers included.
    pub(crate) events_waiting: Arc<AtomicBool>,
}

/// Where the frames of one stream go.
#[derive(Clone)]
pub(crate) enum Route {
    /// Every frame, in order (transfers, publishers' refusals); past
    /// [`ROUTE_BYTES`] waiting, the session waits for the reader.
    Reliable(RouteTx),
    /// Media: dropped when the subscriber falls behind (past
    /// [`MEDIA_ROUTE_CAPACITY`] frames or [`MEDIA_ROUTE_BYTES`]).
    Media(RouteTx),
}

/// One link's channel, and what waits in it in bytes (the dispatcher is
/// its one producer).
#[derive(Clone)]
pub(crate) struct RouteTx {
    tx: Sender<Frame>,
    queued: Arc<Mutex<QueuedBytes>>,
}

impl RouteTx {
    fn new(tx: Sender<Frame>, limit: usize) -> RouteTx {
        RouteTx {
            tx,
            queued: Arc::new(Mutex::new(QueuedBytes::new(limit))),
        }
    }
}

/// Bytes of frames waiting for one transfer (a server that ignores the
/// transfer's window cannot make a slow disk's client hold more).
const ROUTE_BYTES: usize = 64 << 20;
/// Bytes of media frames waiting for one subscription.
const MEDIA_ROUTE_BYTES: usize = 32 << 20;

/// What a frame holds in memory: its size on the wire (a chunk's data is
/// not copied to measure it), or more for a list of tiny items
/// ([`Message::memory_size`]: listings counted by wire size, arriving
/// after `ls` had given up, took 285-343 MB of it).
pub(crate) fn frame_size(frame: &Frame) -> usize {
    let wire = lanlink_transport::EncodedFrame::new(frame).map_or(0, |e| e.len());
    frame.message.memory_size(wire)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Nothing routed yet; `gone` disconnects when the dispatcher ends.
    fn new(name: String, gone: Receiver<()>) -> Shared {
        Shared {
            next_stream: AtomicU32::new(1),
            routes: Mutex::new(HashMap::new()),
            watchers: Mutex::new(Vec::new()),
            streams: Mutex::new(BTreeMap::new()),
            closed: Mutex::new(None),
            gone,
            name: Mutex::new(name),
            stopping: AtomicBool::new(false),
            probes: crate::confirm::Probes::default(),
            events_waiting: Arc::default(),
        }
    }

    /// A stream id for a new operation of this client: odd (the client's
    /// half of the id space), never 0.
    pub(crate) fn open_stream(&self) -> StreamId {
        self.next_stream.fetch_add(2, Ordering::Relaxed)
    }

    pub(crate) fn add_route(&self, stream: StreamId, route: Route) {
        lock(&self.routes).insert(stream, route);
    }

    pub(crate) fn remove_route(&self, stream: StreamId) {
        lock(&self.routes).remove(&stream);
    }

    pub(crate) fn add_watcher(&self, tx: Sender<Frame>) {
        lock(&self.watchers).push(tx);
    }

    /// Why the connection ended, if it has.
    pub(crate) fn closed(&self) -> Option<CloseReason> {
        lock(&self.closed).clone()
    }

    pub(crate) fn close_reason(&self) -> CloseReason {
        lock(&self.closed)
            .clone()
            .unwrap_or_else(|| CloseReason::Local("session closed".into()))
    }

    pub(crate) fn streams(&self) -> Vec<StreamInfo> {
        lock(&self.streams).values().cloned().collect()
    }
}

impl Session {
    /// Starts a session with the server at `addr` (`HOST` or `HOST:PORT`,
    /// as text or a `SocketAddr`; the default port is added when missing).
    /// TLS, with the certificate pinned on first use in the user's
    /// known-servers file, unless told otherwise.
    ///
    /// That file is the user's own (`~/.config/lanlink/known_servers`, the
    /// one `lanlink` uses): a server that makes a new certificate on every
    /// start (a test, a program embedding one with
    /// `ServerIdentity::generate`) fails there the second time, as
    /// [`ClientError::CertificateChanged`]. Give such a client the
    /// server's fingerprint ([`server_fingerprint`](SessionBuilder::server_fingerprint)),
    /// a store of its own ([`pin_store`](SessionBuilder::pin_store)), or
    /// keep the server's certificate (`ServerIdentity::load_or_create`).
    pub fn builder(addr: impl ToString) -> SessionBuilder {
        SessionBuilder {
            addr: with_default_port(&addr.to_string()),
            name: default_name(),
            token: None,
            trust: Trust::FirstUse(Arc::new(KnownServers::default_location())),
            capabilities: Capabilities::ALL,
            config: ClientConfig::default(),
        }
    }

    fn start(
        client: Client,
        trust: TrustOutcome,
        asked: Capabilities,
    ) -> Result<(Session, Events), ClientError> {
        let (gone_tx, gone) = crossbeam_channel::bounded::<()>(0);
        let shared = Arc::new(Shared::new(client.welcome().name.clone(), gone));
        let (mut events_out, events) = Events::channel();
        events_out.waiting = Some(shared.events_waiting.clone());
        let incoming = client.events().clone();
        let dispatcher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("lanlink-session".into())
                .spawn(move || dispatch(&shared, &incoming, events_out, gone_tx))
                .map_err(ClientError::Thread)?
        };
        let inner = Inner {
            handle: client.handle().clone(),
            welcome: client.welcome().clone(),
            asked,
            shared,
            trust,
            client: Mutex::new(Some(client)),
            dispatcher: Mutex::new(Some(dispatcher)),
        };
        Ok((
            Session {
                inner: Arc::new(inner),
            },
            events,
        ))
    }

    /// What the server said when it let us in (its name, our name, its
    /// limits, its message of the day).
    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcome
    }

    /// The services this session asked for
    /// ([`SessionBuilder::capabilities`]).
    pub fn capabilities(&self) -> Capabilities {
        self.inner.asked
    }

    /// The name the server knows this session by now (after any nickname
    /// change).
    pub fn name(&self) -> String {
        lock(&self.inner.shared.name).clone()
    }

    /// How the server's certificate was trusted.
    pub fn trust(&self) -> &TrustOutcome {
        &self.inner.trust
    }

    /// The server's address.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.inner.handle.peer()
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.shared.closed).is_none()
    }

    /// The audio and video streams published right now.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.inner.shared.streams()
    }

    /// Sends any message on the control stream (stream 0).
    pub fn send(&self, message: impl Into<Message>) -> Result<(), ClientError> {
        self.send_frame(&Frame::control(message))
    }

    /// Sends a frame as it is. Fails with [`ClientError::Disconnected`]
    /// once the connection is gone.
    pub fn send_frame(&self, frame: &Frame) -> Result<(), ClientError> {
        self.inner.handle.send(frame).map_err(|e| match e {
            TransportError::Closed(reason) => ClientError::Disconnected(reason),
            other => other.into(),
        })
    }

    /// Says `text` in `room`.
    pub fn say(&self, room: &str, text: &str) -> Result<(), ClientError> {
        self.send(chat_message(room, text, false))
    }

    /// Says `text` in `room` as an action (`/me`).
    pub fn act(&self, room: &str, text: &str) -> Result<(), ClientError> {
        self.send(chat_message(room, text, true))
    }

    /// Sends `text` to the user `to` only.
    pub fn private_message(&self, to: &str, text: &str) -> Result<(), ClientError> {
        self.send(PrivateMessage {
            to: to.to_owned(),
            from: String::new(),
            text: text.to_owned(),
            action: false,
            timestamp_ms: 0,
        })
    }

    /// Joins `room` (created if it does not exist), with its password if it
    /// has one. The room's roster and history arrive as events.
    pub fn join(&self, room: &str, password: Option<&str>) -> Result<(), ClientError> {
        self.send(Join {
            room: room.to_owned(),
            password: password.map(str::to_owned),
        })
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) -> Result<(), ClientError> {
        self.send(Leave {
            room: room.to_owned(),
        })
    }

    /// Asks to be known as `name` from now on ([`Event::NickChanged`]
    /// confirms it, [`Event::ServerError`] refuses it).
    pub fn set_name(&self, name: &str) -> Result<(), ClientError> {
        self.send(SetNick {
            name: name.to_owned(),
        })
    }

    /// Asks who is in `room`; the answer is an [`Event::Roster`].
    pub fn roster(&self, room: &str) -> Result<(), ClientError> {
        self.send(RosterRequest {
            room: room.to_owned(),
        })
    }

    /// Asks for the last `limit` messages of `room`; the answer is an
    /// [`Event::History`].
    pub fn history(&self, room: &str, limit: u16) -> Result<(), ClientError> {
        self.send(HistoryRequest {
            room: room.to_owned(),
            limit,
        })
    }

    /// Says goodbye after everything already queued, waits (briefly) for
    /// the server to close its side, and ends the session for every clone.
    pub fn close(&self, reason: &str) {
        self.inner.close(reason);
    }
}

pub(crate) fn chat_message(room: &str, text: &str, action: bool) -> ChatMessage {
    ChatMessage {
        room: room.to_owned(),
        from: String::new(),
        text: text.to_owned(),
        action,
        timestamp_ms: 0,
    }
}

impl Inner {
    fn close(&self, reason: &str) {
        let client = lock(&self.client).take();
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(client) = client {
            client.close(reason);
        }
        if let Some(dispatcher) = lock(&self.dispatcher).take() {
            let _ = dispatcher.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close("session closed");
    }
}

/// What the server says on a [`Session`], in order; the last event is
/// [`Event::Disconnected`], after which iteration ends.
///
/// # Read them, or drop them
/// The session holds at most 4,096 events (or 64 MiB) that the
/// application has not read. Once that many wait, it stops handling what
/// the server says, confirmations and transfers included, until some are
/// read: a chat room busy enough fills it in seconds. Binding the events
/// to a name, even `_events`, keeps them: a program that does not read
/// them drops them (`let (session, _) = …connect()?`), and the session
/// then throws away what it would have handed on.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: Receiver<Event>,
    /// Dropped with these events: tells their producer nobody reads them.
    _held: Arc<()>,
}

/// Where a session's events go to the application ([`Events`]): bounded
/// in number by the channel and in bytes by `queued`. The one way events
/// are handed on, by a session's dispatcher and by a
/// [`Reconnecting`](crate::Reconnecting)'s follower alike.
#[derive(Debug)]
pub(crate) struct EventsOut {
    tx: Sender<Event>,
    /// The channel's other end, to empty it once the application dropped
    /// its events: what it left unread (up to [`EVENT_BYTES`]) would
    /// otherwise stay allocated for as long as the session lives.
    rx: Receiver<Event>,
    queued: QueuedBytes,
    /// Whether the application still holds its [`Events`]. (A channel
    /// keeps what was in it, and counts it, after its last receiver is
    /// gone: without this a producer waiting for the bytes to be read would
    /// wait for ever.)
    reader: std::sync::Weak<()>,
    /// Set while [`emit`](Self::emit) runs (see `Shared::events_waiting`).
    pub(crate) waiting: Option<Arc<AtomicBool>>,
}

impl EventsOut {
    /// Hands `event` to the application. It waits for room while the
    /// application reads, and drops what finds no room once `closing`
    /// says so: an application that holds its events but stopped reading
    /// must not keep the session from closing. Once the events were
    /// dropped it drops every event, and what they held unread: one that
    /// dropped them (a clone of their receiver left unread included) must
    /// neither stop the session nor keep its memory. The last event,
    /// `Disconnected`, is small and goes if it can.
    pub(crate) fn emit(&mut self, event: Event, closing: impl Fn() -> bool) {
        if let Some(w) = &self.waiting {
            w.store(true, Ordering::Relaxed);
        }
        self.hand_on(event, closing);
        if let Some(w) = &self.waiting {
            w.store(false, Ordering::Relaxed);
        }
    }

    fn hand_on(&mut self, mut event: Event, closing: impl Fn() -> bool) {
        let weight = event.weight();
        if self.reader.strong_count() == 0 {
            // Nobody reads them: nothing is kept but the last event.
            while self.rx.try_recv().is_ok() {}
            if matches!(event, Event::Disconnected(_)) {
                let _ = self.tx.try_send(event);
            }
            return;
        }
        let reader = &self.reader;
        let give_up = || closing() || reader.strong_count() == 0;
        let room = self.queued.wait_for_room(&self.tx, weight, give_up);
        if !room && !matches!(event, Event::Disconnected(_)) {
            return;
        }
        loop {
            if give_up() {
                if self.tx.try_send(event).is_ok() {
                    self.queued.sent(weight);
                }
                return;
            }
            match self.tx.send_timeout(event, Duration::from_millis(100)) {
                Ok(()) => return self.queued.sent(weight),
                Err(SendTimeoutError::Disconnected(_)) => return,
                Err(SendTimeoutError::Timeout(back)) => event = back,
            }
        }
    }
}

impl Events {
    /// Events for the application, and where their producer puts them.
    pub(crate) fn channel() -> (EventsOut, Events) {
        let (tx, rx) = crossbeam_channel::bounded(EVENT_CAPACITY);
        let held = Arc::new(());
        let out = EventsOut {
            tx,
            rx: rx.clone(),
            queued: QueuedBytes::new(EVENT_BYTES),
            reader: Arc::downgrade(&held),
            waiting: None,
        };
        (out, Events { rx, _held: held })
    }

    /// Waits for the next event; `None` once the session is over.
    pub fn recv(&self) -> Option<Event> {
        self.rx.recv().ok()
    }

    /// Waits up to `timeout` for the next event; `None` if none came (or
    /// the session is over: see [`is_over`](Events::is_over)).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Whether every event, [`Event::Disconnected`] included, has been
    /// read. Takes no event.
    pub fn is_over(&self) -> bool {
        let mut ready = crossbeam_channel::Select::new();
        ready.recv(&self.rx);
        // Ready with nothing in it: disconnected.
        ready.ready_timeout(Duration::ZERO).is_ok() && self.rx.is_empty()
    }

    /// The channel itself, for `crossbeam_channel::select!`. Keep these
    /// `Events` while reading it: once they are dropped, the session takes
    /// nobody to be reading, and at its next event throws away what the
    /// channel holds and all that comes after (but the last,
    /// [`Event::Disconnected`]).
    pub fn receiver(&self) -> &Receiver<Event> {
        &self.rx
    }
}

impl Iterator for Events {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.recv()
    }
}

/// The dispatcher: every frame of the connection, routed (module docs).
fn dispatch(
    shared: &Shared,
    incoming: &Receiver<lanlink_transport::Event>,
    mut events: EventsOut,
    _gone: Sender<()>,
) {
    // Bounded in bytes too (`EventsOut`): a hostile server's histories of
    // 16 MiB to an application that reads slowly would otherwise pile up
    // by thousands.
    let closing = || shared.stopping.load(Ordering::Relaxed);
    let mut emit = |event: Event| events.emit(event, closing);
    for event in incoming.iter() {
        match event {
            lanlink_transport::Event::Frame { frame, .. } => {
                if let Some(event) = route(shared, frame) {
                    emit(event);
                }
            }
            lanlink_transport::Event::Closed { reason, .. } => {
                *lock(&shared.closed) = Some(reason.clone());
                lock(&shared.routes).clear();
                lock(&shared.watchers).clear();
                emit(Event::Disconnected(reason));
                return;
            }
            lanlink_transport::Event::Hello { .. } => {}
        }
    }
    let reason = shared.close_reason();
    *lock(&shared.closed) = Some(reason.clone());
    lock(&shared.routes).clear();
    emit(Event::Disconnected(reason));
}

/// Hands `frame` to whoever waits for it; returns the event it makes, if
/// it is for the application.
fn route(shared: &Shared, frame: Frame) -> Option<Event> {
    match &frame.message {
        Message::AudioAnnounce(_) | Message::VideoAnnounce(_) => {
            let info = StreamInfo::from_message(frame.stream, &frame.message)?;
            {
                let mut streams = lock(&shared.streams);
                if streams.len() >= MAX_STREAMS && !streams.contains_key(&frame.stream) {
                    return None;
                }
                streams.insert(frame.stream, info.clone());
            }
            tell_watchers(shared, &frame);
            return Some(Event::StreamStarted(info));
        }
        Message::AudioEnd(_) | Message::VideoEnd(_) => {
            if let Some(info) = lock(&shared.streams).remove(&frame.stream) {
                tell_watchers(shared, &frame);
                return Some(Event::StreamEnded(info));
            }
        }
        _ => {}
    }
    let target = lock(&shared.routes).get(&frame.stream).cloned();
    match target {
        Some(Route::Reliable(r)) => {
            let size = frame_size(&frame);
            let mut queued = lock(&r.queued);
            // Once the application closes the session, a frame that finds
            // no room is dropped: the operation is ending with it, and the
            // channel is bounded by bytes alone.
            if queued.wait_for_room(&r.tx, size, || shared.stopping.load(Ordering::Relaxed))
                && r.tx.send(frame).is_ok()
            {
                queued.sent(size);
            }
            return None;
        }
        Some(Route::Media(r)) => {
            let size = frame_size(&frame);
            let mut queued = lock(&r.queued);
            if queued.fits(&r.tx, size) && r.tx.try_send(frame).is_ok() {
                queued.sent(size);
            }
            return None;
        }
        None => {}
    }
    // What confirms a send ([`Session::send_confirmed`]): never the
    // application's.
    match &frame.message {
        Message::Error(e) if frame.stream == lanlink_proto::CONTROL_STREAM => {
            shared.probes.refused(e);
        }
        Message::Confirmed(s) => {
            shared.probes.confirmed(s);
            return None;
        }
        _ => {}
    }
    Some(match frame.message {
        Message::ChatMessage(m) => Event::Message(m),
        Message::PrivateMessage(m) => Event::Private(m),
        Message::Presence(p) => Event::Presence(p),
        Message::NickChanged(n) => {
            let mut name = lock(&shared.name);
            if *name == n.old {
                name.clone_from(&n.new);
            }
            Event::NickChanged(n)
        }
        Message::Roster(r) => Event::Roster(r),
        Message::History(h) => Event::History(h),
        Message::Notice(n) => Event::Notice(n),
        Message::FileOffer(offer) if offer.from.is_some() => Event::FileOffered(IncomingOffer {
            stream: frame.stream,
            offer,
        }),
        Message::Error(e) => Event::ServerError(e),
        Message::AdminReply(r) => Event::AdminReply(r),
        message => Event::Other(Frame {
            stream: frame.stream,
            message,
        }),
    })
}

/// Routes `frames` as a session's dispatcher does, with a transfer waiting
/// on stream 1, a media subscription on stream 3 and a listener watching
/// announcements, and returns the events an application would see. For
/// the `client` fuzz target (what a client makes of a hostile server's
/// frames); not part of the API.
#[doc(hidden)]
#[cfg(any(fuzzing, feature = "fuzzing"))]
pub fn fuzz_route(frames: impl IntoIterator<Item = Frame>) -> Vec<Event> {
    let (_gone_tx, gone) = crossbeam_channel::bounded::<()>(0);
    let shared = Shared::new("me".into(), gone);
    let (transfer, _transfer_rx) = crossbeam_channel::unbounded();
    let (media, _media_rx) = crossbeam_channel::bounded(MEDIA_ROUTE_CAPACITY);
    let (watcher, _watcher_rx) = crossbeam_channel::unbounded();
    // Nothing reads the transfer here: no bound to wait on.
    shared.add_route(1, Route::Reliable(RouteTx::new(transfer, usize::MAX)));
    shared.add_route(3, Route::Media(RouteTx::new(media, MEDIA_ROUTE_BYTES)));
    shared.add_watcher(watcher);
    frames
        .into_iter()
        .filter_map(|f| route(&shared, f))
        .collect()
}

fn tell_watchers(shared: &Shared, frame: &Frame) {
    lock(&shared.watchers).retain(|w| {
        !matches!(
            w.try_send(frame.clone()),
            Err(crossbeam_channel::TrySendError::Disconnected(_))
        )
    });
}

impl Session {
    /// Ends a file arriving on `stream` from this side: the sender is told
    /// `reason` (through the server), and whoever receives it here
    /// ([`Session::accept_file`]) ends, behind what had already arrived,
    /// as if the sender had cancelled it (its partial file kept, to be
    /// resumed).
    pub(crate) fn cancel_incoming(&self, stream: StreamId, reason: &str) {
        let cancel = lanlink_proto::file::FileCancel {
            code: lanlink_proto::ErrorCode::OTHER,
            reason: reason.to_owned(),
        };
        let _ = self.inner.handle.send(&Frame::new(stream, cancel.clone()));
        let route = lock(&self.inner.shared.routes).get(&stream).cloned();
        if let Some(Route::Reliable(r)) = route {
            let frame = Frame::new(stream, cancel);
            let size = frame_size(&frame);
            let mut queued = lock(&r.queued);
            if r.tx.send(frame).is_ok() {
                queued.sent(size);
            }
        }
    }
}

/// A session's channel for one operation: the streams it opens are routed
/// to it until it is dropped.
pub(crate) struct RouteLink {
    shared: Arc<Shared>,
    handle: ConnHandle,
    tx: RouteTx,
    rx: Receiver<Frame>,
    media: bool,
    streams: Mutex<Vec<StreamId>>,
}

impl RouteLink {
    /// A link whose frames all arrive, in order (transfers, publishers).
    pub(crate) fn reliable(session: &Session) -> RouteLink {
        let (tx, rx) = crossbeam_channel::unbounded();
        RouteLink::new(session, tx, rx, false)
    }

    /// A link for media that drops frames when its reader falls behind.
    pub(crate) fn media(session: &Session) -> RouteLink {
        let (tx, rx) = crossbeam_channel::bounded(MEDIA_ROUTE_CAPACITY);
        RouteLink::new(session, tx, rx, true)
    }

    fn new(session: &Session, tx: Sender<Frame>, rx: Receiver<Frame>, media: bool) -> RouteLink {
        let limit = if media {
            MEDIA_ROUTE_BYTES
        } else {
            ROUTE_BYTES
        };
        RouteLink {
            shared: session.inner.shared.clone(),
            handle: session.inner.handle.clone(),
            tx: RouteTx::new(tx, limit),
            rx,
            media,
            streams: Mutex::new(Vec::new()),
        }
    }

    /// Routes `stream` (one the server chose, such as an offer's or a
    /// media stream's) to this link.
    pub(crate) fn adopt(&self, stream: StreamId) {
        let route = if self.media {
            Route::Media(self.tx.clone())
        } else {
            Route::Reliable(self.tx.clone())
        };
        self.shared.add_route(stream, route);
        lock(&self.streams).push(stream);
    }

    /// Stops routing `stream` here.
    pub(crate) fn release(&self, stream: StreamId) {
        self.shared.remove_route(stream);
        lock(&self.streams).retain(|s| *s != stream);
    }

    /// Every announcement and end of a media stream from now on, on a
    /// channel of its own (bounded: a server flooding announcements loses
    /// them for this watcher, it does not make the client hold them).
    pub(crate) fn watch_announcements(&self) -> Receiver<Frame> {
        let (tx, rx) = crossbeam_channel::bounded(WATCH_CAPACITY);
        self.shared.add_watcher(tx);
        rx
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn open(&self) -> StreamId {
        let stream = self.shared.open_stream();
        self.adopt(stream);
        stream
    }

    pub(crate) fn send_on(
        &self,
        stream: StreamId,
        message: impl Into<Message>,
    ) -> Result<(), TransportError> {
        self.handle.send(&Frame::new(stream, message))
    }

    pub(crate) fn recv(&self, timeout: Duration) -> Result<Option<Frame>, TransportError> {
        // What already arrived comes first, even after the connection ended.
        if let Ok(frame) = self.rx.try_recv() {
            return Ok(Some(frame));
        }
        crossbeam_channel::select! {
            recv(self.rx) -> frame => Ok(frame.ok()),
            recv(self.shared.gone) -> _ => match self.rx.try_recv() {
                Ok(frame) => Ok(Some(frame)),
                Err(_) => Err(TransportError::Closed(self.shared.close_reason())),
            },
            default(timeout) => Ok(None),
        }
    }
}

impl Drop for RouteLink {
    fn drop(&mut self) {
        let mut routes = lock(&self.shared.routes);
        for s in lock(&self.streams).drain(..) {
            routes.remove(&s);
        }
    }
}

impl lanlink_services::file::FileLink for RouteLink {
    fn open_stream(&self) -> StreamId {
        self.open()
    }
    fn send(&self, frame: &Frame) -> Result<(), TransportError> {
        self.handle.send(frame)
    }
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, TransportError> {
        self.recv(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::audio::{AudioAnnounce, AudioCodec};

    fn chunk(stream: StreamId, len: usize) -> Frame {
        Frame::new(
            stream,
            lanlink_proto::file::FileChunk {
                offset: 0,
                data: bytes::Bytes::from(vec![0u8; len]),
            },
        )
    }

    /// Asking whether the events are over takes none of them.
    #[test]
    fn is_over_takes_no_event() {
        let (mut out, events) = Events::channel();
        assert!(!events.is_over());
        out.emit(Event::Disconnected(CloseReason::PeerClosed), || false);
        assert!(!events.is_over());
        assert!(!events.is_over());
        drop(out);
        assert!(!events.is_over(), "one event is still to be read");
        assert!(matches!(events.try_recv(), Some(Event::Disconnected(_))));
        assert!(events.is_over());
    }

    /// While the application leaves its events unread, the session says
    /// it is waiting on them (a transfer that got no answer then says
    /// why); once they are read, it no longer is.
    #[test]
    fn waiting_on_unread_events_is_known() {
        let (mut out, events) = Events::channel();
        let waiting = Arc::new(AtomicBool::new(false));
        out.waiting = Some(waiting.clone());
        let filler = std::thread::spawn(move || {
            for i in 0..=EVENT_CAPACITY {
                out.emit(
                    Event::Message(lanlink_proto::chat::ChatMessage::say(
                        "lobby",
                        &format!("{i}"),
                    )),
                    || false,
                );
            }
            out
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while events.receiver().len() < EVENT_CAPACITY && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            waiting.load(Ordering::Relaxed),
            "the last event waits for room"
        );
        assert!(events.try_recv().is_some());
        let _out = filler.join().unwrap();
        assert!(!waiting.load(Ordering::Relaxed));
    }

    /// Events the application dropped unread are freed at the next event,
    /// and nothing more is kept but the last (they used to stay allocated,
    /// up to 64 MiB a queue, for as long as the session lived).
    #[test]
    fn events_dropped_unread_are_freed() {
        let (mut out, events) = Events::channel();
        let text = |i: usize| {
            Event::Message(lanlink_proto::chat::ChatMessage::say(
                "lobby",
                &format!("{i}"),
            ))
        };
        for i in 0..100 {
            out.emit(text(i), || false);
        }
        assert_eq!(out.tx.len(), 100);
        // A clone of the receiver, left unread, does not count as a reader.
        let clone = events.receiver().clone();
        drop(events);
        out.emit(text(100), || false);
        assert!(out.tx.is_empty());
        out.emit(Event::Disconnected(CloseReason::PeerClosed), || false);
        assert!(matches!(clone.try_recv(), Ok(Event::Disconnected(_))));
        assert!(clone.try_recv().is_err());
    }

    /// A transfer's frames wait for their reader in bytes too: a server
    /// that ignores the window makes the session wait (and, through TCP,
    /// itself), not hold without end; a media route drops instead.
    #[test]
    fn routes_are_bounded_in_bytes() {
        let (_gone_tx, gone) = crossbeam_channel::bounded::<()>(0);
        let shared = Arc::new(Shared::new("me".into(), gone));
        let (tx, rx) = crossbeam_channel::unbounded();
        shared.add_route(1, Route::Reliable(RouteTx::new(tx, 1 << 20)));
        let (media, media_rx) = crossbeam_channel::bounded(MEDIA_ROUTE_CAPACITY);
        shared.add_route(3, Route::Media(RouteTx::new(media, 1 << 20)));
        for _ in 0..8 {
            assert!(route(&shared, chunk(3, 256 * 1024)).is_none());
        }
        assert!(media_rx.len() <= 4, "{} media frames held", media_rx.len());

        let (done_tx, done) = crossbeam_channel::bounded(1);
        let producer = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for _ in 0..8 {
                    route(&shared, chunk(1, 256 * 1024));
                }
                let _ = done_tx.send(());
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            done.try_recv().is_err(),
            "8 chunks of 256 KiB went past 1 MiB"
        );
        assert!(rx.len() <= 4, "{} chunks held", rx.len());
        // Read, and the rest goes through, in order and whole.
        let mut got = 0;
        while got < 8 {
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            got += 1;
        }
        producer.join().unwrap();
    }

    /// A route counts what a listing holds decoded, not its wire size: 8
    /// MiB takes one listing of 65,535 one-byte names (1.3 MB on the wire,
    /// over 5 MB decoded), where by wire size it took six.
    #[test]
    fn routes_count_what_a_listing_holds() {
        use lanlink_proto::file::{DirEntry, Listing};
        let (_gone_tx, gone) = crossbeam_channel::bounded::<()>(0);
        let shared = Arc::new(Shared::new("me".into(), gone));
        let (tx, rx) = crossbeam_channel::unbounded();
        shared.add_route(1, Route::Reliable(RouteTx::new(tx, 8 << 20)));
        let entry = DirEntry {
            name: "a".into(),
            is_dir: false,
            size: 1,
            modified: 0,
        };
        let listing = Frame::new(
            1,
            Listing {
                path: String::new(),
                entries: vec![entry; usize::from(u16::MAX)],
                done: false,
            },
        );
        let producer = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for _ in 0..8 {
                    route(&shared, listing.clone());
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(rx.len() <= 2, "{} listings held", rx.len());
        // Read, and the rest goes through.
        for _ in 0..8 {
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        producer.join().unwrap();
    }

    /// Once the application closes the session, a transfer's route that is
    /// full drops what still arrives: it neither waits for a reader that
    /// is gone nor holds a flood (see tests/memory_floods.rs).
    #[test]
    fn a_closing_session_drops_what_finds_no_room() {
        let (_gone_tx, gone) = crossbeam_channel::bounded::<()>(0);
        let shared = Shared::new("me".into(), gone);
        let (tx, rx) = crossbeam_channel::unbounded();
        shared.add_route(1, Route::Reliable(RouteTx::new(tx, 1 << 20)));
        shared.stopping.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        for _ in 0..64 {
            assert!(route(&shared, chunk(1, 256 * 1024)).is_none());
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(rx.len() <= 4, "{} chunks of 256 KiB held", rx.len());
    }

    #[test]
    fn a_server_flooding_announcements_cannot_make_the_client_hold_them() {
        let (_gone_tx, gone) = crossbeam_channel::bounded::<()>(0);
        let shared = Shared::new("me".into(), gone);
        let (watcher, watched) = crossbeam_channel::bounded(WATCH_CAPACITY);
        shared.add_watcher(watcher);
        let announce = |id: StreamId| Frame {
            stream: id,
            message: AudioAnnounce {
                name: format!("s{id}"),
                publisher: "evil".into(),
                codec: AudioCodec::OPUS,
                sample_rate: 48_000,
                channels: 1,
                frame_duration_us: 20_000,
            }
            .into(),
        };
        let events = (0..(MAX_STREAMS as u32 + 500))
            .filter_map(|i| route(&shared, announce(2 * i + 2)))
            .count();
        assert_eq!(events, MAX_STREAMS);
        assert_eq!(shared.streams().len(), MAX_STREAMS);
        assert_eq!(watched.len(), WATCH_CAPACITY);
        // The watcher is still there: it hears what comes once it drained.
        while watched.try_recv().is_ok() {}
        assert!(
            route(&shared, announce(2)).is_some(),
            "a known stream re-announced"
        );
        assert_eq!(watched.len(), 1);
    }
}
