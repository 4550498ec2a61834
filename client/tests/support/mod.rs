//! A real server for the library's tests.

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
