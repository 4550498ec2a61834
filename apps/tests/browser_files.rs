//! Files from the browser, against a real `lanlink-server` with a share:
//! listings, downloads that are byte-identical and resume with `Range`
//! after the connection is cut, folders as tar, and names that try to
//! leave the share. The page itself is driven in headless Chromium.

mod browser_support;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use browser_support::Chromium;
use common::{lanlink, Scratch, Server};

/// A raw HTTP/1.1 answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET target` (the target exactly as given: no normalisation)
/// with `extra` header lines, reads the answer to the end.
fn get(http: &str, target: &str, extra: &str) -> Answer {
    send(http, "GET", target, extra, b"")
}

/// Sends a request with `body` (and its `Content-Length` when it has one).
fn send(http: &str, method: &str, target: &str, extra: &str, body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {http}\r\n{length}{extra}\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    parse(&all)
}

/// Every file and folder under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(tree(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
        }
        out.push(name);
    }
    out.sort();
    out
}

/// Waits (10 s at most) until `dir` holds exactly `want`.
fn wait_for_tree(dir: &Path, want: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tree(dir) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "inbox holds {:?}, not {want:?}",
            tree(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One file and folder cost this much of the upload quota on top of their
/// bytes (`lanlink_services::file::ENTRY_COST`).
const ENTRY_COST: usize = 4096;

fn parse(all: &[u8]) -> Answer {
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8(all[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body: all[end + 4..].to_vec(),
    }
}

/// Bytes no two offsets of which are alike for long.
fn content(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A share with a big file, a folder, a partial upload, and a symlink
/// and a secret outside it.
fn share(t: &Scratch) -> (std::path::PathBuf, Vec<u8>) {
    let share = t.dir("share");
    let outside = t.dir("outside");
    std::fs::write(outside.join("secret.txt"), b"TOP SECRET").unwrap();
    let big = content(3 * 1024 * 1024 + 123);
    std::fs::write(share.join("big.bin"), &big).unwrap();
    std::fs::create_dir_all(share.join("album/deep")).unwrap();
    std::fs::write(share.join("album/a.txt"), b"first").unwrap();
    std::fs::write(share.join("album/deep/b.txt"), b"second").unwrap();
    std::fs::write(share.join("album/.c.bin.lanlink-part"), b"half").unwrap();
    std::fs::write(share.join("r\u{e9}sum\u{e9} \"1\".txt"), b"cv").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), share.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, share.join("outdir")).unwrap();
    // A FIFO would block whoever opens it: never served, and a tar of a
    // folder holding one still ends.
    let made = std::process::Command::new("mkfifo")
        .arg(share.join("album/pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    (share, big)
}

fn start(share: &Path) -> (Server, String) {
    let server = Server::start(&["--http", "127.0.0.1:0", "--share", share.to_str().unwrap()]);
    let http = server.http.clone().unwrap();
    (server, http)
}

#[test]
fn downloads_are_whole_resume_with_range_and_never_leave_the_share() {
    let t = Scratch::new("http-files");
    let (share, big) = share(&t);
    let (server, http) = start(&share);

    // The listing: what `lanlink ls` shows, no partial file, no link out.
    let list = get(&http, "/files/", "");
    assert_eq!(list.status, 200);
    let text = String::from_utf8(list.body).unwrap();
    assert!(
        text.contains("\"name\":\"big.bin\",\"shown\":\"big.bin\",\"dir\":false,\"size\":3145851"),
        "{text}"
    );
    assert!(text.contains("\"name\":\"album\""), "{text}");
    for hidden in ["lanlink-part", "link.txt", "outdir"] {
        assert!(!text.contains(hidden), "{hidden} listed: {text}");
    }
    let head = send(&http, "HEAD", "/files/", "", b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty() && head.header("content-length").is_some());
    let head = send(&http, "HEAD", "/files/big.bin", "", b"");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("3145851"));
    let sub = String::from_utf8(get(&http, "/files/album/", "").body).unwrap();
    assert!(
        sub.contains("\"path\":\"album\"") && sub.contains("\"name\":\"deep\""),
        "{sub}"
    );

    // A whole download.
    let whole = get(&http, "/files/big.bin", "");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), Some("3145851"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(whole.header("last-modified").unwrap().ends_with(" GMT"));
    assert!(whole.body == big, "the download differs from the file");
    let etag = whole.header("etag").unwrap().to_owned();

    // Cut after a first part, then resume from where it stopped.
    let mut s = TcpStream::connect(&http).unwrap();
    write!(s, "GET /files/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut first = vec![0u8; 1024 * 1024];
    s.read_exact(&mut first).unwrap();
    drop(s);
    let head_len = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let got = first.len() - head_len;
    let rest = get(
        &http,
        "/files/big.bin",
        &format!("Range: bytes={got}-\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(rest.status, 206);
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes {got}-{}/{}", big.len() - 1, big.len()).as_str())
    );
    let mut joined = first[head_len..].to_vec();
    joined.extend_from_slice(&rest.body);
    assert!(joined == big, "the resumed download differs from the file");

    // The other range forms, a stale If-Range, an unsatisfiable range.
    let tail = get(&http, "/files/big.bin", "Range: bytes=-100\r\n");
    assert_eq!(
        (tail.status, &tail.body[..]),
        (206, &big[big.len() - 100..])
    );
    let mid = get(&http, "/files/big.bin", "Range: bytes=10-19\r\n");
    assert_eq!((mid.status, &mid.body[..]), (206, &big[10..20]));
    let stale = get(
        &http,
        "/files/big.bin",
        "Range: bytes=10-19\r\nIf-Range: \"old\"\r\n",
    );
    assert_eq!((stale.status, stale.body.len()), (200, big.len()));
    let beyond = get(&http, "/files/big.bin", "Range: bytes=99999999-\r\n");
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */3145851"));

    // A name that is no plain ASCII reaches the header only encoded.
    let cv = get(&http, "/files/r%C3%A9sum%C3%A9%20%221%22.txt", "");
    assert_eq!((cv.status, &cv.body[..]), (200, &b"cv"[..]));
    assert_eq!(
        cv.header("content-disposition"),
        Some("attachment; filename=\"r_sum_ _1_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.txt")
    );

    // Ways out of the share, raw on the wire: none reads the secret.
    let secret = share.parent().unwrap().join("outside/secret.txt");
    let absolute = format!("/files/{}", secret.display());
    for attack in [
        "/files/../outside/secret.txt",
        "/files/%2e%2e/outside/secret.txt",
        "/files/album/..%2f..%2foutside/secret.txt",
        "/files/album/%2E%2E/%2E%2E/outside/secret.txt",
        "/files/..%5coutside%5csecret.txt",
        "/files//etc/passwd",
        absolute.as_str(),
        "/files/link.txt",
        "/files/outdir/secret.txt",
        "/tar/outdir",
        "/tar/..",
        "/files/album/.c.bin.lanlink-part",
        "/files/big.bin%00",
        "/files/album/pipe",
    ] {
        let a = get(&http, attack, "");
        assert!(
            matches!(a.status, 400 | 404),
            "{attack}: {} {:?}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            !String::from_utf8_lossy(&a.body).contains("SECRET"),
            "{attack} leaked the secret"
        );
    }

    // A folder as tar: the system's tar reads it back.
    let tar = get(&http, "/tar/album", "");
    assert_eq!(tar.status, 200);
    assert_eq!(tar.header("content-type"), Some("application/x-tar"));
    let told: usize = tar.header("content-length").unwrap().parse().unwrap();
    assert_eq!(told, tar.body.len(), "the tar's length is told ahead");
    let out = t.dir("untar");
    let mut untar = std::process::Command::new("tar")
        .args(["-x", "-C", out.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    untar.stdin.take().unwrap().write_all(&tar.body).unwrap();
    assert!(untar.wait().unwrap().success());
    assert_eq!(std::fs::read(out.join("album/a.txt")).unwrap(), b"first");
    assert_eq!(
        std::fs::read(out.join("album/deep/b.txt")).unwrap(),
        b"second"
    );
    assert!(!out.join("album/.c.bin.lanlink-part").exists());

    drop(server);
}

#[test]
fn files_need_the_access_token_when_the_server_has_one() {
    let t = Scratch::new("http-files-token");
    let (share, _) = share(&t);
    let inbox = t.dir("inbox");
    let server = Server::start(&[
        "--http",
        "127.0.0.1:0",
        "--share",
        share.to_str().unwrap(),
        "--inbox",
        inbox.to_str().unwrap(),
        "--token",
        "open-sesame-1234",
    ]);
    let http = server.http.clone().unwrap();
    for target in ["/files/", "/files/big.bin", "/tar/album"] {
        assert_eq!(get(&http, target, "").status, 403, "{target}");
    }
    // Refused before its body is read, an upload still gets to read why
    // (the body is drained, not reset).
    let payload = content(2_000_000);
    let refused = send(&http, "POST", "/upload/x.bin", "", &payload);
    assert_eq!(refused.status, 403);
    assert!(tree(&inbox).is_empty());
    // POST /auth trades the token for a cookie that opens them.
    let mut s = TcpStream::connect(&http).unwrap();
    let body = r#"{"token":"open-sesame-1234"}"#;
    write!(
        s,
        "POST /auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let login = parse(&all);
    assert_eq!(login.status, 204);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let list = get(&http, "/files/", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(list.status, 200);
    let up = send(
        &http,
        "POST",
        "/upload/x.bin",
        &format!("Cookie: {cookie}\r\n"),
        &payload,
    );
    assert_eq!(up.status, 201);
    assert!(std::fs::read(inbox.join("x.bin")).unwrap() == payload);
    drop(server);
}

#[test]
fn the_page_downloads_byte_identical_files_and_resumes_a_cut_download() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let t = Scratch::new("browser-files");
    let (share, big) = share(&t);
    let (server, http) = start(&share);
    let browser = Chromium::start(chromium, &t.dir("profile"));
    let mut tab = browser.open(&format!("http://{http}/"));
    tab.wait_until(
        &format!("location.href === 'http://{http}/' && document.readyState === 'complete'"),
        "the page loads",
    );
    // The Files panel lists the share, with a link per file.
    tab.wait_until(
        "!document.getElementById('files').hidden && \
         !!document.querySelector('#files-list a[href=\"/files/big.bin\"]')",
        "the Files panel lists the share",
    );
    let shown = tab.eval(
        "[...document.querySelectorAll('#files-list li')].map(li => li.textContent).join('|')",
    );
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("album/") && shown.contains("big.bin (3.0 MiB)"),
        "{shown}"
    );
    assert!(shown.contains("résumé \"1\".txt"), "{shown}");
    assert!(
        !shown.contains("lanlink-part") && !shown.contains("link.txt"),
        "{shown}"
    );

    // Download through the page's own link, and resume a cut one: the page
    // reads a first part, cancels (the connection is cut), asks for the
    // rest with Range + If-Range, and hands both back.
    tab.eval(
        r#"(async function () {
          const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
          const href = document.querySelector('#files-list a[href="/files/big.bin"]').href;
          const whole = new Uint8Array(await (await fetch(href)).arrayBuffer());
          const r = await fetch(href);
          const etag = r.headers.get('ETag');
          const reader = r.body.getReader();
          const parts = [];
          let got = 0;
          while (got < 1000000) {
            const { value, done } = await reader.read();
            if (done) { break; }
            parts.push(value);
            got += value.length;
          }
          await reader.cancel();
          const rest = await fetch(href, { headers: { 'Range': 'bytes=' + got + '-', 'If-Range': etag } });
          const tail = new Uint8Array(await rest.arrayBuffer());
          const first = new Uint8Array(got);
          let at = 0;
          for (const p of parts) { first.set(p, at); at += p.length; }
          window.result = { whole: hex(whole), status: rest.status, got: got,
                            range: rest.headers.get('Content-Range'), first: hex(first), tail: hex(tail) };
        })().catch(e => { window.result = { error: String(e) }; });"#,
    );
    tab.wait_until("window.result !== undefined", "the page downloads");
    let result = tab.eval("window.result");
    assert!(result["error"].is_null(), "{:?}", result["error"]);
    let unhex = |v: &serde_json::Value| -> Vec<u8> {
        let s = v.as_str().unwrap().as_bytes();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    };
    assert!(
        unhex(&result["whole"]) == big,
        "the page's download differs from the file"
    );
    assert_eq!(result["status"], 206);
    let got = result["got"].as_u64().unwrap() as usize;
    assert!(got >= 1_000_000 && got < big.len(), "cut after {got}");
    assert_eq!(
        result["range"].as_str().unwrap(),
        format!("bytes {got}-{}/{}", big.len() - 1, big.len())
    );
    let mut joined = unhex(&result["first"]);
    joined.extend(unhex(&result["tail"]));
    assert!(joined == big, "the resumed download differs from the file");

    // Into a folder and back; its tar link follows.
    tab.eval(
        "[...document.querySelectorAll('#files-list a')].find(a => a.textContent === 'album/').click()",
    );
    tab.wait_until(
        "document.getElementById('files').dataset.path === 'album' && \
         document.getElementById('files-tar').getAttribute('href') === '/tar/album'",
        "the page opens the folder",
    );
    drop(browser);
    drop(server);
}

#[test]
fn uploads_land_in_the_inbox_within_the_limits_of_lanlink_put() {
    let t = Scratch::new("http-upload");
    let inbox = t.dir("inbox");
    let outside = t.dir("outside");
    std::os::unix::fs::symlink(&outside, inbox.join("escape")).unwrap();
    // Room for one 2 MB file and a bit.
    let quota = (2_000_000 + 100_000 + 2 * ENTRY_COST).to_string();
    let server = Server::start(&[
        "--http",
        "127.0.0.1:0",
        "--inbox",
        inbox.to_str().unwrap(),
        "--upload-quota",
        &quota,
    ]);
    let http = server.http.clone().unwrap();
    let status = String::from_utf8(get(&http, "/upload/", "").body).unwrap();
    assert!(status.starts_with("{\"enabled\":true,"), "{status}");

    let a = content(2_000_000);
    let up = send(&http, "POST", "/upload/a%20b.bin", "", &a);
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    assert!(
        std::fs::read(inbox.join("a b.bin")).unwrap() == a,
        "the upload differs"
    );

    // Names that try to leave the inbox, or pass for a partial file.
    for attack in [
        "/upload/..%2Fx",
        "/upload/%2e%2e/x",
        "/upload/%2Ftmp%2Fx",
        "/upload/escape/x",
        "/upload/.x.lanlink-part",
        "/upload/a%5C..%5Cx",
        "/upload/",
    ] {
        let a = send(&http, "POST", attack, "", b"evil");
        assert!(
            a.status == 400 || a.status == 404,
            "{attack}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        assert!(!String::from_utf8_lossy(&a.body).contains(inbox.to_str().unwrap()));
    }
    // Another site's page cannot make a browser upload here.
    for header in [
        "Origin: http://evil.example\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
    ] {
        assert_eq!(
            send(&http, "POST", "/upload/csrf.txt", header, b"x").status,
            403
        );
    }
    // Over the quota, an existing name, no length: refused, with a reason.
    let over = send(&http, "POST", "/upload/b.bin", "", &content(200_000));
    assert_eq!(over.status, 413);
    assert!(String::from_utf8_lossy(&over.body).contains("quota"));
    let again = send(&http, "PUT", "/upload/a%20b.bin", "", b"xx");
    assert_eq!(again.status, 409);
    let chunked = send(
        &http,
        "POST",
        "/upload/c.bin",
        "Transfer-Encoding: chunked\r\n",
        b"",
    );
    assert_eq!(chunked.status, 411);
    // Cut half way: nothing stays.
    let mut s = TcpStream::connect(&http).unwrap();
    write!(
        s,
        "POST /upload/cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&content(20_000)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    wait_for_tree(&inbox, &["a b.bin", "escape"]);
    assert!(tree(&outside).is_empty());

    // The browser's bytes count against the same quota `lanlink put` sees.
    let small = t.0.join("small.bin");
    std::fs::write(&small, content(150_000)).unwrap();
    let out = lanlink(&["put", &server.addr, small.to_str().unwrap()]);
    assert!(!out.status.success(), "lanlink put got around the quota");
    assert!(String::from_utf8_lossy(&out.stderr).contains("quota"));
    wait_for_tree(&inbox, &["a b.bin", "escape"]);
    drop(server);
}

#[test]
fn the_page_uploads_with_progress_and_shows_refusals() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let t = Scratch::new("browser-upload");
    let inbox = t.dir("inbox");
    let quota = (3_000_000 + 2 * ENTRY_COST).to_string();
    let server = Server::start(&[
        "--http",
        "127.0.0.1:0",
        "--inbox",
        inbox.to_str().unwrap(),
        "--upload-quota",
        &quota,
    ]);
    let http = server.http.clone().unwrap();
    let browser = Chromium::start(chromium, &t.dir("profile"));
    let mut tab = browser.open(&format!("http://{http}/"));
    tab.wait_until(
        &format!("location.href === 'http://{http}/' && document.readyState === 'complete'"),
        "the page loads",
    );
    tab.wait_until(
        "!document.getElementById('files-upload').hidden",
        "the upload form shows",
    );
    // Files put in the page's own form (as a picker would) and submitted:
    // a 2.5 MB one that fits, then one over the quota, then a bad name.
    tab.eval(
        r#"(function () {
          const bytes = new Uint8Array(2500000);
          for (let i = 0; i < bytes.length; i++) { bytes[i] = Number((BigInt(i) * 2654435761n) >> 13n & 255n); }
          const dt = new DataTransfer();
          dt.items.add(new File([bytes], 'from the page.bin'));
          dt.items.add(new File([bytes.slice(0, 600000)], 'too much.bin'));
          dt.items.add(new File(['x'], '../escape.txt'));
          document.getElementById('files-pick').files = dt.files;
          document.getElementById('files-upload').requestSubmit();
        })()"#,
    );
    tab.wait_until(
        "window.lanlinkFiles.state.results.length === 3",
        "the page uploads three files",
    );
    let results = tab.eval("window.lanlinkFiles.state.results");
    assert_eq!(results[0]["status"], 201, "{results}");
    assert_eq!(results[0]["text"], "uploaded from the page.bin");
    assert_eq!(results[1]["status"], 413, "{results}");
    assert!(
        results[1]["text"]
            .as_str()
            .unwrap()
            .contains("upload quota"),
        "{results}"
    );
    assert_eq!(results[2]["status"], 400, "{results}");
    let events = tab.eval("window.lanlinkFiles.state.progressEvents");
    assert!(events.as_u64().unwrap() >= 1, "no upload progress seen");
    let shown = tab.eval("document.getElementById('files-status').textContent");
    assert!(shown.as_str().unwrap().starts_with("refused: "), "{shown}");

    assert!(
        std::fs::read(inbox.join("from the page.bin")).unwrap() == content(2_500_000),
        "the page's upload differs"
    );
    wait_for_tree(&inbox, &["from the page.bin"]);
    assert!(!t.0.join("escape.txt").exists());
    drop(browser);
    drop(server);
}
