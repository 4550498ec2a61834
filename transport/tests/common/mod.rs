//! What the transport tests share: a tiny relay server (welcome everyone,
//! forward each frame to every other client) and raw-socket helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lanlink_proto::{chat::ChatMessage, control, Capabilities, Frame, FrameDecoder, Kind};
use lanlink_transport::{
    serve, Client, ClientConfig, ClientTls, CloseReason, ConnHandle, Event, ServerConfig, Shutdown,
    TransportError,
};

pub struct TestServer {
    pub addr: SocketAddr,
    /// How [`TestServer::connect`] connects (TLS with the server's pin when it has TLS).
    pub client: ClientConfig,
    pub shutdown: Shutdown,
    server: Option<JoinHandle<()>>,
    hub: Option<JoinHandle<()>>,
    pub closed: Arc<Mutex<Vec<CloseReason>>>,
    pub conns: Arc<Mutex<HashMap<u64, ConnHandle>>>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        let client = ClientConfig {
            tls: config.tls.as_ref().map(|id| ClientTls {
                pin: Some(id.fingerprint()),
            }),
            ..ClientConfig::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let server = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || serve(listener, config, shutdown, tx).unwrap())
        };
        let closed = Arc::new(Mutex::new(Vec::new()));
        let conns: Arc<Mutex<HashMap<u64, ConnHandle>>> = Arc::default();
        let hub = {
            let (closed, conns) = (closed.clone(), conns.clone());
            std::thread::spawn(move || {
                for event in rx {
                    match event {
                        Event::Hello { conn, hello } => {
                            conn.send(&Frame::control(control::Welcome {
                                server_name: "test".into(),
                                client_id: conn.id().0 as u32,
                                name: hello.name,
                                capabilities: Capabilities::ALL,
                                max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
                                motd: String::new(),
                            }))
                            .unwrap();
                            conns.lock().unwrap().insert(conn.id().0, conn);
                        }
                        Event::Frame { conn, frame, .. } => {
                            for (id, c) in conns.lock().unwrap().iter() {
                                if *id != conn.0 {
                                    let _ = c.send(&frame);
                                }
                            }
                        }
                        Event::Closed { conn, reason, .. } => {
                            if let Some(c) = conns.lock().unwrap().remove(&conn.0) {
                                c.close("goodbye");
                            }
                            closed.lock().unwrap().push(reason);
                        }
                    }
                }
            })
        };
        TestServer {
            addr,
            client,
            shutdown,
            server: Some(server),
            hub: Some(hub),
            closed,
            conns,
        }
    }

    pub fn connect(&self, name: &str) -> Result<Client, TransportError> {
        Client::connect(
            &self.addr.to_string(),
            hello(name, None),
            self.client.clone(),
        )
    }

    /// Waits until a close reason matching `pred` has been reported.
    pub fn wait_closed(&self, pred: impl Fn(&CloseReason) -> bool) -> CloseReason {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.closed.lock().unwrap().iter().find(|r| pred(r)) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no matching close; saw {:?}",
                self.closed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) {
        self.shutdown.trigger();
        self.server.take().unwrap().join().unwrap();
        self.hub.take().unwrap().join().unwrap();
    }
}

pub fn hello(name: &str, token: Option<&str>) -> control::Hello {
    control::Hello {
        name: name.into(),
        token: token.map(Into::into),
        capabilities: Capabilities::CHAT,
    }
}

pub fn chat(text: &str) -> Frame {
    Frame::control(ChatMessage::say("lobby", text))
}

/// Reads frames from a raw socket until one arrives or the socket closes.
pub fn read_frame(stream: &mut TcpStream, decoder: &mut FrameDecoder) -> Option<Frame> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = decoder.decode().unwrap() {
            return Some(f);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

pub fn raw_handshake(addr: SocketAddr, name: &str) -> (TcpStream, FrameDecoder) {
    handshake_on(TcpStream::connect(addr).unwrap(), name)
}

/// [`raw_handshake`] from another loopback address (127.x.y.z).
pub fn raw_handshake_from(
    addr: SocketAddr,
    from: std::net::IpAddr,
    name: &str,
) -> (TcpStream, FrameDecoder) {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    handshake_on(socket.into(), name)
}

fn handshake_on(mut s: TcpStream, name: &str) -> (TcpStream, FrameDecoder) {
    s.write_all(&Frame::control(hello(name, None)).to_bytes().unwrap())
        .unwrap();
    let mut d = FrameDecoder::new();
    let f = read_frame(&mut s, &mut d).unwrap();
    assert_eq!(f.kind(), Kind::Welcome);
    (s, d)
}

/// A client still works end to end: it receives what another one sends.
pub fn assert_relay_works(server: &TestServer) {
    let a = server.connect("probe-a").unwrap();
    let b = server.connect("probe-b").unwrap();
    wait_for_conns(server, 2);
    a.send(&chat("still alive")).unwrap();
    let got = b
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("relayed frame");
    assert_eq!(got, chat("still alive"));
}

pub fn wait_for_conns(server: &TestServer, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.conns.lock().unwrap().len() < at_least {
        assert!(Instant::now() < deadline, "clients did not register");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A stuck reader, a sender and a healthy reader: the healthy one gets all
/// of 10,000 messages of 2 KB while the stuck one is cut as too slow with
/// at most `max_queued` bytes waiting. `stuck` connects the stuck client
/// (it completes the handshake, then never reads again) and returns what
/// keeps its connection open.
pub fn stuck_reader_is_cut_at(
    config: ServerConfig,
    max_queued: usize,
    stuck: impl FnOnce(&TestServer) -> Box<dyn std::any::Any>,
) {
    let server = TestServer::start(config);
    let stuck = stuck(&server);
    let sender = server.connect("sender").unwrap();
    let reader = server.connect("reader").unwrap();
    wait_for_conns(&server, 3);

    // 10,000 messages of 2 KB: far more than the stuck client's queue limit
    // plus what the kernel buffers for it. The sender stays at most 200
    // messages ahead of the healthy reader, as a rate-limited chat would.
    let text = "x".repeat(2000);
    let n = 10_000;
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let consumer = {
        let received = received.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while received.load(std::sync::atomic::Ordering::SeqCst) < n
                && Instant::now() < deadline
            {
                if let Ok(Some(_)) = reader.recv_timeout(Duration::from_millis(500)) {
                    received.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..n {
        while i >= received.load(std::sync::atomic::Ordering::SeqCst) + 200 {
            assert!(
                Instant::now() < deadline,
                "the healthy reader stalled at {i}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        sender.send(&chat(&text)).unwrap();
    }
    consumer.join().unwrap();
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        n,
        "the healthy reader got everything"
    );
    let r = server.wait_closed(|r| matches!(r, CloseReason::TooSlow { .. }));
    match r {
        CloseReason::TooSlow { queued } => assert!(queued <= max_queued, "{queued}"),
        _ => unreachable!(),
    }
    drop(stuck);
    drop(sender);
    server.stop();
}
