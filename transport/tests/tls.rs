//! TLS on real sockets: pinned identities, the wrong certificate, clients
//! and servers of the other kind, hostile bytes inside and outside TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanlink_proto::{file::FileChunk, ErrorCode, Frame};
use lanlink_transport::{
    Client, ClientConfig, ClientTls, CloseReason, Fingerprint, ServerConfig, ServerIdentity,
    TransportError,
};

mod common;
use common::*;

fn tls_server() -> TestServer {
    TestServer::start(ServerConfig {
        tls: Some(ServerIdentity::generate().unwrap()),
        ..ServerConfig::default()
    })
}

fn tls_client(pin: Option<Fingerprint>) -> ClientConfig {
    ClientConfig {
        tls: Some(ClientTls { pin }),
        ..ClientConfig::default()
    }
}

#[test]
fn pinned_clients_relay_small_and_large_frames_intact() {
    let server = tls_server();
    let a = server.connect("ada").unwrap();
    let b = server.connect("bob").unwrap();
    assert!(a.server_fingerprint().is_some());
    wait_for_conns(&server, 2);
    assert!(server.conns.lock().unwrap().values().all(|c| c.is_tls()));

    // Small frames and ones far larger than a TLS record (16 KiB) and than
    // the writer's sealing chunk (64 KiB), with content that shows any
    // misplaced or repeated byte.
    let sizes = [0usize, 1, 16 * 1024 - 1, 16 * 1024 + 1, 200_000, 1 << 20];
    let frames: Vec<Frame> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let data: Vec<u8> = (0..n).map(|j| (j * 31 + i * 7) as u8).collect();
            Frame::new(
                3,
                FileChunk {
                    offset: i as u64,
                    data: data.into(),
                },
            )
        })
        .collect();
    for f in &frames {
        a.send(f).unwrap();
        a.send(&chat("between")).unwrap();
    }
    for f in &frames {
        let got = b.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(&got, f);
        let got = b.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(got, chat("between"));
    }
    drop((a, b));
    server.stop();
}

#[test]
fn a_changed_certificate_is_refused_before_any_application_data() {
    let server = tls_server();
    let impostor_pin = ServerIdentity::generate().unwrap().fingerprint();
    let started = Instant::now();
    let err = Client::connect(
        &server.addr.to_string(),
        hello("mallory-victim", None),
        tls_client(Some(impostor_pin)),
    )
    .unwrap_err();
    match &err {
        TransportError::FingerprintMismatch {
            expected, found, ..
        } => {
            assert_eq!(*expected, impostor_pin);
            assert_eq!(Some(*found), server.client.tls.as_ref().unwrap().pin);
        }
        other => panic!("expected a fingerprint mismatch, got {other}"),
    }
    assert!(err.to_string().contains("impostor"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server never saw a Hello: no connection reached the application.
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.conns.lock().unwrap().is_empty());
    // And the right pin still works.
    assert_relay_works(&server);
    server.stop();
}

#[test]
fn unpinned_client_learns_the_fingerprint_trust_on_first_use() {
    let server = tls_server();
    let c = Client::connect(
        &server.addr.to_string(),
        hello("newcomer", None),
        tls_client(None),
    )
    .unwrap();
    assert_eq!(
        c.server_fingerprint(),
        server.client.tls.as_ref().unwrap().pin
    );
    drop(c);
    server.stop();
}

#[test]
fn a_plain_client_gets_a_clear_refusal_from_a_tls_server() {
    let server = tls_server();
    let started = Instant::now();
    let err = Client::connect(
        &server.addr.to_string(),
        hello("plain", None),
        ClientConfig::default(),
    )
    .unwrap_err();
    match err {
        TransportError::Refused { code, reason } => {
            assert_eq!(code, ErrorCode::TLS_MISMATCH);
            assert!(reason.contains("requires TLS"), "{reason}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "no hang");
    server.stop();
}

#[test]
fn a_tls_client_gets_a_clear_refusal_from_a_plain_server() {
    let server = TestServer::start(ServerConfig::default());
    let started = Instant::now();
    let err = Client::connect(
        &server.addr.to_string(),
        hello("tls", None),
        tls_client(None),
    )
    .unwrap_err();
    match err {
        TransportError::Refused { code, reason } => {
            assert_eq!(code, ErrorCode::TLS_MISMATCH);
            assert!(reason.contains("--plain"), "{reason}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "no hang");
    server.stop();
}

#[test]
fn the_access_token_is_checked_over_tls() {
    let server = TestServer::start(ServerConfig {
        tls: Some(ServerIdentity::generate().unwrap()),
        token: Some("s3cret".into()),
        ..ServerConfig::default()
    });
    let addr = server.addr.to_string();
    let err = Client::connect(&addr, hello("x", Some("wrong")), server.client.clone()).unwrap_err();
    assert!(
        matches!(err, TransportError::Refused { code, .. } if code == ErrorCode::BAD_TOKEN),
        "{err}"
    );
    Client::connect(&addr, hello("y", Some("s3cret")), server.client.clone()).unwrap();
    server.stop();
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TCP connection to the server and a TLS client session that trusts any
/// certificate, handshake not started: for bytes no real client sends.
fn raw_tls_session(server: &TestServer) -> (TcpStream, rustls::ClientConnection) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "lanlink".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (tcp, conn)
}

/// A raw TLS session to the server, for sending hostile bytes inside (or
/// after) a valid handshake.
fn raw_tls(server: &TestServer) -> (TcpStream, rustls::ClientConnection) {
    let (mut tcp, mut conn) = raw_tls_session(server);
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    (tcp, conn)
}

#[test]
fn garbage_records_after_the_tls_handshake_end_only_that_connection() {
    let server = tls_server();
    let (mut tcp, mut conn) = raw_tls(&server);
    // A valid Hello inside TLS, then bytes that are not a TLS record.
    conn.writer()
        .write_all(&Frame::control(hello("raw", None)).to_bytes().unwrap())
        .unwrap();
    conn.complete_io(&mut tcp).unwrap();
    wait_for_conns(&server, 1);
    tcp.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    tcp.write_all(&[0xAB; 32]).unwrap();
    let reason = server.wait_closed(|r| matches!(r, CloseReason::Tls(_)));
    assert!(reason.to_string().contains("TLS"), "{reason}");
    assert_relay_works(&server);
    server.stop();
}

#[test]
fn garbage_instead_of_a_tls_handshake_is_refused_quickly() {
    let server = tls_server();
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Looks like a TLS handshake record, then is not.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let mut buf = Vec::new();
    let started = Instant::now();
    let _ = tcp.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(3));
    // At most a TLS alert record (content type 21), never a lanlink frame.
    assert!(buf.is_empty() || buf[0] == 0x15, "{buf:?}");
    assert_relay_works(&server);
    server.stop();
}

#[test]
fn a_peer_that_vanishes_mid_frame_inside_tls_is_reported() {
    let server = tls_server();
    let (mut tcp, mut conn) = raw_tls(&server);
    conn.writer()
        .write_all(&Frame::control(hello("half", None)).to_bytes().unwrap())
        .unwrap();
    conn.complete_io(&mut tcp).unwrap();
    wait_for_conns(&server, 1);
    let frame = chat("cut short").to_bytes().unwrap();
    conn.writer().write_all(&frame[..frame.len() / 2]).unwrap();
    conn.complete_io(&mut tcp).unwrap();
    // No close_notify, no rest of the frame: just the TCP end of stream.
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let reason = server.wait_closed(|r| matches!(r, CloseReason::PeerClosedMidFrame { .. }));
    assert!(matches!(reason, CloseReason::PeerClosedMidFrame { buffered } if buffered > 0));
    server.stop();
}

#[test]
fn the_identity_is_created_once_and_kept_private() {
    let dir = std::env::temp_dir().join(format!("lanlink-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (first, created) = ServerIdentity::load_or_create(&dir).unwrap();
    assert!(created);
    let (again, created) = ServerIdentity::load_or_create(&dir).unwrap();
    assert!(!created);
    assert_eq!(first.fingerprint(), again.fingerprint());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.join("tls-key.pem")).unwrap();
        assert_eq!(
            key.permissions().mode() & 0o077,
            0,
            "key readable by others"
        );
    }
    // A damaged key is an error naming the problem, not a new identity.
    std::fs::write(dir.join("tls-key.pem"), "not a key").unwrap();
    let err = ServerIdentity::load_or_create(&dir).unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fingerprints_print_and_parse_in_common_spellings() {
    let fp = ServerIdentity::generate().unwrap().fingerprint();
    let text = fp.to_string();
    assert!(
        text.starts_with("SHA256:") && text.len() == 7 + 64,
        "{text}"
    );
    assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
    let bare = text.trim_start_matches("SHA256:").to_uppercase();
    assert_eq!(bare.parse::<Fingerprint>().unwrap(), fp);
    let openssl: Vec<String> = bare
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert_eq!(openssl.join(":").parse::<Fingerprint>().unwrap(), fp);
    // The short form: the first 16 bytes, in groups of two.
    let grouped = fp.grouped();
    let digits: String = grouped.split(' ').collect();
    assert_eq!(grouped.split(' ').count(), 8, "{grouped}");
    assert!(
        text.starts_with(&format!("SHA256:{digits}")),
        "{grouped} / {text}"
    );
    assert!("SHA256:1234".parse::<Fingerprint>().is_err());
    assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
}

#[test]
fn the_tls_fuzz_entry_point_takes_a_real_client_hello_and_garbage() {
    // What the fuzz target starts from: a real ClientHello, then bytes
    // that are not TLS, truncated anywhere.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut client =
        rustls::ClientConnection::new(Arc::new(config), "lanlink".try_into().unwrap()).unwrap();
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).unwrap();
    }
    assert_eq!(hello[0], 0x16);
    hello.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4]);
    for cut in [0, 1, 5, hello.len() / 2, hello.len()] {
        lanlink_transport::fuzz_tls_server_read(&hello[..cut]);
    }
}

#[test]
fn the_tls_fuzz_corpus_replays_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tls");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        lanlink_transport::fuzz_tls_server_read(&data);
        n += 1;
    }
    assert!(n >= 3, "the seeds are missing from {}", dir.display());
}

#[test]
fn a_plain_welcome_in_answer_to_tls_is_refused_as_a_downgrade() {
    // Someone in between answers the ClientHello with a plain Welcome: the
    // client must not carry on in plain text, pinned or not.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf); // the ClientHello
        let welcome = Frame::control(lanlink_proto::control::Welcome {
            server_name: "evil".into(),
            client_id: 1,
            name: "victim".into(),
            capabilities: lanlink_proto::Capabilities::ALL,
            max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
            motd: String::new(),
        });
        s.write_all(&welcome.to_bytes().unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = s.read(&mut buf).unwrap_or(0);
        buf[..n].to_vec()
    });
    let pin = Some(ServerIdentity::generate().unwrap().fingerprint());
    let err =
        Client::connect(&addr.to_string(), hello("victim", None), tls_client(pin)).unwrap_err();
    assert!(err.to_string().contains("downgrad"), "{err}");
    let sent_in_clear = fake.join().unwrap();
    assert!(
        sent_in_clear.is_empty(),
        "sent in the clear: {sent_in_clear:?}"
    );
}

#[test]
fn close_notify_right_behind_the_handshake_frees_its_slot() {
    // Finished, close_notify and half a record in one write used to spin a
    // server handshake thread forever (rustls reads nothing after
    // close_notify), holding a handshake slot.
    let config = ServerConfig {
        tls: Some(ServerIdentity::generate().unwrap()),
        max_handshakes: 1,
        ..ServerConfig::default()
    };
    let refusals = config.refusals.clone();
    let server = TestServer::start(config);
    // Not raw_tls(): complete_io would send Finished on its own; the
    // handshake is driven by hand to batch the bytes.
    let (mut tcp, mut conn) = raw_tls_session(&server);
    let mut buf = vec![0u8; 65536];
    while conn.is_handshaking() {
        while conn.wants_write() && conn.is_handshaking() {
            conn.write_tls(&mut tcp).unwrap();
        }
        let n = tcp.read(&mut buf).unwrap();
        conn.read_tls(&mut &buf[..n]).unwrap();
        conn.process_new_packets().unwrap();
    }
    conn.send_close_notify();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out.extend_from_slice(&[0x17, 3, 3, 0x40, 0x00]);
    out.extend_from_slice(&[0u8; 8000]);
    tcp.write_all(&out).unwrap();
    // The slot comes back at once, not after the handshake deadline, and
    // because the handshake ended, not because a newcomer cut it (a new
    // connection takes the oldest handshake's place when every slot is
    // taken: the spinning thread would have lived on).
    std::thread::sleep(Duration::from_secs(1));
    let c = server.connect("next").expect("the slot came back");
    drop(c);
    assert_eq!(
        refusals.total(lanlink_transport::server::HANDSHAKE_CUT),
        0,
        "the handshake thread was still there when the next client came"
    );
    drop(tcp);
    server.stop();
}

#[test]
fn frames_and_close_notify_in_one_burst_all_arrive_then_the_close_is_orderly() {
    // The server hands decrypted records straight to its frame decoder
    // (several per read): a large frame split over many records, small
    // ones sharing a record, and close_notify behind them in the same
    // write must all come out whole, and the end be an orderly one.
    let server = tls_server();
    let watcher = server.connect("watch").unwrap();
    let (mut tcp, mut conn) = raw_tls(&server);
    conn.writer()
        .write_all(&Frame::control(hello("burst", None)).to_bytes().unwrap())
        .unwrap();
    conn.complete_io(&mut tcp).unwrap();
    wait_for_conns(&server, 2);
    conn.set_buffer_limit(None);
    let big: Vec<u8> = (0..300_000usize).map(|j| (j * 13) as u8).collect();
    let frames = [
        chat("first"),
        Frame::new(
            3,
            FileChunk {
                offset: 7,
                data: big.into(),
            },
        ),
        chat("second"),
        chat("third"),
    ];
    for f in &frames {
        conn.writer().write_all(&f.to_bytes().unwrap()).unwrap();
    }
    conn.send_close_notify();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    tcp.write_all(&out).unwrap();
    for f in &frames {
        let got = watcher
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(&got, f);
    }
    let reason = server.wait_closed(|r| {
        matches!(
            r,
            CloseReason::PeerClosed | CloseReason::PeerClosedMidFrame { .. }
        )
    });
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason}");
    drop(watcher);
    server.stop();
}

#[test]
fn a_tls_client_that_stops_reading_is_disconnected_and_others_are_unaffected() {
    // The server writes sealed records from rustls's buffer, sealing more
    // only once that is written: what waits for a peer that stopped
    // reading is still the queue the limit counts, and the peer is cut.
    let mut config = ServerConfig {
        tls: Some(ServerIdentity::generate().unwrap()),
        ..ServerConfig::default()
    };
    config.conn.max_queued_bytes = 1024 * 1024;
    stuck_reader_is_cut_at(config, 1024 * 1024 + 4096, |server| {
        let (mut tcp, mut conn) = raw_tls(server);
        conn.writer()
            .write_all(&Frame::control(hello("stuck", None)).to_bytes().unwrap())
            .unwrap();
        conn.complete_io(&mut tcp).unwrap();
        wait_for_conns(server, 1);
        Box::new((tcp, conn))
    });
}
