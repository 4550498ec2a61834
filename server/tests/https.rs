//! The browser server in HTTPS, over real sockets, with a rustls client
//! that pins the server's certificate as a native client does: the page
//! comes with the server's own certificate and shows its fingerprint, a
//! plain-HTTP request is redirected to HTTPS, a TLS handshake that never
//! completes is cut at the header deadline and frees its slot, handshakes
//! beyond an address's rate are refused, and an MJPEG viewer that leaves a
//! quiet stream frees its viewer slot; the session cookie is `Secure`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{jpeg, split_head, Http};
use lanlink_server::http::HttpConfig;
use lanlink_transport::tls::{client_connection, ClientTls};
use lanlink_transport::{Fingerprint, Rate, ServerIdentity};

/// The browser server in HTTPS, with its certificate's fingerprint.
struct Https {
    http: Http,
    fingerprint: Fingerprint,
}

impl std::ops::Deref for Https {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Https {
    fn start(config: HttpConfig) -> Https {
        let identity = ServerIdentity::generate().unwrap();
        let fingerprint = identity.fingerprint();
        let config = HttpConfig {
            tls: Some(identity),
            ..config
        };
        Https {
            http: Http::start(config),
            fingerprint,
        }
    }

    /// A TLS connection that accepts only `pin`.
    fn connect(
        &self,
        pin: Fingerprint,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let tls = ClientTls { pin: Some(pin) };
        let conn = client_connection(&tls, Arc::new(Mutex::new(None))).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }

    /// A GET over TLS, pinned to the server's certificate: the whole answer.
    fn get(&self, path: &str) -> (String, Vec<u8>) {
        let mut s = self.connect(self.fingerprint);
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        split_head(&all)
    }
}

#[test]
fn the_page_comes_over_https_with_the_servers_certificate_and_shows_it() {
    let https = Https::start(HttpConfig::default());
    let (head, page) = https.get("/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(&https.fingerprint.to_string()), "{page}");
    assert!(page.contains(&https.fingerprint.grouped()), "{page}");
    let (_, info) = https.get("/info");
    assert_eq!(
        String::from_utf8(info).unwrap(),
        format!(
            "{{\"tls\":true,\"fingerprint\":\"{}\",\"short\":\"{}\"}}\n",
            https.fingerprint,
            https.fingerprint.grouped()
        )
    );
    // A client pinning another certificate gets no page.
    let other = ServerIdentity::generate().unwrap().fingerprint();
    let mut s = https.connect(other);
    assert!(write!(s, "GET / HTTP/1.1\r\n\r\n")
        .and_then(|()| s.flush())
        .is_err());
}

#[test]
fn plain_http_on_the_https_port_is_redirected() {
    let https = Https::start(HttpConfig::default());
    let ask = |host: &str| {
        let mut s = TcpStream::connect(https.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /stream/x HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        split_head(&all).0
    };
    let head = ask("pi.local:7879");
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(
        head.contains("\r\nLocation: https://pi.local:7879/\r\n"),
        "{head}"
    );
    // A Host that is not a host name is never echoed.
    let head = ask("evil\"<x>");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(!head.contains("evil"), "{head}");
}

#[test]
fn a_handshake_that_never_completes_is_cut_at_the_header_deadline_and_frees_its_slot() {
    let https = Https::start(HttpConfig {
        max_per_address: 1,
        header_timeout: Duration::from_millis(600),
        ..HttpConfig::default()
    });
    // The start of a TLS record, then nothing: the handshake never ends.
    let started = Instant::now();
    let mut stuck = TcpStream::connect(https.addr).unwrap();
    stuck.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Meanwhile it holds the address's only slot: another connection is
    // closed at once, without a handshake.
    std::thread::sleep(Duration::from_millis(100));
    let mut refused = https.connect(https.fingerprint);
    assert!(write!(refused, "GET / HTTP/1.1\r\n\r\n")
        .and_then(|()| refused.flush())
        .is_err());
    // Cut at the deadline...
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "cut after {took:?}"
    );
    // ...and the slot is free again (released just after the socket
    // closes: a moment later at most).
    let freed = Instant::now() + Duration::from_secs(1);
    loop {
        let mut s = https.connect(https.fingerprint);
        let mut all = Vec::new();
        let answer = write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .and_then(|()| s.read_to_end(&mut all));
        if answer.is_ok() && all.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < freed, "the slot was not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_https_viewer_that_leaves_a_quiet_stream_frees_its_viewer_slot() {
    let https = Https::start(HttpConfig {
        max_viewers: 1,
        ..HttpConfig::default()
    });
    https.frames.publish("cam", 2, 2, 1, jpeg(b"one")).unwrap();
    let mut viewer = https.connect(https.fingerprint);
    write!(viewer, "GET /stream/cam HTTP/1.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(5).any(|w| w == b"\xFF\xD8one") {
        let n = viewer.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // The only viewer slot is taken...
    let (head, _) = https.get("/stream/cam");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    // ...until the viewer closes (the stream stays quiet).
    viewer.conn.send_close_notify();
    let _ = viewer.flush();
    drop(viewer);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = https.connect(https.fingerprint);
        write!(s, "GET /stream/cam HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        if &head == b"HTTP/1.1 200" {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn handshakes_beyond_an_addresss_rate_are_refused_before_any_work() {
    let https = Https::start(HttpConfig {
        handshake_rate: Rate {
            burst: 2,
            per_second: 2.0,
        },
        ..HttpConfig::default()
    });
    for _ in 0..2 {
        assert!(https.get("/").0.starts_with("HTTP/1.1 200"));
    }
    let mut refused = https.connect(https.fingerprint);
    assert!(write!(refused, "GET / HTTP/1.1\r\n\r\n")
        .and_then(|()| refused.flush())
        .is_err());
    // A token comes back every half second.
    std::thread::sleep(Duration::from_millis(700));
    assert!(https.get("/").0.starts_with("HTTP/1.1 200"));
}

#[test]
fn over_https_the_session_cookie_is_secure() {
    let https = Https::start(HttpConfig {
        access_token: Some("let me in".into()),
        ..HttpConfig::default()
    });
    let mut s = https.connect(https.fingerprint);
    let body = r#"{"token":"let me in"}"#;
    write!(
        s,
        "POST /auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let (head, _) = split_head(&all);
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}
