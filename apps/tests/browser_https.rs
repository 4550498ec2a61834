//! The browser page over HTTPS in headless Chromium, which accepts the
//! server's self-signed certificate only by its public key (as a user
//! accepts it after comparing fingerprints): the page shows the same
//! fingerprint as the server console, and a `lanlink cam --test-pattern`
//! frame shows in it (its colour bars read back from a canvas), a click
//! shows it full size and its snapshot link downloads the frame as
//! `NAME.jpg`; typed as `http://`, it is redirected to `https://`. Plain
//! HTTP beside TLS is refused at start unless on loopback, and the chat
//! panel works over `wss://` from the link the console prints (and
//! `/audio` opens there too).

mod browser_support;
mod common;

use std::process::Command;
use std::time::Duration;

use browser_support::{Chromium, Tab};
use common::{home, lanlink_spawn, run_bounded, ChatClient, Scratch, Server};
use lanlink_video::{PatternLayout, BAR_COLOURS};
use rcgen::PublicKeyData;

/// The base64 SHA-256 of the server key's SubjectPublicKeyInfo: what
/// Chromium's `--ignore-certificate-errors-spki-list` takes.
fn spki_hash() -> String {
    let key = std::fs::read_to_string(home().join("server").join("tls-key.pem"))
        .expect("the test home's server key");
    let spki = rcgen::KeyPair::from_pem(&key)
        .expect("a PEM key")
        .subject_public_key_info();
    base64(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref())
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Vec<u8> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ABC.iter().position(|&a| a == c).expect("base64") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Chromium trusting the test server's certificate (and nothing else).
fn chromium_for_https(path: &str, t: &Scratch) -> Chromium {
    let trust = format!("--ignore-certificate-errors-spki-list={}", spki_hash());
    Chromium::start_with(path, &t.dir("profile"), &[&trust])
}

/// Opens the page and waits until it has loaded.
fn open_page(browser: &Chromium, url: &str) -> Tab {
    let mut tab = browser.open(url);
    tab.wait_until(
        &format!("location.href === '{url}' && document.readyState === 'complete'"),
        "the page loads over HTTPS",
    );
    tab
}

/// The RGB of pixel (x, y) of the stream `name`'s current frame, drawn
/// into a canvas.
fn pixel(tab: &mut Tab, name: &str, x: usize, y: usize) -> [i64; 3] {
    let got = tab.eval(&format!(
        "(() => {{ const img = document.querySelector('figure[data-name=\"{name}\"] img'); \
         const c = document.createElement('canvas'); c.width = img.naturalWidth; \
         c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0); \
         return Array.from(g.getImageData({x}, {y}, 1, 1).data.slice(0, 3)); }})()"
    ));
    let rgb: Vec<i64> = got
        .as_array()
        .unwrap_or_else(|| panic!("no pixel: {got}"))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    [rgb[0], rgb[1], rgb[2]]
}

#[test]
fn the_https_page_shows_the_consoles_fingerprint_and_a_test_pattern_frame() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "https://127.0.0.1:0"]);
    let url = server
        .page_url
        .clone()
        .expect("the console prints the page");
    let http = server.http.clone().unwrap();
    assert_eq!(url, format!("https://{http}/"));
    let console = server.fingerprint.clone().expect("the console fingerprint");
    let t = Scratch::new("browser-https");
    let browser = chromium_for_https(chromium, &t);
    let mut tab = open_page(&browser, &url);
    assert_eq!(tab.eval("location.protocol"), "https:");
    assert_eq!(
        tab.eval("document.getElementById('fingerprint').textContent"),
        console.as_str(),
        "the page's fingerprint is the console's"
    );
    tab.eval("fetch('/info').then(r => r.json()).then(j => { window.info = j; }), 0");
    tab.wait_until(
        &format!("!!window.info && window.info.fingerprint === '{console}'"),
        "/info gives the same fingerprint",
    );

    // A camera: its frame shows, colour bars where the pattern puts them.
    let mut cam = lanlink_spawn(&[
        "cam",
        &server.addr,
        "--test-pattern",
        "--size",
        "320x180",
        "--fps",
        "10",
        "--name",
        "pattern ü",
    ]);
    tab.wait_until(
        &format!("!!{FIG} && {FIG}.querySelector('img').naturalWidth === 320"),
        "the test pattern's frames show",
    );
    let layout = PatternLayout::for_size(320, 180);
    let y = (layout.panel_bottom + layout.bars_bottom) / 2;
    for bar in [1, 2, 5] {
        let x = bar * 40 + 20;
        let want = BAR_COLOURS[bar].map(i64::from);
        let got = pixel(&mut tab, "pattern ü", x, y);
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 40),
            "bar {bar} at ({x}, {y}): {got:?}, not {want:?}"
        );
    }

    // A click shows it full size; Escape goes back.
    tab.eval(&format!("{FIG}.querySelector('img').click(), 0"));
    tab.wait_until(
        &format!(
            "{FIG}.classList.contains('full') && \
             {FIG}.querySelector('img').getBoundingClientRect().width >= window.innerWidth - 20"
        ),
        "a click shows the stream full size",
    );
    assert!(
        tab.eval("location.pathname") == "/",
        "the click navigated away"
    );
    tab.eval("document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' })), 0");
    tab.wait_until(
        &format!("!{FIG}.classList.contains('full')"),
        "Escape goes back",
    );

    // The snapshot link downloads the current frame as NAME.jpg.
    tab.eval(&format!(
        "fetch({FIG}.querySelector('a.snapshot').href).then(async r => {{ \
         const bmp = await createImageBitmap(await r.blob()); window.snap = [r.status, \
         r.headers.get('content-type'), r.headers.get('content-disposition'), bmp.width]; }}), 0"
    ));
    tab.wait_until("!!window.snap", "the snapshot link answers");
    assert_eq!(
        tab.eval("window.snap"),
        serde_json::json!([
            200,
            "image/jpeg",
            "attachment; filename=\"pattern _.jpg\"; filename*=UTF-8''pattern%20%C3%BC.jpg",
            320
        ])
    );
    cam.kill().unwrap();
    cam.wait().unwrap();

    // Typed as http://, the page is redirected to https://.
    let mut typed = browser.open(&format!("http://{http}/"));
    typed.wait_until(
        &format!("location.href === '{url}' && document.readyState === 'complete'"),
        "http:// is redirected to the HTTPS page",
    );
    drop(browser);
    assert!(server.terminate().success());
}

/// The test stream's figure on the page.
const FIG: &str = "document.querySelector('figure[data-name=\"pattern ü\"]')";

#[test]
fn plain_http_beside_tls_is_refused_at_start_unless_on_loopback_and_https_is_the_default() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanlink-server"));
    cmd.env("LANLINK_HOME", home())
        .args(["--bind", "127.0.0.1:0", "--no-announce"])
        .args(["--http", "http://0.0.0.0:0"]);
    let out = run_bounded(cmd, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("plain HTTP on 0.0.0.0:") && err.contains("loopback"),
        "{err}"
    );
    // On loopback it is allowed.
    let server = Server::start(&["--http", "http://127.0.0.1:0"]);
    let url = server.page_url.clone().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(server.terminate().success());
    // With TLS on, an address without a scheme is HTTPS.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanlink-server"));
    cmd.args(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let server = Server::spawn(cmd);
    let url = server.page_url.clone().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(server.terminate().success());
}

#[test]
fn the_console_prints_a_join_link_with_the_room_and_name_given() {
    let server = Server::start(&[
        "--http",
        "https://127.0.0.1:0",
        "--link-room",
        "games night",
        "--link-name",
        "kiosk&1",
    ]);
    let http = server.http.clone().unwrap();
    assert_eq!(
        server.page_url.as_deref(),
        Some(format!("https://{http}/?name=kiosk%261&room=games%20night").as_str())
    );
    assert!(server.terminate().success());
}

/// Takes a screenshot of the whole page with two live test patterns, joined
/// to the chat (DevTools
/// `Page.captureScreenshot`) and checks it is a PNG of the page. It goes
/// to a scratch folder, or with `LANLINK_WRITE_SCREENSHOT=1` to
/// `docs/browser.png` (the README's picture: run by hand, never in CI).
#[test]
fn a_screenshot_of_the_page() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    // A share with something in it, and an inbox: the Files panel shows.
    let t = Scratch::new("browser-screenshot");
    let share = t.dir("share");
    std::fs::create_dir_all(share.join("music")).unwrap();
    std::fs::write(share.join("notes.txt"), "minutes of the meeting\n").unwrap();
    std::fs::write(share.join("music").join("song.ogg"), vec![0u8; 3 << 20]).unwrap();
    let (share, inbox) = (
        share.display().to_string(),
        t.dir("inbox").display().to_string(),
    );
    let server = Server::start(&[
        "--http",
        "https://127.0.0.1:0",
        "--share",
        &share,
        "--inbox",
        &inbox,
    ]);
    let url = server.page_url.clone().unwrap();
    let browser = chromium_for_https(chromium, &t);
    let mut cams: Vec<_> = [("ada-cam", "480x270"), ("door cam", "320x180")]
        .into_iter()
        .map(|(name, size)| {
            lanlink_spawn(&[
                "cam",
                &server.addr,
                "--test-pattern",
                "--size",
                size,
                "--fps",
                "10",
                "--name",
                name,
            ])
        })
        .collect();
    // Joined to the chat as ada, so that its panel shows the lobby.
    let mut tab = open_page(&browser, &format!("{url}?name=ada"));
    let width = 1024;
    let mut height = 720;
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
    );
    tab.wait_until(
        "[...document.querySelectorAll('figure img')].filter(i => i.naturalWidth > 0).length === 2",
        "both streams show",
    );
    // The captions' frame rates need a few seconds of frames.
    tab.wait_until(
        "document.querySelectorAll('figcaption span').length === 2 && \
         [...document.querySelectorAll('figcaption span')].every(s => / [1-9][0-9.]* fps — 1 viewer$/.test(s.textContent))",
        "the captions show frame rates and viewers",
    );
    // A shared file comes over HTTPS too, whole and by range.
    tab.eval(
        "Promise.all([fetch('/files/notes.txt').then(r => r.text()), \
         fetch('/files/notes.txt', { headers: { Range: 'bytes=11-17' } }).then(r => r.text())]) \
         .then(t => { window.note = t; }), 0",
    );
    tab.wait_until("!!window.note", "the shared file downloads");
    assert_eq!(
        tab.eval("window.note"),
        serde_json::json!(["minutes of the meeting\n", "the mee"])
    );
    // The whole page, as tall as it is (within reason).
    let tall = tab.eval("document.documentElement.scrollHeight").as_u64();
    height = tall.map_or(height, |h| h.clamp(300, 2400) as u32);
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
    );
    std::thread::sleep(Duration::from_millis(300));
    let shot = tab.call(
        "Page.captureScreenshot",
        serde_json::json!({ "format": "png" }),
    );
    let png = unbase64(shot["data"].as_str().expect("a screenshot"));
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let reader = decoder.read_info().expect("a PNG");
    assert_eq!((reader.info().width, reader.info().height), (width, height));
    let out = if std::env::var_os("LANLINK_WRITE_SCREENSHOT").is_some() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/browser.png")
    } else {
        t.dir("shot").join("browser.png")
    };
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());
    for cam in &mut cams {
        cam.kill().unwrap();
        cam.wait().unwrap();
    }
    drop(browser);
    assert!(server.terminate().success());
}

#[test]
fn the_chat_panel_works_over_https_from_the_printed_link() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&[
        "--http",
        "https://127.0.0.1:0",
        "--link-room",
        "den",
        "--link-name",
        "tia",
    ]);
    let link = server.page_url.clone().unwrap();
    let mut nat = ChatClient::join(&server.addr, "nat", &[]);
    nat.say("/join den");
    nat.expect("-- den: nat");
    let t = Scratch::new("browser-https-chat");
    let browser = chromium_for_https(chromium, &t);
    // Opened blank, then sent there: the DevTools call that opens tabs
    // would cut the link at its `&`.
    let mut tab = browser.open("about:blank");
    tab.eval(&format!("location.assign('{link}'); true"));
    tab.wait_until(
        &format!("location.href === '{link}' && document.readyState === 'complete'"),
        "the link loads",
    );
    nat.expect("-- tia joined den");
    tab.wait_until(
        "!!document.querySelector('#chat-rooms [data-room=\"den\"] li[data-name=\"nat\"]')",
        "tia sees nat in den",
    );
    tab.eval(
        "document.getElementById('chat-text').value = 'hello over wss'; \
         document.getElementById('chat-say').requestSubmit(); true",
    );
    assert_eq!(nat.expect("hello over wss"), "[den] <tia> hello over wss");
    // The audio WebSocket opens over wss:// as well (its Origin is https://).
    tab.eval(
        "(() => { const ws = new WebSocket('wss://' + location.host + '/audio'); \
         ws.onopen = () => { window.audioOpen = true; }; })(), 0",
    );
    tab.wait_until("window.audioOpen === true", "/audio opens over wss://");
    drop(browser);
    assert!(server.terminate().success());
}
