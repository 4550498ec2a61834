//! A real server for the library's tests, and what they wait with. Each
//! test binary uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use lanlink_client::proto::control::Welcome;
use lanlink_client::proto::{Capabilities, Frame, FrameDecoder, Message};
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

/// Writes `frame` whole; its size on the wire.
pub fn write_frame(tcp: &mut TcpStream, frame: &Frame) -> std::io::Result<usize> {
    let bytes = frame.to_bytes().unwrap();
    tcp.write_all(&bytes)?;
    Ok(bytes.len())
}

/// Accepts one client and lets it in (its Hello, our Welcome); returns
/// the connection and what reads the client's next frame.
pub fn let_in(listener: &TcpListener) -> (TcpStream, impl FnMut(&mut TcpStream) -> Frame) {
    let (mut tcp, _) = listener.accept().unwrap();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = move |tcp: &mut TcpStream| loop {
        if let Some(frame) = decoder.decode().unwrap() {
            return frame;
        }
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "the client left before asking");
        decoder.push(&buf[..n]);
    };
    let hello = next(&mut tcp);
    assert!(matches!(hello.message, Message::Hello(_)), "{hello:?}");
    let welcome = Welcome {
        server_name: "evil".into(),
        client_id: 1,
        name: "me".into(),
        capabilities: Capabilities::ALL,
        max_payload: 16 << 20,
        motd: String::new(),
    };
    write_frame(&mut tcp, &Frame::control(welcome)).unwrap();
    (tcp, next)
}

/// Answers a `get`'s questions as a server whose share holds one file of
/// `size` bytes (each `ListRequest` gets that file), until the client asks
/// for it: returns that `FileRequest`.
pub fn until_file_request(
    tcp: &mut TcpStream,
    next: &mut impl FnMut(&mut TcpStream) -> Frame,
    size: u64,
) -> Frame {
    use lanlink_client::proto::file::{DirEntry, Listing};
    loop {
        let frame = next(tcp);
        match frame.message {
            Message::ListRequest(ref r) => {
                let listing = Listing {
                    path: r.path.clone(),
                    entries: vec![DirEntry {
                        name: String::new(),
                        is_dir: false,
                        size,
                        modified: 0,
                    }],
                    done: true,
                };
                write_frame(tcp, &Frame::new(frame.stream, listing)).unwrap();
            }
            Message::FileRequest(_) => return frame,
            _ => {}
        }
    }
}
