//! Reading an HTTP request head within a size and a time limit, parsed by
//! `httparse`. The deadline covers the whole head, not each read: a client
//! dripping one byte a second is cut when the head's time is up.

use std::io;
use std::time::Instant;

/// The largest request head accepted, in bytes.
pub(super) const MAX_HEAD: usize = 8 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 32;

/// The part of a request the server acts on.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request {
    /// `GET`, `HEAD`, …
    pub(super) method: String,
    /// The path, without the query.
    pub(super) path: String,
    /// The header lines, names in lower case (bounded by the head's size).
    pub(super) headers: Vec<(String, String)>,
    /// Bytes that arrived after the head: the start of a body.
    pub(super) rest: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lower case), if any.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request was read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeadError {
    /// The head was not complete by the deadline.
    Timeout,
    /// The head is longer than [`MAX_HEAD`] or has too many headers.
    TooLarge,
    /// Not HTTP/1.x.
    Malformed,
    /// The client closed the connection (or it failed) first.
    Closed,
}

/// Parses `buf` as a request head: `Ok(None)` while it is incomplete.
pub(super) fn parse(buf: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(method), Some(target)) = (request.method, request.path) else {
                return Err(HeadError::Malformed);
            };
            let path = target.split(['?', '#']).next().unwrap_or(target);
            let headers: Vec<(String, String)> = request
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_ascii_lowercase(), value)
                })
                .collect();
            if ambiguous(&headers) {
                return Err(HeadError::Malformed);
            }
            Ok(Some(Request {
                method: method.to_owned(),
                path: path.to_owned(),
                headers,
                rest: buf.get(len..).unwrap_or_default().to_vec(),
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

/// Whether `headers` say two things at once, which a proxy in front of
/// the server and the server itself could read differently (request
/// smuggling, RFC 9112 §6.3 and §3.2): `Content-Length` given twice with
/// different values, `Content-Length` beside `Transfer-Encoding`, or more
/// than one `Host`.
fn ambiguous(headers: &[(String, String)]) -> bool {
    fn values<'a>(
        headers: &'a [(String, String)],
        name: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }
    let mut lengths = values(headers, "content-length");
    let first_length = lengths.next();
    let lengths_differ = first_length.is_some_and(|first| lengths.any(|v| v != first));
    lengths_differ
        || (first_length.is_some() && values(headers, "transfer-encoding").next().is_some())
        || values(headers, "host").nth(1).is_some()
}

/// Adds what arrived to the head read so far (never beyond [`MAX_HEAD`])
/// and parses it: `Ok(None)` while it is incomplete. The sans-IO half of
/// [`read_head`].
pub(super) fn take(head: &mut Vec<u8>, arrived: &[u8]) -> Result<Option<Request>, HeadError> {
    let room = MAX_HEAD.saturating_sub(head.len()).min(arrived.len());
    head.extend_from_slice(arrived.get(..room).unwrap_or_default());
    parse(head)
}

/// Reads from `s` until a whole request head has arrived, `deadline`
/// passes, or the head turns out too large or malformed.
pub(super) fn read_head(s: &mut impl super::Peer, deadline: Instant) -> Result<Request, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        s.set_read_timeout(left).map_err(|_| HeadError::Closed)?;
        let room = MAX_HEAD.saturating_sub(head.len()).min(buf.len());
        let n = match s.read(buf.get_mut(..room).unwrap_or_default()) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Closed),
        };
        if let Some(request) = take(&mut head, buf.get(..n).unwrap_or_default())? {
            return Ok(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_and_bounded() {
        let ok = parse(b"GET /stream/cam?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(
            ok,
            Some(Request {
                method: "GET".into(),
                path: "/stream/cam".into(),
                headers: vec![("host".into(), "a".into())],
                rest: Vec::new(),
            })
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse(many.as_bytes()), Err(HeadError::TooLarge));
        for smuggled in [
            "POST /upload/a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 100\r\n\r\n",
            "POST /upload/a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert_eq!(parse(smuggled.as_bytes()), Err(HeadError::Malformed), "{smuggled:?}");
        }
        let repeated = parse(
            b"POST /upload/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        );
        assert!(
            matches!(repeated, Ok(Some(_))),
            "the same length twice is one length"
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(long.as_bytes()), Err(HeadError::TooLarge));
    }
}
