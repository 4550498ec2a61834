//! A hostile server that floods a transfer the client refused, and goes on
//! while the client closes, does not make the client hold the flood.
//!
//! One test in its own binary: it measures the process's peak memory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lanlink_client::proto::control::Welcome;
use lanlink_client::proto::file::{DirEntry, FileChunk, FileOffer, Listing};
use lanlink_client::proto::{Capabilities, Frame, FrameDecoder, Message};
use lanlink_client::{Quiet, Session, TransferOptions};

/// The most the flood sends: more than the client may hold (its bounds
/// are 64 MiB per queue), less than a test should spend.
const FLOOD: usize = 1536 << 20;
const CHUNK: usize = 1 << 20;

/// This process's peak resident memory, from `/proc/self/status`.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib << 10
}

fn write_frame(tcp: &mut TcpStream, frame: &Frame) -> std::io::Result<usize> {
    let bytes = frame.to_bytes().unwrap();
    tcp.write_all(&bytes)?;
    Ok(bytes.len())
}

/// Lets the client in, answers its first file request with an offer of
/// 1,000 bytes, then sends chunks of 1 MiB on that stream without end
/// (until `FLOOD`, 30 s, or the client is gone), ignoring the refusal and
/// the goodbye. `sent` counts the bytes written.
fn hostile_server(sent: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut decoder = FrameDecoder::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut next = |tcp: &mut TcpStream| loop {
            if let Some(frame) = decoder.decode().unwrap() {
                return frame;
            }
            let n = tcp.read(&mut buf).unwrap();
            assert!(n > 0, "the client left before asking");
            decoder.push(&buf[..n]);
        };
        let hello = next(&mut tcp);
        assert!(matches!(hello.message, Message::Hello(_)), "{hello:?}");
        let welcome = Welcome {
            server_name: "evil".into(),
            client_id: 1,
            name: "me".into(),
            capabilities: Capabilities::ALL,
            max_payload: 16 << 20,
            motd: String::new(),
        };
        write_frame(&mut tcp, &Frame::control(welcome)).unwrap();
        // `get` asks what the name is first: one file of 1,000 bytes.
        let request = loop {
            let frame = next(&mut tcp);
            match frame.message {
                Message::ListRequest(ref r) => {
                    let listing = Listing {
                        path: r.path.clone(),
                        entries: vec![DirEntry {
                            name: String::new(),
                            is_dir: false,
                            size: 1000,
                            modified: 0,
                        }],
                        done: true,
                    };
                    write_frame(&mut tcp, &Frame::new(frame.stream, listing)).unwrap();
                }
                Message::FileRequest(_) => break frame,
                _ => {}
            }
        };
        let offer = FileOffer {
            name: "f".into(),
            size: 1000,
            hash: None,
            offset: 0,
            to: None,
            from: None,
        };
        write_frame(&mut tcp, &Frame::new(request.stream, offer)).unwrap();
        // One chunk, encoded once, written again and again.
        let chunk = Frame::new(
            request.stream,
            FileChunk {
                offset: 0,
                data: Bytes::from(vec![7u8; CHUNK]),
            },
        );
        let mut encoded = BytesMut::new();
        chunk.encode(&mut encoded).unwrap();
        // Nothing the client says is read from here on: its socket buffer
        // takes the little it sends.
        let started = Instant::now();
        while sent.load(Ordering::Relaxed) < FLOOD && started.elapsed() < Duration::from_secs(30) {
            if tcp.write_all(&encoded).is_err() {
                return;
            }
            sent.fetch_add(encoded.len(), Ordering::Relaxed);
        }
    });
    addr
}

/// Before, the client refused the transfer, dropped its route, and once
/// closing let the flood into its queues bounded by count alone (4,096
/// frames each): an outside attack (helper-66) grew `lanlink get` to
/// 885 MB in the two seconds of its close. Now a frame that finds no room
/// while this side closes is dropped.
#[test]
fn a_flood_on_a_refused_transfer_is_not_held_while_the_client_closes() {
    let sent = Arc::new(AtomicUsize::new(0));
    let addr = hostile_server(sent.clone());
    let dir = tempfile::tempdir().unwrap();
    let (session, _events_never_read) = Session::builder(&addr).plain().connect().unwrap();
    let before = peak_rss();

    let refused = session.get("f", dir.path(), &TransferOptions::default(), &mut Quiet);
    assert!(refused.is_err(), "a 1,000-byte file sent in MiB chunks");
    let closing = Instant::now();
    session.close("done");
    let took = closing.elapsed();

    let grew = peak_rss().saturating_sub(before);
    let flooded = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood {} MiB, close took {took:?}, peak memory grew {} MiB",
        flooded >> 20,
        grew >> 20
    );
    assert!(
        flooded > 384 << 20,
        "the flood reached the client ({} MiB): the test shows nothing",
        flooded >> 20
    );
    // Three queues of 64 MiB at most (the transport's, the session's
    // events, a transfer's route) and the buffers around them.
    assert!(grew < 256 << 20, "held {} MiB", grew >> 20);
    assert!(took < Duration::from_secs(10), "close took {took:?}");
    // Nothing partial looks complete.
    assert!(!dir.path().join("f").exists(), "a refused file was kept");
}
