//! The server side: an accept loop, the transport half of the handshake
//! (one short-lived thread per connection still handshaking, at most
//! [`ServerConfig::max_handshakes`]), then a few I/O threads that serve
//! every established connection (see the `engine` module).
//!
//! The transport checks what it can check alone (protocol version, access
//! token, client limit, handshake deadline) and then hands the peer's
//! `Hello` to the application as [`Event::Hello`]; the application admits
//! it with a `Welcome` or refuses it (a nickname already taken, say).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use lanlink_proto::{
    control, ErrorCode, Frame, FrameDecoder, Message, ProtoError, PROTOCOL_VERSION,
};

use crate::conn::{new_connection, ConnConfig, Event, InboundBudget, Totals};
use crate::engine::{Engine, Established};
use crate::handshake::{read_before, read_first_frame, send_and_close, FirstFrameError};
use crate::limits::{
    AddressSlots, BanList, GuessLimit, KeyedBuckets, Rate, RefusalLog, DEFAULT_MAX_KEYS,
};
use crate::socket::{ReadState, Socket};
/// Re-exported from the crate root too; it lives with the threads' helpers.
pub use crate::spawn::spawn_named;
use crate::text::display_safe;
use crate::tls::{server_handshake, ServerHandshakeError, ServerIdentity, TLS_HANDSHAKE_BYTE};
use crate::{ConnId, Shutdown, TransportError};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Settings every connection gets once it is established.
    pub conn: ConnConfig,
    /// A peer must send a valid `Hello` within this time.
    pub handshake_timeout: Duration,
    /// Connections (including ones still handshaking) beyond this are refused.
    pub max_clients: usize,
    /// If set, a `Hello` must carry exactly this token.
    pub token: Option<String>,
    /// Wrong tokens allowed per address and in all; share it (a clone)
    /// with everything else that checks the same token, as the browser
    /// server's `POST /auth` does.
    pub token_guesses: GuessLimit,
    /// Largest payload accepted before the handshake completes.
    pub handshake_max_payload: u32,
    /// TLS: `Some` makes the server speak TLS only (plain clients are
    /// refused with a message saying so); `None` speaks plain lanlink only
    /// and refuses TLS clients. The reference server turns TLS on unless
    /// told `--plain`.
    pub tls: Option<ServerIdentity>,
    /// Connection attempts accepted per source address (a token bucket);
    /// beyond it an address is refused before any handshake.
    pub attempts_per_address: Rate,
    /// Connections one source address may hold at once (handshaking or
    /// established); beyond it the address is refused before any
    /// handshake, so one machine cannot take every client slot. IPv4
    /// clients of a dual-stack listener count as their IPv4 address.
    pub max_conns_per_address: usize,
    /// Connections still handshaking at once (TLS and `Hello`). A new
    /// connection beyond it takes the place of the oldest one still
    /// handshaking, whose socket is shut: slow or silent peers can neither
    /// tie up the server's threads nor, by holding every slot, keep
    /// everyone else from connecting (an honest handshake takes
    /// milliseconds; an attacker would have to open this many connections
    /// faster than that to cut it).
    pub max_handshakes: usize,
    /// Reliable bytes queued for all peers together; beyond it, a peer
    /// holding more than its fair share (this over the number of
    /// connections) is disconnected as too slow. A connection counts until
    /// its last [`ConnHandle`](crate::ConnHandle) is dropped: drop handles
    /// once their `Closed` event has come.
    pub max_total_queued_bytes: usize,
    /// Bytes of received frames handed to the application (as
    /// [`Event::Frame`]) and not yet let go of ([`InboundPermit`](crate::InboundPermit)), from
    /// all peers together. Past it, only connections holding nothing are
    /// read, one frame at a time: peers that send faster than the
    /// application handles are slowed down by TCP instead of filling the
    /// event channel, whose bound is in events, not bytes.
    pub max_inbound_bytes: usize,
    /// The same for one connection: its frames waiting for the
    /// application, past which it is not read until they are handled.
    pub max_inbound_bytes_per_conn: usize,
    /// A frame a peer has started must arrive whole within
    /// [`frame_grace`](Self::frame_grace) plus its length at this many
    /// bytes a second, or the connection is closed
    /// ([`CloseReason::FrameTooSlow`](crate::CloseReason::FrameTooSlow)):
    /// a peer cannot make the server hold a partly sent frame by dripping
    /// it. Time the server itself does not read (the application is
    /// behind) does not count. 0 turns it off.
    pub min_frame_rate: u32,
    /// See [`min_frame_rate`](Self::min_frame_rate).
    pub frame_grace: Duration,
    /// The lengths of the large frames (over 64 KiB: file chunks, video
    /// frames) peers have started and not finished, in all: a connection
    /// starting one past it is not read on until others are whole (or cut
    /// by [`min_frame_rate`](Self::min_frame_rate)), so peers cannot make
    /// the server hold more than this in frames they send slowly. Smaller
    /// frames, chat among them, never wait for it.
    ///
    /// An address with no large frame in progress may start one up to
    /// twice this in all. Past that, frames whose connections have
    /// brought under four times `min_frame_rate` lately (over the last
    /// one to two seconds, or the frame itself since it started; a
    /// connection or frame younger than half a second counts as that old)
    /// are ended, slowest first, to make room for it
    /// ([`CloseReason::FrameCrowdedOut`](crate::CloseReason::FrameCrowdedOut)):
    /// however many addresses send slowly, they cannot keep the server full
    /// against a sender that is not slow.
    pub max_frames_in_progress: usize,
    /// The same for the connections of one address.
    pub max_frames_in_progress_per_address: usize,
    /// Addresses refused at once (shared: the application adds to it).
    pub bans: BanList,
    /// Where refusals are logged, once per address and kind (shared with
    /// the application for its own refusals).
    pub refusals: RefusalLog,
    /// Hands this server connections accepted elsewhere (the browser
    /// server's WebSockets) while [`serve`] runs; see [`Adopter`].
    pub adopter: Adopter,
}

/// A frame in progress arriving slower than this many times
/// [`ServerConfig::min_frame_rate`] may be ended when the server is full
/// (see [`ServerConfig::max_frames_in_progress`]).
const CROWD_RATE_FACTOR: u32 = 4;

/// The largest payload a server accepts from a client after the handshake
/// (told to the client in `Welcome`): above a file chunk (256 KiB) and a
/// camera's JPEG, below the 16 MiB the format allows, so that the frames
/// peers have half sent cost the server at most this each.
pub const DEFAULT_SERVER_MAX_PAYLOAD: u32 = 4 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // File transfers keep up to three 4 MiB windows in flight per
            // client; the limit sits above that so they are paced, not cut.
            conn: ConnConfig {
                max_queued_bytes: 16 * 1024 * 1024,
                max_payload: DEFAULT_SERVER_MAX_PAYLOAD,
                ..ConnConfig::default()
            },
            handshake_timeout: Duration::from_secs(5),
            max_clients: 1024,
            token: None,
            token_guesses: GuessLimit::default(),
            handshake_max_payload: 64 * 1024,
            tls: None,
            attempts_per_address: Rate {
                burst: 20,
                per_second: 10.0,
            },
            max_conns_per_address: 16,
            max_handshakes: 64,
            max_total_queued_bytes: 512 * 1024 * 1024,
            max_inbound_bytes: 64 * 1024 * 1024,
            // Above an honest upload's window (4 MiB) of 256 KiB chunks.
            max_inbound_bytes_per_conn: 8 * 1024 * 1024,
            // A 4 MiB frame gets 21 s; a 256 KiB file chunk 6 s.
            min_frame_rate: 256 * 1024,
            frame_grace: Duration::from_secs(5),
            max_frames_in_progress: 256 * 1024 * 1024,
            // An address's few uploads and a camera at 4 MiB a frame.
            max_frames_in_progress_per_address: 16 * 1024 * 1024,
            bans: BanList::new(),
            refusals: RefusalLog::new(),
            adopter: Adopter::new(),
        }
    }
}

/// Serves connections on an already-bound listener until `shutdown` fires,
/// reporting every connection's life on `events`.
///
/// On shutdown every connection is sent a `Goodbye`, given a moment to
/// close, and its threads are joined before this returns. While it runs,
/// [`ServerConfig::adopter`] hands it connections accepted elsewhere
/// ([`Adopter::adopt`]).
pub fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: Shutdown,
    events: Sender<Event>,
) -> Result<(), TransportError> {
    let local = listener
        .local_addr()
        .map_err(|e| TransportError::io("listener address", e))?;
    // `accept` cannot select on a channel: wake it with a connection of our own.
    shutdown.on_trigger(move || {
        let _ = TcpStream::connect_timeout(&wake_address(local), Duration::from_secs(1));
    });
    match &config.tls {
        Some(identity) => tracing::info!(
            "listening on {local} (TLS, certificate {})",
            identity.fingerprint()
        ),
        None => tracing::info!("listening on {local} (plain TCP, no TLS)"),
    }

    let adopter = config.adopter.clone();
    let engine = Arc::new(
        Engine::start(
            &config.conn,
            crate::engine::FramePace {
                grace: config.frame_grace,
                min_rate: config.min_frame_rate,
            },
            InboundBudget::with_frames(
                config.max_inbound_bytes,
                config.max_inbound_bytes_per_conn,
                config.max_frames_in_progress,
                config.max_frames_in_progress_per_address,
                config.min_frame_rate.saturating_mul(CROWD_RATE_FACTOR),
            ),
            &shutdown,
            &events,
        )
        .map_err(|e| TransportError::io("starting the I/O threads", e))?,
    );
    let admission = Arc::new(Admission::new(
        config,
        shutdown.clone(),
        events,
        engine.clone(),
    ));
    adopter.attach(Some(admission.clone()));
    let mut accept_errors = AcceptBackoff::default();

    for incoming in listener.incoming() {
        if shutdown.is_triggered() {
            break;
        }
        let stream = match incoming {
            Ok(s) => {
                accept_errors.succeeded();
                s
            }
            Err(e) => {
                // Out of file descriptors and similar: the connection stays
                // in the backlog and the next accept fails at once, so back
                // off instead of spinning.
                std::thread::sleep(accept_errors.failed(&e));
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        admission.admit(stream, peer, Origin::Accepted);
    }

    adopter.attach(None);
    for t in admission.close() {
        let _ = t.join();
    }
    // Every handshake is over: the I/O threads end with their connections.
    engine.stop();
    tracing::info!("server stopped");
    Ok(())
}

/// Where a connection came from: the listener (TLS or plain as
/// configured), or [`Adopter::adopt`] (always plain: the stream is the
/// server's own, such as one end of a loopback pair behind a WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Accepted,
    Adopted,
}

/// Hands connections accepted elsewhere to a running [`serve`], which
/// admits them exactly as if its listener had accepted them from `peer`:
/// bans, attempts and connections per address, the client limit, the
/// handshake slots and deadline, the token, then the keepalive, idle and
/// too-slow rules of every connection.
///
/// The browser server uses it: each WebSocket is bridged to one end of a
/// loopback TCP pair, whose other end is adopted with the browser's own
/// address. Adopted streams speak plain lanlink whatever
/// [`ServerConfig::tls`] says (the stream never leaves the machine; the
/// browser's link has its own encryption or none).
///
/// Cheap to clone; every clone reaches the same server. It is part of
/// [`ServerConfig`], so take it from the configuration given to `serve`.
///
/// ```no_run
/// use std::net::{TcpListener, TcpStream};
/// use lanlink_transport::{serve, ServerConfig, Shutdown};
///
/// let config = ServerConfig::default();
/// let adopter = config.adopter.clone();
/// let (events, _application_side) = crossbeam_channel::bounded(1024);
/// let listener = TcpListener::bind("0.0.0.0:7878")?;
/// std::thread::spawn(move || serve(listener, config, Shutdown::new(), events));
///
/// // A client that reached this process another way (a bridged
/// // WebSocket): one end of a loopback pair, served as from its address.
/// let pair = TcpListener::bind("127.0.0.1:0")?;
/// let ours = TcpStream::connect(pair.local_addr()?)?;
/// let (theirs, _) = pair.accept()?;
/// adopter.adopt(theirs, "192.168.1.20:51000".parse()?)?;
/// // Bytes written to `ours` now reach the server as that client's.
/// # drop(ours);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Adopter(Arc<Mutex<Option<Arc<Admission>>>>);

impl std::fmt::Debug for Adopter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adopter")
            .field("serving", &self.lock().is_some())
            .finish()
    }
}

impl Adopter {
    /// An adopter not yet attached to a server (until [`serve`] runs with a
    /// configuration holding it).
    pub fn new() -> Adopter {
        Adopter::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Admission>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attach(&self, admission: Option<Arc<Admission>>) {
        *self.lock() = admission;
    }

    /// Admits `stream` as a connection from `peer`. A refusal (a ban, a
    /// limit) is written to `stream` as a `Refuse`, as for any client, and
    /// is not an error here.
    ///
    /// # Errors
    /// [`TransportError::NotServing`] if no [`serve`] with this adopter is
    /// running (not yet, or no longer); `stream` is dropped.
    pub fn adopt(&self, stream: TcpStream, peer: SocketAddr) -> Result<(), TransportError> {
        let admission = self.lock().clone().ok_or(TransportError::NotServing)?;
        if admission.admit(stream, peer, Origin::Adopted) {
            Ok(())
        } else {
            Err(TransportError::NotServing)
        }
    }
}

/// What a running server needs to admit a connection, shared by the accept
/// loop and every [`Adopter`].
struct Admission {
    config: Arc<ServerConfig>,
    shutdown: Shutdown,
    events: Sender<Event>,
    active: Arc<AtomicUsize>,
    handshaking: Handshakes,
    totals: Arc<Totals>,
    slots: AddressSlots,
    next_id: AtomicU64,
    /// The I/O threads serving established connections.
    engine: Arc<Engine>,
    /// Held for a whole admission, so admissions are made one at a time
    /// as the accept loop alone used to make them.
    gate: Mutex<Gate>,
}

/// The parts of [`Admission`] that change with every connection.
struct Gate {
    attempts: KeyedBuckets<IpAddr>,
    threads: Vec<JoinHandle<()>>,
    /// Set once the server stops: later admissions are turned away.
    closed: bool,
}

impl Admission {
    fn new(
        config: ServerConfig,
        shutdown: Shutdown,
        events: Sender<Event>,
        engine: Arc<Engine>,
    ) -> Admission {
        // A burst of 0 would refuse everyone: at least one attempt goes through.
        let attempt_rate = Rate {
            burst: config.attempts_per_address.burst.max(1),
            ..config.attempts_per_address
        };
        Admission {
            totals: Arc::new(Totals {
                queued: AtomicUsize::new(0),
                conns: AtomicUsize::new(0),
                max: config.max_total_queued_bytes,
            }),
            config: Arc::new(config),
            shutdown,
            events,
            active: Arc::new(AtomicUsize::new(0)),
            handshaking: Handshakes::default(),
            slots: AddressSlots::default(),
            next_id: AtomicU64::new(1),
            engine,
            gate: Mutex::new(Gate {
                attempts: KeyedBuckets::new(attempt_rate, DEFAULT_MAX_KEYS),
                threads: Vec::new(),
                closed: false,
            }),
        }
    }

    /// Turns later admissions away; returns the threads to join.
    fn close(&self) -> Vec<JoinHandle<()>> {
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.closed = true;
        std::mem::take(&mut gate.threads)
    }

    /// Admits or refuses one connection; false if the server has stopped
    /// (the stream is dropped).
    fn admit(&self, stream: TcpStream, peer: SocketAddr, origin: Origin) -> bool {
        let config = &self.config;
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if gate.closed {
            return false;
        }
        let _ = stream.set_nodelay(true);
        gate.threads.retain(|t| !t.is_finished());

        // Cheap refusals first, on this thread, without a handshake: a
        // flood of attempts costs one accept and one small write each.
        let ip = peer.ip().to_canonical();
        let mut slot = None;
        let refusal = if config.bans.contains(ip) {
            Some((
                ErrorCode::BANNED,
                "banned",
                "this address is banned from the server".to_owned(),
            ))
        } else if gate.attempts.try_take(&ip, Instant::now()).is_err() {
            Some((
                ErrorCode::TOO_MANY_CONNECTIONS,
                "connection rate",
                format!(
                    "too many connection attempts from {ip} (more than {} at once or {}/s); try again shortly",
                    config.attempts_per_address.burst, config.attempts_per_address.per_second
                ),
            ))
        } else {
            slot = self.slots.take(ip, config.max_conns_per_address);
            slot.is_none().then(|| {
                (
                    ErrorCode::TOO_MANY_CONNECTIONS,
                    "connections per address",
                    format!(
                        "too many connections from {ip} (at most {} at once); close some and try again",
                        config.max_conns_per_address
                    ),
                )
            })
        };
        if let Some((code, kind, reason)) = refusal {
            config.refusals.refused(ip, kind, &reason);
            refuse_at_once(stream, code, reason);
            return true;
        }

        if self.active.load(Ordering::SeqCst) >= config.max_clients {
            config.refusals.refused(
                ip,
                "server full",
                &format!("{} clients", config.max_clients),
            );
            let reason = format!("server is full ({} clients)", config.max_clients);
            // Refuse off the accept thread: the write and drain take a moment.
            gate.threads.push(spawn_named("refuse", move || {
                send_and_close(
                    &Socket::plain(stream),
                    &Frame::control(control::Refuse {
                        code: ErrorCode::SERVER_FULL,
                        reason,
                    }),
                );
            }));
            return true;
        }

        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        // Every handshake slot taken: the oldest gives its place up.
        while self.handshaking.len() >= config.max_handshakes.max(1) {
            let Some(cut) = self.handshaking.cut_oldest() else {
                break;
            };
            config.refusals.refused(
                cut,
                HANDSHAKE_CUT,
                &format!(
                    "a handshake was cut to make room: {} connections were handshaking at once",
                    config.max_handshakes
                ),
            );
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(self.active.clone());
        let handshake = self.handshaking.enter(id, ip, &stream);
        let (config, shutdown, events) = (
            self.config.clone(),
            self.shutdown.clone(),
            self.events.clone(),
        );
        let totals = self.totals.clone();
        let engine = self.engine.clone();
        gate.threads
            .push(spawn_named(&format!("handshake-{}", id.0), move || {
                let guards: Box<dyn Send> = Box::new((guard, slot));
                serve_connection(
                    id, peer, stream, origin, &config, shutdown, events, handshake, totals,
                    &engine, guards,
                );
            }));
        true
    }
}

/// Refuses without a thread: the refusal is a few dozen bytes, which the
/// socket's send buffer takes at once, then the connection is closed.
fn refuse_at_once(stream: TcpStream, code: ErrorCode, reason: String) {
    let _ = stream.set_nonblocking(true);
    if let Ok(bytes) = Frame::control(control::Refuse { code, reason }).to_bytes() {
        let _ = std::io::Write::write_all(&mut &stream, &bytes);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Closing with the peer's first bytes (its hello) unread would send a
    // reset, which can destroy the refusal in flight: read what is there
    // (a hello's worth; never more, this is the accept thread).
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(std::io::Read::read(&mut &stream, &mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// How long the accept loop sleeps after `accept` fails: 5 ms after the
/// first failure, doubling to at most 100 ms while failures go on, so a
/// server out of file descriptors neither spins nor stays deaf long once
/// they come back. The first failure of a run is logged, and the end of the
/// run with its count; nothing in between.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u64,
    delay: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_millis(100);

    /// Records a failure; returns how long to sleep.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                "accept failed: {e}; backing off (up to {} ms between tries) until it works again",
                Self::MAX.as_millis()
            );
        }
        self.failures += 1;
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        self.delay
    }

    /// Records a success, ending a run of failures.
    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::warn!("accept works again after {} failures", self.failures);
            *self = AcceptBackoff::default();
        }
    }
}

/// The refusal-log kind of a handshake cut to make room for a newer one.
pub const HANDSHAKE_CUT: &str = "handshake cut";

/// The connections still handshaking, oldest first, each with a handle on
/// its socket so that it can be cut to make room for a newer one.
#[derive(Default)]
struct Handshakes(Arc<Mutex<VecDeque<Handshaking>>>);

/// A connection still handshaking: its id, address and socket.
type Handshaking = (ConnId, IpAddr, Option<TcpStream>);

/// One connection's place in [`Handshakes`], given back on drop (the
/// handshake ended, either way).
struct HandshakeGuard {
    handshakes: Arc<Mutex<VecDeque<Handshaking>>>,
    id: ConnId,
}

impl Handshakes {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Handshaking>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn enter(&self, id: ConnId, ip: IpAddr, tcp: &TcpStream) -> HandshakeGuard {
        self.lock().push_back((id, ip, tcp.try_clone().ok()));
        HandshakeGuard {
            handshakes: self.0.clone(),
            id,
        }
    }

    /// Shuts the socket of the oldest connection still handshaking (its
    /// thread sees the connection end at once) and forgets it; returns its
    /// address.
    fn cut_oldest(&self) -> Option<IpAddr> {
        let (_, ip, tcp) = self.lock().pop_front()?;
        if let Some(tcp) = tcp {
            let _ = tcp.shutdown(std::net::Shutdown::Both);
        }
        Some(ip)
    }
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        let mut v = self.handshakes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = v.iter().position(|(id, ..)| *id == self.id) {
            v.remove(at);
        }
    }
}

/// Decrements a connection count however the thread ends.
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn wake_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

#[allow(clippy::too_many_arguments)]
fn serve_connection(
    id: ConnId,
    peer: SocketAddr,
    tcp: TcpStream,
    origin: Origin,
    config: &ServerConfig,
    shutdown: Shutdown,
    events: Sender<Event>,
    handshake: HandshakeGuard,
    totals: Arc<Totals>,
    engine: &Engine,
    guards: Box<dyn Send>,
) {
    let deadline = Instant::now() + config.handshake_timeout;
    let secured = match origin {
        Origin::Accepted => secure(peer, tcp, config, deadline, &shutdown),
        Origin::Adopted => {
            let _ = tcp.set_write_timeout(Some(config.handshake_timeout));
            Some((Socket::plain(tcp), ReadState::new()))
        }
    };
    let Some((stream, mut state)) = secured else {
        return;
    };
    let mut decoder = FrameDecoder::with_max_payload(config.handshake_max_payload);
    let hello = match read_first_frame(&stream, &mut state, &mut decoder, deadline, Some(&shutdown))
    {
        Ok(Frame {
            message: Message::Hello(hello),
            ..
        }) => hello,
        Ok(other) => {
            let reason = format!("expected Hello as the first frame, got {:?}", other.kind());
            tracing::warn!(%peer, "handshake failed: {reason}");
            return refuse(&stream, ErrorCode::UNEXPECTED, reason);
        }
        Err(FirstFrameError::Malformed(ProtoError::UnsupportedVersion { found, supported })) => {
            let reason = format!(
                "protocol version mismatch: this server speaks version {supported}, the client sent version {found}"
            );
            tracing::warn!(%peer, "handshake failed: {reason}");
            return refuse(&stream, ErrorCode::VERSION_MISMATCH, reason);
        }
        Err(FirstFrameError::Malformed(e)) => {
            tracing::warn!(%peer, "handshake failed: malformed input: {e}");
            let code = match e {
                ProtoError::FrameTooLarge { .. } => ErrorCode::TOO_LARGE,
                _ => ErrorCode::MALFORMED,
            };
            return refuse(&stream, code, format!("malformed handshake: {e}"));
        }
        Err(FirstFrameError::Timeout) if shutdown.is_triggered() => {
            return refuse(
                &stream,
                ErrorCode::SHUTTING_DOWN,
                "server shutting down".into(),
            );
        }
        Err(FirstFrameError::Timeout) => {
            let reason = format!(
                "no handshake within {:.1} s",
                config.handshake_timeout.as_secs_f64()
            );
            tracing::info!(%peer, "{reason}");
            return refuse(&stream, ErrorCode::TIMEOUT, reason);
        }
        Err(FirstFrameError::Closed) => {
            tracing::debug!(%peer, "closed before the handshake");
            return;
        }
        Err(FirstFrameError::Io(e)) => {
            tracing::debug!(%peer, "handshake read failed: {e}");
            return;
        }
    };

    if let Some(expected) = &config.token {
        let now = Instant::now();
        let reason = match &hello.token {
            None => Some("this server requires an access token (--token)"),
            // Spent guesses: refused unchecked, so the answer tells nothing.
            Some(_) if config.token_guesses.check(peer.ip(), now).is_err() => {
                Some("too many wrong access tokens: try again in a minute")
            }
            Some(t) if !constant_time_eq(t.as_bytes(), expected.as_bytes()) => {
                config.token_guesses.wrong(peer.ip(), now);
                Some("wrong access token")
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            tracing::warn!(%peer, name = %display_safe(&hello.name), "refused: {reason}");
            return refuse(&stream, ErrorCode::BAD_TOKEN, reason.to_owned());
        }
    }

    decoder.set_max_payload(config.conn.max_payload);
    // The handshake's write timeout would cut a slow established peer;
    // the queue limit handles those.
    let _ = stream.tcp().set_write_timeout(None);
    drop(handshake);
    let (handle, queues, _link) = new_connection(id, peer, stream, &config.conn, Some(totals));
    // Sends from now on (the application's Welcome) wake that I/O thread.
    let lane = engine.assign(&handle);
    handle.set_name(display_safe(&hello.name).to_string());
    tracing::info!(%peer, conn = %id, name = %display_safe(&hello.name), "connected (handshake complete)");
    // The Hello goes out before the I/O thread may report any frame.
    if events
        .send(Event::Hello {
            conn: handle.clone(),
            hello,
        })
        .is_ok()
    {
        engine.hand_over(
            lane,
            Established {
                handle,
                queues,
                decoder,
                read_state: state,
                guards,
            },
        );
    }
    drop(shutdown);
}

fn refuse(stream: &Socket, code: ErrorCode, reason: String) {
    send_and_close(stream, &Frame::control(control::Refuse { code, reason }));
}

/// Sets up the connection's byte stream: peeks at the first byte to tell a
/// TLS client from a plain one, runs the TLS handshake when this server
/// speaks TLS, and refuses (in plain lanlink, which both kinds of client
/// understand) a client of the other kind.
fn secure(
    peer: SocketAddr,
    tcp: TcpStream,
    config: &ServerConfig,
    deadline: Instant,
    shutdown: &Shutdown,
) -> Option<(Socket, ReadState)> {
    let _ = tcp.set_write_timeout(Some(config.handshake_timeout));
    let first = match peek_first_byte(&tcp, deadline, shutdown) {
        Ok(b) => b,
        Err(FirstFrameError::Timeout) if !shutdown.is_triggered() => {
            let reason = format!(
                "no handshake within {:.1} s",
                config.handshake_timeout.as_secs_f64()
            );
            tracing::info!(%peer, "{reason}");
            refuse(&Socket::plain(tcp), ErrorCode::TIMEOUT, reason);
            return None;
        }
        Err(FirstFrameError::Timeout) => {
            refuse(
                &Socket::plain(tcp),
                ErrorCode::SHUTTING_DOWN,
                "server shutting down".into(),
            );
            return None;
        }
        Err(_) => return None,
    };
    let is_tls_client = first == TLS_HANDSHAKE_BYTE;
    let Some(identity) = &config.tls else {
        if is_tls_client {
            tracing::warn!(%peer, "refused: a TLS client, and this server runs without TLS");
            refuse(
                &Socket::plain(tcp),
                ErrorCode::TLS_MISMATCH,
                "this server runs without TLS (--plain); connect with --plain".into(),
            );
            return None;
        }
        return Some((Socket::plain(tcp), ReadState::new()));
    };
    if !is_tls_client {
        let reason = if first == lanlink_proto::MAGIC[0] {
            "this server requires TLS; connect without --plain"
        } else {
            "expected a TLS handshake"
        };
        tracing::warn!(%peer, "refused: {reason}");
        refuse(
            &Socket::plain(tcp),
            ErrorCode::TLS_MISMATCH,
            reason.to_owned(),
        );
        return None;
    }
    let mut tcp = tcp;
    match server_handshake(&mut tcp, identity, deadline, shutdown) {
        Ok((conn, leftover)) => Some((
            Socket::tls(tcp, rustls::Connection::Server(conn)),
            ReadState::with_pending(leftover),
        )),
        Err(ServerHandshakeError::Timeout) => {
            tracing::info!(%peer, "no TLS handshake within {:.1} s", config.handshake_timeout.as_secs_f64());
            None
        }
        Err(ServerHandshakeError::Closed) => {
            tracing::debug!(%peer, "closed during the TLS handshake");
            None
        }
        Err(ServerHandshakeError::Tls(e)) => {
            // A client that rejected our certificate (a changed pin) ends up here too.
            tracing::warn!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(ServerHandshakeError::Io(e)) => {
            tracing::debug!(%peer, "TLS handshake: {e}");
            None
        }
    }
}

/// Waits for the peer's first byte without consuming it.
fn peek_first_byte(
    tcp: &TcpStream,
    deadline: Instant,
    shutdown: &Shutdown,
) -> Result<u8, FirstFrameError> {
    let mut byte = [0u8; 1];
    read_before(tcp, deadline, Some(shutdown), || tcp.peek(&mut byte))?;
    Ok(byte[0])
}

/// Compares secrets without leaking, through timing, how long a prefix matched.
///
/// Both sides are hashed first (SHA-256), so not even their lengths show.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let digest = |x: &[u8]| ring::digest::digest(&ring::digest::SHA256, x);
    let (a, b) = (digest(a), digest(b));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The protocol version this server speaks, for log lines and `--version`.
pub const SERVER_PROTOCOL_VERSION: u8 = PROTOCOL_VERSION;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_from_5_to_100_ms_and_reset_on_success() {
        let mut backoff = AcceptBackoff::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..8)
            .map(|_| backoff.failed(&emfile).as_millis())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 100, 100, 100]);
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile).as_millis(), 5);
    }
}
