//! Uploads from browsers into the inbox (`POST /upload/NAME`), through the
//! file service's [`UploadLedger`]: the same checks and the same quota as
//! `lanlink put`.
//!
//! [`UploadLedger`]: lanlink_services::file::UploadLedger

use std::io;
use std::time::{Duration, Instant};

use lanlink_services::text::display_safe;
use lanlink_services::ServiceError;

use super::super::page::json_string;
use super::super::request::Request;
use super::super::{respond, Answering, Peer};
use super::READ_SIZE;

/// How long one read of an upload's body waits.
const UPLOAD_POLL: Duration = Duration::from_secs(1);
/// How long an upload may send nothing before it is given up.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(30);
/// The least an upload must send in every [`UPLOAD_IDLE`] window (about
/// 2 KiB/s, far below a phone on poor Wi-Fi): a drip of a byte now and
/// then would otherwise hold its upload slot and connection for ever.
pub const UPLOAD_MIN_PER_WINDOW: u64 = 64 * 1024;
/// Bytes of a refused upload's body read (and thrown away) so that the
/// browser gets to read the refusal instead of a reset connection.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;
/// The most time spent on that.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// `POST /upload/NAME` (or `PUT`): the body, `Content-Length` bytes, goes
/// into the inbox as `NAME` through the file service's [`UploadLedger`]:
/// the same name checks, size limit, quota, free-space reserve and
/// transfers per address as `lanlink put`. It is written to a partial
/// file published only once whole; refused or cut short, nothing stays.
///
/// [`UploadLedger`]: lanlink_services::file::UploadLedger
pub(super) fn receive(
    s: &mut impl Peer,
    request: &Request,
    name: &str,
    cx: &Answering<'_>,
) -> io::Result<()> {
    let config = cx.files.config;
    if config.inbox.is_none() {
        return respond(
            s,
            "404 Not Found",
            "text/plain",
            b"this server takes no uploads\n",
        );
    }
    let length = match request.header("content-length").map(str::trim) {
        Some(v)
            if request.header("transfer-encoding").is_none()
                && !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit()) =>
        {
            v.parse::<u64>().unwrap_or(u64::MAX)
        }
        _ => {
            return respond(
                s,
                "411 Length Required",
                "text/plain",
                b"send the file with a Content-Length\n",
            )
        }
    };
    // Each read of the body waits a little at a time: a stalled upload
    // is noticed (and given up after UPLOAD_IDLE) whatever the head left.
    let _ = s.set_read_timeout(UPLOAD_POLL);
    let mut upload = match config.ledger.begin(config, cx.ip, name, length) {
        Ok(u) => u,
        Err(e) => {
            let (status, text) = refusal(&e);
            respond(s, status, "text/plain", text.as_bytes())?;
            return drain(s, request, length);
        }
    };
    let expects = request
        .header("expect")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    if expects {
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        s.flush()?;
    }
    let first = request
        .rest
        .get(
            ..request
                .rest
                .len()
                .min(usize::try_from(length).unwrap_or(usize::MAX)),
        )
        .unwrap_or_default();
    if let Err(e) = upload.write(first) {
        return refuse_upload(s, &e);
    }
    let mut buf = vec![0u8; READ_SIZE];
    let mut heard = Instant::now();
    let mut window = (Instant::now(), upload.received());
    while upload.received() < length {
        if window.0.elapsed() >= UPLOAD_IDLE {
            if upload.received() - window.1 < UPLOAD_MIN_PER_WINDOW {
                return respond(
                    s,
                    "408 Request Timeout",
                    "text/plain",
                    b"the upload is too slow\n",
                );
            }
            window = (Instant::now(), upload.received());
        }
        if cx.shutdown.is_triggered() {
            return Ok(());
        }
        let want = usize::try_from(length - upload.received())
            .unwrap_or(READ_SIZE)
            .min(READ_SIZE);
        let n = match s.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => return Ok(()), // the browser went away: nothing stays
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if heard.elapsed() >= UPLOAD_IDLE {
                    return respond(
                        s,
                        "408 Request Timeout",
                        "text/plain",
                        b"the upload stalled\n",
                    );
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        heard = Instant::now();
        if let Err(e) = upload.write(buf.get(..n).unwrap_or_default()) {
            return refuse_upload(s, &e);
        }
    }
    match upload.finish() {
        Ok(target) => {
            tracing::info!(
                "received browser upload {} ({length} bytes) from {}",
                display_safe(&target.to_string_lossy()),
                cx.ip
            );
            let json = format!("{{\"name\":{},\"size\":{length}}}\n", json_string(name));
            respond(s, "201 Created", "application/json", json.as_bytes())
        }
        Err(e) => refuse_upload(s, &e),
    }
}

/// Answers a refusal in the middle of an upload; the connection closes.
fn refuse_upload(s: &mut impl Peer, e: &ServiceError) -> io::Result<()> {
    let (status, text) = refusal(e);
    respond(s, status, "text/plain", text.as_bytes())
}

/// True when a browser says the request was made by another site's page
/// (`Sec-Fetch-Site`, or an `Origin` that is not this server): a page
/// elsewhere on the web must not make a visitor's browser drop files into
/// the inbox. Programs that send neither header (curl) are not affected.
pub(super) fn from_another_site(request: &Request) -> bool {
    let fetch_site = request.header("sec-fetch-site").map(str::trim);
    if fetch_site.is_some_and(|v| v != "same-origin" && v != "none") {
        return true;
    }
    match (request.header("origin"), request.header("host")) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let origin = origin.trim();
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            authority != Some(host.trim())
        }
        (Some(_), None) => true,
    }
}

/// Reads and drops what is left of a refused request's body (up to
/// [`DRAIN_MAX`] and [`DRAIN_TIME`], while it keeps coming), so the browser reads the
/// refusal rather than a connection reset.
pub(super) fn drain(s: &mut impl Peer, request: &Request, length: u64) -> io::Result<()> {
    let mut left = length
        .min(DRAIN_MAX)
        .saturating_sub(request.rest.len() as u64);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + DRAIN_TIME;
    while left > 0 && Instant::now() < deadline {
        let want = usize::try_from(left).unwrap_or(buf.len()).min(buf.len());
        match s.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => left = left.saturating_sub(n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// The status and a text for a refused upload: fixed words and numbers,
/// never a path of the server (nor the name back).
fn refusal(e: &ServiceError) -> (&'static str, String) {
    match e {
        ServiceError::BadPath { reason, .. } => ("400 Bad Request", format!("refused: {reason}\n")),
        ServiceError::NotEnabled { .. } => {
            ("404 Not Found", "this server takes no uploads\n".into())
        }
        ServiceError::FileTooLarge { size, max, .. } => (
            "413 Content Too Large",
            format!("too large: {size} bytes, the limit is {max}\n"),
        ),
        ServiceError::QuotaExceeded { needed, left, .. } => (
            "413 Content Too Large",
            format!("over your upload quota: {needed} bytes needed, {left} left\n"),
        ),
        ServiceError::EntryQuotaExceeded { needed, left, .. } => (
            "413 Content Too Large",
            format!("over your upload quota: {needed} files and folders needed, {left} left\n"),
        ),
        ServiceError::NoSpace {
            needed, available, ..
        } => (
            "507 Insufficient Storage",
            format!("not enough disk space: {needed} bytes needed, {available} available\n"),
        ),
        ServiceError::AlreadyExists { .. } => (
            "409 Conflict",
            "a file of that name is already in the inbox\n".into(),
        ),
        ServiceError::UploadInProgress { .. } => (
            "409 Conflict",
            "that file is being uploaded right now\n".into(),
        ),
        ServiceError::TooManyTransfers { max } => (
            "429 Too Many Requests",
            format!("too many uploads at once (at most {max})\n"),
        ),
        other => {
            tracing::warn!(
                "browser upload failed: {}",
                display_safe(&other.to_string())
            );
            ("500 Internal Server Error", "the upload failed\n".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_from_other_sites_are_told_apart() {
        let request = |headers: &[(&str, &str)]| Request {
            method: "POST".into(),
            path: "/upload/x".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            rest: Vec::new(),
        };
        let host = ("host", "10.0.0.2:7879");
        assert!(!from_another_site(&request(&[host])), "curl");
        assert!(!from_another_site(&request(&[
            host,
            ("origin", "http://10.0.0.2:7879"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!from_another_site(&request(&[
            host,
            ("origin", "https://10.0.0.2:7879")
        ])));
        for evil in [
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "http://10.0.0.2:8080")],
            vec![host, ("origin", "null")],
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![("origin", "http://10.0.0.2:7879")],
        ] {
            assert!(from_another_site(&request(&evil)), "{evil:?}");
        }
    }
}
