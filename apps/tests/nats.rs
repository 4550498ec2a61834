//! Scale-out end to end: a real `nats-server` on a loopback port, real
//! `lanlink-server`s joined through it with `--nats`, and real
//! `lanlink chat` clients on each (skipped where nats-server is missing,
//! except under CI).

mod common;

use common::{
    free_port, nats_server_bin, pattern_cam, ChatClient, NatsCluster, NatsServer, Scratch, Server,
};

/// An outbox file of its own for each server of this test process (tests
/// run in parallel with the same server ids; the default file is per id).
fn own_outbox() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{}/nats-outbox-{}-{n}.jsonl",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    )
}

fn server_on(nats: &NatsServer, id: &str) -> Server {
    server_on_with(nats, id, &[])
}

/// [`server_on`] with more arguments.
fn server_on_with(nats: &NatsServer, id: &str, more: &[&str]) -> Server {
    let outbox = own_outbox();
    let url = common::nats_url(id, nats.port);
    let mut args = vec!["--nats", &url, "--server-id", id, "--nats-outbox", &outbox];
    args.extend_from_slice(more);
    let server = Server::start(&args);
    server.expect_log("nats: connected");
    server
}

/// Asks `/who` once a second until the roster line is `want`.
fn who_until(client: &mut ChatClient, want: &str) {
    let mut last = String::new();
    for _ in 0..20 {
        client.say("/who");
        last = client.expect("-- lobby: ");
        if last == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("roster never became {want:?}; last {last:?}");
}

/// Servers a and b on `nats`, ada on a and bob on b, once each one's
/// presence has reached the other (ada's `/who` lists bob@b).
fn ada_on_a_and_bob_on_b(nats: &NatsServer) -> (Server, Server, ChatClient, ChatClient) {
    let a = server_on(nats, "a");
    let b = server_on(nats, "b");
    let mut ada = ChatClient::join(&a.addr, "ada", &[]);
    ada.expect("-- lobby: ada");
    let bob = ChatClient::join(&b.addr, "bob", &[]);
    // Bob's join crossed over: the subscription on a is live.
    ada.expect("-- bob@b joined lobby");
    // Presence: /who on a lists bob on b (once b's presence key is in).
    who_until(&mut ada, "-- lobby: ada, bob@b");
    (a, b, ada, bob)
}

/// After NATS comes back without what it stored (the presence bucket
/// and its consumers gone with it), presence is followed again at once:
/// a user who arrives on b afterwards is in a's `/who` within seconds.
/// The presence reader used to be made again only once its old consumer
/// had been silent for 15 s.
#[test]
fn presence_is_followed_again_at_once_after_nats_restarts() {
    let Some(bin) = nats_server_bin() else { return };
    let mut nats = NatsServer::start(bin, &[]);
    let (a, b, mut ada, bob) = ada_on_a_and_bob_on_b(&nats);
    nats.restart_empty();
    for server in [&a, &b] {
        server.expect_log("nats: disconnected");
        server.expect_log("nats: connected");
    }
    let connected = std::time::Instant::now();
    let carl = ChatClient::join(&b.addr, "carl", &[]);
    carl.expect("-- lobby: ");
    let want = "-- lobby: ada, bob@b, carl@b";
    let mut last = String::new();
    while connected.elapsed() < std::time::Duration::from_secs(30) {
        ada.say("/who");
        last = ada.expect("-- lobby: ");
        if last == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let took = connected.elapsed();
    assert_eq!(last, want, "roster after the restart");
    assert!(
        took < std::time::Duration::from_secs(10),
        "presence took {took:?} to follow after NATS came back"
    );
    // Both found the history stream made anew, and follow it from its
    // start (not from the old stream's last sequence).
    for server in [&a, &b] {
        server.expect_log("history stream was made anew");
    }
    // Chat crosses again both ways, and a user of a server started now
    // gets the history written since (the stream was made anew).
    let mut bob = bob;
    ada.say("after the restart");
    bob.lines_until("<ada@a> after the restart");
    bob.say("back at you");
    ada.lines_until("<bob@b> back at you");
    let c = server_on(&nats, "c");
    let cy = ChatClient::join(&c.addr, "cy", &[]);
    cy.expect("<ada@a> after the restart");
    cy.expect("<bob@b> back at you");
    for client in [ada, bob, carl, cy] {
        assert!(client.finish().success());
    }
}

#[test]
fn two_servers_share_a_room_both_ways_in_order() {
    let Some(bin) = nats_server_bin() else { return };
    let nats = NatsServer::start(bin, &[]);
    let (a, b, mut ada, mut bob) = ada_on_a_and_bob_on_b(&nats);

    for i in 1..=5 {
        ada.say(&format!("from a {i}"));
    }
    let seen = bob.lines_until("from a 5");
    let got: Vec<&String> = seen.iter().filter(|l| l.contains("from a ")).collect();
    let want: Vec<String> = (1..=5)
        .map(|i| format!("[lobby] <ada@a> from a {i}"))
        .collect();
    assert_eq!(got, want.iter().collect::<Vec<_>>(), "{seen:?}");

    bob.say("/me waves back");
    ada.expect("[lobby] * bob@b waves back");
    // A late joiner on b gets what b's room kept, a's messages included.
    let cy = ChatClient::spawn(&b.addr, "cy", &[]);
    let history = cy.lines_until("-- lobby:");
    assert!(
        history.iter().any(|l| l.contains("<ada@a> from a 5")),
        "{history:?}"
    );

    // A room nobody on b is in: what a says there is kept in JetStream,
    // and the first on b to join it gets it.
    ada.say("/join news");
    ada.expect("-- news: ada");
    for i in 1..=3 {
        ada.say(&format!("news {i}"));
    }
    // In order after those on a's NATS connection: once b has it, the
    // stream has the news too.
    ada.say("/join lobby");
    ada.say("sync");
    bob.expect("<ada@a> sync");
    bob.say("/join news");
    let seen = bob.lines_until("<ada@a> news 3");
    let news: Vec<&String> = seen.iter().filter(|l| l.contains("news ")).collect();
    assert_eq!(news.len(), 3, "{seen:?}");
    assert!(news[0].ends_with("news 1") && news[1].ends_with("news 2"));
    // Bob is now in news on b: a sees him join.
    ada.expect("-- bob@b joined news");

    // A leaver on b is seen leaving on a; nothing came back twice.
    let status = bob.finish();
    assert!(status.success(), "{status:?}");
    let seen = ada.lines_until("-- bob@b left");
    assert_eq!(
        seen.iter().filter(|l| l.contains("waves back")).count(),
        0,
        "{seen:?}"
    );
    assert!(ada.finish().success());
    drop(cy);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Two servers' users talk at once; a third server shows their messages in
/// the stream's order, the same order a fourth server replays from the
/// stream as history (live copies wait for the stream's: `nats/order.rs`),
/// and so does the first server to its other user (a local line waits for
/// its place too: `ChatService::show_own`).
#[test]
fn remote_messages_show_in_the_streams_order() {
    let Some(bin) = nats_server_bin() else { return };
    let nats = NatsServer::start(bin, &[]);
    let a = server_on(&nats, "a");
    let b = server_on(&nats, "b");
    let c = server_on(&nats, "c");
    let cy = ChatClient::join(&c.addr, "cy", &[]);
    cy.expect("-- lobby:");
    let al = ChatClient::join(&a.addr, "al", &[]);
    al.expect("-- lobby:");
    let mut ada = ChatClient::join(&a.addr, "ada", &[]);
    ada.expect("-- lobby:");
    let mut bob = ChatClient::join(&b.addr, "bob", &[]);
    bob.expect("-- lobby:");
    cy.expect("-- ada@a joined lobby");
    cy.expect("-- bob@b joined lobby");
    al.expect("-- bob@b joined lobby");

    // Within the per-connection burst (10): nothing is refused.
    const N: usize = 8;
    for i in 1..=N {
        ada.say(&format!("a {i}"));
        bob.say(&format!("b {i}"));
    }
    let said = |l: &String| l.contains("<ada@a> a ") || l.contains("<bob@b> b ");
    let mut live: Vec<String> = cy.lines_until(&format!("<ada@a> a {N}"));
    if !live.iter().any(|l| l.ends_with(&format!("<bob@b> b {N}"))) {
        live.extend(cy.lines_until(&format!("<bob@b> b {N}")));
    }
    let live: Vec<String> = live.into_iter().filter(said).collect();
    assert_eq!(live.len(), 2 * N, "{live:?}");
    // al, on ada's server, sees ada as `ada`.
    let local = |l: &String| l.contains("<ada> a ") || l.contains("<bob@b> b ");
    let mut beside: Vec<String> = al.lines_until(&format!("<ada> a {N}"));
    if !beside
        .iter()
        .any(|l| l.ends_with(&format!("<bob@b> b {N}")))
    {
        beside.extend(al.lines_until(&format!("<bob@b> b {N}")));
    }
    let beside: Vec<String> = beside.into_iter().filter(local).collect();

    // A fourth server opens the room for its first member: the history
    // comes from the stream, in the stream's order (cy has shown them all,
    // so the stream has them all).
    let d = server_on(&nats, "d");
    let dee = ChatClient::spawn(&d.addr, "dee", &[]);
    let last = live.last().cloned().unwrap_or_default();
    let shown = dee.lines_until(&last);
    let history: Vec<String> = shown.iter().filter(|l| said(l)).cloned().collect();
    let tail = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| l.rsplit_once("> ").map_or(l.clone(), |(_, t)| t.to_owned()))
            .collect()
    };
    assert_eq!(
        tail(&live),
        tail(&history),
        "live on c vs the stream: {shown:?}"
    );
    assert_eq!(
        tail(&beside),
        tail(&live),
        "on a, beside ada, vs on c: {beside:?}"
    );

    drop(dee);
    assert!(ada.finish().success());
    assert!(bob.finish().success());
    drop((cy, al));
    for s in [a, b, c, d] {
        assert!(s.terminate().success());
    }
}

/// Private messages between servers: by `name@server` and by a name only
/// one other server has; an unknown user or server is answered to the
/// sender; the receiving server holds the sender to its own checks.
#[test]
fn private_messages_cross_servers_and_unknowns_are_answered() {
    let Some(bin) = nats_server_bin() else { return };
    let nats = NatsServer::start(bin, &[]);
    // Presence is what lets a bare name find its server.
    let (a, b, mut ada, mut bob) = ada_on_a_and_bob_on_b(&nats);
    who_until(&mut bob, "-- lobby: ada@a, bob");

    ada.say("/msg bob@b psst");
    bob.expect("[pm] <ada@a> psst");
    bob.say("/msg ada hi back");
    ada.expect("[pm] <bob@b> hi back");
    ada.say("/msg BOB by name");
    bob.expect("[pm] <ada@a> by name");

    // Unknown on a known server, and an unknown server: both answered.
    ada.say("/msg nobody@b x");
    ada.expect("no user named \"nobody@b\"");
    ada.say("/msg bob@zz y");
    ada.expect("no user named \"bob@zz\"");
    // Neither reached bob, and nothing came twice.
    bob.say("/msg ada@a sync");
    let seen = ada.lines_until("[pm] <bob@b> sync");
    assert_eq!(seen.iter().filter(|l| l.contains("hi back")).count(), 0);
    ada.say("/msg bob@b last");
    let seen = bob.lines_until("[pm] <ada@a> last");
    assert!(
        !seen.iter().any(|l| l.contains("> x") || l.contains("> y")),
        "{seen:?}"
    );
    // Her two refused lines make her script's exit status 1.
    assert_eq!(ada.finish().code(), Some(1));
    // A script whose last line is a private message another server
    // refuses knows it before it ends: the server answers its `Confirm`
    // only once that server has answered (it used to answer at once, and
    // the script exited 0).
    let mut cy = ChatClient::join(&a.addr, "cy", &[]);
    cy.say("/msg nobody@b lost");
    assert_eq!(cy.finish().code(), Some(1));
    // One the other server delivered: 0.
    let mut dee = ChatClient::join(&a.addr, "dee", &[]);
    dee.say("/msg bob@b delivered");
    assert!(dee.finish().success());
    bob.expect("[pm] <dee@a> delivered");
    assert!(bob.finish().success());
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Polls `path` (10 s at most) until `ok` holds for its text.
fn file_until(path: &std::path::Path, what: &str, ok: impl Fn(&str) -> bool) {
    for _ in 0..100 {
        if ok(&std::fs::read_to_string(path).unwrap_or_default()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{}: never {what}", path.display());
}

/// The chat outbox on disk: a message said while NATS is unreachable
/// waits in the outbox file through a restart of its server, is
/// published once NATS is there, arrives once, and leaves the file.
#[test]
fn messages_said_while_nats_is_away_survive_a_restart_and_arrive_once() {
    let Some(bin) = nats_server_bin() else { return };
    let store = Scratch::new("nats-outbox");
    let outbox = store.dir("a").join("outbox.jsonl");
    let outbox_arg = outbox.to_string_lossy().into_owned();
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let a = Server::start(&[
        "--nats",
        &nowhere,
        "--server-id",
        "a",
        "--nats-outbox",
        &outbox_arg,
    ]);
    let mut ada = ChatClient::join(&a.addr, "ada", &[]);
    ada.expect("-- lobby: ada");
    ada.say("said offline");
    file_until(&outbox, "held the message", |t| t.contains("said offline"));
    assert!(ada.finish().success());
    assert!(a.terminate().success());

    let nats = NatsServer::start(bin, &[]);
    let b = server_on(&nats, "b");
    let bob = ChatClient::join(&b.addr, "bob", &[]);
    bob.expect("-- lobby: bob");
    let url = common::nats_url("a", nats.port);
    let a = Server::start(&[
        "--nats",
        &url,
        "--server-id",
        "a",
        "--nats-outbox",
        &outbox_arg,
    ]);
    a.expect_log("nats: connected");
    bob.expect("[lobby] <ada@a> said offline");
    let mut ann = ChatClient::join(&a.addr, "ann", &[]);
    ann.expect("-- lobby: ");
    ann.say("after");
    let seen = bob.lines_until("<ann@a> after");
    assert_eq!(
        seen.iter().filter(|l| l.contains("said offline")).count(),
        0,
        "shown twice: {seen:?}"
    );
    file_until(&outbox, "emptied", |t| t.trim().is_empty());
    assert!(ann.finish().success());
    assert!(bob.finish().success());
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Three NATS nodes in a cluster, three servers, a client on each: chat
/// crosses in order, a late joiner on C gets what A wrote, /who shows
/// everyone; one node killed, chat goes on both ways; all nodes killed,
/// local chat goes on and remote users show as unknown; all restarted,
/// what was said during the outage arrives once.
#[test]
fn a_cluster_of_three_survives_its_nodes() {
    let Some(bin) = nats_server_bin() else { return };
    let mut cluster = NatsCluster::start(bin, 3);
    let start = |i: usize, id: &str| {
        let urls = cluster.urls(id, i);
        let outbox = own_outbox();
        let server = Server::start(&[
            "--nats",
            &urls,
            "--server-id",
            id,
            "--nats-replicas",
            "3",
            "--nats-outbox",
            &outbox,
        ]);
        server.expect_log("nats: connected");
        server
    };
    let (a, b, c) = (start(0, "a"), start(1, "b"), start(2, "c"));

    let mut ada = ChatClient::join(&a.addr, "ada", &[]);
    ada.expect("-- lobby: ada");
    let bob = ChatClient::join(&b.addr, "bob", &[]);
    ada.expect("-- bob@b joined lobby");
    let mut cy = ChatClient::join(&c.addr, "cy", &[]);
    ada.expect("-- cy@c joined lobby");
    bob.expect("-- cy@c joined lobby");
    who_until(&mut cy, "-- lobby: ada@a, bob@b, cy");

    for i in 1..=3 {
        ada.say(&format!("one {i}"));
    }
    for reader in [&bob, &cy] {
        let seen = reader.lines_until("<ada@a> one 3");
        let got: Vec<&String> = seen.iter().filter(|l| l.contains("> one ")).collect();
        assert_eq!(got.len(), 3, "{seen:?}");
        assert!(got[0].ends_with("one 1") && got[1].ends_with("one 2"));
    }

    // Late join on C of a room written on A (history from JetStream).
    ada.say("/join news");
    ada.expect("-- news: ada");
    ada.say("headline");
    ada.say("/join lobby");
    ada.say("sync 1");
    cy.expect("<ada@a> sync 1");
    let dan = ChatClient::join(&c.addr, "dan", &["--room", "news"]);
    dan.expect("[news] <ada@a> headline");

    // One node of three down (A's): chat goes on both ways. A's client
    // moves to another node; messages go live by core NATS while the
    // stream elects a new leader.
    who_until(&mut ada, "-- lobby: ada, bob@b, cy@c, dan@c");
    // A's server reconnects to another node and the stream may elect a
    // new leader (seconds on a loaded machine): the same long patience
    // as for the restart below.
    let recovery = std::time::Duration::from_secs(45);
    cluster.kill(0);
    ada.say("one node down");
    bob.lines_until_within("<ada@a> one node down", recovery);
    cy.lines_until_within("<ada@a> one node down", recovery);
    cy.say("from c, one node down");
    ada.lines_until_within("<cy@c> from c, one node down", recovery);

    // All down: local chat goes on; remote users show as unknown.
    cluster.kill(1);
    cluster.kill(2);
    a.expect_log("nats: disconnected");
    let ann = ChatClient::join(&a.addr, "ann", &[]);
    ann.expect("-- lobby: ");
    ada.say("during the outage");
    ann.expect("<ada> during the outage");
    who_until(&mut ada, "-- lobby: ada, ann, bob@b?, cy@c?, dan@c?");

    // All back: what was said meanwhile arrives, once.
    // The cluster elects its leaders again (4-9 s with nats-server 2.9,
    // more on a loaded machine) and the servers' reconnect backoff has
    // grown during the outage: give the replay longer than a server's
    // usual patience.
    for i in 0..3 {
        cluster.restart(i);
    }
    let seen = bob.lines_until_within("<ada@a> during the outage", recovery);
    assert!(!seen.is_empty());
    cy.lines_until_within("<ada@a> during the outage", recovery);
    ada.say("after the outage");
    let seen = bob.lines_until("<ada@a> after the outage");
    assert_eq!(
        seen.iter()
            .filter(|l| l.contains("during the outage"))
            .count(),
        0,
        "shown twice: {seen:?}"
    );
    who_until(&mut ada, "-- lobby: ada, ann, bob@b, cy@c, dan@c");
    drop((ann, dan));
    for client in [ada, bob, cy] {
        assert!(client.finish().success());
    }
}

/// What NATS counts for the connection named `name`: (messages it sent
/// to NATS, messages NATS sent it), from the monitoring port's `/connz`.
fn nats_counts(monitor: u16, name: &str) -> (u64, u64) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", monitor)).expect("nats monitoring");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET /connz?limit=1024 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let body = reply.split_once("\r\n\r\n").expect("an HTTP reply").1;
    let connz: serde_json::Value = serde_json::from_str(body).expect("connz JSON");
    let conn = connz["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no NATS connection named {name:?}: {body}"));
    (
        conn["in_msgs"].as_u64().unwrap(),
        conn["out_msgs"].as_u64().unwrap(),
    )
}

#[test]
fn a_stream_crosses_to_a_viewer_on_another_server_and_only_while_watched() {
    let Some(bin) = nats_server_bin() else { return };
    let monitor = free_port();
    let nats = NatsServer::start(bin, &["-m", &monitor.to_string()]);
    let a = server_on(&nats, "a");
    let b = server_on(&nats, "b");
    let c = server_on(&nats, "c");
    let mut cam = pattern_cam(&a.addr, "160x120", "15", "pattern");
    // C lists A's stream, named for its server.
    c.expect_log("pattern@a");
    // Nobody watches it: A's media connection has published nothing.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(nats_counts(monitor, "lanlink-server a media").0, 0);

    let t = Scratch::new("nats-view");
    let dir = t.dir("frames");
    let stdout = view_frames(&c.addr, "pattern@a", &dir, 10);
    assert!(stdout.contains("from "), "{stdout}");
    let saved = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(saved, 10);
    let (published, _) = nats_counts(monitor, "lanlink-server a media");
    assert!(published >= 10, "{published}");
    // Frames went only where wanted: B, with no viewer, got none.
    assert_eq!(nats_counts(monitor, "lanlink-server b media").1, 0);

    // The viewer left: C gives its lease up, A stops publishing.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let before = nats_counts(monitor, "lanlink-server a media").0;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = nats_counts(monitor, "lanlink-server a media").0;
    assert_eq!(before, after, "A kept publishing with no viewer");

    let _ = cam.kill();
    let _ = cam.wait();
    // The stream ended on A: it ends on C too.
    c.expect_log("stream ended");
    drop(t);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    assert!(c.terminate().success());
}

/// `lanlink view ADDR STREAM --save DIR --frames N`, which must end well
/// with N frames; its output.
fn view_frames(addr: &str, stream: &str, dir: &std::path::Path, n: u32) -> String {
    let out = common::lanlink(&[
        "view",
        addr,
        stream,
        "--save",
        dir.to_str().unwrap(),
        "--frames",
        &n.to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("received {n} frames")), "{stdout}");
    stdout
}

/// A frame larger than the NATS server takes in one message crosses in
/// parts and arrives whole. The NATS server here takes 8 KiB a message
/// (1 MB by default, which a large camera JPEG can pass).
#[test]
fn frames_larger_than_a_nats_message_cross_whole() {
    let Some(bin) = nats_server_bin() else { return };
    let t = Scratch::new("nats-big");
    let nats = NatsServer::with_conf(bin, "max_payload: 8192", &[]);
    let a = server_on(&nats, "a");
    let c = server_on(&nats, "c");
    let mut cam = pattern_cam(&a.addr, "640x480", "10", "big");
    c.expect_log("big@a");
    let dir = t.dir("frames");
    view_frames(&c.addr, "big@a", &dir, 5);
    for saved in std::fs::read_dir(&dir).unwrap() {
        let jpeg = std::fs::read(saved.unwrap().path()).unwrap();
        assert!(
            jpeg.len() > 8192,
            "a frame of {} bytes needs no parts",
            jpeg.len()
        );
        assert!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]));
    }
    let _ = cam.kill();
    let _ = cam.wait();
    drop(t);
    assert!(a.terminate().success());
    assert!(c.terminate().success());
}

/// A GET to `http` (host:port) that reads the head and as much of the
/// body as comes within `patience` (up to `enough` bytes).
fn http_get(http: &str, path: &str, enough: usize, patience: std::time::Duration) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).expect("the browser server");
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + patience;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while got.len() < enough && std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    got
}

/// NATS (with its monitoring port), server A where media is published,
/// and server C with a browser server (`http`, host:port).
struct Publishing {
    monitor: u16,
    nats: NatsServer,
    a: Server,
    c: Server,
    http: String,
}

/// [`Publishing`], or `None` without a `nats-server` to run.
fn publisher_and_browser_side() -> Option<Publishing> {
    let bin = nats_server_bin()?;
    let monitor = free_port();
    let nats = NatsServer::start(bin, &["-m", &monitor.to_string()]);
    let a = server_on(&nats, "a");
    let c = server_on_with(&nats, "c", &["--http", "127.0.0.1:0"]);
    let http = c.http.clone().expect("C's browser server");
    Some(Publishing {
        monitor,
        nats,
        a,
        c,
        http,
    })
}

/// A browser on server C sees a camera published on server A: C's page
/// lists it before any frame crosses, opening it makes the frames come,
/// and once the browser leaves, A stops sending them.
#[test]
fn a_browser_on_another_server_watches_a_stream_only_while_it_watches() {
    let Some(Publishing {
        monitor,
        nats: _nats,
        a,
        c,
        http,
    }) = publisher_and_browser_side()
    else {
        return;
    };
    let mut cam = pattern_cam(&a.addr, "160x120", "15", "pattern");
    c.expect_log("pattern@a");
    // Listed for browsers on C, with no frame yet: nothing has crossed.
    let mut state = String::new();
    for _ in 0..50 {
        let reply = http_get(&http, "/state", 1 << 20, std::time::Duration::from_secs(2));
        state = String::from_utf8_lossy(&reply).into_owned();
        if state.contains("pattern@a") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(state.contains("\"name\":\"pattern@a\""), "{state}");
    assert_eq!(nats_counts(monitor, "lanlink-server a media").0, 0);

    // A browser opens the stream: JPEG parts arrive.
    let body = http_get(
        &http,
        "/stream/pattern@a",
        1 << 30,
        std::time::Duration::from_secs(6),
    );
    let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let parts = body.windows(2).filter(|w| *w == [0xFF, 0xD8]).count();
    assert!(parts >= 10, "{parts} JPEG images in 6 s at 15 fps");
    assert!(nats_counts(monitor, "lanlink-server a media").0 >= 10);

    // The browser left: C gives its lease up, A stops publishing.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let before = nats_counts(monitor, "lanlink-server a media").0;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = nats_counts(monitor, "lanlink-server a media").0;
    assert_eq!(before, after, "A kept publishing with no browser watching");

    let _ = cam.kill();
    let _ = cam.wait();
    assert!(a.terminate().success());
    assert!(c.terminate().success());
}

/// A browser listening at `/audio` on server C hears a talker on server A
/// (the audio crosses only while some browser listens).
#[test]
fn a_browser_on_another_server_hears_a_talker() {
    use std::io::{Read, Write};
    let Some(Publishing {
        monitor,
        nats: _nats,
        a,
        c,
        http,
    }) = publisher_and_browser_side()
    else {
        return;
    };
    let mut talk = common::lanlink_spawn(&[
        "talk",
        &a.addr,
        "--tone",
        "440",
        "--name",
        "voice",
        "--seconds",
        "8",
    ]);
    c.expect_log("voice@a");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        nats_counts(monitor, "lanlink-server a media").0,
        0,
        "nobody listens yet"
    );
    let mut ws = std::net::TcpStream::connect(&http).unwrap();
    write!(
        ws,
        "GET /audio HTTP/1.1\r\nHost: {http}\r\nOrigin: http://{http}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    ws.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    // Reads the 101 head, then counts the server's WebSocket messages
    // (unmasked) for three seconds: text notices and binary packets.
    let mut bytes = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut buf = [0u8; 16 * 1024];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = ws.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
    }
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head")
        + 4;
    assert!(
        bytes.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        &bytes[..head_end]
    );
    let (mut texts, mut packets, mut at) = (Vec::new(), 0, head_end);
    while at + 2 <= bytes.len() {
        let (opcode, short) = (bytes[at] & 0x0F, usize::from(bytes[at + 1] & 0x7F));
        let (len, start) = match short {
            126 if at + 4 <= bytes.len() => (
                usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                at + 4,
            ),
            126 | 127 => break,
            n => (n, at + 2),
        };
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        match opcode {
            1 => texts.push(String::from_utf8_lossy(payload).into_owned()),
            2 => packets += 1,
            _ => {}
        }
        at = start + len;
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("\"start\"") && t.contains("voice@a")),
        "{texts:?}"
    );
    // 20 ms packets: 150 in three seconds, less the lease's first tick.
    assert!(packets >= 50, "{packets} packets in 3 s; {texts:?}");
    drop(ws);
    let _ = talk.kill();
    let _ = talk.wait();
    assert!(a.terminate().success());
    assert!(c.terminate().success());
}

/// `lanlink send --to bob@c` on server A reaches `lanlink receive` on
/// server C: the file crosses through NATS with its BLAKE3 checked, the
/// receiver sees the sender as `ada@a`, and an offer to a user C does not
/// have is refused (the sender exits non-zero). The NATS server takes
/// 64 KiB a message, less than a 256 KiB chunk: the chunks cross in parts.
#[test]
fn a_file_goes_to_a_user_on_another_server() {
    let Some(bin) = nats_server_bin() else { return };
    let t = Scratch::new("nats-send");
    let nats = NatsServer::with_conf(bin, "max_payload: 65536", &[]);
    let a = server_on(&nats, "a");
    let c = server_on(&nats, "c");
    let (src, rx) = (t.dir("src"), t.dir("rx"));
    let file = src.join("photo.jpg");
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let receiver = common::receive_one(&c.addr, "bob", &rx, &[]);
    // Until bob is connected on C, C answers that it has no bob.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let out = loop {
        let out = common::lanlink(&[
            "send",
            &a.addr,
            "--to",
            "bob@c",
            "--name",
            "ada",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success()
            || !stderr.contains("no user named")
            || std::time::Instant::now() > deadline
        {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("delivered"), "{stdout}");
    let done = receiver.wait_with_output().unwrap();
    let told = String::from_utf8_lossy(&done.stdout).into_owned();
    assert!(done.status.success(), "{told}");
    assert!(told.contains("from ada@a"), "{told}");
    assert_eq!(std::fs::read(rx.join("photo.jpg")).unwrap(), data);

    let out = common::lanlink(&[
        "send",
        &a.addr,
        "--to",
        "nobody@c",
        "--name",
        "ada",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no user named \"nobody\""), "{stderr}");

    // No server zz is in presence: refused at once, not after the 120 s
    // an unanswered offer waits.
    let asked = std::time::Instant::now();
    let out = common::lanlink(&[
        "send",
        &a.addr,
        "--to",
        "bob@zz",
        "--name",
        "ada",
        file.to_str().unwrap(),
    ]);
    let took = asked.elapsed();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no user named \"bob@zz\""), "{stderr}");
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    drop(t);
    assert!(a.terminate().success());
    assert!(c.terminate().success());
}

/// A raw NATS client (the text protocol over TCP), for a hostile server.
struct RawNats {
    stream: std::net::TcpStream,
    lines: std::io::BufReader<std::net::TcpStream>,
}

impl RawNats {
    fn connect(port: u16, user: &str, password: &str) -> RawNats {
        use std::io::BufRead;
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut lines = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut info = String::new();
        lines.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO "), "{info}");
        let mut raw = RawNats { stream, lines };
        let connect = serde_json::json!({"user": user, "pass": password, "verbose": false,
            "pedantic": false, "headers": true, "name": "hostile"});
        raw.send(&format!("CONNECT {connect}\r\n"));
        assert_eq!(raw.ping(), Vec::<String>::new());
        raw
    }

    fn send(&mut self, text: &str) {
        use std::io::Write;
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    fn publish(&mut self, subject: &str, body: &str) {
        self.send(&format!("PUB {subject} {}\r\n{body}\r\n", body.len()));
    }

    /// What the server sent (messages to our subscriptions, errors) until
    /// a line contains `needle`, or a second has passed.
    fn answers_until(&mut self, needle: &str) -> Vec<String> {
        let mut answers = Vec::new();
        for _ in 0..50 {
            answers.extend(self.ping());
            if answers.iter().any(|l| l.contains(needle)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        answers
    }

    /// PING, and what the server said before its PONG (errors).
    fn ping(&mut self) -> Vec<String> {
        use std::io::BufRead;
        self.send("PING\r\n");
        let mut said = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.lines.read_line(&mut line).unwrap() > 0, "closed");
            match line.trim_end() {
                "PONG" => return said,
                "PING" => self.send("PONG\r\n"),
                other => said.push(other.to_owned()),
            }
        }
    }
}

/// A hostile server that makes the history stream first, keeping one line
/// per room and server (its permissions let it make that stream): the
/// honest servers refuse to use it and say why; live chat goes on.
#[test]
fn a_history_stream_made_first_by_a_hostile_server_is_refused() {
    let Some(bin) = nats_server_bin() else { return };
    let nats = NatsServer::start(bin, &[]);
    let mut m = RawNats::connect(nats.port, "m", "pw-m");
    let config = serde_json::json!({"name": "LANLINK_HISTORY",
        "subjects": ["lanlink.room.*.said.*"], "max_msgs_per_subject": 1,
        "storage": "file", "retention": "limits", "discard": "old",
        "deny_delete": true, "deny_purge": true, "max_msg_size": 96 * 1024})
    .to_string();
    m.send("SUB _INBOX_m.made 1\r\n");
    m.send(&format!(
        "PUB $JS.API.STREAM.CREATE.LANLINK_HISTORY _INBOX_m.made {}\r\n{config}\r\n",
        config.len()
    ));
    let answers = m.answers_until("stream_create_response");
    assert!(
        answers
            .iter()
            .any(|l| l.contains("\"max_msgs_per_subject\":1")),
        "{answers:?}"
    );
    let (a, b, mut ada, bob) = ada_on_a_and_bob_on_b(&nats);
    ada.say("live still");
    bob.expect("[lobby] <ada@a> live still");
    a.expect_log("NATS stream LANLINK_HISTORY exists with fewer messages or bytes kept");
    assert!(ada.finish().success());
    assert!(bob.finish().success());
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// With each lanlink server its own NATS user under the permissions
/// `lanlink-server --print-nats-permissions` prints, a hostile server (a
/// raw NATS client as user `m`) cannot speak as another: NATS refuses its
/// publishes on another id's subjects, JetStream deletes and other
/// servers' subscriptions, and a body claiming another id on its own
/// subject is dropped by the receivers; what it says as itself arrives as
/// `name@m`, and the honest servers go on unaffected.
#[test]
fn servers_speak_only_as_their_own_nats_user() {
    let Some(bin) = nats_server_bin() else { return };
    // The flag prints what the tests' NATS users have.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_lanlink-server"))
        .args(["--print-nats-permissions", "m"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let printed: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(printed, lanlink_server::nats::permissions("m"));

    let nats = NatsServer::start(bin, &[]);
    let (a, b, mut ada, mut bob) = ada_on_a_and_bob_on_b(&nats);
    ada.say("honest 1");
    bob.expect("[lobby] <ada@a> honest 1");
    ada.say("/msg bob@b psst");
    bob.expect("[pm] <ada@a> psst");
    bob.say("/msg ada back");
    ada.expect("[pm] <bob@b> back");

    let mut m = RawNats::connect(nats.port, "m", "pw-m");
    let lobby = "lanlink.room.6c6f626279";
    let as_a = |text: &str| {
        serde_json::json!({"kind": "said", "room": "lobby", "name": "ada", "text": text,
            "action": false, "ts": 1, "server": "a", "seq": 9_000_000_000_000_000u64,
            "id": "a-9000000000000000"})
        .to_string()
    };
    // Another id's subjects, presence key, JetStream's deletes: refused.
    for subject in [
        format!("{lobby}.said.a"),
        format!("{lobby}.presence.b"),
        "lanlink.server.b.pm.a".into(),
        "$KV.lanlink_presence.a".into(),
        "$JS.API.STREAM.DELETE.LANLINK_HISTORY".into(),
        "$JS.API.STREAM.PURGE.KV_lanlink_presence".into(),
        "lanlink.media.a.want.b".into(),
    ] {
        m.publish(&subject, &as_a("forged on its subject"));
        let said = m.ping();
        assert!(
            said.iter().any(|l| l.contains("Permissions Violation")),
            "{subject}: {said:?}"
        );
    }
    // JetStream answering on another id's subject (a get's answer goes to
    // the reply subject the asker names, published inside the account):
    // its own presence value holding a line as a, fetched onto a's
    // subject. The gets are refused; the stream serves none anyway.
    m.publish("$KV.lanlink_presence.m", &as_a("forged through JetStream"));
    for (api, body) in [
        (
            "$JS.API.DIRECT.GET.KV_lanlink_presence.$KV.lanlink_presence.m",
            "",
        ),
        (
            "$JS.API.STREAM.MSG.GET.KV_lanlink_presence",
            r#"{"last_by_subj":"$KV.lanlink_presence.m"}"#,
        ),
    ] {
        m.send(&format!(
            "PUB {api} {lobby}.said.a {}\r\n{body}\r\n",
            body.len()
        ));
        let said = m.ping();
        assert!(
            said.iter().any(|l| l.contains("Permissions Violation")),
            "{api}: {said:?}"
        );
    }
    // A put that would roll the whole bucket up (every server's presence
    // gone): JetStream refuses it.
    m.send("SUB _INBOX_m.acks 2\r\n");
    let headers = "NATS/1.0\r\nNats-Rollup: all\r\n\r\n";
    m.send(&format!(
        "HPUB $KV.lanlink_presence.m _INBOX_m.acks {} {}\r\n{headers}{{}}\r\n",
        headers.len(),
        headers.len() + 2
    ));
    let answers = m.answers_until("rollup");
    assert!(
        answers.iter().any(|l| l.contains("rollup not permitted")),
        "{answers:?}"
    );
    // Reading what is for another server: refused.
    m.send("SUB lanlink.server.b.> 1\r\n");
    let said = m.ping();
    assert!(
        said.iter().any(|l| l.contains("Permissions Violation")),
        "{said:?}"
    );
    // Its own subject with another id in the body: NATS takes it, the
    // servers drop it. Then a line as itself, which arrives (NATS keeps
    // one publisher's order): the forged one was dropped, not late.
    m.publish(&format!("{lobby}.said.m"), &as_a("forged in the body"));
    let own = serde_json::json!({"kind": "said", "room": "lobby", "name": "mallory",
        "text": "as myself", "action": false, "ts": 1, "server": "m", "seq": 1, "id": "m-1"});
    m.publish(&format!("{lobby}.said.m"), &own.to_string());
    assert_eq!(m.ping(), Vec::<String>::new());
    let seen = bob.lines_until("[lobby] <mallory@m> as myself");
    assert!(!seen.iter().any(|l| l.contains("forged")), "{seen:?}");
    b.expect_log("not on its origin's subject");

    // Stored messages whose headers start with a status line, on its own
    // presence key and room subject: the client library took them for
    // statuses, and every server's consumers made themselves again in
    // front of them without end (thousands a second, nats-server at
    // 1.45 GB), presence was lost and history reads stopped there.
    // And header blocks the client library could not parse (it closed the
    // whole connection on them: every server reconnecting for ever while
    // one was stored).
    let statuses = [
        "NATS/1.0 404 No Messages\r\n\r\n",
        "XYZ\r\n\r\n",
        "NATS/1.0 70000\r\n\r\n",
        "NATS/1.0\r\nno colon\r\n\r\n",
    ];
    for status in statuses {
        for subject in [
            "$KV.lanlink_presence.m".to_owned(),
            format!("{lobby}.said.m"),
        ] {
            m.send(&format!(
                "HPUB {subject} {} {}\r\n{status}{{}}\r\n",
                status.len(),
                status.len() + 2
            ));
        }
    }
    assert_eq!(m.ping(), Vec::<String>::new());
    std::thread::sleep(std::time::Duration::from_secs(1));
    m.send("SUB _INBOX_m.info 3\r\n");
    m.send("PUB $JS.API.STREAM.INFO.KV_lanlink_presence _INBOX_m.info 0\r\n\r\n");
    let info = m.answers_until("consumer_count");
    let count = info
        .iter()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["state"]["consumer_count"].as_u64());
    assert!(count.is_some_and(|n| n <= 4), "{info:?}");

    // The honest servers are unaffected: chat, history, presence.
    ada.say("honest 2");
    let seen = bob.lines_until("[lobby] <ada@a> honest 2");
    assert!(!seen.iter().any(|l| l.contains("forged")), "{seen:?}");
    let cy = ChatClient::spawn(&b.addr, "cy", &[]);
    let history = cy.lines_until("-- lobby:");
    assert!(
        history.iter().any(|l| l.contains("<ada@a> honest 2")),
        "{history:?}"
    );
    assert!(!history.iter().any(|l| l.contains("forged")), "{history:?}");
    who_until(&mut ada, "-- lobby: ada, bob@b, cy@b");
    drop(cy);
    assert!(ada.finish().success());
    assert!(bob.finish().success());
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}
