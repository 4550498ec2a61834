//! A real server for the library's tests, and what they wait with. Each
//! test binary uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;

use lanlink_client::{Events, Session};
use lanlink_server::{run, ServerConfig};
use lanlink_transport::Shutdown;

/// A plain server (default settings) on a free loopback port, stopped on
/// drop.
pub struct PlainServer {
    pub addr: String,
    pub shutdown: Shutdown,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl PlainServer {
    pub fn start() -> PlainServer {
        PlainServer::start_with(ServerConfig::default())
    }

    /// A plain server with `config`.
    pub fn start_with(config: ServerConfig) -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || run(listener, config, stop).unwrap());
        PlainServer {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// A session named `name`, over plain TCP.
    pub fn session(&self, name: &str) -> (Session, Events) {
        Session::builder(&self.addr)
            .name(name)
            .plain()
            .connect()
            .unwrap()
    }

    /// Stops the server and waits until it has.
    pub fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `sent` stops growing for a second (at most 20 s): a
/// hostile server's flood has filled what the client takes in.
pub fn settled(sent: &std::sync::atomic::AtomicUsize) -> usize {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (usize::MAX, Instant::now());
    while Instant::now() < deadline {
        let now = sent.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sent.load(Ordering::Relaxed)
}
