//! Media queued for a peer counts against the same byte limits as
//! reliable traffic: a peer that stops reading holds at most its limit in
//! media (the oldest frames are dropped, it is not disconnected), and a
//! reliable frame for it displaces queued media instead of cutting it off.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{chat, raw_handshake, read_frame, wait_for_conns, TestServer};
use lanlink_proto::video::VideoFrame;
use lanlink_proto::{Frame, Message};
use lanlink_transport::{ConnHandle, ServerConfig};

const LIMIT: usize = 1024 * 1024;

fn video(seq: u32) -> Frame {
    Frame::new(
        7,
        VideoFrame {
            seq,
            timestamp_us: 0,
            keyframe: true,
            data: Bytes::from(vec![0x55; 64 * 1024]),
        },
    )
}

/// Sends `n` frames at a pace the sender's own link keeps up with (its
/// media queue would drop the rest before they left).
fn send_paced(sender: &lanlink_transport::Client, n: u32) {
    for seq in 0..n {
        sender.send(&video(seq)).unwrap();
        while sender.handle().queued_bytes() > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn handle_of(server: &TestServer, name_order: usize) -> ConnHandle {
    let conns = server.conns.lock().unwrap();
    let mut ids: Vec<_> = conns.keys().copied().collect();
    ids.sort();
    conns[&ids[name_order]].clone()
}

#[test]
fn media_for_a_peer_that_stops_reading_is_bounded_by_its_byte_limit() {
    let mut config = ServerConfig::default();
    config.conn.max_queued_bytes = LIMIT;
    // Deep enough that only the byte limit can hold it back.
    config.conn.media_queue_frames = 1000;
    let server = TestServer::start(config);
    let (mut stuck, mut decoder) = raw_handshake(server.addr, "stuck");
    let sender = server.connect("sender").unwrap();
    wait_for_conns(&server, 2);
    let stuck_handle = handle_of(&server, 0);

    // 400 frames of 64 KiB: 25 MiB, far beyond what the kernel buffers.
    send_paced(&sender, 400);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stuck_handle.media_dropped() < 100 {
        assert!(Instant::now() < deadline, "no media was dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let queued = stuck_handle.queued_bytes();
    assert!(
        queued > 0 && queued <= LIMIT,
        "{queued} bytes queued, limit {LIMIT}"
    );
    assert!(
        !stuck_handle.is_closing(),
        "a media backlog is no reason to cut anyone"
    );

    // A chat line must get through: it displaces media, it does not close
    // the connection.
    sender.send(&chat("still there?")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!stuck_handle.is_closing());
    assert!(stuck_handle.queued_bytes() <= LIMIT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = read_frame(&mut stuck, &mut decoder).expect("the connection stays");
        if matches!(&f.message, Message::ChatMessage(m) if m.text == "still there?") {
            break;
        }
        assert!(Instant::now() < deadline, "the chat line never came");
    }
    drop(sender);
    server.stop();
}

#[test]
fn media_counts_toward_the_server_wide_limit() {
    let mut config = ServerConfig::default();
    config.conn.max_queued_bytes = 64 * LIMIT;
    config.conn.media_queue_frames = 1000;
    config.max_total_queued_bytes = 2 * LIMIT;
    let server = TestServer::start(config);
    let stuck: Vec<_> = (0..2)
        .map(|i| raw_handshake(server.addr, &format!("stuck{i}")))
        .collect();
    let sender = server.connect("sender").unwrap();
    wait_for_conns(&server, 3);
    let handles = [handle_of(&server, 0), handle_of(&server, 1)];
    send_paced(&sender, 400);
    let deadline = Instant::now() + Duration::from_secs(10);
    while handles.iter().any(|h| h.media_dropped() < 100) {
        assert!(Instant::now() < deadline, "no media was dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Together they hold no more than the 2 MiB total (give or take the
    // frame being added), though each alone could hold 64 MiB.
    let total: usize = handles.iter().map(ConnHandle::queued_bytes).sum();
    assert!(total <= 2 * LIMIT + 70_000, "{total}");
    assert!(handles.iter().all(|h| !h.is_closing()));
    drop((stuck, sender));
    server.stop();
}
