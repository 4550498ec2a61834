//! The transport against real sockets on 127.0.0.1: handshake outcomes,
//! hostile and broken peers, slow readers, keepalive and shutdown.
//!
//! The application side is a tiny relay (welcome everyone, forward each
//! frame to every other client) so the tests exercise the transport alone.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanlink_proto::{control, ErrorCode, Frame, FrameDecoder, Header, Kind, Message, HEADER_LEN};
use lanlink_transport::{Client, ClientConfig, CloseReason, ServerConfig, TransportError};

mod common;
use common::*;

#[test]
fn clients_handshake_and_relay() {
    let server = TestServer::start(ServerConfig::default());
    let a = server.connect("ada").unwrap();
    assert_eq!(a.welcome().name, "ada");
    let b = server.connect("bob").unwrap();
    wait_for_conns(&server, 2);
    for i in 0..100 {
        a.send(&chat(&format!("m{i}"))).unwrap();
    }
    for i in 0..100 {
        assert_eq!(
            b.recv_timeout(Duration::from_secs(5)).unwrap(),
            Some(chat(&format!("m{i}")))
        );
    }
    a.close("done");
    server.wait_closed(|r| *r == CloseReason::Goodbye("done".into()));
    drop(b);
    server.stop();
}

/// `ClientConfig::bind` connects from the address it names: what lets a
/// test or the attack run look like several machines (127.0.0.N) to the
/// server's per-address limits.
#[test]
fn a_client_connects_from_the_address_it_is_told() {
    let server = TestServer::start(ServerConfig::default());
    let from: std::net::IpAddr = [127, 0, 0, 7].into();
    let config = ClientConfig {
        bind: Some(from),
        ..server.client.clone()
    };
    let c = Client::connect(&server.addr.to_string(), hello("seven", None), config).unwrap();
    wait_for_conns(&server, 1);
    let peers: Vec<_> = server
        .conns
        .lock()
        .unwrap()
        .values()
        .map(|h| h.peer().ip())
        .collect();
    assert_eq!(peers, [from]);
    drop(c);
    server.stop();
}

#[test]
fn token_is_required_and_checked() {
    let config = ServerConfig {
        token: Some("s3cret".into()),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config);
    let addr = server.addr.to_string();
    let err = Client::connect(&addr, hello("a", None), ClientConfig::default()).unwrap_err();
    assert!(
        matches!(&err, TransportError::Refused { code: ErrorCode::BAD_TOKEN, reason } if reason.contains("requires")),
        "{err}"
    );
    let err =
        Client::connect(&addr, hello("a", Some("guess")), ClientConfig::default()).unwrap_err();
    assert!(
        matches!(&err, TransportError::Refused { code: ErrorCode::BAD_TOKEN, reason } if reason == "wrong access token")
    );
    let ok = Client::connect(&addr, hello("a", Some("s3cret")), ClientConfig::default()).unwrap();
    assert_eq!(ok.welcome().name, "a");
    drop(ok);
    server.stop();
}

#[test]
fn wrong_tokens_are_limited_and_then_even_the_right_one_waits_but_not_elsewhere() {
    // Five wrong a minute from one address (the default), three in all.
    let config = ServerConfig {
        token: Some("s3cret".into()),
        token_guesses: lanlink_transport::GuessLimit::new(5, 3),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config);
    let addr = server.addr.to_string();
    for guess in ["a", "b", "c"] {
        let err =
            Client::connect(&addr, hello("x", Some(guess)), ClientConfig::default()).unwrap_err();
        assert!(
            matches!(&err, TransportError::Refused { code: ErrorCode::BAD_TOKEN, reason } if reason == "wrong access token"),
            "{err}"
        );
    }
    // Spent: the right token is refused unchecked, with a reason that says so.
    let err =
        Client::connect(&addr, hello("x", Some("s3cret")), ClientConfig::default()).unwrap_err();
    assert!(
        matches!(&err, TransportError::Refused { code: ErrorCode::BAD_TOKEN, reason } if reason.contains("too many")),
        "{err}"
    );
    // Another address that never guessed wrong is still checked: someone
    // guessing elsewhere does not lock out a user who has the token.
    let elsewhere = ClientConfig {
        bind: Some("127.0.0.2".parse().unwrap()),
        ..ClientConfig::default()
    };
    let ok = Client::connect(&addr, hello("y", Some("s3cret")), elsewhere).unwrap();
    assert_eq!(ok.welcome().name, "y");
    drop(ok);
    // 3 a minute come back at one per 20 s: the right token then works.
    std::thread::sleep(Duration::from_secs(21));
    let ok = Client::connect(&addr, hello("x", Some("s3cret")), ClientConfig::default()).unwrap();
    assert_eq!(ok.welcome().name, "x");
    drop(ok);
    server.stop();
}

#[test]
fn wrong_protocol_version_is_refused_naming_both() {
    let server = TestServer::start(ServerConfig::default());
    let mut bytes = Frame::control(hello("future", None))
        .to_bytes()
        .unwrap()
        .to_vec();
    bytes[2] = 9;
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(&bytes).unwrap();
    let f = read_frame(&mut s, &mut FrameDecoder::new()).expect("a refusal");
    match f.message {
        Message::Refuse(r) => {
            assert_eq!(r.code, ErrorCode::VERSION_MISMATCH);
            assert!(
                r.reason.contains("version 1") && r.reason.contains("version 9"),
                "{}",
                r.reason
            );
        }
        other => panic!("expected Refuse, got {other:?}"),
    }
    assert_relay_works(&server);
    server.stop();
}

#[test]
fn garbage_and_oversized_headers_end_only_that_connection() {
    let server = TestServer::start(ServerConfig::default());
    let a = server.connect("ada").unwrap();
    let b = server.connect("bob").unwrap();
    wait_for_conns(&server, 2);

    // Garbage instead of a handshake.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let f = read_frame(&mut s, &mut FrameDecoder::new()).expect("an answer");
    assert!(
        matches!(f.message, Message::Refuse(r) if r.code == ErrorCode::MALFORMED && r.reason.contains("magic"))
    );

    // After the handshake: a header claiming 4 GiB.
    let (mut s, mut d) = raw_handshake(server.addr, "mallory");
    let mut head = [0u8; HEADER_LEN];
    Header {
        kind: Kind::FileChunk,
        stream: 1,
        len: u32::MAX,
    }
    .encode_into(&mut head);
    s.write_all(&head).unwrap();
    let f = read_frame(&mut s, &mut d).expect("an error frame");
    match f.message {
        Message::Error(e) => {
            assert_eq!(e.code, ErrorCode::TOO_LARGE);
            assert!(e.message.contains("4294967295"), "{}", e.message);
        }
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(
        read_frame(&mut s, &mut d).is_none(),
        "connection should be closed"
    );
    server.wait_closed(|r| matches!(r, CloseReason::Malformed(_)));

    // Everyone else is still served.
    a.send(&chat("after")).unwrap();
    assert_eq!(
        b.recv_timeout(Duration::from_secs(5)).unwrap(),
        Some(chat("after"))
    );
    drop((a, b));
    server.stop();
}

#[test]
fn half_a_frame_then_disconnect_is_reported() {
    let server = TestServer::start(ServerConfig::default());
    let (mut s, _) = raw_handshake(server.addr, "quitter");
    let bytes = chat("this frame never finishes").to_bytes().unwrap();
    s.write_all(&bytes[..bytes.len() / 2]).unwrap();
    drop(s);
    let r = server.wait_closed(|r| matches!(r, CloseReason::PeerClosedMidFrame { .. }));
    assert_eq!(
        r,
        CloseReason::PeerClosedMidFrame {
            buffered: bytes.len() / 2
        }
    );
    assert_relay_works(&server);
    server.stop();
}

/// A client the server ends while it is sending (the server's close can
/// reset the connection before the client reads its last frame) reports
/// the error the server sent, not only that the connection went.
#[test]
fn a_client_the_server_ends_while_it_sends_hears_why() {
    let server = TestServer::start(ServerConfig::default());
    let client = Arc::new(server.connect("busy").unwrap());
    wait_for_conns(&server, 1);
    let sender = {
        let client = client.clone();
        std::thread::spawn(move || {
            let chunk = Frame::new(
                2,
                lanlink_proto::file::FileChunk {
                    offset: 0,
                    data: vec![1u8; 256 * 1024].into(),
                },
            );
            let started = Instant::now();
            while client.send(&chunk).is_ok() && started.elapsed() < Duration::from_secs(10) {}
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let conn = server
        .conns
        .lock()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    conn.close_with_error(
        ErrorCode::TOO_SLOW,
        "frame too slow for a full server",
        CloseReason::Local("test".into()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        match client.recv_timeout(Duration::from_millis(100)) {
            Err(TransportError::Closed(reason)) => break reason,
            _ => assert!(Instant::now() < deadline, "the client did not notice"),
        }
    };
    assert_eq!(
        reason,
        CloseReason::PeerError {
            code: ErrorCode::TOO_SLOW,
            message: "frame too slow for a full server".into()
        }
    );
    assert!(reason
        .to_string()
        .contains("frame too slow for a full server"));
    sender.join().unwrap();
    server.stop();
}

#[test]
fn silent_connections_are_closed_at_the_handshake_deadline() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config);
    let started = Instant::now();
    let mut s = TcpStream::connect(server.addr).unwrap();
    let f = read_frame(&mut s, &mut FrameDecoder::new()).expect("a refusal");
    assert!(matches!(f.message, Message::Refuse(r) if r.code == ErrorCode::TIMEOUT));
    assert!(read_frame(&mut s, &mut FrameDecoder::new()).is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_relay_works(&server);
    server.stop();
}

#[test]
fn client_limit_refuses_the_next_one() {
    let config = ServerConfig {
        max_clients: 2,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config);
    let a = server.connect("a").unwrap();
    let b = server.connect("b").unwrap();
    let err = server.connect("c").unwrap_err();
    assert!(
        matches!(&err, TransportError::Refused { code: ErrorCode::SERVER_FULL, reason } if reason.contains("full")),
        "{err}"
    );
    drop(a);
    // The freed slot is usable again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let c = loop {
        match server.connect("c") {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("slot not freed: {e}"),
        }
    };
    drop((b, c));
    server.stop();
}

#[test]
fn a_client_that_stops_reading_is_disconnected_and_others_are_unaffected() {
    let mut config = ServerConfig::default();
    config.conn.max_queued_bytes = 1024 * 1024;
    stuck_reader_is_cut_at(config, 1024 * 1024 + 4096, |server| {
        Box::new(raw_handshake(server.addr, "stuck"))
    });
}

#[test]
fn the_server_wide_queue_limit_cuts_the_peer_holding_the_most() {
    // Per connection the limit is generous; all together it is 2 MiB, of
    // which the stuck client's fair share (a third) is what it may keep.
    let mut config = ServerConfig::default();
    config.conn.max_queued_bytes = 64 * 1024 * 1024;
    config.max_total_queued_bytes = 2 * 1024 * 1024;
    stuck_reader_is_cut_at(config, 2 * 1024 * 1024 + 4096, |server| {
        Box::new(raw_handshake(server.addr, "stuck"))
    });
}

#[test]
fn keepalive_measures_rtt_and_idle_peers_time_out() {
    let mut config = ServerConfig::default();
    config.conn.ping_interval = Duration::from_millis(100);
    config.conn.idle_timeout = Duration::from_millis(600);
    let server = TestServer::start(config.clone());
    // A real client answers pings, so it stays connected past the idle timeout.
    let client_config = ClientConfig {
        conn: lanlink_transport::ConnConfig {
            block_when_full: true,
            ..config.conn.clone()
        },
        ..ClientConfig::default()
    };
    let live =
        Client::connect(&server.addr.to_string(), hello("live", None), client_config).unwrap();
    // A raw peer that never answers pings is closed after the idle timeout.
    let (mut silent, mut d) = raw_handshake(server.addr, "silent");
    std::thread::sleep(Duration::from_millis(1000));
    let conns = server.conns.lock().unwrap().clone();
    let live_handle = conns
        .values()
        .find(|c| c.rtt().is_some())
        .expect("an RTT was measured");
    assert!(live_handle.rtt().unwrap() < Duration::from_millis(100));
    server.wait_closed(|r| matches!(r, CloseReason::IdleTimeout(_)));
    // The silent peer got pings and then a timeout error.
    let mut kinds = Vec::new();
    while let Some(f) = read_frame(&mut silent, &mut d) {
        kinds.push(f.kind());
    }
    assert!(kinds.contains(&Kind::Ping), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&Kind::Error), "{kinds:?}");
    // The live client is still connected and working.
    live.send(&Frame::control(control::Ping { nonce: 5 }))
        .unwrap();
    drop(live);
    server.stop();
}

#[test]
fn shutdown_says_goodbye_to_everyone_and_returns() {
    let server = TestServer::start(ServerConfig::default());
    let a = server.connect("a").unwrap();
    let (mut raw, mut d) = raw_handshake(server.addr, "raw");
    wait_for_conns(&server, 2);
    let started = Instant::now();
    let shutdown = server.shutdown.clone();
    shutdown.trigger();
    let f = read_frame(&mut raw, &mut d).expect("goodbye");
    assert!(matches!(f.message, Message::Goodbye(g) if g.reason.contains("shutting down")));
    drop(raw);
    match a.recv_timeout(Duration::from_secs(5)) {
        Err(TransportError::Closed(CloseReason::Goodbye(r))) => {
            assert!(r.contains("shutting down"))
        }
        other => panic!("expected goodbye, got {other:?}"),
    }
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn dropping_a_client_whose_application_stopped_reading_returns_promptly() {
    let server = TestServer::start(ServerConfig::default());
    let config = ClientConfig {
        event_capacity: 1,
        ..server.client.clone()
    };
    let idle = Client::connect(&server.addr.to_string(), hello("idle", None), config).unwrap();
    let talker = server.connect("talker").unwrap();
    wait_for_conns(&server, 2);
    // More than the idle client's one-event queue: its reader blocks.
    for i in 0..50 {
        talker.send(&chat(&format!("{i}"))).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    drop(idle);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drop took {:?}",
        started.elapsed()
    );
    drop(talker);
    server.stop();
}

/// Raw connections from 127.0.0.1 until one is refused; returns the refusal.
fn refused_after(server: &TestServer, at_most: usize) -> (usize, Frame, Vec<TcpStream>) {
    let mut open = Vec::new();
    for i in 0..at_most {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut d = FrameDecoder::new();
        if let Some(f) = read_frame_within(&mut s, &mut d) {
            return (i, f, open);
        }
        open.push(s);
    }
    panic!("no refusal within {at_most} connections");
}

/// The first frame the server sends on a fresh raw connection before the
/// read timeout, if any (nothing, for a connection still handshaking).
fn read_frame_within(s: &mut TcpStream, d: &mut FrameDecoder) -> Option<Frame> {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(f)) = d.decode() {
            return Some(f);
        }
        match s.read(&mut buf) {
            Ok(n) if n > 0 => d.push(&buf[..n]),
            _ => return None,
        }
    }
}

#[test]
fn connection_attempts_per_address_are_rate_limited_without_hurting_others() {
    let config = ServerConfig {
        // Slow enough that nothing refills while the test runs (each
        // silent attempt waits 300 ms for a refusal that does not come).
        attempts_per_address: lanlink_transport::Rate {
            burst: 8,
            per_second: 0.01,
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start(config);
    let a = server.connect("a").unwrap();
    let b = server.connect("b").unwrap();
    wait_for_conns(&server, 2);
    // Six more attempts are allowed, the seventh is refused at once.
    let (allowed, refusal, silent) = refused_after(&server, 20);
    assert_eq!(allowed, 6);
    match refusal.message {
        Message::Refuse(r) => {
            assert_eq!(r.code, ErrorCode::TOO_MANY_CONNECTIONS);
            assert!(
                r.reason.contains("too many connection attempts"),
                "{}",
                r.reason
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(silent);
    // Those already connected are unaffected.
    a.send(&chat("still here")).unwrap();
    let got = b.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(got, chat("still here"));
    drop((a, b));
    server.stop();
}

/// Silent connections holding every handshake slot used to keep everyone
/// else out (issue 13's attack run: four addresses with sixteen silent
/// connections each refused every honest client): a new connection now
/// takes the oldest one's place.
#[test]
fn silent_connections_holding_every_handshake_slot_cannot_keep_others_out() {
    let config = ServerConfig {
        max_handshakes: 3,
        // Long enough that no silent connection times out meanwhile.
        handshake_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let refusals = config.refusals.clone();
    let server = TestServer::start(config);
    let a = server.connect("a").unwrap();
    let b = server.connect("b").unwrap();
    wait_for_conns(&server, 2);
    let silent: Vec<TcpStream> = (2..5u8)
        .map(|n| {
            let s = lanlink_transport::client::connect_any(
                &server.addr.to_string(),
                Some([127, 0, 0, n].into()),
                Duration::from_secs(5),
            )
            .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    // Let the server take all three into its handshake slots.
    std::thread::sleep(Duration::from_millis(200));
    let c = server.connect("c").expect("a newcomer gets in");
    assert_eq!(refusals.total(lanlink_transport::server::HANDSHAKE_CUT), 1);
    // The oldest silent connection is the one that was cut.
    let mut byte = [0u8; 1];
    let mut oldest = &silent[0];
    assert!(matches!(
        std::io::Read::read(&mut oldest, &mut byte),
        Ok(0) | Err(_)
    ));
    // Those already connected are unaffected.
    a.send(&chat("unaffected")).unwrap();
    assert_eq!(
        b.recv_timeout(Duration::from_secs(5)).unwrap().unwrap(),
        chat("unaffected")
    );
    drop((a, b, c, silent));
    server.stop();
}

#[test]
fn banned_addresses_are_refused_before_the_handshake() {
    let config = ServerConfig::default();
    let bans = config.bans.clone();
    let server = TestServer::start(config);
    let a = server.connect("a").unwrap();
    bans.ban("127.0.0.1".parse().unwrap());
    match server.connect("b").unwrap_err() {
        TransportError::Refused { code, reason } => {
            assert_eq!(code, ErrorCode::BANNED);
            assert!(reason.contains("banned"), "{reason}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    bans.unban("127.0.0.1".parse().unwrap());
    let b = server.connect("b").unwrap();
    drop((a, b));
    server.stop();
}

/// One end of a loopback pair, as the browser server makes for each
/// WebSocket: the server adopts the other end.
fn loopback_pair() -> (TcpStream, TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let near = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (far, _) = l.accept().unwrap();
    (near, far)
}

/// An adopted stream is served as a connection from the address it was
/// handed with (plain, even on a TLS server), under the same admission:
/// the per-address cap counts it, and a banned address is refused.
#[test]
fn adopted_streams_are_admitted_as_their_peer_address() {
    let config = ServerConfig {
        max_conns_per_address: 1,
        tls: Some(lanlink_transport::ServerIdentity::generate().unwrap()),
        ..ServerConfig::default()
    };
    let adopter = config.adopter.clone();
    let bans = config.bans.clone();
    // Not serving yet: nothing takes the stream.
    let (_near, far) = loopback_pair();
    let browser: std::net::SocketAddr = "10.1.2.3:50000".parse().unwrap();
    assert!(matches!(
        adopter.adopt(far, browser),
        Err(TransportError::NotServing)
    ));

    let server = TestServer::start(config);
    // `serve` attaches the adopter as it starts, on its own thread.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut near = loop {
        let (near, far) = loopback_pair();
        match adopter.adopt(far, browser) {
            Ok(()) => break near,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("never adopted: {e}"),
        }
    };
    near.write_all(&Frame::control(hello("web", None)).to_bytes().unwrap())
        .unwrap();
    let mut decoder = FrameDecoder::new();
    let f = read_frame(&mut near, &mut decoder).expect("a welcome");
    assert!(matches!(f.message, Message::Welcome(w) if w.name == "web"));
    wait_for_conns(&server, 1);
    let peers: Vec<_> = server
        .conns
        .lock()
        .unwrap()
        .values()
        .map(|h| h.peer())
        .collect();
    assert_eq!(peers, [browser]);

    // A second connection from the same address is over its cap of one.
    let (mut near2, far2) = loopback_pair();
    adopter
        .adopt(far2, "10.1.2.3:50001".parse().unwrap())
        .unwrap();
    near2
        .write_all(&Frame::control(hello("web2", None)).to_bytes().unwrap())
        .unwrap();
    let f = read_frame(&mut near2, &mut FrameDecoder::new()).expect("a refusal");
    assert!(
        matches!(&f.message, Message::Refuse(r) if r.code == ErrorCode::TOO_MANY_CONNECTIONS),
        "{f:?}"
    );
    // A banned address is refused before any handshake.
    bans.ban("10.9.9.9".parse().unwrap());
    let (mut near3, far3) = loopback_pair();
    adopter.adopt(far3, "10.9.9.9:1".parse().unwrap()).unwrap();
    let f = read_frame(&mut near3, &mut FrameDecoder::new()).expect("a refusal");
    assert!(matches!(&f.message, Message::Refuse(r) if r.code == ErrorCode::BANNED));

    // The first one still works, and ends with the server.
    drop(near);
    server.wait_closed(|_| true);
    server.stop();
    let (_near, far) = loopback_pair();
    assert!(matches!(
        adopter.adopt(far, browser),
        Err(TransportError::NotServing)
    ));
}
