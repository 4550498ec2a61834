//! The browser server's request path without a socket, for the `http`
//! fuzz target (and `transport/tests/http.rs`, which replays its corpus).

use std::io::{self, Read, Write};
use std::time::Duration;

use bytes::Bytes;

use super::request::{self, HeadError};
use super::{answer, Answering, LatestFrames, Peer};
use lanlink_transport::Shutdown;

/// A browser that sent its request and reads whatever comes back, up to
/// a limit, then goes away.
struct Browser {
    out: Vec<u8>,
}

/// What one answer may write before the browser stops taking it.
const TAKES: usize = 1 << 20;

impl Read for Browser {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Browser {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > TAKES {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Peer for Browser {
    fn left(&mut self) -> bool {
        true
    }
}

/// A tiny stand-in for a JPEG image (SOI, a byte, EOI).
const JPEG: &[u8] = b"\xFF\xD8j\xFF\xD9";

/// Runs one request through the browser server's request path: the head
/// read in pieces as the server reads it (`request::take`), then the
/// answer, against a store holding a stream `cam` and a stream named by
/// the input; checks the answer. The input: byte 0, the size of each read
/// (0: 1024) and, in its low bit, whether a head cut short timed out or
/// was closed; byte 1, the length of the second stream's name (at most
/// 64), then the name; the rest, what the browser sends.
///
/// # Panics
/// When the answer breaks a rule: a response head holding anything but
/// fixed, known headers (no peer string ever reaches a header); a
/// `Content-Length` that is not the body's; a stream name unescaped in the
/// page or a control character or `<` in the JSON; an MJPEG part that is
/// not a JPEG image.
pub fn fuzz_http_request(data: &[u8]) {
    let (&setup, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&name_len, rest) = rest.split_first().unwrap_or((&0, &[]));
    let name_len = usize::from(name_len).min(64).min(rest.len());
    let (name, sent) = rest.split_at(name_len);
    let name = String::from_utf8_lossy(name).into_owned();

    let frames = LatestFrames::new();
    let _ = frames.publish("cam", 2, 2, 1, Bytes::from_static(JPEG));
    if !name.is_empty() {
        let _ = frames.publish(&name, 2, 2, 1, Bytes::from_static(JPEG));
    }

    let read_size = match usize::from(setup >> 1) {
        0 => 1024,
        n => n,
    };
    let mut head = Vec::new();
    let mut request = Err(if setup & 1 == 1 {
        HeadError::Timeout
    } else {
        HeadError::Closed
    });
    for piece in sent.chunks(read_size) {
        match request::take(&mut head, piece) {
            Ok(None) => continue,
            Ok(Some(r)) => request = Ok(r),
            Err(e) => request = Err(e),
        }
        break;
    }
    let closed = matches!(request, Err(HeadError::Closed));
    let shutdown = Shutdown::new();
    let viewers = std::sync::Arc::new(super::slots::Connections::default());
    let cx = Answering {
        frames: &frames,
        shutdown: &shutdown,
        viewers: &viewers,
        max_viewers: 2,
        check_every: Duration::ZERO,
        min_pace: super::MinPace::default(),
        auth: &super::auth::Auth::new(None, lanlink_transport::GuessLimit::default()),
        ip: std::net::Ipv4Addr::LOCALHOST.into(),
        secure: false,
        body_timeout: Duration::ZERO,
        fingerprint: None,
        adopter: None,
        peer: (std::net::Ipv4Addr::LOCALHOST, 50000).into(),
        files: super::files::Files {
            config: &lanlink_services::file::FileConfig::default(),
        },
        audio: &super::AudioListeners::default(),
        host_names: &["lanlink".to_owned(), "x".to_owned()],
    };
    let mut browser = Browser { out: Vec::new() };
    let _ = answer(&mut browser, request, &cx);
    if closed {
        assert!(browser.out.is_empty(), "an answer to a browser that left");
        return;
    }
    check_answer(&browser.out, &name);
}

/// The headers an answer may carry, with a check of each value.
fn header_ok(name: &str, value: &str) -> bool {
    let fixed_types = [
        "text/plain",
        "text/html; charset=utf-8",
        "text/javascript; charset=utf-8",
        "application/json",
        "image/jpeg",
    ];
    match name {
        "Content-Type" => {
            fixed_types.contains(&value)
                || value
                    .strip_prefix("multipart/x-mixed-replace; boundary=lanlink")
                    .is_some_and(|hex| {
                        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    })
        }
        "Content-Length" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        "Cache-Control" => value == "no-store",
        "X-Content-Type-Options" => value == "nosniff",
        // The fixed policy, or the page's with a host that passed its check.
        "Content-Security-Policy" => {
            value == super::PAGE_POLICY
                || value
                    .split_once(" ws://")
                    .and_then(|(_, rest)| rest.split_once(' '))
                    .is_some_and(|(host, _)| value == super::page_policy(Some(host)))
        }
        "Connection" => value == "close" || value == "Upgrade",
        // `/audio`'s WebSocket upgrade.
        "Upgrade" => value == "websocket",
        "Sec-WebSocket-Accept" => {
            value.len() == 28
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        }
        // `/snapshot/NAME.jpg` (as `files::disposition` writes it).
        "Content-Disposition" => value
            .strip_prefix("attachment; filename=\"")
            .and_then(|v| v.split_once("\"; filename*=UTF-8''"))
            .is_some_and(|(ascii, encoded)| {
                ascii
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._- ()".contains(&b))
                    && encoded
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-~%".contains(&b))
            }),
        _ => false,
    }
}

fn check_answer(out: &[u8], name: &str) {
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    assert!(end.is_some(), "no complete response head: {out:?}");
    let end = end.unwrap_or_default();
    let head = String::from_utf8_lossy(&out[..end]);
    let body = &out[end..];
    assert!(
        head.bytes()
            .all(|b| b == b'\r' || b == b'\n' || (0x20..0x7f).contains(&b)),
        "a response head that is not plain ASCII: {head:?}"
    );
    let mut lines = head.trim_end().split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.strip_prefix("HTTP/1.1 ").unwrap_or_default();
    assert!(
        code.len() > 4 && code.as_bytes()[..3].iter().all(u8::is_ascii_digit),
        "{status:?}"
    );
    let mut kind = String::new();
    let mut length = None;
    let upgraded = code.starts_with("101 ");
    for line in lines {
        let (h, v) = line.split_once(": ").unwrap_or((line, ""));
        assert!(header_ok(h, v), "a header the server never sends: {line:?}");
        match h {
            "Content-Type" => kind = v.to_owned(),
            "Content-Length" => length = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    if upgraded {
        return; // WebSocket frames follow (`/audio`)
    }
    if let Some(boundary) = kind.strip_prefix("multipart/x-mixed-replace; boundary=") {
        return check_parts(body, &format!("--{boundary}"));
    }
    assert_eq!(length, Some(body.len()), "Content-Length and body differ");
    let text = String::from_utf8_lossy(body);
    if kind.starts_with("text/html") && name.contains(['<', '>', '"', '\'', '&']) {
        // Where the page shows names: the image's alt text and the caption.
        for raw in [format!("alt=\"{name}\""), format!(">{name} — ")] {
            assert!(!text.contains(&raw), "the page shows {name:?} unescaped");
        }
    }
    if kind == "application/json" {
        assert!(
            !text.trim_end().chars().any(|c| c.is_control() || c == '<'),
            "{text:?}"
        );
    }
}

/// Every part of an MJPEG body: the delimiter, a JPEG's headers, the
/// image.
fn check_parts(mut body: &[u8], delimiter: &str) {
    while !body.is_empty() {
        let head_end = body.windows(4).position(|w| w == b"\r\n\r\n");
        assert!(head_end.is_some(), "a part without a head: {body:?}");
        let head_end = head_end.unwrap_or_default();
        let head = String::from_utf8_lossy(&body[..head_end]);
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some(delimiter));
        assert_eq!(lines.next(), Some("Content-Type: image/jpeg"));
        let len: Option<usize> = lines
            .next()
            .and_then(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok());
        assert!(len.is_some() && lines.next().is_none(), "{head:?}");
        let len = len.unwrap_or_default();
        let image = &body[head_end + 4..];
        assert!(image.len() >= len + 2, "a part cut short");
        let (jpeg, after) = image.split_at(len);
        assert!(
            jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]),
            "a part that is not a JPEG image: {jpeg:?}"
        );
        assert!(after.starts_with(b"\r\n"));
        body = &after[2..];
    }
}
