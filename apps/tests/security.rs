//! The reference programs' security: TLS by default with the certificate
//! pinned on first use, a changed certificate refused with a warning until
//! forgotten, plain TCP only when both sides say so, and an operator who
//! kicks and bans with the admin token. Real processes on 127.0.0.1.

mod common;

use common::{lanlink_command, ChatClient, Scratch, Server};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `lanlink ARGS…` with its own `LANLINK_HOME` (its own pins).
fn lanlink_at(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    lanlink_command()
        .env("LANLINK_HOME", home)
        .args(args)
        .output()
        .expect("run lanlink")
}

#[test]
fn first_use_pins_the_certificate_and_a_changed_one_is_refused_until_forgotten() {
    let t = Scratch::new("pinning");
    let home = t.dir("client-home");
    let first = Server::start(&["--share", t.dir("share").to_str().unwrap()]);
    let addr = first.addr.clone();
    let fingerprint = first.fingerprint.clone().expect("a TLS server");

    let out = lanlink_at(&home, &["ls", &addr]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("first connection") && err.contains(&fingerprint),
        "{err}"
    );
    let pins = std::fs::read_to_string(home.join("known_servers")).unwrap();
    assert_eq!(pins.trim(), format!("{addr} {fingerprint}"));
    // The second time is silent.
    let out = lanlink_at(&home, &["ls", &addr]);
    assert!(out.status.success());
    assert!(!text(&out.stderr).contains("first connection"));
    drop(first);

    // Another server (another certificate) on the same address: refused
    // before anything is sent, with the warning and the way out.
    let data = t.dir("other-data");
    let port = addr.rsplit(':').next().unwrap();
    let impostor = Server::start(&[
        "--share",
        t.dir("share").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--bind",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(impostor.addr, addr);
    assert_ne!(impostor.fingerprint.as_deref(), Some(fingerprint.as_str()));
    let out = lanlink_at(&home, &["ls", &addr]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("WARNING") && err.contains("impersonating") && err.contains("lanlink forget"),
        "{err}"
    );
    impostor.expect_log("TLS handshake failed");

    let out = lanlink_at(&home, &["forget", &addr]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lanlink_at(&home, &["ls", &addr]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("first connection"));
}

#[test]
fn server_fingerprint_pins_up_front_and_plain_needs_both_sides() {
    let t = Scratch::new("fingerprint");
    let home = t.dir("home");
    let server = Server::start(&["--share", t.dir("share").to_str().unwrap()]);
    let right = server.fingerprint.clone().unwrap();
    let wrong = format!("SHA256:{}", "0".repeat(64));

    let out = lanlink_at(&home, &["ls", &server.addr, "--server-fingerprint", &right]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!home.join("known_servers").exists(), "nothing to learn");
    let out = lanlink_at(&home, &["ls", &server.addr, "--server-fingerprint", &wrong]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not the expected"),
        "{}",
        text(&out.stderr)
    );

    // A plain client against the TLS server: a clear refusal, not a hang.
    let out = lanlink_at(&home, &["ls", "--plain", &server.addr]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("requires TLS"),
        "{}",
        text(&out.stderr)
    );

    // And the other way round.
    let plain = Server::start(&["--plain", "--share", t.dir("share").to_str().unwrap()]);
    assert!(plain.fingerprint.is_none());
    let out = lanlink_at(&home, &["ls", &plain.addr]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--plain"),
        "{}",
        text(&out.stderr)
    );
    let out = lanlink_at(&home, &["ls", "--plain", &plain.addr]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_operator_kicks_and_bans_and_others_are_unaffected() {
    let server = Server::start(&["--admin-token", "op-secret-2026"]);
    let addr = server.addr.clone();
    let mut ada = ChatClient::join(&addr, "ada", &[]);
    let bob = ChatClient::join(&addr, "bob", &[]);
    let mallory = ChatClient::join(&addr, "mallory", &[]);
    let admin = |args: &[&str]| {
        let out = lanlink_command()
            .args(["admin", &addr])
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), text(&out.stdout) + &text(&out.stderr))
    };

    let (ok, said) = admin(&["kick", "mallory", "--admin-token", "wrong"]);
    assert!(!ok && said.contains("wrong admin token"), "{said}");
    server.expect_log("refused (admin token)");

    let (ok, said) = admin(&["kick", "mallory", "--admin-token", "op-secret-2026"]);
    assert!(ok && said.contains("kicked mallory"), "{said}");
    mallory.expect("kicked by an operator");
    mallory.wait();

    let (ok, said) = admin(&["ban", "Mallory", "--admin-token", "op-secret-2026"]);
    assert!(ok, "{said}");
    let again = ChatClient::spawn(&addr, "mallory", &[]);
    again.expect_err("banned");
    let (ok, said) = admin(&["bans", "--admin-token", "op-secret-2026"]);
    assert!(ok && said.contains("mallory"), "{said}");
    // Nor can anyone take the banned name by renaming.
    let mut bob = bob;
    bob.say("/nick MALLORY");
    bob.expect("is banned");

    // The others never noticed anything but mallory leaving.
    ada.say("still here");
    bob.expect("<ada> still here");
    let (ok, said) = admin(&["unban", "mallory", "--admin-token", "op-secret-2026"]);
    assert!(ok, "{said}");
    let back = ChatClient::join(&addr, "mallory", &[]);
    drop(back);
    assert!(ada.finish().success());
    // A script whose line was refused (the /nick) exits 1.
    assert_eq!(bob.finish().code(), Some(1));
}

#[test]
fn a_server_whose_output_is_closed_still_stops_cleanly_on_sigterm() {
    // A supervisor that went away closes the server's stdout and stderr:
    // logging must not panic (in the signal thread that used to mean a
    // server that never stopped).
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_lanlink-server"))
        .env("LANLINK_HOME", common::home())
        .args(["--bind", "127.0.0.1:0", "--no-http"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "no listening line");
    }
    drop(out);
    drop(child.stderr.take());
    std::thread::sleep(std::time::Duration::from_millis(200));
    common::signal(child.id(), "TERM");
    let status = common::wait_timeout(&mut child, common::PATIENCE).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the server ignored SIGTERM with its output closed");
    });
    assert!(status.success(), "{status:?}");
}
