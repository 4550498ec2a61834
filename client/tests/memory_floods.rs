//! Hostile servers that would make the client hold far more memory than
//! its bounds (64 MiB per queue) say, and do not.
//!
//! The tests measure the process's peak memory: they run one at a time
//! ([`ONE_AT_A_TIME`]), each from a peak reset to what is resident.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lanlink_client::proto::chat::Roster;
use lanlink_client::proto::file::{FileChunk, FileOffer};
use lanlink_client::proto::Frame;
use lanlink_client::{Backoff, Quiet, Reconnecting, Session, TransferOptions};

mod support;
use support::{let_in, settled, until_file_request, write_frame};

/// The most the flood sends: more than the client may hold (its bounds
/// are 64 MiB per queue), less than a test should spend.
const FLOOD: usize = 1536 << 20;
const CHUNK: usize = 1 << 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Sets this process's peak resident memory back to what is resident now
/// (`/proc/self/clear_refs`, Linux 4.0 and later).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

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

/// Lets the client in, answers its first file request with an offer of
/// 1,000 bytes, then sends chunks of 1 MiB on that stream without end
/// (until `FLOOD`, 30 s, or the client is gone), ignoring the refusal and
/// the goodbye. `sent` counts the bytes written.
fn hostile_server(sent: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut tcp, mut next) = let_in(&listener);
        // `get` asks what the name is first: one file of 1,000 bytes.
        let request = until_file_request(&mut tcp, &mut next, 1000);
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
        // takes the little it sends. A client gone with its buffer full
        // ends the flood.
        tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
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
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sent = Arc::new(AtomicUsize::new(0));
    let addr = hostile_server(sent.clone());
    let dir = tempfile::tempdir().unwrap();
    let (session, _events_never_read) = Session::builder(&addr).plain().connect().unwrap();
    reset_peak();
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

/// A server that lets one client in and sends it rosters of 65,535
/// one-byte names (196 KB on the wire, 3.7 MB decoded) until 512 MiB, 20 s,
/// or the client is gone; `sent` counts the bytes written. Its address,
/// and the flood's thread.
fn roster_flood(sent: Arc<AtomicUsize>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let flood = std::thread::spawn(move || {
        let (mut tcp, _) = let_in(&listener);
        let roster = Frame::control(Roster {
            room: "lobby".into(),
            members: (0..u16::MAX)
                .map(|i| ((b'a' + (i % 26) as u8) as char).to_string())
                .collect(),
        });
        let encoded = roster.to_bytes().unwrap();
        // A client that closed with its buffer full ends the flood.
        tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let started = Instant::now();
        while sent.load(Ordering::Relaxed) < 512 << 20
            && started.elapsed() < Duration::from_secs(20)
        {
            if tcp.write_all(&encoded).is_err() {
                return;
            }
            sent.fetch_add(encoded.len(), Ordering::Relaxed);
        }
    });
    (addr, flood)
}

/// The queues are bounded by what frames hold decoded, not by their size
/// on the wire. A roster of 65,535 one-byte names is 196 KB on the wire
/// and 3.7 MB decoded: counted by wire size, 64 MiB of them filled the
/// transport's queue with 1.2 GB (an outside attack, helper-67: 1.35 GB
/// held by `lanlink get` and `lanlink chat` for 76 MiB sent). Here an
/// application that never reads its events is sent such rosters until
/// its queues are full and the server can send no more.
#[test]
fn rosters_of_tiny_names_are_held_by_what_they_take_in_memory() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sent = Arc::new(AtomicUsize::new(0));
    let (addr, flood) = roster_flood(sent.clone());
    let (session, _events_never_read) = Session::builder(&addr).plain().connect().unwrap();
    reset_peak();
    let before = peak_rss();
    let taken = settled(&sent);
    let grew = peak_rss().saturating_sub(before);
    eprintln!(
        "{} MiB of rosters sent, peak memory grew {} MiB",
        taken >> 20,
        grew >> 20
    );
    assert!(taken > 4 << 20, "the rosters reached the client");
    // Two queues of 64 MiB (the transport's, the session's events), the
    // socket buffers, and a roster being decoded.
    assert!(grew < 300 << 20, "held {} MiB", grew >> 20);
    session.close("done");
    drop(session);
    let _ = flood.join();
}

/// A server that floods rosters of tiny names at a [`Reconnecting`] session
/// (what `lanlink chat` on a terminal runs on) whose application reads no
/// events. It holds one queue more than a session (its own events, which
/// it passes the session's on to), each bounded by what the events take
/// in memory; and once told to close it closes at once, the flood still
/// coming.
#[test]
fn a_reconnecting_session_holds_a_roster_flood_within_its_bounds() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sent = Arc::new(AtomicUsize::new(0));
    let (addr, flood) = roster_flood(sent.clone());
    let builder = Session::builder(&addr).plain();
    let (link, _events_never_read) = Reconnecting::connect(builder, Backoff::default()).unwrap();
    reset_peak();
    let before = peak_rss();
    let taken = settled(&sent);
    let grew = peak_rss().saturating_sub(before);
    eprintln!(
        "{} MiB of rosters sent to a reconnecting session, peak memory grew {} MiB",
        taken >> 20,
        grew >> 20
    );
    assert!(taken > 4 << 20, "the rosters reached the client");
    // Three queues of 64 MiB (the transport's, the session's events, the
    // reconnecting session's events), the socket buffers, and a roster
    // being decoded.
    assert!(grew < 400 << 20, "held {} MiB", grew >> 20);
    assert!(link.is_connected(), "a full queue is not a lost connection");
    let closing = Instant::now();
    link.close("done");
    let took = closing.elapsed();
    assert!(took < Duration::from_secs(5), "close took {took:?}");
    drop(link);
    let _ = flood.join();
}
