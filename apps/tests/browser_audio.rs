//! Audio in the browser: the server's `/audio` WebSocket carries every
//! talker's Opus packets (checked with a tungstenite client: the start
//! notice, the packets, the end; a foreign `Origin` refused; a listener
//! that never reads costs nobody else anything), and the page's Audio
//! panel in headless Chromium decodes and plays a `lanlink talk --tone 440`
//! (the worklet's own analysis of what it plays says 440 Hz; muted, it
//! plays silence).

mod audio_support;
mod browser_support;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use audio_support::{await_line, kill, lines_of, received, wait_exit};
use browser_support::Chromium;
use common::{lanlink_spawn, Flood, Scratch, Server, PATIENCE};
use lanlink_proto::audio::{AudioAnnounce, AudioCodec, AudioPacket};
use lanlink_proto::{control::Hello, Capabilities};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// The tests that judge audio played in real time take turns (as in
/// `audio.rs`): on two cores, a flood or a browser in one starves another's
/// listener, which would then be judged on CPU starvation.
static REAL_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn real_time() -> std::sync::MutexGuard<'static, ()> {
    REAL_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// Opens `/audio` with `origin` (none if `None`): the socket, or the HTTP
/// status it was refused with.
fn open_audio(http: &str, origin: Option<&str>) -> Result<Ws, u16> {
    open_audio_with(http, origin, None)
}

/// As [`open_audio`], with a `Cookie` header.
fn open_audio_with(http: &str, origin: Option<&str>, cookie: Option<&str>) -> Result<Ws, u16> {
    let mut request = format!("ws://{http}/audio").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("Cookie", cookie.parse().unwrap());
    }
    match tungstenite::connect(request) {
        Ok((ws, _)) => {
            if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            }
            Ok(ws)
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("/audio: {e}"),
    }
}

/// What `/audio` said, in order: notices as JSON, packets as (id, seq,
/// Opus length).
#[derive(Debug)]
enum Heard {
    Notice(serde_json::Value),
    Packet(u32, u32, usize),
}

fn next(ws: &mut Ws) -> Heard {
    loop {
        match ws.read().expect("a message from /audio") {
            Message::Text(t) => return Heard::Notice(serde_json::from_str(&t).unwrap()),
            Message::Binary(b) => {
                assert!(b.len() > 16, "a packet with its 16-byte header");
                let id = u32::from_be_bytes(b[0..4].try_into().unwrap());
                let seq = u32::from_be_bytes(b[4..8].try_into().unwrap());
                return Heard::Packet(id, seq, b.len() - 16);
            }
            _ => {}
        }
    }
}

#[test]
fn the_audio_websocket_carries_every_talker_to_same_origin_pages_only() {
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();

    // Another site's page, and a request without an Origin, are refused.
    assert_eq!(
        open_audio(&http, Some("http://evil.example")).err(),
        Some(403)
    );
    assert_eq!(
        open_audio(&http, Some(&format!("http://{http}.evil.example"))).err(),
        Some(403)
    );
    assert_eq!(open_audio(&http, None).err(), Some(403));
    // A plain GET is no WebSocket.
    let mut plain = TcpStream::connect(&http).unwrap();
    write!(plain, "GET /audio HTTP/1.1\r\nHost: {http}\r\n\r\n").unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let mut ws = open_audio(&http, Some(&format!("http://{http}"))).expect("same origin");
    let talk = lanlink_spawn(&[
        "talk",
        &server.addr,
        "--tone",
        "440",
        "--name",
        "tone",
        "--seconds",
        "2",
    ]);
    let Heard::Notice(start) = next(&mut ws) else {
        panic!("a start notice first");
    };
    assert_eq!(start["type"], "start", "{start}");
    assert_eq!(start["name"], "tone", "{start}");
    assert!(start["publisher"].as_str().is_some_and(|p| !p.is_empty()));
    assert_eq!(start["rate"], 48_000, "{start}");
    assert_eq!(start["channels"], 1, "{start}");
    let id = start["id"].as_u64().unwrap() as u32;

    // 2 s of 20 ms packets, in order, then the end.
    let mut seqs = Vec::new();
    let end = loop {
        match next(&mut ws) {
            Heard::Packet(i, seq, len) => {
                assert_eq!(i, id);
                assert!((1..=1500).contains(&len), "an Opus packet of {len} bytes");
                seqs.push(seq);
            }
            Heard::Notice(n) => break n,
        }
    };
    assert_eq!(end["type"], "end", "{end}");
    assert_eq!(end["id"], id, "{end}");
    assert!(seqs.len() >= 95, "{} packets of 100", seqs.len());
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(talk.wait_with_output().unwrap().status.success());

    // A listener arriving later hears of the streams live then.
    let mut late_talk = lanlink_spawn(&[
        "talk",
        &server.addr,
        "--tone",
        "440",
        "--name",
        "later",
        "--seconds",
        "5",
    ]);
    let mut first = open_audio(&http, Some(&format!("http://{http}"))).unwrap();
    assert!(matches!(next(&mut first), Heard::Notice(n) if n["name"] == "later"));
    let mut second = open_audio(&http, Some(&format!("http://{http}"))).unwrap();
    assert!(matches!(next(&mut second), Heard::Notice(n) if n["name"] == "later"));
    kill(&mut late_talk);
    drop((ws, first, second));
    assert!(server.terminate().success());
}

/// With an access token, `/audio` needs the session cookie `POST /auth`
/// gives for it, as every protected route does.
#[test]
fn the_audio_websocket_asks_for_the_access_token() {
    let token = "a-long-access-token";
    let server = Server::start(&["--http", "127.0.0.1:0", "--token", token]);
    let http = server.http.clone().unwrap();
    let origin = format!("http://{http}");
    assert_eq!(open_audio(&http, Some(&origin)).err(), Some(403));

    let body = format!("{{\"token\":\"{token}\"}}");
    let mut s = TcpStream::connect(&http).unwrap();
    write!(
        s,
        "POST /auth HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    assert_eq!(
        open_audio_with(
            &http,
            Some(&origin),
            Some("lanlink=0123456789abcdef0123456789abcdef")
        )
        .err(),
        Some(403)
    );
    let ws = open_audio_with(&http, Some(&origin), Some(&cookie));
    assert!(ws.is_ok(), "the session's cookie opens /audio");
    drop(ws);
    assert!(server.terminate().success());
}

/// A raw publisher of an audio stream of 4 KiB packets every 2 ms
/// (2 MB/s, opaque to the server) until dropped or 20 s pass; counts what
/// it sent.
fn audio_flood(addr: &str, name: &str) -> Flood {
    let hello = Hello {
        name: "flood".into(),
        token: None,
        capabilities: Capabilities::AUDIO,
    };
    let announce = AudioAnnounce {
        name: name.into(),
        publisher: String::new(),
        codec: AudioCodec::OPUS,
        sample_rate: 48_000,
        channels: 1,
        frame_duration_us: 2_000,
    };
    let data = bytes::Bytes::from(vec![0x55u8; 4096]);
    Flood::start(
        addr,
        hello,
        announce,
        10_000,
        Duration::from_millis(2),
        move |seq| {
            let packet = AudioPacket {
                seq,
                timestamp_us: 0,
                data: data.clone(),
            };
            (packet, data.len())
        },
    )
}

/// A browser that opens `/audio` and then never reads, while a flood of
/// audio (2 MB/s) fills its socket's buffers within a second or two: its
/// own queue drops packets, and neither the relay nor a native `lanlink
/// listen` of another talker notices.
#[test]
fn a_listener_that_never_reads_does_not_stall_the_relay() {
    let _turn = real_time();
    // Plain TCP: the flood is a raw socket.
    let server = Server::start(&["--http", "127.0.0.1:0", "--plain"]);
    let http = server.http.clone().unwrap();
    let addr: std::net::SocketAddr = http.parse().unwrap();

    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stuck: TcpStream = socket.into();
    write!(
        stuck,
        "GET /audio HTTP/1.1\r\nHost: {http}\r\nOrigin: http://{http}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stuck.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");

    let mut listen = lanlink_spawn(&[
        "listen",
        "--plain",
        &server.addr,
        "voice",
        "--output-file",
        "/dev/null",
    ]);
    let listen_out = lines_of(listen.stdout.take().unwrap());
    if let Err(seen) = await_line(&listen_out, "listening", PATIENCE) {
        kill(&mut listen);
        panic!("lanlink listen did not start: {seen:?}");
    }
    let flood = audio_flood(&server.addr, "flood");
    let talk = lanlink_spawn(&[
        "talk",
        "--plain",
        &server.addr,
        "--tone",
        "440",
        "--name",
        "voice",
        "--seconds",
        "6",
    ]);
    assert!(talk.wait_with_output().unwrap().status.success());
    let status = wait_exit(&mut listen, PATIENCE).unwrap_or_else(|| {
        kill(&mut listen);
        panic!("lanlink listen did not end after the talker");
    });
    let flooded = flood.sent();
    drop(flood);
    let report: Vec<String> = listen_out.try_iter().collect();
    let report = report.join("\n");
    assert!(status.success(), "{report}");
    assert!(received(&report, "voice") >= 295, "{report}");

    // The stuck browser got what fit in its buffers, far from all.
    stuck
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    let _ = stuck.read_to_end(&mut got);
    drop(stuck);
    eprintln!("the stuck listener got {} of {flooded} bytes", got.len());
    assert!(
        got.len() < flooded / 2,
        "the stuck listener got {} of {flooded} bytes: it never fell behind",
        got.len()
    );
    assert!(server.terminate().success());
}

/// The page's Audio panel in headless Chromium plays a `lanlink talk
/// --tone 440`: the mixer worklet's own analysis of its output says 440 Hz
/// at a sine's level; muted, the output is silent; the stream is listed by
/// name and leaves the list when it ends.
#[test]
fn the_page_plays_a_talker_and_mutes_it() {
    let _turn = real_time();
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let t = Scratch::new("browser-audio");
    let browser = Chromium::start_with(
        chromium,
        &t.dir("profile"),
        &["--autoplay-policy=no-user-gesture-required"],
    );
    let mut tab = browser.open(&format!("http://{http}/"));
    tab.wait_until(
        &format!("location.href === 'http://{http}/' && document.readyState === 'complete'"),
        "the page loads",
    );
    tab.eval("document.getElementById('audio-listen').click()");
    tab.wait_until(
        "window.lanlinkAudio && window.lanlinkAudio.listening === true",
        "the page listens",
    );
    let mut talk = lanlink_spawn(&[
        "talk",
        &server.addr,
        "--tone",
        "440",
        "--name",
        "tone <b>",
        "--seconds",
        "30",
    ]);
    tab.wait_until(
        "[...document.querySelectorAll('#audio-streams li')].some(li => li.dataset.name === 'tone <b>' && li.textContent.startsWith('tone <b> ('))",
        "the stream is listed by its name, as text",
    );
    // Half a second of analysis, twice, to be sure it is the tone that plays.
    tab.wait_until(
        "window.lanlinkAudio.decoded > 50 && window.lanlinkAudio.rms > 0.1",
        "the tone plays",
    );
    tab.wait_until(
        "document.getElementById('audio-status').textContent.startsWith('listening to 1 stream, level ')",
        "the status line shows the level",
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (rms, hz) = (
        tab.eval("window.lanlinkAudio.rms").as_f64().unwrap(),
        tab.eval("window.lanlinkAudio.hz").as_f64().unwrap(),
    );
    eprintln!("the page plays {hz:.1} Hz at RMS {rms:.3}");
    assert!((430.0..=450.0).contains(&hz), "{hz} Hz");
    assert!((0.2..=0.5).contains(&rms), "RMS {rms}");

    tab.eval("document.querySelector('#audio-streams li button').click()");
    tab.wait_until("window.lanlinkAudio.rms < 0.001", "muted, it is silent");
    tab.eval("document.querySelector('#audio-streams li button').click()");
    tab.wait_until("window.lanlinkAudio.rms > 0.1", "unmuted, it plays again");

    kill(&mut talk);
    tab.wait_until(
        "document.querySelectorAll('#audio-streams li').length === 0",
        "the ended stream leaves the list",
    );
    drop(browser);
    assert!(server.terminate().success());
}

/// Clicks at 48 kHz mono: a 10 ms burst of 1 kHz at full level every
/// `interval_ms`, for `secs` seconds.
fn write_clicks(path: &std::path::Path, secs: f64, interval_ms: u32) {
    use lanlink_audio::{AudioSink, Format, WavSink};
    let rate = 48_000.0;
    let total = (secs * rate) as usize;
    let every = (f64::from(interval_ms) / 1000.0 * rate) as usize;
    let burst = (0.010 * rate) as usize;
    let samples: Vec<f32> = (0..total)
        .map(|i| {
            let k = i % every;
            if k < burst {
                (std::f64::consts::TAU * 1000.0 * k as f64 / rate).cos() as f32 * 0.9
            } else {
                0.0
            }
        })
        .collect();
    let mut sink = WavSink::create(path, Format::MONO_48K).unwrap();
    sink.write(&samples).unwrap();
    sink.finish().unwrap();
}

/// Added latency from `lanlink talk` to the page's output, with clicks (the
/// method of `scripts/bench-audio-latency`): a click's onset as handed to
/// the talker's encoder (the packet's capture time plus its place in the
/// packet) to its onset in the block the page's mixer worklet renders (the
/// moment the page hears of the block, plus its place in it). Includes
/// encoding, the talker's and the browser's sockets, the server, WebCodecs
/// decoding, the message hops into and out of the worklet and its 60 ms
/// jitter buffer; excludes the audio device's buffers. Run by
/// `scripts/bench-audio-latency --browser` (`BENCH_SECONDS`, default 20).
#[test]
#[ignore = "a benchmark: scripts/bench-audio-latency --browser"]
fn browser_click_latency() {
    let _turn = real_time();
    let chromium = common::chromium().expect("chromium for the browser latency");
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let t = Scratch::new("browser-latency");
    let clicks = t.0.join("clicks.wav");
    write_clicks(&clicks, seconds, 200);
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let browser = Chromium::start_with(
        chromium,
        &t.dir("profile"),
        &["--autoplay-policy=no-user-gesture-required"],
    );
    let mut tab = browser.open(&format!("http://{http}/"));
    tab.wait_until(
        &format!("location.href === 'http://{http}/' && document.readyState === 'complete'"),
        "the page loads",
    );
    tab.eval("document.getElementById('audio-listen').click()");
    tab.wait_until(
        "window.lanlinkAudio && window.lanlinkAudio.listening === true",
        "the page listens",
    );
    std::thread::sleep(Duration::from_millis(500));
    let talk = lanlink_spawn(&[
        "talk",
        &server.addr,
        "--input-file",
        clicks.to_str().unwrap(),
        "--name",
        "clicks",
    ]);
    assert!(talk.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_millis(500));
    let got = tab.eval("window.lanlinkAudio.clicks");
    let mut ms: Vec<f64> = got
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    let sent = (seconds * 5.0) as usize;
    assert!(
        ms.len() >= sent * 9 / 10,
        "{} of {sent} clicks heard",
        ms.len()
    );
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "browser click latency: {} of {sent} clicks, p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[0],
        ms[ms.len() - 1]
    );
    drop(browser);
    assert!(server.terminate().success());
}
