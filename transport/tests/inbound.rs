//! The inbound byte budget: frames a server handed to its application and
//! that it still holds are bounded in bytes, per connection and in all, and
//! a peer that sends little is never held up behind ones that send a lot.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{chat, raw_handshake};
use lanlink_proto::{file::FileChunk, Frame};
use lanlink_transport::{serve, Event, ServerConfig, Shutdown};

const CHUNK: usize = 256 * 1024;
const PER_CONN: usize = 1024 * 1024;
const IN_ALL: usize = 2 * 1024 * 1024;

fn chunk(offset: u64) -> Vec<u8> {
    Frame::new(
        2,
        FileChunk {
            offset,
            data: vec![7u8; CHUNK].into(),
        },
    )
    .to_bytes()
    .unwrap()
    .to_vec()
}

/// Three peers each write 12 MiB of chunks without waiting; the application
/// takes events but handles none (it keeps them, and so their permits). What
/// it holds stays within the budget (plus one frame per connection), a
/// fourth peer's chat lines still come through one by one, and once the
/// application lets go every chunk of every flooder arrives, in order.
#[test]
fn frames_the_application_holds_are_bounded_in_bytes_and_small_senders_get_through() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let (tx, events) = crossbeam_channel::bounded(64 * 1024);
    let config = ServerConfig {
        max_inbound_bytes: IN_ALL,
        max_inbound_bytes_per_conn: PER_CONN,
        ..ServerConfig::default()
    };
    let server = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || serve(listener, config, shutdown, tx).unwrap())
    };
    let mut welcomed = Vec::new();
    let mut accept = |events: &crossbeam_channel::Receiver<Event>| match events
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
    {
        Event::Hello { conn, hello } => {
            conn.send(&Frame::control(lanlink_proto::control::Welcome {
                server_name: "test".into(),
                client_id: conn.id().0 as u32,
                name: hello.name,
                capabilities: lanlink_proto::Capabilities::ALL,
                max_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
                motd: String::new(),
            }))
            .unwrap();
            let id = conn.id();
            welcomed.push(conn);
            id
        }
        _ => panic!("expected a hello"),
    };

    const CHUNKS: u64 = 48;
    let mut flooders = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..3 {
        let name = format!("flooder-{i}");
        let handshake = std::thread::spawn(move || raw_handshake(addr, &name));
        flooders.push(accept(&events));
        sockets.push(handshake.join().unwrap().0);
    }
    let chatter_handshake = std::thread::spawn(move || raw_handshake(addr, "chatter"));
    let chatter = accept(&events);
    let (mut chatter_socket, _d) = chatter_handshake.join().unwrap();
    let writers: Vec<_> = sockets
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                for n in 0..CHUNKS {
                    s.write_all(&chunk(n * CHUNK as u64)).unwrap();
                }
                s
            })
        })
        .collect();

    // Take what comes for a while, handling nothing.
    let mut held: Vec<Event> = Vec::new();
    let settle = Instant::now() + Duration::from_millis(1500);
    while let Ok(e) = events.recv_deadline(settle) {
        held.push(e);
    }
    let bytes_from = |held: &[Event], who: lanlink_transport::ConnId| -> usize {
        held.iter()
            .map(|e| match e {
                Event::Frame { conn, permit, .. } if *conn == who => permit.bytes(),
                _ => 0,
            })
            .sum()
    };
    let frame = CHUNK + 64;
    let total: usize = flooders.iter().map(|f| bytes_from(&held, *f)).sum();
    for f in &flooders {
        let b = bytes_from(&held, *f);
        assert!(
            b <= PER_CONN + frame,
            "one connection handed over {b} bytes"
        );
    }
    assert!(
        total <= IN_ALL + 3 * frame,
        "the server holds {total} bytes for the application"
    );
    assert!(total >= CHUNK, "nothing was read at all");

    // A chat line each in turn, while the flooders are held back.
    for n in 0..20 {
        chatter_socket
            .write_all(&chat(&format!("line {n}")).to_bytes().unwrap())
            .unwrap();
        let got = loop {
            match events.recv_timeout(Duration::from_secs(5)) {
                Ok(Event::Frame { conn, frame, .. }) if conn == chatter => break frame,
                Ok(e) => held.push(e),
                Err(e) => panic!("chat line {n} did not arrive: {e}"),
            }
        };
        assert_eq!(got, chat(&format!("line {n}")));
    }

    // Let go: every chunk of every flooder arrives, in order.
    let mut next = vec![0u64; flooders.len()];
    let account = |next: &mut Vec<u64>, e: Event| {
        if let Event::Frame { conn, frame, .. } = e {
            if let Some(i) = flooders.iter().position(|f| *f == conn) {
                match frame.message {
                    lanlink_proto::Message::FileChunk(c) => {
                        assert_eq!(c.offset, next[i] * CHUNK as u64);
                        next[i] += 1;
                    }
                    other => panic!("unexpected {:?}", other.kind()),
                }
            }
        }
    };
    for e in held.drain(..) {
        account(&mut next, e);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().any(|n| *n < CHUNKS) {
        let e = events
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("chunks missing: {next:?} of {CHUNKS} each"));
        account(&mut next, e);
    }
    for w in writers {
        drop(w.join().unwrap());
    }
    drop(chatter_socket);
    shutdown.trigger();
    drop(welcomed);
    while events.recv_timeout(Duration::from_secs(5)).is_ok() {}
    server.join().unwrap();
}
