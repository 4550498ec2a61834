//! A hostile server against the terminal chat (`lanlink chat` under tmux):
//! a scripted server on 127.0.0.1 (the transport's `serve`, plain TCP)
//! answering as each test says. Found by an outside attack: a room name
//! with escape sequences reached the terminal in the prompt, and `/quit`
//! during a flood of lines hung for ever.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{tmux_available, Tmux};
use lanlink_proto::chat::{ChatMessage, History};
use lanlink_proto::{control, Capabilities, Frame};
use lanlink_transport::{serve, ConnHandle, Event, ServerConfig, Shutdown};

/// A server that calls `on_event` for each event of its connections.
fn fake_events(mut on_event: impl FnMut(Event) + Send + 'static) -> (String, Shutdown) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = Shutdown::new();
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let stop = shutdown.clone();
    std::thread::spawn(move || serve(listener, ServerConfig::default(), stop, tx));
    std::thread::spawn(move || {
        for event in rx {
            on_event(event);
        }
    });
    (addr, shutdown)
}

/// A server that calls `on_hello` for each client that says hello.
fn fake(on_hello: impl Fn(ConnHandle) + Send + 'static) -> (String, Shutdown) {
    fake_events(move |event| {
        if let Event::Hello { conn, .. } = event {
            on_hello(conn);
        }
    })
}

fn welcome(conn: &ConnHandle, room: &str) {
    let _ = conn.send(&Frame::control(control::Welcome {
        server_name: "fake".into(),
        client_id: 1,
        name: "ada".into(),
        capabilities: Capabilities::ALL,
        max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
        motd: String::new(),
    }));
    let _ = conn.send(&Frame::control(History {
        room: room.into(),
        messages: vec![],
    }));
}

#[test]
fn a_room_name_with_escape_sequences_is_shown_escaped_in_the_prompt() {
    if !tmux_available() {
        return;
    }
    let (addr, _server) = fake(|conn| welcome(&conn, "lob\x1b]0;PWNED\x07\x1b[2Jby"));
    let ada = Tmux::chat("evil-room", &[], &addr, "ada", &["--plain"]);
    let screen = ada.wait_for("PWNED");
    assert!(
        screen.contains(r"[lob\u{1b}]0;PWNED\u{7}\u{1b}[2Jby]> "),
        "{screen}"
    );
    assert_ne!(ada.title(), "PWNED");
}

#[test]
fn quit_during_a_flood_of_lines_ends_the_chat() {
    if !tmux_available() {
        return;
    }
    let (addr, _server) = fake(|conn| {
        welcome(&conn, "lobby");
        std::thread::spawn(move || {
            // Short lines as fast as the connection takes them, for at
            // most 20 s (the test ends it sooner).
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(20) && !conn.is_closing() {
                n += 1;
                let line = ChatMessage {
                    room: "lobby".into(),
                    from: "mallory".into(),
                    text: format!("{n} {}", "x".repeat(200)),
                    action: false,
                    timestamp_ms: 0,
                };
                if conn.send(&Frame::control(line)).is_err() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
    });
    let ada = Tmux::chat("flood-quit", &[], &addr, "ada", &["--plain"]);
    ada.wait_for("<mallory>");
    std::thread::sleep(Duration::from_millis(500));
    ada.line("/quit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ada.running() {
        assert!(
            Instant::now() < deadline,
            "lanlink chat still runs 10 s after /quit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `lanlink chat` in a script against `addr` (plain TCP), reading `input`.
fn script(addr: &str, input: &str, stdout: std::process::Stdio) -> std::process::Child {
    let mut child = common::lanlink_command()
        .args(["chat", "--plain", "--name", "ada", addr])
        .stdin(std::process::Stdio::piped())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
    drop(stdin);
    child
}

/// A server that never confirms a line: the script gives up at the first
/// one (10 s) and exits 1, instead of waiting 10 s for each line after it
/// (found by the attack on the confirmations).
#[test]
fn a_script_stops_at_the_first_line_the_server_does_not_answer() {
    let (addr, _server) = fake(|conn| welcome(&conn, "lobby"));
    let started = Instant::now();
    let mut chat = script(&addr, "one\ntwo\nthree\n", std::process::Stdio::null());
    let status = common::wait_timeout(&mut chat, Duration::from_secs(25));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut chat.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(stderr.contains("did not confirm"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(18),
        "{:?}",
        started.elapsed()
    );
}

/// A script whose reader went away (`lanlink chat | head -1`) ends with
/// status 1 and a word on stderr, not a panic.
#[test]
fn a_script_whose_output_is_closed_ends_without_a_panic() {
    let (addr, _server) = fake(|conn| {
        welcome(&conn, "lobby");
        for n in 0..2000 {
            let _ = conn.send(&Frame::control(ChatMessage {
                room: "lobby".into(),
                from: "bob".into(),
                text: format!("line {n}"),
                action: false,
                timestamp_ms: 1,
            }));
        }
    });
    let mut chat = common::lanlink_command()
        .args(["chat", "--plain", "--name", "ada", &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads its output.
    drop(chat.stdout.take());
    let status = common::wait_timeout(&mut chat, Duration::from_secs(20));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut chat.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("standard output is closed"), "{stderr}");
}

/// A server whose refusals quote escape sequences: a script that gives a
/// line up ("not delivered: the server kept refusing it as too fast …")
/// shows the refusal escaped, and exits 1 (an outside attack, helper-72,
/// set the terminal's title and cleared its screen that way).
#[test]
fn a_refusal_with_escape_sequences_is_shown_escaped_by_a_script() {
    let mut client: Option<ConnHandle> = None;
    let (addr, shutdown) = fake_events(move |event| match event {
        Event::Hello { conn, .. } => {
            welcome(&conn, "lobby");
            client = Some(conn);
        }
        Event::Frame { frame, .. } => {
            if let (lanlink_proto::Message::Confirm(c), Some(conn)) = (frame.message, &client) {
                let _ = conn.send(&Frame::control(control::Error {
                    code: lanlink_proto::ErrorCode::RATE_LIMITED,
                    message: "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{202e}evil: wait 99999999 ms \
                              before trying again"
                        .into(),
                }));
                let _ = conn.send(&Frame::control(control::Confirmed { token: c.token }));
            }
        }
        _ => {}
    });
    let mut chat = script(&addr, "one\n", std::process::Stdio::null());
    let status = common::wait_timeout(&mut chat, Duration::from_secs(20));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut chat.stderr.take().unwrap(), &mut stderr).unwrap();
    shutdown.trigger();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(stderr.contains("not delivered"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}') && !stderr.contains('\u{202e}'),
        "{stderr:?}"
    );
    assert!(stderr.contains("\\u{1b}]0;PWNED"), "{stderr}");
}
