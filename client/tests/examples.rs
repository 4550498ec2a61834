//! The examples are the acceptance test of this crate: each runs, as a
//! process, against a real server (in this test process, TLS, on
//! 127.0.0.1), and does what it says. Last, how a session trusts a
//! server it found announced on the LAN, against the same server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanlink_client::proto::ErrorCode;
use lanlink_client::{
    ClientError, Event, Events, KnownServers, PinStore, Quiet, Session, TransferOptions, Trust,
    TrustOutcome,
};
use lanlink_server::{run, ServerConfig};
use lanlink_transport::{ServerIdentity, Shutdown};

const PATIENCE: Duration = Duration::from_secs(10);

/// A server on an ephemeral loopback port, stopped when dropped.
struct TestServer {
    addr: String,
    fingerprint: lanlink_transport::Fingerprint,
    config: ServerConfig,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
    home: tempfile::TempDir,
}

impl TestServer {
    fn start() -> TestServer {
        TestServer::start_with(ServerConfig::default())
    }

    fn start_with(mut config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let identity = ServerIdentity::generate().unwrap();
        let fingerprint = identity.fingerprint();
        config.transport.tls = Some(identity);
        let (shutdown, thread) = serve(listener, config.clone());
        TestServer {
            addr,
            fingerprint,
            config,
            shutdown,
            thread: Some(thread),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Stops the server, then starts it again on the same address with
    /// the same certificate (its rooms and users are gone).
    fn restart(&mut self, down_for: Duration) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::thread::sleep(down_for);
        let listener = TcpListener::bind(&self.addr).unwrap();
        (self.shutdown, self.thread) = {
            let (shutdown, thread) = serve(listener, self.config.clone());
            (shutdown, Some(thread))
        };
    }

    /// A session of this test, pinned to the server's certificate.
    fn session(&self, name: &str) -> (Session, Events) {
        Session::builder(&self.addr)
            .name(name)
            .trust(Trust::Fingerprint(self.fingerprint))
            .connect()
            .unwrap()
    }

    /// `cargo run --example NAME -- ARGS` (already built by `cargo test`),
    /// pinning on first use in a scratch `LANLINK_HOME`.
    fn example(&self, name: &str, args: &[&str]) -> Child {
        self.example_reading(name, args, Stdio::null())
    }

    /// The same, reading `stdin`.
    fn example_reading(&self, name: &str, args: &[&str], stdin: Stdio) -> Child {
        Command::new(example_path(name))
            .args(args)
            .env("LANLINK_HOME", self.home.path())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run example {name}: {e}"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a server on `listener` until its shutdown is triggered.
fn serve(listener: TcpListener, config: ServerConfig) -> (Shutdown, std::thread::JoinHandle<()>) {
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || run(listener, config, stop).unwrap());
    (shutdown, thread)
}

/// Waits until the room `ops` exists with a password: an outsider asking
/// who is in it is refused, not told that there is no such room.
fn wait_for_bot_in_ops(server: &TestServer) {
    let (watcher, events) = server.session("watcher");
    let deadline = Instant::now() + PATIENCE;
    loop {
        watcher.roster("ops").unwrap();
        let code = wait_for(&events, |e| match e {
            Event::ServerError(e) => Some(e.code),
            _ => None,
        });
        if code == ErrorCode::FORBIDDEN {
            break;
        }
        assert_eq!(code, ErrorCode::NOT_FOUND);
        assert!(Instant::now() < deadline, "the bot did not make its room");
        std::thread::sleep(Duration::from_millis(200));
    }
    watcher.close("done");
}

/// `target/debug/examples/NAME`, next to this test's `deps/` folder.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join("examples").join(name)
}

/// Waits up to `PATIENCE` for an event that `want` accepts.
fn wait_for<T>(events: &Events, mut want: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(e) = events.recv_timeout(Duration::from_millis(100)) {
            if let Some(found) = want(&e) {
                return found;
            }
            assert!(!matches!(e, Event::Disconnected(_)), "disconnected: {e:?}");
        }
    }
    panic!("nothing expected arrived within {PATIENCE:?}");
}

/// Waits for `child` to exit, at most `PATIENCE`; kills it otherwise.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the example did not finish: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn chat_bot_answers_time() {
    let server = TestServer::start();
    let (asker, events) = server.session("asker");
    let mut bot = server.example("chat_bot", &[&server.addr, "lobby"]);
    wait_for(&events, |e| match e {
        Event::Presence(p) if p.name == "timebot" => Some(()),
        _ => None,
    });
    asker.say("lobby", "!time").unwrap();
    let answer = wait_for(&events, |e| match e {
        Event::Message(m) if m.from == "timebot" => Some(m.text.clone()),
        _ => None,
    });
    assert!(answer.starts_with("asker: it is "), "{answer}");
    assert!(answer.ends_with(" UTC"), "{answer}");
    // The bot says nothing else.
    asker.say("lobby", "hello").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    while let Some(e) = events.try_recv() {
        assert!(
            !matches!(&e, Event::Message(m) if m.from == "timebot"),
            "{e:?}"
        );
    }
    let _ = bot.kill();
    let _ = bot.wait();
}

/// The bot stays through a server restart: it says it lost the server,
/// connects again, and joins its room again with the room's password (the
/// restarted server knows no rooms: the bot's join makes the room again,
/// password and all), where it answers again.
#[test]
fn chat_bot_comes_back_to_its_room_after_a_server_restart() {
    let mut server = TestServer::start();
    let mut bot = server.example("chat_bot", &[&server.addr, "ops", "s3cret"]);
    let ask = |server: &TestServer| {
        let (asker, events) = server.session("asker");
        asker.join("ops", Some("s3cret")).unwrap();
        wait_for(&events, |e| match e {
            Event::Roster(r) if r.room == "ops" && r.members.iter().any(|m| m == "timebot") => {
                Some(())
            }
            _ => None,
        });
        asker.say("ops", "!time").unwrap();
        let answer = wait_for(&events, |e| match e {
            Event::Message(m) if m.from == "timebot" => Some(m.text.clone()),
            _ => None,
        });
        assert!(answer.starts_with("asker: it is "), "{answer}");
        asker.close("done");
    };
    wait_for_bot_in_ops(&server);
    ask(&server);

    server.restart(Duration::from_millis(1500));
    // Back within the bot's backoff (1 s, then 2 s): the room exists again
    // with a password, which only the bot can have set; a wrong one is
    // refused, and the bot answers in the room.
    wait_for_bot_in_ops(&server);
    let (mallory, events) = server.session("mallory");
    mallory.join("ops", Some("guess")).unwrap();
    let refused = wait_for(&events, |e| match e {
        Event::ServerError(e) => Some(e.code),
        Event::History(h) if h.room == "ops" => panic!("in with a wrong password"),
        _ => None,
    });
    assert_eq!(refused, ErrorCode::FORBIDDEN);
    ask(&server);
    let _ = bot.kill();
    let out = bot.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lost the server ("), "{stdout}");
    assert!(
        stdout.contains("back as timebot, joining ops again"),
        "{stdout}"
    );
}

/// `announce` says every line of its input, in order, faster than the
/// server lets anyone speak (10 at once, then 2 a second): it waits where
/// the server says. A line the server refuses for good (too long) is
/// reported and makes the exit status 1; the lines after it still go.
#[test]
fn announce_delivers_every_line_or_says_which_it_could_not() {
    let server = TestServer::start();
    let (_listener, events) = server.session("listener");
    let heard = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                wait_for(&events, |e| match e {
                    Event::Message(m) if m.from == "announcer" => Some(m.text.clone()),
                    _ => None,
                })
            })
            .collect()
    };
    let run = |input: String| -> Output {
        let mut child =
            server.example_reading("announce", &[&server.addr, "lobby"], Stdio::piped());
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
        drop(stdin);
        finish(child)
    };
    let lines: Vec<String> = (1..=14).map(|i| format!("step {i} done")).collect();
    let out = run(lines.join("\n") + "\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(heard(14), lines);

    let too_long = "x".repeat(server.config.chat.max_message_len + 1);
    let out = run(format!("before\n{too_long}\nafter\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not said") && stderr.contains("1 line(s) were refused"),
        "{stderr}"
    );
    assert_eq!(heard(2), ["before", "after"]);
}

#[test]
fn send_file_delivers_a_verified_file_with_progress() {
    let server = TestServer::start();
    let (bob, events) = server.session("bob");
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("holiday.bin");
    // Over a megabyte: the receiver acknowledges every MiB, which is when
    // the sender's progress advances.
    let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&original, &bytes).unwrap();
    let sender = server.example(
        "send_file",
        &[&server.addr, "bob", original.to_str().unwrap()],
    );
    let offer = wait_for(&events, |e| match e {
        Event::FileOffered(o) => Some(o.clone()),
        _ => None,
    });
    assert_eq!((offer.name(), offer.size()), ("holiday.bin", 2_500_000));
    // Missing: accepting creates it.
    let inbox = dir.path().join("inbox").join("today");
    let got = bob
        .accept_file(&offer, &inbox, &TransferOptions::default(), &mut Quiet)
        .unwrap();
    assert_eq!(std::fs::read(inbox.join("holiday.bin")).unwrap(), bytes);
    assert_eq!(got.size, 2_500_000);
    let out = finish(sender);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("offering holiday.bin (2500000 B)"),
        "{stdout}"
    );
    assert!(stdout.contains("/2500000 bytes"), "{stdout}");
    assert!(stdout.contains("delivered holiday.bin"), "{stdout}");
}

#[test]
fn backup_uploads_a_folder_into_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let mut config = ServerConfig::default();
    config.file.inbox = Some(inbox.clone());
    let server = TestServer::start_with(config);
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(photos.join("a.jpg"), &big).unwrap();
    std::fs::write(photos.join("b.txt"), b"second").unwrap();
    let out = finish(server.example("backup", &[&server.addr, photos.to_str().unwrap()]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("uploading photos/a.jpg (1500000 B) from 0"),
        "{stdout}"
    );
    assert!(stdout.contains("stored photos/b.txt (6 B)"), "{stdout}");
    assert_eq!(std::fs::read(inbox.join("photos/a.jpg")).unwrap(), big);
    assert_eq!(
        std::fs::read(inbox.join("photos/b.txt")).unwrap(),
        b"second"
    );
}

#[cfg(feature = "audio")]
#[test]
fn record_wav_records_the_mix() {
    let server = TestServer::start();
    let (talker, _events) = server.session("talker");
    let format = lanlink_client::audio::FORMAT;
    let tone = lanlink_audio::ToneSource::new(format, 440.0, 0.5).unwrap();
    let publisher = talker
        .publish_audio("tone", tone, Some(Duration::from_secs(6)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("mix.wav");
    let recorder = server.example("record_wav", &[&server.addr, wav.to_str().unwrap(), "2"]);
    let out = finish(recorder);
    assert!(out.status.success(), "{out:?}");
    publisher.stop();
    let mut reader = hound::WavReader::open(&wav).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels), (48_000, 1));
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => reader
            .samples::<i32>()
            .map(|s| s.unwrap() as f32 / (1 << (spec.bits_per_sample - 1)) as f32)
            .collect(),
    };
    let secs = samples.len() as f64 / 48_000.0;
    assert!((1.9..=2.1).contains(&secs), "{secs} s recorded");
    // The last second is tone for sure (the first may hold the jitter
    // buffer's start): 440 Hz at half scale.
    let tail = &samples[samples.len() - 48_000..];
    let crossings = tail
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    assert!(
        (800..=960).contains(&crossings),
        "{crossings} zero crossings in 1 s"
    );
    let rms = (tail.iter().map(|s| s * s).sum::<f32>() / tail.len() as f32).sqrt();
    assert!((0.25..=0.45).contains(&rms), "rms {rms}");
}

#[cfg(feature = "video")]
#[test]
fn publish_frames_are_seen_by_a_viewer() {
    let server = TestServer::start();
    let (viewer, _events) = server.session("viewer");
    let painter = server.example("publish_frames", &[&server.addr, "30"]);
    let mut watching = viewer.watch(Some("cycle"), PATIENCE).unwrap();
    assert_eq!(watching.announcement().publisher, "painter");
    assert_eq!(
        (
            watching.announcement().width,
            watching.announcement().height
        ),
        (320, 240)
    );
    let mut image = lanlink_video::RgbImage::default();
    let mut seen = 0;
    while seen < 5 {
        let frame = watching
            .next_image(PATIENCE, &mut image)
            .unwrap()
            .expect("a frame");
        // The example paints everything one colour: (8·seq, 255 − 8·seq, 128).
        let shade = (frame.seq * 8 % 256) as i32;
        let [r, g, b] = image.pixel(160, 120).unwrap().map(i32::from);
        assert!(
            (r - shade).abs() <= 6 && (g - (255 - shade)).abs() <= 6,
            "{r},{g},{b}"
        );
        assert!((b - 128).abs() <= 6, "{r},{g},{b}");
        seen += 1;
    }
    let out = finish(painter);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent 30 frames"));
}

/// [`Trust::FirstUseExpecting`]: the fingerprint a server announced is
/// required on first contact and pinned; a pin made earlier wins over any
/// announcement.
#[test]
fn an_announced_fingerprint_is_checked_then_pinned_and_a_pin_wins() {
    let server = TestServer::start();
    let (addr, real) = (server.addr.clone(), server.fingerprint);
    let store = Arc::new(KnownServers::at(server.home.path().join("known_servers")));
    let other: lanlink_transport::Fingerprint =
        format!("SHA256:{}", "ab".repeat(32)).parse().unwrap();
    let expecting = |expected| {
        Session::builder(&addr)
            .name("ada")
            .trust(Trust::FirstUseExpecting {
                store: store.clone(),
                expected,
            })
    };

    // An announcement that names another certificate: refused, not pinned.
    match expecting(other).connect() {
        Err(ClientError::CertificateChanged {
            expected,
            found,
            pins: None,
            ..
        }) => assert_eq!((expected, found), (other, real)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.lookup(&addr).unwrap(), None);

    // The right one: accepted and pinned.
    let (session, _events) = expecting(real).connect().unwrap();
    assert!(
        matches!(session.trust(), TrustOutcome::PinnedAsExpected { fingerprint, .. } if *fingerprint == real),
        "{:?}",
        session.trust()
    );
    session.close("done");
    assert_eq!(store.lookup(&addr).unwrap(), Some(real));

    // Pinned now: a later announcement naming another one does not matter.
    let (session, _events) = expecting(other).connect().unwrap();
    assert_eq!(session.trust(), &TrustOutcome::Known(real));
    session.close("done");
}
