//! The server's threads do not grow with its clients: established
//! connections are served by a fixed set of I/O threads (one per core, at
//! most eight), not by threads of their own.
//!
//! A test binary of its own, so that no other test's threads are counted.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use lanlink_proto::{FrameDecoder, Kind};
use lanlink_transport::{Rate, ServerConfig};

mod common;
use common::*;

/// Threads of this process: the test harness, the server and its hub.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Waits for the thread count to settle at or below `bound` (handshake
/// threads end a moment after their client is welcomed); returns it.
fn settled_threads(bound: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = threads();
        if n <= bound || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Test harness (2), the server's accept loop and the test's hub (2), the
/// I/O threads (at most 8), and a little slack.
const BOUND: usize = 2 + 2 + 8 + 2;

#[test]
fn the_server_thread_count_does_not_grow_with_its_clients() {
    let server = TestServer::start(ServerConfig {
        max_conns_per_address: 1000,
        attempts_per_address: Rate {
            burst: 1000,
            per_second: 1000.0,
        },
        ..ServerConfig::default()
    });
    // Raw sockets: the clients add no threads to this process.
    let mut clients: Vec<(TcpStream, FrameDecoder)> = (0..10)
        .map(|i| raw_handshake(server.addr, &format!("c{i}")))
        .collect();
    wait_for_conns(&server, 10);
    let few = settled_threads(BOUND);
    for i in 10..300 {
        clients.push(raw_handshake(server.addr, &format!("c{i}")));
    }
    wait_for_conns(&server, 300);
    let many = settled_threads(few);
    eprintln!("threads: {few} with 10 clients, {many} with 300 clients");
    assert!(few <= BOUND, "{few} threads with 10 clients");
    assert!(
        many <= few,
        "{many} threads with 300 clients, {few} with 10"
    );

    // And every one of them is served: a frame from one reaches the 299
    // others (encoded once, its bytes shared by every recipient).
    let (first, rest) = clients.split_first_mut().unwrap();
    std::io::Write::write_all(&mut first.0, &chat("to all").to_bytes().unwrap()).unwrap();
    for (s, d) in rest {
        let f = read_frame(s, d).expect("the broadcast");
        assert_eq!(f.kind(), Kind::ChatMessage);
    }
    drop(clients);
    server.stop();
}
