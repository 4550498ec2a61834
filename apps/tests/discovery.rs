//! Finding the server without typing its address, end to end: the real
//! `lanlink-server` announces itself over mDNS in one network namespace,
//! the real `lanlink` finds and uses it from another, the two joined by a
//! veth pair with multicast on. The namespaces are this test's own: no
//! packet reaches any other network.
//!
//! Needs root and `ip netns` (iproute2). Without them the tests are
//! skipped locally and fail in CI (`CI` set), which runs as root.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{run_bounded, tmux_available, ChatClient, Scratch, Server, Tmux, PATIENCE};

/// The server's address in namespace `a`; the client is `.2` in `b`.
const SERVER_IP: &str = "10.201.0.1";

/// Two network namespaces joined by a veth pair, removed on drop.
struct LanPair {
    a: String,
    b: String,
}

impl LanPair {
    /// A new pair, or `None` (after saying why) when this machine cannot
    /// make one and this is not CI.
    fn new() -> Option<LanPair> {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let ip = Command::new("ip").args(["netns", "list"]).output();
        let why = match (root, ip) {
            (false, _) => "not root (network namespaces need it)",
            (true, Err(_)) => "no `ip` command (iproute2, scripts/setup installs it)",
            (true, Ok(o)) if !o.status.success() => "`ip netns` does not work here",
            _ => "",
        };
        if !why.is_empty() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the discovery tests need root and ip netns in CI: {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id());
        let pair = LanPair {
            a: format!("lla{tag}"),
            b: format!("llb{tag}"),
        };
        let (va, vb) = (format!("va{tag}"), format!("vb{tag}"));
        let setup: &[&[&str]] = &[
            &["netns", "add", &pair.a],
            &["netns", "add", &pair.b],
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
            &["link", "set", &va, "netns", &pair.a],
            &["link", "set", &vb, "netns", &pair.b],
            &["-n", &pair.a, "addr", "add", "10.201.0.1/24", "dev", &va],
            &["-n", &pair.b, "addr", "add", "10.201.0.2/24", "dev", &vb],
            &["-n", &pair.a, "link", "set", "lo", "up"],
            &["-n", &pair.b, "link", "set", "lo", "up"],
            &["-n", &pair.a, "link", "set", &va, "multicast", "on", "up"],
            &["-n", &pair.b, "link", "set", &vb, "multicast", "on", "up"],
            &["-n", &pair.a, "route", "add", "224.0.0.0/4", "dev", &va],
            &["-n", &pair.b, "route", "add", "224.0.0.0/4", "dev", &vb],
        ];
        for args in setup {
            let out = Command::new("ip").args(*args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        Some(pair)
    }

    /// `PROGRAM ARGS…` in namespace `ns`.
    fn command(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// A `lanlink-server` in namespace `a`, bound to every interface there.
    fn server(&self, args: &[&str]) -> Server {
        let mut cmd = LanPair::command(&self.a, env!("CARGO_BIN_EXE_lanlink-server"));
        cmd.args(["--no-http"]).args(args);
        Server::spawn(cmd)
    }

    /// `lanlink ARGS…` in namespace `ns`, as `user`, pins in `pins`.
    fn lanlink(ns: &str, user: &str, pins: &Path) -> Command {
        let mut cmd = LanPair::command(ns, env!("CARGO_BIN_EXE_lanlink"));
        cmd.env("LANLINK_HOME", pins).env("USER", user);
        cmd
    }

    /// Runs `lanlink ARGS…` in namespace `b` to completion (bounded).
    fn run_b(&self, user: &str, pins: &Path, args: &[&str]) -> (Output, Duration) {
        LanPair::run(&self.b, user, pins, args)
    }

    /// Runs `lanlink ARGS…` in namespace `ns` to completion (bounded).
    fn run(ns: &str, user: &str, pins: &Path, args: &[&str]) -> (Output, Duration) {
        let started = Instant::now();
        let mut cmd = LanPair::lanlink(ns, user, pins);
        cmd.args(args);
        let output = run_bounded(cmd, PATIENCE);
        (output, started.elapsed())
    }
}

impl Drop for LanPair {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth, and so both.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The short form the server prints and clients show.
fn grouped(fingerprint: &str) -> String {
    let fp: lanlink_transport::Fingerprint = fingerprint.parse().unwrap();
    fp.grouped()
}

#[test]
fn a_server_on_the_lan_is_found_listed_and_used_without_an_address() {
    let Some(lan) = LanPair::new() else { return };
    let server = lan.server(&["--name", "test-lan"]);
    assert!(
        server
            .stdout
            .iter()
            .any(|l| l.contains("announced on the LAN as")),
        "{:?}",
        server.stdout
    );
    let fingerprint = server.fingerprint.clone().unwrap();
    let scratch = Scratch::new("discovery");

    // `lanlink servers` lists it: address, name, the short fingerprint.
    let pins = scratch.dir("bob");
    let (out, took) = lan.run_b("bob", &pins, &["servers"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&format!("{SERVER_IP}:7878"))
            && listed.contains("\"test-lan\"")
            && listed.contains(&grouped(&fingerprint)),
        "{listed}"
    );
    assert!(took < Duration::from_secs(4), "servers took {took:?}");

    // `lanlink chat` without HOST: found, the announced fingerprint checked
    // and pinned, and the chat works (ada is on the server's side).
    let mut ada = {
        let mut cmd = LanPair::lanlink(&lan.a, "ada", &scratch.dir("ada"));
        cmd.args(["chat", &format!("{SERVER_IP}:7878")]);
        ChatClient::from_command(cmd)
    };
    ada.expect("-- connected to");
    let mut bob = ChatClient::from_command({
        let mut cmd = LanPair::lanlink(&lan.b, "bob", &pins);
        cmd.arg("chat");
        cmd
    });
    bob.expect("-- connected to test-lan as bob");
    let said = bob.expect_err("found on the LAN");
    assert!(said.contains(&format!("{SERVER_IP}:7878")), "{said}");
    bob.expect_err("as its announcement on the LAN said");
    bob.say("hello from the other namespace");
    ada.expect("[lobby] <bob> hello from the other namespace");
    let known = std::fs::read_to_string(pins.join("known_servers")).unwrap();
    assert_eq!(known, format!("{SERVER_IP}:7878 {fingerprint}\n"));

    // One name is one person: bob's name, held from bob's address, cannot
    // be taken by a receiver elsewhere (here: the server's namespace).
    let addr = format!("{SERVER_IP}:7878");
    let (thief, _) = LanPair::run(
        &lan.a,
        "mallory",
        &scratch.dir("m"),
        &["receive", &addr, "--name", "bob", "--count", "1"],
    );
    assert!(!thief.status.success());
    assert!(
        text(&thief.stderr).contains("in use from another address"),
        "{}",
        text(&thief.stderr)
    );
    ada.say("still here");
    bob.expect("[lobby] <ada> still here");
    assert!(bob.finish().success());

    // A pin wins over an announcement, and a disagreement is reported.
    let wrong = scratch.dir("wrong");
    let other = format!("SHA256:{}", "ab".repeat(32));
    std::fs::write(
        wrong.join("known_servers"),
        format!("{SERVER_IP}:7878 {other}\n"),
    )
    .unwrap();
    let (out, _) = lan.run_b("carol", &wrong, &["ls"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the announcement on the LAN names certificate")
            && err.contains("presented certificate")
            && err.contains("lanlink forget"),
        "{err}"
    );

    // Several servers: a script gets the list and an error; `servers`
    // lists both; one run with --no-announce is not there.
    let second = lan.server(&["--bind", "0.0.0.0:7879", "--name", "second"]);
    let share = scratch.dir("share");
    std::fs::write(share.join("only-here.txt"), "x").unwrap();
    let share = share.to_str().unwrap();
    let quiet = lan.server(&["--bind", "0.0.0.0:7880", "--no-announce", "--share", share]);
    let (out, _) = lan.run_b("bob", &pins, &["servers"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains(":7878") && listed.contains(":7879") && !listed.contains(":7880"),
        "{listed}"
    );
    let (out, _) = lan.run_b("bob", &pins, &["ls"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("several lanlink servers")
            && err.contains(&format!("{SERVER_IP}:7878"))
            && err.contains(&format!("{SERVER_IP}:7879"))
            && err.contains("-s ADDRESS"),
        "{err}"
    );
    // On a terminal (tmux), the list is offered and the answer used.
    if tmux_available() {
        let cmd = format!(
            "env LANLINK_HOME={} USER=bob ip netns exec {} {} chat; sleep 30",
            pins.display(),
            lan.b,
            env!("CARGO_BIN_EXE_lanlink"),
        );
        let terminal = Tmux::start("pick", 150, 30, &cmd);
        let screen = terminal.wait_for("which one? [1-2]");
        assert!(screen.contains("1) ") && screen.contains("2) "), "{screen}");
        // Sorted by name: 1) is "second", 2) "test-lan".
        terminal.keys(&["2", "Enter"]);
        terminal.wait_for("-- connected to test-lan as bob");
    }
    // Naming one with -s needs no discovery.
    let (out, _) = lan.run_b("bob", &pins, &["ls", "-s", &format!("{SERVER_IP}:7880")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("only-here.txt"));
    drop((quiet, second));
    assert!(server.terminate().success());
}

#[test]
fn without_a_server_on_the_lan_the_client_says_how_to_name_one() {
    let Some(lan) = LanPair::new() else { return };
    let scratch = Scratch::new("discovery-none");
    let (out, took) = lan.run_b("bob", &scratch.0, &["chat"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no lanlink server announced itself on the LAN") && err.contains("-s HOST"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (out, _) = lan.run_b("bob", &scratch.0, &["servers", "--wait", "1"]);
    assert_eq!(out.status.code(), Some(1));
}
