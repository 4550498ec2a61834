//! Files for browsers: the server's shared folder, listed, downloaded (with
//! `Range`, so an interrupted download resumes) and, folder by folder,
//! streamed as tar.
//!
//! | path | answer |
//! | --- | --- |
//! | `GET /files/` , `/files/DIR/` | `{"path":…,"entries":[{"name":…,"shown":…,"dir":…,"size":…,"modified":…}],"truncated":…}` |
//! | `GET /files/FILE` | the file: `Content-Length`, `ETag`, `Last-Modified`, `Accept-Ranges`; `Range: bytes=a-b`, `a-`, `-n` answer 206 (416 when unsatisfiable), `If-Range` with the ETag or date |
//! | `GET /tar/` , `/tar/DIR` | the folder as a tar, built while it is sent, its exact `Content-Length` told ahead |
//! | `POST /upload/NAME` (or `PUT`) | the body (`Content-Length` bytes) into the inbox as `NAME`, within `lanlink put`'s limits: 201, or 400/409/411/413/429/507 and a short text |
//! | `GET /upload/` | `{"enabled":…,"max_size":…}` |
//! | `GET /files.js` | the page's Files panel script |
//!
//! Names come from the URL and go through the file service's own checks
//! ([`path::validate`], [`path::resolve_existing`]): nothing outside the
//! share is ever read, whether by `..`, an absolute path or a symlink that
//! leads out; partial files of unfinished uploads are neither listed nor
//! served. The share's names reach the browser only JSON-escaped (and the
//! page puts them in `textContent`); the one header that carries a name,
//! `Content-Disposition`, has an ASCII stand-in and the RFC 5987
//! percent-encoded form, never raw disk bytes. Files are always sent as
//! `application/octet-stream` attachments with `nosniff`: a shared HTML
//! file cannot run as this page.
//!
//! Listings and downloads are here; folders as tar in `archive`, uploads
//! in `upload`.
//!
//! Everything here runs on the connection's own HTTP thread, within the
//! server's connection caps; reads are 256 KiB at a time and nothing is
//! buffered whole, and a browser that stops reading is cut by the write
//! timeout.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use lanlink_services::file::{listing, path, FileConfig};
use lanlink_services::text::display_safe;
use lanlink_services::ServiceError;
use lanlink_transport::Shutdown;

use super::pace::{MinPace, Paced};
use super::page::json_string;
use super::request::Request;
use super::{respond, Answering, Peer};

mod archive;
mod upload;

use archive::send_tar;
use upload::{drain, from_another_site, receive};

/// Reads and discards the request's body (as long as its
/// `Content-Length` says, up to a bound in bytes and time) after a refusal,
/// so that the browser reads the answer instead of a reset.
pub(super) fn drain_body(s: &mut impl Peer, request: &Request) -> io::Result<()> {
    let length = request.header("content-length").map(str::trim);
    drain(s, request, length.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Bytes read from disk at a time.
const READ_SIZE: usize = 256 * 1024;
/// Entries one listing shows; beyond it the listing says it is truncated.
pub const MAX_LISTED: usize = 10_000;

/// The Files panel of the page (one block of its HTML).
pub(super) const PANEL: &str = "<section id=\"files\" hidden><h2>Files</h2>\
<p><span id=\"files-path\"></span> <a id=\"files-tar\" href=\"/tar/\">download this folder (tar)</a></p>\
<ul id=\"files-list\"></ul><p id=\"files-error\"></p>\
<form id=\"files-upload\" hidden><input type=\"file\" id=\"files-pick\" multiple> <button>Upload</button> \
<progress id=\"files-progress\" max=\"1\" value=\"0\"></progress> <span id=\"files-status\"></span></form></section>\
<script src=\"/files.js\" defer></script>";

/// The Files panel's script.
pub(super) const SCRIPT: &str = include_str!("assets/files.js");

/// What the file routes can reach: the file service's settings (its
/// share, its inbox and upload limits, and the ledger its uploads count
/// against).
#[derive(Debug, Clone, Copy)]
pub(super) struct Files<'a> {
    pub(super) config: &'a FileConfig,
}

/// Answers `request` if its path is one of the file routes; `None` if it
/// is not. The session these routes need was checked before, with every
/// route's (`ROUTES` in the parent module).
pub(super) fn route(
    s: &mut impl Peer,
    request: &Request,
    path: &str,
    cx: &Answering<'_>,
) -> Option<io::Result<()>> {
    if path == "/files.js" {
        return Some(respond(
            s,
            "200 OK",
            "text/javascript; charset=utf-8",
            SCRIPT.as_bytes(),
        ));
    }
    if let Some(name) = path.strip_prefix("/upload/") {
        if name.is_empty() && request.method == "GET" {
            // What the page needs to offer its upload form.
            let config = cx.files.config;
            let json = format!(
                "{{\"enabled\":{},\"max_size\":{}}}\n",
                config.inbox.is_some(),
                config.max_upload_size
            );
            return Some(respond(s, "200 OK", "application/json", json.as_bytes()));
        }
        let refused: Option<(&str, &[u8])> = if request.method != "POST" && request.method != "PUT"
        {
            Some(("405 Method Not Allowed", b"POST or PUT\n"))
        } else if from_another_site(request) {
            Some((
                "403 Forbidden",
                b"uploads come from this server's own page\n",
            ))
        } else {
            None
        };
        return Some(match refused {
            Some((status, text)) => {
                respond(s, status, "text/plain", text).and_then(|()| drain_body(s, request))
            }
            None => receive(s, request, name, cx),
        });
    }
    let (name, tar) = if let Some(name) = path.strip_prefix("/files/") {
        (name, false)
    } else if let Some(name) = path.strip_prefix("/tar/") {
        (name, true)
    } else if path == "/files" || path == "/tar" {
        ("", path == "/tar")
    } else {
        return None;
    };
    let head_only = request.method == "HEAD";
    let allowed = request.method == "GET" || (head_only && !tar);
    if !allowed {
        return Some(respond(
            s,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        ));
    }
    let Some(share) = cx.files.config.share.as_deref() else {
        return Some(respond(
            s,
            "404 Not Found",
            "text/plain",
            b"this server shares no folder\n",
        ));
    };
    let Some(found) = find(share, name) else {
        return Some(respond(s, "404 Not Found", "text/plain", b"no such file\n"));
    };
    let is_dir = found.meta.is_dir();
    Some(if tar {
        if is_dir {
            send_tar(s, share, &found, cx.shutdown, cx.min_pace)
        } else {
            respond(s, "400 Bad Request", "text/plain", b"not a folder\n")
        }
    } else if is_dir {
        match listing_json(share, &found) {
            // HEAD: the same head, no body.
            Ok(json) if head_only => write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
                json.len()
            ),
            Ok(json) => respond(s, "200 OK", "application/json", json.as_bytes()),
            Err(_) => respond(
                s,
                "500 Internal Server Error",
                "text/plain",
                b"cannot list that folder\n",
            ),
        }
    } else if name.ends_with('/') {
        respond(s, "404 Not Found", "text/plain", b"not a folder\n")
    } else if !found.meta.is_file() {
        // A FIFO or a device: opening it could block for ever.
        respond(s, "404 Not Found", "text/plain", b"not a plain file\n")
    } else {
        send_file(s, request, &found, head_only, cx.shutdown, cx.min_pace)
    })
}

/// A name of the share, checked and found on disk.
struct Found {
    /// The name inside the share (`/`-separated, no trailing slash; empty
    /// for the share itself).
    name: String,
    /// Where it really is (symlinks resolved, inside the share).
    full: PathBuf,
    meta: std::fs::Metadata,
}

/// Finds `name` (from the URL, percent-decoded; a trailing `/` allowed)
/// in `share`: `None` for a name the file service would refuse, a
/// partial file, or anything that is not there or lies outside.
fn find(share: &Path, name: &str) -> Option<Found> {
    let name = name.strip_suffix('/').unwrap_or(name);
    let rel = if name.is_empty() {
        PathBuf::new()
    } else {
        // Also refuses partial files' names (`.NAME.lanlink-part`).
        path::validate_existing(name).ok()?
    };
    let full = path::resolve_existing(share, &rel, name).ok()?;
    let meta = std::fs::metadata(&full).ok()?;
    Some(Found {
        name: name.to_owned(),
        full,
        meta,
    })
}

/// The listing of a folder of the share, as JSON.
fn listing_json(share: &Path, found: &Found) -> Result<String, ServiceError> {
    let entries = listing::list(share, &found.full, false, &AtomicBool::new(false))?;
    let truncated = entries.len() > MAX_LISTED;
    let items: Vec<String> = entries
        .iter()
        .take(MAX_LISTED)
        .map(|e| {
            format!(
                "{{\"name\":{},\"shown\":{},\"dir\":{},\"size\":{},\"modified\":{}}}",
                json_string(&e.name),
                json_string(&display_safe(&e.name)),
                e.is_dir,
                e.size,
                e.modified
            )
        })
        .collect();
    Ok(format!(
        "{{\"path\":{},\"entries\":[{}],\"truncated\":{truncated}}}\n",
        json_string(&found.name),
        items.join(",")
    ))
}

/// The part of a file a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Span {
    /// All of it (no `Range`, or one this server ignores: several ranges,
    /// a malformed one, or a stale `If-Range`).
    Whole,
    /// Bytes `start..end` (end exclusive, never empty).
    Part { start: u64, end: u64 },
    /// Nothing of the file matches (416).
    Unsatisfiable,
}

/// The span a `Range` header's value asks of a file of `size` bytes.
/// Only one `bytes` range is honoured; anything else is served whole, as
/// RFC 9110 allows.
pub(super) fn span_of(range: Option<&str>, size: u64) -> Span {
    let Some(range) = range else {
        return Span::Whole;
    };
    let Some((unit, spec)) = range.trim().split_once('=') else {
        return Span::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Span::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Span::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // More digits than a u64 holds: as good as infinite.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => Span::Unsatisfiable,
            Some(_) if size == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part {
                start: size - n.min(size),
                end: size,
            },
            None => Span::Whole,
        },
        // `a-` and `a-b`.
        (false, open) => {
            let Some(start) = number(first) else {
                return Span::Whole;
            };
            let end = if open {
                size
            } else {
                match number(last) {
                    Some(b) if b >= start => b.saturating_add(1).min(size),
                    _ => return Span::Whole,
                }
            };
            if start >= size {
                Span::Unsatisfiable
            } else {
                Span::Part { start, end }
            }
        }
        (true, true) => Span::Whole,
    }
}

/// The file's validator: its size and modification time (to the
/// nanosecond), so a file replaced or rewritten gets a new one.
fn etag(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!(
        "\"{:x}-{:x}.{:x}\"",
        meta.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    )
}

/// `t` as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS
        .get(days.rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Thu");
    let month = MONTHS
        .get((month - 1).clamp(0, 11) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} GMT",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `Content-Disposition` for a file called `name` (its last component):
/// an ASCII stand-in for old browsers, and the exact name percent-encoded
/// as RFC 5987 `filename*`. Nothing from the disk goes in raw.
pub(super) fn disposition(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ascii = if ascii.trim_matches(['.', ' ']).is_empty() {
        "download".to_owned()
    } else {
        ascii
    };
    let encoded: String = base
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Sends a file (or the part the `Range` asks for).
fn send_file(
    s: &mut impl Peer,
    request: &Request,
    found: &Found,
    head_only: bool,
    shutdown: &Shutdown,
    min_pace: MinPace,
) -> io::Result<()> {
    let Ok(mut file) = File::open(&found.full) else {
        return respond(s, "404 Not Found", "text/plain", b"no such file\n");
    };
    // The open file's own size and time: what is sent is what is described.
    let meta = file.metadata()?;
    let size = meta.len();
    let tag = etag(&meta);
    let modified = meta.modified().map(http_date).unwrap_or_default();
    let range = request.header("range");
    let range = match request.header("if-range") {
        // A stale validator: the browser's piece is of another file.
        Some(v) if range.is_some() && v.trim() != tag && v.trim() != modified => None,
        _ => range,
    };
    let span = span_of(range, size);
    let common = format!(
        "Content-Type: application/octet-stream\r\nContent-Disposition: {}\r\nETag: {tag}\r\n\
         Last-Modified: {modified}\r\nAccept-Ranges: bytes\r\nCache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        disposition(&found.name)
    );
    let (start, end) = match span {
        Span::Whole => {
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n{common}\r\n"
            )?;
            (0, size)
        }
        Span::Part { start, end } => {
            write!(
                s,
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{size}\r\n{common}\r\n",
                end - start,
                end - 1
            )?;
            (start, end)
        }
        Span::Unsatisfiable => {
            return write!(
                s,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\n\
                 Content-Length: 0\r\n{common}\r\n"
            );
        }
    };
    if head_only {
        return s.flush();
    }
    file.seek(SeekFrom::Start(start))?;
    copy_exactly(
        &mut file,
        &mut Paced::new(s, min_pace),
        end - start,
        shutdown,
    )?;
    s.flush()
}

/// Copies `len` bytes of `from` to `to`, [`READ_SIZE`] at a time; a file
/// that shrank meanwhile is padded with zeros, so the length promised in
/// the header stays true. Stops when the server does.
fn copy_exactly(
    from: &mut impl Read,
    to: &mut impl Write,
    len: u64,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut buf = lanlink_services::file::page_aligned(READ_SIZE);
    let mut left = len;
    while left > 0 {
        if shutdown.is_triggered() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let want = usize::try_from(left).unwrap_or(READ_SIZE).min(READ_SIZE);
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = match from.read(chunk) {
            Ok(0) => {
                chunk.fill(0);
                want
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(chunk.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    Ok(())
}

/// A reader that fails once the server is stopping, so a tar stream does
/// not hold up the shutdown.
struct UntilShutdown<'a, R> {
    inner: R,
    shutdown: &'a Shutdown,
}

impl<R: Read> Read for UntilShutdown<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shutdown.is_triggered() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_as_rfc_9110_says() {
        let part = |start, end| Span::Part { start, end };
        assert_eq!(span_of(None, 100), Span::Whole);
        assert_eq!(span_of(Some("bytes=0-9"), 100), part(0, 10));
        assert_eq!(span_of(Some("bytes=10-"), 100), part(10, 100));
        assert_eq!(span_of(Some("bytes=-10"), 100), part(90, 100));
        assert_eq!(span_of(Some("bytes=-1000"), 100), part(0, 100));
        assert_eq!(span_of(Some("bytes=90-1000"), 100), part(90, 100));
        assert_eq!(span_of(Some("Bytes = 5 - 5"), 100), part(5, 6));
        assert_eq!(
            span_of(Some("bytes=0-99999999999999999999999"), 100),
            part(0, 100)
        );
        for unsatisfiable in ["bytes=100-", "bytes=100-200", "bytes=-0"] {
            assert_eq!(
                span_of(Some(unsatisfiable), 100),
                Span::Unsatisfiable,
                "{unsatisfiable}"
            );
        }
        assert_eq!(span_of(Some("bytes=-5"), 0), Span::Unsatisfiable);
        assert_eq!(span_of(Some("bytes=0-"), 0), Span::Unsatisfiable);
        // Served whole: several ranges, other units, nonsense.
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes 0-1",
            "",
        ] {
            assert_eq!(span_of(Some(ignored), 100), Span::Whole, "{ignored}");
        }
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn dispositions_carry_no_raw_names() {
        assert_eq!(
            disposition("dir/report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let d = disposition("\"evil\r\nSet-Cookie: x=1;\u{202e}fdp.exe ünï");
        assert!(
            d.is_ascii() && !d.contains('\r') && !d.contains('\n'),
            "{d}"
        );
        assert!(d.contains("filename*=UTF-8''%22evil%0D%0ASet-Cookie%3A%20x%3D1%3B%E2%80%AEfdp.exe%20%C3%BCn%C3%AF"));
        assert!(
            d.starts_with("attachment; filename=\"_evil__Set-Cookie_ x_1__fdp.exe _n_\""),
            "{d}"
        );
        assert!(disposition("..").contains("filename=\"download\""));
    }

    pub(super) fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lanlink-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A fresh `base/share` with `sub/ok.txt`, and a `secret` in
    /// `base/outside` that the share's `link` (to the file) and `dirlink`
    /// (to the folder) point at; returns base, share and outside.
    fn hostile_share(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let base = scratch(tag);
        let share = base.join("share");
        let outside = base.join("outside");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::fs::write(share.join("sub/ok.txt"), b"ok").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), share.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("dirlink")).unwrap();
        (base, share, outside)
    }

    #[test]
    fn names_cannot_escape_the_share() {
        let (base, share, outside) = hostile_share("escape");
        std::fs::write(share.join(".big.bin.lanlink-part"), b"half").unwrap();
        std::os::unix::fs::symlink(share.join("sub/ok.txt"), share.join("inside")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(share.join("pipe"))
            .status()
            .is_ok_and(|s| s.success());

        assert!(find(&share, "sub/ok.txt").is_some());
        assert!(find(&share, "sub/").is_some_and(|f| f.meta.is_dir()));
        assert!(find(&share, "").is_some_and(|f| f.name.is_empty()));
        assert!(find(&share, "inside").is_some(), "a symlink inside is fine");
        let secret = outside.join("secret").display().to_string();
        for attack in [
            "../outside/secret",
            "sub/../../outside/secret",
            "..",
            "sub/..",
            secret.as_str(),
            "/etc/passwd",
            "link",
            "dirlink/secret",
            "dirlink/",
            "sub\\..\\..\\outside\\secret",
            "sub/ok.txt\0",
            ".big.bin.lanlink-part",
            "sub//ok.txt",
            "./sub/ok.txt",
        ] {
            assert!(find(&share, attack).is_none(), "{attack:?} was found");
        }
        // A FIFO is found but never opened: it is not a plain file.
        if fifo {
            assert!(find(&share, "pipe").is_some_and(|f| !f.meta.is_file()));
        }
        // The listing shows neither the partial file nor the links out.
        let root = find(&share, "").unwrap();
        let json = listing_json(&share, &root).unwrap();
        assert!(json.contains("\"name\":\"sub\"") && json.contains("\"name\":\"inside\""));
        for hidden in ["lanlink-part", "link\"", "dirlink"] {
            assert!(!json.contains(hidden), "{hidden} listed: {json}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Whatever a URL's path decodes to, what is found lies inside the
        /// share and is never a partial file.
        #[test]
        fn no_name_finds_anything_outside_the_share(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "..", ".", "", "sub", "ok.txt", "link", "dirlink", "secret",
                    "outside", "\\", "..\\..", "\0", ".x.lanlink-part", "/", "C:", "%2e%2e",
                ]),
                0..6,
            ),
            lead in proptest::bool::ANY,
        ) {
            let share = escape_share();
            let name = format!("{}{}", if lead { "/" } else { "" }, parts.join("/"));
            let decoded = super::super::page::percent_decode(&name);
            for name in [name.as_str(), decoded.as_str()] {
                if let Some(found) = find(&share, name) {
                    let root = share.canonicalize().unwrap();
                    proptest::prop_assert!(found.full.starts_with(&root), "{name:?}: {:?}", found.full);
                    proptest::prop_assert!(!found.full.to_string_lossy().contains("lanlink-part"));
                    proptest::prop_assert!(!found.full.to_string_lossy().contains("outside"));
                }
            }
        }
    }

    /// A share (made once) with a file, a folder, a partial, and symlinks to
    /// a secret outside it.
    fn escape_share() -> PathBuf {
        static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        MADE.get_or_init(|| {
            let (_, share, outside) = hostile_share("prop");
            std::fs::write(share.join(".x.lanlink-part"), b"half").unwrap();
            std::os::unix::fs::symlink(&outside, share.join("sub/outside")).unwrap();
            share
        })
        .clone()
    }
}
