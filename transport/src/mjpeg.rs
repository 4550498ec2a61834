//! Video for browsers: a small HTTP/1.1 server that shows every video stream
//! as MJPEG (`multipart/x-mixed-replace`, as uStreamer and mjpg-streamer do),
//! a single-JPEG snapshot, and an HTML page listing the streams.
//!
//! Frames arrive in a [`LatestFrames`] store (the relay's video tap writes
//! there); each HTTP viewer has its own thread that sends the newest frame it
//! has not sent yet, so a slow viewer skips frames and never delays anyone.
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | HTML page with every stream |
//! | `/stream/NAME` | MJPEG stream |
//! | `/snapshot/NAME` | the latest frame as one JPEG |
//! | `/streams.json` | `[{"name":…,"width":…,"height":…,"seq":…}]` |

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Shutdown, TransportError};

/// Most HTTP viewers served at once; more are answered 503.
pub const MAX_VIEWERS: usize = 128;
/// A stream with no frame for this long is no longer listed.
const STALE: Duration = Duration::from_secs(5);
const BOUNDARY: &str = "lanlinkframe";

/// The newest frame of one stream.
#[derive(Debug, Clone)]
pub struct Latest {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frame counter (increases by at least one per frame).
    pub seq: u64,
    /// The JPEG image.
    pub jpeg: Bytes,
    /// When it arrived.
    pub at: Instant,
}

/// The newest frame of every stream, shared between the relay and the HTTP
/// viewers. Cheap to clone.
#[derive(Clone, Default)]
pub struct LatestFrames {
    inner: Arc<(Mutex<HashMap<String, Latest>>, Condvar)>,
}

impl std::fmt::Debug for LatestFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestFrames")
            .field("streams", &self.lock().len())
            .finish()
    }
}

impl LatestFrames {
    /// An empty store.
    pub fn new() -> LatestFrames {
        LatestFrames::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Latest>> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a stream's newest frame and wakes its viewers.
    pub fn publish(&self, name: &str, width: u16, height: u16, seq: u64, jpeg: Bytes) {
        let latest = Latest {
            width,
            height,
            seq,
            jpeg,
            at: Instant::now(),
        };
        self.lock().insert(name.to_owned(), latest);
        self.inner.1.notify_all();
    }

    /// Forgets a stream.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
        self.inner.1.notify_all();
    }

    /// The newest frame of `name`.
    pub fn get(&self, name: &str) -> Option<Latest> {
        self.lock().get(name).cloned()
    }

    /// Streams with a recent frame, sorted by name.
    pub fn names(&self) -> Vec<(String, Latest)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, l)| l.at.elapsed() < STALE)
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Waits up to `timeout` for a frame of `name` newer than `after`.
    pub fn wait_newer(&self, name: &str, after: Option<u64>, timeout: Duration) -> Option<Latest> {
        let deadline = Instant::now() + timeout;
        let mut map = self.lock();
        loop {
            if let Some(l) = map.get(name) {
                if after.is_none_or(|seq| l.seq != seq) {
                    return Some(l.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            map = self
                .inner
                .1
                .wait_timeout(map, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// Serves HTTP viewers on `listener` until `shutdown` fires.
pub fn serve_http(
    listener: TcpListener,
    frames: LatestFrames,
    shutdown: Shutdown,
) -> Result<(), TransportError> {
    let local = listener
        .local_addr()
        .map_err(|e| TransportError::io("http listener address", e))?;
    shutdown.on_trigger(move || {
        let wake = SocketAddr::new(
            if local.ip().is_unspecified() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                local.ip()
            },
            local.port(),
        );
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    });
    let viewers = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for stream in listener.incoming() {
        if shutdown.is_triggered() {
            break;
        }
        let Ok(stream) = stream else { continue };
        threads.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
        let (frames, shutdown, viewers) = (frames.clone(), shutdown.clone(), viewers.clone());
        threads.push(crate::server::spawn_named("http", move || {
            let _ = handle(stream, &frames, &shutdown, &viewers);
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn handle(
    mut s: TcpStream,
    frames: &LatestFrames,
    shutdown: &Shutdown,
    viewers: &AtomicUsize,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let _ = s.set_nodelay(true);
    let Some(path) = read_request_path(&mut s)? else {
        return respond(&mut s, "400 Bad Request", "text/plain", b"bad request\n");
    };
    let path = percent_decode(&path);
    if path == "/" || path == "/index.html" {
        return respond(
            &mut s,
            "200 OK",
            "text/html; charset=utf-8",
            page(frames).as_bytes(),
        );
    }
    if path == "/streams.json" {
        return respond(
            &mut s,
            "200 OK",
            "application/json",
            streams_json(frames).as_bytes(),
        );
    }
    if let Some(name) = path.strip_prefix("/snapshot/") {
        let name = name.strip_suffix(".jpg").unwrap_or(name);
        return match frames.get(name) {
            Some(l) => respond(&mut s, "200 OK", "image/jpeg", &l.jpeg),
            None => respond(&mut s, "404 Not Found", "text/plain", b"no such stream\n"),
        };
    }
    if let Some(name) = path.strip_prefix("/stream/") {
        if frames.get(name).is_none() {
            return respond(&mut s, "404 Not Found", "text/plain", b"no such stream\n");
        }
        if viewers.fetch_add(1, Ordering::SeqCst) >= MAX_VIEWERS {
            viewers.fetch_sub(1, Ordering::SeqCst);
            return respond(
                &mut s,
                "503 Service Unavailable",
                "text/plain",
                b"too many viewers\n",
            );
        }
        let result = stream_mjpeg(&mut s, frames, name, shutdown);
        viewers.fetch_sub(1, Ordering::SeqCst);
        return result;
    }
    respond(&mut s, "404 Not Found", "text/plain", b"not found\n")
}

fn stream_mjpeg(
    s: &mut TcpStream,
    frames: &LatestFrames,
    name: &str,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    )?;
    let mut last = None;
    while !shutdown.is_triggered() {
        let Some(frame) = frames.wait_newer(name, last, Duration::from_millis(500)) else {
            if frames.get(name).is_none() {
                return Ok(()); // the stream ended
            }
            continue;
        };
        last = Some(frame.seq);
        write!(
            s,
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            frame.jpeg.len()
        )?;
        s.write_all(&frame.jpeg)?;
        s.write_all(b"\r\n")?;
    }
    Ok(())
}

/// Reads the request head and returns the path of a GET request.
fn read_request_path(s: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 8192 {
            return Ok(None);
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or_default().split_whitespace();
    match (first.next(), first.next()) {
        (Some("GET"), Some(path)) => Ok(Some(path.split('?').next().unwrap_or(path).to_owned())),
        _ => Ok(None),
    }
}

fn respond(s: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    s.flush()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn page(frames: &LatestFrames) -> String {
    let mut body = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lanlink video</title>\
         <style>body{font-family:sans-serif;background:#111;color:#eee}figure{display:inline-block;margin:1em}\
         img{max-width:90vw;border:1px solid #444}</style></head><body><h1>lanlink video</h1>",
    );
    let streams = frames.names();
    if streams.is_empty() {
        body.push_str("<p>No streams right now. Publish one with <code>lanlink cam HOST --test-pattern</code>, then reload.</p>");
    }
    for (name, l) in streams {
        let (h, u) = (html_escape(&name), url_escape(&name));
        body.push_str(&format!(
            "<figure><img src=\"/stream/{u}\" alt=\"{h}\" width=\"{}\" height=\"{}\"><figcaption>{h} — {}×{} — \
             <a href=\"/snapshot/{u}\">snapshot</a></figcaption></figure>",
            l.width, l.height, l.width, l.height
        ));
    }
    body.push_str("</body></html>\n");
    body
}

fn streams_json(frames: &LatestFrames) -> String {
    let items: Vec<String> = frames
        .names()
        .into_iter()
        .map(|(n, l)| {
            let escaped: String = n
                .chars()
                .flat_map(|c| match c {
                    '"' => "\\\"".chars().collect::<Vec<_>>(),
                    '\\' => "\\\\".chars().collect(),
                    c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
                    c => vec![c],
                })
                .collect();
            format!(
                "{{\"name\":\"{escaped}\",\"width\":{},\"height\":{},\"seq\":{}}}",
                l.width, l.height, l.seq
            )
        })
        .collect();
    format!("[{}]\n", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(percent_decode("/stream/door%20cam"), "/stream/door cam");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(url_escape("door cam/1"), "door%20cam%2F1");
        assert_eq!(html_escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }

    #[test]
    fn waiting_for_a_newer_frame() {
        let f = LatestFrames::new();
        assert!(f
            .wait_newer("cam", None, Duration::from_millis(10))
            .is_none());
        f.publish("cam", 2, 2, 1, Bytes::from_static(b"a"));
        assert_eq!(
            f.wait_newer("cam", None, Duration::from_millis(10))
                .unwrap()
                .seq,
            1
        );
        assert!(f
            .wait_newer("cam", Some(1), Duration::from_millis(10))
            .is_none());
        let f2 = f.clone();
        let t = std::thread::spawn(move || {
            f2.wait_newer("cam", Some(1), Duration::from_secs(5))
                .map(|l| l.seq)
        });
        std::thread::sleep(Duration::from_millis(20));
        f.publish("cam", 2, 2, 2, Bytes::from_static(b"b"));
        assert_eq!(t.join().unwrap(), Some(2));
    }
}
