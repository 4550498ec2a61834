//! The page's `lanlink.js` against the reference codec (`lanlink-proto`),
//! in headless Chromium: the frames the page sends are byte for byte what
//! the Rust encoder makes; the frames it receives decode to the same
//! fields, whether they arrive whole, split byte by byte or several in one
//! piece; and every truncation or bad byte of them is refused, never
//! misread (one encoding per message, as the reference decoder has it).

mod browser_support;
mod common;

use browser_support::{Chromium, Tab};
use common::{Scratch, Server};
use lanlink_proto::chat::{
    ChatMessage, History, HistoryRequest, Join, Leave, NickChanged, Notice, Presence,
    PresenceChange, PrivateMessage, Roster, RosterRequest, SetNick,
};
use lanlink_proto::control::{Error, Goodbye, Hello, Ping, Pong, Refuse, Welcome};
use lanlink_proto::{Capabilities, ErrorCode, Frame};
use serde_json::{json, Value};

fn hex(frame: &Frame) -> String {
    frame
        .to_bytes()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Evaluates `expression` (JavaScript yielding bytes) in the page; returns them as hex.
fn js_hex(tab: &mut Tab, expression: &str) -> String {
    tab.eval(&format!(
        "Array.from({expression}).map(b => b.toString(16).padStart(2, '0')).join('')"
    ))
    .as_str()
    .unwrap_or_else(|| panic!("{expression} gave no bytes"))
    .to_owned()
}

fn chat(room: &str, from: &str, text: &str, action: bool, ts: u64) -> ChatMessage {
    ChatMessage {
        room: room.into(),
        from: from.into(),
        text: text.into(),
        action,
        timestamp_ms: ts,
    }
}

fn page(browser: &Chromium, http: &str) -> Tab {
    let url = format!("http://{http}/");
    let mut tab = browser.open(&url);
    tab.wait_until(
        &format!("location.href === '{url}' && typeof Lanlink === 'object'"),
        "the page and lanlink.js load",
    );
    tab
}

#[test]
fn lanlink_js_speaks_the_reference_wire_format() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let t = Scratch::new("browser-codec");
    let browser = Chromium::start(chromium, &t.dir("profile"));
    let mut tab = page(&browser, &http);

    // What the page sends: the same bytes as the reference encoder's.
    let sent: Vec<(&str, Frame)> = vec![
        (
            "Lanlink.encode.hello('zoë', null, Lanlink.CAPS.CHAT)",
            Frame::control(Hello {
                name: "zoë".into(),
                token: None,
                capabilities: Capabilities::CHAT,
            }),
        ),
        (
            "Lanlink.encode.hello('ann', 's3cret', 0x1f)",
            Frame::control(Hello {
                name: "ann".into(),
                token: Some("s3cret".into()),
                capabilities: Capabilities(0x1f),
            }),
        ),
        (
            "Lanlink.encode.pong(new Uint8Array([0, 0, 0, 1, 2, 3, 4, 255]))",
            Frame::control(Pong {
                nonce: 0x0000_0001_0203_04ff,
            }),
        ),
        (
            "Lanlink.encode.goodbye('quit')",
            Frame::control(Goodbye {
                reason: "quit".into(),
            }),
        ),
        (
            "Lanlink.encode.join('den', null)",
            Frame::control(Join {
                room: "den".into(),
                password: None,
            }),
        ),
        (
            "Lanlink.encode.join('vault', '')",
            Frame::control(Join {
                room: "vault".into(),
                password: Some(String::new()),
            }),
        ),
        (
            "Lanlink.encode.leave('den')",
            Frame::control(Leave { room: "den".into() }),
        ),
        (
            "Lanlink.encode.chat('lobby', 'héllo 🌍', false)",
            Frame::control(chat("lobby", "", "héllo 🌍", false, 0)),
        ),
        (
            "Lanlink.encode.chat('lobby', 'waves', true)",
            Frame::control(chat("lobby", "", "waves", true, 0)),
        ),
        (
            "Lanlink.encode.privateMessage('bob', 'psst', false)",
            Frame::control(PrivateMessage {
                to: "bob".into(),
                from: String::new(),
                text: "psst".into(),
                action: false,
                timestamp_ms: 0,
            }),
        ),
        (
            "Lanlink.encode.setNick('ann2')",
            Frame::control(SetNick {
                name: "ann2".into(),
            }),
        ),
        (
            "Lanlink.encode.rosterRequest('lobby')",
            Frame::control(RosterRequest {
                room: "lobby".into(),
            }),
        ),
        (
            "Lanlink.encode.historyRequest('lobby', 300)",
            Frame::control(HistoryRequest {
                room: "lobby".into(),
                limit: 300,
            }),
        ),
    ];
    for (js, frame) in &sent {
        assert_eq!(js_hex(&mut tab, js), hex(frame), "{js}");
    }

    // What the page receives: the same fields as the reference decoder's.
    let received: Vec<(Frame, Value)> = vec![
        (
            Frame::control(Welcome {
                server_name: "lan".into(),
                client_id: 0xfedc_ba98,
                name: "ann".into(),
                capabilities: Capabilities(0x1f),
                max_payload: 16 * 1024 * 1024,
                motd: "hi".into(),
            }),
            json!({"type": "welcome", "serverName": "lan", "clientId": 0xfedc_ba98_u32, "name": "ann",
                   "capabilities": 0x1f, "maxPayload": 16 * 1024 * 1024, "motd": "hi"}),
        ),
        (
            Frame::control(Refuse {
                code: ErrorCode::BAD_TOKEN,
                reason: "wrong access token".into(),
            }),
            json!({"type": "refuse", "code": 2, "reason": "wrong access token"}),
        ),
        (
            Frame::control(Ping { nonce: 7 }),
            json!({"type": "ping", "nonce": {"0":0,"1":0,"2":0,"3":0,"4":0,"5":0,"6":0,"7":7}}),
        ),
        (
            Frame::control(Error {
                code: ErrorCode::RATE_LIMITED,
                message: "slow down".into(),
            }),
            json!({"type": "error", "code": 8, "message": "slow down"}),
        ),
        (
            Frame::control(Goodbye {
                reason: "server shutting down".into(),
            }),
            json!({"type": "goodbye", "reason": "server shutting down"}),
        ),
        (
            Frame::control(chat("den", "nat", "x <b>y</b> ✓", true, 1_764_000_000_123)),
            json!({"type": "chat", "room": "den", "from": "nat", "text": "x <b>y</b> ✓",
                   "action": true, "timestamp": 1_764_000_000_123_u64}),
        ),
        (
            Frame::control(PrivateMessage {
                to: "ann".into(),
                from: "nat".into(),
                text: "psst".into(),
                action: false,
                timestamp_ms: 5,
            }),
            json!({"type": "private", "to": "ann", "from": "nat", "text": "psst", "action": false,
                   "timestamp": 5}),
        ),
        (
            Frame::control(NickChanged {
                old: "ann".into(),
                new: "anne".into(),
            }),
            json!({"type": "nick", "old": "ann", "new": "anne"}),
        ),
        (
            Frame::control(Roster {
                room: "lobby".into(),
                members: vec!["ann".into(), "bob".into(), "nat".into()],
            }),
            json!({"type": "roster", "room": "lobby", "members": ["ann", "bob", "nat"]}),
        ),
        (
            Frame::control(Presence {
                room: "lobby".into(),
                name: "bob".into(),
                change: PresenceChange::Left,
                reason: "quit".into(),
            }),
            json!({"type": "presence", "room": "lobby", "name": "bob", "joined": false, "reason": "quit"}),
        ),
        (
            Frame::control(Notice {
                room: None,
                text: "welcome".into(),
            }),
            json!({"type": "notice", "room": null, "text": "welcome"}),
        ),
        (
            Frame::control(Notice {
                room: Some("den".into()),
                text: "topic".into(),
            }),
            json!({"type": "notice", "room": "den", "text": "topic"}),
        ),
        (
            Frame::control(History {
                room: "den".into(),
                messages: vec![
                    chat("den", "bob", "one", false, 1),
                    chat("den", "nat", "two", true, 2),
                ],
            }),
            json!({"type": "history", "room": "den", "messages": [
                {"room": "den", "from": "bob", "text": "one", "action": false, "timestamp": 1},
                {"room": "den", "from": "nat", "text": "two", "action": true, "timestamp": 2}]}),
        ),
    ];
    tab.eval(
        "window.fromHex = (h) => new Uint8Array(h.match(/../g).map(x => parseInt(x, 16))); \
         window.decodeAll = (h, step) => { const d = new Lanlink.FrameDecoder(); const b = fromHex(h); \
           const out = []; for (let i = 0; i < b.length; i += step) { d.push(b.subarray(i, i + step)); \
           for (let f = d.next(); f; f = d.next()) { out.push(f.message); } } return out; }; \
         window.attempt = (h) => { try { const d = new Lanlink.FrameDecoder(); d.push(fromHex(h)); \
           return d.next() === null ? 'incomplete' : 'decoded'; } catch (e) { return 'refused'; } }; true",
    );
    let all: String = received.iter().map(|(f, _)| hex(f)).collect();
    let expected: Vec<Value> = received.iter().map(|(_, v)| v.clone()).collect();
    // Whole, in one piece; then one byte at a time.
    for step in [all.len(), 1] {
        let decoded = tab.eval(&format!("decodeAll('{all}', {step})"));
        assert_eq!(
            decoded,
            Value::Array(expected.clone()),
            "in steps of {step}"
        );
    }

    // Hostile bytes: every payload cut short (with a header saying so) and
    // every trailing byte is refused; bad headers are refused at once.
    for (frame, _) in &received {
        let bytes = frame.to_bytes().unwrap().to_vec();
        let payload = &bytes[14..];
        for cut in 0..payload.len() {
            let mut short = bytes[..14].to_vec();
            short[10..14].copy_from_slice(&(cut as u32).to_be_bytes());
            short.extend_from_slice(&payload[..cut]);
            let h: String = short.iter().map(|b| format!("{b:02x}")).collect();
            let kind = format!("{:?}", frame.message);
            // A few payloads stay valid when cut (an empty Goodbye reason
            // cannot be cut shorter than its length field): compare with Rust.
            let mut reference = lanlink_proto::FrameDecoder::new();
            reference.push(&short);
            let rust_ok = matches!(reference.decode(), Ok(Some(_)));
            let js = tab.eval(&format!("attempt('{h}')"));
            assert_eq!(
                js,
                if rust_ok { "decoded" } else { "refused" },
                "{kind} cut to {cut} bytes"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        let len = (payload.len() + 1) as u32;
        long[10..14].copy_from_slice(&len.to_be_bytes());
        let h: String = long.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            tab.eval(&format!("attempt('{h}')")),
            "refused",
            "trailing byte"
        );
    }
    let valid = Frame::control(chat("a", "", "", false, 0))
        .to_bytes()
        .unwrap()
        .to_vec();
    let mutated = |at: usize, with: &[u8]| {
        let mut b = valid.clone();
        b[at..at + with.len()].copy_from_slice(with);
        b.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    for (what, h) in [
        ("bad magic", "4d".to_owned()),
        ("bad second magic byte", "4c00".to_owned()),
        ("version 2", mutated(2, &[2])),
        ("unknown kind", mutated(3, &[0xff])),
        ("reserved flags", mutated(4, &[0, 1])),
        (
            "over 16 MiB",
            mutated(10, &(16 * 1024 * 1024 + 1_u32).to_be_bytes())[..28].to_owned(),
        ),
        ("bad boolean", mutated(21, &[2])),
    ] {
        assert_eq!(tab.eval(&format!("attempt('{h}')")), "refused", "{what}");
    }
    assert_eq!(tab.eval("attempt('4c4c011200')"), "incomplete");
    drop(browser);
    assert!(server.terminate().success());
}
