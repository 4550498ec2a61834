//! Files sent to a browser user, in headless Chromium: `lanlink send
//! --to ann` offers a file to the page's chat user `ann`; the page shows the
//! offer (the sender's name, the file's name and size), and Accept brings
//! the bytes over `/ws` into the page, checked against their BLAKE3 hash,
//! as a download; Decline makes the sender give up with the reason; an
//! offer above the page's limit is declined by itself.

mod browser_support;
mod common;

use std::process::Child;
use std::time::Duration;

use browser_support::{Chromium, Tab};
use common::{lanlink_spawn, lines_of, wait_timeout, Scratch, Server};

/// The offer waiting for an answer in the page, as an expression.
const OFFERED: &str = "document.querySelector('#receive-list li[data-state=\"offered\"]')";

/// Starts `lanlink send` of `file` to `to`, as `name`.
fn send(server: &Server, to: &str, name: &str, file: &std::path::Path) -> Child {
    lanlink_spawn(&[
        "send",
        &server.addr,
        "--to",
        to,
        "--name",
        name,
        file.to_str().unwrap(),
    ])
}

/// Waits for `child` to end; its status and everything it wrote to stderr.
fn finish(mut child: Child) -> (std::process::ExitStatus, String) {
    // Read while it runs, so a full pipe cannot stall it.
    let _out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("lanlink send did not finish");
    });
    (status, err.iter().collect::<Vec<_>>().join("\n"))
}

/// Waits for an offer from `from` of `name` to show in the page.
fn wait_offer(tab: &mut Tab, from: &str, name: &str) {
    tab.wait_until(
        &format!("!!{OFFERED} && {OFFERED}.dataset.from === '{from}' && {OFFERED}.dataset.name === '{name}'"),
        "the offer shows",
    );
}

#[test]
fn a_page_user_accepts_and_declines_files_sent_to_them() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let t = Scratch::new("browser-receive");
    let browser = Chromium::start(chromium, &t.dir("profile"));
    let mut ann = browser.open(&format!("http://{http}/?name=ann"));
    ann.wait_until(
        "!!document.querySelector('#chat-rooms li[data-name=\"ann\"]')",
        "ann is in the chat",
    );

    // Over three chunks of the BLAKE3 tree's 1 KiB leaves and over three
    // acknowledgement steps, not a whole number of either.
    let src = t.dir("src");
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 4321u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = src.join("photo.jpg");
    std::fs::write(&file, &bytes).unwrap();

    // Accept: the bytes land in the page, verified.
    let sender = send(&server, "ann", "carl", &file);
    wait_offer(&mut ann, "carl", "photo.jpg");
    let shown = ann.eval(&format!("{OFFERED}.textContent"));
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("carl offers photo.jpg (3.0 MiB)"),
        "the offer reads {shown:?}"
    );
    ann.eval(&format!("{OFFERED}.querySelector('.accept').click(); true"));
    ann.wait_until(
        "!!document.querySelector('#receive-list li[data-state=\"done\"]')",
        "the file arrives",
    );
    let (status, err) = finish(sender);
    assert!(status.success(), "lanlink send failed: {err}");
    let want = blake3::hash(&bytes).to_hex().to_string();
    assert_eq!(
        ann.eval("document.querySelector('#receive-list li[data-state=\"done\"]').dataset.hash"),
        want.as_str(),
        "the page's BLAKE3 of what it received"
    );
    // The download's bytes themselves, hashed again and measured.
    ann.eval(
        "LanlinkReceive.received[0].blob.arrayBuffer().then((b) => { window.check = \
         LanlinkReceive.hex(new LanlinkReceive.Blake3().update(new Uint8Array(b)).digest()) \
         + ':' + b.byteLength; }); true",
    );
    ann.wait_until("!!window.check", "the blob is read");
    assert_eq!(
        ann.eval("window.check"),
        format!("{want}:{}", bytes.len()).as_str()
    );
    assert_eq!(
        ann.eval(
            "(() => { const a = document.querySelector('#receive-list a.save'); \
             return a.download + ' ' + a.href.startsWith('blob:'); })()"
        ),
        "photo.jpg true"
    );

    // Discarding frees the page's memory for the next file.
    ann.eval("document.querySelector('#receive-list button.discard').click(); true");
    assert_eq!(
        ann.eval(
            "document.querySelector('#receive-list li[data-name=\"photo.jpg\"]').dataset.state \
             + ' ' + LanlinkReceive.received.length"
        ),
        "discarded 0"
    );

    // Decline: the sender gives up with the reason.
    let sender = send(&server, "ann", "carl", &file);
    wait_offer(&mut ann, "carl", "photo.jpg");
    ann.eval(&format!(
        "{OFFERED}.querySelector('.decline').click(); true"
    ));
    let (status, err) = finish(sender);
    assert!(!status.success(), "a declined send must fail");
    assert!(err.contains("declined by the user"), "stderr: {err}");

    // Above the page's limit (a sparse file): declined without asking.
    let big = src.join("huge.iso");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(600 * 1024 * 1024)
        .unwrap();
    let (status, err) = finish(send(&server, "ann", "carl", &big));
    assert!(!status.success(), "an offer over the limit must fail");
    assert!(err.contains("at most 512.0 MiB"), "stderr: {err}");
    assert_eq!(
        ann.eval(
            "document.querySelector('#receive-list li[data-name=\"huge.iso\"]').dataset.state"
        ),
        "declined"
    );
}
