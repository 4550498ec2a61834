//! The browser server under hostile clients, over real sockets: slow-drip
//! request heads are cut at the deadline, connections beyond the caps are
//! refused at once while honest requests still work, viewers that leave a
//! quiet stream free their slots, and a publisher cannot inject content
//! into an MJPEG response.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::{jpeg, split_head, Http};
use lanlink_server::http::HttpConfig;

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// Sends a GET and reads the whole answer (the server closes after it).
fn get_from(from: &str, to: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = connect_from(from, to);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    split_head(&all)
}

#[test]
fn a_slow_dripping_client_is_cut_at_the_header_deadline() {
    let http = Http::start(HttpConfig {
        header_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    });
    let mut drip = TcpStream::connect(http.addr).unwrap();
    drip.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain(b"a".repeat(1000).iter())
        .copied()
        .collect::<Vec<_>>();
    let mut answer = Vec::new();
    // One byte every 50 ms: each read is quick, the head never completes.
    for b in head {
        if drip.write_all(&[b]).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match drip.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never cut");
        std::thread::sleep(Duration::from_millis(30));
    }
    let took = started.elapsed();
    let (head, _) = split_head(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2000),
        "cut after {took:?}"
    );
    // Meanwhile and afterwards an honest client is served.
    let (head, page) = get_from("127.0.0.1", http.addr, "/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&page).contains("<h2>Video</h2>"));
}

#[test]
fn connections_beyond_the_caps_are_refused_at_once_and_honest_snapshots_still_work() {
    let http = Http::start(HttpConfig {
        max_connections: 6,
        max_per_address: 4,
        header_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    });
    http.frames.publish("cam", 2, 2, 1, jpeg(b"frame")).unwrap();
    // Four silent connections from one address: its fifth is refused
    // at once, without waiting for a request.
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| connect_from("127.0.0.1", http.addr))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_refused_at_once("127.0.0.1", http.addr);
    // Another address still gets its snapshot.
    let (head, body) = get_from("127.0.0.2", http.addr, "/snapshot/cam");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, jpeg(b"frame"));
    // Two more from a third address reach the cap of six in all: a fourth
    // address then takes the place of the oldest connection of the one
    // holding more than its share (16 addresses cannot hold 256 slots).
    silent.extend((0..2).map(|_| connect_from("127.0.0.3", http.addr)));
    std::thread::sleep(Duration::from_millis(100));
    let (head, body) = get_from("127.0.0.4", http.addr, "/snapshot/cam");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, jpeg(b"frame"));
    silent[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(silent[0].read(&mut buf), Ok(0) | Err(_)),
        "the hoarder's oldest connection was closed"
    );
    // Once they go, everyone is served again.
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (head, body) = get_from("127.0.0.1", http.addr, "/snapshot/cam");
        if head.starts_with("HTTP/1.1 200") {
            assert_eq!(body, jpeg(b"frame"));
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {head}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn when_every_address_holds_its_share_newcomers_are_refused() {
    let http = Http::start(HttpConfig {
        max_connections: 6,
        max_per_address: 4,
        header_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    });
    // Six addresses, one connection each: nobody holds more than another.
    let silent: Vec<TcpStream> = (11..17)
        .map(|n| connect_from(&format!("127.0.0.{n}"), http.addr))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_refused_at_once("127.0.0.17", http.addr);
    assert_refused_at_once("127.0.0.11", http.addr);
    drop(silent);
}

#[test]
fn an_upload_that_drips_is_cut_and_its_bytes_leave_the_quota() {
    let dir = std::env::temp_dir().join(format!("lanlink-drip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (share, inbox) = (dir.join("share"), dir.join("inbox"));
    std::fs::create_dir_all(&share).unwrap();
    std::fs::create_dir_all(&inbox).unwrap();
    let files = lanlink_services::file::FileConfig {
        share: Some(share),
        inbox: Some(inbox.clone()),
        min_free_space: 0,
        upload_quota: Some(10 * 1024 * 1024),
        ..lanlink_services::file::FileConfig::default()
    };
    let ledger = files.ledger.clone();
    let http = Http::start(HttpConfig {
        files,
        ..HttpConfig::default()
    });
    let me: std::net::IpAddr = "127.0.0.5".parse().unwrap();
    // 50 KiB at once (less than the 64 KiB due in each 30 s window), then
    // a byte a second: cut when the first window ends.
    let mut s = connect_from("127.0.0.5", http.addr);
    write!(
        s,
        "POST /upload/drip.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&[7u8; 50 * 1024]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(ledger.uploaded(me) >= 50 * 1024, "counted as it arrives");
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(70) {
        let _ = s.write_all(b"x");
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"\n") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("too slow"), "{answer:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(45), "cut after {took:?}");
    // Nothing stays, and the quota is given back (but the partial file's
    // entry cost, which was made and removed, is the ledger's to keep).
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::fs::read_dir(&inbox).unwrap().next().is_none());
    assert!(ledger.uploaded(me) < 50 * 1024, "{}", ledger.uploaded(me));
    // An honest upload from the same address still goes through.
    let mut ok = connect_from("127.0.0.5", http.addr);
    write!(
        ok,
        "POST /upload/ok.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
    )
    .unwrap();
    let mut all = Vec::new();
    ok.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = ok.read_to_end(&mut all);
    let (head, _) = split_head(&all);
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    assert_eq!(std::fs::read(inbox.join("ok.bin")).unwrap(), b"hello");
    drop(http);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two different `Content-Length`s (or one beside `Transfer-Encoding`)
/// could be read one way by a proxy and another by the server: the
/// request is refused with 400 and nothing is stored; the same upload
/// said once goes through.
#[test]
fn an_upload_with_two_lengths_is_refused_and_stores_nothing() {
    let dir = std::env::temp_dir().join(format!("lanlink-two-lengths-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let http = Http::start(HttpConfig {
        files: lanlink_services::file::FileConfig {
            inbox: Some(inbox.clone()),
            min_free_space: 0,
            ..lanlink_services::file::FileConfig::default()
        },
        ..HttpConfig::default()
    });
    let ask = |head: &str| {
        let mut s = connect_from("127.0.0.6", http.addr);
        write!(s, "{head}hello").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        split_head(&all).0
    };
    for smuggled in [
        "POST /upload/two.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 5\r\n\r\n",
        "POST /upload/two.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let head = ask(smuggled);
        assert!(head.starts_with("HTTP/1.1 400"), "{smuggled:?}: {head}");
    }
    assert!(std::fs::read_dir(&inbox).unwrap().next().is_none());
    let head = ask("POST /upload/two.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    assert_eq!(std::fs::read(inbox.join("two.txt")).unwrap(), b"hello");
    drop(http);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_viewer_that_stops_reading_is_dropped_soon_after_the_write_timeout() {
    let http = Http::start(HttpConfig {
        max_viewers: 1,
        write_timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    });
    let publisher = Publisher::start(&http, vec![0x55u8; 40_000]);
    std::thread::sleep(Duration::from_millis(100));
    // The one viewer slot is taken by a viewer that reads its first part
    // and then nothing more (its socket stays open).
    let (stuck, head) = start_viewing(http.addr, "cam");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let started = Instant::now();
    // Another viewer gets 503 until the stuck one is dropped.
    let dropped_after = loop {
        let (other, head) = start_viewing(http.addr, "cam");
        if head.starts_with("HTTP/1.1 200") {
            drop(other);
            break started.elapsed();
        }
        assert!(head.contains(" 503 "), "{head}");
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the stuck viewer still holds its slot"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    publisher.stop();
    drop(stuck);
    eprintln!("the stuck viewer was dropped after {dropped_after:?}");
    // The kernel's buffers hold a little (the viewer's socket buffer is
    // kept small), then the 2 s write timeout: well under 10 s.
    assert!(
        dropped_after < Duration::from_secs(7),
        "dropped after {dropped_after:?}"
    );
}

/// Reads `s` a little at a time (`chunk` bytes every `every`) until the
/// server ends the answer or `patience` passes; how long it took, or
/// `None` if the answer was still going.
fn trickle(
    mut s: TcpStream,
    chunk: usize,
    every: Duration,
    patience: Duration,
) -> Option<Duration> {
    s.set_read_timeout(Some(every)).unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; chunk];
    while started.elapsed() < patience {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => std::thread::sleep(every),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// A socket to `to` with a small receive buffer, so that what the server
/// sends waits on the reader, not in the kernel.
fn small_window(to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// A download or a viewer that reads a trickle (never stalling long
/// enough for the write timeout) is cut once it falls behind the minimum
/// pace, freeing its slot; a reader at a normal pace gets everything.
#[test]
fn downloads_and_viewers_reading_a_trickle_are_cut_at_the_minimum_pace() {
    let dir = std::env::temp_dir().join(format!("lanlink-pace-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    let http = Http::start(HttpConfig {
        files: lanlink_services::file::FileConfig {
            share: Some(dir.clone()),
            ..lanlink_services::file::FileConfig::default()
        },
        min_pace: lanlink_server::http::MinPace {
            bytes: 256 * 1024,
            per: Duration::from_secs(1),
        },
        // Each blocked write returns what it sent within 2 s (never an
        // error while the reader takes something): the pace is what cuts.
        write_timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    });
    let publisher = Publisher::start(&http, vec![0x55u8; 40_000]);
    std::thread::sleep(Duration::from_millis(100));
    let addr = http.addr;
    let slow = move |path: &str| {
        let mut s = small_window(addr);
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        // 1 KiB every 100 ms: about 10 KB/s, never stalled for the 2 s
        // write timeout, far below 256 KiB per second of waiting.
        trickle(s, 1024, Duration::from_millis(100), Duration::from_secs(30))
    };
    let download = std::thread::spawn(move || slow("/files/big.bin"));
    let viewer = slow("/stream/cam");
    let download = download.join().unwrap();
    eprintln!("cut after: viewer {viewer:?}, download {download:?}");
    assert!(viewer.is_some(), "the trickling viewer was never cut");
    assert!(download.is_some(), "the trickling download was never cut");
    // Not before the pace could tell (a window of waiting), and soon after.
    for took in [viewer, download].into_iter().flatten() {
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(20),
            "{took:?}"
        );
    }
    // A reader at a normal pace gets the whole file, and frames.
    let (head, body) = get_from("127.0.0.1", http.addr, "/files/big.bin");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body == big,
        "the whole file, {} of {} bytes",
        body.len(),
        big.len()
    );
    let (honest, head) = start_viewing(http.addr, "cam");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(honest);
    publisher.stop();
    drop(http);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Publishes `cam`, frames of `fill` (in a JPEG's markers) at 25 a second
/// for at most a minute, until stopped.
struct Publisher {
    publishing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Publisher {
    fn start(http: &Http, fill: Vec<u8>) -> Publisher {
        let publishing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (frames, on) = (http.frames.clone(), publishing.clone());
        let thread = std::thread::spawn(move || {
            for seq in 1..=1500u64 {
                if !on.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                frames.publish("cam", 640, 480, seq, jpeg(&fill)).unwrap();
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Publisher { publishing, thread }
    }

    fn stop(self) {
        self.publishing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}

/// A connection from `from` is answered 503 before it sends anything.
fn assert_refused_at_once(from: &str, to: SocketAddr) {
    let mut s = connect_from(from, to);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
}

/// Opens `/stream/NAME` and reads up to the end of the first part's head.
fn start_viewing(addr: SocketAddr, name: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /stream/{name} HTTP/1.1\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.windows(4).filter(|w| *w == b"\r\n\r\n").count() < 2 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    (s, String::from_utf8_lossy(&seen).into_owned())
}

/// Opens `/stream/NAME` from the loopback address `from` and reads up to
/// the end of the first part's head.
fn start_viewing_from(from: &str, addr: SocketAddr, name: &str) -> (TcpStream, Vec<u8>) {
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /stream/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.windows(4).filter(|w| *w == b"\r\n\r\n").count() < 2 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    (s, seen)
}

#[test]
fn viewers_from_other_addresses_cannot_hold_every_viewer_slot() {
    // Finding 9: viewers reading slower than the stream held every viewer
    // slot, and an honest viewer got 503.
    let http = Http::start(HttpConfig {
        max_viewers: 4,
        ..HttpConfig::default()
    });
    // Small frames at 25 a second.
    let publisher = Publisher::start(&http, b"honest-frame".to_vec());
    std::thread::sleep(Duration::from_millis(100));
    // Two other addresses take every viewer slot and read no more.
    let mut hoarders = Vec::new();
    for from in ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"] {
        let (s, seen) = start_viewing_from(from, http.addr, "cam");
        let seen = String::from_utf8_lossy(&seen).into_owned();
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        hoarders.push(s);
    }
    // The honest viewer still gets the stream, and a frame.
    let (mut honest, mut seen) = start_viewing_from("127.0.0.1", http.addr, "cam");
    let head = String::from_utf8_lossy(&seen).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut buf = [0u8; 4096];
    while !seen.windows(12).any(|w| w == b"honest-frame") {
        match honest.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        seen.windows(12).any(|w| w == b"honest-frame"),
        "no frame for the honest viewer"
    );
    publisher.stop();
    // One hoarder's oldest viewer made way: its socket was shut (the
    // others see no end, only the read timeout once drained).
    let mut ended = 0;
    for s in &mut hoarders {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut all = Vec::new();
        if s.read_to_end(&mut all).is_ok() {
            ended += 1;
        }
    }
    assert_eq!(ended, 1, "one hoarder's viewer evicted");
}

#[test]
fn viewers_that_leave_a_quiet_stream_free_their_slots() {
    let http = Http::start(HttpConfig {
        max_viewers: 2,
        ..HttpConfig::default()
    });
    // One frame, then the stream goes quiet.
    http.frames
        .publish("quiet", 2, 2, 1, jpeg(b"only"))
        .unwrap();
    for _ in 0..3 {
        let viewers: Vec<_> = (0..2).map(|_| start_viewing(http.addr, "quiet")).collect();
        for (_, head) in &viewers {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
        // Both slots are taken now.
        let (_, head) = start_viewing(http.addr, "quiet");
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        // They close their sockets; no frame comes to fail a write on.
        drop(viewers);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let (s, head) = start_viewing(http.addr, "quiet");
            if head.starts_with("HTTP/1.1 200") {
                drop(s);
                break;
            }
            assert!(Instant::now() < deadline, "the viewer slots leaked");
        }
        std::thread::sleep(Duration::from_millis(600));
    }
}

#[test]
fn a_publisher_cannot_inject_parts_or_headers() {
    let http = Http::start(HttpConfig::default());
    // A real-looking JPEG whose comment holds a forged part with the old
    // fixed boundary.
    let forged = b"\xFF\xFE\x00\x40\r\n--lanlinkframe\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>\r\n";
    http.frames.publish("cam", 2, 2, 1, jpeg(forged)).unwrap();
    let (s, head) = start_viewing(http.addr, "cam");
    let boundary = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: multipart/x-mixed-replace; boundary="))
        .expect("a multipart answer")
        .to_owned();
    assert!(
        boundary.len() >= 32 && boundary != "lanlinkframe",
        "{boundary}"
    );
    // The part is one image of exactly the frame's length.
    assert!(
        head.contains(&format!(
            "--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {}",
            jpeg(forged).len()
        )),
        "{head}"
    );
    // Two streams do not share a boundary.
    let (_, other) = start_viewing(http.addr, "cam");
    assert!(!other.contains(&boundary));
    s.shutdown(std::net::Shutdown::Both).unwrap();

    // Anything but a JPEG image is never stored, so never served.
    assert!(http
        .frames
        .publish(
            "html",
            2,
            2,
            1,
            Bytes::from_static(b"<html><script>x</script></html>")
        )
        .is_err());
    let (head, _) = get_from("127.0.0.1", http.addr, "/snapshot/html");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // A name with a line break never reaches a header.
    http.frames
        .publish("evil\r\nSet-Cookie: x=1", 2, 2, 1, jpeg(b"e"))
        .unwrap();
    let (head, body) = get_from(
        "127.0.0.1",
        http.addr,
        "/snapshot/evil%0D%0ASet-Cookie:%20x=1",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("Set-Cookie"), "{head}");
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    assert_eq!(body, jpeg(b"e"));
    let (head, page) = get_from("127.0.0.1", http.addr, "/");
    assert!(head.contains("Content-Security-Policy"), "{head}");
    assert!(!String::from_utf8_lossy(&page).contains("<script>"));
}

#[test]
fn malformed_oversized_and_other_requests_get_clear_answers() {
    let http = Http::start(HttpConfig::default());
    for (request, status) in [
        ("\x16\x03\x01\x02\x00garbage\r\n\r\n".to_owned(), "400"),
        (format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)), "431"),
        (
            format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(100)),
            "431",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_owned(),
            "405",
        ),
        ("GET /nothing HTTP/1.1\r\n\r\n".to_owned(), "404"),
    ] {
        let mut s = TcpStream::connect(http.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(request.as_bytes());
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:.40?}: {answer:?}"
        );
    }
}

/// `/state` lists each stream with its publisher, size, frame rate and
/// viewers, every peer string JSON-escaped (and `<` too); the page loads
/// its polling script from `/page.js`, which the page's policy allows, and
/// escapes names in the HTML it renders.
#[test]
fn state_lists_streams_with_peer_text_escaped_and_the_page_follows_it() {
    let http = Http::start(HttpConfig::default());
    let name = "door</script>\"\\\u{1b}[2J";
    for seq in 1..=3 {
        http.frames
            .publish_by(name, "ev\"il<b>", 4, 2, seq, jpeg(b"x"))
            .unwrap();
    }
    let (head, body) = get_from("127.0.0.1", http.addr, "/state");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let body = String::from_utf8(body).unwrap();
    let expected = r#"{"ok":true,"result":{"streams":[{"name":"door\u003c/script>\"\\\u001b[2J","publisher":"ev\"il\u003cb>","width":4,"height":2,"fps":"#;
    assert!(body.starts_with(expected), "{body}");
    assert!(body.contains(r#","viewers":0,"seq":3}]}}"#), "{body}");
    assert!(
        !body.contains('\u{1b}') && !body.contains("</script"),
        "{body}"
    );

    let (head, page) = get_from("127.0.0.1", http.addr, "/");
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains(r#"<script src="/page.js" defer></script>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"data-name="door&lt;/script&gt;&quot;"#),
        "{page}"
    );
    assert!(!page.contains("</script>\""), "{page}");
    assert!(
        head.contains("script-src 'self'") && head.contains("connect-src 'self'"),
        "{head}"
    );
    let (head, script) = get_from("127.0.0.1", http.addr, "/page.js");
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    let script = String::from_utf8(script).unwrap();
    assert!(script.contains("fetch('/state'") && script.contains("setInterval(poll, 1000)"));
    // Names only ever reach the DOM as text or attribute values.
    assert!(!script.contains("innerHTML"), "{script}");

    // An ended stream leaves /state, the page and /snapshot.
    http.frames.remove(name);
    let (_, body) = get_from("127.0.0.1", http.addr, "/state");
    assert_eq!(body, b"{\"ok\":true,\"result\":{\"streams\":[]}}\n");
    let (_, page) = get_from("127.0.0.1", http.addr, "/");
    assert!(!String::from_utf8_lossy(&page).contains("data-name"));
    let (head, _) = get_from("127.0.0.1", http.addr, "/snapshot/door");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

// ------------------------------------------------------------------ fuzzing

/// The `http` fuzz target's seeds: a read size byte, a stream name, then
/// what a browser sends (the format is on `fuzz_http_request`).
fn http_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let seed = |read: u8, name: &str, request: &str| {
        let mut v = vec![read, name.len() as u8];
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(request.as_bytes());
        v
    };
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: lanlink\r\n\r\n");
    vec![
        ("seed-page", seed(0, "door cam", &get("/"))),
        (
            "seed-page-hostile-name",
            seed(0, "<img src=x onerror=alert(1)>\"'&", &get("/index.html")),
        ),
        ("seed-json", seed(0, "a\"b\\c<d", &get("/streams.json"))),
        ("seed-snapshot", seed(0, "", &get("/snapshot/cam.jpg"))),
        (
            "seed-snapshot-missing",
            seed(0, "", &get("/snapshot/nobody")),
        ),
        ("seed-stream", seed(0, "", &get("/stream/cam"))),
        (
            "seed-stream-percent",
            seed(6, "door cam", &get("/stream/door%20cam?x=1#y")),
        ),
        (
            "seed-method",
            seed(0, "", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
        ),
        (
            "seed-drip",
            seed(2, "", "GET /stream/cam HTTP/1.1\r\nHost: x\r\n"),
        ),
        ("seed-drip-timeout", seed(3, "", "GET / HTTP/1.1\r\n")),
        (
            "seed-garbage",
            seed(0, "", "\u{16}\u{3}\u{1}not http\r\n\r\n"),
        ),
        (
            "seed-many-headers",
            seed(
                0,
                "",
                &format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(40)),
            ),
        ),
        (
            "seed-long",
            seed(0, "", &format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000))),
        ),
    ]
}

fn http_corpus() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/http")
}

#[test]
fn the_http_fuzz_corpus_replays_and_the_seeds_are_current() {
    for (name, bytes) in http_seeds() {
        let committed = std::fs::read(http_corpus().join(name)).unwrap_or_default();
        assert!(
            committed == bytes,
            "fuzz/corpus/http/{name} is stale or missing; regenerate the seeds"
        );
    }
    // Every input, the fuzzer's finds included, through the target's path.
    let mut n = 0;
    for entry in std::fs::read_dir(http_corpus()).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        lanlink_server::http::fuzz_http_request(&data);
        n += 1;
    }
    assert!(n >= http_seeds().len());
}

/// Rewrites the `http` target's seeds.
#[test]
#[ignore = "writes fuzz/corpus/http; run by hand after changing the seeds"]
fn regenerate_http_seed_corpus() {
    std::fs::create_dir_all(http_corpus()).unwrap();
    for (name, bytes) in http_seeds() {
        std::fs::write(http_corpus().join(name), bytes).unwrap();
    }
}

/// Sends `GET path` with `Host: host`; the status line of the answer.
fn status_for_host(to: SocketAddr, path: &str, host: &str) -> String {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let (head, _) = split_head(&all);
    head.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn without_a_token_only_known_host_names_are_answered() {
    let http = Http::start(HttpConfig {
        host_names: vec!["LanBox.".into()],
        ..HttpConfig::default()
    });
    let port = http.addr.port();
    // A DNS-rebinding page's requests name its own host: refused on the
    // page, the share, uploads' auth and the WebSockets alike.
    for path in ["/", "/files/", "/auth", "/ws", "/audio", "/state"] {
        for host in [format!("evil.example:{port}"), "127.0.0.1.nip.io".into()] {
            let status = status_for_host(http.addr, path, &host);
            assert!(status.contains(" 421 "), "{path} for {host}: {status}");
        }
    }
    // IP literals, localhost and the given name are this server.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("localhost:{port}"),
        format!("lanbox:{port}"),
    ] {
        let status = status_for_host(http.addr, "/", &host);
        assert!(status.contains(" 200 "), "{host}: {status}");
    }
}

#[test]
fn with_a_token_other_host_names_meet_the_token_instead() {
    let http = Http::start(HttpConfig {
        access_token: Some("secret".into()),
        ..HttpConfig::default()
    });
    // The page itself is public; the share wants the session.
    let status = status_for_host(http.addr, "/", "lanbox.example");
    assert!(status.contains(" 200 "), "{status}");
    let status = status_for_host(http.addr, "/files/", "lanbox.example");
    assert!(
        status.contains(" 401 ") || status.contains(" 403 "),
        "{status}"
    );
}

/// Sends `GET path` with `cookie` (if any); the head and the body.
fn get_with_cookie(to: SocketAddr, path: &str, cookie: Option<&str>) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}\r\n");
    if path.starts_with("/stream/") {
        // The MJPEG answer does not end: its head (which may come in
        // several segments) and what came with it will do.
        let mut all = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        for _ in 0..64 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if all.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        return split_head(&all);
    }
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    split_head(&all)
}

#[test]
fn with_a_token_video_is_only_for_browsers_that_logged_in() {
    let http = Http::start(HttpConfig {
        access_token: Some("secret".into()),
        ..HttpConfig::default()
    });
    http.frames
        .publish_by("door", "ann", 2, 2, 1, jpeg(b"door frame"))
        .unwrap();
    // Without the session: no frame, no stream, no names.
    for path in [
        "/state",
        "/streams.json",
        "/snapshot/door",
        "/snapshot/door.jpg",
        "/stream/door",
    ] {
        let (head, body) = get_with_cookie(http.addr, path, None);
        assert!(head.starts_with("HTTP/1.1 403 "), "{path}: {head}");
        assert!(!String::from_utf8_lossy(&body).contains("door"), "{path}");
    }
    let (head, page) = get_with_cookie(http.addr, "/", None);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let page = String::from_utf8_lossy(&page);
    assert!(!page.contains("door") && !page.contains("ann"), "{page}");

    // The token buys a session, and the session the video.
    let mut s = TcpStream::connect(http.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"token":"secret"}"#;
    let _ = write!(
        s,
        "POST /auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let (head, _) = split_head(&all);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session: {head}"))
        .to_owned();
    let (head, body) = get_with_cookie(http.addr, "/snapshot/door", Some(&cookie));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, jpeg(b"door frame").to_vec());
    let (head, body) = get_with_cookie(http.addr, "/state", Some(&cookie));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("\"door\""));
    let (head, _) = get_with_cookie(http.addr, "/stream/door", Some(&cookie));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let (_, page) = get_with_cookie(http.addr, "/", Some(&cookie));
    assert!(String::from_utf8_lossy(&page).contains("door"));
}
