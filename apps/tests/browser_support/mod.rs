//! Headless Chromium driven over the DevTools protocol, shared by the
//! browser tests: start a browser, open a tab, evaluate JavaScript in it and
//! wait for a condition with a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Headless Chromium with its DevTools endpoint; killed when dropped.
pub struct Chromium {
    child: Child,
    /// `127.0.0.1:PORT` of the DevTools HTTP and WebSocket endpoint.
    pub devtools: String,
}

impl Chromium {
    pub fn start(path: &str, profile: &Path) -> Chromium {
        Chromium::start_with(path, profile, &[])
    }

    /// As [`Chromium::start`], with more command-line switches.
    pub fn start_with(path: &str, profile: &Path, extra: &[&str]) -> Chromium {
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
            .args(extra)
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
    pub fn open(&self, url: &str) -> Tab {
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
pub struct Tab {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Tab {
    /// Evaluates `expression` in the page; returns its value.
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
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
    pub fn wait_until(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.eval(expression) != serde_json::Value::Bool(true) {
            assert!(Instant::now() < deadline, "{what}: not within 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
