//! What an operator sees: `lanlink admin HOST who` lists every connection
//! with its name, address, rooms, streams, transfers and connected-since,
//! and the server's log names the user on connect and disconnect and
//! records joins, streams, uploads, downloads and relayed sends, without
//! colour codes when it is not a terminal and without doubled reasons.
//! Real processes on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{lanlink_command, lanlink_spawn, ChatClient, Scratch, Server};

const TOKEN: &str = "op-who-token-2026";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `lanlink admin ADDR who`: its stdout, once every `needle` is in it.
fn who_until(addr: &str, needles: &[&str]) -> String {
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let out = lanlink_command()
            .args(["admin", addr, "who", "--admin-token", TOKEN])
            .output()
            .expect("run lanlink admin");
        let said = text(&out.stdout);
        assert!(out.status.success(), "{said}{}", text(&out.stderr));
        if needles.iter().all(|n| said.contains(n)) {
            return said;
        }
        assert!(
            Instant::now() < deadline,
            "who never showed {needles:?}:\n{said}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the log has, in any order, a line for each `(what, has)`:
/// saying `what`, with every field in `has`.
fn log_has_all(server: &Server, wanted: &[(&str, &[&str])]) {
    let mut pending: Vec<&(&str, &[&str])> = wanted.iter().collect();
    while !pending.is_empty() {
        // Any next line; expect_log fails the test if none comes in time.
        let line = server.expect_log("");
        pending.retain(|(what, has)| {
            !(line.contains(what) && has.iter().all(|field| line.contains(field)))
        });
    }
}

fn log_has(server: &Server, what: &str, has: &[&str]) {
    log_has_all(server, &[(what, has)]);
}

#[test]
fn who_lists_every_connection_and_the_log_tells_what_users_do() {
    let t = Scratch::new("who");
    let file = t.dir("src").join("notes.txt");
    std::fs::write(&file, b"meeting at noon\n").unwrap();
    let server = Server::start(&["--admin-token", TOKEN]);
    let addr = server.addr.clone();

    let mut ada = ChatClient::join(&addr, "ada", &["--room", "ops"]);
    ada.expect("-- ops: ada");
    let bob = ChatClient::join(&addr, "bob", &[]);
    let mut cam = lanlink_spawn(&[
        "cam",
        &addr,
        "--test-pattern",
        "--size",
        "64x48",
        "--fps",
        "5",
        "--name",
        "doorcam",
    ]);
    // ada offers bob a file; bob's chat shows it and leaves it waiting, so
    // the relay stays in progress.
    let mut send = lanlink_spawn(&[
        "send",
        &addr,
        "--to",
        "bob",
        "--name",
        "ada",
        file.to_str().unwrap(),
    ]);
    bob.expect("offers notes.txt");

    let said = who_until(&addr, &["doorcam", "sending to"]);
    let lines: Vec<&str> = said.lines().collect();
    let line_of = |name: &str| -> &str {
        let matching: Vec<&&str> = lines
            .iter()
            .filter(|l| l.split_whitespace().nth(1) == Some(name))
            .collect();
        assert!(!matching.is_empty(), "no line for {name}:\n{said}");
        matching[0]
    };
    assert!(lines[0].ends_with("connection(s)"), "{said}");
    let ada_line = line_of("ada");
    assert!(ada_line.contains(" 127.0.0.1:"), "{ada_line}");
    assert!(ada_line.contains("rooms: lobby, ops;"), "{ada_line}");
    assert!(ada_line.contains("connected 20"), "{ada_line}");
    assert!(ada_line.contains(" ago)"), "{ada_line}");
    let bob_line = line_of("bob");
    assert!(
        bob_line.contains("transfers: receiving from #"),
        "{bob_line}"
    );
    let sender = lines
        .iter()
        .find(|l| l.contains("transfers: sending to #") && l.contains(" bob"))
        .unwrap_or_else(|| panic!("no sender line:\n{said}"));
    assert!(sender.contains("rooms: none"), "{sender}");
    let cam_line = lines
        .iter()
        .find(|l| l.contains("streams: doorcam"))
        .unwrap_or_else(|| panic!("no camera line:\n{said}"));
    assert!(cam_line.contains("transfers: none"), "{cam_line}");
    // The admin connection asking is listed too.
    assert!(said.contains(" admin-"), "{said}");

    // The log, so far: who connected, joined, published, offered.
    log_has_all(
        &server,
        &[
            ("connected (handshake complete)", &["name=ada"]),
            ("joined a room", &["name=ada", "room=ops"]),
            ("stream announced", &["stream=doorcam"]),
            (
                "file offered to a user (relayed send)",
                &["name=ada", "to=bob", "file=notes.txt", "size=16"],
            ),
        ],
    );

    let _ = send.kill();
    let _ = send.wait();
    let _ = cam.kill();
    let _ = cam.wait();
    log_has(&server, "stream ended", &["stream=doorcam"]);
    ada.say("/quit");
    assert!(ada.wait().success());
    let lines = server.log_until("disconnected: quit");
    let last = lines.last().unwrap();
    assert!(last.contains("name=ada"), "{last}");
    assert!(!last.contains("quit: quit"), "{last}");
    for line in &lines {
        assert!(
            !line.contains('\u{1b}'),
            "colour codes in a piped log: {line:?}"
        );
    }
    drop(bob);
    assert!(server.terminate().success());
}

/// Uploads and downloads are logged with the user's name.
#[test]
fn uploads_and_downloads_are_logged() {
    let t = Scratch::new("logfiles");
    let (share, inbox, here) = (t.dir("share"), t.dir("inbox"), t.dir("here"));
    std::fs::write(share.join("menu.txt"), b"soup\n").unwrap();
    std::fs::write(here.join("report.txt"), b"done\n").unwrap();
    let server = Server::start(&[
        "--share",
        share.to_str().unwrap(),
        "--inbox",
        inbox.to_str().unwrap(),
    ]);
    let run = |args: &[&str]| {
        let out = lanlink_command()
            .current_dir(&here)
            .env("USER", "carol")
            .args(args)
            .output()
            .expect("run lanlink");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    };
    // File commands connect as USER-files-PID.
    run(&["get", &server.addr, "menu.txt"]);
    log_has(
        &server,
        "download requested",
        &["name=carol-files-", "file=menu.txt", "offset=0"],
    );
    run(&["put", &server.addr, "report.txt"]);
    log_has(
        &server,
        "upload offered",
        &["name=carol-files-", "file=report.txt", "size=5"],
    );
    server.expect_log("received upload");
    assert!(server.terminate().success());
}
