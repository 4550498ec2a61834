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
