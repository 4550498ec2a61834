//! Browser chat over `GET /ws`, spoken by a tungstenite client as a
//! browser would (binary messages carrying lanlink frames): it is a client
//! like a native one, in the same rooms, under the same limits. Real
//! server (`run`), real HTTP server, real sockets.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{wait_for, TestServer, PATIENCE};
use lanlink_proto::chat::{ChatMessage, Join, Presence, PresenceChange};
use lanlink_proto::{control, Capabilities, ErrorCode, Frame, FrameDecoder, Message};
use lanlink_server::http::{serve_http_with, HttpConfig, LatestFrames};
use lanlink_server::ServerConfig;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message as WsMessage, WebSocket};

/// A lanlink client over a WebSocket.
struct WsClient {
    ws: WebSocket<TcpStream>,
    decoder: FrameDecoder,
}

impl WsClient {
    fn send(&mut self, frame: &Frame) {
        let bytes = frame.to_bytes().unwrap();
        // Split in two messages: the bridge carries a byte stream.
        let (a, b) = bytes.split_at(bytes.len() / 2);
        self.ws.send(WsMessage::binary(a.to_vec())).unwrap();
        self.ws.send(WsMessage::binary(b.to_vec())).unwrap();
    }

    /// The next frame, `None` once the connection ends.
    fn recv(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(f) = self.decoder.decode().unwrap() {
                return Some(f);
            }
            assert!(Instant::now() < deadline, "no frame within {PATIENCE:?}");
            match self.ws.read() {
                Ok(WsMessage::Binary(b)) => self.decoder.push(&b),
                Ok(WsMessage::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn wait_for<T>(&mut self, mut pick: impl FnMut(&Frame) -> Option<T>) -> T {
        loop {
            let f = self.recv().expect("the connection ended");
            if let Some(t) = pick(&f) {
                return t;
            }
        }
    }
}

/// Opens `/ws` from `from` (127.0.0.x) with `origin`; the HTTP status when refused.
fn ws_open(http: SocketAddr, from: IpAddr, origin: Option<&str>) -> Result<WsClient, u16> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&http.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("ws://{http}/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    match tungstenite::client(request, stream) {
        Ok((ws, _)) => Ok(WsClient {
            ws,
            decoder: FrameDecoder::new(),
        }),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

fn hello(name: &str) -> Frame {
    Frame::control(control::Hello {
        name: name.into(),
        token: None,
        capabilities: Capabilities::CHAT,
    })
}

/// A lanlink server with the browser server beside it, chat bridged.
fn start(mut config: ServerConfig) -> (TestServer, SocketAddr) {
    let http_config = HttpConfig {
        adopter: Some(config.transport.adopter.clone()),
        ..HttpConfig::default()
    };
    config.transport.handshake_timeout = config.transport.handshake_timeout.min(PATIENCE);
    let server = TestServer::start(config);
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = http.local_addr().unwrap();
    let shutdown = server.shutdown.clone();
    std::thread::spawn(move || serve_http_with(http, LatestFrames::new(), http_config, shutdown));
    (server, addr)
}

fn local() -> IpAddr {
    [127, 0, 0, 1].into()
}

/// Connects and completes the handshake, retrying while the transport
/// server is still starting (the adopter is attached by `run`).
fn ws_join(http: SocketAddr, from: IpAddr, name: &str) -> WsClient {
    let origin = format!("http://{http}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        match ws_open(http, from, Some(&origin)) {
            Ok(mut c) => {
                c.send(&hello(name));
                match c.recv().map(|f| f.message) {
                    Some(Message::Welcome(w)) => {
                        assert_eq!(w.name, name);
                        return c;
                    }
                    other => panic!("expected a welcome, got {other:?}"),
                }
            }
            Err(503) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(status) => panic!("refused: {status}"),
        }
    }
}

#[test]
fn a_websocket_client_chats_with_a_native_one() {
    let (server, http) = start(ServerConfig::default());
    let native = server.connect("nat", Capabilities::CHAT);
    native
        .send(&Frame::control(Join {
            room: "lobby".into(),
            password: None,
        }))
        .unwrap();
    let mut web = ws_join(http, local(), "web");
    web.send(&Frame::control(Join {
        room: "lobby".into(),
        password: None,
    }));
    // The browser gets the room's roster, with the native client in it.
    web.wait_for(|f| match &f.message {
        Message::Roster(r) if r.room == "lobby" && r.members.iter().any(|m| m == "nat") => Some(()),
        _ => None,
    });
    // The native client sees the browser arrive, under its own address.
    wait_for(&native, |f| match &f.message {
        Message::Presence(Presence {
            name,
            change: PresenceChange::Joined,
            ..
        }) if name == "web" => Some(()),
        _ => None,
    });
    web.send(&Frame::control(ChatMessage {
        room: "lobby".into(),
        from: String::new(),
        text: "hello from a browser".into(),
        action: false,
        timestamp_ms: 0,
    }));
    let from = wait_for(&native, |f| match &f.message {
        Message::ChatMessage(m) if m.text == "hello from a browser" => Some(m.from.clone()),
        _ => None,
    });
    assert_eq!(from, "web");
    native
        .send(&Frame::control(ChatMessage {
            room: "lobby".into(),
            from: String::new(),
            text: "hello back".into(),
            action: false,
            timestamp_ms: 0,
        }))
        .unwrap();
    let from = web.wait_for(|f| match &f.message {
        Message::ChatMessage(m) if m.text == "hello back" => Some(m.from.clone()),
        _ => None,
    });
    assert_eq!(from, "nat");
    // The browser leaving is seen as a native client leaving.
    drop(web);
    wait_for(&native, |f| match &f.message {
        Message::Presence(Presence {
            name,
            change: PresenceChange::Left,
            ..
        }) if name == "web" => Some(()),
        _ => None,
    });
}

#[test]
fn a_foreign_origin_or_none_is_refused() {
    let (_server, http) = start(ServerConfig::default());
    assert_eq!(
        ws_open(http, local(), Some("http://evil.example")).err(),
        Some(403)
    );
    assert_eq!(ws_open(http, local(), None).err(), Some(403));
    assert_eq!(
        ws_open(http, local(), Some(&format!("https://{http}"))).err(),
        Some(403),
        "the page came over plain HTTP"
    );
    // The page's own origin is let in.
    drop(ws_join(http, local(), "fine"));
}

/// The transport's limits apply to browsers as to native clients: an
/// address over its connection cap is refused through the WebSocket, the
/// name rules hold, a silent browser is cut at the handshake deadline,
/// and an honest browser from another address still chats.
#[test]
fn browsers_meet_the_native_limits() {
    let mut config = ServerConfig::default();
    config.transport.max_conns_per_address = 2;
    config.transport.handshake_timeout = Duration::from_millis(500);
    let (server, http) = start(config);
    let hostile: IpAddr = [127, 0, 0, 2].into();
    let origin = format!("http://{http}");
    let _a = ws_join(http, hostile, "eve1");
    let _b = ws_join(http, hostile, "eve2");
    let mut third = ws_open(http, hostile, Some(&origin)).unwrap();
    third.send(&hello("eve3"));
    match third.recv().map(|f| f.message) {
        Some(Message::Refuse(r)) => assert_eq!(r.code, ErrorCode::TOO_MANY_CONNECTIONS),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(third.recv().is_none(), "the refused connection ends");

    // Name rules: the hub's, unchanged.
    let elsewhere: IpAddr = [127, 0, 0, 3].into();
    let mut bad = ws_open(http, elsewhere, Some(&origin)).unwrap();
    bad.send(&hello("has space"));
    match bad.recv().map(|f| f.message) {
        Some(Message::Refuse(r)) => assert_eq!(r.code, ErrorCode::INVALID_NAME),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Silence: refused at the handshake deadline.
    let started = Instant::now();
    let mut silent = ws_open(http, elsewhere, Some(&origin)).unwrap();
    match silent.recv().map(|f| f.message) {
        Some(Message::Refuse(r)) => assert_eq!(r.code, ErrorCode::TIMEOUT),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    // An honest browser elsewhere still gets in and talks.
    let native = server.connect("nat", Capabilities::CHAT);
    let mut honest = ws_join(http, [127, 0, 0, 4].into(), "ann");
    honest.send(&Frame::control(lanlink_proto::chat::PrivateMessage {
        to: "nat".into(),
        from: String::new(),
        text: "still here".into(),
        action: false,
        timestamp_ms: 0,
    }));
    let from = wait_for(&native, |f| match &f.message {
        Message::PrivateMessage(m) if m.text == "still here" => Some(m.from.clone()),
        _ => None,
    });
    assert_eq!(from, "ann");
}

/// A browser flooding a room meets the hub's rate limit, as a native
/// client does: the excess is refused with `RATE_LIMITED`, and the room
/// gets no more than the burst.
#[test]
fn a_flooding_browser_is_rate_limited() {
    let (server, http) = start(ServerConfig::default());
    let native = server.connect("nat", Capabilities::CHAT);
    let mut web = ws_join(http, local(), "spam");
    web.wait_for(|f| match &f.message {
        Message::Roster(r) if r.members.iter().any(|m| m == "nat") => Some(()),
        _ => None,
    });
    for i in 0..40 {
        web.send(&Frame::control(ChatMessage {
            room: "lobby".into(),
            from: String::new(),
            text: format!("spam {i}"),
            action: false,
            timestamp_ms: 0,
        }));
    }
    web.wait_for(|f| match &f.message {
        Message::Error(e) if e.code == ErrorCode::RATE_LIMITED => Some(()),
        _ => None,
    });
    let mut got = 0;
    while common::wait_briefly(&native, Duration::from_millis(500), |f| match &f.message {
        Message::ChatMessage(m) if m.text.starts_with("spam") => Some(()),
        _ => None,
    })
    .is_some()
    {
        got += 1;
    }
    let burst = lanlink_services::chat::ChatConfig::default().rate_burst;
    assert!(
        (1..40).contains(&got) && got as f64 <= f64::from(burst) + 2.0,
        "{got} of 40 got through (burst {burst})"
    );
}

/// A browser that stops reading is cut as a slow native client is: what
/// the bridge holds for it is bounded, the transport's queue for it fills,
/// and the too-slow rule ends the connection; the room goes on.
#[test]
fn a_browser_that_stops_reading_is_cut() {
    let mut config = ServerConfig::default();
    config.transport.conn.max_queued_bytes = 1024 * 1024;
    config.chat.rate_burst = 1_000_000;
    config.chat.rate_per_second = 1_000_000.0;
    config.chat.address_message_rate = lanlink_transport::Rate::UNLIMITED;
    let (server, http) = start(config);
    let talker = server.connect("talker", Capabilities::CHAT);
    let watcher = server.connect("watcher", Capabilities::CHAT);
    let web = ws_join(http, local(), "stuck");
    wait_for(&talker, |f| match &f.message {
        Message::Presence(p) if p.name == "stuck" => Some(()),
        _ => None,
    });
    // The browser reads nothing from here on; the room is busy.
    let text = "x".repeat(4000);
    let started = Instant::now();
    let mut sent = 0u64;
    let left = loop {
        // 80 kB at a time, and the watcher keeps up.
        for _ in 0..20 {
            talker
                .send(&Frame::control(ChatMessage {
                    room: "lobby".into(),
                    from: String::new(),
                    text: text.clone(),
                    action: false,
                    timestamp_ms: 0,
                }))
                .unwrap();
            sent += 1;
        }
        while let Ok(Some(_)) = watcher.recv_timeout(Duration::from_millis(1)) {}
        let gone = common::wait_briefly(&talker, Duration::from_millis(10), |f| match &f.message {
            Message::Presence(Presence {
                name,
                change: PresenceChange::Left,
                ..
            }) if name == "stuck" => Some(()),
            _ => None,
        });
        if gone.is_some() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the stuck browser was not cut after {sent} messages of 4 kB"
        );
    };
    eprintln!("cut after {left:?}, {sent} messages of 4 kB sent to the room");
    assert!(
        sent >= 100,
        "cut before the bridge's buffers could fill: {sent}"
    );
    // The room goes on for the others.
    talker
        .send(&Frame::control(ChatMessage {
            room: "lobby".into(),
            from: String::new(),
            text: "after the cut".into(),
            action: false,
            timestamp_ms: 0,
        }))
        .unwrap();
    wait_for(&watcher, |f| match &f.message {
        Message::ChatMessage(m) if m.text == "after the cut" => Some(()),
        _ => None,
    });
    drop(web);
}
