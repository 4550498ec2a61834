//! What the browser server's tests (`http.rs`, `https.rs`) share: the
//! server (`serve_http_with`) on an ephemeral loopback port in this
//! process, stand-in JPEG frames, and answers split into head and body.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use bytes::Bytes;
use lanlink_server::http::{serve_http_with, HttpConfig, LatestFrames};
use lanlink_transport::Shutdown;

/// A browser server running in this process; shut down and joined on drop.
pub struct Http {
    pub addr: SocketAddr,
    /// What the server shows: publish into it.
    pub frames: LatestFrames,
    pub shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Http {
    /// Serves `config` on 127.0.0.1:0.
    pub fn start(config: HttpConfig) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frames = LatestFrames::new();
        let shutdown = Shutdown::new();
        let thread = {
            let (frames, shutdown) = (frames.clone(), shutdown.clone());
            std::thread::spawn(move || serve_http_with(listener, frames, config, shutdown).unwrap())
        };
        Http {
            addr,
            frames,
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A stand-in JPEG image: SOI, `fill`, EOI.
pub fn jpeg(fill: &[u8]) -> Bytes {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(fill);
    v.extend_from_slice(&[0xFF, 0xD9]);
    Bytes::from(v)
}

/// An HTTP answer's head (without the blank line) and body.
pub fn split_head(all: &[u8]) -> (String, Vec<u8>) {
    match all.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (
            String::from_utf8_lossy(&all[..i]).into_owned(),
            all[i + 4..].to_vec(),
        ),
        None => (String::from_utf8_lossy(all).into_owned(), Vec::new()),
    }
}
