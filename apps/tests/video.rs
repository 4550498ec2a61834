//! End to end: video from `lanlink cam` through the real server to
//! `lanlink view --save`, to a plain HTTP client reading MJPEG, and to a
//! real browser (headless Chromium) showing the page; slow viewers, native
//! and HTTP, do not slow a fast one down.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{lanlink, lanlink_command, lanlink_spawn, signal, Scratch, Server};
use lanlink_client::{Session, Trust};
use lanlink_proto::{video::VideoSubscribe, Capabilities, Frame, Message};
use lanlink_transport::{Client, ClientConfig};
use lanlink_video::{decode_pattern_stamp, JpegDecoder, RgbImage};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Publishes the test pattern as `name` until the process is killed.
fn camera(server: &Server, name: &str, size: &str, fps: &str) -> Child {
    common::pattern_cam(&server.addr, size, fps, name)
}

/// Reads the counter the test pattern draws into a JPEG.
fn counter_of(jpeg: &[u8], decoder: &mut JpegDecoder, image: &mut RgbImage) -> u64 {
    decoder.decode_into(jpeg, image).expect("a decodable JPEG");
    u64::from(decode_pattern_stamp(image).expect("a readable stamp").0)
}

#[test]
fn frames_reach_a_saving_viewer_in_order_as_jpegs_of_the_right_size() {
    let t = Scratch::new("view-save");
    let server = Server::start(&[]);
    let mut cam = camera(&server, "pattern", "320x240", "30");
    let out = lanlink(&[
        "view",
        &server.addr,
        "pattern",
        "--save",
        s(&t.0),
        "--frames",
        "20",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("received 20 frames"));
    let mut files: Vec<_> = std::fs::read_dir(&t.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 20);
    let (mut decoder, mut image) = (JpegDecoder::new().unwrap(), RgbImage::default());
    let mut last = None;
    for f in &files {
        let counter = counter_of(&std::fs::read(f).unwrap(), &mut decoder, &mut image);
        assert_eq!((image.width(), image.height()), (320, 240));
        assert!(
            last.is_none_or(|l| counter > l),
            "counters must increase: {last:?} then {counter}"
        );
        last = Some(counter);
    }
    cam.kill().unwrap();
    cam.wait().unwrap();
    assert!(server.terminate().success());
}

#[test]
fn an_unknown_stream_name_lists_the_streams_that_exist() {
    let server = Server::start(&[]);
    let mut cam = camera(&server, "door", "160x120", "10");
    std::thread::sleep(Duration::from_millis(500));
    let out = lanlink(&["view", &server.addr, "garage", "--save", "/dev/null/never"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no video stream named \"garage\"") && err.contains("door"),
        "{err}"
    );
    cam.kill().unwrap();
    cam.wait().unwrap();
}

/// Reads `n` MJPEG parts from `/stream/NAME`; returns their bodies.
fn read_parts(http: &str, name: &str, n: usize) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /stream/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut content_type = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if line.to_ascii_lowercase().starts_with("content-type:") {
            content_type = line.clone();
        }
    }
    assert!(
        content_type.contains("multipart/x-mixed-replace; boundary="),
        "{content_type}"
    );
    let mut parts = Vec::new();
    while parts.len() < n {
        let mut len = None;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" && len.is_some() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0u8; len.unwrap()];
        r.read_exact(&mut body).unwrap();
        parts.push(body);
    }
    parts
}

fn http_get(http: &str, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&all[..split]).into_owned(),
        all[split + 4..].to_vec(),
    )
}

#[test]
fn http_serves_mjpeg_parts_a_snapshot_and_a_page() {
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server
        .http
        .clone()
        .expect("the server prints its HTTP address");
    let mut cam = camera(&server, "door cam", "320x240", "30");
    // Wait until the stream is listed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(&http, "/streams.json")
        .1
        .windows(8)
        .any(|w| w == b"door cam")
    {
        assert!(Instant::now() < deadline, "the stream never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let parts = read_parts(&http, "door%20cam", 5);
    let (mut decoder, mut image) = (JpegDecoder::new().unwrap(), RgbImage::default());
    let counters: Vec<u64> = parts
        .iter()
        .map(|p| counter_of(p, &mut decoder, &mut image))
        .collect();
    assert!(counters.windows(2).all(|w| w[1] > w[0]), "{counters:?}");

    let (head, jpeg) = http_get(&http, "/snapshot/door%20cam");
    assert!(
        head.contains("200 OK") && head.contains("image/jpeg"),
        "{head}"
    );
    counter_of(&jpeg, &mut decoder, &mut image);
    let (head, page) = http_get(&http, "/");
    assert!(head.contains("text/html"));
    assert!(String::from_utf8_lossy(&page).contains("src=\"/stream/door%20cam\""));
    assert!(http_get(&http, "/stream/nothing").0.contains("404"));
    cam.kill().unwrap();
    cam.wait().unwrap();
    assert!(server.terminate().success());
}

/// A real client (TLS, as by default) that subscribes to `name` and then
/// never reads again: its reader blocks on a one-event queue nobody drains,
/// so the socket stops being read and the server's queue for it fills.
fn stuck_subscriber(server: &Server, name: &str) -> Client {
    let config = ClientConfig {
        event_capacity: 1,
        ..ClientConfig::default()
    };
    let trust = match &server.fingerprint {
        Some(f) => Trust::Fingerprint(f.parse().unwrap()),
        None => Trust::AnyCertificate,
    };
    let (client, _) = Session::builder(&server.addr)
        .name("stuck")
        .trust(trust)
        .capabilities(Capabilities::VIDEO)
        .transport_config(config)
        .connect_transport()
        .unwrap();
    loop {
        let f = client
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("the stream is announced");
        if let Message::VideoAnnounce(a) = &f.message {
            if a.name == name {
                client.send(&Frame::new(f.stream, VideoSubscribe)).unwrap();
                return client;
            }
        }
    }
}

#[test]
fn slow_viewers_do_not_slow_a_fast_one() {
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let mut cam = camera(&server, "live", "640x480", "30");
    let stuck_native = stuck_subscriber(&server, "live");
    let mut stuck_http = TcpStream::connect(&http).unwrap();
    write!(stuck_http, "GET /stream/live HTTP/1.1\r\n\r\n").unwrap();
    // Let the stuck ones fall well behind (their buffers fill).
    std::thread::sleep(Duration::from_secs(2));

    let t = Scratch::new("fast-viewer");
    let started = Instant::now();
    let out = lanlink(&[
        "view",
        &server.addr,
        "live",
        "--save",
        s(&t.0),
        "--frames",
        "60",
    ]);
    let native_fps = 60.0 / started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        native_fps > 24.0,
        "native viewer got {native_fps:.1} fps from a 30 fps stream"
    );

    let started = Instant::now();
    let parts = read_parts(&http, "live", 60);
    let http_fps = parts.len() as f64 / started.elapsed().as_secs_f64();
    assert!(
        http_fps > 24.0,
        "HTTP viewer got {http_fps:.1} fps from a 30 fps stream"
    );
    drop(stuck_http);
    drop(stuck_native);
    cam.kill().unwrap();
    cam.wait().unwrap();
    assert!(server.terminate().success());
}

#[test]
fn a_browser_shows_the_live_frame() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let mut cam = camera(&server, "pattern", "640x360", "15");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(&http, "/streams.json")
        .1
        .windows(7)
        .any(|w| w == b"pattern")
    {
        assert!(Instant::now() < deadline, "the stream never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Scratch::new("browser");
    let shot = t.0.join("page.png");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=800,600",
            // The MJPEG image never finishes loading: stop after 4 s.
            "--timeout=4000",
        ])
        .arg(format!("--user-data-dir={}", t.dir("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://{http}/"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run chromium");
    assert!(status.success(), "chromium failed: {status:?}");
    let (w, h, rgb) = read_png(&shot);
    // The test pattern's colour bars must be on the page: look for its
    // yellow and cyan bars among the pixels.
    let has = |target: [u8; 3]| {
        rgb.chunks_exact(3)
            .filter(|p| p.iter().zip(target).all(|(a, b)| a.abs_diff(b) < 30))
            .count()
    };
    let (yellow, cyan) = (has([192, 192, 0]), has([0, 192, 192]));
    let area = w * h;
    assert!(
        yellow > area / 100 && cyan > area / 100,
        "no live frame in the screenshot ({w}x{h}: {yellow} yellow, {cyan} cyan pixels)"
    );
    cam.kill().unwrap();
    cam.wait().unwrap();
    assert!(server.terminate().success());
}

fn read_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("a screenshot"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as usize, info.height as usize, rgb)
}

/// `lanlink cam` whose server goes away stops with an error and a non-zero
/// exit status, not as if it had finished.
#[test]
fn cam_fails_when_the_server_goes_away() {
    let server = Server::start(&[]);
    let mut cam = camera(&server, "door", "160x120", "10");
    let out = common::lines_of(cam.stdout.take().unwrap());
    let deadline = Instant::now() + common::PATIENCE;
    while !out
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("cam says it publishes")
        .contains("publishing door")
    {}
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    let status = common::wait_timeout(&mut cam, common::PATIENCE).expect("cam exits");
    let mut err = String::new();
    cam.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("disconnected"), "{err}");
}

/// `lanlink view` waiting for a stream says which one it waits for (and
/// what is published instead), and Ctrl-C stops the wait at once.
#[test]
fn a_waiting_viewer_says_what_it_waits_for_and_obeys_ctrl_c() {
    let t = Scratch::new("view-wait");
    let server = Server::start(&[]);
    let mut cam = camera(&server, "door", "160x120", "10");
    std::thread::sleep(Duration::from_millis(500));
    let mut view = lanlink_spawn(&["view", &server.addr, "garage", "--save", s(&t.0)]);
    let out = common::lines_of(view.stdout.take().unwrap());
    let line = out.recv_timeout(common::PATIENCE).expect("a line");
    // (What is published now is named when the announcements arrived
    // before the check.)
    assert!(
        line.starts_with("waiting up to 10 s for the video stream \"garage\" to be published")
            && line.ends_with("(Ctrl-C to stop)"),
        "{line}"
    );
    let asked = Instant::now();
    common::signal(view.id(), "INT");
    let status = common::wait_timeout(&mut view, common::PATIENCE).expect("view exits");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(status.success(), "{status:?}");
    assert!(out
        .recv_timeout(common::PATIENCE)
        .unwrap()
        .contains("stopped before the stream was published"));
    cam.kill().unwrap();
    cam.wait().unwrap();
}

#[cfg(feature = "display")]
#[path = "../../media-video/tests/support/x11.rs"]
mod x11;

/// Plays `frames` in order, one every 100 ms, announced as 64×48.
struct Scripted(std::vec::IntoIter<bytes::Bytes>, u32);

impl lanlink_video::VideoSource for Scripted {
    fn info(&self) -> lanlink_video::SourceInfo {
        lanlink_video::SourceInfo {
            name: "scripted".into(),
            width: 64,
            height: 48,
            fps_milli: 10_000,
        }
    }

    fn next_frame(&mut self) -> Result<lanlink_video::EncodedFrame, lanlink_video::VideoError> {
        std::thread::sleep(Duration::from_millis(100));
        let stopped = lanlink_video::VideoError::SourceStopped {
            name: "scripted".into(),
            panicked: false,
        };
        self.1 += 1;
        Ok(lanlink_video::EncodedFrame {
            seq: self.1,
            capture_timestamp_us: lanlink_video::now_us(),
            width: 64,
            height: 48,
            jpeg: self.0.next().ok_or(stopped)?,
        })
    }
}

/// A 64×48 JPEG of one colour.
fn plain_picture(encoder: &mut lanlink_video::JpegEncoder, rgb: [u8; 3]) -> bytes::Bytes {
    let mut image = RgbImage::new(64, 48);
    for px in image.as_bytes_mut().chunks_mut(3) {
        px.copy_from_slice(&rgb);
    }
    encoder.encode_rgb_to_bytes(&image).unwrap()
}

/// A good picture of `before`, then three bad frames (not a JPEG; a JPEG
/// whose header claims 65500×65500 pixels, which used to cost a viewer
/// 12.9 GB; one with two SOI markers, after which libjpeg-turbo failed
/// every later frame), and the good picture of `after` to follow them.
fn bad_frames_between(before: [u8; 3], after: [u8; 3]) -> (Vec<bytes::Bytes>, bytes::Bytes) {
    let mut encoder =
        lanlink_video::JpegEncoder::new(lanlink_video::JpegConfig::default()).unwrap();
    let mut huge = plain_picture(&mut encoder, before).to_vec();
    let sof = huge.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
    let good = plain_picture(&mut encoder, after);
    let frames = vec![
        plain_picture(&mut encoder, before),
        bytes::Bytes::from_static(b"\xFF\xD8 not a picture at all"),
        bytes::Bytes::from(huge),
        bytes::Bytes::from([&[0xFF, 0xD8][..], &good[..]].concat()),
    ];
    (frames, good)
}

/// `lanlink view --save` used to keep every frame as it came: a hostile
/// publisher's junk landed in the folder as `.jpg` files nobody could
/// open. Now only what decodes is saved, and the viewer says how many it
/// skipped and why.
#[test]
fn a_saving_viewer_keeps_only_frames_that_decode() {
    let t = Scratch::new("view-save-bad");
    let server = Server::start(&[]);
    let (mut frames, good) = bad_frames_between([40, 40, 220], [220, 40, 40]);
    frames.extend(std::iter::repeat_n(good, 3));
    let mut viewer = lanlink_command()
        .args(["view", &server.addr, "scripted", "--save", s(&t.0)])
        .args(["--frames", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = common::lines_of(viewer.stdout.take().unwrap());
    common::expect_line(&said, "waiting up to");
    let trust = Trust::Fingerprint(server.fingerprint.as_ref().unwrap().parse().unwrap());
    let (publisher, _) = Session::builder(&server.addr)
        .name("mallory")
        .trust(trust)
        .connect()
        .unwrap();
    let running = publisher
        .publish_video("scripted", Scripted(frames.into_iter(), 0), None)
        .unwrap();
    let status = common::wait_timeout(&mut viewer, Duration::from_secs(20));
    let stdout: Vec<String> = said.try_iter().collect();
    assert!(status.is_some_and(|s| s.success()), "{status:?} {stdout:?}");
    assert!(
        stdout.iter().any(|l| l.contains("received 4 frames")
            && l.contains("skipped 3 that did not decode or were larger than announced")),
        "{stdout:?}"
    );
    let (mut decoder, mut image) = (JpegDecoder::new().unwrap(), RgbImage::default());
    let files: Vec<_> = std::fs::read_dir(&t.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    for f in &files {
        decoder
            .decode_into(&std::fs::read(f).unwrap(), &mut image)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", f.display()));
        assert_eq!((image.width(), image.height()), (64, 48));
    }
    publisher.close("done");
    let _ = running.wait();
}

/// Pixels of `image` within 12 of `rgb` in every channel.
#[cfg(feature = "display")]
fn pixels_near(image: &RgbImage, rgb: [u8; 3]) -> usize {
    image
        .as_bytes()
        .chunks_exact(3)
        .filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 12))
        .count()
}

/// A publisher's bad frames (not a JPEG; a JPEG whose header claims
/// 65500×65500 pixels, which used to cost a viewer 12.9 GB; one with two
/// SOI markers, after which every frame failed) used to end `lanlink view`
/// with an error at the first one, for every viewer. Now the
/// window skips them, shows the good frames after them, and says at the
/// end how many it skipped.
#[cfg(feature = "display")]
#[test]
fn a_viewer_window_skips_frames_that_do_not_decode_and_goes_on() {
    let (Some(xvfb), Some(xwd)) = (x11::find_program("Xvfb"), x11::find_program("xwd")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Xvfb and xwd (scripts/setup installs them)"
        );
        eprintln!("skipped: needs Xvfb and xwd (apt-get install xvfb x11-apps)");
        return;
    };
    let x = x11::Xvfb::start(&xvfb);
    let server = Server::start(&[]);
    let (before, after) = ([40, 40, 220], [220, 40, 40]);
    let (mut frames, good) = bad_frames_between(before, after);
    // Then the good picture for up to 20 s (the test stops sooner).
    frames.extend(std::iter::repeat_n(good, 200));

    let mut viewer = lanlink_command()
        .args(["view", &server.addr, "scripted"])
        .env("DISPLAY", &x.display)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = viewer.id();
    // Published once the viewer waits for it: every frame reaches it.
    let said = common::lines_of(viewer.stdout.take().unwrap());
    common::expect_line(&said, "waiting up to");
    let trust = Trust::Fingerprint(server.fingerprint.as_ref().unwrap().parse().unwrap());
    let (publisher, _) = Session::builder(&server.addr)
        .name("mallory")
        .trust(trust)
        .connect()
        .unwrap();
    let running = publisher
        .publish_video("scripted", Scripted(frames.into_iter(), 0), None)
        .unwrap();
    // The window shows the picture sent after the bad frames.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut shown = 0;
    while shown < 64 * 48 / 2 {
        assert!(
            Instant::now() < deadline,
            "the window never showed the picture after the bad frames"
        );
        std::thread::sleep(Duration::from_millis(200));
        shown = pixels_near(&x11::screenshot(&xwd, &x.display), after);
    }
    signal(pid, "INT");
    let status = common::wait_timeout(&mut viewer, Duration::from_secs(10));
    let stdout: Vec<String> = said.try_iter().collect();
    assert!(status.is_some_and(|s| s.success()), "{status:?} {stdout:?}");
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("skipped 3 that did not decode or were larger than announced")),
        "{stdout:?}"
    );
    publisher.close("done");
    let _ = running.wait();
}
