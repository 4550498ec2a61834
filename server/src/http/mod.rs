//! Video for browsers: a small HTTP/1.1 server that shows every video stream
//! as MJPEG (`multipart/x-mixed-replace`, as uStreamer and mjpg-streamer do),
//! a single-JPEG snapshot, and an HTML page listing the streams.
//!
//! Frames arrive in a [`LatestFrames`] store (the relay's video tap writes
//! there, and removes a stream's frame when it ends); each HTTP viewer has
//! its own thread that sends the newest frame it has not sent yet, so a slow
//! viewer skips frames and never delays anyone.
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | HTML page with every stream |
//! | `/stream/NAME` | MJPEG stream |
//! | `/snapshot/NAME` | the latest frame as one JPEG |
//! | `/snapshot/NAME.jpg` | the same, to download: `Content-Disposition: attachment` with the name percent-encoded (`filename*=UTF-8''…`) |
//! | `/streams.json` | `[{"name":…,"width":…,"height":…,"seq":…}]` |
//! | `/state` | `{"ok":true,"result":{"streams":[{"name":…,"publisher":…,"width":…,"height":…,"fps":…,"viewers":…,"seq":…}]}}` (as uStreamer's `/state`) |
//! | `/page.js` | the page's script: it polls `/state` every second and adds and removes streams without a reload |
//! | `/info` | `{"tls":bool,"fingerprint":"SHA256:…","short":"3f9a 12c4 …"}`: the certificate the page came with, as the server console shows it (`null`s without TLS) |
//! | `GET /ws` | WebSocket: the browser is a lanlink client (chat), bridged to the transport ([`ws`]) |
//! | `/lanlink.js`, `/chat.js`, `/receive.js` | the page's lanlink codec, chat panel, and files sent to its user |
//! | `GET /audio` | WebSocket: every talker's Opus packets, for the page's Audio panel ([`audio`]) |
//! | `/audio.js`, `/audio-worklet.js` | the Audio panel's script and its mixing worklet |
//! | `GET /auth` | `{"token_required":bool,"ok":bool}` |
//! | `POST /auth` | body `{"token":"…"}` (≤ 1 KiB): 204 and a session cookie, 403 wrong, 429 too many guesses ([`auth`]) |
//! | `/files/…`, `/tar/…`, `POST /upload/NAME`, `/files.js` | the shared folder: listings, downloads with `Range`, folders as tar; uploads into the inbox within `lanlink put`'s limits (`files.rs`) |
//!
//! # HTTPS
//! With [`HttpConfig::tls`] set, every connection is HTTPS with the
//! server's own certificate (the one native clients pin): the TLS
//! handshake runs on the connection's thread, inside its connection slot,
//! and it and the request head share one [`HttpConfig::header_timeout`].
//! A browser that speaks plain HTTP to that port is redirected to
//! `https://` (only a `Host` made of host-name characters is echoed).
//! Handshakes are rate-limited per address ([`HttpConfig::handshake_rate`]).
//! The page shows the certificate's fingerprint in its footer and in
//! `/info`, as the server console prints it (a convenience: what the user
//! must compare with the console is what the browser's certificate viewer
//! shows, since any page can print any text).
//!
//! # Limits
//! Connections are capped in all and per address, and beyond either cap are
//! answered `503` from the accept loop, without a thread
//! ([`HttpConfig`]). When every slot is taken, a newcomer takes the place
//! of the oldest connection of an address holding more than its fair
//! share, so a few addresses cannot hold them all (`slots.rs`). A request head must arrive whole within
//! [`HttpConfig::header_timeout`] and fit 8 KiB (parsed by `httparse`). A
//! viewer that goes away is noticed within a fraction of a second even
//! when its stream is quiet, so viewer slots do not leak. When `accept`
//! fails (out of file descriptors), the loop backs off instead of spinning.
//! Each MJPEG response has its own random multipart boundary, and frames are
//! JPEG images only (see [`store`]): a publisher cannot inject other parts.

pub mod audio;
pub mod auth;
mod files;
#[cfg(any(fuzzing, feature = "fuzzing"))]
mod fuzz;
mod host;
mod pace;
mod page;
mod request;
mod slots;
pub mod store;
pub mod ws;

#[doc(hidden)]
#[cfg(any(fuzzing, feature = "fuzzing"))]
pub use fuzz::fuzz_http_request;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use store::{
    jpeg_image, FrameLimits, FrameRefused, Latest, LatestFrames, StreamState, Watching,
};

pub use audio::AudioListeners;
pub use pace::MinPace;

use crate::ServerError;
use lanlink_services::file::FileConfig;
use lanlink_services::media::{TapEvent, VideoTap};
use lanlink_transport::limits::DEFAULT_MAX_KEYS;
use lanlink_transport::{Fingerprint, KeyedBuckets, Rate, ServerIdentity, Shutdown};
use request::HeadError;

/// The limits of the browser server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_address: usize,
    /// Time a client has to send its whole request head.
    pub header_timeout: Duration,
    /// MJPEG viewers served at once. When all are taken, a newcomer takes
    /// the place of the oldest viewer of the address holding the most
    /// viewers, if it holds more than its fair share (as connection slots,
    /// `slots.rs`); otherwise it is answered 503.
    pub max_viewers: usize,
    /// A viewer that takes longer than this to accept a write is dropped.
    pub write_timeout: Duration,
    /// What a viewer or a download must take at least: one reading a
    /// trickle, never long enough blocked for `write_timeout`, is dropped
    /// when it falls behind ([`MinPace`]).
    pub min_pace: MinPace,
    /// The access token browsers must give (`POST /auth`) before the
    /// protected routes answer: the transport's token, as native clients
    /// give it in `Hello`. `None`: no token.
    pub access_token: Option<String>,
    /// Wrong tokens allowed per address and in all: give the transport's
    /// [`lanlink_transport::ServerConfig::token_guesses`] (a clone shares
    /// the count), so the one token has one budget.
    pub token_guesses: lanlink_transport::GuessLimit,
    /// Serve HTTPS with this identity (the server's own certificate);
    /// `None`: plain HTTP.
    pub tls: Option<ServerIdentity>,
    /// TLS handshakes one address may start (HTTPS only): each costs a
    /// key exchange and a signature, so beyond this a new connection is
    /// closed at once, before any.
    pub handshake_rate: Rate,
    /// Chat over `GET /ws`: hands each browser's connection to the
    /// transport server ([`ws`]). `None`: no chat, `/ws` answers 503.
    pub adopter: Option<lanlink_transport::Adopter>,
    /// The file service's settings: browsers list and download its share
    /// (`/files/`, `/tar/`) and upload into its inbox (`/upload/`) within
    /// its limits. Give the server's own [`FileConfig`] (a clone shares
    /// its ledger), so browser uploads count against the same quota and
    /// free space as native ones. The default shares and takes nothing.
    pub files: FileConfig,
    /// The browsers listening on `/audio`, fed by the relay through
    /// [`AudioListeners::tap`] (set `ServerConfig::audio_tap` to it).
    pub audio: AudioListeners,
    /// Host names the server answers to without a token, besides IP
    /// literals, `localhost` and this machine's host name (`--http-host`):
    /// other `Host`s get `421`, against DNS rebinding (`host.rs`).
    pub host_names: Vec<String>,
}

/// TLS handshakes one address may start by default: a page load (the page,
/// its scripts, the streams, `/state`) several times over at once, then
/// more than a browser polling `/state` and fetching files needs.
pub const HANDSHAKE_RATE: Rate = Rate {
    burst: 64,
    per_second: 16.0,
};

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 256,
            max_per_address: 16,
            header_timeout: Duration::from_secs(5),
            max_viewers: MAX_VIEWERS,
            write_timeout: Duration::from_secs(10),
            min_pace: MinPace::default(),
            access_token: None,
            token_guesses: lanlink_transport::GuessLimit::default(),
            tls: None,
            handshake_rate: HANDSHAKE_RATE,
            adopter: None,
            files: FileConfig::default(),
            audio: AudioListeners::default(),
            host_names: Vec::new(),
        }
    }
}

/// Most HTTP viewers served at once by default; more are answered 503.
pub const MAX_VIEWERS: usize = 128;

/// The kernel send buffer of an MJPEG viewer's socket (Linux doubles it):
/// a few frames, and ample for a LAN's round trip.
const VIEWER_SEND_BUFFER: usize = 256 * 1024;

/// How often a viewer of a quiet stream is checked for having left.
const PEER_CHECK: Duration = Duration::from_millis(250);

/// A relay tap that keeps the newest frame of every live stream in
/// `frames` (this server's store) and drops it when the stream ends.
pub fn video_tap(frames: LatestFrames) -> VideoTap {
    VideoTap::new(move |event| match event {
        TapEvent::Frame(a, f) => {
            let seq = u64::from(f.seq);
            let data = f.data.clone();
            if let Err(why) = frames.publish_by(&a.name, &a.publisher, a.width, a.height, seq, data)
            {
                // Per frame: worth a debug line at most.
                tracing::debug!(stream = %a.name, "frame not shown to browsers: {why}");
            }
        }
        // Another server's stream sends frames only once watched here, so
        // it is listed from its announcement; a local one from its first
        // JPEG frame (a stream of anything else is never listed).
        TapEvent::Announced(a, publisher)
            if publisher.0 >= crate::remote_media::FIRST_REMOTE_PUBLISHER =>
        {
            frames.announce(&a.name, &a.publisher, a.width, a.height)
        }
        TapEvent::Ended(a) => frames.remove(&a.name),
        _ => {}
    })
}

/// Serves HTTP viewers on `listener` with the default [`HttpConfig`] until
/// `shutdown` fires.
pub fn serve_http(
    listener: TcpListener,
    frames: LatestFrames,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    serve_http_with(listener, frames, HttpConfig::default(), shutdown)
}

/// Serves HTTP viewers on `listener` within `config`'s limits until
/// `shutdown` fires.
pub fn serve_http_with(
    listener: TcpListener,
    frames: LatestFrames,
    config: HttpConfig,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::io("http listener address", e))?;
    shutdown.on_trigger(move || {
        let wake = SocketAddr::new(
            if local.ip().is_unspecified() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                local.ip()
            },
            local.port(),
        );
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    });
    let auth = Arc::new(auth::Auth::new(
        config.access_token.clone(),
        config.token_guesses.clone(),
    ));
    let mut config = config;
    config.host_names = (config.host_names.iter())
        .map(|n| host::normal(n))
        .chain(host::machine_names())
        .collect();
    let config = Arc::new(config);
    let viewers = Arc::new(slots::Connections::default());
    let conns = Arc::new(slots::Connections::default());
    let mut handshakes = KeyedBuckets::new(config.handshake_rate, DEFAULT_MAX_KEYS);
    let mut threads = Vec::new();
    let mut backoff = Duration::ZERO;
    for stream in listener.incoming() {
        if shutdown.is_triggered() {
            break;
        }
        let stream = match stream {
            Ok(s) => {
                backoff = Duration::ZERO;
                s
            }
            Err(e) => {
                // Out of file descriptors, say: the pending connection stays
                // queued and accept fails again at once. Wait, longer each
                // time, instead of spinning.
                if backoff.is_zero() {
                    tracing::warn!("HTTP accept failed: {e} (backing off)");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                std::thread::sleep(backoff);
                continue;
            }
        };
        threads.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        if config.tls.is_some()
            && handshakes
                .try_take(&peer.ip().to_canonical(), Instant::now())
                .is_err()
        {
            continue; // closed before any handshake work
        }
        let slot = match conns.admit(
            peer.ip(),
            &stream,
            config.max_connections,
            config.max_per_address,
        ) {
            Ok(slot) => slot,
            Err(_) => {
                if config.tls.is_none() {
                    refuse_at_once(stream);
                } // a TLS client could not read a plain 503: just closed
                continue;
            }
        };
        let (frames, shutdown, viewers, config, auth) = (
            frames.clone(),
            shutdown.clone(),
            viewers.clone(),
            config.clone(),
            auth.clone(),
        );
        threads.push(lanlink_transport::spawn_named("http", move || {
            let _slot = slot;
            let _ = handle(stream, peer, &frames, &shutdown, &viewers, &config, &auth);
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Answers 503 without waiting for anything: the socket is non-blocking,
/// so a peer that does not read costs nothing but this attempt.
fn refuse_at_once(mut s: TcpStream) {
    let _ = s.set_nonblocking(true);
    let _ = s.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\
          Connection: close\r\n\r\ntoo many clients\n",
    );
}

/// A browser's connection as the answering code sees it: bytes in and
/// out, and whether the browser has gone (a socket; in the fuzz target, a
/// buffer).
trait Peer: Read + Write {
    /// True once the browser closed its side (or the connection failed).
    fn left(&mut self) -> bool;

    /// Bounds the next reads (a socket's `SO_RCVTIMEO`; nothing for a
    /// buffer): uploads notice a stalled body, the WebSocket bridge polls.
    fn set_read_timeout(&mut self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }

    /// Keeps the kernel's send buffer small (a socket's `SO_SNDBUF`;
    /// nothing for a buffer), for answers that never end: a viewer that
    /// stops reading then meets the write timeout after a few frames,
    /// not after the megabytes an auto-tuned buffer would take.
    fn limit_send_buffer(&mut self, _bytes: usize) {}

    /// The socket underneath (none for a buffer), which an evicted
    /// viewer's slot shuts.
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

impl Peer for TcpStream {
    fn left(&mut self) -> bool {
        peer_left(self)
    }

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }

    fn limit_send_buffer(&mut self, bytes: usize) {
        let _ = socket2::SockRef::from(&*self).set_send_buffer_size(bytes);
    }

    fn socket(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

/// An HTTPS browser.
type TlsPeer = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

impl Peer for TlsPeer {
    /// As [`peer_left`], through TLS: what arrived is decrypted and
    /// dropped; a `close_notify`, an end of stream or a TLS error means the
    /// browser has gone.
    fn left(&mut self) -> bool {
        if self.sock.set_nonblocking(true).is_err() {
            return true;
        }
        let mut scratch = [0u8; 1024];
        let mut left = false;
        'drain: for _ in 0..16 {
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => {
                    left = true;
                    break;
                }
                Ok(_) => {
                    if self.conn.process_new_packets().is_err() {
                        left = true;
                        break;
                    }
                    loop {
                        match self.conn.reader().read(&mut scratch) {
                            Ok(0) => {
                                left = true; // close_notify
                                break 'drain;
                            }
                            Ok(_) => {}
                            Err(_) => break, // nothing more decrypted yet
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    left = true;
                    break;
                }
            }
        }
        self.sock.set_nonblocking(false).is_err() || left
    }

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(timeout))
    }

    fn limit_send_buffer(&mut self, bytes: usize) {
        self.sock.limit_send_buffer(bytes);
    }

    fn socket(&self) -> Option<&TcpStream> {
        Some(&self.sock)
    }
}

fn handle(
    mut s: TcpStream,
    peer: SocketAddr,
    frames: &LatestFrames,
    shutdown: &Shutdown,
    viewers: &Arc<slots::Connections>,
    config: &HttpConfig,
    auth: &auth::Auth,
) -> io::Result<()> {
    // One deadline for the TLS handshake and the request head.
    let deadline = Instant::now() + config.header_timeout;
    s.set_write_timeout(Some(config.write_timeout))?;
    let _ = s.set_nodelay(true);
    let context = Answering {
        frames,
        shutdown,
        viewers,
        max_viewers: config.max_viewers,
        check_every: PEER_CHECK,
        min_pace: config.min_pace,
        auth,
        ip: peer.ip(),
        secure: config.tls.is_some(),
        body_timeout: config.header_timeout,
        fingerprint: config.tls.as_ref().map(ServerIdentity::fingerprint),
        adopter: config.adopter.as_ref(),
        peer,
        files: files::Files {
            config: &config.files,
        },
        audio: &config.audio,
        host_names: &config.host_names,
    };
    let Some(identity) = &config.tls else {
        let request = request::read_head(&mut s, deadline);
        let result = answer(&mut s, request, &context);
        abort_if_too_slow(&s, &result);
        return result;
    };
    match first_byte(&s, deadline) {
        Some(TLS_HANDSHAKE) => {}
        Some(_) => return redirect_to_https(s, deadline),
        None => return Ok(()),
    }
    let conn = match lanlink_transport::tls::accept_tls(&mut s, identity, deadline, shutdown) {
        Ok(conn) => conn,
        Err(e) => {
            // Browsers give up on a certificate they do not know yet by
            // closing: routine, not worth more than a debug line.
            tracing::debug!("HTTPS handshake: {e}");
            return Ok(());
        }
    };
    let mut tls = TlsPeer::new(conn, s);
    let request = request::read_head(&mut tls, deadline);
    let result = answer(&mut tls, request, &context);
    if !pace::too_slow(&result) {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
    abort_if_too_slow(&tls.sock, &result);
    result
}

/// A browser cut for reading too slowly gets a reset, not the rest of
/// what the kernel holds for it: its slot and buffers are free at once.
fn abort_if_too_slow(s: &TcpStream, result: &io::Result<()>) {
    if pace::too_slow(result) {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    }
}

/// The first byte of every TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The first byte the browser sent, left unread, once it arrives before
/// `deadline`; `None` if it closes or the time is up first.
fn first_byte(s: &TcpStream, deadline: Instant) -> Option<u8> {
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match s.peek(&mut byte) {
            Ok(0) => return None,
            Ok(_) => return Some(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return None,
        }
    }
}

/// Answers a plain-HTTP request on the HTTPS port with a redirect to the
/// same host over HTTPS (the page's root: the path is not echoed), or a
/// plain 400 when its `Host` is not a plain host name.
fn redirect_to_https(mut s: TcpStream, deadline: Instant) -> io::Result<()> {
    let Ok(request) = request::read_head(&mut s, deadline) else {
        return Ok(());
    };
    let host = request.header("host").unwrap_or_default().trim();
    let plain_host = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !plain_host {
        return respond(
            &mut s,
            "400 Bad Request",
            "text/plain",
            b"this port speaks HTTPS: open https://SERVER:PORT/\n",
        );
    }
    let body = b"this port speaks HTTPS\n";
    write!(
        s,
        "HTTP/1.1 301 Moved Permanently\r\nLocation: https://{host}/\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    s.flush()
}

/// What answering a request needs besides the connection.
struct Answering<'a> {
    frames: &'a LatestFrames,
    shutdown: &'a Shutdown,
    /// The MJPEG viewers' slots, shared fairly between addresses.
    viewers: &'a Arc<slots::Connections>,
    max_viewers: usize,
    /// How often an MJPEG viewer of a quiet stream is checked for having
    /// left.
    check_every: Duration,
    /// What a viewer or a download must take at least.
    min_pace: MinPace,
    /// Who may use the protected routes.
    auth: &'a auth::Auth,
    /// The browser's address (guesses are limited per address).
    ip: IpAddr,
    /// Whether the request came over HTTPS.
    secure: bool,
    /// Time a small request body (`POST /auth`) has to arrive.
    body_timeout: Duration,
    /// The certificate the page is served with (HTTPS), shown on it.
    fingerprint: Option<Fingerprint>,
    /// Chat over `/ws`: hands browsers to the transport ([`ws`]).
    adopter: Option<&'a lanlink_transport::Adopter>,
    /// The browser's address and port.
    peer: SocketAddr,
    /// The file service's share and inbox, for the file routes.
    files: files::Files<'a>,
    /// The browsers listening on `/audio`.
    audio: &'a AudioListeners,
    /// The names besides IP literals and `localhost` a server without a
    /// token answers to ([`host`]).
    host_names: &'a [String],
}

/// Who may have a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone who reaches the server.
    Open,
    /// With an access token, only a browser that logged in (`POST /auth`).
    Session,
}

/// How a route matches a (decoded) path.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Exact(&'static str),
    Prefix(&'static str),
}

/// The routes that need a session, the one place that decides it: the
/// share (listings, downloads, archives, uploads), the video (its state,
/// stream list, snapshots and MJPEG streams) and the audio. Video is the
/// server's like its files: with an access token, only a browser that
/// logged in sees the streams, their names or a frame. The first route
/// whose method (if any) and pattern match wins; other paths are open
/// (the page, its scripts, `/auth`, and `/ws`, where the transport asks
/// for the token in the lanlink handshake itself).
const ROUTES: &[(Option<&str>, Pattern, Access)] = &[
    // What the page needs to offer its upload form.
    (Some("GET"), Pattern::Exact("/upload/"), Access::Open),
    (None, Pattern::Prefix("/upload/"), Access::Session),
    (None, Pattern::Exact("/files"), Access::Session),
    (None, Pattern::Prefix("/files/"), Access::Session),
    (None, Pattern::Exact("/tar"), Access::Session),
    (None, Pattern::Prefix("/tar/"), Access::Session),
    (None, Pattern::Exact("/state"), Access::Session),
    (None, Pattern::Exact("/streams.json"), Access::Session),
    (None, Pattern::Prefix("/snapshot/"), Access::Session),
    (None, Pattern::Prefix("/stream/"), Access::Session),
    (None, Pattern::Exact("/audio"), Access::Session),
];

/// Who may have `path` by `method` (see [`ROUTES`]).
fn access(method: &str, path: &str) -> Access {
    ROUTES
        .iter()
        .find(|(m, pattern, _)| {
            m.is_none_or(|m| m == method)
                && match *pattern {
                    Pattern::Exact(p) => path == p,
                    Pattern::Prefix(p) => path.starts_with(p),
                }
        })
        .map_or(Access::Open, |&(_, _, access)| access)
}

/// Answers what was read of a request: the response, or the MJPEG stream
/// until the viewer leaves, the stream ends or the server stops.
fn answer(
    s: &mut impl Peer,
    request: Result<request::Request, HeadError>,
    cx: &Answering<'_>,
) -> io::Result<()> {
    let (frames, shutdown, viewers) = (cx.frames, cx.shutdown, cx.viewers);
    let request = match request {
        Ok(r) => r,
        Err(HeadError::Closed) => return Ok(()),
        Err(HeadError::Timeout) => {
            return respond(s, "408 Request Timeout", "text/plain", b"too slow\n")
        }
        Err(HeadError::TooLarge) => {
            let status = "431 Request Header Fields Too Large";
            return respond(s, status, "text/plain", b"request too large\n");
        }
        Err(HeadError::Malformed) => {
            return respond(s, "400 Bad Request", "text/plain", b"bad request\n")
        }
    };
    if !cx.auth.token_required() && !host::allowed(request.header("host"), cx.host_names) {
        tracing::info!(peer = %cx.peer, "HTTP request for another host name refused (DNS rebinding?)");
        return respond(
            s,
            "421 Misdirected Request",
            "text/plain",
            b"this server does not answer to that host name (see lanlink-server --http-host)\n",
        );
    }
    let path = page::percent_decode(&request.path);
    if path == "/auth" {
        return answer_auth(s, &request, cx);
    }
    if access(&request.method, &path) == Access::Session && !cx.auth.allows(&request) {
        respond(
            s,
            "403 Forbidden",
            "text/plain",
            b"log in with the server's access token first (POST /auth)\n",
        )?;
        // An upload's body is taken (up to a bound) so the browser reads
        // the answer instead of a reset.
        return files::drain_body(s, &request);
    }
    if let Some(answered) = files::route(s, &request, &path, cx) {
        return answered;
    }
    if let Some(answered) = audio::route(s, &request, &path, cx) {
        return answered;
    }
    if request.method != "GET" {
        return respond(s, "405 Method Not Allowed", "text/plain", b"GET only\n");
    }
    if path == "/ws" {
        let ws = ws::WsContext {
            adopter: cx.adopter,
            peer: cx.peer,
            secure: cx.secure,
            shutdown,
            // A browser logged in with `POST /auth` is not asked again.
            session_token: cx.auth.token().filter(|_| cx.auth.allows(&request)),
        };
        return ws::answer_ws(s, &request, &ws);
    }
    if let Some(script) = match path.as_str() {
        "/lanlink.js" => Some(ws::LANLINK_JS),
        "/chat.js" => Some(ws::CHAT_JS),
        "/receive.js" => Some(ws::RECEIVE_JS),
        _ => None,
    } {
        let kind = "text/javascript; charset=utf-8";
        return respond(s, "200 OK", kind, script.as_bytes());
    }
    // The page shows the streams only to whom may watch them.
    let may_watch = cx.auth.allows(&request);
    if path == "/" || path == "/index.html" {
        let page = page::page(frames, may_watch, cx.fingerprint);
        return respond_page(s, request.header("host"), page.as_bytes());
    }
    if path == "/state" {
        return respond(
            s,
            "200 OK",
            "application/json",
            page::state_json(frames).as_bytes(),
        );
    }
    if path == "/info" {
        return respond(
            s,
            "200 OK",
            "application/json",
            page::info_json(cx.fingerprint).as_bytes(),
        );
    }
    if path == "/page.js" {
        return respond(
            s,
            "200 OK",
            "text/javascript; charset=utf-8",
            page::SCRIPT.as_bytes(),
        );
    }
    if path == "/streams.json" {
        return respond(
            s,
            "200 OK",
            "application/json",
            page::streams_json(frames).as_bytes(),
        );
    }
    if let Some(name) = path.strip_prefix("/snapshot/") {
        // `NAME.jpg` downloads NAME's frame (unless a stream is called
        // that); `NAME` shows it.
        if let Some(l) = frames.get(name) {
            return respond(s, "200 OK", "image/jpeg", &l.jpeg);
        }
        let Some(stem) = name.strip_suffix(".jpg") else {
            return respond(s, "404 Not Found", "text/plain", b"no such stream\n");
        };
        return match frames.get(stem) {
            Some(l) => respond_with(
                s,
                "200 OK",
                "image/jpeg",
                &format!(
                    "Content-Disposition: {}\r\n",
                    files::disposition(&format!("{stem}.jpg"))
                ),
                &l.jpeg,
            ),
            None => respond(s, "404 Not Found", "text/plain", b"no such stream\n"),
        };
    }
    if let Some(name) = path.strip_prefix("/stream/") {
        if !frames.is_live(name) {
            return respond(s, "404 Not Found", "text/plain", b"no such stream\n");
        }
        // A viewer slower than the stream keeps accepting writes, so it
        // holds its slot until it leaves: the slots are shared fairly, and
        // a hoarding address's oldest viewer makes way for a newcomer.
        let Ok(slot) = viewers.admit_handle(cx.ip, s.socket(), cx.max_viewers, cx.max_viewers)
        else {
            return respond(
                s,
                "503 Service Unavailable",
                "text/plain",
                b"too many viewers\n",
            );
        };
        let watching = frames.watch(name);
        let result = stream_mjpeg(s, frames, name, shutdown, cx.check_every, cx.min_pace);
        drop(watching);
        drop(slot);
        return result;
    }
    respond(s, "404 Not Found", "text/plain", b"not found\n")
}

/// `GET /auth` (the state) and `POST /auth` (a login).
fn answer_auth(
    s: &mut impl Peer,
    request: &request::Request,
    cx: &Answering<'_>,
) -> io::Result<()> {
    match request.method.as_str() {
        "GET" => respond(
            s,
            "200 OK",
            "application/json",
            cx.auth.status_json(request).as_bytes(),
        ),
        "POST" => {
            let Some(body) = read_small_body(s, request, auth::MAX_BODY, cx.body_timeout)? else {
                return respond(
                    s,
                    "413 Content Too Large",
                    "text/plain",
                    b"body too large\n",
                );
            };
            match cx.auth.login(cx.ip, &body, cx.secure, Instant::now()) {
                auth::Login::Granted(cookie) => write!(
                    s,
                    "HTTP/1.1 204 No Content\r\nSet-Cookie: {cookie}\r\nCache-Control: no-store\r\n\
                     Connection: close\r\n\r\n"
                ),
                auth::Login::NotNeeded => write!(
                    s,
                    "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                ),
                auth::Login::Wrong => respond(s, "403 Forbidden", "text/plain", b"wrong token\n"),
                auth::Login::Limited => respond(
                    s,
                    "429 Too Many Requests",
                    "text/plain",
                    b"too many wrong tokens; wait a minute\n",
                ),
                auth::Login::Unavailable => respond(
                    s,
                    "503 Service Unavailable",
                    "text/plain",
                    b"no randomness\n",
                ),
            }
        }
        _ => respond(s, "405 Method Not Allowed", "text/plain", b"GET or POST\n"),
    }
}

/// Reads a request body of at most `max` bytes (its `Content-Length`,
/// zero without one) within `timeout`: `None` when it is larger.
fn read_small_body(
    s: &mut impl Peer,
    request: &request::Request,
    max: usize,
    timeout: Duration,
) -> io::Result<Option<Vec<u8>>> {
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= max => n,
            _ => return Ok(None),
        },
    };
    let mut body = request.rest.clone();
    body.truncate(length);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1024];
    while body.len() < length {
        if Instant::now() >= deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let room = (length - body.len()).min(buf.len());
        match s.read(buf.get_mut(..room).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => body.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(body))
}

/// A multipart boundary nobody can guess: a publisher cannot end a part
/// early from inside a frame.
fn random_boundary() -> String {
    let mut bytes = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        // Not expected on any supported system; the time still varies.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("lanlink{hex}")
}

fn stream_mjpeg(
    s: &mut impl Peer,
    frames: &LatestFrames,
    name: &str,
    shutdown: &Shutdown,
    check_every: Duration,
    min_pace: MinPace,
) -> io::Result<()> {
    s.limit_send_buffer(VIEWER_SEND_BUFFER);
    let mut pace = pace::Pace::new(min_pace);
    let boundary = random_boundary();
    let delimiter = format!("--{boundary}");
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={boundary}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    )?;
    let mut last = None;
    let mut checked = Instant::now();
    while !shutdown.is_triggered() {
        if let Some(frame) = frames.wait_newer(name, last, check_every) {
            last = Some(frame.seq);
            // Stored frames are JPEG images; one that happens to hold the
            // delimiter is skipped rather than allowed to end its part.
            if memchr::memmem::find(&frame.jpeg, delimiter.as_bytes()).is_none() {
                let head = format!(
                    "{delimiter}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    frame.jpeg.len()
                );
                pace.write_all(s, head.as_bytes())?;
                pace.write_all(s, &frame.jpeg)?;
                pace.write_all(s, b"\r\n")?;
            }
        } else if !frames.is_live(name) {
            return Ok(()); // the stream ended
        }
        if checked.elapsed() >= check_every {
            checked = Instant::now();
            if s.left() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// True if the viewer closed its side (or the connection failed). Whatever
/// it sent after its request is read and ignored; a viewer that keeps the
/// socket open but stops reading is caught by the write timeout instead.
fn peer_left(s: &mut TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut scratch = [0u8; 1024];
    let mut left = false;
    // A bounded drain: a viewer sending without end is not worth more.
    for _ in 0..16 {
        match s.read(&mut scratch) {
            Ok(0) => {
                left = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                left = true;
                break;
            }
        }
    }
    s.set_nonblocking(false).is_err() || left
}

/// The page's Content-Security-Policy: it shows peers' stream names
/// (escaped) and needs nothing but its own images, script, `/state` and
/// inline style.
pub(crate) const PAGE_POLICY: &str =
    "default-src 'none'; img-src 'self'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'";

/// The page's policy for a page asked for as `host`: [`PAGE_POLICY`] with
/// its WebSocket origins named in `connect-src` (`ws://HOST wss://HOST`),
/// which older Safari does not count as `'self'`. A `Host` with anything
/// but letters, digits and `.-:[]` (or over 255 bytes) gets the plain
/// policy: nothing else a peer chose goes into the header.
pub(crate) fn page_policy(host: Option<&str>) -> String {
    let safe = |h: &str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    match host.map(str::trim) {
        Some(h) if safe(h) => PAGE_POLICY.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' ws://{h} wss://{h}"),
        ),
        _ => PAGE_POLICY.to_owned(),
    }
}

/// Writes the page, with [`page_policy`] for `host`.
fn respond_page(s: &mut impl Write, host: Option<&str>, body: &[u8]) -> io::Result<()> {
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        page_policy(host)
    )?;
    s.write_all(body)?;
    s.flush()
}

/// Writes a whole response. Only fixed strings go into the headers, never
/// anything a peer chose.
fn respond(s: &mut impl Write, status: &str, kind: &str, body: &[u8]) -> io::Result<()> {
    respond_with(s, status, kind, "", body)
}

/// [`respond`] with `extra` header lines (each ending in CRLF) that hold
/// nothing a peer chose unescaped.
fn respond_with(
    s: &mut impl Write,
    status: &str,
    kind: &str,
    extra: &str,
    body: &[u8],
) -> io::Result<()> {
    let policy = if kind.starts_with("text/html") {
        format!("Content-Security-Policy: {PAGE_POLICY}\r\n")
    } else {
        String::new()
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n{policy}{extra}Connection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    s.flush()
}
