//! The client side: connect with a timeout, handshake, then a [`Client`]
//! whose [`ConnHandle`] sends from any thread while frames arrive on a
//! channel.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use lanlink_proto::{control, BufferPool, Frame, FrameDecoder, Message, ProtoError, StreamId};

use crate::conn::{new_connection, run_writer, CloseReason, ConnConfig, ConnHandle, Event, Reader};
use crate::handshake::{read_first_frame, FirstFrameError};
use crate::socket::{ReadState, Socket};
use crate::spawn::spawn_named;
use crate::tls::{client_handshake, ClientHandshake, ClientTls, Fingerprint};
use crate::{ConnId, Shutdown, TransportError};

/// Idle large-frame buffers a client connection keeps (at most 1 MiB
/// each): enough to cover a download's chunks between the reader and
/// whoever writes them out.
const CLIENT_POOLED: usize = 16;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Settings of the established connection.
    pub conn: ConnConfig,
    /// How long to try to establish the TCP connection.
    pub connect_timeout: Duration,
    /// How long to wait for the server's `Welcome`.
    pub handshake_timeout: Duration,
    /// Frames buffered for the application before the reader waits for it
    /// (and, through TCP, the server waits for us).
    pub event_capacity: usize,
    /// `Some` speaks TLS and checks the server's certificate as it says;
    /// `None` speaks plain lanlink (only to servers run without TLS).
    pub tls: Option<ClientTls>,
    /// The local address to connect from (`None`: whatever the system
    /// picks). Tests and the attack run use `127.0.0.N` to look like
    /// several machines to per-address limits.
    pub bind: Option<IpAddr>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            conn: ConnConfig {
                block_when_full: true,
                ..ConnConfig::default()
            },
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            event_capacity: 4096,
            tls: None,
            bind: None,
        }
    }
}

/// A connected, welcomed client.
///
/// Dropping it closes the connection gracefully and joins its threads.
pub struct Client {
    handle: ConnHandle,
    events: Receiver<Event>,
    welcome: control::Welcome,
    threads: Vec<JoinHandle<()>>,
    shutdown: Shutdown,
    fingerprint: Option<Fingerprint>,
    next_stream: AtomicU32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.handle.peer())
            .field("name", &self.welcome.name)
            .finish()
    }
}

impl Client {
    /// Connects to `addr` (`host:port`), sends `hello` and waits for the
    /// server's answer.
    ///
    /// A refusal comes back as [`TransportError::Refused`] with the server's
    /// reason; a server of another protocol version as
    /// [`TransportError::Protocol`] naming both versions. With TLS, a
    /// server whose certificate does not match the pin is refused before
    /// anything is sent to it ([`TransportError::FingerprintMismatch`]).
    pub fn connect(
        addr: &str,
        hello: control::Hello,
        config: ClientConfig,
    ) -> Result<Client, TransportError> {
        let mut tcp = connect_any(addr, config.bind, config.connect_timeout)?;
        let peer = tcp
            .peer_addr()
            .map_err(|e| TransportError::io(format!("connect to {addr}"), e))?;
        let _ = tcp.set_nodelay(true);
        let deadline = Instant::now() + config.handshake_timeout;
        // A download's chunks are assembled in buffers used again (see
        // `BufferPool`): a fresh allocation per chunk cost a page fault
        // per 4 KiB received.
        let mut decoder = FrameDecoder::with_max_payload(config.conn.max_payload)
            .with_pool(BufferPool::new(CLIENT_POOLED));

        let (stream, fingerprint, mut state) = match &config.tls {
            None => (Socket::plain(tcp), None, ReadState::new()),
            Some(tls) => match client_handshake(&mut tcp, peer, tls, deadline)? {
                ClientHandshake::Done(conn, fingerprint, leftover) => (
                    Socket::tls(tcp, rustls::Connection::Client(*conn)),
                    Some(fingerprint),
                    ReadState::with_pending(leftover),
                ),
                ClientHandshake::PlainAnswer(bytes) => {
                    // Plain lanlink in answer to our TLS hello: a plain
                    // server's refusal, read as such below. Nothing else
                    // is accepted from it (see the match).
                    decoder.push(&bytes);
                    (Socket::plain(tcp), None, ReadState::new())
                }
            },
        };
        // Asked for TLS, answered in plain: only a refusal may come of it.
        // Anything else (a plain Welcome) would be a downgrade to plain text
        // by whoever sits in between, pin or no pin.
        let plain_answer = config.tls.is_some() && fingerprint.is_none();
        if !plain_answer {
            let hello_bytes = Frame::control(hello).to_bytes()?;
            stream
                .write_all(&hello_bytes, &mut Vec::new())
                .map_err(|e| TransportError::io(format!("send hello to {peer}"), e))?;
        }

        let first = read_first_frame(&stream, &mut state, &mut decoder, deadline, None);
        if plain_answer {
            if let Ok(f) = &first {
                if !matches!(f.message, Message::Refuse(_) | Message::Error(_)) {
                    return Err(TransportError::Downgrade {
                        peer,
                        kind: f.kind(),
                    });
                }
            }
        }
        let welcome = match first {
            Ok(Frame {
                message: Message::Welcome(w),
                ..
            }) => w,
            Ok(Frame {
                message: Message::Refuse(r),
                ..
            }) => {
                return Err(TransportError::Refused {
                    code: r.code,
                    reason: r.reason,
                })
            }
            Ok(Frame {
                message: Message::Error(e),
                ..
            }) => {
                return Err(TransportError::Refused {
                    code: e.code,
                    reason: e.message,
                })
            }
            Ok(other) => {
                return Err(TransportError::Unexpected {
                    peer,
                    kind: other.kind(),
                    during: "handshake",
                })
            }
            Err(FirstFrameError::Timeout) => {
                return Err(TransportError::HandshakeTimeout {
                    peer,
                    secs: config.handshake_timeout.as_secs_f64(),
                })
            }
            Err(FirstFrameError::Closed) => {
                return Err(TransportError::ClosedDuringHandshake { peer })
            }
            Err(FirstFrameError::Malformed(source)) => {
                return Err(TransportError::Protocol { peer, source });
            }
            Err(FirstFrameError::Io(e)) => {
                return Err(TransportError::io(format!("handshake with {peer}"), e))
            }
        };
        let (handle, queues, link) = new_connection(ConnId(0), peer, stream, &config.conn, None);
        let (events_tx, events) = crossbeam_channel::bounded(config.event_capacity.max(1));
        let shutdown = Shutdown::new();
        let writer = {
            let handle = handle.clone();
            spawn_named("lanlink-writer", move || run_writer(handle, queues))
        };
        let reader = Reader {
            handle: handle.clone(),
            decoder,
            events: events_tx,
            config: config.conn.clone(),
            shutdown: shutdown.clone(),
            writer: link,
            read_state: state,
            last_error: None,
            queued: crate::QueuedBytes::new(crate::conn::EVENT_BYTES),
        };
        let reader = spawn_named("lanlink-reader", move || reader.run());
        Ok(Client {
            handle,
            events,
            welcome,
            threads: vec![reader, writer],
            shutdown,
            fingerprint,
            next_stream: AtomicU32::new(1),
        })
    }

    /// The fingerprint of the certificate the server presented (TLS only):
    /// what an application pins on first use.
    pub fn server_fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// What the server said when it let us in (our final nickname, its
    /// limits, its message of the day).
    pub fn welcome(&self) -> &control::Welcome {
        &self.welcome
    }

    /// A stream id for a new request of this client: odd (the client's
    /// half of the id space), never 0, unique until the ids wrap around.
    pub fn open_stream(&self) -> StreamId {
        // Starts at 1 and steps by 2: odd, so never 0, even when it wraps.
        self.next_stream.fetch_add(2, Ordering::Relaxed)
    }

    /// A handle that sends on this connection from any thread.
    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }

    /// Queues a frame for sending.
    pub fn send(&self, frame: &Frame) -> Result<(), TransportError> {
        self.handle.send(frame)
    }

    /// Incoming frames, then one [`Event::Closed`] when the connection ends.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Waits up to `timeout` for the next frame: `Ok(None)` if none came,
    /// an error once the connection has closed.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, TransportError> {
        match self.events.recv_timeout(timeout) {
            Ok(Event::Frame { frame, .. }) => Ok(Some(frame)),
            Ok(Event::Closed { reason, .. }) => Err(TransportError::Closed(reason)),
            Ok(Event::Hello { .. }) => Ok(None),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Ok(None),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(TransportError::Closed(
                CloseReason::Local("connection closed".into()),
            )),
        }
    }

    /// Sends a `Goodbye` after everything already queued, waits for the
    /// server to close its side (bounded by the configured linger), and
    /// joins the connection's threads.
    pub fn close(mut self, reason: &str) {
        self.finish(reason);
    }

    fn finish(&mut self, reason: &str) {
        self.handle.close(reason);
        // Frames that still arrive are delivered while someone reads the
        // event channel; once it is full, this lets the reader drop them.
        self.shutdown.trigger();
        // Nobody reads events after this: a reader blocked on a full
        // channel (an application that stopped reading) must not wait for
        // us while we wait for it.
        drop(std::mem::replace(
            &mut self.events,
            crossbeam_channel::never(),
        ));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.finish("client closed");
        }
    }
}

/// Connects to the first address of `addr` that answers, from `bind` if
/// given (addresses of the other family are skipped then).
pub fn connect_any(
    addr: &str,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, TransportError> {
    let failed = |source| TransportError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let addrs = addr.to_socket_addrs().map_err(failed)?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no addresses");
    for a in addrs {
        let tried = match bind {
            None => TcpStream::connect_timeout(&a, timeout),
            Some(local) if local.is_ipv4() != a.is_ipv4() => continue,
            Some(local) => connect_from(local, a, timeout),
        };
        match tried {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(failed(last))
}

/// A TCP connection to `to` from the local address `from` (any port).
fn connect_from(from: IpAddr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}

/// Maps a decode error seen by a client to a sentence for its user.
pub fn describe_protocol_error(e: &ProtoError) -> String {
    match e {
        ProtoError::UnsupportedVersion { found, supported } => format!(
            "the server speaks lanlink protocol version {found}, this client speaks version {supported}"
        ),
        ProtoError::BadMagic { .. } => "the server is not a lanlink server".to_owned(),
        other => other.to_string(),
    }
}
