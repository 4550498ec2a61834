//! The browser page in headless Chromium, driven over the DevTools
//! protocol: it follows `/state`, so a stream that starts after the page
//! loaded appears in it (and its MJPEG frames show), and one that ends
//! leaves it, without a reload.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{lanlink_spawn, Scratch, Server};

/// Headless Chromium with its DevTools endpoint; killed when dropped.
struct Chromium {
    child: Child,
    /// `127.0.0.1:PORT` of the DevTools HTTP and WebSocket endpoint.
    devtools: String,
}

impl Chromium {
    fn start(path: &str, profile: &Path) -> Chromium {
        let mut child = Command::new(path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=800,600",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut devtools = None;
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("ws://").nth(1) {
                devtools = rest.split('/').next().map(str::to_owned);
                break;
            }
        }
        let devtools = devtools.expect("chromium says where DevTools listens");
        Chromium { child, devtools }
    }

    /// Opens `url` in a new tab; returns the tab, ready for DevTools calls.
    fn open(&self, url: &str) -> Tab {
        let mut s = TcpStream::connect(&self.devtools).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "PUT /json/new?{url} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.devtools
        )
        .unwrap();
        // The head, then as many bytes as it says (the connection may stay open).
        let mut reader = BufReader::new(s);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let target: serde_json::Value = serde_json::from_slice(&body).expect("a DevTools target");
        let ws = target["webSocketDebuggerUrl"].as_str().expect("a tab URL");
        let (socket, _) = tungstenite::connect(ws).expect("DevTools WebSocket");
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        Tab { socket, next_id: 1 }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, over its DevTools WebSocket.
struct Tab {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Tab {
    /// Evaluates `expression` in the page; returns its value.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let call = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        self.socket
            .send(tungstenite::Message::text(call.to_string()))
            .unwrap();
        loop {
            let message = self.socket.read().expect("a DevTools answer");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let answer: serde_json::Value = serde_json::from_str(text).unwrap();
            if answer["id"] == id {
                return answer["result"]["result"]["value"].clone();
            }
        }
    }

    /// Waits (at most 10 s) until `expression` is true in the page.
    fn wait_until(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.eval(expression) != serde_json::Value::Bool(true) {
            assert!(Instant::now() < deadline, "{what}: not within 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

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
