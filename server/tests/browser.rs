//! The browser server shows live streams only: a stream's frame reaches
//! `/snapshot` through the relay, and once the stream ends (or its
//! publisher leaves) its snapshot is gone, its viewers are done and the
//! memory is released. Real server, real publisher, raw HTTP.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{wait_for, TestServer};
use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoEnd, VideoFrame};
use lanlink_proto::{Capabilities, Frame, Message};
use lanlink_server::http::{serve_http, LatestFrames};
use lanlink_server::ServerConfig;
use lanlink_transport::Client;

fn get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let i = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&all[..i]).into_owned(),
        all[i + 4..].to_vec(),
    )
}

/// Polls `path` until its status line starts with `status`.
fn wait_status(addr: SocketAddr, path: &str, status: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (head, body) = get(addr, path);
        if head.starts_with(&format!("HTTP/1.1 {status}")) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path}: still {head:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn publish(client: &Client, stream: u32, name: &str) {
    let announce = VideoAnnounce {
        name: name.into(),
        publisher: String::new(),
        codec: VideoCodec::MJPEG,
        width: 2,
        height: 2,
        fps_milli: 1_000,
    };
    client.send(&Frame::new(stream, announce)).unwrap();
    let frame = VideoFrame {
        seq: 1,
        timestamp_us: 0,
        keyframe: true,
        data: Bytes::from_static(b"\xFF\xD8 a tiny jpeg \xFF\xD9"),
    };
    client.send(&Frame::new(stream, frame)).unwrap();
}

#[test]
fn ended_streams_disappear_from_the_browser_server() {
    let frames = LatestFrames::new();
    let server = TestServer::start(ServerConfig {
        video_tap: Some(lanlink_server::http::video_tap(frames.clone())),
        ..ServerConfig::default()
    });
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap();
    let http_thread = {
        let (frames, shutdown) = (frames.clone(), server.shutdown.clone());
        std::thread::spawn(move || serve_http(http, frames, shutdown).unwrap())
    };

    let cam = server.connect("cam", Capabilities::VIDEO);
    publish(&cam, 1, "door");
    let jpeg = wait_status(http_addr, "/snapshot/door", "200");
    assert_eq!(jpeg, b"\xFF\xD8 a tiny jpeg \xFF\xD9");
    // `/state` names it with its publisher (as the server knows it).
    let (head, state) = get(http_addr, "/state");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert!(
        String::from_utf8_lossy(&state).starts_with(
            r#"{"ok":true,"result":{"streams":[{"name":"door","publisher":"cam","width":2,"height":2,"fps":"#
        ),
        "{}",
        String::from_utf8_lossy(&state)
    );
    // A viewer of the stream...
    let mut viewer = TcpStream::connect(http_addr).unwrap();
    viewer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(viewer, "GET /stream/door HTTP/1.1\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    assert!(viewer.read(&mut first).unwrap() > 0);
    let (_, state) = get(http_addr, "/state");
    assert!(
        String::from_utf8_lossy(&state).contains(r#""viewers":1,"#),
        "{}",
        String::from_utf8_lossy(&state)
    );

    // ...is done once the publisher ends the stream, and the snapshot is gone.
    cam.send(&Frame::new(1, VideoEnd)).unwrap();
    wait_status(http_addr, "/snapshot/door", "404");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = viewer.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, list) = get(http_addr, "/streams.json");
    assert_eq!(list, b"[]\n");
    let (_, state) = get(http_addr, "/state");
    assert_eq!(state, b"{\"ok\":true,\"result\":{\"streams\":[]}}\n");
    // The page lists nothing either, and says so.
    let (_, page) = get(http_addr, "/");
    let page = String::from_utf8_lossy(&page);
    assert!(
        !page.contains("data-name") && page.contains("<p id=\"none\">"),
        "{page}"
    );

    // The same when the publisher simply leaves.
    publish(&cam, 3, "yard");
    wait_status(http_addr, "/snapshot/yard", "200");
    drop(cam);
    wait_status(http_addr, "/snapshot/yard", "404");
    assert_eq!(frames.held(), (0, 0), "nothing is kept of ended streams");

    // A publisher's frames that are not JPEG images never reach browsers.
    let fake = server.connect("fake", Capabilities::VIDEO);
    let announce = VideoAnnounce {
        name: "page".into(),
        publisher: String::new(),
        codec: VideoCodec::MJPEG,
        width: 2,
        height: 2,
        fps_milli: 1_000,
    };
    fake.send(&Frame::new(1, announce)).unwrap();
    wait_for(&fake, |f| {
        matches!(f.message, Message::VideoAnnounce(_)).then_some(())
    });
    let html = VideoFrame {
        seq: 1,
        timestamp_us: 0,
        keyframe: true,
        data: Bytes::from_static(b"<html><script>alert(1)</script></html>"),
    };
    fake.send(&Frame::new(1, html)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (head, _) = get(http_addr, "/snapshot/page");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    drop(fake);
    drop(server);
    http_thread.join().unwrap();
}
