//! `GET /ws`: a browser becomes a lanlink client over a WebSocket.
//!
//! The browser speaks the lanlink wire format itself (`assets/lanlink.js`):
//! every WebSocket *binary* message carries bytes of the frame stream,
//! split anywhere. This side does not decode them. It bridges the
//! WebSocket to one end of a loopback TCP pair whose other end the
//! transport server adopts ([`lanlink_transport::Adopter`]) with the
//! browser's own address, so everything a native client meets applies to
//! the browser unchanged: bans, connection attempts and connections per
//! address, the client limit, the handshake deadline and token, keepalive
//! and idle timeouts, the too-slow queue limit, and in the hub the name
//! rules, rate limits and sanitising.
//!
//! # Limits
//! * The `Origin` must be the page's own (`http://HOST` or `https://HOST`
//!   with the `Host` the request was sent to), so another site's page
//!   cannot use a visitor's browser as a client; others get `403`.
//! * A WebSocket message or frame is at most [`MAX_MESSAGE`]; text
//!   messages are not part of the protocol and end the connection.
//! * Bytes from the transport are read in chunks of at most [`CHUNK`] into
//!   a queue of [`QUEUE_CHUNKS`]; while the browser does not take them the
//!   queue stays full, the transport's own queue grows, and its too-slow
//!   limit cuts the connection as for any slow reader.
//! * The WebSocket holds its HTTP connection slot (in all and per address)
//!   for its whole life, besides the transport's slots.
//!
//! Each browser costs two threads: the HTTP connection's, which reads the
//! WebSocket (polling every [`POLL`] so that it can also send), and one
//! that reads the loopback pair.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use lanlink_transport::{Adopter, Shutdown};
use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::request::Request;
use super::{respond, Peer};

/// The lanlink wire format in JavaScript, and a session over `/ws`
/// (served as `/lanlink.js`).
pub(super) const LANLINK_JS: &str = include_str!("assets/lanlink.js");
/// The page's chat panel (served as `/chat.js`).
pub(super) const CHAT_JS: &str = include_str!("assets/chat.js");
/// Files other users send to the page's chat user: offers, BLAKE3
/// verification, downloads (served as `/receive.js`).
pub(super) const RECEIVE_JS: &str = include_str!("assets/receive.js");
/// The chat panel's block in the page: its form, log, style and scripts.
pub(super) const CHAT_HTML: &str = include_str!("assets/chat.html");

/// The largest WebSocket message (and frame) accepted from a browser.
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// The largest piece of the frame stream sent to the browser at once.
pub const CHUNK: usize = 64 * 1024;
/// Chunks waiting for the browser at most.
pub const QUEUE_CHUNKS: usize = 8;
/// How long a read of the WebSocket waits before the bridge looks for
/// bytes to send.
pub const POLL: Duration = Duration::from_millis(20);
/// How long a write of the browser's bytes to the transport may take.
const PAIR_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the bridge keeps going once the server shuts down (the
/// transport's `Goodbye` comes through in that time).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the WebSocket route needs from the HTTP server.
pub(super) struct WsContext<'a> {
    /// Hands the loopback end to the transport; `None`: no chat here.
    pub(super) adopter: Option<&'a Adopter>,
    /// The browser's address, as the transport will see it.
    pub(super) peer: SocketAddr,
    /// Whether the page came over HTTPS (the expected origin's scheme).
    pub(super) secure: bool,
    /// The HTTP server's shutdown.
    pub(super) shutdown: &'a Shutdown,
    /// The server's token, when the upgrade request carried a live session
    /// cookie (`POST /auth`): put into the browser's `Hello` if it has
    /// none, so a logged-in page is not asked for the token again. It
    /// never goes to the browser.
    pub(super) session_token: Option<&'a str>,
}

/// Answers `GET /ws`: refuses a bad or foreign upgrade, else bridges the
/// WebSocket to the transport until either side ends.
pub(super) fn answer_ws(
    s: &mut impl Peer,
    request: &Request,
    cx: &WsContext<'_>,
) -> io::Result<()> {
    let Some(key) = upgrade_key(request) else {
        return respond(
            s,
            "400 Bad Request",
            "text/plain",
            b"a WebSocket upgrade (version 13) is expected here\n",
        );
    };
    if !origin_allowed(request, cx.secure) {
        tracing::info!(peer = %cx.peer, "WebSocket from a foreign origin refused");
        return respond(s, "403 Forbidden", "text/plain", b"foreign origin\n");
    }
    let Some(adopter) = cx.adopter else {
        return respond(
            s,
            "503 Service Unavailable",
            "text/plain",
            b"no chat on this server\n",
        );
    };
    let near = match loopback_pair().and_then(|(near, far)| {
        adopter
            .adopt(far, cx.peer)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(near)
    }) {
        Ok(near) => near,
        Err(e) => {
            tracing::warn!(peer = %cx.peer, "WebSocket not bridged: {e}");
            return respond(
                s,
                "503 Service Unavailable",
                "text/plain",
                b"the server cannot take the connection\n",
            );
        }
    };
    accept_upgrade(s, key)?;
    let result = bridge(
        s,
        request.rest.clone(),
        &near,
        cx.shutdown,
        cx.session_token,
    );
    // Whatever ended the bridge, the transport sees the connection end.
    let _ = near.shutdown(std::net::Shutdown::Both);
    result
}

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request (a `GET` with
/// `Upgrade: websocket`, `Connection: upgrade`, version 13, and a key of
/// 1 to 64 bytes), or `None` if `request` is not one.
pub(super) fn upgrade_key(request: &Request) -> Option<&str> {
    let has_token = |name: &str, token: &str| {
        request
            .header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let upgrade = request.method == "GET"
        && has_token("upgrade", "websocket")
        && has_token("connection", "upgrade")
        && request.header("sec-websocket-version").map(str::trim) == Some("13");
    request
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|k| upgrade && !k.is_empty() && k.len() <= 64)
}

/// Accepts a WebSocket upgrade: writes the `101 Switching Protocols` reply
/// for the request's `key` (from [`upgrade_key`]). The WebSocket starts
/// after it.
pub(super) fn accept_upgrade(s: &mut impl Write, key: &str) -> io::Result<()> {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    s.flush()
}

/// True if the request's `Origin` is the page's own: the scheme it was
/// served with and the `Host` it was sent to (the check of `/ws` and
/// `/audio`, against cross-site WebSocket hijacking). Browsers always send
/// `Origin` with a WebSocket; a request without one is refused too.
pub(super) fn origin_allowed(request: &Request, secure: bool) -> bool {
    let (Some(origin), Some(host)) = (request.header("origin"), request.header("host")) else {
        return false;
    };
    let host = host.trim();
    let scheme = if secure { "https" } else { "http" };
    !host.is_empty()
        && origin
            .trim()
            .eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

/// A connected pair of loopback sockets. The listener lives only for the
/// one accept, and the accepted socket must be our own connection (a
/// local program racing to the port gets nothing).
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let near = TcpStream::connect(listener.local_addr()?)?;
    let (far, from) = listener.accept()?;
    if from != near.local_addr()? {
        return Err(io::Error::other(
            "a stranger connected to the loopback pair",
        ));
    }
    let _ = near.set_nodelay(true);
    Ok((near, far))
}

/// Copies WebSocket binary messages to `near` and `near`'s bytes to
/// WebSocket binary messages until either side ends.
fn bridge(
    s: &mut impl Peer,
    already_read: Vec<u8>,
    near: &TcpStream,
    shutdown: &Shutdown,
    session_token: Option<&str>,
) -> io::Result<()> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .max_write_buffer_size(4 * CHUNK + MAX_MESSAGE);
    s.set_read_timeout(POLL)?;
    let mut ws = WebSocket::from_partially_read(s, already_read, Role::Server, Some(config));

    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE_CHUNKS);
    let mut from_server = near.try_clone()?;
    let reader = lanlink_transport::spawn_named("ws-pair", move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf.get(..n).unwrap_or_default().to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    // The transport reads all the time; a write that cannot finish in
    // this long means it is gone or wedged, and ends the bridge rather
    // than this thread.
    near.set_write_timeout(Some(PAIR_WRITE_TIMEOUT))?;
    let mut to_server = near;
    // The browser's bytes until its first frame is whole, while a token
    // is to be put into its Hello.
    let mut first: Option<(Vec<u8>, &str)> = session_token.map(|t| (Vec::new(), t));
    let mut stop_by: Option<Instant> = None;
    let outcome = loop {
        if shutdown.is_triggered() {
            let by = *stop_by.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
            if Instant::now() >= by {
                break Ok(());
            }
        }
        match ws.read() {
            Ok(Message::Binary(bytes)) => {
                let out = match &mut first {
                    None => bytes.to_vec(),
                    Some((held, token)) => {
                        held.extend_from_slice(&bytes);
                        match with_token(held, token) {
                            None => continue,
                            Some(out) => {
                                first = None;
                                out
                            }
                        }
                    }
                };
                if let Err(e) = to_server.write_all(&out) {
                    break Err(e);
                }
            }
            Ok(Message::Text(_)) => {
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Unsupported,
                    reason: "binary lanlink frames only".into(),
                }));
                let _ = ws.flush();
                break Ok(());
            }
            // Pings are answered by tungstenite on the next write or flush.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                break Ok(());
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                break Ok(())
            }
            Err(e) => break Err(io::Error::other(e.to_string())),
        }
        // Whatever the transport has for the browser, without waiting.
        let mut ended = false;
        loop {
            match rx.try_recv() {
                Ok(chunk) => {
                    if let Err(e) = ws.write(Message::Binary(chunk.into())) {
                        tracing::debug!("WebSocket write: {e}");
                        ended = true;
                        break;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The transport closed (a Goodbye, a refusal, a cut):
                    // what it sent is queued; say goodbye after it.
                    let _ = ws.close(None);
                    ended = true;
                    break;
                }
            }
        }
        // The socket's write timeout turns a browser that stopped reading
        // into an error here.
        if let Err(e) = ws.flush() {
            tracing::debug!("WebSocket flush: {e}");
            ended = true;
        }
        if ended {
            // Give the close handshake a moment, bounded.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until && ws.can_read() {
                match ws.read() {
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                    Ok(_) => {}
                }
                let _ = ws.flush();
            }
            break Ok(());
        }
    };
    let _ = to_server.shutdown(std::net::Shutdown::Both);
    drop(rx);
    let _ = reader.join();
    outcome
}

/// The largest first frame held back to put the token in; a longer one
/// goes to the transport as it is (a `Hello` is far smaller).
const MAX_HELLO: u32 = 4096;

/// `held`, the browser's first bytes, with `token` put into its `Hello` if
/// that has none; `None` while the first frame is not whole yet. Anything
/// else (another kind, a token already given, bytes that are not a valid
/// frame) passes unchanged, for the transport to judge.
fn with_token(held: &[u8], token: &str) -> Option<Vec<u8>> {
    use lanlink_proto::{Frame, Header, Message, HEADER_LEN};
    let header = match Header::decode(held, MAX_HELLO) {
        Ok(None) => return None,
        Ok(Some(h)) => h,
        Err(_) => return Some(held.to_vec()),
    };
    let end = HEADER_LEN + header.len as usize;
    let (frame, rest) = (held.get(..end)?, held.get(end..).unwrap_or_default());
    let payload = bytes::Bytes::copy_from_slice(frame.get(HEADER_LEN..).unwrap_or_default());
    let rewritten = match Frame::decode(header, &payload) {
        Ok(Frame {
            stream,
            message: Message::Hello(mut hello),
        }) if hello.token.is_none() => {
            hello.token = Some(token.to_owned());
            Frame::new(stream, hello).to_bytes().ok()
        }
        _ => None,
    };
    let mut out = rewritten.map_or_else(|| frame.to_vec(), |b| b.to_vec());
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_without_a_token_gets_the_servers() {
        use lanlink_proto::control::Hello;
        use lanlink_proto::{Capabilities, Frame};
        let hello = |token: Option<&str>| {
            Frame::control(Hello {
                name: "ann".into(),
                token: token.map(str::to_owned),
                capabilities: Capabilities::CHAT,
            })
            .to_bytes()
            .unwrap()
            .to_vec()
        };
        let bare = hello(None);
        let mut sent = bare.clone();
        sent.extend_from_slice(b"LL more");
        for cut in 0..bare.len() {
            assert_eq!(with_token(&sent[..cut], "s3cret"), None, "{cut}");
        }
        let mut want = hello(Some("s3cret"));
        want.extend_from_slice(b"LL more");
        assert_eq!(with_token(&sent, "s3cret"), Some(want));
        // A token the browser gave stays its own; other bytes pass as they are.
        let own = hello(Some("typed"));
        assert_eq!(with_token(&own, "s3cret"), Some(own.clone()));
        let ping = Frame::control(lanlink_proto::control::Goodbye {
            reason: String::new(),
        })
        .to_bytes()
        .unwrap()
        .to_vec();
        assert_eq!(with_token(&ping, "s3cret"), Some(ping.clone()));
        assert_eq!(
            with_token(b"GET / HTTP/1.1\r\n\r\n", "s"),
            Some(b"GET / HTTP/1.1\r\n\r\n".to_vec())
        );
    }

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/ws".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            rest: Vec::new(),
        }
    }

    #[test]
    fn only_the_pages_own_origin_is_allowed() {
        let own = request(&[
            ("host", "10.0.0.2:7879"),
            ("origin", "http://10.0.0.2:7879"),
        ]);
        assert!(origin_allowed(&own, false));
        assert!(!origin_allowed(&own, true), "the scheme must match too");
        let tls = request(&[("host", "lan:7879"), ("origin", "https://lan:7879")]);
        assert!(origin_allowed(&tls, true));
        for (host, origin) in [
            ("10.0.0.2:7879", "http://evil.example"),
            ("10.0.0.2:7879", "http://10.0.0.2:7879.evil.example"),
            ("10.0.0.2:7879", "http://10.0.0.2"),
            ("10.0.0.2:7879", "null"),
        ] {
            assert!(
                !origin_allowed(&request(&[("host", host), ("origin", origin)]), false),
                "{origin}"
            );
        }
        assert!(!origin_allowed(&request(&[("host", "a:1")]), false));
        assert!(!origin_allowed(
            &request(&[("origin", "http://a:1")]),
            false
        ));
    }
}
