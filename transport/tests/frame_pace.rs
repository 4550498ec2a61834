//! A frame a peer has started must arrive whole in the time its length
//! allows: a peer dripping a large frame cannot make the server hold it
//! (and its memory) for as long as it likes, while a slow but steady
//! sender, and everyone else, is unaffected.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{assert_relay_works, raw_handshake, wait_for_conns, TestServer};
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
