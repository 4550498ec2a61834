//! The browser page in headless Chromium, driven over the DevTools
//! protocol: it follows `/state`, so a stream that starts after the page
//! loaded appears in it (and its MJPEG frames show), and one that ends
//! leaves it, without a reload.

mod browser_support;
mod common;

use browser_support::Chromium;
use common::{lanlink_spawn, Scratch, Server};

/// The names of the streams the page shows, as the page has them now.
const SHOWN: &str = "[...document.querySelectorAll('figure')].map(f => f.dataset.name).join(',')";

#[test]
fn the_page_follows_streams_as_they_start_and_end() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let t = Scratch::new("browser-live");
    let browser = Chromium::start(chromium, &t.dir("profile"));
    let mut tab = browser.open(&format!("http://{http}/"));
    // A new tab starts on about:blank: wait for our page itself.
    tab.wait_until(
        &format!("location.href === 'http://{http}/' && document.readyState === 'complete'"),
        "the page loads",
    );
    assert_eq!(tab.eval(SHOWN), "", "no stream yet");
    // A reload would wipe this.
    tab.eval("window.notReloaded = 42");

    // A camera starts after the page loaded: the page shows it, frames and all.
    let mut cam = lanlink_spawn(&[
        "cam",
        &server.addr,
        "--test-pattern",
        "--size",
        "320x180",
        "--fps",
        "10",
        "--name",
        "late",
    ]);
    tab.wait_until(
        &format!("{SHOWN}.split(',').includes('late')"),
        "the new stream appears",
    );
    tab.wait_until(
        "document.querySelector('figure[data-name=\"late\"] img').naturalWidth === 320",
        "its MJPEG frames show",
    );

    // It ends: the page drops it.
    cam.kill().unwrap();
    cam.wait().unwrap();
    tab.wait_until(&format!("{SHOWN} === ''"), "the ended stream leaves");
    assert_eq!(tab.eval("window.notReloaded"), 42, "the page was reloaded");
    drop(browser);
    assert!(server.terminate().success());
}
