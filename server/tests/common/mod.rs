//! What the services' server tests share: a real server (`server::run`) on
//! an ephemeral loopback port in this process, real clients, temporary
//! folders.
#![allow(dead_code)]

pub mod http;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lanlink_proto::{control, Capabilities, Frame, Message};
use lanlink_server::{run, ServerConfig};
use lanlink_transport::{Client, ClientConfig, Shutdown};

/// How long any single expectation may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A server running in this process; shut down and joined on drop.
pub struct TestServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `config` (plain TCP unless it says otherwise) on 127.0.0.1:0.
    pub fn start(config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = Shutdown::new();
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || run(listener, config, shutdown).unwrap())
        };
        TestServer {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// A client called `name` asking for `capabilities`.
    pub fn connect(&self, name: &str, capabilities: Capabilities) -> Client {
        let hello = control::Hello {
            name: name.into(),
            token: None,
            capabilities,
        };
        Client::connect(&self.addr, hello, ClientConfig::default()).unwrap()
    }

    /// Like [`connect`](Self::connect), from the loopback address `from`
    /// (`127.0.0.2` …), so per-address limits see another machine.
    pub fn connect_from(&self, from: &str, name: &str, capabilities: Capabilities) -> Client {
        self.try_connect_from(from, name, capabilities).unwrap()
    }

    /// Like [`connect_from`](Self::connect_from), returning a refusal.
    pub fn try_connect_from(
        &self,
        from: &str,
        name: &str,
        capabilities: Capabilities,
    ) -> Result<Client, lanlink_transport::TransportError> {
        let hello = control::Hello {
            name: name.into(),
            token: None,
            capabilities,
        };
        let config = ClientConfig {
            bind: Some(from.parse().unwrap()),
            ..ClientConfig::default()
        };
        Client::connect(&self.addr, hello, config)
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

/// The next frame on `client` that `pick` accepts (others are skipped),
/// waiting up to [`PATIENCE`].
pub fn wait_for<T>(client: &Client, mut pick: impl FnMut(&Frame) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "nothing expected arrived in {PATIENCE:?}");
        if let Some(frame) = client.recv_timeout(left).unwrap() {
            if let Some(t) = pick(&frame) {
                return t;
            }
        }
    }
}

/// Like [`wait_for`], but returns `None` once `timeout` passes.
pub fn wait_briefly<T>(
    client: &Client,
    timeout: Duration,
    mut pick: impl FnMut(&Frame) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        if let Ok(Some(frame)) = client.recv_timeout(left) {
            if let Some(t) = pick(&frame) {
                return Some(t);
            }
        }
    }
}

/// A file-service refusal's text, if `frame` is one.
pub fn reject_of(frame: &Frame) -> Option<lanlink_proto::file::FileReject> {
    match &frame.message {
        Message::FileReject(r) => Some(r.clone()),
        _ => None,
    }
}

/// A fresh temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "lanlink-svc-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates (and returns) the folder `name` inside.
    pub fn folder(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client on a bare socket: handshakes as `name` with `capabilities`, then
/// does only what the test makes it do (such as never reading again).
pub fn raw_client(
    addr: &str,
    name: &str,
    capabilities: Capabilities,
) -> (std::net::TcpStream, lanlink_proto::FrameDecoder) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let hello = control::Hello {
        name: name.into(),
        token: None,
        capabilities,
    };
    s.write_all(&Frame::control(hello).to_bytes().unwrap())
        .unwrap();
    let mut d = lanlink_proto::FrameDecoder::new();
    let welcome = raw_read(&mut s, &mut d).expect("a welcome");
    assert!(
        matches!(welcome.message, Message::Welcome(_)),
        "{welcome:?}"
    );
    (s, d)
}

/// The next frame on a bare socket (`None` once it closes or after
/// [`PATIENCE`]).
pub fn raw_read(s: &mut std::net::TcpStream, d: &mut lanlink_proto::FrameDecoder) -> Option<Frame> {
    use std::io::Read;
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(f) = d.decode().unwrap() {
            return Some(f);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => d.push(&buf[..n]),
        }
    }
}

/// This process's resident memory, in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}
