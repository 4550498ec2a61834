//! How an attacker reaches the server: welcomed sessions with raw frame
//! access, raw TLS and raw TCP (for what no client would send), and plain
//! HTTP to the browser server; every socket bound to a loopback address of
//! the attacker's choosing (`127.0.0.N`), so that the server's per-address
//! limits see several machines.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanlink_client::{ClientError, Session};
use lanlink_proto::{Capabilities, Frame, FrameDecoder, Message};
use lanlink_transport::client::connect_any;
use lanlink_transport::{Client, ClientConfig, ClientTls, Fingerprint};

/// The server under attack.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its lanlink port.
    pub addr: SocketAddr,
    /// Its browser (HTTP) port.
    pub http: SocketAddr,
    /// Its certificate's fingerprint (attackers pin it: they are not what
    /// is under test at the TLS layer).
    pub fingerprint: Fingerprint,
    /// The operator's admin token (the attacker does not know it; the
    /// admin class checks that even sending it after wrong ones fails).
    pub admin_token: String,
}

/// `127.0.0.n`: every attacker address is one of these (the honest
/// clients use 127.0.0.1).
pub fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// What one class of attack did, counted as it goes.
#[derive(Debug, Default)]
pub struct Tally {
    /// Hostile requests, frames, connections or packets sent.
    pub tried: AtomicU64,
    /// Answers that refused one (an error, a `Refuse`, a 4xx/5xx, a close).
    pub refused: AtomicU64,
    /// Things an attacker achieved that it never may (a kick, a look-alike
    /// name accepted, a password guessed, a server that stopped answering).
    pub breaches: Mutex<Vec<String>>,
    /// Things worth reporting that are not failures.
    pub notes: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts `n` attempts.
    pub fn tried(&self, n: u64) {
        self.tried.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` refusals.
    pub fn refused(&self, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a breach (the first 20 are kept).
    pub fn breach(&self, what: impl Into<String>) {
        let mut b = self.breaches.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() < 20 {
            b.push(what.into());
        }
    }

    /// Adds what another tally (a helper thread's) counted.
    pub fn absorb(&self, other: Tally) {
        self.tried(other.tried.into_inner());
        self.refused(other.refused.into_inner());
        for b in other.breaches.into_inner().unwrap_or_default() {
            self.breach(b);
        }
        for n in other.notes.into_inner().unwrap_or_default() {
            self.note(n);
        }
    }

    /// Records a note (the first 20 are kept).
    pub fn note(&self, what: impl Into<String>) {
        let mut n = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if n.len() < 20 {
            n.push(what.into());
        }
    }
}

/// A session's settings from `from`: short timeouts, and a small event
/// queue where the attacker means not to read (the transport's reader then
/// stops reading the socket, and the server sees a peer that never reads).
fn client_config(from: IpAddr, event_capacity: usize) -> ClientConfig {
    ClientConfig {
        bind: Some(from),
        connect_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(5),
        event_capacity,
        ..ClientConfig::default()
    }
}

/// A welcomed connection from `from` as `name` with `caps`: frames in and
/// out, nothing routed.
pub fn session(
    t: &Target,
    from: IpAddr,
    name: &str,
    caps: Capabilities,
) -> Result<Client, ClientError> {
    session_with(t, from, name, caps, 4096)
}

/// [`session`] with `event_capacity` frames buffered before the reader
/// waits for the attacker (1: a peer that stops reading at once).
pub fn session_with(
    t: &Target,
    from: IpAddr,
    name: &str,
    caps: Capabilities,
    event_capacity: usize,
) -> Result<Client, ClientError> {
    Session::builder(t.addr)
        .name(name)
        .capabilities(caps)
        .server_fingerprint(t.fingerprint)
        .transport_config(client_config(from, event_capacity))
        .connect_transport()
        .map(|(client, _)| client)
}

/// Every frame that arrives on `c` within `quiet` of the last one (at most
/// `max`, and never longer than `patience` in all).
pub fn drain(c: &Client, quiet: Duration, patience: Duration, max: usize) -> Vec<Frame> {
    let deadline = Instant::now() + patience;
    let mut frames = Vec::new();
    while frames.len() < max && Instant::now() < deadline {
        match c.recv_timeout(quiet) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) | Err(_) => break,
        }
    }
    frames
}

/// Counts the refusals among `frames`: errors, negative admin replies,
/// file rejects and cancels.
pub fn refusals(frames: &[Frame]) -> u64 {
    frames
        .iter()
        .filter(|f| {
            matches!(
                &f.message,
                Message::Error(_)
                    | Message::Refuse(_)
                    | Message::FileReject(_)
                    | Message::FileCancel(_)
            ) || matches!(&f.message, Message::AdminReply(r) if !r.ok)
        })
        .count() as u64
}

/// A raw TCP connection from `from` to `to`.
pub fn tcp(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = connect_any(&to.to_string(), Some(from), Duration::from_secs(3))
        .map_err(std::io::Error::other)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    Ok(s)
}

/// A TLS session to the server that the attacker writes raw bytes into:
/// frames no client would send.
pub struct RawTls {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    decoder: FrameDecoder,
}

impl RawTls {
    /// Connects from `from` and completes the TLS handshake (nothing sent
    /// inside it yet).
    pub fn connect(t: &Target, from: IpAddr) -> std::io::Result<RawTls> {
        let mut sock = tcp(from, t.addr)?;
        let pin = ClientTls {
            pin: Some(t.fingerprint),
        };
        let mut conn = lanlink_transport::tls::client_connection(&pin, Arc::new(Mutex::new(None)))
            .map_err(std::io::Error::other)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            match conn.complete_io(&mut sock) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(RawTls {
            stream: rustls::StreamOwned::new(conn, sock),
            decoder: FrameDecoder::new(),
        })
    }

    /// Writes `bytes` inside TLS.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Frames the server sent within `patience`; `closed` once it closed
    /// the connection (or broke the stream).
    pub fn read(&mut self, patience: Duration) -> (Vec<Frame>, bool) {
        let deadline = Instant::now() + patience;
        let mut frames = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            while let Ok(Some(f)) = self.decoder.decode() {
                frames.push(f);
            }
            if Instant::now() >= deadline {
                return (frames, false);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return (frames, true),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (frames, true),
            }
        }
    }
}

/// What an HTTP request got back.
#[derive(Debug, Default)]
pub struct HttpReply {
    /// The status code (0: none came).
    pub status: u16,
    /// The body bytes read (at most the limit asked for).
    pub body: Vec<u8>,
}

/// Sends `request` from `from` and reads the answer: its head, and up to
/// `limit` bytes of body within `patience`.
pub fn http(
    from: IpAddr,
    to: SocketAddr,
    request: &[u8],
    limit: usize,
    patience: Duration,
) -> std::io::Result<HttpReply> {
    let mut s = tcp(from, to)?;
    s.write_all(request)?;
    read_http(&mut s, limit, patience)
}

/// Reads an HTTP answer from `s` (see [`http`]).
pub fn read_http(
    s: &mut TcpStream,
    limit: usize,
    patience: Duration,
) -> std::io::Result<HttpReply> {
    let deadline = Instant::now() + patience;
    let mut all = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut head_end = None;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if all.is_empty() => return Err(e),
            Err(_) => break,
        }
        if head_end.is_none() {
            head_end = memchr_find(&all, b"\r\n\r\n").map(|i| i + 4);
        }
        if head_end.is_some_and(|h| all.len() - h >= limit) {
            break;
        }
    }
    let h = head_end.unwrap_or(all.len());
    let head = String::from_utf8_lossy(&all[..h]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = all.split_off(h);
    body.truncate(limit);
    Ok(HttpReply { status, body })
}

/// Where `needle` first occurs in `hay`.
pub fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sleeps until `until` or for `d`, whichever is sooner; false once
/// `until` has passed.
pub fn nap(d: Duration, until: Instant) -> bool {
    let left = until.saturating_duration_since(Instant::now());
    std::thread::sleep(d.min(left));
    Instant::now() < until
}
