//! A frame a peer has started must arrive whole in the time its length
//! allows: a peer dripping a large frame cannot make the server hold it
//! (and its memory) for as long as it likes, while a slow but steady
//! sender, and everyone else, is unaffected.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{assert_relay_works, raw_handshake, raw_handshake_from, wait_for_conns, TestServer};
use lanlink_proto::{file::FileChunk, Frame};
use lanlink_transport::{CloseReason, ServerConfig};

const CHUNK: usize = 256 * 1024;
const RATE: u32 = 64 * 1024;
const GRACE: Duration = Duration::from_secs(1);

fn chunk() -> Vec<u8> {
    Frame::new(
        2,
        FileChunk {
            offset: 0,
            data: vec![7u8; CHUNK].into(),
        },
    )
    .to_bytes()
    .unwrap()
    .to_vec()
}

#[test]
fn a_dripped_frame_is_cut_at_its_time_and_a_steady_one_is_not() {
    let server = TestServer::start(ServerConfig {
        min_frame_rate: RATE,
        frame_grace: GRACE,
        ..ServerConfig::default()
    });
    let addr = server.addr;
    // Allowed: 1 s + 256 KiB at 64 KiB/s = 5 s.
    let allowed = GRACE + Duration::from_secs_f64(CHUNK as f64 / f64::from(RATE));

    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        let (mut s, _d) = raw_handshake(addr, "dripper");
        let frame = chunk();
        let mut at = 0;
        s.write_all(&frame[..1000]).unwrap();
        at += 1000;
        // 100 bytes every 100 ms: far more often than the idle timeout
        // needs, far slower than the frame needs.
        while at + 100 < frame.len() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(&frame[at..at + 100]).is_err() {
                return started.elapsed();
            }
            at += 100;
        }
        started.elapsed()
    });
    // Twice the minimum rate, in 16 KiB pieces: on time.
    let steady = std::thread::spawn(move || {
        let (mut s, _d) = raw_handshake(addr, "steady");
        let frame = chunk();
        for piece in frame.chunks(16 * 1024) {
            s.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(125));
        }
        s
    });
    let reason = server.wait_closed(|r| matches!(r, CloseReason::FrameTooSlow { .. }));
    let cut_after = started.elapsed();
    match reason {
        CloseReason::FrameTooSlow { len, arrived, .. } => {
            let whole = chunk().len() - lanlink_proto::HEADER_LEN;
            assert_eq!(len as usize, whole, "the header's length");
            assert!(arrived < CHUNK / 4, "{arrived} bytes had arrived");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        cut_after >= allowed && cut_after < allowed + Duration::from_secs(3),
        "cut after {cut_after:?}; allowed {allowed:?}"
    );
    let _steady_socket = steady.join().unwrap();
    wait_for_conns(&server, 1);
    assert_relay_works(&server);
    assert_eq!(
        server
            .closed
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r, CloseReason::FrameTooSlow { .. }))
            .count(),
        1,
        "only the dripper was cut: {:?}",
        server.closed.lock().unwrap()
    );
    assert!(dripper.join().unwrap() < Duration::from_secs(20));
    server.stop();
}

/// Large frames peers have started count against the server's limit on
/// frames in progress: past it, a connection starting one is not read on
/// until there is room (so slow senders together cannot make the server
/// hold more), while small frames, chat among them, still go through at
/// once.
#[test]
fn large_frames_in_progress_are_bounded_in_all_and_chat_is_not() {
    let server = TestServer::start(ServerConfig {
        max_frames_in_progress: 400 * 1024,
        // The slow one must not be cut for its pace while the test runs.
        frame_grace: Duration::from_secs(60),
        ..ServerConfig::default()
    });
    let addr = server.addr;
    let (mut slow, _d1) = raw_handshake(addr, "slow");
    let (mut quick, _d2) = raw_handshake(addr, "quick");
    let (mut chatter, _d3) = raw_handshake(addr, "chatter");
    let listener = server.connect("listener").unwrap();
    wait_for_conns(&server, 4);
    let frame = chunk();
    // The slow one holds 256 KiB of the 400 reserved, sending half.
    slow.write_all(&frame[..frame.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The quick one's whole chunk waits for room: 512 KiB > 400.
    quick.write_all(&frame).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    chatter
        .write_all(&common::chat("still here").to_bytes().unwrap())
        .unwrap();
    let first = listener
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("the chat line");
    assert!(
        first == common::chat("still here"),
        "chat first, at once; got a {:?}",
        first.kind()
    );
    assert!(
        listener
            .recv_timeout(Duration::from_millis(700))
            .unwrap()
            .is_none(),
        "no chunk is whole yet: the quick one waits for room"
    );
    // One more waits for room, then its peer goes: it is let go at once,
    // not when room comes (its frame can never be finished).
    let (mut gone, _d4) = raw_handshake(addr, "gone");
    gone.write_all(&frame[..64 * 1024]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(gone);
    let reason = server.wait_closed(|r| matches!(r, CloseReason::PeerClosedMidFrame { .. }));
    assert!(matches!(reason, CloseReason::PeerClosedMidFrame { .. }));
    // The slow one finishes: its chunk, then the quick one's.
    slow.write_all(&frame[frame.len() / 2..]).unwrap();
    for who in ["slow", "quick"] {
        let got = listener
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap_or_else(|| panic!("{who}'s chunk"));
        assert_eq!(got.kind(), lanlink_proto::Kind::FileChunk, "{who}");
    }
    drop(listener);
    server.stop();
}

/// A server whose frames in progress are full at 1 MiB in all, 2 MiB for
/// an address holding nothing, where nobody is cut for its pace while a
/// test runs; and a client that receives what others send.
fn full_at_two_mib() -> (TestServer, lanlink_transport::Client) {
    let server = TestServer::start(ServerConfig {
        max_frames_in_progress: 1024 * 1024,
        frame_grace: Duration::from_secs(60),
        ..ServerConfig::default()
    });
    let listener = server.connect("listener").unwrap();
    (server, listener)
}

/// Peers from many addresses, each holding one large frame it sends
/// slowly, cannot keep the server's frames in progress full: an address
/// holding nothing that finds it full has the slowest ended (each peer
/// just under its pace, so only this makes room) and its frame goes at
/// once.
#[test]
fn slow_frames_from_many_addresses_make_room_for_a_quick_one() {
    // Seven 256 KiB chunks leave no room for an eighth.
    let (server, listener) = full_at_two_mib();
    let addr = server.addr;
    let frame = chunk();
    let mut slow: Vec<_> = (11..18u8)
        .map(|last| {
            let from = std::net::IpAddr::from([127, 0, 0, last]);
            let (mut s, d) = raw_handshake_from(addr, from, &format!("slow{last}"));
            s.write_all(&frame[..4096]).unwrap();
            (s, d)
        })
        .collect();
    let (mut quick, _dq) = raw_handshake(addr, "quick");
    wait_for_conns(&server, 9);
    // Their frames are reserved as more of them is read.
    std::thread::sleep(Duration::from_millis(100));
    for (s, _) in &mut slow {
        s.write_all(&frame[4096..8192]).unwrap();
    }
    // Their connections have brought about 8 KiB each: far under the
    // 1 MiB/s below which a frame may be ended.
    std::thread::sleep(Duration::from_millis(400));
    let sent = Instant::now();
    quick.write_all(&frame).unwrap();
    let got = listener
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("the quick chunk");
    assert_eq!(got.kind(), lanlink_proto::Kind::FileChunk);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "it waited {:?}",
        sent.elapsed()
    );
    let reason = server.wait_closed(|r| matches!(r, CloseReason::FrameCrowdedOut { .. }));
    match reason {
        CloseReason::FrameCrowdedOut { arrived, len, rate } => {
            assert!((8192..CHUNK).contains(&arrived), "{arrived}");
            assert!(len as usize > CHUNK, "{len}");
            assert!(rate < 16 * 1024, "{rate} bytes/s");
        }
        other => panic!("{other:?}"),
    }
    let crowded = server
        .closed
        .lock()
        .unwrap()
        .iter()
        .filter(|r| matches!(r, CloseReason::FrameCrowdedOut { .. }))
        .count();
    assert_eq!(crowded, 1, "one ended: the room one chunk needs");
    // The others are still there and their frames still arrive whole.
    let mut whole = 0;
    for (s, _) in &mut slow {
        if s.write_all(&frame[8192..]).is_ok() {
            whole += 1;
        }
    }
    assert!(whole >= 6, "{whole}");
    for _ in 0..6 {
        let got = listener
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a slow chunk, finished");
        assert_eq!(got.kind(), lanlink_proto::Kind::FileChunk);
    }
    drop(listener);
    server.stop();
}

/// Eleventh attack: headers sent alone from fresh addresses, filling the
/// room at once, had the one frame old enough to be judged ended: an
/// honest upload arriving slowly. A connection is judged by what it has
/// brought lately, so the headers go first.
#[test]
fn headers_sent_alone_do_not_get_a_slow_honest_frame_ended() {
    fillers_do_not_get_a_slow_honest_frame_ended(0);
}

/// Fillers from fresh connections that bring some data with their header
/// in one burst (48 KiB, 192 KiB in all) look slow, not fast: their
/// bytes are counted over half a second at least, not the tenth that
/// made 48 KiB look like 480 KiB/s and got the honest 320 KiB/s frame
/// ended (the twelfth outside attack).
#[test]
fn fillers_bringing_a_burst_of_data_do_not_get_a_slow_honest_frame_ended() {
    fillers_do_not_get_a_slow_honest_frame_ended(48 * 1024);
}

/// A 1 MiB frame arriving at about 320 KiB/s, then fillers from four
/// fresh addresses, each with a 256 KiB frame's header and `burst` bytes
/// of it, the last of them past what the server holds: a filler is ended,
/// the honest frame arrives whole.
fn fillers_do_not_get_a_slow_honest_frame_ended(burst: usize) {
    let (server, listener) = full_at_two_mib();
    let addr = server.addr;
    let big = Frame::new(
        2,
        FileChunk {
            offset: 0,
            data: vec![5u8; 1024 * 1024].into(),
        },
    )
    .to_bytes()
    .unwrap()
    .to_vec();
    // About 320 KiB/s: under the 1 MiB/s below which frames may be ended
    // when the server is full, well inside the frame's time.
    let honest = std::thread::spawn(move || {
        let (mut s, _d) = raw_handshake(addr, "honest");
        for piece in big.chunks(16 * 1024) {
            s.write_all(piece)?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok::<_, std::io::Error>(s)
    });
    std::thread::sleep(Duration::from_millis(500));
    // Fresh connections, bursting at once.
    let mut fillers: Vec<_> = (21..25u8)
        .map(|last| {
            let from = std::net::IpAddr::from([127, 0, 0, last]);
            raw_handshake_from(addr, from, &format!("filler{last}"))
        })
        .collect();
    let frame = chunk();
    // 1 MiB + three 256 KiB chunks leave no room for a fourth: it makes
    // room the moment the fillers are counted.
    let first = lanlink_proto::HEADER_LEN + 1 + burst;
    for (s, _) in &mut fillers {
        s.write_all(&frame[..first]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    for (s, _) in &mut fillers {
        s.write_all(&frame[first..first + 1]).unwrap();
    }
    let reason = server.wait_closed(|r| matches!(r, CloseReason::FrameCrowdedOut { .. }));
    match reason {
        CloseReason::FrameCrowdedOut { len, rate, .. } => {
            assert_eq!(
                len as usize,
                CHUNK + 8,
                "a filler's frame, not the honest one"
            );
            assert!(rate < 320 * 1024, "{rate} bytes/s");
        }
        other => panic!("{other:?}"),
    }
    let _honest_socket = honest
        .join()
        .unwrap()
        .expect("the honest frame was not cut");
    let got = listener
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("the honest frame, whole");
    assert_eq!(got.kind(), lanlink_proto::Kind::FileChunk);
    assert_eq!(
        got.to_bytes().unwrap().len(),
        1024 * 1024 + 8 + lanlink_proto::HEADER_LEN
    );
    drop(listener);
    server.stop();
}
