//! Media queued for subscribers that never read counts against the queue
//! byte limits: three stuck subscribers of a stream of 3 MiB frames cost
//! the server a few MiB, not hundreds, and an honest subscriber keeps
//! getting fresh frames. Alone in its test binary, so the process's memory
//! is the server's and these clients'.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{raw_client, raw_read, rss, wait_for, TestServer};
use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoFrame, VideoSubscribe};
use lanlink_proto::{Capabilities, Frame, Message};
use lanlink_server::ServerConfig;

const FRAME: usize = 3 << 20;
const LIMIT: usize = 8 << 20;

#[test]
fn subscribers_that_never_read_hold_no_more_than_the_queue_limits() {
    let mut config = ServerConfig::default();
    config.transport.conn.max_queued_bytes = LIMIT;
    // A deep media queue: only the byte limit can hold it back.
    config.transport.conn.media_queue_frames = 32;
    let server = TestServer::start(config);
    let (mut publisher, mut pd) = raw_client(&server.addr, "pub", Capabilities::VIDEO);
    let announce = VideoAnnounce {
        name: "big".into(),
        publisher: String::new(),
        codec: VideoCodec::MJPEG,
        width: 1920,
        height: 1080,
        fps_milli: 30_000,
    };
    publisher
        .write_all(&Frame::new(1, announce).to_bytes().unwrap())
        .unwrap();
    let id = loop {
        let f = raw_read(&mut publisher, &mut pd).expect("our announcement");
        if matches!(f.message, Message::VideoAnnounce(_)) {
            break f.stream;
        }
    };
    let subscribe = Frame::new(id, VideoSubscribe).to_bytes().unwrap();

    // An honest viewer counts what reaches it.
    let viewer = server.connect("viewer", Capabilities::VIDEO);
    wait_for(&viewer, |f| {
        matches!(f.message, Message::VideoAnnounce(_)).then_some(())
    });
    viewer.send(&Frame::new(id, VideoSubscribe)).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (seen, done) = (seen.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if let Ok(Some(f)) = viewer.recv_timeout(Duration::from_millis(100)) {
                    if let Message::VideoFrame(v) = f.message {
                        seen.store(u64::from(v.seq), Ordering::SeqCst);
                    }
                }
            }
        })
    };

    // Three subscribers that never read again.
    let stuck: Vec<_> = (0..3)
        .map(|i| {
            let (mut s, mut d) =
                raw_client(&server.addr, &format!("stuck{i}"), Capabilities::VIDEO);
            while !matches!(
                raw_read(&mut s, &mut d).map(|f| f.message),
                Some(Message::VideoAnnounce(_))
            ) {}
            s.write_all(&subscribe).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss();
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // 60 frames of 3 MiB, each a distinct buffer on the server.
    let mut data = vec![0u8; FRAME];
    data[..2].copy_from_slice(&[0xFF, 0xD8]);
    data[FRAME - 2..].copy_from_slice(&[0xFF, 0xD9]);
    let data = Bytes::from(data);
    let last = 60;
    for seq in 1..=last {
        // Like a camera, not a flood: at most a few frames ahead of what
        // the honest viewer has seen (so what grows is what the stuck ones
        // hold, not the hub's backlog).
        let paced = Instant::now() + Duration::from_secs(10);
        while u64::from(seq) > seen.load(Ordering::SeqCst) + 3 && Instant::now() < paced {
            std::thread::sleep(Duration::from_millis(1));
        }
        let frame = Frame::new(
            1,
            VideoFrame {
                seq,
                timestamp_us: 0,
                keyframe: true,
                data: data.clone(),
            },
        );
        let mut head = bytes::BytesMut::new();
        let tail = frame.encode_head(&mut head).unwrap().unwrap();
        publisher.write_all(&head).unwrap();
        publisher.write_all(tail).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::SeqCst) < u64::from(last) {
        assert!(
            Instant::now() < deadline,
            "the honest viewer stopped at frame {}",
            seen.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    counter.join().unwrap();
    let grew = peak.load(Ordering::SeqCst).saturating_sub(before);
    eprintln!(
        "memory before {} MiB, peak {} MiB: grew {} MiB",
        before >> 20,
        peak.load(Ordering::SeqCst) >> 20,
        grew >> 20
    );
    drop(stuck);
    // Three stuck queues of 32 frames would be 288 MiB; their byte limit
    // makes it three times 8 MiB at most, and what is in flight.
    assert!(grew < 80 << 20, "the server grew by {} MiB", grew >> 20);
}
