//! Browser chat in headless Chromium: two pages (one joining straight from
//! a `/?name=…&room=…` link) and a `lanlink chat` process are in the same
//! rooms, see each other arrive and leave, talk in rooms and in private,
//! and a page joining a room gets its history. The pages speak lanlink
//! over `/ws` with the page's own `lanlink.js`.

mod browser_support;
mod common;

use browser_support::{Chromium, Tab};
use common::{ChatClient, Scratch, Server};

/// Types `line` into a page's chat box and sends it.
fn type_line(tab: &mut Tab, line: &str) {
    let line = serde_json::to_string(line).unwrap();
    tab.eval(&format!(
        "document.getElementById('chat-text').value = {line}; \
         document.getElementById('chat-say').requestSubmit(); true"
    ));
}

/// True once the page lists `name` among the members of `room`.
fn member(room: &str, name: &str) -> String {
    format!(
        "!!document.querySelector('#chat-rooms [data-room=\"{room}\"] li[data-name=\"{name}\"]')"
    )
}

/// True once a log line of `kind` contains `text`.
fn logged(kind: &str, text: &str) -> String {
    let text = serde_json::to_string(text).unwrap();
    format!(
        "[...document.querySelectorAll('#chat-log li[data-kind=\"{kind}\"]')]\
         .some(li => li.textContent.includes({text}))"
    )
}

/// A new tab showing `url` (opened blank, then sent there: the DevTools
/// call that opens tabs would cut a URL at its `&`).
fn open(browser: &Chromium, url: &str) -> Tab {
    let mut tab = browser.open("about:blank");
    let target = serde_json::to_string(url).unwrap();
    tab.eval(&format!("location.assign({target}); true"));
    tab.wait_until(
        &format!("location.href === {target} && document.readyState === 'complete'"),
        &format!("{url} loads"),
    );
    tab
}

/// Serves a blank page of its own (another origin) on 127.0.0.1 to any
/// request, in a thread, for as long as the test runs.
fn foreign_site() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head);
            let body = "<!doctype html><title>elsewhere</title>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn two_pages_and_a_native_client_chat() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let mut nat = ChatClient::join(&server.addr, "nat", &[]);
    let t = Scratch::new("browser-chat");
    let browser = Chromium::start(chromium, &t.dir("profile"));

    // Ann picks her name in the form (no token field: none is needed).
    let mut ann = open(&browser, &format!("http://{http}/"));
    ann.wait_until(
        "document.getElementById('chat-token').hidden",
        "the token field goes",
    );
    ann.eval(
        "document.getElementById('chat-name').value = 'ann'; \
         document.getElementById('chat-login').requestSubmit(); true",
    );
    ann.wait_until(&member("lobby", "nat"), "ann sees nat in the lobby");
    ann.wait_until(&member("lobby", "ann"), "ann sees herself in the lobby");
    nat.expect("-- ann joined lobby");

    // Bob comes from a link that names him and his room.
    let mut bob = open(&browser, &format!("http://{http}/?name=bob&room=den"));
    bob.wait_until(&member("den", "bob"), "bob is in den");
    bob.wait_until(&member("lobby", "ann"), "bob sees ann in the lobby");
    ann.wait_until(&member("lobby", "bob"), "ann sees bob arrive");
    nat.expect("-- bob joined lobby");
    assert_eq!(
        bob.eval("document.getElementById('chat-here').textContent"),
        "#den ",
        "bob talks in den"
    );
    type_line(&mut bob, "first in den");

    // Ann and nat join den: ann gets its history, nat sees her arrive.
    nat.say("/join den");
    assert_eq!(nat.expect("first in den"), "[den] <bob> first in den");
    nat.expect("-- den: bob, nat");
    bob.wait_until(&member("den", "nat"), "bob sees nat in den");
    type_line(&mut ann, "/join den");
    ann.wait_until(
        "[...document.querySelectorAll('#chat-log li[data-history]')]\
         .some(li => li.textContent.includes('<bob> first in den'))",
        "ann gets den's history",
    );
    nat.expect("-- ann joined den");

    // Room messages, both ways.
    type_line(&mut ann, "hello from a browser");
    assert_eq!(
        nat.expect("hello from a browser"),
        "[den] <ann> hello from a browser"
    );
    bob.wait_until(
        &logged("chat", "<ann> hello from a browser"),
        "bob sees ann",
    );
    nat.say("hello from a terminal");
    ann.wait_until(
        &logged("chat", "<nat> hello from a terminal"),
        "ann sees nat",
    );
    bob.wait_until(
        &logged("chat", "<nat> hello from a terminal"),
        "bob sees nat",
    );

    // Private messages, both ways, seen by nobody else.
    type_line(&mut bob, "/msg nat psst");
    assert_eq!(nat.expect("psst"), "[pm] <bob> psst");
    nat.say("/msg ann just for you");
    ann.wait_until(&logged("private", "just for you"), "ann's private message");
    assert_eq!(
        bob.eval(&logged("private", "just for you")),
        false,
        "bob saw ann's private message"
    );

    // Peer text is text: markup from a peer is shown, not run.
    nat.say("<img src=x onerror=\"window.owned=1\">");
    ann.wait_until(&logged("chat", "<img src=x"), "the markup arrives as text");
    assert_eq!(
        ann.eval("document.querySelector('#chat-log img') === null && window.owned === undefined"),
        true
    );

    // Bob leaves the chat: everyone sees him go.
    bob.eval("document.getElementById('chat-quit').click(); true");
    nat.expect("-- bob left den");
    ann.wait_until(
        &format!("!{}", member("lobby", "bob")),
        "ann sees bob leave",
    );
    ann.wait_until(&logged("presence", "bob left lobby"), "ann is told");

    drop(browser);
    assert!(nat.finish().success());
    assert!(server.terminate().success());
}

/// A page from another origin cannot open the chat: the WebSocket is
/// refused (403) by the server, whatever the page's script tries.
#[test]
fn a_foreign_page_cannot_open_the_chat() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let server = Server::start(&["--http", "127.0.0.1:0"]);
    let http = server.http.clone().unwrap();
    let t = Scratch::new("browser-chat-origin");
    let browser = Chromium::start(chromium, &t.dir("profile"));
    // Another site's page tries to use the visitor's browser as a client.
    let mut other = open(&browser, &format!("http://{}/", foreign_site()));
    other.eval(&format!(
        "window.outcome = 'pending'; const ws = new WebSocket('ws://{http}/ws'); \
         ws.onopen = () => {{ window.outcome = 'open'; }}; \
         ws.onerror = () => {{ window.outcome = 'refused'; }}; true"
    ));
    other.wait_until("window.outcome !== 'pending'", "the socket settles");
    assert_eq!(other.eval("window.outcome"), "refused");
    server.expect_log("WebSocket from a foreign origin refused");
    // The server's own page opens it.
    let mut own = open(&browser, &format!("http://{http}/"));
    own.eval(
        "window.outcome = 'pending'; const ws2 = new WebSocket('ws://' + location.host + '/ws'); \
         ws2.onopen = () => { window.outcome = 'open'; }; \
         ws2.onerror = () => { window.outcome = 'refused'; }; true",
    );
    own.wait_until("window.outcome !== 'pending'", "the socket settles");
    assert_eq!(own.eval("window.outcome"), "open");
    drop(browser);
    assert!(server.terminate().success());
}

/// A server with an access token: a page without it is refused and says
/// so; with it, the page is in. The page answers the server's keepalive
/// pings, so it stays connected well past the idle timeout while a
/// connection that does not answer is cut.
#[test]
fn the_page_gives_the_token_and_answers_keepalives() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    // Fixed ports: the server comes back on them at the end.
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (bind, http) = (free(), free());
    let args = [
        "--bind",
        &bind,
        "--http",
        &http,
        "--token",
        "s3cret",
        "--ping-interval",
        "0.3",
        "--idle-timeout",
        "1.5",
    ];
    let server = Server::start(&args);
    let t = Scratch::new("browser-chat-token");
    let browser = Chromium::start(chromium, &t.dir("profile"));
    let mut page = open(&browser, &format!("http://{http}/?name=tia"));
    assert_eq!(
        page.eval("document.getElementById('chat-token').hidden"),
        false,
        "the token field stays"
    );
    page.wait_until(
        "document.getElementById('chat-status').textContent.includes('refused')",
        "a page without the token is refused",
    );
    let status = page.eval("document.getElementById('chat-status').textContent");
    assert!(
        status.as_str().unwrap().contains("token"),
        "the refusal says why: {status}"
    );
    page.eval(
        "document.getElementById('chat-token').value = 's3cret'; \
         document.getElementById('chat-login').requestSubmit(); true",
    );
    page.wait_until(&member("lobby", "tia"), "with the token she is in");

    // A socket that never answers a ping is cut at the idle timeout...
    page.eval(
        "window.mute = 'open'; const mute = new WebSocket('ws://' + location.host + '/ws'); \
         mute.binaryType = 'arraybuffer'; \
         mute.onopen = () => mute.send(Lanlink.encode.hello('mute', 's3cret', Lanlink.CAPS.CHAT)); \
         mute.onclose = () => { window.mute = 'closed'; }; true",
    );
    page.wait_until(&member("lobby", "mute"), "the mute socket gets in");
    page.wait_until("window.mute === 'closed'", "the mute socket is cut");
    page.wait_until(&format!("!{}", member("lobby", "mute")), "mute left");
    // ...while the page, answering every ping, is still in and can talk.
    let mut nat = ChatClient::join(&server.addr, "nat", &["--token", "s3cret"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    type_line(&mut page, "still here after 3 s");
    assert_eq!(
        nat.expect("still here"),
        "[lobby] <tia> still here after 3 s"
    );
    assert!(page.eval(&member("lobby", "tia")).as_bool().unwrap());

    // A room with a password: the page asks for it, and is in with it.
    nat.say("/join vault hunter2");
    nat.expect("-- vault: nat");
    type_line(&mut page, "/join vault");
    page.wait_until(
        "!document.getElementById('chat-password').hidden",
        "the page asks for the room's password",
    );
    assert!(page.eval(&member("vault", "tia")) == false);
    page.eval(
        "document.getElementById('chat-password-text').value = 'hunter2'; \
         document.getElementById('chat-password').requestSubmit(); true",
    );
    page.wait_until(&member("vault", "nat"), "with it she is in the vault");
    nat.expect("-- tia joined vault");
    nat.say("/quit");
    drop(nat);
    // The server stops: the page is told why, and tries again.
    assert!(server.terminate().success());
    page.wait_until(
        "document.getElementById('chat-status').textContent.includes('server shutting down')",
        "the page shows the server's goodbye",
    );
    // It comes back: the page is in again, in the rooms it was in.
    let server = Server::start(&args);
    page.wait_until(&member("vault", "tia"), "the page rejoins the vault");
    page.wait_until(&member("lobby", "tia"), "and the lobby");
    let mut nat = ChatClient::join(&server.addr, "nat", &["--token", "s3cret"]);
    nat.say("/join vault hunter2");
    nat.expect("-- vault: ");
    type_line(&mut page, "back again");
    assert_eq!(nat.expect("back again"), "[vault] <tia> back again");
    // Leaving the chat on purpose is not a lost connection.
    page.eval("document.getElementById('chat-quit').click(); true");
    page.wait_until(
        "!document.getElementById('chat-login').hidden",
        "the join form is back",
    );
    nat.expect("-- tia left vault");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        page.eval("document.getElementById('chat-main').hidden"),
        true,
        "the page came back after leaving on purpose"
    );
    drop(browser);
    drop(nat);
    assert!(server.terminate().success());
}

/// With an access token, a browser that logged in with `POST /auth` (the
/// Files panel's login) chats without giving the token again: the `/ws`
/// bridge puts it into the page's `Hello` for a live session cookie only,
/// and the page never sees it. Without the cookie the chat is refused.
#[test]
fn a_logged_in_page_chats_without_the_token() {
    let Some(chromium) = common::chromium() else {
        return;
    };
    let token = "a-long-access-token";
    let server = Server::start(&["--http", "127.0.0.1:0", "--token", token]);
    let http = server.http.clone().unwrap();
    let t = Scratch::new("browser-chat-session");
    let browser = Chromium::start(chromium, &t.dir("profile"));

    // No session yet: the token field shows, and joining without it fails.
    let mut ann = open(&browser, &format!("http://{http}/?name=ann"));
    ann.wait_until(
        "document.getElementById('chat-status').textContent.startsWith('refused')",
        "a page without a session is refused",
    );
    assert_eq!(
        ann.eval("document.getElementById('chat-token').hidden"),
        false
    );

    // Log in (as the Files panel does), then come back by the same link.
    ann.eval(&format!(
        "fetch('/auth', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json' }}, \
         body: JSON.stringify({{ token: '{token}' }}) }}).then((r) => {{ window.login = r.status; }}); true"
    ));
    ann.wait_until("window.login === 204", "the login takes");
    let mut ann = open(&browser, &format!("http://{http}/?name=ann&room=den"));
    ann.wait_until(&member("den", "ann"), "ann chats with her session");
    ann.wait_until(
        "document.getElementById('chat-token').hidden",
        "no token field for a logged-in page",
    );
    assert!(
        !ann.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .contains(token),
        "the token never reaches the page"
    );
}
